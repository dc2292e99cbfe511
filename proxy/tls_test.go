package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meridian-lb/meridian/internal/certtest"
	"github.com/meridian-lb/meridian/routing"
)

// client returns an HTTPS client that dials the TLS listener whatever the
// URL's host, so the URL's host is the SNI and the Host.
func (e *tlsEnv) client(conf *tls.Config) *http.Client {
	if conf == nil {
		conf = &tls.Config{}
	}
	conf = conf.Clone()
	if conf.RootCAs == nil {
		conf.RootCAs = e.roots
	}
	d := &net.Dialer{Timeout: 5 * time.Second}
	tr := &http.Transport{
		TLSClientConfig:   conf,
		ForceAttemptHTTP2: true,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, e.addr)
		},
	}
	e.t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{
		Transport:     tr,
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func (e *tlsEnv) get(c *http.Client, url string, host string) (*http.Response, string) {
	e.t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	res, err := c.Do(req)
	if err != nil {
		e.t.Fatalf("GET %s: %v", url, err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	return res, string(b)
}

const sniConfig = `
listen: {https: "127.0.0.1:0"}
tls:
  unknown_sni: {{UNKNOWN}}
  certificates:
    - {cert: {{A}}.pem, key: {{A}}.key}
    - {cert: {{B}}.pem, key: {{B}}.key}
    - {cert: {{C}}.pem, key: {{C}}.key}
    - {cert: {{W}}.pem, key: {{W}}.key}
pools: {p: {endpoints: [{{BACKEND}}]}}
services: {s: {pools: [p]}}
routes: [{name: r, service: s}]
`

func TestTLSSNISelection(t *testing.T) {
	ca := certtest.NewCA(t, "test CA")
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	dir := t.TempDir()
	serials := map[string]string{}
	_, _, serials["a"] = writePair(t, ca, dir, "a", "a.example.com")
	_, _, serials["b"] = writePair(t, ca, dir, "b", "b.example.com")
	_, _, serials["c"] = writePair(t, ca, dir, "c", "c.example.com", "special.w.example.com")
	_, _, serials["w"] = writePair(t, ca, dir, "w", "*.w.example.com")
	be := newBackend(t, "be", nil)
	vars := map[string]string{
		"A": filepath.Join(dir, "a"), "B": filepath.Join(dir, "b"), "C": filepath.Join(dir, "c"), "W": filepath.Join(dir, "w"),
		"BACKEND": be.addr, "UNKNOWN": "default",
	}
	for _, mode := range []string{"default", "fail"} {
		t.Run("unknown_sni="+mode, func(t *testing.T) {
			vars["UNKNOWN"] = mode
			e := newTLSEnv(t, sniConfig, vars, roots)
			insecure := &tls.Config{InsecureSkipVerify: true}
			tests := []struct {
				name, sni, want string // want: serial key, "" for a failed handshake
				conf            *tls.Config
			}{
				{"exact a", "a.example.com", "a", nil},
				{"exact b", "b.example.com", "b", nil},
				{"exact c", "c.example.com", "c", nil},
				{"mixed case and trailing dot", "B.Example.COM.", "b", insecure},
				{"wildcard", "x.w.example.com", "w", nil},
				{"exact beats wildcard", "special.w.example.com", "c", nil},
				{"wildcard covers one label only", "y.x.w.example.com", map[string]string{"default": "a", "fail": ""}[mode], insecure},
				{"unknown name", "unknown.example.org", map[string]string{"default": "a", "fail": ""}[mode], insecure},
				{"no SNI", "", map[string]string{"default": "a", "fail": ""}[mode], insecure},
			}
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					leaf, st, err := e.handshake(tc.sni, tc.conf)
					if tc.want == "" {
						if err == nil {
							t.Fatalf("handshake succeeded with %v, want failure", leaf.DNSNames)
						}
						return
					}
					if err != nil {
						t.Fatalf("handshake: %v", err)
					}
					if got := leaf.SerialNumber.String(); got != serials[tc.want] {
						t.Errorf("served %v (serial %s), want pair %q", leaf.DNSNames, got, tc.want)
					}
					if st.NegotiatedProtocol != "h2" {
						t.Errorf("ALPN %q, want h2", st.NegotiatedProtocol)
					}
				})
			}
		})
	}
}

