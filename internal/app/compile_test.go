package app

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meridian-lb/meridian/internal/certtest"
)

// TestReloadRejectsUnusableTLSFiles: a pool's upstream CA, its client key
// and a route's client CA are read when the table is compiled, before the
// swap. A reload that names one that cannot be read is rejected with the
// key's path and line, and the last good table keeps serving: requests
// keep reaching the HTTPS upstream (they used to get 502 at request time
// after a "successful" reload).
func TestReloadRejectsUnusableTLSFiles(t *testing.T) {
	ca := certtest.NewCA(t, "upstream CA")
	dir := t.TempDir()
	up := tlsUpstream(t, ca)
	caPath := filepath.Join(dir, "ca.pem")
	writeFileT(t, caPath, ca.PEM)
	clientCert, clientKey := ca.Issue(t, true, "meridian")
	certPath, keyPath := filepath.Join(dir, "client.pem"), filepath.Join(dir, "client.key")
	writeFileT(t, certPath, clientCert)
	writeFileT(t, keyPath, clientKey)
	emptyPath := filepath.Join(dir, "empty.pem")
	writeFileT(t, emptyPath, nil)

	conf := func(pool, route string) string {
		return fmt.Sprintf(`
listen: {admin: 127.0.0.1:0, http: 127.0.0.1:0}
pools:
  api:
    endpoints: [%s]
    tls: {%s}
services: {api: {pools: [api]}}
routes:
  - {name: open, match: {path_prefix: /open}, service: api}
  - name: api
    service: api
    tls: {%s}
`, up.Listener.Addr(), pool, route)
	}
	good := conf(fmt.Sprintf("ca: %s, server_name: backend.internal, cert: %s, key: %s", caPath, certPath, keyPath),
		fmt.Sprintf("client_auth: require, client_ca: %s", caPath))
	path := filepath.Join(dir, "meridian.yaml")
	write(t, path, good)
	h := start(t, path)
	// The open route reaches the HTTPS upstream through the pool's TLS.
	serves := func(when string) { t.Helper(); servesUpstream(t, h, "/open", when) }
	serves("at start")

	tests := []struct {
		name, pool, route, wantPath, wantMsg string
		wantLine                             int
	}{
		{"missing upstream CA", fmt.Sprintf("ca: %s/nope.pem, server_name: backend.internal", dir), fmt.Sprintf("client_auth: require, client_ca: %s", caPath),
			"pools.api.tls.ca", "no such file", 6},
		{"empty upstream CA", fmt.Sprintf("ca: %s, server_name: backend.internal", emptyPath), fmt.Sprintf("client_auth: require, client_ca: %s", caPath),
			"pools.api.tls.ca", "empty file", 6},
		{"unreadable client key", fmt.Sprintf("ca: %s, server_name: backend.internal, cert: %s, key: %s/gone.key", caPath, certPath, dir), fmt.Sprintf("client_auth: require, client_ca: %s", caPath),
			"pools.api.tls.cert", "no such file", 6},
		{"missing route client CA", fmt.Sprintf("ca: %s, server_name: backend.internal", caPath), fmt.Sprintf("client_auth: require, client_ca: %s/nope-ca.pem", dir),
			"routes[1].tls.client_ca", "no such file", 12},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := h.table().Version
			write(t, path, conf(tc.pool, tc.route))
			h.waitFor("the reload to fail", func() bool { return !h.table().LastReload.OK })
			doc := h.table()
			if doc.Version != before {
				t.Errorf("table version %s → %s: the bad config was published", before, doc.Version)
			}
			msg := doc.LastReload.Error
			wantLoc := fmt.Sprintf("meridian.yaml:%d: %s:", tc.wantLine, tc.wantPath)
			if !strings.Contains(msg, wantLoc) || !strings.Contains(msg, tc.wantMsg) {
				t.Errorf("last_reload.error = %q, want %q … %q", msg, wantLoc, tc.wantMsg)
			}
			serves("after the rejected reload")
			// Back to the good file before the next case.
			write(t, path, good)
			h.waitFor("the good config", func() bool { return h.table().LastReload.OK })
		})
	}
}

// tlsUpstream serves "tls upstream" over HTTPS with a certificate for
// backend.internal from ca.
func tlsUpstream(t *testing.T, ca *certtest.CA) *httptest.Server {
	t.Helper()
	certPEM, keyPEM := ca.Issue(t, false, "backend.internal")
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "tls upstream") }))
	up.TLS = &tls.Config{Certificates: []tls.Certificate{pair}}
	up.StartTLS()
	t.Cleanup(up.Close)
	return up
}

// servesUpstream checks that path on h's HTTP listener reaches tlsUpstream.
func servesUpstream(t *testing.T, h *harness, path, when string) {
	t.Helper()
	res, err := http.Get("http://" + h.app.Addrs().HTTP + path)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || string(b) != "tls upstream" {
		t.Errorf("%s: %d %q, want the upstream's answer", when, res.StatusCode, b)
	}
}

// writeFileT writes a test file, failing the test on error.
func writeFileT(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestTLSFilesRotate: the TLS files a table was compiled from are watched;
// a rotated pool CA makes a new table (proxy and probes switch together),
// and a rotation to an unusable file keeps the last good table serving.
func TestTLSFilesRotate(t *testing.T) {
	ca, other := certtest.NewCA(t, "upstream CA"), certtest.NewCA(t, "next CA")
	dir := t.TempDir()
	up := tlsUpstream(t, ca)
	caPath := filepath.Join(dir, "ca.pem")
	writeFileT(t, caPath, ca.PEM)
	path := filepath.Join(dir, "meridian.yaml")
	write(t, path, fmt.Sprintf(`
listen: {admin: 127.0.0.1:0, http: 127.0.0.1:0}
pools:
  api: {endpoints: [%s], tls: {ca: %s, server_name: backend.internal}}
services: {api: {pools: [api]}}
routes: [{name: api, service: api}]
`, up.Listener.Addr(), caPath))
	h := start(t, path)
	serves := func(when string) { t.Helper(); servesUpstream(t, h, "/", when) }
	serves("at start")
	v0 := h.table().Version
	// A bundle with the next CA added, renamed into place.
	tmp := filepath.Join(dir, "ca.tmp")
	writeFileT(t, tmp, append(append([]byte{}, ca.PEM...), other.PEM...))
	if err := os.Rename(tmp, caPath); err != nil {
		t.Fatal(err)
	}
	h.waitFor("a new table for the rotated CA", func() bool { return h.table().Version != v0 })
	serves("after the rotation")
	v1 := h.table().Version
	// A rotation to a file with no certificate is not applied.
	writeFileT(t, tmp, []byte("garbage"))
	if err := os.Rename(tmp, caPath); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * tlsFileDebounce) // nothing to poll for: the table must stay
	if v := h.table().Version; v != v1 {
		t.Errorf("table %s → %s after an unusable CA file", v1, v)
	}
	serves("after the unusable rotation")
}
