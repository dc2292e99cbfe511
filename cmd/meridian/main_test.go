package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(good, []byte("pools: {p: {endpoints: [127.0.0.1:1]}}\nservices: {s: {pools: [p]}}\nroutes: [{name: r, service: s}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Files that must not validate although the YAML is fine: they would
	// serve nothing, or open the admin API, or cost the memory of a huge
	// file.
	file := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	nullDoc := file("null.yaml", "---\nnull\n")
	emptyMap := file("map.yaml", "{}\n")
	adminOnly := file("admin.yaml", "listen: {admin: 127.0.0.1:9999}\npools: {p: {endpoints: [127.0.0.1:1]}}\n")
	emptyToken := file("token", " \n\t\n")
	tokenCfg := file("token.yaml", "admin: {token_file: "+emptyToken+"}\nlisten: {http: 127.0.0.1:0}\n")
	huge := filepath.Join(dir, "huge.yaml")
	f, err := os.Create(huge)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(50 << 20); err != nil { // sparse: costs no disk
		t.Fatal(err)
	}
	f.Close()
	if err := os.WriteFile(bad, []byte(`pools:
  p: {endpoints: [127.0.0.1:1], balance: fastest}
services:
  s: {pools: [q]}
routes:
  - {match: {path: nope}, service: t}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	compileBad := filepath.Join(dir, "compile.yaml")
	if err := os.WriteFile(compileBad, []byte("geo: {nets: {10.0.0.0/8: eu, 10.0.0.1/8: us}}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout []string
		stderr []string
	}{
		{"good file", []string{"validate", "-config", good}, 0, []string{"good.yaml: ok: 1 routes, 1 services, 1 pools"}, nil},
		{"null document", []string{"validate", "-config", nullDoc}, 1, nil, []string{"null.yaml:1: config is empty"}},
		{"empty mapping", []string{"validate", "-config", emptyMap}, 1, nil, []string{"map.yaml:1: config defines nothing to serve"}},
		{"admin listener only", []string{"validate", "-config", adminOnly}, 1, nil, []string{"admin.yaml:1: config defines nothing to serve"}},
		{"empty token file", []string{"validate", "-config", tokenCfg}, 1, nil, []string{"token.yaml:1: admin.token_file: " + emptyToken + ": empty token"}},
		{"file over the size cap", []string{"validate", "-config", huge}, 1, nil, []string{"config file " + huge + " is 52428800 bytes, over the 16 MiB limit"}},
		{"every problem with its line", []string{"validate", "-config", bad}, 1, nil, []string{
			`bad.yaml:2: pools.p.balance: unknown balancer "fastest"`,
			`bad.yaml:4: services.s.pools[0]: unknown pool "q"`,
			`bad.yaml:6: routes[0].match.path: must start with /`,
			`bad.yaml:6: routes[0].service: unknown service "t"`,
			"4 problem(s)",
		}},
		{"problems only compiling finds", []string{"validate", "-config", compileBad}, 1, nil, []string{`compile.yaml:1: geo.nets.10.0.0.1/8: same network 10.0.0.0/8 as geo.nets["10.0.0.0/8"]`}},
		{"missing file", []string{"validate", "-config", filepath.Join(dir, "none.yaml")}, 1, nil, []string{"no such file"}},
		{"version", []string{"version"}, 0, []string{"meridian "}, nil},
		{"unknown command", []string{"frobnicate"}, 2, nil, []string{`unknown command "frobnicate"`}},
		{"help on a subcommand", []string{"validate", "-h"}, 0, nil, []string{"Usage: meridian validate", "-config file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { expectRun(t, tt.args, tt.code, tt.stdout, tt.stderr) })
	}
}

// expectRun runs the command with args and checks its exit code and that
// stdout and stderr contain the wanted strings; it returns what was
// printed.
func expectRun(t *testing.T, args []string, wantCode int, wantStdout, wantStderr []string) (stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(args, &out, &errOut)
	if code != wantCode {
		t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, wantCode, out.String(), errOut.String())
	}
	for _, w := range wantStdout {
		if !strings.Contains(out.String(), w) {
			t.Errorf("stdout lacks %q:\n%s", w, out.String())
		}
	}
	for _, w := range wantStderr {
		if !strings.Contains(errOut.String(), w) {
			t.Errorf("stderr lacks %q:\n%s", w, errOut.String())
		}
	}
	return out.String(), errOut.String()
}
