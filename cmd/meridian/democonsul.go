package main

import (
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/hashicorp/consul/api"

	"github.com/meridian-lb/meridian/catalog"
	"github.com/meridian-lb/meridian/catalog/consultest"
	"github.com/meridian-lb/meridian/examples"
	"github.com/meridian-lb/meridian/internal/demo"
)

// demoConsul is `meridian demo -consul`: the in-repo Consul API test server
// (catalog/consultest), a test stand-in that speaks the part of Consul's
// HTTP API Meridian uses, with the demo upstreams registered in it. It is
// not Consul: nothing is replicated, KV and sessions live in memory, and it
// ends with the demo.
type demoConsul struct {
	srv *consultest.Server
}

// startDemoConsul starts the stand-in on addr with two datacenters: dc1
// (the agent's) holds web eu and web canary, registered through the agent
// endpoint with HTTP checks on their /healthz that the stand-in runs (stop
// an upstream and it turns critical); dc2 holds web us, with the same
// check. Instances carry meta meridian-region.
func startDemoConsul(addr string, ups demo.Set) (*demoConsul, error) {
	srv, err := consultest.Start(consultest.Options{Addr: addr, Datacenter: "dc1", NodeName: "demo-agent", RunChecks: true})
	if err != nil {
		return nil, fmt.Errorf("the Consul stand-in on %s: %w (is a Consul agent running there? use -consul-addr)", addr, err)
	}
	c, err := api.NewClient(&api.Config{Address: srv.Addr})
	if err != nil {
		srv.Close()
		return nil, err
	}
	for _, name := range []string{"eu", "canary"} {
		u := ups[name]
		host, port, _ := splitHostPort(u.Addr)
		err := c.Agent().ServiceRegister(&api.AgentServiceRegistration{
			ID: "web-" + name, Name: "web", Tags: []string{name}, Address: host, Port: port,
			Meta:  map[string]string{catalog.MetaRegion: "eu"},
			Check: &api.AgentServiceCheck{HTTP: "http://" + u.Addr + "/healthz", Interval: "1s", Timeout: "500ms"},
		})
		if err != nil {
			srv.Close()
			return nil, fmt.Errorf("registering the demo upstream %s: %w", name, err)
		}
	}
	us := ups["us"]
	host, port, _ := splitHostPort(us.Addr)
	srv.AddInstance(consultest.Instance{
		Datacenter: "dc2", Node: "demo-dc2", ID: "web-us", Service: "web", Address: host, Port: port,
		Tags: []string{"us"}, Meta: map[string]string{catalog.MetaRegion: "us"},
		Checks: []consultest.Check{{Name: "us /healthz", HTTP: "http://" + us.Addr + "/healthz", Interval: "1s", Timeout: "500ms", Status: "passing"}},
	})
	return &demoConsul{srv: srv}, nil
}

func (d *demoConsul) Close() { d.srv.Close() }

// control adds the stand-in's controls to the demo control API: POST
// /consul/datacenters/{dc}/stop makes a datacenter stop answering (its
// pools keep their last known endpoints, flagged stale), .../start brings
// it back.
func (d *demoConsul) control(ups http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", ups)
	mux.HandleFunc("POST /consul/datacenters/{dc}/{action}", func(w http.ResponseWriter, r *http.Request) {
		dc := r.PathValue("dc")
		switch r.PathValue("action") {
		case "stop":
			d.srv.StopDatacenter(dc)
		case "start":
			d.srv.StartDatacenter(dc)
		default:
			http.Error(w, "action is stop or start", http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, "consul stand-in: datacenter %s %s\n", dc, map[string]string{"stop": "stopped answering", "start": "answering"}[r.PathValue("action")])
	})
	return mux
}

// examplePath prefers the repository's examples/NAME (edits show live),
// else writes the embedded copy to a temporary directory.
func examplePath(name string) (path string, embedded bool, err error) {
	rel := filepath.Join("examples", name)
	if _, err := os.Stat(rel); err == nil {
		p, err := filepath.Abs(rel)
		return p, false, err
	}
	b, err := fs.ReadFile(examples.Files, name)
	if err != nil {
		return "", false, err
	}
	dir, err := os.MkdirTemp("", "meridian-demo-")
	if err != nil {
		return "", false, err
	}
	p := filepath.Join(dir, name)
	return p, true, os.WriteFile(p, b, 0o644)
}

func splitHostPort(addr string) (string, int, error) {
	i := strings.LastIndexByte(addr, ':')
	var port int
	_, err := fmt.Sscanf(addr[i+1:], "%d", &port)
	return addr[:i], port, err
}