func TestTLSVersionsAndALPN(t *testing.T) {
	ca := certtest.NewCA(t, "test CA")
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	dir := t.TempDir()
	writePair(t, ca, dir, "a", "a.example.com")
	be := newBackend(t, "be", nil)
	y := `
listen: {https: "127.0.0.1:0"}
tls: {min_version: "{{MIN}}", certificates: [{cert: {{A}}.pem, key: {{A}}.key}]}
pools: {p: {endpoints: [{{BACKEND}}]}}
services: {s: {pools: [p]}}
routes: [{name: r, service: s}]
`
	tests := []struct {
		name, min string
		conf      *tls.Config
		ok        bool
		alpn      string
	}{
		{"1.2 allowed by default", "1.2", &tls.Config{MaxVersion: tls.VersionTLS12}, true, "h2"},
		{"1.1 refused", "1.2", &tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}, false, ""},
		{"1.2 refused with min 1.3", "1.3", &tls.Config{MaxVersion: tls.VersionTLS12}, false, ""},
		{"1.3 with min 1.3", "1.3", &tls.Config{}, true, "h2"},
		{"http/1.1 only client", "1.2", &tls.Config{NextProtos: []string{"http/1.1"}}, true, "http/1.1"},
		{"weak cipher refused", "1.2", &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}}, false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newTLSEnv(t, y, map[string]string{"A": filepath.Join(dir, "a"), "BACKEND": be.addr, "MIN": tc.min}, roots)
			conf := tc.conf
			if conf.NextProtos == nil {
				conf.NextProtos = []string{"h2", "http/1.1"}
			}
			_, st, err := e.handshake("a.example.com", conf)
			if (err == nil) != tc.ok {
				t.Fatalf("handshake error %v, want ok=%v", err, tc.ok)
			}
			if tc.ok && st.NegotiatedProtocol != tc.alpn {
				t.Errorf("ALPN %q, want %q", st.NegotiatedProtocol, tc.alpn)
			}
		})
	}
}

const rotateConfig = `
listen: {https: "127.0.0.1:0"}
tls: {certificates: [{cert: {{A}}.pem, key: {{A}}.key}]}
pools: {p: {endpoints: [{{BACKEND}}]}}
services: {s: {pools: [p]}}
routes: [{name: r, service: s}]
`

func TestTLSCertRotation(t *testing.T) {
	ca := certtest.NewCA(t, "test CA")
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	dir := t.TempDir()
	_, _, oldSerial := writePair(t, ca, dir, "a", "a.example.com")

	release := make(chan struct{})
	started := make(chan struct{}, 1)
	be := newBackend(t, "be", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			started <- struct{}{}
			<-release
		}
		fmt.Fprint(w, "done")
	})
	e := newTLSEnv(t, rotateConfig, map[string]string{"A": filepath.Join(dir, "a"), "BACKEND": be.addr}, roots)

	// A long request on a connection that negotiated the old certificate.
	c := e.client(nil)
	type result struct {
		res  *http.Response
		body string
		err  error
	}
	slow := make(chan result, 1)
	go func() {
		res, err := c.Get("https://a.example.com/slow")
		if err != nil {
			slow <- result{err: err}
			return
		}
		b, err := io.ReadAll(res.Body)
		res.Body.Close()
		slow <- result{res: res, body: string(b), err: err}
	}()
	<-started

	_, _, newSerial := writePair(t, ca, dir, "a", "a.example.com")
	newCert, _ := os.ReadFile(filepath.Join(dir, "a.pem"))
	var retouch pacer
	waitFor(t, "the new certificate on new handshakes", func() bool {
		if retouch.due() { // events again, in case the watch had not started
			writeFile(t, filepath.Join(dir, "a.pem"), newCert)
		}

		leaf, _, err := e.handshake("a.example.com", nil)
		return err == nil && leaf.SerialNumber.String() == newSerial
	})
	if oldSerial == newSerial {
		t.Fatal("test bug: serials equal")
	}
	if got := e.metric("meridian_tls_cert_reloads_total", map[string]string{"result": "success"}); got < 1 {
		t.Errorf("reloads{success} = %v, want >= 1", got)
	}
	close(release)
	r := <-slow
	if r.err != nil || r.res.StatusCode != 200 || r.body != "done" {
		t.Fatalf("long request across the rotation: %v %v %q", r.err, r.res, r.body)
	}
	if st := e.ts.Status(); !st.OK || len(st.Certificates) != 1 || st.Certificates[0].Names[0] != "a.example.com" {
		t.Errorf("status %+v", st)
	}
}

