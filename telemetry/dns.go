package telemetry

import (
	"sync/atomic"
)

// DNS response codes counted one by one; the rest share "other".
var rcodeNames = [...]string{"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "other"}

const numRcodes = len(rcodeNames)

// Fallback is the pool name a steered record's answer is counted under when
// no pool had an endpoint and the record answered its fallback records.
const Fallback = "(fallback)"

// NoRecord is the record name queries are counted under when their name has
// no node in the zone (NXDOMAIN), so that names a client invents never
// become a series.
const NoRecord = "(none)"

// DNSRecord is the counters of one owner name of a zone (or of the zone's
// NoRecord). The DNS server finds it once per query and updates it with
// atomic adds. Safe on a nil *DNSRecord, which counts nothing.
type DNSRecord struct {
	rcodes  [numRcodes]atomic.Uint64
	nodata  atomic.Uint64   // NOERROR with no answer
	pools   []atomic.Uint64 // answers by pool, aligned with poolNames, then the fallback
	poolFor []string        // the record's pools, then Fallback
}

// Query records one answered query: its rcode, whether the answer section
// was empty, and the pool a steered answer came from ("" for none).
func (c *DNSRecord) Query(rcode int, empty bool, pool string) {
	if c == nil {
		return
	}
	i := rcode
	if i < 0 || i >= numRcodes-1 {
		i = numRcodes - 1
	}
	c.rcodes[i].Add(1)
	if rcode == 0 && empty {
		c.nodata.Add(1)
	}
	if pool == "" {
		return
	}
	for j, p := range c.poolFor {
		if p == pool {
			c.pools[j].Add(1)
			return
		}
	}
}

// dnsVals is a plain copy of a DNSRecord's counters, or a sum of copies;
// pools is keyed by name so that records with other pools add up.
type dnsVals struct {
	rcodes [numRcodes]uint64
	nodata uint64
	pools  map[string]uint64
}

func (c *DNSRecord) load(v *dnsVals) {
	for i := range c.rcodes {
		v.rcodes[i] = c.rcodes[i].Load()
	}
	v.nodata = c.nodata.Load()
	clear(v.pools)
	if len(c.poolFor) > 0 && v.pools == nil {
		v.pools = make(map[string]uint64, len(c.poolFor))
	}
	for j, p := range c.poolFor {
		v.pools[p] = c.pools[j].Load()
	}
}

func (v *dnsVals) queries() uint64 {
	var n uint64
	for _, c := range v.rcodes {
		n += c
	}
	return n
}

// errors counts the answers that failed the client: SERVFAIL, FORMERR,
// NOTIMP, REFUSED and the rarer codes. NXDOMAIN and NODATA are answers.
func (v *dnsVals) errors() uint64 {
	return v.queries() - v.rcodes[0] - v.rcodes[3]
}

func (v *dnsVals) add(d *dnsVals) {
	for i := range v.rcodes {
		v.rcodes[i] += d.rcodes[i]
	}
	v.nodata += d.nodata
	for p, n := range d.pools {
		if v.pools == nil {
			v.pools = map[string]uint64{}
		}
		v.pools[p] += n
	}
}

// setDiff sets v to a-b.
func (v *dnsVals) setDiff(a, b *dnsVals) {
	for i := range v.rcodes {
		v.rcodes[i] = a.rcodes[i] - b.rcodes[i]
	}
	v.nodata = a.nodata - b.nodata
	clear(v.pools)
	for p, n := range a.pools {
		if v.pools == nil {
			v.pools = map[string]uint64{}
		}
		v.pools[p] = n - b.pools[p]
	}
}
