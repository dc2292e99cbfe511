package routing

import (
	"testing"

	"github.com/meridian-lb/meridian/config"
)

// TestQuorumDecidesDNSOnly: the fleet's verdict decides what DNS answers,
// never what Available (the HTTP path) says; an operator's drain wins over
// an up verdict.
func TestQuorumDecidesDNSOnly(t *testing.T) {
	cfg, err := config.Parse("q.yaml", []byte(`listen: {http: 127.0.0.1:0}
pools: {p: {endpoints: [192.0.2.1:80]}}
services: {s: {pools: [p]}}
routes: [{service: s}]
zones:
  - origin: example.test.
    soa: {ns: ns1.example.test., mbox: h.example.test.}
    ns: [ns1.example.test.]
    records: [{name: www, type: A, service: s, on_all_down: nodata}]
`))
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := Compile(cfg, Inputs{})
	if err != nil {
		t.Fatal(err)
	}
	e := tbl.Pools["p"].Endpoints[0]
	target := tbl.Zones[0].Steered[0].Targets["p"][0]
	if !target.Available() || e.QuorumVerdict() != QuorumNone {
		t.Fatal("without a verdict DNS follows the endpoint's own health")
	}
	if !e.SetQuorum(QuorumDown) || e.SetQuorum(QuorumDown) {
		t.Error("SetQuorum's changed flag")
	}
	if target.Available() || !e.Available() {
		t.Errorf("down verdict: DNS %v (want false), HTTP %v (want true)", target.Available(), e.Available())
	}
	e.SetQuorum(QuorumUp)
	if !target.Available() {
		t.Error("up verdict: DNS leaves the endpoint out")
	}
	if QuorumUp.String() != "up" || QuorumNone.String() != "none" {
		t.Error("names")
	}
}
