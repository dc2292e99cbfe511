package app

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	"go.uber.org/zap"

	"github.com/meridian-lb/meridian/catalog/consultest"
	"github.com/meridian-lb/meridian/proxy"
)

// The fleet harness: instances of Meridian on loopback, each reaching the
// in-repo Consul test server through its own Link (so one can be
// partitioned), registered under "edge" with the agent running their
// /readyz checks, in regions eu and us.

// fleetBackend is an upstream whose health check can fail for everyone
// (down) or only for the probes of some instances (blocked: the instance is
// "partitioned from" it); requests are answered with its name.
type fleetBackend struct {
	name    string
	addr    string
	down    atomic.Bool
	blocked sync.Map // instance name → true
	hits    atomic.Int64
}

func newFleetBackend(t *testing.T, name string) *fleetBackend {
	t.Helper()
	b := &fleetBackend{name: name}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b.addr = ln.Addr().String()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			if _, blocked := b.blocked.Load(r.Header.Get("X-From")); blocked || b.down.Load() {
				http.Error(w, "unreachable from here", http.StatusServiceUnavailable)
			}
			return
		}
		b.hits.Add(1)
		io.WriteString(w, b.name)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return b
}

func (b *fleetBackend) block(instance string, on bool) {
	if on {
		b.blocked.Store(instance, true)
	} else {
		b.blocked.Delete(instance)
	}
}

const fleetConfig = `region: %[1]s
listen: {http: 127.0.0.1:0, dns: 127.0.0.1:0, admin: 127.0.0.1:0}
consul:
  address: %[2]s
  datacenter: dc1
  register: {name: edge, check_interval: 100ms}
  fleet: {session_ttl: 1s}
%[3]s
checks:
  up: {type: http, path: /healthz, %[11]s, headers: {X-From: %[4]s}}
pools:
  web-eu: {region: eu, endpoints: [%[5]s], check: up}
  web-us: {region: us, endpoints: [%[6]s], check: up}
  api: {endpoints: [%[7]s], check: up}
  us-only: {region: us, endpoints: [%[8]s], check: up}
  backup: {endpoints: [%[9]s], check: up}
%[10]s
services:
  web: {policy: geo, pools: [web-eu, web-us], on_all_down: forward}
  api: {pools: [api]}
  usonly: {pools: [us-only]}
  usapi: {pools: [us-only, backup]}
  dcapi: {pools: [dcapi]}
routes:
  - {name: web, match: {host: web.example.test}, service: web}
  - {name: usapi, match: {host: usapi.example.test}, service: usapi}
  - {name: dcapi, match: {host: dcapi.example.test}, service: dcapi}
  - {name: api, service: api}
zones:
  - origin: example.test.
    soa: {ns: ns1.example.test., mbox: hostmaster.example.test.}
    ns: [ns1.example.test.]
    records:
      - {name: api, type: A, service: api, ttl: 30, on_all_down: nodata}
      - {name: usonly, type: A, service: usonly, ttl: 30, on_all_down: nodata}
`

// fleetEnv is a running fleet: the Consul stand-in, the backends, and the
// instances by name.
type fleetEnv struct {
	t      *testing.T
	srv    *consultest.Server
	eu, us *fleetBackend // the web pools'
	api    *fleetBackend
	usOnly *fleetBackend
	backup *fleetBackend
	inst   map[string]*fleetInstance
	quorum bool
	// probe is the check's timing (default: 100ms interval, rise and fall 1).
	probe string
}

type fleetInstance struct {
	*harness
	name   string
	region string
	link   *consultest.Link
	path   string
	stop   func()
}

// stopNow stops the instance before the test ends.
func (fi *fleetInstance) stopNow() { fi.stop() }

// startStoppable is start, with a stop the test may call early.
func startStoppable(t *testing.T, path string) (*harness, func()) {
	t.Helper()
	return runAppAt(t, path, zap.ErrorLevel, nil)
}

