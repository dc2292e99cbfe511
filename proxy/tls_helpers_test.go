package proxy

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/meridian-lb/meridian/health"
	"github.com/meridian-lb/meridian/routing"
)

var serial atomic.Int64

// testCA is a certificate authority made at test time.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t testing.TB, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(serial.Add(1)),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return &testCA{cert: c, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue signs a leaf for names (DNS names or IP addresses); client makes
// it a client certificate. It returns the PEM certificate and key.
func (ca *testCA) issue(t testing.TB, client bool, names ...string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial.Add(1)),
		Subject:      pkix.Name{CommonName: names[0]},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if client {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

// tlsPair issues a client certificate usable with tls.Config.Certificates.
func (ca *testCA) tlsPair(t testing.TB, names ...string) tls.Certificate {
	t.Helper()
	c, k := ca.issue(t, true, names...)
	pair, err := tls.X509KeyPair(c, k)
	if err != nil {
		t.Fatal(err)
	}
	return pair
}

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
func writePair(t testing.TB, ca *testCA, dir, base string, names ...string) (certPath, keyPath string, serialNo string) {
	t.Helper()
	c, k := ca.issue(t, false, names...)
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
	e.h = NewHandler(Options{Tables: &e.live, Registerer: e.reg, Settings: cfg.Config.HTTP})
	ts, err := NewTLSServer(e.h, cfg.Config, zap.NewNop(), e.reg)
	if err != nil {
		t.Fatalf("NewTLSServer: %v", err)
	}
	e.ts = ts
	e.ts.Grace = 5 * time.Second
	e.live.Store(cfg)
	e.addr, e.plainAddr = ln.Addr().String(), pln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 3)
	go func() { done <- ts.Serve(ctx, ln) }()
	go func() { done <- ts.Run(ctx) }()
	plain := NewServer(PlainEdge(e.h, ts), cfg.Config.HTTP, zap.NewNop())
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
	tb := e.compile(y, vars)
	err := e.ts.Reload(tb.Config)
	e.live.Store(tb)
	return err
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
