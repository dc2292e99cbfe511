package health

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/meridian-lb/meridian/config"
)

// Options configure an Engine. Everything is optional.
type Options struct {
	// Logger receives one line per state transition, with its reason.
	// Nil discards.
	Logger *zap.Logger
	// Registerer receives the engine's metrics. Nil registers nothing.
	Registerer prometheus.Registerer
	// Prober runs active probes. Nil means a NetProber: real HTTP(S), TCP
	// and DNS probes.
	Prober Prober
	// MaxInFlight bounds the probes running at once, engine-wide
	// (config.Health.MaxInFlight). Zero means config.DefaultHealthInFlight.
	MaxInFlight int
	// StateFile is an optional gdnsd-style admin state file: one
	// "pool/address drain|down|enable" per line. It is read by New and
	// re-read by Run whenever its directory changes.
	StateFile string
	// OnChange is called after any member's Available() or Excluded()
	// changed (DNS uses it to move zone serials). It must not block and
	// must not call back into the Engine synchronously.
	OnChange func()
}

// memberKey names a member in the state file and overrides.
type memberKey struct{ pool, address string }

// Engine owns every health target and member. It probes targets on their
// schedules, applies passive ejections and admin overrides, and keeps each
// member's Available() current. See the package doc for the concurrency
// contract.
type Engine struct {
	log      *zap.Logger
	met      *metrics
	prober   Prober
	direct   *NetProber // prober, when it is one: probed without contexts (probeRun)
	onChange func()
	// maxWorkers bounds the probe workers, so the probes in flight
	// (MaxInFlight).
	maxWorkers int
	stateFile  string
	wake       chan struct{} // pokes the scheduler; 1-buffered, non-blocking send

	// syncMu serialises Sync calls and state-file applications with each
	// other, outside mu, so the slow parts (logging) never stall probes.
	syncMu sync.Mutex

	mu      sync.Mutex
	pools   map[string]*pool
	targets map[string]*target
	queue   queue
	run     *runState      // non-nil while Run runs
	probes  sync.WaitGroup // probe workers of the current Run
	file    stateOverrides // the state file as last read
	fileRaw []byte         // its bytes, to skip no-op re-reads
}

// New builds an engine. It reads the state file, if one is configured, so its
// overrides apply to the very first Sync. Probes and timers start with Run.
func New(opts Options) *Engine {
	log := opts.Logger
	if log == nil {
		log = zap.NewNop()
	}
	log = log.Named("health")
	e := &Engine{
		log:       log,
		met:       newMetrics(opts.Registerer, log),
		prober:    opts.Prober,
		onChange:  opts.OnChange,
		stateFile: opts.StateFile,
		wake:      make(chan struct{}, 1),
		pools:     make(map[string]*pool),
		targets:   make(map[string]*target),
	}
	if e.prober == nil {
		e.prober = &NetProber{}
	}
	e.direct, _ = e.prober.(*NetProber)
	e.maxWorkers = opts.MaxInFlight
	if e.maxWorkers <= 0 {
		e.maxWorkers = config.DefaultHealthInFlight
	}
	if e.stateFile != "" {
		e.reloadStateFile()
	}
	return e
}

// Run probes targets and ends ejections on time until ctx is done, then
// waits for the probes in flight to stop and returns nil. Sync may be called
// before, during and after Run; Run may be called again after it returned,
// but not twice at once.
func (e *Engine) Run(ctx context.Context) error {
	e.mu.Lock()
	if e.run != nil {
		e.mu.Unlock()
		return errors.New("health: engine is already running")
	}
	rs := &runState{ctx: ctx, trimAt: time.Now().Add(trimPeriod)}
	rs.onWait = func() { e.waiting(rs) }
	e.run = rs
	e.mu.Unlock()

	var aux sync.WaitGroup
	if e.stateFile != "" {
		aux.Go(func() { e.watchStateFile(ctx) })
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		var tick <-chan time.Time
		if wait, ok := e.dispatch(rs); ok {
			timer.Reset(wait)
			tick = timer.C
		} else {
			timer.Stop()
		}
		select {
		case <-ctx.Done():
			e.mu.Lock()
			e.run = nil
			e.stopLocked(rs, time.Now())
			e.mu.Unlock()
			e.probes.Wait()
			aux.Wait()
			e.dropConns()
			return nil
		case <-tick:
		case <-e.wake:
		}
	}
}

