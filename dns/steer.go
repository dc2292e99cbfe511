package dns

import (
	"math/rand/v2"
	"net/netip"

	mdns "github.com/miekg/dns"

	"github.com/meridian-lb/meridian/config"
	"github.com/meridian-lb/meridian/dns/dnssec"
	"github.com/meridian-lb/meridian/dns/zone"
	"github.com/meridian-lb/meridian/routing"
	"github.com/meridian-lb/meridian/telemetry"
)

// Outcomes of steering one record (steerPlan.outcome).
const (
	planAvailable uint8 = iota + 1 // endpoints of a pool that has available ones
	planNoData                     // on_all_down: nodata
	planFallback                   // on_all_down: fallback
	planFailOpen                   // on_all_down: fail_open, degraded TTL
	planNone                       // fail_open, but every pool that fails open is empty
)

// steerPlan is what steering decided for one steered record and one query:
// the outcome and, for planAvailable and planFailOpen, the pool and the
// endpoints answered, in answer order. Deciding reads live health and
// advances the record's rotation (or draws by weight), so a query decides
// once: the answer cache (cache.go) decides before it looks for a packed
// answer, and hands the plan to the resolver when it has none, so the
// answer it builds is the one decided.
type steerPlan struct {
	s       *zone.Steered
	outcome uint8
	pi      int           // index in the ordered pools of the pool used
	pool    *routing.Pool // the pool used
	ts      []zone.Target // its targets
	n       int           // eligible targets
	buf     [16]int       // their indices in ts, when n <= 16
	big     []int         // else here
	start   int           // the first of them answered
	k       int           // how many are answered, from start on
}

// index is the i-th eligible target's index in ts.
func (p *steerPlan) index(i int) int {
	if p.big != nil {
		return p.big[i]
	}
	return p.buf[i]
}

// target is the i-th target answered (0 <= i < k).
func (p *steerPlan) target(i int) *zone.Target {
	return &p.ts[p.index((p.start+i)%p.n)]
}

func (p *steerPlan) add(j int) {
	if p.big == nil && p.n < len(p.buf) {
		p.buf[p.n] = j
	} else {
		if p.big == nil {
			p.big = append(make([]int, 0, 2*len(p.buf)), p.buf[:]...)
		}
		p.big = append(p.big, j)
	}
	p.n++
}

// decide fills p for s with the pools in the order the service's policy
// gives them: the available endpoints of the first pool that has any;
// when no endpoint is available anywhere, what the record's on_all_down
// says (fail_open: the endpoints of the first pool that fails open not
// drained or forced down).
func (p *steerPlan) decide(s *zone.Steered, pools []*routing.Pool) {
	*p = steerPlan{s: s}
	for i, pool := range pools {
		ts := s.Targets[pool.Name]
		for j := range ts {
			if ts[j].Available() {
				p.add(j)
			}
		}
		if p.n > 0 {
			p.outcome, p.pi, p.pool, p.ts = planAvailable, i, pool, ts
			p.choose()
			return
		}
	}
	switch s.OnAllDown {
	case config.RecordNoData:
		p.outcome = planNoData
		return
	case config.RecordFallback:
		p.outcome = planFallback
		return
	}
	for i, pool := range pools {
		ts := s.Targets[pool.Name]
		if len(ts) == 0 || !pool.FailOpen {
			continue
		}
		for j := range ts {
			if !ts[j].Excluded() {
				p.add(j)
			}
		}
		if p.n > 0 {
			p.outcome, p.pi, p.pool, p.ts = planFailOpen, i, pool, ts
			p.choose()
			return
		}
	}
	p.outcome = planNone
}

// choose picks the first endpoint answered and how many: from a rotating
// start when the endpoints weigh the same, else from one drawn by weight,
// then onwards in order, so every eligible endpoint gets its share of
// first places; up to MaxAnswers.
func (p *steerPlan) choose() {
	n := p.n
	if n > 1 {
		total, uniform := 0, true
		w0 := p.ts[p.index(0)].Weight
		for i := range n {
			w := p.ts[p.index(i)].Weight
			total += w
			uniform = uniform && w == w0
		}
		if uniform || total <= 0 {
			p.start = int(p.s.Next() % uint64(n))
		} else {
			x := rand.IntN(total)
			for i := range n {
				if x -= p.ts[p.index(i)].Weight; x < 0 {
					p.start = i
					break
				}
			}
		}
	}
	p.k = min(n, p.s.MaxAnswers)
}

