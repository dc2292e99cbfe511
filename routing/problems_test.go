package routing

import (
	"errors"
	"strings"
	"testing"

	"github.com/meridian-lb/meridian/config"
)

// TestCompileLocatesProblems: what only compiling finds (a zone conflict, a
// network mapped to two regions, a DNS check no probe could send) is
// reported like what Parse finds: every problem of the run, each with its
// file, line and config path.
func TestCompileLocatesProblems(t *testing.T) {
	const text = `listen: {dns: 127.0.0.1:0}
geo:
  nets:
    10.0.0.0/8: eu
    10.0.0.1/8: us
checks:
  probe: {type: dns, qname: example.com., qtype: AAAAA}
pools:
  p: {endpoints: [192.0.2.1:80], check: probe}
services:
  web: {pools: [p]}
zones:
  - origin: example.com.
    soa: {ns: ns1.example.com., mbox: hostmaster.example.com.}
    ns: [ns1.example.com.]
    records:
      - {name: www, type: A, service: web}
      - {name: www, type: A, service: web}
`
	cfg, err := config.Parse("c.yaml", []byte(text))
	if err != nil {
		t.Fatalf("the config's own rules pass it; compiling must catch it: %v", err)
	}
	_, err = Compile(cfg, Inputs{})
	var ce *config.Error
	if !errors.As(err, &ce) {
		t.Fatalf("Compile = %v, want a *config.Error", err)
	}
	want := `c.yaml:5: geo.nets.10.0.0.1/8: same network 10.0.0.0/8 as geo.nets["10.0.0.0/8"], which says region "eu", not "us"
c.yaml:7: checks.probe.qtype: unknown qtype "AAAAA"
c.yaml:18: zones[0].records[1]: a second steered A record at www.example.com. (zones[0].records[0]): one name answers one service per type`
	if err.Error() != want {
		t.Errorf("Compile:\n%v\nwant:\n%s", err, want)
	}
}

// TestCompileRefusesUnknownBalancer: a balancer name newPicker does not know
// (only a Config built by hand can have one) is a problem, never quietly
// round robin; unset is round robin, the default.
func TestCompileRefusesUnknownBalancer(t *testing.T) {
	cfg := &config.Config{Pools: map[string]*config.Pool{
		"p": {Endpoints: []config.Endpoint{{Address: "127.0.0.1:1", Weight: 1}}, Balance: "fastest"},
		"q": {Endpoints: []config.Endpoint{{Address: "127.0.0.1:2", Weight: 1}}},
	}}
	_, err := Compile(cfg, Inputs{})
	if err == nil || err.Error() != `pools.p.balance: unknown balancer "fastest"` {
		t.Errorf("Compile = %v, want the unknown balancer refused", err)
	}
	delete(cfg.Pools, "p")
	tbl, err := Compile(cfg, Inputs{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := tbl.Pools["q"].picker.(*roundRobin); !ok {
		t.Errorf("unset balancer: picker %T, want round robin", tbl.Pools["q"].picker)
	}
}

// TestCompileZonesAgainstItsServices: steered records get the endpoints of
// the table's own pools, so their targets read the health bound to them.
func TestCompileZonesAgainstItsServices(t *testing.T) {
	cfg, err := config.Parse("z.yaml", []byte(`pools:
  eu: {region: eu, endpoints: [192.0.2.1:80, 192.0.2.1:81, "[2001:db8::1]:80"]}
services:
  web: {policy: geo, pools: [eu]}
zones:
  - origin: example.com.
    soa: {ns: ns1.example.com., mbox: hostmaster.example.com.}
    ns: [ns1.example.com.]
    records:
      - {name: www, type: A, service: web}
`))
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := Compile(cfg, Inputs{})
	if err != nil {
		t.Fatal(err)
	}
	st := tbl.Zones[0].Steered[0]
	ts := st.Targets["eu"]
	if st.Service != "web" || len(ts) != 1 || len(ts[0].Endpoints) != 2 {
		t.Fatalf("steered %+v", st)
	}
	if e, ok := ts[0].Endpoints[1].State.(*dnsState); !ok || (*Endpoint)(e) != tbl.Pools["eu"].Endpoints[1] {
		t.Errorf("target endpoint state %v, want the table's endpoint", ts[0].Endpoints[1].State)
	}
	if !strings.Contains(tbl.String(), "steered www.example.com. A service=web") {
		t.Errorf("dump:\n%s", tbl.String())
	}
}
