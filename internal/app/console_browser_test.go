package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	mdns "github.com/miekg/dns"
)

// findChromium returns the headless browser the console test drives:
// $MERIDIAN_CHROMIUM, else Debian's chromium (or another Chrome) on PATH.
func findChromium() string {
	if p := os.Getenv("MERIDIAN_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// countingBackend is an upstream that counts the proxied requests it
// serves (health probes to /healthz are not counted).
type countingBackend struct {
	name string
	hits atomic.Int64
	srv  *httptest.Server
	// failEvery, when set, makes every failEvery-th request a 500.
	failEvery int64
}

func newCountingBackend(t *testing.T, name string) *countingBackend {
	b := &countingBackend{name: name}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			return
		}
		n := b.hits.Add(1)
		time.Sleep(time.Millisecond) // a little latency for the p99 to show
		if f := b.failEvery; f > 0 && n%f == 0 {
			http.Error(w, "canary bug", http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, name)
	}))
	t.Cleanup(b.srv.Close)
	return b
}

func (b *countingBackend) addr() string { return strings.TrimPrefix(b.srv.URL, "http://") }

// TestConsoleInBrowser opens the operations console in headless Chromium
// against a real App with live traffic: the numbers must move, and a click
// on drain (confirmed in the dialog) must stop traffic to that endpoint. It
// saves a screenshot in the test's temporary directory, and to
// $MERIDIAN_SCREENSHOT when set (docs/console.png is made so; the test then
// waits for the sparklines to have a minute of history).
func TestConsoleInBrowser(t *testing.T) {
	chrome := findChromium()
	if chrome == "" {
		t.Skip("headless Chromium not found: apt-get install chromium (scripts/test.sh installs it when CI=true), or set MERIDIAN_CHROMIUM")
	}
	a, b, c := newCountingBackend(t, "a"), newCountingBackend(t, "b"), newCountingBackend(t, "c")
	c.failEvery = 40 // the canary has a bug: its error ratio shows
	out := os.Getenv("MERIDIAN_SCREENSHOT")
	// With a screenshot to make, the test waits for two minutes of
	// sparkline history before taking it.
	budget := 150 * time.Second
	if out != "" {
		budget = 6 * time.Minute
	}
	dir0 := t.TempDir()
	path, tokenFile := filepath.Join(dir0, "meridian.yaml"), filepath.Join(dir0, "admin.token")
	const token = "console-test-token"
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`
listen: {admin: 127.0.0.1:0, http: 127.0.0.1:0, dns: 127.0.0.1:0}
admin: {token_file: %s}
geo:
  nets: {127.0.0.0/8: eu}
  regions: {eu: {continents: [EU]}, us: {continents: [NA]}}
  default_region: eu
checks:
  ready: {type: http, path: /healthz, interval: 1s, timeout: 500ms, rise: 1, fall: 2}
pools:
  web: {region: eu, endpoints: [%s, %s], check: ready}
  canary: {region: us, endpoints: [%s], check: ready}
services:
  web: {pools: [web]}
  canary: {pools: [canary]}
  site: {policy: geo, pools: [web, canary]}
routes:
  - name: api
    match: {path_prefix: /api}
    service: web
    retry: {attempts: 2, on: [connect_failure, "503"]}
    timeout: 10s
  - name: www
    match: {path_prefix: /}
    split:
      - {when: {header: {X-Canary: "1"}}, service: canary}
      - {service: canary, weight: 10}
      - {service: web, weight: 90}
    sticky: {cookie: uid}
    # Judged every second, never with enough requests: it stays at its
    # first step (the declared 10%%), inconclusive, for the Rollouts tab.
    rollout: {canary: canary, steps: [10, 50], interval: 1s, analysis: {min_requests: 100000}}
zones:
  - origin: example.test.
    soa: {ns: ns1.example.test., mbox: hostmaster.example.test.}
    ns: [ns1.example.test.]
    records:
      - {name: ns1, type: A, values: [127.0.0.1]}
      - {name: www, type: A, service: site, ttl: 30}
`, tokenFile, a.addr(), b.addr(), c.addr())
	write(t, path, cfg)
	h := start(t, path)
	addrs := h.app.Addrs()
	table := func() tableJSON {
		t.Helper()
		_, body := h.get("/api/v1/table", "Authorization", "Bearer "+token)
		var doc tableJSON
		if err := json.Unmarshal([]byte(body), &doc); err != nil {
			t.Fatalf("table JSON: %v\n%s", err, body)
		}
		return doc
	}
	h.waitFor("every endpoint up", func() bool {
		for _, p := range table().Pools {
			for _, e := range p.Endpoints {
				if e.Health == nil || e.Health.State != "up" {
					return false
				}
			}
		}
		return true
	})

	// Load: a few hundred requests a second over both routes, and some DNS
	// queries, until the test ends (three minutes at most).
	ctx, stop := context.WithTimeout(context.Background(), budget)
	var load sync.WaitGroup
	t.Cleanup(func() { stop(); load.Wait() })
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}, Timeout: 5 * time.Second}
	for i := range 2 {
		load.Go(func() {
			for n := 0; ctx.Err() == nil; n++ {
				p := "/"
				if (n+i)%3 == 0 {
					p = "/api/items"
				}
				req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+addrs.HTTP+p, nil)
				if n%50 == 0 {
					req.Header.Set("X-Canary", "1")
				}
				if res, err := client.Do(req); err == nil {
					io.Copy(io.Discard, res.Body)
					res.Body.Close()
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
	load.Go(func() {
		dc := &mdns.Client{Timeout: time.Second}
		for ctx.Err() == nil {
			m := new(mdns.Msg)
			m.SetQuestion("www.example.test.", mdns.TypeA)
			dc.ExchangeContext(ctx, m, addrs.DNS)
			time.Sleep(50 * time.Millisecond)
		}
	})

	bctx := headlessBrowser(t, chrome, budget)
	if err := chromedp.Do(bctx, chromedp.Navigate(h.admin+"/")); err != nil {
		t.Skipf("headless Chromium (%s) did not start or load the console: %v; install it with apt-get install chromium", chrome, err)
	}

	// js evaluates an expression in the page; poll waits until it holds.
	js := func(expr string) float64 {
		t.Helper()
		v, err := chromedp.Run(bctx, chromedp.Evaluate[float64](`(()=>{try{const v=Number(`+expr+`);return isNaN(v)?-1:v}catch(e){return -1}})()`))
		if err != nil {
			t.Fatalf("evaluate %s: %v", expr, err)
		}
		return v
	}
	poll := func(what string, d time.Duration, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(d)
		for !cond() {
			if time.Now().After(deadline) {
				html, _ := chromedp.Run(bctx, chromedp.Evaluate[string](`document.querySelector('main').innerText`))
				t.Fatalf("timed out waiting for %s; the page shows:\n%s", what, html)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	cell := func(sel string) string {
		return `parseFloat(document.querySelector(` + jsString(sel) + `)?.textContent)`
	}

	// The API wants the token: the console says so until it is typed in
	// its field, and then sends it with every call (the drain below too).
	poll("the console to report the missing token", 15*time.Second, func() bool {
		return strings.Contains(pageText(t, bctx, `#err`), "401")
	})
	if err := chromedp.Do(bctx, chromedp.Evaluate[chromedp.Void](`(()=>{const f=document.getElementById('tok');f.value=`+jsString(token)+`;f.dispatchEvent(new Event('change'))})()`)); err != nil {
		t.Fatal(err)
	}
	// The numbers move under load: the overview's rates become positive
	// and keep changing between refreshes.
	poll("the console to load its data", 15*time.Second, func() bool {
		return js(`document.getElementById('live').className==='ok'?1:0`) == 1
	})
	poll("www's and pool web's rate to move", 20*time.Second, func() bool {
		return js(cell(`tr[data-route="www"] td.rps b`)) > 0 && js(cell(`tr[data-pool="web"] td.rps b`)) > 0 &&
			js(cell(`tr[data-route="api"] td.rps b`)) > 0
	})
	first := js(`document.getElementById('updated').textContent.length`)
	if first <= 0 {
		t.Fatal("no update time shown")
	}
	seenChange := false
	before := pageText(t, bctx, `#ov-routes`)
	poll("the overview to refresh with new numbers", 15*time.Second, func() bool {
		seenChange = pageText(t, bctx, `#ov-routes`) != before
		return seenChange
	})

	// Endpoints: b serves traffic; drain it through the console.
	if err := chromedp.Do(bctx, chromedp.Click(`button[data-tab="endpoints"]`)); err != nil {
		t.Fatal(err)
	}
	bRow := `tr[data-endpoint="web/` + b.addr() + `"]`
	poll("b's rate on the endpoints tab", 15*time.Second, func() bool {
		return js(cell(bRow+` td.rps`)) > 0
	})
	probe := pageText(t, bctx, bRow)
	if !strings.Contains(probe, "ago") {
		t.Errorf("b's row shows no last probe: %q", probe)
	}
	dialogs := chromedp.Events(bctx, page.JavascriptDialogOpening)
	confirmed := make(chan string, 1)
	go func() {
		for ev, err := range dialogs {
			if err != nil {
				return
			}
			confirmed <- ev.Message
			_, _ = chromedp.Call(bctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
			return
		}
	}()
	if err := chromedp.Do(bctx, chromedp.Click(bRow+` button[data-action="drain"]`)); err != nil {
		t.Fatal(err)
	}
	select {
	case msg := <-confirmed:
		if !strings.Contains(msg, b.addr()) {
			t.Errorf("confirmation %q does not name the endpoint", msg)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("drain asked for no confirmation")
	}
	poll("b to show as draining", 15*time.Second, func() bool {
		return strings.Contains(pageText(t, bctx, bRow+` td.state`), "draining")
	})
	if st := endpointState(table(), "web", b.addr()); st != "draining" {
		t.Fatalf("the API says b is %q", st)
	}
	// Traffic stops reaching b: a gets another 100 requests while b gets
	// none (requests in flight at the drain may still finish on b).
	baseA, baseB := a.hits.Load(), b.hits.Load()
	poll("a to take all traffic", 30*time.Second, func() bool {
		if nb := b.hits.Load(); nb != baseB {
			baseA, baseB = a.hits.Load(), nb
		}
		return a.hits.Load()-baseA >= 100
	})

	// Rollouts: the tab shows www's rollout with its phase, step, weight
	// and last judgements, and its pause button pauses it (through the API,
	// with the token).
	if err := chromedp.Do(bctx, chromedp.Click(`button[data-tab="rollouts"]`)); err != nil {
		t.Fatal(err)
	}
	roCard := `div[data-rollout="route:www"]`
	poll("www's rollout with its judgements", 15*time.Second, func() bool {
		txt := pageText(t, bctx, roCard)
		return strings.Contains(txt, "progressing") && strings.Contains(txt, "step 1/2") && strings.Contains(txt, "10%") &&
			strings.Contains(txt, "inconclusive") && strings.Contains(txt, "of 100000 needed")
	})
	if js(`document.querySelector(`+jsString(roCard+` button[data-ro-action="resume"]`)+`).disabled?1:0`) != 1 {
		t.Error("resume is enabled on a progressing rollout")
	}
	if err := chromedp.Do(bctx, chromedp.Click(roCard+` button[data-ro-action="pause"]`)); err != nil {
		t.Fatal(err)
	}
	poll("the rollout to show as paused", 15*time.Second, func() bool {
		return strings.Contains(pageText(t, bctx, roCard+` h2`), "paused") &&
			js(`document.querySelector(`+jsString(roCard+` button[data-ro-action="resume"]`)+`).disabled?1:0`) == 0
	})
	if _, body := h.get("/api/v1/rollouts", "Authorization", "Bearer "+token); !strings.Contains(body, `"phase": "paused"`) {
		t.Errorf("the API does not show the rollout paused:\n%s", body)
	}

	// The screenshot, on the overview.
	if err := chromedp.Do(bctx, chromedp.Click(`button[data-tab="overview"]`)); err != nil {
		t.Fatal(err)
	}
	if out != "" {
		// Sparklines need a few 10 s steps of history to say anything.
		poll("two minutes of sparkline history", 4*time.Minute, func() bool {
			return js(`document.querySelector('tr[data-route="www"] td.rps polyline')?.getAttribute('points').split(' ').length`) >= 12
		})
	}
	poll("the overview to render", 10*time.Second, func() bool {
		return js(cell(`tr[data-route="www"] td.rps b`)) > 0
	})
	png, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{filepath.Join(t.TempDir(), "console.png"), out} {
		if p == "" {
			continue
		}
		if err := os.WriteFile(p, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s", p)
	}
	// A reload that fails shows its problems, with their lines, while the
	// last good table keeps serving.
	write(t, path, strings.Replace(cfg, "service: site", "service: sitee", 1))
	poll("the failed reload's problems", 15*time.Second, func() bool {
		txt := pageText(t, bctx, `#reload`)
		return strings.Contains(txt, "FAILED") && strings.Contains(txt, `unknown service "sitee"`) && strings.Contains(txt, "meridian.yaml:")
	})
	// MERIDIAN_SCREENSHOT_TABS=DIR saves every tab, for reviewing the page.
	if dir := os.Getenv("MERIDIAN_SCREENSHOT_TABS"); dir != "" {
		for _, tab := range []string{"overview", "endpoints", "routes", "zones", "rollouts", "explain"} {
			if err := chromedp.Do(bctx, chromedp.Click(`button[data-tab="`+tab+`"]`)); err != nil {
				t.Fatal(err)
			}
			if tab == "explain" {
				err := chromedp.Do(bctx,
					chromedp.SetValue(`#xh input[name=host]`, "www.example.test"),
					chromedp.SetValue(`#xh textarea[name=header]`, "X-Canary: 1"),
					chromedp.Click(`#xh button`),
					chromedp.SetValue(`#xd input[name=qname]`, "www.example.test"),
					chromedp.SetValue(`#xd input[name=client]`, "127.0.0.1"),
					chromedp.Click(`#xd button`))
				if err != nil {
					t.Fatal(err)
				}
				poll("both explanations", 10*time.Second, func() bool {
					return js(`document.querySelectorAll('#explain .outcome, #explain details').length`) >= 2
				})
			}
			png, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "console-"+tab+".png"), png, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// pageText is the rendered text of the first element sel matches, "" when
// none does.
// headlessBrowser starts Chromium at chrome, headless, with a throwaway
// profile, and returns its context, bounded to budget; the browser and the
// profile go with the test.
func headlessBrowser(t *testing.T, chrome string, budget time.Duration) context.Context {
	t.Helper()
	dir, err := os.MkdirTemp("", "meridian-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Chromium's children can write into the profile for a moment
		// after the browser stopped.
		for range 50 {
			if os.RemoveAll(dir) == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chrome),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.UserDataDir(dir),
		chromedp.WindowSize(1440, 1000),
	)
	t.Cleanup(cancelAlloc)
	bctx, cancelBrowser := chromedp.NewContext(allocCtx)
	t.Cleanup(cancelBrowser)
	bctx, cancelTimeout := context.WithTimeout(bctx, budget)
	t.Cleanup(cancelTimeout)
	return bctx
}

func pageText(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector(`+jsString(sel)+`)?.innerText??''`))
	if err != nil {
		t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func endpointState(doc tableJSON, pool, addr string) string {
	for _, e := range doc.Pools[pool].Endpoints {
		if e.Address == addr && e.Health != nil {
			return string(e.Health.State)
		}
	}
	return ""
}
