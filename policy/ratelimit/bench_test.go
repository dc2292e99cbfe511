package ratelimit_test

import (
	"net/http"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meridian-lb/meridian/policy/ratelimit"
)

func keys(n int) []string {
	ks := make([]string, n)
	for i := range ks {
		// The shape of the proxy's client_ip key: 16 bytes of address.
		ks[i] = "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\xff\xff" + string([]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
	}
	return ks
}

// BenchmarkTake is Take from all Ps at once (b.RunParallel), on one hot
// key, on 10k keys that all fit, and on 1M keys through a 64k Limiter,
// where nearly every Take evicts (the churn of a scan or of spoofed
// keys).
func BenchmarkTake(b *testing.B) {
	spec := ratelimit.Spec{Requests: 100, Per: time.Second, Burst: 100, MaxKeys: 65536}
	for _, bc := range []struct {
		name string
		keys int
	}{{"keys=1", 1}, {"keys=10k", 10_000}, {"keys=1M,max=64k", 1 << 20}} {
		b.Run(bc.name, func(b *testing.B) {
			ks := keys(bc.keys)
			l := ratelimit.New(spec)
			base := time.Now()
			var g atomic.Int64
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				// Each goroutine picks keys at random (xorshift, seeded
				// apart), so with 1M keys in 64k buckets 15 Takes in 16
				// evict.
				x := uint64(g.Add(1)) * 0x9e3779b97f4a7c15
				for i := 0; pb.Next(); i++ {
					x ^= x << 13
					x ^= x >> 7
					x ^= x << 17
					l.Take(ks[x%uint64(len(ks))], base.Add(time.Duration(i)), 1)
				}
			})
			if n := l.Len(); n > spec.MaxKeys {
				b.Fatalf("Len %d", n)
			}
		})
	}
}

// BenchmarkBytesPerKey reports the heap a full 64k-key Limiter holds per
// key (B/key), and the ns of a sequential Take that finds its key. It
// offers 4× MaxKeys keys: with 64 shards, 64k keys alone leave some
// shards short of full while others already evict.
func BenchmarkBytesPerKey(b *testing.B) {
	const n = 65536
	ks := keys(4 * n)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	l := ratelimit.New(ratelimit.Spec{Requests: 100, Per: time.Second, Burst: 100, MaxKeys: n})
	now := time.Now()
	for _, k := range ks {
		l.Take(k, now, 1)
	}
	// The last n/2 keys: about 512 a shard, all within each shard's
	// 1024 most recent, so all tracked.
	ks = ks[len(ks)-n/2:]
	runtime.GC()
	runtime.ReadMemStats(&after)
	if l.Len() != n {
		b.Fatalf("Len %d", l.Len())
	}
	b.ResetTimer()
	for i := range b.N {
		l.Take(ks[i%len(ks)], now, 1)
	}
	b.StopTimer()
	runtime.KeepAlive(l)
	runtime.KeepAlive(ks)
	// After the loop: ResetTimer drops metrics reported before it.
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "B/key")
}

func BenchmarkSetHeaders(b *testing.B) {
	for _, allowed := range []bool{true, false} {
		b.Run("allowed="+strconv.FormatBool(allowed), func(b *testing.B) {
			d := ratelimit.Decision{Allowed: allowed, Limit: 100, Remaining: 42, Reset: 17 * time.Second, RetryAfter: time.Second, Window: time.Minute}
			if !allowed {
				d.Remaining = 0
			}
			h := http.Header{}
			b.ReportAllocs()
			for b.Loop() {
				d.SetHeaders(h, "api")
			}
		})
	}
}
