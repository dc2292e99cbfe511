package routing

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/meridian-lb/meridian/config"
	"github.com/meridian-lb/meridian/health"
)

// explainYAML has a route for each kind of condition, a split with a rule,
// weights and a sticky cookie, and services of each policy.
const explainYAML = `
geo:
  nets: {198.51.100.0/24: us, 10.0.0.0/8: eu}
  default_region: eu
pools:
  eu: {region: eu, endpoints: [127.0.0.1:1001, 127.0.0.1:1002]}
  us: {region: us, endpoints: [127.0.0.1:1003]}
  canary: {region: eu, endpoints: [127.0.0.1:1004]}
  ring: {balance: ring_hash, hash_on: {header: X-User}, endpoints: [127.0.0.1:2001, 127.0.0.1:2002, 127.0.0.1:2003]}
  mag: {balance: maglev, endpoints: [127.0.0.1:3001, 127.0.0.1:3002, 127.0.0.1:3003]}
  rnd: {balance: random, endpoints: [127.0.0.1:4001, {address: 127.0.0.1:4002, weight: 3}]}
services:
  web: {policy: geo, pools: [eu, us]}
  web-canary: {pools: [canary, eu]}
  bg: {policy: weighted, pools: [eu, us], weights: [3, 1]}
  ring: {pools: [ring]}
  mag: {pools: [mag]}
  rnd: {pools: [rnd]}
routes:
  - {name: api, match: {host: api.example.com, path_prefix: /v1}, service: web}
  - {name: post-only, match: {host: www.example.com, path: /submit, method: [POST]}, service: web}
  - {name: internal, match: {host: www.example.com, path_prefix: /internal, client_cidr: [10.0.0.0/8]}, service: web}
  - {name: beta, match: {host: www.example.com, headers: {X-Beta: "1"}, cookies: {tier: gold}, query: {preview: {present: true}}}, service: web}
  - {name: ring, match: {path_prefix: /ring}, service: ring}
  - {name: mag, match: {path_prefix: /mag}, service: mag}
  - {name: rnd, match: {path_prefix: /rnd}, service: rnd}
  - {name: bg, match: {path_prefix: /bg}, service: bg}
  - name: www
    match: {host: [www.example.com, "*.example.org"], path_prefix: /}
    split:
      - {when: {header: {X-Canary: "1"}}, service: web-canary}
      - {service: web-canary, weight: 5}
      - {service: web, weight: 95}
    sticky: {cookie: uid}
    mirror: {service: web-canary, percent: 50}
`

func explain(t *testing.T, tb *Table, r *http.Request, client string) *HTTPExplanation {
	t.Helper()
	var c netip.Addr
	if client != "" {
		c = netip.MustParseAddr(client)
	}
	ex := tb.ExplainHTTP(r, c, ExplainOptions{})
	for _, n := range ex.Notes {
		if strings.HasPrefix(n, "internal:") {
			t.Fatalf("%s", n)
		}
	}
	return ex
}

// failedOf returns the conditions a route failed, "matched" when it
// matched, or "untried".
func failedOf(ex *HTTPExplanation, route string) string {
	for _, tr := range ex.Routes {
		if tr.Name != route {
			continue
		}
		if tr.Matched {
			return "matched"
		}
		var cs []string
		for _, m := range tr.Failed {
			cs = append(cs, m.Condition)
		}
		return strings.Join(cs, ",")
	}
	return "untried"
}

