package fleet

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/meridian-lb/meridian/catalog/consultest"
	"github.com/meridian-lb/meridian/config"
	"github.com/meridian-lb/meridian/health"
	"github.com/meridian-lb/meridian/routing"
)

// fakeHealth is a health engine with verdicts set by the test.
type fakeHealth struct {
	mu sync.Mutex
	st map[string]*health.Status
}

func newFakeHealth(addrs ...string) *fakeHealth {
	h := &fakeHealth{st: map[string]*health.Status{}}
	for _, a := range addrs {
		h.st[Key("web", a)] = &health.Status{Pool: "web", Address: a, Check: "c", Probe: &health.ProbeStatus{State: health.StateUp}}
	}
	return h
}

func (h *fakeHealth) setDown(addr string, down bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := health.StateUp
	if down {
		s = health.StateDown
	}
	h.st[Key("web", addr)].Probe.State = s
}

func (h *fakeHealth) Snapshot() []health.Status {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []health.Status
	for _, s := range h.st {
		c := *s
		p := *s.Probe
		c.Probe = &p
		out = append(out, c)
	}
	return out
}

func (h *fakeHealth) Status(pool, address string) (health.Status, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s, ok := h.st[Key(pool, address)]
	if !ok {
		return health.Status{}, false
	}
	return *s, true
}

func (h *fakeHealth) OverrideAs(pool, address string, a health.Action, source string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.st[Key(pool, address)]
	if a == health.ActionEnable {
		s.Override, s.OverrideSource = "", ""
	} else {
		s.Override, s.OverrideSource = a, source
	}
	return nil
}

func (h *fakeHealth) ReleaseOverride(pool, address, source string) (bool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.st[Key(pool, address)]
	if s.OverrideSource != source || s.Override == "" {
		return false, nil
	}
	s.Override, s.OverrideSource = "", ""
	return true, nil
}

func (h *fakeHealth) override(addr string) (health.Action, string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.st[Key("web", addr)]
	return s.Override, s.OverrideSource
}

const (
	ep1 = "10.0.0.1:80"
	ep2 = "10.0.0.2:80"
)

// member is one fleet instance of a test.
type member struct {
	f      *Fleet
	h      *fakeHealth
	t      *routing.Table
	link   *consultest.Link
	cancel context.CancelFunc
	done   chan error
}