// dispatch hands the probes that are due (or nearly: dispatchSlack) to
// the workers and ends the ejections whose time is up, and returns how long
// until the next event (ok false: none queued).
func (e *Engine) dispatch(rs *runState) (wait time.Duration, ok bool) {
	now := time.Now()
	horizon := now.Add(dispatchSlack)
	var expired []*Member
	e.mu.Lock()
	for len(e.queue) > 0 && !e.queue[0].at.After(horizon) {
		it := e.queue[0]
		if it.at.After(now) && (it.t == nil || it.at.Sub(now) > it.t.slack) {
			break // an ejection ends on time, not early; see dispatchSlack
		}
		e.queue.remove(it)
		if it.t != nil {
			rs.readyLocked(it.t, now)
		} else {
			expired = append(expired, it.m)
		}
	}
	e.feedLocked(rs, now)
	rs.trimLocked(now)
	if len(e.queue) > 0 {
		wait, ok = e.queue[0].at.Sub(now), true
	}
	if w, stall := e.stallWait(rs, now); stall && (!ok || w < wait) {
		wait, ok = w, true
	}
	if w := rs.trimAt.Sub(now); len(rs.idle) > 0 && (!ok || w < wait) {
		wait, ok = w, true
	}
	e.mu.Unlock()

	changed := false
	for _, m := range expired {
		changed = m.expire(now) || changed
	}
	if changed {
		e.notify()
	}
	return wait, ok
}

// dropConns closes the connections targets keep between probes, when Run
// ends.
func (e *Engine) dropConns() {
	e.mu.Lock()
	var caches []*probeCache
	for _, t := range e.targets {
		if t.spec.cache != nil {
			caches = append(caches, t.spec.cache)
		}
	}
	e.mu.Unlock()
	for _, c := range caches {
		c.dropConn(false)
	}
}

// finish applies a probe's result. aborted means the engine cancelled the
// probe (shutdown or removal), so the result says nothing about the target.
func (e *Engine) finish(t *target, err error, start time.Time, latency time.Duration, aborted bool) {
	e.mu.Lock()
	t.running, t.cancel = false, nil
	if t.removed {
		e.mu.Unlock()
		return
	}
	now := time.Now()
	if aborted {
		// Run stopped: probe again as soon as it runs again.
		e.scheduleLocked(t, now)
		e.mu.Unlock()
		return
	}
	if err == nil {
		t.okCount.Inc()
	} else {
		t.failCount.Inc()
	}
	var members []*Member
	if t.record(err, start, latency) {
		members = slices.Clone(t.members)
	}
	next := start.Add(t.nextDelay())
	if next.Before(now) {
		next = now
	}
	e.scheduleLocked(t, next)
	e.mu.Unlock()

	changed := false
	for _, m := range members {
		m.mu.Lock()
		changed = m.refreshLocked(now) || changed
		m.mu.Unlock()
	}
	if changed {
		e.notify()
	}
}

// scheduleLocked queues t's next probe at at. Caller holds e.mu.
func (e *Engine) scheduleLocked(t *target, at time.Time) {
	if t.item == nil {
		t.item = &item{t: t, index: -1}
	}
	if e.queue.schedule(t.item, at) {
		e.poke()
	}
}

// scheduleExpiry queues the end of m's ejection.
func (e *Engine) scheduleExpiry(m *Member, until time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	m.mu.Lock()
	gone := m.removed || !m.ejected.Load() || !m.ejectedUntil.Equal(until)
	m.mu.Unlock()
	if gone {
		return
	}
	if m.expiry == nil {
		m.expiry = &item{m: m, index: -1}
	}
	if e.queue.schedule(m.expiry, until) {
		e.poke()
	}
}

func (e *Engine) poke() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

func (e *Engine) notify() {
	if e.onChange != nil {
		e.onChange()
	}
}

