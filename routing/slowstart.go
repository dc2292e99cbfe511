package routing

import (
	"math/rand/v2"
	"sync/atomic"

	"github.com/meridian-lb/meridian/config"
	"github.com/meridian-lb/meridian/health"
)

// Slow start: pools.NAME.slow_start ramps the share of an endpoint that
// joins the pool (added after the pool's first table) or comes back
// (health up after down, an outlier ejection's end, an operator's drain or
// down lifted) from a tenth of its weight to all of it over the window:
// while ramping its weight counts as weight × max(10%, elapsed/window), as
// Envoy's slow_start_config with aggression 1.0 and min_weight_percent 10.
// When each endpoint returned is the health engine's to say
// (health.Member.ReturnedAt): the stamps live in the members, which
// survive reloads, so a reload neither restarts nor ends a ramp, and a
// pool's first table (a fresh start) ramps nobody.
//
// The balancer is not rebuilt as weights change. A pick takes the pool's
// own balancer's choice and, while any eligible endpoint ramps, thins it:
// an endpoint at factor f is kept with probability f/top (top: the largest
// factor among the eligible endpoints), else the balancer picks again.
// Each new pick takes a fresh draw (round robin: the next schedule slot),
// so over many picks every endpoint's share is proportional to weight ×
// factor: rejection sampling over the balancer's own order. Round robin's
// order stays smooth outside ramps, where nothing is thinned.
//
// Cost: a pool without slow_start has no slowStart and pays one nil check
// per pick; one with slow_start whose endpoints are past their windows
// pays two atomic loads (the pool's latest return, and the return a pick
// last found settled). Only while an endpoint ramps does a pick read the
// clock, look at every endpoint (for top), and draw again now and then.
//
// Where Meridian differs from Envoy: random pools ramp too (Envoy: round
// robin and least request); the window runs from when the endpoint became
// available (a return after an outage, a drain or an ejection counts like
// a new endpoint), and the endpoints of a pool's first table never ramp;
// least_request compares in-flight counts by the configured weights and
// thins the winner, rather than feeding ramped weights into its
// comparison; ring_hash and maglev refuse slow_start (a validation error),
// as Envoy does not offer it there. DNS answers are not ramped.

// Ramp parameters: Envoy's defaults.
const (
	rampMin   = 100  // min_weight_percent 10, in thousandths
	rampFull  = 1000 // a factor of 1
	rampTries = 64   // picks before the last one is kept regardless
)

// slowStart is a pool's slow-start ramp.
type slowStart struct {
	window int64        // nanoseconds
	now    func() int64 // health.Nanotime; tests set their own clock
	// settled is the pool's latest return (PoolReturnedAt) once a pick
	// found its window over: until another return, picks skip the clock.
	settled atomic.Int64
}

// newSlowStart checks that the pool's balancer can ramp and builds its
// ramp; nil when the pool has no slow_start.
func newSlowStart(p *Pool) (*slowStart, error) {
	if p.SlowStart <= 0 {
		return nil, nil
	}
	switch p.Balance {
	case config.BalanceRoundRobin, config.BalanceLeastRequest, config.BalanceRandom, "":
	default:
		return nil, config.Problem{Path: "pools." + p.Name + ".slow_start", Msg: "slow_start needs round_robin, least_request or random"}
	}
	return &slowStart{window: int64(p.SlowStart), now: health.Nanotime}, nil
}

// pick is Pool.Pick for a pool with slow_start.
func (s *slowStart) pick(p *Pool, k pickKey) *Endpoint {
	h := p.Endpoints[0].Health
	if h == nil {
		return p.picker.pick(p, k)
	}
	last := h.PoolReturnedAt()
	if last == 0 || last == s.settled.Load() {
		return p.picker.pick(p, k)
	}
	now := s.now()
	if now-last >= s.window {
		s.settled.Store(last)
		return p.picker.pick(p, k)
	}
	return s.ramp(p, k, now)
}

// ramp picks while an endpoint of the pool may be ramping.
func (s *slowStart) ramp(p *Pool, k pickKey, now int64) *Endpoint {
	top := int64(0)
	for _, e := range p.Endpoints {
		if k.eligible(e) {
			top = max(top, s.factor(e, now))
		}
	}
	e := p.picker.pick(p, k)
	if top == 0 {
		return e
	}
	for range rampTries {
		if e == nil {
			return nil
		}
		f := s.factor(e, now)
		if f >= top || rand.Int64N(top) < f {
			return e
		}
		e = p.picker.pick(p, k)
	}
	return e
}

// factor is e's weight factor at now, in thousandths.
func (s *slowStart) factor(e *Endpoint, now int64) int64 {
	if e.Health == nil {
		return rampFull
	}
	r := e.Health.ReturnedAt()
	if r == 0 {
		return rampFull
	}
	el := now - r
	if el >= s.window {
		return rampFull
	}
	return max(rampMin, int64(float64(max(el, 0))/float64(s.window)*rampFull))
}
