package health_test

import (
	"context"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/meridian-lb/meridian/config"
	"github.com/meridian-lb/meridian/health"
)

func TestRiseFallHysteresis(t *testing.T) {
	const addr = "10.0.0.1:80"
	type step struct {
		err   error
		state health.State
	}
	ok, bad := error(nil), errProbe
	tests := []struct {
		name       string
		rise, fall int
		initial    string
		steps      []step
	}{
		{
			name: "interleaved results never flip", rise: 3, fall: 2, initial: "down",
			steps: []step{
				{ok, health.StateUp}, // the first result decides
				{bad, health.StateUp},
				{ok, health.StateUp},
				{bad, health.StateUp},
				{ok, health.StateUp},
				{bad, health.StateUp},
				{bad, health.StateDown}, // 2 consecutive
				{ok, health.StateDown},
				{ok, health.StateDown},
				{bad, health.StateDown},
				{ok, health.StateDown},
				{ok, health.StateDown},
				{ok, health.StateUp}, // 3 consecutive
			},
		},
		{
			name: "first failure decides even with initial up", rise: 2, fall: 3, initial: "up",
			steps: []step{
				{bad, health.StateDown},
				{ok, health.StateDown},
				{bad, health.StateDown},
				{ok, health.StateDown},
				{ok, health.StateUp},
				{bad, health.StateUp},
				{bad, health.StateUp},
				{bad, health.StateDown},
			},
		},
		{
			name: "rise and fall of one", rise: 1, fall: 1, initial: "down",
			steps: []step{
				{ok, health.StateUp},
				{bad, health.StateDown},
				{ok, health.StateUp},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r := newRig(t, health.Options{})
				defer r.stop()
				var errs []error
				for _, s := range tc.steps {
					errs = append(errs, s.err)
				}
				r.p.Script(addr, errs...)
				r.e.Sync([]health.PoolSpec{{
					Name: "web", CheckName: "c", Check: tcpCheck(time.Second, tc.rise, tc.fall, tc.initial),
					Endpoints: []string{addr},
				}})
				m := r.member(t, "web", addr)
				// Probes run at 0s, 1s, 2s...; look half-way between them.
				time.Sleep(500 * time.Millisecond)
				for i, s := range tc.steps {
					if got := r.p.Calls(addr); got != i+1 {
						t.Fatalf("step %d: %d probes, want %d", i, got, i+1)
					}
					if got := m.State(); got != s.state {
						t.Fatalf("step %d: state %s, want %s", i, got, s.state)
					}
					if got, want := m.Available(), s.state == health.StateUp; got != want {
						t.Fatalf("step %d: Available %v, want %v", i, got, want)
					}
					time.Sleep(time.Second)
				}
			})
		})
	}
}

func TestFirstProbeIsImmediate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, health.Options{})
		defer r.stop()
		r.e.Sync([]health.PoolSpec{{
			Name: "web", CheckName: "c", Check: tcpCheck(time.Hour, 2, 2, "down"),
			Endpoints: []string{"10.0.0.1:80"},
		}})
		synctest.Wait()
		if got := r.p.Calls("10.0.0.1:80"); got != 1 {
			t.Fatalf("probes at time 0: %d, want 1", got)
		}
		if m := r.member(t, "web", "10.0.0.1:80"); !m.Available() || m.State() != health.StateUp {
			t.Fatalf("after the first successful probe: state %s available %v", m.State(), m.Available())
		}
	})
}

func TestSyncBeforeRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := health.New(health.Options{Prober: nil}) // never run: the real prober is never called
		e.Sync([]health.PoolSpec{{
			Name: "web", CheckName: "c", Check: tcpCheck(time.Second, 2, 2, "up"),
			Endpoints: []string{"10.0.0.1:80"},
		}})
		m := e.Member("web", "10.0.0.1:80")
		if m == nil || !m.Available() || m.State() != health.StateUnknown {
			t.Fatalf("before Run: member %v", m)
		}

		r := newRig(t, health.Options{})
		r.e.Sync([]health.PoolSpec{{
			Name: "web", CheckName: "c", Check: tcpCheck(time.Second, 2, 2, "down"),
			Endpoints: []string{"10.0.0.1:80"},
		}})
		synctest.Wait()
		if got := r.p.Calls("10.0.0.1:80"); got != 1 {
			t.Fatalf("probes once running: %d, want 1", got)
		}
		r.stop()
	})
}

