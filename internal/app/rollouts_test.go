package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"

	"github.com/meridian-lb/meridian/catalog/consultest"
	"github.com/meridian-lb/meridian/internal/audit"
	"github.com/meridian-lb/meridian/rollout"
)

// rolloutBackend is an upstream a test breaks and heals: it counts the
// requests it serves (not /healthz), and can answer 500 or be slow.
type rolloutBackend struct {
	addr  string
	hits  atomic.Int64
	fail  atomic.Bool
	delay atomic.Int64 // ns
}

// newRolloutBackend serves on host (127.0.0.1, or another loopback address
// so that DNS answers tell the backends apart) at a free port.
func newRolloutBackend(t *testing.T, name, host string) *rolloutBackend {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Skipf("cannot listen on %s (this test needs the loopback network 127.0.0.0/8): %v", host, err)
	}
	b := &rolloutBackend{addr: ln.Addr().String()}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			return
		}
		b.hits.Add(1)
		if d := time.Duration(b.delay.Load()); d > 0 {
			time.Sleep(d)
		}
		if b.fail.Load() {
			http.Error(w, name+" is broken", http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, name)
	}))
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return b
}

// drive sends requests to the App's HTTP listener from workers goroutines,
// over paths in turn, until the returned stop is called (or the test ends).
func drive(t *testing.T, httpAddr string, workers int, paths ...string) (stop func()) {
	t.Helper()
	if len(paths) == 0 {
		paths = []string{"/"}
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers}, Timeout: 10 * time.Second}
	for i := range workers {
		wg.Go(func() {
			for n := i; ctx.Err() == nil; n++ {
				req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+httpAddr+paths[n%len(paths)], nil)
				if res, err := client.Do(req); err == nil {
					io.Copy(io.Discard, res.Body)
					res.Body.Close()
				}
				time.Sleep(2 * time.Millisecond)
			}
		})
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			wg.Wait()
			client.CloseIdleConnections()
		})
	}
	t.Cleanup(stop)
	return stop
}

// rolloutView is one rollout of GET /api/v1/rollouts, as a test reads it.
type rolloutView struct {
	Name         string        `json:"name"`
	Driver       bool          `json:"driver"`
	State        rollout.State `json:"state"`
	RoutedWeight *int          `json:"routed_weight"`
}

func (h *harness) rollouts(header ...string) map[string]rolloutView {
	h.t.Helper()
	code, body := h.get("/api/v1/rollouts", header...)
	if code != 200 {
		h.t.Fatalf("GET /api/v1/rollouts = %d %s", code, body)
	}
	var doc struct {
		Rollouts []rolloutView `json:"rollouts"`
	}
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		h.t.Fatalf("rollouts JSON: %v\n%s", err, body)
	}
	out := map[string]rolloutView{}
	for _, r := range doc.Rollouts {
		out[r.Name] = r
	}
	return out
}

// waitRollout polls the named rollout until cond holds, for up to d;
// header goes with each call (a token).
func (h *harness) waitRollout(name, what string, d time.Duration, cond func(rolloutView) bool, header ...string) rolloutView {
	h.t.Helper()
	deadline := time.Now().Add(d)
	for {
		r, ok := h.rollouts(header...)[name]
		if ok && cond(r) {
			return r
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out waiting for %s %s; it is %s at %d%% (routed %v): %s; history %s",
				name, what, r.State.Phase, r.State.Weight, ptrVal(r.RoutedWeight), r.State.Reason, historyText(r.State.History))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func ptrVal(p *int) any {
	if p == nil {
		return nil
	}
	return *p
}

func historyText(h []rollout.Judgement) string {
	var b strings.Builder
	for _, j := range h {
		fmt.Fprintf(&b, "\n  %s step %d (%d%%) %s: %s", j.At.Format("15:04:05.000"), j.Step, j.Weight, j.Result, j.Reason)
	}
	return b.String()
}

// routed reports whether the live table routes the rollout at its weight.
func routed(r rolloutView) bool { return r.RoutedWeight != nil && *r.RoutedWeight == r.State.Weight }

// metricValue is the value of the metric series line that starts with
// series ("name{labels}"), "" when there is none.
func (h *harness) metricValue(series string) string {
	h.t.Helper()
	_, body := h.get("/metrics")
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return v
		}
	}
	return ""
}

