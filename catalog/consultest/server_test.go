package consultest

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
)

func client(t *testing.T, s *Server, token string) *api.Client {
	t.Helper()
	c, err := api.NewClient(&api.Config{Address: s.Addr, Token: token})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func get(t *testing.T, url string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestHealthServiceJSONShape checks the raw JSON keys against Consul's
// documented answer and that consul/api decodes every field.
func TestHealthServiceJSONShape(t *testing.T) {
	s := New(t, Options{})
	s.AddInstance(Instance{
		ID: "web-1", Service: "web", Node: "n1", NodeAddress: "10.0.0.1", NodeMeta: map[string]string{"rack": "a"},
		Address: "10.1.0.1", Port: 8080, Tags: []string{"eu", "v2"}, Meta: map[string]string{"meridian-weight": "3"},
		Weights: Weights{Passing: 10, Warning: 1},
		Checks:  []Check{{Status: "warning", Output: "slow"}},
	})

	resp, body := get(t, s.URL+"/v1/health/service/web")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	for _, h := range []string{"X-Consul-Index", "X-Consul-KnownLeader", "X-Consul-LastContact", "X-Consul-Effective-Consistency"} {
		if resp.Header.Get(h) == "" {
			t.Errorf("missing header %s", h)
		}
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	var raw []map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil || len(raw) != 1 {
		t.Fatalf("decode %s: %v", body, err)
	}
	wantKeys := map[string][]string{
		"Node":    {"ID", "Node", "Address", "Datacenter", "TaggedAddresses", "Meta"},
		"Service": {"ID", "Service", "Tags", "Address", "Port", "Meta", "Weights"},
	}
	for part, keys := range wantKeys {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(raw[0][part], &m); err != nil {
			t.Fatalf("%s: %v", part, err)
		}
		for _, k := range keys {
			if _, ok := m[k]; !ok {
				t.Errorf("%s has no %q key: %s", part, k, raw[0][part])
			}
		}
	}
	var svc struct{ Weights map[string]int }
	json.Unmarshal(raw[0]["Service"], &svc)
	if svc.Weights["Passing"] != 10 || svc.Weights["Warning"] != 1 {
		t.Errorf("Weights = %v", svc.Weights)
	}
	var checks []map[string]any
	if err := json.Unmarshal(raw[0]["Checks"], &checks); err != nil {
		t.Fatal(err)
	}
	for _, c := range checks {
		for _, k := range []string{"Node", "CheckID", "Name", "Status", "ServiceID", "ServiceName", "ServiceTags", "Output", "Notes"} {
			if _, ok := c[k]; !ok {
				t.Errorf("check %v has no %q key", c["CheckID"], k)
			}
		}
	}

	entries, meta, err := client(t, s, "").Health().Service("web", "", false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Fatalf("got %d entries", len(entries))
	}
	e := entries[0]
	if e.Node.Node != "n1" || e.Node.Address != "10.0.0.1" || e.Node.Datacenter != "dc1" || e.Node.Meta["rack"] != "a" {
		t.Errorf("node = %+v", e.Node)
	}
	if e.Service.ID != "web-1" || e.Service.Service != "web" || e.Service.Address != "10.1.0.1" || e.Service.Port != 8080 ||
		!slices.Equal(e.Service.Tags, []string{"eu", "v2"}) || e.Service.Meta["meridian-weight"] != "3" ||
		e.Service.Weights != (api.AgentWeights{Passing: 10, Warning: 1}) {
		t.Errorf("service = %+v", e.Service)
	}
	if got := e.Checks.AggregatedStatus(); got != api.HealthWarning {
		t.Errorf("aggregated status = %q, want warning", got)
	}
	ids := []string{}
	for _, c := range e.Checks {
		ids = append(ids, c.CheckID)
	}
	if !slices.Equal(ids, []string{"service:web-1", "serfHealth"}) {
		t.Errorf("check IDs = %v", ids)
	}
	if meta.LastIndex == 0 || !meta.KnownLeader {
		t.Errorf("meta = %+v", meta)
	}
}

func TestHealthServiceFilters(t *testing.T) {
	s := New(t, Options{})
	s.AddDatacenter("dc2")
	s.AddInstance(Instance{ID: "a", Service: "web", Port: 1, Tags: []string{"eu", "v1"}})
	s.AddInstance(Instance{ID: "b", Service: "web", Port: 2, Tags: []string{"eu", "v2"}, Checks: []Check{{Status: "critical"}}})
	s.AddInstance(Instance{ID: "c", Service: "web", Port: 3, Tags: []string{"us"}, Datacenter: "dc3"})
	s.AddInstance(Instance{ID: "d", Service: "api", Port: 4, Tags: []string{"eu"}})
	c := client(t, s, "")

	tests := []struct {
		name    string
		tags    []string
		passing bool
		dc      string
		want    []string
		wantErr int
	}{
		{name: "all", want: []string{"a", "b"}},
		{name: "one tag", tags: []string{"eu"}, want: []string{"a", "b"}},
		{name: "all tags required", tags: []string{"eu", "v2"}, want: []string{"b"}},
		{name: "passing only", passing: true, want: []string{"a"}},
		{name: "other dc", dc: "dc3", want: []string{"c"}},
		{name: "known empty dc", dc: "dc2", want: []string{}},
		{name: "unknown dc", dc: "nowhere", wantErr: 500},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			entries, _, err := c.Health().ServiceMultipleTags("web", tc.tags, tc.passing, &api.QueryOptions{Datacenter: tc.dc})
			if tc.wantErr != 0 {
				var se api.StatusError
				if !errors.As(err, &se) || se.Code != tc.wantErr {
					t.Fatalf("err = %v, want HTTP %d", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := []string{}
			for _, e := range entries {
				got = append(got, e.Service.ID)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
	t.Run("passing=false is no filter", func(t *testing.T) {
		_, body := get(t, s.URL+"/v1/health/service/web?passing=false")
		var out []any
		json.Unmarshal(body, &out)
		if len(out) != 2 {
			t.Errorf("got %d entries", len(out))
		}
	})
	t.Run("bad passing", func(t *testing.T) {
		if resp, _ := get(t, s.URL+"/v1/health/service/web?passing=maybe"); resp.StatusCode != 400 {
			t.Errorf("status %d", resp.StatusCode)
		}
	})
	t.Run("filter unsupported", func(t *testing.T) {
		if resp, _ := get(t, s.URL+"/v1/health/service/web?filter=x"); resp.StatusCode != 400 {
			t.Errorf("status %d", resp.StatusCode)
		}
	})
}

func TestBlockingQuery(t *testing.T) {
	s := New(t, Options{})
	s.AddInstance(Instance{ID: "a", Service: "web", Port: 1})
	c := client(t, s, "")
	_, meta, err := c.Health().Service("web", "", false, nil)
	if err != nil {
		t.Fatal(err)
	}
	idx := meta.LastIndex

	t.Run("returns on change", func(t *testing.T) {
		type result struct {
			n   int
			idx uint64
			err error
		}
		done := make(chan result, 1)
		go func() {
			e, m, err := c.Health().Service("web", "", false, (&api.QueryOptions{WaitIndex: idx, WaitTime: time.Minute}).WithContext(ctxT(t)))
			if err != nil {
				done <- result{err: err}
				return
			}
			done <- result{n: len(e), idx: m.LastIndex}
		}()
		waitFor(t, func() bool { return s.InFlight() == 1 })
		s.AddInstance(Instance{ID: "b", Service: "web", Port: 2})
		r := <-done
		if r.err != nil || r.n != 2 || r.idx <= idx {
			t.Fatalf("got %+v, want 2 entries and index > %d", r, idx)
		}
		idx = r.idx
	})
	t.Run("returns on wait timeout with same index", func(t *testing.T) {
		e, m, err := c.Health().Service("web", "", false, (&api.QueryOptions{WaitIndex: idx, WaitTime: 50 * time.Millisecond}).WithContext(ctxT(t)))
		if err != nil || m.LastIndex != idx || len(e) != 2 {
			t.Fatalf("err=%v index=%d (want %d) entries=%d", err, m.LastIndex, idx, len(e))
		}
	})
	t.Run("wait is capped", func(t *testing.T) {
		s2 := New(t, Options{MaxWait: 50 * time.Millisecond})
		c2 := client(t, s2, "")
		_, m, err := c2.Health().Service("web", "", false, nil)
		if err != nil {
			t.Fatal(err)
		}
		// A one-hour wait would outlive ctxT's deadline if it were not capped.
		_, m2, err := c2.Health().Service("web", "", false, (&api.QueryOptions{WaitIndex: m.LastIndex, WaitTime: time.Hour}).WithContext(ctxT(t)))
		if err != nil || m2.LastIndex != m.LastIndex {
			t.Fatalf("err=%v index=%v", err, m2)
		}
	})
	t.Run("touch wakes with same content", func(t *testing.T) {
		done := make(chan uint64, 1)
		go func() {
			_, m, err := c.Health().Service("web", "", false, (&api.QueryOptions{WaitIndex: idx, WaitTime: time.Minute}).WithContext(ctxT(t)))
			if err != nil {
				done <- 0
				return
			}
			done <- m.LastIndex
		}()
		waitFor(t, func() bool { return s.InFlight() == 1 })
		s.Touch()
		if got := <-done; got <= idx {
			t.Fatalf("index %d, want > %d", got, idx)
		}
	})
	t.Run("invalid params", func(t *testing.T) {
		for _, q := range []string{"index=abc", "index=1&wait=forever", "index=1&wait=-1s"} {
			if resp, _ := get(t, s.URL+"/v1/health/service/web?"+q); resp.StatusCode != 400 {
				t.Errorf("%s: status %d", q, resp.StatusCode)
			}
		}
	})
}

func TestResetIndex(t *testing.T) {
	s := New(t, Options{})
	for i := range 5 {
		s.AddInstance(Instance{ID: strconv.Itoa(i), Service: "web", Port: 1 + i})
	}
	c := client(t, s, "")
	_, m, err := c.Health().Service("web", "", false, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.ResetIndex(2)
	// A query with the old, higher index blocks until its wait ends and
	// then reports the lower index: the client must reset.
	e, m2, err := c.Health().Service("web", "", false, (&api.QueryOptions{WaitIndex: m.LastIndex, WaitTime: 50 * time.Millisecond}).WithContext(ctxT(t)))
	if err != nil {
		t.Fatal(err)
	}
	if m2.LastIndex != 2 || m2.LastIndex >= m.LastIndex || len(e) != 5 {
		t.Fatalf("index %d (before %d), %d entries", m2.LastIndex, m.LastIndex, len(e))
	}
	s.AddInstance(Instance{ID: "x", Service: "web", Port: 99})
	if got := s.Index(); got != 3 {
		t.Errorf("index after reset and one write = %d, want 3", got)
	}
}

func TestKV(t *testing.T) {
	s := New(t, Options{})
	kv := client(t, s, "").KV()

	t.Run("missing key is 404 with an index", func(t *testing.T) {
		resp, _ := get(t, s.URL+"/v1/kv/meridian/config")
		if resp.StatusCode != 404 || resp.Header.Get("X-Consul-Index") == "" {
			t.Fatalf("status %d, index %q", resp.StatusCode, resp.Header.Get("X-Consul-Index"))
		}
		p, m, err := kv.Get("meridian/config", nil)
		if err != nil || p != nil || m.LastIndex == 0 {
			t.Fatalf("pair=%v meta=%v err=%v", p, m, err)
		}
	})
	t.Run("put via API and get", func(t *testing.T) {
		if _, err := kv.Put(&api.KVPair{Key: "meridian/config", Value: []byte("a: 1\n"), Flags: 7}, nil); err != nil {
			t.Fatal(err)
		}
		p, m, err := kv.Get("meridian/config", nil)
		if err != nil || p == nil || string(p.Value) != "a: 1\n" || p.Flags != 7 || p.ModifyIndex != m.LastIndex {
			t.Fatalf("pair=%+v meta=%+v err=%v", p, m, err)
		}
		_, body := get(t, s.URL+"/v1/kv/meridian/config")
		var raw []map[string]any
		if err := json.Unmarshal(body, &raw); err != nil || raw[0]["Value"] != "YTogMQo=" {
			t.Fatalf("raw JSON %s: %v", body, err)
		}
		if _, body := get(t, s.URL+"/v1/kv/meridian/config?raw"); string(body) != "a: 1\n" {
			t.Errorf("raw = %q", body)
		}
	})
	t.Run("blocking get wakes on put", func(t *testing.T) {
		_, m, _ := kv.Get("meridian/config", nil)
		done := make(chan string, 1)
		go func() {
			p, _, err := kv.Get("meridian/config", (&api.QueryOptions{WaitIndex: m.LastIndex, WaitTime: time.Minute}).WithContext(ctxT(t)))
			if err != nil || p == nil {
				done <- "error"
				return
			}
			done <- string(p.Value)
		}()
		waitFor(t, func() bool { return s.InFlight() == 1 })
		s.PutKV("meridian/config", []byte("a: 2\n"))
		if got := <-done; got != "a: 2\n" {
			t.Fatalf("got %q", got)
		}
	})
	t.Run("cas", func(t *testing.T) {
		p, _, _ := kv.Get("meridian/config", nil)
		ok, _, err := kv.CAS(&api.KVPair{Key: "meridian/config", Value: []byte("x"), ModifyIndex: p.ModifyIndex - 1}, nil)
		if err != nil || ok {
			t.Fatalf("stale CAS ok=%v err=%v", ok, err)
		}
		ok, _, err = kv.CAS(&api.KVPair{Key: "meridian/config", Value: []byte("x"), ModifyIndex: p.ModifyIndex}, nil)
		if err != nil || !ok {
			t.Fatalf("CAS ok=%v err=%v", ok, err)
		}
	})
	t.Run("delete", func(t *testing.T) {
		if _, err := kv.Delete("meridian/config", nil); err != nil {
			t.Fatal(err)
		}
		if _, ok := s.KV("meridian/config"); ok {
			t.Fatal("key still there")
		}
	})
}

func TestFaults(t *testing.T) {
	s := New(t, Options{})
	s.AddInstance(Instance{ID: "a", Service: "web", Port: 1})
	c := client(t, s, "secret-token")
	status := func() int {
		_, _, err := c.Health().Service("web", "", false, nil)
		var se api.StatusError
		if errors.As(err, &se) {
			return se.Code
		}
		if err != nil {
			t.Fatal(err)
		}
		return 200
	}

	t.Run("next N", func(t *testing.T) {
		s.Fail(Fault{Code: 500, Count: 2})
		got := []int{status(), status(), status()}
		if !slices.Equal(got, []int{500, 500, 200}) {
			t.Fatalf("got %v", got)
		}
	})
	t.Run("until cleared", func(t *testing.T) {
		s.Fail(Fault{Code: 403})
		for range 3 {
			if got := status(); got != 403 {
				t.Fatalf("got %d", got)
			}
		}
		s.ClearFaults()
		if got := status(); got != 200 {
			t.Fatalf("after clear got %d", got)
		}
	})
	t.Run("path filter", func(t *testing.T) {
		s.Fail(Fault{Code: 500, Path: "/v1/kv/"})
		defer s.ClearFaults()
		if got := status(); got != 200 {
			t.Fatalf("health got %d", got)
		}
		if _, _, err := c.KV().Get("k", nil); err == nil {
			t.Fatal("kv did not fail")
		}
	})
	t.Run("echo token", func(t *testing.T) {
		s.Fail(Fault{Code: 403, Count: 1, EchoToken: true})
		_, _, err := c.Health().Service("web", "", false, nil)
		var se api.StatusError
		if !errors.As(err, &se) || se.Code != 403 || !strings.Contains(se.Body, "secret-token") {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestHang(t *testing.T) {
	s := New(t, Options{})
	c := client(t, s, "")

	t.Run("until unhang", func(t *testing.T) {
		s.Hang("/v1/status/")
		done := make(chan error, 1)
		go func() {
			_, err := c.Status().LeaderWithQueryOptions((&api.QueryOptions{}).WithContext(ctxT(t)))
			done <- err
		}()
		waitFor(t, func() bool { return s.InFlight() == 1 })
		// Other paths are not hung.
		if _, _, err := c.KV().Get("x", nil); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-done:
			t.Fatalf("hung request returned early: %v", err)
		default:
		}
		s.Unhang()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
	t.Run("until the request context ends", func(t *testing.T) {
		s.Hang("")
		defer s.Unhang()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			_, err := c.Status().LeaderWithQueryOptions((&api.QueryOptions{}).WithContext(ctx))
			done <- err
		}()
		waitFor(t, func() bool { return s.InFlight() == 1 })
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v", err)
		}
		waitFor(t, func() bool { return s.InFlight() == 0 })
	})
}

func TestStopRestart(t *testing.T) {
	s := New(t, Options{})
	s.AddInstance(Instance{ID: "a", Service: "web", Port: 1})
	c := client(t, s, "")
	_, m, err := c.Health().Service("web", "", false, nil)
	if err != nil {
		t.Fatal(err)
	}
	blocked := make(chan error, 1)
	go func() {
		_, _, err := c.Health().Service("web", "", false, (&api.QueryOptions{WaitIndex: m.LastIndex, WaitTime: time.Minute}).WithContext(ctxT(t)))
		blocked <- err
	}()
	waitFor(t, func() bool { return s.InFlight() == 1 })
	s.Stop()
	if err := <-blocked; err == nil {
		t.Fatal("blocked query survived Stop")
	}
	if _, _, err := c.Health().Service("web", "", false, nil); err == nil {
		t.Fatal("query succeeded while stopped")
	}
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	e, _, err := c.Health().Service("web", "", false, nil)
	if err != nil || len(e) != 1 {
		t.Fatalf("after restart: %v, %d entries", err, len(e))
	}
}

func TestTLS(t *testing.T) {
	s := New(t, Options{TLS: true})
	pemBytes := s.CAPEM()
	if len(pemBytes) == 0 {
		t.Fatal("no CA PEM")
	}
	c, err := api.NewClient(&api.Config{Address: "https://" + s.Addr, TLSConfig: api.TLSConfig{CAPem: pemBytes}})
	if err != nil {
		t.Fatal(err)
	}
	if leader, err := c.Status().Leader(); err != nil || leader == "" {
		t.Fatalf("leader %q, err %v", leader, err)
	}
}

func TestTokenAndLeader(t *testing.T) {
	s := New(t, Options{Token: "s3cret"})
	t.Run("no token is 403", func(t *testing.T) {
		_, err := client(t, s, "").Status().Leader()
		var se api.StatusError
		if !errors.As(err, &se) || se.Code != 403 {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("header token works and is recorded", func(t *testing.T) {
		leader, err := client(t, s, "s3cret").Status().Leader()
		if err != nil || leader == "" {
			t.Fatalf("leader %q err %v", leader, err)
		}
		call, ok := s.LastCall("/v1/status/leader")
		if !ok || call.Token != "s3cret" || call.TokenInQuery {
			t.Fatalf("call = %+v", call)
		}
	})
	t.Run("lost leader", func(t *testing.T) {
		s.SetKnownLeader(false)
		defer s.SetKnownLeader(true)
		c := client(t, s, "s3cret")
		if leader, err := c.Status().Leader(); err != nil || leader != "" {
			t.Fatalf("leader %q err %v", leader, err)
		}
		_, m, err := c.Health().Service("web", "", false, nil)
		if err != nil || m.KnownLeader {
			t.Fatalf("meta %+v err %v", m, err)
		}
	})
}

func TestAgentRegister(t *testing.T) {
	s := New(t, Options{NodeName: "edge-1", NodeAddress: "10.9.9.9"})
	c := client(t, s, "")
	reg := &api.AgentServiceRegistration{
		ID: "meridian-h-8080", Name: "meridian", Port: 8080, Tags: []string{"edge"},
		Meta: map[string]string{"meridian-dns-port": "5353"},
		Check: &api.AgentServiceCheck{
			CheckID: "meridian-h-8080-readyz", HTTP: "http://127.0.0.1:9090/readyz", Interval: "10s", Timeout: "5s",
			DeregisterCriticalServiceAfter: "1m",
		},
	}
	if err := c.Agent().ServiceRegisterOpts(reg, api.ServiceRegisterOpts{ReplaceExistingChecks: true}); err != nil {
		t.Fatal(err)
	}
	got, ok := s.Registrations()["meridian-h-8080"]
	if !ok || got.Name != "meridian" || got.Port != 8080 || got.Check == nil || got.Check.HTTP != reg.Check.HTTP || !got.ReplaceExistingChecks {
		t.Fatalf("registration = %+v", got)
	}
	e, _, err := c.Health().Service("meridian", "", false, nil)
	if err != nil || len(e) != 1 {
		t.Fatalf("%v, %d entries", err, len(e))
	}
	if e[0].Node.Node != "edge-1" || e[0].Node.Address != "10.9.9.9" || e[0].Checks.AggregatedStatus() != api.HealthCritical {
		t.Errorf("entry node=%+v status=%s", e[0].Node, e[0].Checks.AggregatedStatus())
	}
	if e[0].Checks[0].Definition.HTTP != reg.Check.HTTP || e[0].Checks[0].Definition.IntervalDuration != 10*time.Second {
		t.Errorf("definition = %+v", e[0].Checks[0].Definition)
	}
	t.Run("invalid meta rejected", func(t *testing.T) {
		bad := *reg
		bad.ID, bad.Meta = "x", map[string]string{"bad key": "v"}
		if err := c.Agent().ServiceRegister(&bad); err == nil {
			t.Fatal("registered invalid meta")
		}
	})
	if err := c.Agent().ServiceDeregister("meridian-h-8080"); err != nil {
		t.Fatal(err)
	}
	if e, _, _ := c.Health().Service("meridian", "", false, nil); len(e) != 0 {
		t.Fatalf("still %d entries", len(e))
	}
	var se api.StatusError
	if err := c.Agent().ServiceDeregister("meridian-h-8080"); !errors.As(err, &se) || se.Code != 404 {
		t.Fatalf("second deregister: %v", err)
	}
}

func TestCallsAndUnknownEndpoint(t *testing.T) {
	s := New(t, Options{})
	resp, _ := get(t, s.URL+"/v1/catalog/services")
	if resp.StatusCode != 404 {
		t.Errorf("status %d", resp.StatusCode)
	}
	get(t, s.URL+"/v1/health/service/web?tag=a&tag=b&stale")
	if n := s.Calls("/v1/"); n != 2 {
		t.Errorf("Calls = %d", n)
	}
	call, ok := s.LastCall("/v1/health/")
	if !ok || !slices.Equal(call.Query["tag"], []string{"a", "b"}) || !call.Query.Has("stale") {
		t.Errorf("last call = %+v", call)
	}
	if h := s.History(); len(h) != 2 || h[0].Path != "/v1/catalog/services" {
		t.Errorf("history = %+v", h)
	}
}

func FuzzParseWait(f *testing.F) {
	for _, s := range []string{"10s", "5m", "300000ms", "", "-1s", "1h2m", "abc", "9999999999999h"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseWait(s)
		if err == nil && d < 0 {
			t.Fatalf("ParseWait(%q) = %v", s, d)
		}
	})
}

// waitFor polls cond until it holds or the test times out.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
