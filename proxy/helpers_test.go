package proxy

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"

	"github.com/meridian-lb/meridian/config"
	"github.com/meridian-lb/meridian/health"
	"github.com/meridian-lb/meridian/routing"
)

// testEngine is the HTTP engine the proxy tests serve with: the config's,
// unless MERIDIAN_HTTP_ENGINE names one (scripts/test.sh runs the package
// once per engine).
func testEngine(def config.HTTPEngine) config.HTTPEngine {
	if e := os.Getenv("MERIDIAN_HTTP_ENGINE"); e != "" {
		return config.HTTPEngine(e)
	}
	return def
}

// backend is a test upstream that tags its responses with its name.
type backend struct {
	name string
	srv  *httptest.Server
	addr string
	hits atomic.Int64

	mu       sync.Mutex
	last     *http.Request // headers and URL of the last request
	lastBody string
	handler  http.HandlerFunc // optional override
}

func newBackend(t *testing.T, name string, h http.HandlerFunc) *backend {
	t.Helper()
	b := &backend{name: name, handler: h}
	b.srv = httptest.NewUnstartedServer(http.HandlerFunc(b.serve))
	b.srv.Start()
	t.Cleanup(b.srv.Close)
	b.addr = b.srv.Listener.Addr().String()
	return b
}

func (b *backend) serve(w http.ResponseWriter, r *http.Request) {
	b.hits.Add(1)
	body, _ := io.ReadAll(r.Body)
	b.mu.Lock()
	b.last = r.Clone(context.Background())
	b.lastBody = string(body)
	h := b.handler
	b.mu.Unlock()
	if h != nil {
		h(w, r)
		return
	}
	w.Header().Set("X-Backend", b.name)
	fmt.Fprint(w, b.name)
}

func (b *backend) lastRequest() (*http.Request, string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.last, b.lastBody
}

// deadAddr returns an address nothing listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// env is a proxy serving a config, with a health engine and a registry.
type env struct {
	t    testing.TB
	live routing.Live
	eng  *health.Engine
	h    *Handler
	reg  *prometheus.Registry
	addr string
	url  string
	stop context.CancelFunc
	done chan error
	srv  *Server
	cfg  config.HTTP
	// noLimits: pools without circuit breakers (withoutLimits).
	noLimits bool
	log      *zap.Logger
	// stdio receives the access log's stdout and stderr destinations;
	// io.Discard unless withStdio.
	stdio io.Writer
}

type envOpt func(*env)

func withLogger(l *zap.Logger) envOpt      { return func(e *env) { e.log = l } }
func withStdio(w io.Writer) envOpt         { return func(e *env) { e.stdio = w } }
func withHTTP(f func(*config.HTTP)) envOpt { return func(e *env) { f(&e.cfg) } }

// withoutLimits builds pools without circuit breakers (Handler.limitsOff).
func withoutLimits() envOpt { return func(e *env) { e.noLimits = true } }

// newEnv compiles y (with {{name}} replaced by vars) and serves it.
func newEnv(t testing.TB, y string, vars map[string]string, opts ...envOpt) *env {
	t.Helper()
	e := &env{t: t, reg: prometheus.NewRegistry(), done: make(chan error, 1), log: zap.NewNop(), stdio: io.Discard}
	e.eng = health.New(health.Options{Registerer: e.reg})
	tb := e.compile(y, vars)
	e.cfg = tb.Config.HTTP
	e.cfg.Engine = testEngine(e.cfg.Engine)
	for _, o := range opts {
		o(e)
	}
	e.h = NewHandler(Options{Logger: e.log, Registerer: e.reg, Settings: e.cfg, Stdout: e.stdio, Stderr: e.stdio})
	e.h.limitsOff = e.noLimits
	e.install(tb)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.addr = ln.Addr().String()
	e.url = "http://" + e.addr
	srv := NewServer(e.h, e.cfg, e.log)
	e.srv = srv
	srv.Grace = 5 * time.Second
	ctx, cancel := context.WithCancel(context.Background())
	e.stop = cancel
	go func() { e.done <- srv.Serve(ctx, ln) }()
	t.Cleanup(e.shutdown)
	return e
}

func (e *env) shutdown() {
	if e.stop == nil {
		return
	}
	e.stop()
	e.stop = nil
	select {
	case err := <-e.done:
		if err != nil {
			e.t.Errorf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		e.t.Error("Serve did not return after shutdown")
	}
	e.h.Close() // the access log's last lines, the last spans
}

func (e *env) compile(y string, vars map[string]string) *routing.Table {
	e.t.Helper()
	return compileBound(e.t, e.eng, y, vars)
}

// compileBound fills {{vars}} into y, compiles it and binds the table to
// eng, as the rebuild loop does.
func compileBound(t testing.TB, eng *health.Engine, y string, vars map[string]string) *routing.Table {
	t.Helper()
	for k, v := range vars {
		y = strings.ReplaceAll(y, "{{"+k+"}}", v)
	}
	cfg, err := config.Parse("test.yaml", []byte(y))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	tb, err := routing.Compile(cfg, routing.Inputs{})
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	eng.Sync(tb.HealthSpecs())
	tb.BindHealth(eng)
	return tb
}

// swap publishes a new table, as the rebuild loop does.
func (e *env) swap(y string, vars map[string]string) {
	e.install(e.compile(y, vars))
}

// install publishes tb as the rebuild loop does: compile the handler's
// state, then swap it in with the table.
func (e *env) install(tb *routing.Table) {
	c := e.h.Compile(tb)
	if err := c.Err(); err != nil {
		e.t.Fatalf("compile: %v", err)
	}
	e.h.Install(c)
	e.live.Store(tb)
}

func (e *env) override(pool, addr string, a health.Action) {
	e.t.Helper()
	if err := e.eng.Override(pool, addr, a); err != nil {
		e.t.Fatal(err)
	}
}

// do sends a request through the proxy and returns the response with its
// body read.
func (e *env) do(c *http.Client, method, path string, body io.Reader, hdr ...string) (*http.Response, string) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.url+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Host" {
			req.Host = hdr[i+1]
			continue
		}
		req.Header.Add(hdr[i], hdr[i+1])
	}
	if c == nil {
		c = http.DefaultClient
	}
	res, err := c.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	return res, string(b)
}

func (e *env) get(path string, hdr ...string) (*http.Response, string) {
	e.t.Helper()
	return e.do(nil, "GET", path, nil, hdr...)
}

// counter reads a counter or gauge value from the env's registry.
func (e *env) metric(name string, labels map[string]string) float64 {
	e.t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		e.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for k, v := range labels {
				if !hasLabel(m, k, v) {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return 0
}

func hasLabel(m *dto.Metric, k, v string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == k && l.GetValue() == v {
			return true
		}
	}
	return false
}

// waitFor polls cond until it holds or a deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// rawRequest writes raw bytes to the proxy and returns everything read
// until the connection closes (or the deadline).
func rawRequest(t *testing.T, addr, raw string) (string, bool) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c)
	closed := err == nil // EOF: the proxy closed the connection
	return string(b), closed
}
