package telemetry

import (
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// clock is a fake time source that tests move by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Unix(1_800_000_000, 0)} }

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestBuckets(t *testing.T) {
	tests := []struct {
		ns   int64
		want int
	}{
		{0, 0}, {4095, 0}, {4096, 1}, {5119, 1}, {5120, 2}, {8191, 4}, {8192, 5},
		{1 << 35, NumBuckets - 5}, {1<<36 - 1, NumBuckets - 2}, {1 << 36, NumBuckets - 1}, {math.MaxInt64, NumBuckets - 1},
	}
	for _, tt := range tests {
		if got := bucketOf(tt.ns); got != tt.want {
			t.Errorf("bucketOf(%d) = %d, want %d", tt.ns, got, tt.want)
		}
	}
	for i := 1; i < NumBuckets-1; i++ {
		lo, hi := bucketLower(i), bucketUpper(i)
		if bucketOf(int64(lo)) != i || bucketOf(int64(hi)-1) != i || bucketOf(int64(hi)) != i+1 {
			t.Fatalf("bucket %d [%v, %v) does not match bucketOf", i, lo, hi)
		}
		if w := (hi - lo) / lo; w > 0.25+1e-9 {
			t.Fatalf("bucket %d is %.0f%% wide", i, w*100)
		}
	}
}

func TestQuantileAccuracy(t *testing.T) {
	var h Hist
	// 1000 latencies spread evenly over 1..11 ms, plus ten at 200 ms.
	for i := range 1000 {
		h.Observe(time.Millisecond + time.Duration(i)*10*time.Microsecond)
	}
	for range 10 {
		h.Observe(200 * time.Millisecond)
	}
	var v histVals
	h.load(&v)
	if v.count() != 1010 {
		t.Fatalf("count %d", v.count())
	}
	for _, tt := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 6 * time.Millisecond}, {0.9, 10 * time.Millisecond}, {0.995, 200 * time.Millisecond}} {
		got := quantile(v.c[:], tt.q)
		if rel := math.Abs(got-float64(tt.want)) / float64(tt.want); rel > 0.125 {
			t.Errorf("p%v = %v, want %v ±12.5%%", tt.q*100, time.Duration(got), tt.want)
		}
	}
	if got := quantile([]uint64{}, 0.5); got != 0 {
		t.Errorf("empty quantile = %v", got)
	}
}

// table is a test table: one route with a weighted split over two
// services, and one pool per service.
func table(tel *Telemetry, eps ...string) *HTTPSet {
	routes := []RouteSpec{{Name: "www", Arms: []ArmSpec{
		{Entry: 0, Service: "canary", Rule: true},
		{Entry: 1, Service: "canary", Weight: 5},
		{Entry: 2, Service: "web", Weight: 95},
	}}}
	pool := PoolSpec{Name: "web-eu"}
	for _, e := range eps {
		pool.Endpoints = append(pool.Endpoints, EndpointSpec{Address: e})
	}
	return tel.PrepareHTTP(routes, []PoolSpec{pool, {Name: "canary", Endpoints: []EndpointSpec{{Address: "10.9.9.9:80"}}}})
}

