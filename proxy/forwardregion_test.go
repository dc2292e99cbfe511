package proxy

import (
	"slices"
	"testing"

	"github.com/meridian-lb/meridian/config"
	"github.com/meridian-lb/meridian/routing"
)

// TestForwardPlans: a forwarding service's local pools are its region's
// and the region-less ones; the next regions follow its policy order for
// this instance's region; other services have no plan.
func TestForwardPlans(t *testing.T) {
	cfg, err := config.Parse("f.yaml", []byte(`listen: {http: 127.0.0.1:0}
region: eu
consul: {register: {name: edge}}
pools:
  eu: {region: eu, endpoints: [127.0.0.1:1]}
  us: {region: us, endpoints: [127.0.0.1:2]}
  ap: {region: ap, endpoints: [127.0.0.1:3]}
  any: {endpoints: [127.0.0.1:4]}
services:
  geo: {policy: geo, pools: [ap, us, eu], on_all_down: forward}
  fany: {pools: [us, any, eu], on_all_down: forward}
  fo: {policy: failover, pools: [us, eu, ap], on_all_down: forward}
  plain: {pools: [eu, us]}
routes: [{service: plain}]
`))
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := routing.Compile(cfg, routing.Inputs{})
	if err != nil {
		t.Fatal(err)
	}
	plans := buildPlans(tbl)
	names := func(ps []*routing.Pool) (out []string) {
		for _, p := range ps {
			out = append(out, p.Name)
		}
		return out
	}
	geo, fo := plans[tbl.Services["geo"]], plans[tbl.Services["fo"]]
	if geo == nil || !slices.Equal(names(geo.local), []string{"eu"}) || !slices.Equal(geo.regions, []string{"ap", "us"}) {
		t.Errorf("geo plan %+v", geo)
	}
	if fo == nil || !slices.Equal(names(fo.local), []string{"eu"}) || !slices.Equal(fo.regions, []string{"us", "ap"}) {
		t.Errorf("failover plan %+v", fo)
	}
	if fa := plans[tbl.Services["fany"]]; fa == nil || !slices.Equal(names(fa.local), []string{"any", "eu"}) || !slices.Equal(fa.regions, []string{"us"}) {
		t.Errorf("plan with a region-less pool %+v", fa)
	}
	if plans[tbl.Services["plain"]] != nil {
		t.Error("a service without on_all_down: forward has a plan")
	}
}