// splitRollout is a config with one route splitting between the stable
// and canary backends under a rollout, whose YAML body is ro.
func splitRollout(stable, canary *rolloutBackend, ro string) string {
	return fmt.Sprintf(`
listen: {admin: 127.0.0.1:0, http: 127.0.0.1:0}
pools:
  stable: {endpoints: [%s]}
  canary: {endpoints: [%s]}
services:
  stable: {pools: [stable]}
  canary: {pools: [canary]}
routes:
  - name: www
    match: {path_prefix: /}
    split:
      - {service: canary, weight: 1}
      - {service: stable, weight: 9}
    rollout: %s
`, stable.addr, canary.addr, ro)
}

// TestRolloutPromotesHealthyCanary: live traffic to a healthy canary
// passes every step's judgement, and the canary ends up with every
// request.
func TestRolloutPromotesHealthyCanary(t *testing.T) {
	t0 := time.Now()
	stable, canary := newRolloutBackend(t, "stable", "127.0.0.1"), newRolloutBackend(t, "canary", "127.0.0.1")
	path := filepath.Join(t.TempDir(), "meridian.yaml")
	write(t, path, splitRollout(stable, canary, `{canary: canary, steps: [10, 30, 60], interval: 1s, analysis: {min_requests: 5}, failure_limit: 1}`))
	h := start(t, path)
	r := h.rollouts()["route:www"]
	if r.State.Phase != rollout.Progressing || r.State.Weight != 10 || !routed(r) || !r.Driver {
		t.Fatalf("at start: %+v", r)
	}
	stop := drive(t, h.app.Addrs().HTTP, 2)
	r = h.waitRollout("route:www", "promoted", 30*time.Second, func(r rolloutView) bool { return r.State.Phase == rollout.Promoted })
	stop()
	var passed []int
	for _, j := range r.State.History {
		switch j.Result {
		case rollout.Pass:
			passed = append(passed, j.Weight)
			if j.Canary.Requests < 5 {
				t.Errorf("a pass on %d requests: %+v", j.Canary.Requests, j)
			}
		case rollout.Fail:
			t.Errorf("a healthy canary failed a judgement: %+v", j)
		}
	}
	if fmt.Sprint(passed) != "[10 30 60]" {
		t.Errorf("passed at %v, want every step [10 30 60]:%s", passed, historyText(r.State.History))
	}
	r = h.waitRollout("route:www", "routed at 100%", 10*time.Second, routed)
	if r.State.Weight != 100 {
		t.Fatalf("promoted at %d%%", r.State.Weight)
	}
	// Promoted: every request goes to the canary.
	before := stable.hits.Load()
	for range 20 {
		res, err := http.Get("http://" + h.app.Addrs().HTTP + "/")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
	if n := stable.hits.Load() - before; n != 0 {
		t.Errorf("stable got %d of 20 requests after promotion", n)
	}
	for series, want := range map[string]string{
		`meridian_rollout_weight{rollout="route:www"}`:                         "100",
		`meridian_rollout_phase{phase="promoted",rollout="route:www"}`:         "1",
		`meridian_rollout_phase{phase="progressing",rollout="route:www"}`:      "0",
		`meridian_rollout_judgements_total{result="pass",rollout="route:www"}`: "3",
		`meridian_rollout_judgements_total{result="fail",rollout="route:www"}`: "0",
	} {
		if got := h.metricValue(series); got != want {
			t.Errorf("%s = %q, want %s", series, got, want)
		}
	}
	t.Logf("promoted through 3 steps of 1s in %v", time.Since(t0).Round(time.Millisecond))
}

// rollbackConfig has a route and a weighted service, each under a
// rollout of the canary; the service steers www.example.test, and the
// canary listens on another loopback address than stable, so DNS answers
// tell them apart.
func rollbackConfig(stable, canary *rolloutBackend, analysis string) string {
	ro := `{canary: canary, steps: [50], interval: 1s, analysis: ` + analysis + `, failure_limit: 1}`
	return fmt.Sprintf(`
listen: {admin: 127.0.0.1:0, http: 127.0.0.1:0, dns: 127.0.0.1:0}
pools:
  stable: {endpoints: [%s]}
  canary: {endpoints: [%s]}
services:
  stable: {pools: [stable]}
  canary: {pools: [canary]}
  site:
    policy: weighted
    pools: [stable, canary]
    weights: [1, 1]
    rollout: %s
routes:
  - {name: api, match: {path_prefix: /api}, service: site}
  - name: www
    match: {path_prefix: /}
    split:
      - {service: canary, weight: 1}
      - {service: stable, weight: 1}
    rollout: %s
zones:
  - origin: example.test.
    soa: {ns: ns1.example.test., mbox: hostmaster.example.test.}
    ns: [ns1.example.test.]
    records:
      - {name: ns1, type: A, values: [127.0.0.1]}
      - {name: www, type: A, service: site, ttl: 5}
`, stable.addr, canary.addr, ro, ro)
}

// dnsAnswers asks the App's DNS listener for www.example.test n times and
// counts the addresses answered.
func dnsAnswers(t *testing.T, dnsAddr string, n int) map[string]int {
	t.Helper()
	out := map[string]int{}
	c := &mdns.Client{Timeout: 2 * time.Second}
	for range n {
		m := new(mdns.Msg)
		m.SetQuestion("www.example.test.", mdns.TypeA)
		r, _, err := c.Exchange(m, dnsAddr)
		if err != nil {
			t.Fatal(err)
		}
		for _, rr := range r.Answer {
			if a, ok := rr.(*mdns.A); ok {
				out[a.A.String()]++
			}
		}
	}
	return out
}

// checkRolledBack checks that a rollout failed at its first judgement with
// enough requests (all before it inconclusive), and is routed at 0.
func checkRolledBack(t *testing.T, h *harness, name, reason string) {
	t.Helper()
	r := h.waitRollout(name, "routed at 0", 10*time.Second, routed)
	if r.State.Phase != rollout.Failed || r.State.Weight != 0 || r.State.Failures != 1 {
		t.Fatalf("%s: %s at %d%% after %d failures", name, r.State.Phase, r.State.Weight, r.State.Failures)
	}
	hist := r.State.History
	last := hist[len(hist)-1]
	if last.Result != rollout.Fail || !strings.Contains(last.Reason, reason) || last.Canary.Requests < 5 {
		t.Errorf("%s: last judgement %+v, want a failure saying %q", name, last, reason)
	}
	for _, j := range hist[:len(hist)-1] {
		if j.Result != rollout.Inconclusive {
			t.Errorf("%s: before the rollback: %+v, want only inconclusive intervals", name, j)
		}
	}
	if !strings.HasPrefix(r.State.Reason, "rolled back") {
		t.Errorf("%s: reason %q", name, r.State.Reason)
	}
}

// TestRolloutRollsBackFailingCanary: a canary that starts answering 5xx
// (its health is not checked: nothing but its traffic shows it) is rolled
// back at the first interval with min_requests of its traffic, in HTTP and
// in the DNS answers its weighted service steers.
func TestRolloutRollsBackFailingCanary(t *testing.T) {
	stable, canary := newRolloutBackend(t, "stable", "127.0.0.1"), newRolloutBackend(t, "canary", "127.0.0.2")
	path := filepath.Join(t.TempDir(), "meridian.yaml")
	write(t, path, rollbackConfig(stable, canary, `{min_requests: 5, success_rate: 99}`))
	h := start(t, path)
	addrs := h.app.Addrs()
	canaryIP, stableIP := "127.0.0.2", "127.0.0.1"

	// Idle, at the first step: DNS answers the canary about half the time.
	for name, r := range h.rollouts() {
		if r.State.Phase != rollout.Progressing || r.State.Weight != 50 || !routed(r) {
			t.Fatalf("%s at start: %+v", name, r)
		}
	}
	if got := dnsAnswers(t, addrs.DNS, 40); got[canaryIP] == 0 || got[stableIP] == 0 {
		t.Fatalf("DNS answers at 50%%: %v, want both backends", got)
	}

	canary.fail.Store(true)
	t0 := time.Now()
	stop := drive(t, addrs.HTTP, 2, "/", "/api/x")
	for _, name := range []string{"route:www", "service:site"} {
		h.waitRollout(name, "failed", 15*time.Second, func(r rolloutView) bool { return r.State.Phase == rollout.Failed })
	}
	elapsed := time.Since(t0)
	stop()
	checkRolledBack(t, h, "route:www", "% success < 99%")
	checkRolledBack(t, h, "service:site", "% success < 99%")
	// The interval running when the canary broke, then at most one more.
	if elapsed > 4*time.Second {
		t.Errorf("rolled back %v after the canary broke, want within about two 1s intervals", elapsed)
	}

	// Rolled back: neither HTTP route nor DNS sends anyone to the canary.
	hits := canary.hits.Load()
	for i := range 40 {
		p := "/"
		if i%2 == 1 {
			p = "/api/x"
		}
		res, err := http.Get("http://" + addrs.HTTP + p)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Errorf("GET %s after the rollback = %d", p, res.StatusCode)
		}
	}
	if n := canary.hits.Load() - hits; n != 0 {
		t.Errorf("the canary got %d of 40 requests after the rollback", n)
	}
	if got := dnsAnswers(t, addrs.DNS, 40); got[canaryIP] != 0 || got[stableIP] != 40 {
		t.Errorf("DNS answers after the rollback: %v, want only %s", got, stableIP)
	}
	for series, want := range map[string]string{
		`meridian_rollout_weight{rollout="service:site"}`:                         "0",
		`meridian_rollout_phase{phase="failed",rollout="service:site"}`:           "1",
		`meridian_rollout_judgements_total{result="fail",rollout="route:www"}`:    "1",
		`meridian_rollout_judgements_total{result="pass",rollout="service:site"}`: "0",
	} {
		if got := h.metricValue(series); got != want {
			t.Errorf("%s = %q, want %s", series, got, want)
		}
	}
	t.Logf("both rollouts rolled back %v after the canary started answering 500", elapsed.Round(time.Millisecond))
}

