package examples_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meridian-lb/meridian/config"
	"github.com/meridian-lb/meridian/examples"
	"github.com/meridian-lb/meridian/internal/certtest"
	"github.com/meridian-lb/meridian/routing"
)

// TestExamplesCompile validates and compiles every shipped example, so a
// config change that breaks one fails here rather than for a user.
// Compiling reads the TLS files a config names; the certificates the
// README has users make with scripts/gencert are made here the same way.
func TestExamplesCompile(t *testing.T) {
	names, err := fs.Glob(examples.Files, "*.yaml")
	if err != nil || len(names) == 0 {
		t.Fatalf("no examples embedded: %v", err)
	}
	certs := exampleCerts(t)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			b, err := fs.ReadFile(examples.Files, name)
			if err != nil {
				t.Fatal(err)
			}
			b = []byte(strings.ReplaceAll(string(b), "examples/certs/", certs+"/"))
			b = []byte(strings.ReplaceAll(string(b), "examples/edge/", "edge/"))
			cfg, err := config.Parse(name, b)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := routing.Compile(cfg, routing.Inputs{}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// exampleCerts writes the files `go run ./scripts/gencert -dir
// examples/certs` writes, into a temporary directory.
func exampleCerts(t *testing.T) string {
	dir := t.TempDir()
	ca := certtest.NewCA(t, "Meridian example CA")
	server, serverKey := ca.Issue(t, false, "localhost", "www.example.test")
	client, clientKey := ca.Issue(t, true, "client")
	for name, b := range map[string][]byte{
		"ca.pem": ca.PEM, "server.pem": server, "server.key": serverKey, "client.pem": client, "client.key": clientKey,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}