func newFleetEnv(t *testing.T, quorum bool) *fleetEnv {
	t.Helper()
	srv := consultest.New(t, consultest.Options{RunChecks: true, MinSessionTTL: time.Second})
	srv.AddInstance(consultest.Instance{ID: "dcapi-1", Service: "dcapi", Address: "127.0.0.1", Port: 1})
	srv.AddDatacenter("dc2")
	return &fleetEnv{
		t: t, srv: srv, quorum: quorum, inst: map[string]*fleetInstance{},
		eu: newFleetBackend(t, "web-eu"), us: newFleetBackend(t, "web-us"), api: newFleetBackend(t, "api"),
		usOnly: newFleetBackend(t, "us-only"), backup: newFleetBackend(t, "backup"),
	}
}

// start starts an instance named name in region.
func (e *fleetEnv) start(name, region string) *fleetInstance {
	e.t.Helper()
	fi := &fleetInstance{name: name, region: region, link: consultest.NewLink(e.t, e.srv.Addr), path: filepath.Join(e.t.TempDir(), name+".yaml")}
	q := ""
	if e.quorum {
		q = "health:\n  quorum: {min_reporters: 2, down_ratio: 0.5}"
	}
	dc := "  dcapi: {consul: {service: dcapi, datacenters: [dc2]}}"
	probe := e.probe
	if probe == "" {
		probe = "interval: 100ms, timeout: 90ms, rise: 1, fall: 1"
	}
	write(e.t, fi.path, fmt.Sprintf(fleetConfig, region, fi.link.Addr, q, name, e.eu.addr, e.us.addr, e.api.addr, e.usOnly.addr, e.backup.addr, dc, probe))
	fi.harness, fi.stop = startStoppable(e.t, fi.path)
	e.inst[name] = fi
	return fi
}

// startFleet starts e1 and e2 in eu and u1 in us, and waits until each
// sees all three in its member list and as reporters.
func (e *fleetEnv) startFleet() (e1, e2, u1 *fleetInstance) {
	e.t.Helper()
	e1, e2, u1 = e.start("e1", "eu"), e.start("e2", "eu"), e.start("u1", "us")
	for _, fi := range e.inst {
		fi.waitFor(fi.name+" sees the fleet", func() bool {
			st := fi.fleetDoc()
			return len(st.Members) == 3 && len(st.Reporters) == 3
		})
	}
	return e1, e2, u1
}

func (fi *fleetInstance) fleetDoc() fleetJSON {
	fi.t.Helper()
	code, body := fi.get("/api/v1/fleet")
	if code != 200 {
		fi.t.Fatalf("%s /api/v1/fleet: %d %s", fi.name, code, body)
	}
	var doc fleetJSON
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		fi.t.Fatalf("fleet JSON: %v\n%s", err, body)
	}
	return doc
}

// dnsA asks the instance for name.example.test A: the addresses, or nil
// for NODATA.
func (fi *fleetInstance) dnsA(name string) []string {
	fi.t.Helper()
	m := new(mdns.Msg)
	m.SetQuestion(name+".example.test.", mdns.TypeA)
	r, err := mdns.Exchange(m, fi.app.Addrs().DNS)
	if err != nil {
		fi.t.Fatal(err)
	}
	var out []string
	for _, rr := range r.Answer {
		if a, ok := rr.(*mdns.A); ok {
			out = append(out, a.A.String())
		}
	}
	return out
}

// request sends GET / for host to the instance's HTTP edge.
func (fi *fleetInstance) request(host string) (int, string, http.Header) {
	fi.t.Helper()
	req, _ := http.NewRequest("GET", "http://"+fi.app.Addrs().HTTP+"/", nil)
	req.Host = host
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		fi.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b), res.Header
}

func (fi *fleetInstance) endpointView(pool, addr string) (verdict string, views map[string]string) {
	for _, e := range fi.fleetDoc().Endpoints {
		if e.Pool == pool && e.Address == addr {
			return e.Verdict, e.Views
		}
	}
	return "", nil
}

