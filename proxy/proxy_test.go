package proxy

import (
	"bufio"
	"io"
	"math"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/meridian-lb/meridian/config"
	"github.com/meridian-lb/meridian/health"
)

const splitConfig = `
http: {access_log: true}
pools:
  a: {region: eu, endpoints: [{{A}}]}
  b: {region: eu, endpoints: [{{B}}]}
  c: {region: us, endpoints: [{{C}}]}
services:
  sa: {pools: [a]}
  sb: {pools: [b]}
  sc: {pools: [c]}
routes:
  - name: api
    match: {host: api.test, path_prefix: /v1}
    service: sc
  - name: www
    match: {path_prefix: /}
    split:
      - {when: {header: {X-Canary: "1"}}, service: sb}
      - {when: {cookie: {beta: "yes"}}, service: sc}
      - {when: {query: {preview: {present: true}}}, service: sc}
      - {service: sb, weight: 10}
      - {service: sa, weight: 90}
`

func threeBackends(t *testing.T) (a, b, c *backend, vars map[string]string) {
	a, b, c = newBackend(t, "a", nil), newBackend(t, "b", nil), newBackend(t, "c", nil)
	return a, b, c, map[string]string{"A": a.addr, "B": b.addr, "C": c.addr}
}

func TestRoutingAndSplits(t *testing.T) {
	_, _, _, vars := threeBackends(t)
	e := newEnv(t, splitConfig, vars)
	tests := []struct {
		name string
		path string
		hdr  []string
		want string
	}{
		{"host and prefix", "/v1/x", []string{"Host", "api.test"}, "c"},
		{"host case and port", "/v1", []string{"Host", "API.Test:8080"}, "c"},
		{"other host falls to split", "/v1/x", []string{"Host", "other.test", "X-Canary", "1"}, "b"},
		{"header rule", "/", []string{"X-Canary", "1"}, "b"},
		{"cookie rule", "/", []string{"Cookie", "beta=yes"}, "c"},
		{"query rule", "/?preview", nil, "c"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, body := e.get(tc.path, tc.hdr...)
			if res.StatusCode != 200 || body != tc.want {
				t.Errorf("got %d %q, want 200 %q", res.StatusCode, body, tc.want)
			}
		})
	}
	t.Run("weights", func(t *testing.T) {
		counts := map[string]int{}
		const n = 2000
		for range n {
			_, body := e.get("/")
			counts[body]++
		}
		if math.Abs(float64(counts["b"])-0.1*n) > 0.02*n || counts["a"]+counts["b"] != n {
			t.Errorf("split 90/10 gave %v", counts)
		}
	})
}

func TestStickyThroughProxy(t *testing.T) {
	_, _, _, vars := threeBackends(t)
	e := newEnv(t, `
pools:
  a: {endpoints: [{{A}}]}
  b: {endpoints: [{{B}}]}
services:
  sa: {pools: [a]}
  sb: {pools: [b]}
routes:
  - name: www
    split: [{service: sa, weight: 50}, {service: sb, weight: 50}]
    sticky: {cookie: uid, set: true}
`, vars)
	for range 20 {
		res, first := e.get("/")
		var uid string
		for _, c := range res.Cookies() {
			if c.Name == "uid" {
				uid = c.Value
			}
		}
		if uid == "" {
			t.Fatalf("no sticky cookie set: %v", res.Header["Set-Cookie"])
		}
		for range 5 {
			res, body := e.get("/", "Cookie", "uid="+uid)
			if body != first {
				t.Fatalf("uid %s went to %s then %s", uid, first, body)
			}
			if len(res.Header["Set-Cookie"]) != 0 {
				t.Fatalf("cookie set again: %v", res.Header["Set-Cookie"])
			}
		}
	}
}

