package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/meridian-lb/meridian/config"
	"github.com/meridian-lb/meridian/rollout"
	"github.com/meridian-lb/meridian/routing"
	"github.com/meridian-lb/meridian/telemetry"
)

// Rollouts, wired into the App (package rollout has the engine, routing
// the weights): one rollout.Manager per App, its states kept in Consul KV
// when consul: is configured (one instance drives each rollout, the others
// follow), else in rollouts.state_file, else in memory.
//
//   - compile asks the manager for each rollout's weight
//     (routing.Inputs.RolloutWeight), so a table routes at the weights the
//     rollouts are at;
//   - apply syncs the manager with the table's plans, and pokes the
//     rebuild loop when the manager's weights are not the table's (a new or
//     changed rollout starts at its first step);
//   - a ticker (once a second, started by Run) reads each driven rollout's
//     canary and baseline traffic from telemetry and ticks the manager; a
//     weight that moved (a step, a rollback, a follower adopting its
//     driver's) pokes the rebuild loop, which compiles a table at the new
//     weights;
//   - the admin API lists them (GET /api/v1/rollouts) and acts on them
//     (POST /api/v1/rollouts/{name}/{action}), recorded in the audit log;
//   - meridian_rollout_* metrics are read from the manager at scrape time.
//
// What is judged. A route's rollout (route:NAME): the canary arm (the
// split's weighted entry whose service is the canary) against the route's
// other weighted arms, as client requests: the status the client got, the
// whole latency. Requests a when: rule sends to the canary's service are
// not the weighted arm's and are not judged. A service's rollout
// (service:NAME): the canary pool against the service's other pools, as
// attempts on their endpoints (5xx and upstream failures are errors, the
// upstream's latency), from every route that reaches those pools. DNS
// answers are not traffic Meridian sees: a service rollout that steers a
// DNS record is judged by the proxied traffic to its pools.
//
// Each interval's p99 is exact to the interval: the ticker keeps, per
// rollout, the telemetry reading of the tick that started the interval
// (the machine's IntervalStartedAt), and gives the quantile of the
// latency histogram's difference since.
type rollouts struct {
	mgr    *rollout.Manager
	consul *rollout.ConsulStore // nil unless the states are in Consul
	kv     *api.KV              // the Consul store's, to name a rollout's driver
	prefix string               // the Consul store's key prefix
	kind   string               // "consul", "file" or "memory"
	where  string               // the Consul prefix or the state file
	start  config.RolloutSettings

	tel    *telemetry.Telemetry
	live   *routing.Live
	poke   func()
	addrs  func() Addrs
	logger *zap.Logger

	// The ticker's (and New's restore, before Run).
	marks    map[string]rolloutReading
	lastPoke time.Time

	mu       sync.Mutex
	judged   map[string]*[3]uint64 // by rollout: pass, fail, inconclusive judged by this instance
	seen     map[string]time.Time  // by rollout: the newest judgement seen
	warnedAt config.RolloutSettings
}

// rolloutReading is one tick's cumulative traffic of a rollout's sides.
type rolloutReading struct {
	canary, baseline telemetry.Traffic
}

// rolloutRepoke is how often the ticker pokes the rebuild loop again while
// the live table's weights differ from the manager's (a recompile failed).
const rolloutRepoke = 10 * time.Second

// newRollouts builds the manager and its store for cfg and registers the
// rollout metrics. consul is the App's client, nil without consul:.
func newRollouts(cfg *config.Config, consul *api.Client, tel *telemetry.Telemetry, live *routing.Live,
	poke func(), addrs func() Addrs, logger *zap.Logger, reg prometheus.Registerer) *rollouts {
	ro := &rollouts{
		tel: tel, live: live, poke: poke, addrs: addrs, logger: logger.Named("rollout"),
		start: cfg.Rollouts, warnedAt: cfg.Rollouts,
		marks: map[string]rolloutReading{}, judged: map[string]*[3]uint64{}, seen: map[string]time.Time{},
	}
	var store rollout.Store
	switch {
	case consul != nil:
		ro.prefix = strings.Trim(cfg.Rollouts.ConsulPrefix, "/")
		ro.consul = rollout.NewConsulStore(consul, ro.prefix, logger)
		ro.kv = consul.KV()
		store, ro.kind, ro.where = ro.consul, "consul", ro.prefix
	case cfg.Rollouts.StateFile != "":
		store, ro.kind, ro.where = rollout.NewFileStore(cfg.Rollouts.StateFile), "file", cfg.Rollouts.StateFile
	default:
		store, ro.kind = rollout.NewMemoryStore(), "memory"
	}
	ro.mgr = rollout.NewManager(store, logger)
	reg.MustRegister(&rolloutCollector{ro: ro,
		weight: prometheus.NewDesc("meridian_rollout_weight",
			"The canary's weight (percent) each rollout of the config is at now.", []string{"rollout"}, nil),
		judged: prometheus.NewDesc("meridian_rollout_judgements_total",
			"Intervals of canary traffic judged by this instance (while it drives the rollout), by result: pass, fail, inconclusive.",
			[]string{"rollout", "result"}, nil),
		phase: prometheus.NewDesc("meridian_rollout_phase",
			"1 for the phase each rollout is in (progressing, paused, promoted, failed, aborted), 0 for the others.",
			[]string{"rollout", "phase"}, nil),
	})
	return ro
}

