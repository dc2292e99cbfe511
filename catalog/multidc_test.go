package catalog

import (
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"

	"github.com/meridian-lb/meridian/catalog/consultest"
	"github.com/meridian-lb/meridian/config"
)

// TestDatacenterOrder checks prepared-query order: the selection's own
// datacenter, then nearest N (by distance, the own one skipped), then the
// fixed list, each once; the local datacenter named in a list is the own
// key when the selection names none.
func TestDatacenterOrder(t *testing.T) {
	v := dcView{local: "dc1", nearest: []string{"dc3", "dc2", "dc4"}}
	for _, tc := range []struct {
		sel  config.ConsulSelect
		want []string
	}{
		{config.ConsulSelect{Datacenters: []string{"dc1", "dc2", "dc3"}}, []string{"", "dc2", "dc3"}},
		{config.ConsulSelect{Datacenter: "dc2", Datacenters: []string{"dc1", "dc2"}}, []string{"dc2", "dc1"}},
		{config.ConsulSelect{Failover: &config.ConsulFailover{Nearest: 2}}, []string{"", "dc3", "dc2"}},
		{config.ConsulSelect{Failover: &config.ConsulFailover{Nearest: 1, Datacenters: []string{"dc3", "dc4"}}}, []string{"", "dc3", "dc4"}},
		{config.ConsulSelect{Datacenter: "dc3", Failover: &config.ConsulFailover{Nearest: 2}}, []string{"dc3", "dc2", "dc4"}},
	} {
		if got := v.order(tc.sel); !slices.Equal(got, tc.want) {
			t.Errorf("order(%+v) = %q, want %q", tc.sel, got, tc.want)
		}
	}
}

// TestByDistance orders datacenters by the median RTT of their servers'
// coordinates to the local ones.
func TestByDistance(t *testing.T) {
	srv := consultest.New(t, consultest.Options{})
	srv.SetDatacenterRTT("far", 300*time.Millisecond)
	srv.SetDatacenterRTT("near", 20*time.Millisecond)
	srv.SetDatacenterRTT("mid", 80*time.Millisecond)
	v, err := consulDatacenters(testClient(t, srv, nil), "")(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if v.local != "dc1" || !slices.Equal(v.nearest, []string{"near", "mid", "far"}) {
		t.Fatalf("view %+v", v)
	}
}

// TestMultiDCFailover runs a watcher on a selection spanning three
// datacenters: the local one serves while it has a passing instance; when
// it has none, the next in order does; when that datacenter stops
// answering, its last instances keep serving, flagged stale (status,
// metric, one log line), and recover when it answers again.
func TestMultiDCFailover(t *testing.T) {
	srv := consultest.New(t, consultest.Options{})
	srv.AddInstance(consultest.Instance{ID: "l1", Service: "web", Address: "10.0.1.1", Port: 80})
	srv.AddInstance(consultest.Instance{ID: "r2", Service: "web", Address: "10.0.2.1", Port: 80, Datacenter: "dc2"})
	srv.AddInstance(consultest.Instance{ID: "r3", Service: "web", Address: "10.0.3.1", Port: 80, Datacenter: "dc3", Meta: map[string]string{MetaRegion: "ap"}})
	opts := fastOptions()
	opts.Datacenter = "dc1"
	r := runWatcher(t, testClient(t, srv, nil), opts)
	sel := config.ConsulSelect{Service: "web", Health: "passing", Datacenters: []string{"dc2", "dc3"}}
	r.w.WantSelections([]config.ConsulSelect{sel})
	endpoints := func() string {
		in, ready := r.w.Snapshot().Instances(sel)
		if !ready {
			return "pending"
		}
		var out []string
		for _, i := range in {
			out = append(out, i.Endpoint()+"@"+i.Datacenter+"/"+i.Region)
		}
		return strings.Join(out, ",")
	}
	waitFor(t, "the local datacenter", func() bool { return endpoints() == "10.0.1.1:80@dc1/dc1" })
	if n := len(r.w.Status()); n != 3 {
		t.Fatalf("%d keys watched, want one per datacenter", n)
	}
	srv.SetStatus("l1", "critical")
	waitFor(t, "failover to dc2", func() bool { return endpoints() == "10.0.2.1:80@dc2/dc2" })
	srv.SetStatus("r2", "critical")
	waitFor(t, "failover to dc3", func() bool { return endpoints() == "10.0.3.1:80@dc3/ap" })
	srv.SetStatus("r2", "passing")
	waitFor(t, "back to dc2", func() bool { return endpoints() == "10.0.2.1:80@dc2/dc2" })

	srv.StopDatacenter("dc2")
	waitFor(t, "dc2 stale", func() bool { return slices.Equal(r.w.StaleDatacenters(), []string{"dc2"}) })
	if got := endpoints(); got != "10.0.2.1:80@dc2/dc2" {
		t.Fatalf("a datacenter that stopped answering lost its endpoints: %s", got)
	}
	if v := dcGauge(t, r, "dc2"); v != 1 {
		t.Errorf("meridian_consul_datacenter_stale{dc2} = %v", v)
	}
	if n := countLogs(r.logs, zapcore.WarnLevel, "Consul datacenter stopped answering"); n != 1 {
		t.Errorf("%d outage lines for dc2, want 1:\n%s", n, renderLogs(r.logs))
	}
	srv.StartDatacenter("dc2")
	waitFor(t, "dc2 fresh", func() bool { return len(r.w.StaleDatacenters()) == 0 })
	if n := countLogs(r.logs, zapcore.InfoLevel, "Consul datacenter is answering again"); n != 1 {
		t.Errorf("%d recovery lines, want 1", n)
	}
}

// TestNearestFollowsCoordinates checks failover.nearest: the keys follow
// the coordinates, and a change of distances re-orders them.
func TestNearestFollowsCoordinates(t *testing.T) {
	srv := consultest.New(t, consultest.Options{})
	srv.AddInstance(consultest.Instance{ID: "a", Service: "web", Address: "10.0.2.1", Port: 80, Datacenter: "dc2"})
	srv.AddInstance(consultest.Instance{ID: "b", Service: "web", Address: "10.0.3.1", Port: 80, Datacenter: "dc3"})
	srv.SetDatacenterRTT("dc2", 100*time.Millisecond)
	srv.SetDatacenterRTT("dc3", 10*time.Millisecond)
	opts := fastOptions()
	opts.CoordinateInterval = 50 * time.Millisecond
	r := runWatcher(t, testClient(t, srv, nil), opts)
	sel := config.ConsulSelect{Service: "web", Health: "passing", Failover: &config.ConsulFailover{Nearest: 1}}
	r.w.WantSelections([]config.ConsulSelect{sel})
	first := func() string {
		in, _ := r.w.Snapshot().Instances(sel)
		if len(in) == 0 {
			return ""
		}
		return in[0].Datacenter
	}
	waitFor(t, "the nearest, dc3", func() bool { return first() == "dc3" })
	srv.SetDatacenterRTT("dc3", 500*time.Millisecond)
	waitFor(t, "dc2 once nearer", func() bool { return first() == "dc2" })
	if got := r.w.Snapshot().Datacenters(sel); !slices.Equal(got, []string{"", "dc2"}) {
		t.Errorf("datacenters %q", got)
	}
}

// dcGauge reads meridian_consul_datacenter_stale{datacenter=dc}.
func dcGauge(t *testing.T, r *running, dc string) float64 {
	t.Helper()
	mfs, err := r.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "meridian_consul_datacenter_stale" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() == dc {
				return m.GetGauge().GetValue()
			}
		}
	}
	return -1
}
