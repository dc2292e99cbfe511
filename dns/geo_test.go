package dns

import (
	"path/filepath"
	"testing"

	mdns "github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/meridian-lb/meridian/geo"
	"github.com/meridian-lb/meridian/geo/geotest"
	"github.com/meridian-lb/meridian/routing"
)

const mmdbConfig = `
geo:
  mmdb: %s
  regions:
    eu: {continents: [EU]}
    us: {continents: [NA]}
  default_region: eu
pools:
  web-eu: {region: eu, endpoints: [192.0.2.1:80]}
  web-us: {region: us, endpoints: [198.51.100.10:80]}
services:
  web: {policy: geo, pools: [web-eu, web-us]}
zones:
  - origin: example.com.
    soa: {ns: ns1.example.com., mbox: hostmaster.example.com.}
    ns: [ns1.example.com.]
    records:
      - {name: www, type: A, service: web, ttl: 30}
`

// testGeoWithMMDB answers from a MaxMind-format database built by
// geo/geotest: the region comes from the ECS network's continent and the
// scope is the database network's prefix length.
func testGeoWithMMDB(t *testing.T) {
	path := filepath.Join(t.TempDir(), "test.mmdb")
	geotest.WriteMMDB(t, path, map[string]geotest.Record{
		"81.2.69.0/24":    {Country: "GB", Continent: "EU"},
		"216.160.83.0/24": {Country: "US", Continent: "NA"},
		"2a02:ec0::/32":   {Country: "DE", Continent: "EU"},
	})
	db, err := geo.OpenDB(path, zap.NewNop(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	cfg := parseConfig(t, sprintf(mmdbConfig, path))
	tab, err := routing.Compile(cfg, routing.Inputs{GeoDB: db})
	if err != nil {
		t.Fatal(err)
	}
	eu := []string{"www.example.com. 30 IN A 192.0.2.1"}
	us := []string{"www.example.com. 30 IN A 198.51.100.10"}
	for _, tc := range []tcase{
		{name: "GB network is eu", qname: "www.example.com.", qtype: mdns.TypeA, ecs: "81.2.69.0/24", scope: 24, answer: eu},
		{name: "US network is us", qname: "www.example.com.", qtype: mdns.TypeA, ecs: "216.160.83.0/24", scope: 24, answer: us},
		{name: "US source address is us", qname: "www.example.com.", qtype: mdns.TypeA, from: "216.160.83.9", answer: us},
		{name: "IPv6 DE network is eu", qname: "www.example.com.", qtype: mdns.TypeA, ecs: "2a02:ec0:1::/48", scope: 32, answer: eu},
		{name: "private ECS gets the default region", qname: "www.example.com.", qtype: mdns.TypeA, ecs: "10.9.0.0/16", scope: 8, answer: eu},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sortAndCheck(t, answerFor(t, tab, tc), tc, 0)
		})
	}
}