func TestTLSBadKeyKeepsOld(t *testing.T) {
	ca := certtest.NewCA(t, "test CA")
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	dir := t.TempDir()
	certPath, keyPath, oldSerial := writePair(t, ca, dir, "a", "a.example.com")
	be := newBackend(t, "be", nil)
	e := newTLSEnv(t, rotateConfig, map[string]string{"A": filepath.Join(dir, "a"), "BACKEND": be.addr}, roots)

	other := certtest.NewCA(t, "other CA")
	otherCert, _ := other.Issue(t, false, "a.example.com")
	tests := []struct {
		name       string
		cert, key  []byte
		wantInStat string
	}{
		{"garbage key", nil, []byte("not a key"), "pair"},
		{"key of another certificate", otherCert, nil, "private key does not match"},
		{"empty certificate", []byte{}, nil, "pair"},
	}
	goodCert, _ := os.ReadFile(certPath)
	goodKey, _ := os.ReadFile(keyPath)
	var retouch pacer
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.cert != nil {
				writeFile(t, certPath, tc.cert)
			}
			if tc.key != nil {
				writeFile(t, keyPath, tc.key)
			}
			waitFor(t, "the failure to be counted", func() bool {
				// Rewriting the same bytes makes events again, in case the
				// watcher was not watching yet; the content is counted once.
				if retouch.due() {
					if tc.cert != nil {
						writeFile(t, certPath, tc.cert)
					}
					if tc.key != nil {
						writeFile(t, keyPath, tc.key)
					}
				}
				return e.metric("meridian_tls_cert_reloads_total", map[string]string{"result": "failure"}) >= float64(i+1)
			})
			leaf, _, err := e.handshake("a.example.com", nil)
			if err != nil || leaf.SerialNumber.String() != oldSerial {
				t.Fatalf("after a bad pair: %v, serial %v; want the old certificate", err, leaf)
			}
			st := e.ts.Status()
			if st.OK || !strings.Contains(st.Error, tc.wantInStat) || st.Certificates[0].Error == "" {
				t.Errorf("status %+v, want the error %q shown", st, tc.wantInStat)
			}
			// Put the good pair back.
			writeFile(t, certPath, goodCert)
			writeFile(t, keyPath, goodKey)
			waitFor(t, "recovery", func() bool {
				if retouch.due() {
					writeFile(t, keyPath, goodKey)
				}
				return e.ts.Status().OK
			})
		})
	}
	// A reload naming a pair that cannot load keeps the old one too.
	err := e.swap(strings.Replace(rotateConfig, "{{A}}.key", filepath.Join(dir, "missing.key"), 1),
		map[string]string{"A": filepath.Join(dir, "a"), "BACKEND": be.addr})
	if err == nil {
		t.Error("Reload with a missing key: no error")
	}
	leaf, _, err := e.handshake("a.example.com", nil)
	if err != nil || leaf.SerialNumber.String() != oldSerial {
		t.Fatalf("after a reload with a missing key: %v; want the old certificate", err)
	}
}

const mtlsConfig = `
listen: {https: "127.0.0.1:0", http: "127.0.0.1:0"}
tls: {certificates: [{cert: {{A}}.pem, key: {{A}}.key}]}
pools: {p: {endpoints: [{{BACKEND}}]}}
services: {s: {pools: [p]}}
routes:
  - {name: secure, match: {host: secure.example.com, path_prefix: /admin}, service: s, tls: {client_auth: require, client_ca: {{CA}}}}
  - {name: open, match: {host: "*.example.com"}, service: s, hsts: "max-age=63072000"}
  - {name: redirect, match: {host: plain.example.org}, service: s, redirect_https: true}
`

