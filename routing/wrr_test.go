package routing

import (
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/meridian-lb/meridian/config"
	"github.com/meridian-lb/meridian/health"
)

func TestWRRExact(t *testing.T) {
	tests := []struct {
		name    string
		weights []int
	}{
		{"90/10", []int{90, 10}},
		{"1/2/3", []int{1, 2, 3}},
		{"zero weight", []int{5, 0, 5}},
		{"single", []int{7}},
		{"large sums scaled", []int{1 << 20, 3 << 20}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWRR(tt.weights)
			norm := normalise(tt.weights)
			cycle := 0
			for _, x := range norm {
				cycle += x
			}
			counts := make([]int, len(tt.weights))
			for range cycle * 3 {
				counts[w.pick()]++
			}
			for i, x := range norm {
				if counts[i] != 3*x {
					t.Errorf("index %d chosen %d times over 3 cycles, want %d", i, counts[i], 3*x)
				}
			}
		})
	}
}

func TestNormaliseScalesByLargestRemainder(t *testing.T) {
	tests := []struct {
		name string
		in   []int
		want []int
	}{
		{"gcd only", []int{90, 10}, []int{9, 1}},
		{"scaled", []int{30001, 70000}, []int{3000, 7000}},
		{"remainders go to the largest", []int{10001, 10001, 10001}, []int{1, 1, 1}},
		{"uneven", []int{33334, 33333, 33333, 1}, []int{3333, 3333, 3333, 1}},
		{"remainder to the largest fraction", []int{15001, 15000, 70000}, []int{1500, 1500, 7000}},
		{"tiny weight keeps one slot", []int{1, 99999}, []int{1, 9999}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := normalise(tt.in)
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("normalise(%v) = %v, want %v", tt.in, got, tt.want)
				}
			}
		})
	}
}

func TestWRREmpty(t *testing.T) {
	if got := newWRR([]int{0, 0}).pick(); got != -1 {
		t.Errorf("pick on all-zero weights = %d, want -1", got)
	}
}

func TestServiceOrder(t *testing.T) {
	eu := &Pool{Name: "eu", Region: "eu"}
	us := &Pool{Name: "us", Region: "us"}
	ap := &Pool{Name: "ap", Region: "ap"}
	names := func(ps []*Pool) string {
		s := ""
		for _, p := range ps {
			s += p.Name + " "
		}
		return s
	}
	tests := []struct {
		name   string
		svc    *Service
		region string
		want   string
	}{
		{"failover keeps order", &Service{Policy: "failover", Pools: []*Pool{us, eu, ap}}, "eu", "us eu ap "},
		{"geo puts the region first", &Service{Policy: "geo", Pools: []*Pool{us, eu, ap}}, "eu", "eu us ap "},
		{"geo unknown region keeps order", &Service{Policy: "geo", Pools: []*Pool{us, eu, ap}}, "mars", "us eu ap "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := names(tt.svc.Order(nil, tt.region)); got != tt.want {
				t.Errorf("Order = %q, want %q", got, tt.want)
			}
		})
	}
	t.Run("weighted first pick follows weights, rest fail over", func(t *testing.T) {
		s := &Service{Policy: "weighted", Pools: []*Pool{eu, us}, Weights: []int{3, 1}, wrr: newWRR([]int{3, 1})}
		firsts := map[string]int{}
		for range 400 {
			o := s.Order(nil, "")
			if len(o) != 2 || o[0] == o[1] {
				t.Fatalf("order %v", names(o))
			}
			firsts[o[0].Name]++
		}
		if firsts["eu"] != 300 || firsts["us"] != 100 {
			t.Errorf("first picks = %v, want eu 300 us 100", firsts)
		}
	})
}

func TestPoolUsablePanicMode(t *testing.T) {
	down := &Endpoint{Address: "a"}
	p := &Pool{Endpoints: []*Endpoint{down}, FailOpen: true}
	if ok, panic := p.Usable(); !ok || panic {
		t.Errorf("all up (no health): ok=%v panic=%v", ok, panic)
	}
	eps, degraded := p.AppendAvailable(nil)
	if len(eps) != 1 || degraded {
		t.Errorf("AppendAvailable = %d, %v", len(eps), degraded)
	}
}

