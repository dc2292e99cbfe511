package catalog

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"

	"github.com/meridian-lb/meridian/catalog/consultest"
	"github.com/meridian-lb/meridian/config"
)

// These tests run the Watcher over real HTTP against consultest.

func seedWeb(srv *consultest.Server) {
	srv.AddInstance(consultest.Instance{ID: "web-a", Service: "web", Node: "n1", NodeAddress: "10.0.0.1", Port: 8080,
		Tags: []string{"eu"}, Weights: consultest.Weights{Passing: 4, Warning: 1}})
	srv.AddInstance(consultest.Instance{ID: "web-b", Service: "web", Node: "n2", NodeAddress: "10.0.0.2", Address: "10.1.0.2", Port: 8081,
		Tags: []string{"eu", "canary"}, Meta: map[string]string{MetaWeight: "7", MetaRegion: "eu-west", "version": "2"},
		Checks: []consultest.Check{{Status: "warning"}}})
	srv.AddInstance(consultest.Instance{ID: "web-c", Service: "web", Node: "n3", NodeAddress: "10.0.0.3", Port: 8082,
		Tags: []string{"eu"}, Meta: map[string]string{"version": "2"}, Checks: []consultest.Check{{Status: "critical"}}})
	srv.AddInstance(consultest.Instance{ID: "web-us", Service: "web", Node: "n4", NodeAddress: "10.0.0.4", Port: 8083, Tags: []string{"us"}})
}

