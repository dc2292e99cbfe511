package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/meridian-lb/meridian/config"
	"github.com/meridian-lb/meridian/health"
	"github.com/meridian-lb/meridian/routing"
)

// Health is what the fleet needs of the health engine: every member's
// status (for this instance's verdicts), and overrides with a source.
type Health interface {
	Snapshot() []health.Status
	Status(pool, address string) (health.Status, bool)
	OverrideAs(pool, address string, a health.Action, source string) error
	ReleaseOverride(pool, address, source string) (bool, error)
}

// OverrideSource is the source the fleet's overrides carry in the health
// engine (health.Status.OverrideSource).
const OverrideSource = "fleet"

// Options configure a Fleet.
type Options struct {
	Client *api.Client
	// Prefix and SessionTTL are consul.fleet's (config.Consul.FleetSettings).
	Prefix     string
	SessionTTL time.Duration
	// Region and Datacenter describe this instance in its reports.
	Region     string
	Datacenter string
	Health     Health
	// Table returns the live table, whose endpoints get the quorum's
	// verdicts; nil before the first.
	Table func() *routing.Table
	// OnChange is called (not under any lock, never blocking for long)
	// after a verdict DNS reads changed.
	OnChange   func()
	Logger     *zap.Logger
	Registerer prometheus.Registerer
	// Wait is the watch's blocking-query wait (default 30s).
	Wait time.Duration
}

// Fleet is this instance's part in the fleet (see the package doc).
type Fleet struct {
	opts  Options
	kv    *api.KV
	sess  *api.Session
	log   *zap.Logger
	met   *metrics
	kick  chan struct{}
	flush chan struct{} // an override was written: watch sooner

	mu         sync.Mutex
	id         string // this instance's ID; "" until Start
	quorum     *config.Quorum
	shared     bool
	members    []Member
	session    string
	lastRenew  time.Time
	renewErr   bool
	local      map[string]bool // this instance's verdicts: key → down
	published  map[string]bool // the verdicts in Consul, nil when unknown
	publishSID string          // the session they were written under
	reports    map[string]*Report
	overrides  map[string]Override
	applied    map[string]health.Action // overrides this instance applied as source fleet
	viewOK     bool                     // the watch answered at least once
	failing    time.Time                // when the watch started failing; zero when fine
	staleSaid  bool
	lastSync   time.Time
	verdicts   map[string]routing.Quorum // last evaluation, by key
	overruled  map[string]bool           // keys where the quorum went against this instance's verdict
	running    bool
}

// Report is one instance's verdicts as stored in Consul.
type Report struct {
	Instance   string            `json:"instance"`
	Region     string            `json:"region,omitempty"`
	Datacenter string            `json:"datacenter,omitempty"`
	Updated    time.Time         `json:"updated"`
	Endpoints  map[string]string `json:"endpoints"` // "pool/address" → up | down
}

// Override is one shared override as stored in Consul.
type Override struct {
	Pool    string        `json:"pool"`
	Address string        `json:"address"`
	Action  health.Action `json:"action"`
	By      string        `json:"by"` // the instance that made it
	At      time.Time     `json:"at"`
}

