package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"go.uber.org/zap"

	"github.com/meridian-lb/meridian/internal/app"
)

// startInstance runs an App in-process with an admin token, for explain to
// ask; it returns the admin address and the token file.
func startInstance(t *testing.T) (admin, tokenFile string) {
	t.Helper()
	dir := t.TempDir()
	tokenFile = filepath.Join(dir, "token")
	cfg := filepath.Join(dir, "meridian.yaml")
	for name, text := range map[string]string{tokenFile: "s3cret\n", cfg: `
listen: {admin: 127.0.0.1:0}
admin: {token_file: ` + tokenFile + `}
geo: {nets: {198.51.100.0/24: us}, default_region: eu}
pools:
  eu: {region: eu, endpoints: [127.0.0.1:9101]}
  us: {region: us, endpoints: [127.0.0.1:9102]}
  canary: {endpoints: [127.0.0.1:9103]}
services:
  web: {policy: geo, pools: [eu, us]}
  canary: {pools: [canary]}
routes:
  - {name: api, match: {host: api.test, path_prefix: /api}, service: web}
  - name: www
    match: {host: www.test}
    split:
      - {when: {header: {X-Canary: "1"}}, service: canary}
      - {service: web, weight: 1}
  - {name: gold, match: {host: api.test, cookies: {tier: gold}}, service: web}
zones:
  - origin: example.test.
    soa: {ns: ns1.example.test., mbox: hostmaster.example.test.}
    ns: [ns1.example.test.]
    records:
      - {name: www, type: A, service: web, ttl: 30}
`} {
		if err := os.WriteFile(name, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
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
	return a.Addrs().Admin, tokenFile
}

func TestExplainCommand(t *testing.T) {
	admin, tok := startInstance(t)
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := []string{"explain", "-admin", admin, "-token-file", tok}
	with := func(extra ...string) []string { return append(slices.Clip(base), extra...) }
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout []string
		stderr []string
	}{
		{"header rule, flags after the arguments", with("www.test", "/x", "-H", "X-Canary: 1"), 0,
			[]string{"GET www.test/x from ", "=> route www, service canary, pool canary, endpoint 127.0.0.1:9103",
				"#0   api  no: host: want api.test, got www.test", "rule split[0] -> canary: matched", "* 127.0.0.1:9103"}, nil},
		{"one URL, geo for a us client", with("-client", "198.51.100.7", "http://api.test/api/v1?x=1"), 0,
			[]string{"GET api.test/api/v1?x=1 from 198.51.100.7", "service web (geo): geo: client \"198.51.100.7\" is in region \"us\" (nets, 198.51.100.0/24)",
				"pool us (region us, round_robin, fails open): picked", "pool eu (region eu, round_robin, fails open): not reached"}, nil},
		{"cookie and method reach the API", with("-method", "POST", "-cookie", "a=1", "-cookie", "tier=silver", "api.test", "/other"), 0,
			[]string{"POST api.test/other from", "=> 404: no route matches", `cookie tier: want exact="gold", got "silver"`}, nil},
		{"json", with("-json", "www.test", "/"), 0, []string{`"route": "www"`, `"by": "draw"`}, nil},
		{"dns", with("-dns", "www.example.test", "-client", "198.51.100.7"), 0,
			[]string{"www.example.test. A from 198.51.100.7", "=> NOERROR, authoritative, zone example.test.", "region us (nets, /24)",
				"www.example.test. 30 IN A 127.0.0.1", "pool us (used): available [127.0.0.1:9102]"}, nil},
		{"no token", []string{"explain", "-admin", admin, "www.test"}, 1, nil, []string{"unauthorized: pass the admin token with -token-file"}},
		{"empty token file", []string{"explain", "-admin", admin, "-token-file", empty, "www.test"}, 1, nil, []string{"empty token"}},
		{"unreachable admin", []string{"explain", "-admin", "127.0.0.1:1", "www.test"}, 1, nil, []string{"admin API"}},
		{"no host", base, 2, nil, []string{"want HOST [PATH]", "Usage: meridian explain"}},
		{"DNS flag without -dns", with("-type", "AAAA", "www.test"), 2, nil, []string{"-type is for DNS queries"}},
		{"HTTP argument with -dns", with("-dns", "www.example.test", "www.test"), 2, nil, []string{"-dns takes no HOST"}},
		{"help", []string{"explain", "-h"}, 0, nil, []string{"Usage: meridian explain", "-token-file file"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			stdout, _ := expectRun(t, tc.args, tc.code, tc.stdout, tc.stderr)
			if tc.code == 0 && slices.Contains(tc.args, "-json") && !json.Valid([]byte(stdout)) {
				t.Errorf("-json printed invalid JSON:\n%s", stdout)
			}
		})
	}
}