func TestWindowsAndSeries(t *testing.T) {
	clk := newClock()
	tel := New(Options{Now: clk.now})
	set := table(tel, "10.0.0.1:80", "10.0.0.2:80")
	tel.ActivateHTTP(set)
	arms, eps := set.Arms(0), set.Endpoints(0)
	tel.Tick()
	// 200 s of traffic: each second 10 requests on the web arm through
	// endpoint 0, one of which fails with a 503, at 2 ms (upstream 1 ms);
	// and a canary request every second.
	for s := range 200 {
		for i := range 10 {
			code := 200
			if i == 0 {
				code = 503
			}
			h := uint(i) // requests spread over the stripes add up
			arms[2].Begin(h)
			eps[0].Response(h, code, time.Millisecond)
			arms[2].Done(h+1, code, "", 2*time.Millisecond, time.Millisecond, 100, 1000)
			eps[0].Served(h, 2*time.Millisecond, 100, 1000)
		}
		arms[1].Begin(0)
		arms[1].Done(0, 200, "", 50*time.Millisecond, 0, 0, 10)
		if s == 150 {
			eps[1].Failed(0, "connect_failure")
		}
		clk.add(time.Second)
		tel.Tick()
	}
	st := tel.Stats()
	if len(st.HTTP.Routes) != 1 {
		t.Fatalf("routes %+v", st.HTTP.Routes)
	}
	r := st.HTTP.Routes[0]
	for _, name := range []string{"10s", "1m", "5m"} {
		w, ok := r.Windows[name]
		if !ok {
			t.Fatalf("window %s missing", name)
		}
		if math.Abs(w.Rate-11) > 0.01 {
			t.Errorf("%s rate %v, want 11", name, w.Rate)
		}
		if math.Abs(w.ErrorRatio-1.0/11) > 0.001 {
			t.Errorf("%s error ratio %v, want 1/11", name, w.ErrorRatio)
		}
		// 10 of 11 requests take 2 ms, one takes 50 ms.
		if w.P50 < 0.0019 || w.P50 > 0.0021 || w.P99 < 0.04 || w.P99 > 0.051 {
			t.Errorf("%s p50 %v p99 %v", name, w.P50, w.P99)
		}
		if math.Abs(w.BytesOutRate-10010) > 1 {
			t.Errorf("%s bytes out %v/s", name, w.BytesOutRate)
		}
	}
	if w := r.Windows["5m"]; w.SpanSeconds != 200 {
		t.Errorf("5m span %v before five minutes have passed, want 200", w.SpanSeconds)
	}
	// The 1 min window reaches back to the newest coarse (10 s) snapshot
	// at least a minute old.
	if w := r.Windows["1m"]; w.SpanSeconds < 60 || w.SpanSeconds >= 70 {
		t.Errorf("1m span %v", w.SpanSeconds)
	}
	if r.Totals.Requests != 2200 || r.Totals.Responses["5xx"] != 200 || r.Totals.Responses["2xx"] != 2000 {
		t.Errorf("route totals %+v", r.Totals)
	}
	if r.InFlight != 0 {
		t.Errorf("route in flight %d", r.InFlight)
	}
	// The arms' live share beside their declared weight.
	if len(r.Arms) != 3 || r.Arms[2].Weight != 95 || !r.Arms[0].Rule {
		t.Fatalf("arms %+v", r.Arms)
	}
	if s := r.Arms[2].Windows["1m"].Share; math.Abs(s-10.0/11) > 0.001 {
		t.Errorf("web arm share %v, want 10/11", s)
	}
	if s := r.Arms[1].Windows["1m"].Share; math.Abs(s-1.0/11) > 0.001 {
		t.Errorf("canary arm share %v, want 1/11", s)
	}
	// Series: a point per 10 s step, the last 15 minutes at most.
	if r.Series == nil || len(r.Series.Rate) != 19 {
		t.Fatalf("series %+v", r.Series)
	}
	for i, v := range r.Series.Rate {
		if math.Abs(v-11) > 0.01 {
			t.Errorf("series rate[%d] = %v", i, v)
		}
	}
	if p := r.Series.P99[len(r.Series.P99)-1]; p < 0.04 || p > 0.051 {
		t.Errorf("series p99 %v", p)
	}
	// Services add up the arms that send to them.
	svc := map[string]EntityStats{}
	for _, s := range st.HTTP.Services {
		svc[s.Name] = s
	}
	if svc["web"].Totals.Requests != 2000 || svc["canary"].Totals.Requests != 200 {
		t.Errorf("services %+v", st.HTTP.Services)
	}
	// Pools count attempts on the upstream side: the failed connect on
	// endpoint 1 is an attempt and an error there.
	var pool PoolStats
	for _, p := range st.HTTP.Pools {
		if p.Name == "web-eu" {
			pool = p
		}
	}
	if pool.Totals.Requests != 2001 || pool.Totals.Failures["connect_failure"] != 1 {
		t.Errorf("pool totals %+v", pool.Totals)
	}
	if w := pool.Windows["1m"]; w.P99 < 0.0009 || w.P99 > 0.0011 {
		t.Errorf("pool window p99 %v, want the upstream's 1 ms", w.P99)
	}
	if e := pool.Endpoints[1]; e.Totals.Requests != 1 || e.Windows["1m"].ErrorRatio != 1 {
		t.Errorf("endpoint 1 %+v", e)
	}
	if e := pool.Endpoints[0]; e.Totals.Latency.Count != 2000 || e.Totals.UpstreamLatency.Count != 2000 || e.Totals.BytesOut != 2_000_000 {
		t.Errorf("endpoint 0 totals %+v", e.Totals)
	}
}

