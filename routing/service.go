package routing

import (
	"slices"

	"github.com/meridian-lb/meridian/config"
	"github.com/meridian-lb/meridian/dns/zone"
)

// Order appends the service's pools to dst in the order they should be
// tried for a client in region:
//
//   - failover: as listed;
//   - geo: the pools of the client's region first, then the rest as listed;
//   - weighted: one pool chosen by weight (exact over time), then the rest as
//     listed, so a weighted service still fails over.
//
// Callers skip pools with no available endpoint. Order does not allocate when
// dst has room.
func (s *Service) Order(dst []*Pool, region string) []*Pool {
	switch s.Policy {
	case config.PolicyGeo:
		for _, p := range s.Pools {
			if p.Region == region {
				dst = append(dst, p)
			}
		}
		for _, p := range s.Pools {
			if p.Region != region {
				dst = append(dst, p)
			}
		}
	case config.PolicyWeighted:
		first := s.wrr.pick()
		if first >= 0 {
			dst = append(dst, s.Pools[first])
		}
		for i, p := range s.Pools {
			if i != first {
				dst = append(dst, p)
			}
		}
	default:
		dst = append(dst, s.Pools...)
	}
	return dst
}

// FailingOpen returns the names of the pools that traffic fails open to
// right now: for some service that a route (or split arm, or mirror) uses,
// or that a steered DNS record with on_all_down: fail_open answers from, no
// pool has an available endpoint, and the pool is one that service's pick
// would then serve from in panic mode. A pool in panic conditions that no
// pick reaches (its service failed over to another pool, or nothing uses
// it) is not failing open. The admin API, the dashboard and the
// meridian_pool_panic gauge report it. It reads live health and costs one
// pass over the routes, records and their services' endpoints; it is for
// reports, not the request path.
func (t *Table) FailingOpen() map[string]bool {
	out := map[string]bool{}
	if t == nil {
		return out
	}
	seen := map[*Service]bool{}
	viaHTTP := func(s *Service) {
		if s != nil && !seen[s] {
			seen[s] = true
			s.failOpenReach(out, (*Pool).HasAvailable, (*Pool).CanFailOpen)
		}
	}
	for _, r := range t.Routes {
		viaHTTP(r.Service)
		viaHTTP(r.Mirror)
		if sp := r.Split; sp != nil {
			for _, ru := range sp.rules {
				viaHTTP(ru.service)
			}
			for _, a := range sp.arms {
				if a.weight > 0 {
					viaHTTP(a.service)
				}
			}
		}
	}
	for _, z := range t.Zones {
		for _, st := range z.Steered {
			svc := t.Services[st.Service]
			if st.OnAllDown != config.RecordFailOpen || svc == nil {
				continue
			}
			// DNS sees only the endpoints of the record's family.
			svc.failOpenReach(out,
				func(p *Pool) bool {
					return slices.ContainsFunc(st.Targets[p.Name], func(x zone.Target) bool { return x.Available() })
				},
				func(p *Pool) bool {
					return p.FailOpen && slices.ContainsFunc(st.Targets[p.Name], func(x zone.Target) bool { return !x.Excluded() })
				})
		}
	}
	return out
}

// failOpenReach marks in out the pools a pick for s serves from in panic
// mode, when no pool of s has an available endpoint (avail); nothing
// otherwise. canFailOpen says whether a pool serves in panic mode. A pick
// takes the first such pool in policy order (Order), which depends on the
// client's region or the weighted draw, so this marks every pool some
// client reaches:
//
//   - failover: the first such pool as listed;
//   - geo: the first such pool of each region (a client whose region has
//     none gets the first as listed, which is the first of its region);
//   - weighted: every such pool that can be drawn (weight above 0), and the
//     first as listed (when the drawn pool cannot serve).
func (s *Service) failOpenReach(out map[string]bool, avail, canFailOpen func(*Pool) bool) {
	if slices.ContainsFunc(s.Pools, avail) {
		return
	}
	first := true
	var regions []string // geo: regions whose first pool is marked
	for i, p := range s.Pools {
		if !canFailOpen(p) {
			continue
		}
		switch s.Policy {
		case config.PolicyGeo:
			if !slices.Contains(regions, p.Region) {
				regions = append(regions, p.Region)
				out[p.Name] = true
			}
		case config.PolicyWeighted:
			if first || i < len(s.Weights) && s.Weights[i] > 0 {
				out[p.Name] = true
			}
		default:
			if first {
				out[p.Name] = true
			}
		}
		first = false
	}
}
