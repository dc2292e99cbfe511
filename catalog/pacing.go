package catalog

import (
	"context"
	"math/rand/v2"
	"time"
)

// Defaults for the blocking-query loops (watcher and KV source).
const (
	DefaultMinInterval = 100 * time.Millisecond
	DefaultWaitTime    = 5 * time.Minute
	DefaultBackoffBase = 500 * time.Millisecond
	DefaultBackoffMax  = 30 * time.Second
	// requestSlack is added to WaitTime (plus Consul's wait/16 jitter) to
	// form the default per-request timeout, so a hung agent is detected.
	requestSlack = 10 * time.Second
)

// pacing holds the timing knobs of one blocking-query loop.
type pacing struct {
	minInterval time.Duration // floor between the starts of two successful calls
	waitTime    time.Duration // ?wait= sent to Consul
	timeout     time.Duration // whole-request deadline
	backoffBase time.Duration
	backoffMax  time.Duration
	jitter      func(n int64) int64 // uniform in [0, n); rand.Int64N unless a test sets it
}

func newPacing(minInterval, waitTime, timeout, base, maxBackoff time.Duration) pacing {
	p := pacing{
		minInterval: minInterval,
		waitTime:    waitTime,
		timeout:     timeout,
		backoffBase: base,
		backoffMax:  maxBackoff,
		jitter:      rand.Int64N,
	}
	if p.minInterval <= 0 {
		p.minInterval = DefaultMinInterval
	}
	if p.waitTime <= 0 {
		p.waitTime = DefaultWaitTime
	}
	if p.timeout <= 0 {
		p.timeout = p.waitTime + p.waitTime/16 + requestSlack
	}
	if p.backoffBase <= 0 {
		p.backoffBase = DefaultBackoffBase
	}
	if p.backoffMax <= 0 {
		p.backoffMax = DefaultBackoffMax
	}
	if p.backoffMax < p.backoffBase {
		p.backoffMax = p.backoffBase
	}
	return p
}

// backoff returns the delay before retry number failures (1 for the first
// retry): exponential from backoffBase, capped at backoffMax, with "equal
// jitter" so a fleet restarted together does not retry in lock-step. The
// result is always within [min(base, max)/2, max].
func (p pacing) backoff(failures int) time.Duration {
	d := p.backoffBase
	for i := 1; i < failures && d < p.backoffMax; i++ {
		d *= 2
	}
	d = min(d, p.backoffMax)
	half := d / 2
	if half <= 0 {
		return d
	}
	return half + time.Duration(p.jitter(int64(d-half)+1))
}

// requestTimeout bounds one query: a blocking one (index > 0) gets the
// whole timeout, a non-blocking one (the first query, or after an index
// reset) at most requestSlack, so a hung agent is noticed quickly at start.
func (p pacing) requestTimeout(index uint64) time.Duration {
	if index == 0 {
		return min(p.timeout, requestSlack)
	}
	return p.timeout
}

// sleepUntil waits until t or until ctx ends; it reports false when ctx
// ended first.
func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}

// nextIndex applies Consul's blocking-query rules to a successful answer.
// prev is the index the query was sent with, got the answer's X-Consul-Index.
// It returns the index for the next query and whether the data may be new:
//   - got == 0 is a Consul bug: block on 1 next, so the loop never spins
//     and a zero is not mistaken for the index going backwards;
//   - got == prev (and prev > 0): nothing changed (a wait timeout);
//   - got < prev: the index went backwards (snapshot restore, new cluster):
//     restart from 0, treating the data as possibly new;
//   - otherwise the data may be new.
func nextIndex(prev, got uint64) (next uint64, maybeNew bool) {
	switch {
	case got == 0:
		return 1, true
	case prev > 0 && got == prev:
		return prev, false
	case got < prev:
		return 0, true
	default:
		return got, true
	}
}