// TestFleetQuorum: one instance that cannot reach an endpoint does not take
// it out of the fleet's DNS (nor its own), and still keeps its HTTP traffic
// off it; when two of three see it down, every instance's DNS withdraws it.
// The per-reporter view is in /api/v1/fleet.
func TestFleetQuorum(t *testing.T) {
	env := newFleetEnv(t, true)
	e1, e2, u1 := env.startFleet()
	all := []*fleetInstance{e1, e2, u1}
	for _, fi := range all {
		if got := fi.dnsA("usonly"); len(got) != 1 {
			t.Fatalf("%s usonly = %v before any failure", fi.name, got)
		}
	}
	// e1 is partitioned from region us's endpoint: its probes fail there.
	env.usOnly.block("e1", true)
	defer func() {
		if t.Failed() {
			_, b1 := e1.get("/api/v1/fleet")
			_, b2 := e2.get("/api/v1/fleet")
			t.Logf("e1: %s\ne2: %s", b1, b2)
		}
	}()
	e2.waitFor("e2 sees e1's report", func() bool {
		_, views := e2.endpointView("us-only", env.usOnly.addr)
		return views[e1.fleetDoc().Self] == "down"
	})
	for _, fi := range all {
		if got := fi.dnsA("usonly"); len(got) != 1 {
			t.Errorf("%s withdrew usonly from DNS (%v) though only e1 of three sees it down", fi.name, got)
		}
	}
	if v, _ := e1.endpointView("us-only", env.usOnly.addr); v != "up" {
		t.Errorf("e1's verdict for us-only: %q, want up (the fleet's)", v)
	}
	before := env.backup.hits.Load()
	if code, body, _ := e1.request("usapi.example.test"); code != 200 || body != "backup" {
		t.Errorf("e1's HTTP went to %q (%d), want backup: it cannot reach us-only itself", body, code)
	}
	if env.backup.hits.Load() == before {
		t.Error("backup got no request")
	}
	if m := e1.metric("meridian_fleet_quorum_overruled"); m != "1" {
		t.Errorf("meridian_fleet_quorum_overruled on e1 = %q", m)
	}

	env.usOnly.block("e2", true)
	for _, fi := range all {
		fi.waitFor(fi.name+" withdraws usonly", func() bool { return len(fi.dnsA("usonly")) == 0 })
	}
	env.usOnly.block("e1", false)
	env.usOnly.block("e2", false)
	for _, fi := range all {
		fi.waitFor(fi.name+" answers usonly again", func() bool { return len(fi.dnsA("usonly")) == 1 })
	}
}

// TestFleetRateLimitCountsMembers: the live instance list sizes rate
// limits with scope fleet.
func TestFleetRateLimitCountsMembers(t *testing.T) {
	env := newFleetEnv(t, false)
	e1, _, _ := env.startFleet()
	if n := e1.app.fleet(); n != 3 {
		t.Errorf("fleet size %d, want 3", n)
	}
	if m := e1.metric("meridian_fleet_members"); m != "3" {
		t.Errorf("meridian_fleet_members = %q", m)
	}
}

// TestFleetDrain: a drain made on one instance applies on every one (its
// DNS answers and HTTP traffic leave the endpoint everywhere), and enable
// lifts it everywhere.
func TestFleetDrain(t *testing.T) {
	env := newFleetEnv(t, false)
	e1, e2, u1 := env.startFleet()
	all := []*fleetInstance{e1, e2, u1}
	if code, body := e1.post("/api/v1/endpoints/api/" + env.api.addr + "/drain"); code != 200 {
		t.Fatalf("drain: %d %s", code, body)
	}
	for _, fi := range all {
		fi.waitFor(fi.name+" drains api", func() bool { return len(fi.dnsA("api")) == 0 })
		st := endpointState(fi.table(), "api", env.api.addr)
		if st != "draining" {
			t.Errorf("%s: api endpoint %s", fi.name, st)
		}
	}
	if doc := u1.fleetDoc(); len(doc.Overrides) != 1 || doc.Overrides[0].By != e1.fleetDoc().Self {
		t.Errorf("u1's shared overrides %+v", doc.Overrides)
	}
	if code, _, _ := u1.request("api.example.test"); code != http.StatusServiceUnavailable {
		t.Errorf("u1 served a request from a drained endpoint: %d", code)
	}
	if code, body := e2.post("/api/v1/endpoints/api/" + env.api.addr + "/enable"); code != 200 {
		t.Fatalf("enable: %d %s", code, body)
	}
	for _, fi := range all {
		fi.waitFor(fi.name+" undrains api", func() bool { return len(fi.dnsA("api")) == 1 })
	}
}

