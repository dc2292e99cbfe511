package rollout

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meridian-lb/meridian/config"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func mustPlan(t testing.TB, r config.Rollout) Plan {
	t.Helper()
	p, err := NewPlan(&r)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// traffic is what one tick adds to the cumulative counters, and the p99s
// the caller reports at that tick.
type traffic func(tick int, weight int) (canary, baseline Window)

// sim drives a machine with a fake clock, ticking every step, adding
// traffic to cumulative counters the way telemetry counts, until the
// rollout is final or until is reached. It returns the weights in the
// order they were held.
func sim(m *Machine, start time.Time, step, until time.Duration, tr traffic) (weights []int, end time.Time) {
	var c, b Window
	weights = []int{m.Weight()}
	now := start
	for i := 0; now.Sub(start) <= until; i++ {
		dc, db := tr(i, m.Weight())
		c.Requests += dc.Requests
		c.Errors5xx += dc.Errors5xx
		c.P99 = dc.P99
		b.Requests += db.Requests
		b.Errors5xx += db.Errors5xx
		b.P99 = db.P99
		m.Tick(now, c, b)
		if w := m.Weight(); w != weights[len(weights)-1] {
			weights = append(weights, w)
		}
		if m.Phase().Final() {
			return weights, now
		}
		now = now.Add(step)
	}
	return weights, now
}

func results(s State) []Result {
	var out []Result
	for _, j := range s.History {
		out = append(out, j.Result)
	}
	return out
}

func TestMachineScenarios(t *testing.T) {
	const ms = time.Millisecond
	steps := config.Rollout{Canary: "c", Steps: []int{1, 5, 25, 50}, Interval: dur(time.Minute),
		Analysis: config.Analysis{MinRequests: 30, SuccessRate: 99, P99: dur(500 * ms)}, FailureLimit: 2}
	// rps gives, per 10 s tick, the canary's share of 60 requests a
	// second (weight percent of them) with errPerMille of them 5xx.
	rps := func(errPerMille uint64, p99 time.Duration) traffic {
		return func(_ int, w int) (Window, Window) {
			n := uint64(600 * w / 100)
			return Window{Requests: n, Errors5xx: n * errPerMille / 1000, P99: p99},
				Window{Requests: 600 - n, P99: 100 * ms}
		}
	}
	tests := []struct {
		name     string
		r        config.Rollout
		tr       traffic
		until    time.Duration
		phase    Phase
		weights  []int
		results  []Result
		reason   string // a prefix of the final reason
		failures int
	}{
		{
			name: "healthy canary is promoted through every step", r: steps, tr: rps(1, 120*ms), until: time.Hour,
			phase: Promoted, weights: []int{1, 5, 25, 50, 100}, results: []Result{Pass, Pass, Pass, Pass},
			reason: "promoted: step 4/4 (50%) passed (",
		},
		{
			// At 1% the canary gets 6 requests a tick, 36 an interval:
			// inconclusive until the window holds min_requests.
			name: "too little traffic holds the step until min_requests",
			r: config.Rollout{Canary: "c", Steps: []int{1, 50}, Interval: dur(time.Minute),
				Analysis: config.Analysis{MinRequests: 30}},
			tr: rps(0, 0), until: time.Hour, phase: Promoted, weights: []int{1, 50, 100}, results: []Result{Pass, Pass},
		},
		{
			name: "5xx above the bound rolls back after failure_limit intervals once min_requests is reached",
			r: config.Rollout{Canary: "c", Steps: []int{1, 5, 25, 50}, Interval: dur(time.Minute),
				Analysis: config.Analysis{MinRequests: 100, SuccessRate: 99}, FailureLimit: 2},
			// Little traffic for three minutes (36 requests an interval),
			// then 360 an interval, 3.3% of them 5xx.
			tr: func(i int, w int) (Window, Window) {
				if i < 18 {
					return rps(0, 0)(i, w)
				}
				_, b := rps(0, 0)(i, w)
				return Window{Requests: 60, Errors5xx: 2}, b
			},
			until: time.Hour, phase: Failed, weights: []int{1, 0},
			results: []Result{Inconclusive, Inconclusive, Inconclusive, Fail, Fail},
			reason:  "rolled back: failed judgement 2 of 2 at step 1/4 (1%): 360 requests, 96.66% success < 99%", failures: 2,
		},
		{
			name: "5xx above the bound at a later step",
			r:    steps,
			tr: func(i int, w int) (Window, Window) {
				if w >= 25 {
					return rps(50, 100*ms)(i, w)
				}
				return rps(0, 100*ms)(i, w)
			},
			until: time.Hour, phase: Failed, weights: []int{1, 5, 25, 0},
			results: []Result{Pass, Pass, Fail, Fail},
			reason:  "rolled back: failed judgement 2 of 2 at step 3/4 (25%): 900 requests, 95.33% success < 99%", failures: 2,
		},
		{
			name: "slow past the p99 bound rolls back",
			r:    config.Rollout{Canary: "c", Steps: []int{10, 50}, Interval: dur(time.Minute), Analysis: config.Analysis{MinRequests: 100, P99: dur(500 * ms)}},
			tr:   rps(0, 800*ms), until: time.Hour, phase: Failed, weights: []int{10, 0},
			results: []Result{Fail, Fail},
			reason:  "rolled back: failed judgement 2 of 2 at step 1/2 (10%): 360 requests, 100% success, p99 800ms > 500ms", failures: 2,
		},
		{
			name: "a failure then passes: failures count over the whole rollout",
			r:    config.Rollout{Canary: "c", Steps: []int{10, 20, 30}, Interval: dur(time.Minute), FailureLimit: 2},
			tr: func(i int, w int) (Window, Window) {
				if i < 6 || w == 30 {
					return rps(100, 0)(i, w)
				}
				return rps(0, 0)(i, w)
			},
			until: time.Hour, phase: Failed, weights: []int{10, 20, 30, 0},
			results: []Result{Fail, Pass, Pass, Fail}, failures: 2,
		},
		{
			name:  "an idle canary stays inconclusive and fails at the progress deadline",
			r:     config.Rollout{Canary: "c", Steps: []int{5, 50}, Interval: dur(time.Minute), ProgressDeadline: dur(10 * time.Minute)},
			tr:    func(int, int) (Window, Window) { return Window{}, Window{Requests: 600} },
			until: time.Hour, phase: Failed, weights: []int{5, 0},
			results: slices.Repeat([]Result{Inconclusive}, 10),
			reason:  "rolled back: progress deadline 10m passed at step 1/2 (5%); last judgement: only 0 requests of 100 needed",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := NewMachine(mustPlan(t, tc.r), t0)
			weights, _ := sim(m, t0, 10*time.Second, tc.until, tc.tr)
			st := m.State()
			if st.Phase != tc.phase || !slices.Equal(weights, tc.weights) || !slices.Equal(results(st), tc.results) {
				t.Fatalf("phase %s, weights %v, results %v; want %s, %v, %v\nreason: %s", st.Phase, weights, results(st), tc.phase, tc.weights, tc.results, st.Reason)
			}
			if !strings.HasPrefix(st.Reason, tc.reason) {
				t.Errorf("reason %q, want prefix %q", st.Reason, tc.reason)
			}
			if st.Failures != tc.failures {
				t.Errorf("failures %d, want %d", st.Failures, tc.failures)
			}
			if m.Tick(t0.Add(24*time.Hour), Window{Requests: 1e9}, Window{}) {
				t.Error("a final rollout changed on Tick")
			}
		})
	}
}