func TestExplainRoutes(t *testing.T) {
	tb, _ := boundTable(t, explainYAML)
	tests := []struct {
		name   string
		req    *http.Request
		client string
		route  string
		failed map[string]string // route → the conditions it failed
		status int
	}{
		{name: "host decides",
			req: req("GET", "/v1/users", "Host", "www.example.com"), route: "www",
			failed: map[string]string{"api": "host", "post-only": "path,method", "internal": "path,client_cidr", "beta": "header X-Beta,cookie tier,query preview", "ring": "path"}},
		{name: "exact path, wrong method",
			req: req("GET", "/submit", "Host", "www.example.com"), route: "www",
			failed: map[string]string{"post-only": "method"}},
		{name: "method matches",
			req: req("POST", "/submit", "Host", "www.example.com"), route: "post-only",
			failed: map[string]string{"api": "host,path", "internal": "untried"}},
		{name: "client network",
			req: req("GET", "/internal/x", "Host", "WWW.Example.com:8080"), client: "192.0.2.1", route: "www",
			failed: map[string]string{"internal": "client_cidr"}},
		{name: "client in network",
			req: req("GET", "/internal/x", "Host", "www.example.com"), client: "10.1.2.3", route: "internal"},
		{name: "one of three named conditions fails",
			req: req("GET", "/?preview", "Host", "www.example.com", "X-Beta", "1", "Cookie", "tier=silver"), route: "www",
			failed: map[string]string{"beta": "cookie tier"}},
		{name: "named conditions all hold",
			req: req("GET", "/?preview=", "Host", "www.example.com", "X-Beta", "1", "Cookie", "a=b; tier=gold"), route: "beta"},
		{name: "wildcard host",
			req: req("GET", "/x", "Host", "a.example.org"), route: "www"},
		{name: "no route",
			req: req("GET", "/x", "Host", "example.org"), status: 404,
			failed: map[string]string{"www": "host", "ring": "path"}},
		{name: "path cleaned before matching",
			req: req("GET", "/x/../v1/", "Host", "api.example.com"), route: "api"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ex := explain(t, tb, tc.req, tc.client)
			if ex.Route != tc.route || ex.Status != tc.status {
				t.Fatalf("route %q status %d, want %q %d: %+v", ex.Route, ex.Status, tc.route, tc.status, ex)
			}
			for route, want := range tc.failed {
				if got := failedOf(ex, route); got != want {
					t.Errorf("route %s: %s, want %s", route, got, want)
				}
			}
			if tc.route != "" {
				if last := ex.Routes[len(ex.Routes)-1]; last.Name != tc.route || !last.Matched {
					t.Errorf("last route tried %+v, want %s matched", last, tc.route)
				}
			}
		})
	}
}

func TestExplainMismatchText(t *testing.T) {
	tb, _ := boundTable(t, explainYAML)
	ex := explain(t, tb, req("GET", "/?preview", "Host", "www.example.com", "X-Beta", "2"), "")
	var beta []string
	for _, tr := range ex.Routes {
		if tr.Name == "beta" {
			for _, m := range tr.Failed {
				beta = append(beta, m.String())
			}
		}
	}
	want := []string{`header X-Beta: want exact="1", got "2"`, `cookie tier: want exact="gold", got absent`}
	if !slices.Equal(beta, want) {
		t.Fatalf("beta failed on\n%q\nwant\n%q", beta, want)
	}
}

func TestExplainRefused(t *testing.T) {
	tb, _ := boundTable(t, explainYAML)
	tests := []struct {
		name   string
		req    *http.Request
		status int
	}{
		{"ambiguous path", req("GET", "/a/%2e%2e/b", "Host", "www.example.com"), 400},
		{"CONNECT", req("CONNECT", "/", "Host", "www.example.com"), 405},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if ex := explain(t, tb, tc.req, ""); ex.Status != tc.status || ex.Route != "" {
				t.Fatalf("status %d route %q, want %d and no route", ex.Status, ex.Route, tc.status)
			}
		})
	}
}

// TestExplainSplit holds each kind of split decision to what Choose then
// does with the same request.
func TestExplainSplit(t *testing.T) {
	tb, _ := boundTable(t, explainYAML)
	www := tb.Routes[len(tb.Routes)-1]
	tests := []struct {
		name    string
		req     *http.Request
		by      string
		service string
	}{
		{"header rule", req("GET", "/", "Host", "www.example.com", "X-Canary", "1"), "rule", "web-canary"},
		{"rule fails, sticky key decides", req("GET", "/", "Host", "www.example.com", "X-Canary", "0", "Cookie", "uid=alice"), "sticky", ""},
		{"no key: weighted draw", req("GET", "/", "Host", "www.example.com"), "draw", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for range 25 { // across the schedule's slots
				ex := explain(t, tb, tc.req, "")
				sp := ex.Split
				if sp == nil || sp.By != tc.by {
					t.Fatalf("split %+v, want by %s", sp, tc.by)
				}
				if tc.service != "" && sp.Service != tc.service {
					t.Fatalf("service %s, want %s", sp.Service, tc.service)
				}
				again := explain(t, tb, tc.req, "")
				if again.Split.Entry != sp.Entry {
					t.Fatalf("explaining twice moved the split: %d then %d", sp.Entry, again.Split.Entry)
				}
				if c := www.Choose(tc.req); c.Entry != sp.Entry || c.Service.Name != sp.Service {
					t.Fatalf("explained split[%d] %s, Choose gave split[%d] %s (%s)", sp.Entry, sp.Service, c.Entry, c.Service.Name, sp.Reason)
				}
			}
		})
	}
	t.Run("sticky position", func(t *testing.T) {
		ex := explain(t, tb, req("GET", "/", "Host", "www.example.com", "Cookie", "uid=alice"), "")
		st := ex.Split.Sticky
		if st == nil || !st.Present || st.Key != "alice" || st.Of != 100 || st.Hash != fmt.Sprintf("%016x", hashString("alice")) {
			t.Fatalf("sticky %+v", st)
		}
		w := ex.Split.Weights[ex.Split.Entry-1]
		if st.Point < w.From || st.Point >= w.To {
			t.Fatalf("point %d outside split[%d]'s [%d, %d)", st.Point, ex.Split.Entry, w.From, w.To)
		}
	})
	t.Run("fresh sticky key", func(t *testing.T) {
		tb := compileYAML(t, strings.Replace(explainYAML, "sticky: {cookie: uid}", "sticky: {cookie: uid, set: true}", 1))
		ex := explain(t, tb, req("GET", "/", "Host", "www.example.com"), "")
		if ex.Split.By != "new_sticky_key" || ex.Split.Entry != -1 || ex.Service != nil || ex.Status != 0 {
			t.Fatalf("%+v", ex)
		}
	})
}

