package telemetry

import (
	"testing"
	"time"
)

// TestTraffic reads a route's canary arm against its other weighted arms,
// and a pool, as a rollout's judge does: cumulative counts whose
// differences are an interval's traffic, and the interval's p99.
func TestTraffic(t *testing.T) {
	clk := newClock()
	tel := New(Options{Now: clk.now})
	if _, _, ok := tel.ArmTraffic("www", "canary"); ok {
		t.Fatal("ArmTraffic before any table")
	}
	set := table(tel, "10.0.0.1:80")
	tel.ActivateHTTP(set)
	arms, eps := set.Arms(0), set.Endpoints(0)

	// The rule arm (entry 0) is not the weighted canary arm: its requests
	// count nowhere.
	arms[0].Done(0, 500, "", time.Second, 0, 0, 0)
	for i := range 10 {
		code := 200
		if i < 2 {
			code = 503
		}
		arms[1].Done(uint(i), code, "", 10*time.Millisecond, 0, 0, 0)
		arms[2].Done(uint(i), 200, "", time.Millisecond, 0, 0, 0)
		eps[0].Response(uint(i), code, 3*time.Millisecond)
	}
	eps[0].Failed(0, "reset")
	c, o, ok := tel.ArmTraffic("www", "canary")
	if !ok || c.Requests != 10 || c.Errors != 2 || o.Requests != 10 || o.Errors != 0 {
		t.Fatalf("canary %d/%d others %d/%d ok %v", c.Requests, c.Errors, o.Requests, o.Errors, ok)
	}
	if p := c.QuantileSince(nil, 0.99); p < 8*time.Millisecond || p > 13*time.Millisecond {
		t.Errorf("canary p99 %v, want about 10ms", p)
	}
	if _, _, ok := tel.ArmTraffic("www", "nope"); ok {
		t.Error("an unknown canary service is ok")
	}
	if _, _, ok := tel.ArmTraffic("nope", "canary"); ok {
		t.Error("an unknown route is ok")
	}

	// The next interval: the canary slows down; only its new requests make
	// the p99 since the first reading.
	base := c
	for i := range 5 {
		arms[1].Done(uint(i), 200, "", 400*time.Millisecond, 0, 0, 0)
	}
	c, _, _ = tel.ArmTraffic("www", "canary")
	if c.Requests != 15 {
		t.Errorf("canary requests %d, want 15", c.Requests)
	}
	if p := c.QuantileSince(&base, 0.99); p < 300*time.Millisecond || p > 500*time.Millisecond {
		t.Errorf("p99 since the base %v, want about 400ms", p)
	}
	if p := base.QuantileSince(&c, 0.99); p != base.QuantileSince(nil, 0.99) {
		t.Errorf("a later base gives %v, want the reading's own p99", p)
	}
	if p := base.QuantileSince(&base, 0.99); p != 0 {
		t.Errorf("no requests in between: p99 %v", p)
	}

	// Pools count attempts: 5xx and upstream failures are errors.
	p, ok := tel.PoolTraffic("web-eu")
	if !ok || p.Requests != 11 || p.Errors != 3 {
		t.Fatalf("pool %d/%d ok %v, want 11/3", p.Requests, p.Errors, ok)
	}
	if _, ok := tel.PoolTraffic("nope"); ok {
		t.Error("an unknown pool is ok")
	}
	// A new table without the endpoint: the pool's counts go on.
	tel.ActivateHTTP(table(tel, "10.0.0.2:80"))
	if p, _ := tel.PoolTraffic("web-eu"); p.Requests != 11 {
		t.Errorf("pool requests after its endpoint left: %d, want 11", p.Requests)
	}

	// Reading allocates nothing on the request path and little off it.
	if n := testing.AllocsPerRun(100, func() { tel.ArmTraffic("www", "canary") }); n > 0 {
		t.Errorf("ArmTraffic allocates %v times", n)
	}
}
