package catalog

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/meridian-lb/meridian/config"
)

// WatcherOptions configures a Watcher. Zero values take the defaults.
type WatcherOptions struct {
	Logger     *zap.Logger           // nil: no logs
	Registerer prometheus.Registerer // nil: no metrics
	// Poke is called (from a loop goroutine) after a selection's data
	// changed. It must not block: the rebuild loop's 1-buffered channel
	// with a non-blocking send is the intended implementation.
	Poke func()
	// MinInterval is the floor between the starts of two queries of one
	// selection (default 100ms), so a churning service cannot turn the
	// blocking loop into a busy loop against Consul.
	MinInterval time.Duration
	// WaitTime is the blocking query's ?wait= (default 5m; Consul caps it
	// at 10m).
	WaitTime time.Duration
	// Timeout bounds one blocking request (default WaitTime + WaitTime/16
	// + 10s); a non-blocking one (the first) gets at most 10s. Past it an
	// agent that accepted the connection but never answers counts as down.
	Timeout time.Duration
	// BackoffBase and BackoffMax shape the retry delay after errors
	// (defaults 500ms and 30s; exponential with jitter).
	BackoffBase time.Duration
	BackoffMax  time.Duration
	// Stale allows any server, not only the leader, to answer (?stale):
	// more scalable, slightly older data (config consul.stale).
	Stale bool
	// Datacenter is the datacenter queries go to when a selection names
	// none; it is used as the instances' datacenter (and so default region)
	// when Consul's answer does not say.
	Datacenter string
	// CoordinateInterval is how often datacenters are re-ordered by
	// network coordinates while a selection uses failover.nearest
	// (default DefaultCoordinateInterval).
	CoordinateInterval time.Duration
}

// fetchResult is one successful answer for a selection.
type fetchResult struct {
	instances   []Instance
	index       uint64
	knownLeader bool
}

// fetchFunc performs one (possibly blocking) query for key at index.
type fetchFunc func(ctx context.Context, key Key, index uint64) (fetchResult, error)

// errEmptyWithoutLeader marks an answer that would empty a selection while
// the cluster reports no leader: typically a restarted or freshly restored
// server that has not caught up. It is handled like an outage.
var errEmptyWithoutLeader = errors.New("answer has no instances and the cluster reports no leader; keeping the last known instances")

// Watcher keeps one blocking-query loop per wanted Key and publishes an
// immutable Snapshot of all of them. See the package documentation for the
// semantics; all methods are safe from any goroutine.
type Watcher struct {
	fetch  fetchFunc
	opts   WatcherOptions
	pace   pacing
	log    *zap.Logger
	poke   func()
	metric *watcherMetrics

	snap        atomic.Pointer[Snapshot]
	lastSuccess atomic.Int64 // unix nanoseconds of the last successful answer, 0 if none

	mu       sync.Mutex
	version  uint64
	states   map[Key]*keyState
	loops    map[Key]*loop
	runCtx   context.Context // non-nil while Run is running
	started  bool
	outage   bool
	outageAt time.Time
	wg       sync.WaitGroup

	// Multi-datacenter selections (multidc.go).
	sels     []config.ConsulSelect // the last WantSelections
	dcs      dcView                // local name and nearest order
	dcFetch  datacenterFetch       // nil: the order is never refreshed
	dcWake   chan struct{}         // WantSelections asked for an order
	dcOutage map[string]time.Time  // datacenters failing now, since when
}

// keyState is the watcher's mutable record of one wanted key (under mu).
type keyState struct {
	ready       bool
	instances   []Instance
	index       uint64
	changed     time.Time
	lastSuccess time.Time
	failing     bool
	lastError   string
}

type loop struct {
	key    Key
	cancel context.CancelFunc
}

// NewWatcher returns a Watcher querying Consul through client. It registers
// its metrics on opts.Registerer; a registration conflict is an error.
func NewWatcher(client *api.Client, opts WatcherOptions) (*Watcher, error) {
	if client == nil {
		return nil, errors.New("catalog: NewWatcher: nil Consul client")
	}
	w := newWatcher(nil, opts)
	w.fetch = w.consulFetch(client)
	w.dcFetch = consulDatacenters(client, opts.Datacenter)
	if err := w.metric.register(opts.Registerer); err != nil {
		return nil, fmt.Errorf("catalog: registering metrics: %w", err)
	}
	return w, nil
}

// newWatcher builds a watcher around any fetch function (tests use fakes).
func newWatcher(fetch fetchFunc, opts WatcherOptions) *Watcher {
	w := &Watcher{
		fetch:  fetch,
		opts:   opts,
		pace:   newPacing(opts.MinInterval, opts.WaitTime, opts.Timeout, opts.BackoffBase, opts.BackoffMax),
		log:    opts.Logger,
		poke:   opts.Poke,
		states: make(map[Key]*keyState),
		loops:  make(map[Key]*loop),

		dcs:      dcView{local: opts.Datacenter},
		dcWake:   make(chan struct{}, 1),
		dcOutage: map[string]time.Time{},
	}
	if w.log == nil {
		w.log = zap.NewNop()
	}
	w.log = w.log.Named("consul")
	if w.poke == nil {
		w.poke = func() {}
	}
	w.metric = newWatcherMetrics(w)
	w.snap.Store(&Snapshot{sels: map[Key]*selection{}})
	return w
}

