package health_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"

	"github.com/meridian-lb/meridian/config"
	"github.com/meridian-lb/meridian/health"
	"github.com/meridian-lb/meridian/health/healthtest"
)

var errProbe = errors.New("probe failed")

// tcpCheck is a check with no jitter, so probe times are exact under synctest.
func tcpCheck(interval time.Duration, rise, fall int, initial string) *config.Check {
	return &config.Check{
		Type:     "tcp",
		Interval: config.Duration(interval),
		Timeout:  config.Duration(interval / 2),
		Rise:     rise,
		Fall:     fall,
		Initial:  initial,
	}
}

// rig is an engine with a fake prober, running until stop is called.
type rig struct {
	e       *health.Engine
	p       *healthtest.Prober
	reg     *prometheus.Registry
	changes chan struct{}
	stop    func()
	stopped bool
}

// newRig starts an engine. Inside a synctest bubble it must be called from
// the bubble, and stop must be called before the bubble's function returns.
func newRig(t *testing.T, opts health.Options) *rig {
	t.Helper()
	r := &rig{p: healthtest.NewProber(), reg: prometheus.NewRegistry(), changes: make(chan struct{}, 1000)}
	if opts.Prober == nil {
		opts.Prober = r.p
	}
	opts.Logger = zaptest.NewLogger(t)
	opts.Registerer = r.reg
	opts.OnChange = func() {
		select {
		case r.changes <- struct{}{}:
		default:
		}
	}
	r.e = health.New(opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.e.Run(ctx) }()
	r.stop = func() {
		t.Helper()
		if r.stopped {
			return
		}
		r.stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run returned %v", err)
		}
	}
	return r
}

// member fetches a member that must exist.
func (r *rig) member(t *testing.T, pool, addr string) *health.Member {
	t.Helper()
	m := r.e.Member(pool, addr)
	if m == nil {
		t.Fatalf("member %s/%s missing", pool, addr)
	}
	return m
}

// status fetches a member's status that must exist.
func (r *rig) status(t *testing.T, pool, addr string) health.Status {
	t.Helper()
	s, ok := r.e.Status(pool, addr)
	if !ok {
		t.Fatalf("status %s/%s missing", pool, addr)
	}
	return s
}

// drainChanges counts and clears the OnChange calls so far.
func (r *rig) drainChanges() int {
	n := 0
	for {
		select {
		case <-r.changes:
			n++
		default:
			return n
		}
	}
}

// metric returns the value of the series of name whose labels include want,
// and whether it exists.
func metric(t *testing.T, reg *prometheus.Registry, name string, want map[string]string) (float64, bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, lp := range m.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			for k, v := range want {
				if got[k] != v {
					continue series
				}
			}
			if g := m.GetGauge(); g != nil {
				return g.GetValue(), true
			}
			return m.GetCounter().GetValue(), true
		}
	}
	return 0, false
}
