package proxy

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meridian-lb/meridian/config"
	"github.com/meridian-lb/meridian/internal/configtest"
	"github.com/meridian-lb/meridian/routing"
	"github.com/meridian-lb/meridian/telemetry"
)

// BenchmarkCompileInstall10000Routes is the proxy's share of a reload of
// the 10,000-route benchmark config (configtest.Big): Handler.Compile,
// then Install, alternating two tables whose routes keep their names, as
// a reload that edits the routes does. It reports the two apart.
func BenchmarkCompileInstall10000Routes(b *testing.B) {
	var tables [2]*routing.Table
	for i := range tables {
		cfg, err := config.Parse("big.yaml", []byte(configtest.Big(10000, i, "")))
		if err != nil {
			b.Fatal(err)
		}
		if tables[i], err = routing.Compile(cfg, routing.Inputs{}); err != nil {
			b.Fatal(err)
		}
	}
	h := NewHandler(Options{Registerer: prometheus.NewRegistry(), Telemetry: telemetry.New(telemetry.Options{})})
	h.Install(h.Compile(tables[1]))
	var compile, install time.Duration
	n := 0
	for b.Loop() {
		t0 := time.Now()
		c := h.Compile(tables[n%2])
		t1 := time.Now()
		h.Install(c)
		install += time.Since(t1)
		compile += t1.Sub(t0)
		n++
	}
	b.ReportMetric(float64(compile.Microseconds())/1000/float64(n), "compile-ms")
	b.ReportMetric(float64(install.Microseconds())/1000/float64(n), "install-ms")
}
