package rollout

import (
	"testing"
	"time"
)

func TestJudge(t *testing.T) {
	const ms = time.Millisecond
	base := Analysis{MinRequests: 100, SuccessRate: 99}
	withP99 := Analysis{MinRequests: 100, SuccessRate: 99, P99: 500 * ms}
	cmp := Analysis{MinRequests: 100, SuccessRate: 99, P99: 500 * ms, CompareToBaseline: true}
	cmpNoP99 := Analysis{MinRequests: 100, SuccessRate: 99, CompareToBaseline: true}
	tests := []struct {
		name     string
		a        Analysis
		canary   Window
		baseline Window
		want     Verdict
	}{
		{"too few", base, Window{Requests: 12}, Window{}, Verdict{Inconclusive, "only 12 requests of 100 needed"}},
		{"too few even if failing", base, Window{Requests: 99, Errors5xx: 99}, Window{}, Verdict{Inconclusive, "only 99 requests of 100 needed"}},
		{"none", base, Window{}, Window{Requests: 5000}, Verdict{Inconclusive, "only 0 requests of 100 needed"}},
		{"healthy", base, Window{Requests: 412, Errors5xx: 1}, Window{}, Verdict{Pass, "412 requests, 99.75% success ≥ 99%"}},
		{"exactly the bound", base, Window{Requests: 100, Errors5xx: 1}, Window{}, Verdict{Pass, "100 requests, 99% success ≥ 99%"}},
		{"errors", base, Window{Requests: 412, Errors5xx: 9}, Window{}, Verdict{Fail, "412 requests, 97.81% success < 99%"}},
		{"just below", base, Window{Requests: 100000, Errors5xx: 1001}, Window{}, Verdict{Fail, "100000 requests, 98.99% success < 99%"}},
		{"errors above requests", base, Window{Requests: 100, Errors5xx: 500}, Window{}, Verdict{Fail, "100 requests, 0% success < 99%"}},
		{"p99 not judged", base, Window{Requests: 100, P99: time.Hour}, Window{}, Verdict{Pass, "100 requests, 100% success ≥ 99%"}},
		{"p99 within", withP99, Window{Requests: 100, P99: 120 * ms}, Window{}, Verdict{Pass, "100 requests, 100% success ≥ 99%, p99 120ms ≤ 500ms"}},
		{"p99 above", withP99, Window{Requests: 100, P99: 1234 * ms}, Window{}, Verdict{Fail, "100 requests, 100% success, p99 1.23s > 500ms"}},
		{"errors decide first", withP99, Window{Requests: 100, Errors5xx: 5, P99: time.Second}, Window{}, Verdict{Fail, "100 requests, 95% success < 99%"}},

		{"compare: shared fault passes", cmp, Window{Requests: 1000, Errors5xx: 55, P99: 600 * ms}, Window{Requests: 9000, Errors5xx: 450, P99: 550 * ms},
			Verdict{Pass, "1000 requests, 94.5% success (baseline 95%), p99 600ms (baseline 550ms, bound 500ms)"}},
		{"compare: worse by more than allowed", cmp, Window{Requests: 1000, Errors5xx: 70}, Window{Requests: 9000, Errors5xx: 450},
			Verdict{Fail, "1000 requests, 93% success is 2 points below the baseline's 95% (1 allowed)"}},
		{"compare: slower than bound and baseline", cmp, Window{Requests: 1000, P99: 900 * ms}, Window{Requests: 9000, P99: 400 * ms},
			Verdict{Fail, "1000 requests, 100% success, p99 900ms > 500ms and > 1.5 × the baseline's 400ms"}},
		{"compare: 1.5× baseline but within bound", cmp, Window{Requests: 1000, P99: 300 * ms}, Window{Requests: 9000, P99: 100 * ms},
			Verdict{Pass, "1000 requests, 100% success (baseline 100%), p99 300ms (baseline 100ms, bound 500ms)"}},
		{"compare: no p99 bound, latency not judged", cmpNoP99, Window{Requests: 1000, P99: 9 * time.Second}, Window{Requests: 9000, P99: 100 * ms},
			Verdict{Pass, "1000 requests, 100% success (baseline 100%)"}},
		{"compare: small baseline falls back to bounds", cmp, Window{Requests: 1000, Errors5xx: 55}, Window{Requests: 40, Errors5xx: 2},
			Verdict{Fail, "1000 requests, 94.5% success < 99%; baseline has only 40 requests of 100 needed to compare, fixed bounds applied"}},
		{"compare: small baseline, healthy", cmp, Window{Requests: 1000, P99: 100 * ms}, Window{Requests: 40},
			Verdict{Pass, "1000 requests, 100% success ≥ 99%, p99 100ms ≤ 500ms; baseline has only 40 requests of 100 needed to compare, fixed bounds applied"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Judge(tc.a, tc.canary, tc.baseline); got != tc.want {
				t.Errorf("Judge:\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}
