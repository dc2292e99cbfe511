package app

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/meridian-lb/meridian/config"
	"github.com/meridian-lb/meridian/internal/configtest"
	"github.com/meridian-lb/meridian/routing"
)

// benchHead keeps the benchmark's instance to its admin listener and quiet.
const benchHead = "listen: {admin: 127.0.0.1:0}\nlog: {level: warn}\n"

// BenchmarkFileReload2000Routes measures the reload budget as stated: from
// a config file being replaced (write a temporary file, rename it over the
// config, as editors and tools do) to the new table being served, with
// 2,000 routes. It includes the watcher (which pokes as soon as it sees
// the rename: the file is whole).
func BenchmarkFileReload2000Routes(b *testing.B) { benchFileReload(b, 2000) }

// BenchmarkFileReload10000Routes is the same with 10,000 routes.
func BenchmarkFileReload10000Routes(b *testing.B) { benchFileReload(b, 10000) }

func benchFileReload(b *testing.B, routes int) {
	dir := b.TempDir()
	path := filepath.Join(dir, "meridian.yaml")
	if err := os.WriteFile(path, []byte(configtest.Big(routes, 0, benchHead)), 0o644); err != nil {
		b.Fatal(err)
	}
	var ph phases
	a := runBenchApp(b, path, ph.hook)
	// Let the watcher's first poke (made once the watch is in place) pass.
	time.Sleep(100 * time.Millisecond)

	texts := [2][]byte{[]byte(configtest.Big(routes, 1, benchHead)), []byte(configtest.Big(routes, 2, benchHead))}
	var total, cpu, parse, compile, apply time.Duration
	n := 0
	for b.Loop() {
		before := a.live.Load().Version
		tmp := filepath.Join(dir, ".meridian.yaml.tmp")
		if err := os.WriteFile(tmp, texts[n%2], 0o644); err != nil {
			b.Fatal(err)
		}
		c0 := processCPU()
		t0 := time.Now()
		if err := os.Rename(tmp, path); err != nil {
			b.Fatal(err)
		}
		waitVersion(b, a, before, t0)
		total += time.Since(t0)
		cpu += processCPU() - c0
		parse += time.Duration(ph.compileStart.Load() - t0.UnixNano())
		compile += time.Duration(ph.compileEnd.Load() - ph.compileStart.Load())
		apply += time.Duration(ph.applyEnd.Load() - ph.applyStart.Load())
		n++
	}
	b.ReportMetric(float64(total.Microseconds())/1000/float64(n), "ms/reload")
	// Where the time goes: from the rename to the compile's start (the
	// watcher, reading and parsing), the compile (routing.Compile and the
	// proxy's), and applying the table (health, proxy install, DNS).
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(n) }
	b.ReportMetric(ms(parse), "parse-ms")
	b.ReportMetric(ms(compile), "compile-ms")
	b.ReportMetric(ms(apply), "apply-ms")
	// The process's CPU time over the reloads (all goroutines, the GC's
	// too): steadier than the wall time on a machine shared with other
	// work, and what a reload costs the cores the proxy serves on.
	if cpu > 0 {
		b.ReportMetric(float64(cpu.Microseconds())/1000/float64(n), "cpu-ms/reload")
	}
}

// waitVersion waits for a table other than the one of version before.
func waitVersion(b *testing.B, a *App, before string, t0 time.Time) {
	b.Helper()
	for a.live.Load().Version == before {
		if time.Since(t0) > 10*time.Second {
			b.Fatal("no new table in 10s")
		}
		time.Sleep(200 * time.Microsecond)
	}
}