// New returns a Fleet; nothing talks to Consul until Run.
func New(opts Options) (*Fleet, error) {
	if opts.Client == nil || opts.Health == nil {
		return nil, errors.New("fleet: New needs a Consul client and a health engine")
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.SessionTTL <= 0 {
		opts.SessionTTL = config.DefaultFleetSessionTTL
	}
	if opts.Prefix == "" {
		opts.Prefix = config.DefaultFleetPrefix
	}
	opts.Prefix = strings.Trim(opts.Prefix, "/")
	if opts.Wait <= 0 {
		opts.Wait = 30 * time.Second
	}
	if opts.OnChange == nil {
		opts.OnChange = func() {}
	}
	if opts.Table == nil {
		opts.Table = func() *routing.Table { return nil }
	}
	f := &Fleet{
		opts:      opts,
		kv:        opts.Client.KV(),
		sess:      opts.Client.Session(),
		log:       opts.Logger.Named("fleet"),
		kick:      make(chan struct{}, 1),
		flush:     make(chan struct{}, 1),
		shared:    true,
		local:     map[string]bool{},
		reports:   map[string]*Report{},
		overrides: map[string]Override{},
		applied:   map[string]health.Action{},
		verdicts:  map[string]routing.Quorum{},
		overruled: map[string]bool{},
	}
	f.met = newMetrics(f)
	if err := f.met.register(opts.Registerer); err != nil {
		return nil, fmt.Errorf("fleet: registering metrics: %w", err)
	}
	return f, nil
}

// Key names an endpoint in reports: "pool/address".
func Key(pool, address string) string { return pool + "/" + address }

// SetID names this instance (its registration's service ID). Run needs it.
func (f *Fleet) SetID(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.id = id
}

// ID returns this instance's ID, "" before SetID.
func (f *Fleet) ID() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.id
}

// Configure takes the settings a reload may change: the quorum (nil:
// none) and whether overrides are shared.
func (f *Fleet) Configure(q *config.Quorum, shared bool) {
	f.mu.Lock()
	changed := !equalQuorum(f.quorum, q) || f.shared != shared
	if q != nil {
		c := *q
		q = &c
	}
	f.quorum, f.shared = q, shared
	f.mu.Unlock()
	if changed {
		f.poke()
	}
}

func equalQuorum(a, b *config.Quorum) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// SetMembers sets the live instance list (from the catalog).
func (f *Fleet) SetMembers(ms []Member) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.members = slices.Clone(ms)
}

// Members returns the live instance list.
func (f *Fleet) Members() []Member {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.members)
}

// HealthChanged tells the fleet that some endpoint's health changed: its
// verdicts are re-read, published and the quorum re-evaluated. It never
// blocks.
func (f *Fleet) HealthChanged() { f.poke() }

func (f *Fleet) poke() {
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

// Bind marks a new table's endpoints with the current verdicts and applies
// the shared overrides to its members, before the table is published.
func (f *Fleet) Bind(t *routing.Table) {
	if t == nil {
		return
	}
	f.evaluate(t)
	f.applyOverrides()
	f.poke() // this instance's verdicts on new endpoints follow
}

// Run keeps the session, the report and the watch until ctx ends; then it
// destroys the session (deleting this instance's report) and returns nil.
func (f *Fleet) Run(ctx context.Context) error {
	f.mu.Lock()
	if f.running {
		f.mu.Unlock()
		return errors.New("fleet: Run called twice")
	}
	if f.id == "" {
		f.mu.Unlock()
		return errors.New("fleet: Run before SetID")
	}
	f.running = true
	f.mu.Unlock()
	var wg sync.WaitGroup
	wg.Go(func() { f.watch(ctx) })
	defer func() {
		wg.Wait()
		f.destroy()
	}()
	ttl := f.opts.SessionTTL
	renew := time.NewTicker(ttl / 2)
	defer renew.Stop()
	retry := time.NewTicker(max(ttl/4, 250*time.Millisecond))
	defer retry.Stop()
	backoff := time.Duration(0)
	var nextSession time.Time
	f.poke()
	for {
		if f.Session() == "" && !time.Now().Before(nextSession) {
			if err := f.createSession(ctx); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				backoff = min(max(2*backoff, 250*time.Millisecond), ttl)
				nextSession = time.Now().Add(backoff)
				f.met.errors.WithLabelValues("session").Inc()
				if backoff == 250*time.Millisecond {
					f.log.Warn("fleet session: cannot create; this instance's reports are missing from the fleet until it can", zap.Error(err), zap.Duration("retry_in", backoff))
				}
			} else {
				backoff = 0
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-renew.C:
			f.renew(ctx)
		case <-retry.C:
		case <-f.kick:
			// Coalesce a burst of health changes into one pass.
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(20 * time.Millisecond):
			}
		}
		f.refresh(ctx)
	}
}

