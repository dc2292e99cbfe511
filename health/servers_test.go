package health_test

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/meridian-lb/meridian/internal/certtest"
)

// listen opens a loopback TCP listener closed at cleanup.
func listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// serve accepts on ln and hands each connection to h in its own goroutine,
// until cleanup, which also waits for the handlers.
func serve(t testing.TB, ln net.Listener, h func(net.Conn)) string {
	t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() { h(c) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// hangServer accepts connections and never answers.
func hangServer(t testing.TB) string {
	t.Helper()
	return serve(t, listen(t), func(c net.Conn) {
		buf := make([]byte, 1024)
		for {
			if _, err := c.Read(buf); err != nil {
				return
			}
		}
	})
}

// resetServer accepts connections and resets them at once.
func resetServer(t testing.TB) string {
	t.Helper()
	return serve(t, listen(t), func(c net.Conn) {
		c.(*net.TCPConn).SetLinger(0)
		c.Close()
	})
}

// closedPort is a loopback address nothing listens on.
func closedPort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// waitFor polls cond until it holds, failing the test after a deadline.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// pki is a throw-away CA that issues server and client certificates, written
// as PEM files into a test directory.
type pki struct {
	ca     *certtest.CA
	dir    string
	CAFile string
	Pool   *x509.CertPool
}

func newPKI(t testing.TB) *pki {
	t.Helper()
	p := &pki{ca: certtest.NewCA(t, "meridian test CA"), dir: t.TempDir(), Pool: x509.NewCertPool()}
	p.Pool.AddCert(p.ca.Cert)
	p.CAFile = p.write(t, "ca.pem", p.ca.PEM)
	return p
}

func (p *pki) write(t testing.TB, name string, b []byte) string {
	t.Helper()
	path := filepath.Join(p.dir, name)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// issue makes a leaf certificate for name and 127.0.0.1; it returns it
// loaded and as files.
func (p *pki) issue(t testing.TB, name string, client bool) (tls.Certificate, string, string) {
	t.Helper()
	cert, key := p.ca.Issue(t, client, name, "127.0.0.1")
	certFile := p.write(t, name+".pem", cert)
	keyFile := p.write(t, name+".key", key)
	c, err := tls.X509KeyPair(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	return c, certFile, keyFile
}
