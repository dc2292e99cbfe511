package acmetest

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"go/build"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/meridian-lb/meridian/internal/certtest"
)

// Install is the command that installs the pebble binary Start runs.
const Install = "go install github.com/letsencrypt/pebble/v2/cmd/pebble@latest"

// Options say where pebble validates challenges and what it issues.
type Options struct {
	// HTTPPort and TLSPort are the ports pebble connects to on 127.0.0.1
	// to validate HTTP-01 and TLS-ALPN-01 challenges.
	HTTPPort, TLSPort int
	// Validity is the lifetime of issued certificates (default 90 days).
	Validity time.Duration
}

// Pebble is a running pebble.
type Pebble struct {
	// Directory is the ACME directory URL.
	Directory string
	// CAFile is a PEM file that verifies Directory's HTTPS: an ACME
	// client's tls.acme.ca.
	CAFile string

	mgmt   string // management API base URL
	client *http.Client
	cmd    *exec.Cmd
	exited chan struct{}
	out    *syncBuffer
}

// Binary returns the pebble executable, or "" when none is installed.
func Binary() string {
	if p := os.Getenv("MERIDIAN_PEBBLE"); p != "" {
		return p
	}
	if p, err := exec.LookPath("pebble"); err == nil {
		return p
	}
	p := filepath.Join(build.Default.GOPATH, "bin", "pebble")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	return ""
}

// Start runs pebble on loopback for the test, or skips the test when
// pebble is not installed.
func Start(t testing.TB, o Options) *Pebble {
	t.Helper()
	bin := Binary()
	if bin == "" {
		t.Skipf("ACME test skipped: pebble is not installed (install it with %q, or set MERIDIAN_PEBBLE to its path; scripts/test.sh does the first)", Install)
	}
	if o.Validity <= 0 {
		o.Validity = 90 * 24 * time.Hour
	}
	dir := t.TempDir()
	caFile, certFile, keyFile := writeServerCert(t, dir)
	dns := startDNS(t)
	pool := x509.NewCertPool()
	pem, _ := os.ReadFile(caFile)
	pool.AppendCertsFromPEM(pem)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	t.Cleanup(client.CloseIdleConnections)

	// Pebble binds its own ports, so they are picked free and then handed
	// over; a lost race shows as an early exit and is retried.
	var lastErr error
	for range 3 {
		api, mgmt := freePort(t), freePort(t)
		cfgFile := filepath.Join(dir, "pebble.json")
		writeConfig(t, cfgFile, api, mgmt, certFile, keyFile, o)
		p := &Pebble{
			Directory: fmt.Sprintf("https://127.0.0.1:%d/dir", api),
			CAFile:    caFile,
			mgmt:      fmt.Sprintf("https://127.0.0.1:%d", mgmt),
			client:    client,
			exited:    make(chan struct{}),
			out:       &syncBuffer{},
		}
		p.cmd = exec.Command(bin, "-config", cfgFile, "-dnsserver", dns)
		p.cmd.Env = append(os.Environ(),
			"PEBBLE_VA_NOSLEEP=1",      // validate at once
			"PEBBLE_WFE_NONCEREJECT=0", // no random badNonce answers
			"PEBBLE_AUTHZREUSE=0",      // every order validates afresh
			"PEBBLE_ALTERNATE_ROOTS=0", // one root to trust
		)
		p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
		if err := p.cmd.Start(); err != nil {
			t.Fatalf("starting pebble %s: %v", bin, err)
		}
		go func() { _ = p.cmd.Wait(); close(p.exited) }()
		if lastErr = p.waitReady(); lastErr == nil {
			t.Cleanup(func() {
				p.Stop()
				if t.Failed() {
					t.Logf("pebble output:\n%s", p.out.String())
				}
			})
			return p
		}
		p.Stop()
	}
	t.Fatalf("pebble did not start: %v", lastErr)
	return nil
}

// waitReady polls the directory until it answers or pebble exits.
func (p *Pebble) waitReady() error {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-p.exited:
			return fmt.Errorf("pebble exited: %s", p.out.String())
		default:
		}
		res, err := p.client.Get(p.Directory)
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("no answer from %s in 20s: %s", p.Directory, p.out.String())
}