// Session returns the current session's ID, "" when there is none.
func (f *Fleet) Session() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.session
}

func (f *Fleet) createSession(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	id := f.ID()
	sid, _, err := f.sess.Create(&api.SessionEntry{
		Name:     "meridian fleet " + id,
		TTL:      f.opts.SessionTTL.String(),
		Behavior: api.SessionBehaviorDelete,
		// The report key is this instance's alone: a restart may take it
		// back at once.
		LockDelay: time.Millisecond,
	}, (&api.WriteOptions{}).WithContext(cctx))
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.session, f.lastRenew, f.renewErr = sid, time.Now(), false
	f.published = nil
	f.mu.Unlock()
	f.log.Info("fleet session created; publishing this instance's health reports", zap.String("session", sid), zap.String("instance", id), zap.Duration("ttl", f.opts.SessionTTL))
	return nil
}

func (f *Fleet) renew(ctx context.Context) {
	f.mu.Lock()
	id, last := f.session, f.lastRenew
	f.mu.Unlock()
	if id == "" {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	entry, _, err := f.sess.Renew(id, (&api.WriteOptions{}).WithContext(cctx))
	cancel()
	switch {
	case err != nil:
		if ctx.Err() != nil {
			return
		}
		f.met.errors.WithLabelValues("renew").Inc()
		f.mu.Lock()
		first := !f.renewErr
		f.renewErr = true
		f.mu.Unlock()
		if first {
			f.log.Warn("fleet session: renewal failed; the fleet stops counting this instance's reports if it keeps failing", zap.String("session", id), zap.Error(err))
		}
		if time.Since(last) > f.opts.SessionTTL {
			f.lost(id, "renewals failed for longer than the session's TTL")
		}
	case entry == nil:
		f.lost(id, "the session expired or was destroyed")
	default:
		f.mu.Lock()
		if f.session == id {
			f.lastRenew = time.Now()
			if f.renewErr {
				f.log.Info("fleet session: renewed again", zap.String("session", id))
			}
			f.renewErr = false
		}
		f.mu.Unlock()
	}
}

// lost drops a session: a new one is made and the report written again.
func (f *Fleet) lost(id, why string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.session != id {
		return
	}
	f.session, f.published = "", nil
	f.met.sessionsLost.Inc()
	f.log.Warn("fleet session lost; this instance's reports vanished from the fleet until a new session republishes them", zap.String("session", id), zap.String("why", why))
}

// destroy ends the session at shutdown: Consul deletes the report with it.
func (f *Fleet) destroy() {
	f.mu.Lock()
	id := f.session
	f.session, f.running = "", false
	f.mu.Unlock()
	if id == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if _, err := f.sess.Destroy(id, (&api.WriteOptions{}).WithContext(ctx)); err != nil {
		f.log.Warn("fleet session: cannot destroy at shutdown; its reports vanish when its TTL lapses", zap.String("session", id), zap.Error(err))
	}
}

// refresh re-reads this instance's verdicts, publishes them when they
// changed (or the session is new), and re-evaluates the quorum.
func (f *Fleet) refresh(ctx context.Context) {
	local := verdicts(f.opts.Health.Snapshot())
	f.mu.Lock()
	f.local = local
	sid := f.session
	need := sid != "" && (f.published == nil || f.publishSID != sid || !maps.Equal(f.published, local))
	f.mu.Unlock()
	if need {
		f.publish(ctx, sid, local)
	}
	if t := f.opts.Table(); t != nil {
		f.evaluate(t)
	}
	f.applyOverrides()
}

// verdicts turns health statuses into this instance's verdicts (key →
// down): the probe's state and passive ejection, never an operator's
// override; an endpoint whose first probe has not completed has none.
func verdicts(sts []health.Status) map[string]bool {
	out := make(map[string]bool, len(sts))
	for _, st := range sts {
		switch {
		case st.Ejected:
			out[Key(st.Pool, st.Address)] = true
		case st.Probe != nil:
			switch st.Probe.State {
			case health.StateUp:
				out[Key(st.Pool, st.Address)] = false
			case health.StateDown:
				out[Key(st.Pool, st.Address)] = true
			}
		default:
			out[Key(st.Pool, st.Address)] = false
		}
	}
	return out
}

func (f *Fleet) reportKey(id string) string {
	return f.opts.Prefix + "/reports/" + url.PathEscape(id)
}

func (f *Fleet) publish(ctx context.Context, sid string, local map[string]bool) {
	f.mu.Lock()
	rep := Report{Instance: f.id, Region: f.opts.Region, Datacenter: f.opts.Datacenter, Updated: time.Now().UTC(), Endpoints: make(map[string]string, len(local))}
	key := f.reportKey(f.id)
	f.mu.Unlock()
	for k, down := range local {
		rep.Endpoints[k] = verdictWord(down)
	}
	b, err := json.Marshal(rep)
	if err != nil {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	ok, _, err := f.kv.Acquire(&api.KVPair{Key: key, Value: b, Session: sid}, (&api.WriteOptions{}).WithContext(cctx))
	cancel()
	switch {
	case err != nil:
		if ctx.Err() == nil {
			f.met.errors.WithLabelValues("publish").Inc()
			f.log.Debug("fleet report: write failed; retrying", zap.Error(err))
		}
		return
	case !ok:
		// Another session holds the key: this instance's previous run,
		// until Consul invalidates its session. Retried until then.
		f.met.errors.WithLabelValues("publish").Inc()
		f.log.Debug("fleet report: the key is held by another session (a previous run of this instance?); retrying", zap.String("key", key))
		return
	}
	f.mu.Lock()
	if f.session == sid {
		f.published, f.publishSID = local, sid
	}
	f.mu.Unlock()
	f.met.published.Inc()
}

func verdictWord(down bool) string {
	if down {
		return "down"
	}
	return "up"
}

// watch follows PREFIX/ with blocking queries until ctx ends.
func (f *Fleet) watch(ctx context.Context) {
	var index uint64
	failures := 0
	for {
		wait := f.opts.Wait
		ask := index
		if failures > 0 {
			ask = 0 // after an error, do not block: notice recovery at once
		}
		timeout := wait + wait/16 + 5*time.Second
		if ask == 0 {
			timeout = 5 * time.Second
		}
		cctx, cancel := context.WithTimeout(ctx, timeout)
		pairs, meta, err := f.kv.List(f.opts.Prefix+"/", (&api.QueryOptions{WaitIndex: ask, WaitTime: wait}).WithContext(cctx))
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			failures++
			f.watchFailed(err)
			d := min(100*time.Millisecond<<min(failures-1, 8), 5*time.Second)
			select {
			case <-ctx.Done():
				return
			case <-time.After(d):
			case <-f.flush:
			}
			continue
		}
		failures = 0
		switch {
		case meta.LastIndex < index:
			index = 0
		case meta.LastIndex == 0:
			index = 1
		default:
			index = meta.LastIndex
		}
		f.setView(pairs)
		f.poke()
	}
}

func (f *Fleet) watchFailed(err error) {
	f.met.errors.WithLabelValues("watch").Inc()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failing.IsZero() {
		f.failing = time.Now()
		f.log.Warn("fleet watch failed; keeping the last view of the fleet's reports and overrides, retrying", zap.Error(err))
	}
}

// setView installs a fresh view of the reports and overrides.
func (f *Fleet) setView(pairs api.KVPairs) {
	reports := map[string]*Report{}
	overrides := map[string]Override{}
	for _, p := range pairs {
		rest, _ := strings.CutPrefix(p.Key, f.opts.Prefix+"/")
		switch {
		case strings.HasPrefix(rest, "reports/"):
			if p.Session == "" {
				continue // not held by a live session: not a live reporter
			}
			var r Report
			if err := json.Unmarshal(p.Value, &r); err != nil || r.Instance == "" {
				f.log.Debug("fleet report does not parse; ignored", zap.String("key", p.Key))
				continue
			}
			reports[r.Instance] = &r
		case strings.HasPrefix(rest, "overrides/"):
			var o Override
			if err := json.Unmarshal(p.Value, &o); err != nil || o.Pool == "" || o.Address == "" {
				f.log.Debug("fleet override does not parse; ignored", zap.String("key", p.Key))
				continue
			}
			if _, err := health.ParseAction(string(o.Action)); err != nil || o.Action == health.ActionEnable {
				continue
			}
			overrides[Key(o.Pool, o.Address)] = o
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.failing.IsZero() {
		f.log.Info("fleet watch answering again; the view of the fleet is fresh", zap.Duration("outage", time.Since(f.failing).Round(time.Millisecond)))
	}
	f.failing, f.staleSaid = time.Time{}, false
	if f.viewOK {
		for id, r := range reports {
			if f.reports[id] == nil && id != f.id {
				f.log.Info("fleet reporter joined", zap.String("instance", id), zap.String("region", r.Region))
			}
		}
		for id := range f.reports {
			if reports[id] == nil && id != f.id {
				f.log.Warn("fleet reporter left: its session ended (the instance stopped, died, or lost Consul); its reports no longer count", zap.String("instance", id))
			}
		}
	}
	f.reports, f.overrides, f.viewOK, f.lastSync = reports, overrides, true, time.Now()
}

// staleLocked reports whether this instance's view of the fleet is too
// old to count: the watch has failed for longer than the session TTL (by
// then the others have stopped counting this instance too).
func (f *Fleet) staleLocked(now time.Time) bool {
	return !f.viewOK || (!f.failing.IsZero() && now.Sub(f.failing) >= f.opts.SessionTTL)
}

// evaluate sets the quorum's verdict on every endpoint of t and calls
// OnChange when one changed.
func (f *Fleet) evaluate(t *routing.Table) {
	now := time.Now()
	f.mu.Lock()
	q, stale := f.quorum, f.staleLocked(now)
	if q != nil && stale && !f.staleSaid && f.viewOK {
		f.staleSaid = true
		f.log.Warn("fleet view is stale: DNS answers by this instance's own health until the watch answers again",
			zap.Duration("failing_for", now.Sub(f.failing).Round(time.Millisecond)))
	}
	verdicts := make(map[string]routing.Quorum, len(f.verdicts))
	overruled := map[string]bool{}
	changed := false
	for name, p := range t.Pools {
		for _, e := range p.Endpoints {
			k := Key(name, e.Address)
			v := routing.QuorumNone
			if q != nil && !stale {
				v = f.decideLocked(k, q)
			}
			verdicts[k] = v
			if e.SetQuorum(v) {
				changed = true
			}
			if down, ok := f.local[k]; ok && v != routing.QuorumNone && down != (v == routing.QuorumDown) {
				overruled[k] = true
			}
		}
	}
	for k := range overruled {
		if !f.overruled[k] {
			f.log.Info("fleet quorum overrules this instance's verdict for DNS", zap.String("endpoint", k),
				zap.String("here", verdictWord(f.local[k])), zap.Stringer("fleet", verdicts[k]))
		}
	}
	for k := range f.overruled {
		if !overruled[k] {
			f.log.Info("fleet quorum agrees with this instance's verdict again", zap.String("endpoint", k))
		}
	}
	for k, v := range verdicts {
		if f.verdicts[k] != v {
			changed = true
		}
	}
	f.verdicts, f.overruled = verdicts, overruled
	f.mu.Unlock()
	if changed {
		f.opts.OnChange()
	}
}

// decideLocked is the quorum's verdict on one endpoint.
func (f *Fleet) decideLocked(k string, q *config.Quorum) routing.Quorum {
	n, down := 0, 0
	if d, ok := f.local[k]; ok {
		n++
		if d {
			down++
		}
	}
	for id, r := range f.reports {
		if id == f.id {
			continue // this instance counts with its live verdict
		}
		if w, ok := r.Endpoints[k]; ok {
			n++
			if w == "down" {
				down++
			}
		}
	}
	if n < q.MinReporters || n == 0 {
		return routing.QuorumNone
	}
	if float64(down) >= q.DownRatio*float64(n)-1e-9 {
		return routing.QuorumDown
	}
	return routing.QuorumUp
}

// Shared reports whether overrides are shared with the fleet.
func (f *Fleet) Shared() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.shared
}

// Share writes an admin override for the whole fleet; enable removes it.
// The caller has applied it locally already.
func (f *Fleet) Share(ctx context.Context, pool, address string, a health.Action) error {
	f.mu.Lock()
	shared, by := f.shared, f.id
	f.mu.Unlock()
	if !shared {
		return nil
	}
	key := f.overrideKey(pool, address)
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var err error
	if a == health.ActionEnable {
		_, err = f.kv.Delete(key, (&api.WriteOptions{}).WithContext(ctx))
	} else {
		b, _ := json.Marshal(Override{Pool: pool, Address: address, Action: a, By: by, At: time.Now().UTC()})
		_, err = f.kv.Put(&api.KVPair{Key: key, Value: b}, (&api.WriteOptions{}).WithContext(ctx))
	}
	if err != nil {
		f.met.errors.WithLabelValues("override").Inc()
		return fmt.Errorf("fleet: sharing the override: %w", err)
	}
	f.log.Info("override shared with the fleet", zap.String("pool", pool), zap.String("endpoint", address), zap.String("action", string(a)))
	select {
	case f.flush <- struct{}{}:
	default:
	}
	return nil
}

func (f *Fleet) overrideKey(pool, address string) string {
	esc := func(s string) string { return strings.ReplaceAll(url.PathEscape(s), ":", "%3A") }
	return f.opts.Prefix + "/overrides/" + esc(pool) + "/" + esc(address)
}

// applyOverrides brings the health engine in line with the shared
// overrides: each one is applied (source fleet) where the member exists and
// has no override of its own, and what the fleet applied before and is no
// longer shared is released.
func (f *Fleet) applyOverrides() {
	f.mu.Lock()
	if !f.shared {
		f.mu.Unlock()
		return
	}
	want := maps.Clone(f.overrides)
	applied := maps.Clone(f.applied)
	f.mu.Unlock()
	h := f.opts.Health
	for k, o := range want {
		st, ok := h.Status(o.Pool, o.Address)
		if !ok {
			continue
		}
		if st.Override == o.Action {
			applied[k] = o.Action
			continue
		}
		if st.Override != "" && st.OverrideSource != OverrideSource {
			continue // an override made here (API, state file, drill) stands
		}
		if err := h.OverrideAs(o.Pool, o.Address, o.Action, OverrideSource); err == nil {
			applied[k] = o.Action
			f.log.Info("fleet override applied", zap.String("pool", o.Pool), zap.String("endpoint", o.Address),
				zap.String("action", string(o.Action)), zap.String("by", o.By))
		}
	}
	for k := range applied {
		if _, ok := want[k]; ok {
			continue
		}
		i := strings.LastIndex(k, "/")
		pool, addr := k[:i], k[i+1:]
		if released, _ := h.ReleaseOverride(pool, addr, OverrideSource); released {
			f.log.Info("fleet override lifted", zap.String("pool", pool), zap.String("endpoint", addr))
		}
		delete(applied, k)
	}
	f.mu.Lock()
	f.applied = applied
	f.mu.Unlock()
}
