package telemetry

import (
	"fmt"
	"reflect"
	"testing"
	"time"
)

// TestIdleAggregatesShareWindows: routes, services and pools that have
// counted nothing share one set of windows, and one that starts counting
// gets windows of its own that show exactly what windows of its own from
// the start would (the reference below is pushed as Tick pushed every
// aggregate before they were shared). Idle cells keep one stripe; the
// tick after a cell first counts gives it the full set.
func TestIdleAggregatesShareWindows(t *testing.T) {
	clk := newClock()
	tel := New(Options{Now: clk.now, Stripes: 4})
	var routes []RouteSpec
	for i := range 20 {
		routes = append(routes, RouteSpec{Name: fmt.Sprintf("r%d", i), Arms: []ArmSpec{{Entry: -1, Service: fmt.Sprintf("s%d", i%5)}}})
	}
	set := tel.PrepareHTTP(routes, []PoolSpec{{Name: "p", Endpoints: []EndpointSpec{{Address: "10.0.0.1:80"}, {Address: "10.0.0.2:80"}}}})
	tel.ActivateHTTP(set)
	late, lateAgg := set.Arms(7)[0], tel.routes["r7"]
	ep := set.Endpoints(0)[1]
	born := lateAgg.idle.win.born
	ref := map[*httpAgg]*windows{}
	for _, a := range []*httpAgg{lateAgg, tel.services["s2"], tel.pools["p"]} {
		ref[a] = newWindows(true, true, born)
	}
	for s := range 400 {
		if s >= 130 && s%3 != 0 {
			late.Begin(uint(s))
			ep.Response(uint(s), 200+100*(s%7/6)*3, time.Duration(s)*time.Millisecond)
			late.Done(uint(s), 200, "", time.Duration(2*s)*time.Millisecond, time.Duration(s)*time.Millisecond, 10, 1000)
			ep.Served(uint(s), time.Duration(2*s)*time.Millisecond, 10, 1000)
		}
		clk.add(time.Second)
		tel.Tick()
		for a, w := range ref {
			v := a.vals()
			w.push(tel.lastTick, tel.ticks%CoarseEvery == 0, v.requests(a.side), v.errors(a.side), v.bytesIn, v.bytes, v.windowHist(a.side))
		}
		if s == 120 {
			// Nothing counted yet: one set of windows for all, one stripe
			// per cell.
			idle := lateAgg.idle
			for _, m := range []map[string]*httpAgg{tel.routes, tel.services, tel.pools} {
				for n, a := range m {
					if a.win != nil || a.cum != nil || a.idle != idle {
						t.Fatalf("%s: own windows or counts before counting anything", n)
					}
				}
			}
			if n := len(*late.cur.Load()); n != 1 {
				t.Fatalf("an idle cell has %d stripes", n)
			}
		}
	}
	for a, w := range ref {
		if a.win == nil {
			t.Fatalf("%s: no windows of its own after counting", a.name)
		}
		if got, want := a.windows().windowsJSON(), w.windowsJSON(); !reflect.DeepEqual(got, want) {
			t.Errorf("%s windows\n got %+v\nwant %+v", a.name, got, want)
		}
		if got, want := a.windows().seriesJSON(), w.seriesJSON(); !reflect.DeepEqual(got, want) {
			t.Errorf("%s series\n got %+v\nwant %+v", a.name, got, want)
		}
	}
	if n := len(*late.cur.Load()); n != 4 {
		t.Errorf("a counting cell has %d stripes, want 4", n)
	}
	// The document: the idle routes' windows and series span the same
	// time as the busy one's, with nothing in them.
	st := tel.Stats()
	busy, idle := st.HTTP.Routes[7], st.HTTP.Routes[8]
	if !reflect.DeepEqual(busy.Windows, ref[lateAgg].windowsJSON()) || busy.Totals.Requests != 180 {
		t.Errorf("busy route %+v", busy)
	}
	if idle.Series == nil || len(idle.Series.Rate) != len(busy.Series.Rate) || idle.Series.End != busy.Series.End {
		t.Fatalf("idle route's series %+v, busy's %+v", idle.Series, busy.Series)
	}
	for name, w := range busy.Windows {
		if iw := idle.Windows[name]; iw.SpanSeconds != w.SpanSeconds || iw.Requests != 0 || iw.Rate != 0 {
			t.Errorf("idle route's %s window %+v, busy's %+v", name, iw, w)
		}
	}
}

// TestCellGrowsWhileCounting: requests that began on a cell's one stripe
// and end on its full set count once, and in flight goes back to zero.
func TestCellGrowsWhileCounting(t *testing.T) {
	clk := newClock()
	tel := New(Options{Now: clk.now, Stripes: 8})
	set := table(tel, "10.0.0.1:80")
	tel.ActivateHTTP(set)
	arm := set.Arms(0)[2]
	for h := range uint(8) {
		arm.Begin(h)
	}
	tel.Tick() // the first count: the cell grows
	if n := len(*arm.cur.Load()); n != 8 {
		t.Fatalf("%d stripes after the first count", n)
	}
	for h := range uint(8) {
		arm.Done(h+3, 200, "", time.Millisecond, 0, 0, 1)
	}
	clk.add(time.Second)
	tel.Tick()
	r := tel.Stats().HTTP.Routes[0]
	if r.InFlight != 0 || r.Totals.Requests != 8 || r.Totals.BytesOut != 8 || r.Windows["10s"].Requests != 8 {
		t.Errorf("route %+v", r)
	}
}