func TestNoRouteAndBadPaths(t *testing.T) {
	a := newBackend(t, "a", nil)
	y := `
pools: {a: {endpoints: [{{A}}]}}
services: {sa: {pools: [a]}}
routes: [{name: only, match: {host: only.test}, service: sa}]
`
	e := newEnv(t, y, map[string]string{"A": a.addr})
	res, body := e.get("/", "Host", "other.test")
	if res.StatusCode != 404 || !strings.Contains(body, "no route") {
		t.Errorf("unrouted: %d %q", res.StatusCode, body)
	}
	for _, raw := range []string{"/x/%2e%2e/admin", "/a%2fb", "/a%5cb", "/a%00"} {
		t.Run(raw, func(t *testing.T) {
			out, _ := rawRequest(t, e.addr, "GET "+raw+" HTTP/1.1\r\nHost: only.test\r\nConnection: close\r\n\r\n")
			if !strings.HasPrefix(out, "HTTP/1.1 400") {
				t.Errorf("got %q", firstLine(out))
			}
		})
	}
	t.Run("dot segments cleaned", func(t *testing.T) {
		out, _ := rawRequest(t, e.addr, "GET /a/../b//c/./d HTTP/1.1\r\nHost: only.test\r\nConnection: close\r\n\r\n")
		if !strings.HasPrefix(out, "HTTP/1.1 200") {
			t.Fatalf("got %q", firstLine(out))
		}
		if r, _ := a.lastRequest(); r.URL.Path != "/b/c/d" || r.RequestURI != "/b/c/d" {
			t.Errorf("upstream saw %q", r.RequestURI)
		}
	})
	t.Run("allow ambiguous", func(t *testing.T) {
		e.swap(y+"http: {allow_ambiguous_paths: true}\n", map[string]string{"A": a.addr})
		out, _ := rawRequest(t, e.addr, "GET /x%2Fy HTTP/1.1\r\nHost: only.test\r\nConnection: close\r\n\r\n")
		if !strings.HasPrefix(out, "HTTP/1.1 200") {
			t.Fatalf("got %q", firstLine(out))
		}
		if r, _ := a.lastRequest(); r.RequestURI != "/x%2Fy" {
			t.Errorf("upstream saw %q", r.RequestURI)
		}
	})
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\r\n")
	return line
}

func TestForwardingHeaders(t *testing.T) {
	a := newBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "X-Hop")
		w.Header().Set("X-Hop", "secret")
		w.Header().Set("Keep-Alive", "timeout=5")
		w.Header().Set("X-Internal", "1")
		w.Write([]byte("ok"))
	})
	y := `
pools: {a: {endpoints: [{{A}}]}}
services: {sa: {pools: [a]}}
routes:
  - name: r
    match: {path_prefix: /app}
    service: sa
    strip_prefix: /app
    host_rewrite: internal.test
    add_headers: {X-Added: "yes"}
    remove_headers: [X-Secret]
    response_headers: {add: {X-Served-By: meridian}, remove: [X-Internal]}
`
	e := newEnv(t, y, map[string]string{"A": a.addr})
	res, _ := e.get("/app/x?q=1", "Host", "public.test",
		"X-Forwarded-For", "6.6.6.6", "X-Forwarded-Host", "evil.test", "X-Forwarded-Proto", "https",
		"X-Forwarded-Prefix", "/admin", "X-Real-Ip", "6.6.6.6", "Forwarded", "for=6.6.6.6",
		"Connection", "X-Forwarded-For, X-Added, X-Request-Id, Keep-Alive", "X-Secret", "s", "X-Meridian-Mirror", "1",
		"X-Request-Id", "req-123")
	r, _ := a.lastRequest()
	checks := []struct{ header, want string }{
		{"X-Forwarded-For", "127.0.0.1"},
		{"X-Forwarded-Host", "public.test"},
		{"X-Forwarded-Proto", "http"},
		{"X-Forwarded-Prefix", ""},
		{"X-Real-Ip", ""},
		{"Forwarded", ""},
		{"X-Added", "yes"},
		{"X-Secret", ""},
		{"X-Meridian-Mirror", ""},
		{"Keep-Alive", ""},
	}
	for _, c := range checks {
		if got := strings.Join(r.Header[c.header], ","); got != c.want {
			t.Errorf("upstream %s = %q, want %q", c.header, got, c.want)
		}
	}
	if r.Host != "internal.test" || r.URL.Path != "/x" || r.URL.RawQuery != "q=1" {
		t.Errorf("upstream saw host %q path %q query %q", r.Host, r.URL.Path, r.URL.RawQuery)
	}
	if id := r.Header.Get("X-Request-Id"); id == "" {
		t.Error("no X-Request-Id upstream")
	}
	if res.Header.Get("X-Hop") != "" || res.Header.Get("Keep-Alive") != "" || res.Header.Get("X-Internal") != "" {
		t.Errorf("hop-by-hop or removed headers reached the client: %v", res.Header)
	}
	if res.Header.Get("X-Served-By") != "meridian" {
		t.Errorf("response header not added: %v", res.Header)
	}

	t.Run("request id kept", func(t *testing.T) {
		e.get("/app/", "X-Request-Id", "req-123")
		if r, _ := a.lastRequest(); r.Header.Get("X-Request-Id") != "req-123" {
			t.Errorf("X-Request-Id = %q", r.Header.Get("X-Request-Id"))
		}
	})
	t.Run("trusted proxy", func(t *testing.T) {
		e.swap(y+"http: {trusted_proxies: [127.0.0.0/8]}\n", map[string]string{"A": a.addr})
		e.get("/app/", "Host", "public.test", "X-Forwarded-For", "203.0.113.9", "X-Forwarded-Proto", "https", "X-Forwarded-Host", "orig.test")
		r, _ := a.lastRequest()
		if got := r.Header.Get("X-Forwarded-For"); got != "203.0.113.9, 127.0.0.1" {
			t.Errorf("X-Forwarded-For = %q", got)
		}
		if r.Header.Get("X-Forwarded-Proto") != "https" || r.Header.Get("X-Forwarded-Host") != "orig.test" {
			t.Errorf("trusted forwarding headers not kept: %v", r.Header)
		}
	})
}

