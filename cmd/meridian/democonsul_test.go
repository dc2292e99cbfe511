package main

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/hashicorp/consul/api"

	"github.com/meridian-lb/meridian/internal/demo"
)

// TestDemoConsul: the stand-in `meridian demo -consul` starts holds the
// demo upstreams (eu and canary in dc1 through the agent, us in dc2) with
// checks it runs, and its control API stops and starts a datacenter.
func TestDemoConsul(t *testing.T) {
	ups := demo.Set{
		"eu": {Name: "eu", Addr: "127.0.0.1:0"}, "us": {Name: "us", Addr: "127.0.0.1:0"}, "canary": {Name: "canary", Addr: "127.0.0.1:0"},
	}
	if err := ups.StartAll(); err != nil {
		t.Fatal(err)
	}
	defer ups.StopAll()
	dc, err := startDemoConsul("127.0.0.1:0", ups)
	if err != nil {
		t.Fatal(err)
	}
	defer dc.Close()
	c, err := api.NewClient(&api.Config{Address: dc.srv.Addr})
	if err != nil {
		t.Fatal(err)
	}
	passing := func(dcName string) int {
		e, _, err := c.Health().Service("web", "", true, &api.QueryOptions{Datacenter: dcName})
		if err != nil {
			return -1
		}
		return len(e)
	}
	waitUntil(t, "web eu and canary passing in dc1, us in dc2", func() bool { return passing("dc1") == 2 && passing("dc2") == 1 })
	ups["eu"].Stop()
	waitUntil(t, "the stopped upstream critical", func() bool { return passing("dc1") == 1 })

	ctl := httptest.NewServer(dc.control(ups.Handler()))
	defer ctl.Close()
	res, err := http.Post(ctl.URL+"/consul/datacenters/dc2/stop", "", nil)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("stop dc2: %v %v", res, err)
	}
	if n := passing("dc2"); n != -1 {
		t.Errorf("a stopped dc2 answered (%d)", n)
	}
	http.Post(ctl.URL+"/consul/datacenters/dc2/start", "", nil)
	waitUntil(t, "dc2 back", func() bool { return passing("dc2") == 1 })
	res, err = http.Get(ctl.URL + "/")
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("upstream list through the combined control API: %v %v", res, err)
	}
}