// TestFleetForwardsToNextRegion: when the eu edges' own region has no
// available pool for web, they forward its requests to the us edge at
// once (no DNS TTL to wait for); the us edge serves them from its region;
// when us is down as well, a forwarded request is served where it lands
// (failing open) and never forwarded again.
func TestFleetForwardsToNextRegion(t *testing.T) {
	env := newFleetEnv(t, false)
	e1, _, u1 := env.startFleet()
	if code, body, h := e1.request("web.example.test"); code != 200 || body != "web-eu" || h.Get(proxy.ForwardedToHeader) != "" {
		t.Fatalf("before: %d %q %v", code, body, h)
	}
	fail := time.Now()
	env.eu.down.Store(true)
	var served time.Duration
	e1.waitFor("e1 forwards web to us", func() bool {
		code, body, h := e1.request("web.example.test")
		if code == 200 && body == "web-us" && h.Get(proxy.ForwardedToHeader) == "us" {
			served = time.Since(fail)
			return true
		}
		return false
	})
	t.Logf("served from the next region %v after the local pool failed (probe interval 100ms, fall 1; DNS TTL 30s)", served.Round(time.Millisecond))
	if m := e1.metric(`meridian_fleet_forwards_total{region="us",result="ok",service="web"}`); m == "" || m == "0" {
		t.Errorf("forward metric on e1: %q", m)
	}
	if code, body := e1.get("/api/v1/explain?host=web.example.test&path=/"); code != 200 || !strings.Contains(body, "forwarded to an edge of region us") || !strings.Contains(body, `"forward": {`) {
		t.Errorf("explain on e1: %d %s", code, body)
	}
	var fw fleetJSON = e1.fleetDoc()
	if len(fw.Forwarding) != 1 || !fw.Forwarding[0].Forward || fw.Forwarding[0].To != "us" || len(fw.Forwarding[0].Edges) != 1 {
		t.Errorf("e1's forwarding explanation: %+v", fw.Forwarding)
	}
	// Both regions down: the forwarded request stops at u1.
	env.us.down.Store(true)
	u1.waitFor("u1's web-us down", func() bool { return endpointState(u1.table(), "web-us", env.us.addr) == "down" })
	code, body, h := e1.request("web.example.test")
	if code != 200 || body != "web-us" || h.Get(proxy.ForwardedToHeader) != "us" {
		t.Errorf("both down: %d %q %v (want u1 failing open to web-us)", code, body, h)
	}
	if m := u1.metric(`meridian_fleet_forwards_total{region="",result="loop",service="web"}`); m == "" || m == "0" {
		t.Errorf("u1 did not count the forwarded request it kept: %q", m)
	}
	env.eu.down.Store(false)
	e1.waitFor("e1 serves web itself again", func() bool {
		code, body, h := e1.request("web.example.test")
		return code == 200 && body == "web-eu" && h.Get(proxy.ForwardedToHeader) == ""
	})
}

// TestFleetPartitionFromConsul cuts one instance off Consul: its catalog
// data and its view of the fleet go stale (it keeps serving what it knew,
// answering DNS by its own health), its session lapses so the others stop
// counting its reports, and the others are otherwise unaffected.
func TestFleetPartitionFromConsul(t *testing.T) {
	env := newFleetEnv(t, true)
	e1, e2, u1 := env.startFleet()
	e1.link.Cut()
	e1.waitFor("e1's fleet view stale", func() bool { return e1.fleetDoc().Stale })
	for _, fi := range []*fleetInstance{e2, u1} {
		fi.waitFor(fi.name+" stops counting e1", func() bool { return len(fi.fleetDoc().Reporters) == 2 })
		if fi.fleetDoc().Stale {
			t.Errorf("%s's view went stale", fi.name)
		}
	}
	if m := e1.metric("meridian_fleet_view_stale"); m != "1" {
		t.Errorf("meridian_fleet_view_stale on e1 = %q", m)
	}
	if m := e1.metric("meridian_fleet_session_up"); m != "0" {
		t.Errorf("meridian_fleet_session_up on e1 = %q", m)
	}
	e1.waitFor("e1's catalog data marked stale", func() bool { return e1.metric("meridian_consul_up") == "0" })
	if got := e1.endpoints("dcapi"); len(got) != 1 {
		t.Errorf("e1 lost its last known catalog data: %v", got)
	}
	if m := e2.metric("meridian_consul_up"); m != "1" {
		t.Errorf("e2's Consul is fine, meridian_consul_up = %q", m)
	}
	if got := e1.dnsA("api"); len(got) != 1 {
		t.Errorf("e1 stopped answering api: %v", got)
	}
	if code, body, _ := e1.request("api.example.test"); code != 200 || body != "api" {
		t.Errorf("e1 stopped serving: %d %q", code, body)
	}
	// The others still decide by quorum: two of them see api down.
	env.api.block("e2", true)
	env.api.block("u1", true)
	for _, fi := range []*fleetInstance{e2, u1} {
		fi.waitFor(fi.name+" withdraws api", func() bool { return len(fi.dnsA("api")) == 0 })
	}
	if got := e1.dnsA("api"); len(got) != 1 {
		t.Errorf("stale e1 follows the fleet it cannot see: %v (its own health says up)", got)
	}
	e1.link.Restore()
	e1.waitFor("e1 back", func() bool { d := e1.fleetDoc(); return !d.Stale && len(d.Reporters) == 3 })
	e1.waitFor("e1 follows the quorum again", func() bool { return len(e1.dnsA("api")) == 0 })
}

