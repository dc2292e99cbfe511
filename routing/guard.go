package routing

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/meridian-lb/meridian/config"
)

// Failover guardrails (services.NAME.guard: {min_pools: N} or
// {min_regions: N}).
//
// A pool of a guarded service is healthy while one of its endpoints is
// available by its own health (probe, passive ejection, operator
// overrides), and serving while it is healthy or held. A health change that
// would leave fewer than N pools (or distinct pool regions) of the service
// serving is not applied to it: the pools that were serving before the
// change and lost their last healthy endpoint stay in service, on their
// endpoints that fail health checks ("fail static"), as few as it takes to
// keep N, preferring pools already held, then the service's order. A
// change that leaves N or more healthy is applied, and releases every hold.
//
// Operator intent wins. A held pool serves from its endpoints an operator
// has not drained or forced down, as in panic mode: a guard never brings
// back an excluded endpoint, and a pool whose endpoints are all excluded
// cannot be held (the guard is then below its minimum, and says why). A
// drain through the admin API that would break a guard is refused unless
// forced (Guards.Check); a forced drain applies.
//
// Mechanism. The hold is a flag on the pool, read by Endpoint.Available, so
// the proxy's pick, DNS steering, explain and every report see one answer
// and nothing on the request path changes. It is a pool's flag, not a
// service's: a held pool is held for every route, split, mirror and DNS
// record that uses it (the proxy and DNS read one availability per
// endpoint). Guards evaluates on every health change
// (Guards.HealthChanged, the health engine's OnChange) and on every table
// the rebuild loop publishes (Guards.Bind). So that no request or query
// sees a change before the guard decided on it, an evaluation also arms
// each serving pool whose loss would break its guard: when such a pool's
// last healthy endpoint fails, its other endpoints (not drained or forced
// down) count as available at once, and the evaluation that follows
// records the hold.
//
// State (which pools were serving, held, and the hold counts) is kept by
// service and pool name in Guards, so it survives reloads; it starts empty,
// so a guard can hold only pools it has seen serving since the start.

// Guard states (GuardStatus.State).
const (
	// GuardOK: at least the minimum of pools or regions is healthy.
	GuardOK = "ok"
	// GuardHolding: fewer are healthy; the guard holds pools in service.
	GuardHolding = "holding"
	// GuardBelow: fewer are serving and nothing can be held: no pool that
	// served before is left with an endpoint not drained or forced down,
	// or none has served since the start.
	GuardBelow = "below"
)

// Pool guard flags.
const (
	guardHeld  uint32 = 1 << iota // a guard keeps the pool in service
	guardArmed                    // its last healthy endpoint failing would break a guard: hold at once
)

// poolGuard is a pool's guard flags and the services holding it.
type poolGuard struct {
	flags atomic.Uint32
	by    atomic.Pointer[[]string]
}

// serviceGuard is a guarded service's last evaluated status.
type serviceGuard struct {
	status atomic.Pointer[GuardStatus]
}

// healthy reports whether the endpoint is available by its own health,
// guards aside.
func (e *Endpoint) healthy() bool { return e.Health == nil || e.Health.Available() }

// anyHealthy reports whether any endpoint of the pool is healthy.
func (p *Pool) anyHealthy() bool {
	for _, e := range p.Endpoints {
		if e.healthy() {
			return true
		}
	}
	return false
}

// holdable reports whether a guard can hold the pool: it has an endpoint
// no operator drained or forced down.
func (p *Pool) holdable() bool {
	for _, e := range p.Endpoints {
		if !e.Excluded() {
			return true
		}
	}
	return false
}

// held reports whether a failover guard keeps e, which is not healthy, in
// service (the slow path of Available, kept out of it so that it inlines).
//
//go:noinline
func (e *Endpoint) held() bool { return e.pool != nil && e.pool.guardHolds(e) }

// guardHolds reports whether a guard keeps e, which is not healthy, in
// service: its pool is held, or armed and without a healthy endpoint left,
// and no operator excluded e.
func (p *Pool) guardHolds(e *Endpoint) bool {
	f := p.guard.flags.Load()
	if f == 0 || e.Excluded() {
		return false
	}
	return f&guardHeld != 0 || !p.anyHealthy()
}

