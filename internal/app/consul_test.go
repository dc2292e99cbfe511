package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/meridian-lb/meridian/catalog/consultest"
)

func consulConfig(addr, extra string) string {
	return fmt.Sprintf(`
listen: {admin: 127.0.0.1:0}
consul: {address: %s}
pools:
  web: {consul: {service: web}}
  backup: {endpoints: [127.0.0.1:9]}
services:
  s: {policy: failover, pools: [web, backup]}
routes:
  - {name: r, service: s}
%s`, addr, extra)
}

// endpoints lists a pool's endpoint addresses from /api/v1/table.
func (h *harness) endpoints(pool string) []string {
	h.t.Helper()
	var out []string
	for _, e := range h.table().Pools[pool].Endpoints {
		out = append(out, e.Address)
	}
	sort.Strings(out)
	return out
}

func (h *harness) waitEndpoints(pool string, want ...string) {
	h.t.Helper()
	h.waitFor(fmt.Sprintf("pool %s endpoints %v", pool, want), func() bool {
		return strings.Join(h.endpoints(pool), " ") == strings.Join(want, " ")
	})
}

// TestConsulCatalogFeedsPools follows instances as they register, fail and
// leave, and keeps the last known set through an outage.
func TestConsulCatalogFeedsPools(t *testing.T) {
	srv := consultest.New(t, consultest.Options{})
	path := filepath.Join(t.TempDir(), "meridian.yaml")
	write(t, path, consulConfig(srv.Addr, ""))
	h := start(t, path)
	h.waitFor("the first Consul answer", func() bool { return len(h.table().Pending) == 0 })
	if got := h.endpoints("web"); len(got) != 0 {
		t.Fatalf("web = %v before any instance", got)
	}

	srv.AddInstance(consultest.Instance{ID: "w1", Service: "web", Address: "127.0.0.1", Port: 7001,
		Meta: map[string]string{"meridian-weight": "7", "meridian-region": "eu"}})
	srv.AddInstance(consultest.Instance{ID: "w2", Service: "web", Address: "127.0.0.1", Port: 7002})
	h.waitEndpoints("web", "127.0.0.1:7001", "127.0.0.1:7002")
	for _, e := range h.table().Pools["web"].Endpoints {
		if e.Address == "127.0.0.1:7001" && (e.Weight != 7 || e.Region != "eu") {
			t.Errorf("meta not applied: %+v", e)
		}
	}

	if err := srv.SetStatus("w2", "critical"); err != nil {
		t.Fatal(err)
	}
	h.waitEndpoints("web", "127.0.0.1:7001")

	srv.Fail(consultest.Fault{Code: 500})
	h.waitFor("meridian_consul_up 0", func() bool { return h.metric("meridian_consul_up") == "0" })
	if got := h.endpoints("web"); len(got) != 1 {
		t.Errorf("an outage changed the pool: %v (want the last known instance)", got)
	}
	srv.ClearFaults()
	srv.RemoveInstance("w1")
	h.waitEndpoints("web")
	if got := h.metric("meridian_consul_up"); got != "1" {
		t.Errorf("meridian_consul_up after recovery = %q", got)
	}
}

// TestConsulUnreachableAtStart: pools stay empty and /readyz says why until
// the first answer.
func TestConsulUnreachableAtStart(t *testing.T) {
	srv := consultest.New(t, consultest.Options{})
	srv.Hang("/v1/health/")
	path := filepath.Join(t.TempDir(), "meridian.yaml")
	write(t, path, consulConfig(srv.Addr, ""))
	h := start(t, path)
	code, body := h.get("/readyz")
	if code != 503 || !strings.Contains(body, `waiting for Consul service "web"`) {
		t.Errorf("readyz = %d %q, want 503 naming the selection", code, body)
	}
	srv.AddInstance(consultest.Instance{ID: "w1", Service: "web", Address: "127.0.0.1", Port: 7001})
	srv.Unhang()
	h.waitEndpoints("web", "127.0.0.1:7001")
	if code, _ := h.get("/readyz"); code != 200 {
		t.Errorf("readyz after the first answer = %d", code)
	}
}

