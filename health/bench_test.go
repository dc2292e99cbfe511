package health_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strings"
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
// seconds and reports this process's CPU time per wall second — the
// prober's alone: the listeners run in a helper process
// (TestProbeTargetsHelper), as the servers a proxy checks are not the
// proxy — the heap in use, and the probe rate. Run it with -benchtime=1x.
func BenchmarkProbe5000TCP(b *testing.B) { benchProbe5000(b, "tcp", false) }

// BenchmarkProbe5000HTTP is BenchmarkProbe5000TCP with HTTP checks
// (GET /healthz, 200 expected) against minimal HTTP/1.1 servers that keep
// connections open, as most do: each target's connection is kept between
// probes, the prober's default.
func BenchmarkProbe5000HTTP(b *testing.B) { benchProbe5000(b, "http", false) }

// BenchmarkProbe5000HTTPFresh is BenchmarkProbe5000HTTP with
// NetProber.FreshConnections: a connection per probe, closed after, as
// HAProxy's checks do.
func BenchmarkProbe5000HTTPFresh(b *testing.B) { benchProbe5000(b, "http", true) }

// TestProbeTargetsHelper is the listeners' process of the probe
// benchmarks: with MERIDIAN_PROBE_TARGETS set (tcp or http) it listens on
// 127.0.0.1 to 127.0.0.100, prints the addresses on one line, answers until
// its standard input closes, and exits. The http servers answer 200 "ok"
// and keep the connection unless the request asks to close it (HTTP/1.0,
// as HAProxy's checks send, or Connection: close).
func TestProbeTargetsHelper(t *testing.T) {
	kind := os.Getenv("MERIDIAN_PROBE_TARGETS")
	if kind == "" {
		t.Skip("the probe benchmarks' helper process")
	}
	var addrs []string
	for i := range 100 {
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.%d:0", i+1))
		if err != nil {
			fmt.Println("error", err)
			return
		}
		addrs = append(addrs, ln.Addr().String())
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				if kind == "tcp" {
					c.Close()
					continue
				}
				go func() {
					defer c.Close()
					br := bufio.NewReader(c)
					for {
						c.SetDeadline(time.Now().Add(5 * time.Second))
						req, err := http.ReadRequest(br)
						if err != nil {
							return
						}
						if req.Close {
							io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
							return
						}
						io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
					}
				}()
			}
		}()
	}
	fmt.Println(strings.Join(addrs, " "))
	io.Copy(io.Discard, os.Stdin)
}

func benchProbe5000(b *testing.B, kind string, fresh bool) {
	const (
		checks = 50
		warmup = 2 * time.Second
		window = 5 * time.Second
	)
	cmd := exec.Command(os.Args[0], "-test.run=^TestProbeTargetsHelper$")
	cmd.Env = append(os.Environ(), "MERIDIAN_PROBE_TARGETS="+kind)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		stdin.Close()
		cmd.Wait()
	}()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || strings.HasPrefix(line, "error") {
		b.Skipf("helper: %q %v", line, err)
	}
	eps := strings.Fields(line)
	var pools []health.PoolSpec
	for i := range checks {
		c := &config.Check{Type: config.CheckType(kind), Interval: config.Duration(time.Second), Timeout: config.Duration(500 * time.Millisecond),
			Jitter: 0.1, Rise: 2, Fall: 2, Initial: "down"}
		if kind == "http" {
			c.Path = "/healthz"
		}
		c.SetDefaults()
		pools = append(pools, health.PoolSpec{Name: fmt.Sprintf("pool-%d", i), CheckName: fmt.Sprintf("%s-%d", kind, i), Check: c, Endpoints: eps})
	}
	reg := prometheus.NewRegistry()
	e := health.New(health.Options{Registerer: reg, Prober: &health.NetProber{FreshConnections: fresh}})
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
