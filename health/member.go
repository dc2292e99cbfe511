package health

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/meridian-lb/meridian/config"
)

// historyLen is how many transitions a member keeps for the admin API.
const historyLen = 10

// maxEjectionLevel bounds the doubling so the shift cannot overflow; the
// duration is capped by MaxEjection long before.
const maxEjectionLevel = 30

// pool is the engine's record of one pool: its members and the passive
// outlier settings they share.
type pool struct {
	name        string
	outlier     atomic.Pointer[config.Outlier] // nil: no passive ejection
	transitions prometheus.Counter
	ejections   prometheus.Counter
	// returned is the latest of its members' returned (see
	// Member.ReturnedAt), so a slow-start balancer learns with one load
	// that no member of the pool is ramping.
	returned atomic.Int64

	// mu serialises ejection decisions so the max-ejected cap holds.
	// members is written under Engine.mu and mu, and read under either.
	mu      sync.Mutex
	members map[string]*Member
	ejected int // members currently ejected
}

// Member is one endpoint of one pool: what the proxy and DNS ask "may I use
// this now?" on every pick. It combines the shared active-probe state of its
// (address, check) target, its own passive-ejection state, and admin
// overrides. The pointer is stable for as long as the (pool, address) stays
// in the synced set, so the compiled table can hold it.
type Member struct {
	e       *Engine
	pool    *pool
	address string
	gauge   prometheus.Gauge

	avail    atomic.Bool  // the answer to Available
	out      atomic.Bool  // the answer to Excluded
	fails    atomic.Int32 // consecutive passive failures
	ejected  atomic.Bool
	state    atomic.Value // State, for State()
	returned atomic.Int64 // see ReturnedAt

	mu           sync.Mutex
	removed      bool
	target       *target // nil: the pool has no active check
	cur          State
	reason       string
	since        time.Time
	override     Action // "" when none
	overrideSrc  string
	ejectedUntil time.Time
	ejectReason  string
	ejectLevel   int
	returnedAt   time.Time // when the last ejection ended, for the level's decay
	history      [historyLen]Transition
	histN        int  // transitions recorded so far
	late         bool // added after its pool's first Sync: new, not initial
	everAvail    bool // has been available

	expiry *item // the ejection's end in the engine queue; guarded by Engine.mu
}

// Available reports whether the proxy may send new requests, and DNS may
// answer with, this endpoint right now. It is one atomic load: the engine
// recomputes the value whenever an input changes.
func (m *Member) Available() bool { return m.avail.Load() }

// Excluded reports whether an operator took the endpoint out (drained or
// forced down). Such an endpoint gets no new traffic, not even from a pool
// that fails open: panic mode overrides health verdicts (probe down,
// passive ejection), never an operator's intent. One atomic load.
func (m *Member) Excluded() bool { return m.out.Load() }

// State is the member's current state, which says why it is or is not
// available (draining, ejected, down...).
func (m *Member) State() State { return m.state.Load().(State) }

// ReturnedAt is when the member last became available again, in Nanotime
// nanoseconds, or 0 when it never did: the start of its slow-start ramp.
// A member returns when it becomes available after being down, ejected,
// drained or forced down, or (a member added to a pool after the pool's
// first Sync) when it is first available. The members of a pool's first
// Sync, available at once or after their first probe, have not returned.
// It is kept across Syncs while the member exists. One atomic load.
func (m *Member) ReturnedAt() int64 { return m.returned.Load() }

// PoolReturnedAt is the latest ReturnedAt of the member's pool: a balancer
// that finds it older than its ramp window knows no member is ramping.
// One atomic load.
func (m *Member) PoolReturnedAt() int64 { return m.pool.returned.Load() }

// epoch is the origin of Nanotime.
var epoch = time.Now()

// Nanotime is the monotonic clock of ReturnedAt: nanoseconds since the
// process started (at least 1).
func Nanotime() int64 { return nanos(time.Now()) }

func nanos(t time.Time) int64 { return max(1, int64(t.Sub(epoch))) }

// markReturned records that the member became available at now. Caller
// holds m.mu.
func (m *Member) markReturned(now time.Time) {
	v := nanos(now)
	m.returned.Store(v)
	p := &m.pool.returned
	for {
		old := p.Load()
		if old >= v || p.CompareAndSwap(old, v) {
			return
		}
	}
}

// Address is the member's host:port.
func (m *Member) Address() string { return m.address }