func TestSeriesKeepsFifteenMinutes(t *testing.T) {
	clk := newClock()
	tel := New(Options{Now: clk.now})
	set := table(tel, "10.0.0.1:80")
	tel.ActivateHTTP(set)
	arm := set.Arms(0)[2]
	for s := range 20 * 60 {
		if s >= 19*60 {
			arm.Begin(0)
			arm.Done(0, 200, "", time.Millisecond, 0, 0, 0)
		}
		clk.add(time.Second)
		tel.Tick()
	}
	r := tel.Stats().HTTP.Routes[0]
	if n := len(r.Series.Rate); n != SeriesPoints {
		t.Fatalf("%d points, want %d", n, SeriesPoints)
	}
	last := r.Series.Rate[SeriesPoints-6:]
	for _, v := range last {
		if v != 1 {
			t.Fatalf("last minute rates %v, want 1/s", last)
		}
	}
	if r.Series.Rate[0] != 0 {
		t.Errorf("oldest point %v", r.Series.Rate[0])
	}
	if w := r.Windows["5m"]; w.SpanSeconds != 300 || math.Abs(w.Rate-0.2) > 0.01 {
		t.Errorf("5m window %+v", w)
	}
}

func TestCellsFollowTheTable(t *testing.T) {
	clk := newClock()
	tel := New(Options{Now: clk.now})
	a := table(tel, "10.0.0.1:80", "10.0.0.2:80")
	tel.ActivateHTTP(a)
	old := a.Endpoints(0)[1]
	old.Response(0, 200, time.Millisecond)
	kept := a.Endpoints(0)[0]
	kept.Response(0, 200, time.Millisecond)

	// The next table drops 10.0.0.2 and adds 10.0.0.3; 10.0.0.1 keeps its
	// cell, so its counts go on.
	b := table(tel, "10.0.0.1:80", "10.0.0.3:80")
	if b.Endpoints(0)[0] != kept {
		t.Fatal("a kept endpoint got a new cell")
	}
	if got := len(tel.Stats().HTTP.Pools[1].Endpoints); got != 2 {
		t.Fatalf("a prepared set changed the live one: %d endpoints", got)
	}
	tel.ActivateHTTP(b)
	// A request in flight on the old table finishes on its cell: it still
	// counts for the pool, but the endpoint is no longer listed.
	old.Response(0, 200, time.Millisecond)
	clk.add(time.Second)
	tel.Tick()
	st := tel.Stats()
	pool := st.HTTP.Pools[1]
	if pool.Name != "web-eu" || len(pool.Endpoints) != 2 || pool.Endpoints[1].Address != "10.0.0.3:80" {
		t.Fatalf("pool %+v", pool)
	}
	if pool.Totals.Requests != 3 {
		t.Errorf("pool requests %d, want 3 (the retired endpoint's included)", pool.Totals.Requests)
	}
	// A minute later the retired cell is forgotten.
	clk.add(retireAfter + time.Second)
	tel.Tick()
	if len(tel.retiring) != 0 {
		t.Errorf("%d cells still retiring", len(tel.retiring))
	}
	// A pool that leaves the table leaves the document.
	tel.ActivateHTTP(tel.PrepareHTTP(nil, []PoolSpec{{Name: "web-eu"}}))
	st = tel.Stats()
	if len(st.HTTP.Pools) != 1 || len(st.HTTP.Routes) != 0 || len(st.HTTP.Services) != 0 {
		t.Errorf("after the route left: %+v", st.HTTP)
	}
}

