package proxy

import "testing"

// TestRouteSeriesFollowReloads: a route's metric children are resolved
// once per route name and reused by the tables after, so its counts go on
// across reloads; a table without the route drops its series at once, and
// a later table with it again starts them anew. A state installed after a
// newer one (compiled before it) still counts into live series.
func TestRouteSeriesFollowReloads(t *testing.T) {
	a := newBackend(t, "a", nil)
	vars := map[string]string{"A": a.addr}
	const head = `
pools: {p: {endpoints: [{{A}}]}}
services: {s: {pools: [p]}}
routes:
`
	both := head + `
  - {name: keep, match: {path_prefix: /k}, service: s}
  - {name: drop, match: {path_prefix: /d}, service: s}
`
	e := newEnv(t, both, vars)
	series := func(route string) int {
		t.Helper()
		mfs, err := e.reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				if hasLabel(m, "route", route) {
					n++
				}
			}
		}
		return n
	}
	count := func(route string) float64 {
		return e.metric("meridian_http_request_duration_seconds", map[string]string{"route": route})
	}
	e.get("/k")
	e.get("/d")
	// The same routes with other settings: a new table.
	e.swap(head+`
  - {name: keep, match: {path_prefix: /k}, service: s, timeout: 5s}
  - {name: drop, match: {path_prefix: /d}, service: s, timeout: 5s}
`, vars)
	e.get("/k")
	if c := count("keep"); c != 2 {
		t.Errorf("keep counted %v requests across the reload, want 2", c)
	}
	if v := e.metric("meridian_http_requests_total", map[string]string{"route": "keep", "code": "200"}); v != 2 {
		t.Errorf("keep requests_total %v, want 2", v)
	}
	n := series("drop")
	if n < 4 { // duration, retries sent and refused, requests_total
		t.Fatalf("drop has %d series", n)
	}
	e.swap(head+`
  - {name: keep, match: {path_prefix: /k}, service: s}
`, vars)
	if n := series("drop"); n != 0 {
		t.Errorf("a route the table dropped keeps %d series", n)
	}
	if c := count("keep"); c != 2 || series("keep") != n {
		t.Errorf("keep: %v requests, %d series", c, series("keep"))
	}
	e.swap(both, vars)
	e.get("/d")
	if c := count("drop"); c != 1 {
		t.Errorf("drop back: %v requests, want 1 (counted anew)", c)
	}
	// A state compiled with a new route, installed after a newer one
	// without it.
	late := e.h.Compile(e.compile(both+`
  - {name: late, match: {path_prefix: /l}, service: s}
`, vars))
	e.swap(both, vars)
	e.h.Install(late)
	e.get("/l")
	if c := count("late"); c != 1 || series("late") < 4 {
		t.Errorf("late: %v requests, %d series", c, series("late"))
	}
	e.swap(both, vars)
	if n := series("late"); n != 0 {
		t.Errorf("late left the table with %d series", n)
	}
	// A state compiled while its route was live, installed after a table
	// that dropped the route.
	kept := e.h.Compile(e.compile(both, vars))
	e.swap(head+`
  - {name: keep, match: {path_prefix: /k}, service: s}
`, vars)
	e.h.Install(kept)
	e.get("/d")
	if c := count("drop"); c != 1 || series("drop") < 4 {
		t.Errorf("drop reinstalled: %v requests, %d series", c, series("drop"))
	}
	// Two states compiled with the same new route, installed in turns.
	with := both + `
  - {name: twice, match: {path_prefix: /t}, service: s}
`
	b, c := e.h.Compile(e.compile(with, vars)), e.h.Compile(e.compile(with, vars))
	e.h.Install(c)
	e.h.Install(b)
	e.h.Install(c)
	e.get("/t")
	if n := count("twice"); n != 1 || series("twice") < 4 {
		t.Errorf("twice: %v requests, %d series", n, series("twice"))
	}
}
