package routing

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meridian-lb/meridian/config"
	"github.com/meridian-lb/meridian/health"
)

// slowPool compiles a pool p of the endpoints with balance and slow_start
// (none when 0), and binds it to eng (a new engine when nil).
func slowPool(t testing.TB, eng *health.Engine, balance string, window time.Duration, endpoints ...string) (*Pool, *health.Engine) {
	t.Helper()
	y := "pools:\n  p:\n    balance: " + balance + "\n"
	if window > 0 {
		y += "    slow_start: " + window.String() + "\n"
	}
	y += "    endpoints: [" + strings.Join(endpoints, ", ") + "]\nservices:\n  s: {pools: [p]}\n"
	tb := compileYAML(t, y)
	if eng == nil {
		eng = health.New(health.Options{})
	}
	eng.Sync(tb.HealthSpecs())
	tb.BindHealth(eng)
	return tb.Pools["p"], eng
}

// fakeClock makes p's ramp read c.
func fakeClock(t testing.TB, p *Pool) *atomic.Int64 {
	t.Helper()
	if p.slow == nil {
		t.Fatal("the pool has no slow start")
	}
	var c atomic.Int64
	p.slow.now = c.Load
	return &c
}

// share is addr's share of n picks.
func share(p *Pool, addr string, n int) float64 {
	return float64(distribution(p, n, noKey)[addr]) / float64(n)
}

// bounce takes addr down and brings it back, as a health verdict would:
// it has returned.
func bounce(t testing.TB, eng *health.Engine, addr string) int64 {
	t.Helper()
	down(t, eng, addr)
	if err := eng.Override("p", addr, health.ActionEnable); err != nil {
		t.Fatal(err)
	}
	r := eng.Member("p", addr).ReturnedAt()
	if r == 0 {
		t.Fatalf("%s has not returned", addr)
	}
	return r
}

// TestSlowStartRamp: in a pool of two equal endpoints, the one that
// returned gets weight × max(10%, elapsed/window) until the window
// passes: its share rises from ~9% (0.1 against 1) to 50%, by the
// round_robin, least_request and random balancers alike.
func TestSlowStartRamp(t *testing.T) {
	const a, b = "127.0.0.1:1", "127.0.0.1:2"
	const window = 30 * time.Second
	steps := []struct {
		at   float64 // elapsed share of the window
		want float64 // b's share of picks: f/(1+f)
	}{
		{0, 0.1 / 1.1}, {0.05, 0.1 / 1.1}, {0.25, 0.25 / 1.25}, {0.5, 0.5 / 1.5}, {0.75, 0.75 / 1.75}, {1, 0.5}, {3, 0.5},
	}
	for _, balance := range []string{"round_robin", "least_request", "random"} {
		t.Run(balance, func(t *testing.T) {
			p, eng := slowPool(t, nil, balance, window, a, b)
			clock := fakeClock(t, p)
			start := bounce(t, eng, b)
			prev := 0.0
			for _, s := range steps {
				clock.Store(start + int64(s.at*float64(window)))
				got := share(p, b, 40000)
				if math.Abs(got-s.want) > 0.015 {
					t.Errorf("at %.0f%% of the window: share %.3f, want %.3f", s.at*100, got, s.want)
				}
				if got < prev-0.015 {
					t.Errorf("at %.0f%% of the window the share fell: %.3f after %.3f", s.at*100, got, prev)
				}
				prev = got
			}
		})
	}
}

// TestSlowStartOff: without slow_start, a returning endpoint gets its full
// share at once, and with it, the endpoints a pool starts with (and a pool
// whose returns are long past) are not ramped.
func TestSlowStartOff(t *testing.T) {
	const a, b = "127.0.0.1:1", "127.0.0.1:2"
	for _, balance := range []string{"round_robin", "least_request", "random"} {
		t.Run(balance, func(t *testing.T) {
			p, eng := slowPool(t, nil, balance, 0, a, b)
			if p.slow != nil {
				t.Fatal("a slow start without slow_start")
			}
			bounce(t, eng, b)
			if got := share(p, b, 20000); math.Abs(got-0.5) > 0.015 {
				t.Errorf("no slow_start: share %.3f just after the return, want 0.5", got)
			}

			p, _ = slowPool(t, nil, balance, time.Minute, a, b)
			if got := share(p, b, 20000); math.Abs(got-0.5) > 0.015 {
				t.Errorf("the pool's first table: share %.3f, want 0.5", got)
			}
		})
	}
	// Round robin outside a ramp is the schedule itself: exact and
	// smooth.
	p, eng := slowPool(t, nil, "round_robin", time.Minute, "{address: 127.0.0.1:1, weight: 3}", b)
	clock := fakeClock(t, p)
	clock.Store(bounce(t, eng, b) + int64(time.Minute))
	var order strings.Builder
	for range 8 {
		order.WriteString(p.Pick(0, false, nil, false).Address[len("127.0.0.1:"):])
	}
	if got := order.String(); got != "11211121" && got != "12111211" && got != "11121112" && got != "21112111" {
		t.Errorf("round robin after the window: %s, want the smooth 3:1 order", got)
	}
}