// TestConsulTokenNeverLogged runs with a token the server demands and
// echoes in its errors, and checks no log line carries it.
func TestConsulTokenNeverLogged(t *testing.T) {
	const token = "sup3r-s3cret-t0ken"
	srv := consultest.New(t, consultest.Options{Token: token})
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "consul.token")
	write(t, tokenFile, token+"\n")
	path := filepath.Join(dir, "meridian.yaml")
	write(t, path, strings.Replace(consulConfig(srv.Addr, ""), "consul: {address: "+srv.Addr+"}",
		"consul: {address: "+srv.Addr+", token_file: "+tokenFile+"}", 1))
	core, logs := observer.New(zapcore.DebugLevel)
	h := start(t, path, func(o *Options) { o.Logger = zap.New(core) })
	srv.AddInstance(consultest.Instance{ID: "w1", Service: "web", Address: "127.0.0.1", Port: 7001})
	h.waitEndpoints("web", "127.0.0.1:7001")
	if c, ok := srv.LastCall("/v1/health/service/web"); !ok || c.Token != token || c.TokenInQuery {
		t.Errorf("token not sent in the header: %+v", c)
	}
	srv.Fail(consultest.Fault{Code: 403, EchoToken: true})
	h.waitFor("an outage log line", func() bool {
		return logs.FilterLevelExact(zapcore.WarnLevel).Len()+logs.FilterLevelExact(zapcore.ErrorLevel).Len() > 0
	})
	srv.ClearFaults()
	_, body := h.get("/api/v1/table")
	for _, e := range logs.All() {
		line, _ := json.Marshal(e.ContextMap())
		if strings.Contains(e.Message+string(line), token) {
			t.Errorf("token in log: %s %s", e.Message, line)
		}
	}
	if strings.Contains(body, token) {
		t.Error("token in /api/v1/table")
	}
}

// TestFleetSharesKVConfig runs two instances from one Consul KV key: a
// change to the key reaches both.
func TestFleetSharesKVConfig(t *testing.T) {
	srv := consultest.New(t, consultest.Options{})
	srv.PutKV("meridian/config", []byte(configText(1)))
	var fleet []*harness
	for range 2 {
		fleet = append(fleet, start(t, "consul://meridian/config", func(o *Options) { o.ConsulAddr = srv.Addr }))
	}
	for _, h := range fleet {
		h.waitRoute("r1")
	}
	srv.PutKV("meridian/config", []byte(configText(2)))
	for _, h := range fleet {
		h.waitRoute("r2")
	}
	srv.PutKV("meridian/config", []byte("routes: [{name: broken, service: nope}]"))
	for _, h := range fleet {
		h.waitFor("rejected KV config", func() bool { return !h.table().LastReload.OK })
		if rs := h.table().Routes; len(rs) != 1 || rs[0].Name != "r2" {
			t.Errorf("bad KV config replaced the table: %+v", rs)
		}
	}
}

