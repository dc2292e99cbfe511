package telemetry

import (
	"slices"
	"sync/atomic"
)

// ZoneSpec is a zone of a table the DNS server serves.
type ZoneSpec struct {
	Name    string // canonical origin: lower case, fully qualified
	Records []RecordSpec
}

// RecordSpec is one owner name of a zone; Pools are the pools its steered
// records can answer from (none for static records).
type RecordSpec struct {
	Name  string
	Pools []string
}

type recKey struct{ zone, name string }

// dnsEntry is the registry's side of one record's counters.
type dnsEntry struct {
	cell    *DNSRecord
	zone    *dnsAgg
	name    string
	last    *dnsVals
	win     *windows
	retired int64
}

// dnsAgg is one zone: the sum of its records.
type dnsAgg struct {
	name     string
	cum      dnsVals
	win      *windows
	live     bool
	lastLive int64
}

// DNSSet is the record counters of the live table's zones. The DNS server
// keeps the one ActivateDNS returned and finds a query's counters with
// Record.
type DNSSet struct {
	zones map[string]*zoneSet
	order []*zoneSet
}

type zoneSet struct {
	name    string
	records map[string]*dnsEntry
	none    *dnsEntry
	order   []*dnsEntry // records in spec order, then none
}

// Record returns the counters of name (lower case, as the zone's nodes are
// keyed) in zone (canonical), the zone's NoRecord counters when name has
// no node there, or nil when the zone is not in the set (a query answered
// from a table older than the set).
func (s *DNSSet) Record(zone, name string) *DNSRecord {
	if s == nil {
		return nil
	}
	z := s.zones[zone]
	if z == nil {
		return nil
	}
	if e := z.records[name]; e != nil {
		return e.cell
	}
	return z.none.cell
}

// ActivateDNS makes zones the live set of DNS counters and returns it. A
// record keeps its counters across tables while its zone, name and pools
// stay the same; the others retire.
func (t *Telemetry) ActivateDNS(zones []ZoneSpec) *DNSSet {
	if t == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now().UnixNano()
	s := &DNSSet{zones: make(map[string]*zoneSet, len(zones))}
	records := make(map[recKey]*dnsEntry, len(t.records))
	get := func(z *dnsAgg, zone, name string, pools []string) *dnsEntry {
		k := recKey{zone, name}
		e := t.records[k]
		want := append(slices.Clone(pools), Fallback)
		if len(pools) == 0 {
			want = nil
		}
		if e == nil || !slices.Equal(e.cell.poolFor, want) {
			e = &dnsEntry{cell: &DNSRecord{poolFor: want, pools: make([]atomic.Uint64, len(want))}, zone: z, name: name}
		}
		records[k] = e
		return e
	}
	for _, zs := range zones {
		z := t.zones[zs.Name]
		if z == nil {
			z = &dnsAgg{name: zs.Name, win: newWindows(false, true, now)}
			t.zones[zs.Name] = z
		}
		z.live = true
		set := &zoneSet{name: zs.Name, records: make(map[string]*dnsEntry, len(zs.Records))}
		for _, r := range zs.Records {
			e := get(z, zs.Name, r.Name, r.Pools)
			set.records[r.Name] = e
			set.order = append(set.order, e)
		}
		set.none = get(z, zs.Name, NoRecord, nil)
		set.order = append(set.order, set.none)
		s.zones[zs.Name] = set
		s.order = append(s.order, set)
	}
	for k, e := range t.records {
		if records[k] != e {
			e.retired, e.win = now, nil
			t.dnsRetired = append(t.dnsRetired, e)
		}
	}
	for n, z := range t.zones {
		if s.zones[n] == nil && z.live {
			z.live, z.lastLive = false, now
		}
	}
	t.records, t.dnsActive = records, s
	t.forget(now)
	return s
}

func (t *Telemetry) flushDNS() {
	for _, e := range t.records {
		t.flushDNSEntry(e)
	}
	for _, e := range t.dnsRetired {
		t.flushDNSEntry(e)
	}
}

func (t *Telemetry) flushDNSEntry(e *dnsEntry) {
	cur := &t.dnsScratch
	e.cell.load(cur)
	if e.last == nil {
		if cur.queries() == 0 {
			return
		}
		e.last = &dnsVals{}
	}
	var d dnsVals
	d.setDiff(cur, e.last)
	e.last.rcodes, e.last.nodata = cur.rcodes, cur.nodata
	if e.last.pools == nil && len(cur.pools) > 0 {
		e.last.pools = make(map[string]uint64, len(cur.pools))
	}
	for p, n := range cur.pools {
		e.last.pools[p] = n
	}
	e.zone.cum.add(&d)
}

func (t *Telemetry) tickDNS(now int64, coarse bool) {
	for _, e := range t.records {
		if e.last == nil {
			continue
		}
		if e.win == nil {
			e.win = newWindows(false, false, t.lastTick)
		}
		e.win.push(now, coarse, e.last.queries(), e.last.errors(), 0, 0, nil)
	}
	for _, z := range t.zones {
		z.win.push(now, coarse, z.cum.queries(), z.cum.errors(), 0, 0, nil)
	}
}