// HeldBy names the services whose guards hold the pool in service now;
// nil when none does.
func (p *Pool) HeldBy() []string {
	if p.guard.flags.Load()&guardHeld == 0 {
		return nil
	}
	if by := p.guard.by.Load(); by != nil {
		return *by
	}
	return nil
}

// GuardStatus is a guarded service's guard as last evaluated.
type GuardStatus struct {
	MinPools   int `json:"min_pools,omitempty"`
	MinRegions int `json:"min_regions,omitempty"`
	// State is GuardOK, GuardHolding or GuardBelow.
	State string `json:"state"`
	// Serving are the pools serving now (healthy or held), Healthy those
	// with a healthy endpoint, Held those the guard keeps in service on
	// endpoints failing health checks; each in the service's order.
	Serving []string `json:"serving"`
	Healthy []string `json:"healthy"`
	Held    []string `json:"held,omitempty"`
	// Count is how many pools (min_pools) or distinct regions
	// (min_regions) are serving.
	Count  int    `json:"count"`
	Reason string `json:"reason"`
	// Since is when State last changed.
	Since time.Time `json:"since"`
	// Holds counts the pools the guard started holding since the start
	// (meridian_service_guard_holds_total).
	Holds uint64 `json:"holds"`
}

// Active reports whether the guard holds a pool in service now
// (meridian_service_guard_active).
func (s *GuardStatus) Active() bool { return s != nil && s.State == GuardHolding }

// GuardStatus is the service's guard as last evaluated; nil when the
// service has no guard or no evaluation ran on this table yet.
func (s *Service) GuardStatus() *GuardStatus { return s.guard.status.Load() }

// guardUnit says what a guard counts.
type guardUnit struct {
	min     int
	regions bool
}

func unitOf(g *config.Guard) guardUnit {
	if g.MinRegions > 0 {
		return guardUnit{min: g.MinRegions, regions: true}
	}
	return guardUnit{min: g.MinPools}
}

// count is how many pools, or distinct non-empty regions, ps has.
func (u guardUnit) count(ps []*Pool) int {
	if !u.regions {
		return len(ps)
	}
	var seen []string
	for _, p := range ps {
		if p.Region != "" && !slices.Contains(seen, p.Region) {
			seen = append(seen, p.Region)
		}
	}
	return len(seen)
}

func (u guardUnit) String() string {
	if u.regions {
		return fmt.Sprintf("min_regions %d", u.min)
	}
	return fmt.Sprintf("min_pools %d", u.min)
}

// describe says "2 pools (a, b)" or "1 region (eu: a)".
func (u guardUnit) describe(ps []*Pool) string {
	n := u.count(ps)
	if u.regions {
		var parts []string
		for _, p := range ps {
			parts = append(parts, p.Region+": "+p.Name)
		}
		return fmt.Sprintf("%d %s (%s)", n, plural(n, "region", "regions"), orNone(parts))
	}
	return fmt.Sprintf("%d %s (%s)", n, plural(n, "pool", "pools"), orNone(poolNames(ps)))
}

// healthyPhrase says how many pools or regions have a healthy endpoint,
// when that is below the minimum.
func (u guardUnit) healthyPhrase(healthy []*Pool) string {
	if u.count(healthy) == 0 {
		if u.regions {
			return "no region has a pool with a healthy endpoint"
		}
		return "no pool has a healthy endpoint"
	}
	return "only " + u.describe(healthy) + " with a healthy endpoint"
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

func poolNames(ps []*Pool) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Name
	}
	return out
}