// TestExplainTakesNoState explains many times and checks that no counter
// moved: round-robin slots, weighted schedules, mirror samples.
func TestExplainTakesNoState(t *testing.T) {
	tb, _ := boundTable(t, explainYAML)
	www := tb.Routes[len(tb.Routes)-1]
	eu := tb.Pools["eu"].picker.(*roundRobin)
	before := [...]uint64{www.Split.wrr.next.Load(), tb.Services["bg"].wrr.next.Load(), eu.wrr.next.Load(), www.mirror.seq.Load()}
	for range 10 {
		explain(t, tb, req("GET", "/", "Host", "www.example.com"), "")
		explain(t, tb, req("GET", "/bg", "Host", "x"), "")
	}
	after := [...]uint64{www.Split.wrr.next.Load(), tb.Services["bg"].wrr.next.Load(), eu.wrr.next.Load(), www.mirror.seq.Load()}
	if before != after {
		t.Fatalf("counters moved: %v -> %v", before, after)
	}
	// The mirror sample explained is the next request's.
	for range 4 {
		want := explain(t, tb, req("GET", "/", "Host", "www.example.com"), "").Mirror.Sampled
		if got := www.MirrorSample(); got != want {
			t.Fatalf("explained sampled=%t, MirrorSample gave %t", want, got)
		}
	}
}

func TestExplainService(t *testing.T) {
	tb, eng := boundTable(t, strings.ReplaceAll(explainYAML, "endpoints: [", failOpenOutlier+", endpoints: ["))
	t.Run("geo: client region first, with the deciding network", func(t *testing.T) {
		ex := explain(t, tb, req("GET", "/v1", "Host", "api.example.com"), "198.51.100.7")
		s := ex.Service
		if s == nil || s.Policy != "geo" || s.Location == nil {
			t.Fatalf("%+v", ex)
		}
		if l := s.Location; l.Region != "us" || l.Source != "nets" || l.Prefix != 24 || l.Network != "198.51.100.0/24" {
			t.Fatalf("location %+v", l)
		}
		if !slices.Equal(s.Order, []string{"us", "eu"}) || ex.Pool != "us" || ex.Endpoint != "127.0.0.1:1003" {
			t.Fatalf("order %v pool %s endpoint %s", s.Order, ex.Pool, ex.Endpoint)
		}
	})
	t.Run("weighted: the draw decides the first pool", func(t *testing.T) {
		svc := tb.Services["bg"]
		for range 8 {
			ex := explain(t, tb, req("GET", "/bg", "Host", "x"), "")
			var got []string
			for _, p := range svc.Order(nil, "") {
				got = append(got, p.Name)
			}
			if !slices.Equal(ex.Service.Order, got) || ex.Service.Draw == nil || ex.Service.Draw.Of != 4 {
				t.Fatalf("explained order %v (draw %+v), Order gave %v", ex.Service.Order, ex.Service.Draw, got)
			}
		}
	})
	t.Run("round robin: the next slot, the one Pick takes", func(t *testing.T) {
		p := tb.Pools["eu"]
		for range 5 {
			ex := explain(t, tb, req("GET", "/v1", "Host", "api.example.com"), "10.0.0.1")
			if e := p.Pick(0, false, nil, false); e.Address != ex.Endpoint {
				t.Fatalf("explained %s, Pick gave %s", ex.Endpoint, e.Address)
			}
		}
	})
	t.Run("failover past a pool with nothing available", func(t *testing.T) {
		mustOverride(t, eng, "canary", "127.0.0.1:1004", health.ActionDrain)
		defer mustOverride(t, eng, "canary", "127.0.0.1:1004", health.ActionEnable)
		ex := explain(t, tb, req("GET", "/", "Host", "www.example.com", "X-Canary", "1"), "")
		pools := ex.Service.Pools
		if pools[0].Result != "none available" || pools[1].Result != "picked" || ex.Pool != "eu" {
			t.Fatalf("%+v", pools)
		}
		if e := pools[0].Endpoints[0]; e.Available || !e.Excluded || e.State != "draining" {
			t.Fatalf("drained endpoint %+v", e)
		}
	})
	t.Run("panic mode", func(t *testing.T) {
		for _, a := range []string{"127.0.0.1:1001", "127.0.0.1:1002"} {
			eng.Member("eu", a).Report(health.ConnectFailure)
		}
		eng.Member("us", "127.0.0.1:1003").Report(health.ConnectFailure)
		ex := explain(t, tb, req("GET", "/v1", "Host", "api.example.com"), "10.0.0.1")
		pools := ex.Service.Pools
		if pools[0].Result != "panic: picked" || !pools[0].Pick.Panic || pools[1].Result != "none available" || ex.Status != 0 {
			t.Fatalf("%+v", pools)
		}
		if e := pools[0].Endpoints[0]; e.Available || e.State != "ejected" {
			t.Fatalf("ejected endpoint %+v", e)
		}
	})
	t.Run("nothing usable: 503", func(t *testing.T) {
		for _, a := range []string{"127.0.0.1:1001", "127.0.0.1:1002"} {
			mustOverride(t, eng, "eu", a, health.ActionDown)
		}
		mustOverride(t, eng, "us", "127.0.0.1:1003", health.ActionDown)
		ex := explain(t, tb, req("GET", "/v1", "Host", "api.example.com"), "10.0.0.1")
		if ex.Status != 503 || ex.Pool != "" {
			t.Fatalf("%+v", ex)
		}
	})
}

