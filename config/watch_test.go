package config

import (
	"context"
	"os"
	"path/filepath"
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