// TestCollectorCardinality churns thousands of endpoints through table
// swaps and counts the exported series after each: they follow the live
// table, never the history.
func TestCollectorCardinality(t *testing.T) {
	clk := newClock()
	tel := New(Options{Now: clk.now})
	reg := prometheus.NewRegistry()
	reg.MustRegister(tel.Collector())
	const perTable, swaps = 200, 25 // 5000 endpoints in all
	// Per endpoint: 5 classes, 4 upstream kinds, in flight, 2 byte directions.
	const perEndpoint = 5 + UpstreamKinds + 1 + 2
	for s := range swaps {
		var eps []string
		for i := range perTable {
			eps = append(eps, fmt.Sprintf("10.%d.%d.%d:80", s, i/250, i%250))
		}
		set := table(tel, eps...)
		tel.ActivateHTTP(set)
		for _, c := range set.Endpoints(0) {
			c.Response(0, 200, time.Millisecond)
		}
		clk.add(10 * time.Second) // a reload every 10 s: a minute's worth of cells retire at once
		tel.Tick()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		endpoints := map[string]bool{}
		series := 0
		for _, mf := range mfs {
			if !strings.HasPrefix(mf.GetName(), "meridian_http_endpoint_") {
				continue
			}
			for _, m := range mf.GetMetric() {
				series++
				endpoints[label(m, "endpoint")] = true
			}
		}
		want := (perTable + 1) * perEndpoint // the canary pool's endpoint too
		if series != want || len(endpoints) != perTable+1 {
			t.Fatalf("swap %d: %d endpoint series over %d endpoints, want %d over %d", s, series, len(endpoints), want, perTable+1)
		}
	}
	// The pool's upstream histogram kept every attempt across the churn.
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() == "meridian_http_upstream_duration_seconds" {
			for _, m := range mf.GetMetric() {
				if label(m, "pool") == "web-eu" && m.GetHistogram().GetSampleCount() != perTable*swaps {
					t.Errorf("web-eu upstream histogram counts %d, want %d", m.GetHistogram().GetSampleCount(), perTable*swaps)
				}
			}
		}
	}
	clk.add(retireAfter + time.Second)
	tel.Tick()
	if n := len(tel.retiring); n != 0 {
		t.Errorf("%d retired cells kept past %v", n, retireAfter)
	}
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func TestPromBucketsExact(t *testing.T) {
	var h Hist
	for _, d := range []time.Duration{time.Microsecond, 5 * time.Microsecond, time.Millisecond, 3 * time.Millisecond, time.Second, 100 * time.Second} {
		h.Observe(d)
	}
	var v histVals
	h.load(&v)
	b, n := promBuckets(&v)
	if n != 6 {
		t.Fatalf("count %d", n)
	}
	for bound, c := range b {
		var want uint64
		for _, d := range []time.Duration{time.Microsecond, 5 * time.Microsecond, time.Millisecond, 3 * time.Millisecond, time.Second, 100 * time.Second} {
			if d.Seconds() <= bound {
				want++
			}
		}
		if c != want {
			t.Errorf("le=%g: %d, want %d", bound, c, want)
		}
	}
}