// newMTLSEnv serves mtlsConfig with a server certificate for
// *.example.com and plain.example.org, and clients.pem (returned) holding
// clientCA as the routes' client CA.
func newMTLSEnv(t *testing.T, clientCA *certtest.CA) (*tlsEnv, string) {
	t.Helper()
	ca := certtest.NewCA(t, "server CA")
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	dir := t.TempDir()
	writePair(t, ca, dir, "a", "*.example.com", "plain.example.org")
	caPath := filepath.Join(dir, "clients.pem")
	writeFile(t, caPath, clientCA.PEM)
	be := newBackend(t, "be", nil)
	return newTLSEnv(t, mtlsConfig, map[string]string{"A": filepath.Join(dir, "a"), "BACKEND": be.addr, "CA": caPath}, roots), caPath
}

func TestTLSClientAuth(t *testing.T) {
	clientCA := certtest.NewCA(t, "client CA")
	otherCA := certtest.NewCA(t, "other client CA")
	e, _ := newMTLSEnv(t, clientCA)

	good := &tls.Config{Certificates: []tls.Certificate{clientCA.TLSPair(t, true, "alice")}}
	bad := &tls.Config{Certificates: []tls.Certificate{otherCA.TLSPair(t, true, "mallory")}}
	tests := []struct {
		name      string
		conf      *tls.Config
		url, host string
		want      int
	}{
		{"no certificate on the mTLS route", nil, "https://secure.example.com/admin", "", 403},
		{"no certificate on another path of the host", nil, "https://secure.example.com/", "", 200},
		{"good certificate", good, "https://secure.example.com/admin", "", 200},
		{"certificate from another CA", bad, "https://secure.example.com/admin", "", 403},
		{"mTLS route through a connection for another name", good, "https://www.example.com/admin", "secure.example.com", 421},
		{"authenticated connection, other host", good, "https://secure.example.com/", "www.example.com", 421},
		{"unauthenticated connection, other host, open route", nil, "https://www.example.com/", "x.example.com", 200},
		{"mixed-case host with a trailing dot", good, "https://secure.example.com/admin", "SECURE.example.com.", 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, body := e.get(e.client(tc.conf), tc.url, tc.host)
			if res.StatusCode != tc.want {
				t.Fatalf("status %d (%q), want %d", res.StatusCode, body, tc.want)
			}
		})
	}
	t.Run("plain listener refuses the mTLS route", func(t *testing.T) {
		req, _ := http.NewRequest("GET", "http://"+e.plainAddr+"/admin", nil)
		req.Host = "secure.example.com"
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 403 {
			t.Errorf("status %d, want 403", res.StatusCode)
		}
	})
	t.Run("handshake asks for a certificate only where needed", func(t *testing.T) {
		for _, tc := range []struct {
			sni  string
			want bool
		}{{"secure.example.com", true}, {"www.example.com", false}, {"", true}} {
			asked := false
			conf := &tls.Config{InsecureSkipVerify: tc.sni == "", GetClientCertificate: func(cri *tls.CertificateRequestInfo) (*tls.Certificate, error) {
				asked = true
				if len(cri.AcceptableCAs) == 0 {
					t.Errorf("%q: no acceptable CAs hinted", tc.sni)
				}
				return &tls.Certificate{}, nil
			}}
			if _, _, err := e.handshake(tc.sni, conf); err != nil {
				t.Fatal(err)
			}
			if asked != tc.want {
				t.Errorf("SNI %q: certificate requested = %v, want %v", tc.sni, asked, tc.want)
			}
		}
	})
}

