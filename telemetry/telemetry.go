package telemetry

import (
	"context"
	"math/bits"
	"runtime"
	"slices"
	"sync"
	"time"
)

// Options configure a Telemetry.
type Options struct {
	// Now is the clock the tick reads; nil means time.Now. Tests that
	// drive Tick themselves pass their own.
	Now func() time.Time
	// Stripes is how many stripes each HTTP cell has (see HTTP), rounded
	// up to a power of two; 0 means twice GOMAXPROCS, at most 8.
	Stripes int
}

// retireAfter is how long the cells of a table that is no longer live keep
// feeding their route, service, pool or zone: requests that started on the
// old table finish on its cells, and their counts still reach the totals.
// They are no longer listed or exported.
const retireAfter = time.Minute

// InFlighter reports the requests in flight on an endpoint;
// *routing.Endpoint implements it (least_request reads the same count).
type InFlighter interface{ InFlight() int64 }

// Telemetry is the single source of Meridian's traffic numbers: counters
// per route arm, service, pool, endpoint, zone and record, sliding windows
// and series over them, served as JSON (Stats) and to Prometheus
// (Collector). See the package documentation for the concurrency contract.
type Telemetry struct {
	now     func() time.Time
	stripes int

	mu       sync.Mutex
	ticks    uint64
	lastTick int64 // Unix ns of the last Tick; 0 before the first
	// gen counts the activations: the entries and aggregates of the live
	// set carry the last one, so an activation changes only what changed.
	gen uint64
	// The live HTTP cells by key (the entries of active, for PrepareHTTP
	// to find), and those of earlier tables still draining into their
	// aggregates.
	arms     map[armKey]*httpEntry
	eps      map[epKey]*httpEntry
	retiring []*httpEntry
	routes   map[string]*httpAgg
	services map[string]*httpAgg
	pools    map[string]*httpAgg
	// dormant are the aggregates that are not live: made for a set not
	// activated yet, or left the table. forget drops them after
	// retireAfter.
	dormant []*httpAgg
	active  *HTTPSet // the set the live table was compiled with

	records    map[recKey]*dnsEntry
	dnsRetired []*dnsEntry
	zones      map[string]*dnsAgg
	dnsActive  *DNSSet
	scratch    httpVals
	dnsScratch dnsVals
}

// New returns an empty Telemetry. Run ticks it; without Run the counters
// and totals still work, but the windows and series stay empty.
func New(o Options) *Telemetry {
	now := o.Now
	if now == nil {
		now = time.Now
	}
	n := o.Stripes
	if n <= 0 {
		n = min(2*runtime.GOMAXPROCS(0), 8)
	}
	return &Telemetry{
		now:      now,
		stripes:  1 << bits.Len(uint(n-1)),
		arms:     map[armKey]*httpEntry{},
		eps:      map[epKey]*httpEntry{},
		routes:   map[string]*httpAgg{},
		services: map[string]*httpAgg{},
		pools:    map[string]*httpAgg{},
		records:  map[recKey]*dnsEntry{},
		zones:    map[string]*dnsAgg{},
	}
}

// Run ticks every second until ctx is done.
func (t *Telemetry) Run(ctx context.Context) error {
	tk := time.NewTicker(Tick)
	defer tk.Stop()
	t.Tick()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tk.C:
			t.Tick()
		}
	}
}

type armKey struct {
	route   string
	entry   int
	service string
}

type epKey struct{ pool, address string }

// httpEntry is the registry's side of one HTTP cell: where its counts go
// and what it had at the last flush.
type httpEntry struct {
	cell    *HTTP
	parents [2]*httpAgg // route and service for arms, pool for endpoints
	side    side
	last    *httpVals // nil until the cell counted something
	win     *windows  // nil until then too
	retired int64     // Unix ns; 0 while live
	gen     uint64    // the last activation whose set has it
	arm     ArmSpec   // arms only
	address string    // endpoints only
	load    InFlighter
}

