package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"go.uber.org/zap"

	"github.com/meridian-lb/meridian/catalog/consultest"
	"github.com/meridian-lb/meridian/internal/audit"
	"github.com/meridian-lb/meridian/internal/history"
)

// adminSection is an admin: section with a default token, a named one,
// an audit log and a history of 5.
func adminSection(dir string) string {
	return fmt.Sprintf("admin:\n  token_file: %s\n  tokens: [{name: ops, file: %s}]\n  audit_log: %s\n  history: 5\n",
		filepath.Join(dir, "default.token"), filepath.Join(dir, "ops.token"), filepath.Join(dir, "audit.log"))
}

func writeTokens(t *testing.T, dir string) {
	t.Helper()
	write(t, filepath.Join(dir, "default.token"), "s3cret-default\n")
	write(t, filepath.Join(dir, "ops.token"), "s3cret-ops\n")
}

func (h *harness) historyDoc(token string) historyDoc {
	h.t.Helper()
	code, body := h.get("/api/v1/config/history", "Authorization", "Bearer "+token)
	if code != 200 {
		h.t.Fatalf("history: %d %s", code, body)
	}
	var doc historyDoc
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		h.t.Fatalf("history JSON: %v\n%s", err, body)
	}
	return doc
}

func (h *harness) auditDoc(token string) []audit.Entry {
	h.t.Helper()
	code, body := h.get("/api/v1/audit", "Authorization", "Bearer "+token)
	if code != 200 {
		h.t.Fatalf("audit: %d %s", code, body)
	}
	var doc auditDoc
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		h.t.Fatalf("audit JSON: %v\n%s", err, body)
	}
	return doc.Entries
}