func TestUpgradeAllowList(t *testing.T) {
	a := newBackend(t, "a", nil)
	e := newEnv(t, `
pools: {a: {endpoints: [{{A}}]}}
services: {sa: {pools: [a]}}
routes: [{name: r, service: sa}]
`, map[string]string{"A": a.addr})
	out, _ := rawRequest(t, e.addr, "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings, close\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n")
	if !strings.HasPrefix(out, "HTTP/1.1 200") {
		t.Fatalf("got %q", firstLine(out))
	}
	r, _ := a.lastRequest()
	for _, h := range []string{"Upgrade", "Connection", "Http2-Settings"} {
		if v := r.Header.Get(h); v != "" {
			t.Errorf("upstream got %s: %q", h, v)
		}
	}
}

func TestErrors(t *testing.T) {
	slow := newBackend(t, "slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	})
	reset := newBackend(t, "reset", func(w http.ResponseWriter, r *http.Request) {
		c, _, _ := w.(http.Hijacker).Hijack()
		c.(*net.TCPConn).SetLinger(0)
		c.Close()
	})
	good := newBackend(t, "good", nil)
	dead := deadAddr(t)
	e := newEnv(t, `
pools:
  dead: {endpoints: [{{DEAD}}]}
  slow: {endpoints: [{{SLOW}}]}
  reset: {endpoints: [{{RESET}}]}
  down: {endpoints: [{{GOOD}}], on_all_down: fail}
  panic: {endpoints: [{{GOOD}}], outlier: {consecutive_failures: 1, max_ejected_percent: 100}}
services:
  dead: {pools: [dead]}
  slow: {pools: [slow]}
  reset: {pools: [reset]}
  down: {pools: [down]}
  panic: {pools: [panic]}
routes:
  - {name: r-dead, match: {path: /dead}, service: dead}
  - {name: r-slow, match: {path: /slow}, service: slow, timeout: 200ms}
  - {name: r-reset, match: {path: /reset}, service: reset}
  - {name: r-down, match: {path: /down}, service: down}
  - {name: r-panic, match: {path: /panic}, service: panic}
`, map[string]string{"DEAD": dead, "SLOW": slow.addr, "RESET": reset.addr, "GOOD": good.addr})
	e.override("down", good.addr, health.ActionDown)
	// Ejected, a health verdict that panic mode overrides (an operator's
	// down it would not).
	e.eng.Member("panic", good.addr).Report(health.ConnectFailure)
	tests := []struct {
		path string
		code int
		kind string
	}{
		{"/dead", 502, kindConnect},
		{"/slow", 504, kindTimeout},
		{"/reset", 502, kindReset},
		{"/down", 503, kindNoEndpoint},
		{"/panic", 200, ""},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			before := e.metric("meridian_http_upstream_errors_total", map[string]string{"kind": tc.kind})
			res, body := e.get(tc.path)
			if res.StatusCode != tc.code {
				t.Fatalf("status %d %q, want %d", res.StatusCode, body, tc.code)
			}
			if tc.code == 200 {
				return
			}
			if !strings.Contains(body, "route r-"+tc.path[1:]) {
				t.Errorf("body %q does not name the route", body)
			}
			if strings.Contains(body, "127.0.0.1") || strings.Contains(body, "dial") {
				t.Errorf("body %q leaks upstream details", body)
			}
			if after := e.metric("meridian_http_upstream_errors_total", map[string]string{"kind": tc.kind}); after <= before {
				t.Errorf("upstream_errors{kind=%s} did not grow (%v)", tc.kind, after)
			}
		})
	}
}