// TestUntickedCellsGrow: a Telemetry nobody ticks (a proxy.Handler's own)
// gives a cell that counted its stripes at the next activation.
func TestUntickedCellsGrow(t *testing.T) {
	tel := New(Options{Stripes: 4})
	set := table(tel, "10.0.0.1:80")
	tel.ActivateHTTP(set)
	arm, idle := set.Arms(0)[2], set.Arms(0)[1]
	arm.Begin(0)
	tel.ActivateHTTP(table(tel, "10.0.0.1:80"))
	if n, m := len(*arm.cur.Load()), len(*idle.cur.Load()); n != 4 || m != 1 {
		t.Errorf("after an activation: %d stripes on the cell that counted, %d on the idle one", n, m)
	}
}

// TestActivationFollowsKeys: a table that moves routes and endpoints
// around keeps their cells by key, not by place; an arm whose service
// changed gets a new cell and the old one retires; the aggregates of
// what left stop being live.
func TestActivationFollowsKeys(t *testing.T) {
	clk := newClock()
	tel := New(Options{Now: clk.now})
	spec := func(routes ...string) []RouteSpec {
		var out []RouteSpec
		for _, r := range routes {
			name, svc, _ := cut(r)
			out = append(out, RouteSpec{Name: name, Arms: []ArmSpec{{Entry: -1, Service: svc}}})
		}
		return out
	}
	pool := func(eps ...string) []PoolSpec {
		p := PoolSpec{Name: "p"}
		for _, e := range eps {
			p.Endpoints = append(p.Endpoints, EndpointSpec{Address: e})
		}
		return []PoolSpec{p}
	}
	a := tel.PrepareHTTP(spec("x=s1", "y=s2", "z=s3"), pool("10.0.0.1:80", "10.0.0.2:80"))
	tel.ActivateHTTP(a)
	for i := range 3 {
		a.Arms(i)[0].Done(0, 200, "", time.Millisecond, 0, 0, 0)
	}
	b := tel.PrepareHTTP(spec("y=s2", "x=s1", "z=s4"), pool("10.0.0.2:80", "10.0.0.1:80"))
	if b.Arms(0)[0] != a.Arms(1)[0] || b.Arms(1)[0] != a.Arms(0)[0] || b.Endpoints(0)[0] != a.Endpoints(0)[1] {
		t.Fatal("moved routes or endpoints got new cells")
	}
	if b.Arms(2)[0] == a.Arms(2)[0] {
		t.Fatal("an arm whose service changed kept its cell")
	}
	tel.ActivateHTTP(b)
	if len(tel.arms) != 3 || len(tel.eps) != 2 || len(tel.retiring) != 1 {
		t.Fatalf("%d arms, %d endpoints, %d retiring", len(tel.arms), len(tel.eps), len(tel.retiring))
	}
	st := tel.Stats()
	var svcs []string
	for _, s := range st.HTTP.Services {
		svcs = append(svcs, fmt.Sprintf("%s=%d", s.Name, s.Totals.Requests))
	}
	if fmt.Sprint(svcs) != "[s1=1 s2=1 s4=0]" {
		t.Errorf("services %v", svcs)
	}
	if z := st.HTTP.Routes[2]; z.Name != "z" || z.Totals.Requests != 1 {
		t.Errorf("route z %+v: its count before the service changed is its route's", z)
	}
	// Back to the first table, much later: s3's aggregate was forgotten
	// and is put back; the retired cell is gone.
	clk.add(2 * retireAfter)
	tel.Tick()
	tel.ActivateHTTP(a)
	st = tel.Stats()
	if len(st.HTTP.Services) != 3 || st.HTTP.Services[2].Name != "s3" || tel.services["s3"] == nil || len(tel.arms) != 3 {
		t.Errorf("services %+v, %d arms", st.HTTP.Services, len(tel.arms))
	}
}

func cut(s string) (string, string, bool) {
	for i := range s {
		if s[i] == '=' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// bigTable is a Telemetry with a table of 10,000 routes (1,000 services
// and pools of two endpoints), a hundred of which get traffic, after ten
// minutes of ticks.
func bigTable(b *testing.B) *Telemetry {
	clk := newClock()
	tel := New(Options{Now: clk.now})
	var routes []RouteSpec
	var pools []PoolSpec
	for i := range 10000 {
		routes = append(routes, RouteSpec{Name: fmt.Sprintf("r%d", i), Arms: []ArmSpec{{Entry: -1, Service: fmt.Sprintf("s%d", i%1000)}}})
	}
	for i := range 1000 {
		pools = append(pools, PoolSpec{Name: fmt.Sprintf("p%d", i), Endpoints: []EndpointSpec{{Address: fmt.Sprintf("10.0.%d.%d:80", i/250, i%250)}, {Address: fmt.Sprintf("10.1.%d.%d:80", i/250, i%250)}}})
	}
	set := tel.PrepareHTTP(routes, pools)
	tel.ActivateHTTP(set)
	for s := range 600 {
		for i := 0; i < 10000; i += 100 {
			set.Arms(i)[0].Done(uint(s), 200, "", time.Millisecond, time.Millisecond, 0, 100)
			set.Endpoints(i / 10)[0].Response(uint(s), 200, time.Millisecond)
		}
		clk.add(time.Second)
		tel.Tick()
	}
	return tel
}

// BenchmarkStats10000Routes is GET /api/v1/stats over bigTable: what the
// console's refresh costs every two seconds.
func BenchmarkStats10000Routes(b *testing.B) {
	tel := bigTable(b)
	b.ReportAllocs()
	for b.Loop() {
		_ = tel.Stats()
	}
}

// BenchmarkTick10000Routes is the once-a-second tick over bigTable.
func BenchmarkTick10000Routes(b *testing.B) {
	tel := bigTable(b)
	b.ReportAllocs()
	for b.Loop() {
		tel.Tick()
	}
}
