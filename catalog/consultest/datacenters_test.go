package consultest

import (
	"net"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
)

// TestDatacentersHaveTheirOwnCatalog checks that ?dc= is routed to the
// datacenter's own state: its instances and its own index, so a change in
// one datacenter neither shows in nor wakes another's blocking query.
func TestDatacentersHaveTheirOwnCatalog(t *testing.T) {
	s := New(t, Options{})
	s.AddInstance(Instance{ID: "a", Service: "web", Port: 1})
	s.AddInstance(Instance{ID: "b", Service: "web", Port: 2, Datacenter: "dc2"})
	c := client(t, s, "")
	_, m1, err := c.Health().Service("web", "", false, &api.QueryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e2, m2, err := c.Health().Service("web", "", false, &api.QueryOptions{Datacenter: "dc2"})
	if err != nil || len(e2) != 1 || e2[0].Service.ID != "b" || e2[0].Node.Datacenter != "dc2" {
		t.Fatalf("dc2: %v %v", e2, err)
	}
	done := make(chan uint64, 1)
	base := s.InFlight()
	go func() {
		_, m, err := c.Health().Service("web", "", false, &api.QueryOptions{WaitIndex: m1.LastIndex, WaitTime: 2 * time.Second, Datacenter: "dc1"})
		if err != nil {
			done <- 0
			return
		}
		done <- m.LastIndex
	}()
	waitFor(t, func() bool { return s.InFlight() == base+1 }) // the query is blocked
	s.AddInstance(Instance{ID: "c", Service: "web", Port: 3, Datacenter: "dc2"})
	select {
	case idx := <-done:
		t.Fatalf("dc1's blocking query returned (index %d) on a dc2 change", idx)
	case <-time.After(300 * time.Millisecond):
	}
	s.AddInstance(Instance{ID: "d", Service: "web", Port: 4})
	if idx := <-done; idx <= m1.LastIndex {
		t.Fatalf("dc1's query returned index %d after a dc1 change, want > %d", idx, m1.LastIndex)
	}
	_, m2b, _ := c.Health().Service("web", "", false, &api.QueryOptions{Datacenter: "dc2"})
	if m2b.LastIndex <= m2.LastIndex {
		t.Errorf("dc2 index %d did not move past %d", m2b.LastIndex, m2.LastIndex)
	}
}

// TestStopDatacenter checks the control that makes a datacenter stop
// answering: new queries and blocked ones fail with "No path to
// datacenter", the others are untouched, and StartDatacenter ends it.
func TestStopDatacenter(t *testing.T) {
	s := New(t, Options{})
	s.AddInstance(Instance{ID: "a", Service: "web", Port: 1})
	s.AddInstance(Instance{ID: "b", Service: "web", Port: 2, Datacenter: "dc2"})
	c := client(t, s, "")
	_, m, err := c.Health().Service("web", "", false, &api.QueryOptions{Datacenter: "dc2"})
	if err != nil {
		t.Fatal(err)
	}
	blocked := make(chan error, 1)
	base := s.InFlight()
	go func() {
		_, _, err := c.Health().Service("web", "", false, &api.QueryOptions{Datacenter: "dc2", WaitIndex: m.LastIndex, WaitTime: 5 * time.Second})
		blocked <- err
	}()
	waitFor(t, func() bool { return s.InFlight() == base+1 })
	s.StopDatacenter("dc2")
	select {
	case err := <-blocked:
		if se, ok := err.(api.StatusError); !ok || se.Code != 500 || se.Body != "No path to datacenter" {
			t.Fatalf("blocked query: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("a blocked query on a stopped datacenter was not released")
	}
	if _, _, err := c.Health().Service("web", "", false, &api.QueryOptions{Datacenter: "dc2"}); err == nil {
		t.Fatal("a stopped datacenter answered")
	}
	if e, _, err := c.Health().Service("web", "", false, nil); err != nil || len(e) != 1 {
		t.Fatalf("the local datacenter: %v %v", e, err)
	}
	s.StartDatacenter("dc2")
	if e, _, err := c.Health().Service("web", "", false, &api.QueryOptions{Datacenter: "dc2"}); err != nil || len(e) != 1 {
		t.Fatalf("dc2 after StartDatacenter: %v %v", e, err)
	}
}

// TestDatacenterListsAndCoordinates checks /v1/catalog/datacenters (the
// agent's first, then by RTT), /v1/coordinate/datacenters (decoded by
// consul/api, distances as set) and /v1/agent/self.
func TestDatacenterListsAndCoordinates(t *testing.T) {
	s := New(t, Options{Datacenter: "eu1"})
	for dc, rtt := range map[string]time.Duration{"us1": 90 * time.Millisecond, "eu2": 10 * time.Millisecond, "ap1": 200 * time.Millisecond} {
		s.SetDatacenterRTT(dc, rtt)
	}
	c := client(t, s, "")
	dcs, err := c.Catalog().Datacenters()
	if err != nil || !slices.Equal(dcs, []string{"eu1", "eu2", "us1", "ap1"}) {
		t.Fatalf("datacenters %v %v", dcs, err)
	}
	maps, err := c.Coordinate().Datacenters()
	if err != nil || len(maps) != 4 {
		t.Fatalf("coordinates %v %v", maps, err)
	}
	var home, us1 *api.CoordinateEntry
	for _, m := range maps {
		switch m.Datacenter {
		case "eu1":
			home = &m.Coordinates[0]
		case "us1":
			us1 = &m.Coordinates[0]
		}
	}
	if home == nil || us1 == nil || home.Coord == nil || us1.Coord == nil {
		t.Fatalf("coordinates %+v", maps)
	}
	if d := home.Coord.DistanceTo(us1.Coord); d < 89*time.Millisecond || d > 91*time.Millisecond {
		t.Errorf("eu1 → us1 distance %v, want 90ms", d)
	}
	self, err := c.Agent().Self()
	if err != nil || self["Config"]["Datacenter"] != "eu1" {
		t.Fatalf("agent self %v %v", self, err)
	}
}

// TestKVRecurseAndKeys checks folder listings: ?recurse (entries sorted,
// with their sessions), ?keys with a separator, 404 for an empty folder,
// and that a listing blocks on the KV index and wakes on a deletion.
func TestKVRecurseAndKeys(t *testing.T) {
	s := New(t, Options{})
	s.PutKV("f/a/1", []byte("x"))
	s.PutKV("f/a/2", []byte("y"))
	s.PutKV("f/b", []byte("z"))
	s.PutKV("g", []byte("other"))
	kv := client(t, s, "").KV()
	pairs, meta, err := kv.List("f/", nil)
	if err != nil || len(pairs) != 3 || pairs[0].Key != "f/a/1" || string(pairs[2].Value) != "z" {
		t.Fatalf("list %v %v", pairs, err)
	}
	keys, _, err := kv.Keys("f/", "/", nil)
	if err != nil || !slices.Equal(keys, []string{"f/a/", "f/b"}) {
		t.Fatalf("keys %v %v", keys, err)
	}
	none, _, err := kv.List("nothing/", nil)
	if err != nil || none != nil {
		t.Fatalf("empty folder %v %v", none, err)
	}
	done := make(chan int, 1)
	base := s.InFlight()
	go func() {
		p, _, err := kv.List("f/", &api.QueryOptions{WaitIndex: meta.LastIndex, WaitTime: 3 * time.Second})
		if err != nil {
			done <- -1
			return
		}
		done <- len(p)
	}()
	waitFor(t, func() bool { return s.InFlight() == base+1 })
	s.DeleteKV("f/b")
	if n := <-done; n != 2 {
		t.Fatalf("blocked listing woke with %d entries, want 2", n)
	}
}

// TestRunChecks checks that with RunChecks the agent runs a registered
// service's HTTP check: critical at first, passing once its URL answers
// 200, critical again when it stops, and reaped after
// DeregisterCriticalServiceAfter.
func TestRunChecks(t *testing.T) {
	s := New(t, Options{RunChecks: true})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})}
	go srv.Serve(ln)
	c := client(t, s, "")
	reg := &api.AgentServiceRegistration{ID: "m-1", Name: "meridian", Port: 8080, Check: &api.AgentServiceCheck{
		HTTP: "http://" + ln.Addr().String() + "/readyz", Interval: "50ms", Timeout: "40ms", DeregisterCriticalServiceAfter: "400ms",
	}}
	if err := c.Agent().ServiceRegister(reg); err != nil {
		t.Fatal(err)
	}
	waitStatus := func(want string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			e, _, err := c.Health().Service("meridian", "", false, nil)
			got := "gone"
			if err == nil && len(e) == 1 {
				got = e[0].Checks.AggregatedStatus()
			}
			if got == want {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("registration never became %s", want)
	}
	waitStatus(api.HealthPassing)
	srv.Close()
	waitStatus(api.HealthCritical)
	waitStatus("gone")
	if _, ok := s.Registrations()["m-1"]; ok {
		t.Error("the reaped service is still registered")
	}
}
