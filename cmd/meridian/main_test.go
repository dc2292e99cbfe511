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
	if err := os.WriteFile(good, []byte("pools: {p: {endpoints: [127.0.0.1:1]}}\nservices: {s: {pools: [p]}}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
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
		{"good file", []string{"validate", "-config", good}, 0, []string{"good.yaml: ok: 0 routes, 1 services, 1 pools"}, nil},
		{"every problem with its line", []string{"validate", "-config", bad}, 1, nil, []string{
			`bad.yaml:2: pools.p.balance: unknown balancer "fastest"`,
			`bad.yaml:4: services.s.pools[0]: unknown pool "q"`,
			`bad.yaml:6: routes[0].match.path: must start with /`,
			`bad.yaml:6: routes[0].service: unknown service "t"`,
			"4 problem(s)",
		}},
		{"problems only compiling finds", []string{"validate", "-config", compileBad}, 1, nil, []string{"compile.yaml:", "10.0.0.1/8"}},
		{"missing file", []string{"validate", "-config", filepath.Join(dir, "none.yaml")}, 1, nil, []string{"no such file"}},
		{"version", []string{"version"}, 0, []string{"meridian "}, nil},
		{"unknown command", []string{"frobnicate"}, 2, nil, []string{`unknown command "frobnicate"`}},
		{"help on a subcommand", []string{"validate", "-h"}, 0, nil, []string{"Usage: meridian validate", "-config file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(tt.args, &stdout, &stderr)
			if code != tt.code {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, stdout.String(), stderr.String())
			}
			for _, w := range tt.stdout {
				if !strings.Contains(stdout.String(), w) {
					t.Errorf("stdout lacks %q:\n%s", w, stdout.String())
				}
			}
			for _, w := range tt.stderr {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr.String())
				}
			}
		})
	}
}