// compileGuards checks each service's guard against its compiled pools and
// links the endpoints of guarded services' pools to their pool, which
// Endpoint.Available reads. Pools of unguarded services stay unlinked:
// their endpoints' availability costs nothing more.
func compileGuards(cfg *config.Config, t *Table) []error {
	var errs []error
	for _, name := range sortedKeys(cfg.Services) {
		g := cfg.Services[name].Guard
		svc := t.Services[name]
		if g == nil || svc == nil {
			continue
		}
		path := "services." + name + ".guard"
		var regions []string
		pools := map[string]bool{}
		for _, p := range svc.Pools {
			pools[p.Name] = true
			if p.Region != "" && !slices.Contains(regions, p.Region) {
				regions = append(regions, p.Region)
			}
		}
		n := len(pools)
		switch {
		case g.MinPools != 0 && g.MinRegions != 0:
			errs = append(errs, config.Problem{Path: path, Msg: "set min_pools or min_regions, not both"})
			continue
		case g.MinPools < 0:
			errs = append(errs, config.Problem{Path: path + ".min_pools", Msg: fmt.Sprintf("%d: must be at least 1", g.MinPools)})
			continue
		case g.MinRegions < 0:
			errs = append(errs, config.Problem{Path: path + ".min_regions", Msg: fmt.Sprintf("%d: must be at least 1", g.MinRegions)})
			continue
		case g.MinPools == 0 && g.MinRegions == 0:
			errs = append(errs, config.Problem{Path: path, Msg: "set min_pools or min_regions"})
			continue
		case g.MinPools > n:
			errs = append(errs, config.Problem{Path: path + ".min_pools", Msg: fmt.Sprintf("%d is more than the service's %d %s", g.MinPools, n, plural(n, "pool", "pools"))})
			continue
		case g.MinRegions > len(regions) && len(regions) == 0:
			errs = append(errs, config.Problem{Path: path + ".min_regions", Msg: fmt.Sprintf("%d: none of the service's pools names a region", g.MinRegions)})
			continue
		case g.MinRegions > len(regions):
			slices.Sort(regions)
			errs = append(errs, config.Problem{Path: path + ".min_regions", Msg: fmt.Sprintf("%d is more than the %d %s of the service's pools (%s)", g.MinRegions, len(regions), plural(len(regions), "region", "regions"), strings.Join(regions, ", "))})
			continue
		}
		svc.Guard = g
		for _, p := range svc.Pools {
			for _, e := range p.Endpoints {
				e.pool = p
			}
		}
	}
	return errs
}

// GuardOptions configure Guards.
type GuardOptions struct {
	// Logger receives a line when a guard starts or stops holding; nil
	// discards.
	Logger *zap.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Guards is the failover guardrails' state across tables: which pools of
// each guarded service were serving and are held, and the hold counts. The
// rebuild loop binds each table it publishes (Bind); the health engine's
// change callback re-evaluates the bound table (HealthChanged). It is also
// the collector of meridian_service_guard_active{service} and
// meridian_service_guard_holds_total{service}. Safe for concurrent use.
type Guards struct {
	log *zap.Logger
	now func() time.Time

	mu sync.Mutex
	// services are the bound table's guarded services, by name; pools
	// their pools, the only ones a guard can flag.
	services []*Service
	pools    []*Pool
	svcs     map[string]*guardState

	activeDesc, holdsDesc *prometheus.Desc
}

// guardState is one guarded service's state, by pool name.
type guardState struct {
	serving []string
	held    []string
	state   string
	since   time.Time
	holds   uint64
}

// NewGuards returns an empty Guards.
func NewGuards(opts GuardOptions) *Guards {
	g := &Guards{log: opts.Logger, now: opts.Now, svcs: map[string]*guardState{}}
	if g.log == nil {
		g.log = zap.NewNop()
	}
	if g.now == nil {
		g.now = time.Now
	}
	g.activeDesc = prometheus.NewDesc("meridian_service_guard_active",
		"1 while the service's failover guard holds a pool in service that fails its health checks (fewer than its min_pools or min_regions are healthy), else 0.",
		[]string{"service"}, nil)
	g.holdsDesc = prometheus.NewDesc("meridian_service_guard_holds_total",
		"Pools the service's failover guard started holding in service against their health checks.",
		[]string{"service"}, nil)
	return g
}

// Bind evaluates t's guards, carrying the state of the table bound before
// over by name, and makes t the table health changes re-evaluate. The
// rebuild loop calls it after BindHealth and before publishing t.
func (g *Guards) Bind(t *Table) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.services, g.pools = nil, nil
	for _, name := range sortedKeys(t.Services) {
		if s := t.Services[name]; s.Guard != nil {
			g.services = append(g.services, s)
			for _, p := range s.Pools {
				if !slices.Contains(g.pools, p) {
					g.pools = append(g.pools, p)
				}
			}
		}
	}
	for name := range g.svcs {
		if t.Services[name] == nil || t.Services[name].Guard == nil {
			delete(g.svcs, name) // its guard is gone: so are its series
		}
	}
	g.evaluateLocked()
}