// consulFetch returns the production fetch: GET /v1/health/service/<name>
// with the key's tags (server-side), datacenter and near, without ?passing
// (health is filtered per pool, client-side).
func (w *Watcher) consulFetch(client *api.Client) fetchFunc {
	health := client.Health()
	return func(ctx context.Context, k Key, index uint64) (fetchResult, error) {
		timeout := w.pace.requestTimeout(index)
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		q := &api.QueryOptions{
			Datacenter: k.Datacenter,
			Near:       k.Near,
			WaitIndex:  index,
			WaitTime:   w.pace.waitTime,
			AllowStale: w.opts.Stale,
		}
		entries, meta, err := health.ServiceMultipleTags(k.Service, k.TagList(), false, q.WithContext(ctx))
		if err != nil {
			if ctx.Err() == context.DeadlineExceeded {
				return fetchResult{}, fmt.Errorf("no answer within %s: %w", timeout, err)
			}
			return fetchResult{}, err
		}
		dc := k.Datacenter
		if dc == "" {
			dc = w.opts.Datacenter
		}
		inst, skipped := fromEntries(entries, dc, k.Near != "")
		if skipped > 0 {
			w.log.Debug("skipped instances without a usable address or port",
				zap.Stringer("selection", k), zap.Int("skipped", skipped))
		}
		return fetchResult{instances: inst, index: meta.LastIndex, knownLeader: meta.KnownLeader}, nil
	}
}

// Snapshot returns the current snapshot; it is a single atomic load.
func (w *Watcher) Snapshot() *Snapshot { return w.snap.Load() }

// Want sets the selections to watch. Loops start for new keys (once Run is
// running) and stop for keys no longer listed; a stopped key's data leaves
// the snapshot, a new key appears as pending until its first answer. Want
// does not poke: the caller is the one who asked for the change.
func (w *Watcher) Want(keys []Key) {
	want := make(map[Key]bool, len(keys))
	for _, k := range keys {
		if err := validKey(k); err != nil {
			w.log.Error("ignoring invalid Consul selection", zap.Error(err))
			continue
		}
		want[k] = true
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	changed := false
	for k := range w.states {
		if want[k] {
			continue
		}
		if l := w.loops[k]; l != nil {
			l.cancel()
			delete(w.loops, k)
		}
		delete(w.states, k)
		changed = true
	}
	for k := range want {
		if _, ok := w.states[k]; ok {
			continue
		}
		w.states[k] = &keyState{}
		if w.runCtx != nil {
			w.startLoopLocked(k)
		}
		changed = true
	}
	if !changed {
		return
	}
	if w.outage && !w.anyFailingLocked() {
		// The failing selections were dropped; the next failure is a new
		// outage and deserves its own log line.
		w.outage = false
	}
	w.publishLocked()
}

// Run starts the loops for the wanted keys and keeps them running until ctx
// ends; then it stops them all, waits for them, and returns nil. The last
// snapshot stays readable afterwards. Run may be called once.
func (w *Watcher) Run(ctx context.Context) error {
	w.mu.Lock()
	if w.started {
		w.mu.Unlock()
		return errors.New("catalog: Watcher.Run called twice")
	}
	w.started = true
	w.runCtx = ctx
	for k := range w.states {
		w.startLoopLocked(k)
	}
	w.mu.Unlock()
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		w.trackDatacenters(ctx)
	}()

	<-ctx.Done()

	w.mu.Lock()
	for k, l := range w.loops {
		l.cancel()
		delete(w.loops, k)
	}
	w.runCtx = nil
	w.mu.Unlock()
	w.wg.Wait()
	return nil
}

func (w *Watcher) startLoopLocked(k Key) {
	ctx, cancel := context.WithCancel(w.runCtx)
	l := &loop{key: k, cancel: cancel}
	w.loops[k] = l
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		defer cancel()
		w.runLoop(ctx, l)
	}()
}