func TestRetries(t *testing.T) {
	reset := newBackend(t, "reset", func(w http.ResponseWriter, r *http.Request) {
		c, _, _ := w.(http.Hijacker).Hijack()
		c.(*net.TCPConn).SetLinger(0)
		c.Close()
	})
	unavailable := newBackend(t, "unavailable", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(503)
	})
	hang := newBackend(t, "hang", func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	})
	good := newBackend(t, "good", nil)
	dead := deadAddr(t)
	e := newEnv(t, `
pools:
  reset: {endpoints: [{{RESET}}, {{GOOD}}], balance: round_robin, outlier: {enabled: false}}
  five: {endpoints: [{{UNAVAIL}}, {{GOOD}}], balance: round_robin}
  dead: {endpoints: [{{DEAD}}, {{GOOD}}], balance: round_robin}
  hang: {endpoints: [{{HANG}}, {{GOOD}}], balance: round_robin}
services:
  reset: {pools: [reset]}
  five: {pools: [five]}
  dead: {pools: [dead]}
  hang: {pools: [hang]}
routes:
  - {name: reset, match: {path: /reset}, service: reset, retry: {attempts: 2, on: [reset]}}
  - {name: five, match: {path: /five}, service: five, retry: {attempts: 1, on: ["503"]}}
  - {name: dead, match: {path: /dead}, service: dead}
  - {name: hang, match: {path: /hang}, service: hang, per_try_timeout: 150ms, retry: {attempts: 1, on: [timeout]}}
`, map[string]string{"RESET": reset.addr, "GOOD": good.addr, "UNAVAIL": unavailable.addr, "DEAD": dead, "HANG": hang.addr})

	for _, path := range []string{"/reset", "/five", "/dead", "/hang"} {
		t.Run("GET "+path, func(t *testing.T) {
			for i := range 4 {
				res, body := e.get(path)
				if res.StatusCode != 200 || body != "good" {
					t.Fatalf("request %d: %d %q, want the retry to reach good", i, res.StatusCode, body)
				}
			}
		})
	}
	t.Run("POST not retried on reset", func(t *testing.T) {
		codes := map[int]int{}
		for range 4 {
			res, _ := e.do(nil, "POST", "/reset", strings.NewReader("payload"))
			codes[res.StatusCode]++
		}
		if codes[502] != 2 || codes[200] != 2 {
			t.Errorf("POST statuses %v, want two 502s (no retry) and two 200s", codes)
		}
	})
	t.Run("POST retried on connect failure", func(t *testing.T) {
		for range 4 {
			res, body := e.do(nil, "POST", "/dead", strings.NewReader("payload"))
			if res.StatusCode != 200 || body != "good" {
				t.Fatalf("%d %q", res.StatusCode, body)
			}
			if _, got := good.lastRequest(); got != "payload" {
				t.Fatalf("good got body %q", got)
			}
		}
	})
	t.Run("PUT with body retried", func(t *testing.T) {
		for range 4 {
			res, body := e.do(nil, "PUT", "/five", strings.NewReader("data"))
			if res.StatusCode != 200 || body != "good" {
				t.Fatalf("%d %q", res.StatusCode, body)
			}
			if _, got := good.lastRequest(); got != "data" {
				t.Fatalf("good got body %q", got)
			}
		}
	})
	if got := e.metric("meridian_http_retries_total", map[string]string{"route": "reset", "result": "sent"}); got < 2 {
		t.Errorf("retries_total{route=reset} = %v", got)
	}
}

func TestRetryBudget(t *testing.T) {
	fail := func(name string) *backend {
		return newBackend(t, name, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) })
	}
	b1, b2, b3, b4 := fail("1"), fail("2"), fail("3"), fail("4")
	e := newEnv(t, `
pools: {p: {endpoints: [{{B1}}, {{B2}}, {{B3}}, {{B4}}]}}
services: {s: {pools: [p]}}
routes: [{name: r, service: s, retry: {attempts: 3, on: ["503"], budget_percent: 20}}]
`, map[string]string{"B1": b1.addr, "B2": b2.addr, "B3": b3.addr, "B4": b4.addr})
	const n = 400
	for range n {
		if res, _ := e.get("/"); res.StatusCode != 503 {
			t.Fatalf("status %d, want the upstream's 503", res.StatusCode)
		}
	}
	hits := b1.hits.Load() + b2.hits.Load() + b3.hits.Load() + b4.hits.Load()
	// Without a budget 4 attempts each: 1600 hits. With 20%: 400 + 80.
	if hits < n || hits > n+n/5+2 {
		t.Errorf("%d upstream attempts for %d requests, want at most %d", hits, n, n+n/5+2)
	}
	if refused := e.metric("meridian_http_retries_total", map[string]string{"route": "r", "result": "budget_exhausted"}); refused == 0 {
		t.Error("no retry was refused by the budget")
	}
}

