package ratelimit_test

import (
	"math"
	"math/big"
	"testing"
	"time"

	"github.com/meridian-lb/meridian/policy/ratelimit"
)

// model is the token bucket in exact rationals, the definition the
// Limiter's integer arithmetic must match to the ns.
type model struct {
	spec   ratelimit.Spec
	tokens *big.Rat
	last   int64
	seen   bool
}

func (m *model) take(t int64, div int) ratelimit.Decision {
	div = max(div, 1)
	rate := int64(max(m.spec.Requests/div, 1))
	burst := big.NewRat(int64(max(m.spec.Burst/div, 1)), 1)
	per := int64(m.spec.Per)
	if !m.seen {
		m.seen, m.last, m.tokens = true, t, new(big.Rat).Set(burst)
	}
	if t > m.last {
		earned := new(big.Rat).SetFrac(new(big.Int).Mul(big.NewInt(t-m.last), big.NewInt(rate)), big.NewInt(per))
		m.tokens.Add(m.tokens, earned)
		m.last = t
	}
	if m.tokens.Cmp(burst) > 0 {
		m.tokens.Set(burst)
	}
	one := big.NewRat(1, 1)
	d := ratelimit.Decision{Limit: int(rate), Window: m.spec.Per}
	if m.tokens.Cmp(one) >= 0 {
		d.Allowed = true
		m.tokens.Sub(m.tokens, one)
	} else {
		d.RetryAfter = ceilNs(new(big.Rat).Sub(one, m.tokens), per, rate)
	}
	d.Remaining = int(new(big.Int).Quo(m.tokens.Num(), m.tokens.Denom()).Int64())
	d.Reset = ceilNs(new(big.Rat).Sub(burst, m.tokens), per, rate)
	return d
}

// ceilNs is ceil(tokens*per/rate) ns, saturated.
func ceilNs(tokens *big.Rat, per, rate int64) time.Duration {
	x := new(big.Rat).Mul(tokens, big.NewRat(per, rate))
	q, r := new(big.Int).QuoRem(x.Num(), x.Denom(), new(big.Int))
	if r.Sign() > 0 {
		q.Add(q, big.NewInt(1))
	}
	if !q.IsInt64() {
		return math.MaxInt64
	}
	return time.Duration(q.Int64())
}

// FuzzTake drives one key through a sequence of (time step, divisor)
// pairs and compares every Decision with the rational model.
func FuzzTake(f *testing.F) {
	f.Add(uint32(3), uint32(1000), uint16(3), []byte{0, 1, 0, 1, 0, 1, 0, 1, 200, 1, 7, 3, 255, 0})
	f.Add(uint32(100), uint32(60000), uint16(100), []byte{1, 1, 2, 2, 3, 3, 4, 4})
	f.Add(uint32(7), uint32(1), uint16(1), []byte{9, 0, 9, 0})
	f.Add(uint32(math.MaxUint32), uint32(math.MaxUint32), uint16(math.MaxUint16), []byte{255, 255, 0, 255})
	f.Fuzz(func(t *testing.T, requests, perMs uint32, burst uint16, steps []byte) {
		spec := ratelimit.Spec{Requests: int(max(requests, 1)), Per: time.Duration(max(perMs, 1)) * time.Millisecond,
			Burst: int(max(burst, 1)), MaxKeys: 1}
		if len(steps) > 512 { // long runs add time, not cases
			steps = steps[:512]
		}
		l := ratelimit.New(spec)
		m := &model{spec: spec}
		var now int64
		for i := 0; i+1 < len(steps); i += 2 {
			// Steps of 0 to 255 × 7.919ms (a prime number of µs: no
			// whole number of tokens); divisors -1 to 6.
			now += int64(steps[i]) * 7919 * int64(time.Microsecond)
			div := int(steps[i+1]%8) - 1
			got, want := l.Take("k", at(now), div), m.take(now, div)
			if got != want {
				t.Fatalf("step %d (t=%v div=%d): got %+v, want %+v", i/2, time.Duration(now), div, got, want)
			}
			if got.Remaining > max(spec.Burst/max(div, 1), 1) {
				t.Fatalf("step %d: remaining %d over the burst", i/2, got.Remaining)
			}
		}
	})
}
