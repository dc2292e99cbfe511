package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/meridian-lb/meridian/config"
	"github.com/meridian-lb/meridian/health"
	"github.com/meridian-lb/meridian/internal/certtest"
)

// fastTLSConfig is the TLS listener of the tests below; {{HTTP}} sets the
// listener's http: section.
const fastTLSConfig = `
listen: {https: "127.0.0.1:0"}
http: {{HTTP}}
tls: {certificates: [{cert: {{A}}.pem, key: {{A}}.key}]}
pools: {p: {endpoints: [{{BACKEND}}]}}
services: {s: {pools: [p]}}
routes: [{name: r, service: s, hsts: "max-age=60"}]
`

// tlsLane is a TLS listener served with a given engine (whatever
// MERIDIAN_HTTP_ENGINE says), for tests of the TLS fast lane and of what
// must not differ between the engines.
type tlsLane struct {
	t     *testing.T
	addr  string
	roots *x509.CertPool
	be    *backend
	ts    *TLSServer
	stop  func() // shuts the server down and waits for Serve to return
}

func newTLSLane(t *testing.T, engine config.HTTPEngine, httpSettings string) *tlsLane {
	t.Helper()
	ca := certtest.NewCA(t, "test CA")
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	dir := t.TempDir()
	writePair(t, ca, dir, "a", "a.example.com")
	be := newBackend(t, "be", nil)
	reg := prometheus.NewRegistry()
	tb := compileBound(t, health.New(health.Options{Registerer: reg}), fastTLSConfig,
		map[string]string{"A": filepath.Join(dir, "a"), "BACKEND": be.addr, "HTTP": httpSettings})
	tb.Config.HTTP.Engine = engine
	h := NewHandler(Options{Registerer: reg, Settings: tb.Config.HTTP})
	h.Install(h.Compile(tb))
	ts, err := NewTLSServer(h, tb.Config, zap.NewNop(), reg)
	if err != nil {
		t.Fatalf("NewTLSServer: %v", err)
	}
	ts.Grace = 5 * time.Second
	ln := listenLoopback(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ts.Serve(ctx, ln) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Serve: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Error("TLS server did not stop")
			}
			ts.Close()
		})
	}
	t.Cleanup(stop)
	return &tlsLane{t: t, addr: ln.Addr().String(), roots: roots, be: be, ts: ts, stop: stop}
}

// dial makes a TLS connection offering protos, through hold (which can
// hold back part of a record).
func (e *tlsLane) dial(protos ...string) (*tls.Conn, *holdConn) {
	e.t.Helper()
	raw, err := net.DialTimeout("tcp", e.addr, 5*time.Second)
	if err != nil {
		e.t.Fatal(err)
	}
	hc := &holdConn{Conn: raw}
	c := tls.Client(hc, &tls.Config{ServerName: "a.example.com", RootCAs: e.roots, NextProtos: protos})
	e.t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if err := c.Handshake(); err != nil {
		e.t.Fatalf("handshake: %v", err)
	}
	return c, hc
}

// holdConn is a client connection that can send only the first half of
// its next write (a TLS record) and the rest later.
type holdConn struct {
	net.Conn
	mu    sync.Mutex
	split bool
	rest  []byte
}

func (h *holdConn) Write(p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.split {
		h.split = false
		k := len(p) / 2
		h.rest = append([]byte(nil), p[k:]...)
		_, err := h.Conn.Write(p[:k])
		return len(p), err
	}
	return h.Conn.Write(p)
}

func (h *holdConn) flush() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := h.Conn.Write(h.rest)
	h.rest = nil
	return err
}

// readResponses reads n responses from br, failing on anything but 200.
func readResponses(t *testing.T, c net.Conn, br *bufio.Reader, n int) []*http.Response {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var out []*http.Response
	for i := range n {
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("response %d: %v", i+1, err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Fatalf("response %d: status %d", i+1, res.StatusCode)
		}
		out = append(out, res)
	}
	return out
}