// TestMachineJudgesTheInterval checks that each judgement sees only its
// interval's counts, from cumulative counters, whatever the tick rate.
func TestMachineJudgesTheInterval(t *testing.T) {
	p := mustPlan(t, config.Rollout{Canary: "c", Steps: []int{10, 50}, Interval: dur(time.Minute), FailureLimit: 5})
	m := NewMachine(p, t0)
	// 10,000 requests before the rollout started, all errors: not judged.
	c := Window{Requests: 10000, Errors5xx: 10000}
	m.Tick(t0, c, Window{})
	c.Requests += 500
	c.Errors5xx += 1
	if m.Tick(t0.Add(59*time.Second), c, Window{}) {
		t.Fatal("judged before the interval ended")
	}
	c.Requests += 500
	if !m.Tick(t0.Add(time.Minute), c, Window{}) {
		t.Fatal("not judged at the interval's end")
	}
	st := m.State()
	j := st.History[0]
	if j.Result != Pass || j.Canary.Requests != 1000 || j.Canary.Errors5xx != 1 || st.Weight != 50 || !st.IntervalStartedAt.Equal(t0.Add(time.Minute)) {
		t.Fatalf("judgement %+v, state %+v", j, st)
	}
	// A late tick judges everything since the interval's start, once.
	c.Requests += 50
	m.Tick(t0.Add(5*time.Minute), c, Window{})
	st = m.State()
	if len(st.History) != 2 || st.History[1].Canary.Requests != 50 || st.History[1].Result != Inconclusive {
		t.Fatalf("history %+v", st.History)
	}
	// Counters that go backwards restart the interval without a judgement.
	c = Window{Requests: 3}
	if !m.Tick(t0.Add(6*time.Minute), c, Window{}) || len(m.State().History) != 2 || !m.State().IntervalStartedAt.Equal(t0.Add(6*time.Minute)) {
		t.Fatalf("after a counter reset: %+v", m.State())
	}
	c.Requests += 200
	m.Tick(t0.Add(7*time.Minute), c, Window{})
	if st := m.State(); st.Phase != Promoted || st.History[2].Canary.Requests != 200 {
		t.Fatalf("after the reset: %+v", st)
	}
}

