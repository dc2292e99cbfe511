package proxy

import (
	"maps"
	"slices"
	"testing"

	"github.com/meridian-lb/meridian/health"
)

// TestPanicModeHonoursOperator sends requests through the real handler to
// a failover service of two pools while endpoints are taken out in two
// ways: ejected (a health verdict, which panic mode overrides) or drained
// and forced down (the operator's intent, which it never overrides). A
// drained endpoint gets no request even when everything fails open; a pool
// left with only those is skipped; and only a pool actually served from in
// panic mode is reported as failing open.
func TestPanicModeHonoursOperator(t *testing.T) {
	const y = `
pools:
  a: {endpoints: [{{A1}}, {{A2}}, {{A3}}], outlier: {consecutive_failures: 1, max_ejected_percent: 100}}
  b: {endpoints: [{{B1}}], outlier: {consecutive_failures: 1, max_ejected_percent: 100}}
services: {s: {policy: failover, pools: [a, b]}}
routes: [{name: r, service: s}]
`
	tests := []struct {
		name    string
		eject   []string // backend names
		drain   []string
		down    []string
		code    int
		served  []string // backends that must get every request between them
		failing []string // Table.FailingOpen
	}{
		{name: "pool a drained, b ejected: b fails open, a gets nothing",
			drain: []string{"a1", "a2", "a3"}, eject: []string{"b1"}, code: 200, served: []string{"b1"}, failing: []string{"b"}},
		{name: "one of a drained, the rest ejected: a fails open to the others only",
			drain: []string{"a1"}, eject: []string{"a2", "a3", "b1"}, code: 200, served: []string{"a2", "a3"}, failing: []string{"a"}},
		{name: "every endpoint drained or forced down: 503",
			down: []string{"a1"}, drain: []string{"a2", "a3", "b1"}, code: 503},
		{name: "pool a ejected, b available: failover, no panic",
			eject: []string{"a1", "a2", "a3"}, code: 200, served: []string{"b1"}},
		{name: "every endpoint ejected: the first pool fails open",
			eject: []string{"a1", "a2", "a3", "b1"}, code: 200, served: []string{"a1", "a2", "a3"}, failing: []string{"a"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bes := map[string]*backend{}
			pools := map[string]string{"a1": "a", "a2": "a", "a3": "a", "b1": "b"}
			for name := range pools {
				bes[name] = newBackend(t, name, nil)
			}
			e := newEnv(t, y, map[string]string{"A1": bes["a1"].addr, "A2": bes["a2"].addr, "A3": bes["a3"].addr, "B1": bes["b1"].addr})
			for _, name := range tc.eject {
				m := e.eng.Member(pools[name], bes[name].addr)
				if m.Report(health.ConnectFailure); m.State() != health.StateEjected {
					t.Fatalf("%s: %s, want ejected", name, m.State())
				}
			}
			for _, name := range tc.drain {
				e.override(pools[name], bes[name].addr, health.ActionDrain)
			}
			for _, name := range tc.down {
				e.override(pools[name], bes[name].addr, health.ActionDown)
			}

			const n = 40
			for range n {
				if res, body := e.get("/"); res.StatusCode != tc.code {
					t.Fatalf("status %d %q, want %d", res.StatusCode, body, tc.code)
				}
			}
			total, want := int64(0), int64(0)
			if len(tc.served) > 0 {
				want = n
			}
			for name, b := range bes {
				hits := b.hits.Load()
				total += hits
				switch served := slices.Contains(tc.served, name); {
				case hits > 0 && !served:
					t.Errorf("%s got %d requests, want none (served: %v)", name, hits, tc.served)
				case hits == 0 && served:
					t.Errorf("%s got no request, want a share (served: %v)", name, tc.served)
				}
			}
			if total != want {
				t.Errorf("%d requests reached a backend, want %d", total, want)
			}
			if got := slices.Sorted(maps.Keys(e.live.Load().FailingOpen())); !slices.Equal(got, tc.failing) {
				t.Errorf("failing open: %v, want %v", got, tc.failing)
			}
		})
	}
}