// Pool is the name of the member's pool.
func (m *Member) Pool() string { return m.pool.name }

// Report feeds one upstream result to passive outlier detection. The proxy
// calls it after every attempt, so the success path is a single atomic load
// (and a store only when a failure streak ends); locks are taken only when a
// failure reaches the ejection threshold.
func (m *Member) Report(o Outcome) {
	if o != Success {
		if oc := m.pool.outlier.Load(); oc != nil && (o != Status5xx || oc.On5xx) && (o != Timeout || oc.OnTimeout) {
			m.failure(o, oc)
			return
		}
	}
	if m.fails.Load() != 0 {
		m.fails.Store(0)
	}
}

func (m *Member) failure(o Outcome, oc *config.Outlier) {
	if m.ejected.Load() {
		return // late results of requests sent before the ejection
	}
	n := m.fails.Add(1)
	if int(n) >= oc.ConsecutiveFailures {
		m.tryEject(o, oc, n)
	}
}

// maxEjectable is how many of n members may be ejected at once under pct:
// the floor of the share, but at least one when ejection is enabled at all,
// so 2 endpoints at 50% allow 1 and a lone endpoint can still be ejected
// (letting a failover service move on; panic mode decides what a pool with
// nothing available does).
func maxEjectable(n, pct int) int {
	if pct <= 0 || n == 0 {
		return 0
	}
	if pct >= 100 {
		return n
	}
	return max(1, n*pct/100)
}

// levelAt is the member's doubling level at now: it decays by one for every
// base ejection time the member has stayed in since its last ejection ended.
// Caller holds m.mu.
func (m *Member) levelAt(now time.Time, base time.Duration) int {
	if m.ejected.Load() || m.ejectLevel == 0 || m.returnedAt.IsZero() {
		return m.ejectLevel
	}
	return max(0, m.ejectLevel-int(now.Sub(m.returnedAt)/base))
}

// ejectionTime is base doubled level times, capped at maxD.
func ejectionTime(base, maxD time.Duration, level int) time.Duration {
	d := base
	for range level {
		if d >= maxD/2 {
			return maxD
		}
		d *= 2
	}
	return min(d, maxD)
}

func (m *Member) tryEject(o Outcome, oc *config.Outlier, n int32) {
	now := time.Now()
	p := m.pool
	p.mu.Lock()
	// removed is written under p.mu too, so it can be read here; a stale
	// member (its pool left the table) is never ejected.
	if m.removed || m.ejected.Load() || int(m.fails.Load()) < oc.ConsecutiveFailures {
		p.mu.Unlock()
		return
	}
	if limit := maxEjectable(len(p.members), oc.MaxEjectedPercent); p.ejected >= limit {
		ejected := p.ejected
		p.mu.Unlock()
		// Keep the failure count: the next failure tries again, and
		// succeeds once another member has come back.
		if int(n) == oc.ConsecutiveFailures {
			m.e.log.Warn("outlier ejection skipped: max ejected percent reached",
				zap.String("pool", p.name), zap.String("endpoint", m.address),
				zap.Int("ejected", ejected), zap.Int("max_ejected", limit))
		}
		return
	}
	m.mu.Lock()
	// config.SetDefaults and validation make 0 < ejection <= max_ejection.
	base, maxD := oc.Ejection.D(), oc.MaxEjection.D()
	level := m.levelAt(now, base)
	d := ejectionTime(base, maxD, level)
	m.ejectLevel = min(level+1, maxEjectionLevel)
	until := now.Add(d)
	m.ejected.Store(true)
	p.ejected++
	m.ejectedUntil = until
	m.ejectReason = fmt.Sprintf("ejected for %s after %d consecutive failures (last: %s)", d, n, o)
	changed := m.refreshLocked(now)
	m.mu.Unlock()
	p.mu.Unlock()

	p.ejections.Inc()
	m.e.scheduleExpiry(m, until)
	if changed {
		m.e.notify()
	}
}

// expire ends the member's ejection if its time is up, and reports whether
// Available changed.
func (m *Member) expire(now time.Time) bool {
	p := m.pool
	p.mu.Lock()
	defer p.mu.Unlock()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.removed || !m.ejected.Load() || now.Before(m.ejectedUntil) {
		return false
	}
	m.endEjectionLocked(now)
	return m.refreshLocked(now)
}

