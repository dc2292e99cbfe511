package ratelimit_test

import (
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meridian-lb/meridian/policy/ratelimit"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func at(ns int64) time.Time { return t0.Add(time.Duration(ns)) }

// want checks the fields of d that a test states; RetryAfter is checked
// always, since it must be 0 when allowed.
func want(t *testing.T, step string, d ratelimit.Decision, allowed bool, remaining int, reset, retry time.Duration) {
	t.Helper()
	if d.Allowed != allowed || d.Remaining != remaining || d.Reset != reset || d.RetryAfter != retry {
		t.Fatalf("%s: got allowed=%v remaining=%d reset=%v retry=%v, want %v %d %v %v",
			step, d.Allowed, d.Remaining, d.Reset, d.RetryAfter, allowed, remaining, reset, retry)
	}
}

func TestBurstRefusalRefill(t *testing.T) {
	l := ratelimit.New(ratelimit.Spec{Requests: 3, Per: time.Second, Burst: 3, MaxKeys: 10})
	// One token is 1s/3 = 333333333.3ns: waits round up to the ns.
	want(t, "1st", l.Take("k", at(0), 1), true, 2, 333333334, 0)
	want(t, "2nd", l.Take("k", at(0), 1), true, 1, 666666667, 0)
	want(t, "3rd", l.Take("k", at(0), 1), true, 0, time.Second, 0)
	want(t, "4th refused", l.Take("k", at(0), 1), false, 0, time.Second, 333333334)
	// A refused Take takes nothing: the wait is unchanged by retrying.
	want(t, "5th refused", l.Take("k", at(0), 1), false, 0, time.Second, 333333334)
	// 1ns before the token: 999999999/1e9 of it, still refused.
	want(t, "just before", l.Take("k", at(333333333), 1), false, 0, 666666667, 1)
	// The token arrives: allowed, 2/3e9 of the next one left over.
	want(t, "token", l.Take("k", at(333333334), 1), true, 0, time.Second, 0)
	// (1e9-2)/3 ns until the next one, rounded up.
	want(t, "after", l.Take("k", at(333333334), 1), false, 0, time.Second, 333333333)
	// A long idle refills to the burst and no further.
	want(t, "idle", l.Take("k", at(int64(time.Hour)), 1), true, 2, 333333334, 0)

	d := l.Take("other", at(0), 1)
	if d.Limit != 3 || d.Window != time.Second || d.Remaining != 2 {
		t.Fatalf("other key: %+v", d)
	}
}

func TestBurstAboveRate(t *testing.T) {
	l := ratelimit.New(ratelimit.Spec{Requests: 1, Per: time.Minute, Burst: 5, MaxKeys: 10})
	for i := 4; i >= 0; i-- {
		want(t, fmt.Sprint("take ", 5-i), l.Take("k", at(0), 1), true, i, time.Duration(5-i)*time.Minute, 0)
	}
	want(t, "refused", l.Take("k", at(0), 1), false, 0, 5*time.Minute, time.Minute)
	want(t, "after 90s", l.Take("k", at(int64(90*time.Second)), 1), true, 0, 5*time.Minute-30*time.Second, 0)
	want(t, "refused again", l.Take("k", at(int64(90*time.Second)), 1), false, 0, 5*time.Minute-30*time.Second, 30*time.Second)
}

// TestNoDrift polls a drained bucket every millisecond for 100 seconds:
// rates that are no whole number of ns per token must still give exactly
// Requests per Per. The burst is above what a millisecond earns, so the
// bucket is never full and nothing is capped away.
func TestNoDrift(t *testing.T) {
	for _, tc := range []struct {
		r   int
		per time.Duration
	}{{1, time.Second}, {3, time.Second}, {7, time.Second}, {1000, time.Second}, {9973, time.Second}, {3, 700 * time.Millisecond}} {
		l := ratelimit.New(ratelimit.Spec{Requests: tc.r, Per: tc.per, Burst: tc.r + 1, MaxKeys: 1})
		for l.Take("k", at(0), 1).Allowed { // drain the burst
		}
		allowed := 0
		const total = 100 * time.Second
		for ms := int64(1); ms <= total.Milliseconds(); ms++ {
			for l.Take("k", at(ms*int64(time.Millisecond)), 1).Allowed {
				allowed++
			}
		}
		if want := int(int64(tc.r) * int64(total) / int64(tc.per)); allowed != want {
			t.Errorf("%d per %v over %v: allowed %d, want %d", tc.r, tc.per, total, allowed, want)
		}
	}
}

// TestFullBucketDropsEarnings: a full bucket earns nothing, so polling a
// burst-1 bucket late loses the time between its token arriving and the
// poll; that is the token bucket's definition, not drift.
func TestFullBucketDropsEarnings(t *testing.T) {
	l := ratelimit.New(ratelimit.Spec{Requests: 1, Per: time.Second, Burst: 1, MaxKeys: 1})
	want(t, "first", l.Take("k", at(0), 1), true, 0, time.Second, 0)
	// Full at 1s; 1.5s later only the one token, and the next is a whole
	// second away again, not half of one.
	want(t, "late", l.Take("k", at(int64(2500*time.Millisecond)), 1), true, 0, time.Second, 0)
	want(t, "refused", l.Take("k", at(int64(2500*time.Millisecond)), 1), false, 0, time.Second, time.Second)
}

func TestFleetDivisor(t *testing.T) {
	spec := ratelimit.Spec{Requests: 10, Per: time.Second, Burst: 10, MaxKeys: 10}
	l := ratelimit.New(spec)
	// A fleet of 3: each instance allows 10/3 = 3 per second, burst 3.
	for i := 2; i >= 0; i-- {
		d := l.Take("k", at(0), 3)
		if !d.Allowed || d.Limit != 3 || d.Remaining != i {
			t.Fatalf("fleet of 3, take %d: %+v", 3-i, d)
		}
	}
	want(t, "fleet refused", l.Take("k", at(0), 3), false, 0, time.Second, 333333334)

	// div < 1 counts as 1.
	for _, div := range []int{0, -5, 1} {
		d := ratelimit.New(spec).Take("k", at(0), div)
		if d.Limit != 10 || d.Remaining != 9 {
			t.Errorf("div %d: %+v", div, d)
		}
	}
	// A fleet larger than the limit still allows 1 per Per, burst 1.
	d := ratelimit.New(spec).Take("k", at(0), 100)
	if !d.Allowed || d.Limit != 1 || d.Remaining != 0 || d.Reset != time.Second {
		t.Errorf("div 100: %+v", d)
	}

	// The fleet growing under a full bucket caps it at the new burst.
	l = ratelimit.New(spec)
	want(t, "alone", l.Take("k", at(0), 1), true, 9, 100*time.Millisecond, 0)
	want(t, "fleet of 2", l.Take("k", at(0), 2), true, 4, 200*time.Millisecond, 0)
	// And shrinking back lets it fill to the larger burst again.
	want(t, "alone again", l.Take("k", at(int64(time.Second)), 1), true, 9, 100*time.Millisecond, 0)
}

func TestEvictionBound(t *testing.T) {
	for _, max := range []int{1, 3, 100, 1000, 5000} {
		l := ratelimit.New(ratelimit.Spec{Requests: 1, Per: time.Second, Burst: 1, MaxKeys: max})
		for i := range 20 * max {
			l.Take(fmt.Sprint("key", i), at(0), 1)
			if n := l.Len(); n > max {
				t.Fatalf("max %d: Len %d after %d keys", max, n, i+1)
			}
		}
		if n := l.Len(); n != max {
			t.Errorf("max %d: Len %d after %d keys, want it full", max, n, 20*max)
		}
	}
}

func TestLRUOrder(t *testing.T) {
	l := ratelimit.New(ratelimit.Spec{Requests: 1, Per: time.Hour, Burst: 5, MaxKeys: 3})
	take := func(key string, remaining int) {
		t.Helper()
		if d := l.Take(key, at(0), 1); d.Remaining != remaining {
			t.Fatalf("%s: remaining %d, want %d", key, d.Remaining, remaining)
		}
	}
	take("a", 4)
	take("b", 4)
	take("c", 4)
	take("a", 3) // a is now the most recent: order a c b
	take("d", 4) // evicts b, the least recently used: d a c
	take("a", 2) // a survived: a d c
	take("c", 3) // c survived: c a d
	take("b", 4) // b was forgotten, so it is back with a full bucket: evicts d
	take("d", 4) // d was forgotten too: evicts a
	take("c", 2)
	if n := l.Len(); n != 3 {
		t.Fatalf("Len %d, want 3", n)
	}
}

// TestRecentKeySurvivesChurn: with several shards the LRU is per shard; a
// key used between every other new key must never be evicted.
func TestRecentKeySurvivesChurn(t *testing.T) {
	l := ratelimit.New(ratelimit.Spec{Requests: 1, Per: time.Hour, Burst: 1000, MaxKeys: 4096})
	for i := range 100_000 {
		l.Take(fmt.Sprint("churn", i), at(0), 1)
		if i%100 == 0 {
			if d := l.Take("hot", at(0), 1); d.Remaining != 999-i/100 {
				t.Fatalf("after %d keys the hot key has %d left, want %d", i, d.Remaining, 999-i/100)
			}
		}
	}
}

func TestTimeBackwards(t *testing.T) {
	l := ratelimit.New(ratelimit.Spec{Requests: 1, Per: time.Second, Burst: 1, MaxKeys: 1})
	want(t, "first", l.Take("k", at(int64(time.Second)), 1), true, 0, time.Second, 0)
	// An earlier now (a goroutine that read the clock first but locked
	// last) refills nothing and does not move the bucket's time back.
	want(t, "earlier", l.Take("k", at(0), 1), false, 0, time.Second, time.Second)
	want(t, "after 1s", l.Take("k", at(int64(2*time.Second)), 1), true, 0, time.Second, 0)
}

func TestExtremeSpec(t *testing.T) {
	l := ratelimit.New(ratelimit.Spec{Requests: math.MaxInt, Per: math.MaxInt64, Burst: math.MaxInt, MaxKeys: 1})
	d := l.Take("k", at(0), 1)
	if !d.Allowed || d.Remaining != math.MaxInt-1 || d.Reset != 1 {
		t.Fatalf("huge rate: %+v", d)
	}
	l = ratelimit.New(ratelimit.Spec{Requests: 1, Per: math.MaxInt64, Burst: math.MaxInt, MaxKeys: 1})
	d = l.Take("k", at(0), 1)
	if !d.Allowed || d.Reset != math.MaxInt64 {
		t.Fatalf("huge burst, slow rate: %+v", d)
	}
	// Times far apart (more than MaxInt64 ns) saturate, and fill the bucket.
	l = ratelimit.New(ratelimit.Spec{Requests: 1, Per: time.Second, Burst: 2, MaxKeys: 1})
	l.Take("k", time.Time{}, 1)
	l.Take("k", time.Time{}, 1)
	if d := l.Take("k", t0.AddDate(1000, 0, 0), 1); d.Remaining != 1 {
		t.Fatalf("after 1000 years: %+v", d)
	}
}

func TestNewPanicsOnInvalid(t *testing.T) {
	ok := ratelimit.Spec{Requests: 1, Per: time.Second, Burst: 1, MaxKeys: 1}
	for _, s := range []ratelimit.Spec{
		{Requests: 0, Per: time.Second, Burst: 1, MaxKeys: 1},
		{Requests: 1, Per: 0, Burst: 1, MaxKeys: 1},
		{Requests: 1, Per: time.Second, Burst: 0, MaxKeys: 1},
		{Requests: 1, Per: time.Second, Burst: 1, MaxKeys: 0},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("New(%+v) did not panic", s)
				}
			}()
			ratelimit.New(s)
		}()
	}
	if got := ratelimit.New(ok).Spec(); got != ok {
		t.Errorf("Spec() = %+v, want %+v", got, ok)
	}
}

