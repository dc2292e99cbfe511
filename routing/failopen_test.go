package routing

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meridian-lb/meridian/health"
)

// failOpenOutlier ejects an endpoint on its first connect failure, with no
// cap, so a test can take health away from any endpoint at once.
const failOpenOutlier = "outlier: {consecutive_failures: 1, max_ejected_percent: 100}"

// TestFailingOpen checks which pools Table.FailingOpen reports: only those
// a pick actually serves from in panic mode, never a pool whose service
// failed over, one nothing uses, or one whose endpoints an operator took
// out.
func TestFailingOpen(t *testing.T) {
	zone := `
zones:
  - origin: example.com.
    soa: {ns: ns1.example.com., mbox: hostmaster.example.com.}
    ns: [ns1.example.com.]
    records:
`
	route := "routes: [{name: r, match: {path_prefix: /}, service: s}]\n"
	tests := []struct {
		name    string
		yaml    string
		eject   []string // pool/address: a health verdict (passive ejection)
		drain   []string // pool/address: the operator's drain
		down    []string // pool/address: the operator's force-down
		failing []string
	}{
		{name: "all healthy",
			yaml: "pools: {a: {endpoints: [127.0.0.1:1]}, b: {endpoints: [127.0.0.1:2]}}\nservices: {s: {pools: [a, b]}}\n" + route},
		{name: "failover service moved on: nothing fails open",
			yaml:  "pools: {a: {endpoints: [127.0.0.1:1]}, b: {endpoints: [127.0.0.1:2]}}\nservices: {s: {pools: [a, b]}}\n" + route,
			eject: []string{"a/127.0.0.1:1"}},
		{name: "every pool down: the first fails open",
			yaml:    "pools: {a: {endpoints: [127.0.0.1:1]}, b: {endpoints: [127.0.0.1:2]}}\nservices: {s: {pools: [a, b]}}\n" + route,
			eject:   []string{"a/127.0.0.1:1", "b/127.0.0.1:2"},
			failing: []string{"a"}},
		{name: "first pool drained, the rest down: the next fails open",
			yaml:    "pools: {a: {endpoints: [127.0.0.1:1]}, b: {endpoints: [127.0.0.1:2]}}\nservices: {s: {pools: [a, b]}}\n" + route,
			eject:   []string{"b/127.0.0.1:2"},
			drain:   []string{"a/127.0.0.1:1"},
			failing: []string{"b"}},
		{name: "all drained or forced down: nothing fails open",
			yaml:  "pools: {a: {endpoints: [127.0.0.1:1]}, b: {endpoints: [127.0.0.1:2]}}\nservices: {s: {pools: [a, b]}}\n" + route,
			drain: []string{"a/127.0.0.1:1"},
			down:  []string{"b/127.0.0.1:2"}},
		{name: "a pool with on_all_down fail is skipped",
			yaml:    "pools: {a: {endpoints: [127.0.0.1:1], on_all_down: fail}, b: {endpoints: [127.0.0.1:2]}}\nservices: {s: {pools: [a, b]}}\n" + route,
			eject:   []string{"a/127.0.0.1:1", "b/127.0.0.1:2"},
			failing: []string{"b"}},
		{name: "a service nothing uses is not reported",
			yaml:  "pools: {a: {endpoints: [127.0.0.1:1]}}\nservices: {s: {pools: [a]}}\n",
			eject: []string{"a/127.0.0.1:1"}},
		{name: "split arm and mirror services count",
			yaml: "pools: {a: {endpoints: [127.0.0.1:1]}, b: {endpoints: [127.0.0.1:2]}, m: {endpoints: [127.0.0.1:3]}}\n" +
				"services: {s: {pools: [a]}, t: {pools: [b]}, mirror: {pools: [m]}}\n" +
				"routes: [{name: r, match: {path_prefix: /}, split: [{service: s, weight: 1}, {service: t, weight: 1}], mirror: {service: mirror}}]\n",
			eject:   []string{"a/127.0.0.1:1", "b/127.0.0.1:2", "m/127.0.0.1:3"},
			failing: []string{"a", "b", "m"}},
		{name: "geo: the first pool of each region",
			yaml: "pools: {eu1: {region: eu, endpoints: [127.0.0.1:1]}, eu2: {region: eu, endpoints: [127.0.0.1:2]}, us1: {region: us, endpoints: [127.0.0.1:3]}}\n" +
				"services: {s: {policy: geo, pools: [eu1, eu2, us1]}}\n" + route,
			eject:   []string{"eu1/127.0.0.1:1", "eu2/127.0.0.1:2", "us1/127.0.0.1:3"},
			failing: []string{"eu1", "us1"}},
		{name: "weighted: every pool that can be drawn, and the first as listed",
			yaml: "pools: {x: {endpoints: [127.0.0.1:1]}, y: {endpoints: [127.0.0.1:2]}, z: {endpoints: [127.0.0.1:3]}}\n" +
				"services: {s: {policy: weighted, pools: [x, y, z], weights: [0, 1, 0]}}\n" + route,
			eject:   []string{"x/127.0.0.1:1", "y/127.0.0.1:2", "z/127.0.0.1:3"},
			failing: []string{"x", "y"}},
		{name: "DNS record failing open",
			yaml:    "pools: {a: {endpoints: [127.0.0.1:1]}}\nservices: {s: {pools: [a]}}\n" + zone + "      - {name: www, type: A, service: s}\n",
			eject:   []string{"a/127.0.0.1:1"},
			failing: []string{"a"}},
		{name: "DNS record answering NODATA does not fail open",
			yaml:  "pools: {a: {endpoints: [127.0.0.1:1]}}\nservices: {s: {pools: [a]}}\n" + zone + "      - {name: www, type: A, service: s, on_all_down: nodata}\n",
			eject: []string{"a/127.0.0.1:1"}},
		{name: "DNS sees only its family: an A record fails open where HTTP fails over",
			yaml: "pools: {v4: {endpoints: [127.0.0.1:1]}, v6: {endpoints: [\"[::1]:2\"]}}\nservices: {s: {pools: [v4, v6]}}\n" +
				zone + "      - {name: www, type: A, service: s}\n",
			eject:   []string{"v4/127.0.0.1:1"},
			failing: []string{"v4"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tb, eng := boundTable(t, strings.ReplaceAll(tc.yaml, "endpoints: [", failOpenOutlier+", endpoints: ["))
			for _, pa := range tc.eject {
				pool, addr, _ := strings.Cut(pa, "/")
				m := eng.Member(pool, addr)
				if m.Report(health.ConnectFailure); m.State() != health.StateEjected {
					t.Fatalf("%s: %s, want ejected", pa, m.State())
				}
			}
			for _, o := range []struct {
				list []string
				a    health.Action
			}{{tc.drain, health.ActionDrain}, {tc.down, health.ActionDown}} {
				for _, pa := range o.list {
					pool, addr, _ := strings.Cut(pa, "/")
					mustOverride(t, eng, pool, addr, o.a)
				}
			}
			got := slices.Sorted(maps.Keys(tb.FailingOpen()))
			if !slices.Equal(got, tc.failing) {
				t.Fatalf("FailingOpen = %v, want %v", got, tc.failing)
			}
		})
	}
}