func TestInitialState(t *testing.T) {
	tests := []struct {
		initial    string
		result     error
		wantBefore bool
		wantAfter  health.State
	}{
		{"up", nil, true, health.StateUp},
		{"up", errProbe, true, health.StateDown},
		{"down", nil, false, health.StateUp},
		{"down", errProbe, false, health.StateDown},
		{"", nil, false, health.StateUp}, // default is down
	}
	for _, tc := range tests {
		name := "initial " + tc.initial
		if tc.result != nil {
			name += " then failure"
		}
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				const addr = "10.0.0.1:80"
				r := newRig(t, health.Options{})
				defer r.stop()
				r.p.SetDelay(addr, 3*time.Second)
				r.p.Set(addr, tc.result)
				c := tcpCheck(time.Minute, 2, 2, tc.initial)
				c.Timeout = config.Duration(10 * time.Second)
				r.e.Sync([]health.PoolSpec{{Name: "web", CheckName: "c", Check: c, Endpoints: []string{addr}}})
				m := r.member(t, "web", addr)
				time.Sleep(time.Second)
				if m.State() != health.StateUnknown || m.Available() != tc.wantBefore {
					t.Fatalf("while the first probe runs: state %s available %v, want unknown %v",
						m.State(), m.Available(), tc.wantBefore)
				}
				time.Sleep(3 * time.Second)
				if m.State() != tc.wantAfter || m.Available() != (tc.wantAfter == health.StateUp) {
					t.Fatalf("after the first probe: state %s available %v, want %s", m.State(), m.Available(), tc.wantAfter)
				}
			})
		})
	}
}

func TestSyncKeepsState(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const addr = "10.0.0.1:80"
		r := newRig(t, health.Options{})
		defer r.stop()
		r.p.Set(addr, errProbe)
		spec := func(path string) []health.PoolSpec {
			c := tcpCheck(10*time.Second, 2, 2, "up") // initial up: a reset would show
			c.Type, c.Path = "http", path
			return []health.PoolSpec{{Name: "web", CheckName: "ready", Check: c, Endpoints: []string{addr}}}
		}
		r.e.Sync(spec("/healthz"))
		m := r.member(t, "web", addr)
		time.Sleep(time.Second)
		if m.State() != health.StateDown || m.Available() {
			t.Fatalf("after a failed first probe: %s", m.State())
		}

		// Same check content from a fresh config: same target, state and
		// schedule (no new probe until the 10s mark).
		r.e.Sync(spec("/healthz"))
		synctest.Wait()
		if got := r.e.Member("web", addr); got != m {
			t.Fatalf("Sync replaced the member pointer")
		}
		if m.State() != health.StateDown || m.Available() {
			t.Fatalf("after an identical Sync: %s available %v", m.State(), m.Available())
		}
		if got := r.p.Calls(addr); got != 1 {
			t.Fatalf("identical Sync restarted probing: %d probes, want 1", got)
		}
		time.Sleep(9500 * time.Millisecond) // past 10s: the second probe, on the old schedule
		if got := r.p.Calls(addr); got != 2 {
			t.Fatalf("at 10.5s: %d probes, want 2", got)
		}

		// A changed definition under the same name is a new target, probed
		// at once; the dead endpoint stays unavailable meanwhile although
		// the check's initial state is up.
		r.p.SetDelay(addr, time.Second)
		r.p.Set(addr, nil)
		r.e.Sync(spec("/other"))
		synctest.Wait()
		if got := r.p.Calls(addr); got != 3 {
			t.Fatalf("changed check: %d probes, want 3", got)
		}
		if m.State() != health.StateUnknown || m.Available() {
			t.Fatalf("changed check before its first probe: %s available %v, want unknown and unavailable",
				m.State(), m.Available())
		}
		if got := r.e.Member("web", addr); got != m {
			t.Fatalf("changed check replaced the member pointer")
		}
		time.Sleep(2 * time.Second)
		if !m.Available() {
			t.Fatalf("new check succeeded but the member is %s", m.State())
		}
	})
}