// TestPanicModeWithHealth binds a real health engine: a fail-open pool
// whose endpoints are all ejected (a health verdict) uses them all, except
// those an operator drained or forced down, which panic mode never
// overrides; a pool with every endpoint taken out is unusable, and a fail
// pool is unusable once none is available.
func TestPanicModeWithHealth(t *testing.T) {
	cfg, err := config.Parse("t.yaml", []byte(`
pools:
  open: {endpoints: [127.0.0.1:1, 127.0.0.1:2], outlier: {consecutive_failures: 1, max_ejected_percent: 100}}
  closed: {endpoints: [127.0.0.1:3], on_all_down: fail, outlier: {consecutive_failures: 1, max_ejected_percent: 100}}
`))
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := Compile(cfg, Inputs{})
	if err != nil {
		t.Fatal(err)
	}
	eng := health.New(health.Options{Logger: zap.NewNop(), Registerer: prometheus.NewRegistry()})
	eng.Sync(tbl.HealthSpecs())
	tbl.BindHealth(eng)
	eject := func(pool, addr string) {
		t.Helper()
		m := eng.Member(pool, addr)
		m.Report(health.ConnectFailure)
		if m.State() != health.StateEjected {
			t.Fatalf("%s/%s not ejected: %s", pool, addr, m.State())
		}
	}
	addrs := func(eps []*Endpoint) []string {
		var out []string
		for _, e := range eps {
			out = append(out, e.Address)
		}
		return out
	}

	open, closed := tbl.Pools["open"], tbl.Pools["closed"]
	steps := []struct {
		name      string
		do        func()
		ok, panic bool
		eps       []string // AppendAvailable
		degraded  bool
	}{
		{"healthy", func() {}, true, false, []string{"127.0.0.1:1", "127.0.0.1:2"}, false},
		{"one ejected", func() { eject("open", "127.0.0.1:1") }, true, false, []string{"127.0.0.1:2"}, false},
		{"all ejected: panic mode uses all", func() { eject("open", "127.0.0.1:2") }, true, true, []string{"127.0.0.1:1", "127.0.0.1:2"}, true},
		{"one of them drained: panic mode skips it", func() { mustOverride(t, eng, "open", "127.0.0.1:1", health.ActionDrain) }, true, true, []string{"127.0.0.1:2"}, true},
		{"the other forced down: unusable", func() { mustOverride(t, eng, "open", "127.0.0.1:2", health.ActionDown) }, false, false, nil, false},
		{"drain lifted: back to panic mode on the ejected one", func() { mustOverride(t, eng, "open", "127.0.0.1:1", health.ActionEnable) }, true, true, []string{"127.0.0.1:1"}, true},
	}
	for _, s := range steps {
		s.do()
		if ok, panic := open.Usable(); ok != s.ok || panic != s.panic {
			t.Fatalf("%s: Usable = %v, %v, want %v, %v", s.name, ok, panic, s.ok, s.panic)
		}
		eps, degraded := open.AppendAvailable(nil)
		if !slices.Equal(addrs(eps), s.eps) || degraded != s.degraded {
			t.Fatalf("%s: AppendAvailable = %v degraded=%v, want %v %v", s.name, addrs(eps), degraded, s.eps, s.degraded)
		}
		if s.panic {
			for range 20 {
				if e := open.Pick(0, false, nil, true); e == nil || !slices.Contains(s.eps, e.Address) {
					t.Fatalf("%s: panic pick %v, want one of %v", s.name, e, s.eps)
				}
			}
		}
	}
	if e := open.Pick(0, false, nil, true); e == nil || e.Address != "127.0.0.1:1" {
		t.Fatalf("panic pick %v, want 127.0.0.1:1", e)
	}

	eject("closed", "127.0.0.1:3")
	if ok, _ := closed.Usable(); ok {
		t.Error("all down, on_all_down fail: pool still usable")
	}
	if eps, _ := closed.AppendAvailable(nil); len(eps) != 0 {
		t.Errorf("all down, on_all_down fail: AppendAvailable = %v", eps)
	}
}

func mustOverride(t *testing.T, e *health.Engine, pool, addr string, a health.Action) {
	t.Helper()
	if err := e.Override(pool, addr, a); err != nil {
		t.Fatal(err)
	}
}
