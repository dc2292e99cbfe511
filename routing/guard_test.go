package routing

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meridian-lb/meridian/config"
	"github.com/meridian-lb/meridian/health"
)

// TestGuardProblems: a guard that cannot be met, or says two things, is a
// compile problem at its path, with its line.
func TestGuardProblems(t *testing.T) {
	const text = `pools:
  a: {region: eu, endpoints: [127.0.0.1:1]}
  b: {region: eu, endpoints: [127.0.0.1:2]}
  c: {region: us, endpoints: [127.0.0.1:3]}
  n: {endpoints: [127.0.0.1:4]}
services:
  too-many-pools:
    pools: [a, b]
    guard: {min_pools: 3}
  too-many-regions:
    pools: [a, b, c]
    guard: {min_regions: 3}
  no-regions:
    pools: [n]
    guard: {min_regions: 1}
  both:
    pools: [a, c]
    guard: {min_pools: 1, min_regions: 1}
  neither:
    pools: [a]
    guard: {}
  negative:
    pools: [a]
    guard: {min_pools: -1}
  fine:
    pools: [a, b, c]
    guard: {min_regions: 2}
`
	cfg, err := config.Parse("g.yaml", []byte(text))
	if err != nil {
		t.Fatalf("the config's own rules pass it; compiling must catch it: %v", err)
	}
	_, err = Compile(cfg, Inputs{})
	var ce *config.Error
	if !errors.As(err, &ce) {
		t.Fatalf("Compile = %v, want a *config.Error", err)
	}
	var got []string
	for _, p := range ce.Problems {
		got = append(got, p.String())
	}
	want := []string{
		"g.yaml:12: services.too-many-regions.guard.min_regions: 3 is more than the 2 regions of the service's pools (eu, us)",
		"g.yaml:15: services.no-regions.guard.min_regions: 1: none of the service's pools names a region",
		"g.yaml:18: services.both.guard: set min_pools or min_regions, not both",
		"g.yaml:21: services.neither.guard: set min_pools or min_regions",
		"g.yaml:24: services.negative.guard.min_pools: -1: must be at least 1",
		"g.yaml:9: services.too-many-pools.guard.min_pools: 3 is more than the service's 2 pools",
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

const guardZone = `
zones:
  - origin: example.com.
    soa: {ns: ns1.example.com., mbox: hostmaster.example.com.}
    ns: [ns1.example.com.]
    records:
      - {name: www, type: A, service: web}
`

// guardTable compiles y with guards bound to a health engine with no
// checks, whose changes re-evaluate the guards (as internal/app wires it).
func guardTable(t *testing.T, y string) (*Table, *health.Engine, *Guards) {
	t.Helper()
	tb := compileYAML(t, strings.ReplaceAll(y, "endpoints: [", failOpenOutlier+", endpoints: ["))
	g := NewGuards(GuardOptions{})
	eng := health.New(health.Options{OnChange: g.HealthChanged})
	eng.Sync(tb.HealthSpecs())
	tb.BindHealth(eng)
	g.Bind(tb)
	return tb, eng, g
}

func eject(t *testing.T, eng *health.Engine, pool, addr string) {
	t.Helper()
	m := eng.Member(pool, addr)
	if m.Report(health.ConnectFailure); m.State() != health.StateEjected {
		t.Fatalf("%s/%s: %s, want ejected", pool, addr, m.State())
	}
}

func servingKeys(m map[string]bool) []string { return slices.Sorted(maps.Keys(m)) }

// TestGuardHoldsPools walks a failover service with min_pools 2 through
// health verdicts and operator actions, checking the guard's status, the
// pools HTTP and DNS serve from, and that an operator's drain is never
// undone by a hold.
func TestGuardHoldsPools(t *testing.T) {
	tb, eng, g := guardTable(t, `
pools:
  a: {endpoints: [127.0.0.1:1]}
  b: {endpoints: [127.0.0.2:2, 127.0.0.3:2]}
  c: {endpoints: [127.0.0.4:3]}
services:
  web: {pools: [a, b, c], guard: {min_pools: 2}}
routes: [{name: r, match: {path_prefix: /}, service: web}]
`+guardZone)
	web := tb.Services["web"]
	step := func(name, state string, serving, held []string, http, dns string) {
		t.Helper()
		st := web.GuardStatus()
		if st == nil || st.State != state || !slices.Equal(st.Serving, serving) || !slices.Equal(st.Held, held) {
			t.Fatalf("%s: guard %+v, want state %s serving %v held %v", name, st, state, serving, held)
		}
		h, d := tb.Serving("web")
		if got := strings.Join(servingKeys(h), ","); got != http {
			t.Errorf("%s: HTTP serves from %s, want %s", name, got, http)
		}
		if got := strings.Join(servingKeys(d), ","); got != dns {
			t.Errorf("%s: DNS answers from %s, want %s", name, got, dns)
		}
		for _, p := range tb.Pools {
			wantHeld := slices.Contains(held, p.Name)
			if got := p.HeldBy(); wantHeld != (len(got) == 1 && got[0] == "web") {
				t.Errorf("%s: pool %s HeldBy %v, want held %t", name, p.Name, got, wantHeld)
			}
		}
	}
	step("all healthy", GuardOK, []string{"a", "b", "c"}, nil, "a", "a")

	eject(t, eng, "a", "127.0.0.1:1")
	step("a ejected: two left, applied", GuardOK, []string{"b", "c"}, nil, "b", "b")

	eject(t, eng, "b", "127.0.0.2:2")
	step("one of b's endpoints ejected: b still healthy", GuardOK, []string{"b", "c"}, nil, "b", "b")
	if tb.Pools["b"].Endpoints[0].Available() {
		t.Error("b's ejected endpoint available while b has a healthy one: a guard must only hold whole pools")
	}
	eject(t, eng, "b", "127.0.0.3:2")
	step("b's last endpoint ejected: held", GuardHolding, []string{"b", "c"}, []string{"b"}, "b", "b")
	for _, e := range tb.Pools["b"].Endpoints {
		if !e.Available() {
			t.Errorf("held pool b: %s not available", e.Address)
		}
	}
	if fo := tb.FailingOpen(); len(fo) != 0 {
		t.Errorf("a held pool is not failing open: %v", fo)
	}
	if st := web.GuardStatus(); st.Holds != 1 || !strings.Contains(st.Reason, "holding b") {
		t.Errorf("status %+v, want one hold and a reason naming b", st)
	}

	// An operator's drain of one of b's endpoints stays: b serves from the other.
	mustOverride(t, eng, "b", "127.0.0.2:2", health.ActionDrain)
	if e := tb.Pools["b"].Endpoints; e[0].Available() || !e[1].Available() {
		t.Errorf("drained endpoint of a held pool: available %t, the other %t; want false, true", e[0].Available(), e[1].Available())
	}
	step("one of b's endpoints drained", GuardHolding, []string{"b", "c"}, []string{"b"}, "b", "b")

	// Both of b's endpoints taken out by the operator: b cannot be held.
	// The guard has nothing else that served (a lost its health before b),
	// so it is below its minimum and says why.
	mustOverride(t, eng, "b", "127.0.0.3:2", health.ActionDown)
	step("b drained and forced down", GuardBelow, []string{"c"}, nil, "c", "c")
	if st := web.GuardStatus(); !strings.Contains(st.Reason, "cannot hold b") {
		t.Errorf("reason %q, want it to name b as not holdable", st.Reason)
	}

	// c fails too: c served last, so the guard holds c.
	eject(t, eng, "c", "127.0.0.4:3")
	step("c ejected", GuardHolding, []string{"c"}, []string{"c"}, "c", "c")

	// The operator enables b: its endpoints are still ejected, but b did
	// not serve since, so the guard keeps c, not b.
	mustOverride(t, eng, "b", "127.0.0.2:2", health.ActionEnable)
	mustOverride(t, eng, "b", "127.0.0.3:2", health.ActionEnable)
	step("b enabled, still ejected", GuardHolding, []string{"c"}, []string{"c"}, "c", "c")

	reg := prometheus.NewRegistry()
	reg.MustRegister(g)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			v := m.GetGauge().GetValue() + m.GetCounter().GetValue()
			got = append(got, fmt.Sprintf("%s{%s=%q} %g", mf.GetName(), m.GetLabel()[0].GetName(), m.GetLabel()[0].GetValue(), v))
		}
	}
	want := []string{`meridian_service_guard_active{service="web"} 1`, `meridian_service_guard_holds_total{service="web"} 2`}
	if !slices.Equal(got, want) {
		t.Errorf("metrics %q, want %q", got, want)
	}
}

