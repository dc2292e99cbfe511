package app

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/meridian-lb/meridian/internal/configtest"
)

// benchHead keeps the benchmark's instance to its admin listener and quiet.
const benchHead = "listen: {admin: 127.0.0.1:0}\nlog: {level: warn}\n"

// BenchmarkFileReload2000Routes measures the reload budget as stated: from
// a config file being replaced (write a temporary file, rename it over the
// config, as editors and tools do) to the new table being served, with
// 2,000 routes. It includes the watcher's debounce.
func BenchmarkFileReload2000Routes(b *testing.B) {
	dir := b.TempDir()
	path := filepath.Join(dir, "meridian.yaml")
	if err := os.WriteFile(path, []byte(configtest.Big(2000, 0, benchHead)), 0o644); err != nil {
		b.Fatal(err)
	}
	a, err := New(Options{ConfigPath: path, Logger: zap.NewNop()})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			b.Error(err)
		}
	}()
	<-a.Ready()
	// Let the watcher's first poke (made once the watch is in place) pass.
	time.Sleep(100 * time.Millisecond)

	texts := [2][]byte{[]byte(configtest.Big(2000, 1, benchHead)), []byte(configtest.Big(2000, 2, benchHead))}
	var total time.Duration
	n := 0
	for b.Loop() {
		before := a.live.Load().Version
		tmp := filepath.Join(dir, ".meridian.yaml.tmp")
		if err := os.WriteFile(tmp, texts[n%2], 0o644); err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		if err := os.Rename(tmp, path); err != nil {
			b.Fatal(err)
		}
		for a.live.Load().Version == before {
			if time.Since(t0) > 10*time.Second {
				b.Fatal("no new table in 10s")
			}
			time.Sleep(200 * time.Microsecond)
		}
		total += time.Since(t0)
		n++
	}
	b.ReportMetric(float64(total.Microseconds())/1000/float64(n), "ms/reload")
}
