package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/meridian-lb/meridian/internal/app"
)

const diffBase = `
listen: {admin: 127.0.0.1:0}
geo: {nets: {198.51.100.0/24: us}, default_region: eu}
pools:
  eu: {region: eu, endpoints: [127.0.0.1:9101]}
  us: {region: us, endpoints: [127.0.0.2:9102]}
  canary: {endpoints: [127.0.0.3:9103]}
services:
  web: {policy: geo, pools: [eu, us]}
  canary: {pools: [canary]}
routes:
  - name: www
    match: {host: www.test}
    split:
      - {service: web, weight: 90}
      - {service: canary, weight: 10}
zones:
  - origin: example.test.
    soa: {ns: ns1.example.test., mbox: hostmaster.example.test.}
    ns: [ns1.example.test.]
    records:
      - {name: www, type: A, service: web, ttl: 30}
`

// diffCandidate moves the canary to 25%, adds an endpoint to eu and a
// route, and fails the us pool over to eu for DNS (its endpoint goes).
var diffCandidate = strings.NewReplacer(
	"weight: 90}", "weight: 75}",
	"weight: 10}", "weight: 25}",
	"endpoints: [127.0.0.1:9101]", "endpoints: [127.0.0.1:9101, 127.0.0.4:9104]",
	"us: {region: us, endpoints: [127.0.0.2:9102]}", "us: {region: us, endpoints: [backend.internal:80]}",
	"zones:", "  - {name: api, match: {host: api.test}, service: web}\nzones:",
).Replace(diffBase)

// startDiffInstance serves text with an admin token and returns the admin
// URL and the token file.
func startDiffInstance(t *testing.T, text string) (admin, tokenFile string) {
	t.Helper()
	dir := t.TempDir()
	tokenFile = filepath.Join(dir, "token")
	cfg := filepath.Join(dir, "meridian.yaml")
	writeFile(t, tokenFile, "s3cret\n")
	writeFile(t, cfg, text+"admin: {token_file: "+tokenFile+"}\n")
	a, err := app.New(app.Options{ConfigPath: cfg, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	select {
	case <-a.Ready():
	case err := <-done:
		t.Fatalf("Run returned early: %v", err)
	}
	return "http://" + a.Addrs().Admin, tokenFile
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestDiffCommand(t *testing.T) {
	dir := t.TempDir()
	base, cand, comment, bad := filepath.Join(dir, "base.yaml"), filepath.Join(dir, "cand.yaml"), filepath.Join(dir, "comment.yaml"), filepath.Join(dir, "bad.yaml")
	writeFile(t, base, diffBase)
	writeFile(t, cand, diffCandidate)
	writeFile(t, comment, diffBase+"# only a comment\n")
	writeFile(t, bad, "routes: [{name: r, service: nope}]\n")
	changes := []string{
		base + " → " + cand,
		"What changes in what is served:",
		"  ~ route www (changed)\n      split: web 90% (weight 90) → 75% (weight 75), canary 10% (weight 10) → 25% (weight 25)",
		"  + route api (added)",
		`endpoint 127.0.0.4:9104 added (weight=1 region="eu" source=static)`,
		"DNS answers per region (every endpoint counted as up):",
		"www.example.test. A  region us:\n      - pool us: 127.0.0.2\n      + pool eu: 127.0.0.1 127.0.0.4",
		"Text diff:\n--- " + base + "\n+++ " + cand + "\n",
		"-      - {service: web, weight: 90}\n",
		"+      - {service: web, weight: 75}\n",
	}
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout []string
		stderr []string
	}{
		{"against a file", []string{"diff", "-config", cand, "-against", base}, 1, changes, nil},
		{"the same file", []string{"diff", "-config", base, "-against", base}, 0, []string{"no changes"}, nil},
		{"only a comment", []string{"diff", "-config", comment, "-against", base}, 1,
			[]string{"no change to what is served", "+# only a comment"}, nil},
		{"a bad candidate", []string{"diff", "-config", bad, "-against", base}, 2, nil,
			[]string{bad + ":1: routes[0].service: unknown service \"nope\"", "problem(s)"}},
		{"a bad file to compare with", []string{"diff", "-config", base, "-against", bad}, 2, nil, []string{bad + ":1:"}},
		{"a missing candidate", []string{"diff", "-config", filepath.Join(dir, "nope.yaml"), "-against", base}, 2, nil, []string{"meridian diff: ", "nope.yaml"}},
		{"a stray argument", []string{"diff", "-config", cand, base}, 2, nil, []string{"unexpected argument"}},
		{"token file with a file", []string{"diff", "-config", cand, "-against", base, "-token-file", base}, 2, nil, []string{"-token-file is for -against URL"}},
		{"unreachable instance", []string{"diff", "-config", cand, "-against", "http://127.0.0.1:1"}, 2, nil, []string{"meridian diff: admin API"}},
		{"help", []string{"diff", "-h"}, 0, nil, []string{"Usage: meridian diff", "-against URL", "Exit status as diff(1)"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			expectRun(t, tc.args, tc.code, tc.stdout, tc.stderr)
		})
	}
}

// TestDiffAgainstInstance compares a candidate with what a running
// instance serves, fetched through its config history.
func TestDiffAgainstInstance(t *testing.T) {
	admin, tok := startDiffInstance(t, diffBase)
	dir := t.TempDir()
	cand, same := filepath.Join(dir, "cand.yaml"), filepath.Join(dir, "same.yaml")
	writeFile(t, cand, diffCandidate+"admin: {token_file: "+tok+"}\n")
	writeFile(t, same, diffBase+"admin: {token_file: "+tok+"}\n")

	stdout, _ := expectRun(t, []string{"diff", "-config", cand, "-against", admin, "-token-file", tok}, 1,
		[]string{"meridian.yaml@", " → " + cand, "split: web 90% (weight 90) → 75% (weight 75)", "+ route api (added)",
			"region us:\n      - pool us: 127.0.0.2\n      + pool eu: 127.0.0.1 127.0.0.4", "Text diff:\n--- "}, nil)
	if strings.Contains(stdout, "s3cret") {
		t.Errorf("the token is printed:\n%s", stdout)
	}
	expectRun(t, []string{"diff", "-config", same, "-against", admin, "-token-file", tok}, 0, []string{"no changes"}, nil)
	expectRun(t, []string{"diff", "-config", cand, "-against", admin}, 2, nil,
		[]string{"unauthorized: pass the admin token with -token-file"})
}
