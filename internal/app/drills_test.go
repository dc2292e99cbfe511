package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/meridian-lb/meridian/internal/audit"
	"github.com/meridian-lb/meridian/routing"
)

// guardBackend is an HTTP upstream on its own loopback address (so DNS
// answers tell pools apart) that answers its name, and whose /health can
// be made to fail while it keeps serving: a health check that fails
// although the upstream works is what a guard holds against.
type guardBackend struct {
	name string
	addr string
	sick atomic.Bool
	// release ends the requests to /slow, which wait for it.
	release chan struct{}
}

func newGuardBackend(t *testing.T, name, ip string) *guardBackend {
	t.Helper()
	b := &guardBackend{name: name, release: make(chan struct{})}
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	b.addr = ln.Addr().String()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" && b.sick.Load() {
			http.Error(w, "sick", http.StatusInternalServerError)
			return
		}
		if r.URL.Path == "/slow" {
			select {
			case <-b.release:
			case <-r.Context().Done():
			}
		}
		io.WriteString(w, b.name)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return b
}

func (b *guardBackend) ip() string { h, _, _ := net.SplitHostPort(b.addr); return h }

// guardSetup runs an App with pools a (127.0.0.2) and b (127.0.0.3) under
// one failover service web, with guard (a YAML flow mapping or ""), an
// HTTP route for web.test and a steered DNS record www.example.test.
func guardSetup(t *testing.T, guard string) (h *harness, a, b *guardBackend, auth []string) {
	t.Helper()
	a, b = newGuardBackend(t, "a", "127.0.0.2"), newGuardBackend(t, "b", "127.0.0.3")
	dir := t.TempDir()
	writeTokens(t, dir)
	if guard != "" {
		guard = ", guard: " + guard
	}
	path := filepath.Join(dir, "meridian.yaml")
	write(t, path, fmt.Sprintf(`
listen: {admin: 127.0.0.1:0, http: 127.0.0.1:0, dns: 127.0.0.1:0}
admin:
  token_file: %[1]s/default.token
  tokens: [{name: ops, file: %[1]s/ops.token}]
checks:
  hc: {type: http, path: /health, interval: 100ms, timeout: 90ms, rise: 1, fall: 3}
pools:
  a: {endpoints: [%[2]s], check: hc}
  b: {endpoints: [%[3]s], check: hc}
services:
  web: {pools: [a, b]%[4]s}
routes:
  - {name: web, match: {host: web.test}, service: web}
zones:
  - origin: example.test.
    soa: {ns: ns1.example.test., mbox: hostmaster.example.test.}
    ns: [ns1.example.test.]
    records:
      - {name: www, type: A, ttl: 30, service: web}
`, dir, a.addr, b.addr, guard))
	h = start(t, path)
	auth = []string{"Authorization", "Bearer s3cret-ops"}
	h.waitFor("a and b up", func() bool {
		doc := h.tableAuth(auth)
		return doc.Pools["a"].Endpoints[0].Available && doc.Pools["b"].Endpoints[0].Available &&
			doc.Pools["a"].Endpoints[0].Health != nil && doc.Pools["a"].Endpoints[0].Health.State == "up" &&
			doc.Pools["b"].Endpoints[0].Health != nil && doc.Pools["b"].Endpoints[0].Health.State == "up"
	})
	return h, a, b, auth
}

func (h *harness) tableAuth(auth []string) tableJSON {
	h.t.Helper()
	code, body := h.get("/api/v1/table", auth...)
	if code != 200 {
		h.t.Fatalf("table: %d %s", code, body)
	}
	var doc tableJSON
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		h.t.Fatalf("table JSON: %v\n%s", err, body)
	}
	return doc
}