// TestFleetKilledInstance stops an instance the way kill -9 does, as Consul
// sees it: no deregistration, no session destroyed (its link is cut first,
// then it stops). Its registration fails its check and leaves the member
// list; its session lapses and its reports vanish from the others' views.
func TestFleetKilledInstance(t *testing.T) {
	env := newFleetEnv(t, true)
	e1, e2, u1 := env.startFleet()
	u1.link.Cut()
	killed := time.Now()
	u1.stopNow()
	for _, fi := range []*fleetInstance{e1, e2} {
		fi.waitFor(fi.name+" drops u1's reports", func() bool { return len(fi.fleetDoc().Reporters) == 2 })
		fi.waitFor(fi.name+" drops u1 from the members", func() bool { return len(fi.fleetDoc().Members) == 2 })
	}
	t.Logf("u1's reports and registration gone %v after the kill (session TTL 1s, check interval 100ms)", time.Since(killed).Round(10*time.Millisecond))
	n := 0
	for _, s := range env.srv.Sessions() {
		if strings.HasPrefix(s.Name, "meridian fleet ") {
			n++
		}
	}
	if n != 2 {
		t.Errorf("%d fleet sessions left, want 2", n)
	}
	// With u1 gone, web in eu has nowhere to forward: served here.
	env.eu.down.Store(true)
	e1.waitFor("web-eu down", func() bool { return endpointState(e1.table(), "web-eu", env.eu.addr) == "down" })
	if code, _, h := e1.request("web.example.test"); h.Get(proxy.ForwardedToHeader) != "" {
		t.Errorf("forwarded to a dead region: %d %v", code, h)
	}
}

// TestFleetDatacenterFailover: a pool spanning dc1 and dc2 takes dc2's
// instances when dc1 has none passing; when dc2 stops answering, they keep
// serving, flagged stale in the API and a metric.
func TestFleetDatacenterFailover(t *testing.T) {
	env := newFleetEnv(t, false)
	e1 := env.start("e1", "eu")
	e1.waitEndpoints("dcapi", "127.0.0.1:1")
	env.srv.AddInstance(consultest.Instance{ID: "dcapi-2", Service: "dcapi", Address: "127.0.0.1", Port: 2, Datacenter: "dc2"})
	if err := env.srv.SetStatus("dcapi-1", "critical"); err != nil {
		t.Fatal(err)
	}
	e1.waitEndpoints("dcapi", "127.0.0.1:2")
	env.srv.StopDatacenter("dc2")
	e1.waitFor("dc2 flagged stale", func() bool {
		for _, d := range e1.fleetDoc().Datacenters {
			if d.Name == "dc2" && d.Stale {
				return true
			}
		}
		return false
	})
	if got := e1.endpoints("dcapi"); strings.Join(got, " ") != "127.0.0.1:2" {
		t.Errorf("dc2's last known instances lost: %v", got)
	}
	if m := e1.metric(`meridian_consul_datacenter_stale{datacenter="dc2"}`); m != "1" {
		t.Errorf("stale metric = %q", m)
	}
	env.srv.StartDatacenter("dc2")
	defer func() {
		if t.Failed() {
			for _, st := range e1.app.watcher.Status() {
				t.Logf("%+v", st)
			}
		}
	}()
	e1.waitFor("dc2 fresh", func() bool {
		for _, d := range e1.fleetDoc().Datacenters {
			if d.Name == "dc2" {
				return !d.Stale
			}
		}
		return false
	})
}

