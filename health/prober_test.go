package health_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/pem"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/meridian-lb/meridian/config"
	"github.com/meridian-lb/meridian/health"
	"github.com/meridian-lb/meridian/internal/tlsfiles"
)

// probe runs one real probe with a short timeout. It fills c's defaults,
// as config.Parse does.
func probe(t *testing.T, addr string, c *config.Check, tlsCfg *config.UpstreamTLS) error {
	t.Helper()
	c.SetDefaults()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	var p health.NetProber
	tgt := health.Target{Address: addr, CheckName: "c", Check: c, TLS: tlsCfg}
	if tlsCfg != nil {
		// What routing.Compile does for a table: the files are read there.
		ut, errs := tlsfiles.LoadUpstream(tlsCfg)
		if len(errs) > 0 {
			return errs[0].Err
		}
		tgt.ClientTLS = ut.Config
	}
	return p.Probe(ctx, tgt)
}

// checkErr compares an error with a wanted substring ("" means no error).
func checkErr(t *testing.T, err error, want string) {
	t.Helper()
	t.Logf("probe error: %v", err)
	switch {
	case want == "" && err != nil:
		t.Fatalf("probe failed: %v", err)
	case want != "" && err == nil:
		t.Fatalf("probe succeeded, want an error containing %q", want)
	case want != "" && !strings.Contains(err.Error(), want):
		t.Fatalf("error %q, want it to contain %q", err, want)
	}
}

func TestNetProberHTTP(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("all good")) })
	mux.HandleFunc("/fail", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) })
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/fail", http.StatusFound) })
	mux.HandleFunc("/host", func(w http.ResponseWriter, r *http.Request) {
		if r.Host != "health.example" || r.Header.Get("X-Probe") != "1" ||
			!strings.HasPrefix(r.UserAgent(), "meridian-health") || r.Method != http.MethodHead {
			w.WriteHeader(http.StatusBadRequest)
		}
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("head"))
		w.Write(make([]byte, 1<<20))
		w.Write([]byte("tail"))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	addr := srv.Listener.Addr().String()

	tests := []struct {
		name    string
		addr    string
		check   config.Check
		wantErr string
	}{
		{name: "200", check: config.Check{Path: "/ok"}},
		{name: "path without slash", check: config.Check{Path: "ok"}},
		{name: "503 with default expect", check: config.Check{Path: "/fail"}, wantErr: "status 503, want 200-399"},
		{name: "503 expected", check: config.Check{Path: "/fail", Expect: []config.StatusRange{{Lo: 200, Hi: 200}, {Lo: 500, Hi: 503}}}},
		{name: "redirect not followed", check: config.Check{Path: "/redirect", Expect: []config.StatusRange{{Lo: 302, Hi: 302}}}},
		{name: "404", check: config.Check{Path: "/missing", Expect: []config.StatusRange{{Lo: 200, Hi: 200}}}, wantErr: "status 404, want 200"},
		{name: "body substring", check: config.Check{Path: "/ok", Body: "good"}},
		{name: "body substring missing", check: config.Check{Path: "/ok", Body: "bad"}, wantErr: `body does not contain "bad"`},
		{name: "body read is limited", check: config.Check{Path: "/big", Body: "tail"}, wantErr: `body does not contain "tail"`},
		{name: "body start within limit", check: config.Check{Path: "/big", Body: "head"}},
		{name: "host, headers and method", check: config.Check{Path: "/host", Method: "HEAD", Host: "health.example", Headers: map[string]string{"X-Probe": "1"}}},
		{name: "host header wrong", check: config.Check{Path: "/host", Method: "HEAD", Host: "other.example", Headers: map[string]string{"X-Probe": "1"}}, wantErr: "status 400"},
		{name: "refused", addr: closedPort(t), check: config.Check{Path: "/"}, wantErr: "connection refused"},
		{name: "server never answers", addr: hangServer(t), check: config.Check{Path: "/"}, wantErr: "context deadline exceeded"},
		{name: "server resets", addr: resetServer(t), check: config.Check{Path: "/"}, wantErr: "reset by peer"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.check
			c.Type = "http"
			a := tc.addr
			if a == "" {
				a = addr
			}
			checkErr(t, probe(t, a, &c, nil), tc.wantErr)
		})
	}
}