// weight is routing.Inputs.RolloutWeight.
func (ro *rollouts) weight(name string) (int, bool) { return ro.mgr.Weight(name) }

// sync runs in apply, on the table about to be published: the manager
// takes its plans, and the rebuild loop is poked when the manager's
// weights are not the ones the table was compiled with.
func (ro *rollouts) sync(cfg *config.Config, t *routing.Table) {
	ro.mgr.Sync(time.Now(), t.Rollouts)
	ro.mu.Lock()
	for name := range ro.judged {
		if _, ok := t.Rollouts[name]; !ok {
			delete(ro.judged, name)
			delete(ro.seen, name)
		}
	}
	if cfg.Rollouts != ro.warnedAt {
		ro.warnedAt = cfg.Rollouts
		if cfg.Rollouts != ro.start {
			ro.logger.Warn("rollouts settings changed; where rollout states are kept changes at the next restart",
				zap.Any("running", ro.start), zap.Any("configured", cfg.Rollouts))
		}
	}
	ro.mu.Unlock()
	if ro.differs(t) {
		ro.poke()
	}
}

// differs reports whether t routes any rollout at another weight than the
// manager's.
func (ro *rollouts) differs(t *routing.Table) bool {
	for name, w := range ro.mgr.Weights() {
		if tw, ok := t.RolloutWeights[name]; ok && tw != w {
			return true
		}
	}
	return false
}

// restore brings the rollouts to their stored states before the first
// table is served, and reports whether a weight changed (New then rebuilds
// at once). A Consul store's states arrive with its watches once Run runs:
// New does not wait for Consul.
func (ro *rollouts) restore(now time.Time) bool {
	if ro.consul != nil {
		return false
	}
	return ro.tick(now)
}

// run ticks the rollouts once a second until ctx ends, and keeps the
// Consul store's session, locks and watches meanwhile.
func (ro *rollouts) run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	if ro.consul != nil {
		if ro.consul.Identity == "" {
			ro.consul.Identity = ro.identity()
		}
		wg.Go(func() { _ = ro.consul.Run(ctx) })
	}
	tk := time.NewTicker(time.Second)
	defer tk.Stop()
	base := time.Now()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tk.C:
		}
		// The ticks' times are whole seconds apart, so an interval of N
		// seconds is judged at its Nth tick rather than at the next one
		// when a tick fires a little early.
		now := base.Add(time.Since(base).Round(time.Second))
		changed := ro.tick(now)
		if !changed {
			t := ro.live.Load()
			changed = t != nil && ro.differs(t) && now.Sub(ro.lastPoke) >= rolloutRepoke
		}
		if changed {
			ro.lastPoke = now
			ro.poke()
		}
	}
}

// identity names this instance in its Consul locks: the host and the admin
// address, where an operator sends the actions of the rollouts it drives.
func (ro *rollouts) identity() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "meridian"
	}
	if a := ro.addrs().Admin; a != "" {
		return host + " (admin " + a + ")"
	}
	return host
}

