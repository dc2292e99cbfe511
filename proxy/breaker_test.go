package proxy

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meridian-lb/meridian/health"
)

// gate is a backend handler that holds every request until released,
// counting the ones that arrived and the connections they came on.
type gate struct {
	arrived atomic.Int64
	release chan struct{}
	conns   atomic.Int64
	once    sync.Once
}

func newGate() *gate { return &gate{release: make(chan struct{})} }

func (g *gate) serve(w http.ResponseWriter, r *http.Request) {
	g.arrived.Add(1)
	<-g.release
	io.WriteString(w, "ok")
}

func (g *gate) open() { g.once.Do(func() { close(g.release) }) }

// gated starts a backend behind g that counts its connections.
func gated(t *testing.T, g *gate) *backend {
	t.Helper()
	b := &backend{name: "gated", handler: g.serve}
	b.srv = httptest.NewUnstartedServer(http.HandlerFunc(b.serve))
	b.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			g.conns.Add(1)
		}
	}
	b.srv.Start()
	t.Cleanup(b.srv.Close)
	t.Cleanup(g.open) // before the server's Close, which waits for handlers
	b.addr = b.srv.Listener.Addr().String()
	return b
}

// result is one response of a concurrent request.
type result struct {
	code     int
	body     string
	overflow string // X-Meridian-Overflow
}

// send sends a request in the background; its result arrives on the
// returned channel.
func (e *env) send(method, path string, body string) <-chan result {
	ch := make(chan result, 1)
	go func() {
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		req, _ := http.NewRequest(method, e.url+path, rd)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			ch <- result{code: -1, body: err.Error()}
			return
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		ch <- result{code: res.StatusCode, body: string(b), overflow: res.Header.Get("X-Meridian-Overflow")}
	}()
	return ch
}

func recv(t *testing.T, ch <-chan result) result {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("no response in 10s")
	}
	return result{}
}

// healthy checks that nothing was charged to the endpoint: no failure
// reported, not ejected, and no upstream error counted.
func (e *env) healthy(pool, addr string) {
	e.t.Helper()
	st, ok := e.eng.Status(pool, addr)
	if !ok {
		e.t.Fatalf("no member %s/%s", pool, addr)
	}
	if st.State != health.StateUp || st.ConsecutiveFailures != 0 || st.Ejected {
		e.t.Errorf("%s/%s: state %s, %d consecutive failures, ejected %v; an overflow must never reach health", pool, addr, st.State, st.ConsecutiveFailures, st.Ejected)
	}
	for _, kind := range []string{kindConnect, kindReset, kindTimeout, kindBadResponse} {
		if v := e.metric("meridian_http_upstream_errors_total", map[string]string{"kind": kind}); v != 0 {
			e.t.Errorf("upstream_errors_total{kind=%s} = %v; an overflow is not the upstream's", kind, v)
		}
	}
}

func (e *env) overflows(pool, limit string) float64 {
	e.t.Helper()
	return e.metric("meridian_pool_overflow_total", map[string]string{"pool": pool, "limit": limit})
}

func (e *env) breaker(pool string) *breaker {
	e.h.stateMu.Lock()
	defer e.h.stateMu.Unlock()
	return e.h.breakers[pool]
}

