package acme

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/meridian-lb/meridian/acme/acmetest"
	"github.com/meridian-lb/meridian/config"
	"github.com/meridian-lb/meridian/internal/certtest"
)

// edge stands in for Meridian's listeners: a plain HTTP server that
// answers HTTP-01 through the current Manager and a TLS server that picks
// certificates through it, counting the challenges each one answered.
type edge struct {
	cur                atomic.Pointer[Manager]
	httpAddr, tlsAddr  string
	httpChal, alpnChal atomic.Int64
}

func newEdge(t *testing.T) *edge {
	t.Helper()
	e := &edge{}
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.httpAddr, e.tlsAddr = hl.Addr().String(), tl.Addr().String()
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if m := e.cur.Load(); m != nil && m.ServeHTTPChallenge(w, r) {
			e.httpChal.Add(1)
			return
		}
		http.NotFound(w, r)
	})}
	ts := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }),
		TLSConfig: &tls.Config{
			NextProtos: []string{"h2", "http/1.1", ALPNProto},
			GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
				m := e.cur.Load()
				if m == nil {
					return nil, errNotYet
				}
				if IsChallenge(hello) {
					e.alpnChal.Add(1)
				}
				return m.Certificate(hello)
			},
		},
	}
	go hs.Serve(hl)
	go ts.ServeTLS(tl, "", "")
	t.Cleanup(func() { hs.Close(); ts.Close() })
	return e
}

func port(t *testing.T, addr string) int {
	t.Helper()
	_, p := splitAddr(addr)
	if p == 0 {
		t.Fatalf("no port in %q", addr)
	}
	return p
}

// events records the Manager's issuance events.
type events struct {
	mu   sync.Mutex
	list []string
}

func (ev *events) add(event, d string) {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	ev.list = append(ev.list, event+" "+d)
}

func (ev *events) count(event string) int {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	n := 0
	for _, e := range ev.list {
		if strings.HasPrefix(e, event+" ") {
			n++
		}
	}
	return n
}

// manager builds a Manager for domain. Parallel tests use different
// domains: certmagic keeps the challenges being solved in one process-wide
// map keyed by name.
func (e *edge) manager(t *testing.T, pb *acmetest.Pebble, domain, storage string, challenges []string, ev *events, renew time.Duration) *Manager {
	t.Helper()
	c := config.Config{Listen: config.Listen{HTTP: e.httpAddr, HTTPS: e.tlsAddr}, TLS: config.TLS{ACME: &config.ACME{
		Directory: pb.Directory, Email: "ops@example.com", Domains: []string{domain}, Storage: storage, CA: pb.CAFile, Challenges: challenges,
	}}}
	c.SetDefaults()
	m, err := New(*c.TLS.ACME, Options{HTTPAddr: e.httpAddr, HTTPSAddr: e.tlsAddr, Logger: zaptest.NewLogger(t), OnEvent: ev.add, RenewCheckInterval: renew})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Stop)
	e.cur.Store(m)
	return m
}