// TestSlowStartNewEndpoint: an endpoint added to a pool after its first
// table ramps from when it was added; a reload keeps the ramp going.
func TestSlowStartNewEndpoint(t *testing.T) {
	const a, b = "127.0.0.1:1", "127.0.0.1:2"
	_, eng := slowPool(t, nil, "round_robin", time.Minute, a)
	p, _ := slowPool(t, eng, "round_robin", time.Minute, a, b)
	added := eng.Member("p", b).ReturnedAt()
	if added == 0 || eng.Member("p", a).ReturnedAt() != 0 {
		t.Fatalf("returned: a %d, b %d; want b only", eng.Member("p", a).ReturnedAt(), added)
	}
	clock := fakeClock(t, p)
	clock.Store(added)
	if got := share(p, b, 20000); math.Abs(got-0.1/1.1) > 0.015 {
		t.Errorf("just added: share %.3f, want %.3f", got, 0.1/1.1)
	}
	// A reload: the same members, so the same ramp.
	p, _ = slowPool(t, eng, "round_robin", time.Minute, a, b)
	clock = fakeClock(t, p)
	clock.Store(added + int64(30*time.Second))
	if got := share(p, b, 20000); math.Abs(got-0.5/1.5) > 0.015 {
		t.Errorf("halfway, after a reload: share %.3f, want %.3f", got, 0.5/1.5)
	}
}

// TestSlowStartOnlyRamping: when the only eligible endpoints are ramping
// (the others down), they get every pick; a pick never fails for a ramp.
func TestSlowStartOnlyRamping(t *testing.T) {
	const a, b, c = "127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"
	p, eng := slowPool(t, nil, "round_robin", time.Minute, a, b, c)
	clock := fakeClock(t, p)
	start := bounce(t, eng, b)
	bounce(t, eng, c)
	down(t, eng, a)
	clock.Store(start)
	d := distribution(p, 10000, noKey)
	if d["<nil>"] != 0 || d[a] != 0 || d[b]+d[c] != 10000 || d[b] < 3000 || d[c] < 3000 {
		t.Errorf("picks %v, want b and c only, both", d)
	}
}

// TestSlowStartNeedsWeights: ring_hash and maglev cannot ramp; slow_start
// on them is a problem at its own path and line.
func TestSlowStartNeedsWeights(t *testing.T) {
	const text = `pools:
  a: {endpoints: [127.0.0.1:1], balance: maglev}
  b:
    endpoints: [127.0.0.1:2]
    balance: ring_hash
    slow_start: 30s
  c:
    endpoints: [127.0.0.1:3]
    balance: maglev
    slow_start: 1m
  d: {endpoints: [127.0.0.1:4], balance: least_request, slow_start: 10s}
services:
  s: {pools: [a, b, c, d]}
`
	cfg, err := config.Parse("c.yaml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Compile(cfg, Inputs{})
	var ce *config.Error
	if !errors.As(err, &ce) {
		t.Fatalf("Compile = %v, want a *config.Error", err)
	}
	want := `c.yaml:6: pools.b.slow_start: slow_start needs round_robin, least_request or random
c.yaml:10: pools.c.slow_start: slow_start needs round_robin, least_request or random`
	if err.Error() != want {
		t.Errorf("Compile:\n%v\nwant:\n%s", err, want)
	}
}

// BenchmarkPickSlowStart is BenchmarkPick for pools with slow_start: no
// endpoint ever returned (one atomic load more than without), a return
// past the window (and a read of the real clock), and one of 16 endpoints
// ramping.
func BenchmarkPickSlowStart(b *testing.B) {
	eps := make([]string, 16)
	for i := range eps {
		eps[i] = fmt.Sprintf("{address: 127.0.0.1:%d, weight: %d}", 1000+i, 1+i%3)
	}
	for _, balance := range []string{"round_robin", "random", "least_request"} {
		for _, state := range []string{"none-returned", "settled", "ramping"} {
			b.Run(balance+"/"+state, func(b *testing.B) {
				window := time.Minute
				if state == "settled" {
					window = time.Nanosecond // past by the first pick
				}
				p, eng := slowPool(b, nil, balance, window, eps...)
				switch state {
				case "settled":
					bounce(b, eng, "127.0.0.1:1005")
				case "ramping":
					start := bounce(b, eng, "127.0.0.1:1005")
					p.slow.now = func() int64 { return start + int64(20*time.Second) }
				}
				b.ReportAllocs()
				var i uint64
				for b.Loop() {
					i++
					if p.Pick(mix64(i), true, nil, false) == nil {
						b.Fatal("no endpoint")
					}
				}
			})
		}
	}
}
