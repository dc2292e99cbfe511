package catalog

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/meridian-lb/meridian/config"
)

// These tests drive the blocking-query loop with a scripted fetch inside a
// synctest bubble, so timing (rate floor, backoff) is exact and instant.

type fakeCall struct {
	key   Key
	index uint64
	at    time.Duration // since the bubble started
}

type fakeConsul struct {
	start  time.Time
	answer func(ctx context.Context, n int, c fakeCall) (fetchResult, error)

	mu     sync.Mutex
	calls  []fakeCall
	active int
}

func newFake(answer func(ctx context.Context, n int, c fakeCall) (fetchResult, error)) *fakeConsul {
	return &fakeConsul{start: time.Now(), answer: answer}
}

func (f *fakeConsul) fetch(ctx context.Context, k Key, index uint64) (fetchResult, error) {
	f.mu.Lock()
	c := fakeCall{key: k, index: index, at: time.Since(f.start)}
	n := 0
	for _, old := range f.calls {
		if old.key == k {
			n++
		}
	}
	f.calls = append(f.calls, c)
	f.active++
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.active--
		f.mu.Unlock()
	}()
	return f.answer(ctx, n, c)
}

func (f *fakeConsul) snapshot() (calls []fakeCall, active int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls), f.active
}

// block simulates a blocking query that ends after d (or with ctx).
func block(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

func insts(ports ...int) []Instance {
	out := []Instance{}
	for _, p := range ports {
		out = append(out, Instance{ID: "i", Address: "10.0.0.1", Port: p, Weight: 1, Status: StatusPassing})
	}
	return out
}

type harness struct {
	w     *Watcher
	pokes atomic.Int32
	logs  *observer.ObservedLogs
	reg   *prometheus.Registry
	stop  func()
}

// startWatcher runs a watcher over f with exact (maximum) backoff jitter.
func startWatcher(t *testing.T, f *fakeConsul, opts WatcherOptions, keys ...Key) *harness {
	t.Helper()
	h := &harness{reg: prometheus.NewRegistry()}
	core, logs := observer.New(zapcore.DebugLevel)
	h.logs = logs
	opts.Logger = zap.New(core)
	opts.Poke = func() { h.pokes.Add(1) }
	h.w = newWatcher(f.fetch, opts)
	h.w.pace.jitter = func(n int64) int64 { return n - 1 }
	if err := h.w.metric.register(h.reg); err != nil {
		t.Fatal(err)
	}
	h.w.Want(keys)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.w.Run(ctx) }()
	var once sync.Once
	h.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	// A failing test must still stop its loops, or synctest reports a
	// deadlock instead of the failure.
	t.Cleanup(h.stop)
	return h
}

func (h *harness) count(level zapcore.Level, msgPrefix string) int {
	n := 0
	for _, e := range h.logs.All() {
		if e.Level == level && len(e.Message) >= len(msgPrefix) && e.Message[:len(msgPrefix)] == msgPrefix {
			n++
		}
	}
	return n
}

// gauge returns the value of a metric (with the given selection label, if
// any) from the harness registry, and whether it exists.
func gauge(t *testing.T, reg *prometheus.Registry, name, selection string) (float64, bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			sel := ""
			for _, l := range m.GetLabel() {
				if l.GetName() == "selection" {
					sel = l.GetValue()
				}
			}
			if selection != "" && sel != selection {
				continue
			}
			return m.GetGauge().GetValue(), true
		}
	}
	return 0, false
}

func configSel(service string) config.ConsulSelect { return config.ConsulSelect{Service: service} }

var webKey = Key{Service: "web"}

func TestLoopRateFloor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Every answer is new and immediate: a churning service.
		f := newFake(func(ctx context.Context, n int, c fakeCall) (fetchResult, error) {
			return fetchResult{instances: insts(n + 1), index: uint64(n + 1), knownLeader: true}, nil
		})
		h := startWatcher(t, f, WatcherOptions{MinInterval: 100 * time.Millisecond}, webKey)
		time.Sleep(950 * time.Millisecond)
		synctest.Wait()
		calls, _ := f.snapshot()
		h.stop()
		if len(calls) != 10 {
			t.Fatalf("%d calls in 950ms, want 10 (one per 100ms)", len(calls))
		}
		for i := 1; i < len(calls); i++ {
			if gap := calls[i].at - calls[i-1].at; gap != 100*time.Millisecond {
				t.Errorf("gap %d = %v, want 100ms", i, gap)
			}
		}
		if got := h.pokes.Load(); got != 10 {
			t.Errorf("pokes = %d, want 10", got)
		}
	})
}