// Stop ends pebble; the test then shows whether a client still needs it.
func (p *Pebble) Stop() {
	if p.cmd.Process != nil {
		_ = p.cmd.Process.Kill()
	}
	<-p.exited
}

// Roots returns pebble's issuing root, which verifies the certificates it
// issues. Each pebble run makes a new one.
func (p *Pebble) Roots(t testing.TB) *x509.CertPool {
	t.Helper()
	res, err := p.client.Get(p.mgmt + "/roots/0")
	if err != nil {
		t.Fatalf("pebble root: %v", err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("pebble root: %d %v", res.StatusCode, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		t.Fatalf("pebble root: no certificate in %q", b)
	}
	return pool
}

func writeConfig(t testing.TB, path string, api, mgmt int, cert, key string, o Options) {
	t.Helper()
	type profile struct {
		Description    string `json:"description"`
		ValidityPeriod uint64 `json:"validityPeriod"`
	}
	var c struct {
		Pebble struct {
			ListenAddress           string             `json:"listenAddress"`
			ManagementListenAddress string             `json:"managementListenAddress"`
			Certificate             string             `json:"certificate"`
			PrivateKey              string             `json:"privateKey"`
			HTTPPort                int                `json:"httpPort"`
			TLSPort                 int                `json:"tlsPort"`
			KeyAlgorithm            string             `json:"keyAlgorithm"`
			Profiles                map[string]profile `json:"profiles"`
			RetryAfter              struct {
				Authz int `json:"authz"`
				Order int `json:"order"`
			} `json:"retryAfter"`
		} `json:"pebble"`
	}
	c.Pebble.ListenAddress = "127.0.0.1:" + strconv.Itoa(api)
	c.Pebble.ManagementListenAddress = "127.0.0.1:" + strconv.Itoa(mgmt)
	c.Pebble.Certificate, c.Pebble.PrivateKey = cert, key
	c.Pebble.HTTPPort, c.Pebble.TLSPort = o.HTTPPort, o.TLSPort
	c.Pebble.KeyAlgorithm = "ecdsa"
	c.Pebble.Profiles = map[string]profile{"default": {Description: "test", ValidityPeriod: uint64(o.Validity / time.Second)}}
	c.Pebble.RetryAfter.Authz, c.Pebble.RetryAfter.Order = 1, 1
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// writeServerCert makes a CA and a certificate for pebble's own HTTPS on
// 127.0.0.1, returning the CA file for clients and the server pair.
func writeServerCert(t testing.TB, dir string) (caFile, certFile, keyFile string) {
	t.Helper()
	ca := certtest.NewCA(t, "acmetest pebble API CA")
	cert, key := ca.Issue(t, false, "localhost", "127.0.0.1")
	caFile, certFile, keyFile = filepath.Join(dir, "api-ca.pem"), filepath.Join(dir, "api.pem"), filepath.Join(dir, "api.key")
	for path, b := range map[string][]byte{caFile: ca.PEM, certFile: cert, keyFile: key} {
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return caFile, certFile, keyFile
}

// startDNS serves, over TCP (pebble's resolver uses TCP), an A record of
// 127.0.0.1 for every name and no other records, so the names a test
// orders lead pebble's validation to loopback.
func startDNS(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &mdns.Server{Listener: ln, Handler: mdns.HandlerFunc(func(w mdns.ResponseWriter, r *mdns.Msg) {
		m := new(mdns.Msg)
		m.SetReply(r)
		m.Authoritative = true
		if len(r.Question) == 1 && r.Question[0].Qtype == mdns.TypeA {
			m.Answer = []mdns.RR{&mdns.A{
				Hdr: mdns.RR_Header{Name: r.Question[0].Name, Rrtype: mdns.TypeA, Class: mdns.ClassINET, Ttl: 60},
				A:   net.IPv4(127, 0, 0, 1),
			}}
		}
		_ = w.WriteMsg(m)
	})}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go func() { _ = srv.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { _ = srv.Shutdown() })
	return ln.Addr().String()
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// syncBuffer collects pebble's output from its two pipes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