// httpAgg is a route, service or pool: the sum of its cells, including
// cells of earlier tables while they retire.
//
// An aggregate that has counted nothing has no counts and no windows of
// its own: it reads idle, the windows of every aggregate made with it
// (all zeros, pushed once per tick for all of them). Its first count
// gives it a copy of those (count, on the tick's goroutine), which is
// exactly what windows of its own would hold by then. A table of
// thousands of routes of which a few get traffic keeps one set of
// windows for the idle ones instead of one each.
type httpAgg struct {
	name     string
	side     side
	home     map[string]*httpAgg // the map it is kept in, by name
	cum      *httpVals           // nil until a cell of it counted
	win      *windows            // its own windows, from its first count
	idle     *idleWindows        // until then
	live     bool
	dormant  bool   // in Telemetry.dormant
	gone     bool   // no longer in home (forgotten, or replaced by another of its name)
	gen      uint64 // the last activation whose set has it
	lastLive int64
}

// idleWindows are the windows of the aggregates made at one time (by one
// PrepareHTTP) while they have counted nothing.
type idleWindows struct {
	win  *windows
	tick uint64 // the tick that last pushed them
}

// windows returns the aggregate's windows: its own, or its idle ones.
func (a *httpAgg) windows() *windows {
	if a.win != nil || a.idle == nil {
		return a.win
	}
	return a.idle.win
}

// noVals are the counts of what counted nothing; never written.
var noVals httpVals

// vals returns the aggregate's counts (noVals before it counted), to read.
func (a *httpAgg) vals() *httpVals {
	if a.cum == nil {
		return &noVals
	}
	return a.cum
}

// count adds a cell's counts since its last flush. The first count gives
// the aggregate its counts and its own windows: a copy of its idle ones,
// so nothing it showed before changes. Caller holds mu.
func (a *httpAgg) count(d *httpVals) {
	if a.cum == nil {
		a.cum = new(httpVals)
		if a.win == nil && a.idle != nil {
			a.win = a.idle.win.clone()
		}
		a.idle = nil
	}
	a.cum.add(d)
}

// push takes the tick's snapshot of the aggregate: into its own windows,
// or into its idle ones, once for all the aggregates sharing them.
func (a *httpAgg) push(now int64, coarse bool, tick uint64) {
	if a.win != nil {
		v := a.vals()
		a.win.push(now, coarse, v.requests(a.side), v.errors(a.side), v.bytesIn, v.bytes, v.windowHist(a.side))
		return
	}
	if iw := a.idle; iw != nil && iw.tick != tick {
		iw.tick = tick
		iw.win.push(now, coarse, 0, 0, 0, 0, nil)
	}
}

// ArmSpec is one arm of a route: a split entry, or the route's only
// service (Entry -1).
type ArmSpec struct {
	Entry   int    `json:"entry"`
	Service string `json:"service"`
	// Rule is true for a split entry with when:, which has no weight.
	Rule bool `json:"rule,omitempty"`
	// Weight is the declared weight of a weighted entry.
	Weight int `json:"weight,omitempty"`
}

// RouteSpec is a route of a table being compiled.
type RouteSpec struct {
	Name string
	// Arms are indexed as the proxy indexes them: by split entry, or one
	// arm (Entry -1) for a route without a split.
	Arms []ArmSpec
}

// PoolSpec is a pool of a table being compiled.
type PoolSpec struct {
	Name string
	// Endpoints are in the pool's order: the proxy indexes them so.
	Endpoints []EndpointSpec
}

// EndpointSpec is an endpoint of a pool being compiled.
type EndpointSpec struct {
	Address string
	// Load reports its requests in flight; may be nil.
	Load InFlighter
}

// HTTPSet is the HTTP cells of one compiled table, found or made by
// PrepareHTTP. It changes nothing live until ActivateHTTP.
type HTTPSet struct {
	routes []setRoute
	pools  []setPool
}

type setRoute struct {
	name  string
	arms  []*httpEntry
	cells []*HTTP
}

type setPool struct {
	name  string
	agg   *httpAgg
	eps   []*httpEntry
	cells []*HTTP
	loads []InFlighter
}

