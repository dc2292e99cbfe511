package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meridian-lb/meridian/config"
	"github.com/meridian-lb/meridian/health"
)

// bodyCounter is an upstream that reads every request body to its end and
// counts the bodies that arrived complete: a client's truncated or
// malformed body must never arrive as a complete one.
type bodyCounter struct {
	*backend
	complete atomic.Int64
}

func newBodyCounter(t *testing.T) *bodyCounter {
	bc := &bodyCounter{}
	bc.backend = newBackend(t, "up", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "up")
	})
	bc.backend.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		bc.hits.Add(1)
		if _, err := io.ReadAll(r.Body); err == nil {
			bc.complete.Add(1)
		}
		fmt.Fprint(w, "up")
	})
	return bc
}

// rawExchange writes raw to the proxy, runs after (more writing, a pause,
// a half-close) when set, and returns the status code of the answer (0 for
// none) and whether the proxy closed the connection after it.
func rawExchange(t *testing.T, addr, raw string, after func(net.Conn)) (int, bool) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Error(err)
		return 0, false
	}
	defer c.Close()
	if _, err := io.WriteString(c, raw); err != nil {
		t.Error(err)
		return 0, false
	}
	if after != nil {
		after(c)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		return 0, true
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	_, err = br.ReadByte()
	return res.StatusCode, err != nil && !isTimeout(err)
}

// TestClientFaultsNeverBlameUpstream sends a few hundred requests of each
// kind of broken body at a two-endpoint pool with passive outlier detection
// on (the default): each gets the client error it deserves, on a closed
// connection, and none is charged to the upstream: no ejection, no upstream
// error, no complete body upstream.
func TestClientFaultsNeverBlameUpstream(t *testing.T) {
	u1, u2 := newBodyCounter(t), newBodyCounter(t)
	e := newEnv(t, `
pools: {a: {endpoints: [{{U1}}, {{U2}}], outlier: {consecutive_failures: 5}}}
services: {sa: {pools: [a]}}
routes: [{name: r, service: sa}]
`, map[string]string{"U1": u1.addr, "U2": u2.addr}, withHTTP(func(h *config.HTTP) {
		h.BodyTimeout = config.Duration(300 * time.Millisecond)
		h.MinBodyRate = 1000
		h.BodyRateGrace = config.Duration(300 * time.Millisecond)
		h.MaxBodyBytes = 64
	}))
	const head = "POST / HTTP/1.1\r\nHost: x\r\n"
	chunked := head + "Transfer-Encoding: chunked\r\n\r\n"
	halfClose := func(c net.Conn) { c.(*net.TCPConn).CloseWrite() }
	trickle := func(c net.Conn) {
		for range 20 {
			if _, err := c.Write([]byte("a")); err != nil {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	tests := []struct {
		name   string
		n      int
		raw    string
		after  func(net.Conn)
		status int // 0: no answer, the connection is closed
		kind   string
	}{
		{"chunk line with a bare LF", 300, chunked + "5\nhello\r\n0\r\n\r\n", nil, 400, kindClientBody},
		{"chunk size overflow", 300, chunked + "5\r\nhello\r\nfffffffffffffffffffff\r\n", nil, 400, kindClientBody},
		{"bad chunk size byte", 300, chunked + "5\r\nhello\r\nzz\r\n", nil, 400, kindClientBody},
		{"body shorter than Content-Length", 300, head + "Content-Length: 10\r\n\r\nabc", halfClose, 400, kindClientBody},
		{"stalled body, no byte", 20, head + "Content-Length: 10\r\n\r\n", nil, 408, kindClientTimeout},
		{"stalled body, 3 bytes", 20, head + "Content-Length: 10\r\n\r\nabc", nil, 408, kindClientTimeout},
		{"body trickled a byte at a time", 10, head + "Content-Length: 50\r\n\r\n", trickle, 408, kindClientSlow},
		{"Content-Length over max_body_bytes", 100, head + "Content-Length: 100\r\n\r\n", nil, 413, kindClientLarge},
		{"chunked body over max_body_bytes", 100, chunked + "64\r\n" + strings.Repeat("b", 100) + "\r\n0\r\n\r\n", nil, 413, kindClientLarge},
		{"client resets mid-body", 100, head + "Content-Length: 60\r\n\r\n" + strings.Repeat("c", 10), func(c net.Conn) {
			time.Sleep(20 * time.Millisecond)
			c.(*net.TCPConn).SetLinger(0)
			c.Close()
		}, 0, kindCanceled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := e.metric("meridian_http_client_errors_total", map[string]string{"kind": tc.kind})
			var wg sync.WaitGroup
			var mu sync.Mutex
			codes := map[int]int{}
			open := 0
			sem := make(chan struct{}, 20)
			for range tc.n {
				wg.Add(1)
				sem <- struct{}{}
				go func() {
					defer wg.Done()
					defer func() { <-sem }()
					code, closed := rawExchange(t, e.addr, tc.raw, tc.after)
					mu.Lock()
					codes[code]++
					if !closed {
						open++
					}
					mu.Unlock()
				}()
			}
			wg.Wait()
			if tc.status != 0 && (codes[tc.status] != tc.n || open > 0) {
				t.Errorf("statuses %v, %d connections left open; want %d × %d, all closed", codes, open, tc.n, tc.status)
			}
			if tc.status == 0 && codes[0] != tc.n {
				t.Errorf("statuses %v, want no answer", codes)
			}
			waitFor(t, "client errors counted", func() bool {
				return e.metric("meridian_http_client_errors_total", map[string]string{"kind": tc.kind})-before == float64(tc.n)
			})
		})
	}
	for _, kind := range []string{kindConnect, kindReset, kindTimeout, kindBadResponse, kindNoEndpoint} {
		if got := e.metric("meridian_http_upstream_errors_total", map[string]string{"kind": kind}); got != 0 {
			t.Errorf("%v upstream errors of kind %s charged for client faults", got, kind)
		}
	}
	for _, u := range []*bodyCounter{u1, u2} {
		if m := e.eng.Member("a", u.addr); !m.Available() || m.State() != health.StateUp {
			t.Errorf("endpoint %s is %s after client faults", u.addr, m.State())
		}
		if n := u.complete.Load(); n != 0 {
			t.Errorf("endpoint %s received %d complete bodies of broken requests", u.addr, n)
		}
	}
	// The pool still serves.
	if res, body := e.do(nil, "POST", "/", strings.NewReader("fine")); res.StatusCode != 200 || body != "up" {
		t.Fatalf("after the faults: %d %q", res.StatusCode, body)
	}
}

// scriptedUpstream is an upstream that reads a request head and answers with
// whatever respond writes.
func scriptedUpstream(t *testing.T, respond func(w *bufio.Writer)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				if _, err := http.ReadRequest(br); err != nil {
					return
				}
				bw := bufio.NewWriter(c)
				respond(bw)
				bw.Flush()
			}()
		}
	}()
	return ln.Addr().String()
}