// tick advances every rollout to now and reports whether a weight changed.
func (ro *rollouts) tick(now time.Time) bool {
	readings := map[string]rolloutReading{}
	changed := ro.mgr.Tick(now, func(name string, p rollout.Plan) (c, b rollout.Window) {
		r, ok := ro.read(name, p)
		if !ok {
			return c, b // nothing to read: the machine starts the interval afresh
		}
		readings[name] = r
		var mc, mb *telemetry.Traffic
		if m, ok := ro.marks[name]; ok {
			mc, mb = &m.canary, &m.baseline
		}
		c = rollout.Window{Requests: r.canary.Requests, Errors5xx: r.canary.Errors, P99: r.canary.QuantileSince(mc, 0.99)}
		b = rollout.Window{Requests: r.baseline.Requests, Errors5xx: r.baseline.Errors, P99: r.baseline.QuantileSince(mb, 0.99)}
		return c, b
	})
	sts := ro.mgr.Status()
	names := make(map[string]bool, len(sts))
	ro.mu.Lock()
	defer ro.mu.Unlock()
	for _, st := range sts {
		names[st.Name] = true
		// The machine started an interval at this tick: its p99 counts
		// from this reading.
		if r, ok := readings[st.Name]; ok && st.State.IntervalStartedAt.Equal(now) {
			ro.marks[st.Name] = r
		}
		ro.countJudgements(st)
	}
	for name := range ro.marks {
		if !names[name] {
			delete(ro.marks, name)
		}
	}
	return changed
}

// countJudgements counts the judgements st's history gained since the last
// look, when this instance drives the rollout (a follower's are its
// driver's, counted there). The first look only notes where the history
// stands: a restored history was counted before. Caller holds mu.
func (ro *rollouts) countJudgements(st rollout.Status) {
	h := st.State.History
	newest := time.Time{}
	if n := len(h); n > 0 {
		newest = h[n-1].At
	}
	last, seen := ro.seen[st.Name]
	ro.seen[st.Name] = newest
	c := ro.judged[st.Name]
	if c == nil {
		c = new([3]uint64)
		ro.judged[st.Name] = c
	}
	if !seen || !st.Driver {
		return
	}
	for i := len(h) - 1; i >= 0 && h[i].At.After(last); i-- {
		switch h[i].Result {
		case rollout.Pass:
			c[0]++
		case rollout.Fail:
			c[1]++
		default:
			c[2]++
		}
	}
}

// read returns a rollout's cumulative traffic: a route's canary arm and its
// other weighted arms, or a service's canary pool and its other pools.
func (ro *rollouts) read(name string, p rollout.Plan) (rolloutReading, bool) {
	var r rolloutReading
	if route, ok := strings.CutPrefix(name, "route:"); ok {
		c, b, ok := ro.tel.ArmTraffic(route, p.Canary)
		r.canary, r.baseline = c, b
		return r, ok
	}
	svcName, ok := strings.CutPrefix(name, "service:")
	t := ro.live.Load()
	if !ok || t == nil {
		return r, false
	}
	svc := t.Services[svcName]
	if svc == nil {
		return r, false
	}
	found := false
	for _, pool := range svc.Pools {
		tr, ok := ro.tel.PoolTraffic(pool.Name)
		if !ok {
			continue
		}
		if pool.Name == p.Canary {
			r.canary, found = tr, true
			continue
		}
		r.baseline.Add(&tr)
	}
	return r, found
}

