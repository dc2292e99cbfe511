package consultest

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
)

func put(t *testing.T, url, body string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPut, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
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

func newSession(t *testing.T, c *api.Client, se *api.SessionEntry) string {
	t.Helper()
	id, _, err := c.Session().Create(se, nil)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func statusOf(err error) (int, string) {
	var se api.StatusError
	if errors.As(err, &se) {
		return se.Code, se.Body
	}
	return 0, ""
}

// TestSessionEndpoints covers create, info, list, node, renew and destroy,
// and the JSON Consul answers.
func TestSessionEndpoints(t *testing.T) {
	s := New(t, Options{})
	c := client(t, s, "")
	sessions := c.Session()

	id := newSession(t, c, &api.SessionEntry{Name: "leader", TTL: "15s", Behavior: api.SessionBehaviorDelete})
	if len(id) != 36 || strings.Count(id, "-") != 4 {
		t.Fatalf("ID %q is not UUID-shaped", id)
	}
	e, m, err := sessions.Info(id, nil)
	if err != nil || e == nil {
		t.Fatalf("Info: %v %v", e, err)
	}
	if e.ID != id || e.Name != "leader" || e.Node != "agent-1" || e.TTL != "15s" || e.LockDelay != 15*time.Second ||
		e.Behavior != "delete" || !slices.Equal(e.NodeChecks, []string{"serfHealth"}) || e.CreateIndex == 0 || m.LastIndex != e.CreateIndex {
		t.Fatalf("Info = %+v, index %d", e, m.LastIndex)
	}

	resp, body := get(t, s.URL+"/v1/session/info/"+id)
	var raw []map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil || len(raw) != 1 || resp.Header.Get("X-Consul-Index") == "" {
		t.Fatalf("raw info %s: %v", body, err)
	}
	for _, k := range []string{"ID", "Name", "Node", "LockDelay", "Behavior", "TTL", "NodeChecks", "ServiceChecks", "CreateIndex", "ModifyIndex"} {
		if _, ok := raw[0][k]; !ok {
			t.Errorf("session entry lacks %s: %s", k, body)
		}
	}
	if string(raw[0]["LockDelay"]) != "15000000000" {
		t.Errorf("LockDelay %s, want nanoseconds", raw[0]["LockDelay"])
	}

	// Create(nil) sends no body: every default applies.
	id2 := newSession(t, c, nil)
	list, _, err := sessions.List(nil)
	if err != nil || len(list) != 2 {
		t.Fatalf("List: %d %v", len(list), err)
	}
	if e2, _, _ := sessions.Info(id2, nil); e2.Behavior != "release" || e2.TTL != "" || e2.LockDelay != 15*time.Second {
		t.Errorf("defaults: %+v", e2)
	}
	if on, _, err := sessions.Node("agent-1", nil); err != nil || len(on) != 2 {
		t.Errorf("Node: %d %v", len(on), err)
	}
	if on, _, err := sessions.Node("elsewhere", nil); err != nil || len(on) != 0 {
		t.Errorf("Node(elsewhere): %d %v", len(on), err)
	}
	if got := s.Sessions(); len(got) != 2 || !slices.ContainsFunc(got, func(x Session) bool { return x.ID == id && x.TTL == 15*time.Second }) {
		t.Errorf("Sessions() = %+v", got)
	}

	r, _, err := sessions.Renew(id, nil)
	if err != nil || r == nil || r.ID != id || r.TTL != "15s" {
		t.Fatalf("Renew: %+v %v", r, err)
	}
	if got := s.Sessions(); got[slices.IndexFunc(got, func(x Session) bool { return x.ID == id })].Renewals != 1 {
		t.Errorf("renewals not counted: %+v", got)
	}

	if _, err := sessions.Destroy(id, nil); err != nil {
		t.Fatal(err)
	}
	if e, _, err := sessions.Info(id, nil); err != nil || e != nil {
		t.Fatalf("Info after destroy: %+v %v", e, err)
	}
	if _, body := get(t, s.URL+"/v1/session/info/"+id); strings.TrimSpace(string(body)) != "[]" {
		t.Errorf("info of a gone session = %s, want []", body)
	}
	if r, _, err := sessions.Renew(id, nil); err != nil || r != nil {
		t.Fatalf("Renew after destroy: %+v %v", r, err)
	}
	resp, body = put(t, s.URL+"/v1/session/renew/"+id, "")
	if resp.StatusCode != 404 || !strings.Contains(string(body), "Session id '"+id+"' not found") {
		t.Errorf("renew of a gone session: %d %s", resp.StatusCode, body)
	}
	// Destroying what is gone is not an error.
	if resp, body := put(t, s.URL+"/v1/session/destroy/"+id, ""); resp.StatusCode != 200 || strings.TrimSpace(string(body)) != "true" {
		t.Errorf("second destroy: %d %s", resp.StatusCode, body)
	}
	if resp, _ := put(t, s.URL+"/v1/session/destroy/", ""); resp.StatusCode != 400 {
		t.Errorf("destroy without ID: %d", resp.StatusCode)
	}
	for _, p := range []string{"/v1/session/info/", "/v1/session/node/"} {
		if resp, _ := get(t, s.URL+p); resp.StatusCode != 400 {
			t.Errorf("%s without its argument: %d", p, resp.StatusCode)
		}
	}

	s.ResetIndex(2)
	if _, m, err := sessions.List(nil); err != nil || m.LastIndex > 2 {
		t.Errorf("session index after ResetIndex: %d %v", m.LastIndex, err)
	}
}

func TestSessionCreateValidation(t *testing.T) {
	s := New(t, Options{})
	c := client(t, s, "")
	s.AddInstance(Instance{ID: "db-1", Service: "db", Node: "n1"})

	for _, tc := range []struct {
		name, body string
		code       int
		want       string
	}{
		{"TTL below the minimum", `{"TTL": "5s"}`, 500, "Invalid Session TTL '5000000000', must be between [10s=24h0m0s]"},
		{"TTL above 24h", `{"TTL": "25h"}`, 500, "Invalid Session TTL"},
		{"TTL unparsable", `{"TTL": "soon"}`, 500, "Session TTL 'soon' invalid"},
		{"behavior", `{"Behavior": "explode"}`, 500, "Invalid Behavior setting 'explode'"},
		{"unknown node", `{"Node": "ghost"}`, 500, "Missing node registration"},
		{"bad JSON", `{"Name": `, 400, "Request decode failed"},
		{"bad LockDelay", `{"LockDelay": "long"}`, 400, "Request decode failed"},
		{"LockDelay without a unit", `{"LockDelay": "7"}`, 400, "Request decode failed"},
		{"service checks", `{"ServiceChecks": [{"ID": "service:db-1"}]}`, 400, "not implemented"},
		{"other node checks", `{"NodeChecks": ["disk"]}`, 400, "not implemented"},
	} {
		resp, body := put(t, s.URL+"/v1/session/create", tc.body)
		if resp.StatusCode != tc.code || !strings.Contains(string(body), tc.want) {
			t.Errorf("%s: %d %q, want %d %q", tc.name, resp.StatusCode, body, tc.code, tc.want)
		}
	}
	if n := len(s.Sessions()); n != 0 {
		t.Fatalf("%d sessions created by failed requests", n)
	}

	for _, tc := range []struct {
		body  string
		delay time.Duration
	}{
		{`{"LockDelay": "1ms"}`, time.Millisecond},
		{`{"LockDelay": 5}`, 5 * time.Second}, // small numbers are seconds
		{`{"LockDelay": 2000000000}`, 2 * time.Second},
		{`{"lockdelay": "0s"}`, 0},
	} {
		resp, body := put(t, s.URL+"/v1/session/create", tc.body)
		var out struct{ ID string }
		if resp.StatusCode != 200 || json.Unmarshal(body, &out) != nil {
			t.Fatalf("%s: %d %s", tc.body, resp.StatusCode, body)
		}
		if e, _, err := c.Session().Info(out.ID, nil); err != nil || e.LockDelay != tc.delay {
			t.Errorf("%s: LockDelay %v, want %v (%v)", tc.body, e.LockDelay, tc.delay, err)
		}
	}

	// The api client sends LockDelay as milliseconds ("1ms").
	id := newSession(t, c, &api.SessionEntry{LockDelay: time.Millisecond, Node: "n1"})
	if e, _, _ := c.Session().Info(id, nil); e.LockDelay != time.Millisecond || e.Node != "n1" {
		t.Errorf("api client session: %+v", e)
	}
	// An empty check list binds the session to nothing.
	id, _, err := c.Session().CreateNoChecks(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if e, _, _ := c.Session().Info(id, nil); len(e.NodeChecks) != 0 {
		t.Errorf("checks %v", e.NodeChecks)
	}

	// A node whose serfHealth is critical cannot take sessions.
	if err := s.SetCheck("db-1", "serfHealth", "critical"); err != nil {
		t.Fatal(err)
	}
	_, _, err = c.Session().Create(&api.SessionEntry{Node: "n1"}, nil)
	if code, body := statusOf(err); code != 500 || !strings.Contains(body, "Check 'serfHealth' is in critical state") {
		t.Errorf("session on a failed node: %v", err)
	}
	if _, _, err := c.Session().CreateNoChecks(&api.SessionEntry{Node: "n1"}, nil); err != nil {
		t.Errorf("session without checks on a failed node: %v", err)
	}

	// Tests may allow short TTLs.
	s2 := New(t, Options{MinSessionTTL: 100 * time.Millisecond})
	if _, _, err := client(t, s2, "").Session().Create(&api.SessionEntry{TTL: "500ms"}, nil); err != nil {
		t.Errorf("short TTL with MinSessionTTL: %v", err)
	}
	if _, _, err := client(t, s2, "").Session().Create(&api.SessionEntry{TTL: "50ms"}, nil); err == nil {
		t.Error("TTL below MinSessionTTL accepted")
	}
}

func TestKVLocks(t *testing.T) {
	s := New(t, Options{})
	c := client(t, s, "")
	kv := c.KV()
	a := newSession(t, c, nil)
	b := newSession(t, c, nil)
	const key = "locks/leader"

	acquire := func(id, value string) bool {
		t.Helper()
		ok, _, err := kv.Acquire(&api.KVPair{Key: key, Value: []byte(value), Session: id}, nil)
		if err != nil {
			t.Fatalf("acquire by %s: %v", id, err)
		}
		return ok
	}
	release := func(id, value string) bool {
		t.Helper()
		ok, _, err := kv.Release(&api.KVPair{Key: key, Value: []byte(value), Session: id}, nil)
		if err != nil {
			t.Fatalf("release by %s: %v", id, err)
		}
		return ok
	}
	read := func() *api.KVPair {
		t.Helper()
		p, _, err := kv.Get(key, nil)
		if err != nil || p == nil {
			t.Fatalf("get: %v %v", p, err)
		}
		return p
	}

	if !acquire(a, "a") {
		t.Fatal("a could not take a missing key")
	}
	p := read()
	if p.Session != a || p.LockIndex != 1 || string(p.Value) != "a" || s.LockHolder(key) != a {
		t.Fatalf("after acquire: %+v", p)
	}
	if acquire(b, "b") {
		t.Fatal("b took a held lock")
	}
	// The holder re-acquiring with the same value writes nothing...
	if !acquire(a, "a") || read().ModifyIndex != p.ModifyIndex {
		t.Fatal("an unchanged re-acquire changed the key")
	}
	// ...and with a new value updates it, the LockIndex unchanged.
	if !acquire(a, "a2") {
		t.Fatal("the holder could not update its key")
	}
	if p2 := read(); p2.ModifyIndex <= p.ModifyIndex || p2.LockIndex != 1 || string(p2.Value) != "a2" {
		t.Fatalf("holder update: %+v", p2)
	}
	// Plain writes ignore the lock and keep it: locks are advisory.
	if _, err := kv.Put(&api.KVPair{Key: key, Value: []byte("plain")}, nil); err != nil {
		t.Fatal(err)
	}
	if p := read(); p.Session != a || string(p.Value) != "plain" {
		t.Fatalf("plain write: %+v", p)
	}
	if got := s.Locks(); len(got) != 1 || got[key] != a {
		t.Fatalf("Locks() = %v", got)
	}
	if got := s.Sessions(); !slices.Equal(got[slices.IndexFunc(got, func(x Session) bool { return x.ID == a })].Held, []string{key}) {
		t.Fatalf("Sessions() = %+v", got)
	}

	if release(b, "") {
		t.Fatal("b released a's lock")
	}
	if !release(a, "bye") {
		t.Fatal("a could not release")
	}
	if p := read(); p.Session != "" || p.LockIndex != 1 || string(p.Value) != "bye" || s.LockHolder(key) != "" {
		t.Fatalf("after release: %+v", p)
	}
	if release(a, "") {
		t.Fatal("released an unheld lock")
	}
	if !acquire(b, "b") || read().LockIndex != 2 {
		t.Fatalf("b's acquire: %+v", read())
	}
	// As in Consul, a release writes its body: without one the value is emptied.
	if !release(b, "") {
		t.Fatal("b could not release")
	}
	if p := read(); len(p.Value) != 0 {
		t.Fatalf("release without a body kept %q", p.Value)
	}

	t.Run("raw JSON carries Session and LockIndex", func(t *testing.T) {
		acquire(a, "x")
		_, body := get(t, s.URL+"/v1/kv/"+key)
		var raw []map[string]any
		if err := json.Unmarshal(body, &raw); err != nil || raw[0]["Session"] != a || raw[0]["LockIndex"] != float64(3) {
			t.Fatalf("%s: %v", body, err)
		}
		release(a, "x")
		_, body = get(t, s.URL+"/v1/kv/"+key)
		if strings.Contains(string(body), `"Session"`) {
			t.Errorf("unlocked key shows a Session: %s", body)
		}
	})
	t.Run("errors", func(t *testing.T) {
		_, _, err := kv.Acquire(&api.KVPair{Key: key, Session: "00000000-0000-0000-0000-000000000000"}, nil)
		if code, body := statusOf(err); code != 500 || !strings.Contains(body, `invalid session "00000000-0000-0000-0000-000000000000"`) {
			t.Errorf("unknown session: %v", err)
		}
		if resp, body := put(t, s.URL+"/v1/kv/"+key+"?acquire=", "v"); resp.StatusCode != 500 || !strings.Contains(string(body), "missing session") {
			t.Errorf("empty acquire: %d %s", resp.StatusCode, body)
		}
		for _, q := range []string{"cas=0&acquire=" + a, "acquire=" + a + "&release=" + a, "cas=1&release=" + a} {
			if resp, body := put(t, s.URL+"/v1/kv/"+key+"?"+q, "v"); resp.StatusCode != 400 || !strings.Contains(string(body), "Conflicting flags") {
				t.Errorf("%s: %d %s", q, resp.StatusCode, body)
			}
		}
		if s.LockHolder(key) != "" {
			t.Errorf("a failed request took the lock: %s", s.LockHolder(key))
		}
	})
	t.Run("flags are the request's", func(t *testing.T) {
		ok, _, err := kv.Acquire(&api.KVPair{Key: "flagged", Session: a, Flags: 42}, nil)
		if err != nil || !ok {
			t.Fatal(ok, err)
		}
		if p, _, _ := kv.Get("flagged", nil); p.Flags != 42 {
			t.Errorf("flags %d", p.Flags)
		}
		kv.Release(&api.KVPair{Key: "flagged", Session: a}, nil)
		if p, _, _ := kv.Get("flagged", nil); p.Flags != 0 {
			t.Errorf("flags after a release without them: %d", p.Flags)
		}
	})
	t.Run("delete with cas", func(t *testing.T) {
		kv.Put(&api.KVPair{Key: "gone", Value: []byte("v")}, nil)
		p, _, _ := kv.Get("gone", nil)
		if ok, _, err := kv.DeleteCAS(&api.KVPair{Key: "gone", ModifyIndex: p.ModifyIndex + 100}, nil); err != nil || ok {
			t.Fatalf("stale DeleteCAS: %v %v", ok, err)
		}
		if ok, _, err := kv.DeleteCAS(&api.KVPair{Key: "gone", ModifyIndex: p.ModifyIndex}, nil); err != nil || !ok {
			t.Fatalf("DeleteCAS: %v %v", ok, err)
		}
		if _, ok := s.KV("gone"); ok {
			t.Fatal("DeleteCAS did not delete")
		}
		if ok, _, err := kv.DeleteCAS(&api.KVPair{Key: "gone", ModifyIndex: 7}, nil); err != nil || !ok {
			t.Fatalf("DeleteCAS of a missing key: %v %v", ok, err)
		}
	})
}

func TestSessionInvalidation(t *testing.T) {
	s := New(t, Options{MinSessionTTL: time.Millisecond})
	c := client(t, s, "")
	kv := c.KV()

	take := func(id, key, value string) {
		t.Helper()
		if ok, _, err := kv.Acquire(&api.KVPair{Key: key, Value: []byte(value), Session: id}, nil); err != nil || !ok {
			t.Fatalf("acquire %s: %v %v", key, ok, err)
		}
	}

	t.Run("destroy releases, keeps values, and starts the lock-delay", func(t *testing.T) {
		a := newSession(t, c, &api.SessionEntry{LockDelay: 300 * time.Millisecond})
		b := newSession(t, c, &api.SessionEntry{LockDelay: time.Millisecond})
		take(a, "d/1", "one")
		take(a, "d/2", "two")
		before, _, _ := kv.Get("d/1", nil)
		if _, err := c.Session().Destroy(a, nil); err != nil {
			t.Fatal(err)
		}
		p1, _, _ := kv.Get("d/1", nil)
		p2, _, _ := kv.Get("d/2", nil)
		if p1.Session != "" || string(p1.Value) != "one" || p1.ModifyIndex <= before.ModifyIndex || p2.Session != "" || p2.ModifyIndex != p1.ModifyIndex {
			t.Fatalf("after destroy: %+v %+v", p1, p2)
		}
		if ok, _, err := kv.Acquire(&api.KVPair{Key: "d/1", Session: b}, nil); err != nil || ok {
			t.Fatalf("acquire during the lock-delay: %v %v", ok, err)
		}
		// The lock-delay is checked before the session: no error here.
		if ok, _, err := kv.Acquire(&api.KVPair{Key: "d/1", Session: a}, nil); err != nil || ok {
			t.Fatalf("acquire by a gone session during the lock-delay: %v %v", ok, err)
		}
		// A plain write is not a lock: the lock-delay does not apply.
		if _, err := kv.Put(&api.KVPair{Key: "d/2", Value: []byte("w")}, nil); err != nil {
			t.Fatal(err)
		}
		waitFor(t, func() bool {
			ok, _, err := kv.Acquire(&api.KVPair{Key: "d/1", Value: []byte("b"), Session: b}, nil)
			return err == nil && ok
		})
		if p, _, _ := kv.Get("d/1", nil); p.Session != b || p.LockIndex != 2 {
			t.Fatalf("b's lock: %+v", p)
		}
	})
	t.Run("behavior delete deletes the keys", func(t *testing.T) {
		d := newSession(t, c, &api.SessionEntry{Behavior: api.SessionBehaviorDelete, LockDelay: time.Millisecond})
		take(d, "eph/1", "x")
		if !s.ExpireSession(d) {
			t.Fatal("ExpireSession: no such session")
		}
		if p, _, _ := kv.Get("eph/1", nil); p != nil {
			t.Fatalf("key kept: %+v", p)
		}
		if s.ExpireSession(d) {
			t.Error("ExpireSession of a gone session reported true")
		}
	})
	t.Run("a blocking read wakes on release and on invalidation", func(t *testing.T) {
		a := newSession(t, c, &api.SessionEntry{LockDelay: time.Millisecond})
		take(a, "w/1", "v")
		watch := func() <-chan *api.KVPair {
			_, m, err := kv.Get("w/1", nil)
			if err != nil {
				t.Fatal(err)
			}
			base := s.InFlight()
			out := make(chan *api.KVPair, 1)
			go func() {
				p, m2, err := kv.Get("w/1", (&api.QueryOptions{WaitIndex: m.LastIndex, WaitTime: time.Minute}).WithContext(ctxT(t)))
				if err != nil || m2.LastIndex <= m.LastIndex {
					out <- nil
					return
				}
				out <- p
			}()
			waitFor(t, func() bool { return s.InFlight() == base+1 })
			return out
		}
		got := watch()
		if ok, _, err := kv.Release(&api.KVPair{Key: "w/1", Value: []byte("v"), Session: a}, nil); err != nil || !ok {
			t.Fatal(ok, err)
		}
		if p := <-got; p == nil || p.Session != "" || string(p.Value) != "v" {
			t.Fatalf("woken with %+v", p)
		}
		take(a, "w/1", "v")
		got = watch()
		s.ExpireSession(a)
		if p := <-got; p == nil || p.Session != "" {
			t.Fatalf("woken with %+v", p)
		}
	})
	t.Run("session reads block until the sessions change", func(t *testing.T) {
		a := newSession(t, c, nil)
		_, m, err := c.Session().Info(a, nil)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan *api.SessionEntry, 1)
		base := s.InFlight()
		go func() {
			e, _, _ := c.Session().Info(a, (&api.QueryOptions{WaitIndex: m.LastIndex, WaitTime: time.Minute}).WithContext(ctxT(t)))
			done <- e
		}()
		waitFor(t, func() bool { return s.InFlight() == base+1 })
		c.Session().Destroy(a, nil)
		if e := <-done; e != nil {
			t.Fatalf("woken with %+v", e)
		}
	})
	t.Run("TTL expiry and renewals", func(t *testing.T) {
		// Consul invalidates two TTLs after the last renewal.
		a := newSession(t, c, &api.SessionEntry{TTL: "100ms", LockDelay: time.Millisecond})
		take(a, "ttl/1", "v")
		start := time.Now()
		for time.Since(start) < 500*time.Millisecond {
			if e, _, err := c.Session().Renew(a, nil); err != nil || e == nil {
				t.Fatalf("renewal %v after start: %v %v", time.Since(start), e, err)
			}
			time.Sleep(30 * time.Millisecond)
		}
		if !s.FailRenewals(a, true) {
			t.Fatal("FailRenewals: no such session")
		}
		_, _, err := c.Session().Renew(a, nil)
		if err == nil || !strings.Contains(err.Error(), "500") {
			t.Fatalf("failing renewal: %v", err)
		}
		failedAt := time.Now()
		waitFor(t, func() bool { return s.LockHolder("ttl/1") == "" })
		if d := time.Since(failedAt); d < 100*time.Millisecond {
			t.Errorf("expired %v after the last renewal, before its TTL", d)
		}
		if e, _, _ := c.Session().Info(a, nil); e != nil {
			t.Fatalf("expired session still listed: %+v", e)
		}
		if p, _, _ := kv.Get("ttl/1", nil); p == nil || p.Session != "" || string(p.Value) != "v" {
			t.Fatalf("key after expiry: %+v", p)
		}
	})
	t.Run("serfHealth critical invalidates the node's sessions", func(t *testing.T) {
		s.AddInstance(Instance{ID: "w-1", Service: "web", Node: "n1"})
		bound := newSession(t, c, &api.SessionEntry{Node: "n1", LockDelay: time.Millisecond})
		free, _, err := c.Session().CreateNoChecks(&api.SessionEntry{Node: "n1"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		agent := newSession(t, c, nil)
		take(bound, "n1/lock", "v")
		s.SetCheck("w-1", "serfHealth", "warning")
		if e, _, _ := c.Session().Info(bound, nil); e == nil {
			t.Fatal("a warning invalidated the session")
		}
		s.SetCheck("w-1", "serfHealth", "critical")
		for id, alive := range map[string]bool{bound: false, free: true, agent: true} {
			if e, _, _ := c.Session().Info(id, nil); (e != nil) != alive {
				t.Errorf("session %s alive %t, want %t", id, e != nil, alive)
			}
		}
		if s.LockHolder("n1/lock") != "" {
			t.Error("the lock outlived its session")
		}
	})
}

// TestAPILock runs the api package's Lock recipe, which relies on most of
// the semantics: Session and Flags in reads, acquire, blocking reads woken
// by release, DeleteCAS.
func TestAPILock(t *testing.T) {
	s := New(t, Options{})
	c := client(t, s, "")
	opts := func() *api.LockOptions {
		return &api.LockOptions{Key: "service/leader", Value: []byte("me"), SessionOpts: &api.SessionEntry{TTL: "10s", LockDelay: time.Millisecond}}
	}
	l1, err := c.LockOpts(opts())
	if err != nil {
		t.Fatal(err)
	}
	lost1, err := l1.Lock(nil)
	if err != nil || lost1 == nil {
		t.Fatalf("l1.Lock: %v", err)
	}
	l2, _ := c.LockOpts(opts())
	got2 := make(chan (<-chan struct{}), 1)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		ch, err := l2.Lock(stop)
		if err != nil {
			t.Error(err)
		}
		got2 <- ch
	}()
	// A sleep, not a poll: it gives l2 time to (wrongly) take the held lock.
	time.Sleep(50 * time.Millisecond)
	select {
	case <-got2:
		t.Fatal("l2 took a held lock")
	default:
	}
	if err := l1.Unlock(); err != nil {
		t.Fatal(err)
	}
	var lost2 <-chan struct{}
	select {
	case lost2 = <-got2:
	case <-time.After(10 * time.Second):
		t.Fatal("l2 did not take the released lock")
	}
	if lost2 == nil {
		t.Fatal("l2.Lock gave up")
	}
	select {
	case <-lost1:
	case <-time.After(10 * time.Second):
		t.Fatal("l1's monitor did not end")
	}

	// l2's session expires: its monitor sees the lock go.
	holder := s.LockHolder("service/leader")
	if holder == "" || !s.ExpireSession(holder) {
		t.Fatalf("holder %q", holder)
	}
	select {
	case <-lost2:
	case <-time.After(10 * time.Second):
		t.Fatal("l2 was not told it lost the lock")
	}
	l2.Unlock()
	if err := l2.Destroy(); err != nil {
		t.Fatalf("Destroy: %v", err)
	}
	if _, ok := s.KV("service/leader"); ok {
		t.Error("Destroy left the key")
	}
}
