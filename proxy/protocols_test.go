package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/websocket"
)

func wsBackend(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(websocket.Handler(func(ws *websocket.Conn) {
		io.Copy(ws, ws)
	}))
	t.Cleanup(srv.Close)
	return srv
}

const oneRoute = `
pools: {a: {endpoints: [{{A}}]}}
services: {sa: {pools: [a]}}
routes: [{name: r, service: sa}]
`

func TestWebSocketEcho(t *testing.T) {
	ws := wsBackend(t)
	e := newEnv(t, oneRoute, map[string]string{"A": ws.Listener.Addr().String()})
	conn, err := websocket.Dial("ws://"+e.addr+"/echo", "", "http://"+e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for i := range 3 {
		msg := fmt.Sprintf("hello %d", i)
		if err := websocket.Message.Send(conn, msg); err != nil {
			t.Fatal(err)
		}
		var got string
		if err := websocket.Message.Receive(conn, &got); err != nil {
			t.Fatal(err)
		}
		if got != msg {
			t.Fatalf("echo %q, want %q", got, msg)
		}
	}
}

// wsHandshake opens a raw WebSocket through the proxy.
func wsHandshake(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nOrigin: http://x\r\n\r\n")
	br := bufio.NewReader(c)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 101 {
		t.Fatalf("handshake status %d", res.StatusCode)
	}
	return c, br
}

// wsSend writes one masked text frame (a client must mask).
func wsSend(c net.Conn, msg string) {
	key := [4]byte{1, 2, 3, 4}
	f := []byte{0x81, 0x80 | byte(len(msg)), key[0], key[1], key[2], key[3]}
	for i := range len(msg) {
		f = append(f, msg[i]^key[i%4])
	}
	c.Write(f)
}

// wsRead reads one unmasked frame's opcode and payload.
func wsRead(t *testing.T, br *bufio.Reader) (byte, []byte) {
	t.Helper()
	var h [2]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		t.Fatalf("read frame: %v", err)
	}
	n := int(h[1] & 0x7f)
	if n >= 126 {
		t.Fatalf("unexpected long frame")
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(br, p); err != nil {
		t.Fatal(err)
	}
	return h[0] & 0x0f, p
}

func TestShutdownDrainsInFlightAndClosesWebSockets(t *testing.T) {
	ws := wsBackend(t)
	release := make(chan struct{})
	slow := newBackend(t, "slow", func(w http.ResponseWriter, r *http.Request) {
		<-release
		w.Write([]byte("finished"))
	})
	e := newEnv(t, `
pools:
  ws: {endpoints: [{{WS}}]}
  slow: {endpoints: [{{SLOW}}]}
services:
  ws: {pools: [ws]}
  slow: {pools: [slow]}
routes:
  - {name: ws, match: {path: /ws}, service: ws}
  - {name: slow, match: {path: /slow}, service: slow}
`, map[string]string{"WS": ws.Listener.Addr().String(), "SLOW": slow.addr})
	c, br := wsHandshake(t, e.addr)
	wsSend(c, "ping")
	if op, p := wsRead(t, br); op != 1 || string(p) != "ping" {
		t.Fatalf("echo op %d %q", op, p)
	}
	type result struct {
		body string
		err  error
	}
	slowDone := make(chan result, 1)
	go func() {
		res, err := http.Get(e.url + "/slow")
		if err != nil {
			slowDone <- result{err: err}
			return
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		slowDone <- result{body: string(b)}
	}()
	waitFor(t, "the slow request to reach the backend", func() bool { return slow.hits.Load() == 1 })

	stopped := make(chan struct{})
	go func() { e.shutdown(); close(stopped) }()

	// The WebSocket gets a going-away close frame.
	op, p := wsRead(t, br)
	if op != 8 || len(p) != 2 || p[0] != 0x03 || p[1] != 0xe9 {
		t.Fatalf("got frame op %d payload %x, want close 1001", op, p)
	}
	// The client answers with its own close, as a real one does; the
	// upstream then ends the tunnel.
	c.Write([]byte{0x88, 0x82, 1, 2, 3, 4, 0x03 ^ 1, 0xe9 ^ 2})
	c.Close()
	select {
	case <-stopped:
		t.Fatal("shutdown finished before the in-flight request")
	default:
	}
	close(release)
	r := <-slowDone
	if r.err != nil || r.body != "finished" {
		t.Fatalf("in-flight request during shutdown: %q %v", r.body, r.err)
	}
	<-stopped
}

func TestH2CFrontend(t *testing.T) {
	a := newBackend(t, "a", nil)
	e := newEnv(t, oneRoute, map[string]string{"A": a.addr})
	c := &http.Client{Transport: h2cTransport()}
	res, body := e.do(c, "GET", "/x", nil)
	if res.StatusCode != 200 || body != "a" || res.ProtoMajor != 2 {
		t.Fatalf("h2c: %s %d %q", res.Proto, res.StatusCode, body)
	}
	if r, _ := a.lastRequest(); r.ProtoMajor != 1 {
		t.Errorf("http1 pool got %s", r.Proto)
	}
}

func h2cTransport() *http.Transport {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	return &http.Transport{Protocols: &p}
}

// TestGRPCStyleStreaming runs a bidirectional stream with trailers, as
// gRPC does, from an h2c client through the proxy to an h2c upstream.
func TestGRPCStyleStreaming(t *testing.T) {
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor != 2 || r.Header.Get("Te") != "trailers" {
			http.Error(w, "want h2 with te: trailers, got "+r.Proto, 400)
			return
		}
		w.Header().Set("Trailer", "Grpc-Status")
		w.Header().Set("Content-Type", "application/grpc")
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		sc := bufio.NewScanner(r.Body)
		n := 0
		for sc.Scan() {
			n++
			fmt.Fprintf(w, "echo %s\n", sc.Text())
			w.(http.Flusher).Flush()
		}
		w.Header().Set("Grpc-Status", "0")
		w.Header().Set(http.TrailerPrefix+"Grpc-Message", fmt.Sprintf("%d messages", n))
	}))
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	up.Config.Protocols = &p
	up.Start()
	t.Cleanup(up.Close)
	e := newEnv(t, `
pools: {g: {endpoints: [{{G}}], protocol: h2c}}
services: {g: {pools: [g]}}
routes: [{name: grpc, service: g}]
`, map[string]string{"G": up.Listener.Addr().String()})

	pr, pw := io.Pipe()
	req, _ := http.NewRequest("POST", e.url+"/pkg.Svc/Chat", pr)
	req.Header.Set("Content-Type", "application/grpc")
	req.Header.Set("Te", "trailers")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := h2cTransport().RoundTrip(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		b, _ := io.ReadAll(res.Body)
		t.Fatalf("status %d %s", res.StatusCode, b)
	}
	br := bufio.NewReader(res.Body)
	// Each message is answered before the next is sent: a real stream.
	for _, msg := range []string{"one", "two", "three"} {
		fmt.Fprintf(pw, "%s\n", msg)
		line, err := br.ReadString('\n')
		if err != nil || line != "echo "+msg+"\n" {
			t.Fatalf("got %q, %v", line, err)
		}
	}
	pw.Close()
	if rest, _ := io.ReadAll(br); len(rest) != 0 {
		t.Fatalf("extra body %q", rest)
	}
	if got := res.Trailer.Get("Grpc-Status"); got != "0" {
		t.Errorf("trailer Grpc-Status = %q (trailers %v)", got, res.Trailer)
	}
	if got := res.Trailer.Get("Grpc-Message"); got != "3 messages" {
		t.Errorf("unannounced trailer Grpc-Message = %q", got)
	}
}