// endEjectionLocked clears the ejection. Caller holds p.mu and m.mu.
func (m *Member) endEjectionLocked(now time.Time) {
	m.ejected.Store(false)
	m.pool.ejected--
	m.fails.Store(0)
	m.returnedAt = now
	m.ejectedUntil = time.Time{}
}

// setOverride applies an admin action and reports whether Available or
// Excluded changed.
func (m *Member) setOverride(a Action, src string, now time.Time) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.removed {
		return false
	}
	prev := m.override
	if a == ActionEnable {
		m.override, m.overrideSrc = "", ""
	} else {
		m.override, m.overrideSrc = a, src
	}
	if prev != m.override {
		m.e.log.Info("admin override", zap.String("pool", m.pool.name), zap.String("endpoint", m.address),
			zap.String("action", string(a)), zap.String("source", src))
	}
	return m.refreshLocked(now)
}

// releaseOverride clears the override if src set it: released says it
// did, changed that Available or Excluded changed.
func (m *Member) releaseOverride(src string, now time.Time) (released, changed bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.removed || m.override == "" || m.overrideSrc != src {
		return false, false
	}
	m.override, m.overrideSrc = "", ""
	m.e.log.Info("admin override released", zap.String("pool", m.pool.name), zap.String("endpoint", m.address), zap.String("source", src))
	return true, m.refreshLocked(now)
}

// compute derives the member's state from its inputs, in precedence order.
// Caller holds m.mu.
func (m *Member) compute() (State, string, bool) {
	switch {
	case m.override == ActionDown:
		return StateForcedDown, "admin override: down (" + m.overrideSrc + ")", false
	case m.override == ActionDrain:
		return StateDraining, "admin override: drain (" + m.overrideSrc + ")", false
	case m.ejected.Load():
		return StateEjected, m.ejectReason, false
	case m.target == nil:
		return StateUp, "no active check", true
	}
	v := m.target.view.Load()
	return v.state, v.reason, v.avail
}

// refreshLocked recomputes the member's state from its inputs; on a change it
// records, logs and counts the transition once, updates the gauge and the
// atomics behind Available and Excluded, and reports whether either changed
// (draining an endpoint that is already down changes what a pool in panic
// mode serves, and so the DNS answers). Caller holds m.mu.
func (m *Member) refreshLocked(now time.Time) bool {
	if m.removed {
		return false
	}
	st, reason, avail := m.compute()
	if st == m.cur && avail == m.avail.Load() {
		return false
	}
	from := m.cur
	m.cur, m.reason, m.since = st, reason, now
	m.state.Store(st)
	m.record(Transition{Time: now, From: from, To: st, Reason: reason})
	m.pool.transitions.Inc()
	m.gauge.Set(boolFloat(avail))
	m.e.log.Info("endpoint health changed",
		zap.String("pool", m.pool.name), zap.String("endpoint", m.address),
		zap.String("from", string(from)), zap.String("to", string(st)),
		zap.Bool("available", avail), zap.String("reason", reason))
	out := excludedState(st)
	availChanged := m.avail.Swap(avail) != avail
	outChanged := m.out.Swap(out) != out
	if availChanged && avail {
		// Back in service, or new to its pool: not the first verdict on
		// a member the pool started with.
		if m.late || m.everAvail || from != StateUnknown {
			m.markReturned(now)
		}
		m.everAvail = true
	}
	return availChanged || outChanged
}

// excludedState reports whether st is an operator's override.
func excludedState(st State) bool { return st == StateDraining || st == StateForcedDown }

// initLocked sets the state of a member that was just created, without
// counting it as a transition. Caller holds m.mu.
func (m *Member) initLocked(now time.Time) {
	st, reason, avail := m.compute()
	m.cur, m.reason, m.since = st, reason, now
	m.state.Store(st)
	m.avail.Store(avail)
	m.out.Store(excludedState(st))
	m.gauge.Set(boolFloat(avail))
	m.record(Transition{Time: now, To: st, Reason: "added: " + reason})
	if avail {
		m.everAvail = true
		if m.late {
			m.markReturned(now)
		}
	}
}

func (m *Member) record(t Transition) {
	m.history[m.histN%historyLen] = t
	m.histN++
}

// transitions returns the recorded transitions, oldest first. Caller holds m.mu.
func (m *Member) transitions() []Transition {
	n := min(m.histN, historyLen)
	out := make([]Transition, 0, n)
	for i := m.histN - n; i < m.histN; i++ {
		out = append(out, m.history[i%historyLen])
	}
	return out
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