// TestGuardArmedBeforeTheChange: a pool whose loss would break the guard
// is held the moment its last healthy endpoint fails, before the guard is
// re-evaluated, so no pick or answer sees the change.
func TestGuardArmedBeforeTheChange(t *testing.T) {
	tb := compileYAML(t, `
pools:
  a: {endpoints: [127.0.0.1:1], `+failOpenOutlier+`}
  b: {endpoints: [127.0.0.1:2], `+failOpenOutlier+`}
services:
  web: {pools: [a, b], guard: {min_pools: 2}}
routes: [{name: r, match: {path_prefix: /}, service: web}]
`)
	g := NewGuards(GuardOptions{})
	eng := health.New(health.Options{}) // no callback: nothing re-evaluates
	eng.Sync(tb.HealthSpecs())
	tb.BindHealth(eng)
	g.Bind(tb)
	eject(t, eng, "a", "127.0.0.1:1")
	if !tb.Pools["a"].Endpoints[0].Available() {
		t.Fatal("a's last endpoint failed and the guard was not re-evaluated: a must stay available (armed)")
	}
	if st := tb.Services["web"].GuardStatus(); st.State != GuardOK {
		t.Fatalf("status %s before re-evaluation, want ok", st.State)
	}
	g.HealthChanged()
	if st := tb.Services["web"].GuardStatus(); st.State != GuardHolding || !slices.Equal(st.Held, []string{"a"}) {
		t.Fatalf("after re-evaluation: %+v, want a held", st)
	}
}