// runLoop is one selection's blocking-query loop.
func (w *Watcher) runLoop(ctx context.Context, l *loop) {
	var (
		index    uint64
		have     bool
		prev     []Instance
		failures int
		next     time.Time
	)
	for {
		if !sleepUntil(ctx, next) {
			return
		}
		start := time.Now()
		// After an error the retry does not block: a recovered agent or
		// datacenter is noticed at once, not at its next change.
		ask := index
		if failures > 0 {
			ask = 0
		}
		res, err := w.fetch(ctx, l.key, ask)
		if ctx.Err() != nil {
			return
		}
		if err == nil && have && len(prev) > 0 && len(res.instances) == 0 && !res.knownLeader {
			err = errEmptyWithoutLeader
		}
		if err != nil {
			failures++
			delay := w.pace.backoff(failures)
			w.failed(l, err, failures, delay)
			next = time.Now().Add(delay)
			continue
		}
		failures = 0
		next = start.Add(w.pace.minInterval)
		var maybeNew bool
		prevIndex := index
		index, maybeNew = nextIndex(index, res.index)
		if index == 0 {
			w.log.Info("Consul index went backwards; restarting the blocking query",
				zap.Stringer("selection", l.key), zap.Uint64("previous", prevIndex), zap.Uint64("got", res.index))
		}
		if !maybeNew || (have && equalInstances(prev, res.instances)) {
			w.succeeded(l, nil, res.index, false)
			continue
		}
		prev, have = res.instances, true
		w.succeeded(l, res.instances, res.index, true)
	}
}

// succeeded records a good answer; with changed it publishes the new data
// and pokes the rebuild loop.
func (w *Watcher) succeeded(l *loop, inst []Instance, index uint64, changed bool) {
	now := time.Now()
	w.lastSuccess.Store(now.UnixNano())
	w.metric.requests.WithLabelValues("ok").Inc()
	w.mu.Lock()
	st := w.states[l.key]
	if st == nil || w.loops[l.key] != l {
		w.mu.Unlock()
		return // the key is no longer wanted
	}
	st.lastSuccess = now
	st.failing = false
	st.lastError = ""
	w.dcRecoveredLocked(l.key, now)
	if w.outage && !w.anyFailingLocked() {
		w.outage = false
		w.log.Info("Consul is answering again; catalog data is fresh",
			zap.Stringer("selection", l.key), zap.Duration("outage", now.Sub(w.outageAt).Round(time.Millisecond)))
	}
	if changed {
		if st.ready && len(inst) == 0 {
			w.log.Info("Consul selection has no instances", zap.Stringer("selection", l.key))
		}
		st.ready = true
		st.instances = inst
		st.index = index
		st.changed = now
		w.publishLocked()
	}
	w.mu.Unlock()
	if changed {
		w.poke()
	}
}

// failed records an error. The selection keeps its last data; the first
// failure of an outage is logged at warn, the rest at debug.
func (w *Watcher) failed(l *loop, err error, failures int, retry time.Duration) {
	w.metric.requests.WithLabelValues("error").Inc()
	msg := describeError(err)
	w.mu.Lock()
	defer w.mu.Unlock()
	st := w.states[l.key]
	if st == nil || w.loops[l.key] != l {
		return
	}
	st.failing = true
	st.lastError = msg
	w.dcFailedLocked(l.key, st.ready, msg)
	fields := []zap.Field{
		zap.Stringer("selection", l.key),
		zap.String("error", msg),
		zap.Bool("has_data", st.ready),
		zap.Duration("retry_in", retry.Round(time.Millisecond)),
	}
	if !w.outage {
		w.outage = true
		w.outageAt = time.Now()
		w.log.Warn("Consul query failed; serving the last known catalog data and retrying in the background", fields...)
		return
	}
	w.log.Debug("Consul query failed again", append(fields, zap.Int("failures", failures))...)
}

func (w *Watcher) anyFailingLocked() bool {
	for _, st := range w.states {
		if st.failing {
			return true
		}
	}
	return false
}

// publishLocked stores a new snapshot built from the current states.
func (w *Watcher) publishLocked() {
	w.version++
	s := &Snapshot{version: w.version, sels: make(map[Key]*selection, len(w.states)), dcs: w.dcs}
	for k, st := range w.states {
		s.sels[k] = &selection{ready: st.ready, instances: st.instances, index: st.index, changed: st.changed}
	}
	w.snap.Store(s)
}

// SelectionStatus is the freshness of one wanted selection, for the admin
// API and /readyz.
type SelectionStatus struct {
	Key         Key
	Ready       bool      // an answer was received
	Instances   int       // instances in the last answer, before per-pool filters
	Changed     time.Time // when the data last changed
	LastSuccess time.Time // when Consul last answered (even "no change")
	Failing     bool      // the last query failed; the data is the last known good
	LastError   string    // the last failure, token-free; "" when healthy
	// Datacenter is the one the key queries (the local one's name for a
	// key that names none, when known), and Stale is set while it fails
	// and the last known instances are served.
	Datacenter string
	Stale      bool
}

// Status reports every wanted selection's freshness, sorted by key.
func (w *Watcher) Status() []SelectionStatus {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]SelectionStatus, 0, len(w.states))
	for k, st := range w.states {
		out = append(out, SelectionStatus{
			Key: k, Ready: st.ready, Instances: len(st.instances), Changed: st.changed,
			LastSuccess: st.lastSuccess, Failing: st.failing, LastError: st.lastError,
			Datacenter: w.dcName(k), Stale: st.failing && st.ready,
		})
	}
	sortStatus(out)
	return out
}

// Up reports whether no wanted selection is currently failing.
func (w *Watcher) Up() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return !w.outage
}