func TestNetProberHTTPDoesNotReuseConnections(t *testing.T) {
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	c := &config.Check{Type: "http", Path: "/"}
	c.SetDefaults()
	var p health.NetProber // one prober, as the engine uses it
	for range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := p.Probe(ctx, health.Target{Address: srv.Listener.Addr().String(), Check: c})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := conns.Load(); got != 3 {
		t.Fatalf("3 probes used %d connections, want 3", got)
	}
}

func TestNetProberHTTPS(t *testing.T) {
	quiet := log.New(io.Discard, "", 0) // handshake failures are expected here
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	srv.Config.ErrorLog = quiet
	srv.StartTLS()
	t.Cleanup(srv.Close)
	addr := srv.Listener.Addr().String()
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}

	// A server that requires a client certificate from our own CA.
	ca := newPKI(t)
	serverCert, _, _ := ca.issue(t, "mtls.example", false)
	_, clientCert, clientKey := ca.issue(t, "client.example", true)
	mtls := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	mtls.Config.ErrorLog = quiet
	mtls.TLS = &tls.Config{
		Certificates: []tls.Certificate{serverCert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    ca.Pool,
	}
	mtls.StartTLS()
	t.Cleanup(mtls.Close)
	mtlsAddr := mtls.Listener.Addr().String()

	tests := []struct {
		name    string
		addr    string
		check   config.Check
		tls     *config.UpstreamTLS
		wantErr string
	}{
		{name: "pool CA, IP name", tls: &config.UpstreamTLS{CA: caFile}},
		{name: "pool CA and server name", tls: &config.UpstreamTLS{CA: caFile, ServerName: "example.com"}},
		{name: "check server name wins", check: config.Check{ServerName: "example.com"}, tls: &config.UpstreamTLS{CA: caFile, ServerName: "wrong.test"}},
		{name: "server name from host header", check: config.Check{Host: "example.com:443"}, tls: &config.UpstreamTLS{CA: caFile}},
		{name: "wrong server name", tls: &config.UpstreamTLS{CA: caFile, ServerName: "wrong.test"}, wantErr: "wrong.test"},
		{name: "unknown authority", wantErr: "certificate signed by unknown authority"},
		{name: "check skip verify", check: config.Check{SkipVerify: true}},
		{name: "pool skip verify", tls: &config.UpstreamTLS{InsecureSkipVerify: true}},
		{name: "missing CA file", tls: &config.UpstreamTLS{CA: filepath.Join(dir, "nope.pem")}, wantErr: "no such file"},
		{name: "mTLS", addr: mtlsAddr, tls: &config.UpstreamTLS{CA: ca.CAFile, ServerName: "mtls.example", Cert: clientCert, Key: clientKey}},
		{name: "mTLS without client certificate", addr: mtlsAddr, tls: &config.UpstreamTLS{CA: ca.CAFile, ServerName: "mtls.example"}, wantErr: "certificate"},
		{name: "server never answers", addr: hangServer(t), check: config.Check{SkipVerify: true}, wantErr: "context deadline exceeded"},
		{name: "server resets", addr: resetServer(t), check: config.Check{SkipVerify: true}, wantErr: "reset by peer"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.check
			c.Type, c.Path = "https", "/"
			a := tc.addr
			if a == "" {
				a = addr
			}
			checkErr(t, probe(t, a, &c, tc.tls), tc.wantErr)
		})
	}
}

func TestNetProberTCP(t *testing.T) {
	echo := serve(t, listen(t), func(c net.Conn) {
		defer c.Close()
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			return
		}
		if line == "PING\r\n" {
			c.Write([]byte("+PONG\r\n"))
		} else {
			c.Write([]byte("-ERR\r\n"))
		}
	})
	tests := []struct {
		name    string
		addr    string
		check   config.Check
		wantErr string
	}{
		{name: "connect", addr: echo},
		{name: "send and receive", addr: echo, check: config.Check{Send: "PING\r\n", Receive: "+PONG"}},
		{name: "unexpected reply", addr: echo, check: config.Check{Send: "HELLO\r\n", Receive: "+PONG"}, wantErr: `waiting for "+PONG" (got "-ERR\r\n"): EOF`},
		{name: "refused", addr: closedPort(t), wantErr: "connection refused"},
		{name: "server never answers", addr: hangServer(t), check: config.Check{Send: "PING\r\n", Receive: "+PONG"}, wantErr: "i/o timeout"},
		{name: "server resets", addr: resetServer(t), check: config.Check{Send: "PING\r\n", Receive: "+PONG"}, wantErr: "reset by peer"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.check
			c.Type = "tcp"
			checkErr(t, probe(t, tc.addr, &c, nil), tc.wantErr)
		})
	}
}

