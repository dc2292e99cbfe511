package health

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meridian-lb/meridian/config"
)

const okResponse = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

// keepTarget is an http target with a per-target cache, as the engine
// builds them, so its connection is kept between probes. Call it after
// starting the server.
func keepTarget(t *testing.T, addr string, c config.Check) Target {
	t.Helper()
	c.Type = "http"
	if c.Path == "" {
		c.Path = "/"
	}
	c.SetDefaults()
	tgt := Target{Address: addr, CheckName: "c", Check: &c, cache: &probeCache{}}
	t.Cleanup(func() { tgt.cache.dropConn(true) }) // before the server's cleanup waits for it
	return tgt
}

// probeOnce runs one probe of tgt the way the engine does (a probeRun, no
// context) and checks its error against want ("" means success).
func probeOnce(t *testing.T, p *NetProber, tgt Target, timeout time.Duration, want string) {
	t.Helper()
	var r probeRun
	r.reset(time.Now().Add(timeout))
	err := p.probe(&r, tgt)
	switch {
	case want == "" && err != nil:
		t.Fatalf("probe failed: %v", err)
	case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
		t.Fatalf("probe error %v, want one containing %q", err, want)
	}
}

// rawServer serves each accepted connection with handle(conn, its index
// from 1), on 127.0.0.1, and counts the connections.
type rawServer struct {
	addr  string
	conns atomic.Int32
}

func newRawServer(t *testing.T, handle func(c net.Conn, br *bufio.Reader, n int)) *rawServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &rawServer{addr: ln.Addr().String()}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n := int(s.conns.Add(1))
			wg.Go(func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				handle(c, bufio.NewReader(c), n)
			})
		}
	})
	return s
}

// serveRequests answers requests on c until respond returns false or the
// connection ends; respond gets the request's index on c, from 1.
func serveRequests(c net.Conn, br *bufio.Reader, respond func(i int) bool) {
	for i := 1; ; i++ {
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		if !respond(i) {
			return
		}
	}
}

// countingServer is an http server that counts the connections it
// accepts and the requests that ask it to close theirs.
func countingServer(t *testing.T) (srv *httptest.Server, conns, closeReq *atomic.Int32) {
	conns, closeReq = new(atomic.Int32), new(atomic.Int32)
	srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Close {
			closeReq.Add(1)
		}
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, conns, closeReq
}

func TestKeptConnectionIsReused(t *testing.T) {
	srv, conns, closeReq := countingServer(t)
	var p NetProber
	tgt := keepTarget(t, srv.Listener.Addr().String(), config.Check{})
	for range 5 {
		probeOnce(t, &p, tgt, time.Second, "")
	}
	if got := conns.Load(); got != 1 {
		t.Fatalf("5 probes used %d connections, want 1", got)
	}
	if closeReq.Load() != 0 {
		t.Fatalf("a kept connection's request asked to close it")
	}
	tgt.cache.dropConn(true)
	probeOnce(t, &p, tgt, time.Second, "")
	if got := conns.Load(); got != 2 {
		t.Fatalf("after the target went away: %d connections, want 2", got)
	}
	if tgt.cache.idle != nil {
		t.Fatalf("a removed target kept its connection")
	}
}

// TestFreshConnectionsOption: the prober's FreshConnections and a
// check's reuse_connection: false each make every probe connect anew.
func TestFreshConnectionsOption(t *testing.T) {
	no := false
	for _, tc := range []struct {
		name  string
		fresh bool
		check config.Check
	}{
		{"FreshConnections", true, config.Check{}},
		{"reuse_connection: false", false, config.Check{ReuseConnection: &no}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, conns, closeReq := countingServer(t)
			tgt := keepTarget(t, srv.Listener.Addr().String(), tc.check)
			p := &NetProber{FreshConnections: tc.fresh}
			for range 3 {
				probeOnce(t, p, tgt, time.Second, "")
			}
			if got, asked := conns.Load(), closeReq.Load(); got != 3 || asked != 3 {
				t.Fatalf("3 probes: %d connections, %d asked to close; want 3 and 3", got, asked)
			}
		})
	}
}