// closedByServer reports whether the server ends c within the read
// deadline (an EOF, or a reset after an alert).
func closedByServer(c net.Conn) error {
	c.SetReadDeadline(time.Now().Add(15 * time.Second))
	var b [64]byte
	for {
		_, err := c.Read(b[:])
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return fmt.Errorf("still open: %v", err)
		}
		return nil
	}
}

const getReq = "GET /x HTTP/1.1\r\nHost: a.example.com\r\n\r\n"

// TestTLSLaneProtocols: on both engines, HTTP/1.1 (ALPN http/1.1 or
// none) and h2 are served over TLS, requests carry their TLS state (the
// upstream sees X-Forwarded-Proto: https, the route's HSTS is set), and
// what the fast lane hands to net/http mid-connection (a chunked body,
// pipelined behind a request the lane served, in one TLS record) is
// served the same way.
func TestTLSLaneProtocols(t *testing.T) {
	for _, engine := range []config.HTTPEngine{config.HTTPEngineFast, config.HTTPEngineStd} {
		t.Run(string(engine), func(t *testing.T) {
			e := newTLSLane(t, engine, "{}")
			check := func(what string, res *http.Response) {
				t.Helper()
				if got := res.Header.Get("Strict-Transport-Security"); got != "max-age=60" {
					t.Errorf("%s: HSTS %q, want max-age=60 (request without TLS state?)", what, got)
				}
				r, _ := e.be.lastRequest()
				if got := r.Header.Get("X-Forwarded-Proto"); got != "https" {
					t.Errorf("%s: upstream saw X-Forwarded-Proto %q, want https", what, got)
				}
			}
			for _, protos := range [][]string{{"http/1.1"}, nil, {"h2", "http/1.1"}} {
				c, _ := e.dial(protos...)
				want := "http/1.1"
				if len(protos) == 0 {
					want = ""
				} else if protos[0] == "h2" {
					want = "h2"
				}
				if got := c.ConnectionState().NegotiatedProtocol; got != want {
					t.Fatalf("ALPN %q offering %q, want %q", got, protos, want)
				}
				if want == "h2" {
					tr := &http.Transport{
						ForceAttemptHTTP2: true,
						TLSClientConfig:   &tls.Config{ServerName: "a.example.com", RootCAs: e.roots},
						DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
							return (&net.Dialer{}).DialContext(ctx, network, e.addr)
						},
					}
					defer tr.CloseIdleConnections()
					res, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get("https://a.example.com/x")
					if err != nil {
						t.Fatal(err)
					}
					io.Copy(io.Discard, res.Body)
					res.Body.Close()
					if res.ProtoMajor != 2 || res.StatusCode != 200 {
						t.Fatalf("h2: %s %d", res.Proto, res.StatusCode)
					}
					check("h2", res)
					continue
				}
				br := bufio.NewReader(c)
				io.WriteString(c, getReq)
				check(fmt.Sprintf("ALPN %q", want), readResponses(t, c, br, 1)[0])
			}

			// One record: a GET the lane serves, then a chunked POST it
			// hands to net/http (after which the handler closes the
			// connection: over TLS it cannot check the chunked head's
			// framing, on either engine).
			c, _ := e.dial("http/1.1")
			br := bufio.NewReader(c)
			io.WriteString(c, getReq+
				"POST /up HTTP/1.1\r\nHost: a.example.com\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
			res := readResponses(t, c, br, 2)
			check("after the handover", res[1])
			if r, body := e.be.lastRequest(); body != "hello" || r.URL.Path != "/up" {
				t.Errorf("last upstream request %s %q, want /up \"hello\"", r.URL.Path, body)
			}
		})
	}
}