func TestWatcherSelectsFromConsul(t *testing.T) {
	srv := consultest.New(t, consultest.Options{})
	seedWeb(srv)
	eu := config.ConsulSelect{Service: "web", Tags: []string{"eu"}}
	r := runWatcher(t, testClient(t, srv, nil), fastOptions(), KeyOf(eu))
	waitFor(t, "first answer", func() bool { return r.w.Snapshot().Ready(KeyOf(eu)) })

	call, _ := srv.LastCall("/v1/health/service/web")
	if !slices.Equal(call.Query["tag"], []string{"eu"}) || call.Query.Has("passing") {
		t.Errorf("query %v: want tag=eu server-side and no ?passing (health is filtered per pool)", call.Query)
	}

	type want struct {
		id, endpoint, region string
		weight               int
	}
	a := want{"web-a", "10.0.0.1:8080", "dc1", 4}
	b := want{"web-b", "10.1.0.2:8081", "eu-west", 7}
	c := want{"web-c", "10.0.0.3:8082", "dc1", 1}
	tests := []struct {
		name   string
		health string
		meta   map[string]string
		want   []want
	}{
		{name: "passing", health: "passing", want: []want{a}},
		{name: "warning", health: "warning", want: []want{a, b}},
		{name: "any", health: "any", want: []want{a, b, c}},
		{name: "meta", health: "any", meta: map[string]string{"version": "2"}, want: []want{b, c}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sel := eu
			sel.Health, sel.Meta = tc.health, tc.meta
			inst, ready := r.w.Snapshot().Instances(sel)
			if !ready {
				t.Fatal("not ready")
			}
			var got []want
			for _, in := range inst {
				got = append(got, want{in.ID, in.Endpoint(), in.Region, in.Weight})
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}

	t.Run("change is picked up by the blocking query", func(t *testing.T) {
		pokes := r.pokes.Load()
		srv.AddInstance(consultest.Instance{ID: "web-d", Service: "web", NodeAddress: "10.0.0.5", Port: 8084, Tags: []string{"eu"}})
		waitFor(t, "the new instance", func() bool {
			inst, _ := r.w.Snapshot().Instances(eu)
			return len(inst) == 2
		})
		if r.pokes.Load() <= pokes {
			t.Error("change did not poke")
		}
	})
	t.Run("flipped check is picked up", func(t *testing.T) {
		if err := srv.SetStatus("web-a", "critical"); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "web-a to leave the passing set", func() bool {
			inst, _ := r.w.Snapshot().Instances(eu)
			return len(inst) == 1 && inst[0].ID == "web-d"
		})
	})
	t.Run("wait timeouts and unrelated changes do not poke", func(t *testing.T) {
		pokes := r.pokes.Load()
		calls := srv.Calls("/v1/health/service/web")
		srv.Touch()                                                                                        // new index, same content
		srv.AddInstance(consultest.Instance{ID: "api-1", Service: "api", Port: 1})                         // another service
		srv.AddInstance(consultest.Instance{ID: "web-us2", Service: "web", Port: 2, Tags: []string{"us"}}) // filtered by tag
		waitFor(t, "several more queries", func() bool { return srv.Calls("/v1/health/service/web") >= calls+5 })
		if got := r.pokes.Load(); got != pokes {
			t.Errorf("pokes went from %d to %d without a change", pokes, got)
		}
	})
}

func TestWatcherKeepsLastGood(t *testing.T) {
	const token = "tok-3f1c9e-SECRET"
	tests := []struct {
		name    string
		inject  func(srv *consultest.Server)
		recover func(t *testing.T, srv *consultest.Server)
	}{
		{
			name:    "500 until cleared",
			inject:  func(srv *consultest.Server) { srv.Fail(consultest.Fault{Code: 500}) },
			recover: func(t *testing.T, srv *consultest.Server) { srv.ClearFaults() },
		},
		{
			name:    "403 echoing the token",
			inject:  func(srv *consultest.Server) { srv.Fail(consultest.Fault{Code: 403, EchoToken: true}) },
			recover: func(t *testing.T, srv *consultest.Server) { srv.ClearFaults() },
		},
		{
			name:    "hung agent",
			inject:  func(srv *consultest.Server) { srv.Hang("") },
			recover: func(t *testing.T, srv *consultest.Server) { srv.Unhang() },
		},
		{
			name:   "agent down and restarted",
			inject: func(srv *consultest.Server) { srv.Stop() },
			recover: func(t *testing.T, srv *consultest.Server) {
				if err := srv.Restart(); err != nil {
					t.Fatal(err)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := consultest.New(t, consultest.Options{Token: token})
			seedWeb(srv)
			tokenFile := writeFile(t, "token", []byte(token+"\n"))
			client := testClient(t, srv, func(c *config.Consul) { c.TokenFile = tokenFile })
			sel := config.ConsulSelect{Service: "web", Health: "any"}
			r := runWatcher(t, client, fastOptions(), KeyOf(sel))
			waitFor(t, "first answer", func() bool { return r.w.Snapshot().Ready(KeyOf(sel)) })
			before, _ := r.w.Snapshot().Instances(sel)
			pokes := r.pokes.Load()

			tc.inject(srv)
			waitFor(t, "the outage to be noticed", func() bool { return !r.w.Up() })
			calls := srv.Calls("")
			if tc.name != "hung agent" && tc.name != "agent down and restarted" {
				waitFor(t, "retries", func() bool { return srv.Calls("") >= calls+3 })
			}
			during, ready := r.w.Snapshot().Instances(sel)
			if !ready || !slices.EqualFunc(before, during, Instance.equal) {
				t.Errorf("during the outage: ready=%v %d instances, want the last %d", ready, len(during), len(before))
			}
			if v, _ := gauge(t, r.reg, "meridian_consul_up", ""); v != 0 {
				t.Errorf("meridian_consul_up = %v during the outage", v)
			}
			if _, ok := gauge(t, r.reg, "meridian_consul_selection_age_seconds", "web"); !ok {
				t.Error("no selection age metric")
			}

			tc.recover(t, srv)
			waitFor(t, "recovery", func() bool { return r.w.Up() })
			if v, _ := gauge(t, r.reg, "meridian_consul_up", ""); v != 1 {
				t.Errorf("meridian_consul_up = %v after recovery", v)
			}
			if n := countLogs(r.logs, zapcore.WarnLevel, "Consul query failed"); n != 1 {
				t.Errorf("%d outage warnings, want exactly 1:\n%s", n, renderLogs(r.logs))
			}
			if n := countLogs(r.logs, zapcore.InfoLevel, "Consul is answering again"); n != 1 {
				t.Errorf("%d recovery lines, want exactly 1", n)
			}
			if got := r.pokes.Load(); got != pokes {
				t.Errorf("pokes %d -> %d: an outage must not poke", pokes, got)
			}
			if text := renderLogs(r.logs); strings.Contains(text, token) {
				t.Errorf("token leaked into the logs:\n%s", text)
			}
			for _, st := range r.w.Status() {
				if strings.Contains(st.LastError, token) {
					t.Errorf("token leaked into Status: %q", st.LastError)
				}
			}
			for _, c := range srv.History() {
				if c.TokenInQuery || c.Token != token {
					t.Fatalf("call %s %s: token %q in header, in query %v", c.Method, c.Path, c.Token, c.TokenInQuery)
				}
			}
			if tc.name == "403 echoing the token" && !strings.Contains(renderLogs(r.logs), "permission denied") {
				t.Errorf("403 not described as a permission problem:\n%s", renderLogs(r.logs))
			}
		})
	}
}

func TestWatcherIndexReset(t *testing.T) {
	srv := consultest.New(t, consultest.Options{})
	for i := range 10 {
		srv.AddInstance(consultest.Instance{ID: fmt.Sprintf("web-%d", i), Service: "web", Port: 1000 + i})
	}
	sel := config.ConsulSelect{Service: "web"}
	r := runWatcher(t, testClient(t, srv, nil), fastOptions(), KeyOf(sel))
	waitFor(t, "first answer", func() bool { return r.w.Snapshot().Ready(KeyOf(sel)) })

	srv.ResetIndex(3)
	waitFor(t, "the reset to be noticed", func() bool {
		return countLogs(r.logs, zapcore.InfoLevel, "Consul index went backwards") > 0
	})
	srv.AddInstance(consultest.Instance{ID: "web-new", Service: "web", Port: 2000})
	waitFor(t, "the instance added after the reset", func() bool {
		inst, _ := r.w.Snapshot().Instances(sel)
		return len(inst) == 11
	})
	// After the reset the loop restarted without an index, then blocked on
	// the new, lower index instead of the stale high one.
	waitFor(t, "index 11, a restart without index, then a lower index", func() bool {
		sawHigh, restarted := false, false
		for _, c := range srv.History() {
			i := c.Query.Get("index")
			n, _ := strconv.Atoi(i)
			switch {
			case n >= 11:
				sawHigh = true
			case i == "" && sawHigh:
				restarted = true
			case n > 0 && n < 11 && restarted:
				return true
			}
		}
		return false
	})
}

func TestWatcherQueryOptions(t *testing.T) {
	srv := consultest.New(t, consultest.Options{})
	srv.AddDatacenter("dc2")
	srv.AddInstance(consultest.Instance{ID: "x", Service: "web", Port: 1, Datacenter: "dc2"})
	client := testClient(t, srv, func(c *config.Consul) { c.Namespace, c.Partition = "team-a", "edge" })
	opts := fastOptions()
	opts.Stale = true
	sel := config.ConsulSelect{Service: "web", Datacenter: "dc2", Near: "_agent", Tags: []string{"b", "a"}}
	r := runWatcher(t, client, opts, KeyOf(sel))
	waitFor(t, "first answer", func() bool { return r.w.Snapshot().Ready(KeyOf(sel)) })
	call, _ := srv.LastCall("/v1/health/service/web")
	q := call.Query
	if !q.Has("stale") || q.Get("dc") != "dc2" || q.Get("near") != "_agent" || q.Get("ns") != "team-a" ||
		q.Get("partition") != "edge" || !slices.Equal(q["tag"], []string{"a", "b"}) {
		t.Errorf("query = %v", q)
	}
}

func TestWatcherWantStopsQueries(t *testing.T) {
	srv := consultest.New(t, consultest.Options{})
	seedWeb(srv)
	srv.AddInstance(consultest.Instance{ID: "api-1", Service: "api", Port: 1})
	web, apiKey := Key{Service: "web"}, Key{Service: "api"}
	opts := fastOptions()
	opts.WaitTime = 5 * time.Minute // long blocking queries: stopping must cancel them
	opts.Timeout = 0
	r := runWatcher(t, testClient(t, srv, nil), opts, web, apiKey)
	waitFor(t, "two blocked queries", func() bool { return srv.InFlight() == 2 })
	r.w.Want([]Key{web})
	waitFor(t, "one blocked query", func() bool { return srv.InFlight() == 1 })
	if r.w.Snapshot().Ready(apiKey) {
		t.Error("dropped key still in the snapshot")
	}
	r.w.Want(nil)
	waitFor(t, "no open request", func() bool { return srv.InFlight() == 0 })
	n := srv.Calls("/v1/health/")
	r.w.Want([]Key{apiKey})
	waitFor(t, "the re-added key", func() bool { return r.w.Snapshot().Ready(apiKey) })
	if srv.Calls("/v1/health/") <= n {
		t.Error("re-added key did not query")
	}
}
