package app

import (
	"context"
	"io"
	"net/http"
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
func BenchmarkFileReload2000Routes(b *testing.B) { benchFileReload(b, 2000) }

// BenchmarkFileReload10000Routes is the same with 10,000 routes.
func BenchmarkFileReload10000Routes(b *testing.B) { benchFileReload(b, 10000) }

func benchFileReload(b *testing.B, routes int) {
	dir := b.TempDir()
	path := filepath.Join(dir, "meridian.yaml")
	if err := os.WriteFile(path, []byte(configtest.Big(routes, 0, benchHead)), 0o644); err != nil {
		b.Fatal(err)
	}
	a := runBenchApp(b, path)
	// Let the watcher's first poke (made once the watch is in place) pass.
	time.Sleep(100 * time.Millisecond)

	texts := [2][]byte{[]byte(configtest.Big(routes, 1, benchHead)), []byte(configtest.Big(routes, 2, benchHead))}
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

// BenchmarkFirstRequestAfterReload10000Routes reloads a 10,000-route config
// (by rename) and times the first request the new table serves against the
// tenth. Compile, then swap, then serve: the proxy's state is built by the
// rebuild loop before the swap, so the first request does no building (it
// used to build every route's state and transport lookup, about 35 ms at
// 2,000 routes, while other requests waited). The request matches no route
// after scanning all of them (a 404 needs no upstream), so the figure is
// the handler's own cost.
func BenchmarkFirstRequestAfterReload10000Routes(b *testing.B) {
	const head = "listen: {admin: 127.0.0.1:0, http: 127.0.0.1:0}\nlog: {level: warn}\n"
	dir := b.TempDir()
	path := filepath.Join(dir, "meridian.yaml")
	if err := os.WriteFile(path, []byte(configtest.Big(10000, 0, head)), 0o644); err != nil {
		b.Fatal(err)
	}
	a := runBenchApp(b, path)
	time.Sleep(100 * time.Millisecond)
	url := "http://" + a.Addrs().HTTP + "/api/9999/x"
	client := &http.Client{}
	request := func() time.Duration {
		req, _ := http.NewRequest("GET", url, nil)
		req.Host = "h49.example.com"
		t0 := time.Now()
		res, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return time.Since(t0)
	}
	request() // a kept-alive connection for what follows
	texts := [2][]byte{[]byte(configtest.Big(10000, 1, head)), []byte(configtest.Big(10000, 2, head))}
	var first, tenth time.Duration
	n := 0
	for b.Loop() {
		before := a.live.Load().Version
		tmp := filepath.Join(dir, ".meridian.yaml.tmp")
		if err := os.WriteFile(tmp, texts[n%2], 0o644); err != nil {
			b.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			b.Fatal(err)
		}
		for a.live.Load().Version == before {
			time.Sleep(100 * time.Microsecond)
		}
		first += request()
		for range 8 {
			request()
		}
		tenth += request()
		n++
	}
	b.ReportMetric(float64(first.Microseconds())/float64(n), "µs/first-request")
	b.ReportMetric(float64(tenth.Microseconds())/float64(n), "µs/tenth-request")
}

// runBenchApp runs an App on path until the benchmark ends, and returns
// it once its listeners are bound.
func runBenchApp(b *testing.B, path string) *App {
	b.Helper()
	a, err := New(Options{ConfigPath: path, Logger: zap.NewNop()})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	b.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			b.Error(err)
		}
	})
	<-a.Ready()
	return a
}