// TestTLSLaneHostileClients: on both engines, clients that stall or do
// not speak TLS are closed within the handshake timeout (the read header
// timeout), and a client that speaks plain HTTP gets net/http's 400.
func TestTLSLaneHostileClients(t *testing.T) {
	for _, engine := range []config.HTTPEngine{config.HTTPEngineFast, config.HTTPEngineStd} {
		t.Run(string(engine), func(t *testing.T) {
			e := newTLSLane(t, engine, "{read_header_timeout: 300ms}")
			for _, tc := range []struct{ name, send string }{
				{"stalled handshake", ""},
				{"garbage instead of ClientHello", strings.Repeat("\x00\x01garbage", 20)},
				{"half a ClientHello record, then a stall", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"},
			} {
				c, err := net.Dial("tcp", e.addr)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				io.WriteString(c, tc.send)
				if err := closedByServer(c); err != nil {
					t.Errorf("%s: %v", tc.name, err)
				}
			}
			got, closed := rawRequest(t, e.addr, getReq)
			if !strings.HasPrefix(got, "HTTP/1.0 400 Bad Request") || !strings.Contains(got, "Client sent an HTTP request to an HTTPS server") || !closed {
				t.Errorf("plain HTTP to the TLS listener: %q (closed %v)", got, closed)
			}
			// A TLS client that stalls in the middle of a request head,
			// or after half a record, is closed too.
			c, hc := e.dial("http/1.1")
			io.WriteString(c, "GET / HTTP/1.1\r\nHost: a.example.com\r\n")
			if err := closedByServer(c); err != nil {
				t.Errorf("head in part: %v", err)
			}
			c, hc = e.dial("http/1.1")
			hc.split = true
			io.WriteString(c, getReq)
			if err := closedByServer(c); err != nil {
				t.Errorf("half a record: %v", err)
			}
		})
	}
}

// TestTLSLaneParking: idle TLS connections of the fast lane park; a parked
// one resumes for pipelined requests in one record and for a record that
// arrives in two parts across parks; close_notify while parked closes it;
// a client that sends half a record and stalls is closed at idle_timeout
// (after parking again); shutdown closes the parked ones.
func TestTLSLaneParking(t *testing.T) {
	e := newTLSLane(t, config.HTTPEngineFast, "{idle_timeout: 6s}")
	type conn struct {
		c  *tls.Conn
		hc *holdConn
		br *bufio.Reader
	}
	var cs []conn
	for range 4 {
		c, hc := e.dial("http/1.1")
		br := bufio.NewReader(c)
		io.WriteString(c, getReq)
		readResponses(t, c, br, 1)
		cs = append(cs, conn{c, hc, br})
	}
	parked := func(want int64) {
		t.Helper()
		waitFor(t, fmt.Sprintf("%d parked connections", want), func() bool { return e.ts.parkedConns() == want })
	}
	parked(4)

	// close_notify while parked.
	if err := cs[3].c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if err := closedByServer(cs[3].c); err != nil {
		t.Fatalf("close_notify while parked: %v", err)
	}
	parked(3)

	// Pipelined requests in one record; one record in two parts; half a
	// record, never finished.
	io.WriteString(cs[0].c, getReq+getReq)
	readResponses(t, cs[0].c, cs[0].br, 2)
	cs[1].hc.split = true
	io.WriteString(cs[1].c, getReq)
	cs[2].hc.split = true
	io.WriteString(cs[2].c, getReq)
	parked(0) // both partial records woke their connections
	parked(3) // and the waits for the rest parked them again
	if err := cs[1].hc.flush(); err != nil {
		t.Fatal(err)
	}
	readResponses(t, cs[1].c, cs[1].br, 1)

	// The half record's connection ends at idle_timeout.
	if err := closedByServer(cs[2].c); err != nil {
		t.Fatalf("half a record past idle_timeout: %v", err)
	}
	parked(2)
	e.stop()
	for i := range 2 {
		if err := closedByServer(cs[i].c); err != nil {
			t.Fatalf("parked connection %d after shutdown: %v", i, err)
		}
	}
	if n := e.ts.parkedConns(); n != 0 {
		t.Errorf("%d connections parked after shutdown", n)
	}
}

// TestTLSLaneClientCertificates: the routes' client certificate policy
// applies to HTTP/1.1 over TLS as to h2 (TestTLSClientAuth), whichever
// engine serves it.
func TestTLSLaneClientCertificates(t *testing.T) {
	clientCA := certtest.NewCA(t, "client CA")
	otherCA := certtest.NewCA(t, "other client CA")
	e, _ := newMTLSEnv(t, clientCA)
	client := func(certs ...tls.Certificate) *http.Client {
		tr := &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: e.roots, NextProtos: []string{"http/1.1"}, Certificates: certs},
			TLSNextProto:    map[string]func(string, *tls.Conn) http.RoundTripper{},
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, e.addr)
			},
		}
		t.Cleanup(tr.CloseIdleConnections)
		return &http.Client{Transport: tr, Timeout: 10 * time.Second}
	}
	good := client(clientCA.TLSPair(t, true, "alice"))
	for _, tc := range []struct {
		name      string
		c         *http.Client
		url, host string
		want      int
	}{
		{"no certificate", client(), "https://secure.example.com/admin", "", 403},
		{"good certificate", good, "https://secure.example.com/admin", "", 200},
		{"good certificate again, same connection", good, "https://secure.example.com/admin", "", 200},
		{"certificate from another CA", client(otherCA.TLSPair(t, true, "mallory")), "https://secure.example.com/admin", "", 403},
		{"authenticated connection, other host", good, "https://secure.example.com/", "www.example.com", 421},
	} {
		res, _ := e.get(tc.c, tc.url, tc.host)
		if res.StatusCode != tc.want {
			t.Errorf("%s: status %d, want %d", tc.name, res.StatusCode, tc.want)
		}
		if res.ProtoMajor != 1 {
			t.Errorf("%s: %s, want HTTP/1.1", tc.name, res.Proto)
		}
	}
}

