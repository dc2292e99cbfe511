package rollout

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Phase is where a rollout stands.
type Phase string

// The phases. Promoted, Failed and Aborted are final: only Retry (after
// Failed or Aborted) or a change of the rollout's config starts it again.
const (
	Progressing Phase = "progressing" // judged every interval, stepping up on a pass
	Paused      Phase = "paused"      // weight held, nothing judged, the deadline stopped
	Promoted    Phase = "promoted"    // the canary takes 100
	Failed      Phase = "failed"      // rolled back to 0 by judgement or the deadline
	Aborted     Phase = "aborted"     // rolled back to 0 by an operator
)

// Final reports whether the phase is final.
func (p Phase) Final() bool { return p == Promoted || p == Failed || p == Aborted }

// MaxHistory bounds State.History: the last judgements are kept.
const MaxHistory = 50

// maxReason bounds a reason's length in a State, so saved states stay
// small.
const maxReason = 512

// Judgement is one judged interval.
type Judgement struct {
	At     time.Time `json:"at"`
	Step   int       `json:"step"` // index in Plan.Steps
	Weight int       `json:"weight"`
	Verdict
	Canary   Window `json:"canary"`            // the interval's counts
	Baseline Window `json:"baseline,omitzero"` // the interval's counts
}

// State is a rollout's progress: what a Store saves and a follower adopts.
// It is plain data and JSON-serialisable.
type State struct {
	// Fingerprint is the Plan's: a state saved under another plan (the
	// rollout's config changed) is not restored.
	Fingerprint string `json:"fingerprint"`
	// Seq counts changes; a follower adopts a state whose Seq differs.
	Seq   uint64 `json:"seq"`
	Phase Phase  `json:"phase"`
	// Step is the index in Plan.Steps of the step being held (the last
	// step once promoted); Weight is the canary's weight now, 0..100:
	// Plan.Steps[Step] while progressing or paused, 100 once promoted, 0
	// once failed or aborted.
	Step     int `json:"step"`
	Weight   int `json:"weight"`
	Failures int `json:"failures"` // failed judgements so far, over all steps
	// StartedAt is when the rollout (or its retry) started, StepStartedAt
	// when the current step did, IntervalStartedAt when the interval being
	// counted did (an inconclusive or failed interval starts another).
	StartedAt         time.Time `json:"started_at"`
	StepStartedAt     time.Time `json:"step_started_at"`
	IntervalStartedAt time.Time `json:"interval_started_at"`
	// Deadline is when a rollout still progressing fails: StartedAt plus
	// the progress deadline plus the time spent paused.
	Deadline  time.Time `json:"deadline"`
	PausedAt  time.Time `json:"paused_at,omitzero"`
	UpdatedAt time.Time `json:"updated_at"`
	// Reason says why the state is what it is, e.g. "rolled back: failed
	// judgement 2 of 2 at step 2/4 (5%): 412 requests, 97.8% success <
	// 99%".
	Reason  string      `json:"reason"`
	History []Judgement `json:"history,omitempty"` // the last MaxHistory judgements, oldest first
}

// Clone returns a deep copy.
func (s State) Clone() State {
	s.History = slices.Clone(s.History)
	return s
}

// ErrConflict is matched (errors.Is) by an action the rollout's phase does
// not allow, e.g. resuming a rollout that is not paused.
var ErrConflict = errors.New("action not allowed in this phase")

// ErrPlanChanged is returned by Restore for a state saved under another
// plan.
var ErrPlanChanged = errors.New("state belongs to another plan (the rollout's config changed)")

type conflictError struct {
	action Action
	phase  Phase
}

func (e *conflictError) Error() string {
	return fmt.Sprintf("cannot %s a rollout that is %s", e.action, e.phase)
}

func (e *conflictError) Is(target error) bool { return target == ErrConflict }

// Action is an operator's verb.
type Action string

// The actions.
const (
	ActionPause   Action = "pause"   // progressing → paused
	ActionResume  Action = "resume"  // paused → progressing; a fresh interval starts
	ActionPromote Action = "promote" // progressing or paused → promoted (100)
	ActionAbort   Action = "abort"   // progressing, paused or promoted → aborted (0)
	ActionRetry   Action = "retry"   // failed or aborted → progressing from the first step
)

// ParseAction accepts one of the actions' names.
func ParseAction(s string) (Action, error) {
	switch a := Action(s); a {
	case ActionPause, ActionResume, ActionPromote, ActionAbort, ActionRetry:
		return a, nil
	}
	return "", fmt.Errorf("unknown rollout action %q: want pause, resume, promote, abort or retry", s)
}

