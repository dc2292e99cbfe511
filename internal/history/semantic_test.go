package history

import (
	"bytes"
	"strings"
	"testing"

	"github.com/meridian-lb/meridian/config"
	"github.com/meridian-lb/meridian/routing"
)

func compile(t *testing.T, text string) *routing.Table {
	t.Helper()
	cfg, err := config.Parse("test.yaml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	tb, err := routing.Compile(cfg, routing.Inputs{})
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

const before = `
geo: {nets: {198.51.100.0/24: us, 192.0.2.0/24: eu}, default_region: eu}
pools:
  eu: {region: eu, endpoints: [127.0.0.1:9101]}
  us: {region: us, endpoints: [127.0.0.2:9102]}
  canary: {endpoints: [127.0.0.3:9103]}
  old: {endpoints: [127.0.0.9:9]}
services:
  web: {policy: geo, pools: [eu, us]}
  canary: {pools: [canary]}
  split: {policy: weighted, pools: [eu, us], weights: [90, 10]}
routes:
  - {name: api, match: {host: api.test}, service: web}
  - name: www
    match: {host: www.test}
    split:
      - {when: {header: {X-Canary: "1"}}, service: canary}
      - {service: web, weight: 90}
      - {service: canary, weight: 10}
  - {name: gone, match: {host: gone.test}, service: web}
zones:
  - origin: example.test.
    soa: {ns: ns1.example.test., mbox: hostmaster.example.test.}
    ns: [ns1.example.test.]
    records:
      - {name: www, type: A, service: web, ttl: 30}
      - {name: w, type: A, service: split, ttl: 30}
`

const after = `
geo: {nets: {198.51.100.0/24: us, 192.0.2.0/24: eu}, default_region: eu}
pools:
  eu: {region: eu, endpoints: [127.0.0.1:9101, {address: 127.0.0.4:9104, weight: 2}], balance: least_request}
  us: {region: us, endpoints: [backend.internal:80]}
  canary: {endpoints: [127.0.0.3:9103]}
services:
  web: {policy: geo, pools: [eu, us]}
  canary: {pools: [canary]}
  split: {policy: weighted, pools: [eu, us], weights: [75, 25]}
routes:
  - name: www
    match: {host: www.test}
    split:
      - {when: {header: {X-Canary: "1"}}, service: canary}
      - {service: web, weight: 75}
      - {service: canary, weight: 25}
  - {name: api, match: {host: api.test, path_prefix: /v1}, service: web}
  - {name: new, match: {host: new.test}, service: canary}
zones:
  - origin: example.test.
    soa: {ns: ns1.example.test., mbox: hostmaster.example.test.}
    ns: [ns1.example.test.]
    records:
      - {name: www, type: A, service: web, ttl: 30}
      - {name: w, type: A, service: split, ttl: 30}
`

func find(r *Report, kind, name string) *SectionChange {
	for i := range r.Sections {
		if c := &r.Sections[i]; c.Kind == kind && c.Name == name {
			return c
		}
	}
	return nil
}

func TestCompare(t *testing.T) {
	r := Compare(compile(t, before), compile(t, after))
	var out bytes.Buffer
	if err := r.Write(&out); err != nil {
		t.Fatal(err)
	}
	t.Logf("report:\n%s", out.String())
	if r.Empty() {
		t.Fatal("no changes found")
	}

	check := func(kind, name, change string, details ...string) {
		t.Helper()
		c := find(r, kind, name)
		if c == nil {
			t.Errorf("%s %s: not reported", kind, name)
			return
		}
		if c.Change != change {
			t.Errorf("%s %s: %s, want %s", kind, name, c.Change, change)
		}
		all := strings.Join(append(append(append([]string(nil), c.Details...), c.Removed...), c.Added...), "\n")
		for _, d := range details {
			if !strings.Contains(all, d) {
				t.Errorf("%s %s: lacks %q:\n%s", kind, name, d, all)
			}
		}
	}
	check("route", "new", "added", "route new host=new.test", "service canary")
	check("route", "gone", "removed")
	check("route", "www", "changed", "split: web 90% (weight 90) → 75% (weight 75), canary 10% (weight 10) → 25% (weight 25)")
	check("route", "api", "changed", "path_prefix: (none) → /v1")
	check("pool", "eu", "changed", "balance: round_robin → least_request", `endpoint 127.0.0.4:9104 added (weight=2 region="eu" source=static)`)
	check("pool", "us", "changed", "endpoint 127.0.0.2:9102 removed")
	check("pool", "old", "removed")
	check("service", "split", "changed", "weights: [90 10] → [75 25]", "shares: eu 90% → 75%, us 10% → 25%")
	if c := find(r, "pool", "canary"); c != nil {
		t.Errorf("unchanged pool reported: %+v", c)
	}
	if c := find(r, "route", "www"); c != nil && (len(c.Removed) != 0 || len(c.Added) != 0) {
		t.Errorf("the split's shares say it all, yet lines are shown: %+v", c)
	}
	if o := r.RouteOrder; o == nil || strings.Join(o.Old, ",") != "api,www" || strings.Join(o.New, ",") != "www,api" {
		t.Errorf("route order: %+v", o)
	}

	// DNS: us's only endpoint went, so us clients now get eu; eu clients
	// get eu's two endpoints; the weighted record's shares moved.
	dns := map[string]DNSChange{}
	for _, d := range r.DNS {
		dns[d.Record+" "+d.Region] = d
	}
	if d, ok := dns["www.example.test. A us"]; !ok || d.Old != "pool us: 127.0.0.2" || d.New != "pool eu: 127.0.0.1 127.0.0.4" {
		t.Errorf("www for us: %+v", d)
	}
	if d, ok := dns["www.example.test. A eu"]; !ok || d.Old != "pool eu: 127.0.0.1" || d.New != "pool eu: 127.0.0.1 127.0.0.4" {
		t.Errorf("www for eu: %+v", d)
	}
	if d, ok := dns["w.example.test. A *"]; !ok || !strings.Contains(d.Old, "pool eu 90%") || !strings.Contains(d.New, "pool eu 75%: 127.0.0.1 127.0.0.4") {
		t.Errorf("weighted w: %+v", d)
	}
	for _, want := range []string{"routes:\n", "  + route new (added)", "  ~ route www (changed)", "route order (the first match wins):",
		"DNS answers per region (every endpoint counted as up):", "www.example.test. A  region us:\n      - pool us: 127.0.0.2\n      + pool eu: 127.0.0.1 127.0.0.4"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q", want)
		}
	}
}

func TestCompareSame(t *testing.T) {
	r := Compare(compile(t, before), compile(t, before+"\n# a comment\n"))
	if !r.Empty() {
		t.Errorf("same config: %+v", r)
	}
	var out bytes.Buffer
	_ = r.Write(&out)
	if out.String() != "no change to what is served\n" {
		t.Errorf("%q", out.String())
	}
}

// TestCompareRegionPolicy: a record that stops depending on the region
// is compared region by region.
func TestCompareRegionPolicy(t *testing.T) {
	geo := strings.Replace(before, "web: {policy: geo, pools: [eu, us]}", "web: {policy: geo, pools: [eu, us]}", 1)
	failover := strings.Replace(before, "web: {policy: geo, pools: [eu, us]}", "web: {policy: failover, pools: [eu, us]}", 1)
	r := Compare(compile(t, geo), compile(t, failover))
	var us *DNSChange
	for i, d := range r.DNS {
		if d.Record == "www.example.test. A" && d.Region == "us" {
			us = &r.DNS[i]
		}
		if d.Region == "eu" {
			t.Errorf("eu clients get eu either way: %+v", d)
		}
	}
	if us == nil || us.Old != "pool us: 127.0.0.2" || us.New != "pool eu: 127.0.0.1" {
		t.Errorf("us: %+v in %+v", us, r.DNS)
	}
	if c := find(r, "service", "web"); c == nil || !strings.Contains(strings.Join(c.Details, "\n"), "policy: geo → failover") {
		t.Errorf("service web: %+v", c)
	}
}

func TestAttrs(t *testing.T) {
	got := attrs(`route r path_regex="^/a b=c" method=GET x`)
	if len(got) != 2 || got[0] != (attr{"path_regex", `"^/a b=c"`}) || got[1] != (attr{"method", "GET"}) {
		t.Errorf("%+v", got)
	}
}

func TestAttrsList(t *testing.T) {
	got := attrs(`service s policy=weighted pools=a,b weights=[90 10] x=1`)
	if len(got) != 4 || got[2] != (attr{"weights", "[90 10]"}) || got[3] != (attr{"x", "1"}) {
		t.Errorf("%+v", got)
	}
}