func TestContentLengthWithTransferEncoding(t *testing.T) {
	a := newBackend(t, "a", nil)
	e := newEnv(t, oneRoute, map[string]string{"A": a.addr})
	tests := []struct {
		name       string
		raw        string
		wantStatus string
		wantClosed bool
		wantHits   int64
	}{
		{
			name: "CL and TE smuggling",
			raw: "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n" +
				"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
			wantStatus: "HTTP/1.1 400", wantClosed: true,
		},
		{
			name: "CL and TE, other case and order",
			raw: "POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\nHost: x\r\ncontent-LENGTH: 4\r\n\r\n" +
				"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
			wantStatus: "HTTP/1.1 400", wantClosed: true,
		},
		{
			name:       "HTTP/1.0 with TE",
			raw:        "POST / HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
			wantStatus: "HTTP/1.0 400", wantClosed: true,
		},
		{
			name:       "plain chunked is fine",
			raw:        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
			wantStatus: "HTTP/1.1 200", wantClosed: true, wantHits: 2,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := a.hits.Load()
			out, closed := rawRequest(t, e.addr, tc.raw)
			if !strings.HasPrefix(out, tc.wantStatus) {
				t.Fatalf("got %q, want %s", firstLine(out), tc.wantStatus)
			}
			if closed != tc.wantClosed {
				t.Errorf("connection closed = %t", closed)
			}
			if n := strings.Count(out, "HTTP/1."); tc.wantHits == 0 && n != 1 {
				t.Errorf("%d responses: the smuggled request was served:\n%s", n, out)
			}
			if got := a.hits.Load() - before; got != tc.wantHits {
				t.Errorf("upstream got %d requests, want %d", got, tc.wantHits)
			}
		})
	}
}

func TestConnectionHeaderCannotStripProxyHeaders(t *testing.T) {
	a := newBackend(t, "a", nil)
	e := newEnv(t, oneRoute, map[string]string{"A": a.addr})
	out, _ := rawRequest(t, e.addr, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close, X-Forwarded-For, X-Forwarded-Proto, X-Request-Id\r\n\r\n")
	if !strings.HasPrefix(out, "HTTP/1.1 200") {
		t.Fatalf("got %q", firstLine(out))
	}
	r, _ := a.lastRequest()
	if r.Header.Get("X-Forwarded-For") != "127.0.0.1" || r.Header.Get("X-Forwarded-Proto") != "http" || r.Header.Get("X-Request-Id") == "" {
		t.Errorf("proxy headers lost: %v", r.Header)
	}
}

// TestTLSFrontendHandler checks the handler works behind a listener it did
// not build (the TLS listener comes later): r.TLS gives the proto, and a
// chunked HTTP/1 request it cannot verify closes its connection.
func TestTLSFrontendHandler(t *testing.T) {
	a := newBackend(t, "a", nil)
	e := newEnv(t, oneRoute, map[string]string{"A": a.addr})
	ts := httptest.NewUnstartedServer(e.h)
	ts.StartTLS()
	t.Cleanup(ts.Close)
	c := ts.Client()
	c.Transport.(*http.Transport).TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
	res, err := c.Get(ts.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if r, _ := a.lastRequest(); r.Header.Get("X-Forwarded-Proto") != "https" {
		t.Errorf("X-Forwarded-Proto = %q", r.Header.Get("X-Forwarded-Proto"))
	}
	req, _ := http.NewRequest("POST", ts.URL+"/", io.MultiReader(strings.NewReader("abc")))
	req.ContentLength = -1
	res, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 || !res.Close {
		t.Errorf("unverified chunked request: status %d, close %t", res.StatusCode, res.Close)
	}
}
