package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
)

// configText is a minimal valid config whose table version changes with n.
func configText(n int) string {
	return fmt.Sprintf(`
listen: {admin: 127.0.0.1:0}
pools:
  p: {endpoints: [127.0.0.1:9]}
services:
  s: {pools: [p]}
routes:
  - {name: r%d, match: {path_prefix: /}, service: s}
`, n)
}

// harness runs one App on loopback for a test.
type harness struct {
	t     *testing.T
	app   *App
	admin string
}

func start(t *testing.T, path string, opts ...func(*Options)) *harness {
	t.Helper()
	o := Options{ConfigPath: path, Logger: zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))}
	for _, f := range opts {
		f(&o)
	}
	a, err := New(o)
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
	return &harness{t: t, app: a, admin: "http://" + a.Addrs().Admin}
}

func (h *harness) get(path string, header ...string) (int, string) {
	h.t.Helper()
	return h.do("GET", path, "", header...)
}

func (h *harness) table() tableJSON {
	h.t.Helper()
	_, body := h.get("/api/v1/table")
	var doc tableJSON
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		h.t.Fatalf("table JSON: %v\n%s", err, body)
	}
	return doc
}

// waitFor polls cond until it holds or ten seconds pass.
func (h *harness) waitFor(what string, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (h *harness) waitRoute(name string) {
	h.t.Helper()
	h.waitFor("route "+name, func() bool {
		rs := h.table().Routes
		return len(rs) == 1 && rs[0].Name == name
	})
}

func (h *harness) metric(name string) string {
	h.t.Helper()
	_, body := h.get("/metrics")
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, name+" ") {
			return strings.TrimPrefix(line, name+" ")
		}
	}
	return ""
}