// served polls the TLS listener until it serves a certificate for name
// that roots verify, other than not (by serial), and returns its leaf.
func (e *edge) served(t *testing.T, name string, roots *x509.CertPool, not *x509.Certificate) *x509.Certificate {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		conn, err := tls.Dial("tcp", e.tlsAddr, &tls.Config{ServerName: name, RootCAs: roots})
		if err == nil {
			leaf := conn.ConnectionState().PeerCertificates[0]
			conn.Close()
			if not == nil || leaf.SerialNumber.Cmp(not.SerialNumber) != 0 {
				return leaf
			}
			err = errSame
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no new certificate for %s in 60s: %v", name, last)
	return nil
}

var errSame = errors.New("still the previous certificate")

// TestObtainStoreRestart obtains a certificate from pebble with each
// challenge type answered on the edge's own listeners, checks it is stored,
// then restarts with pebble gone: the stored certificate is served and
// nothing is asked of the CA.
func TestObtainStoreRestart(t *testing.T) {
	for _, ch := range []string{config.ChallengeHTTP01, config.ChallengeTLSALPN01} {
		t.Run(ch, func(t *testing.T) {
			t.Parallel()
			domain := ch + ".example.com"
			e := newEdge(t)
			pb := acmetest.Start(t, acmetest.Options{HTTPPort: port(t, e.httpAddr), TLSPort: port(t, e.tlsAddr)})
			roots := pb.Roots(t)
			storage := t.TempDir()
			ev := &events{}
			m := e.manager(t, pb, domain, storage, []string{ch}, ev, 0)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			m.Start(ctx)

			leaf := e.served(t, domain, roots, nil)
			if err := leaf.VerifyHostname(domain); err != nil {
				t.Errorf("served certificate: %v", err)
			}
			want := map[string]int64{config.ChallengeHTTP01: e.httpChal.Load(), config.ChallengeTLSALPN01: e.alpnChal.Load()}
			for c, n := range want {
				if (c == ch) != (n > 0) {
					t.Errorf("%s challenges answered: %d (configured: %s)", c, n, ch)
				}
			}
			st := m.Status()
			if len(st) != 1 || st[0].Domain != domain || !st[0].NotAfter.Equal(leaf.NotAfter) || st[0].Error != "" {
				t.Errorf("status %+v, want %s until %v", st, domain, leaf.NotAfter)
			}
			var stored []string
			filepath.WalkDir(storage, func(p string, d os.DirEntry, err error) error {
				if err == nil && !d.IsDir() && strings.HasSuffix(p, ".crt") {
					stored = append(stored, filepath.Base(p))
				}
				return nil
			})
			if len(stored) != 1 || stored[0] != domain+".crt" {
				t.Errorf("storage holds certificates %q, want %s.crt", stored, domain)
			}

			// Restart with the CA gone: the stored certificate is served.
			m.Stop()
			pb.Stop()
			obtaining := ev.count("obtaining")
			m2 := e.manager(t, pb, domain, storage, []string{ch}, ev, 0)
			m2.Start(ctx)
			again := e.served(t, domain, roots, nil)
			if again.SerialNumber.Cmp(leaf.SerialNumber) != 0 {
				t.Errorf("after restart serial %v, want the stored %v", again.SerialNumber, leaf.SerialNumber)
			}
			if n := ev.count("obtaining"); n != obtaining {
				t.Errorf("restart asked the CA again (%d obtaining events, had %d)", n, obtaining)
			}
		})
	}
}

// TestRenew issues short-lived certificates and waits for the Manager to
// replace the served one before it expires.
func TestRenew(t *testing.T) {
	t.Parallel()
	e := newEdge(t)
	pb := acmetest.Start(t, acmetest.Options{HTTPPort: port(t, e.httpAddr), TLSPort: port(t, e.tlsAddr), Validity: 30 * time.Second})
	roots := pb.Roots(t)
	ev := &events{}
	domain := "renew.example.com"
	m := e.manager(t, pb, domain, t.TempDir(), nil, ev, time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m.Start(ctx)
	first := e.served(t, domain, roots, nil)
	renewed := e.served(t, domain, roots, first)
	if !renewed.NotAfter.After(first.NotAfter) {
		t.Errorf("renewed certificate expires %v, not after the first's %v", renewed.NotAfter, first.NotAfter)
	}
	if n := ev.count("obtained"); n < 2 {
		t.Errorf("%d obtained events, want the first and a renewal", n)
	}
}

// TestFailureReported points the Manager at a CA that is not there: the
// handshake for the name fails cleanly and Status says why.
func TestFailureReported(t *testing.T) {
	t.Parallel()
	e := newEdge(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	domain := "fail.example.com"
	c := config.ACME{Directory: "https://" + dead + "/dir", Domains: []string{domain}, Storage: t.TempDir()}
	cfg := config.Config{TLS: config.TLS{ACME: &c}}
	cfg.SetDefaults()
	ev := &events{}
	m, err := New(c, Options{HTTPAddr: e.httpAddr, HTTPSAddr: e.tlsAddr, Logger: zaptest.NewLogger(t), OnEvent: ev.add})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Stop)
	e.cur.Store(m)
	m.Start(context.Background())
	deadline := time.Now().Add(30 * time.Second)
	for ev.count("failed") == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	st := m.Status()
	if len(st) != 1 || st[0].Error == "" || !st[0].NotAfter.IsZero() {
		t.Errorf("status %+v, want an error and no certificate", st)
	}
	if _, err := tls.Dial("tcp", e.tlsAddr, &tls.Config{ServerName: domain, InsecureSkipVerify: true}); err == nil {
		t.Error("handshake succeeded without a certificate")
	}
}

// TestNewErrors checks the problems New reports before any network use.
func TestNewErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("not pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cfg  config.ACME
		want string
	}{
		{"storage is a file", config.ACME{Storage: filepath.Join(file, "sub")}, "tls.acme.storage"},
		{"CA missing", config.ACME{Storage: dir, CA: filepath.Join(dir, "none.pem")}, "tls.acme.ca"},
		{"CA not PEM", config.ACME{Storage: dir, CA: file}, "no certificate found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Domains = []string{"new.example.com"}
			_, err := New(tt.cfg, Options{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New: %v, want an error about %s", err, tt.want)
			}
		})
	}
}

// TestMatches checks what makes a reload keep a Manager: the same section
// and the same CA file contents.
func TestMatches(t *testing.T) {
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	writeCA := func(cn string) {
		t.Helper()
		if err := os.WriteFile(ca, certtest.NewCA(t, cn).PEM, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeCA("one")
	cfg := config.ACME{Directory: "https://127.0.0.1:1/dir", Domains: []string{"m.example.com"}, Storage: filepath.Join(dir, "s"), CA: ca, Challenges: []string{config.ChallengeHTTP01}}
	m, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Stop()
	if !m.Matches(cfg) {
		t.Error("same section: no match")
	}
	other := cfg
	other.Domains = []string{"m.example.com", "n.example.com"}
	if m.Matches(other) {
		t.Error("another domain list matches")
	}
	writeCA("two")
	if m.Matches(cfg) {
		t.Error("a rotated CA file matches")
	}
	os.Remove(ca)
	if !m.Matches(cfg) {
		t.Error("an unreadable CA file should keep the Manager")
	}
}
