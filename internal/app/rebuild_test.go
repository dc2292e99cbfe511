package app

import (
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap/zaptest"

	"github.com/meridian-lb/meridian/config"
	"github.com/meridian-lb/meridian/routing"
)

// scriptedSource returns its contents in order, repeating the last.
type scriptedSource struct {
	mu    sync.Mutex
	reads [][]byte
}

func (s *scriptedSource) Read() ([]byte, os.FileInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.reads[0]
	if len(s.reads) > 1 {
		s.reads = s.reads[1:]
	}
	return b, nil, nil
}

func (s *scriptedSource) Name() string { return "scripted.yaml" }

func (s *scriptedSource) set(reads ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reads = nil
	for _, r := range reads {
		s.reads = append(s.reads, []byte(r))
	}
}

func newTestRebuilder(t *testing.T, src source, settle time.Duration) (*rebuilder, *routing.Live) {
	live := &routing.Live{}
	r := newRebuilder(src, zaptest.NewLogger(t), prometheus.NewRegistry(), live)
	r.compile = func(cfg *config.Config) (*routing.Table, error) { return routing.Compile(cfg, routing.Inputs{}) }
	r.apply = func(*config.Config, *routing.Table) {}
	r.settle = settle
	return r, live
}

// TestRebuildSettle checks that a file caught half-written is read again
// rather than reported, and that one which stays bad is reported once it
// has settled.
func TestRebuildSettle(t *testing.T) {
	full := configText(2)
	half := full[:strings.Index(full, "routes:")+len("routes:\n  - {name: r2, ma")]
	tests := []struct {
		name      string
		reads     []string
		settle    time.Duration
		wantRoute string
		wantFails float64
	}{
		{"half then whole", []string{half, full}, time.Minute, "r2", 0},
		{"stays bad", []string{half}, 30 * time.Millisecond, "r1", 1},
		{"no settle", []string{half, full}, 0, "r1", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := &scriptedSource{}
			src.set(configText(1))
			r, live := newTestRebuilder(t, src, tt.settle)
			if err := r.rebuild(); err != nil {
				t.Fatal(err)
			}
			src.set(tt.reads...)
			r.rebuild()
			if got := live.Load().Routes[0].Name; got != tt.wantRoute {
				t.Errorf("live route %s, want %s", got, tt.wantRoute)
			}
			var m dto.Metric
			if err := r.reloads.WithLabelValues("failure").Write(&m); err != nil {
				t.Fatal(err)
			}
			if got := m.GetCounter().GetValue(); got != tt.wantFails {
				t.Errorf("failed reloads %v, want %v", got, tt.wantFails)
			}
		})
	}
}

// flakySource reads as its content, or fails with err when err is set.
type flakySource struct {
	data []byte
	err  error
}

func (s *flakySource) Read() ([]byte, os.FileInfo, error) {
	if s.err != nil {
		return nil, nil, s.err
	}
	return s.data, nil, nil
}

func (s *flakySource) Name() string { return "flaky.yaml" }

// TestRebuildReadErrorReportedOnce: a source that cannot be read (a file
// over the size cap, a missing file) is reported once however often the
// loop is poked, the live config keeps following the other inputs, and the
// next good read, even of the same bytes, counts as a successful reload.
func TestRebuildReadErrorReportedOnce(t *testing.T) {
	src := &flakySource{data: []byte(configText(1))}
	r, live := newTestRebuilder(t, src, 0)
	compiles := 0
	r.compile = func(cfg *config.Config) (*routing.Table, error) {
		compiles++
		return routing.Compile(cfg, routing.Inputs{})
	}
	if err := r.rebuild(); err != nil {
		t.Fatal(err)
	}
	counter := func(result string) float64 {
		var m dto.Metric
		if err := r.reloads.WithLabelValues(result).Write(&m); err != nil {
			t.Fatal(err)
		}
		return m.GetCounter().GetValue()
	}
	src.err = errors.New("config file flaky.yaml is 52428800 bytes, over the 16 MiB limit")
	if err := r.rebuild(); err == nil {
		t.Fatal("the read error was not returned")
	}
	before := compiles
	for range 3 {
		if err := r.rebuild(); err != nil {
			t.Errorf("the same read error reported again: %v", err)
		}
	}
	if got := counter("failure"); got != 1 {
		t.Errorf("failed reloads = %v, want 1", got)
	}
	if compiles == before {
		t.Error("the live config was not recompiled while the file was unreadable")
	}
	if r.Status().OK {
		t.Error("status OK while the file is unreadable")
	}
	src.err = nil
	if err := r.rebuild(); err != nil {
		t.Fatal(err)
	}
	if !r.Status().OK || counter("success") != 2 || live.Load().Routes[0].Name != "r1" {
		t.Errorf("after the file came back: status %+v, successes %v", r.Status(), counter("success"))
	}
}
