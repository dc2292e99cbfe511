package app

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/meridian-lb/meridian/config"
	"github.com/meridian-lb/meridian/internal/configtest"
	"github.com/meridian-lb/meridian/routing"
)

// chunkedConfig is a config with n routes cut into parts pieces at route
// boundaries: every prefix of pieces is valid YAML that serves fewer
// routes, the worst case for a reader that catches a writer mid-file.
func chunkedConfig(n, parts int) []string {
	head := "listen: {admin: 127.0.0.1:0}\npools:\n  p: {endpoints: [127.0.0.1:9]}\nservices:\n  s: {pools: [p]}\nroutes:\n"
	var chunks []string
	var b strings.Builder
	b.WriteString(head)
	for i := range n {
		fmt.Fprintf(&b, "  - {name: w%d, match: {path_prefix: /w%d}, service: s}\n", i, i)
		if (i+1)%(n/parts) == 0 {
			chunks = append(chunks, b.String())
			b.Reset()
		}
	}
	return chunks
}

// tableWatch records every table the App publishes, by polling the live
// pointer, until stopped: a published prefix shows however briefly it is
// served, since each table stays published until the next swap.
type tableWatch struct {
	stop chan struct{}
	done chan struct{}
	mu   sync.Mutex
	seen []*routing.Table
}

func watchTables(live *routing.Live) *tableWatch {
	w := &tableWatch{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		var last *routing.Table
		for {
			if t := live.Load(); t != last {
				last = t
				w.mu.Lock()
				w.seen = append(w.seen, t)
				w.mu.Unlock()
			}
			select {
			case <-w.stop:
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	return w
}

func (w *tableWatch) Stop() []*routing.Table {
	close(w.stop)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.seen
}

// TestSlowInPlaceWriter writes a config into the file in place, in five
// chunks with 250 ms pauses, each prefix valid YAML that serves fewer
// routes: no prefix may ever be published, only the whole file, once it has
// stopped changing for the default settle window.
func TestSlowInPlaceWriter(t *testing.T) {
	const routes = 50
	tests := []struct {
		name string
		open func(t *testing.T, path string) *os.File
	}{
		{"truncate and write (cat >, cp)", func(t *testing.T, path string) *os.File {
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}},
		{"remove, then create and write", func(t *testing.T, path string) *os.File {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			f, err := os.Create(path)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "meridian.yaml")
			write(t, path, configText(1))
			h := start(t, path) // the default settle window
			h.waitRoute("r1")
			watch := watchTables(&h.app.live)

			f := tt.open(t, path)
			var lastWrite time.Time
			for i, c := range chunkedConfig(routes, 5) {
				if i > 0 {
					time.Sleep(250 * time.Millisecond) // the writer's pause: the point of the test
				}
				if _, err := f.WriteString(c); err != nil {
					t.Fatal(err)
				}
				lastWrite = time.Now()
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			h.waitFor("the whole file", func() bool { return len(h.app.live.Load().Routes) == routes })
			t.Logf("whole file served %v after its last write (settle window %v)", time.Since(lastWrite).Round(time.Millisecond), config.DefaultSettle)

			seen := watch.Stop()
			for _, tbl := range seen {
				if n := len(tbl.Routes); n != 1 && n != routes {
					t.Errorf("a prefix was published: table %s with %d of %d routes", tbl.Version, n, routes)
				}
			}
			if got := h.metric(`meridian_config_reloads_total{result="success"}`); got != "2" {
				t.Errorf("successful reloads = %s, want 2 (the start and the whole file)", got)
			}
			if got := h.metric(`meridian_config_reloads_total{result="failure"}`); got != "0" {
				t.Errorf("failed reloads = %s, want 0 (a file being written is not a failure)", got)
			}
		})
	}
}

// TestRenameSkipsTheSettleWindow: a file renamed into place is applied at
// once, even while a write in place is waiting to settle, and the write's
// prefix is never published. The settle window is a minute here, so a
// rename that waited for it would time out; the time from the rename to
// the new table is logged, not asserted (the benchmark measures it).
func TestRenameSkipsTheSettleWindow(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "meridian.yaml")
	write(t, path, configtest.Big(2000, 0, benchHead))
	core, logs := observer.New(zapcore.DebugLevel)
	h := start(t, path, func(o *Options) {
		o.Logger = zap.New(core)
		o.Settle = time.Minute
	})
	before := h.app.live.Load().Version

	// A writer in place leaves a valid prefix and pauses.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(chunkedConfig(50, 5)[0]); err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h.waitFor("the write in place to be held", func() bool {
		return logs.FilterMessageSnippet("written in place").Len() > 0
	})
	if v := h.app.live.Load().Version; v != before {
		t.Fatalf("the prefix written in place was published (version %s)", v)
	}

	// Then a whole file is renamed over it.
	tmp := filepath.Join(dir, ".meridian.yaml.tmp")
	if err := os.WriteFile(tmp, []byte(configtest.Big(2000, 1, benchHead)), 0o644); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	// Polled tightly, as the benchmark does, so the figure is the reload's.
	for h.app.live.Load().Version == before {
		if time.Since(t0) > 10*time.Second {
			t.Fatal("the renamed file was not applied within 10s: it waited for the settle window")
		}
		time.Sleep(200 * time.Microsecond)
	}
	elapsed := time.Since(t0)
	if n := len(h.app.live.Load().Routes); n != 2000 {
		t.Fatalf("published a table with %d routes, want the renamed file's 2000", n)
	}
	t.Logf("2,000 routes served %v after the rename", elapsed.Round(100*time.Microsecond))
}

