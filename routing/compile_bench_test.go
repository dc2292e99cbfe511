package routing

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/meridian-lb/meridian/config"
	"github.com/meridian-lb/meridian/internal/configtest"
)

// BenchmarkReload2000Routes measures what a reload costs before the new
// table is served: parse, validate and compile 2,000 routes.
func BenchmarkReload2000Routes(b *testing.B) {
	data := []byte(configtest.Big(2000, 0, ""))
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		cfg, err := config.Parse("big.yaml", data)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Compile(cfg, Inputs{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCompileRoutes measures Compile alone (the config is parsed once,
// outside the loop) at 2,000 and 10,000 routes, and reports the heap the
// compiled table keeps beyond its config, per route: what every reload
// adds to the process while old and new tables overlap, and what a serving
// instance holds. "big" is configtest.Big (host, path prefix and header
// regex per route, a maglev pool per ten routes, so pools weigh in);
// "paths" is path-prefix routes to one service, the routes alone.
func BenchmarkCompileRoutes(b *testing.B) {
	for _, shape := range []string{"big", "paths"} {
		for _, n := range []int{2000, 10000} {
			b.Run(fmt.Sprintf("%s/%d", shape, n), func(b *testing.B) {
				y := configtest.Big(n, 0, "")
				if shape == "paths" {
					y = scaleRoutesYAML("path", n)
				}
				cfg, err := config.Parse("bench.yaml", []byte(y))
				if err != nil {
					b.Fatal(err)
				}
				retained := retainedBytes(b, cfg)
				b.ReportAllocs()
				for b.Loop() {
					if _, err := Compile(cfg, Inputs{}); err != nil {
						b.Fatal(err)
					}
				}
				// After the loop: b.Loop's first call drops metrics
				// reported earlier.
				b.ReportMetric(float64(retained)/float64(n), "heapB/route")
			})
		}
	}
}

// retainedBytes is the live heap a table compiled from cfg keeps, measured
// between collections. Each side collects twice: what sync.Pools hold (the
// JSON encoder's buffers, say) survives one collection.
func retainedBytes(b *testing.B, cfg *config.Config) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&before)
	t, err := Compile(cfg, Inputs{})
	if err != nil {
		b.Fatal(err)
	}
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(t)
	if after.HeapAlloc < before.HeapAlloc {
		return 0
	}
	return after.HeapAlloc - before.HeapAlloc
}

// BenchmarkCompileRouteTable measures the routes' share of Compile alone
// (matchers and index), which the config hash running beside it hides in
// BenchmarkCompileRoutes on a busy machine.
func BenchmarkCompileRouteTable(b *testing.B) {
	for _, shape := range []string{"big", "paths", "hosts"} {
		for _, n := range []int{2000, 10000} {
			b.Run(fmt.Sprintf("%s/%d", shape, n), func(b *testing.B) {
				y := configtest.Big(n, 0, "")
				switch shape {
				case "paths":
					y = scaleRoutesYAML("path", n)
				case "hosts":
					y = scaleRoutesYAML("host", n)
				}
				cfg, err := config.Parse("bench.yaml", []byte(y))
				if err != nil {
					b.Fatal(err)
				}
				t, err := Compile(cfg, Inputs{})
				if err != nil {
					b.Fatal(err)
				}
				b.ReportAllocs()
				for b.Loop() {
					if _, err := compileRoutes(cfg, t.Services, &rollouts{}); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