// TestRolloutRollsBackSlowCanary: a canary that answers every request,
// only too slowly for the p99 bound, is rolled back.
func TestRolloutRollsBackSlowCanary(t *testing.T) {
	stable, canary := newRolloutBackend(t, "stable", "127.0.0.1"), newRolloutBackend(t, "canary", "127.0.0.1")
	canary.delay.Store(int64(150 * time.Millisecond))
	path := filepath.Join(t.TempDir(), "meridian.yaml")
	write(t, path, splitRollout(stable, canary, `{canary: canary, steps: [50], interval: 1s, analysis: {min_requests: 3, p99: 60ms}, failure_limit: 1}`))
	h := start(t, path)
	t0 := time.Now()
	stop := drive(t, h.app.Addrs().HTTP, 4)
	h.waitRollout("route:www", "failed", 15*time.Second, func(r rolloutView) bool { return r.State.Phase == rollout.Failed })
	elapsed := time.Since(t0)
	stop()
	checkRolledBack(t, h, "route:www", "p99")
	r := h.rollouts()["route:www"]
	last := r.State.History[len(r.State.History)-1]
	if last.Canary.Errors5xx != 0 || last.Canary.P99 < 100*time.Millisecond {
		t.Errorf("the judgement's canary window %+v, want no errors and a p99 near 150ms", last.Canary)
	}
	t.Logf("rolled back on latency alone %v after traffic started: %s", elapsed.Round(time.Millisecond), last.Reason)
}