// TestUpstreamResponseLimits: an upstream's flood of 1xx responses or an
// oversized head is a bad response (502), never relayed as a success, and
// counted against the upstream.
func TestUpstreamResponseLimits(t *testing.T) {
	flood := scriptedUpstream(t, func(w *bufio.Writer) {
		for range 20000 {
			if _, err := w.WriteString("HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"); err != nil {
				return
			}
		}
		w.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	})
	huge := scriptedUpstream(t, func(w *bufio.Writer) {
		w.WriteString("HTTP/1.1 200 OK\r\n")
		for i := range 10 << 10 { // 10,000 headers of about 1 KiB: 10 MiB
			if _, err := fmt.Fprintf(w, "X-H%d: %s\r\n", i, strings.Repeat("h", 1000)); err != nil {
				return
			}
		}
		w.WriteString("Content-Length: 2\r\n\r\nok")
	})
	e := newEnv(t, `
pools:
  flood: {endpoints: [{{FLOOD}}]}
  huge: {endpoints: [{{HUGE}}]}
services: {flood: {pools: [flood]}, huge: {pools: [huge]}}
routes:
  - {name: flood, match: {path: /flood}, service: flood}
  - {name: huge, match: {path: /huge}, service: huge}
`, map[string]string{"FLOOD": flood, "HUGE": huge})
	for _, tc := range []struct {
		path, raw string
	}{
		{"/flood", "GET /flood HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"},
		{"/flood (body)", "POST /flood HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 2\r\n\r\nhi"},
		{"/huge", "GET /huge HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"},
		{"/huge (body)", "POST /huge HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 2\r\n\r\nhi"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			out, _ := rawRequest(t, e.addr, tc.raw)
			if n := strings.Count(out, "HTTP/1.1 103"); n > config.MaxInformationalResponses {
				t.Errorf("%d 103 responses relayed, want at most %d", n, config.MaxInformationalResponses)
			}
			final := out[strings.LastIndex(out, "HTTP/1.1 "):]
			if !strings.HasPrefix(final, "HTTP/1.1 502") {
				t.Errorf("final response %.60q, want 502", final)
			}
			if len(out) > 64<<10 {
				t.Errorf("%d bytes relayed", len(out))
			}
		})
	}
	// Each request is one upstream failure. With a body in flight, the
	// upstream's abandoned connection can reach the transport as a reset
	// before the limit does; without one, it is always a bad response.
	bad := e.metric("meridian_http_upstream_errors_total", map[string]string{"kind": kindBadResponse})
	reset := e.metric("meridian_http_upstream_errors_total", map[string]string{"kind": kindReset})
	if bad+reset != 4 || bad < 2 {
		t.Errorf("upstream errors: bad_response %v, reset %v; want 4 in all, the two GETs bad_response", bad, reset)
	}
}