// TestGuardRegions: min_regions counts distinct regions; a region with a
// healthy pool needs no hold, and one pool per lost region is held.
func TestGuardRegions(t *testing.T) {
	tb, eng, _ := guardTable(t, `
pools:
  eu1: {region: eu, endpoints: [127.0.0.1:1]}
  eu2: {region: eu, endpoints: [127.0.0.1:2]}
  us1: {region: us, endpoints: [127.0.0.1:3]}
  us2: {region: us, endpoints: [127.0.0.1:4]}
services:
  web: {policy: geo, pools: [eu1, eu2, us1, us2], guard: {min_regions: 2}}
routes: [{name: r, match: {path_prefix: /}, service: web}]
`+guardZone)
	web := tb.Services["web"]
	eject(t, eng, "eu1", "127.0.0.1:1")
	if st := web.GuardStatus(); st.State != GuardOK {
		t.Fatalf("eu1 down, eu2 up: %+v, want ok", st)
	}
	eject(t, eng, "eu2", "127.0.0.1:2")
	st := web.GuardStatus()
	if st.State != GuardHolding || !slices.Equal(st.Held, []string{"eu2"}) || st.Count != 2 {
		t.Fatalf("eu lost its last pool: %+v, want eu2 held (it served last), 2 regions", st)
	}
	h, d := tb.Serving("web")
	if !h["eu2"] || !d["eu2"] || h["eu1"] {
		t.Errorf("HTTP %v, DNS %v: want eu clients on eu2", h, d)
	}
	eject(t, eng, "us1", "127.0.0.1:3")
	if st := web.GuardStatus(); st.State != GuardHolding || !slices.Equal(st.Held, []string{"eu2"}) {
		t.Fatalf("us1 down, us2 up: %+v, want only eu2 held", st)
	}
}