// TestRolloutIdleCanaryStaysInconclusive: without traffic, every interval
// is inconclusive; the rollout holds its first step and is never promoted.
func TestRolloutIdleCanaryStaysInconclusive(t *testing.T) {
	t0 := time.Now()
	stable, canary := newRolloutBackend(t, "stable", "127.0.0.1"), newRolloutBackend(t, "canary", "127.0.0.1")
	path := filepath.Join(t.TempDir(), "meridian.yaml")
	write(t, path, splitRollout(stable, canary, `{canary: canary, steps: [20], interval: 1s, analysis: {min_requests: 5}}`))
	h := start(t, path)
	// Two requests: fewer than min_requests.
	for range 2 {
		if res, err := http.Get("http://" + h.app.Addrs().HTTP + "/"); err == nil {
			res.Body.Close()
		}
	}
	r := h.waitRollout("route:www", "judged three times", 15*time.Second, func(r rolloutView) bool { return len(r.State.History) >= 3 })
	if r.State.Phase != rollout.Progressing || r.State.Step != 0 || r.State.Weight != 20 || r.State.Failures != 0 {
		t.Errorf("after %d idle intervals: %s step %d at %d%%, %d failures", len(r.State.History), r.State.Phase, r.State.Step, r.State.Weight, r.State.Failures)
	}
	for _, j := range r.State.History {
		if j.Result != rollout.Inconclusive || !strings.Contains(j.Reason, "of 5 needed") {
			t.Errorf("idle judgement %+v, want inconclusive", j)
		}
	}
	if !strings.HasPrefix(r.State.Reason, "inconclusive") {
		t.Errorf("reason %q", r.State.Reason)
	}
	if got := h.metricValue(`meridian_rollout_judgements_total{result="pass",rollout="route:www"}`); got != "0" {
		t.Errorf("passes = %q", got)
	}
	if got, _ := strconv.Atoi(h.metricValue(`meridian_rollout_judgements_total{result="inconclusive",rollout="route:www"}`)); got < 3 {
		t.Errorf("inconclusive judgements = %d, want at least 3", got)
	}
	t.Logf("%d inconclusive idle intervals in %v", len(r.State.History), time.Since(t0).Round(time.Millisecond))
}

