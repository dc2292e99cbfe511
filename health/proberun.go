package health

import (
	"context"
	"errors"
	"os"
	"sync"
	"time"
)

// probeRun is one probe's deadline and the engine's way to cut it short.
//
// Why: the engine used to give every probe two contexts (one to cancel it
// when its target went away, one for its timeout) and the prober added a
// third hook (context.AfterFunc) to interrupt its socket: three
// allocations, a timer and cancel-tree map inserts per probe, 5,000 times
// a second. A probe's I/O has deadlines of its own (the poller's), so the
// deadline goes straight onto the socket, and cancelling sets a past
// deadline on the socket in use. A target embeds one probeRun, reset for
// each probe (probes of one target never overlap); NetProber.Probe makes
// one from its context.
//
// deadline and ctx are set before the probe starts and only read during
// it; mu guards the rest, which abort may touch from another goroutine.
type probeRun struct {
	deadline time.Time       // zero: none
	ctx      context.Context // the caller's, for a probe that came through Probe; nil from the engine
	// onWait, if set, is called before the probe waits for the network
	// (a response, a handshake): the engine then lets another worker take
	// the next due probe, so probes that wait overlap their waits.
	onWait func()
	// spare is the worker's socket for connect-only checks; nil keeps none.
	spare *spareSocket

	mu      sync.Mutex
	aborted bool
	conn    deadliner          // the connection abort must interrupt
	cancel  context.CancelFunc // of the context context() made, if any
}

type deadliner interface{ SetDeadline(time.Time) error }

// longAgo is a deadline in the past: I/O waiting on it fails at once.
var longAgo = time.Unix(1, 0)

// waiting tells the engine the probe is about to wait for the network.
func (r *probeRun) waiting() {
	if r.onWait != nil {
		r.onWait()
	}
}

// reset readies r for a new probe that must end by deadline.
func (r *probeRun) reset(deadline time.Time) {
	r.mu.Lock()
	r.deadline, r.ctx, r.onWait, r.spare = deadline, nil, nil, nil
	r.aborted, r.conn, r.cancel = false, nil, nil
	r.mu.Unlock()
}

// watch puts the probe's deadline on c and makes abort interrupt c's I/O,
// until unwatch. It fails if the probe was aborted already.
func (r *probeRun) watch(c deadliner) error {
	if !r.deadline.IsZero() {
		c.SetDeadline(r.deadline)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.aborted {
		return context.Canceled
	}
	r.conn = c
	return nil
}

func (r *probeRun) unwatch() {
	r.mu.Lock()
	r.conn = nil
	r.mu.Unlock()
}

// abort ends the probe: its socket's I/O fails at once, and so does any
// it starts later.
func (r *probeRun) abort() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.aborted {
		return
	}
	r.aborted = true
	if r.conn != nil {
		r.conn.SetDeadline(longAgo)
	}
	if r.cancel != nil {
		r.cancel()
	}
}

// done reports the probe's context error, if it was aborted (or the
// caller's context ended).
func (r *probeRun) done() error {
	if r.ctx != nil {
		if err := r.ctx.Err(); err != nil {
			return err
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.aborted {
		return context.Canceled
	}
	return nil
}

// cause is err as a context would word it: context.Canceled when the
// probe was aborted, context.DeadlineExceeded when the socket's deadline
// (the probe's) expired, as http.Client reports them.
func (r *probeRun) cause(err error) error {
	if e := r.done(); e != nil {
		return e
	}
	if !r.deadline.IsZero() && errors.Is(err, os.ErrDeadlineExceeded) {
		return context.DeadlineExceeded
	}
	return err
}

// context returns a context for the probe, for the paths that need one
// (https through http.Client, dns through miekg/dns): the caller's, or
// one with the probe's deadline that abort cancels. Call release after.
func (r *probeRun) context() (ctx context.Context, release func()) {
	if r.ctx != nil {
		return r.ctx, func() {}
	}
	var cancel context.CancelFunc
	if r.deadline.IsZero() {
		ctx, cancel = context.WithCancel(context.Background())
	} else {
		ctx, cancel = context.WithDeadline(context.Background(), r.deadline)
	}
	r.mu.Lock()
	if r.aborted {
		cancel()
	}
	r.cancel = cancel
	r.mu.Unlock()
	return ctx, func() {
		r.mu.Lock()
		r.cancel = nil
		r.mu.Unlock()
		cancel()
	}
}