func TestTLSHSTSAndRedirect(t *testing.T) {
	ca := certtest.NewCA(t, "server CA")
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	dir := t.TempDir()
	writePair(t, ca, dir, "a", "*.example.com", "plain.example.org")
	caPath := filepath.Join(dir, "clients.pem")
	writeFile(t, caPath, ca.PEM)
	be := newBackend(t, "be", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Strict-Transport-Security", "max-age=1")
		fmt.Fprint(w, "ok")
	})
	e := newTLSEnv(t, mtlsConfig, map[string]string{"A": filepath.Join(dir, "a"), "BACKEND": be.addr, "CA": caPath}, roots)

	res, _ := e.get(e.client(nil), "https://www.example.com/", "")
	if got := res.Header.Values("Strict-Transport-Security"); len(got) == 0 || got[0] != "max-age=63072000" {
		t.Errorf("HSTS %q, want the route's value first", got)
	}
	port := e.ts.Port()
	tests := []struct {
		name, target, host, want string
		code                     int
	}{
		{"redirect keeps path and query", "/a/b?x=1&y=2", "plain.example.org", fmt.Sprintf("https://plain.example.org:%d/a/b?x=1&y=2", port), 308},
		{"redirect drops the plain port", "/", "plain.example.org:8080", fmt.Sprintf("https://plain.example.org:%d/", port), 308},
		{"route without redirect is proxied", "/", "www.example.com", "", 200},
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", "http://"+e.plainAddr+tc.target, strings.NewReader("body"))
			req.Host = tc.host
			res, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != tc.code || res.Header.Get("Location") != tc.want {
				t.Errorf("got %d %q, want %d %q", res.StatusCode, res.Header.Get("Location"), tc.code, tc.want)
			}
			if res.Header.Get("Strict-Transport-Security") != "" && tc.code != 200 {
				t.Error("HSTS sent over plain HTTP")
			}
		})
	}
}

func TestHTTPSURL(t *testing.T) {
	tests := []struct {
		name, host, target string
		port               int
		want               string
	}{
		{"default port", "a.example", "/p?q=1", 443, "https://a.example/p?q=1"},
		{"other port", "a.example:80", "/", 8443, "https://a.example:8443/"},
		{"ipv6", "[::1]:80", "/x", 8443, "https://[::1]:8443/x"},
		{"ipv6 without port", "[::1]", "/x", 443, "https://[::1]/x"},
		{"escaped path kept", "a.example", "/a%20b", 443, "https://a.example/a%20b"},
		{"hash in query escaped", "a.example", "/?a=#b", 443, "https://a.example/?a=%23b"},
		{"ipv4 with port", "192.0.2.1:80", "/", 443, "https://192.0.2.1/"},
		{"trailing dot dropped", "a.example.:80", "/", 443, "https://a.example/"},
		{"empty port allowed", "a.example:", "/", 443, "https://a.example/"},
		{"underscore label", "_svc.a.example", "/", 443, "https://_svc.a.example/"},
		{"case kept", "A.Example", "/", 443, "https://A.Example/"},
		{"userinfo in Host refused", "x@evil.example", "/", 443, ""},
		{"empty host refused", "", "/", 443, ""},
		{"unclosed bracket refused", "[:", "/", 443, ""},
		{"bracketed non-address refused", "[a.example]", "/", 443, ""},
		{"bracketed ipv4 refused", "[192.0.2.1]", "/", 443, ""},
		{"ipv6 zone refused", "[fe80::1%25eth0]", "/", 443, ""},
		{"junk after bracket refused", "[::1]x", "/", 443, ""},
		{"unbracketed ipv6 refused", "::1", "/", 443, ""},
		{"several colons refused", "a:b:c", "/", 443, ""},
		{"name with colons refused", "X::", "/", 443, ""},
		{"port not a number refused", "a.example:http", "/", 443, ""},
		{"signed port refused", "a.example:+80", "/", 443, ""},
		{"port too large refused", "a.example:65536", "/", 443, ""},
		{"empty label refused", "a..example", "/", 443, ""},
		{"lone dot refused", ".", "/", 443, ""},
		{"label too long refused", strings.Repeat("a", 64) + ".example", "/", 443, ""},
		{"slash in host refused", "a.example/x", "/", 443, ""},
		{"percent in host refused", "a%2eexample", "/", 443, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", tc.target, nil)
			r.Host = tc.host
			got, ok := httpsURL(r, tc.port)
			if got != tc.want || ok != (tc.want != "") {
				t.Errorf("got %q, %v, want %q", got, ok, tc.want)
			}
		})
	}
}