// HealthChanged re-evaluates the bound table's guards. It is the health
// engine's change callback: it takes one short lock, reads only atomics of
// the members, and does not block.
func (g *Guards) HealthChanged() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.services) > 0 {
		g.evaluateLocked()
	}
}

// evaluateLocked evaluates the bound table's guards and flags its pools.
// It costs a pass over the guarded services' endpoints, nothing for a
// table without guards.
func (g *Guards) evaluateLocked() {
	now := g.now()
	held := map[*Pool][]string{}
	armed := map[*Pool]bool{}
	for _, s := range g.services {
		st := g.svcs[s.Name]
		if st == nil {
			st = &guardState{}
			g.svcs[s.Name] = st
		}
		g.evaluateService(s, st, now, held, armed)
	}
	for _, p := range g.pools {
		var f uint32
		if by, ok := held[p]; ok {
			f |= guardHeld
			p.guard.by.Store(&by)
		}
		if armed[p] {
			f |= guardArmed
		}
		p.guard.flags.Store(f)
	}
}

// evaluateService decides which pools of s are serving and held, records
// it in st and s's status, and adds s's holds and armed pools.
func (g *Guards) evaluateService(s *Service, st *guardState, now time.Time, held map[*Pool][]string, armed map[*Pool]bool) {
	u := unitOf(s.Guard)
	var healthy []*Pool
	for _, p := range s.Pools {
		if p.anyHealthy() && !slices.Contains(healthy, p) {
			healthy = append(healthy, p)
		}
	}
	serving := slices.Clone(healthy)
	var keep []*Pool
	var lost []string // pools that served and cannot be held
	if u.count(healthy) < u.min {
		// Candidates: the pools serving before this change that are not
		// healthy now, those held already first, then in service order.
		var cands []*Pool
		for _, pass := range [][]string{st.held, st.serving} {
			for _, p := range s.Pools {
				if slices.Contains(pass, p.Name) && !slices.Contains(healthy, p) && !slices.Contains(cands, p) {
					cands = append(cands, p)
				}
			}
		}
		for _, p := range cands {
			if u.count(serving) >= u.min {
				break
			}
			if u.regions && (p.Region == "" || slices.ContainsFunc(serving, func(q *Pool) bool { return q.Region == p.Region })) {
				continue
			}
			if !p.holdable() {
				lost = append(lost, p.Name)
				continue
			}
			serving = append(serving, p)
			keep = append(keep, p)
		}
	}
	// Serving in the service's order.
	ordered := make([]*Pool, 0, len(serving))
	for _, p := range s.Pools {
		if slices.Contains(serving, p) && !slices.Contains(ordered, p) {
			ordered = append(ordered, p)
		}
	}
	serving = ordered

	state := GuardOK
	var reason string
	switch {
	case u.count(healthy) >= u.min:
		reason = fmt.Sprintf("%s serving on healthy endpoints (%s)", u.describe(healthy), u)
	case len(keep) > 0:
		state = GuardHolding
		reason = fmt.Sprintf("%s (%s): holding %s in service on endpoints failing health checks (fail static); %s serving",
			u.healthyPhrase(healthy), u, strings.Join(poolNames(keep), ", "), u.describe(serving))
	case u.count(serving) == 0:
		state = GuardBelow
		reason = fmt.Sprintf("nothing serving (%s) and nothing to hold", u)
	default:
		state = GuardBelow
		reason = fmt.Sprintf("only %s serving (%s) and nothing to hold", u.describe(serving), u)
	}
	if len(lost) > 0 {
		reason += fmt.Sprintf("; cannot hold %s: every endpoint drained or forced down by an operator", strings.Join(lost, ", "))
	} else if state == GuardBelow && len(st.serving) == 0 {
		reason += ": no pool has served since the start"
	}

	prevHeld := st.held
	newHolds := 0
	for _, p := range keep {
		if !slices.Contains(prevHeld, p.Name) {
			newHolds++
		}
		held[p] = append(held[p], s.Name)
	}
	st.holds += uint64(newHolds)
	for _, p := range serving {
		rest := slices.DeleteFunc(slices.Clone(serving), func(q *Pool) bool { return q == p })
		if u.count(rest) < u.min {
			armed[p] = true
		}
	}
	if state != st.state {
		// The first verdict is not logged, nor a guard below its minimum
		// before anything served (a start, before the first probes).
		if st.state != "" && !(state == GuardBelow && len(st.serving) == 0 && len(lost) == 0) {
			lvl := g.log.Warn
			if state == GuardOK {
				lvl = g.log.Info
			}
			lvl("failover guard "+state, zap.String("service", s.Name), zap.String("was", st.state), zap.String("reason", reason))
		}
		st.state, st.since = state, now
	} else if newHolds > 0 {
		g.log.Warn("failover guard holding more pools", zap.String("service", s.Name), zap.String("reason", reason))
	}
	st.serving = poolNames(serving)
	st.held = poolNames(keep)
	s.guard.status.Store(&GuardStatus{
		MinPools: s.Guard.MinPools, MinRegions: s.Guard.MinRegions,
		State: state, Serving: st.serving, Healthy: poolNames(healthy), Held: st.held,
		Count: u.count(serving), Reason: reason, Since: st.since, Holds: st.holds,
	})
}