// TestBreakerMaxRequests: N+1 concurrent requests to a pool with
// max_requests N: N reach the backend, exactly one is refused at once with
// 503, the header and the reason, counted per pool and limit, and the
// endpoint's health is untouched.
func TestBreakerMaxRequests(t *testing.T) {
	g := newGate()
	b := gated(t, g)
	e := newEnv(t, `
pools:
  web-eu:
    endpoints: [{{B}}]
    limits: {max_requests: 3}
    outlier: {consecutive_failures: 1}
services: {s: {pools: [web-eu]}}
routes: [{name: r, service: s}]
`, map[string]string{"B": b.addr})
	const n = 3
	var chs []<-chan result
	for range n + 1 {
		chs = append(chs, e.send("GET", "/", ""))
	}
	// n wait at the backend; the extra one is answered meanwhile.
	var refused []result
	waitFor(t, "the backend to hold n requests and one 503", func() bool {
		for i := 0; i < len(chs); i++ {
			select {
			case r := <-chs[i]:
				refused = append(refused, r)
				chs = append(chs[:i], chs[i+1:]...)
				i--
			default:
			}
		}
		return g.arrived.Load() == n && len(refused) == 1
	})
	r := refused[0]
	if r.code != 503 || r.overflow != "max_requests" || r.body != "meridian: pool \"web-eu\" over max_requests (3)\n" {
		t.Errorf("refused request: %d %q, X-Meridian-Overflow %q", r.code, r.body, r.overflow)
	}
	g.open()
	for _, ch := range chs {
		if r := recv(t, ch); r.code != 200 {
			t.Errorf("admitted request: %d %q", r.code, r.body)
		}
	}
	if v := e.overflows("web-eu", "max_requests"); v != 1 {
		t.Errorf("overflow{max_requests} = %v, want 1", v)
	}
	if v := e.metric("meridian_http_requests_total", map[string]string{"pool": "web-eu", "code": "503"}); v != 1 {
		t.Errorf("requests_total{pool=web-eu,code=503} = %v, want 1", v)
	}
	e.healthy("web-eu", b.addr)
	if brk := e.breaker("web-eu"); brk.requests.Load() != 0 {
		t.Errorf("%d requests still counted after all ended", brk.requests.Load())
	}
	// Now under the limit again.
	if res, body := e.get("/"); res.StatusCode != 200 {
		t.Errorf("after: %d %q", res.StatusCode, body)
	}
}

// TestBreakerPending: with max_connections 1 and max_pending 1, the second
// request waits for the first one's connection, the third is refused over
// max_pending, and when the first ends its connection serves the second:
// one connection in all.
func TestBreakerPending(t *testing.T) {
	for _, tc := range []struct{ name, method, body string }{
		{"h1client", "GET", ""},     // no body: h1Client's own connections
		{"transport", "POST", "hi"}, // a body: the http.Transport's, through the dial wrapper
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newGate()
			b := gated(t, g)
			e := newEnv(t, `
pools:
  p:
    endpoints: [{{B}}]
    limits: {max_connections: 1, max_pending: 1}
    outlier: {consecutive_failures: 1}
services: {s: {pools: [p]}}
routes: [{name: r, service: s}]
`, map[string]string{"B": b.addr})
			brk := e.breaker("p")
			first := e.send(tc.method, "/", tc.body)
			waitFor(t, "the first request at the backend", func() bool { return g.arrived.Load() == 1 })
			second := e.send(tc.method, "/", tc.body)
			waitFor(t, "the second request pending", func() bool { return brk.nwait.Load() == 1 })
			third := recv(t, e.send(tc.method, "/", tc.body))
			if third.code != 503 || third.overflow != "max_pending" || third.body != "meridian: pool \"p\" over max_pending (1)\n" {
				t.Errorf("third: %d %q, X-Meridian-Overflow %q", third.code, third.body, third.overflow)
			}
			if g.arrived.Load() != 1 {
				t.Errorf("%d requests reached the backend while the pool was at max_connections 1", g.arrived.Load())
			}
			g.open()
			for i, ch := range []<-chan result{first, second} {
				if r := recv(t, ch); r.code != 200 {
					t.Errorf("request %d: %d %q", i+1, r.code, r.body)
				}
			}
			if n := g.conns.Load(); n != 1 {
				t.Errorf("the backend saw %d connections; max_connections is 1", n)
			}
			if v := e.overflows("p", "max_pending"); v != 1 {
				t.Errorf("overflow{max_pending} = %v, want 1", v)
			}
			e.healthy("p", b.addr)
			brk.mu.Lock()
			open, waiting := brk.open, len(brk.waiters)
			brk.mu.Unlock()
			if open > 1 || waiting != 0 {
				t.Errorf("breaker: %d open, %d waiting", open, waiting)
			}
		})
	}
}