func TestDNSCounts(t *testing.T) {
	clk := newClock()
	tel := New(Options{Now: clk.now})
	reg := prometheus.NewRegistry()
	reg.MustRegister(tel.Collector())
	set := tel.ActivateDNS([]ZoneSpec{{Name: "example.com.", Records: []RecordSpec{
		{Name: "example.com."},
		{Name: "www.example.com.", Pools: []string{"eu", "us"}},
	}}})
	www := set.Record("example.com.", "www.example.com.")
	for range 8 {
		www.Query(0, false, "eu")
	}
	www.Query(0, false, "us")
	www.Query(0, false, Fallback)
	www.Query(2, true, "")
	set.Record("example.com.", "nope.example.com.").Query(3, true, "")
	set.Record("example.com.", "").Query(3, true, "")
	set.Record("example.com.", "example.com.").Query(0, true, "")
	if set.Record("other.org.", "x.other.org.") != nil {
		t.Error("a zone outside the set has counters")
	}
	clk.add(time.Second)
	tel.Tick()
	st := tel.Stats()
	if len(st.DNS.Zones) != 1 {
		t.Fatalf("zones %+v", st.DNS.Zones)
	}
	z := st.DNS.Zones[0]
	if z.Totals.Queries != 14 || z.Totals.Rcodes["NXDOMAIN"] != 2 || z.Totals.Rcodes["SERVFAIL"] != 1 || z.Totals.NoData != 1 {
		t.Errorf("zone totals %+v", z.Totals)
	}
	rec := map[string]RecordStats{}
	for _, r := range z.Records {
		rec[r.Name] = r
	}
	w := rec["www.example.com."]
	if w.Totals.Answers["eu"] != 8 || w.Totals.Answers["us"] != 1 || w.Totals.Answers[Fallback] != 1 {
		t.Errorf("www answers %+v", w.Totals.Answers)
	}
	if rec[NoRecord].Totals.Queries != 2 {
		t.Errorf("unknown names: %+v", rec[NoRecord])
	}
	if e := z.Windows["10s"]; math.Abs(e.ErrorRatio-1.0/14) > 1e-9 || e.Requests != 14 {
		t.Errorf("zone window %+v", e)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var parts []string
			for _, l := range m.GetLabel() {
				parts = append(parts, l.GetValue())
			}
			got[mf.GetName()+"{"+strings.Join(parts, ",")+"}"] = m.GetCounter().GetValue()
		}
	}
	for k, want := range map[string]float64{
		"meridian_dns_record_queries_total{NOERROR,www.example.com.,example.com.}":  10,
		"meridian_dns_record_queries_total{SERVFAIL,www.example.com.,example.com.}": 1,
		"meridian_dns_record_queries_total{NXDOMAIN,(none),example.com.}":           2,
		"meridian_dns_record_answers_total{us,www.example.com.,example.com.}":       1,
	} {
		if got[k] != want {
			t.Errorf("%s = %v, want %v", k, got[k], want)
		}
	}
	// A reload that changes the record's pools gives it new counters; one
	// that drops the zone drops its series.
	set = tel.ActivateDNS([]ZoneSpec{{Name: "example.com.", Records: []RecordSpec{{Name: "www.example.com.", Pools: []string{"eu"}}}}})
	if set.Record("example.com.", "www.example.com.") == www {
		t.Error("a record whose pools changed kept its counters")
	}
	tel.ActivateDNS(nil)
	mfs, _ = reg.Gather()
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), "meridian_dns_record_") {
			t.Errorf("%s still exported after the zone left", mf.GetName())
		}
	}
}

// TestRequestPathAllocatesNothing: the hooks the proxy and the DNS server
// call per request must not allocate.
func TestRequestPathAllocatesNothing(t *testing.T) {
	tel := New(Options{})
	set := table(tel, "10.0.0.1:80")
	tel.ActivateHTTP(set)
	arm, ep := set.Arms(0)[2], set.Endpoints(0)[0]
	rec := tel.ActivateDNS([]ZoneSpec{{Name: "example.com.", Records: []RecordSpec{{Name: "www.example.com.", Pools: []string{"eu"}}}}})
	var nilCell *HTTP
	n := testing.AllocsPerRun(1000, func() {
		arm.Begin(0)
		ep.Response(0, 200, time.Millisecond)
		ep.Failed(0, "reset")
		ep.BodyFailed(0, "timeout")
		arm.Done(0, 200, "client_canceled", 2*time.Millisecond, time.Millisecond, 10, 100)
		ep.Served(0, 2*time.Millisecond, 10, 100)
		nilCell.Done(0, 200, "", 0, 0, 0, 0)
		rec.Record("example.com.", "www.example.com.").Query(0, false, "eu")
	})
	if n != 0 {
		t.Errorf("%v allocations per request", n)
	}
}

