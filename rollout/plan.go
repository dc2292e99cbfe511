package rollout

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/meridian-lb/meridian/config"
)

// MinInterval is the shortest interval a plan accepts: the integrator ticks
// rollouts once a second.
const MinInterval = time.Second

// Plan is a rollout as compiled from its config: the weights the canary
// steps through and how each step is judged. Build it with NewPlan; a Plan is
// a value and never changes. It is written as JSON for the admin API (see
// MarshalJSON) and never read back: states carry its Fingerprint.
type Plan struct {
	// Canary is the split arm's service (a route's rollout) or the pool
	// (a service's rollout) whose weight is stepped.
	Canary string
	// Steps are the canary's weights in percent, strictly increasing. The
	// last is always 100: reaching it is promotion and is not judged.
	Steps []int
	// Interval is how long each step is held before it is judged; an
	// inconclusive or failed step is held for another interval.
	Interval time.Duration
	Analysis Analysis
	// FailureLimit failed judgements over the whole rollout roll it back.
	FailureLimit int
	// ProgressDeadline bounds the whole rollout, time spent paused
	// excepted: a rollout not promoted by then is rolled back.
	ProgressDeadline time.Duration
}

// Analysis is what an interval of canary traffic must show to pass. See
// Judge for the rules.
type Analysis struct {
	MinRequests uint64
	SuccessRate float64       // percent of requests not answered 5xx
	P99         time.Duration // 0: latency is not judged
	// CompareToBaseline judges the canary against the other arms' traffic of
	// the same interval instead of against fixed bounds alone.
	CompareToBaseline bool
}

// PlanError is one problem of a rollout's config. Field is the path below
// the rollout ("steps[2]", "analysis.success_rate"; "" for the rollout
// itself), so the integrator can report it as path + "." + Field and find
// its line; Error reads "steps[2]: 25 is not above the step before it (25)",
// which also reads well after "routes[3].rollout: ".
type PlanError struct {
	Field string
	Msg   string
}

func (e *PlanError) Error() string {
	if e.Field == "" {
		return e.Msg
	}
	return e.Field + ": " + e.Msg
}

// PlanErrors returns the problems of an error from NewPlan, in config
// order.
func PlanErrors(err error) []*PlanError {
	if err == nil {
		return nil
	}
	var out []*PlanError
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			out = append(out, PlanErrors(e)...)
		}
		return out
	}
	var pe *PlanError
	if errors.As(err, &pe) {
		return []*PlanError{pe}
	}
	return []*PlanError{{Msg: err.Error()}}
}