// TestBreakerPendingTimeout: a request waiting for a connection gives up
// at its route's deadline with 504 and the overflow header, counted as
// overflow{max_connections}, and the upstream is not blamed.
func TestBreakerPendingTimeout(t *testing.T) {
	for _, tc := range []struct{ name, method, body string }{
		{"h1client", "GET", ""},
		{"transport", "POST", "hi"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newGate()
			b := gated(t, g)
			e := newEnv(t, `
pools:
  p:
    endpoints: [{{B}}]
    limits: {max_connections: 1}
    outlier: {consecutive_failures: 1, on_timeout: true}
services: {s: {pools: [p]}}
routes:
  - {name: slow, match: {path_prefix: /slow}, service: s, timeout: 30s}
  - {name: fast, match: {path_prefix: /fast}, service: s, timeout: 200ms}
`, map[string]string{"B": b.addr})
			slow := e.send(tc.method, "/slow", tc.body)
			waitFor(t, "the slow request at the backend", func() bool { return g.arrived.Load() == 1 })
			start := time.Now()
			r := recv(t, e.send(tc.method, "/fast", tc.body))
			if took := time.Since(start); took < 150*time.Millisecond || took > 5*time.Second {
				t.Errorf("the pending request ended after %v; its route timeout is 200ms", took)
			}
			if r.code != 504 || r.overflow != "max_connections" || !strings.Contains(r.body, `pool "p" at max_connections (1)`) {
				t.Errorf("pending request: %d %q, X-Meridian-Overflow %q", r.code, r.body, r.overflow)
			}
			if v := e.overflows("p", "max_connections"); v != 1 {
				t.Errorf("overflow{max_connections} = %v, want 1", v)
			}
			e.healthy("p", b.addr)
			if brk := e.breaker("p"); brk.nwait.Load() != 0 {
				t.Errorf("%d still waiting", brk.nwait.Load())
			}
			g.open()
			if r := recv(t, slow); r.code != 200 {
				t.Errorf("slow: %d %q", r.code, r.body)
			}
		})
	}
}

// TestBreakerMaxRetries: a retry over the pool's max_retries is not made;
// the first attempt's answer stands, and the refusal is counted.
func TestBreakerMaxRetries(t *testing.T) {
	failing := newBackend(t, "failing", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(503)
		io.WriteString(w, "from upstream")
	})
	g := newGate()
	b := gated(t, g)
	e := newEnv(t, `
pools:
  first: {endpoints: [{{F}}]}
  backup:
    endpoints: [{{B}}]
    limits: {max_retries: 1}
services: {s: {policy: failover, pools: [first, backup]}}
routes: [{name: r, service: s, retry: {attempts: 1, on: ["503"]}}]
`, map[string]string{"F": failing.addr, "B": b.addr})
	retried := e.send("GET", "/", "")
	waitFor(t, "the first retry at the backup", func() bool { return g.arrived.Load() == 1 })
	r := recv(t, e.send("GET", "/", ""))
	if r.code != 503 || r.body != "from upstream" || r.overflow != "" {
		t.Errorf("second request: %d %q, X-Meridian-Overflow %q; want the first attempt's own 503", r.code, r.body, r.overflow)
	}
	if v := e.overflows("backup", "max_retries"); v != 1 {
		t.Errorf("overflow{backup,max_retries} = %v, want 1", v)
	}
	if v := e.metric("meridian_http_retries_total", map[string]string{"route": "r", "result": "sent"}); v != 1 {
		t.Errorf("retries sent = %v, want 1", v)
	}
	g.open()
	if r := recv(t, retried); r.code != 200 {
		t.Errorf("retried request: %d %q", r.code, r.body)
	}
	if brk := e.breaker("backup"); brk.retries.Load() != 0 || brk.requests.Load() != 0 {
		t.Errorf("backup still counts %d retries, %d requests", brk.retries.Load(), brk.requests.Load())
	}
	// With the retry over, the next one may go.
	g2 := recv(t, e.send("GET", "/", ""))
	if g2.code != 200 {
		t.Errorf("after: %d %q", g2.code, g2.body)
	}
}