func TestMachineActions(t *testing.T) {
	p := mustPlan(t, config.Rollout{Canary: "c", Steps: []int{10, 50}, Interval: dur(time.Minute), ProgressDeadline: dur(10 * time.Minute)})
	type step struct {
		at     time.Duration
		action Action // "" ticks with 1,000 healthy requests more
		err    error
		phase  Phase
		weight int
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"pause holds, resume continues", []step{
			{0, ActionPause, nil, Paused, 10},
			{5 * time.Minute, "", nil, Paused, 10}, // no judging while paused
			{6 * time.Minute, ActionPause, ErrConflict, Paused, 10},
			{15 * time.Minute, "", nil, Paused, 10}, // nor the deadline
			{20 * time.Minute, ActionResume, nil, Progressing, 10},
			{20 * time.Minute, "", nil, Progressing, 10}, // a fresh interval starts here
			{21 * time.Minute, "", nil, Progressing, 50},
			{22 * time.Minute, "", nil, Promoted, 100},
		}},
		{"the deadline moves by the time paused", []step{
			{9 * time.Minute, ActionPause, nil, Paused, 10},
			{19 * time.Minute, ActionResume, nil, Progressing, 10},
			{19*time.Minute + 59*time.Second, "", nil, Progressing, 10}, // 9m59s of the 10m spent
			{20 * time.Minute, "", nil, Failed, 0},
		}},
		{"promote", []step{
			{time.Minute, ActionResume, ErrConflict, Progressing, 10},
			{time.Minute, ActionPromote, nil, Promoted, 100},
			{2 * time.Minute, ActionPromote, ErrConflict, Promoted, 100},
			{2 * time.Minute, ActionPause, ErrConflict, Promoted, 100},
		}},
		{"promote while paused", []step{
			{0, ActionPause, nil, Paused, 10},
			{time.Minute, ActionPromote, nil, Promoted, 100},
		}},
		{"abort, then retry", []step{
			{time.Minute, ActionAbort, nil, Aborted, 0},
			{2 * time.Minute, "", nil, Aborted, 0},
			{2 * time.Minute, ActionAbort, ErrConflict, Aborted, 0},
			{2 * time.Minute, ActionResume, ErrConflict, Aborted, 0},
			{3 * time.Minute, ActionRetry, nil, Progressing, 10},
			{3 * time.Minute, "", nil, Progressing, 10},
			{4 * time.Minute, "", nil, Progressing, 50},
		}},
		{"abort after promotion", []step{
			{0, ActionPromote, nil, Promoted, 100},
			{time.Minute, ActionAbort, nil, Aborted, 0},
		}},
		{"retry needs a final failure", []step{
			{0, ActionRetry, ErrConflict, Progressing, 10},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := NewMachine(p, t0)
			c := Window{}
			m.Tick(t0, c, Window{})
			for i, s := range tc.steps {
				now := t0.Add(s.at)
				var err error
				if s.action == "" {
					c.Requests += 1000
					m.Tick(now, c, Window{})
				} else {
					seq := m.State().Seq
					err = m.Do(now, s.action)
					if err == nil && m.State().Seq != seq+1 {
						t.Errorf("step %d: Seq %d after %d", i, m.State().Seq, seq)
					}
				}
				if !errors.Is(err, s.err) || (s.err == nil) != (err == nil) {
					t.Fatalf("step %d (%s): error %v, want %v", i, s.action, err, s.err)
				}
				if st := m.State(); st.Phase != s.phase || st.Weight != s.weight {
					t.Fatalf("step %d (%s at %s): %s at %d, want %s at %d (%s)", i, s.action, s.at, st.Phase, st.Weight, s.phase, s.weight, st.Reason)
				}
			}
		})
	}
	t.Run("reasons", func(t *testing.T) {
		m := NewMachine(p, t0)
		for _, want := range []struct {
			a      Action
			reason string
		}{
			{ActionPause, "paused by operator at step 1/2 (10%)"},
			{ActionResume, "resumed by operator at step 1/2 (10%)"},
			{ActionAbort, "aborted by operator at step 1/2 (10%)"},
			{ActionRetry, "retried by operator: back to step 1/2 (10%)"},
			{ActionPromote, "promoted by operator at step 1/2 (10%)"},
			{ActionAbort, "aborted by operator at promotion"},
		} {
			if err := m.Do(t0, want.a); err != nil {
				t.Fatal(err)
			}
			if got := m.State().Reason; got != want.reason {
				t.Errorf("%s: reason %q, want %q", want.a, got, want.reason)
			}
		}
		err := m.Do(t0, ActionPause)
		if err == nil || err.Error() != "cannot pause a rollout that is aborted" {
			t.Errorf("conflict error %v", err)
		}
	})
}