// TestPanicCollector reads meridian_pool_panic through a registry: 1 for
// the pool failing open, 0 for the rest, and it follows health live.
func TestPanicCollector(t *testing.T) {
	tb, eng := boundTable(t, "pools: {a: {endpoints: [127.0.0.1:1], "+failOpenOutlier+"}, b: {endpoints: [127.0.0.1:2]}}\n"+
		"services: {s: {pools: [a, b]}}\nroutes: [{name: r, match: {path_prefix: /}, service: s}]\n")
	var live Live
	live.Store(tb)
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewPanicCollector(&live))
	check := func(what, want string) {
		t.Helper()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				got = append(got, fmt.Sprintf("%s{%s=%q} %g", mf.GetName(), m.GetLabel()[0].GetName(), m.GetLabel()[0].GetValue(), m.GetGauge().GetValue()))
			}
		}
		slices.Sort(got)
		if g := strings.Join(got, "\n"); g != want {
			t.Fatalf("%s:\n got  %s\n want %s", what, g, want)
		}
	}
	check("healthy", "meridian_pool_panic{pool=\"a\"} 0\nmeridian_pool_panic{pool=\"b\"} 0")
	eng.Member("a", "127.0.0.1:1").Report(health.ConnectFailure)
	mustOverride(t, eng, "b", "127.0.0.1:2", health.ActionDrain)
	check("a ejected, b drained", "meridian_pool_panic{pool=\"a\"} 1\nmeridian_pool_panic{pool=\"b\"} 0")
	mustOverride(t, eng, "b", "127.0.0.1:2", health.ActionEnable)
	check("b back", "meridian_pool_panic{pool=\"a\"} 0\nmeridian_pool_panic{pool=\"b\"} 0")
}

// boundTable compiles y and binds a health engine with no checks.
func boundTable(t *testing.T, y string) (*Table, *health.Engine) {
	t.Helper()
	tb := compileYAML(t, y)
	eng := health.New(health.Options{})
	eng.Sync(tb.HealthSpecs())
	tb.BindHealth(eng)
	return tb, eng
}