func TestSyncStopsRemovedTargets(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const a, b = "10.0.0.1:80", "10.0.0.2:80"
		r := newRig(t, health.Options{})
		defer r.stop()
		check := tcpCheck(time.Second, 1, 1, "down")
		r.p.SetDelay(b, 300*time.Millisecond)
		r.e.Sync([]health.PoolSpec{{Name: "web", CheckName: "c", Check: check, Endpoints: []string{a, b}}})
		time.Sleep(1100 * time.Millisecond) // b's second probe is in flight
		if got := r.p.Calls(b); got != 2 {
			t.Fatalf("b probes before removal: %d, want 2", got)
		}
		old := r.member(t, "web", b)

		r.e.Sync([]health.PoolSpec{{Name: "web", CheckName: "c", Check: check, Endpoints: []string{a}}})
		synctest.Wait()
		if got := r.p.Aborted(b); got != 1 {
			t.Fatalf("b's probe in flight was not cancelled: %d aborted", got)
		}
		if r.e.Member("web", b) != nil {
			t.Fatalf("removed member still known")
		}
		if _, ok := metric(t, r.reg, "meridian_endpoint_up", map[string]string{"endpoint": b}); ok {
			t.Fatalf("removed member's meridian_endpoint_up series still exported")
		}
		if err := r.e.Override("web", b, health.ActionDrain); err == nil {
			t.Fatalf("override of a removed member succeeded")
		}
		old.Report(health.ConnectFailure) // a late report on a stale pointer is harmless

		time.Sleep(5 * time.Second)
		if got := r.p.Calls(b); got != 2 {
			t.Fatalf("removed target still probed: %d probes, want 2", got)
		}
		if got := r.p.Calls(a); got != 7 {
			t.Fatalf("kept target: %d probes after 6.1s, want 7", got)
		}

		// Removing the last pool deletes its series and stops everything.
		r.e.Sync(nil)
		time.Sleep(5 * time.Second)
		if got := r.p.Calls(a); got != 7 {
			t.Fatalf("target of a removed pool still probed: %d", got)
		}
		if _, ok := metric(t, r.reg, "meridian_health_probes_total", map[string]string{"check": "c"}); ok {
			t.Fatalf("probe counters of an unused check still exported")
		}
		if _, ok := metric(t, r.reg, "meridian_health_transitions_total", map[string]string{"pool": "web"}); ok {
			t.Fatalf("transition counter of a removed pool still exported")
		}
	})
}

func TestTwoChecksOnOneAddressAreTwoTargets(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const addr = "10.0.0.1:80"
		r := newRig(t, health.Options{})
		defer r.stop()
		c1 := tcpCheck(time.Second, 1, 1, "down")
		c2 := tcpCheck(time.Second, 1, 1, "down")
		c2.Send = "PING"
		r.e.Sync([]health.PoolSpec{
			{Name: "a", CheckName: "c", Check: c1, Endpoints: []string{addr}},
			{Name: "b", CheckName: "c", Check: c2, Endpoints: []string{addr}},
			{Name: "c", CheckName: "c", Check: c1, Endpoints: []string{addr}}, // shares a's target
		})
		synctest.Wait()
		if got := r.p.Calls(addr); got != 2 {
			t.Fatalf("probes: %d, want 2 (one per distinct check)", got)
		}
	})
}

func TestProbesNeverOverlapAndInFlightIsBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, health.Options{MaxInFlight: 3})
		defer r.stop()
		var addrs []string
		for i := range 10 {
			a := "10.0.0." + string(rune('0'+i)) + ":80"
			addrs = append(addrs, a)
			r.p.SetDelay(a, 1500*time.Millisecond) // longer than the interval
		}
		c := tcpCheck(time.Second, 1, 1, "down")
		c.Timeout = config.Duration(5 * time.Second)
		r.e.Sync([]health.PoolSpec{{Name: "web", CheckName: "c", Check: c, Endpoints: addrs}})
		time.Sleep(20 * time.Second)
		total, _ := r.p.MaxConcurrent(addrs[0])
		if total != 3 {
			t.Fatalf("most probes at once: %d, want 3", total)
		}
		for _, a := range addrs {
			if _, per := r.p.MaxConcurrent(a); per != 1 {
				t.Fatalf("%s: %d probes at once", a, per)
			}
		}
	})
}

func TestProbeTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const addr = "10.0.0.1:80"
		r := newRig(t, health.Options{})
		defer r.stop()
		r.p.SetDelay(addr, time.Hour)
		c := tcpCheck(10*time.Second, 1, 1, "up")
		c.Timeout = config.Duration(2 * time.Second)
		r.e.Sync([]health.PoolSpec{{Name: "web", CheckName: "c", Check: c, Endpoints: []string{addr}}})
		time.Sleep(2500 * time.Millisecond)
		s := r.status(t, "web", addr)
		if s.State != health.StateDown || !strings.Contains(s.Probe.LastError, "timed out after 2s") {
			t.Fatalf("after the timeout: %s, last error %q", s.State, s.Probe.LastError)
		}
		if s.Probe.LastLatency != 2*time.Second {
			t.Fatalf("latency %s, want 2s", s.Probe.LastLatency)
		}
	})
}

func TestPoolWithoutCheck(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, health.Options{})
		defer r.stop()
		r.e.Sync([]health.PoolSpec{{Name: "static", Endpoints: []string{"10.0.0.1:80", "10.0.0.1:80", "10.0.0.2:80"}}})
		synctest.Wait()
		for _, a := range []string{"10.0.0.1:80", "10.0.0.2:80"} {
			s := r.status(t, "static", a)
			if !s.Available || s.State != health.StateUp || s.Probe != nil || s.Check != "" {
				t.Fatalf("%s: %+v", a, s)
			}
		}
		if r.p.Calls("10.0.0.1:80") != 0 {
			t.Fatalf("a pool without a check was probed")
		}
		if got := len(r.e.Snapshot()); got != 2 {
			t.Fatalf("snapshot has %d members, want 2 (duplicates ignored)", got)
		}
	})
}

func TestRunStopsAndRestarts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const addr = "10.0.0.1:80"
		r := newRig(t, health.Options{})
		r.p.SetDelay(addr, 500*time.Millisecond)
		r.e.Sync([]health.PoolSpec{{Name: "web", CheckName: "c", Check: tcpCheck(time.Second, 1, 1, "down"), Endpoints: []string{addr}}})
		time.Sleep(100 * time.Millisecond)
		r.stop() // cancels the probe in flight and waits for it
		if got := r.p.Aborted(addr); got != 1 {
			t.Fatalf("aborted probes: %d, want 1", got)
		}
		m := r.member(t, "web", addr)
		if m.State() != health.StateUnknown {
			t.Fatalf("an aborted probe changed the state to %s", m.State())
		}
		// Run again: the target is probed at once.
		r.p.SetDelay(addr, 0)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- r.e.Run(ctx) }()
		synctest.Wait()
		if err := r.e.Run(ctx); err == nil {
			t.Errorf("a second concurrent Run did not fail")
		}
		if got := r.p.Calls(addr); got != 2 {
			t.Fatalf("probes after restart: %d, want 2", got)
		}
		if m.State() != health.StateUp {
			t.Fatalf("after restart: %s", m.State())
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run: %v", err)
		}
	})
}

// TestRenamedPoolWithNewCheckKeepsDeadEndpointDown: a reload that renames a
// pool and changes its check in one go must not bring a dead endpoint up,
// even with initial: up.
func TestRenamedPoolWithNewCheckKeepsDeadEndpointDown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const addr = "10.0.0.9:80"
		r := newRig(t, health.Options{})
		defer r.stop()
		r.p.Set(addr, errProbe)
		c := tcpCheck(10*time.Second, 2, 2, "up")
		r.e.Sync([]health.PoolSpec{{Name: "old", CheckName: "a", Check: c, Endpoints: []string{addr}}})
		time.Sleep(time.Second)
		if r.member(t, "old", addr).Available() {
			t.Fatal("the endpoint should be down after its failed probe")
		}
		r.p.SetDelay(addr, time.Second)
		c2 := tcpCheck(5*time.Second, 2, 2, "up")
		r.e.Sync([]health.PoolSpec{{Name: "new", CheckName: "b", Check: c2, Endpoints: []string{addr}}})
		synctest.Wait()
		if m := r.member(t, "new", addr); m.Available() {
			t.Fatalf("renamed pool with a new check: %s and available before its first probe", m.State())
		}
	})
}