// TestKeptConnectionDropped: what must not be reused is not.
func TestKeptConnectionDropped(t *testing.T) {
	tests := []struct {
		name    string
		handler http.HandlerFunc
		check   config.Check
		want    string // the probes' error, "" for success
	}{
		{name: "Connection: close", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Connection", "close")
		}},
		{name: "body beyond the cap", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Write(make([]byte, maxProbeBody+1))
		}},
		{name: "unexpected status", handler: func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusServiceUnavailable)
		}, want: "status 503, want 200-399"},
		{name: "body string missing", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte("starting"))
		}, check: config.Check{Body: "ready"}, want: `body does not contain "ready"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var conns atomic.Int32
			srv := httptest.NewUnstartedServer(tc.handler)
			srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
				if s == http.StateNew {
					conns.Add(1)
				}
			}
			srv.Start()
			t.Cleanup(srv.Close)
			var p NetProber
			tgt := keepTarget(t, srv.Listener.Addr().String(), tc.check)
			for range 3 {
				probeOnce(t, &p, tgt, time.Second, tc.want)
			}
			if got := conns.Load(); got != 3 {
				t.Fatalf("3 probes used %d connections, want 3", got)
			}
		})
	}
}

// TestKeptConnectionMisbehavingServer: a server that closes, answers with
// garbage or stalls on a kept connection. A stale connection never fails a
// probe; a stall is a timeout, and the next probe dials afresh.
func TestKeptConnectionMisbehavingServer(t *testing.T) {
	tests := []struct {
		name string
		// respond answers request i of connection n; false ends the
		// connection.
		respond func(c net.Conn, n, i int) bool
		// wants: each probe's error ("" for success).
		wants []string
		conns int32
	}{
		{
			name: "closes after each response, without saying so",
			respond: func(c net.Conn, n, i int) bool {
				c.Write([]byte(okResponse))
				return false
			},
			wants: []string{"", "", ""}, conns: 3,
		},
		{
			name: "closes as the second request arrives",
			respond: func(c net.Conn, n, i int) bool {
				if n == 1 && i == 2 {
					return false
				}
				c.Write([]byte(okResponse))
				return true
			},
			wants: []string{"", "", ""}, conns: 2, // the retry's connection is kept
		},
		{
			name: "resets as the second request arrives",
			respond: func(c net.Conn, n, i int) bool {
				if n == 1 && i == 2 {
					c.(*net.TCPConn).SetLinger(0)
					return false
				}
				c.Write([]byte(okResponse))
				return true
			},
			wants: []string{"", "", ""}, conns: 2,
		},
		{
			name: "sends garbage after the response",
			respond: func(c net.Conn, n, i int) bool {
				c.Write([]byte(okResponse + "garbage\r\n\r\n"))
				return true
			},
			wants: []string{"", "", ""}, conns: 3,
		},
		{
			name: "sends an idle timeout's 408 after the response",
			respond: func(c net.Conn, n, i int) bool {
				c.Write([]byte(okResponse))
				c.Write([]byte("HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"))
				return false
			},
			wants: []string{"", "", ""}, conns: 3,
		},
		{
			name: "answers garbage on every connection",
			respond: func(c net.Conn, n, i int) bool {
				c.Write([]byte("garbage\r\n\r\n"))
				return true
			},
			wants: []string{"malformed HTTP response", "malformed HTTP response"}, conns: 2,
		},
		{
			name: "kept connection goes silent",
			respond: func(c net.Conn, n, i int) bool {
				if i == 2 {
					time.Sleep(time.Second) // past the probe's timeout
					return false
				}
				c.Write([]byte(okResponse))
				return true
			},
			// As if a middlebox dropped each connection after its first
			// exchange without a word: after half the time each later
			// probe goes to a fresh connection, and succeeds.
			wants: []string{"", "", ""}, conns: 3,
		},
		{
			name: "server stalls after its first answer",
			respond: func(c net.Conn, n, i int) bool {
				if n > 1 || i > 1 {
					time.Sleep(time.Second) // past the probe's timeout
					return false
				}
				c.Write([]byte(okResponse))
				return true
			},
			// Silent on the kept connection and on the fresh one: a
			// timeout; the next probe dials again and times out too.
			wants: []string{"", "context deadline exceeded", "context deadline exceeded"}, conns: 3,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := newRawServer(t, func(c net.Conn, br *bufio.Reader, n int) {
				serveRequests(c, br, func(i int) bool { return tc.respond(c, n, i) })
			})
			var p NetProber
			tgt := keepTarget(t, srv.addr, config.Check{})
			for _, want := range tc.wants {
				probeOnce(t, &p, tgt, 300*time.Millisecond, want)
			}
			if got := srv.conns.Load(); got != tc.conns {
				t.Fatalf("%d probes used %d connections, want %d", len(tc.wants), got, tc.conns)
			}
		})
	}
}

// TestKeptConnectionFailureClassified: a target that went away after a
// kept connection is refused on the retry, not reported as a stale
// connection's error.
func TestKeptConnectionFailureClassified(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		if _, err := http.ReadRequest(br); err == nil {
			c.Write([]byte(okResponse))
		}
		http.ReadRequest(br) // the second probe: close without a word
	}()
	var p NetProber
	tgt := keepTarget(t, addr, config.Check{})
	probeOnce(t, &p, tgt, time.Second, "")
	ln.Close() // the server is gone: the retry's dial is refused
	probeOnce(t, &p, tgt, time.Second, "connection refused")
	<-done
}

// TestEngineClosesKeptConnections: the engine keeps an http target's
// connection between probes, and closes it when the target goes away and
// when Run returns.
func TestEngineClosesKeptConnections(t *testing.T) {
	var open, opened atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			open.Add(1)
			opened.Add(1)
		case http.StateClosed, http.StateHijacked:
			open.Add(-1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	c := &config.Check{Type: "http", Path: "/", Interval: config.Duration(10 * time.Millisecond), Timeout: config.Duration(time.Second), Rise: 1, Fall: 1}
	c.SetDefaults()
	spec := func(eps ...string) []PoolSpec {
		return []PoolSpec{{Name: "web", CheckName: "c", Check: c, Endpoints: eps}}
	}
	addr := srv.Listener.Addr().String()
	poll := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}
	for _, end := range []string{"removal", "Run returning"} {
		t.Run(end, func(t *testing.T) {
			e := New(Options{})
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- e.Run(ctx) }()
			defer func() {
				cancel()
				<-done
			}()
			before := opened.Load()
			e.Sync(spec(addr))
			m := e.Member("web", addr)
			var probes int
			poll("ten probes", func() bool {
				s, _ := e.Status("web", addr)
				if s.Probe != nil {
					probes = int(s.Probe.Probes)
				}
				return probes >= 10
			})
			// One connection per keptProbes probes (one more may be on
			// its way as the count is read).
			if n := int(opened.Load() - before); !m.Available() || n < probes/keptProbes || n > probes/keptProbes+1 {
				t.Fatalf("after %d probes: available %v, %d connections", probes, m.Available(), n)
			}
			if end == "removal" {
				e.Sync(nil)
			} else {
				cancel()
				<-done
				done <- nil
			}
			poll("the kept connection to close", func() bool { return open.Load() == 0 })
		})
	}
}

// TestKeptConnectionServerStopsAccepting: a server that accepts no new
// connection (here its listener is closed) does not stay up on the one it
// accepted before: every keptProbes-th probe dials.
func TestKeptConnectionServerStopsAccepting(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(srv.Close)
	var p NetProber
	tgt := keepTarget(t, srv.Listener.Addr().String(), config.Check{})
	probeOnce(t, &p, tgt, time.Second, "")
	srv.Listener.Close()
	for range keptProbes - 1 {
		probeOnce(t, &p, tgt, time.Second, "") // the kept connection
	}
	probeOnce(t, &p, tgt, time.Second, "connection refused")
}