// TestRegistration registers the instance with the agent and deregisters it
// on shutdown.
func TestRegistration(t *testing.T) {
	srv := consultest.New(t, consultest.Options{})
	path := filepath.Join(t.TempDir(), "meridian.yaml")
	write(t, path, fmt.Sprintf("listen: {admin: 127.0.0.1:0, http: 127.0.0.1:0}\nconsul: {address: %s, register: {name: edge, tags: [eu]}}\n", srv.Addr))
	a, err := New(Options{ConfigPath: path, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	<-a.Ready()
	h := &harness{t: t, app: a, admin: "http://" + a.Addrs().Admin}
	h.waitFor("registration", func() bool { return len(srv.Registrations()) == 1 })
	for _, r := range srv.Registrations() {
		if r.Name != "edge" || len(r.Tags) != 1 || r.Tags[0] != "eu" || r.Check == nil || !strings.HasSuffix(r.Check.HTTP, "/readyz") {
			t.Errorf("registration = %+v (check %+v)", r, r.Check)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := len(srv.Registrations()); n != 0 {
		t.Errorf("%d registrations left after shutdown", n)
	}
}

// TestConsulInstanceGetsTraffic: an instance registered in Consul receives
// HTTP traffic through Meridian and appears in DNS answers, and stops
// receiving both once it fails its Consul check or is deregistered.
func TestConsulInstanceGetsTraffic(t *testing.T) {
	srv := consultest.New(t, consultest.Options{})
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "from consul instance")
	}))
	t.Cleanup(backend.Close)
	port := backend.Listener.Addr().(*net.TCPAddr).Port
	path := filepath.Join(t.TempDir(), "meridian.yaml")
	write(t, path, fmt.Sprintf(`
listen: {admin: 127.0.0.1:0, http: 127.0.0.1:0, dns: 127.0.0.1:0}
consul: {address: %s}
pools:
  web: {consul: {service: web}, on_all_down: fail}
services:
  s: {pools: [web]}
routes:
  - {name: r, service: s}
zones:
  - origin: example.test.
    soa: {ns: ns1.example.test., mbox: hostmaster.example.test.}
    ns: [ns1.example.test.]
    records:
      - {name: www, type: A, service: s, on_all_down: nodata}
`, srv.Addr))
	h := start(t, path)
	addrs := h.app.Addrs()
	httpGet := func() (int, string) {
		resp, err := http.Get("http://" + addrs.HTTP + "/")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	dnsA := func() []string {
		m := new(mdns.Msg)
		m.SetQuestion("www.example.test.", mdns.TypeA)
		r, err := mdns.Exchange(m, addrs.DNS)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, rr := range r.Answer {
			if a, ok := rr.(*mdns.A); ok {
				out = append(out, a.A.String())
			}
		}
		return out
	}
	h.waitFor("the first Consul answer", func() bool { return len(h.table().Pending) == 0 })
	if code, _ := httpGet(); code != 503 {
		t.Errorf("before registration: HTTP %d, want 503", code)
	}
	if got := dnsA(); len(got) != 0 {
		t.Errorf("before registration: DNS %v, want NODATA", got)
	}

	began := time.Now()
	srv.AddInstance(consultest.Instance{ID: "w1", Service: "web", Address: "127.0.0.1", Port: port})
	h.waitFor("HTTP traffic to the instance", func() bool { code, body := httpGet(); return code == 200 && body == "from consul instance" })
	h.waitFor("the instance in DNS", func() bool { return strings.Join(dnsA(), ",") == "127.0.0.1" })
	t.Logf("registered → serving HTTP and DNS in %v", time.Since(began))

	began = time.Now()
	if err := srv.SetStatus("w1", "critical"); err != nil {
		t.Fatal(err)
	}
	h.waitFor("no traffic after the check fails", func() bool { code, _ := httpGet(); return code == 503 && len(dnsA()) == 0 })
	t.Logf("failing → out of HTTP and DNS in %v", time.Since(began))

	if err := srv.SetStatus("w1", "passing"); err != nil {
		t.Fatal(err)
	}
	h.waitFor("traffic again", func() bool { code, _ := httpGet(); return code == 200 })
	began = time.Now()
	srv.RemoveInstance("w1")
	h.waitFor("no traffic after deregistration", func() bool { code, _ := httpGet(); return code == 503 && len(dnsA()) == 0 })
	t.Logf("deregistered → out of HTTP and DNS in %v", time.Since(began))
}

// TestCatalogUpdatesWhileFileRejected: a file that parses but does not
// compile keeps the last good config, and that config still follows Consul.
func TestCatalogUpdatesWhileFileRejected(t *testing.T) {
	srv := consultest.New(t, consultest.Options{})
	path := filepath.Join(t.TempDir(), "meridian.yaml")
	write(t, path, consulConfig(srv.Addr, ""))
	h := start(t, path)
	srv.AddInstance(consultest.Instance{ID: "w1", Service: "web", Address: "127.0.0.1", Port: 7001})
	h.waitEndpoints("web", "127.0.0.1:7001")

	// Two geo.nets entries for the same network pass validation but not
	// compilation.
	write(t, path, consulConfig(srv.Addr, "geo: {nets: {10.0.0.0/8: eu, 10.0.0.1/8: us}}\n"))
	h.waitFor("the rejected file", func() bool { return !h.table().LastReload.OK })
	srv.AddInstance(consultest.Instance{ID: "w2", Service: "web", Address: "127.0.0.1", Port: 7002})
	h.waitEndpoints("web", "127.0.0.1:7001", "127.0.0.1:7002")
	if doc := h.table(); doc.LastReload.OK {
		t.Error("a catalog update cleared the file's error")
	}
	if got := h.metric(`meridian_config_reloads_total{result="failure"}`); got != "1" {
		t.Errorf("failures = %s, want 1 (catalog pokes must not count the same bad file again)", got)
	}
}
