package dns

import (
	"context"
	"net"
	"testing"

	mdns "github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/meridian-lb/meridian/routing"
)

func TestMetrics(t *testing.T) {
	h := newHarness(t, loadConfig(t, "zone.yaml"))
	h.mustExchange(soaQuery(), "udp", "")
	h.mustExchange(tcase{qname: "nope.example.com.", qtype: mdns.TypeA}.query(t), "tcp", "")
	h.mustExchange(tcase{qname: "example.org.", qtype: mdns.TypeA}.query(t), "udp", "")
	big := new(mdns.Msg)
	big.SetQuestion("big.example.com.", mdns.TypeTXT)
	h.mustExchange(big, "udp", "")
	// A query is counted once its answer is written, so the client can
	// read the answer a moment before the count moves.
	waitFor(t, "four queries counted", func() bool {
		mfs, _ := h.reg.Gather()
		for _, mf := range mfs {
			if mf.GetName() == "meridian_dns_request_duration_seconds" {
				n := uint64(0)
				for _, m := range mf.GetMetric() {
					n += m.GetHistogram().GetSampleCount()
				}
				return n >= 4
			}
		}
		return false
	})
	for _, tt := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"meridian_dns_queries_total", map[string]string{"zone": "example.com.", "qtype": "SOA", "rcode": "NOERROR"}, 1},
		{"meridian_dns_queries_total", map[string]string{"zone": "example.com.", "qtype": "A", "rcode": "NXDOMAIN"}, 1},
		{"meridian_dns_queries_total", map[string]string{"zone": "none", "qtype": "A", "rcode": "REFUSED"}, 1},
		{"meridian_dns_truncated_total", nil, 1},
		{"meridian_dns_zone_serial", map[string]string{"zone": "example.com."}, float64(h.serial())},
	} {
		if got := counterValue(t, h, tt.name, tt.labels); got != tt.want {
			t.Errorf("%s%v = %v, want %v", tt.name, tt.labels, got, tt.want)
		}
	}
	mfs, err := h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "meridian_dns_request_duration_seconds" {
			n := uint64(0)
			for _, m := range mf.GetMetric() {
				n += m.GetHistogram().GetSampleCount()
			}
			if n != 4 {
				t.Errorf("latency histogram has %d samples, want 4", n)
			}
			return
		}
	}
	t.Error("no latency histogram")
}

func TestQueryLog(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	cfg := loadConfig(t, "zone.yaml")
	cfg.DNS.QueryLog = 1
	live := &routing.Live{}
	live.Store(compile(t, cfg))
	s := NewServer(Options{Tables: live, Settings: cfg.DNS, Logger: zap.New(core), Registerer: prometheus.NewRegistry()})
	q := tcase{qname: "www.example.com.", qtype: mdns.TypeA, ecs: "198.51.100.0/24"}.query(t)
	s.ServeDNS(&nullWriter{remote: &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53}}, q)
	entries := logs.FilterMessage("dns query").All()
	if len(entries) != 1 {
		t.Fatalf("%d query log lines, want 1", len(entries))
	}
	f := entries[0].ContextMap()
	if f["qname"] != "www.example.com." || f["region"] != "us" || f["ecs_scope"] != int64(24) || f["rcode"] != "NOERROR" || f["zone"] != "example.com." {
		t.Errorf("query log fields %v", f)
	}
}

func TestTwoServersOneRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	live := &routing.Live{}
	live.Store(compile(t, loadConfig(t, "zone.yaml")))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 2)
	for range 2 {
		s := NewServer(Options{Tables: live, Logger: zap.NewNop(), Registerer: reg})
		ready := make(chan struct{})
		go func() { done <- s.Run(ctx, "127.0.0.1:0", func(_, _ net.Addr) { close(ready) }) }()
		select {
		case <-ready:
		case err := <-done:
			t.Fatal(err)
		}
	}
	cancel()
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

// panicTables makes answering panic, as a bug would.
type panicTables struct{}

func (panicTables) Load() *routing.Table { panic("boom") }

func TestPanicCostsOneQuery(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := NewServer(Options{Tables: panicTables{}, Logger: zap.NewNop(), Registerer: reg})
	w := &nullWriter{remote: &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53}}
	s.ServeDNS(w, soaQuery())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "meridian_dns_panics_total" && mf.GetMetric()[0].GetCounter().GetValue() == 1 {
			return
		}
	}
	t.Fatal("panic not counted")
}