// TestBreakerReload: a table swap keeps the pool's counts, and a lowered
// limit applies at once to the requests already in flight; raising it
// again admits at once.
func TestBreakerReload(t *testing.T) {
	g := newGate()
	b := gated(t, g)
	conf := func(max int) string {
		return fmt.Sprintf(`
pools:
  p:
    endpoints: [{{B}}]
    limits: {max_requests: %d}
services: {s: {pools: [p]}}
routes: [{name: r, service: s}]
`, max)
	}
	vars := map[string]string{"B": b.addr}
	e := newEnv(t, conf(3), vars)
	brk := e.breaker("p")
	held := []<-chan result{e.send("GET", "/", ""), e.send("GET", "/", "")}
	waitFor(t, "two requests at the backend", func() bool { return g.arrived.Load() == 2 })

	e.swap(conf(2), vars)
	if e.breaker("p") != brk || brk.requests.Load() != 2 {
		t.Fatalf("after the swap: breaker %p (was %p), %d in flight, want the same breaker with 2", e.breaker("p"), brk, brk.requests.Load())
	}
	r := recv(t, e.send("GET", "/", ""))
	if r.code != 503 || r.body != "meridian: pool \"p\" over max_requests (2)\n" {
		t.Errorf("with max_requests lowered to the 2 in flight: %d %q", r.code, r.body)
	}

	e.swap(conf(3), vars)
	held = append(held, e.send("GET", "/", ""))
	waitFor(t, "a third request at the backend", func() bool { return g.arrived.Load() == 3 })
	g.open()
	for _, ch := range held {
		if r := recv(t, ch); r.code != 200 {
			t.Errorf("held request: %d %q", r.code, r.body)
		}
	}
	if brk.requests.Load() != 0 {
		t.Errorf("%d still counted", brk.requests.Load())
	}

	// A pool that leaves the table takes its breaker and series along.
	e.swap(`
pools: {q: {endpoints: [{{B}}]}}
services: {s: {pools: [q]}}
routes: [{name: r, service: s}]
`, vars)
	if e.breaker("p") != nil {
		t.Error("the breaker of a removed pool is still kept")
	}
	if v := e.overflows("p", "max_requests"); v != 0 {
		t.Errorf("overflow series of a removed pool: %v", v)
	}
}

// TestBreakerEvictsIdle: at max_connections, a request to an endpoint
// without a free connection closes an idle one to another endpoint rather
// than waiting for it to expire.
func TestBreakerEvictsIdle(t *testing.T) {
	a, c := newBackend(t, "a", nil), newBackend(t, "c", nil)
	e := newEnv(t, `
pools:
  p:
    endpoints: [{{A}}, {{C}}]
    limits: {max_connections: 1, max_pending: 4}
services: {s: {pools: [p]}}
routes: [{name: r, service: s, timeout: 2s}]
`, map[string]string{"A": a.addr, "C": c.addr})
	for i := range 6 {
		if res, body := e.get("/"); res.StatusCode != 200 {
			t.Fatalf("request %d: %d %q", i, res.StatusCode, body)
		}
	}
	if a.hits.Load() != 3 || c.hits.Load() != 3 {
		t.Errorf("hits a=%d c=%d, want 3 each (round robin)", a.hits.Load(), c.hits.Load())
	}
	brk := e.breaker("p")
	brk.mu.Lock()
	open := brk.open
	brk.mu.Unlock()
	if open != 1 {
		t.Errorf("%d connections open, max 1", open)
	}
}

// TestBreakerLimitsOff: with Handler.limitsOff (the benchmark's baseline) pools
// have no breaker, and requests pass.
func TestBreakerLimitsOff(t *testing.T) {
	b := newBackend(t, "b", nil)
	e := newEnv(t, `
pools: {p: {endpoints: [{{B}}], limits: {max_requests: 1}}}
services: {s: {pools: [p]}}
routes: [{name: r, service: s}]
`, map[string]string{"B": b.addr}, withoutLimits())
	if e.breaker("p") != nil {
		t.Fatal("a breaker with limitsOff")
	}
	if res, body := e.get("/"); res.StatusCode != 200 {
		t.Fatalf("%d %q", res.StatusCode, body)
	}
}

