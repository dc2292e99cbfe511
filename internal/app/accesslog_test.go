package app

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"
)

// accessLogConfig is configText(n) with the access log going to logPath.
func accessLogConfig(n int, logPath string) string {
	return configText(n) + "http: {access_log: {to: " + logPath + "}}\n"
}

// TestAccessLogFileProblems: an access log file that cannot be opened
// fails the start, and a reload to one keeps the last good config, with
// the problem at its line either way.
func TestAccessLogFileProblems(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "meridian.yaml")
	bad := filepath.Join(dir, "missing-dir", "access.log")

	write(t, path, accessLogConfig(1, bad))
	if _, err := New(Options{ConfigPath: path, Logger: zap.NewNop()}); err == nil ||
		!strings.Contains(err.Error(), "meridian.yaml:9: http.access_log.to: open "+bad) {
		t.Fatalf("New = %v, want the problem at http.access_log.to with its line", err)
	}

	good := filepath.Join(dir, "access.log")
	write(t, path, accessLogConfig(1, good))
	h := start(t, path)
	h.waitRoute("r1")
	write(t, path, accessLogConfig(2, bad))
	h.waitFor("failed reload", func() bool { return !h.table().LastReload.OK })
	doc := h.table()
	if doc.Routes[0].Name != "r1" || !strings.Contains(doc.LastReload.Error, "meridian.yaml:9: http.access_log.to") {
		t.Errorf("routes %+v, last reload %q", doc.Routes, doc.LastReload.Error)
	}
	if _, err := os.Stat(good); err != nil {
		t.Errorf("the good file: %v", err)
	}
	h.app.ReopenLogs() // returns at once whatever the files
}
