package telemetry

import (
	"slices"
	"strings"
	"time"
)

// Stats is the GET /api/v1/stats document: every live route, service,
// pool, endpoint, zone and record with its totals since it appeared, its
// sliding windows, and for routes, services, pools and zones a series of
// the last 15 minutes.
//
// Routes and services count client requests: status classes as the client
// got them, failure kinds of the request, whole latency (the windows'
// quantiles read it). Pools and endpoints count attempts (a retried
// request counts once per endpoint tried): the upstream's status classes,
// the upstream's failures, the latency to the response head (the windows'
// quantiles read it); their latency total and bytes count the requests
// whose last attempt they served.
type Stats struct {
	At          time.Time `json:"at"`
	TickSeconds float64   `json:"tick_seconds"`
	HTTP        HTTPStats `json:"http"`
	DNS         DNSStats  `json:"dns"`
}

// HTTPStats is the HTTP half of Stats. Routes are in table order, the rest
// by name.
type HTTPStats struct {
	Routes   []RouteStats  `json:"routes"`
	Services []EntityStats `json:"services"`
	Pools    []PoolStats   `json:"pools"`
}

// EntityStats is one route, service or pool.
type EntityStats struct {
	Name     string            `json:"name"`
	InFlight int64             `json:"in_flight"`
	Totals   Totals            `json:"totals"`
	Windows  map[string]Window `json:"windows"`
	Series   *Series           `json:"series,omitempty"`
}

// RouteStats is a route and its arms.
type RouteStats struct {
	EntityStats
	Arms []ArmStats `json:"arms"`
}

// ArmStats is one arm of a route with its live share: the part of the
// route's requests it took in each window.
type ArmStats struct {
	ArmSpec
	Requests uint64               `json:"requests"`
	Windows  map[string]ArmWindow `json:"windows"`
}

// ArmWindow is an arm's traffic in one window.
type ArmWindow struct {
	Requests uint64  `json:"requests"`
	Rate     float64 `json:"rate"`
	Share    float64 `json:"share"`
}

// PoolStats is a pool and its endpoints in the pool's order.
type PoolStats struct {
	EntityStats
	Endpoints []EndpointStats `json:"endpoints"`
}

// EndpointStats is one endpoint of a pool.
type EndpointStats struct {
	Address  string            `json:"address"`
	InFlight int64             `json:"in_flight"`
	Totals   Totals            `json:"totals"`
	Windows  map[string]Window `json:"windows"`
}

// Totals are counts since the entity appeared (routes, services, pools and
// zones: since its name first did; cells: since their key did).
type Totals struct {
	Requests        uint64            `json:"requests"`
	Responses       map[string]uint64 `json:"responses"`          // by status class, "1xx".."5xx"
	Failures        map[string]uint64 `json:"failures,omitempty"` // by kind; only kinds that happened
	BytesIn         uint64            `json:"bytes_in"`
	BytesOut        uint64            `json:"bytes_out"`
	Latency         LatencyTotals     `json:"latency"`
	UpstreamLatency LatencyTotals     `json:"upstream_latency"`
}

// LatencyTotals is a latency histogram's count and sum.
type LatencyTotals struct {
	Count      uint64  `json:"count"`
	SumSeconds float64 `json:"sum_seconds"`
}

// DNSStats is the DNS half of Stats, zones in table order.
type DNSStats struct {
	Zones []ZoneStats `json:"zones"`
}

// ZoneStats is one zone and its records.
type ZoneStats struct {
	Name    string            `json:"name"`
	Totals  DNSTotals         `json:"totals"`
	Windows map[string]Window `json:"windows"`
	Series  *Series           `json:"series,omitempty"`
	Records []RecordStats     `json:"records"`
}

// RecordStats is one owner name of a zone; the name NoRecord counts the
// queries for names the zone does not have.
type RecordStats struct {
	Name    string            `json:"name"`
	Totals  DNSTotals         `json:"totals"`
	Windows map[string]Window `json:"windows"`
}

// DNSTotals are a record's or zone's counts. Errors in the windows are the
// rcodes other than NOERROR and NXDOMAIN.
type DNSTotals struct {
	Queries uint64            `json:"queries"`
	Rcodes  map[string]uint64 `json:"rcodes"`
	NoData  uint64            `json:"nodata"`
	Answers map[string]uint64 `json:"answers_by_pool,omitempty"`
}

var classNames = [5]string{"1xx", "2xx", "3xx", "4xx", "5xx"}

func totals(v *httpVals, sd side) Totals {
	t := Totals{
		Requests:        v.requests(sd),
		Responses:       make(map[string]uint64, len(classNames)),
		BytesIn:         v.bytesIn,
		BytesOut:        v.bytes,
		Latency:         LatencyTotals{v.total.count(), float64(v.total.sumNS) / 1e9},
		UpstreamLatency: LatencyTotals{v.up.count(), float64(v.up.sumNS) / 1e9},
	}
	for i, n := range v.class {
		t.Responses[classNames[i]] = n
	}
	for i, n := range v.kinds {
		if n > 0 {
			if t.Failures == nil {
				t.Failures = map[string]uint64{}
			}
			t.Failures[kindNames[i]] = n
		}
	}
	return t
}

func dnsTotals(v *dnsVals) DNSTotals {
	t := DNSTotals{Queries: v.queries(), Rcodes: map[string]uint64{}, NoData: v.nodata}
	for i, n := range v.rcodes {
		if n > 0 || i == 0 {
			t.Rcodes[rcodeNames[i]] = n
		}
	}
	if len(v.pools) > 0 {
		t.Answers = make(map[string]uint64, len(v.pools))
		for p, n := range v.pools {
			t.Answers[p] = n
		}
	}
	return t
}