// TestConcurrentOneKey hammers one key from many goroutines on a shared
// fake clock that advances one step per Take. Whatever order they reach
// the lock in, the Takes allowed plus what is left at the end must be
// exactly the burst plus the tokens earned by the last time seen. The
// clock is slow enough (under one token per G steps) that the bucket
// never sits full after the start, where earnings would be capped.
func TestConcurrentOneKey(t *testing.T) {
	const (
		G     = 8
		M     = 5000
		step  = time.Millisecond
		burst = 5
	)
	l := ratelimit.New(ratelimit.Spec{Requests: 1, Per: 100 * step, Burst: burst, MaxKeys: 16})
	var clock, allowed atomic.Int64
	if !l.Take("k", at(0), 1).Allowed { // creates the bucket at time 0
		t.Fatal("first take refused")
	}
	allowed.Add(1)
	var wg sync.WaitGroup
	for range G {
		wg.Go(func() {
			n := 0
			for range M {
				i := clock.Add(1)
				if l.Take("k", at(i*int64(step)), 1).Allowed {
					n++
				}
				// Other keys in the same (single) shard move "k" in the
				// LRU; they never evict it, as at most G of them come
				// between two Takes of "k" and the shard holds 16.
				l.Take(fmt.Sprint("noise", i%64), at(i*int64(step)), 1)
			}
			allowed.Add(int64(n))
		})
	}
	wg.Wait()
	end := clock.Load()
	for l.Take("k", at(end*int64(step)), 1).Allowed {
		allowed.Add(1)
	}
	if want := burst + end/100; allowed.Load() != want {
		t.Fatalf("allowed %d over %d steps, want burst %d + %d earned = %d", allowed.Load(), end, burst, end/100, want)
	}
}

// TestConcurrentManyKeys churns keys from many goroutines while Len is
// read: the bound holds at every moment, not just at rest.
func TestConcurrentManyKeys(t *testing.T) {
	const max = 1000
	l := ratelimit.New(ratelimit.Spec{Requests: 10, Per: time.Second, Burst: 10, MaxKeys: max})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 20_000 {
				l.Take(fmt.Sprint(g, "/", i%3000), at(int64(i)), 1)
			}
		})
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if n := l.Len(); n > max {
				t.Errorf("Len %d > %d", n, max)
				return
			}
		}
	}()
	wg.Wait()
	close(stop)
	<-done
	if n := l.Len(); n != max {
		t.Errorf("Len %d at rest, want %d", n, max)
	}
}