// Arms returns the cells of the i-th route's arms, in spec order.
func (s *HTTPSet) Arms(i int) []*HTTP {
	if s == nil || i >= len(s.routes) {
		return nil
	}
	return s.routes[i].cells
}

// Endpoints returns the cells of the i-th pool's endpoints, in spec order.
func (s *HTTPSet) Endpoints(i int) []*HTTP {
	if s == nil || i >= len(s.pools) {
		return nil
	}
	return s.pools[i].cells
}

// aggMaker makes the aggregates of one PrepareHTTP: made at one time, they
// share their idle windows.
type aggMaker struct {
	t    *Telemetry
	now  int64
	idle *idleWindows
}

// get returns the aggregate called name, making it when there is none. A
// new one is not live until ActivateHTTP; it is kept for retireAfter
// meanwhile, like one that left the table. Caller holds mu.
func (m *aggMaker) get(home map[string]*httpAgg, name string, sd side) *httpAgg {
	a := home[name]
	if a == nil {
		if m.idle == nil {
			m.idle = &idleWindows{win: newWindows(true, true, m.now)}
		}
		a = &httpAgg{name: name, side: sd, home: home, idle: m.idle, lastLive: m.now}
		home[name] = a
		m.t.setDormant(a)
	}
	return a
}

// setDormant lists a that is not live for forget. Caller holds mu.
func (t *Telemetry) setDormant(a *httpAgg) {
	if !a.dormant {
		a.dormant = true
		t.dormant = append(t.dormant, a)
	}
}

// PrepareHTTP finds the cells of a table being compiled: those of the live
// table for the arms (route, entry, service) and endpoints (pool, address)
// it keeps, so their counts and windows go on, and new ones for the rest.
// Nothing is listed or exported until ActivateHTTP; a set never activated
// costs only memory, which the garbage collector takes back.
func (t *Telemetry) PrepareHTTP(routes []RouteSpec, pools []PoolSpec) *HTTPSet {
	if t == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	mk := aggMaker{t: t, now: t.now().UnixNano()}
	// The set's slices are cut from one allocation per kind: a table of
	// thousands of routes makes a few large allocations, not thousands.
	var nArms, nEps int
	for _, r := range routes {
		nArms += len(r.Arms)
	}
	for _, p := range pools {
		nEps += len(p.Endpoints)
	}
	entries := make([]*httpEntry, nArms+nEps)
	cells := make([]*HTTP, nArms+nEps)
	loads := make([]InFlighter, nEps)
	cut := func(n int) ([]*httpEntry, []*HTTP) {
		e, c := entries[:n:n], cells[:n:n]
		entries, cells = entries[n:], cells[n:]
		return e, c
	}
	s := &HTTPSet{routes: make([]setRoute, len(routes)), pools: make([]setPool, len(pools))}
	// The live set's entries are in t.arms and t.eps; most tables keep
	// the routes and pools of the live one in the same places, where
	// they are found without hashing their keys.
	var live HTTPSet
	if t.active != nil {
		live = *t.active
	}
	for i, r := range routes {
		sr := setRoute{name: r.Name}
		sr.arms, sr.cells = cut(len(r.Arms))
		var same []*httpEntry // the live set's entries of the route at i, when it is the same route
		if i < len(live.routes) && live.routes[i].name == r.Name && len(live.routes[i].arms) == len(r.Arms) {
			same = live.routes[i].arms
		}
		for j, a := range r.Arms {
			var e *httpEntry
			if same != nil && same[j].arm.Entry == a.Entry && same[j].arm.Service == a.Service {
				e = same[j]
			} else {
				e = t.arms[armKey{r.Name, a.Entry, a.Service}]
			}
			if e == nil {
				e = &httpEntry{cell: newHTTP(), side: clientSide,
					parents: [2]*httpAgg{mk.get(t.routes, r.Name, clientSide), mk.get(t.services, a.Service, clientSide)}}
			}
			e.arm = a // the declared weight may change; the key does not
			sr.arms[j], sr.cells[j] = e, e.cell
		}
		s.routes[i] = sr
	}
	for i, p := range pools {
		sp := setPool{name: p.Name, agg: mk.get(t.pools, p.Name, upstreamSide)} // also for a pool without endpoints
		sp.eps, sp.cells = cut(len(p.Endpoints))
		sp.loads, loads = loads[:len(p.Endpoints):len(p.Endpoints)], loads[len(p.Endpoints):]
		var same []*httpEntry
		if i < len(live.pools) && live.pools[i].name == p.Name && len(live.pools[i].eps) == len(p.Endpoints) {
			same = live.pools[i].eps
		}
		for j, ep := range p.Endpoints {
			var e *httpEntry
			if same != nil && same[j].address == ep.Address {
				e = same[j]
			} else {
				e = t.eps[epKey{p.Name, ep.Address}]
			}
			if e == nil {
				e = &httpEntry{cell: newHTTP(), side: upstreamSide, address: ep.Address, parents: [2]*httpAgg{sp.agg}}
			}
			sp.eps[j], sp.cells[j], sp.loads[j] = e, e.cell, ep.Load
		}
		s.pools[i] = sp
	}
	return s
}

