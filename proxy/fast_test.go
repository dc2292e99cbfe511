package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"golang.org/x/net/http/httpguts"

	"github.com/meridian-lb/meridian/config"
)

// stdHead parses a head as net/http's server does: http.ReadRequest plus
// the checks its connection loop adds (version, Host, header validity).
func stdHead(head []byte) (*http.Request, error) {
	req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(head)))
	if err != nil {
		return nil, err
	}
	if req.ProtoMajor != 1 {
		return nil, fmt.Errorf("unsupported protocol version")
	}
	// http.ReadRequest drops Host from the header; count the lines.
	tp := textproto.NewReader(bufio.NewReader(bytes.NewReader(head)))
	tp.ReadLine()
	mh, _ := tp.ReadMIMEHeader()
	hosts, haveHost := mh["Host"]
	if req.ProtoAtLeast(1, 1) && (!haveHost || len(hosts) == 0) && req.Method != "CONNECT" {
		return nil, fmt.Errorf("missing required Host header")
	}
	if len(hosts) == 1 && !httpguts.ValidHostHeader(hosts[0]) {
		return nil, fmt.Errorf("malformed Host header")
	}
	for k, vv := range req.Header {
		if !httpguts.ValidHeaderFieldName(k) {
			return nil, fmt.Errorf("invalid header name")
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				return nil, fmt.Errorf("invalid header value")
			}
		}
	}
	return req, nil
}

