package tlsfiles

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meridian-lb/meridian/config"
	"github.com/meridian-lb/meridian/internal/certtest"
)

func write(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadUpstream(t *testing.T) {
	dir := t.TempDir()
	ca := certtest.NewCA(t, "ca")
	other := certtest.NewCA(t, "other")
	cert, key := ca.Issue(t, true, "client")
	_, otherKey := other.Issue(t, true, "x")
	caPath := write(t, dir, "ca.pem", ca.PEM)
	certPath, keyPath := write(t, dir, "c.pem", cert), write(t, dir, "c.key", key)
	tests := []struct {
		name    string
		u       config.UpstreamTLS
		wantKey string // "" for no error
		wantMsg string
	}{
		{name: "CA and client pair", u: config.UpstreamTLS{CA: caPath, Cert: certPath, Key: keyPath, ServerName: "s"}},
		{name: "system roots", u: config.UpstreamTLS{ServerName: "s"}},
		{name: "missing CA", u: config.UpstreamTLS{CA: filepath.Join(dir, "nope")}, wantKey: "ca", wantMsg: "no such file"},
		{name: "empty CA", u: config.UpstreamTLS{CA: write(t, dir, "empty", nil)}, wantKey: "ca", wantMsg: "empty file"},
		{name: "CA without a certificate", u: config.UpstreamTLS{CA: write(t, dir, "junk", []byte("not pem"))}, wantKey: "ca", wantMsg: "no PEM certificate"},
		{name: "key of another certificate", u: config.UpstreamTLS{Cert: certPath, Key: write(t, dir, "o.key", otherKey)}, wantKey: "cert", wantMsg: "private key does not match"},
		{name: "missing key", u: config.UpstreamTLS{Cert: certPath, Key: filepath.Join(dir, "gone")}, wantKey: "cert", wantMsg: "no such file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ut, errs := LoadUpstream(&tc.u)
			if tc.wantKey == "" {
				if len(errs) > 0 || ut == nil || ut.Config.ServerName != "s" {
					t.Fatalf("LoadUpstream: %v %v", ut, errs)
				}
				return
			}
			if len(errs) != 1 || errs[0].Key != tc.wantKey || !strings.Contains(errs[0].Err.Error(), tc.wantMsg) {
				t.Fatalf("errors %v, want one on %s containing %q", errs, tc.wantKey, tc.wantMsg)
			}
		})
	}
}

// TestFingerprintFollowsContents: a rotated file (same path, new bytes)
// gets a new fingerprint, which makes a new table and new clients.
func TestFingerprintFollowsContents(t *testing.T) {
	dir := t.TempDir()
	path := write(t, dir, "ca.pem", certtest.NewCA(t, "one").PEM)
	a, err := LoadClientCA(path)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := LoadClientCA(path)
	if a.Fingerprint != b.Fingerprint {
		t.Fatal("same file, different fingerprints")
	}
	write(t, dir, "ca.pem", certtest.NewCA(t, "two").PEM)
	c, err := LoadClientCA(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.Fingerprint == a.Fingerprint || len(c.Certs) != 1 || c.Certs[0].Subject.CommonName == a.Certs[0].Subject.CommonName {
		t.Fatalf("rotated CA not seen: %s %s", a.Fingerprint, c.Fingerprint)
	}
}