// BenchmarkReloadMemory10000Routes reports what a 10,000-route config
// costs a running instance, per route: the Go heap in use and the
// process's resident set (VmRSS, Linux only), after collecting and
// returning freed memory, beyond the same instance serving a 10-route
// config; once after the first 10,000-route table, and again after 20
// more reloads (every route changed each time), which must not grow but
// for the config history, which keeps the accepted configs' bytes by
// design (up to admin.history of them, at most history.MaxTotalBytes):
// historyB/route is its share of the second figure. Run it with
// -benchtime 1x: each run is one instance. MERIDIAN_BENCH_RELOADS sets
// another number of reloads. With MERIDIAN_BENCH_HEAP_PROFILE set to a
// file name, it writes the heap profile of the instance after the reloads
// there, and after the first table to the name with ".first" added.
func BenchmarkReloadMemory10000Routes(b *testing.B) {
	const routes = 10000
	reloads := 20
	if n, err := strconv.Atoi(os.Getenv("MERIDIAN_BENCH_RELOADS")); err == nil && n > 0 {
		reloads = n
	}
	dir := b.TempDir()
	path := filepath.Join(dir, "meridian.yaml")
	if err := os.WriteFile(path, []byte(configtest.Big(10, 0, benchHead)), 0o644); err != nil {
		b.Fatal(err)
	}
	a := runBenchApp(b, path)
	time.Sleep(100 * time.Millisecond)
	settle := func() (heap, rss uint64) {
		runtime.GC()
		runtime.GC()
		debug.FreeOSMemory()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapInuse, residentBytes()
	}
	replace := func(text string) {
		before := a.live.Load().Version
		tmp := filepath.Join(dir, ".meridian.yaml.tmp")
		if err := os.WriteFile(tmp, []byte(text), 0o644); err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		if err := os.Rename(tmp, path); err != nil {
			b.Fatal(err)
		}
		waitVersion(b, a, before, t0)
	}
	texts := [2]string{configtest.Big(routes, 1, benchHead), configtest.Big(routes, 2, benchHead)}
	profile := func(suffix string) {
		out := os.Getenv("MERIDIAN_BENCH_HEAP_PROFILE")
		if out == "" {
			return
		}
		// What the instance holds now, for go tool pprof -sample_index=inuse_space.
		f, err := os.Create(out + suffix)
		if err != nil {
			b.Fatal(err)
		}
		if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
	for b.Loop() {
		heap0, rss0 := settle()
		hist0 := historyBytes(a)
		replace(texts[0])
		heap1, rss1 := settle()
		profile(".first")
		for i := range reloads {
			replace(texts[(i+1)%2])
		}
		heap2, rss2 := settle()
		profile("")
		perRoute := func(after, before uint64) float64 {
			return (float64(after) - float64(before)) / routes
		}
		b.ReportMetric(perRoute(heap1, heap0), "heapB/route")
		b.ReportMetric(perRoute(heap2, heap0), "heapB/route-after-reloads")
		b.ReportMetric(perRoute(historyBytes(a), hist0), "historyB/route")
		if rss0 > 0 {
			b.ReportMetric(perRoute(rss1, rss0), "rssB/route")
			b.ReportMetric(perRoute(rss2, rss0), "rssB/route-after-reloads")
			b.ReportMetric(float64(rss2)/(1<<20), "rss-MB")
		}
	}
}

// historyBytes is what the config history holds: the accepted configs'
// bytes.
func historyBytes(a *App) uint64 {
	var n uint64
	for _, s := range a.adm.hist.List() {
		n += uint64(s.Bytes)
	}
	return n
}

// residentBytes is the process's resident set (VmRSS), or 0 where
// /proc/self/status does not tell it.
func residentBytes() uint64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
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

// phases records when the rebuild loop last compiled and applied a table.
type phases struct {
	compileStart, compileEnd, applyStart, applyEnd atomic.Int64
}

// hook wraps a's compile and apply to record their times.
func (ph *phases) hook(a *App) {
	compile, apply := a.rebuild.compile, a.rebuild.apply
	a.rebuild.compile = func(cfg *config.Config) (*routing.Table, error) {
		ph.compileStart.Store(time.Now().UnixNano())
		defer func() { ph.compileEnd.Store(time.Now().UnixNano()) }()
		return compile(cfg)
	}
	a.rebuild.apply = func(cfg *config.Config, t *routing.Table) {
		ph.applyStart.Store(time.Now().UnixNano())
		defer func() { ph.applyEnd.Store(time.Now().UnixNano()) }()
		apply(cfg, t)
	}
}

// runBenchApp runs an App on path until the benchmark ends, and returns
// it once its listeners are bound. hooks run before it runs.
func runBenchApp(b *testing.B, path string, hooks ...func(*App)) *App {
	b.Helper()
	a, err := New(Options{ConfigPath: path, Logger: zap.NewNop()})
	if err != nil {
		b.Fatal(err)
	}
	for _, h := range hooks {
		h(a)
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