// ActivateHTTP makes s the live set: its cells are listed and exported,
// and the cells of the previous set that s does not keep retire. It
// touches the maps only for what changed: the entries and aggregates of
// the live set carry the activation's generation, so the previous set's
// that do not are the ones leaving.
func (t *Telemetry) ActivateHTTP(s *HTTPSet) {
	if t == nil || s == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now().UnixNano()
	prev := t.gen
	t.gen++
	g := t.gen
	// An aggregate of the set is live. Should one have been forgotten
	// since the set was prepared (a set activated long after), it is put
	// back: the set's cells feed it.
	live := func(a *httpAgg) {
		if a == nil || a.gen == g {
			return
		}
		a.gen, a.live = g, true
		if a.gone {
			if other := a.home[a.name]; other != nil {
				other.gone = true
			}
			a.home[a.name], a.gone = a, false
		}
	}
	// An entry of the previous set is in the maps already: only the others
	// are put in.
	for i := range s.routes {
		r := &s.routes[i]
		for _, e := range r.arms {
			if e.gen != prev || prev == 0 {
				t.arms[armKey{r.name, e.arm.Entry, e.arm.Service}] = e
			}
			e.gen, e.retired = g, 0
			if e.cell.touched.Load() {
				e.cell.grow(t.stripes) // a Telemetry nobody ticks (see HTTP)
			}
			live(e.parents[0])
			live(e.parents[1])
		}
		if len(r.arms) == 0 {
			live(t.routes[r.name])
		}
	}
	for i := range s.pools {
		p := &s.pools[i]
		live(p.agg)
		for j, e := range p.eps {
			if e.gen != prev || prev == 0 {
				t.eps[epKey{p.name, e.address}] = e
			}
			e.gen, e.retired = g, 0
			e.load = p.loads[j]
			if e.cell.touched.Load() {
				e.cell.grow(t.stripes)
			}
			live(e.parents[0])
		}
	}
	// The previous set's entries and aggregates that s does not have
	// leave. A retiring cell is no longer listed: its windows go now, its
	// counts keep flowing into its aggregates until forget drops it.
	leave := func(a *httpAgg) {
		if a != nil && a.gen != g && a.live {
			a.live, a.lastLive = false, now
			t.setDormant(a)
		}
	}
	retire := func(e *httpEntry) {
		e.retired, e.win = now, nil
		t.retiring = append(t.retiring, e)
		leave(e.parents[0])
		leave(e.parents[1])
	}
	if old := t.active; old != nil {
		for i := range old.routes {
			r := &old.routes[i]
			for _, e := range r.arms {
				if e.gen != g {
					if k := (armKey{r.name, e.arm.Entry, e.arm.Service}); t.arms[k] == e {
						delete(t.arms, k)
					}
					retire(e)
				}
			}
			if len(r.arms) == 0 {
				leave(t.routes[r.name])
			}
		}
		for i := range old.pools {
			p := &old.pools[i]
			leave(p.agg)
			for _, e := range p.eps {
				if e.gen != g {
					if k := (epKey{p.name, e.address}); t.eps[k] == e {
						delete(t.eps, k)
					}
					e.load = nil // the old table's endpoint: its requests in flight are no longer ours to show
					retire(e)
				}
			}
		}
	}
	t.active = s
	t.forget(now)
}