// write replaces path's content the way tools that save atomically do:
// write a temporary file beside it, rename it over. The reload is then
// immediate; a write in place waits for the settle window, which
// TestReloadPaths and TestSlowInPlaceWriter cover.
func write(t *testing.T, path, text string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// TestReloadPaths covers every way operators and tools replace a file.
func TestReloadPaths(t *testing.T) {
	tests := []struct {
		name    string
		replace func(t *testing.T, path, text string)
	}{
		{"in-place write", func(t *testing.T, path, text string) {
			f, err := os.OpenFile(path, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.WriteAt([]byte(text), 0); err != nil {
				t.Fatal(err)
			}
			if err := f.Truncate(int64(len(text))); err != nil {
				t.Fatal(err)
			}
		}},
		{"truncate then write (cp)", func(t *testing.T, path, text string) {
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			half := len(text) / 2
			if _, err := f.Write([]byte(text[:half])); err != nil {
				t.Fatal(err)
			}
			if _, err := f.Write([]byte(text[half:])); err != nil {
				t.Fatal(err)
			}
		}},
		{"editor write-temp-then-rename", func(t *testing.T, path, text string) {
			tmp := filepath.Join(filepath.Dir(path), ".meridian.yaml.swp")
			if err := os.WriteFile(tmp, []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(tmp, path); err != nil {
				t.Fatal(err)
			}
		}},
		{"mv over the file from elsewhere", func(t *testing.T, path, text string) {
			other := filepath.Join(t.TempDir(), "new.yaml")
			if err := os.WriteFile(other, []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(other, path); err != nil {
				t.Fatal(err)
			}
		}},
		{"remove then create", func(t *testing.T, path, text string) {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "meridian.yaml")
			write(t, path, configText(1))
			h := start(t, path)
			h.waitRoute("r1")
			v1 := h.table().Version
			tt.replace(t, path, configText(2))
			h.waitRoute("r2")
			if v2 := h.table().Version; v2 == v1 {
				t.Errorf("version did not change: %s", v2)
			}
		})
	}
}

// TestReloadConfigMapSymlinkSwap replays how Kubernetes updates a mounted
// ConfigMap: the file is a symlink through ..data, and ..data is swapped.
func TestReloadConfigMapSymlinkSwap(t *testing.T) {
	dir := t.TempDir()
	version := func(n int) {
		ts := filepath.Join(dir, fmt.Sprintf("..2026_%d", n))
		if err := os.Mkdir(ts, 0o755); err != nil {
			t.Fatal(err)
		}
		write(t, filepath.Join(ts, "meridian.yaml"), configText(n))
		tmp := filepath.Join(dir, "..data_tmp")
		if err := os.Symlink(filepath.Base(ts), tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
		if n > 1 {
			if err := os.RemoveAll(filepath.Join(dir, fmt.Sprintf("..2026_%d", n-1))); err != nil {
				t.Fatal(err)
			}
		}
	}
	version(1)
	path := filepath.Join(dir, "meridian.yaml")
	if err := os.Symlink("..data/meridian.yaml", path); err != nil {
		t.Fatal(err)
	}
	h := start(t, path)
	h.waitRoute("r1")
	version(2)
	h.waitRoute("r2")
	version(3)
	h.waitRoute("r3")
}

// TestBadFileKeepsLastGood checks the whole failure path: the old table keeps
// serving, the error is visible in the API and the metrics, and the next good
// file recovers all of them.
func TestBadFileKeepsLastGood(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meridian.yaml")
	write(t, path, configText(1))
	h := start(t, path)
	h.waitRoute("r1")
	v1 := h.table().Version

	write(t, path, strings.Replace(configText(2), "service: s", "service: nope", 1))
	h.waitFor("failed reload", func() bool { return !h.table().LastReload.OK })
	doc := h.table()
	if doc.Version != v1 || doc.Routes[0].Name != "r1" {
		t.Errorf("bad file replaced the table: version %s routes %+v", doc.Version, doc.Routes)
	}
	if !strings.Contains(doc.LastReload.Error, `routes[0].service: unknown service "nope"`) || !strings.Contains(doc.LastReload.Error, "meridian.yaml:8:") {
		t.Errorf("last_reload.error = %q, want the problem with its line", doc.LastReload.Error)
	}
	if got := h.metric("meridian_config_last_reload_successful"); got != "0" {
		t.Errorf("last_reload_successful = %q, want 0", got)
	}
	if got := h.metric(`meridian_config_reloads_total{result="failure"}`); got != "1" {
		t.Errorf(`reloads_total{result="failure"} = %q, want 1`, got)
	}
	if got := h.metric(fmt.Sprintf("meridian_table_info{version=%q}", v1)); got != "1" {
		t.Errorf("table_info for %s = %q, want 1", v1, got)
	}

	write(t, path, configText(3))
	h.waitRoute("r3")
	if doc := h.table(); !doc.LastReload.OK || doc.LastReload.Error != "" {
		t.Errorf("last_reload after recovery = %+v", doc.LastReload)
	}
	if got := h.metric("meridian_config_last_reload_successful"); got != "1" {
		t.Errorf("last_reload_successful after recovery = %q", got)
	}
}

// TestUnchangedContentIsNotAReload checks that a touch or a rewrite with the
// same bytes neither counts nor republishes.
func TestUnchangedContentIsNotAReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meridian.yaml")
	write(t, path, configText(1))
	h := start(t, path)
	built := h.table().Built
	write(t, path, configText(1))
	now := time.Now()
	if err := os.Chtimes(path, now, now); err != nil {
		t.Fatal(err)
	}
	// A later real change proves the watcher processed the earlier events.
	write(t, path, configText(2))
	h.waitRoute("r2")
	if got := h.metric(`meridian_config_reloads_total{result="success"}`); got != "2" {
		t.Errorf("successful reloads = %s, want 2 (start and r2 only)", got)
	}
	if !h.table().Built.After(built) {
		t.Error("table not rebuilt for r2")
	}
}

func TestAdminAPI(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "meridian.yaml")
	tokenFile := filepath.Join(dir, "token")
	write(t, tokenFile, "s3cret\n")
	write(t, path, configText(1)+"admin: {token_file: "+tokenFile+"}\n")
	h := start(t, path)

	tests := []struct {
		name   string
		path   string
		header []string
		code   int
		body   string
	}{
		{"healthz", "/healthz", nil, 200, "ok"},
		{"readyz", "/readyz", nil, 200, "ready"},
		{"metrics", "/metrics", nil, 200, "go_goroutines"},
		{"table without token", "/api/v1/table", nil, 401, "unauthorized"},
		{"table with wrong token", "/api/v1/table", []string{"Authorization", "Bearer nope"}, 401, "unauthorized"},
		{"table with token", "/api/v1/table", []string{"Authorization", "Bearer s3cret"}, 200, `"version"`},
		{"dashboard", "/", nil, 200, "<title>Meridian</title>"},
		{"pprof without token", "/debug/pprof/", nil, 401, "unauthorized"},
		{"pprof with token", "/debug/pprof/", []string{"Authorization", "Bearer s3cret"}, 200, "goroutine"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := h.get(tt.path, tt.header...)
			if code != tt.code || !strings.Contains(body, tt.body) {
				t.Errorf("GET %s = %d %q, want %d containing %q", tt.path, code, body, tt.code, tt.body)
			}
		})
	}
}

// TestShutdownDelay: on shutdown /readyz answers 503 while the listeners
// still accept, for shutdown.delay, then Run returns.
func TestShutdownDelay(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meridian.yaml")
	write(t, path, strings.Replace(configText(1), "listen: {admin: 127.0.0.1:0}", "listen: {admin: 127.0.0.1:0, http: 127.0.0.1:0}\nshutdown: {delay: 3s, grace: 1s}", 1))
	a, err := New(Options{ConfigPath: path, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	<-a.Ready()
	h := &harness{t: t, app: a, admin: "http://" + a.Addrs().Admin}
	cancel()
	h.waitFor("readyz 503", func() bool { code, _ := h.get("/readyz"); return code == 503 })
	resp, err := http.Get("http://" + a.Addrs().HTTP + "/")
	if err != nil {
		t.Fatalf("the HTTP listener closed before shutdown.delay: %v", err)
	}
	resp.Body.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meridian.yaml")
	write(t, path, "pools: {p: {endpoints: [nope]}}\n")
	_, err := New(Options{ConfigPath: path, Logger: zap.NewNop()})
	if err == nil || !strings.Contains(err.Error(), "meridian.yaml:1: pools.p.endpoints[0]") {
		t.Fatalf("New = %v, want the problem with its line", err)
	}
}

func (h *harness) post(path string, header ...string) (int, string) {
	h.t.Helper()
	req, _ := http.NewRequest("POST", h.admin+path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestEndpointOverrides drives drain/down/enable through the admin API and
// checks that an override survives a reload.
func TestEndpointOverrides(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "meridian.yaml")
	tokenFile := filepath.Join(dir, "token")
	write(t, tokenFile, "tok")
	tokenCfg := "admin: {token_file: " + tokenFile + "}\n"
	write(t, path, configText(1)+tokenCfg)
	h := start(t, path)
	auth := []string{"Authorization", "Bearer tok"}
	endpoint := func() endpointJSON {
		_, body := h.get("/api/v1/table", auth...)
		var doc tableJSON
		if err := json.Unmarshal([]byte(body), &doc); err != nil {
			t.Fatal(err)
		}
		return doc.Pools["p"].Endpoints[0]
	}
	if code, _ := h.post("/api/v1/endpoints/p/127.0.0.1:9/drain"); code != 401 {
		t.Errorf("override without token = %d, want 401", code)
	}
	if code, body := h.post("/api/v1/endpoints/p/127.0.0.1:9/drain", auth...); code != 200 || !strings.Contains(body, `"draining"`) {
		t.Fatalf("drain = %d %s", code, body)
	}
	if e := endpoint(); e.Available || e.Health == nil || e.Health.State != "draining" {
		t.Errorf("after drain: %+v", e)
	}
	write(t, path, configText(2)+tokenCfg)
	h.waitFor("reload", func() bool {
		_, body := h.get("/api/v1/table", auth...)
		return strings.Contains(body, `"r2"`)
	})
	if e := endpoint(); e.Available || e.Health.State != "draining" {
		t.Errorf("drain did not survive the reload: %+v", e)
	}
	if code, _ := h.post("/api/v1/endpoints/p/127.0.0.1:9/enable", auth...); code != 200 {
		t.Errorf("enable = %d", code)
	}
	if e := endpoint(); !e.Available {
		t.Errorf("after enable: %+v", e)
	}
	if code, _ := h.post("/api/v1/endpoints/nope/127.0.0.1:9/down", auth...); code != 404 {
		t.Errorf("unknown pool = %d, want 404", code)
	}
	if code, _ := h.post("/api/v1/endpoints/p/127.0.0.1:9/explode", auth...); code != 400 {
		t.Errorf("unknown action = %d, want 400", code)
	}
}
