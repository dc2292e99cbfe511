//go:build unix

package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestProcessReopensAccessLog runs the real binary and rotates its access
// log as logrotate does: rename the file, send SIGUSR1. Lines before the
// signal are in the renamed file, lines after in a new one, and the line
// of the last request before SIGTERM is written before the exit.
func TestProcessReopensAccessLog(t *testing.T) {
	bin := buildMeridian(t)
	dir := t.TempDir()
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") }))
	defer be.Close()
	logPath := filepath.Join(dir, "access.log")
	cfg := filepath.Join(dir, "meridian.yaml")
	text := fmt.Sprintf("listen: {admin: 127.0.0.1:0, http: 127.0.0.1:0}\nhttp: {access_log: {to: %s}}\n"+
		"pools: {p: {endpoints: [%s]}}\nservices: {s: {pools: [p]}}\nroutes: [{name: r, service: s}]\n",
		logPath, be.Listener.Addr())
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "-config", cfg, "-watch=false")
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	started := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var line struct{ Msg, HTTP string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "meridian started" {
				started <- line.HTTP
			}
		}
	}()
	var addr string
	select {
	case addr = <-started:
	case <-time.After(20 * time.Second):
		t.Fatal("no 'meridian started' log line")
	}
	get := func(path string) {
		t.Helper()
		res, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
	}
	paths := func(file string) []string {
		b, _ := os.ReadFile(file)
		var out []string
		for l := range strings.SplitSeq(strings.TrimSpace(string(b)), "\n") {
			var m struct{ Path string }
			if json.Unmarshal([]byte(l), &m) == nil {
				out = append(out, m.Path)
			}
		}
		return out
	}
	waitPaths := func(file string, want ...string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for strings.Join(paths(file), " ") != strings.Join(want, " ") {
			if time.Now().After(deadline) {
				t.Fatalf("%s has %v, want %v", filepath.Base(file), paths(file), want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	get("/before")
	waitPaths(logPath, "/before")
	if err := os.Rename(logPath, logPath+".1"); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(logPath); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("SIGUSR1 did not reopen the access log")
		}
		time.Sleep(20 * time.Millisecond)
	}
	get("/after")
	waitPaths(logPath, "/after")
	get("/last")
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("exit: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no exit after SIGTERM")
	}
	if got := paths(logPath); strings.Join(got, " ") != "/after /last" {
		t.Errorf("access.log after exit: %v", got)
	}
	if got := paths(logPath + ".1"); strings.Join(got, " ") != "/before" {
		t.Errorf("access.log.1: %v", got)
	}
}