// TestRedirectHTTPSBadHostRaw sends Hosts that are not a valid
// host[:port] to a catch-all redirect_https route through the real plain
// listener. It writes the request bytes itself, since net/http clients
// normalise or refuse such Hosts. Each must get 400, never a 308 with a
// Location that does not parse, and never reach the backend.
func TestRedirectHTTPSBadHostRaw(t *testing.T) {
	ca := certtest.NewCA(t, "server CA")
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	dir := t.TempDir()
	writePair(t, ca, dir, "a", "a.example")
	be := newBackend(t, "be", nil)
	e := newTLSEnv(t, `
listen: {https: "127.0.0.1:0", http: "127.0.0.1:0"}
tls: {certificates: [{cert: {{A}}.pem, key: {{A}}.key}]}
pools: {p: {endpoints: [{{BACKEND}}]}}
services: {s: {pools: [p]}}
routes:
  - {name: redirect, match: {path_prefix: /}, service: s, redirect_https: true}
`, map[string]string{"A": filepath.Join(dir, "a"), "BACKEND": be.addr}, roots)
	waitFor(t, "the TLS listener's port", func() bool { return e.ts.Port() != 0 })
	port := e.ts.Port()
	tests := []struct {
		name, host, location string
		code                 int
	}{
		{"valid host redirected", "a.example:8080", fmt.Sprintf("https://a.example:%d/p?q=1", port), 308},
		{"valid ipv6 redirected", "[::1]:8080", fmt.Sprintf("https://[::1]:%d/p?q=1", port), 308},
		{"unclosed bracket", "[:", "", 400},
		{"several colons", "a:b:c", "", 400},
		{"name with colons", "X::", "", 400},
		{"bracketed name", "[a.example]", "", 400},
		{"userinfo", "x@evil.example", "", 400},
		{"port not a number", "a.example:https", "", 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", e.plainAddr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.WriteString(c, "GET /p?q=1 HTTP/1.1\r\nHost: "+tc.host+"\r\nConnection: close\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			res, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			loc := res.Header.Get("Location")
			if res.StatusCode != tc.code || loc != tc.location {
				t.Fatalf("Host %q: got %d Location %q, want %d %q", tc.host, res.StatusCode, loc, tc.code, tc.location)
			}
			if loc != "" {
				if _, err := url.Parse(loc); err != nil {
					t.Errorf("Location %q does not parse: %v", loc, err)
				}
			}
		})
	}
	if n := be.hits.Load(); n != 0 {
		t.Errorf("backend got %d requests, want none", n)
	}
}

func TestTLSClientCARotation(t *testing.T) {
	clientCA := certtest.NewCA(t, "client CA")
	newClientCA := certtest.NewCA(t, "new client CA")
	e, caPath := newMTLSEnv(t, clientCA)
	newClient := &tls.Config{Certificates: []tls.Certificate{newClientCA.TLSPair(t, true, "bob")}}
	if res, _ := e.get(e.client(newClient), "https://secure.example.com/admin", ""); res.StatusCode != 403 {
		t.Fatalf("before rotation: %d, want 403", res.StatusCode)
	}
	writeFile(t, caPath, newClientCA.PEM)
	// The client CA is compiled with the table: the App's file watcher
	// recompiles when it changes (internal/app TestTLSFilesRotate); here
	// the test recompiles, as that poke does.
	if err := e.swap(e.current()); err != nil {
		t.Fatal(err)
	}
	if res, _ := e.get(e.client(newClient), "https://secure.example.com/admin", ""); res.StatusCode != 200 {
		t.Fatalf("after rotation: %d, want 200", res.StatusCode)
	}
}

