package health_test

import (
	"testing"
	"time"

	"github.com/meridian-lb/meridian/health"
)

// TestReturnedAt: the members a pool starts with have not returned, even
// when their first probe brings them up; a member returns when it becomes
// available after being down, ejected, drained or forced down, or when it
// joins an existing pool; the pool's stamp is the latest of its members',
// and stamps survive Syncs.
func TestReturnedAt(t *testing.T) {
	r := newRig(t, health.Options{})
	defer r.stop()
	probed := tcpCheck(20*time.Millisecond, 1, 1, "down")
	spec := func(eps ...string) []health.PoolSpec {
		return []health.PoolSpec{
			{Name: "web", Outlier: outlier(1, 20*time.Millisecond, time.Second, 100), Endpoints: eps},
			{Name: "checked", CheckName: "c", Check: probed, Endpoints: []string{"10.0.1.1:80", "10.0.1.2:80"}},
		}
	}
	r.p.Set("10.0.1.2:80", errProbe)
	r.e.Sync(spec("10.0.0.1:80", "10.0.0.2:80"))
	a, b := r.member(t, "web", "10.0.0.1:80"), r.member(t, "web", "10.0.0.2:80")
	up, down := r.member(t, "checked", "10.0.1.1:80"), r.member(t, "checked", "10.0.1.2:80")
	waitUntil(t, "the first probes", func() bool { return up.State() == health.StateUp && down.State() == health.StateDown })
	for _, m := range []*health.Member{a, b, up, down} {
		if m.ReturnedAt() != 0 || m.PoolReturnedAt() != 0 {
			t.Errorf("%s/%s: returned at %d (pool %d); the members a pool starts with have not returned", m.Pool(), m.Address(), m.ReturnedAt(), m.PoolReturnedAt())
		}
	}

	// Down, then up: returned.
	before := health.Nanotime()
	r.p.Set("10.0.1.2:80", nil)
	waitUntil(t, "the down member up", func() bool { return down.Available() })
	if got := down.ReturnedAt(); got < before || got > health.Nanotime() || up.PoolReturnedAt() != got {
		t.Errorf("up after down: returned at %d (pool %d), want between %d and now", got, up.PoolReturnedAt(), before)
	}

	// Drained (or forced down), then enabled: returned; draining alone is
	// not a return.
	if err := r.e.Override("web", a.Address(), health.ActionDrain); err != nil {
		t.Fatal(err)
	}
	if a.ReturnedAt() != 0 {
		t.Error("draining stamped a return")
	}
	if err := r.e.Override("web", a.Address(), health.ActionEnable); err != nil {
		t.Fatal(err)
	}
	drained := a.ReturnedAt()
	if drained == 0 || a.PoolReturnedAt() != drained || b.ReturnedAt() != 0 {
		t.Errorf("undrained: a returned at %d, pool %d, b %d", drained, a.PoolReturnedAt(), b.ReturnedAt())
	}

	// Ejected, then back when the ejection ends.
	b.Report(health.ConnectFailure)
	if b.Available() {
		t.Fatal("not ejected")
	}
	waitUntil(t, "the ejection's end", func() bool { return b.Available() })
	if got := b.ReturnedAt(); got <= drained || b.PoolReturnedAt() != got {
		t.Errorf("after the ejection: returned at %d (pool %d), want after %d", got, b.PoolReturnedAt(), drained)
	}

	// A Sync keeps the stamps; a member new to the pool has returned, at
	// the Sync.
	stampA, stampB := a.ReturnedAt(), b.ReturnedAt()
	r.e.Sync(spec("10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"))
	c := r.member(t, "web", "10.0.0.3:80")
	if a.ReturnedAt() != stampA || b.ReturnedAt() != stampB {
		t.Error("a Sync changed the stamps")
	}
	if got := c.ReturnedAt(); got <= stampB || c.PoolReturnedAt() != got {
		t.Errorf("added to the pool: returned at %d (pool %d), want after %d", got, c.PoolReturnedAt(), stampB)
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
