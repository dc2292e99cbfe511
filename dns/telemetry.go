package dns

import (
	"slices"

	mdns "github.com/miekg/dns"

	"github.com/meridian-lb/meridian/routing"
	"github.com/meridian-lb/meridian/telemetry"
)

// The DNS server's side of package telemetry: per zone and owner name,
// queries by rcode, NODATA answers and steered answers by pool. TableChanged
// activates the counters of a table's zones (telTable); serve counts each
// answered query (telQuery) with two map lookups by name and atomic adds.
// The resolver notes the owner name the query matched and the pool a
// steered answer came from (resolver.node and resolver.pool).

// telTable makes t's zones the live set of DNS counters.
func (s *Server) telTable(t *routing.Table) {
	if s.tel == nil || t == nil {
		return
	}
	specs := make([]telemetry.ZoneSpec, 0, len(t.Zones))
	for _, z := range t.Zones {
		names := make([]string, 0, len(z.Nodes))
		for n := range z.Nodes {
			if n != z.Name {
				names = append(names, n)
			}
		}
		slices.Sort(names)
		names = append([]string{z.Name}, names...)
		zs := telemetry.ZoneSpec{Name: z.Name, Records: make([]telemetry.RecordSpec, 0, len(names))}
		for _, n := range names {
			var pools []string
			for _, st := range z.Nodes[n].Steered {
				for _, p := range st.Pools {
					if !slices.Contains(pools, p) {
						pools = append(pools, p)
					}
				}
			}
			zs.Records = append(zs.Records, telemetry.RecordSpec{Name: n, Pools: pools})
		}
		specs = append(specs, zs)
	}
	s.telSet.Store(s.tel.ActivateDNS(specs))
}

// telQuery counts one answered query of one of our zones.
func (s *Server) telQuery(res result, m *mdns.Msg) {
	if res.zone == nil {
		return
	}
	s.telSet.Load().Record(res.zone.Name, res.record).Query(m.Rcode, len(m.Answer) == 0, res.pool)
}