// TestGuardCheck: which drains would break a guard.
func TestGuardCheck(t *testing.T) {
	tb, eng, g := guardTable(t, `
pools:
  a: {endpoints: [127.0.0.1:1, 127.0.0.1:11]}
  b: {endpoints: [127.0.0.1:2]}
  c: {endpoints: [127.0.0.1:3]}
  other: {endpoints: [127.0.0.1:4]}
services:
  web: {pools: [a, b, c], guard: {min_pools: 2}}
  solo: {pools: [other]}
`)
	out := func(eps ...string) func(pool, addr string) bool {
		return func(pool, addr string) bool { return slices.Contains(eps, pool+"/"+addr) }
	}
	check := func(what string, eps []string, want string) {
		t.Helper()
		var got []string
		for _, b := range g.Check(tb, out(eps...)) {
			got = append(got, b.Reason)
		}
		if g := strings.Join(got, "\n"); g != want {
			t.Errorf("%s: Check = %q, want %q", what, g, want)
		}
	}
	check("one pool of three", []string{"a/127.0.0.1:1", "a/127.0.0.1:11"}, "")
	check("two of three", []string{"a/127.0.0.1:1", "a/127.0.0.1:11", "b/127.0.0.1:2"},
		"service web: guard min_pools 2: a, b would stop serving, leaving 1 pool (c) serving")
	check("one endpoint of a and b", []string{"a/127.0.0.1:1", "b/127.0.0.1:2"}, "")
	check("an unguarded service", []string{"other/127.0.0.1:4"}, "")

	mustOverride(t, eng, "a", "127.0.0.1:1", health.ActionDrain)
	mustOverride(t, eng, "a", "127.0.0.1:11", health.ActionDrain)
	check("b after a is drained", []string{"b/127.0.0.1:2"}, "service web: guard min_pools 2: b would stop serving, leaving 1 pool (c) serving")
	check("a again: already out", []string{"a/127.0.0.1:1"}, "")

	// Holding: b is held on its failing endpoint; draining it would lose b.
	eject(t, eng, "b", "127.0.0.1:2")
	if st := tb.Services["web"].GuardStatus(); st.State != GuardHolding {
		t.Fatalf("status %+v, want holding", st)
	}
	check("the held pool's last endpoint", []string{"b/127.0.0.1:2"}, "service web: guard min_pools 2: b would stop serving, leaving 1 pool (c) serving")
}

// TestGuardSurvivesReload: the guard's memory of what served is kept by
// name, so a new table of the same config keeps holding.
func TestGuardSurvivesReload(t *testing.T) {
	y := `
pools:
  a: {endpoints: [127.0.0.1:1]}
  b: {endpoints: [127.0.0.1:2]}
services:
  web: {pools: [a, b], guard: {min_pools: 2}}
routes: [{name: r, match: {path_prefix: /}, service: web}]
`
	tb, eng, g := guardTable(t, y)
	eject(t, eng, "b", "127.0.0.1:2")
	if st := tb.Services["web"].GuardStatus(); st.State != GuardHolding {
		t.Fatalf("status %+v, want holding", st)
	}
	tb2 := compileYAML(t, strings.ReplaceAll(y, "endpoints: [", failOpenOutlier+", endpoints: ["))
	eng.Sync(tb2.HealthSpecs())
	tb2.BindHealth(eng)
	g.Bind(tb2)
	if st := tb2.Services["web"].GuardStatus(); st.State != GuardHolding || !tb2.Pools["b"].Endpoints[0].Available() {
		t.Fatalf("after the reload: %+v, b available %t; want still held", st, tb2.Pools["b"].Endpoints[0].Available())
	}
}

