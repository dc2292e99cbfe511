package health_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/meridian-lb/meridian/health"
)

func TestOverrides(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const addr = "10.0.0.1:80"
		r := newRig(t, health.Options{})
		defer r.stop()
		spec := func(interval time.Duration) []health.PoolSpec {
			return []health.PoolSpec{{
				Name: "web", CheckName: "c", Check: tcpCheck(interval, 1, 1, "down"),
				Outlier: outlier(1, time.Minute, time.Minute, 100), Endpoints: []string{addr, "10.0.0.2:80"},
			}}
		}
		r.e.Sync(spec(time.Second))
		synctest.Wait()
		m := r.member(t, "web", addr)
		if !m.Available() {
			t.Fatalf("not up before the override: %s", m.State())
		}
		r.drainChanges()

		steps := []struct {
			action health.Action
			state  health.State
		}{
			{health.ActionDrain, health.StateDraining},
			{health.ActionDown, health.StateForcedDown},
			{health.ActionEnable, health.StateUp},
		}
		for _, s := range steps {
			if err := r.e.Override("web", addr, s.action); err != nil {
				t.Fatalf("%s: %v", s.action, err)
			}
			if m.State() != s.state || m.Available() != (s.state == health.StateUp) {
				t.Fatalf("after %s: %s available %v", s.action, m.State(), m.Available())
			}
		}
		if got := r.drainChanges(); got != 2 {
			t.Fatalf("OnChange calls: %d, want 2 (up→draining, forced_down→up)", got)
		}

		// Overrides survive Syncs, even one that changes the check.
		if err := r.e.Override("web", addr, health.ActionDrain); err != nil {
			t.Fatal(err)
		}
		r.e.Sync(spec(time.Second))
		r.e.Sync(spec(2 * time.Second))
		time.Sleep(3 * time.Second)
		s := r.status(t, "web", addr)
		if s.State != health.StateDraining || s.Override != health.ActionDrain || s.OverrideSource != "api" {
			t.Fatalf("after Syncs: %+v", s)
		}
		if s.Probe == nil || s.Probe.State != health.StateUp {
			t.Fatalf("probes should keep running under a drain: %+v", s.Probe)
		}

		// An override wins over an ejection, and the ejection shows again
		// once the override is lifted.
		m.Report(health.ConnectFailure)
		if m.State() != health.StateDraining {
			t.Fatalf("drained and ejected: %s", m.State())
		}
		if err := r.e.Override("web", addr, health.ActionEnable); err != nil {
			t.Fatal(err)
		}
		if m.State() != health.StateEjected {
			t.Fatalf("enable while ejected: %s", m.State())
		}

		// Errors.
		for _, tc := range []struct{ pool, addr, action, want string }{
			{"web", "10.9.9.9:80", "drain", `pool "web": unknown endpoint "10.9.9.9:80"`},
			{"nope", addr, "drain", `pool "nope": unknown pool`},
			{"web", addr, "restart", `unknown action "restart"`},
		} {
			err := r.e.Override(tc.pool, tc.addr, health.Action(tc.action))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Override(%s, %s, %s) = %v, want %q", tc.pool, tc.addr, tc.action, err, tc.want)
			}
		}

		// A member that leaves and comes back starts without the override.
		if err := r.e.Override("web", "10.0.0.2:80", health.ActionDown); err != nil {
			t.Fatal(err)
		}
		r.e.Sync([]health.PoolSpec{{Name: "web", Endpoints: []string{addr}}})
		r.e.Sync([]health.PoolSpec{{Name: "web", Endpoints: []string{addr, "10.0.0.2:80"}}})
		if s := r.status(t, "web", "10.0.0.2:80"); s.Override != "" || s.State != health.StateUp {
			t.Fatalf("re-added member kept its override: %+v", s)
		}
	})
}

