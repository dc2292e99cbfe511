package app

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
)

// TestPanicReportedWhereTrafficFailsOpen runs the real App with active TCP
// checks. Pool a's endpoint is dead, but its failover service has pool b:
// nothing fails open, so a is not in panic. Pool c's endpoint is dead and
// its service has nothing else: traffic fails open to it, and the admin
// table and meridian_pool_panic say so. Once the operator drains c's
// endpoint, fail-open no longer overrides that: the request gets 503 and
// c is no longer reported.
func TestPanicReportedWhereTrafficFailsOpen(t *testing.T) {
	live := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "live") }))
	t.Cleanup(live.Close)
	deadA, deadC := closedAddr(t), closedAddr(t)
	path := filepath.Join(t.TempDir(), "meridian.yaml")
	write(t, path, fmt.Sprintf(`
listen: {admin: 127.0.0.1:0, http: 127.0.0.1:0}
checks:
  tcp: {type: tcp, interval: 200ms, timeout: 100ms, rise: 1, fall: 1}
pools:
  a: {endpoints: [%s], check: tcp}
  b: {endpoints: [%s], check: tcp}
  c: {endpoints: [%s], check: tcp}
services:
  fo: {pools: [a, b]}
  solo: {pools: [c]}
routes:
  - {name: fo, match: {host: fo.test}, service: fo}
  - {name: solo, match: {host: solo.test}, service: solo}
`, deadA, live.Listener.Addr(), deadC))
	h := start(t, path)
	state := func(doc tableJSON, pool string) string {
		if eps := doc.Pools[pool].Endpoints; len(eps) == 1 && eps[0].Health != nil {
			return string(eps[0].Health.State)
		}
		return ""
	}
	h.waitFor("a and c probed down, b up", func() bool {
		doc := h.table()
		return state(doc, "a") == "down" && state(doc, "c") == "down" && state(doc, "b") == "up"
	})
	send := func(host string) int {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://"+h.app.Addrs().HTTP+"/", nil)
		req.Host = host
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	check := func(step string, panics map[string]bool, codes map[string]int) {
		t.Helper()
		doc := h.table()
		for pool, want := range panics {
			if got := doc.Pools[pool].Panic; got != want {
				t.Errorf("%s: pool %s panic %t in the table, want %t", step, pool, got, want)
			}
			wantMetric := "0"
			if want {
				wantMetric = "1"
			}
			if got := h.metric(`meridian_pool_panic{pool="` + pool + `"}`); got != wantMetric {
				t.Errorf("%s: meridian_pool_panic{pool=%q} = %q, want %s", step, pool, got, wantMetric)
			}
		}
		for host, want := range codes {
			if got := send(host); got != want {
				t.Errorf("%s: %s answered %d, want %d", step, host, got, want)
			}
		}
	}
	// solo.test fails open to the dead endpoint: the attempt is refused (502).
	check("probes down", map[string]bool{"a": false, "b": false, "c": true}, map[string]int{"fo.test": 200, "solo.test": 502})

	if code, body := h.post("/api/v1/endpoints/c/" + deadC + "/drain"); code != 200 {
		t.Fatalf("drain = %d %s", code, body)
	}
	check("c drained", map[string]bool{"a": false, "b": false, "c": false}, map[string]int{"fo.test": 200, "solo.test": 503})
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}