// TestExplainHashPick holds ring_hash and maglev explanations to the
// balancers' own picks, key by key, with the home endpoint down too.
func TestExplainHashPick(t *testing.T) {
	tb, eng := boundTable(t, explainYAML)
	for _, tc := range []struct{ name, path, pool string }{{"ring_hash by header", "/ring", "ring"}, {"maglev by client address", "/mag", "mag"}} {
		t.Run(tc.name, func(t *testing.T) {
			p := tb.Pools[tc.pool]
			check := func(user, client string) *PickExplanation {
				r := req("GET", tc.path, "Host", "x", "X-User", user)
				ex := explain(t, tb, r, client)
				pk := ex.Service.Pools[0].Pick
				h, ok := p.HashKey(r, netip.MustParseAddr(client))
				if !ok || pk.Position == nil || pk.Hash != fmt.Sprintf("%016x", h) {
					t.Fatalf("pick %+v", pk)
				}
				if e := p.Pick(h, true, nil, false); e.Address != ex.Endpoint {
					t.Fatalf("explained %s, Pick gave %s (%s)", ex.Endpoint, e.Address, pk.Reason)
				}
				return pk
			}
			for i := range 20 {
				check(fmt.Sprint("user", i), fmt.Sprintf("192.0.2.%d", i))
			}
			pk := check("u", "192.0.2.200")
			mustOverride(t, eng, tc.pool, pk.Home, health.ActionDown)
			defer mustOverride(t, eng, tc.pool, pk.Home, health.ActionEnable)
			if moved := check("u", "192.0.2.200"); moved.Endpoint == pk.Home || moved.Home != pk.Home {
				t.Fatalf("home down: %+v", moved)
			}
		})
	}
	t.Run("no key: random, with chances", func(t *testing.T) {
		ex := explain(t, tb, req("GET", "/ring", "Host", "x"), "")
		pk := ex.Service.Pools[0].Pick
		if pk.Endpoint != "" || len(pk.Chances) != 3 || !strings.Contains(pk.HashKey, "absent") {
			t.Fatalf("%+v", pk)
		}
	})
	t.Run("random balancer chances follow weights", func(t *testing.T) {
		ex := explain(t, tb, req("GET", "/rnd", "Host", "x"), "")
		want := []Chance{{"127.0.0.1:4001", 25}, {"127.0.0.1:4002", 75}}
		if pk := ex.Service.Pools[0].Pick; !slices.Equal(pk.Chances, want) || ex.Endpoint != "" {
			t.Fatalf("%+v", pk)
		}
	})
}