// TestBreakerRetrySamePool: a retry replaces its attempt in the pool's
// max_requests, so a pool at max_requests 1 still retries a 503 on its
// other endpoint, and every count returns to zero.
func TestBreakerRetrySamePool(t *testing.T) {
	failing := newBackend(t, "failing", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) })
	ok := newBackend(t, "ok", nil)
	e := newEnv(t, `
pools:
  p:
    endpoints: [{{F}}, {{O}}, {{D}}]
    limits: {max_requests: 1, max_retries: 1}
services: {s: {pools: [p]}}
routes: [{name: r, service: s, retry: {attempts: 2, on: ["503", connect_failure]}}]
`, map[string]string{"F": failing.addr, "O": ok.addr, "D": deadAddr(t)})
	for i := range 6 {
		if res, body := e.get("/"); res.StatusCode != 200 || body != "ok" {
			t.Fatalf("request %d: %d %q", i, res.StatusCode, body)
		}
	}
	brk := e.breaker("p")
	if brk.requests.Load() != 0 || brk.retries.Load() != 0 {
		t.Errorf("counts left: %d requests, %d retries", brk.requests.Load(), brk.retries.Load())
	}
	for _, l := range limitNames {
		if v := e.overflows("p", l); v != 0 {
			t.Errorf("overflow{%s} = %v", l, v)
		}
	}
}

// TestBreakerWebSocket: an upgraded connection is a request in flight for
// its lifetime, over a connection the pool counts until it closes.
func TestBreakerWebSocket(t *testing.T) {
	ws := wsBackend(t)
	e := newEnv(t, `
pools: {a: {endpoints: [{{A}}], limits: {max_requests: 1}}}
services: {sa: {pools: [a]}}
routes: [{name: r, service: sa}]
`, map[string]string{"A": ws.Listener.Addr().String()})
	c, br := wsHandshake(t, e.addr)
	wsSend(c, "hi")
	if _, p := wsRead(t, br); string(p) != "hi" {
		t.Fatalf("echo %q", p)
	}
	brk := e.breaker("a")
	res, body := e.get("/")
	if res.StatusCode != 503 || res.Header.Get("X-Meridian-Overflow") != "max_requests" {
		t.Errorf("with the tunnel open: %d %q", res.StatusCode, body)
	}
	brk.mu.Lock()
	open := brk.open
	brk.mu.Unlock()
	if open != 1 {
		t.Errorf("%d connections counted with the tunnel open, want 1", open)
	}
	c.Close()
	waitFor(t, "the tunnel's request to end", func() bool { return brk.requests.Load() == 0 })
	waitFor(t, "the tunnel's connection to be uncounted", func() bool {
		brk.mu.Lock()
		defer brk.mu.Unlock()
		return brk.open == 0
	})
}

// TestBreakerMixedClients: a plain pool's requests without a body use
// h1Client's connections, those with one the http.Transport's; at
// max_connections 1 each side closes the other's idle connection to make
// room, so alternating requests never wait for an idle timeout.
func TestBreakerMixedClients(t *testing.T) {
	b := newBackend(t, "b", nil)
	e := newEnv(t, `
pools:
  p:
    endpoints: [{{B}}]
    limits: {max_connections: 1}
services: {s: {pools: [p]}}
routes: [{name: r, service: s, timeout: 3s}]
`, map[string]string{"B": b.addr})
	brk := e.breaker("p")
	for i, method := range []string{"GET", "POST", "GET", "POST", "POST", "GET"} {
		body := ""
		if method == "POST" {
			body = "x"
		}
		start := time.Now()
		r := recv(t, e.send(method, "/", body))
		if r.code != 200 || time.Since(start) > time.Second {
			t.Fatalf("request %d (%s): %d %q after %v", i, method, r.code, r.body, time.Since(start))
		}
		brk.mu.Lock()
		open := brk.open
		brk.mu.Unlock()
		if open > 1 {
			t.Fatalf("after request %d: %d connections open, max 1", i, open)
		}
	}
}
