package dns

import (
	"slices"

	mdns "github.com/miekg/dns"

	"github.com/meridian-lb/meridian/dns/zone"
	"github.com/meridian-lb/meridian/geo"
	"github.com/meridian-lb/meridian/routing"
)

// SteeredView is one steered record of a zone with the answer clients of
// each region get right now, for the admin API and the console: it answers
// "who gets what" without a client address per region.
type SteeredView struct {
	Name    string         `json:"name"`
	Type    string         `json:"type"`
	Service string         `json:"service"`
	Policy  string         `json:"policy"`
	Regions []RegionAnswer `json:"regions"`
}

// RegionAnswer is a steered record's answer for clients placed in Region
// ("*" when the service's answer does not depend on location).
type RegionAnswer struct {
	Region  string   `json:"region"`
	Pool    string   `json:"pool,omitempty"` // the pool that answered
	Answer  []string `json:"answer"`         // the addresses
	TTL     uint32   `json:"ttl,omitempty"`
	Outcome string   `json:"outcome"` // as in explain: available, fail_open, nodata, fallback
}

// Regions lists the regions a table knows of: those configured, those
// geo.nets map to, the default, and the pools'; sorted.
func Regions(t *routing.Table) []string {
	var out []string
	add := func(r string) {
		if r != "" && !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	if c := t.Config; c != nil {
		for r := range c.Geo.Regions {
			add(r)
		}
		for _, r := range c.Geo.Nets {
			add(r)
		}
		add(c.Geo.DefaultRegion)
	}
	for _, p := range t.Pools {
		add(p.Region)
	}
	slices.Sort(out)
	return out
}

// RegionAnswers computes, for each steered record of z, the answer a
// client of each region would get now, through the same steering code as
// a query (the client is placed in the region directly). Like a query or
// Explain, it advances the records' rotation.
func RegionAnswers(t *routing.Table, z *zone.Zone, regions []string) []SteeredView {
	out := make([]SteeredView, 0, len(z.Steered))
	for _, s := range z.Steered {
		svc := t.Services[s.Service]
		if svc == nil {
			continue
		}
		v := SteeredView{Name: s.Name, Type: typeString(s.Type), Service: svc.Name, Policy: string(svc.Policy)}
		rs := regions
		if !svc.LocationDependent() || len(rs) == 0 {
			rs = []string{"*"}
		}
		for _, region := range rs {
			tr := &trace{}
			r := resolver{t: t, z: z, m: &mdns.Msg{}, c: client{tr: tr}, qtype: s.Type,
				located: true, loc: geo.Result{Region: region}}
			ok, _ := r.steer(s, s.Name)
			ra := RegionAnswer{Region: region, Pool: r.pool, Answer: []string{}}
			if len(tr.steers) > 0 {
				ra.Outcome, ra.TTL = tr.steers[0].Outcome, tr.steers[0].TTL
			}
			if ok {
				for _, rr := range r.m.Answer {
					switch a := rr.(type) {
					case *mdns.A:
						ra.Answer = append(ra.Answer, a.A.String())
					case *mdns.AAAA:
						ra.Answer = append(ra.Answer, a.AAAA.String())
					default:
						ra.Answer = append(ra.Answer, rrLine(rr))
					}
				}
			}
			v.Regions = append(v.Regions, ra)
		}
		out = append(out, v)
	}
	return out
}