// Sync makes the engine's targets and members match pools, the full set the
// new table needs. New targets are probed at once; existing targets keep
// their state and schedule; targets and members no pool uses any more are
// stopped and forgotten (their metric labels deleted). Members keep their
// overrides and ejections across Syncs for as long as they exist.
func (e *Engine) Sync(pools []PoolSpec) {
	e.syncMu.Lock()
	defer e.syncMu.Unlock()
	now := time.Now()
	changed := false

	e.mu.Lock()
	oldTargets := e.targets
	newTargets := make(map[string]*target, len(oldTargets))
	// byAddr finds an address's last probed state under any check, so a
	// reload that renames its pool and changes its check together still
	// never brings a dead endpoint back up.
	byAddr := make(map[string]*targetView, len(oldTargets))
	for _, t := range oldTargets {
		if v := t.view.Load(); v.state == StateUp || v.state == StateDown {
			if old, ok := byAddr[t.spec.Address]; !ok || (old.avail && !v.avail) {
				byAddr[t.spec.Address] = v // when checks disagree, down wins
			}
		}
	}
	members := make(map[*target][]*Member)
	seenPools := make(map[string]bool, len(pools))
	for i := range pools {
		ps := &pools[i]
		if seenPools[ps.Name] {
			e.log.Warn("duplicate pool in sync; ignoring the later one", zap.String("pool", ps.Name))
			continue
		}
		seenPools[ps.Name] = true
		p := e.pools[ps.Name]
		late := p != nil // members added now are new to an existing pool
		if p == nil {
			p = &pool{
				name:        ps.Name,
				members:     make(map[string]*Member),
				transitions: e.met.transitions.WithLabelValues(ps.Name),
				ejections:   e.met.ejections.WithLabelValues(ps.Name),
			}
			e.pools[ps.Name] = p
		}
		if ps.Outlier.Active() {
			oc := *ps.Outlier
			p.outlier.Store(&oc)
		} else if p.outlier.Swap(nil) != nil {
			changed = e.clearEjections(p, now) || changed
		}

		var print string
		var check *config.Check
		if ps.CheckName != "" && ps.Check != nil {
			print = fingerprint(ps.CheckName, ps.Check, ps.TLS, ps.TLSFingerprint)
			c := *ps.Check // the target outlives this config; it only reads the copy
			check = &c
		}
		seen := make(map[string]bool, len(ps.Endpoints))
		for _, addr := range ps.Endpoints {
			if seen[addr] {
				continue
			}
			seen[addr] = true
			var t *target
			if print != "" {
				key := addr + " " + print
				t = newTargets[key]
				if t == nil {
					t = oldTargets[key]
				}
				if t == nil {
					t = e.newTargetLocked(key, Target{
						Address: addr, CheckName: ps.CheckName, Check: check, TLS: ps.TLS, ClientTLS: ps.ClientTLS,
						cache: &probeCache{},
					}, now)
					if m := p.members[addr]; m != nil && m.target != nil {
						t.seed(m.target.view.Load())
					} else if v := byAddr[addr]; v != nil {
						t.seed(v)
					}
				}
				newTargets[key] = t
			}
			m := p.members[addr]
			if m == nil {
				m = e.newMemberLocked(p, addr, t, late, now)
			} else if m.target != t {
				m.mu.Lock()
				m.target = t
				changed = m.refreshLocked(now) || changed
				m.mu.Unlock()
			}
			if t != nil {
				members[t] = append(members[t], m)
			}
		}
		for addr, m := range p.members {
			if !seen[addr] {
				e.removeMemberLocked(p, m)
			}
		}
	}
	for name, p := range e.pools {
		if seenPools[name] {
			continue
		}
		for _, m := range p.members {
			e.removeMemberLocked(p, m)
		}
		delete(e.pools, name)
		e.met.transitions.DeleteLabelValues(name)
		e.met.ejections.DeleteLabelValues(name)
	}
	checksInUse := make(map[string]bool)
	for _, t := range newTargets {
		t.members = members[t]
		checksInUse[t.spec.CheckName] = true
	}
	for key, t := range oldTargets {
		if newTargets[key] != nil {
			continue
		}
		t.removed = true
		t.members = nil
		if t.running {
			t.abortLocked()
		}
		if t.spec.cache != nil {
			t.spec.cache.dropConn(true)
		}
		e.queue.remove(t.item)
		if !checksInUse[t.spec.CheckName] {
			e.met.probes.DeleteLabelValues(t.spec.CheckName, "success")
			e.met.probes.DeleteLabelValues(t.spec.CheckName, "failure")
		}
	}
	e.targets = newTargets
	e.mu.Unlock()

	if changed {
		e.notify()
	}
}

// newTargetLocked creates a target and queues its first probe now. Caller
// holds e.mu.
func (e *Engine) newTargetLocked(key string, spec Target, now time.Time) *target {
	t := newTarget(key, spec, now)
	t.okCount = e.met.probes.WithLabelValues(spec.CheckName, "success")
	t.failCount = e.met.probes.WithLabelValues(spec.CheckName, "failure")
	e.scheduleLocked(t, now)
	return t
}

// newMemberLocked creates a member of p, applying any state-file override.
// Caller holds e.mu.
func (e *Engine) newMemberLocked(p *pool, addr string, t *target, late bool, now time.Time) *Member {
	m := &Member{
		e:       e,
		pool:    p,
		address: addr,
		target:  t,
		late:    late,
		gauge:   e.met.up.WithLabelValues(p.name, addr),
	}
	if a := e.file.lookup(p.name, addr); a != "" && a != ActionEnable {
		m.override, m.overrideSrc = a, "file"
	}
	m.mu.Lock()
	m.initLocked(now)
	m.mu.Unlock()
	p.mu.Lock()
	p.members[addr] = m
	p.mu.Unlock()
	return m
}

