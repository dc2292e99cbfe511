package health_test

import (
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/meridian-lb/meridian/config"
	"github.com/meridian-lb/meridian/health"
)

func addrs(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("10.0.0.%d:80", i+1)
	}
	return out
}

func outlier(failures int, ejection, maxEjection time.Duration, pct int) *config.Outlier {
	return &config.Outlier{
		ConsecutiveFailures: failures,
		Ejection:            config.Duration(ejection),
		MaxEjection:         config.Duration(maxEjection),
		MaxEjectedPercent:   pct,
	}
}

func report(m *health.Member, o health.Outcome, n int) {
	for range n {
		m.Report(o)
	}
}

func TestEjectionDoublesAndReturns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, health.Options{})
		defer r.stop()
		eps := addrs(4)
		r.e.Sync([]health.PoolSpec{{Name: "web", Outlier: outlier(3, 10*time.Second, 25*time.Second, 50), Endpoints: eps}})
		m := r.member(t, "web", eps[0])

		// A success resets the consecutive count.
		report(m, health.ConnectFailure, 2)
		m.Report(health.Success)
		report(m, health.Reset, 2)
		if !m.Available() {
			t.Fatalf("ejected without %d consecutive failures", 3)
		}
		r.drainChanges()

		// Each repeat ejection doubles, capped at max_ejection.
		for i, want := range []time.Duration{10 * time.Second, 20 * time.Second, 25 * time.Second, 25 * time.Second} {
			report(m, health.Reset, 3)
			if m.Available() || m.State() != health.StateEjected {
				t.Fatalf("ejection %d: state %s", i, m.State())
			}
			s := r.status(t, "web", eps[0])
			if got := s.EjectedUntil.Sub(time.Now()); got != want {
				t.Fatalf("ejection %d lasts %s, want %s", i, got, want)
			}
			if !strings.Contains(s.Reason, "3 consecutive failures (last: reset)") {
				t.Fatalf("ejection reason %q", s.Reason)
			}
			report(m, health.Reset, 10) // late failures while ejected change nothing
			time.Sleep(want - time.Millisecond)
			if m.Available() {
				t.Fatalf("ejection %d ended early", i)
			}
			time.Sleep(time.Millisecond)
			synctest.Wait()
			if !m.Available() || m.State() != health.StateUp {
				t.Fatalf("ejection %d: did not come back by itself: %s", i, m.State())
			}
			if got := r.drainChanges(); got != 2 {
				t.Fatalf("ejection %d: OnChange called %d times, want 2", i, got)
			}
		}
		if got, _ := metric(t, r.reg, "meridian_health_ejections_total", map[string]string{"pool": "web"}); got != 4 {
			t.Fatalf("ejections counted: %v, want 4", got)
		}

		// The level decays one step per base ejection time spent healthy:
		// after 4 ejections and 30s in, the next lasts 10s << 1.
		time.Sleep(30 * time.Second)
		if got := r.status(t, "web", eps[0]).EjectionLevel; got != 1 {
			t.Fatalf("ejection level after 30s healthy: %d, want 1", got)
		}
		report(m, health.ConnectFailure, 3)
		if got := r.status(t, "web", eps[0]).EjectedUntil.Sub(time.Now()); got != 20*time.Second {
			t.Fatalf("after 30s healthy the ejection lasts %s, want 20s", got)
		}
	})
}

func TestMaxEjectedPercent(t *testing.T) {
	tests := []struct {
		members, pct, want int
	}{
		{members: 2, pct: 50, want: 1},
		{members: 3, pct: 50, want: 1},
		{members: 4, pct: 50, want: 2},
		{members: 1, pct: 50, want: 1}, // a lone endpoint may still be ejected
		{members: 10, pct: 10, want: 1},
		{members: 20, pct: 10, want: 2},
		{members: 3, pct: 100, want: 3},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%d members at %d%%", tc.members, tc.pct), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r := newRig(t, health.Options{})
				defer r.stop()
				eps := addrs(tc.members)
				r.e.Sync([]health.PoolSpec{{Name: "web", Outlier: outlier(2, 10*time.Second, time.Minute, tc.pct), Endpoints: eps}})
				for _, a := range eps {
					report(r.member(t, "web", a), health.ConnectFailure, 2)
				}
				ejected := 0
				for _, a := range eps {
					if !r.member(t, "web", a).Available() {
						ejected++
					}
				}
				if ejected != tc.want {
					t.Fatalf("%d ejected, want %d", ejected, tc.want)
				}
				if tc.want == tc.members {
					return
				}
				// When ejected members come back, a capped one is ejected
				// on its next failure.
				capped := r.member(t, "web", eps[tc.members-1])
				time.Sleep(11 * time.Second)
				capped.Report(health.ConnectFailure)
				if capped.State() != health.StateEjected {
					t.Fatalf("capped member not ejected once room was made: %s", capped.State())
				}
			})
		})
	}
}

