package config

import (
	"context"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
)

// TestWatcherIgnoresNeighbours checks that writes to other files in the
// config's directory (a log, an editor's swap file) do not poke, while a
// write to the config and a rename over it do.
func TestWatcherIgnoresNeighbours(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "meridian.yaml")
	if err := os.WriteFile(path, []byte("a"), 0o644); err != nil {
		t.Fatal(err)
	}
	pokes := make(chan struct{}, 100)
	w := &Watcher{Paths: []string{path}, Logger: zaptest.NewLogger(t)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx, func() { pokes <- struct{}{} }) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	<-pokes // the poke made once the watch is in place

	// A burst of writes to neighbours: no poke, however long one waits
	// (20 debounce periods here).
	for i := range 50 {
		if err := os.WriteFile(filepath.Join(dir, "access.log"), []byte{byte(i)}, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, ".meridian.yaml.swp"), []byte{byte(i)}, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-pokes:
		t.Fatal("a neighbour's write poked")
	case <-time.After(20 * DefaultDebounce):
	}

	if err := os.WriteFile(path, []byte("b"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitPoke(t, pokes, "a write to the config")

	tmp := filepath.Join(dir, ".meridian.yaml.tmp")
	if err := os.WriteFile(tmp, []byte("c"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	waitPoke(t, pokes, "a rename over the config")
}

func waitPoke(t *testing.T, pokes chan struct{}, what string) {
	t.Helper()
	select {
	case <-pokes:
	case <-time.After(10 * time.Second):
		t.Fatalf("no poke after %s", what)
	}
}

// TestWatcherReportsWritesInPlace: a write to the file itself (including a
// truncation, and a new file being written) calls Written; a file renamed
// into place does not, and calls Replaced, as a new file does.
func TestWatcherReportsWritesInPlace(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "meridian.yaml")
	if err := os.WriteFile(path, []byte("a"), 0o644); err != nil {
		t.Fatal(err)
	}
	pokes := make(chan struct{}, 100)
	var written, replaced atomic.Int64
	w := &Watcher{Paths: []string{path}, Logger: zaptest.NewLogger(t),
		Written: func() { written.Add(1) }, Replaced: func() { replaced.Add(1) }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx, func() { pokes <- struct{}{} }) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	<-pokes

	// Replacements: the poke comes, and no write was reported.
	tmp := filepath.Join(dir, ".meridian.yaml.tmp")
	if err := os.WriteFile(tmp, []byte("b"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	waitPoke(t, pokes, "a rename over the config")
	if n := written.Load(); n != 0 {
		t.Errorf("a rename reported %d writes in place", n)
	}
	if replaced.Load() == 0 {
		t.Error("a rename was not reported as a replacement")
	}

	// In place: truncate, then write.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("c")); err != nil {
		t.Fatal(err)
	}
	f.Close()
	replaced.Store(0)
	waitPoke(t, pokes, "a write in place")
	if written.Load() == 0 {
		t.Error("a write in place was not reported")
	}
	if n := replaced.Load(); n != 0 {
		t.Errorf("a write in place reported %d replacements", n)
	}

	// A new file written where the old one was removed is written in place
	// too: a reader must not take it as whole.
	written.Store(0)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("d"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitPoke(t, pokes, "a new file written")
	for written.Load() == 0 || replaced.Load() == 0 {
		// The events may trail the remove's poke: wait for the next.
		waitPoke(t, pokes, "the new file's events")
	}
}