// TestGuardWithProbes runs real TCP backends on loopback and the health
// engine's probes: when checks fail below min_pools, the pool that served
// last is held (HTTP picks it, DNS answers with it); when health returns,
// the hold is released.
func TestGuardWithProbes(t *testing.T) {
	a, b := newBackend(t), newBackend(t)
	tb := compileYAML(t, fmt.Sprintf(`
checks:
  tcp: {type: tcp, interval: 50ms, timeout: 40ms, rise: 1, fall: 1}
pools:
  a: {endpoints: [%s], check: tcp}
  b: {endpoints: [%s], check: tcp}
services:
  web: {pools: [a, b], guard: {min_pools: 2}}
routes: [{name: r, match: {path_prefix: /}, service: web}]
`, a.addr, b.addr)+guardZone)
	g := NewGuards(GuardOptions{})
	eng := health.New(health.Options{OnChange: g.HealthChanged})
	eng.Sync(tb.HealthSpecs())
	tb.BindHealth(eng)
	g.Bind(tb)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	web := tb.Services["web"]
	wait := func(what string, cond func(*GuardStatus) bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for st := web.GuardStatus(); !cond(st); st = web.GuardStatus() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s: %+v", what, st)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	wait("both up", func(st *GuardStatus) bool { return st.State == GuardOK && len(st.Healthy) == 2 })

	a.stop()
	wait("a held", func(st *GuardStatus) bool { return st.State == GuardHolding && slices.Equal(st.Held, []string{"a"}) })
	if p, e := pick(tb, web); p != "a" || e != a.addr {
		t.Errorf("HTTP picks %s %s, want the held pool a", p, e)
	}
	if _, d := tb.Serving("web"); !d["a"] {
		t.Errorf("DNS answers from %v, want a", d)
	}
	var answer []string
	for _, tg := range tb.Zones[0].Steered[0].Targets["a"] {
		if tg.Available() {
			answer = append(answer, tg.IP.String())
		}
	}
	if !slices.Equal(answer, []string{"127.0.0.1"}) {
		t.Errorf("DNS targets of a available: %v", answer)
	}
	if m := eng.Member("a", a.addr); m.Available() || m.State() != health.StateDown {
		t.Errorf("a's member: %s available %t; the guard must not change the health verdict", m.State(), m.Available())
	}

	a.start(t)
	wait("released", func(st *GuardStatus) bool { return st.State == GuardOK && len(st.Held) == 0 })
	if tb.Pools["a"].HeldBy() != nil {
		t.Error("a still held after its health returned")
	}
}

// pick is the proxy's choice for one request: the pools in order, the
// first with a pickable endpoint.
func pick(tb *Table, svc *Service) (pool, endpoint string) {
	for _, p := range svc.Order(nil, "") {
		if e := p.Pick(0, false, nil, false); e != nil {
			return p.Name, e.Address
		}
	}
	return "", ""
}

// backend is a TCP listener on loopback that can stop and start on its port.
type backend struct {
	addr string
	mu   sync.Mutex
	ln   net.Listener
}

func newBackend(t *testing.T) *backend {
	t.Helper()
	b := &backend{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b.addr = ln.Addr().String()
	b.serve(ln)
	t.Cleanup(b.stop)
	return b
}

func (b *backend) serve(ln net.Listener) {
	b.mu.Lock()
	b.ln = ln
	b.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
}

func (b *backend) stop() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ln != nil {
		b.ln.Close()
		b.ln = nil
	}
}

func (b *backend) start(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp", b.addr)
	if err != nil {
		t.Fatal(err)
	}
	b.serve(ln)
}

// TestServing: the pools HTTP and DNS send a service's traffic to, over
// every order a client can get, without taking weighted slots.
func TestServing(t *testing.T) {
	tb, eng, _ := guardTable(t, `
pools:
  x: {endpoints: [127.0.0.1:1]}
  y: {endpoints: [127.0.0.2:2]}
  z: {endpoints: [127.0.0.3:3]}
  v6: {endpoints: ["[::1]:4"]}
services:
  web: {policy: weighted, pools: [x, y, z], weights: [3, 1, 0]}
  dual: {pools: [v6, x]}
  idle: {pools: [z]}
routes: [{name: r, match: {path_prefix: /}, service: web}, {name: d, match: {host: d.test}, service: dual}]
zones:
  - origin: example.com.
    soa: {ns: ns1.example.com., mbox: hostmaster.example.com.}
    ns: [ns1.example.com.]
    records:
      - {name: www, type: A, service: web}
      - {name: dual, type: A, service: dual}
`)
	check := func(what, svc, http, dns string) {
		t.Helper()
		h, d := tb.Serving(svc)
		got := func(m map[string]bool) string {
			if m == nil {
				return "unused"
			}
			return strings.Join(servingKeys(m), ",")
		}
		if got(h) != http || got(d) != dns {
			t.Errorf("%s: Serving(%s) = HTTP %s, DNS %s; want %s, %s", what, svc, got(h), got(d), http, dns)
		}
	}
	before := tb.Services["web"].wrr.next.Load()
	check("weighted: both pools that can be drawn", "web", "x,y", "x,y")
	if tb.Services["web"].wrr.next.Load() != before {
		t.Error("Serving took a weighted slot")
	}
	check("an A record skips a v6-only pool", "dual", "v6", "x")
	check("a service nothing uses", "idle", "unused", "unused")
	eject(t, eng, "x", "127.0.0.1:1")
	check("x ejected", "web", "y", "y")
	eject(t, eng, "y", "127.0.0.2:2")
	check("x and y ejected: z, weight 0, still fails over", "web", "z", "z")
}
