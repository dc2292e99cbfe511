package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/meridian-lb/meridian/acme/acmetest"
	"github.com/meridian-lb/meridian/config"
	"github.com/meridian-lb/meridian/health"
	"github.com/meridian-lb/meridian/internal/certtest"
)

// acmeConfig serves a file certificate for files.example.com and, when
// ACME is set, an ACME one for {{DOMAIN}}. Every plain request is
// redirected to HTTPS, so an HTTP-01 validation only succeeds when the
// plain listener answers it before routing.
const acmeConfig = `
listen: {http: "{{HTTP}}", https: "{{HTTPS}}"}
tls:
  certificates: [{cert: {{DIR}}/{{FILES}}.pem, key: {{DIR}}/{{FILES}}.key}]
{{ACME}}
pools: {be: {endpoints: [{{BACKEND}}]}}
services: {be: {pools: [be]}}
routes:
  - {name: all, match: {path_prefix: /}, service: be, redirect_https: true}
`

// TestTLSACME obtains a certificate from pebble through the TLS server and
// the plain edge, with each challenge type: at start (HTTP-01) and added by
// a reload (TLS-ALPN-01). The ACME name is then served over h2 with the
// issued certificate, while the file certificate keeps serving its name.
func TestTLSACME(t *testing.T) {
	for _, tc := range []struct {
		challenge string
		atReload  bool
	}{
		{config.ChallengeHTTP01, false},
		{config.ChallengeTLSALPN01, true},
	} {
		t.Run(tc.challenge, func(t *testing.T) {
			t.Parallel()
			domain := "acme-" + tc.challenge + ".example.com"
			ln, pln := listenLoopback(t), listenLoopback(t)
			pb := acmetest.Start(t, acmetest.Options{HTTPPort: tcpPort(pln), TLSPort: tcpPort(ln)})
			acmeRoots := pb.Roots(t)
			fileCA := certtest.NewCA(t, "file CA")
			fileRoots := x509.NewCertPool()
			fileRoots.AddCert(fileCA.Cert)
			dir := t.TempDir()
			writePair(t, fileCA, dir, "files", "files.example.com")
			be := newBackend(t, "be", nil)
			acme := "  acme: {directory: \"" + pb.Directory + "\", email: ops@example.com, domains: [" + domain + "], storage: " +
				filepath.Join(dir, "acme") + ", ca: " + pb.CAFile + ", challenges: [" + tc.challenge + "]}"
			vars := map[string]string{"HTTP": pln.Addr().String(), "HTTPS": ln.Addr().String(), "DIR": dir, "FILES": "files", "BACKEND": be.addr, "ACME": acme}
			if tc.atReload {
				vars["ACME"] = ""
			}
			e := newTLSEnvOn(t, ln, pln, acmeConfig, vars, acmeRoots)
			if tc.atReload {
				// Before: the name gets the default (file) certificate.
				leaf, _, err := e.handshake(domain, &tls.Config{InsecureSkipVerify: true})
				if err != nil || leaf.Subject.CommonName != "files.example.com" {
					t.Fatalf("before ACME: %v %v", leaf, err)
				}
				vars["ACME"] = acme
				if err := e.swap(acmeConfig, vars); err != nil {
					t.Fatalf("reload adding tls.acme: %v", err)
				}
			}

			waitFor(t, "the ACME certificate", func() bool {
				leaf, _, err := e.handshake(domain, nil)
				return err == nil && leaf.VerifyHostname(domain) == nil
			})
			res, body := e.get(e.client(nil), "https://"+domain+"/x", "")
			if res.StatusCode != http.StatusOK || body != "be" || res.Proto != "HTTP/2.0" {
				t.Errorf("GET over the ACME certificate: %d %s %q", res.StatusCode, res.Proto, body)
			}
			if leaf, _, err := e.handshake("files.example.com", &tls.Config{RootCAs: fileRoots}); err != nil || leaf.Subject.CommonName != "files.example.com" {
				t.Errorf("file certificate beside ACME: %v %v", leaf, err)
			}
			if _, st, err := e.handshake(domain, &tls.Config{NextProtos: []string{"h2", "http/1.1", "acme-tls/1"}}); err != nil || st.NegotiatedProtocol != "h2" {
				t.Errorf("a client listing acme-tls/1 among others negotiated %q (%v), want h2", st.NegotiatedProtocol, err)
			}

			// The plain listener still routes (and redirects) other paths.
			noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			res, err := noFollow.Get("http://" + e.plainAddr + "/.well-known/acme-challenge/unknown-token")
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != http.StatusPermanentRedirect {
				t.Errorf("unknown challenge token: %d, want the route's 308", res.StatusCode)
			}

			st := e.ts.Status()
			if !st.OK || len(st.ACME) != 1 || st.ACME[0].Domain != domain || st.ACME[0].NotAfter.IsZero() || st.ACME[0].Error != "" {
				t.Errorf("status %+v", st)
			}
			if n := e.metric("meridian_acme_events_total", map[string]string{"event": "obtained", "domain": domain}); n != 1 {
				t.Errorf("obtained events %v, want 1", n)
			}

			// A reload that removes tls.acme but whose certificate files are
			// unusable leaves nothing to serve: the previous setup stays.
			vars["ACME"], vars["FILES"] = "", "missing"
			if err := e.swap(acmeConfig, vars); err == nil {
				t.Error("reload to missing files and no ACME: no error")
			}
			if leaf, _, err := e.handshake(domain, nil); err != nil || leaf.VerifyHostname(domain) != nil {
				t.Errorf("after a reload that left nothing to serve: %v %v", leaf, err)
			}

			// Removing tls.acme stops serving the name's ACME certificate.
			vars["ACME"], vars["FILES"] = "", "files"
			if err := e.swap(acmeConfig, vars); err != nil {
				t.Fatal(err)
			}
			leaf, _, err := e.handshake(domain, &tls.Config{InsecureSkipVerify: true})
			if err != nil || leaf.Subject.CommonName != "files.example.com" {
				t.Errorf("after removing tls.acme: %v %v", leaf, err)
			}
			if st := e.ts.Status(); len(st.ACME) != 0 {
				t.Errorf("status still lists ACME: %+v", st.ACME)
			}
		})
	}
}