func TestConcurrentUse(t *testing.T) {
	tel := New(Options{})
	reg := prometheus.NewRegistry()
	reg.MustRegister(tel.Collector())
	var wg sync.WaitGroup
	stop := make(chan struct{})
	set := table(tel, "10.0.0.1:80")
	tel.ActivateHTTP(set)
	for g := range 4 {
		wg.Go(func() {
			h := uint(g)
			for {
				select {
				case <-stop:
					return
				default:
				}
				s := set
				arm, ep := s.Arms(0)[2], s.Endpoints(0)[0]
				arm.Begin(h)
				ep.Response(h, 200, time.Millisecond)
				arm.Done(h, 200, "", time.Millisecond, time.Millisecond, 1, 1)
			}
		})
	}
	for i := range 50 {
		next := table(tel, fmt.Sprintf("10.0.1.%d:80", i), "10.0.0.1:80")
		tel.ActivateHTTP(next)
		tel.Tick()
		_ = tel.Stats()
		if _, err := reg.Gather(); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
}

// BenchmarkRequestPath is the telemetry's whole per-request cost in the
// proxy: the arm's Begin and Done, the endpoint's Response and Served.
func BenchmarkRequestPath(b *testing.B) {
	tel := New(Options{})
	set := table(tel, "10.0.0.1:80", "10.0.0.2:80")
	tel.ActivateHTTP(set)
	arm, ep := set.Arms(0)[2], set.Endpoints(0)[0]
	// Cells that count get their stripes on the next tick (see HTTP).
	arm.Begin(0)
	ep.Response(0, 200, time.Millisecond)
	tel.Tick()
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			d := time.Duration(i&1023) * time.Microsecond
			arm.Begin(0)
			ep.Response(0, 200, d)
			arm.Done(0, 200, "", d, d, 0, 512)
			ep.Served(0, d, 0, 512)
		}
	})
	// parallel has every CPU count on the same cells, each with its own
	// hint, as the proxy's CPUs do; parallel-shared with one hint, the
	// cost without stripes.
	for _, name := range []string{"parallel", "parallel-shared"} {
		var next atomic.Uint32
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				h := uint(0)
				if name == "parallel" {
					h = uint(next.Add(1))
				}
				i := 0
				for pb.Next() {
					i++
					d := time.Duration(i&1023) * time.Microsecond
					arm.Begin(h)
					ep.Response(h, 200, d)
					arm.Done(h, 200, "", d, d, 0, 512)
					ep.Served(h, d, 0, 512)
				}
			})
		})
	}
}

// TestPrepareLongBeforeActivate: aggregates made by PrepareHTTP survive
// ticks until the set is activated, and a pool without endpoints is listed.
func TestPrepareLongBeforeActivate(t *testing.T) {
	clk := newClock()
	tel := New(Options{Now: clk.now})
	set := tel.PrepareHTTP([]RouteSpec{{Name: "r", Arms: []ArmSpec{{Entry: -1, Service: "s"}}}},
		[]PoolSpec{{Name: "empty"}, {Name: "p", Endpoints: []EndpointSpec{{Address: "10.0.0.1:80"}}}})
	for range 3 {
		clk.add(retireAfter)
		tel.Tick()
	}
	tel.ActivateHTTP(set)
	set.Arms(0)[0].Begin(0)
	set.Arms(0)[0].Done(0, 200, "", time.Millisecond, 0, 0, 0)
	set.Endpoints(1)[0].Response(0, 200, time.Millisecond)
	st := tel.Stats()
	if len(st.HTTP.Routes) != 1 || st.HTTP.Routes[0].Name != "r" || st.HTTP.Routes[0].Totals.Requests != 1 {
		t.Errorf("routes %+v", st.HTTP.Routes)
	}
	if len(st.HTTP.Services) != 1 || st.HTTP.Services[0].Totals.Requests != 1 {
		t.Errorf("services %+v", st.HTTP.Services)
	}
	if len(st.HTTP.Pools) != 2 || st.HTTP.Pools[0].Name != "empty" || st.HTTP.Pools[1].Totals.Requests != 1 {
		t.Errorf("pools %+v", st.HTTP.Pools)
	}
}

// TestUntickedDoesNotGrow: a Telemetry nobody ticks (a proxy.Handler built
// without one) forgets retired cells on the next activation instead.
func TestUntickedDoesNotGrow(t *testing.T) {
	clk := newClock()
	tel := New(Options{Now: clk.now})
	for i := range 100 {
		set := table(tel, fmt.Sprintf("10.1.%d.1:80", i), fmt.Sprintf("10.1.%d.2:80", i))
		tel.ActivateHTTP(set)
		set.Endpoints(0)[0].Response(0, 200, time.Millisecond)
		tel.ActivateDNS([]ZoneSpec{{Name: fmt.Sprintf("z%d.", i)}})
		clk.add(10 * time.Second)
	}
	// Cells retired within the last minute are kept: 7 tables' worth at
	// 10 s apart (the boundary included), 2 endpoints each.
	if n := len(tel.retiring); n > 7*2 {
		t.Errorf("%d HTTP cells retiring", n)
	}
	if n := len(tel.zones); n > 8 {
		t.Errorf("%d zones kept", n)
	}
	if got := tel.Stats().HTTP.Pools[1].Totals.Requests; got != 100 {
		t.Errorf("pool counts %d requests, want all 100", got)
	}
}
