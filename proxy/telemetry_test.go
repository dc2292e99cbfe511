package proxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meridian-lb/meridian/telemetry"
)

func poolStats(st telemetry.Stats, name string) telemetry.PoolStats {
	for _, p := range st.HTTP.Pools {
		if p.Name == name {
			return p
		}
	}
	return telemetry.PoolStats{}
}

func endpointStats(p telemetry.PoolStats, addr string) telemetry.EndpointStats {
	for _, e := range p.Endpoints {
		if e.Address == addr {
			return e
		}
	}
	return telemetry.EndpointStats{}
}

// TestTelemetryAttribution checks where each count lands: the client's
// request on the route arm the split chose, each attempt on the endpoint
// tried (a connect failure on the dead one, the response on the live one),
// the bytes and whole latency on the endpoint that served the last attempt.
func TestTelemetryAttribution(t *testing.T) {
	slow := newBackend(t, "slow", func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(20 * time.Millisecond)
		w.Write([]byte(strings.Repeat("x", 100)))
	})
	canary := newBackend(t, "canary", nil)
	dead := deadAddr(t)
	e := newEnv(t, `
pools:
  web: {endpoints: [{{DEAD}}, {{SLOW}}], outlier: {consecutive_failures: 1000}}
  canary: {endpoints: [{{CANARY}}]}
services: {web: {pools: [web]}, canary: {pools: [canary]}}
routes:
  - name: www
    match: {path_prefix: /}
    split:
      - {when: {header: {X-Canary: "1"}}, service: canary}
      - {service: web, weight: 100}
`, map[string]string{"DEAD": dead, "SLOW": slow.addr, "CANARY": canary.addr})
	const n = 10
	for range n {
		if res, _ := e.do(nil, "POST", "/", strings.NewReader("hello"), "Content-Type", "text/plain"); res.StatusCode != 200 {
			t.Fatalf("status %d", res.StatusCode)
		}
	}
	for range 3 {
		if res, _ := e.get("/", "X-Canary", "1"); res.StatusCode != 200 {
			t.Fatalf("canary status %d", res.StatusCode)
		}
	}
	st := e.h.tel.Stats()
	if len(st.HTTP.Routes) != 1 {
		t.Fatalf("routes %+v", st.HTTP.Routes)
	}
	r := st.HTTP.Routes[0]
	if r.Totals.Requests != n+3 || r.Totals.Responses["2xx"] != n+3 || r.InFlight != 0 {
		t.Errorf("route totals %+v in flight %d", r.Totals, r.InFlight)
	}
	if len(r.Arms) != 2 || r.Arms[0].Requests != 3 || !r.Arms[0].Rule || r.Arms[1].Requests != n || r.Arms[1].Weight != 100 {
		t.Errorf("arms %+v", r.Arms)
	}
	web := poolStats(st, "web")
	live, gone := endpointStats(web, slow.addr), endpointStats(web, dead)
	if live.Totals.Responses["2xx"] != n || live.Totals.BytesOut != 100*n || live.Totals.BytesIn != 5*n {
		t.Errorf("live endpoint %+v", live.Totals)
	}
	if live.Totals.UpstreamLatency.Count != n || live.Totals.UpstreamLatency.SumSeconds < 0.02*n {
		t.Errorf("live endpoint upstream latency %+v, want %d of at least 20 ms", live.Totals.UpstreamLatency, n)
	}
	// Round robin sends about half the first attempts to the dead
	// endpoint; each fails to connect and is retried on the live one.
	if f := gone.Totals.Failures["connect_failure"]; f == 0 || gone.Totals.Requests != f || gone.Totals.Latency.Count != 0 {
		t.Errorf("dead endpoint %+v", gone.Totals)
	}
	if web.Totals.Requests != n+gone.Totals.Requests {
		t.Errorf("pool counts %d attempts, want %d", web.Totals.Requests, n+gone.Totals.Requests)
	}
	if c := endpointStats(poolStats(st, "canary"), canary.addr); c.Totals.Responses["2xx"] != 3 {
		t.Errorf("canary endpoint %+v", c.Totals)
	}
	svc := map[string]uint64{}
	for _, s := range st.HTTP.Services {
		svc[s.Name] = s.Totals.Requests
	}
	if svc["web"] != n || svc["canary"] != 3 {
		t.Errorf("services %v", svc)
	}
}

// TestTelemetryInFlight: a request waiting on its upstream is in flight on
// its route, service, pool and endpoint, and on none once it finished.
func TestTelemetryInFlight(t *testing.T) {
	release := make(chan struct{})
	held := make(chan struct{}, 1)
	b := newBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		held <- struct{}{}
		<-release
	})
	e := newEnv(t, `
pools: {p: {endpoints: [{{B}}]}}
services: {s: {pools: [p]}}
routes: [{name: r, match: {path_prefix: /}, service: s}]
`, map[string]string{"B": b.addr})
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.get("/")
	}()
	<-held
	st := e.h.tel.Stats()
	if r, p := st.HTTP.Routes[0], poolStats(st, "p"); r.InFlight != 1 || st.HTTP.Services[0].InFlight != 1 || p.InFlight != 1 || p.Endpoints[0].InFlight != 1 {
		t.Errorf("in flight: route %d, service %d, pool %d, endpoint %d", r.InFlight, st.HTTP.Services[0].InFlight, p.InFlight, p.Endpoints[0].InFlight)
	}
	close(release)
	<-done
	st = e.h.tel.Stats()
	if r, p := st.HTTP.Routes[0], poolStats(st, "p"); r.InFlight != 0 || p.InFlight != 0 {
		t.Errorf("after: route %d, pool %d in flight", r.InFlight, p.InFlight)
	}
}