func TestParseAction(t *testing.T) {
	for _, s := range []string{"pause", "resume", "promote", "abort", "retry"} {
		if a, err := ParseAction(s); err != nil || string(a) != s {
			t.Errorf("%s: %v %v", s, a, err)
		}
	}
	if _, err := ParseAction("rollback"); err == nil {
		t.Error("rollback parsed")
	}
	m := NewMachine(mustPlan(t, config.Rollout{Canary: "c", Steps: []int{5}}), t0)
	if err := m.Do(t0, "rollback"); err == nil || errors.Is(err, ErrConflict) {
		t.Errorf("unknown action: %v", err)
	}
}

func TestMachineHistoryBounded(t *testing.T) {
	p := mustPlan(t, config.Rollout{Canary: "c", Steps: []int{5}, Interval: dur(time.Minute), ProgressDeadline: dur(10 * time.Hour)})
	m := NewMachine(p, t0)
	weights, _ := sim(m, t0, time.Minute, 2*time.Hour, func(int, int) (Window, Window) { return Window{Requests: 1}, Window{} })
	st := m.State()
	if len(st.History) != MaxHistory || !slices.Equal(weights, []int{5}) || st.Phase != Progressing {
		t.Fatalf("history %d, weights %v, phase %s", len(st.History), weights, st.Phase)
	}
	if last := st.History[MaxHistory-1]; !last.At.Equal(t0.Add(2 * time.Hour)) {
		t.Errorf("last judgement at %s", last.At)
	}
	if b, _ := json.Marshal(st); len(b) > 16<<10 {
		t.Errorf("state is %d bytes of JSON", len(b))
	}
}

func TestMachineRestore(t *testing.T) {
	p := mustPlan(t, config.Rollout{Canary: "c", Steps: []int{10, 50}, Interval: dur(time.Minute)})
	a := NewMachine(p, t0)
	a.Tick(t0, Window{}, Window{})
	a.Tick(t0.Add(time.Minute), Window{Requests: 1000}, Window{})
	st := a.State()
	if st.Weight != 50 {
		t.Fatalf("weight %d", st.Weight)
	}
	// Through JSON, as a store keeps it.
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	var back State
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	m := NewMachine(p, t0.Add(time.Hour))
	if err := m.Restore(back); err != nil {
		t.Fatal(err)
	}
	if got := m.State(); got.Weight != 50 || got.Step != 1 || len(got.History) != 1 || !got.StartedAt.Equal(t0) {
		t.Fatalf("restored %+v", got)
	}
	// The restored machine's counters are its own: its first tick starts
	// an interval, whatever counters the other process had.
	if !m.Tick(t0.Add(time.Hour), Window{Requests: 7}, Window{}) || !m.State().IntervalStartedAt.Equal(t0.Add(time.Hour)) {
		t.Fatalf("no fresh interval after Restore: %+v", m.State())
	}

	other := mustPlan(t, config.Rollout{Canary: "c", Steps: []int{10, 60}, Interval: dur(time.Minute)})
	if err := NewMachine(other, t0).Restore(back); !errors.Is(err, ErrPlanChanged) {
		t.Errorf("other plan: %v", err)
	}
	for name, mut := range map[string]func(*State){
		"step out of range":  func(s *State) { s.Step = 7 },
		"weight off":         func(s *State) { s.Weight = 33 },
		"unknown phase":      func(s *State) { s.Phase = "sleeping" },
		"failed with weight": func(s *State) { s.Phase = Failed },
		"progressing at 100": func(s *State) { s.Step, s.Weight = 2, 100 },
	} {
		s := back.Clone()
		mut(&s)
		if err := NewMachine(p, t0).Restore(s); err == nil {
			t.Errorf("%s: restored", name)
		}
	}
}