// TestFleetFailoverFigures measures, with probes every 500ms and fall 2,
// the time from an endpoint failing to every instance's DNS answer
// changing, without and with the quorum (which adds a report's trip
// through Consul), and the time until the eu edges serve web from the next
// region, against the record TTL they no longer wait for.
func TestFleetFailoverFigures(t *testing.T) {
	if testing.Short() {
		t.Skip("measures failover times")
	}
	for _, quorum := range []bool{false, true} {
		env := newFleetEnv(t, quorum)
		env.probe = "interval: 500ms, timeout: 400ms, rise: 1, fall: 2, jitter: 0.1"
		e1, e2, u1 := env.startFleet()
		all := []*fleetInstance{e1, e2, u1}
		fail := time.Now()
		env.api.down.Store(true)
		for _, fi := range all {
			fi.waitFor(fi.name+" withdraws api", func() bool { return len(fi.dnsA("api")) == 0 })
		}
		dnsTime := time.Since(fail)
		fail = time.Now()
		env.eu.down.Store(true)
		e1.waitFor("e1 forwards web", func() bool {
			_, body, h := e1.request("web.example.test")
			return body == "web-us" && h.Get(proxy.ForwardedToHeader) == "us"
		})
		fwdTime := time.Since(fail)
		t.Logf("quorum %-5v: endpoint failing -> DNS of all 3 instances changed: %v; eu pool failing -> request served from us: %v (record TTL 30s)",
			quorum, dnsTime.Round(time.Millisecond), fwdTime.Round(time.Millisecond))
		if !quorum {
			continue
		}
		// The quorum's own cost: u1 still reaches usonly, e1 and e2 no
		// longer do; u1's DNS changes only through their reports.
		fail = time.Now()
		env.usOnly.block("e1", true)
		env.usOnly.block("e2", true)
		var localDown time.Duration
		for _, fi := range []*fleetInstance{e1, e2} {
			fi.waitFor(fi.name+" sees usonly down", func() bool {
				return endpointState(fi.table(), "us-only", env.usOnly.addr) == "down"
			})
		}
		localDown = time.Since(fail)
		u1.waitFor("u1 withdraws usonly by quorum", func() bool { return len(u1.dnsA("usonly")) == 0 })
		t.Logf("quorum: e1 and e2 both see usonly down after %v; u1's DNS follows %v later (reports through Consul; polled every 20ms)",
			localDown.Round(time.Millisecond), (time.Since(fail) - localDown).Round(time.Millisecond))
	}
}

// TestFleetRegionFlag: Options.Region (run -region) overrides the config's
// region, for fleets that share one config, in the registration and in
// the table; a bad name is refused at start.
func TestFleetRegionFlag(t *testing.T) {
	env := newFleetEnv(t, false)
	fi := &fleetInstance{name: "r1", link: consultest.NewLink(t, env.srv.Addr), path: filepath.Join(t.TempDir(), "r1.yaml")}
	write(t, fi.path, fmt.Sprintf(fleetConfig, "eu", fi.link.Addr, "", "r1", env.eu.addr, env.us.addr, env.api.addr, env.usOnly.addr, env.backup.addr, "  dcapi: {endpoints: [127.0.0.1:1]}", "interval: 1s"))
	h := start(t, fi.path, func(o *Options) { o.Region = "us" })
	if r := h.app.live.Load().Config.Region; r != "us" {
		t.Errorf("table region %q", r)
	}
	h.waitFor("the registration in region us", func() bool {
		for _, reg := range env.srv.Registrations() {
			if reg.Meta["meridian-region"] == "us" {
				return true
			}
		}
		return false
	})
	if _, err := New(Options{ConfigPath: fi.path, Region: "eu west", Logger: zap.NewNop()}); err == nil || !strings.Contains(err.Error(), `region "eu west"`) {
		t.Errorf("bad -region: %v", err)
	}
}
