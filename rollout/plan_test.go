package rollout

import (
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meridian-lb/meridian/config"
)

func dur(d time.Duration) config.Duration { return config.Duration(d) }

func TestNewPlan(t *testing.T) {
	tests := []struct {
		name  string
		r     config.Rollout
		steps []int
		errs  []string // each error's text, in order
	}{
		{name: "steps, 100 appended", r: config.Rollout{Canary: "c", Steps: []int{1, 5, 25, 50}}, steps: []int{1, 5, 25, 50, 100}},
		{name: "steps ending at 100", r: config.Rollout{Canary: "c", Steps: []int{10, 100}}, steps: []int{10, 100}},
		{name: "step_weight to 100", r: config.Rollout{Canary: "c", StepWeight: 30}, steps: []int{30, 60, 90, 100}},
		{name: "step_weight to max_weight", r: config.Rollout{Canary: "c", StepWeight: 10, MaxWeight: 50}, steps: []int{10, 20, 30, 40, 50, 100}},
		{name: "max_weight not a multiple", r: config.Rollout{Canary: "c", StepWeight: 30, MaxWeight: 80}, steps: []int{30, 60, 80, 100}},
		{name: "max_weight equals step", r: config.Rollout{Canary: "c", StepWeight: 20, MaxWeight: 20}, steps: []int{20, 100}},
		{name: "nothing", r: config.Rollout{Canary: "c"}, errs: []string{"needs steps (e.g. [1, 5, 25, 50]) or step_weight"}},
		{name: "no canary", r: config.Rollout{Steps: []int{5}}, errs: []string{"canary: required: the split arm's service, or the service's pool, to roll out"}},
		{name: "both", r: config.Rollout{Canary: "c", Steps: []int{5}, StepWeight: 5}, errs: []string{"step_weight: give steps or step_weight, not both"}},
		{name: "step out of range", r: config.Rollout{Canary: "c", Steps: []int{0, 5, 120}}, errs: []string{
			"steps[0]: weight 0 is outside 1..100", "steps[2]: weight 120 is outside 1..100"}},
		{name: "not increasing", r: config.Rollout{Canary: "c", Steps: []int{5, 25, 25, 10}}, errs: []string{
			"steps[2]: 25 is not above the step before it (25)", "steps[3]: 10 is not above the step before it (25)"}},
		{name: "only promotion", r: config.Rollout{Canary: "c", Steps: []int{100}}, errs: []string{
			"steps: no weight below 100 to judge: list at least one step before promotion"}},
		{name: "max_weight with steps", r: config.Rollout{Canary: "c", Steps: []int{5}, MaxWeight: 50}, errs: []string{
			"max_weight: goes with step_weight; steps lists the weights itself"}},
		{name: "step_weight 100", r: config.Rollout{Canary: "c", StepWeight: 100}, errs: []string{"step_weight: 100 is outside 1..99"}},
		{name: "max_weight below step", r: config.Rollout{Canary: "c", StepWeight: 30, MaxWeight: 20}, errs: []string{"max_weight: 20 is outside step_weight (30)..100"}},
		{name: "bad numbers", r: config.Rollout{Canary: "c", Steps: []int{50}, Interval: dur(-time.Second), FailureLimit: -1,
			Analysis: config.Analysis{MinRequests: -5, SuccessRate: 120, P99: dur(-time.Millisecond)}, ProgressDeadline: dur(-time.Minute)},
			errs: []string{"interval: -1s is below 1s", "failure_limit: -1 is negative", "analysis.min_requests: -5 is negative",
				"analysis.success_rate: 120 is outside 0..100 (a percentage)", "analysis.p99: -1ms is negative", "progress_deadline: -1m is negative"}},
		{name: "default deadline too short", r: config.Rollout{Canary: "c", StepWeight: 1}, errs: []string{
			"progress_deadline: 30m (the default) is shorter than the 1h39m that 99 steps of 1m need"}},
		{name: "deadline too short", r: config.Rollout{Canary: "c", Steps: []int{50}, Interval: dur(10 * time.Minute), ProgressDeadline: dur(5 * time.Minute)}, errs: []string{
			"progress_deadline: 5m is shorter than the 10m that 1 step of 10m need"}},
		{name: "NaN success rate", r: config.Rollout{Canary: "c", Steps: []int{50}, Analysis: config.Analysis{SuccessRate: math.NaN()}}, errs: []string{
			"analysis.success_rate: NaN is outside 0..100 (a percentage)"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := NewPlan(&tc.r)
			var got []string
			for _, pe := range PlanErrors(err) {
				got = append(got, pe.Error())
			}
			if !slices.Equal(got, tc.errs) {
				t.Fatalf("errors:\n got %q\nwant %q", got, tc.errs)
			}
			if err == nil && !slices.Equal(p.Steps, tc.steps) {
				t.Fatalf("steps %v, want %v", p.Steps, tc.steps)
			}
		})
	}
}