// holder names the instance that holds a rollout's Consul lock, "" when
// none does or it cannot be read. The key and its value are
// rollout.ConsulStore's (which does not export them):
// PREFIX/KIND/NAME/lock for a rollout "KIND:NAME", each part path-escaped,
// holding {"holder": ..., "session": ...}. TestRolloutConsulDriverFollower
// checks that the two agree.
func (ro *rollouts) holder(ctx context.Context, name string) string {
	if ro.kv == nil {
		return ""
	}
	key := url.PathEscape(name) + "/lock"
	if kind, rest, ok := strings.Cut(name, ":"); ok {
		key = url.PathEscape(kind) + "/" + url.PathEscape(rest) + "/lock"
	}
	if ro.prefix != "" {
		key = ro.prefix + "/" + key
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	pair, _, err := ro.kv.Get(key, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil || pair == nil || pair.Session == "" {
		return ""
	}
	var v struct {
		Holder string `json:"holder"`
	}
	if json.Unmarshal(pair.Value, &v) != nil {
		return ""
	}
	return v.Holder
}

// rolloutsDoc is the GET /api/v1/rollouts document.
type rolloutsDoc struct {
	// Store is where states are kept: consul (shared: one instance drives
	// each rollout), file or memory; Location its prefix or path.
	Store    string        `json:"store"`
	Location string        `json:"location,omitempty"`
	Rollouts []rolloutJSON `json:"rollouts"`
}

// rolloutJSON is one rollout: the manager's status, and the weight the
// live table routes with (the same a moment after a change).
type rolloutJSON struct {
	rollout.Status
	RoutedWeight *int `json:"routed_weight,omitempty"`
}

func (a *admin) rolloutRoutes(mux *http.ServeMux) {
	if a.ro == nil {
		return
	}
	mux.Handle("GET /api/v1/rollouts", a.auth(http.HandlerFunc(a.rolloutList)))
	mux.Handle("POST /api/v1/rollouts/{name}/{action}", a.auth(http.HandlerFunc(a.rolloutAct)))
}

func (a *admin) rolloutList(w http.ResponseWriter, r *http.Request) {
	doc := rolloutsDoc{Store: a.ro.kind, Location: a.ro.where, Rollouts: []rolloutJSON{}}
	t := a.live.Load()
	for _, st := range a.ro.mgr.Status() {
		rj := rolloutJSON{Status: st}
		if t != nil {
			if w, ok := t.RolloutWeights[st.Name]; ok {
				rj.RoutedWeight = &w
			}
		}
		doc.Rollouts = append(doc.Rollouts, rj)
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, doc)
}

// rolloutAct serves POST /api/v1/rollouts/{name}/{action}: name as
// GET /api/v1/rollouts lists it ("route:web"; escaped or not), action one
// of pause, resume, promote, abort, retry.
func (a *admin) rolloutAct(w http.ResponseWriter, r *http.Request) {
	name, verb := r.PathValue("name"), r.PathValue("action")
	what := "rollout " + verb
	act, err := rollout.ParseAction(verb)
	if err != nil {
		a.record(r, what, name, "bad request", err.Error())
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	st, err := a.ro.mgr.Act(time.Now(), name, act)
	switch {
	case err == nil:
	case errors.Is(err, rollout.ErrNotFound):
		a.record(r, what, name, "not found", err.Error())
		http.Error(w, fmt.Sprintf("no rollout %q: GET /api/v1/rollouts lists them", name), http.StatusNotFound)
		return
	case errors.Is(err, rollout.ErrNotDriver):
		msg := "another instance drives rollout " + name + " and takes its actions"
		if h := a.ro.holder(r.Context(), name); h != "" {
			msg += ": " + h
		} else {
			msg += " (no instance holds its lock right now; one takes it within seconds: try again)"
		}
		a.ro.poke() // the action may have applied here before the save was refused
		a.record(r, what, name, "not the driver", msg)
		http.Error(w, msg, http.StatusConflict)
		return
	case errors.Is(err, rollout.ErrConflict):
		a.record(r, what, name, "conflict", err.Error())
		http.Error(w, err.Error(), http.StatusConflict)
		return
	default:
		// The store failed: reading the state (nothing changed), or saving
		// it (the action applied in this instance only).
		a.ro.poke()
		a.record(r, what, name, "error", err.Error())
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	a.ro.poke()
	a.logger.Info("admin rollout action", zap.String("rollout", name), zap.String("action", verb),
		zap.Int("weight", st.State.Weight), zap.String("remote", r.RemoteAddr))
	a.record(r, what, name, "ok", fmt.Sprintf("%s at %d%%: %s", st.State.Phase, st.State.Weight, st.State.Reason))
	writeJSON(w, rolloutJSON{Status: st})
}

// rolloutCollector exports the rollouts of the current config at scrape
// time: a rollout removed from the config has no series left.
type rolloutCollector struct {
	ro                    *rollouts
	weight, judged, phase *prometheus.Desc
}

var rolloutPhases = [...]rollout.Phase{rollout.Progressing, rollout.Paused, rollout.Promoted, rollout.Failed, rollout.Aborted}

var rolloutResults = [...]rollout.Result{rollout.Pass, rollout.Fail, rollout.Inconclusive}

func (c *rolloutCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.weight
	ch <- c.judged
	ch <- c.phase
}

func (c *rolloutCollector) Collect(ch chan<- prometheus.Metric) {
	for _, st := range c.ro.mgr.Status() {
		ch <- prometheus.MustNewConstMetric(c.weight, prometheus.GaugeValue, float64(st.State.Weight), st.Name)
		for _, p := range rolloutPhases {
			v := 0.0
			if st.State.Phase == p {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(c.phase, prometheus.GaugeValue, v, st.Name, string(p))
		}
		var n [3]uint64
		c.ro.mu.Lock()
		if j := c.ro.judged[st.Name]; j != nil {
			n = *j
		}
		c.ro.mu.Unlock()
		for i, res := range rolloutResults {
			ch <- prometheus.MustNewConstMetric(c.judged, prometheus.CounterValue, float64(n[i]), st.Name, string(res))
		}
	}
}
