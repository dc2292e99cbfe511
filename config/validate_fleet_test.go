package config

import (
	"strings"
	"testing"
)

// TestFleetRules: the fleet's keys are checked by path, each problem at
// its line, and a good fleet config passes.
func TestFleetRules(t *testing.T) {
	good := `listen: {http: 127.0.0.1:0}
region: eu
consul:
  register: {name: edge}
  fleet: {prefix: meridian/fleet, session_ttl: 15s}
health:
  quorum: {min_reporters: 2, down_ratio: 0.5}
pools:
  web-eu: {region: eu, consul: {service: web, datacenters: [dc2, dc3]}}
  web-us: {region: us, consul: {service: web, failover: {nearest: 2, datacenters: [dc9]}}}
services:
  web: {policy: geo, pools: [web-eu, web-us], on_all_down: forward}
routes: [{service: web}]
`
	cfg, err := Parse("f.yaml", []byte(good))
	if err != nil {
		t.Fatalf("good fleet config: %v", err)
	}
	if q := cfg.Health.Quorum; q.MinReporters != 2 || q.DownRatio != 0.5 || cfg.Services["web"].OnAllDown != OnAllDownForward {
		t.Fatalf("decoded %+v %+v", q, cfg.Services["web"])
	}
	if fs := (&Consul{}).FleetSettings(); fs.Prefix != DefaultFleetPrefix || fs.SessionTTL.D() != DefaultFleetSessionTTL {
		t.Errorf("fleet defaults %+v", fs)
	}

	bad := `listen: {http: 127.0.0.1:0}
region: "eu west"
consul:
  fleet: {prefix: /meridian/, session_ttl: 100ms}
health:
  quorum: {min_reporters: -1, down_ratio: 1.5}
pools:
  a: {endpoints: [127.0.0.1:1], on_all_down: forward, consul: {service: web, datacenters: [dc2, dc2], failover: {nearest: -1}}}
  b: {endpoints: [127.0.0.1:2], consul: {service: web, failover: {}}}
services:
  s: {pools: [a], on_all_down: fail}
  t: {pools: [b], on_all_down: forward}
routes: [{service: s}]
`
	_, err = Parse("b.yaml", []byte(bad))
	if err == nil {
		t.Fatal("bad fleet config passed")
	}
	for _, want := range []string{
		`b.yaml:2: region: invalid region "eu west"`,
		`b.yaml:4: consul.fleet: the fleet is the instances registered with consul.register`,
		`b.yaml:4: consul.fleet.prefix: want a KV folder`,
		`b.yaml:4: consul.fleet.session_ttl: must be between 1s and 24h`,
		`b.yaml:6: health.quorum: a quorum counts the reports of the fleet`,
		`b.yaml:6: health.quorum.min_reporters: must be at least 1`,
		`b.yaml:6: health.quorum.down_ratio: must be above 0 and at most 1`,
		`b.yaml:8: pools.a.on_all_down: forward is a service's setting`,
		`b.yaml:8: pools.a.consul.failover: set datacenters or failover, not both`,
		`b.yaml:8: pools.a.consul.datacenters[1]: datacenter "dc2" listed twice`,
		`b.yaml:8: pools.a.consul.failover.nearest: must not be negative`,
		`b.yaml:9: pools.b.consul.failover: needs nearest or datacenters`,
		`b.yaml:11: services.s.on_all_down: a service takes forward only`,
		`b.yaml:12: services.t.on_all_down: forward finds the next region's edges through the fleet registration`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing problem %q in\n%v", want, err)
		}
	}
}