// TestHistoryDiffRollback: two accepted configs are listed newest first,
// served as they were read and diffed; a rollback writes v1 back to the
// file (atomically, keeping its mode), the watcher applies it, and the
// live table's version returns to v1's. The audit log records the
// rollback with the token's name, never the token.
func TestHistoryDiffRollback(t *testing.T) {
	dir := t.TempDir()
	writeTokens(t, dir)
	path := filepath.Join(dir, "meridian.yaml")
	v1Text, v2Text := configText(1)+adminSection(dir), configText(2)+adminSection(dir)
	write(t, path, v1Text)
	h := start(t, path)
	const def, ops = "s3cret-default", "s3cret-ops"
	version := func() string {
		_, body := h.get("/api/v1/table", "Authorization", "Bearer "+def)
		var doc tableJSON
		_ = json.Unmarshal([]byte(body), &doc)
		return doc.Version
	}
	v1 := version()
	if doc := h.historyDoc(ops); len(doc.Entries) != 1 || doc.Entries[0].Version != v1 || doc.Entries[0].Source != path || doc.Live != v1 {
		t.Fatalf("history at start: %+v (live %s)", doc, v1)
	}

	write(t, path, v2Text)
	if err := os.Chmod(path, 0o640); err != nil { // the rollback keeps it
		t.Fatal(err)
	}
	h.waitFor("v2", func() bool { return version() != v1 })
	v2 := version()
	doc := h.historyDoc(def)
	if len(doc.Entries) != 2 || doc.Entries[0].Version != v2 || doc.Entries[1].Version != v1 || doc.Entries[0].Previous != v1 {
		t.Fatalf("history after a reload: %+v", doc)
	}

	// The bytes as read, and the diff.
	code, body := h.get("/api/v1/config/history/"+v1, "Authorization", "Bearer "+def)
	if code != 200 || body != v1Text {
		t.Errorf("history/%s = %d %q, want v1's bytes", v1, code, body)
	}
	if code, _ := h.get("/api/v1/config/history/"+v1, "Authorization", "Bearer wrong"); code != 401 {
		t.Errorf("history with a wrong token = %d", code)
	}
	if code, _ := h.get("/api/v1/config/history/nope", "Authorization", "Bearer "+def); code != 404 {
		t.Errorf("unknown version = %d", code)
	}
	for _, q := range []string{"?from=" + v1 + "&to=" + v2, "", "?to=" + v2} {
		code, body := h.get("/api/v1/config/diff"+q, "Authorization", "Bearer "+def)
		if code != 200 || !strings.Contains(body, "-  - {name: r1,") || !strings.Contains(body, "+  - {name: r2,") ||
			!strings.Contains(body, "--- "+path+"@"+v1) {
			t.Errorf("diff%s = %d\n%s", q, code, body)
		}
	}
	if code, _ := h.get("/api/v1/config/diff?from=nope", "Authorization", "Bearer "+def); code != 404 {
		t.Errorf("diff from an unknown version = %d", code)
	}

	// Roll back to v1 with the ops token.
	code, body = h.post("/api/v1/config/rollback/"+v1, "Authorization", "Bearer "+ops)
	if code != http.StatusAccepted || !strings.Contains(body, `"version": "`+v1+`"`) {
		t.Fatalf("rollback = %d %s", code, body)
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != v1Text {
		t.Errorf("the file after the rollback: %q, %v", b, err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("the file's mode after the rollback: %v, %v", fi.Mode(), err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".meridian.yaml.rollback-*")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
	h.waitFor("the table back at v1", func() bool { return version() == v1 })
	if doc := h.historyDoc(def); len(doc.Entries) != 3 || doc.Entries[0].Version != v1 || doc.Entries[0].Previous != v2 {
		t.Errorf("history after the rollback: %+v", doc)
	}
	if code, _ := h.post("/api/v1/config/rollback/nope", "Authorization", "Bearer "+ops); code != 404 {
		t.Errorf("rollback to an unknown version = %d", code)
	}
	if code, _ := h.post("/api/v1/endpoints/p/127.0.0.1:9/drain", "Authorization", "Bearer "+def); code != 200 {
		t.Errorf("drain = %d", code)
	}

	// The audit log, in memory and in the file.
	es := h.auditDoc(def)
	if len(es) != 3 {
		t.Fatalf("audit entries: %+v", es)
	}
	if e := es[2]; e.Action != "rollback" || e.Target != v1 || e.Token != "ops" || e.Result != "ok" || e.Client != "127.0.0.1" {
		t.Errorf("rollback entry: %+v", e)
	}
	if e := es[1]; e.Action != "rollback" || e.Target != "nope" || e.Result != "not found" {
		t.Errorf("unknown rollback entry: %+v", e)
	}
	if e := es[0]; e.Action != "drain" || e.Target != "p/127.0.0.1:9" || e.Token != "default" || e.Result != "ok" || e.Detail != "state draining" {
		t.Errorf("drain entry: %+v", e)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Split(strings.TrimSpace(string(raw)), "\n"); len(lines) != 3 || !strings.Contains(lines[0], `"token":"ops"`) {
		t.Errorf("audit log file:\n%s", raw)
	}
	if strings.Contains(string(raw), "s3cret") {
		t.Errorf("a token is in the audit log:\n%s", raw)
	}
	if code, body := h.get("/api/v1/audit?limit=1", "Authorization", "Bearer "+ops); code != 200 || strings.Count(body, `"action"`) != 1 {
		t.Errorf("audit?limit=1 = %d %s", code, body)
	}
}

// TestHistoryFollowsCatalogVersions: a table rebuilt from the same config
// (here, a TLS file... or simply a recompile with other inputs) keeps one
// history entry, found by its new version too. Exercised directly on the
// hook, since the inputs that cause it need Consul or files.
func TestHistoryAliasOnRecompile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meridian.yaml")
	write(t, path, configText(1))
	a, err := New(Options{ConfigPath: path, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	live := a.live.Load()
	cp := *live
	cp.Version = "recompiled"
	a.recordConfig(&cp, nil, false)
	if a.adm.hist.Len() != 1 {
		t.Fatalf("%d entries", a.adm.hist.Len())
	}
	if e, ok := a.adm.hist.Get("recompiled"); !ok || e.Version != live.Version || string(e.Raw) != configText(1) {
		t.Errorf("Get(recompiled) = %+v, %v", e, ok)
	}
}

// TestRollbackConsulKV: the config lives in a Consul KV key; a rollback
// puts v1 back with a check-and-set and the instance follows the key. A
// token that may not touch the key is a 409.
func TestRollbackConsulKV(t *testing.T) {
	srv := consultest.New(t, consultest.Options{})
	const key = "meridian/config"
	srv.PutKV(key, []byte(configText(1)))
	h := start(t, "consul://"+key, func(o *Options) { o.ConsulAddr = srv.Addr })
	h.waitRoute("r1")
	v1 := h.table().Version
	srv.PutKV(key, []byte(configText(2)))
	h.waitRoute("r2")
	if doc := h.historyDoc(""); len(doc.Entries) != 2 || doc.Entries[1].Source != "consul://"+key {
		t.Fatalf("history: %+v", doc)
	}

	code, body := h.post("/api/v1/config/rollback/" + v1)
	if code != http.StatusAccepted {
		t.Fatalf("rollback = %d %s", code, body)
	}
	if b, ok := srv.KV(key); !ok || string(b) != configText(1) {
		t.Errorf("the key after the rollback: %q", b)
	}
	h.waitFor("the table back at v1", func() bool { return h.table().Version == v1 })
	if es := h.auditDoc(""); len(es) != 1 || es[0].Action != "rollback" || es[0].Token != "" || es[0].Result != "ok" {
		t.Errorf("audit: %+v", es)
	}

	srv.Fail(consultest.Fault{Code: 403, Path: "/v1/kv/" + key})
	code, body = h.post("/api/v1/config/rollback/" + v1)
	srv.ClearFaults()
	if code != http.StatusConflict || !strings.Contains(body, "not writable") {
		t.Errorf("rollback with a token that may not write = %d %s", code, body)
	}
}

// TestRollbackNotWritable: a source that refuses the write answers 409
// and is audited so.
func TestRollbackNotWritable(t *testing.T) {
	h := history.New(5)
	h.Add(history.Entry{Version: "v1", Raw: []byte("x")})
	au := audit.New(audit.Options{})
	var open atomic.Pointer[adminToken]
	open.Store(&adminToken{})
	a := &admin{hist: h, audit: au, logger: zap.NewNop(), token: &open,
		rollback: func(context.Context, history.Entry) error {
			return fmt.Errorf("%w: /etc/meridian.yaml: read-only file system", errNotWritable)
		}}
	rec := httptest.NewRecorder()
	a.handler().ServeHTTP(rec, httptest.NewRequest("POST", "/api/v1/config/rollback/v1", nil))
	if rec.Code != http.StatusConflict {
		t.Errorf("status %d, want 409", rec.Code)
	}
	if es := au.Entries(); len(es) != 1 || es[0].Result != "not writable" {
		t.Errorf("audit: %+v", es)
	}

	for _, err := range []error{&fs.PathError{Op: "open", Path: "x", Err: syscall.EACCES}, &fs.PathError{Op: "open", Path: "x", Err: syscall.EROFS}} {
		if !errors.Is(refused("x", err), errNotWritable) {
			t.Errorf("%v is not taken for a refusal", err)
		}
	}
	if errors.Is(refused("x", syscall.ENOSPC), errNotWritable) {
		t.Error("a full disk is taken for a refusal")
	}

	if os.Geteuid() != 0 { // root writes into a read-only directory
		dir := t.TempDir()
		path := filepath.Join(dir, "m.yaml")
		write(t, path, "a: 1\n")
		if err := os.Chmod(dir, 0o500); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.Chmod(dir, 0o700) })
		if err := fileSource(path).Write(context.Background(), []byte("a: 2\n")); !errors.Is(err, errNotWritable) {
			t.Errorf("write into a read-only directory: %v", err)
		}
	}
}

// TestRollbackFollowsSymlink: a config path that is a symlink keeps the
// link; its target is replaced.
func TestRollbackFollowsSymlink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "real.yaml")
	write(t, target, "a: 1\n")
	link := filepath.Join(dir, "meridian.yaml")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if err := fileSource(link).Write(context.Background(), []byte("a: 2\n")); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the link was replaced: %v %v", fi, err)
	}
	if b, _ := os.ReadFile(target); string(b) != "a: 2\n" {
		t.Errorf("target: %q", b)
	}
}

