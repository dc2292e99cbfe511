package health_test

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meridian-lb/meridian/config"
	"github.com/meridian-lb/meridian/health"
)

// benchMember returns a member of an engine that is not running (nothing
// else touches it).
func benchMember(b *testing.B) *health.Member {
	b.Helper()
	e := health.New(health.Options{Registerer: prometheus.NewRegistry()})
	o := &config.Outlier{ConsecutiveFailures: 5, Ejection: config.Duration(time.Second), MaxEjectedPercent: 50}
	o.SetDefaults()
	e.Sync([]health.PoolSpec{{
		Name:      "web",
		Outlier:   o,
		Endpoints: []string{"10.0.0.1:80", "10.0.0.2:80"},
	}})
	return e.Member("web", "10.0.0.1:80")
}

func BenchmarkAvailable(b *testing.B) {
	m := benchMember(b)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if !m.Available() {
				b.Error("not available")
			}
		}
	})
}

func BenchmarkReportSuccess(b *testing.B) {
	m := benchMember(b)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.Report(health.Success)
		}
	})
}

// BenchmarkProbe5000TCP probes 5,000 distinct TCP targets (100 loopback
// listeners on 127.0.0.1-100 × 50 check definitions) every second for a few
// seconds and reports the process's CPU time per wall second (including the
// listeners' accepts, which run in this process too), the heap in use, and
// the probe rate. Run it with -benchtime=1x.
func BenchmarkProbe5000TCP(b *testing.B) {
	const (
		listeners = 100
		checks    = 50
		warmup    = 2 * time.Second
		window    = 5 * time.Second
	)
	var eps []string
	for i := range listeners {
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.%d:0", i+1))
		if err != nil {
			b.Skipf("cannot listen on 127.0.0.%d: %v", i+1, err)
		}
		b.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
		eps = append(eps, ln.Addr().String())
	}
	var pools []health.PoolSpec
	for i := range checks {
		c := &config.Check{Type: "tcp", Interval: config.Duration(time.Second), Timeout: config.Duration(500 * time.Millisecond),
			Jitter: 0.1, Rise: 2, Fall: 2, Initial: "down"}
		pools = append(pools, health.PoolSpec{Name: fmt.Sprintf("pool-%d", i), CheckName: fmt.Sprintf("tcp-%d", i), Check: c, Endpoints: eps})
	}
	reg := prometheus.NewRegistry()
	e := health.New(health.Options{Registerer: reg})
	e.Sync(pools)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()

	probes := func() (ok, failed float64) {
		mfs, err := reg.Gather()
		if err != nil {
			b.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != "meridian_health_probes_total" {
				continue
			}
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "result" && l.GetValue() == "success" {
						ok += m.GetCounter().GetValue()
					} else if l.GetName() == "result" {
						failed += m.GetCounter().GetValue()
					}
				}
			}
		}
		return ok, failed
	}
	cpu := func() time.Duration {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			b.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}

	time.Sleep(warmup)
	b.ResetTimer()
	ok0, failed0 := probes()
	cpu0, t0 := cpu(), time.Now()
	time.Sleep(window)
	ok1, failed1 := probes()
	cpu1, elapsed := cpu(), time.Since(t0)
	b.StopTimer()

	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	up, logged := 0, false
	for _, s := range e.Snapshot() {
		switch {
		case s.Available:
			up++
		case !logged:
			b.Logf("down, for example %s/%s: %s", s.Pool, s.Address, s.Reason)
			logged = true
		}
	}
	b.ReportMetric(float64(cpu1-cpu0)/float64(time.Millisecond)/elapsed.Seconds(), "cpu-ms/s")
	b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap-inuse-MiB")
	b.ReportMetric(float64(ms.HeapAlloc)/(1<<20), "heap-live-MiB")
	b.ReportMetric((ok1-ok0+failed1-failed0)/elapsed.Seconds(), "probes/s")
	b.ReportMetric(failed1-failed0, "failed-probes")
	b.ReportMetric(float64(runtime.NumGoroutine()), "goroutines")
	// On a loaded machine probes can time out; that is reported, not failed.
	b.ReportMetric(float64(up), "members-up")
}
