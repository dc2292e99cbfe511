package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/meridian-lb/meridian/health"
	"github.com/meridian-lb/meridian/internal/certtest"
	"github.com/meridian-lb/meridian/routing"
)

// writeFile replaces path atomically (write a temp file, rename), as
// editors and cert-manager do.
func writeFile(t testing.TB, path string, b []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// writePair issues a server certificate for names into dir/base.{pem,key}
// and returns the paths and the leaf's serial number.
func writePair(t testing.TB, ca *certtest.CA, dir, base string, names ...string) (certPath, keyPath string, serialNo string) {
	t.Helper()
	c, k := ca.Issue(t, false, names...)
	certPath, keyPath = filepath.Join(dir, base+".pem"), filepath.Join(dir, base+".key")
	writeFile(t, keyPath, k)
	writeFile(t, certPath, c)
	blk, _ := pem.Decode(c)
	leaf, _ := x509.ParseCertificate(blk.Bytes)
	return certPath, keyPath, leaf.SerialNumber.String()
}

// tlsEnv is the proxy served on a TLS listener (and, for redirects, on a
// plain one), with the certificate watcher running.
type tlsEnv struct {
	t         *testing.T
	live      routing.Live
	eng       *health.Engine
	reg       *prometheus.Registry
	h         *Handler
	ts        *TLSServer
	addr      string // TLS listener
	plainAddr string
	roots     *x509.CertPool

	mu   sync.Mutex // serialises swaps: the test's and the CA watcher's
	y    string     // the config served, for recompiles
	vars map[string]string
}

// newTLSEnv compiles y (with {{name}} replaced) and serves it on TLS and
// plain listeners; roots are what clients trust.
func newTLSEnv(t *testing.T, y string, vars map[string]string, roots *x509.CertPool) *tlsEnv {
	t.Helper()
	return newTLSEnvOn(t, listenLoopback(t), listenLoopback(t), y, vars, roots)
}

// listenLoopback binds a free port on 127.0.0.1, closed at cleanup.
func listenLoopback(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// newTLSEnvOn is newTLSEnv on given TLS and plain listeners, for configs
// that must name their addresses (ACME challenges arrive on them).
func newTLSEnvOn(t *testing.T, ln, pln net.Listener, y string, vars map[string]string, roots *x509.CertPool) *tlsEnv {
	t.Helper()
	e := &tlsEnv{t: t, reg: prometheus.NewRegistry(), roots: roots}
	e.eng = health.New(health.Options{Registerer: e.reg})
	cfg := e.compile(y, vars)
	cfg.Config.HTTP.Engine = testEngine(cfg.Config.HTTP.Engine)
	e.h = NewHandler(Options{Registerer: e.reg, Settings: cfg.Config.HTTP})
	e.h.Install(e.h.Compile(cfg))
	ts, err := NewTLSServer(e.h, cfg.Config, zap.NewNop(), e.reg)
	if err != nil {
		t.Fatalf("NewTLSServer: %v", err)
	}
	e.ts = ts
	e.ts.Grace = 5 * time.Second
	e.y, e.vars = y, vars
	e.live.Store(cfg)
	e.addr, e.plainAddr = ln.Addr().String(), pln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 3)
	go func() { done <- ts.Serve(ctx, ln) }()
	go func() { done <- ts.Run(ctx) }()
	plainCfg := cfg.Config.HTTP
	plainCfg.Engine = testEngine(plainCfg.Engine)
	plain := NewServer(PlainEdge(e.h, ts), plainCfg, zap.NewNop())
	plain.Grace = time.Second
	go func() { done <- plain.Serve(ctx, pln) }()
	t.Cleanup(func() {
		cancel()
		for range 3 {
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("serve: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Error("TLS env did not stop")
				return
			}
		}
	})
	return e
}

func (e *tlsEnv) compile(y string, vars map[string]string) *routing.Table {
	e.t.Helper()
	return compileBound(e.t, e.eng, y, vars)
}

// swap applies a new config as the rebuild loop does: TLS first, then the
// table.
func (e *tlsEnv) swap(y string, vars map[string]string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.y, e.vars = y, vars
	tb := e.compile(y, vars)
	c := e.h.Compile(tb)
	err := e.ts.Reload(tb.Config)
	e.h.Install(c)
	e.live.Store(tb)
	return err
}

// current is the config served.
func (e *tlsEnv) current() (string, map[string]string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.y, e.vars
}

// handshake connects with server name sni and returns the leaf served.
func (e *tlsEnv) handshake(sni string, conf *tls.Config) (*x509.Certificate, tls.ConnectionState, error) {
	if conf == nil {
		conf = &tls.Config{}
	}
	conf = conf.Clone()
	conf.ServerName = sni
	if conf.RootCAs == nil {
		conf.RootCAs = e.roots
	}
	if conf.NextProtos == nil {
		conf.NextProtos = []string{"h2", "http/1.1"}
	}
	d := &net.Dialer{Timeout: 5 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", e.addr, conf)
	if err != nil {
		return nil, tls.ConnectionState{}, err
	}
	defer c.Close()
	st := c.ConnectionState()
	return st.PeerCertificates[0], st, nil
}

func (e *tlsEnv) metric(name string, labels map[string]string) float64 {
	e.t.Helper()
	return (&env{t: e.t, reg: e.reg}).metric(name, labels)
}