// removeMemberLocked forgets m. Caller holds e.mu.
func (e *Engine) removeMemberLocked(p *pool, m *Member) {
	p.mu.Lock()
	m.mu.Lock()
	m.removed = true
	if m.ejected.Load() {
		p.ejected--
	}
	m.mu.Unlock()
	delete(p.members, m.address)
	p.mu.Unlock()
	e.queue.remove(m.expiry)
	e.met.up.DeleteLabelValues(p.name, m.address)
}

// clearEjections ends every ejection in p, used when its outlier detection
// is turned off. Caller holds e.mu.
func (e *Engine) clearEjections(p *pool, now time.Time) bool {
	changed := false
	p.mu.Lock()
	for _, m := range p.members {
		m.mu.Lock()
		if m.ejected.Load() && !m.removed {
			m.endEjectionLocked(now)
			changed = m.refreshLocked(now) || changed
		}
		m.mu.Unlock()
		e.queue.remove(m.expiry)
	}
	p.mu.Unlock()
	return changed
}

// Member returns the member (pool, address), or nil if the last Sync did not
// include it. The pointer stays valid, and keeps its state, for as long as
// later Syncs include it.
func (e *Engine) Member(pool, address string) *Member {
	e.mu.Lock()
	defer e.mu.Unlock()
	if p := e.pools[pool]; p != nil {
		return p.members[address]
	}
	return nil
}

// Override applies an admin action to one member: drain (no new requests or
// DNS answers), down (forced out) or enable (back to probe- and
// ejection-driven state). It fails for an unknown member or action. The
// override lasts while the member exists, across Syncs.
func (e *Engine) Override(pool, address string, a Action) error {
	return e.OverrideAs(pool, address, a, "api")
}

// OverrideAs is Override with the override's source named
// (Status.OverrideSource; Override's is "api"): an automated action, such
// as a failover drill ("drill:ID"), marks the overrides it sets so that
// ReleaseOverride ends only those. Enable clears any override.
func (e *Engine) OverrideAs(pool, address string, a Action, source string) error {
	if _, err := ParseAction(string(a)); err != nil {
		return fmt.Errorf("pool %q: endpoint %q: %w", pool, address, err)
	}
	m, err := e.member(pool, address)
	if err != nil {
		return err
	}
	if m.setOverride(a, source, time.Now()) {
		e.notify()
	}
	return nil
}

// ReleaseOverride ends the member's override if source set it, and
// reports whether it did: an override someone else set since (an
// operator's drain, the state file) stays in force.
func (e *Engine) ReleaseOverride(pool, address, source string) (bool, error) {
	m, err := e.member(pool, address)
	if err != nil {
		return false, err
	}
	released, changed := m.releaseOverride(source, time.Now())
	if changed {
		e.notify()
	}
	return released, nil
}

// member finds (pool, address) for an override.
func (e *Engine) member(pool, address string) (*Member, error) {
	e.mu.Lock()
	p := e.pools[pool]
	var m *Member
	if p != nil {
		m = p.members[address]
	}
	e.mu.Unlock()
	switch {
	case p == nil:
		return nil, fmt.Errorf("pool %q: unknown pool", pool)
	case m == nil:
		return nil, fmt.Errorf("pool %q: unknown endpoint %q", pool, address)
	}
	return m, nil
}

// Status reports one member's health for the admin API.
func (e *Engine) Status(pool, address string) (Status, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	p := e.pools[pool]
	if p == nil {
		return Status{}, false
	}
	m := p.members[address]
	if m == nil {
		return Status{}, false
	}
	return m.statusLocked(), true
}

// Snapshot reports every member's health, sorted by pool then address.
func (e *Engine) Snapshot() []Status {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []Status
	for _, p := range e.pools {
		for _, m := range p.members {
			out = append(out, m.statusLocked())
		}
	}
	slices.SortFunc(out, func(a, b Status) int {
		return cmp.Or(cmp.Compare(a.Pool, b.Pool), cmp.Compare(a.Address, b.Address))
	})
	return out
}

// statusLocked snapshots m. Caller holds e.mu (which guards the target).
func (m *Member) statusLocked() Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := Status{
		Pool:                m.pool.name,
		Address:             m.address,
		State:               m.cur,
		Available:           m.avail.Load(),
		Reason:              m.reason,
		Since:               m.since,
		Override:            m.override,
		OverrideSource:      m.overrideSrc,
		ConsecutiveFailures: int(m.fails.Load()),
		Ejected:             m.ejected.Load(),
		EjectedUntil:        m.ejectedUntil,
		EjectionLevel:       m.ejectLevel,
		Transitions:         m.transitions(),
	}
	if oc := m.pool.outlier.Load(); oc != nil {
		s.EjectionLevel = m.levelAt(time.Now(), oc.Ejection.D())
	}
	if m.target != nil {
		s.Check = m.target.spec.CheckName
		s.Probe = m.target.status()
	}
	return s
}
