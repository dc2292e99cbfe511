package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// buildMeridian builds the command into a temporary directory.
func buildMeridian(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "meridian")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

// stackTraceMarks are what a Go stack trace in a log looks like: zap's
// field, a goroutine dump, or a frame (function line, then a tab and the
// file).
var stackTraceMarks = []string{"stacktrace", "goroutine ", "\n\t/", "meridian/internal/app.("}

// okConfig is a config that starts, on loopback ports the kernel picks.
func okConfig(format string) string {
	return "listen: {admin: 127.0.0.1:0, http: 127.0.0.1:0}\nlog: {format: " + format + "}\nshutdown: {grace: 1s}\n" +
		"pools: {p: {endpoints: [127.0.0.1:9]}}\nservices: {s: {pools: [p]}}\nroutes: [{name: r, service: s}]\n"
}

// TestStartConfigError: a config mistake at start is one line,
// file:line: path: message, with no stack trace, and exit status 1.
func TestStartConfigError(t *testing.T) {
	bin := buildMeridian(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "m.yaml")
	bad := strings.Replace(okConfig("console"), "endpoints: [127.0.0.1:9]", "endpoints: [127.0.0.1:9], balance: fastest", 1)
	if err := os.WriteFile(cfg, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-config", cfg)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("exit: %v, want status 1\n%s", err, stderr.String())
	}
	want := cfg + `:4: pools.p.balance: unknown balancer "fastest": want round_robin, least_request, random, ring_hash or maglev` + "\n"
	if stderr.String() != want {
		t.Errorf("stderr:\n%q\nwant one line:\n%q", stderr.String(), want)
	}
	if stdout.Len() != 0 {
		t.Errorf("stdout: %q", stdout.String())
	}
}

// TestReloadErrorLog: a config rejected on reload is logged as one record,
// with the problem and its line and no stack trace, in both log formats;
// with stderr a pipe, the console format has no colour escape codes.
func TestReloadErrorLog(t *testing.T) {
	bin := buildMeridian(t)
	for _, format := range []string{"console", "json"} {
		t.Run(format, func(t *testing.T) {
			dir := t.TempDir()
			cfg := filepath.Join(dir, "m.yaml")
			good := okConfig(format)
			if err := os.WriteFile(cfg, []byte(good), 0o644); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(bin, "run", "-config", cfg, "-watch=false")
			cmd.Env = append(os.Environ(), "NO_COLOR=") // colour off by the pipe alone
			pipe, err := cmd.StderrPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
			lines := make(chan string, 100)
			go func() {
				sc := bufio.NewScanner(pipe)
				for sc.Scan() {
					lines <- sc.Text()
				}
				close(lines)
			}()
			var log strings.Builder
			wait := func(what string) string {
				t.Helper()
				timeout := time.After(20 * time.Second)
				for {
					select {
					case l, ok := <-lines:
						if !ok {
							t.Fatalf("stderr closed before %q:\n%s", what, log.String())
						}
						log.WriteString(l + "\n")
						if strings.Contains(l, what) {
							return l
						}
					case <-timeout:
						t.Fatalf("no %q in the log:\n%s", what, log.String())
					}
				}
			}
			wait("meridian started")
			bad := strings.Replace(good, "endpoints: [127.0.0.1:9]", "endpoints: [127.0.0.1:9], balance: fastest", 1)
			if err := os.WriteFile(cfg, []byte(bad), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
				t.Fatal(err)
			}
			rec := wait("config rejected")
			if !strings.Contains(rec, `m.yaml:4: pools.p.balance: unknown balancer`) {
				t.Errorf("the rejection lacks the problem and its line:\n%s", rec)
			}
			if format == "json" {
				var fields map[string]any
				if err := json.Unmarshal([]byte(rec), &fields); err != nil {
					t.Errorf("not a JSON record: %v\n%s", err, rec)
				}
			}
			_ = cmd.Process.Signal(syscall.SIGTERM)
			for l := range lines { // to exit: whatever follows must be clean too
				log.WriteString(l + "\n")
			}
			for _, mark := range stackTraceMarks {
				if strings.Contains(log.String(), mark) {
					t.Errorf("the log has %q, a stack trace:\n%s", mark, log.String())
				}
			}
			if strings.Contains(log.String(), "\x1b[") {
				t.Errorf("colour escape codes in a log piped to a non-terminal:\n%q", log.String())
			}
		})
	}
}
