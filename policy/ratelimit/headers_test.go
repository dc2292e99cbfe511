package ratelimit_test

import (
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meridian-lb/meridian/policy/ratelimit"
)

func TestSetHeadersGolden(t *testing.T) {
	for _, tc := range []struct {
		what         string
		name         string
		d            ratelimit.Decision
		policy, rate string
		retryAfter   string // "" when absent
	}{
		{
			what:   "allowed",
			name:   "api",
			d:      ratelimit.Decision{Allowed: true, Limit: 100, Remaining: 42, Reset: 16200 * time.Millisecond, Window: time.Minute},
			policy: `"api";q=100;w=60`,
			rate:   `"api";r=42;t=17`,
		},
		{
			what:   "allowed, bucket full",
			name:   "api",
			d:      ratelimit.Decision{Allowed: true, Limit: 10, Remaining: 10, Window: time.Second},
			policy: `"api";q=10;w=1`,
			rate:   `"api";r=10;t=0`,
		},
		{
			what:       "refused: t is the Retry-After, rounded up to 1",
			name:       "api",
			d:          ratelimit.Decision{Limit: 100, Reset: time.Minute, RetryAfter: 600 * time.Millisecond, Window: time.Minute},
			policy:     `"api";q=100;w=60`,
			rate:       `"api";r=0;t=1`,
			retryAfter: "1",
		},
		{
			what:       "refused, long wait rounded up",
			name:       "login",
			d:          ratelimit.Decision{Limit: 1, Reset: time.Hour, RetryAfter: 2*time.Second + 1, Window: time.Hour},
			policy:     `"login";q=1;w=3600`,
			rate:       `"login";r=0;t=3`,
			retryAfter: "3",
		},
		{
			what:       "refused, 1ns to wait",
			name:       "x",
			d:          ratelimit.Decision{Limit: 3, Reset: time.Second, RetryAfter: 1, Window: time.Second},
			policy:     `"x";q=3;w=1`,
			rate:       `"x";r=0;t=1`,
			retryAfter: "1",
		},
		{
			what:   "quote and backslash escaped",
			name:   `we"ird\name`,
			d:      ratelimit.Decision{Allowed: true, Limit: 5, Remaining: 4, Reset: time.Second, Window: 5 * time.Second},
			policy: `"we\"ird\\name";q=5;w=5`,
			rate:   `"we\"ird\\name";r=4;t=1`,
		},
		{
			what:   "non-ASCII and % percent-encoded",
			name:   "café 100%\t",
			d:      ratelimit.Decision{Allowed: true, Limit: 5, Remaining: 4, Reset: time.Second, Window: 5 * time.Second},
			policy: `"caf%c3%a9 100%25%09";q=5;w=5`,
			rate:   `"caf%c3%a9 100%25%09";r=4;t=1`,
		},
		{
			what:   "empty name",
			d:      ratelimit.Decision{Allowed: true, Limit: 5, Remaining: 4, Reset: time.Second, Window: time.Second},
			policy: `"";q=5;w=1`,
			rate:   `"";r=4;t=1`,
		},
		{
			what:   "sub-second window scaled to 1s",
			name:   "api",
			d:      ratelimit.Decision{Allowed: true, Limit: 5, Remaining: 4, Reset: 100 * time.Millisecond, Window: 500 * time.Millisecond},
			policy: `"api";q=10;w=1`,
			rate:   `"api";r=4;t=1`,
		},
		{
			what:   "fractional window scaled to 2s, quota rounded down",
			name:   "api",
			d:      ratelimit.Decision{Allowed: true, Limit: 3, Remaining: 2, Reset: 500 * time.Millisecond, Window: 1500 * time.Millisecond},
			policy: `"api";q=4;w=2`,
			rate:   `"api";r=2;t=1`,
		},
		{
			what:   "values past the sf-integer range clamped",
			name:   "big",
			d:      ratelimit.Decision{Allowed: true, Limit: math.MaxInt, Remaining: math.MaxInt, Reset: math.MaxInt64, Window: math.MaxInt64},
			policy: `"big";q=999999999999999;w=9223372037`,
			rate:   `"big";r=999999999999999;t=9223372037`,
		},
	} {
		t.Run(tc.what, func(t *testing.T) {
			h := http.Header{}
			h.Set("Retry-After", "stale") // an allowed decision leaves it alone
			tc.d.SetHeaders(h, tc.name)
			if got := h.Values("RateLimit-Policy"); !slices.Equal(got, []string{tc.policy}) {
				t.Errorf("RateLimit-Policy = %q, want %q", got, tc.policy)
			}
			if got := h.Values("RateLimit"); !slices.Equal(got, []string{tc.rate}) {
				t.Errorf("RateLimit = %q, want %q", got, tc.rate)
			}
			wantRA := tc.retryAfter
			if wantRA == "" {
				wantRA = "stale"
			}
			if got := h.Values("Retry-After"); !slices.Equal(got, []string{wantRA}) {
				t.Errorf("Retry-After = %q, want %q", got, wantRA)
			}
		})
	}
}