func TestFailoverAndBack(t *testing.T) {
	a1, a2, b := newBackend(t, "a1", nil), newBackend(t, "a2", nil), newBackend(t, "b", nil)
	e := newEnv(t, `
pools:
  a: {endpoints: [{{A1}}, {{A2}}]}
  b: {endpoints: [{{B}}]}
services: {s: {policy: failover, pools: [a, b]}}
routes: [{name: r, service: s}]
`, map[string]string{"A1": a1.addr, "A2": a2.addr, "B": b.addr})
	want := func(ok func(string) bool, what string) {
		t.Helper()
		for range 6 {
			if res, body := e.get("/"); res.StatusCode != 200 || !ok(body) {
				t.Fatalf("%d %q, want %s", res.StatusCode, body, what)
			}
		}
	}
	isA := func(s string) bool { return s == "a1" || s == "a2" }
	want(isA, "pool a")
	e.override("a", a1.addr, health.ActionDown)
	want(func(s string) bool { return s == "a2" }, "a2 only")
	e.override("a", a2.addr, health.ActionDrain)
	want(func(s string) bool { return s == "b" }, "failover to pool b, not panic mode in a")
	e.override("a", a1.addr, health.ActionEnable)
	e.override("a", a2.addr, health.ActionEnable)
	want(isA, "back to pool a")
}

func TestPassiveEjection(t *testing.T) {
	good := newBackend(t, "good", nil)
	dead := deadAddr(t)
	e := newEnv(t, `
pools:
  a: {endpoints: [{{DEAD}}], outlier: {consecutive_failures: 2, ejection: 1m}}
  b: {endpoints: [{{GOOD}}]}
services: {s: {pools: [a, b]}}
routes: [{name: r, service: s}]
`, map[string]string{"DEAD": dead, "GOOD": good.addr})
	for range 3 {
		if res, body := e.get("/"); res.StatusCode != 200 || body != "good" {
			t.Fatalf("%d %q", res.StatusCode, body)
		}
	}
	m := e.eng.Member("a", dead)
	if m.Available() || m.State() != health.StateEjected {
		t.Fatalf("dead endpoint state %s, want ejected", m.State())
	}
	before := e.metric("meridian_http_upstream_errors_total", map[string]string{"kind": kindConnect})
	e.get("/")
	if after := e.metric("meridian_http_upstream_errors_total", map[string]string{"kind": kindConnect}); after != before {
		t.Errorf("an ejected endpoint was still tried (%v → %v connect failures)", before, after)
	}
}

func TestAccessLogAndMetrics(t *testing.T) {
	_, _, _, vars := threeBackends(t)
	var out syncBuffer
	e := newEnv(t, splitConfig, vars, withStdio(&out))
	e.get("/v1/x", "Host", "api.test", "X-Request-Id", "abc")
	waitFor(t, "the access log line", func() bool { return strings.HasSuffix(out.String(), "\n") })
	lines := splitLines(out.String())
	if len(lines) != 1 {
		t.Fatalf("%d access log lines, want 1", len(lines))
	}
	f := decodeLine(t, lines[0])
	for k, want := range map[string]any{"route": "api", "service": "sc", "pool": "c", "status": 200.0, "request_id": "abc", "retries": 0.0, "client": "127.0.0.1"} {
		if f[k] != want {
			t.Errorf("log %s = %v (%T), want %v", k, f[k], f[k], want)
		}
	}
	for _, k := range []string{"endpoint", "bytes_out", "duration", "upstream_duration"} {
		if _, ok := f[k]; !ok {
			t.Errorf("log lacks %s", k)
		}
	}
	if got := e.metric("meridian_http_requests_total", map[string]string{"route": "api", "service": "sc", "pool": "c", "code": "200"}); got != 1 {
		t.Errorf("requests_total = %v", got)
	}
	if got := e.metric("meridian_http_request_duration_seconds", map[string]string{"route": "api"}); got != 1 {
		t.Errorf("duration count = %v", got)
	}
	e.get("/", "Host", "x")
	if got := e.metric("meridian_http_in_flight_requests", nil); got != 0 {
		t.Errorf("in flight = %v after requests ended", got)
	}
}