// steer answers a steered record: the available endpoints of the first pool
// in the service's order (geo: the client's region first; weighted: a pool
// drawn by weight, then the rest; failover: as listed) that has any, up to
// MaxAnswers, rotated per query or drawn by endpoint weight. When no
// endpoint is available anywhere, the record's on_all_down decides:
// fail_open answers every endpoint of the first pool that fails open, at the
// degraded TTL, except those an operator drained or forced down (panic mode
// overrides health verdicts, not the operator; a pool with nothing else is
// skipped); nodata answers NODATA; fallback answers the fallback records
// (next is their CNAME target, to follow). A plan the client brings for s
// (decided by the answer cache for this query) is used as it is.
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
	r.steers++
	p := &r.plan
	if cp := r.c.plan; cp != nil && cp.s == s && !r.planUsed {
		r.planUsed = true
		*p = *cp
	} else {
		pools := svc.Order(r.pools[:0], region)
		p.decide(s, pools)
		if tr := r.c.tr; tr != nil {
			r.explainSteer(tr.steered(s, svc, region, pools), p)
		}
	}

	switch p.outcome {
	case planAvailable:
		r.pick(p, owner, false)
		r.pool = p.pool.Name
		return true, ""
	case planFallback:
		r.appendRRs(secAnswer, s.Fallback, owner, s.Name, s.FallbackKey)
		r.pool = telemetry.Fallback
		r.ede = &mdns.EDNS0_EDE{InfoCode: mdns.ExtendedErrorCodeOther, ExtraText: "no endpoint available: answering the fallback"}
		return true, s.FallbackTarget
	case planFailOpen:
		r.pick(p, owner, true)
		r.pool = p.pool.Name
		r.ede = &mdns.EDNS0_EDE{InfoCode: mdns.ExtendedErrorCodeOther, ExtraText: "no endpoint available: failing open at the degraded TTL"}
		return true, ""
	}
	return false, ""
}

// explainSteer notes in ex what plan p decided.
func (r *resolver) explainSteer(ex *ExplainSteered, p *steerPlan) {
	s := p.s
	switch p.outcome {
	case planAvailable:
		ex.Pools[p.pi].Used = true
		ex.Outcome, ex.TTL = "available", s.TTL
	case planNoData:
		ex.Outcome = "nodata: no endpoint available in any pool"
	case planFallback:
		ex.Outcome, ex.TTL = "fallback: no endpoint available in any pool", s.DegradedTTL
	case planFailOpen:
		ex.Pools[p.pi].Used = true
		ex.Outcome, ex.TTL = "fail_open: no endpoint available in any pool; answering every endpoint of "+p.pool.Name+" not drained or forced down", s.DegradedTTL
	default:
		ex.Outcome = "nodata: no pool that fails open has an endpoint of this address family that is not drained or forced down"
	}
}

// pick appends the k endpoints plan p chose, at the degraded TTL when
// degraded.
func (r *resolver) pick(p *steerPlan, owner string, degraded bool) {
	s, k := p.s, p.k
	if cap(r.m.Answer)-len(r.m.Answer) < k {
		grown := make([]mdns.RR, len(r.m.Answer), len(r.m.Answer)+k)
		copy(grown, r.m.Answer)
		r.m.Answer = grown
	}
	first := len(r.m.Answer)
	for i := range k {
		t := p.target(i)
		rr := t.RR
		if degraded {
			rr = t.Degraded
		}
		r.appendOwned1(rr, owner, s.Name)
	}
	if r.sign {
		r.signSteered(p, first, degraded)
	}
}

// signSteered notes a steered answer for signing: the records as compiled
// (owned by s.Name), and a content key made from the addresses, so the
// same addresses in another rotation find the same signature.
func (r *resolver) signSteered(p *steerPlan, first int, degraded bool) {
	s, k := p.s, p.k
	rrs := make([]mdns.RR, k)
	var buf [16]netip.Addr
	addrs := buf[:0]
	ttl := s.TTL
	if degraded {
		ttl = s.DegradedTTL
	}
	for i := range k {
		t := p.target(i)
		rrs[i] = t.RR
		if degraded {
			rrs[i] = t.Degraded
		}
		addrs = append(addrs, t.IP)
	}
	key := dnssec.AppendAddressKey(make([]byte, 0, 64), s.Name, s.Type, ttl, addrs)
	r.sets = append(r.sets, span{sec: secAnswer, start: first, end: first + k, name: s.Name, rrs: rrs, key: key})
}
