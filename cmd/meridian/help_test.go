package main

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
)

// TestHelp: what a new user types first. "meridian -h" (and its spellings)
// lists every command on stdout; every command it lists exists; "demo -h"
// says which file the demo serves.
func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"-h"}, {"--help"}, {"-help"}, {"help"}} {
		var stdout, stderr bytes.Buffer
		if code := run(args, &stdout, &stderr); code != 0 {
			t.Errorf("%v: exit %d, want 0\n%s", args, code, stderr.String())
		}
		for _, cmd := range []string{"run", "validate", "demo", "explain", "version", "help"} {
			if !strings.Contains(stdout.String(), "meridian "+cmd) && !strings.Contains(stdout.String(), "meridian ["+cmd+"]") {
				t.Errorf("%v: the usage does not list %q:\n%s", args, cmd, stdout.String())
			}
		}
		if stderr.Len() != 0 {
			t.Errorf("%v: stderr %q, want nothing", args, stderr.String())
		}
	}

	// Every command the usage lists answers -h with its own usage.
	listed := regexp.MustCompile(`(?m)^  meridian \[?([a-z]+)`).FindAllStringSubmatch(usage, -1)
	if len(listed) < 5 {
		t.Fatalf("usage lists %d commands:\n%s", len(listed), usage)
	}
	for _, m := range listed {
		cmd := m[1]
		if cmd == "help" || cmd == "version" {
			continue // no flags
		}
		var stdout, stderr bytes.Buffer
		code := run([]string{cmd, "-h"}, &stdout, &stderr)
		out := stdout.String() + stderr.String()
		if code != 0 || strings.Contains(out, "unknown command") {
			t.Errorf("the usage lists %q, but `meridian %s -h` exits %d:\n%s", cmd, cmd, code, out)
		}
	}

	// "meridian -config F -h" is still the run command's help, and says
	// that run is the default.
	var stdout, stderr bytes.Buffer
	if code := run([]string{"-config", "x.yaml", "-h"}, &stdout, &stderr); code != 0 || !strings.Contains(stderr.String(), "Usage: meridian run") ||
		!strings.Contains(stderr.String(), "default command") {
		t.Errorf("meridian -config x.yaml -h: exit %d\n%s", code, stderr.String())
	}
}

func TestVersionFlag(t *testing.T) {
	for _, arg := range []string{"version", "-version", "--version"} {
		var stdout, stderr bytes.Buffer
		if code := run([]string{arg}, &stdout, &stderr); code != 0 || !strings.HasPrefix(stdout.String(), "meridian ") {
			t.Errorf("meridian %s: exit %d\nstdout: %s\nstderr: %s", arg, code, stdout.String(), stderr.String())
		}
	}
}

func TestHelpCommand(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"help", "validate"}, &stdout, &stderr); code != 0 || !strings.Contains(stderr.String(), "Usage: meridian validate") {
		t.Errorf("meridian help validate: exit %d\nstdout: %s\nstderr: %s", code, stdout.String(), stderr.String())
	}
}

// TestDemoHelp: the demo's help names the file it serves without -config,
// and does not claim the run command's default, meridian.yaml.
func TestDemoHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"demo", "-h"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr.String())
	}
	out := stderr.String()
	for _, want := range []string{
		"./examples/quickstart.yaml, relative to the working directory, when that file exists",
		"otherwise the copy built into this binary",
		"-control address",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("demo -h lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "meridian.yaml") {
		t.Errorf("demo -h names meridian.yaml, which the demo never serves:\n%s", out)
	}
}

// TestMisuse: the mistakes a first command line makes get a message that
// says what to type instead.
func TestMisuse(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr []string
	}{
		{"file as a command", []string{"quickstart.yaml"}, 2, []string{`unknown command "quickstart.yaml"`, "meridian run -config quickstart.yaml", "Usage:"}},
		{"file without -config", []string{"validate", "quickstart.yaml"}, 2, []string{`meridian validate: unexpected argument "quickstart.yaml"`, "meridian validate -config quickstart.yaml"}},
		{"stray word", []string{"run", "-config", "x.yaml", "now"}, 2, []string{`meridian run: unexpected argument "now"`}},
		{"no config in the directory", []string{"run", "-config", dir + "/none.yaml"}, 1, []string{"meridian: read config"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(tt.args, &stdout, &stderr)
			if code != tt.code {
				t.Errorf("exit %d, want %d\nstderr: %s", code, tt.code, stderr.String())
			}
			for _, w := range tt.stderr {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr.String())
				}
			}
		})
	}
	// Bare "meridian" where there is no meridian.yaml says what to do.
	t.Chdir(dir)
	var stdout, stderr bytes.Buffer
	if code := run(nil, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "no -config given and meridian.yaml does not exist") ||
		!strings.Contains(stderr.String(), "meridian demo") {
		t.Errorf("meridian with no meridian.yaml: exit %d\n%s", code, stderr.String())
	}
}
