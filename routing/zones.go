package routing

import "github.com/meridian-lb/meridian/dns/zone"

// zoneServices is how the zone compiler (package dns/zone) sees the
// services of a table being compiled: each steered record gets targets for
// the endpoints of its service's pools, and those targets read the live
// health of this table's endpoints.
type zoneServices map[string]*Service

// Pools implements zone.Services.
func (ss zoneServices) Pools(name string) ([]zone.Pool, bool) {
	s, ok := ss[name]
	if !ok {
		return nil, false
	}
	out := make([]zone.Pool, len(s.Pools))
	for i, p := range s.Pools {
		eps := make([]zone.Endpoint, len(p.Endpoints))
		for j, e := range p.Endpoints {
			eps[j] = zone.Endpoint{Address: e.Address, IP: e.IP, Weight: e.Weight, State: (*dnsState)(e)}
		}
		out[i] = zone.Pool{Name: p.Name, Endpoints: eps}
	}
	return out, true
}