// dnsServer serves ok.test. A and NXDOMAIN for everything else.
func dnsServer(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	srv := &mdns.Server{
		PacketConn:        pc,
		NotifyStartedFunc: func() { close(started) },
		Handler: mdns.HandlerFunc(func(w mdns.ResponseWriter, r *mdns.Msg) {
			m := new(mdns.Msg)
			m.SetReply(r)
			m.Authoritative = true
			if q := r.Question[0]; q.Name == "ok.test." {
				rr, _ := mdns.NewRR("ok.test. 60 IN A 192.0.2.1")
				if q.Qtype == mdns.TypeA {
					m.Answer = append(m.Answer, rr)
				}
			} else {
				m.Rcode = mdns.RcodeNameError
			}
			w.WriteMsg(m)
		}),
	}
	done := make(chan error, 1)
	go func() { done <- srv.ActivateAndServe() }()
	<-started
	t.Cleanup(func() {
		srv.Shutdown()
		<-done
	})
	return pc.LocalAddr().String()
}

// silentUDP is a UDP socket that never answers.
func silentUDP(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc.LocalAddr().String()
}

func TestNetProberDNS(t *testing.T) {
	addr := dnsServer(t)
	tests := []struct {
		name    string
		addr    string
		check   config.Check
		wantErr string
	}{
		{name: "noerror", check: config.Check{QName: "ok.test", QType: "A", RCode: "NOERROR"}},
		{name: "defaults are A and NOERROR", check: config.Check{QName: "ok.test."}},
		{name: "nodata is noerror", check: config.Check{QName: "ok.test", QType: "aaaa"}},
		{name: "nxdomain expected", check: config.Check{QName: "missing.test", RCode: "nxdomain"}},
		{name: "wrong rcode", check: config.Check{QName: "missing.test", RCode: "NOERROR"}, wantErr: "rcode NXDOMAIN, want NOERROR"},
		{name: "unknown qtype", check: config.Check{QName: "ok.test", QType: "BOGUS"}, wantErr: `unknown qtype "BOGUS"`},
		{name: "unknown rcode", check: config.Check{QName: "ok.test", RCode: "BOGUS"}, wantErr: `unknown rcode "BOGUS"`},
		{name: "server never answers", addr: silentUDP(t), check: config.Check{QName: "ok.test"}, wantErr: "i/o timeout"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.check
			c.Type = "dns"
			a := tc.addr
			if a == "" {
				a = addr
			}
			checkErr(t, probe(t, a, &c, nil), tc.wantErr)
		})
	}
}

func TestNetProberUnknownType(t *testing.T) {
	checkErr(t, probe(t, "127.0.0.1:1", &config.Check{Type: "icmp"}, nil), `unknown check type "icmp"`)
}

// TestEngineWithRealProbes runs the engine with the real prober against a
// server whose health flips.
func TestEngineWithRealProbes(t *testing.T) {
	var healthy atomic.Bool
	healthy.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !healthy.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(srv.Close)
	addr := srv.Listener.Addr().String()
	dead := closedPort(t)

	r := newRig(t, health.Options{Prober: &health.NetProber{}})
	t.Cleanup(r.stop)
	c := &config.Check{Type: "http", Path: "/", Interval: config.Duration(20 * time.Millisecond),
		Timeout: config.Duration(time.Second), Rise: 2, Fall: 2, Jitter: 0.2}
	c.SetDefaults() // expect 200-399
	r.e.Sync([]health.PoolSpec{{Name: "web", CheckName: "ready", Check: c, Endpoints: []string{addr, dead}}})
	m := r.member(t, "web", addr)
	waitFor(t, "the live server to be up", m.Available)
	waitFor(t, "the dead server to be down", func() bool { return r.member(t, "web", dead).State() == health.StateDown })
	if s := r.status(t, "web", dead); !strings.Contains(s.Reason, "connection refused") {
		t.Fatalf("dead server's reason %q", s.Reason)
	}
	healthy.Store(false)
	waitFor(t, "the server to go down", func() bool { return !m.Available() })
	s := r.status(t, "web", addr)
	if !strings.Contains(s.Reason, "2 consecutive probes failed") || !strings.Contains(s.Probe.LastError, "status 503") {
		t.Fatalf("status after failure: reason %q, last error %q", s.Reason, s.Probe.LastError)
	}
	healthy.Store(true)
	waitFor(t, "the server to come back", m.Available)
}