func TestOutlierOutcomes(t *testing.T) {
	tests := []struct {
		name      string
		on5xx     bool
		onTimeout bool
		off       bool
		noOut     bool
		outcome   health.Outcome
		ejected   bool
	}{
		{name: "connect failure", outcome: health.ConnectFailure, ejected: true},
		{name: "reset", outcome: health.Reset, ejected: true},
		{name: "timeout ignored", outcome: health.Timeout},
		{name: "timeout counted with on_timeout", onTimeout: true, outcome: health.Timeout, ejected: true},
		{name: "switched off", off: true, outcome: health.ConnectFailure},
		{name: "5xx ignored", outcome: health.Status5xx},
		{name: "5xx counted with on_5xx", on5xx: true, outcome: health.Status5xx, ejected: true},
		{name: "no outlier config", noOut: true, outcome: health.ConnectFailure},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r := newRig(t, health.Options{})
				defer r.stop()
				o := outlier(3, time.Second, time.Second, 100)
				o.On5xx, o.OnTimeout = tc.on5xx, tc.onTimeout
				if tc.off {
					off := false
					o.Enabled = &off
				}
				if tc.noOut {
					o = nil
				}
				r.e.Sync([]health.PoolSpec{{Name: "web", Outlier: o, Endpoints: addrs(2)}})
				m := r.member(t, "web", addrs(2)[0])
				report(m, tc.outcome, 5)
				if got := m.State() == health.StateEjected; got != tc.ejected {
					t.Fatalf("ejected %v, want %v (state %s)", got, tc.ejected, m.State())
				}
			})
		})
	}
}

func TestOutlierTurnedOffClearsEjections(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, health.Options{})
		defer r.stop()
		eps := addrs(2)
		r.e.Sync([]health.PoolSpec{{Name: "web", Outlier: outlier(1, time.Hour, time.Hour, 50), Endpoints: eps}})
		m := r.member(t, "web", eps[0])
		m.Report(health.Reset)
		if m.Available() {
			t.Fatalf("not ejected")
		}
		// Unchanged outlier settings keep the ejection.
		r.e.Sync([]health.PoolSpec{{Name: "web", Outlier: outlier(1, time.Hour, time.Hour, 50), Endpoints: eps}})
		if m.Available() {
			t.Fatalf("Sync ended an ejection")
		}
		r.drainChanges()
		r.e.Sync([]health.PoolSpec{{Name: "web", Endpoints: eps}})
		if !m.Available() || m.State() != health.StateUp {
			t.Fatalf("outlier detection off, member still %s", m.State())
		}
		if r.drainChanges() != 1 {
			t.Fatalf("OnChange not called when the ejection was cleared")
		}
	})
}

func TestEjectionCombinesWithProbes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const addr = "10.0.0.1:80"
		r := newRig(t, health.Options{})
		defer r.stop()
		r.e.Sync([]health.PoolSpec{{
			Name: "web", CheckName: "c", Check: tcpCheck(time.Second, 1, 1, "down"),
			Outlier: outlier(1, 5*time.Second, 5*time.Second, 100), Endpoints: []string{addr},
		}})
		synctest.Wait()
		m := r.member(t, "web", addr)
		m.Report(health.ConnectFailure)
		if m.State() != health.StateEjected {
			t.Fatalf("not ejected: %s", m.State())
		}
		// Probes still run while ejected; the probe state shows when it
		// returns.
		r.p.Set(addr, errProbe)
		time.Sleep(5500 * time.Millisecond)
		if m.State() != health.StateDown {
			t.Fatalf("after the ejection, with failing probes: %s", m.State())
		}
	})
}
