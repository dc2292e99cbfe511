package health

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meridian-lb/meridian/config"
)

// delayProber answers every probe after its current delay.
type delayProber struct{ delay atomic.Int64 }

func (p *delayProber) Probe(ctx context.Context, _ Target) error {
	d := time.Duration(p.delay.Load())
	if d == 0 {
		return nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// workers counts the running engine's workers, busy ones and all.
func (e *Engine) workers() (busy, all int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.run == nil {
		return 0, 0
	}
	return len(e.run.all) - len(e.run.idle), len(e.run.all)
}

// TestWorkersGrowAndShrink: slow probes get as many workers as they need,
// up to MaxInFlight; once probes are quick again, the extra workers exit.
func TestWorkersGrowAndShrink(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := &delayProber{}
		p.delay.Store(int64(500 * time.Millisecond))
		e := New(Options{Prober: p, MaxInFlight: 32, Registerer: prometheus.NewRegistry()})
		c := &config.Check{Type: "tcp", Interval: config.Duration(time.Second), Timeout: config.Duration(900 * time.Millisecond), Rise: 1, Fall: 1}
		var eps []string
		for i := range 100 {
			eps = append(eps, fmt.Sprintf("10.0.0.%d:80", i+1))
		}
		e.Sync([]PoolSpec{{Name: "web", CheckName: "c", Check: c, Endpoints: eps}})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- e.Run(ctx) }()
		defer func() {
			cancel()
			<-done
			if _, all := e.workers(); all != 0 {
				t.Errorf("%d workers left after Run returned", all)
			}
		}()

		time.Sleep(3 * time.Second)
		if busy, all := e.workers(); all != 32 || busy != 32 {
			t.Fatalf("100 probes of 0.5s a second: %d workers (%d busy), want all 32 busy", all, busy)
		}
		p.delay.Store(0)
		time.Sleep(2*trimPeriod + time.Second)
		if _, all := e.workers(); all > 1 {
			t.Fatalf("with instant probes: %d workers left, want at most 1", all)
		}
	})
}
