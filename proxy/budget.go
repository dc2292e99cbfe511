package proxy

import (
	"sync/atomic"
	"time"
)

// Retry budget: retries may add at most budget_percent of a route's live
// requests over a sliding window (Finagle's retry budget), plus a floor of
// five retries a second so a quiet route can still retry. A failing pool
// therefore sees at most (1 + percent/100) times the traffic (plus the
// floor), never attempts+1 times.
const (
	budgetWindow  = 10 // seconds, one bucket each
	budgetMinimum = 50 // retries always allowed per window
)

type retryBudget struct {
	buckets [budgetWindow]budgetBucket
}

type budgetBucket struct {
	sec     atomic.Int64
	reqs    atomic.Int64
	retries atomic.Int64
}

// bucket returns the bucket of second now, clearing it when it last
// counted an older second. Counts racing with the clearing may be lost;
// the budget is a bound, not an invoice.
func (b *retryBudget) bucket(now int64) *budgetBucket {
	k := &b.buckets[uint64(now)%budgetWindow]
	if s := k.sec.Load(); s != now && k.sec.CompareAndSwap(s, now) {
		k.reqs.Store(0)
		k.retries.Store(0)
	}
	return k
}

// request counts one live request.
func (b *retryBudget) request(now time.Time) { b.bucket(now.Unix()).reqs.Add(1) }

// allow reports whether one more retry fits in the budget, and counts it
// when it does.
func (b *retryBudget) allow(now time.Time, percent float64) bool {
	sec := now.Unix()
	var reqs, retries int64
	for i := range b.buckets {
		k := &b.buckets[i]
		if s := k.sec.Load(); s > sec-budgetWindow && s <= sec {
			reqs += k.reqs.Load()
			retries += k.retries.Load()
		}
	}
	limit := max(int64(budgetMinimum), int64(float64(reqs)*percent/100))
	if retries >= limit {
		return false
	}
	b.bucket(sec).retries.Add(1)
	return true
}