// TestTLSLaneMaxConns: on both engines, max_conns bounds the TLS
// listener: an idle keep-alive connection (parked, on the fast engine) is
// reclaimed for a new client, and connections in their handshake hold
// their slots. (At the cap the accept loop reclaims the longest-idle
// connection as soon as it may, to have a slot ready.)
func TestTLSLaneMaxConns(t *testing.T) {
	for _, engine := range []config.HTTPEngine{config.HTTPEngineFast, config.HTTPEngineStd} {
		t.Run(string(engine), func(t *testing.T) {
			e := newTLSLane(t, engine, "{max_conns: 2}")
			idle, _ := e.dial("http/1.1")
			br := bufio.NewReader(idle)
			io.WriteString(idle, getReq)
			readResponses(t, idle, br, 1)
			if engine == config.HTTPEngineFast {
				waitFor(t, "the idle connection parked", func() bool { return e.ts.parkedConns() == 1 })
			}
			// next takes the second slot; the first idle connection is
			// reclaimed for a third before next sends a request, so next
			// cannot be the idle one taken, however late the server marks
			// the first idle.
			next, _ := e.dial("http/1.1")
			if err := closedByServer(idle); err != nil {
				t.Fatalf("the idle connection was not reclaimed: %v", err)
			}
			io.WriteString(next, getReq)
			readResponses(t, next, bufio.NewReader(next), 1)

			var holds []net.Conn
			for range 2 {
				hold, err := net.Dial("tcp", e.addr)
				if err != nil {
					t.Fatal(err)
				}
				defer hold.Close()
				// Half a ClientHello: busy, not idle.
				io.WriteString(hold, "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
				holds = append(holds, hold)
			}
			raw, err := net.Dial("tcp", e.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			c := tls.Client(raw, &tls.Config{ServerName: "a.example.com", RootCAs: e.roots, NextProtos: []string{"http/1.1"}})
			c.SetDeadline(time.Now().Add(300 * time.Millisecond))
			if err := c.Handshake(); err == nil {
				t.Fatal("a third connection was served past max_conns")
			}
			if err := closedByServer(next); err != nil {
				t.Fatalf("the second idle connection was not reclaimed: %v", err)
			}
		})
	}
}