// Machine is one rollout's state machine. It has no goroutine and reads no
// clock: the caller passes the time to Tick and to every action, which
// keeps it deterministic and lets tests drive it. Its methods are safe for
// concurrent use (the integrator's ticker and the admin API may call it at
// once).
//
// Tick takes cumulative counters. The machine remembers the counters of
// the start of the interval being counted and judges the difference when
// the interval ends, so the caller never resets anything; the p99 of each
// side is taken as the caller gives it at the interval's end (about the
// last interval). The remembered counters are not part of State: they
// belong to this process's telemetry, so after New, Restore or Resume the
// next Tick only remembers the counters and starts the interval afresh (a
// restarted or newly driving instance judges its own full interval).
// Counters that go backwards (telemetry forgot the name and counts again)
// also start the interval afresh.
type Machine struct {
	mu     sync.Mutex
	plan   Plan
	fp     string
	st     State
	marked bool
	markC  Window
	markB  Window
}

// NewMachine starts a rollout of plan (from NewPlan) at now, at its first
// step.
func NewMachine(p Plan, now time.Time) *Machine {
	m := &Machine{plan: p, fp: p.Fingerprint()}
	m.st = State{Fingerprint: m.fp, Seq: 1}
	m.start(now)
	m.st.Reason = fmt.Sprintf("started at %s", m.where())
	return m
}

// start puts the rollout at its first step, keeping the history.
func (m *Machine) start(now time.Time) {
	s := &m.st
	s.Phase = Progressing
	s.Step, s.Weight, s.Failures = 0, m.plan.Steps[0], 0
	s.StartedAt, s.StepStartedAt, s.IntervalStartedAt = now, now, now
	s.Deadline = now.Add(m.plan.ProgressDeadline)
	s.PausedAt = time.Time{}
	s.UpdatedAt = now
	m.marked = false
}

// Plan returns the machine's plan.
func (m *Machine) Plan() Plan { return m.plan }

// State returns a copy of the state.
func (m *Machine) State() State {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.st.Clone()
}

// Weight is the canary's weight now, 0..100.
func (m *Machine) Weight() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.st.Weight
}

// Phase is the rollout's phase now.
func (m *Machine) Phase() Phase {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.st.Phase
}

// Restore adopts a saved state (or a driver's, for a follower). It refuses
// a state of another plan (ErrPlanChanged) or one that does not fit the
// plan, and keeps its own state then. The next Tick starts a fresh
// interval.
func (m *Machine) Restore(s State) error {
	if s.Fingerprint != m.fp {
		return ErrPlanChanged
	}
	last := len(m.plan.Steps) - 1
	if s.Step < 0 || s.Step > last {
		return fmt.Errorf("state's step %d is outside the plan's 0..%d", s.Step, last)
	}
	want := m.plan.Steps[s.Step]
	switch s.Phase {
	case Progressing, Paused:
		if s.Step == last {
			return fmt.Errorf("state is %s at the promotion step", s.Phase)
		}
	case Promoted:
		want = 100
	case Failed, Aborted:
		want = 0
	default:
		return fmt.Errorf("state has unknown phase %q", s.Phase)
	}
	if s.Weight != want {
		return fmt.Errorf("state's weight %d does not fit its phase %s at step %d (want %d)", s.Weight, s.Phase, s.Step, want)
	}
	s = s.Clone()
	if n := len(s.History); n > MaxHistory {
		s.History = s.History[n-MaxHistory:]
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.st = s
	m.marked = false
	return nil
}

// Tick advances the rollout to now given the cumulative counters of the
// canary and of the baseline (the other arms), and reports whether the
// state changed (the caller then saves it; compare Weight to see whether
// routing must change). While progressing, once now is an interval past
// IntervalStartedAt it judges the interval's traffic (see Judge): a pass
// steps up (the last pass promotes), a failure is counted and holds the
// step (the FailureLimit-th rolls back to 0), an inconclusive interval
// holds the step. Then, still progressing at or past the deadline, the
// rollout fails. Other phases ignore Tick.
func (m *Machine) Tick(now time.Time, canary, baseline Window) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := &m.st
	if s.Phase != Progressing {
		return false
	}
	changed := false
	switch {
	case !m.marked || canary.Requests < m.markC.Requests || canary.Errors5xx < m.markC.Errors5xx ||
		baseline.Requests < m.markB.Requests || baseline.Errors5xx < m.markB.Errors5xx:
		m.mark(canary, baseline)
		if !s.IntervalStartedAt.Equal(now) {
			s.IntervalStartedAt = now
			changed = true
		}
	case now.Sub(s.IntervalStartedAt) >= m.plan.Interval:
		c := Window{canary.Requests - m.markC.Requests, canary.Errors5xx - m.markC.Errors5xx, canary.P99}
		b := Window{baseline.Requests - m.markB.Requests, baseline.Errors5xx - m.markB.Errors5xx, baseline.P99}
		m.judged(now, Judge(m.plan.Analysis, c, b), c, b)
		m.mark(canary, baseline)
		s.IntervalStartedAt = now
		changed = true
	}
	if s.Phase == Progressing && !now.Before(s.Deadline) {
		reason := fmt.Sprintf("rolled back: progress deadline %s passed at %s", fmtDur(m.plan.ProgressDeadline), m.where())
		if n := len(s.History); n > 0 {
			reason += "; last judgement: " + s.History[n-1].Reason
		}
		m.finish(Failed, reason)
		changed = true
	}
	if changed {
		s.Seq++
		s.UpdatedAt = now
	}
	return changed
}