func TestNewPlanDefaults(t *testing.T) {
	p, err := NewPlan(&config.Rollout{Canary: "c", Steps: []int{5, 50}})
	if err != nil {
		t.Fatal(err)
	}
	want := Plan{
		Canary: "c", Steps: []int{5, 50, 100}, Interval: config.DefaultRolloutInterval,
		Analysis:     Analysis{MinRequests: config.DefaultRolloutMinRequests, SuccessRate: config.DefaultRolloutSuccessRate},
		FailureLimit: config.DefaultRolloutFailureLimit, ProgressDeadline: config.DefaultRolloutDeadline,
	}
	if p.Fingerprint() != want.Fingerprint() || !slices.Equal(p.Steps, want.Steps) || p.Analysis != want.Analysis ||
		p.Interval != want.Interval || p.FailureLimit != want.FailureLimit || p.ProgressDeadline != want.ProgressDeadline {
		t.Fatalf("plan %+v, want %+v", p, want)
	}
	if p.Judged() != 2 {
		t.Errorf("Judged = %d", p.Judged())
	}
	// The error reads well after the rollout's path.
	_, err = NewPlan(&config.Rollout{Canary: "c", Steps: []int{5, 5}})
	if got := "routes[3].rollout: " + err.Error(); got != "routes[3].rollout: steps[1]: 5 is not above the step before it (5)" {
		t.Errorf("%s", got)
	}
	if _, err := NewPlan(nil); err == nil || err.Error() != "missing" {
		t.Errorf("nil: %v", err)
	}
}

func TestFingerprint(t *testing.T) {
	base := config.Rollout{Canary: "c", Steps: []int{5, 50}}
	fp := func(r config.Rollout) string {
		t.Helper()
		p, err := NewPlan(&r)
		if err != nil {
			t.Fatal(err)
		}
		return p.Fingerprint()
	}
	a := fp(base)
	if a != fp(config.Rollout{Canary: "c", Steps: []int{5, 50, 100}}) {
		t.Error("an explicit 100 changed the fingerprint of the same plan")
	}
	if a != fp(config.Rollout{Canary: "c", Steps: []int{5, 50}, Interval: dur(time.Minute)}) {
		t.Error("an explicit default changed the fingerprint")
	}
	seen := map[string]string{a: "base"}
	for name, r := range map[string]config.Rollout{
		"canary":   {Canary: "d", Steps: []int{5, 50}},
		"steps":    {Canary: "c", Steps: []int{5, 60}},
		"interval": {Canary: "c", Steps: []int{5, 50}, Interval: dur(2 * time.Minute)},
		"min":      {Canary: "c", Steps: []int{5, 50}, Analysis: config.Analysis{MinRequests: 10}},
		"rate":     {Canary: "c", Steps: []int{5, 50}, Analysis: config.Analysis{SuccessRate: 99.5}},
		"p99":      {Canary: "c", Steps: []int{5, 50}, Analysis: config.Analysis{P99: dur(time.Second)}},
		"compare":  {Canary: "c", Steps: []int{5, 50}, Analysis: config.Analysis{CompareToBaseline: true}},
		"limit":    {Canary: "c", Steps: []int{5, 50}, FailureLimit: 3},
		"deadline": {Canary: "c", Steps: []int{5, 50}, ProgressDeadline: dur(time.Hour)},
	} {
		f := fp(r)
		if other, dup := seen[f]; dup {
			t.Errorf("%s has the fingerprint of %s", name, other)
		}
		seen[f] = name
	}
}