// TestEmptyConfigRejected: a file that is empty, null, or serves nothing,
// or is over the size cap, is refused at start and on reload; the last
// good table keeps serving and the failure shows in the API and metrics.
func TestEmptyConfigRejected(t *testing.T) {
	tests := []struct {
		name, text string
		huge       bool // a sparse 50 MiB file instead of text
		want       string
	}{
		{"document marker", "---\n", false, "meridian.yaml:1: config is empty"},
		{"null", "null\n", false, "meridian.yaml:1: config is empty"},
		{"tilde", "~\n", false, "meridian.yaml:1: config is empty"},
		{"empty file", "", false, "meridian.yaml:1: config is empty"},
		{"whitespace", " \n\n  \n", false, "meridian.yaml:1: config is empty"},
		{"empty mapping", "{}\n", false, "meridian.yaml:1: config defines nothing to serve"},
		{"admin listener only", "listen: {admin: 127.0.0.1:0}\n", false, "meridian.yaml:1: config defines nothing to serve"},
		{"50 MiB", "", true, "is 52428800 bytes, over the 16 MiB limit"},
	}
	put := func(t *testing.T, path, text string, huge bool) {
		t.Helper()
		if !huge {
			write(t, path, text)
			return
		}
		tmp := path + ".tmp"
		f, err := os.Create(tmp)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Truncate(50 << 20); err != nil {
			t.Fatal(err)
		}
		f.Close()
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Run("start", func(t *testing.T) {
				path := filepath.Join(t.TempDir(), "meridian.yaml")
				put(t, path, tt.text, tt.huge)
				if _, err := New(Options{ConfigPath: path, Logger: zap.NewNop()}); err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Errorf("New = %v, want an error containing %q", err, tt.want)
				}
			})
			t.Run("reload", func(t *testing.T) {
				path := filepath.Join(t.TempDir(), "meridian.yaml")
				write(t, path, configText(1))
				h := start(t, path)
				h.waitRoute("r1")
				v1 := h.table().Version
				put(t, path, tt.text, tt.huge)
				h.waitFor("the rejected reload", func() bool { return !h.table().LastReload.OK })
				doc := h.table()
				if !strings.Contains(doc.LastReload.Error, tt.want) {
					t.Errorf("last_reload.error = %q, want %q", doc.LastReload.Error, tt.want)
				}
				if doc.Version != v1 || len(doc.Routes) != 1 || doc.Routes[0].Name != "r1" {
					t.Errorf("the last good table was replaced: version %s routes %+v", doc.Version, doc.Routes)
				}
				if got := h.metric("meridian_config_last_reload_successful"); got != "0" {
					t.Errorf("last_reload_successful = %q, want 0", got)
				}
				if got := h.metric(`meridian_config_reloads_total{result="failure"}`); got != "1" {
					t.Errorf(`reloads_total{result="failure"} = %q, want 1`, got)
				}
			})
		})
	}
}

