package main

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/meridian-lb/meridian/catalog"
	"github.com/meridian-lb/meridian/catalog/consultest"
)

// TestFleetKill9 runs two meridian processes in one fleet over the Consul
// stand-in and kills one with SIGKILL: nothing deregisters it or destroys
// its session, yet its registration fails its check (it leaves the live
// instance list), and once Consul invalidates its session its health
// report vanishes; the survivor's /api/v1/fleet follows.
func TestFleetKill9(t *testing.T) {
	bin := buildMeridian(t)
	srv := consultest.New(t, consultest.Options{RunChecks: true, MinSessionTTL: time.Second})
	c, err := api.NewClient(&api.Config{Address: srv.Addr})
	if err != nil {
		t.Fatal(err)
	}
	passing := func() []*api.ServiceEntry {
		e, _, err := c.Health().Service("edge", "", true, nil)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	reports := func() int {
		keys, _, err := c.KV().Keys("meridian/fleet/reports/", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		return len(keys)
	}
	cfg := `region: eu
listen: {http: 127.0.0.1:0, admin: 127.0.0.1:0}
shutdown: {grace: 1s}
consul:
  address: ` + srv.Addr + `
  register: {name: edge, check_interval: 100ms}
  fleet: {session_ttl: 1s}
checks: {up: {type: tcp, interval: 200ms}}
pools: {p: {endpoints: [` + srv.Addr + `], check: up}}
services: {s: {pools: [p]}}
routes: [{name: r, service: s}]
`
	start := func(i int) *exec.Cmd {
		path := filepath.Join(t.TempDir(), "m"+strconv.Itoa(i)+".yaml")
		if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "run", "-config", path)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		waitUntil(t, "instance "+strconv.Itoa(i)+" passing with its report", func() bool { return len(passing()) == i+1 && reports() == i+1 })
		return cmd
	}
	start(0)
	survivor := net.JoinHostPort("127.0.0.1", passing()[0].Service.Meta[catalog.MetaAdminPort])
	victim := start(1)

	if err := victim.Process.Signal(os.Kill); err != nil {
		t.Fatal(err)
	}
	victim.Wait()
	killed := time.Now()
	waitUntil(t, "the killed instance to leave the passing set", func() bool { return len(passing()) == 1 })
	left := time.Since(killed)
	waitUntil(t, "its report to vanish", func() bool { return reports() == 1 })
	t.Logf("after kill -9: out of the passing set in %v (check every 100ms), report gone in %v (session TTL 1s: Consul invalidates it 1 to 2 TTLs after the last renewal)",
		left.Round(10*time.Millisecond), time.Since(killed).Round(10*time.Millisecond))
	waitUntil(t, "the survivor's fleet view", func() bool {
		var doc struct {
			Members   []json.RawMessage `json:"members"`
			Reporters []json.RawMessage `json:"reporters"`
		}
		res, err := http.Get("http://" + survivor + "/api/v1/fleet")
		if err != nil {
			return false
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return json.Unmarshal(b, &doc) == nil && len(doc.Members) == 1 && len(doc.Reporters) == 1
	})
}

// waitUntil polls cond every 20ms for up to 15s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
