package app

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/meridian-lb/meridian/dns"
	"github.com/meridian-lb/meridian/routing"
)

// explainConfig has a geo service over a healthy eu pool of two backends
// and a us pool whose endpoint is dead, a split with a header rule, and a
// zone steering www over the same service.
const explainConfig = `
listen: {admin: 127.0.0.1:0, http: 127.0.0.1:0}
geo: {nets: {198.51.100.0/24: us}, default_region: eu}
checks:
  tcp: {type: tcp, interval: 200ms, timeout: 100ms, rise: 1, fall: 1}
pools:
  eu: {region: eu, endpoints: [%s, %s], check: tcp}
  us: {region: us, endpoints: [%s], check: tcp}
  canary: {region: eu, endpoints: [%s]}
services:
  web: {policy: geo, pools: [eu, us]}
  canary: {pools: [canary]}
routes:
  - {name: api, match: {host: api.test, path_prefix: /api}, service: web}
  - name: www
    match: {host: www.test}
    split:
      - {when: {header: {X-Canary: "1"}}, service: canary}
      - {service: web, weight: 1}
zones:
  - origin: example.test.
    soa: {ns: ns1.example.test., mbox: hostmaster.example.test.}
    ns: [ns1.example.test.]
    records:
      - {name: www, type: A, service: web, ttl: 30}
      - {name: ns1, type: A, values: [192.0.2.53]}
`

// backend answers with its name, so a test can tell which endpoint the
// proxy picked.
func backend(t *testing.T, name string) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, name) }))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

func startExplain(t *testing.T) (h *harness, eps map[string]string) {
	eps = map[string]string{"eu1": backend(t, "eu1"), "eu2": backend(t, "eu2"), "us": closedAddr(t), "canary": backend(t, "canary")}
	path := filepath.Join(t.TempDir(), "meridian.yaml")
	write(t, path, fmt.Sprintf(explainConfig, eps["eu1"], eps["eu2"], eps["us"], eps["canary"]))
	h = start(t, path)
	h.waitFor("us probed down", func() bool {
		eps := h.table().Pools["us"].Endpoints
		return len(eps) == 1 && eps[0].Health != nil && eps[0].Health.State == "down"
	})
	return h, eps
}

func (h *harness) explainHTTP(query string) *routing.HTTPExplanation {
	h.t.Helper()
	code, body := h.get("/api/v1/explain?" + query)
	if code != 200 {
		h.t.Fatalf("explain %s: %d %s", query, code, body)
	}
	var ex routing.HTTPExplanation
	if err := json.Unmarshal([]byte(body), &ex); err != nil {
		h.t.Fatalf("explain %s: %v\n%s", query, err, body)
	}
	return &ex
}

// TestExplainHTTPThroughAdmin asks the real admin API about HTTP requests
// and holds the answers to what the proxy then does with them.
func TestExplainHTTPThroughAdmin(t *testing.T) {
	h, eps := startExplain(t)
	name := map[string]string{}
	for k, v := range eps {
		name[v] = k
	}
	send := func(host, path string, hdr ...string) string {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://"+h.app.Addrs().HTTP+path, nil)
		req.Host = host
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return string(b)
	}

	t.Run("header rule picks the canary", func(t *testing.T) {
		ex := h.explainHTTP("host=www.test&path=/x&header=X-Canary:1&client=127.0.0.1")
		if ex.Route != "www" || ex.Split == nil || ex.Split.By != "rule" || ex.Split.Service != "canary" || ex.Endpoint != eps["canary"] {
			t.Fatalf("%+v", ex)
		}
		if got := failedConditions(ex, "api"); got != "host,path" {
			t.Errorf("route api failed on %s, want host,path", got)
		}
		if got := send("www.test", "/x", "X-Canary", "1"); got != "canary" {
			t.Errorf("proxy sent it to %s", got)
		}
	})
	t.Run("the explained endpoint is the one the proxy picks next", func(t *testing.T) {
		for range 4 {
			ex := h.explainHTTP("host=api.test&path=/api/v1?x=1&client=127.0.0.1")
			if ex.Route != "api" || ex.Pool != "eu" || ex.Query != "x=1" {
				t.Fatalf("%+v", ex)
			}
			if got := send("api.test", "/api/v1?x=1"); got != name[ex.Endpoint] {
				t.Fatalf("explained %s (%s), the proxy sent it to %s", name[ex.Endpoint], ex.Endpoint, got)
			}
		}
	})
	t.Run("geo: us client, us pool down, eu serves", func(t *testing.T) {
		ex := h.explainHTTP("host=api.test&path=/api&client=198.51.100.7")
		s := ex.Service
		if s == nil || s.Location == nil || s.Location.Region != "us" || s.Location.Network != "198.51.100.0/24" || !slices.Equal(s.Order, []string{"us", "eu"}) {
			t.Fatalf("service %+v", s)
		}
		us := s.Pools[0]
		if us.Result != "none available" || us.Endpoints[0].State != "down" || us.Endpoints[0].Reason == "" || us.Endpoints[0].Available {
			t.Fatalf("us pool %+v", us)
		}
		if ex.Pool != "eu" || s.Pools[1].Result != "picked" {
			t.Fatalf("pool %s: %+v", ex.Pool, s.Pools[1])
		}
	})
	t.Run("no route is a 404 explained", func(t *testing.T) {
		ex := h.explainHTTP("host=nope.test&path=/")
		if ex.Status != 404 || ex.Route != "" || len(ex.Routes) != 2 {
			t.Fatalf("%+v", ex)
		}
	})
	t.Run("client defaults to the caller", func(t *testing.T) {
		if ex := h.explainHTTP("host=api.test&path=/api"); ex.Client != "127.0.0.1" {
			t.Fatalf("client %q", ex.Client)
		}
	})
	for _, tc := range []struct{ name, query, want string }{
		{"both forms", "qname=www.example.test&host=www.test", "not both"},
		{"neither form", "", "want qname="},
		{"bad header", "host=www.test&header=NoColon", "header: want Name:value"},
		{"bad method", "host=www.test&method=GE%20T", "method"},
		{"bad client", "host=www.test&client=nope", "client"},
		{"bad path", "host=www.test&path=nope", "path"},
		{"disagreeing Host header", "host=www.test&header=Host:api.test", "disagree"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := h.get("/api/v1/explain?" + tc.query)
			if code != 400 || !strings.Contains(body, tc.want) {
				t.Fatalf("%d %s, want 400 with %q", code, body, tc.want)
			}
		})
	}
}