func TestFmt(t *testing.T) {
	for d, want := range map[time.Duration]string{
		time.Minute: "1m", 90 * time.Second: "1m30s", time.Hour: "1h", 99 * time.Minute: "1h39m", 3*time.Hour + 5*time.Second: "3h0m5s",
		1234567 * time.Microsecond: "1.23s", 250 * time.Millisecond: "250ms", 1500 * time.Microsecond: "1.5ms", 0: "0s", -time.Second: "-1s",
	} {
		if got := fmtDur(d); got != want {
			t.Errorf("fmtDur(%v) = %q, want %q", d, got, want)
		}
	}
	for x, want := range map[float64]string{97.8: "97.8", 98.999: "98.99", 99: "99", 100 * 403.0 / 412: "97.81"} {
		if got := fmtPct(x); got != want {
			t.Errorf("fmtPct(%v) = %q, want %q", x, got, want)
		}
	}
}

// FuzzNewPlan checks that any rollout config either fails with field
// errors or gives a plan every other part can rely on.
func FuzzNewPlan(f *testing.F) {
	f.Add("c", []byte{1, 5, 25, 50}, 0, 0, int64(0), 0, 0.0, int64(0), int64(0))
	f.Add("c", []byte{}, 10, 50, int64(time.Minute), 100, 99.0, int64(time.Second), int64(time.Hour))
	f.Add("", []byte{100}, 100, 120, int64(-1), -1, 101.0, int64(-1), int64(1))
	f.Fuzz(func(t *testing.T, canary string, steps []byte, stepWeight, maxWeight int, interval int64, minReq int, rate float64, p99, deadline int64) {
		r := config.Rollout{Canary: canary, StepWeight: stepWeight, MaxWeight: maxWeight, Interval: config.Duration(interval),
			Analysis:         config.Analysis{MinRequests: minReq, SuccessRate: rate, P99: config.Duration(p99)},
			ProgressDeadline: config.Duration(deadline)}
		for _, s := range steps {
			r.Steps = append(r.Steps, int(s))
		}
		p, err := NewPlan(&r)
		if err != nil {
			for _, pe := range PlanErrors(err) {
				if pe.Msg == "" || strings.Contains(pe.Error(), "%!") {
					t.Fatalf("bad error %q", pe.Error())
				}
			}
			return
		}
		if len(p.Steps) < 2 || p.Steps[len(p.Steps)-1] != 100 || p.Steps[0] < 1 {
			t.Fatalf("steps %v", p.Steps)
		}
		for i := 1; i < len(p.Steps); i++ {
			if p.Steps[i] <= p.Steps[i-1] {
				t.Fatalf("steps %v do not increase", p.Steps)
			}
		}
		if p.Interval < MinInterval || p.FailureLimit < 1 || p.Analysis.MinRequests < 1 ||
			p.Analysis.SuccessRate <= 0 || p.Analysis.SuccessRate > 100 || p.Analysis.P99 < 0 ||
			p.ProgressDeadline < time.Duration(p.Judged())*p.Interval {
			t.Fatalf("plan %+v", p)
		}
		// A machine can run the plan to its end.
		if p.Analysis.MinRequests > 1<<50 {
			return
		}
		now := time.Unix(0, 0)
		m := NewMachine(p, now)
		w := Window{}
		for i := 0; i < p.Judged()+1; i++ {
			m.Tick(now, w, Window{})
			now = now.Add(p.Interval)
			w.Requests += p.Analysis.MinRequests
		}
		m.Tick(now, w, Window{})
		if m.Phase() != Promoted || m.Weight() != 100 {
			t.Fatalf("healthy run ended %s at %d: %s", m.Phase(), m.Weight(), m.State().Reason)
		}
	})
}