func TestLoopNoPokeWithoutChange(t *testing.T) {
	tests := []struct {
		name      string
		index     func(n int) uint64
		wantIndex []uint64 // ?index of the first calls
	}{
		{name: "unchanged index (wait timeout)", index: func(int) uint64 { return 5 }, wantIndex: []uint64{0, 5, 5, 5}},
		{name: "new index, same content", index: func(n int) uint64 { return uint64(5 + n) }, wantIndex: []uint64{0, 5, 6, 7}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newFake(func(ctx context.Context, n int, c fakeCall) (fetchResult, error) {
					if n > 0 {
						if err := block(ctx, time.Minute); err != nil {
							return fetchResult{}, err
						}
					}
					return fetchResult{instances: insts(80), index: tc.index(n), knownLeader: true}, nil
				})
				h := startWatcher(t, f, WatcherOptions{}, webKey)
				time.Sleep(3*time.Minute + time.Second)
				synctest.Wait()
				calls, _ := f.snapshot()
				h.stop()
				if got := h.pokes.Load(); got != 1 {
					t.Errorf("pokes = %d, want 1", got)
				}
				var idx []uint64
				for _, c := range calls[:len(tc.wantIndex)] {
					idx = append(idx, c.index)
				}
				if !slices.Equal(idx, tc.wantIndex) {
					t.Errorf("query indexes %v, want %v", idx, tc.wantIndex)
				}
				if inst, ready := h.w.Snapshot().Instances(configSel("web")); !ready || len(inst) != 1 {
					t.Errorf("snapshot: ready=%v %v", ready, inst)
				}
			})
		})
	}
}

func TestLoopIndexReset(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		script := []struct {
			index uint64
			port  int
		}{{10, 80}, {20, 80}, {5, 80}, {6, 81}}
		f := newFake(func(ctx context.Context, n int, c fakeCall) (fetchResult, error) {
			if n >= len(script) {
				<-ctx.Done()
				return fetchResult{}, ctx.Err()
			}
			return fetchResult{instances: insts(script[n].port), index: script[n].index, knownLeader: true}, nil
		})
		h := startWatcher(t, f, WatcherOptions{}, webKey)
		time.Sleep(time.Second)
		synctest.Wait()
		calls, _ := f.snapshot()
		h.stop()
		var idx []uint64
		for _, c := range calls {
			idx = append(idx, c.index)
		}
		if want := []uint64{0, 10, 20, 0, 6}; !slices.Equal(idx, want) {
			t.Errorf("query indexes %v, want %v", idx, want)
		}
		if got := h.pokes.Load(); got != 2 {
			t.Errorf("pokes = %d, want 2 (first answer, then the port change)", got)
		}
		if n := h.count(zapcore.InfoLevel, "Consul index went backwards"); n != 1 {
			t.Errorf("%d index-reset log lines, want 1", n)
		}
		inst, _ := h.w.Snapshot().Instances(configSel("web"))
		if len(inst) != 1 || inst[0].Port != 81 {
			t.Errorf("instances %v", inst)
		}
	})
}

func TestLoopZeroIndexDoesNotSpin(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(func(ctx context.Context, n int, c fakeCall) (fetchResult, error) {
			if c.index > 0 {
				if err := block(ctx, time.Minute); err != nil {
					return fetchResult{}, err
				}
			}
			return fetchResult{instances: insts(80), index: 0, knownLeader: true}, nil
		})
		h := startWatcher(t, f, WatcherOptions{}, webKey)
		time.Sleep(150 * time.Second)
		synctest.Wait()
		calls, _ := f.snapshot()
		h.stop()
		var idx []uint64
		for _, c := range calls {
			idx = append(idx, c.index)
		}
		if want := []uint64{0, 1, 1, 1}; !slices.Equal(idx, want) {
			t.Errorf("query indexes %v, want %v", idx, want)
		}
	})
}

