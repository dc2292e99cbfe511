package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/invalid/*.txt from what meridian validate prints")

// TestValidateGolden runs `meridian validate` on each testdata/invalid/*.yaml,
// one file per family of messages, and compares what it prints with the
// .txt beside it, exactly: every message is file:line: path: message (a
// YAML syntax error file:line:column: yaml: message), and all of a file's
// problems come out of one run. go test -run TestValidateGolden -update
// rewrites the .txt files; review the diff.
func TestValidateGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/invalid/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no test files: %v", err)
	}
	for _, in := range files {
		name := strings.TrimSuffix(filepath.Base(in), ".yaml")
		t.Run(name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run([]string{"validate", "-config", in}, &stdout, &stderr); code != 1 {
				t.Errorf("exit %d, want 1", code)
			}
			if stdout.Len() > 0 {
				t.Errorf("stdout: %s", stdout.String())
			}
			got := stderr.String()
			golden := strings.TrimSuffix(in, ".yaml") + ".txt"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("meridian validate -config %s printed:\n%s\nwant (%s):\n%s", in, got, golden, want)
			}
			for _, line := range strings.Split(strings.TrimSuffix(got, "\n"), "\n") {
				if !strings.HasPrefix(line, in+":") {
					t.Errorf("a message that does not start with the file: %q", line)
				}
			}
		})
	}
}
