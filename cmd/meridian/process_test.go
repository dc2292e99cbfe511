package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestProcessLifecycle runs the real binary: SIGHUP reloads (with the
// watcher off, so only the signal can have done it), and SIGTERM drains and
// exits 0.
func TestProcessLifecycle(t *testing.T) {
	bin := buildMeridian(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "meridian.yaml")
	writeCfg := func(route string) {
		text := fmt.Sprintf("listen: {admin: 127.0.0.1:0}\nshutdown: {grace: 5s}\npools: {p: {endpoints: [127.0.0.1:9]}}\nservices: {s: {pools: [p]}}\nroutes: [{name: %s, service: s}]\n", route)
		if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeCfg("first")
	cmd := exec.Command(bin, "run", "-config", cfg, "-watch=false")
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })

	// The JSON log's "meridian started" line names the admin address.
	admin := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var line struct{ Msg, Admin string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "meridian started" {
				admin <- line.Admin
			}
		}
		close(admin)
	}()
	var addr string
	select {
	case addr = <-admin:
	case <-time.After(20 * time.Second):
		t.Fatal("no 'meridian started' log line")
	}
	routeName := func() string {
		resp, err := http.Get("http://" + addr + "/api/v1/table")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var doc struct{ Routes []struct{ Name string } }
		b, _ := io.ReadAll(resp.Body)
		if err := json.Unmarshal(b, &doc); err != nil || len(doc.Routes) != 1 {
			t.Fatalf("table: %v %s", err, b)
		}
		return doc.Routes[0].Name
	}
	if got := routeName(); got != "first" {
		t.Fatalf("route = %s", got)
	}
	writeCfg("second")
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for routeName() != "second" {
		if time.Now().After(deadline) {
			t.Fatal("SIGHUP did not reload")
		}
		time.Sleep(20 * time.Millisecond)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v, want status 0", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no exit within the grace period after SIGTERM")
	}
	if resp, err := http.Get("http://" + addr + "/healthz"); err == nil {
		resp.Body.Close()
		t.Error("admin still answering after exit")
	} else if !strings.Contains(err.Error(), "refused") {
		t.Logf("after exit: %v", err)
	}
}