// TestTLSACMEBadSection checks that an ACME section whose manager cannot
// be built (an unreadable CA file) fails a start, and on reload keeps the
// running setup and reports the problem.
func TestTLSACMEBadSection(t *testing.T) {
	dir := t.TempDir()
	ca := certtest.NewCA(t, "file CA")
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	writePair(t, ca, dir, "files", "files.example.com")
	be := newBackend(t, "be", nil)
	ln, pln := listenLoopback(t), listenLoopback(t)
	bad := "  acme: {directory: \"https://127.0.0.1:1/dir\", domains: [a.example.com], storage: " + filepath.Join(dir, "acme") + ", ca: " + filepath.Join(dir, "missing.pem") + "}"
	vars := map[string]string{"HTTP": pln.Addr().String(), "HTTPS": ln.Addr().String(), "DIR": dir, "FILES": "files", "BACKEND": be.addr, "ACME": bad}

	tb := compileBound(t, health.New(health.Options{}), acmeConfig, vars)
	if _, err := NewTLSServer(NewHandler(Options{}), tb.Config, nil, nil); err == nil || !strings.Contains(err.Error(), "tls.acme.ca") {
		t.Fatalf("start with a bad ACME section: %v", err)
	}

	vars["ACME"] = ""
	e := newTLSEnvOn(t, ln, pln, acmeConfig, vars, roots)
	vars["ACME"] = bad
	if err := e.swap(acmeConfig, vars); err == nil || !strings.Contains(err.Error(), "tls.acme.ca") {
		t.Fatalf("reload with a bad ACME section: %v", err)
	}
	if st := e.ts.Status(); st.OK || !strings.Contains(st.Error, "tls.acme.ca") {
		t.Errorf("status after the bad reload: %+v", st)
	}
	if n := e.metric("meridian_tls_cert_reloads_total", map[string]string{"result": "failure"}); n != 1 {
		t.Errorf("failed reloads %v, want 1", n)
	}
	if leaf, _, err := e.handshake("files.example.com", nil); err != nil || leaf.Subject.CommonName != "files.example.com" {
		t.Errorf("file certificate after the bad reload: %v %v", leaf, err)
	}
}

func tcpPort(ln net.Listener) int {
	_, p, _ := net.SplitHostPort(ln.Addr().String())
	n, _ := strconv.Atoi(p)
	return n
}
