package audit

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/meridian-lb/meridian/config"
)

func readLines(t *testing.T, path string) []Entry {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []Entry
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e Entry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		out = append(out, e)
	}
	return out
}

func TestRecordMemory(t *testing.T) {
	l := New(Options{Max: 3})
	for i := range 5 {
		l.Record(Entry{Client: "127.0.0.1", Token: "ops", Action: "drain", Target: fmt.Sprint("p/", i), Result: "ok"})
	}
	es := l.Entries()
	if len(es) != 3 || es[0].Target != "p/4" || es[2].Target != "p/2" {
		t.Fatalf("entries %+v, want the three newest, newest first", es)
	}
	if es[0].Time.IsZero() {
		t.Error("time not set")
	}
	if New(Options{}).max != config.DefaultAuditEntries {
		t.Error("default max")
	}
}

// TestFileAndReopen: entries are JSON lines appended to the file; after
// logrotate renames it, Reopen sends the next lines to a new file at the
// path.
func TestFileAndReopen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	if err := os.WriteFile(path, []byte(`{"action":"before"}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	l := New(Options{})
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	l.SetFile(path, f)
	if l.Path() != path {
		t.Errorf("Path %q", l.Path())
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	l.Record(Entry{Time: at, Client: "10.0.0.1", Token: "default", Action: "rollback", Target: "abc", Result: "ok", Detail: "wrote 10 bytes"})

	rotated := path + ".1"
	if err := os.Rename(path, rotated); err != nil {
		t.Fatal(err)
	}
	l.Record(Entry{Action: "drain", Result: "ok"}) // still the renamed file
	l.Reopen()
	l.Record(Entry{Action: "enable", Result: "ok"})

	old := readLines(t, rotated)
	if len(old) != 3 || old[0].Action != "before" || old[1] != (Entry{Time: at, Client: "10.0.0.1", Token: "default", Action: "rollback", Target: "abc", Result: "ok", Detail: "wrote 10 bytes"}) || old[2].Action != "drain" {
		t.Errorf("rotated file: %+v", old)
	}
	cur := readLines(t, path)
	if len(cur) != 1 || cur[0].Action != "enable" {
		t.Errorf("new file: %+v", cur)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("new file mode: %v %v", fi.Mode(), err)
	}

	// Reopen failing keeps the old file.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Chmod(dir, 0o700) })
	if os.Geteuid() != 0 { // root writes anywhere
		l.Reopen()
		l.Record(Entry{Action: "down", Result: "ok"})
		if len(l.Entries()) != 4 || l.Entries()[0].Action != "down" {
			t.Errorf("memory: %+v", l.Entries())
		}
	}
	_ = os.Chmod(dir, 0o700)

	l.SetFile("", nil)
	if l.Path() != "" {
		t.Error("SetFile(\"\", nil) kept the path")
	}
	l.Record(Entry{Action: "memory only"})
	if err := l.Close(); err != nil {
		t.Error(err)
	}
}

func TestRecordConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l := New(Options{Max: 50})
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	l.SetFile(path, f)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 100 {
				l.Record(Entry{Action: "drain", Target: fmt.Sprint(g, "/", i)})
				if i%10 == 0 {
					l.Reopen()
					_ = l.Entries()
				}
			}
		})
	}
	wg.Wait()
	_ = l.Close()
	if n := len(readLines(t, path)); n != 400 {
		t.Errorf("%d lines, want 400", n)
	}
	if n := len(l.Entries()); n != 50 {
		t.Errorf("%d in memory", n)
	}
}