// runApp starts an App on path and returns it with a stop that ends its
// Run and waits for it (the test's end stops it too).
func runApp(t *testing.T, path string, before func(*App)) (*harness, func()) {
	t.Helper()
	return runAppAt(t, path, zap.WarnLevel, before)
}

// runAppAt is runApp, logging at level and above.
func runAppAt(t *testing.T, path string, level zapcore.Level, before func(*App)) (*harness, func()) {
	t.Helper()
	a, err := New(Options{ConfigPath: path, Logger: zaptest.NewLogger(t, zaptest.Level(level))})
	if err != nil {
		t.Fatal(err)
	}
	if before != nil {
		before(a)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	select {
	case <-a.Ready():
	case err := <-done:
		t.Fatalf("Run returned early: %v", err)
	}
	return &harness{t: t, app: a, admin: "http://" + a.Addrs().Admin}, stop
}

// TestRolloutResumesAfterRestart: a second App on the same state file
// resumes a rollout at the step the first left it, routing at its weight
// from the first table, and carries on.
func TestRolloutResumesAfterRestart(t *testing.T) {
	t0 := time.Now()
	stable, canary := newRolloutBackend(t, "stable", "127.0.0.1"), newRolloutBackend(t, "canary", "127.0.0.1")
	dir := t.TempDir()
	path, stateFile := filepath.Join(dir, "meridian.yaml"), filepath.Join(dir, "rollouts.json")
	cfg := splitRollout(stable, canary, `{canary: canary, steps: [10, 20, 30, 40], interval: 1s, analysis: {min_requests: 5}}`) +
		"rollouts: {state_file: " + stateFile + "}\n"
	write(t, path, cfg)
	h1, stop1 := runApp(t, path, nil)
	stopTraffic := drive(t, h1.app.Addrs().HTTP, 2)
	h1.waitRollout("route:www", "past its first step", 20*time.Second, func(r rolloutView) bool { return r.State.Step >= 1 })
	stopTraffic()
	// Without traffic the step holds: once an interval was judged
	// inconclusive, nothing moves it any more.
	before := h1.waitRollout("route:www", "idle", 10*time.Second, func(r rolloutView) bool {
		h := r.State.History
		return len(h) > 0 && h[len(h)-1].Result == rollout.Inconclusive
	})
	stop1()
	if before.State.Phase != rollout.Progressing {
		t.Fatalf("before the restart: %+v", before.State)
	}

	h2, _ := runApp(t, path, nil)
	// The first table the second App serves routes at the saved weight.
	if w := h2.app.live.Load().RolloutWeights["route:www"]; w != before.State.Weight {
		t.Errorf("the restarted App's first table routes at %d%%, want %d%%", w, before.State.Weight)
	}
	r := h2.rollouts()["route:www"]
	if r.State.Step != before.State.Step || r.State.Weight != before.State.Weight || r.State.Phase != rollout.Progressing || !routed(r) {
		t.Errorf("after the restart: step %d at %d%% (%s, routed %v), want step %d at %d%%",
			r.State.Step, r.State.Weight, r.State.Phase, ptrVal(r.RoutedWeight), before.State.Step, before.State.Weight)
	}
	if len(r.State.History) < len(before.State.History) || !r.State.StartedAt.Equal(before.State.StartedAt) {
		t.Errorf("the restored state lost its history or start: %d judgements, started %v (was %d, %v)",
			len(r.State.History), r.State.StartedAt, len(before.State.History), before.State.StartedAt)
	}
	drive(t, h2.app.Addrs().HTTP, 2)
	r = h2.waitRollout("route:www", "promoted", 30*time.Second, func(r rolloutView) bool { return r.State.Phase == rollout.Promoted })
	seen := map[int]bool{}
	for _, j := range r.State.History {
		if j.Result == rollout.Pass {
			if seen[j.Weight] {
				t.Errorf("step at %d%% passed twice: the restart started over%s", j.Weight, historyText(r.State.History))
			}
			seen[j.Weight] = true
		}
	}
	b, err := os.ReadFile(stateFile)
	if err != nil || !strings.Contains(string(b), `"phase": "promoted"`) {
		t.Errorf("state file: %v\n%s", err, b)
	}
	t.Logf("resumed at step %d (%d%%) after a restart and promoted, in %v", before.State.Step+1, before.State.Weight, time.Since(t0).Round(time.Millisecond))
}

// TestRolloutAPI: list, actions, their errors, the audit log and the
// rebuilt table.
func TestRolloutAPI(t *testing.T) {
	stable, canary := newRolloutBackend(t, "stable", "127.0.0.1"), newRolloutBackend(t, "canary", "127.0.0.1")
	dir := t.TempDir()
	path, tokenFile := filepath.Join(dir, "meridian.yaml"), filepath.Join(dir, "token")
	write(t, tokenFile, "tok")
	write(t, path, splitRollout(stable, canary, `{canary: canary, steps: [10, 50], interval: 1m, analysis: {min_requests: 5}}`)+
		"admin: {token_file: "+tokenFile+"}\n")
	h := start(t, path)
	auth := []string{"Authorization", "Bearer tok"}
	if code, _ := h.get("/api/v1/rollouts"); code != 401 {
		t.Errorf("list without the token = %d, want 401", code)
	}
	if code, _ := h.post("/api/v1/rollouts/route:www/pause"); code != 401 {
		t.Errorf("action without the token = %d, want 401", code)
	}
	_, body := h.get("/api/v1/rollouts", auth...)
	var doc map[string]any
	if err := json.Unmarshal([]byte(body), &doc); err != nil || doc["store"] != "memory" {
		t.Fatalf("list: %v\n%s", err, body)
	}
	for _, want := range []string{`"name": "route:www"`, `"canary": "canary"`, `"steps": [`, `"interval": "1m"`, `"driver": true`, `"phase": "progressing"`, `"routed_weight": 10`} {
		if !strings.Contains(body, want) {
			t.Errorf("list lacks %s:\n%s", want, body)
		}
	}

	act := func(name, action string, want int, wantBody string) string {
		t.Helper()
		code, body := h.post("/api/v1/rollouts/"+name+"/"+action, auth...)
		if code != want || !strings.Contains(body, wantBody) {
			t.Errorf("%s %s = %d %s, want %d with %q", action, name, code, strings.TrimSpace(body), want, wantBody)
		}
		return body
	}
	act("route:www", "explode", 400, "unknown rollout action")
	act("route:nope", "pause", 404, `no rollout "route:nope"`)
	act("route:www", "resume", 409, "cannot resume a rollout that is progressing")
	act(url.PathEscape("route:www"), "pause", 200, `"phase": "paused"`)
	act("route%3Awww", "promote", 200, `"weight": 100`)
	r := h.waitRollout("route:www", "routed at 100%", 10*time.Second, routed, auth...)
	if r.State.Phase != rollout.Promoted {
		t.Errorf("after promote: %s", r.State.Phase)
	}
	act("route:www", "abort", 200, `"phase": "aborted"`)
	h.waitRollout("route:www", "routed at 0%", 10*time.Second, func(r rolloutView) bool { return routed(r) && r.State.Weight == 0 }, auth...)
	act("route:www", "retry", 200, `"weight": 10`)
	h.waitRollout("route:www", "routed at 10%", 10*time.Second, func(r rolloutView) bool { return routed(r) && r.State.Weight == 10 }, auth...)

	_, body = h.get("/api/v1/audit", auth...)
	var doc2 struct {
		Entries []audit.Entry `json:"entries"`
	}
	if err := json.Unmarshal([]byte(body), &doc2); err != nil {
		t.Fatalf("audit: %v\n%s", err, body)
	}
	var got []string
	for _, e := range slices.Backward(doc2.Entries) { // newest first
		if strings.HasPrefix(e.Action, "rollout ") {
			got = append(got, e.Action+" "+e.Target+" "+e.Result+" "+e.Token)
		}
	}
	want := []string{
		"rollout explode route:www bad request default",
		"rollout pause route:nope not found default",
		"rollout resume route:www conflict default",
		"rollout pause route:www ok default",
		"rollout promote route:www ok default",
		"rollout abort route:www ok default",
		"rollout retry route:www ok default",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("audit:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// A config without the rollout: it is gone from the list and the
	// metrics.
	write(t, path, strings.Replace(splitRollout(stable, canary, `x`), "    rollout: x\n", "", 1)+"admin: {token_file: "+tokenFile+"}\n")
	h.waitFor("the rollout to leave", func() bool { return len(h.rollouts(auth...)) == 0 })
	if _, body := h.get("/metrics"); strings.Contains(body, `rollout="route:www"`) {
		t.Error("the removed rollout's series are still exported")
	}
}

// TestRolloutConsulDriverFollower: two Apps share rollout states through
// Consul: one drives (judges its own traffic, steps), the other follows
// its weight and sends actions back to it, and takes over when it stops.
func TestRolloutConsulDriverFollower(t *testing.T) {
	t0 := time.Now()
	srv := consultest.New(t, consultest.Options{})
	stable, canary := newRolloutBackend(t, "stable", "127.0.0.1"), newRolloutBackend(t, "canary", "127.0.0.1")
	path := filepath.Join(t.TempDir(), "meridian.yaml")
	write(t, path, splitRollout(stable, canary, `{canary: canary, steps: [10, 20, 30, 40, 50, 60, 70, 80], interval: 1s, analysis: {min_requests: 5}}`)+
		"consul: {address: "+srv.Addr+"}\nrollouts: {consul_prefix: test/rollouts}\n")
	fast := func(id string) func(*App) {
		return func(a *App) {
			if a.ro.consul == nil {
				t.Fatal("consul: configured, but the rollouts are not kept in Consul")
			}
			a.ro.consul.AcquireEvery = 100 * time.Millisecond
			a.ro.consul.Identity = id
		}
	}
	h1, stop1 := runApp(t, path, fast("instance-1"))
	h1.waitRollout("route:www", "driven by instance 1", 10*time.Second, func(r rolloutView) bool { return r.Driver })
	h2, _ := runApp(t, path, fast("instance-2"))
	// Instance 2 finds the lock taken: it follows.
	h2.waitFor("instance 2 to try the lock", func() bool {
		id := h2.app.ro.consul.Session()
		for _, c := range srv.History() {
			if id != "" && c.Method == http.MethodPut && c.Query.Get("acquire") == id && strings.HasSuffix(c.Path, "/lock") {
				return true
			}
		}
		return false
	})
	if r := h2.rollouts()["route:www"]; r.Driver {
		t.Fatal("both instances drive")
	}

	// The driver judges its own traffic and steps; the follower's weight
	// and its table follow.
	stopTraffic := drive(t, h1.app.Addrs().HTTP, 2)
	d := h1.waitRollout("route:www", "at step 3", 20*time.Second, func(r rolloutView) bool { return r.State.Step >= 2 })
	h2.waitRollout("route:www", "following", 10*time.Second, func(r rolloutView) bool {
		return r.State.Step >= d.State.Step && routed(r)
	})
	code, body := h2.post("/api/v1/rollouts/route:www/pause")
	if code != 409 || !strings.Contains(body, "instance-1") {
		t.Errorf("pause on the follower = %d %q, want 409 naming instance-1", code, body)
	}
	if code, body := h1.post("/api/v1/rollouts/route:www/pause"); code != 200 {
		t.Fatalf("pause on the driver = %d %s", code, body)
	}
	paused := h2.waitRollout("route:www", "paused, followed", 10*time.Second, func(r rolloutView) bool { return r.State.Phase == rollout.Paused })
	stopTraffic()

	// The driver stops: it releases its lock, and the follower takes over
	// where it was.
	stop1()
	t1 := time.Now()
	r := h2.waitRollout("route:www", "driven by instance 2", 10*time.Second, func(r rolloutView) bool { return r.Driver })
	handover := time.Since(t1)
	if r.State.Phase != rollout.Paused || r.State.Step != paused.State.Step || r.State.Weight != paused.State.Weight {
		t.Errorf("after the handover: %s step %d at %d%%, want paused at step %d (%d%%)",
			r.State.Phase, r.State.Step, r.State.Weight, paused.State.Step, paused.State.Weight)
	}
	if code, body := h2.post("/api/v1/rollouts/route:www/resume"); code != 200 {
		t.Fatalf("resume on the new driver = %d %s", code, body)
	}
	drive(t, h2.app.Addrs().HTTP, 2)
	r = h2.waitRollout("route:www", "stepping on instance 2", 20*time.Second, func(r rolloutView) bool {
		return r.State.Step > paused.State.Step || r.State.Phase == rollout.Promoted
	})
	if b, ok := srv.KV("test/rollouts/route/www/state"); !ok || !strings.Contains(string(b), fmt.Sprintf(`"step":%d`, r.State.Step)) {
		t.Errorf("the new driver's state is not in Consul: %s", b)
	}
	t.Logf("handover %v after the driver stopped; whole test %v", handover.Round(time.Millisecond), time.Since(t0).Round(time.Millisecond))
}