// FuzzFastHead holds the fast lane's head parser to net/http's: whatever
// head the lane takes, net/http takes too and reads as the same request
// (method, target, URL, header, host, length, close). What the lane does
// not take goes to net/http itself, so only this direction matters.
func FuzzFastHead(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /a/b?c=d&e HTTP/1.1\r\nHost: example.com:8080\r\nUser-Agent: wrk\r\nAccept: */*\r\n\r\n",
		"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n",
		"GET /%2e%2e/x HTTP/1.1\r\nhost: x\r\naccept-encoding: gzip\r\nX-Multi: 1\r\nx-multi: 2\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, close\r\nPragma: no-cache\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\nX: a  \t\r\nY:\r\n\r\n",
		"GET /? HTTP/1.1\r\nHost: x\r\nContent-Length: 007\r\n\r\n",
		"GET //x/../y#frag HTTP/1.1\r\nHost: x\r\nX-Obs: caf\xc3\xa9\r\n\r\n",
		"GET / HTTP/1.0\r\nHost: x\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
		"GET http://h/p HTTP/1.1\r\nHost: x\r\n\r\n",
		"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
		"get / HTTP/1.1\r\nHost: x\r\nX Y: z\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		end := crlfHeadEnd(data)
		if end < 0 {
			return
		}
		head := data[:end]
		var h fastHead
		hdr := http.Header{}
		if !parseFastHead(head, &h, hdr) {
			return
		}
		req, err := stdHead(head)
		if err != nil {
			t.Fatalf("fast lane took %q; net/http refuses it: %v", head, err)
		}
		if req.Method != h.method || req.RequestURI != h.target || req.Host != h.host ||
			req.ContentLength != h.contentLength || req.Close != h.close || req.ProtoMinor != 1 {
			t.Fatalf("%q: net/http %s %s host %q length %d close %v; fast %s %s host %q length %d close %v",
				head, req.Method, req.RequestURI, req.Host, req.ContentLength, req.Close,
				h.method, h.target, h.host, h.contentLength, h.close)
		}
		if !reflect.DeepEqual(*req.URL, *h.url) {
			t.Fatalf("%q: URL %#v, fast %#v", head, *req.URL, *h.url)
		}
		if len(req.TransferEncoding) > 0 || req.Header.Get("Expect") != "" || req.Header.Get("Upgrade") != "" {
			t.Fatalf("%q: fast lane took a request it must hand over", head)
		}
		if !reflect.DeepEqual(req.Header, hdr) {
			t.Fatalf("%q: header %q, fast %q", head, req.Header, hdr)
		}
	})
}

// engineServer serves h on a loopback listener with the given engine.
func engineServer(t *testing.T, engine config.HTTPEngine, h http.Handler) string {
	t.Helper()
	cfg := config.Config{}
	cfg.SetDefaults()
	s := cfg.HTTP
	s.Engine = engine
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(h, s, zap.NewNop())
	srv.Grace = time.Second
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// exchangeRaw writes raw on a new connection and reads one response per
// expected request, then reports whether the server closed the connection.
type rawResult struct {
	status   int
	header   http.Header
	body     string
	trailer  http.Header
	te       []string
	length   int64
	closed   bool // the server closed the connection after the responses
	nResults int
}

func exchangeRaw(t *testing.T, addr, raw string, n int, head bool) []rawResult {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	var out []rawResult
	for range n {
		method := "GET"
		if head {
			method = "HEAD"
		}
		res, err := http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			break
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		res.Header.Del("Date")
		out = append(out, rawResult{status: res.StatusCode, header: res.Header, body: string(b), trailer: res.Trailer,
			te: res.TransferEncoding, length: res.ContentLength})
	}
	c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	_, err = br.ReadByte()
	closed := err == io.EOF
	if len(out) > 0 {
		out[len(out)-1].closed = closed
	}
	return out
}

// TestFastResponseMatchesStd serves the same handlers with both engines
// and compares what a client reads: status, header (but Date), framing,
// body, trailers and whether the connection stays open.
func TestFastResponseMatchesStd(t *testing.T) {
	big := strings.Repeat("0123456789", 500)
	cases := []struct {
		name string
		h    http.HandlerFunc
		raw  string // default: a GET followed by a second GET on the same connection
		n    int
		head bool
	}{
		{name: "small body gets a length", h: func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") }},
		{name: "nothing written", h: func(w http.ResponseWriter, r *http.Request) {}},
		{name: "large body is chunked", h: func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, big) }},
		{name: "many small writes", h: func(w http.ResponseWriter, r *http.Request) {
			for range 300 {
				io.WriteString(w, "0123456789")
			}
		}},
		{name: "declared length", h: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", fmt.Sprint(len(big)))
			io.WriteString(w, big)
		}},
		{name: "short of declared length", h: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "10")
			io.WriteString(w, "12345")
		}, n: 1},
		{name: "over declared length", h: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "3")
			io.WriteString(w, "12345")
		}},
		{name: "bad declared length", h: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "x1")
			io.WriteString(w, "12345")
		}},
		{name: "flush first", h: func(w http.ResponseWriter, r *http.Request) {
			w.(http.Flusher).Flush()
			io.WriteString(w, "data: 1\n\n")
		}},
		{name: "sniffed html", h: func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "<html><body>x</body></html>") }},
		{name: "no sniff with encoding", h: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Encoding", "gzip")
			io.WriteString(w, "<html>")
		}},
		{name: "explicit empty type", h: func(w http.ResponseWriter, r *http.Request) {
			w.Header()["Content-Type"] = nil
			io.WriteString(w, "<html>")
		}},
		{name: "204 with body", h: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "5")
			w.WriteHeader(204)
			io.WriteString(w, "hello")
		}},
		{name: "304 keeps no type", h: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			w.Header().Set("Etag", `"x"`)
			w.WriteHeader(304)
		}},
		{name: "unknown status", h: func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(599) }},
		{name: "early hints", h: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Link", "</a.css>; rel=preload")
			w.WriteHeader(103)
			w.Header().Del("Link")
			io.WriteString(w, "ok")
		}},
		{name: "declared trailers", h: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Trailer", "X-Sum, X-Other")
			io.WriteString(w, "body")
			w.Header().Set("X-Sum", "42")
		}},
		{name: "prefix trailers", h: func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "body")
			w.(http.Flusher).Flush()
			w.Header().Set(http.TrailerPrefix+"Grpc-Status", "0")
		}},
		{name: "handler closes", h: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Connection", "close")
			io.WriteString(w, "bye")
		}, n: 1},
		{name: "identity transfer encoding", h: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Transfer-Encoding", "identity")
			io.WriteString(w, big)
		}, n: 1},
		{name: "header sanitising", h: func(w http.ResponseWriter, r *http.Request) {
			w.Header()["X-Split"] = []string{"a\r\nInjected: 1", "  spaced  "}
			w.Header()["Bad Name"] = []string{"x"}
			w.Header()["X-Empty"] = nil
			io.WriteString(w, "ok")
		}},
		{name: "mutation after WriteHeader", h: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Before", "1")
			w.WriteHeader(201)
			w.Header().Set("X-After", "1")
			io.WriteString(w, "ok")
		}},
		{name: "client asks to close", h: func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "x") },
			raw: "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", n: 1},
		{name: "HEAD with body written", h: func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") },
			raw: "HEAD / HTTP/1.1\r\nHost: x\r\n\r\nHEAD / HTTP/1.1\r\nHost: x\r\n\r\n", n: 2, head: true},
		{name: "HEAD with nothing written", h: func(w http.ResponseWriter, r *http.Request) {},
			raw: "HEAD / HTTP/1.1\r\nHost: x\r\n\r\nHEAD / HTTP/1.1\r\nHost: x\r\n\r\n", n: 2, head: true},
		{name: "unread small body", h: func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "x") },
			raw: "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789GET / HTTP/1.1\r\nHost: x\r\n\r\n", n: 2},
		{name: "body read", h: func(w http.ResponseWriter, r *http.Request) { b, _ := io.ReadAll(r.Body); w.Write(b) },
			raw: "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", n: 2},
		{name: "body echoed early", h: func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(200)
			w.(http.Flusher).Flush()
			b, err := io.ReadAll(r.Body)
			fmt.Fprintf(w, "%d %v", len(b), err)
		}, raw: "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789GET / HTTP/1.1\r\nHost: x\r\n\r\n", n: 2},
		{name: "chunked request goes to net/http", h: func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			fmt.Fprintf(w, "%q %v", b, r.TransferEncoding)
		}, raw: "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", n: 2},
		{name: "HTTP/1.0 goes to net/http", h: func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.Proto) },
			raw: "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.0\r\n\r\n", n: 2},
		{name: "malformed head gets net/http's answer", h: func(w http.ResponseWriter, r *http.Request) {},
			raw: "GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", n: 2},
		{name: "abort after a partial body", h: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "100")
			io.WriteString(w, big[:10])
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		}, n: 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			std := engineServer(t, config.HTTPEngineStd, tc.h)
			fast := engineServer(t, config.HTTPEngineFast, tc.h)
			raw, n := tc.raw, tc.n
			if raw == "" {
				raw = "GET /x HTTP/1.1\r\nHost: x\r\n\r\nGET /y HTTP/1.1\r\nHost: x\r\n\r\n"
			}
			if n == 0 {
				n = 2
			}
			want := exchangeRaw(t, std, raw, n, tc.head)
			got := exchangeRaw(t, fast, raw, n, tc.head)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("fast engine:\n%+v\nstd engine:\n%+v", got, want)
			}
		})
	}
}

// TestClientGoneCancelsRequest: a client that closes its connection while
// its request waits on the upstream cancels the request (499, the
// upstream's context done), on either engine: the fast lane's watch starts
// after watchDelay, net/http's background read at once.
func TestClientGoneCancelsRequest(t *testing.T) {
	// With a route timeout the upstream client watches a derived context;
	// without, the lane's request context holds its connection (laneCtx).
	for _, route := range []string{"{name: r, service: s, timeout: 30s}", "{name: r, service: s}"} {
		t.Run(route, func(t *testing.T) {
			canceled := make(chan struct{})
			up := newBackend(t, "up", func(w http.ResponseWriter, r *http.Request) {
				select {
				case <-r.Context().Done():
					close(canceled)
				case <-time.After(10 * time.Second):
				}
			})
			e := newEnv(t, `
pools: {p: {endpoints: [{{UP}}]}}
services: {s: {pools: [p]}}
routes: [`+route+`]
`, map[string]string{"UP": up.addr})
			c, err := net.Dial("tcp", e.addr)
			if err != nil {
				t.Fatal(err)
			}
			io.WriteString(c, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
			waitFor(t, "the request upstream", func() bool { return up.hits.Load() == 1 })
			time.Sleep(2 * watchDelay)
			c.Close()
			select {
			case <-canceled:
			case <-time.After(5 * time.Second):
				t.Fatal("the upstream request was not canceled after the client left")
			}
			waitFor(t, "499 counted", func() bool {
				return e.metric("meridian_http_requests_total", map[string]string{"code": "499"}) == 1
			})
		})
	}
}

// TestLaneCtxHook: the hooked connection is expired when the context
// ends, at once when it already has; a second connection is refused the
// hook; unhook reports whether the context ended first.
func TestLaneCtxHook(t *testing.T) {
	pipe := func() *h1Conn {
		a, b := net.Pipe()
		t.Cleanup(func() { a.Close(); b.Close() })
		return &h1Conn{nc: a}
	}
	expired := func(pc *h1Conn) bool {
		_, err := pc.nc.Read(make([]byte, 1))
		return errors.Is(err, os.ErrDeadlineExceeded)
	}
	lc := newLaneCtx(context.Background())
	if laneCtxOf(lc) != lc || laneCtxOf(context.WithValue(lc, struct{}{}, 1)) != lc {
		t.Fatal("laneCtxOf misses the lane's context under a value")
	}
	tctx, cancel := context.WithTimeout(lc, time.Hour)
	defer cancel()
	if laneCtxOf(tctx) != nil {
		t.Fatal("laneCtxOf found the lane's context under a timeout")
	}
	if newLaneCtx(tctx).hooks {
		t.Fatal("a lane context under a parent that can end takes hooks")
	}
	p1, p2 := pipe(), pipe()
	if !lc.hook(p1) || lc.hook(p2) {
		t.Fatal("want the first hook taken, the second refused")
	}
	if !lc.unhook(p2) || lc.conn != p1 {
		t.Fatal("unhook of another connection took the hook")
	}
	lc.cancel(errClientGone)
	if !expired(p1) || context.Cause(lc) != errClientGone {
		t.Fatal("cancel did not expire the hooked connection")
	}
	if lc.unhook(p1) {
		t.Fatal("unhook after the end reports the hook stopped")
	}
	p3 := pipe()
	if !lc.hook(p3) || !expired(p3) {
		t.Fatal("a hook set after the end did not expire its connection at once")
	}
}

// TestParkedConnections: a keep-alive connection idle past parkAfter
// leaves its goroutine for the parker and still serves its next request;
// one idle past idle_timeout is closed; shutdown closes parked ones at
// once.
func TestParkedConnections(t *testing.T) {
	b := newBackend(t, "a", nil)
	e := newEnv(t, `
pools: {p: {endpoints: [{{A}}]}}
services: {s: {pools: [p]}}
routes: [{name: r, service: s}]
`, map[string]string{"A": b.addr}, withHTTP(func(h *config.HTTP) {
		h.Engine = config.HTTPEngineFast
		h.IdleTimeout = config.Duration(2500 * time.Millisecond)
	}))
	conn := func() (net.Conn, *bufio.Reader) {
		c, err := net.Dial("tcp", e.addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c, bufio.NewReader(c)
	}
	get := func(c net.Conn, br *bufio.Reader) error {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			return err
		}
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != 200 {
			return fmt.Errorf("status %d", res.StatusCode)
		}
		return nil
	}
	c1, br1 := conn()
	c2, br2 := conn()
	for _, c := range []struct {
		c  net.Conn
		br *bufio.Reader
	}{{c1, br1}, {c2, br2}} {
		if err := get(c.c, c.br); err != nil {
			t.Fatal(err)
		}
	}
	// Both park within parkAfter (plus slack) of their last request.
	parked := func(want int64) bool {
		deadline := time.Now().Add(parkAfter + 300*time.Millisecond)
		for e.srv.parkedConns() != want && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		return e.srv.parkedConns() == want
	}
	if !parked(2) {
		t.Fatalf("%d connections parked after %v idle, want 2", e.srv.parkedConns(), parkAfter)
	}
	if err := get(c1, br1); err != nil {
		t.Fatalf("request on a parked connection: %v", err)
	}
	// c2 stays idle: closed at idle_timeout.
	c2.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := br2.ReadByte(); err != io.EOF {
		t.Fatalf("idle connection past idle_timeout: %v, want EOF", err)
	}
	// c1 parked again, c2 closed: shutdown has one parked connection.
	parked(1)
	start := time.Now()
	e.shutdown()
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("shutdown with a parked connection took %v", d)
	}
	c1.SetReadDeadline(time.Now().Add(time.Second))
	if _, err := br1.ReadByte(); err != io.EOF {
		t.Fatalf("parked connection after shutdown: %v, want EOF", err)
	}
}
