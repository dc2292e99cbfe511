package catalog

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meridian-lb/meridian/catalog/consultest"
	"github.com/meridian-lb/meridian/config"
)

func TestNewClientToken(t *testing.T) {
	const token = "tkn-5566-SECRET"
	srv := consultest.New(t, consultest.Options{Token: token})
	tests := []struct {
		name    string
		env     map[string]string
		file    string // content of cfg.TokenFile ("" = unset)
		wantErr string
		wantOK  bool
	}{
		{name: "token file", file: token + "\n", wantOK: true},
		{name: "token file wins over env", file: token, env: map[string]string{EnvToken: "wrong"}, wantOK: true},
		{name: "env token", env: map[string]string{EnvToken: token}, wantOK: true},
		{name: "env token file", env: map[string]string{EnvTokenFile: "<file>", EnvToken: "wrong"}, wantOK: true},
		{name: "no token is refused by the ACL", wantOK: false},
		{name: "empty token file", file: "  \n", wantErr: "is empty"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(EnvToken, "")
			t.Setenv(EnvTokenFile, "")
			tokenPath := writeFile(t, "token", []byte(token))
			for k, v := range tc.env {
				if v == "<file>" {
					v = tokenPath
				}
				t.Setenv(k, v)
			}
			cfg := &config.Consul{Address: srv.Addr}
			if tc.file != "" {
				cfg.TokenFile = writeFile(t, "cfg-token", []byte(tc.file))
			}
			c, err := NewClient(cfg)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Status().Leader()
			if (err == nil) != tc.wantOK {
				t.Fatalf("leader err = %v, want ok=%v", err, tc.wantOK)
			}
			if call, _ := srv.LastCall("/v1/status/leader"); call.TokenInQuery {
				t.Error("token sent as ?token=")
			}
		})
	}
	t.Run("missing token file", func(t *testing.T) {
		_, err := NewClient(&config.Consul{Address: srv.Addr, TokenFile: filepath.Join(t.TempDir(), "nope")})
		if err == nil {
			t.Fatal("no error")
		}
	})
}

func TestNewClientAddress(t *testing.T) {
	tests := []struct {
		name    string
		cfg     config.Consul
		wantErr string
	}{
		{name: "unix scheme", cfg: config.Consul{Address: "unix:///var/run/consul.sock"}, wantErr: "unsupported scheme"},
		{name: "ftp scheme", cfg: config.Consul{Address: "ftp://x:1"}, wantErr: "unsupported scheme"},
		{name: "no host", cfg: config.Consul{Address: "https://"}, wantErr: "missing host"},
		{name: "cert without key", cfg: config.Consul{Address: "https://x:1", CertFile: "c.pem"}, wantErr: "together"},
		{name: "missing CA file", cfg: config.Consul{Address: "https://x:1", CAFile: "/nonexistent/ca.pem"}, wantErr: "tls"},
		{name: "plain", cfg: config.Consul{Address: "127.0.0.1:8500"}},
		{name: "http URL with path prefix", cfg: config.Consul{Address: "http://127.0.0.1:8500/consul"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewClient(&tc.cfg)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
		})
	}
	if _, err := NewClient(nil); err == nil {
		t.Error("nil config accepted")
	}
}

func TestNewClientTLS(t *testing.T) {
	ca, caKey := newCA(t)
	certPEM, keyPEM := issueClientCert(t, ca, caKey)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	srv := consultest.New(t, consultest.Options{TLS: true, ClientCAs: pool})
	serverCA := writeFile(t, "server-ca.pem", srv.CAPEM())
	certFile, keyFile := writeFile(t, "client.pem", certPEM), writeFile(t, "client.key", keyPEM)

	tests := []struct {
		name   string
		cfg    config.Consul
		wantOK bool
	}{
		{name: "CA and client certificate", cfg: config.Consul{Address: "https://" + srv.Addr, CAFile: serverCA, CertFile: certFile, KeyFile: keyFile}, wantOK: true},
		{name: "no scheme but TLS files select https", cfg: config.Consul{Address: srv.Addr, CAFile: serverCA, CertFile: certFile, KeyFile: keyFile}, wantOK: true},
		{name: "no client certificate", cfg: config.Consul{Address: "https://" + srv.Addr, CAFile: serverCA}},
		{name: "unknown server CA", cfg: config.Consul{Address: "https://" + srv.Addr, CertFile: certFile, KeyFile: keyFile}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := NewClient(&tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Status().Leader()
			if (err == nil) != tc.wantOK {
				t.Fatalf("err = %v, want ok=%v", err, tc.wantOK)
			}
		})
	}
}

func newCA(t *testing.T) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "meridian test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

func issueClientCert(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "meridian"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}
