package rollout

import (
	"fmt"
	"time"
)

// Window is traffic of one side of a rollout. Given to Machine.Tick it
// holds cumulative counters (since any point: only differences are used)
// and the p99 latency of about the last interval; given to Judge it holds
// the counts of one interval.
type Window struct {
	Requests  uint64        `json:"requests"`
	Errors5xx uint64        `json:"errors_5xx"` // requests answered 5xx (or failed as 5xx), a subset of Requests
	P99       time.Duration `json:"p99_ns"`     // 0: unknown
}

// successRate is the percentage of requests not answered 5xx; errors above
// requests count as all requests failed.
func (w Window) successRate() float64 {
	if w.Requests == 0 {
		return 100
	}
	e := min(w.Errors5xx, w.Requests)
	return 100 * float64(w.Requests-e) / float64(w.Requests)
}

// Result is the outcome of a judgement.
type Result string

// The results.
const (
	Pass         Result = "pass"
	Fail         Result = "fail"
	Inconclusive Result = "inconclusive"
)

// Verdict is a judgement of one interval with the numbers that decided it,
// e.g. "412 requests, 97.8% success < 99%".
type Verdict struct {
	Result Result `json:"result"`
	Reason string `json:"reason"`
}

// p99Ratio is how much slower than the baseline's the canary's p99 may be
// with CompareToBaseline before it counts against the canary: 1.5 = 50%.
const p99Ratio = 1.5

// Judge decides one interval of canary traffic (and the baseline's, the
// other arms' traffic of the same interval).
//
//   - Fewer than MinRequests canary requests: Inconclusive, never a pass.
//   - Otherwise, judged on fixed bounds: Fail when the canary's success
//     rate (requests not answered 5xx) is below SuccessRate, or when P99 is
//     set and the canary's p99 is above it.
//   - With CompareToBaseline, judged against the baseline instead, so a
//     fault both sides share (a slow database, a bad dependency) is not
//     blamed on the canary: Fail when the canary's success rate is below
//     the baseline's by more than 100-SuccessRate points (99 allows 1 point:
//     baseline 99.5% needs at least 98.5%; since the baseline is at most
//     100%, such a canary is also below SuccessRate), or when P99 is set and
//     the canary's p99 is both above P99 and more than 1.5× the baseline's.
//     Without P99 latency is not judged either way. A baseline with fewer
//     than MinRequests requests is too small to compare with: the fixed
//     bounds apply, and the reason says so.
//   - Anything else passes.
func Judge(a Analysis, canary, baseline Window) Verdict {
	if canary.Requests < a.MinRequests {
		return Verdict{Inconclusive, fmt.Sprintf("only %d requests of %d needed", canary.Requests, a.MinRequests)}
	}
	sr := canary.successRate()
	head := fmt.Sprintf("%d requests, %s%% success", canary.Requests, fmtPct(sr))
	compare := a.CompareToBaseline && baseline.Requests >= a.MinRequests && baseline.Requests > 0
	note := ""
	if a.CompareToBaseline && !compare {
		note = fmt.Sprintf("; baseline has only %d requests of %d needed to compare, fixed bounds applied", baseline.Requests, a.MinRequests)
	}
	if compare {
		bsr := baseline.successRate()
		allowed := 100 - a.SuccessRate
		if sr < bsr-allowed {
			return Verdict{Fail, fmt.Sprintf("%s is %s points below the baseline's %s%% (%s allowed)",
				head, fmtPctUp(bsr-sr), fmtPct(bsr), fmtPct(allowed))}
		}
		if a.P99 > 0 && canary.P99 > a.P99 && float64(canary.P99) > p99Ratio*float64(baseline.P99) {
			return Verdict{Fail, fmt.Sprintf("%s, p99 %s > %s and > 1.5 × the baseline's %s",
				head, fmtDur(canary.P99), fmtDur(a.P99), fmtDur(baseline.P99))}
		}
		reason := fmt.Sprintf("%s (baseline %s%%)", head, fmtPct(bsr))
		if a.P99 > 0 {
			reason += fmt.Sprintf(", p99 %s (baseline %s, bound %s)", fmtDur(canary.P99), fmtDur(baseline.P99), fmtDur(a.P99))
		}
		return Verdict{Pass, reason}
	}
	if sr < a.SuccessRate {
		return Verdict{Fail, fmt.Sprintf("%s < %s%%%s", head, fmtPct(a.SuccessRate), note)}
	}
	if a.P99 > 0 && canary.P99 > a.P99 {
		return Verdict{Fail, fmt.Sprintf("%s, p99 %s > %s%s", head, fmtDur(canary.P99), fmtDur(a.P99), note)}
	}
	reason := fmt.Sprintf("%s ≥ %s%%", head, fmtPct(a.SuccessRate))
	if a.P99 > 0 {
		reason += fmt.Sprintf(", p99 %s ≤ %s", fmtDur(canary.P99), fmtDur(a.P99))
	}
	return Verdict{Pass, reason + note}
}
