package dns

import (
	"math/rand/v2"
	"net/netip"

	mdns "github.com/miekg/dns"

	"github.com/meridian-lb/meridian/config"
	"github.com/meridian-lb/meridian/dns/dnssec"
	"github.com/meridian-lb/meridian/dns/zone"
	"github.com/meridian-lb/meridian/telemetry"
)

// steer answers a steered record: the available endpoints of the first pool
// in the service's order (geo: the client's region first; weighted: a pool
// drawn by weight, then the rest; failover: as listed) that has any, up to
// MaxAnswers, rotated per query or drawn by endpoint weight. When no
// endpoint is available anywhere, the record's on_all_down decides:
// fail_open answers every endpoint of the first pool that fails open, at the
// degraded TTL, except those an operator drained or forced down (panic mode
// overrides health verdicts, not the operator; a pool with nothing else is
// skipped); nodata answers NODATA; fallback answers the fallback records
// (next is their CNAME target, to follow).
func (r *resolver) steer(s *zone.Steered, owner string) (answered bool, next string) {
	svc := r.t.Services[s.Service]
	if svc == nil {
		return false, "" // the zone compiler resolved it against this table
	}
	region := ""
	if svc.LocationDependent() {
		r.locate()
		region = r.loc.Region
	}
	pools := svc.Order(r.pools[:0], region)
	tr := r.c.tr
	var ex *ExplainSteered
	if tr != nil {
		ex = tr.steered(s, svc, region, pools)
	}

	var buf [16]int
	for i, p := range pools {
		ts := s.Targets[p.Name]
		idx := buf[:0]
		for j := range ts {
			if ts[j].Available() {
				idx = append(idx, j)
			}
		}
		if len(idx) == 0 {
			continue
		}
		r.pick(s, ts, idx, owner, false)
		r.pool = p.Name
		if ex != nil {
			ex.Pools[i].Used = true
			ex.Outcome, ex.TTL = "available", s.TTL
		}
		return true, ""
	}

	switch s.OnAllDown {
	case config.RecordNoData:
		if ex != nil {
			ex.Outcome = "nodata: no endpoint available in any pool"
		}
		return false, ""
	case config.RecordFallback:
		r.appendRRs(secAnswer, s.Fallback, owner, s.Name, s.FallbackKey)
		r.pool = telemetry.Fallback
		r.ede = &mdns.EDNS0_EDE{InfoCode: mdns.ExtendedErrorCodeOther, ExtraText: "no endpoint available: answering the fallback"}
		if ex != nil {
			ex.Outcome, ex.TTL = "fallback: no endpoint available in any pool", s.DegradedTTL
		}
		return true, s.FallbackTarget
	}
	for i, p := range pools {
		ts := s.Targets[p.Name]
		if len(ts) == 0 || !p.FailOpen {
			continue
		}
		idx := buf[:0]
		for j := range ts {
			if !ts[j].Excluded() {
				idx = append(idx, j)
			}
		}
		if len(idx) == 0 {
			continue // every address drained or forced down
		}
		r.pick(s, ts, idx, owner, true)
		r.pool = p.Name
		r.ede = &mdns.EDNS0_EDE{InfoCode: mdns.ExtendedErrorCodeOther, ExtraText: "no endpoint available: failing open at the degraded TTL"}
		if ex != nil {
			ex.Pools[i].Used = true
			ex.Outcome, ex.TTL = "fail_open: no endpoint available in any pool; answering every endpoint of "+p.Name+" not drained or forced down", s.DegradedTTL
		}
		return true, ""
	}
	if ex != nil {
		ex.Outcome = "nodata: no pool that fails open has an endpoint of this address family that is not drained or forced down"
	}
	return false, ""
}

// pick appends up to s.MaxAnswers of ts[idx...]: from a rotating start
// when the endpoints weigh the same, else from one drawn by weight, then
// onwards in order, so every eligible endpoint gets its share of first
// places.
func (r *resolver) pick(s *zone.Steered, ts []zone.Target, idx []int, owner string, degraded bool) {
	n := len(idx)
	start := 0
	if n > 1 {
		total, uniform := 0, true
		w0 := ts[idx[0]].Weight
		for _, j := range idx {
			w := ts[j].Weight
			total += w
			uniform = uniform && w == w0
		}
		if uniform || total <= 0 {
			start = int(s.Next() % uint64(n))
		} else {
			x := rand.IntN(total)
			for k, j := range idx {
				if x -= ts[j].Weight; x < 0 {
					start = k
					break
				}
			}
		}
	}
	k := min(n, s.MaxAnswers)
	if cap(r.m.Answer)-len(r.m.Answer) < k {
		grown := make([]mdns.RR, len(r.m.Answer), len(r.m.Answer)+k)
		copy(grown, r.m.Answer)
		r.m.Answer = grown
	}
	first := len(r.m.Answer)
	for i := range k {
		t := &ts[idx[(start+i)%n]]
		rr := t.RR
		if degraded {
			rr = t.Degraded
		}
		r.appendOwned1(rr, owner, s.Name)
	}
	if r.sign {
		r.signSteered(s, ts, idx, start, k, first, degraded)
	}
}

// signSteered notes a steered answer for signing: the records as compiled
// (owned by s.Name), and a content key made from the addresses, so the
// same addresses in another rotation find the same signature.
func (r *resolver) signSteered(s *zone.Steered, ts []zone.Target, idx []int, start, k, first int, degraded bool) {
	rrs := make([]mdns.RR, k)
	var buf [16]netip.Addr
	addrs := buf[:0]
	ttl := s.TTL
	if degraded {
		ttl = s.DegradedTTL
	}
	for i := range k {
		t := &ts[idx[(start+i)%len(idx)]]
		rrs[i] = t.RR
		if degraded {
			rrs[i] = t.Degraded
		}
		addrs = append(addrs, t.IP)
	}
	key := dnssec.AppendAddressKey(make([]byte, 0, 64), s.Name, s.Type, ttl, addrs)
	r.sets = append(r.sets, span{sec: secAnswer, start: first, end: first + k, name: s.Name, rrs: rrs, key: key})
}