func TestSlowClients(t *testing.T) {
	a := newBackend(t, "a", nil)
	e := newEnv(t, `
pools: {a: {endpoints: [{{A}}]}}
services: {sa: {pools: [a]}}
routes: [{name: r, service: sa}]
`, map[string]string{"A": a.addr}, withHTTP(func(h *config.HTTP) {
		h.ReadHeaderTimeout = config.Duration(300 * time.Millisecond)
		h.IdleTimeout = config.Duration(400 * time.Millisecond)
		h.BodyTimeout = config.Duration(400 * time.Millisecond)
	}))
	tests := []struct{ name, raw string }{
		{"slowloris head", "GET / HTTP/1.1\r\nHost: x\r\nX-Slow: "},
		{"stalled body", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly-a-bit"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", e.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.Write([]byte(tc.raw))
			c.SetReadDeadline(time.Now().Add(8 * time.Second))
			_, err = bufio.NewReader(c).ReadString(0)
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatal("the proxy kept the stalled connection open")
			}
		})
	}
}

func TestMaxConns(t *testing.T) {
	a := newBackend(t, "a", nil)
	e := newEnv(t, `
pools: {a: {endpoints: [{{A}}]}}
services: {sa: {pools: [a]}}
routes: [{name: r, service: sa}]
`, map[string]string{"A": a.addr}, withHTTP(func(h *config.HTTP) { h.MaxConns = 1 }))
	t.Run("busy connection holds the slot", func(t *testing.T) {
		hold, err := net.Dial("tcp", e.addr)
		if err != nil {
			t.Fatal(err)
		}
		// A head in progress: the connection is busy, not idle.
		hold.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n"))
		c := &http.Client{Timeout: 300 * time.Millisecond}
		if res, err := c.Get(e.url + "/"); err == nil {
			res.Body.Close()
			t.Fatal("a second connection was served past max_conns")
		}
		hold.Close()
		c.Timeout = 5 * time.Second
		res, err := c.Get(e.url + "/")
		if err != nil {
			t.Fatalf("after the slot freed: %v", err)
		}
		res.Body.Close()
		c.CloseIdleConnections()
	})
	t.Run("idle keep-alive connection is reclaimed", func(t *testing.T) {
		idle, err := net.Dial("tcp", e.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer idle.Close()
		br := bufio.NewReader(idle)
		idle.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		// The connection now idles in keep-alive (idle_timeout 120 s) and
		// holds the only slot; a new client must not wait for it.
		start := time.Now()
		c := &http.Client{Timeout: 5 * time.Second}
		res, err = c.Get(e.url + "/")
		if err != nil {
			t.Fatalf("new client not admitted at the cap: %v", err)
		}
		res.Body.Close()
		t.Logf("admitted after %v", time.Since(start))
		idle.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := br.ReadByte(); err == nil || isTimeout(err) {
			t.Fatalf("the idle connection was not closed: %v", err)
		}
		c.CloseIdleConnections()
	})
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

func TestInformationalResponsesLoseHopByHop(t *testing.T) {
	a := newBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Link", "</style.css>; rel=preload")
		h.Set("Connection", "X-Hop")
		h.Set("X-Hop", "secret")
		w.WriteHeader(http.StatusEarlyHints)
		h.Del("Link")
		h.Del("Connection")
		h.Del("X-Hop")
		w.Write([]byte("done"))
	})
	e := newEnv(t, oneRoute, map[string]string{"A": a.addr})
	out, _ := rawRequest(t, e.addr, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	early, final, ok := strings.Cut(out, "\r\n\r\n")
	if !ok || !strings.HasPrefix(early, "HTTP/1.1 103") || !strings.Contains(final, "HTTP/1.1 200") {
		t.Fatalf("got %q", out)
	}
	if !strings.Contains(early, "Link: </style.css>") {
		t.Errorf("103 lost its Link header: %q", early)
	}
	if strings.Contains(early, "X-Hop") || strings.Contains(early, "Connection: X-Hop") {
		t.Errorf("103 relayed hop-by-hop headers: %q", early)
	}
}