// TestNamedTokens: admin.tokens are accepted beside admin.token_file; an
// empty or unreadable one, a missing or duplicate name, or a token two
// files share rejects the config, at start and on reload, while the
// tokens in force stay.
func TestNamedTokens(t *testing.T) {
	dir := t.TempDir()
	writeTokens(t, dir)
	write(t, filepath.Join(dir, "empty.token"), " \n")
	write(t, filepath.Join(dir, "same.token"), "s3cret-ops")
	tok := func(name string) string { return filepath.Join(dir, name+".token") }

	for name, tc := range map[string]struct{ admin, want string }{
		"empty":            {fmt.Sprintf("admin: {tokens: [{name: a, file: %s}]}\n", tok("empty")), "admin.tokens[0].file: " + tok("empty") + ": empty token"},
		"missing file":     {fmt.Sprintf("admin: {tokens: [{name: a, file: %s}]}\n", tok("nope")), "admin.tokens[0].file: " + tok("nope") + ": no such file or directory"},
		"no file":          {"admin: {tokens: [{name: a}]}\n", "admin.tokens[0].file: missing"},
		"no name":          {fmt.Sprintf("admin: {tokens: [{file: %s}]}\n", tok("ops")), "admin.tokens[0].name: missing"},
		"default name":     {fmt.Sprintf("admin: {tokens: [{name: default, file: %s}]}\n", tok("ops")), `admin.tokens[0].name: "default"`},
		"duplicate name":   {fmt.Sprintf("admin: {tokens: [{name: a, file: %s}, {name: a, file: %s}]}\n", tok("ops"), tok("default")), `admin.tokens[1].name: duplicate token name "a"`},
		"same token":       {fmt.Sprintf("admin: {tokens: [{name: a, file: %s}, {name: b, file: %s}]}\n", tok("ops"), tok("same")), "admin.tokens[1].file: " + tok("same") + ": the same token as another token file"},
		"negative history": {"admin: {history: -1}\n", "admin.history: -1"},
		"audit log":        {fmt.Sprintf("admin: {audit_log: %s}\n", filepath.Join(dir, "no", "dir", "audit.log")), "admin.audit_log: " + filepath.Join(dir, "no", "dir", "audit.log") + ": no such file or directory"},
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "meridian.yaml")
			write(t, path, configText(1)+tc.admin)
			_, err := New(Options{ConfigPath: path, Logger: zap.NewNop()})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path+":9") && !strings.Contains(err.Error(), path+":10") {
				t.Errorf("New = %v, want %q at its line", err, tc.want)
			}
			if name == "audit log" {
				return // opened when applied, not by validate
			}
			if _, err := Check(path, []byte(configText(1)+tc.admin)); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Check = %v, want %q", err, tc.want)
			}
		})
	}

	t.Run("reload", func(t *testing.T) {
		path := filepath.Join(dir, "meridian.yaml")
		good := fmt.Sprintf("admin: {token_file: %s, tokens: [{name: ops, file: %s}]}\n", tok("default"), tok("ops"))
		write(t, path, configText(1)+good)
		h := start(t, path)
		for _, tk := range []string{"s3cret-default", "s3cret-ops"} {
			if code, _ := h.get("/api/v1/table", "Authorization", "Bearer "+tk); code != 200 {
				t.Errorf("token %q = %d", tk, code)
			}
		}
		for _, tk := range []string{"", "s3cret", "s3cret-ops2", "s3cret-defaults3cret-ops"} {
			if code, _ := h.get("/api/v1/table", "Authorization", "Bearer "+tk); code != 401 {
				t.Errorf("token %q = %d, want 401", tk, code)
			}
		}
		bad := fmt.Sprintf("admin: {token_file: %s, tokens: [{name: ops, file: %s}]}\n", tok("default"), tok("empty"))
		write(t, path, configText(2)+bad)
		h.waitFor("the reload rejected", func() bool {
			_, body := h.get("/api/v1/table", "Authorization", "Bearer s3cret-ops")
			return strings.Contains(body, "admin.tokens[0].file")
		})
		if code, _ := h.get("/api/v1/table", "Authorization", "Bearer s3cret-ops"); code != 200 {
			t.Errorf("the ops token in force was dropped: %d", code)
		}
		_, body := h.get("/api/v1/table", "Authorization", "Bearer s3cret-default")
		var doc tableJSON
		if err := json.Unmarshal([]byte(body), &doc); err != nil || len(doc.Routes) != 1 || doc.Routes[0].Name != "r1" {
			t.Errorf("the rejected config was applied: %v %+v", err, doc.Routes)
		}
	})
}