// GuardBreach is a guard that an action would break.
type GuardBreach struct {
	Service string `json:"service"`
	// Guard is "min_pools N" or "min_regions N".
	Guard string `json:"guard"`
	// Before and After count the pools or regions serving.
	Before int `json:"before"`
	After  int `json:"after"`
	// Lost are the pools that would stop serving.
	Lost   []string `json:"lost"`
	Reason string   `json:"reason"`
}

// Check reports the guards of t's services that taking out the endpoints
// out names (by pool and address: a drain or a force-down) would break:
// those whose service would lose a pool (or region) it serves from, and be
// left with fewer than its minimum. A healthy pool counts as lost when it
// would have no healthy endpoint left (the guard might hold it on failing
// ones, but a planned action must not rely on that); a held pool when it
// would have no endpoint left that is not drained or forced down. It reads
// live health and changes nothing.
func (g *Guards) Check(t *Table, out func(pool, address string) bool) []GuardBreach {
	g.mu.Lock()
	defer g.mu.Unlock()
	var breaches []GuardBreach
	for _, name := range sortedKeys(t.Services) {
		s := t.Services[name]
		if s.Guard == nil {
			continue
		}
		touched := false
		for _, p := range s.Pools {
			for _, e := range p.Endpoints {
				touched = touched || out(p.Name, e.Address)
			}
		}
		if !touched {
			continue
		}
		u := unitOf(s.Guard)
		var heldNames, servingNames []string
		if st := g.svcs[name]; st != nil {
			heldNames, servingNames = st.held, st.serving
		}
		var before, after []*Pool
		var lost []string
		for _, p := range s.Pools {
			isHealthy, isHeld := p.anyHealthy(), slices.Contains(heldNames, p.Name)
			if !isHealthy && !(isHeld && slices.Contains(servingNames, p.Name)) || slices.Contains(before, p) {
				continue
			}
			before = append(before, p)
			stays := false
			for _, e := range p.Endpoints {
				if out(p.Name, e.Address) {
					continue
				}
				if isHealthy && e.healthy() || !isHealthy && !e.Excluded() {
					stays = true
					break
				}
			}
			if stays {
				after = append(after, p)
			} else {
				lost = append(lost, p.Name)
			}
		}
		nb, na := u.count(before), u.count(after)
		if na >= nb || na >= u.min {
			continue
		}
		breaches = append(breaches, GuardBreach{
			Service: name, Guard: u.String(), Before: nb, After: na, Lost: lost,
			Reason: fmt.Sprintf("service %s: guard %s: %s would stop serving, leaving %s serving",
				name, u, strings.Join(lost, ", "), u.describe(after)),
		})
	}
	return breaches
}

// Describe implements prometheus.Collector.
func (g *Guards) Describe(ch chan<- *prometheus.Desc) {
	ch <- g.activeDesc
	ch <- g.holdsDesc
}

// Collect implements prometheus.Collector: one series of each per guarded
// service of the bound table.
func (g *Guards) Collect(ch chan<- prometheus.Metric) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for name, st := range g.svcs {
		active := 0.0
		if st.state == GuardHolding {
			active = 1
		}
		ch <- prometheus.MustNewConstMetric(g.activeDesc, prometheus.GaugeValue, active, name)
		ch <- prometheus.MustNewConstMetric(g.holdsDesc, prometheus.CounterValue, float64(st.holds), name)
	}
}