// TestTLSUpstream sends requests through the TLS listener to HTTPS
// upstreams: verified by a CA and a server name, with a client certificate
// (mTLS), over h2 when the upstream offers it (protocol auto), and over
// HTTP/1.1 when it does not or the pool says http1.
func TestTLSUpstream(t *testing.T) {
	ca := certtest.NewCA(t, "upstream CA")
	clientCA := certtest.NewCA(t, "proxy client CA")
	dir := t.TempDir()
	upCert, upKey, _ := writePair(t, ca, dir, "up", "backend.internal")
	caPath := filepath.Join(dir, "ca.pem")
	writeFile(t, caPath, ca.PEM)
	cc, ck := clientCA.Issue(t, true, "meridian")
	ccPath, ckPath := filepath.Join(dir, "client.pem"), filepath.Join(dir, "client.key")
	writeFile(t, ccPath, cc)
	writeFile(t, ckPath, ck)
	pair, err := tls.LoadX509KeyPair(upCert, upKey)
	if err != nil {
		t.Fatal(err)
	}
	clientRoots := x509.NewCertPool()
	clientRoots.AddCert(clientCA.Cert)

	var mu sync.Mutex
	var seen []string
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		who := "-"
		if len(r.TLS.PeerCertificates) > 0 {
			who = r.TLS.PeerCertificates[0].Subject.CommonName
		}
		mu.Lock()
		seen = append(seen, r.Proto+" "+who)
		mu.Unlock()
		fmt.Fprint(w, r.Proto)
	}))
	up.EnableHTTP2 = true
	up.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: clientRoots}
	up.StartTLS()
	t.Cleanup(up.Close)
	up1 := httptest.NewUnstartedServer(up.Config.Handler) // offers http/1.1 only
	up1.TLS = &tls.Config{Certificates: []tls.Certificate{pair}}
	up1.StartTLS()
	t.Cleanup(up1.Close)

	front := certtest.NewCA(t, "front CA")
	roots := x509.NewCertPool()
	roots.AddCert(front.Cert)
	writePair(t, front, dir, "front", "www.example.com")
	y := `
listen: {https: "127.0.0.1:0"}
tls: {certificates: [{cert: {{DIR}}/front.pem, key: {{DIR}}/front.key}]}
pools:
  verified: {endpoints: [{{UP}}], tls: {ca: {{DIR}}/ca.pem, server_name: backend.internal}}
  h1only: {endpoints: [{{UP1}}], tls: {ca: {{DIR}}/ca.pem, server_name: backend.internal}}
  http1: {endpoints: [{{UP}}], protocol: http1, tls: {ca: {{DIR}}/ca.pem, server_name: backend.internal}}
  mtls: {endpoints: [{{UP}}], tls: {ca: {{DIR}}/ca.pem, server_name: backend.internal, cert: {{DIR}}/client.pem, key: {{DIR}}/client.key}}
  h2: {endpoints: [{{UP}}], protocol: h2, tls: {ca: {{DIR}}/ca.pem, server_name: backend.internal, cert: {{DIR}}/client.pem, key: {{DIR}}/client.key}}
  wrongname: {endpoints: [{{UP}}], tls: {ca: {{DIR}}/ca.pem, server_name: other.internal}}
  untrusted: {endpoints: [{{UP}}], tls: {server_name: backend.internal}}
services:
  verified: {pools: [verified]}
  h1only: {pools: [h1only]}
  http1: {pools: [http1]}
  mtls: {pools: [mtls]}
  h2: {pools: [h2]}
  wrongname: {pools: [wrongname]}
  untrusted: {pools: [untrusted]}
routes:
  - {name: verified, match: {path_prefix: /verified}, service: verified}
  - {name: h1only, match: {path_prefix: /h1only}, service: h1only}
  - {name: http1, match: {path_prefix: /http1}, service: http1}
  - {name: mtls, match: {path_prefix: /mtls}, service: mtls}
  - {name: h2, match: {path_prefix: /h2}, service: h2}
  - {name: wrongname, match: {path_prefix: /wrongname}, service: wrongname}
  - {name: untrusted, match: {path_prefix: /untrusted}, service: untrusted}
`
	e := newTLSEnv(t, y, map[string]string{"DIR": dir, "UP": up.Listener.Addr().String(), "UP1": up1.Listener.Addr().String()}, roots)
	c := e.client(nil)
	tests := []struct {
		path     string
		code     int
		wantSeen string
	}{
		{"/verified", 200, "HTTP/2.0 -"},
		{"/h1only", 200, "HTTP/1.1 -"},
		{"/http1", 200, "HTTP/1.1 -"},
		{"/mtls", 200, "HTTP/2.0 meridian"},
		{"/h2", 200, "HTTP/2.0 meridian"},
		{"/wrongname", 502, ""},
		{"/untrusted", 502, ""},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			mu.Lock()
			seen = nil
			mu.Unlock()
			res, body := e.get(c, "https://www.example.com"+tc.path, "")
			if res.StatusCode != tc.code {
				t.Fatalf("status %d (%q), want %d", res.StatusCode, body, tc.code)
			}
			if res.Proto != "HTTP/2.0" {
				t.Errorf("client side %s, want HTTP/2.0", res.Proto)
			}
			mu.Lock()
			defer mu.Unlock()
			if tc.wantSeen != "" && (len(seen) != 1 || seen[0] != tc.wantSeen) {
				t.Errorf("upstream saw %q, want %q", seen, tc.wantSeen)
			}
			if tc.wantSeen == "" && len(seen) != 0 {
				t.Errorf("upstream reached: %q", seen)
			}
		})
	}
}

