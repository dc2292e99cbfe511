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

// Serving reports the pools the service's traffic goes to now, as the
// proxy's pick and DNS steering decide it: for HTTP, the pool a pick
// serves from for some client (the service's pools in policy order, the
// first with an available endpoint, else the first that fails open), over
// every order a client can get (geo: each region's; weighted: each pool
// that can be drawn first; failover: the one); for DNS, the pool each
// steered record of the service answers from, over the same orders, with
// the record's address family and on_all_down. http is nil when no route,
// split arm or mirror uses the service, dns when no steered record does.
// It reads live health (guards included) and takes no weighted slot and no
// rotation, so it may be polled: failover drills poll it to see when
// traffic leaves a pool and comes back.
func (t *Table) Serving(name string) (http, dns map[string]bool) {
	svc := t.Services[name]
	if svc == nil {
		return nil, nil
	}
	used := func(s *Service) bool { return s == svc }
	for _, r := range t.Routes {
		hit := used(r.Service) || used(r.Mirror)
		if sp := r.Split; sp != nil && !hit {
			hit = slices.ContainsFunc(sp.rules, func(ru splitRule) bool { return used(ru.service) }) ||
				slices.ContainsFunc(sp.arms, func(a splitArm) bool { return a.weight > 0 && used(a.service) })
		}
		if hit {
			http = map[string]bool{}
			svc.reach(http, (*Pool).HasAvailable, (*Pool).CanFailOpen)
			break
		}
	}
	for _, z := range t.Zones {
		for _, st := range z.Steered {
			if st.Service != name {
				continue
			}
			if dns == nil {
				dns = map[string]bool{}
			}
			avail := func(p *Pool) bool {
				return slices.ContainsFunc(st.Targets[p.Name], func(x zone.Target) bool { return x.Available() })
			}
			var failOpen func(*Pool) bool
			if st.OnAllDown == config.RecordFailOpen {
				failOpen = func(p *Pool) bool {
					return p.FailOpen && slices.ContainsFunc(st.Targets[p.Name], func(x zone.Target) bool { return !x.Excluded() })
				}
			}
			svc.reach(dns, avail, failOpen)
		}
	}
	return http, dns
}

// reach marks in out, for every order a client can get (orders), the pool
// a pick takes: the first avail, else the first canFailOpen (nil: none).
func (s *Service) reach(out map[string]bool, avail, canFailOpen func(*Pool) bool) {
	for _, order := range s.orders() {
		i := slices.IndexFunc(order, avail)
		if i < 0 && canFailOpen != nil {
			i = slices.IndexFunc(order, canFailOpen)
		}
		if i >= 0 {
			out[order[i].Name] = true
		}
	}
}

// orders lists every pool order Order can give, without taking a weighted
// slot: geo, one per region of the pools (and one for a client of no
// pool's region); weighted, one per pool that can be drawn first.
func (s *Service) orders() [][]*Pool {
	switch s.Policy {
	case config.PolicyGeo:
		var regions []string
		for _, p := range s.Pools {
			if !slices.Contains(regions, p.Region) {
				regions = append(regions, p.Region)
			}
		}
		if !slices.Contains(regions, "") {
			regions = append(regions, "")
		}
		out := make([][]*Pool, len(regions))
		for i, r := range regions {
			out[i] = s.Order(nil, r)
		}
		return out
	case config.PolicyWeighted:
		var out [][]*Pool
		for i, w := range s.Weights {
			if w <= 0 || i >= len(s.Pools) {
				continue
			}
			order := append(make([]*Pool, 0, len(s.Pools)), s.Pools[i])
			for j, p := range s.Pools {
				if j != i {
					order = append(order, p)
				}
			}
			out = append(out, order)
		}
		if len(out) == 0 {
			out = append(out, s.Pools)
		}
		return out
	}
	return [][]*Pool{s.Pools}
}