// NewPlan checks a rollout's config and compiles it, filling the defaults
// of config/defaults.go for unset (zero) fields. Steps are the listed
// weights, or step_weight, 2×step_weight, ... up to max_weight (default
// 100, included even when not a multiple); either way 100 is appended when
// the list does not end there. The error, when not nil, holds every problem
// found (see PlanErrors).
func NewPlan(r *config.Rollout) (Plan, error) {
	if r == nil {
		return Plan{}, &PlanError{Msg: "missing"}
	}
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &PlanError{Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	p := Plan{Canary: r.Canary}
	if strings.TrimSpace(r.Canary) == "" {
		bad("canary", "required: the split arm's service, or the service's pool, to roll out")
	}

	switch {
	case len(r.Steps) > 0 && r.StepWeight != 0:
		bad("step_weight", "give steps or step_weight, not both")
	case len(r.Steps) > 0:
		if r.MaxWeight != 0 {
			bad("max_weight", "goes with step_weight; steps lists the weights itself")
		}
		ok := true
		for i, w := range r.Steps {
			switch {
			case w < 1 || w > 100:
				bad(fmt.Sprintf("steps[%d]", i), "weight %d is outside 1..100", w)
				ok = false
			case i > 0 && w <= r.Steps[i-1]:
				bad(fmt.Sprintf("steps[%d]", i), "%d is not above the step before it (%d)", w, r.Steps[i-1])
				ok = false
			}
		}
		if ok {
			p.Steps = append(p.Steps, r.Steps...)
		}
	case r.StepWeight != 0:
		maxW := r.MaxWeight
		if maxW == 0 {
			maxW = 100
		}
		switch {
		case r.StepWeight < 1 || r.StepWeight > 99:
			bad("step_weight", "%d is outside 1..99", r.StepWeight)
		case maxW < r.StepWeight || maxW > 100:
			bad("max_weight", "%d is outside step_weight (%d)..100", maxW, r.StepWeight)
		default:
			for w := r.StepWeight; w < maxW; w += r.StepWeight {
				p.Steps = append(p.Steps, w)
			}
			p.Steps = append(p.Steps, maxW)
		}
	default:
		if r.MaxWeight != 0 {
			bad("max_weight", "goes with step_weight")
		}
		bad("", "needs steps (e.g. [1, 5, 25, 50]) or step_weight")
	}
	if n := len(p.Steps); n > 0 && p.Steps[n-1] != 100 {
		p.Steps = append(p.Steps, 100)
	}
	if len(p.Steps) == 1 {
		bad("steps", "no weight below 100 to judge: list at least one step before promotion")
	}

	p.Interval = r.Interval.D()
	switch {
	case p.Interval == 0:
		p.Interval = config.DefaultRolloutInterval
	case p.Interval < MinInterval:
		bad("interval", "%s is below %s", fmtDur(p.Interval), fmtDur(MinInterval))
	}
	p.FailureLimit = r.FailureLimit
	switch {
	case p.FailureLimit == 0:
		p.FailureLimit = config.DefaultRolloutFailureLimit
	case p.FailureLimit < 0:
		bad("failure_limit", "%d is negative", p.FailureLimit)
	}

	a := r.Analysis
	switch {
	case a.MinRequests == 0:
		p.Analysis.MinRequests = config.DefaultRolloutMinRequests
	case a.MinRequests < 0:
		bad("analysis.min_requests", "%d is negative", a.MinRequests)
	default:
		p.Analysis.MinRequests = uint64(a.MinRequests)
	}
	switch sr := a.SuccessRate; {
	case math.IsNaN(sr) || sr < 0 || sr > 100:
		bad("analysis.success_rate", "%s is outside 0..100 (a percentage)", fmtPct(sr))
	case sr == 0:
		p.Analysis.SuccessRate = config.DefaultRolloutSuccessRate
	default:
		p.Analysis.SuccessRate = sr
	}
	if p.Analysis.P99 = a.P99.D(); p.Analysis.P99 < 0 {
		bad("analysis.p99", "%s is negative", fmtDur(p.Analysis.P99))
	}
	p.Analysis.CompareToBaseline = a.CompareToBaseline

	p.ProgressDeadline = r.ProgressDeadline.D()
	def := ""
	if p.ProgressDeadline == 0 {
		p.ProgressDeadline, def = config.DefaultRolloutDeadline, " (the default)"
	}
	switch judged := len(p.Steps) - 1; {
	case p.ProgressDeadline < 0:
		bad("progress_deadline", "%s is negative", fmtDur(p.ProgressDeadline))
	case judged > 0 && p.Interval >= MinInterval && p.ProgressDeadline < time.Duration(judged)*p.Interval:
		steps := "steps"
		if judged == 1 {
			steps = "step"
		}
		bad("progress_deadline", "%s%s is shorter than the %s that %d %s of %s need",
			fmtDur(p.ProgressDeadline), def, fmtDur(time.Duration(judged)*p.Interval), judged, steps, fmtDur(p.Interval))
	}
	if len(errs) > 0 {
		return Plan{}, errors.Join(errs...)
	}
	return p, nil
}

// MarshalJSON writes the plan for the admin API, durations as text
// ("1m", "250ms").
func (p Plan) MarshalJSON() ([]byte, error) {
	type analysis struct {
		MinRequests       uint64  `json:"min_requests"`
		SuccessRate       float64 `json:"success_rate"`
		P99               string  `json:"p99,omitempty"`
		CompareToBaseline bool    `json:"compare_to_baseline"`
	}
	a := analysis{MinRequests: p.Analysis.MinRequests, SuccessRate: p.Analysis.SuccessRate, CompareToBaseline: p.Analysis.CompareToBaseline}
	if p.Analysis.P99 > 0 {
		a.P99 = fmtDur(p.Analysis.P99)
	}
	return json.Marshal(struct {
		Canary           string   `json:"canary"`
		Steps            []int    `json:"steps"`
		Interval         string   `json:"interval"`
		Analysis         analysis `json:"analysis"`
		FailureLimit     int      `json:"failure_limit"`
		ProgressDeadline string   `json:"progress_deadline"`
	}{p.Canary, p.Steps, fmtDur(p.Interval), a, p.FailureLimit, fmtDur(p.ProgressDeadline)})
}

// Judged is the number of steps that are judged (every step but the last,
// promotion).
func (p Plan) Judged() int { return max(len(p.Steps)-1, 0) }

// Fingerprint identifies the plan: equal for equal plans, different when any
// field differs. A saved State carries the fingerprint of its plan, so a
// rollout whose config changed starts over instead of resuming.
func (p Plan) Fingerprint() string {
	var b strings.Builder
	b.WriteString("v1|canary=")
	b.WriteString(strconv.Quote(p.Canary))
	b.WriteString("|steps=")
	for i, w := range p.Steps {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(w))
	}
	fmt.Fprintf(&b, "|interval=%d|min=%d|sr=%s|p99=%d|cmp=%t|fl=%d|deadline=%d",
		p.Interval, p.Analysis.MinRequests, strconv.FormatFloat(p.Analysis.SuccessRate, 'g', -1, 64),
		p.Analysis.P99, p.Analysis.CompareToBaseline, p.FailureLimit, p.ProgressDeadline)
	sum := sha256.Sum256([]byte(b.String()))
	return hex.EncodeToString(sum[:8])
}

// fmtDur writes a duration the way a config would: "1m", "1h30m", "250ms",
// "1.25s"; at most three significant places below a second.
func fmtDur(d time.Duration) string {
	neg := d < 0
	if neg {
		d = -d
	}
	var s string
	switch {
	case d == 0:
		s = "0s"
	case d >= time.Minute:
		s = d.Round(time.Second).String()
		if strings.HasSuffix(s, "m0s") {
			s = s[:len(s)-2]
		}
		if strings.HasSuffix(s, "h0m") {
			s = s[:len(s)-2]
		}
	case d >= time.Second:
		s = d.Round(10 * time.Millisecond).String()
	case d >= time.Millisecond:
		s = d.Round(10 * time.Microsecond).String()
	default:
		s = d.String()
	}
	if neg {
		s = "-" + s
	}
	return s
}

// fmtPct writes a percentage with at most two decimals, rounded down so a
// value below a bound never prints as the bound itself.
func fmtPct(x float64) string {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return strconv.FormatFloat(x, 'f', -1, 64)
	}
	return strconv.FormatFloat(math.Floor(x*100+1e-9)/100, 'f', -1, 64)
}

// fmtPctUp is fmtPct rounding up, for a margin that exceeds a bound.
func fmtPctUp(x float64) string {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return strconv.FormatFloat(x, 'f', -1, 64)
	}
	return strconv.FormatFloat(math.Ceil(x*100-1e-9)/100, 'f', -1, 64)
}