// vals returns the cell's counts as of its last flush (noVals before it
// counted), to read.
func (e *httpEntry) vals() *httpVals {
	if e.last == nil {
		return &noVals
	}
	return e.last
}

// Stats returns the document as of now: totals flushed now, windows and
// series as of the last tick. The entities that have counted nothing
// share their (empty) totals, windows and series in it: the document is
// for reading.
func (t *Telemetry) Stats() Stats {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.flushHTTP()
	t.flushDNS()
	idle := idleStats{}
	out := Stats{At: t.now().UTC(), TickSeconds: Tick.Seconds(),
		HTTP: HTTPStats{Routes: []RouteStats{}, Services: []EntityStats{}, Pools: []PoolStats{}},
		DNS:  DNSStats{Zones: []ZoneStats{}}}
	if s := t.active; s != nil {
		svcInFlight := map[string]int64{}
		for _, r := range s.routes {
			a := t.routes[r.name]
			rs := RouteStats{EntityStats: idle.aggStats(r.name, a), Arms: make([]ArmStats, 0, len(r.arms))}
			routeWin := rs.Windows
			for _, e := range r.arms {
				inf := e.cell.inFlight()
				rs.InFlight += inf
				svcInFlight[e.arm.Service] += inf
				as := ArmStats{ArmSpec: e.arm, Requests: e.vals().requests(clientSide), Windows: idle.armWindows()}
				if e.win != nil {
					as.Windows = map[string]ArmWindow{}
					for name, w := range e.win.windowsJSON() {
						aw := ArmWindow{Requests: w.Requests, Rate: w.Rate}
						// An arm's windows may start later than its
						// route's (it counted nothing before): over the
						// route's span, share and rate agree.
						if rw := routeWin[name]; rw.Requests > 0 {
							aw.Share = float64(w.Requests) / float64(rw.Requests)
							aw.Rate = float64(w.Requests) / rw.SpanSeconds
						}
						as.Windows[name] = aw
					}
				}
				rs.Arms = append(rs.Arms, as)
			}
			out.HTTP.Routes = append(out.HTTP.Routes, rs)
		}
		for _, name := range sortedLive(t.services) {
			es := idle.aggStats(name, t.services[name])
			es.InFlight = svcInFlight[name]
			out.HTTP.Services = append(out.HTTP.Services, es)
		}
		pools := slices.Clone(s.pools)
		slices.SortFunc(pools, func(a, b setPool) int { return strings.Compare(a.name, b.name) })
		for _, p := range pools {
			ps := PoolStats{EntityStats: idle.aggStats(p.name, t.pools[p.name]), Endpoints: make([]EndpointStats, 0, len(p.eps))}
			for _, e := range p.eps {
				es := EndpointStats{Address: e.address, Totals: totals(e.vals(), upstreamSide), Windows: e.win.windowsJSON()}
				if es.Windows == nil {
					es.Windows = map[string]Window{}
				}
				if e.load != nil {
					es.InFlight = e.load.InFlight()
				}
				ps.InFlight += es.InFlight
				ps.Endpoints = append(ps.Endpoints, es)
			}
			out.HTTP.Pools = append(out.HTTP.Pools, ps)
		}
	}
	if s := t.dnsActive; s != nil {
		for _, zs := range s.order {
			z := t.zones[zs.name]
			st := ZoneStats{Name: zs.name, Records: make([]RecordStats, 0, len(zs.order))}
			if z != nil {
				st.Totals, st.Windows, st.Series = dnsTotals(&z.cum), z.win.windowsJSON(), z.win.seriesJSON()
			}
			for _, e := range zs.order {
				v := e.last
				if v == nil {
					v = &dnsVals{}
					e.cell.load(v)
				}
				rs := RecordStats{Name: e.name, Totals: dnsTotals(v), Windows: e.win.windowsJSON()}
				if rs.Windows == nil {
					rs.Windows = map[string]Window{}
				}
				st.Records = append(st.Records, rs)
			}
			out.DNS.Zones = append(out.DNS.Zones, st)
		}
	}
	return out
}

// idleStats are the parts of one Stats document that the entities which
// have counted nothing share: their totals by side, and the windows and
// series of each set of idle windows (see httpAgg).
type idleStats struct {
	totals [2]*Totals
	wins   map[*windows]idleWindowsJSON
	arms   map[string]ArmWindow
}

type idleWindowsJSON struct {
	windows map[string]Window
	series  *Series
}

func (s *idleStats) aggStats(name string, a *httpAgg) EntityStats {
	if a == nil {
		return EntityStats{Name: name, Windows: map[string]Window{}}
	}
	w := a.windows()
	if a.cum != nil || a.win != nil || w == nil {
		return EntityStats{Name: name, Totals: totals(a.vals(), a.side), Windows: w.windowsJSON(), Series: w.seriesJSON()}
	}
	if s.totals[a.side] == nil {
		t := totals(&noVals, a.side)
		s.totals[a.side] = &t
	}
	j, ok := s.wins[w]
	if !ok {
		j = idleWindowsJSON{w.windowsJSON(), w.seriesJSON()}
		if s.wins == nil {
			s.wins = map[*windows]idleWindowsJSON{}
		}
		s.wins[w] = j
	}
	return EntityStats{Name: name, Totals: *s.totals[a.side], Windows: j.windows, Series: j.series}
}

// armWindows is the windows of an arm that has counted nothing: none.
func (s *idleStats) armWindows() map[string]ArmWindow {
	if s.arms == nil {
		s.arms = map[string]ArmWindow{}
	}
	return s.arms
}

func sortedLive(m map[string]*httpAgg) []string {
	var names []string
	for n, a := range m {
		if a.live {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names
}