// do sends method path with an optional JSON body.
func (h *harness) do(method, path, body string, header ...string) (int, string) {
	h.t.Helper()
	req, _ := http.NewRequest(method, h.admin+path, strings.NewReader(body))
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// web sends GET / for web.test through the proxy and returns the status
// and the upstream's name.
func (h *harness) web() (int, string) {
	h.t.Helper()
	req, _ := http.NewRequest("GET", "http://"+h.app.Addrs().HTTP+"/", nil)
	req.Host = "web.test"
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// www asks the DNS server for www.example.test A and returns the addresses.
func (h *harness) www() []string {
	h.t.Helper()
	m := new(mdns.Msg)
	m.SetQuestion("www.example.test.", mdns.TypeA)
	r, err := mdns.Exchange(m, h.app.Addrs().DNS)
	if err != nil {
		h.t.Fatal(err)
	}
	var out []string
	for _, rr := range r.Answer {
		if a, ok := rr.(*mdns.A); ok {
			out = append(out, a.A.String())
		}
	}
	return out
}

func (h *harness) drill(path string, auth []string) DrillResult {
	h.t.Helper()
	code, body := h.get(path, auth...)
	if code != 200 {
		h.t.Fatalf("GET %s: %d %s", path, code, body)
	}
	var d DrillResult
	if err := json.Unmarshal([]byte(body), &d); err != nil {
		h.t.Fatalf("drill JSON: %v\n%s", err, body)
	}
	return d
}

// TestGuardHoldsWhenChecksFail: web's guard wants both pools serving.
// When a's health check fails (a still serves), the guard holds a: HTTP
// still answers from a and DNS still answers a's address, the table and
// explain say why, and the metrics raise the alert. When a's check passes
// again, the hold is released.
func TestGuardHoldsWhenChecksFail(t *testing.T) {
	h, a, b, auth := guardSetup(t, "{min_pools: 2}")
	if code, who := h.web(); code != 200 || who != "a" {
		t.Fatalf("healthy: web.test = %d %q, want a", code, who)
	}
	if st := h.tableAuth(auth).Services["web"].Guard; st == nil || st.State != routing.GuardOK {
		t.Fatalf("healthy: guard %+v, want ok", st)
	}

	a.sick.Store(true)
	h.waitFor("a held", func() bool {
		st := h.tableAuth(auth).Services["web"].Guard
		return st != nil && st.State == routing.GuardHolding && slices.Equal(st.Held, []string{"a"})
	})
	doc := h.tableAuth(auth)
	if ep := doc.Pools["a"].Endpoints[0]; !ep.Available || ep.Health.State != "down" || !slices.Equal(doc.Pools["a"].HeldBy, []string{"web"}) {
		t.Errorf("held pool a: endpoint available %t state %s, held_by %v; want available, down, [web]", ep.Available, ep.Health.State, doc.Pools["a"].HeldBy)
	}
	if st := doc.Services["web"].Guard; !strings.Contains(st.Reason, "holding a") {
		t.Errorf("reason %q", st.Reason)
	}
	for range 5 {
		if code, who := h.web(); code != 200 || who != "a" {
			t.Fatalf("holding: web.test = %d %q, want a (held, not failed over to b)", code, who)
		}
	}
	if got := h.www(); !slices.Equal(got, []string{a.ip()}) {
		t.Errorf("holding: www A = %v, want a's %s", got, a.ip())
	}
	if got := h.metric(`meridian_service_guard_active{service="web"}`); got != "1" {
		t.Errorf("guard_active = %q, want 1", got)
	}
	if got := h.metric(`meridian_service_guard_holds_total{service="web"}`); got != "1" {
		t.Errorf("guard_holds_total = %q, want 1", got)
	}
	code, body := h.get("/api/v1/explain?host=web.test&path=/", auth...)
	var ex routing.HTTPExplanation
	if err := json.Unmarshal([]byte(body), &ex); code != 200 || err != nil {
		t.Fatalf("explain: %d %v %s", code, err, body)
	}
	if ex.Pool != "a" || ex.Service == nil || ex.Service.Guard == nil || ex.Service.Guard.State != routing.GuardHolding ||
		!slices.Equal(ex.Service.Pools[0].HeldBy, []string{"web"}) || !strings.Contains(ex.Service.Pools[0].Endpoints[0].Reason, "held in service by the failover guard of web") {
		t.Errorf("explain: pool %s, service %+v", ex.Pool, ex.Service)
	}

	a.sick.Store(false)
	h.waitFor("released", func() bool {
		st := h.tableAuth(auth).Services["web"].Guard
		return st != nil && st.State == routing.GuardOK && len(st.Held) == 0
	})
	if got := h.metric(`meridian_service_guard_active{service="web"}`); got != "0" {
		t.Errorf("released: guard_active = %q, want 0", got)
	}
	if doc := h.tableAuth(auth); doc.Pools["a"].HeldBy != nil {
		t.Errorf("released: a held_by %v", doc.Pools["a"].HeldBy)
	}

	// b fails its checks too, after a: the guard holds b, and a keeps
	// HTTP and DNS as the first pool.
	b.sick.Store(true)
	h.waitFor("b held", func() bool {
		st := h.tableAuth(auth).Services["web"].Guard
		return st.State == routing.GuardHolding && slices.Equal(st.Held, []string{"b"})
	})
	if code, who := h.web(); code != 200 || who != "a" {
		t.Errorf("b held: web.test = %d %q, want a", code, who)
	}
}

// TestGuardRefusesDrain: a drain through the admin API that would leave
// web with one pool is refused with 409 and the reason; with ?force=true
// it applies, traffic moves, and the audit log names the token.
func TestGuardRefusesDrain(t *testing.T) {
	h, a, b, auth := guardSetup(t, "{min_pools: 2}")
	drain := "/api/v1/endpoints/a/" + a.addr + "/drain"
	code, body := h.post(drain, auth...)
	if code != http.StatusConflict || !strings.Contains(body, "service web: guard min_pools 2: a would stop serving, leaving 1 pool (b) serving") {
		t.Fatalf("drain = %d %q, want 409 with the reason", code, body)
	}
	if doc := h.tableAuth(auth); doc.Pools["a"].Endpoints[0].Health.Override != "" {
		t.Fatalf("a refused drain applied: %+v", doc.Pools["a"].Endpoints[0].Health)
	}
	if code, _ := h.post("/api/v1/endpoints/a/"+a.addr+"/down", auth...); code != http.StatusConflict {
		t.Errorf("force down = %d, want 409", code)
	}
	if code, _ := h.post(drain+"?force=maybe", auth...); code != http.StatusBadRequest {
		t.Errorf("force=maybe = %d, want 400", code)
	}
	code, body = h.post(drain+"?force=true", auth...)
	if code != 200 || !strings.Contains(body, `"draining"`) {
		t.Fatalf("forced drain = %d %s", code, body)
	}
	if code, who := h.web(); code != 200 || who != "b" {
		t.Errorf("after the forced drain: web.test = %d %q, want b", code, who)
	}
	if got := h.www(); !slices.Equal(got, []string{b.ip()}) {
		t.Errorf("after the forced drain: www A = %v, want b's", got)
	}
	// The operator's drain is never undone by the guard: a's check still
	// passes, but a is drained, and the guard is below its minimum.
	st := h.tableAuth(auth).Services["web"].Guard
	if st.State != routing.GuardBelow || !strings.Contains(st.Reason, "cannot hold a") {
		t.Errorf("guard after the forced drain: %+v", st)
	}
	var refused, forced bool
	for _, e := range h.auditDoc("s3cret-ops") {
		if e.Action != "drain" || e.Target != "a/"+a.addr {
			continue
		}
		switch {
		case e.Result == "refused: guard" && e.Token == "ops" && strings.Contains(e.Detail, "a would stop serving"):
			refused = true
		case e.Result == "ok" && e.Token == "ops" && strings.Contains(e.Detail, "forced past guard: service web"):
			forced = true
		}
	}
	if !refused || !forced {
		t.Errorf("audit: refused %t, forced %t; want both recorded with token ops:\n%+v", refused, forced, h.auditDoc("s3cret-ops"))
	}
	// Enabling never needs force.
	if code, _ := h.post("/api/v1/endpoints/a/"+a.addr+"/enable", auth...); code != 200 {
		t.Errorf("enable = %d", code)
	}
}

// TestDrill drains pool a of web for a while: traffic moves to b for both
// layers, the drill measures when HTTP and DNS stopped sending to a and
// when they came back, and the endpoints are restored.
func TestDrill(t *testing.T) {
	h, a, b, auth := guardSetup(t, "")
	// A request in flight on a when the drill starts finishes there.
	slow := make(chan string, 1)
	go func() {
		req, _ := http.NewRequest("GET", "http://"+h.app.Addrs().HTTP+"/slow", nil)
		req.Host = "web.test"
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			slow <- err.Error()
			return
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		slow <- fmt.Sprint(res.StatusCode, " ", string(body))
	}()
	h.waitFor("the slow request in flight on a", func() bool { return h.app.live.Load().Pools["a"].Endpoints[0].InFlight() == 1 })
	code, body := h.do("POST", "/api/v1/drills", `{"service": "web", "pool": "a", "duration": "1s"}`, auth...)
	if code != http.StatusCreated {
		t.Fatalf("POST drill = %d %s", code, body)
	}
	var d DrillResult
	if err := json.Unmarshal([]byte(body), &d); err != nil {
		t.Fatal(err)
	}
	if d.ID == "" || d.State != drillRunning || !slices.Equal(d.Endpoints, []string{"a/" + a.addr}) || !d.HTTP.ServedBefore || !d.DNS.ServedBefore || d.DNS.TTL != 30 {
		t.Fatalf("drill %+v", d)
	}
	// The drain applies before the answer.
	if code, who := h.web(); code != 200 || who != "b" {
		t.Errorf("during the drill: web.test = %d %q, want b", code, who)
	}
	if got := h.www(); !slices.Equal(got, []string{b.ip()}) {
		t.Errorf("during the drill: www A = %v, want b's", got)
	}
	if ep := h.tableAuth(auth).Pools["a"].Endpoints[0].Health; ep.Override != "drain" || ep.OverrideSource != "drill:"+d.ID {
		t.Errorf("during the drill: a's override %q from %q", ep.Override, ep.OverrideSource)
	}
	if code, body := h.do("POST", "/api/v1/drills", `{"service": "web", "pool": "b", "duration": "1s"}`, auth...); code != http.StatusConflict || !strings.Contains(body, "one drill per service") {
		t.Errorf("second drill on web = %d %s, want 409", code, body)
	}
	close(a.release)
	if got := <-slow; got != "200 a" {
		t.Errorf("the request in flight at the drain: %s, want 200 a", got)
	}
	h.waitFor("the drill done", func() bool { return h.drill("/api/v1/drills/"+d.ID, auth).State == drillDone })
	d = h.drill("/api/v1/drills/"+d.ID, auth)
	t.Logf("drill %s: HTTP drained in %s, recovered in %s; DNS drained in %s, recovered in %s; in flight at drain %d, idle after %s",
		d.ID, d.HTTP.TimeToDrain, d.HTTP.TimeToRecover, d.DNS.TimeToDrain, d.DNS.TimeToRecover, d.HTTP.InFlightAtDrain, d.HTTP.TimeToIdle)
	for _, l := range []struct {
		name string
		l    DrillLayer
	}{{"http", d.HTTP}, {"dns", d.DNS}} {
		if l.l.TimeToDrainNS <= 0 || l.l.TimeToRecoverNS <= 0 || l.l.DrainedAt.IsZero() || l.l.RecoveredAt.IsZero() {
			t.Errorf("%s: %+v, want drain and recovery measured", l.name, l.l)
		}
		if l.l.TimeToDrainNS > int64(time.Second) || l.l.TimeToRecoverNS > int64(time.Second) {
			t.Errorf("%s: %+v: Meridian's decisions follow an override at once", l.name, l.l)
		}
	}
	if d.HTTP.InFlightAtDrain != 1 || d.HTTP.TimeToIdleNS <= d.HTTP.TimeToDrainNS {
		t.Errorf("HTTP: %d in flight at the drain, idle after %s (drained after %s); want 1, and later", d.HTTP.InFlightAtDrain, d.HTTP.TimeToIdle, d.HTTP.TimeToDrain)
	}
	if d.Start.IsZero() || d.End.Sub(d.Start) < time.Second || d.Finished.Before(d.End) || d.GuardRefused || len(d.Notes) > 0 {
		t.Errorf("drill %+v", d)
	}
	if ep := h.tableAuth(auth).Pools["a"].Endpoints[0]; !ep.Available || ep.Health.Override != "" {
		t.Errorf("after the drill: a %+v, want restored", ep)
	}
	if code, who := h.web(); code != 200 || who != "a" {
		t.Errorf("after the drill: web.test = %d %q, want a", code, who)
	}
	// Listed, newest first; audited from start to end.
	code, body = h.get("/api/v1/drills", auth...)
	var list struct{ Drills []DrillResult }
	if err := json.Unmarshal([]byte(body), &list); code != 200 || err != nil || len(list.Drills) != 1 || list.Drills[0].ID != d.ID {
		t.Errorf("GET /api/v1/drills = %d %v %s", code, err, body)
	}
	var actions []string
	for _, e := range h.auditDoc("s3cret-ops") {
		if strings.HasPrefix(e.Action, "drill") && e.Token == "ops" {
			actions = append(actions, e.Action+" "+e.Result)
		}
	}
	if !slices.Contains(actions, "drill ok") || !slices.Contains(actions, "drill-end ok") || !slices.Contains(actions, "drill conflict") {
		t.Errorf("audit actions %v", actions)
	}
	for _, bad := range []string{
		`{"service": "nope", "pool": "a"}`,
		`{"service": "web", "pool": "nope"}`,
		`{"service": "web", "pool": "a", "region": "eu"}`,
		`{"service": "web"}`,
		`{"service": "web", "pool": "a", "duration": "-1s"}`,
		`{"service": "web", "pool": "a", "extra": 1}`,
	} {
		if code, body := h.do("POST", "/api/v1/drills", bad, auth...); code != http.StatusBadRequest {
			t.Errorf("POST %s = %d %s, want 400", bad, code, body)
		}
	}
	if code, _ := h.do("POST", "/api/v1/drills", `{"service": "web", "pool": "a"}`); code != http.StatusUnauthorized {
		t.Errorf("without a token = %d, want 401", code)
	}
}

// TestDrillAbort: DELETE ends a running drill at once: the endpoints are
// restored before it answers, and traffic comes back.
func TestDrillAbort(t *testing.T) {
	h, _, _, auth := guardSetup(t, "")
	code, body := h.do("POST", "/api/v1/drills", `{"service": "web", "region": "", "pool": "a", "duration": "1h"}`, auth...)
	if code != http.StatusCreated {
		t.Fatalf("POST drill = %d %s", code, body)
	}
	var d DrillResult
	if err := json.Unmarshal([]byte(body), &d); err != nil {
		t.Fatal(err)
	}
	code, body = h.do("DELETE", "/api/v1/drills/"+d.ID, "", auth...)
	if code != 200 {
		t.Fatalf("DELETE = %d %s", code, body)
	}
	if ep := h.tableAuth(auth).Pools["a"].Endpoints[0]; ep.Health.Override != "" {
		t.Fatalf("after the abort: a's override %q, want none", ep.Health.Override)
	}
	if code, who := h.web(); code != 200 || who != "a" {
		t.Errorf("after the abort: web.test = %d %q, want a", code, who)
	}
	h.waitFor("the drill aborted", func() bool { return h.drill("/api/v1/drills/"+d.ID, auth).State == drillAborted })
	d = h.drill("/api/v1/drills/"+d.ID, auth)
	if !strings.Contains(d.Aborted, "admin API (token ops)") || d.HTTP.TimeToDrainNS <= 0 || d.HTTP.TimeToRecoverNS <= 0 {
		t.Errorf("aborted drill %+v", d)
	}
	if code, _ := h.do("DELETE", "/api/v1/drills/"+d.ID, "", auth...); code != http.StatusConflict {
		t.Errorf("DELETE of a finished drill = %d, want 409", code)
	}
	if code, _ := h.do("DELETE", "/api/v1/drills/nope", "", auth...); code != http.StatusNotFound {
		t.Errorf("DELETE of no drill = %d, want 404", code)
	}
}

// TestDrillRestoredWhenTheAppStops: a drill running when Meridian stops
// is restored before Run returns, and an operator's own drain on an
// endpoint of the target, set during the drill, is left alone.
func TestDrillRestoredWhenTheAppStops(t *testing.T) {
	a, b := newGuardBackend(t, "a", "127.0.0.2"), newGuardBackend(t, "b", "127.0.0.3")
	c := newGuardBackend(t, "c", "127.0.0.2")
	path := filepath.Join(t.TempDir(), "meridian.yaml")
	write(t, path, fmt.Sprintf(`
listen: {admin: 127.0.0.1:0, http: 127.0.0.1:0}
pools:
  a: {endpoints: [%s, %s]}
  b: {endpoints: [%s]}
services:
  web: {pools: [a, b]}
routes:
  - {name: web, match: {host: web.test}, service: web}
`, a.addr, c.addr, b.addr))
	app, err := New(Options{ConfigPath: path, Logger: zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx) }()
	<-app.Ready()
	h := &harness{t: t, app: app, admin: "http://" + app.Addrs().Admin}
	code, body := h.do("POST", "/api/v1/drills", `{"service": "web", "pool": "a", "duration": "1h"}`)
	if code != http.StatusCreated {
		cancel()
		<-done
		t.Fatalf("POST drill = %d %s", code, body)
	}
	if code, body := h.post("/api/v1/endpoints/a/" + c.addr + "/drain"); code != 200 {
		t.Errorf("operator drain during the drill = %d %s", code, body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if st, _ := app.health.Status("a", a.addr); st.Override != "" {
		t.Errorf("after the stop: a/%s override %q from %q, want restored", a.addr, st.Override, st.OverrideSource)
	}
	if st, _ := app.health.Status("a", c.addr); st.Override != "drain" || st.OverrideSource != "api" {
		t.Errorf("after the stop: the operator's drain of a/%s is %q from %q, want kept", c.addr, st.Override, st.OverrideSource)
	}
	d := app.drills.list[0].result()
	if d.State != drillAborted || d.Aborted != "Meridian stopped" || !slices.ContainsFunc(d.Notes, func(n string) bool { return strings.Contains(n, c.addr) }) {
		t.Errorf("drill after the stop: %+v", d)
	}
}

// TestDrillRefusedByGuard: a drill that would break web's guard is
// refused (409) and kept as refused; forced, it runs and says so.
func TestDrillRefusedByGuard(t *testing.T) {
	h, _, _, auth := guardSetup(t, "{min_pools: 2}")
	code, body := h.do("POST", "/api/v1/drills", `{"service": "web", "pool": "a", "duration": "1h"}`, auth...)
	var e drillError
	if err := json.Unmarshal([]byte(body), &e); code != http.StatusConflict || err != nil || e.Drill == nil || !e.Drill.GuardRefused ||
		e.Drill.State != drillRefused || len(e.Guard) != 1 || e.Guard[0].Service != "web" {
		t.Fatalf("POST drill = %d %s, want 409 with the guard", code, body)
	}
	if ep := h.tableAuth(auth).Pools["a"].Endpoints[0]; ep.Health.Override != "" {
		t.Fatalf("refused drill drained a: %+v", ep.Health)
	}
	code, body = h.do("POST", "/api/v1/drills?force=true", `{"service": "web", "pool": "a", "duration": "1h"}`, auth...)
	var d DrillResult
	if err := json.Unmarshal([]byte(body), &d); code != http.StatusCreated || err != nil || !d.Forced || d.GuardRefused || len(d.Guard) != 1 {
		t.Fatalf("forced drill = %d %s", code, body)
	}
	if code, who := h.web(); code != 200 || who != "b" {
		t.Errorf("forced drill: web.test = %d %q, want b", code, who)
	}
	if code, _ := h.do("DELETE", "/api/v1/drills/"+d.ID, "", auth...); code != 200 {
		t.Errorf("DELETE = %d", code)
	}
	code, body = h.get("/api/v1/drills", auth...)
	var list struct{ Drills []DrillResult }
	if err := json.Unmarshal([]byte(body), &list); err != nil || len(list.Drills) != 2 || list.Drills[1].State != drillRefused || !list.Drills[0].Forced {
		t.Errorf("drills = %s", body)
	}
	var entries []audit.Entry
	for _, e := range h.auditDoc("s3cret-ops") {
		if e.Action == "drill" {
			entries = append(entries, e)
		}
	}
	if len(entries) != 2 || entries[1].Result != "refused: guard" || entries[0].Result != "ok" || !strings.Contains(entries[0].Detail, "forced past guard") {
		t.Errorf("audit %+v", entries)
	}
}