func newTable(t *testing.T) *routing.Table {
	t.Helper()
	cfg, err := config.Parse("t.yaml", []byte("listen: {http: 127.0.0.1:0}\npools: {web: {endpoints: ["+ep1+", "+ep2+"]}}\nservices: {web: {pools: [web]}}\nroutes: [{service: web}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := routing.Compile(cfg, routing.Inputs{})
	if err != nil {
		t.Fatal(err)
	}
	return tbl
}

func startMember(t *testing.T, srv *consultest.Server, id string, q *config.Quorum) *member {
	t.Helper()
	m := &member{h: newFakeHealth(ep1, ep2), t: newTable(t), link: consultest.NewLink(t, srv.Addr), done: make(chan error, 1)}
	c, err := api.NewClient(&api.Config{Address: m.link.Addr})
	if err != nil {
		t.Fatal(err)
	}
	m.f, err = New(Options{Client: c, SessionTTL: time.Second, Region: "eu", Health: m.h, Table: func() *routing.Table { return m.t }, Wait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	m.f.SetID(id)
	m.f.Configure(q, true)
	m.f.Bind(m.t)
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	go func() { m.done <- m.f.Run(ctx) }()
	t.Cleanup(m.stop)
	return m
}

func (m *member) stop() {
	if m.cancel != nil {
		m.cancel()
		<-m.done
		m.cancel = nil
	}
}

func (m *member) verdict(addr string) routing.Quorum {
	for _, e := range m.t.Pools["web"].Endpoints {
		if e.Address == addr {
			return e.QuorumVerdict()
		}
	}
	return 99
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func reporters(m *member) int { return len(m.f.Status().Reporters) }

// TestQuorum runs three instances: one instance's failed probe does not
// take an endpoint out of DNS (here or elsewhere), a second one's does,
// everywhere; recovery brings it back; and the console's per-reporter view
// shows who sees what.
func TestQuorum(t *testing.T) {
	srv := consultest.New(t, consultest.Options{MinSessionTTL: time.Second})
	q := &config.Quorum{MinReporters: 2, DownRatio: 0.5}
	a, b, c := startMember(t, srv, "a", q), startMember(t, srv, "b", q), startMember(t, srv, "c", q)
	all := []*member{a, b, c}
	waitFor(t, "three reporters everywhere", func() bool { return reporters(a) == 3 && reporters(b) == 3 && reporters(c) == 3 })
	for _, m := range all {
		waitFor(t, "up verdicts", func() bool { return m.verdict(ep1) == routing.QuorumUp })
	}

	a.h.setDown(ep1, true)
	a.f.HealthChanged()
	waitFor(t, "b to see a's report", func() bool {
		for _, e := range b.f.Status().Endpoints {
			if e.Address == ep1 && e.Views["a"] == "down" {
				return true
			}
		}
		return false
	})
	for _, m := range all {
		if v := m.verdict(ep1); v != routing.QuorumUp {
			t.Fatalf("one reporter of three sees %s down: verdict %s, want up", ep1, v)
		}
	}
	if st := a.f.Status(); !st.Endpoints[0].Overruled || st.Endpoints[0].Down != 1 || st.Endpoints[0].Of != 3 {
		t.Errorf("a's view of %s: %+v", ep1, st.Endpoints[0])
	}
	for _, e := range a.t.Pools["web"].Endpoints {
		if e.Address == ep1 && !e.DNSAvailable() {
			t.Error("a answers DNS without ep1, which the fleet sees up")
		}
	}

	b.h.setDown(ep1, true)
	b.f.HealthChanged()
	for _, m := range all {
		waitFor(t, "two of three: down everywhere", func() bool { return m.verdict(ep1) == routing.QuorumDown })
	}
	if v := c.verdict(ep2); v != routing.QuorumUp {
		t.Errorf("ep2 verdict %s", v)
	}
	a.h.setDown(ep1, false)
	a.f.HealthChanged()
	for _, m := range all {
		waitFor(t, "one of three again: up", func() bool { return m.verdict(ep1) == routing.QuorumUp })
	}
}

// TestPartitionedReporter cuts one instance off Consul: its session lapses
// and its report vanishes from the others' view (they decide without it),
// while its own view goes stale and it answers DNS by its own health.
func TestPartitionedReporter(t *testing.T) {
	srv := consultest.New(t, consultest.Options{MinSessionTTL: time.Second})
	q := &config.Quorum{MinReporters: 2, DownRatio: 0.5}
	a, b, c := startMember(t, srv, "a", q), startMember(t, srv, "b", q), startMember(t, srv, "c", q)
	waitFor(t, "three reporters", func() bool { return reporters(b) == 3 && reporters(a) == 3 })
	a.h.setDown(ep2, true)
	a.f.HealthChanged()
	b.h.setDown(ep2, true)
	b.f.HealthChanged()
	waitFor(t, "ep2 down by quorum on c", func() bool { return c.verdict(ep2) == routing.QuorumDown })

	a.link.Cut()
	cut := time.Now()
	waitFor(t, "a's report to vanish", func() bool { return reporters(b) == 2 && reporters(c) == 2 })
	t.Logf("a's report vanished %v after the cut (session TTL 1s)", time.Since(cut).Round(10*time.Millisecond))
	if v := c.verdict(ep2); v != routing.QuorumDown {
		t.Errorf("b and c both see ep2 down: verdict %s", v)
	}
	waitFor(t, "a's view stale", func() bool { return a.f.Status().Stale })
	if v := a.verdict(ep2); v != routing.QuorumNone {
		t.Errorf("a stale: verdict %s, want none (its own health)", v)
	}
	a.link.Restore()
	waitFor(t, "a back in the fleet", func() bool { return reporters(b) == 3 && !a.f.Status().Stale })
	waitFor(t, "a's verdicts again", func() bool { return a.verdict(ep2) == routing.QuorumDown })
}

// TestSharedOverrides: a drain shared by one instance applies on the
// others as source fleet, also to an endpoint whose own override stands
// untouched elsewhere; enable lifts it.
func TestSharedOverrides(t *testing.T) {
	srv := consultest.New(t, consultest.Options{MinSessionTTL: time.Second})
	a, b, c := startMember(t, srv, "a", nil), startMember(t, srv, "b", nil), startMember(t, srv, "c", nil)
	_ = c.h.OverrideAs("web", ep1, health.ActionDown, "api") // c's operator forced it down locally
	ctx := context.Background()
	if err := a.h.OverrideAs("web", ep1, health.ActionDrain, "api"); err != nil {
		t.Fatal(err)
	}
	if err := a.f.Share(ctx, "web", ep1, health.ActionDrain); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b drains ep1", func() bool { act, src := b.h.override(ep1); return act == health.ActionDrain && src == OverrideSource })
	if act, src := c.h.override(ep1); act != health.ActionDown || src != "api" {
		t.Errorf("c's own override was replaced: %s from %s", act, src)
	}
	if st := b.f.Status(); len(st.Overrides) != 1 || st.Overrides[0].By != "a" {
		t.Errorf("b's overrides %+v", st.Overrides)
	}
	if err := a.f.Share(ctx, "web", ep1, health.ActionEnable); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b lifts the drain", func() bool { act, _ := b.h.override(ep1); return act == "" })
	if act, _ := c.h.override(ep1); act != health.ActionDown {
		t.Errorf("c's own override was lifted by the fleet: %q", act)
	}
}

// TestCleanStopRemovesReport: a clean stop destroys the session, and the
// report goes at once.
func TestCleanStopRemovesReport(t *testing.T) {
	srv := consultest.New(t, consultest.Options{MinSessionTTL: time.Second})
	a, b := startMember(t, srv, "a", nil), startMember(t, srv, "b", nil)
	waitFor(t, "two reporters", func() bool { return reporters(a) == 2 })
	start := time.Now()
	b.stop()
	waitFor(t, "b's report gone", func() bool { return reporters(a) == 1 })
	if d := time.Since(start); d > 900*time.Millisecond {
		t.Errorf("b's report took %v to go after a clean stop, want well under the TTL", d)
	}
	if _, ok := srv.KV("meridian/fleet/reports/b"); ok {
		t.Error("b's report key is still in KV")
	}
}