// TestSetHeadersReplaceThenAdd: SetHeaders replaces earlier values, and
// an upstream's items added later extend each list without touching the
// other field.
func TestSetHeadersReplaceThenAdd(t *testing.T) {
	h := http.Header{}
	h.Add("RateLimit", `"old";r=1`)
	d := ratelimit.Decision{Limit: 2, Reset: time.Second, RetryAfter: time.Second, Window: time.Second}
	d.SetHeaders(h, "r")
	h.Add("RateLimit", `"upstream";r=7;t=3`)
	h.Add("RateLimit-Policy", `"upstream";q=10;w=60`)
	h.Add("Retry-After", "9")
	for field, want := range map[string][]string{
		"RateLimit":        {`"r";r=0;t=1`, `"upstream";r=7;t=3`},
		"RateLimit-Policy": {`"r";q=2;w=1`, `"upstream";q=10;w=60`},
		"Retry-After":      {"1", "9"},
	} {
		if got := h.Values(field); !slices.Equal(got, want) {
			t.Errorf("%s = %q, want %q", field, got, want)
		}
	}
}

// TestTakeThenHeaders runs the integrator's sequence end to end.
func TestTakeThenHeaders(t *testing.T) {
	l := ratelimit.New(ratelimit.Spec{Requests: 100, Per: time.Minute, Burst: 100, MaxKeys: 10})
	var d ratelimit.Decision
	for range 58 {
		d = l.Take("client", at(0), 1)
	}
	h := http.Header{}
	d.SetHeaders(h, "api")
	// 58 taken: 42 left, 58 tokens at 0.6s each to full = 34.8s.
	if got := h.Get("RateLimit"); got != `"api";r=42;t=35` {
		t.Errorf("RateLimit = %q", got)
	}
	for range 42 {
		l.Take("client", at(0), 1)
	}
	d = l.Take("client", at(int64(100*time.Millisecond)), 1)
	h = http.Header{}
	d.SetHeaders(h, "api")
	if d.Allowed || h.Get("RateLimit") != `"api";r=0;t=1` || h.Get("Retry-After") != "1" || h.Get("RateLimit-Policy") != `"api";q=100;w=60` {
		t.Errorf("refused: %+v gave %v", d, h)
	}
	// Fleet of 3: the per-instance quota is advertised.
	h = http.Header{}
	ratelimit.New(l.Spec()).Take("client", at(0), 3).SetHeaders(h, "api")
	if got := h.Get("RateLimit-Policy"); got != `"api";q=33;w=60` {
		t.Errorf("fleet RateLimit-Policy = %q", got)
	}
}