// flushHTTP moves every cell's counts since the last flush into its
// aggregates. Caller holds mu.
func (t *Telemetry) flushHTTP() {
	t.eachLive(t.flushEntry)
	for _, e := range t.retiring {
		t.flushEntry(e)
	}
}

// eachLive calls f with every entry of the live set. Caller holds mu.
func (t *Telemetry) eachLive(f func(*httpEntry)) {
	s := t.active
	if s == nil {
		return
	}
	for i := range s.routes {
		for _, e := range s.routes[i].arms {
			f(e)
		}
	}
	for i := range s.pools {
		for _, e := range s.pools[i].eps {
			f(e)
		}
	}
}

// flushEntry moves a cell's counts since its last flush into its
// aggregates. A cell that never counted is skipped at the cost of one
// load; one that did gets its full set of stripes here, off the request
// path.
func (t *Telemetry) flushEntry(e *httpEntry) {
	c := e.cell
	if e.last == nil {
		if !c.touched.Load() {
			return
		}
		c.grow(t.stripes)
	}
	cur := &t.scratch
	c.load(cur)
	if e.last == nil {
		if *cur == (httpVals{}) {
			return
		}
		e.last = new(httpVals)
	}
	var d httpVals
	d.setDiff(cur, e.last)
	*e.last = *cur
	for _, p := range e.parents {
		if p != nil {
			p.count(&d)
		}
	}
}

// Tick flushes every cell into its aggregates, takes the windows'
// snapshots, and forgets what retired long enough ago. Run calls it every
// second; tests call it with their own clock.
func (t *Telemetry) Tick() {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now().UnixNano()
	t.ticks++
	coarse := t.ticks%CoarseEvery == 0
	t.flushHTTP()
	t.flushDNS()
	t.eachLive(func(e *httpEntry) { e.snapshot(now, coarse, t.lastTick) })
	t.forget(now)
	for _, m := range []map[string]*httpAgg{t.routes, t.services, t.pools} {
		for _, a := range m {
			a.push(now, coarse, t.ticks)
		}
	}
	t.tickDNS(now, coarse)
	t.lastTick = now
}

// forget drops the cells and aggregates that left the table more than
// retireAfter ago, the cells after a last flush. Tick and the activations
// call it, so that a Telemetry nobody ticks does not grow either. Caller
// holds mu.
func (t *Telemetry) forget(now int64) {
	cut := now - int64(retireAfter)
	t.retiring = slices.DeleteFunc(t.retiring, func(e *httpEntry) bool {
		if e.retired < cut {
			t.flushEntry(e)
			return true
		}
		return false
	})
	t.dnsRetired = slices.DeleteFunc(t.dnsRetired, func(e *dnsEntry) bool {
		if e.retired < cut {
			t.flushDNSEntry(e)
			return true
		}
		return false
	})
	t.dormant = slices.DeleteFunc(t.dormant, func(a *httpAgg) bool {
		switch {
		case a.live:
		case a.lastLive < cut:
			if !a.gone {
				delete(a.home, a.name)
				a.gone = true
			}
		default:
			return false
		}
		a.dormant = false
		return true
	})
	for n, z := range t.zones {
		if !z.live && z.lastLive < cut {
			delete(t.zones, n)
		}
	}
}

// snapshot pushes the cell's counts to its windows, made on its first
// counts; prev is the previous tick, when it still had none.
func (e *httpEntry) snapshot(now int64, coarse bool, prev int64) {
	v := e.last
	if v == nil {
		return
	}
	if e.win == nil {
		e.win = newWindows(true, false, prev)
	}
	e.win.push(now, coarse, v.requests(e.side), v.errors(e.side), v.bytesIn, v.bytes, v.windowHist(e.side))
}
