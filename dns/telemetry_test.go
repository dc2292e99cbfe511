package dns

import (
	"slices"
	"testing"

	mdns "github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/meridian-lb/meridian/health"
	"github.com/meridian-lb/meridian/routing"
	"github.com/meridian-lb/meridian/telemetry"
)

// TestRegionAnswers: the answer each region gets for each steered record,
// through the steering code a query runs, follows health.
func TestRegionAnswers(t *testing.T) {
	h := newHarness(t, loadConfig(t, "zone.yaml"))
	tab := h.live.Load()
	regions := Regions(tab)
	if !slices.Equal(regions, []string{"eu", "us"}) {
		t.Fatalf("regions %v", regions)
	}
	find := func(views []SteeredView, name, typ string) SteeredView {
		for _, v := range views {
			if v.Name == name && v.Type == typ {
				return v
			}
		}
		t.Fatalf("no steered view for %s %s in %+v", name, typ, views)
		return SteeredView{}
	}
	views := RegionAnswers(tab, tab.Zones[0], regions)
	www := find(views, "www.example.com.", "A")
	if www.Policy != "geo" || len(www.Regions) != 2 {
		t.Fatalf("www %+v", www)
	}
	eu, us := www.Regions[0], www.Regions[1]
	slices.Sort(eu.Answer)
	if eu.Region != "eu" || eu.Pool != "web-eu" || !slices.Equal(eu.Answer, []string{"192.0.2.1", "192.0.2.2"}) || eu.Outcome != "available" {
		t.Errorf("eu gets %+v", eu)
	}
	if us.Region != "us" || us.Pool != "web-us" || len(us.Answer) != 2 {
		t.Errorf("us gets %+v", us)
	}
	// A service whose answer does not depend on location has one row.
	if bg := find(views, "bg.example.com.", "A"); len(bg.Regions) != 1 || bg.Regions[0].Region != "*" {
		t.Errorf("bg %+v", bg)
	}
	// eu's pool drained: eu clients get us.
	h.override("web-eu", "192.0.2.1:80", health.ActionDrain)
	h.override("web-eu", "192.0.2.2:80", health.ActionDrain)
	eu = find(RegionAnswers(tab, tab.Zones[0], regions), "www.example.com.", "A").Regions[0]
	if eu.Pool != "web-us" || len(eu.Answer) != 2 {
		t.Errorf("with web-eu drained, eu gets %+v", eu)
	}
}

// TestQueryTelemetry: answered queries count per zone and owner name, with
// the pool that answered a steered record; names the zone lacks count
// under telemetry.NoRecord.
func TestQueryTelemetry(t *testing.T) {
	cfg := loadConfig(t, "zone.yaml")
	live := &routing.Live{}
	tel := telemetry.New(telemetry.Options{})
	srv := NewServer(Options{Tables: live, Settings: cfg.DNS, Logger: zap.NewNop(), Registerer: prometheus.NewRegistry(), Telemetry: tel})
	tab := compile(t, cfg)
	srv.TableChanged(tab)
	live.Store(tab)
	ask := func(name string, qtype uint16) {
		m := new(mdns.Msg)
		m.SetQuestion(name, qtype)
		srv.serve(discard{}, m, client{})
	}
	for range 3 {
		ask("www.example.com.", mdns.TypeA)
	}
	ask("WWW.Example.com.", mdns.TypeAAAA)
	ask("nope.example.com.", mdns.TypeA)
	ask("api.example.com.", mdns.TypeA) // a CNAME to www
	ask("example.org.", mdns.TypeA)     // not ours: counted by no zone
	st := tel.Stats()
	if len(st.DNS.Zones) != 1 {
		t.Fatalf("zones %+v", st.DNS.Zones)
	}
	z := st.DNS.Zones[0]
	recs := map[string]telemetry.RecordStats{}
	for _, r := range z.Records {
		recs[r.Name] = r
	}
	if z.Name != "example.com." || z.Totals.Queries != 6 {
		t.Errorf("zone %s: %d queries, want 6", z.Name, z.Totals.Queries)
	}
	if w := recs["www.example.com."].Totals; w.Queries != 4 || w.Answers["web-eu"] != 4 {
		t.Errorf("www: %+v", w)
	}
	if n := recs[telemetry.NoRecord].Totals; n.Rcodes["NXDOMAIN"] != 1 {
		t.Errorf("unknown names: %+v", n)
	}
	if a := recs["api.example.com."].Totals; a.Queries != 1 {
		t.Errorf("api: %+v", a)
	}
}

// discard is a response writer that drops what it is given.
type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// BenchmarkServeTelemetry is one query answered and written, without and
// with per-record telemetry: the difference is its cost per query.
func BenchmarkServeTelemetry(b *testing.B) {
	cfg := loadConfig(b, "zone.yaml")
	for _, on := range []bool{false, true} {
		name := "off"
		var tel *telemetry.Telemetry
		if on {
			name, tel = "on", telemetry.New(telemetry.Options{})
		}
		b.Run(name, func(b *testing.B) {
			live := &routing.Live{}
			srv := NewServer(Options{Tables: live, Settings: cfg.DNS, Logger: zap.NewNop(), Telemetry: tel})
			tab := compile(b, cfg)
			srv.TableChanged(tab)
			live.Store(tab)
			m := new(mdns.Msg)
			m.SetQuestion("www.example.com.", mdns.TypeA)
			b.ReportAllocs()
			for b.Loop() {
				srv.serve(discard{}, m, client{})
			}
		})
	}
}