// parseItem parses one Structured Fields item whose bare item is an
// sf-string and whose parameters are integers (RFC 9651 §4.2.3), the
// only shape SetHeaders writes, and percent-decodes the string. It is
// strict: anything else is an error.
func parseItem(s string) (name string, params map[string]int64, ok bool) {
	if len(s) < 2 || s[0] != '"' {
		return "", nil, false
	}
	var b strings.Builder
	i := 1
	for ; ; i++ {
		if i >= len(s) {
			return "", nil, false
		}
		c := s[i]
		if c == '\\' {
			i++
			if i >= len(s) || s[i] != '"' && s[i] != '\\' {
				return "", nil, false
			}
			b.WriteByte(s[i])
			continue
		}
		if c == '"' {
			break
		}
		if c < 0x20 || c > 0x7e {
			return "", nil, false
		}
		if c == '%' {
			if i+2 >= len(s) {
				return "", nil, false
			}
			v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
			if err != nil || strings.ToLower(s[i+1:i+3]) != s[i+1:i+3] {
				return "", nil, false
			}
			b.WriteByte(byte(v))
			i += 2
			continue
		}
		b.WriteByte(c)
	}
	rest := s[i+1:]
	params = map[string]int64{}
	if rest == "" {
		return b.String(), params, true
	}
	if rest[0] != ';' {
		return "", nil, false
	}
	for _, kv := range strings.Split(rest[1:], ";") {
		k, v, found := strings.Cut(kv, "=")
		if !found || k == "" || strings.Trim(k, "abcdefghijklmnopqrstuvwxyz") != "" ||
			v == "" || len(v) > 15 || strings.Trim(v, "0123456789") != "" {
			return "", nil, false
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if _, dup := params[k]; err != nil || dup {
			return "", nil, false
		}
		params[k] = n
	}
	return b.String(), params, true
}

// FuzzSetHeaders: for any name and decision the fields parse as the
// draft's items, name round-trips, and the numbers obey the draft (w at
// least 1, Retry-After at least 1 and equal to t on a refusal).
func FuzzSetHeaders(f *testing.F) {
	f.Add("api", true, 100, 42, int64(17*time.Second), int64(0), int64(time.Minute))
	f.Add(`a"b\c%`, false, 1, 0, int64(time.Hour), int64(time.Millisecond), int64(1500*time.Millisecond))
	f.Add("caf\xc3\xa9\x00\xff", false, -1, -7, int64(-1), int64(-1), int64(0))
	f.Fuzz(func(t *testing.T, name string, allowed bool, limit, remaining int, reset, retry, window int64) {
		d := ratelimit.Decision{Allowed: allowed, Limit: limit, Remaining: remaining,
			Reset: time.Duration(reset), RetryAfter: time.Duration(retry), Window: time.Duration(window)}
		h := http.Header{}
		d.SetHeaders(h, name)
		pol, rl := h.Values("RateLimit-Policy"), h.Values("RateLimit")
		if len(pol) != 1 || len(rl) != 1 {
			t.Fatalf("fields: %v", h)
		}
		pn, pp, ok := parseItem(pol[0])
		if !ok || pn != name || len(pp) != 2 || pp["w"] < 1 || pp["q"] < 0 {
			t.Fatalf("RateLimit-Policy %q (name %q): %q %v %v", pol[0], name, pn, pp, ok)
		}
		rn, rp, ok := parseItem(rl[0])
		if !ok || rn != name || len(rp) != 2 || rp["r"] < 0 || rp["t"] < 0 {
			t.Fatalf("RateLimit %q (name %q): %q %v %v", rl[0], name, rn, rp, ok)
		}
		ra := h.Values("Retry-After")
		if allowed {
			if len(ra) != 0 {
				t.Fatalf("Retry-After %q on an allowed request", ra)
			}
			return
		}
		if len(ra) != 1 {
			t.Fatalf("Retry-After %q on a refusal", ra)
		}
		n, err := strconv.ParseInt(ra[0], 10, 64)
		if err != nil || n < 1 || n != rp["t"] || rp["r"] != 0 {
			t.Fatalf("refusal: Retry-After %q, RateLimit %q", ra[0], rl[0])
		}
	})
}