// pacer says when to touch a file again while polling: rarely enough that
// the watcher's debounce (which every event restarts) can fire.
type pacer struct{ last time.Time }

func (p *pacer) due() bool {
	if time.Since(p.last) < 500*time.Millisecond {
		return false
	}
	p.last = time.Now()
	return true
}

// FuzzHTTPSURL checks that a redirect target always parses, stays on the
// host the route was matched on (no host, userinfo or path smuggled through
// Host), and keeps the path and query. The seeds in
// testdata/fuzz/FuzzHTTPSURL are inputs that once failed: Hosts that gave
// an unparsable Location ("[:", "X::", "a:b:c") and a '#' in the query
// that turned its end into a fragment.
func FuzzHTTPSURL(f *testing.F) {
	for _, s := range [][2]string{{"a.example", "/p?q=1"}, {"[::1]:80", "/x"}, {"a.example.:8080", "/a%20b"}, {"x@evil", "//evil/"}, {"a", "/%2e%2e/"}} {
		f.Add(s[0], s[1], 8443)
	}
	f.Fuzz(func(t *testing.T, host, target string, port int) {
		if port <= 0 || port > 65535 || !strings.HasPrefix(target, "/") {
			return
		}
		r, err := http.ReadRequest(bufio.NewReader(strings.NewReader("GET " + target + " HTTP/1.1\r\nHost: " + host + "\r\n\r\n")))
		if err != nil {
			return // Go's server would answer 400 before any handler
		}
		got, ok := httpsURL(r, port)
		if !ok {
			return
		}
		u, err := url.Parse(got)
		if err != nil {
			t.Fatalf("httpsURL(%q, %q) = %q: %v", host, target, got, err)
		}
		want := r.Host
		if h, _, err := net.SplitHostPort(want); err == nil {
			want = h
		}
		want = strings.TrimSuffix(strings.Trim(want, "[]"), ".")
		if u.Scheme != "https" || u.User != nil || u.Hostname() != want || u.EscapedPath() != r.URL.EscapedPath() {
			t.Fatalf("httpsURL(%q, %q) = %q: scheme %q user %v host %q (want %q) path %q (want %q)",
				host, target, got, u.Scheme, u.User, u.Hostname(), want, u.EscapedPath(), r.URL.EscapedPath())
		}
		if routing.NormalizeHost(u.Host) != routing.NormalizeHost(r.Host) {
			t.Fatalf("httpsURL(%q, %q) = %q: host %q is not the routed host %q",
				host, target, got, routing.NormalizeHost(u.Host), routing.NormalizeHost(r.Host))
		}
		wantPort := strconv.Itoa(port)
		if port == 443 {
			wantPort = ""
		}
		wantQuery := strings.ReplaceAll(r.URL.RawQuery, "#", "%23")
		if u.Port() != wantPort || u.RawQuery != wantQuery || u.Fragment != "" {
			t.Fatalf("httpsURL(%q, %q) = %q: port %q (want %q) query %q (want %q) fragment %q",
				host, target, got, u.Port(), wantPort, u.RawQuery, wantQuery, u.Fragment)
		}
	})
}