func (m *Machine) mark(canary, baseline Window) {
	m.markC, m.markB, m.marked = canary, baseline, true
}

// judged applies a verdict; the caller bumps Seq.
func (m *Machine) judged(now time.Time, v Verdict, c, b Window) {
	s := &m.st
	s.History = append(s.History, Judgement{At: now, Step: s.Step, Weight: s.Weight, Verdict: v, Canary: c, Baseline: b})
	if n := len(s.History); n > MaxHistory {
		s.History = slices.Delete(s.History, 0, n-MaxHistory)
	}
	where := m.where()
	switch v.Result {
	case Pass:
		s.Step++
		s.Weight = m.plan.Steps[s.Step]
		s.StepStartedAt = now
		if s.Step == len(m.plan.Steps)-1 {
			m.finish(Promoted, fmt.Sprintf("promoted: %s passed (%s)", where, v.Reason))
			return
		}
		s.Reason = clip(fmt.Sprintf("%s passed (%s); stepped up to %d%%", where, v.Reason, s.Weight))
	case Fail:
		s.Failures++
		msg := fmt.Sprintf("failed judgement %d of %d at %s: %s", s.Failures, m.plan.FailureLimit, where, v.Reason)
		if s.Failures >= m.plan.FailureLimit {
			m.finish(Failed, "rolled back: "+msg)
			return
		}
		s.Reason = clip(msg + "; step held")
	default:
		s.Reason = clip(fmt.Sprintf("inconclusive at %s: %s; step held", where, v.Reason))
	}
}

// finish moves to a final phase.
func (m *Machine) finish(p Phase, reason string) {
	s := &m.st
	s.Phase = p
	s.Reason = clip(reason)
	switch p {
	case Promoted:
		s.Step, s.Weight = len(m.plan.Steps)-1, 100
	case Failed, Aborted:
		s.Weight = 0
	}
	s.PausedAt = time.Time{}
}

// where names the current step for reasons: "step 2/4 (5%)", counting
// judged steps from 1.
func (m *Machine) where() string {
	return fmt.Sprintf("step %d/%d (%d%%)", m.st.Step+1, m.plan.Judged(), m.plan.Steps[m.st.Step])
}

// Do applies an operator's action at now. An action the phase does not
// allow returns an error matching ErrConflict and changes nothing.
func (m *Machine) Do(now time.Time, a Action) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := &m.st
	ok := false
	switch a {
	case ActionPause:
		if ok = s.Phase == Progressing; ok {
			s.Phase, s.PausedAt = Paused, now
			s.Reason = fmt.Sprintf("paused by operator at %s", m.where())
		}
	case ActionResume:
		if ok = s.Phase == Paused; ok {
			if now.After(s.PausedAt) {
				s.Deadline = s.Deadline.Add(now.Sub(s.PausedAt))
			}
			s.Phase, s.PausedAt = Progressing, time.Time{}
			s.IntervalStartedAt = now
			m.marked = false
			s.Reason = fmt.Sprintf("resumed by operator at %s", m.where())
		}
	case ActionPromote:
		if ok = s.Phase == Progressing || s.Phase == Paused; ok {
			m.finish(Promoted, fmt.Sprintf("promoted by operator at %s", m.where()))
		}
	case ActionAbort:
		if ok = s.Phase == Progressing || s.Phase == Paused || s.Phase == Promoted; ok {
			where := m.where()
			if s.Phase == Promoted {
				where = "promotion"
			}
			m.finish(Aborted, fmt.Sprintf("aborted by operator at %s", where))
		}
	case ActionRetry:
		if ok = s.Phase == Failed || s.Phase == Aborted; ok {
			m.start(now)
			s.Reason = fmt.Sprintf("retried by operator: back to %s", m.where())
		}
	default:
		return fmt.Errorf("unknown rollout action %q", a)
	}
	if !ok {
		return &conflictError{a, s.Phase}
	}
	s.Seq++
	s.UpdatedAt = now
	return nil
}

// Pause holds the weight and stops judging and the deadline.
func (m *Machine) Pause(now time.Time) error { return m.Do(now, ActionPause) }

// Resume continues a paused rollout with a fresh interval; the deadline
// moves back by the time spent paused.
func (m *Machine) Resume(now time.Time) error { return m.Do(now, ActionResume) }

// Promote gives the canary 100 at once.
func (m *Machine) Promote(now time.Time) error { return m.Do(now, ActionPromote) }

// Abort takes the canary to 0 for good (until Retry).
func (m *Machine) Abort(now time.Time) error { return m.Do(now, ActionAbort) }

// Retry starts a failed or aborted rollout again from its first step, with
// a new deadline; the history is kept.
func (m *Machine) Retry(now time.Time) error { return m.Do(now, ActionRetry) }

func clip(s string) string {
	if len(s) <= maxReason {
		return s
	}
	// Cut on a rune boundary.
	i := maxReason - len("…")
	for i > 0 && s[i]&0xC0 == 0x80 {
		i--
	}
	return s[:i] + "…"
}