func TestTransitionsHistoryAndMetrics(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const addr = "10.0.0.1:80"
		r := newRig(t, health.Options{})
		defer r.stop()
		var script []error
		for i := range 14 {
			if i%2 == 0 {
				script = append(script, nil)
			} else {
				script = append(script, errProbe)
			}
		}
		r.p.Script(addr, script...)
		r.e.Sync([]health.PoolSpec{{Name: "web", CheckName: "ready", Check: tcpCheck(time.Second, 1, 1, "down"), Endpoints: []string{addr}}})
		up := map[string]string{"pool": "web", "endpoint": addr}
		time.Sleep(13500 * time.Millisecond) // 14 probes: 14 transitions
		s := r.status(t, "web", addr)
		if len(s.Transitions) != 10 {
			t.Fatalf("%d transitions kept, want 10", len(s.Transitions))
		}
		last := s.Transitions[9]
		if last.From != health.StateUp || last.To != health.StateDown || !strings.Contains(last.Reason, "probe failed") {
			t.Fatalf("last transition %+v", last)
		}
		for i := 1; i < len(s.Transitions); i++ {
			if s.Transitions[i].Time.Before(s.Transitions[i-1].Time) || s.Transitions[i].From != s.Transitions[i-1].To {
				t.Fatalf("transitions out of order: %+v", s.Transitions)
			}
		}
		if s.Probe.LastProbe != time.Now().Add(-500*time.Millisecond) || s.Probe.Probes != 14 {
			t.Fatalf("probe status %+v", s.Probe)
		}
		js, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		for _, key := range []string{`"state":"down"`, `"available":false`, `"check":"ready"`, `"last_latency_ns":0`, `"transitions":[{`} {
			if !strings.Contains(string(js), key) {
				t.Errorf("status JSON lacks %s: %s", key, js)
			}
		}
		if strings.Contains(string(js), "ejected_until") {
			t.Errorf("zero ejected_until not omitted: %s", js)
		}
		checks := []struct {
			name   string
			labels map[string]string
			want   float64
		}{
			{"meridian_endpoint_up", up, 0},
			{"meridian_health_transitions_total", map[string]string{"pool": "web"}, 14},
			{"meridian_health_probes_total", map[string]string{"check": "ready", "result": "success"}, 7},
			{"meridian_health_probes_total", map[string]string{"check": "ready", "result": "failure"}, 7},
		}
		for _, c := range checks {
			if got, ok := metric(t, r.reg, c.name, c.labels); !ok || got != c.want {
				t.Errorf("%s%v = %v (exists %v), want %v", c.name, c.labels, got, ok, c.want)
			}
		}
		time.Sleep(time.Second) // the 15th probe: healthy by default
		if got, _ := metric(t, r.reg, "meridian_endpoint_up", up); got != 1 {
			t.Errorf("meridian_endpoint_up = %v after recovery, want 1", got)
		}
	})
}

func TestSnapshotOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, health.Options{})
		defer r.stop()
		r.e.Sync([]health.PoolSpec{
			{Name: "b", Endpoints: []string{"10.0.0.2:80", "10.0.0.1:80"}},
			{Name: "a", Endpoints: []string{"10.0.0.3:80"}},
		})
		var got []string
		for _, s := range r.e.Snapshot() {
			got = append(got, s.Pool+"/"+s.Address)
		}
		want := "[a/10.0.0.3:80 b/10.0.0.1:80 b/10.0.0.2:80]"
		if fmt.Sprint(got) != want {
			t.Fatalf("snapshot order %v, want %s", got, want)
		}
	})
}

// TestExcludedOnlyByOperator checks that Excluded (no traffic even in panic
// mode) follows the operator's drain and force-down only: a probe failure
// or a passive ejection makes an endpoint unavailable but leaves it to
// panic mode. Draining an endpoint that is already down changes what a
// pool failing open may serve, so it must reach OnChange (DNS serials).
func TestExcludedOnlyByOperator(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const addr = "10.0.0.1:80"
		r := newRig(t, health.Options{})
		defer r.stop()
		r.p.Set(addr, errProbe)
		r.e.Sync([]health.PoolSpec{{
			Name: "web", CheckName: "c", Check: tcpCheck(time.Second, 1, 1, "up"),
			Outlier: outlier(1, time.Minute, time.Minute, 100), Endpoints: []string{addr, "10.0.0.2:80"},
		}})
		synctest.Wait()
		m := r.member(t, "web", addr)
		r.drainChanges()

		steps := []struct {
			name      string
			do        func()
			state     health.State
			available bool
			excluded  bool
			changes   int
		}{
			{"probe down", func() {}, health.StateDown, false, false, 0},
			{"drained while down", func() { r.override(t, "web", addr, health.ActionDrain) }, health.StateDraining, false, true, 1},
			{"forced down", func() { r.override(t, "web", addr, health.ActionDown) }, health.StateForcedDown, false, true, 0},
			{"enabled: down again", func() { r.override(t, "web", addr, health.ActionEnable) }, health.StateDown, false, false, 1},
			{"probe up", func() { r.p.Set(addr, nil); time.Sleep(time.Second); synctest.Wait() }, health.StateUp, true, false, 1},
			{"ejected", func() { m.Report(health.ConnectFailure) }, health.StateEjected, false, false, 1},
		}
		for _, s := range steps {
			s.do()
			if m.State() != s.state || m.Available() != s.available || m.Excluded() != s.excluded {
				t.Fatalf("%s: state %s available %t excluded %t, want %s %t %t",
					s.name, m.State(), m.Available(), m.Excluded(), s.state, s.available, s.excluded)
			}
			if got := r.drainChanges(); got != s.changes {
				t.Fatalf("%s: %d OnChange calls, want %d", s.name, got, s.changes)
			}
		}
	})
}

// override applies an admin action that must succeed.
func (r *rig) override(t *testing.T, pool, addr string, a health.Action) {
	t.Helper()
	if err := r.e.Override(pool, addr, a); err != nil {
		t.Fatalf("%s %s/%s: %v", a, pool, addr, err)
	}
}