// TestDefaultTimeouts: a route with no timeout gets http.route_timeout
// until the response head; a streamed body longer than that is not cut;
// an upstream body that stalls is cut after upstream_idle_timeout; and an
// explicit timeout: 0 waits.
func TestDefaultTimeouts(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	hang := newBackend(t, "hang", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	stream := newBackend(t, "stream", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
		for i := range 6 {
			fmt.Fprintf(w, "part%d;", i)
			w.(http.Flusher).Flush()
			time.Sleep(100 * time.Millisecond)
		}
	})
	stall := newBackend(t, "stall", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100")
		w.WriteHeader(200)
		fmt.Fprint(w, "first")
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	e := newEnv(t, `
http: {route_timeout: 250ms}
pools:
  hang: {endpoints: [{{HANG}}]}
  stream: {endpoints: [{{STREAM}}]}
  stall: {endpoints: [{{STALL}}]}
services: {hang: {pools: [hang]}, stream: {pools: [stream]}, stall: {pools: [stall]}}
routes:
  - {name: hang, match: {path: /hang}, service: hang}
  - {name: unbounded, match: {path: /unbounded}, service: hang, timeout: 0s}
  - {name: stream, match: {path: /stream}, service: stream}
  - {name: stall, match: {path: /stall}, service: stall}
`, map[string]string{"HANG": hang.addr, "STREAM": stream.addr, "STALL": stall.addr}, withHTTP(func(h *config.HTTP) {
		h.UpstreamIdleTimeout = config.Duration(time.Second) // well above the stream's 100 ms gaps, even under -race on a busy machine
	}))
	t.Run("hung upstream gets 504", func(t *testing.T) {
		if res, _ := e.get("/hang"); res.StatusCode != http.StatusGatewayTimeout {
			t.Fatalf("status %d, want 504", res.StatusCode)
		}
	})
	t.Run("streamed body longer than the route timeout", func(t *testing.T) {
		res, body := e.get("/stream")
		if res.StatusCode != 200 || body != "part0;part1;part2;part3;part4;part5;" {
			t.Fatalf("%d %q", res.StatusCode, body)
		}
	})
	t.Run("stalled upstream body is cut", func(t *testing.T) {
		before := e.metric("meridian_http_upstream_errors_total", map[string]string{"kind": kindTimeout})
		// The cut may come before the buffered head was sent. A new
		// connection, so the client does not retry the GET on it.
		c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
		if res, err := c.Get(e.url + "/stall"); err == nil {
			b, err := io.ReadAll(res.Body)
			res.Body.Close()
			if err == nil {
				t.Fatalf("body %q read whole: want a cut", b)
			}
		}
		waitFor(t, "upstream timeout counted", func() bool {
			return e.metric("meridian_http_upstream_errors_total", map[string]string{"kind": kindTimeout}) == before+1
		})
	})
	t.Run("explicit timeout 0 waits", func(t *testing.T) {
		c := &http.Client{Timeout: 800 * time.Millisecond}
		res, err := c.Get(e.url + "/unbounded")
		if err == nil {
			res.Body.Close()
			t.Fatalf("answered %d; timeout: 0 must not time out", res.StatusCode)
		}
	})
}

// TestRejectedTableLeavesNoSeries: a table that is compiled but never
// installed (a reload rejected after the proxy's compile) creates no
// metric series for its routes.
func TestRejectedTableLeavesNoSeries(t *testing.T) {
	a := newBackend(t, "a", nil)
	e := newEnv(t, oneRoute, map[string]string{"A": a.addr})
	_ = e.h.Compile(e.compile(`
pools: {a: {endpoints: [{{A}}]}}
services: {sa: {pools: [a]}}
routes: [{name: ghost, service: sa}]
`, map[string]string{"A": a.addr}))
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if hasLabel(m, "route", "ghost") {
				t.Errorf("%s has a series for route ghost, which never went live", mf.GetName())
			}
		}
	}
}