// TestAdminTokenFile: a token file that is empty, whitespace or unreadable
// fails the start and a reload with a clear message; on a failed reload the
// token in force stays in force, and once the file is fixed a SIGHUP
// applies the waiting config and its token.
func TestAdminTokenFile(t *testing.T) {
	t.Run("start", func(t *testing.T) {
		dir := t.TempDir()
		for name, content := range map[string]*string{"empty": ptr(""), "whitespace": ptr(" \n\t \n"), "missing": nil} {
			t.Run(name, func(t *testing.T) {
				tokenFile := filepath.Join(dir, name+".token")
				if content != nil {
					write(t, tokenFile, *content)
				}
				path := filepath.Join(dir, name+".yaml")
				write(t, path, configText(1)+"admin: {token_file: "+tokenFile+"}\n")
				want := "admin.token_file: " + tokenFile + ": empty token"
				if content == nil {
					want = "admin.token_file: " + tokenFile + ": no such file or directory"
				}
				_, err := New(Options{ConfigPath: path, Logger: zap.NewNop()})
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("New = %v, want an error containing %q", err, want)
				}
			})
		}
	})

	t.Run("reload", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "meridian.yaml")
		tokenFile := filepath.Join(dir, "token")
		tokenCfg := "admin: {token_file: " + tokenFile + "}\n"
		write(t, tokenFile, "tok\n")
		write(t, path, configText(1)+tokenCfg)
		h := start(t, path)
		table := func(token string) (int, tableJSON) {
			var doc tableJSON
			code, body := h.get("/api/v1/table", "Authorization", "Bearer "+token)
			if code == 200 {
				if err := json.Unmarshal([]byte(body), &doc); err != nil {
					t.Fatal(err)
				}
			}
			return code, doc
		}

		write(t, tokenFile, "  \n")
		write(t, path, configText(2)+tokenCfg)
		h.waitFor("the reload to be decided", func() bool {
			if _, doc := table("tok"); !doc.LastReload.OK {
				return true
			}
			code, doc := table("") // the code before the fix opened the API and applied r2
			return code == 200 && len(doc.Routes) == 1 && doc.Routes[0].Name == "r2"
		})
		_, doc := table("tok")
		if want := "meridian.yaml:9: admin.token_file: " + tokenFile + ": empty token"; !strings.Contains(doc.LastReload.Error, want) {
			t.Errorf("last_reload.error = %q, want %q", doc.LastReload.Error, want)
		}
		if len(doc.Routes) != 1 || doc.Routes[0].Name != "r1" {
			t.Errorf("the config with the empty token was applied: %+v", doc.Routes)
		}
		for _, tok := range []string{"", " "} {
			if code, _ := table(tok); code != 401 {
				t.Errorf("GET /api/v1/table with token %q = %d, want 401", tok, code)
			}
			if code, _ := h.post("/api/v1/endpoints/p/127.0.0.1:9/drain", "Authorization", "Bearer "+tok); code != 401 {
				t.Errorf("drain with token %q = %d, want 401", tok, code)
			}
		}
		if code, _ := h.post("/api/v1/endpoints/p/127.0.0.1:9/drain"); code != 401 {
			t.Errorf("drain without a token = %d, want 401", code)
		}

		// Fixed, and a SIGHUP: the waiting config applies, with its token.
		write(t, tokenFile, "tok2\n")
		h.app.Reload()
		h.waitFor("r2 with the new token", func() bool {
			code, doc := table("tok2")
			return code == 200 && len(doc.Routes) == 1 && doc.Routes[0].Name == "r2"
		})
		if _, doc := table("tok2"); !doc.LastReload.OK {
			t.Errorf("last_reload after the fix = %+v", doc.LastReload)
		}
		if code, _ := table("tok"); code != 401 {
			t.Errorf("the old token still works: %d", code)
		}
	})
}

func ptr[T any](v T) *T { return &v }

// TestAuthFailsClosed: the admin API opens only when no token file is
// configured; no token loaded, or a required token that is empty, locks it
// whatever the request presents.
func TestAuthFailsClosed(t *testing.T) {
	tests := []struct {
		name   string
		token  *adminToken
		header string
		code   int
	}{
		{"no token file configured", &adminToken{}, "", 200},
		{"the token", &adminToken{required: true, value: "tok"}, "Bearer tok", 200},
		{"a wrong token", &adminToken{required: true, value: "tok"}, "Bearer tok2", 401},
		{"nothing loaded yet", nil, "", 401},
		{"nothing loaded yet, empty bearer", nil, "Bearer ", 401},
		{"required and empty", &adminToken{required: true}, "", 401},
		{"required and empty, empty bearer", &adminToken{required: true}, "Bearer ", 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p atomic.Pointer[adminToken]
			p.Store(tt.token)
			a := &admin{token: &p}
			h := a.auth(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(200) }))
			req := httptest.NewRequest("POST", "/api/v1/endpoints/p/a/drain", nil)
			if tt.header != "" {
				req.Header.Set("Authorization", tt.header)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tt.code {
				t.Errorf("status %d, want %d", rec.Code, tt.code)
			}
		})
	}
}
