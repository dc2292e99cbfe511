package app

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	mdns "github.com/miekg/dns"

	"github.com/meridian-lb/meridian/telemetry"
)

func (h *harness) stats() telemetry.Stats {
	h.t.Helper()
	code, body := h.get("/api/v1/stats")
	if code != http.StatusOK {
		h.t.Fatalf("GET /api/v1/stats: %d %s", code, body)
	}
	var st telemetry.Stats
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		h.t.Fatalf("stats JSON: %v\n%s", err, body)
	}
	return st
}

// TestStatsAPI: traffic through the real App shows in /api/v1/stats (per
// route, service, pool, endpoint, zone and record, with windows once the
// tick ran) and in the per-endpoint metrics.
func TestStatsAPI(t *testing.T) {
	a, b := newCountingBackend(t, "a"), newCountingBackend(t, "b")
	path := filepath.Join(t.TempDir(), "meridian.yaml")
	write(t, path, fmt.Sprintf(`
listen: {admin: 127.0.0.1:0, http: 127.0.0.1:0, dns: 127.0.0.1:0}
pools: {web: {endpoints: [%s, %s]}}
services: {web: {pools: [web]}}
routes: [{name: www, match: {path_prefix: /}, service: web}]
zones:
  - origin: example.test.
    soa: {ns: ns1.example.test., mbox: hostmaster.example.test.}
    ns: [ns1.example.test.]
    records:
      - {name: ns1, type: A, values: [127.0.0.1]}
      - {name: www, type: A, service: web}
`, a.addr(), b.addr()))
	h := start(t, path)
	addrs := h.app.Addrs()
	for range 20 {
		res, err := http.Get("http://" + addrs.HTTP + "/x")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
	}
	dc := &mdns.Client{}
	for _, name := range []string{"www.example.test.", "www.example.test.", "nope.example.test."} {
		m := new(mdns.Msg)
		m.SetQuestion(name, mdns.TypeA)
		if _, _, err := dc.Exchange(m, addrs.DNS); err != nil {
			t.Fatal(err)
		}
	}
	var st telemetry.Stats
	h.waitFor("the windows to count the requests", func() bool {
		st = h.stats()
		return len(st.HTTP.Routes) == 1 && st.HTTP.Routes[0].Windows["10s"].Requests == 20
	})
	r := st.HTTP.Routes[0]
	if r.Name != "www" || r.Totals.Requests != 20 || r.Totals.Responses["2xx"] != 20 || len(r.Arms) != 1 || r.Arms[0].Service != "web" {
		t.Errorf("route %+v", r)
	}
	if len(st.HTTP.Pools) != 1 || len(st.HTTP.Pools[0].Endpoints) != 2 || st.HTTP.Pools[0].Totals.Requests != 20 {
		t.Fatalf("pools %+v", st.HTTP.Pools)
	}
	for _, e := range st.HTTP.Pools[0].Endpoints {
		if e.Totals.Responses["2xx"] != 10 {
			t.Errorf("endpoint %s served %d, want 10 (round robin)", e.Address, e.Totals.Responses["2xx"])
		}
	}
	if len(st.DNS.Zones) != 1 {
		t.Fatalf("zones %+v", st.DNS.Zones)
	}
	z := st.DNS.Zones[0]
	recs := map[string]telemetry.RecordStats{}
	for _, rec := range z.Records {
		recs[rec.Name] = rec
	}
	if z.Totals.Queries != 3 || recs["www.example.test."].Totals.Answers["web"] != 2 || recs[telemetry.NoRecord].Totals.Rcodes["NXDOMAIN"] != 1 {
		t.Errorf("zone %+v", z)
	}
	if v := h.metric(`meridian_http_endpoint_requests_total{class="2xx",endpoint="` + a.addr() + `",pool="web"}`); v != "10" {
		t.Errorf("endpoint metric %q, want 10", v)
	}
}

// TestEndpointSeriesFollowTheTable churns thousands of endpoints through
// reloads of the real App and counts the per-endpoint series on /metrics
// after each: they are the live table's, never the history's.
func TestEndpointSeriesFollowTheTable(t *testing.T) {
	const perTable, reloads = 300, 10 // 3000 endpoints in all
	conf := func(gen int) string {
		var eps []string
		for i := range perTable {
			eps = append(eps, fmt.Sprintf("127.%d.%d.%d:80", 1+gen, i/200, i%200+1))
		}
		return fmt.Sprintf(`
listen: {admin: 127.0.0.1:0}
pools: {p: {endpoints: [%s]}}
services: {s: {pools: [p]}}
routes: [{name: r%d, match: {path_prefix: /}, service: s}]
`, strings.Join(eps, ", "), gen)
	}
	path := filepath.Join(t.TempDir(), "meridian.yaml")
	write(t, path, conf(0))
	h := start(t, path)
	for gen := range reloads {
		if gen > 0 {
			write(t, path, conf(gen))
			h.waitRoute(fmt.Sprintf("r%d", gen))
		}
		_, body := h.get("/metrics")
		series, endpoints := 0, map[string]bool{}
		prefix := fmt.Sprintf(`endpoint="127.%d.`, 1+gen)
		for _, line := range strings.Split(body, "\n") {
			if !strings.HasPrefix(line, "meridian_http_endpoint_") {
				continue
			}
			series++
			i := strings.Index(line, `endpoint="`)
			j := strings.Index(line[i+10:], `"`)
			ep := line[i+10 : i+10+j]
			endpoints[ep] = true
			if !strings.Contains(line, prefix) {
				t.Fatalf("reload %d: a series of an endpoint no longer in the table: %s", gen, line)
			}
		}
		// Per endpoint: 5 status classes, 4 upstream error kinds, in
		// flight, and bytes in 2 directions.
		if want := perTable * 12; series != want || len(endpoints) != perTable {
			t.Fatalf("reload %d: %d endpoint series over %d endpoints, want %d over %d", gen, series, len(endpoints), want, perTable)
		}
	}
}

// TestStatsNeedsToken: /api/v1/stats is behind the admin token like the
// rest of /api/.
func TestStatsNeedsToken(t *testing.T) {
	dir := t.TempDir()
	path, tokenFile := filepath.Join(dir, "meridian.yaml"), filepath.Join(dir, "token")
	write(t, tokenFile, "s3cret\n")
	write(t, path, configText(1)+"admin: {token_file: "+tokenFile+"}\n")
	h := start(t, path)
	if code, _ := h.get("/api/v1/stats"); code != http.StatusUnauthorized {
		t.Errorf("without the token: %d", code)
	}
	code, body := h.get("/api/v1/stats", "Authorization", "Bearer s3cret")
	if code != http.StatusOK || !strings.Contains(body, `"routes"`) {
		t.Errorf("with the token: %d %s", code, body)
	}
}