func failedConditions(ex *routing.HTTPExplanation, route string) string {
	for _, tr := range ex.Routes {
		if tr.Name == route {
			var cs []string
			for _, m := range tr.Failed {
				cs = append(cs, m.Condition)
			}
			return strings.Join(cs, ",")
		}
	}
	return "untried"
}

// TestExplainDNSUnchanged holds the DNS form of the admin API to
// dns.ExplainHandler on the same table, answers and errors alike (answer
// order aside: a steered answer rotates).
func TestExplainDNSUnchanged(t *testing.T) {
	h, _ := startExplain(t)
	direct := dns.ExplainHandler(&h.app.live)
	for _, q := range []string{
		"qname=www.example.test&client=198.51.100.7",
		"qname=www.example.test&qtype=A&client=127.0.0.1&ecs=198.51.100.0/24",
		"qname=ns1.example.test&qtype=AAAA&client=127.0.0.1",
		"qname=other.invalid&client=127.0.0.1",
		"qname=www.example.test&qtype=BOGUS",
		"qname=www.example.test&ecs=nope",
		"qtype=A",
		"client=127.0.0.1",
	} {
		t.Run(q, func(t *testing.T) {
			code, body := h.get("/api/v1/explain?" + q)
			rec := httptest.NewRecorder()
			direct.ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/explain?"+q, nil))
			if code != rec.Code {
				t.Fatalf("admin %d, dns.ExplainHandler %d", code, rec.Code)
			}
			if code != 200 {
				if body != rec.Body.String() {
					t.Fatalf("admin %s\ndns.ExplainHandler %s", body, rec.Body)
				}
				return
			}
			var got, want dns.ExplainResult
			if err := json.Unmarshal([]byte(body), &got); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &want); err != nil {
				t.Fatal(err)
			}
			slices.Sort(got.Answer)
			slices.Sort(want.Answer)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("admin %+v\ndns.ExplainHandler %+v", got, want)
			}
		})
	}
}

func TestExplainQueryURL(t *testing.T) {
	tests := []struct {
		name string
		q    ExplainQuery
		want string
	}{
		{"http form", ExplainQuery{Admin: "127.0.0.1:9090", Host: "www.test", Path: "/a?b=1", Headers: []string{"X-A: 1"}, Cookies: []string{"uid=7"}, Client: "10.0.0.1"},
			"http://127.0.0.1:9090/api/v1/explain?client=10.0.0.1&cookie=uid%3D7&header=X-A%3A+1&host=www.test&path=%2Fa%3Fb%3D1"},
		{"dns form", ExplainQuery{Admin: "https://lb.example/admin/", QName: "www.example.test", QType: "AAAA", Host: "ignored"},
			"https://lb.example/admin/api/v1/explain?qname=www.example.test&qtype=AAAA"},
		{"default path", ExplainQuery{Admin: "http://h:1", Host: "x"}, "http://h:1/api/v1/explain?host=x&path=%2F"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.q.URL()
			if err != nil || got != tc.want {
				t.Fatalf("URL() = %s, %v\nwant %s", got, err, tc.want)
			}
			if _, err := url.Parse(got); err != nil {
				t.Fatal(err)
			}
		})
	}
	if _, err := (&ExplainQuery{Admin: "http://"}).URL(); err == nil {
		t.Error("an admin URL without a host was accepted")
	}
}
