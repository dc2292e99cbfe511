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
	// The live HTTP cells by key, and those of earlier tables still
	// draining into their aggregates.
	arms     map[armKey]*httpEntry
	eps      map[epKey]*httpEntry
	retiring []*httpEntry
	routes   map[string]*httpAgg
	services map[string]*httpAgg
	pools    map[string]*httpAgg
	active   *HTTPSet // the set the live table was compiled with

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
	arm     ArmSpec   // arms only
	address string    // endpoints only
	load    InFlighter
}

// httpAgg is a route, service or pool: the sum of its cells, including
// cells of earlier tables while they retire.
type httpAgg struct {
	name     string
	side     side
	cum      httpVals
	win      *windows
	live     bool
	lastLive int64
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

// agg returns the aggregate called name, making it when there is none. A
// new one is not live until ActivateHTTP; it is kept for retireAfter
// meanwhile, like one that left the table.
func (t *Telemetry) agg(m map[string]*httpAgg, name string, sd side) *httpAgg {
	a := m[name]
	if a == nil {
		now := t.now().UnixNano()
		a = &httpAgg{name: name, side: sd, win: newWindows(true, true, now), lastLive: now}
		m[name] = a
	}
	return a
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
	s := &HTTPSet{routes: make([]setRoute, len(routes)), pools: make([]setPool, len(pools))}
	for i, r := range routes {
		sr := setRoute{name: r.Name, arms: make([]*httpEntry, len(r.Arms)), cells: make([]*HTTP, len(r.Arms))}
		for j, a := range r.Arms {
			e := t.arms[armKey{r.Name, a.Entry, a.Service}]
			if e == nil {
				e = &httpEntry{cell: newHTTP(t.stripes), side: clientSide,
					parents: [2]*httpAgg{t.agg(t.routes, r.Name, clientSide), t.agg(t.services, a.Service, clientSide)}}
			}
			sr.arms[j], sr.cells[j] = e, e.cell
		}
		s.routes[i] = sr
	}
	for i, p := range pools {
		sp := setPool{name: p.Name, eps: make([]*httpEntry, len(p.Endpoints)), cells: make([]*HTTP, len(p.Endpoints)), loads: make([]InFlighter, len(p.Endpoints))}
		pa := t.agg(t.pools, p.Name, upstreamSide) // also for a pool without endpoints
		for j, ep := range p.Endpoints {
			e := t.eps[epKey{p.Name, ep.Address}]
			if e == nil {
				e = &httpEntry{cell: newHTTP(t.stripes), side: upstreamSide, address: ep.Address, parents: [2]*httpAgg{pa}}
			}
			sp.eps[j], sp.cells[j], sp.loads[j] = e, e.cell, ep.Load
		}
		s.pools[i] = sp
	}
	for i, r := range routes {
		for j, a := range r.Arms {
			s.routes[i].arms[j].arm = a // the declared weight may change; the key does not
		}
	}
	return s
}

// ActivateHTTP makes s the live set: its cells are listed and exported,
// and the cells of the previous set that s does not keep retire.
func (t *Telemetry) ActivateHTTP(s *HTTPSet) {
	if t == nil || s == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now().UnixNano()
	arms := make(map[armKey]*httpEntry, len(t.arms))
	eps := make(map[epKey]*httpEntry, len(t.eps))
	for _, r := range s.routes {
		for _, e := range r.arms {
			arms[armKey{r.name, e.arm.Entry, e.arm.Service}] = e
		}
	}
	for _, p := range s.pools {
		for j, e := range p.eps {
			eps[epKey{p.name, e.address}] = e
			e.load = p.loads[j]
		}
	}
	// A retiring cell is no longer listed: its windows go now, its counts
	// keep flowing into its aggregates until forget drops it.
	for k, e := range t.arms {
		if arms[k] != e {
			e.retired, e.win = now, nil
			t.retiring = append(t.retiring, e)
		}
	}
	for k, e := range t.eps {
		if eps[k] != e {
			e.retired, e.win = now, nil
			e.load = nil // the old table's endpoint: its requests in flight are no longer ours to show
			t.retiring = append(t.retiring, e)
		}
	}
	t.arms, t.eps, t.active = arms, eps, s
	liveAgg := func(m map[string]*httpAgg, names map[string]bool) {
		for n, a := range m {
			if names[n] {
				a.live = true
			} else if a.live {
				a.live, a.lastLive = false, now
			}
		}
	}
	routes, services, pools := map[string]bool{}, map[string]bool{}, map[string]bool{}
	// The set's cells feed the aggregates PrepareHTTP gave them; should
	// one have been forgotten since (a set activated long after it was
	// prepared), it is put back.
	keep := func(m map[string]*httpAgg, a *httpAgg, names map[string]bool) {
		names[a.name] = true
		if m[a.name] == nil {
			m[a.name] = a
		}
	}
	for _, r := range s.routes {
		for _, e := range r.arms {
			keep(t.routes, e.parents[0], routes)
			keep(t.services, e.parents[1], services)
		}
		routes[r.name] = true
	}
	for _, p := range s.pools {
		pools[p.name] = true
		for _, e := range p.eps {
			keep(t.pools, e.parents[0], pools)
		}
	}
	liveAgg(t.routes, routes)
	liveAgg(t.services, services)
	liveAgg(t.pools, pools)
	t.forget(now)
}

// flushHTTP moves every cell's counts since the last flush into its
// aggregates. Caller holds mu.
func (t *Telemetry) flushHTTP() {
	for _, e := range t.arms {
		t.flushEntry(e)
	}
	for _, e := range t.eps {
		t.flushEntry(e)
	}
	for _, e := range t.retiring {
		t.flushEntry(e)
	}
}

func (t *Telemetry) flushEntry(e *httpEntry) {
	cur := &t.scratch
	e.cell.load(cur)
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
			p.cum.add(&d)
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
	for _, e := range t.arms {
		e.snapshot(now, coarse, t.lastTick)
	}
	for _, e := range t.eps {
		e.snapshot(now, coarse, t.lastTick)
	}
	t.forget(now)
	for _, m := range []map[string]*httpAgg{t.routes, t.services, t.pools} {
		for _, a := range m {
			a.win.push(now, coarse, a.cum.requests(a.side), a.cum.errors(a.side), a.cum.bytesIn, a.cum.bytes, a.cum.windowHist(a.side))
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
	for _, m := range []map[string]*httpAgg{t.routes, t.services, t.pools} {
		for n, a := range m {
			if !a.live && a.lastLive < cut {
				delete(m, n)
			}
		}
	}
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