// TestTelemetryFollowsReloads: an endpoint removed by a reload leaves the
// stats and the exported series at once; one kept keeps its counts.
func TestTelemetryFollowsReloads(t *testing.T) {
	a, b := newBackend(t, "a", nil), newBackend(t, "b", nil)
	e := newEnv(t, `
pools: {p: {endpoints: [{{A}}, {{B}}]}}
services: {s: {pools: [p]}}
routes: [{name: r, match: {path_prefix: /}, service: s}]
`, map[string]string{"A": a.addr, "B": b.addr})
	tel := e.h.tel // the handler's own, as without Options.Telemetry
	e.reg.MustRegister(tel.Collector())
	for range 4 {
		e.get("/")
	}
	e.swap(`
pools: {p: {endpoints: [{{A}}]}}
services: {s: {pools: [p]}}
routes: [{name: r, match: {path_prefix: /}, service: s}]
`, map[string]string{"A": a.addr})
	e.get("/")
	p := poolStats(tel.Stats(), "p")
	if len(p.Endpoints) != 1 || p.Endpoints[0].Totals.Responses["2xx"] != 3 || p.Totals.Requests != 5 {
		t.Errorf("after the reload: %+v", p)
	}
	if v := e.metric("meridian_http_endpoint_requests_total", map[string]string{"endpoint": b.addr}); v != 0 {
		t.Errorf("removed endpoint still exported: %v", v)
	}
	if v := e.metric("meridian_http_endpoint_requests_total", map[string]string{"endpoint": a.addr, "class": "2xx"}); v != 3 {
		t.Errorf("kept endpoint exports %v, want 3", v)
	}
	if v := e.metric("meridian_http_upstream_duration_seconds", map[string]string{"pool": "p"}); v != 5 {
		t.Errorf("pool upstream histogram counts %v, want 5", v)
	}
}

// BenchmarkHandlerInProcess is one request through Handler.ServeHTTP with
// the network taken out: the upstream client is replaced by one that
// answers from memory, and the response goes to a writer that discards
// it. What is left is the handler's own CPU per request (routing, metrics,
// telemetry, bookkeeping), steady enough to compare builds to within a
// fraction of a microsecond, which the loopback benchmarks cannot.
func BenchmarkHandlerInProcess(b *testing.B) {
	e := newEnv(b, `
http: {access_log: false}
pools: {backend: {endpoints: [127.0.0.1:9]}, other: {endpoints: [127.0.0.1:10]}}
services: {web: {pools: [backend]}, other: {pools: [other]}}
routes:
  - {name: api, match: {host: api.example.test, path_prefix: /v1}, service: other}
  - {name: admin, match: {host: "*.internal.test"}, service: other}
  - {name: www, match: {path_prefix: /}, service: web}
`, nil)
	for _, up := range e.h.state.Load().pools {
		up.rt = memUpstream{}
	}
	one := func(req *http.Request, w *discardWriter) {
		clear(w.h)
		w.code = 0
		e.h.ServeHTTP(w, req)
		if w.code != 200 {
			b.Errorf("status %d", w.code)
		}
	}
	// The steady state: cells that counted have their stripes from the
	// next tick, which the app's telemetry takes every second.
	one(httptest.NewRequest("GET", "http://www.example.test/items/42", nil), &discardWriter{h: http.Header{}})
	e.h.tel.Tick()
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		req := httptest.NewRequest("GET", "http://www.example.test/items/42", nil)
		w := &discardWriter{h: http.Header{}}
		c0 := processCPU()
		for b.Loop() {
			one(req, w)
		}
		b.ReportMetric(float64(processCPU()-c0)/float64(b.N), "cpu-ns/op")
	})
	// parallel has every CPU serve the same route and endpoint, the worst
	// case for counters that cores share.
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		c0 := processCPU()
		b.RunParallel(func(pb *testing.PB) {
			req := httptest.NewRequest("GET", "http://www.example.test/items/42", nil)
			w := &discardWriter{h: http.Header{}}
			for pb.Next() {
				one(req, w)
			}
		})
		b.ReportMetric(float64(processCPU()-c0)/float64(b.N), "cpu-ns/op")
	})
}

// processCPU is the CPU time the process used so far, user and system:
// unlike ns/op, it does not grow when other processes take the CPUs.
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// memUpstream answers every request with a small 200 from memory.
type memUpstream struct{}

func (memUpstream) RoundTrip(r *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: 200, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{"Content-Type": {"text/plain"}}, ContentLength: 13,
		Body: io.NopCloser(strings.NewReader("hello world!\n")), Request: r}, nil
}

// discardWriter is a ResponseWriter that keeps the status and drops the body.
type discardWriter struct {
	h    http.Header
	code int
}

func (w *discardWriter) Header() http.Header { return w.h }
func (w *discardWriter) WriteHeader(c int)   { w.code = c }
func (w *discardWriter) Write(p []byte) (int, error) {
	if w.code == 0 {
		w.code = 200
	}
	return len(p), nil
}
