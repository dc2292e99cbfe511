package health

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// Scheduling constants (see runState).
const (
	// dispatchSlack: when the scheduler wakes, it also takes the probes due
	// within this much (within a tenth of a target's interval, if that is
	// less), so it wakes about a hundred times a second however many
	// targets there are, and hands probes to the workers in batches. A
	// wake-up and hand-off per probe, or even per millisecond, cost the
	// prober a fifth of its CPU at 5,000 probes a second; the checks'
	// jitter (±5% of the interval by default) dwarfs the 10 ms.
	dispatchSlack = 10 * time.Millisecond
	// stallAfter: a worker this long into one probe is taken to be held
	// by a slow target, and due probes do not wait for it; and a due
	// probe that has waited this long gets another worker (one per
	// stallAfter), up to MaxInFlight.
	stallAfter = 10 * time.Millisecond
	// trimPeriod: workers that stayed idle for a whole period exit.
	trimPeriod = 10 * time.Second
)

// runState is one Run's probe workers and the due targets waiting for
// them. It is guarded by Engine.mu.
//
// Why: a goroutine and two contexts per probe were most of the engine's
// own CPU at 5,000 probes a second (goroutine creation and stack growth,
// timers, cancel-tree maps, scheduler wake-ups). Instead, workers loop:
// take the oldest due target, probe it, record the result, take the next.
// The Run goroutine moves due targets from the heap (queue) to ready and
// wakes (or starts) a worker only when no worker is busy with a probe it
// started less than stallAfter ago (those will be back soon), or when the
// oldest ready target has waited stallAfter. So on a fast network one
// worker does nearly all probes without a hand-off between goroutines,
// and a slow target holds others up for stallAfter at most. Workers never
// exceed MaxInFlight, so that still bounds probes in flight; idle workers
// exit after trimPeriod.
type runState struct {
	ctx     context.Context
	ready   []*target // due targets waiting for a worker, oldest first
	idle    []*worker // parked workers, most recently parked last
	all     []*worker // started and not yet exited
	minIdle int       // fewest idle workers since trimAt was set
	trimAt  time.Time
	lastAdd time.Time // when a worker was last added for a waiting probe
	onWait  func()    // Engine.waiting for this run, made once
}

// worker is a probe worker: its wake-up (true means work, false exit)
// and, guarded by Engine.mu, since when it has been busy (zero: idle).
type worker struct {
	wake  chan bool
	busy  time.Time
	spare spareSocket // only this worker's goroutine touches it
}

// readyLocked hands the due target t to the workers. Caller holds e.mu.
func (rs *runState) readyLocked(t *target, now time.Time) {
	t.ready, t.readyAt = true, now
	rs.ready = append(rs.ready, t)
}

// nextLocked takes the oldest ready target still wanted, or nil. Caller
// holds e.mu.
func (rs *runState) nextLocked() *target {
	for len(rs.ready) > 0 {
		t := rs.ready[0]
		rs.ready[0] = nil
		rs.ready = rs.ready[1:]
		t.ready = false
		if !t.removed {
			return t
		}
	}
	return nil
}

// feedLocked makes sure the ready targets will be taken: it wakes or
// starts a worker when no busy worker is likely back soon, or when the
// oldest ready target has waited stallAfter. Caller holds e.mu.
func (e *Engine) feedLocked(rs *runState, now time.Time) {
	if len(rs.ready) == 0 {
		return
	}
	waited := now.Sub(rs.ready[0].readyAt) >= stallAfter && now.Sub(rs.lastAdd) >= stallAfter
	if !waited && rs.progressingLocked(now) {
		return
	}
	if e.addWorkerLocked(rs, now) && waited {
		rs.lastAdd = now
	}
}

// addWorkerLocked wakes an idle worker, or starts one if there are fewer
// than MaxInFlight, and reports whether it did. Caller holds e.mu.
func (e *Engine) addWorkerLocked(rs *runState, now time.Time) bool {
	var w *worker
	if n := len(rs.idle); n > 0 {
		w = rs.idle[n-1]
		rs.idle[n-1] = nil
		rs.idle = rs.idle[:n-1]
		rs.minIdle = min(rs.minIdle, len(rs.idle))
		w.wake <- true
	} else if len(rs.all) < e.maxWorkers {
		w = &worker{wake: make(chan bool, 1)}
		rs.all = append(rs.all, w)
		e.probes.Add(1)
		go e.work(rs, w)
	} else {
		return false
	}
	w.busy = now
	return true
}

// progressingLocked reports whether a worker is busy with a probe it
// started less than stallAfter ago. Caller holds e.mu.
func (rs *runState) progressingLocked(now time.Time) bool {
	for _, w := range rs.all {
		if !w.busy.IsZero() && now.Sub(w.busy) < stallAfter {
			return true
		}
	}
	return false
}

// exitLocked forgets w, which is exiting. Caller holds e.mu.
func (rs *runState) exitLocked(w *worker) {
	if i := slices.Index(rs.all, w); i >= 0 {
		rs.all = slices.Delete(rs.all, i, i+1)
	}
}

