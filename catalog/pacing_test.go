package catalog

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestBackoffBounded(t *testing.T) {
	base, maxB := 100*time.Millisecond, 2*time.Second
	p := newPacing(0, 0, 0, base, maxB)
	t.Run("jitter extremes", func(t *testing.T) {
		lowest, highest := p, p
		lowest.jitter = func(int64) int64 { return 0 }
		highest.jitter = func(n int64) int64 { return n - 1 }
		for failures, want := range map[int][2]time.Duration{
			1:   {50 * time.Millisecond, 100 * time.Millisecond},
			2:   {100 * time.Millisecond, 200 * time.Millisecond},
			3:   {200 * time.Millisecond, 400 * time.Millisecond},
			5:   {800 * time.Millisecond, 1600 * time.Millisecond},
			6:   {time.Second, 2 * time.Second},
			100: {time.Second, 2 * time.Second},
		} {
			if lo, hi := lowest.backoff(failures), highest.backoff(failures); lo != want[0] || hi != want[1] {
				t.Errorf("backoff(%d) in [%v, %v], want [%v, %v]", failures, lo, hi, want[0], want[1])
			}
		}
	})
	t.Run("random jitter stays in bounds", func(t *testing.T) {
		p.jitter = rand.New(rand.NewPCG(1, 2)).Int64N
		for failures := 1; failures < 200; failures++ {
			if d := p.backoff(failures); d < base/2 || d > maxB {
				t.Fatalf("backoff(%d) = %v outside [%v, %v]", failures, d, base/2, maxB)
			}
		}
	})
}

func TestNewPacingDefaults(t *testing.T) {
	p := newPacing(0, 0, 0, 0, 0)
	if p.minInterval != DefaultMinInterval || p.waitTime != DefaultWaitTime || p.backoffBase != DefaultBackoffBase || p.backoffMax != DefaultBackoffMax {
		t.Errorf("defaults = %+v", p)
	}
	if want := DefaultWaitTime + DefaultWaitTime/16 + requestSlack; p.timeout != want {
		t.Errorf("timeout = %v, want %v", p.timeout, want)
	}
	if got := p.requestTimeout(0); got != requestSlack {
		t.Errorf("first-query timeout = %v, want %v", got, requestSlack)
	}
	if got := p.requestTimeout(7); got != p.timeout {
		t.Errorf("blocking-query timeout = %v, want %v", got, p.timeout)
	}
	if q := newPacing(0, 0, 0, time.Second, time.Millisecond); q.backoffMax != time.Second {
		t.Errorf("max below base not raised: %v", q.backoffMax)
	}
}

func TestNextIndex(t *testing.T) {
	tests := []struct {
		name      string
		prev, got uint64
		next      uint64
		maybeNew  bool
	}{
		{"first answer", 0, 42, 42, true},
		{"advanced", 42, 50, 50, true},
		{"unchanged", 42, 42, 42, false},
		{"went backwards resets to 0", 42, 7, 0, true},
		{"zero becomes 1", 0, 0, 1, true},
		{"zero after 1 is not a reset", 1, 0, 1, true},
		{"zero after a high index is not a reset", 42, 0, 1, true},
		{"first answer after reset", 0, 7, 7, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			next, maybeNew := nextIndex(tc.prev, tc.got)
			if next != tc.next || maybeNew != tc.maybeNew {
				t.Errorf("nextIndex(%d, %d) = %d, %v; want %d, %v", tc.prev, tc.got, next, maybeNew, tc.next, tc.maybeNew)
			}
		})
	}
}