func TestLoopOutageKeepsLastGood(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		errDown := api.StatusError{Code: 500, Body: "rpc error making call: No cluster leader"}
		f := newFake(func(ctx context.Context, n int, c fakeCall) (fetchResult, error) {
			switch {
			case n == 0:
				return fetchResult{instances: insts(80, 81), index: 10, knownLeader: true}, nil
			case n <= 5:
				return fetchResult{}, errDown
			case n == 6:
				return fetchResult{instances: insts(80, 81), index: 10, knownLeader: true}, nil
			default:
				<-ctx.Done()
				return fetchResult{}, ctx.Err()
			}
		})
		start := time.Now()
		h := startWatcher(t, f, WatcherOptions{BackoffBase: time.Second, BackoffMax: 4 * time.Second}, webKey)

		time.Sleep(5 * time.Second)
		synctest.Wait()
		if inst, ready := h.w.Snapshot().Instances(configSel("web")); !ready || len(inst) != 2 {
			t.Errorf("during the outage: ready=%v %d instances, want the last 2", ready, len(inst))
		}
		if v, _ := gauge(t, h.reg, "meridian_consul_up", ""); v != 0 {
			t.Errorf("meridian_consul_up = %v during the outage", v)
		}
		if v, ok := gauge(t, h.reg, "meridian_consul_selection_age_seconds", "web"); !ok || v != 5 {
			t.Errorf("selection age = %v (present %v), want 5", v, ok)
		}
		if v, _ := gauge(t, h.reg, "meridian_consul_last_success_timestamp_seconds", ""); v != float64(start.UnixNano())/1e9 {
			t.Errorf("last success = %v, want %v", v, float64(start.UnixNano())/1e9)
		}
		if st := h.w.Status(); len(st) != 1 || !st[0].Failing || st[0].LastError == "" || !st[0].Ready {
			t.Errorf("status = %+v", st)
		}

		time.Sleep(11 * time.Second) // to t=16s
		synctest.Wait()
		calls, _ := f.snapshot()
		h.stop()

		var at []time.Duration
		for _, c := range calls[:7] {
			at = append(at, c.at)
		}
		ms := time.Millisecond
		// Success at 0, floor 100ms, then backoff 1s, 2s, 4s, 4s (capped), 4s.
		want := []time.Duration{0, 100 * ms, 1100 * ms, 3100 * ms, 7100 * ms, 11100 * ms, 15100 * ms}
		if !slices.Equal(at, want) {
			t.Errorf("call times %v, want %v", at, want)
		}
		if n := h.count(zapcore.WarnLevel, "Consul query failed"); n != 1 {
			t.Errorf("%d outage warnings, want 1", n)
		}
		if n := h.count(zapcore.InfoLevel, "Consul is answering again"); n != 1 {
			t.Errorf("%d recovery lines, want 1", n)
		}
		if v, _ := gauge(t, h.reg, "meridian_consul_up", ""); v != 1 {
			t.Errorf("meridian_consul_up = %v after recovery", v)
		}
		if v, _ := gauge(t, h.reg, "meridian_consul_selection_age_seconds", "web"); v < 0.89 || v > 0.91 {
			t.Errorf("selection age after recovery = %v, want 0.9", v)
		}
		if got := h.pokes.Load(); got != 1 {
			t.Errorf("pokes = %d, want 1 (errors and the unchanged recovery do not poke)", got)
		}
	})
}

func TestLoopEmptyAnswerWithoutLeader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(func(ctx context.Context, n int, c fakeCall) (fetchResult, error) {
			switch n {
			case 0:
				return fetchResult{instances: insts(80), index: 10, knownLeader: true}, nil
			case 1:
				return fetchResult{instances: []Instance{}, index: 11, knownLeader: false}, nil
			case 2:
				return fetchResult{instances: []Instance{}, index: 12, knownLeader: true}, nil
			}
			<-ctx.Done()
			return fetchResult{}, ctx.Err()
		})
		h := startWatcher(t, f, WatcherOptions{BackoffBase: time.Second}, webKey)
		time.Sleep(500 * time.Millisecond)
		synctest.Wait()
		if inst, _ := h.w.Snapshot().Instances(configSel("web")); len(inst) != 1 {
			t.Errorf("leaderless empty answer replaced the data: %v", inst)
		}
		if h.w.Up() {
			t.Error("leaderless empty answer not treated as an outage")
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		h.stop()
		inst, ready := h.w.Snapshot().Instances(configSel("web"))
		if !ready || len(inst) != 0 {
			t.Errorf("empty answer with a leader: ready=%v %v, want ready and empty", ready, inst)
		}
		if got := h.pokes.Load(); got != 2 {
			t.Errorf("pokes = %d, want 2", got)
		}
	})
}

