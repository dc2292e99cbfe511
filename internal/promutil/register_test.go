package promutil

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestRegisterShares(t *testing.T) {
	reg := prometheus.NewRegistry()
	newC := func() *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: "meridian_test_total", Help: "h"}, []string{"x"})
	}
	a, err := Register(reg, newC())
	if err != nil {
		t.Fatal(err)
	}
	b, err := Register(reg, newC())
	if err != nil || a != b {
		t.Fatalf("second Register = %p, %v; want the first collector %p", b, err, a)
	}
	clash := prometheus.NewGauge(prometheus.GaugeOpts{Name: "meridian_test_total", Help: "other"})
	if _, err := Register(reg, clash); err == nil {
		t.Error("a clashing metric registered without an error")
	}
	if c, err := Register[prometheus.Collector](nil, clash); err != nil || c != clash {
		t.Error("nil registry must be a no-op")
	}
}