// TestExplainAgreesWithMatch explains many random requests against random
// route sets (the index tests' generator) and checks that the route
// explained is Table.Match's, that every route listed before it failed a
// condition, and that the one it names matched.
func TestExplainAgreesWithMatch(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 4))
	services := map[string]*Service{"s": {Name: "s"}}
	for set := range 200 {
		data := make([]byte, 4096)
		for i := range data {
			data[i] = byte(rng.UintN(256))
		}
		in := &fuzzInput{b: data}
		routes, err := compileRoutes(&config.Config{Routes: fuzzRoutes(in)}, services, &rollouts{})
		if err != nil {
			t.Fatal(err)
		}
		tb := &Table{Routes: routes}
		for range 50 {
			r, client := fuzzRequest(in, "", "")
			if len(routes) > 0 && rng.IntN(2) == 0 {
				rc := routes[rng.IntN(len(routes))].Config
				host := ""
				if len(rc.Match.Host) > 0 {
					host = rc.Match.Host[rng.IntN(len(rc.Match.Host))]
				}
				r, client = fuzzRequest(in, host, rc.Match.Path+rc.Match.PathPrefix)
			}
			// Routes built by hand may have unrooted paths; the proxy
			// refuses unrooted requests before matching.
			if !strings.HasPrefix(r.URL.Path, "/") {
				r.URL.Path = "/" + r.URL.Path
			}
			want := tb.Match(r, client)
			ex := tb.ExplainHTTP(r, client, ExplainOptions{MaxRoutes: 1000})
			if ex.Route != routeName(want) && !(want == nil && ex.Route == "") {
				t.Fatalf("set %d: %s %s%s: explained %q, Match %s", set, r.Method, r.Host, r.URL.Path, ex.Route, routeName(want))
			}
			n := len(routes)
			if want != nil {
				n = want.Index + 1
			}
			if len(ex.Routes) != n {
				t.Fatalf("set %d: %d routes listed, want %d: %+v", set, len(ex.Routes), n, ex)
			}
			for i, tr := range ex.Routes {
				if tr.Matched != (want != nil && i == n-1) || tr.Matched == (len(tr.Failed) > 0) {
					t.Fatalf("set %d: route %s: matched=%t failed=%v; Match chose %s", set, tr.Name, tr.Matched, tr.Failed, routeName(want))
				}
			}
			for _, note := range ex.Notes {
				if strings.HasPrefix(note, "internal:") {
					t.Fatalf("set %d: %s", set, note)
				}
			}
		}
	}
}

// TestExplainRouteLimit keeps a huge table's answer short: host-only
// failures go first, and the matched route is always listed.
func TestExplainRouteLimit(t *testing.T) {
	var b strings.Builder
	b.WriteString(poolsYAML + "routes:\n")
	for i := range 500 {
		fmt.Fprintf(&b, "  - {name: h%d, match: {host: h%d.test}, service: sa}\n", i, i)
	}
	for i := range 10 {
		fmt.Fprintf(&b, "  - {name: p%d, match: {path: /p%d}, service: sa}\n", i, i)
	}
	b.WriteString("  - {name: last, match: {path_prefix: /}, service: sa}\n")
	tb := compileYAML(t, b.String())
	tests := []struct {
		name     string
		max      int
		listed   int
		omitted  int
		lastName string
	}{
		{"host-only failures dropped", 0, 11, 500, "last"},
		{"then truncated, keeping the match", 5, 5, 506, "last"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ex := tb.ExplainHTTP(req("GET", "/x", "Host", "x.test"), netip.Addr{}, ExplainOptions{MaxRoutes: tc.max})
			if len(ex.Routes) != tc.listed || ex.RoutesOmitted != tc.omitted || ex.Routes[len(ex.Routes)-1].Name != tc.lastName {
				t.Fatalf("listed %d omitted %d last %s", len(ex.Routes), ex.RoutesOmitted, ex.Routes[len(ex.Routes)-1].Name)
			}
		})
	}
}

func TestExplainHealthReason(t *testing.T) {
	tb, eng := boundTable(t, explainYAML)
	mustOverride(t, eng, "us", "127.0.0.1:1003", health.ActionDrain)
	ex := tb.ExplainHTTP(req("GET", "/v1", "Host", "api.example.com"), netip.MustParseAddr("198.51.100.1"), ExplainOptions{Status: eng.Status})
	us := ex.Service.Pools[0]
	if us.Name != "us" || us.Endpoints[0].State != "draining" || us.Endpoints[0].Reason == "" {
		t.Fatalf("%+v", us)
	}
	if ex.Pool != "eu" {
		t.Fatalf("pool %s, want eu", ex.Pool)
	}
}