// stallWait is how long until feedLocked may add a worker for the ready
// targets (ok false: nothing to wait for). Caller holds e.mu.
func (e *Engine) stallWait(rs *runState, now time.Time) (time.Duration, bool) {
	if len(rs.ready) == 0 || (len(rs.idle) == 0 && len(rs.all) >= e.maxWorkers) {
		return 0, false
	}
	at := rs.ready[0].readyAt
	if rs.lastAdd.After(at) {
		at = rs.lastAdd
	}
	return max(at.Add(stallAfter).Sub(now), 0), true
}

// trimLocked ends the workers that stayed idle for the whole period, the
// longest-parked first. Caller holds e.mu.
func (rs *runState) trimLocked(now time.Time) {
	if now.Before(rs.trimAt) {
		return
	}
	n := min(rs.minIdle, len(rs.idle))
	for _, w := range rs.idle[:n] {
		rs.exitLocked(w)
		w.wake <- false
	}
	rs.idle = append(rs.idle[:0], rs.idle[n:]...)
	rs.minIdle = len(rs.idle)
	rs.trimAt = now.Add(trimPeriod)
}

// stopLocked ends rs: idle workers exit, busy ones after their probe
// (aborted here), and ready targets go back to the heap, due at once, for
// the next Run. Caller holds e.mu.
func (e *Engine) stopLocked(rs *runState, now time.Time) {
	for _, w := range rs.idle {
		rs.exitLocked(w)
		w.wake <- false
	}
	rs.idle = nil
	for t := rs.nextLocked(); t != nil; t = rs.nextLocked() {
		e.scheduleLocked(t, now)
	}
	for _, t := range e.targets {
		if t.running {
			t.abortLocked()
		}
	}
}

// work is a probe worker: it probes ready targets one after another and
// parks when there are none.
func (e *Engine) work(rs *runState, w *worker) {
	defer e.probes.Done()
	defer w.spare.close()
	e.mu.Lock()
	for {
		if e.run != rs {
			rs.exitLocked(w)
			e.mu.Unlock()
			return
		}
		t := rs.nextLocked()
		if t == nil {
			w.busy = time.Time{}
			rs.idle = append(rs.idle, w)
			e.mu.Unlock()
			if !<-w.wake {
				return // whoever sent false counted the exit
			}
			e.mu.Lock()
			continue
		}
		ctx := e.startLocked(rs, t)
		w.busy = t.start
		t.run.spare = &w.spare
		e.mu.Unlock()
		e.probe(ctx, rs, t)
		e.mu.Lock()
	}
}

// startLocked marks t running and arms its probe: the target's probeRun
// for the NetProber, or a context for any other Prober. Caller holds e.mu.
func (e *Engine) startLocked(rs *runState, t *target) context.Context {
	t.running = true
	t.start = time.Now()
	deadline := t.start.Add(t.timeout)
	if e.direct != nil {
		t.run.reset(deadline)
		t.run.onWait = rs.onWait
		return nil
	}
	ctx, cancel := context.WithDeadline(rs.ctx, deadline)
	t.cancel = cancel
	return ctx
}

// waiting is probeRun.onWait: a worker's probe is about to wait for the
// network, so a due probe need not wait for it; another worker takes it
// at once, and the probes' waits overlap (the poller then wakes them
// together, instead of the runtime going idle and waking once per probe).
func (e *Engine) waiting(rs *runState) {
	e.mu.Lock()
	if e.run == rs && len(rs.ready) > 0 {
		e.addWorkerLocked(rs, time.Now())
	}
	e.mu.Unlock()
}

// abortLocked cuts t's probe in flight short. Caller holds e.mu.
func (t *target) abortLocked() {
	if t.cancel != nil {
		t.cancel()
	}
	t.run.abort()
}

// probe runs one probe of t, started by startLocked (ctx is nil for the
// NetProber), and applies its result; finish queues the next one.
func (e *Engine) probe(ctx context.Context, rs *runState, t *target) {
	var err error
	var aborted, timedOut bool
	if ctx == nil {
		err = e.direct.probe(&t.run, t.spec)
		aborted = t.run.done() != nil
		timedOut = !time.Now().Before(t.run.deadline)
	} else {
		err = e.prober.Probe(ctx, t.spec)
		// Run's own context ending (cancelled, or past a deadline of its
		// own) aborts the probe; only the probe's deadline is a timeout.
		aborted = ctx.Err() == context.Canceled || rs.ctx.Err() != nil
		timedOut = !aborted && ctx.Err() == context.DeadlineExceeded
		e.mu.Lock()
		cancel := t.cancel
		t.cancel = nil
		e.mu.Unlock()
		cancel()
	}
	latency := time.Since(t.start)
	if err != nil && timedOut && !aborted {
		err = fmt.Errorf("timed out after %s: %w", t.timeout, err)
	}
	e.finish(t, err, t.start, latency, aborted)
}