func TestWantStartsAndStopsLoops(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		api1, api2 := Key{Service: "api"}, Key{Service: "db", Tags: "primary"}
		f := newFake(func(ctx context.Context, n int, c fakeCall) (fetchResult, error) {
			if n == 0 && c.key != api2 { // db never answers: stays pending
				return fetchResult{instances: insts(80), index: 3, knownLeader: true}, nil
			}
			<-ctx.Done()
			return fetchResult{}, ctx.Err()
		})
		h := startWatcher(t, f, WatcherOptions{}, webKey, api1)
		time.Sleep(time.Second) // past the 100ms floor: both loops are in their second query
		synctest.Wait()
		if _, active := f.snapshot(); active != 2 {
			t.Fatalf("%d active queries, want 2", active)
		}
		snap := h.w.Snapshot()
		if !snap.Ready(webKey) || !snap.Ready(api1) || len(snap.Pending()) != 0 {
			t.Fatalf("keys=%v pending=%v", snap.Keys(), snap.Pending())
		}

		h.w.Want([]Key{webKey, api2, {Service: ""}}) // drop api, add db; the invalid key is ignored
		synctest.Wait()
		calls, active := f.snapshot()
		if active != 2 {
			t.Errorf("%d active queries after Want, want 2 (web, db)", active)
		}
		snap = h.w.Snapshot()
		if got := snap.Keys(); !slices.Equal(got, []Key{api2, webKey}) {
			t.Errorf("keys = %v", got)
		}
		if got := snap.Pending(); !slices.Equal(got, []string{"db[primary]"}) {
			t.Errorf("pending = %v", got)
		}
		if n := h.count(zapcore.ErrorLevel, "ignoring invalid Consul selection"); n != 1 {
			t.Errorf("%d invalid-selection errors logged, want 1", n)
		}
		pokes := h.pokes.Load()

		h.w.Want(nil)
		synctest.Wait()
		if _, active := f.snapshot(); active != 0 {
			t.Errorf("%d active queries after Want(nil)", active)
		}
		if len(h.w.Snapshot().Keys()) != 0 {
			t.Errorf("snapshot still has %v", h.w.Snapshot().Keys())
		}
		if h.pokes.Load() != pokes {
			t.Error("Want poked")
		}
		h.stop()
		if again, _ := f.snapshot(); len(again) != len(calls) {
			t.Errorf("%d queries after the loops stopped", len(again)-len(calls))
		}
	})
}

func TestWantBeforeRunAndRunTwice(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(func(ctx context.Context, n int, c fakeCall) (fetchResult, error) {
			return fetchResult{instances: insts(80), index: 1, knownLeader: true}, nil
		})
		w := newWatcher(f.fetch, WatcherOptions{})
		w.Want([]Key{webKey})
		synctest.Wait()
		if calls, _ := f.snapshot(); len(calls) != 0 {
			t.Fatalf("%d queries before Run", len(calls))
		}
		if got := w.Snapshot().Pending(); !slices.Equal(got, []string{"web"}) {
			t.Errorf("pending before Run = %v", got)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- w.Run(ctx) }()
		synctest.Wait()
		if err := w.Run(ctx); err == nil {
			t.Error("second Run did not fail")
		}
		if !w.Snapshot().Ready(webKey) {
			t.Error("not ready after Run")
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if !w.Snapshot().Ready(webKey) {
			t.Error("snapshot lost after Run returned")
		}
	})
}

func TestNewWatcherErrors(t *testing.T) {
	if _, err := NewWatcher(nil, WatcherOptions{}); err == nil {
		t.Error("nil client accepted")
	}
	c, err := api.NewClient(&api.Config{Address: "127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	if _, err := NewWatcher(c, WatcherOptions{Registerer: reg}); err != nil {
		t.Fatal(err)
	}
	if _, err := NewWatcher(c, WatcherOptions{Registerer: reg}); err == nil {
		t.Error("duplicate metric registration not reported")
	}
	// Two watchers on separate registries coexist.
	if _, err := NewWatcher(c, WatcherOptions{Registerer: prometheus.NewRegistry()}); err != nil {
		t.Error(err)
	}
}
