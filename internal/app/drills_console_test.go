package app

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/meridian-lb/meridian/routing"
)

// TestGuardsConsoleInBrowser drives the console's "Guards & drills" tab in
// headless Chromium: a guard holding shows as an alert and in the guards'
// table with its reason; a drill the guard refuses shows the 409's reason;
// forced, it runs, is listed with its measured drain, and its abort button
// restores the endpoints.
func TestGuardsConsoleInBrowser(t *testing.T) {
	chrome := findChromium()
	if chrome == "" {
		t.Skip("headless Chromium not found: apt-get install chromium, or set MERIDIAN_CHROMIUM")
	}
	h, a, _, auth := guardSetup(t, "{min_pools: 2}")
	a.sick.Store(true)
	h.waitFor("a held", func() bool { return h.tableAuth(auth).Services["web"].Guard.State == routing.GuardHolding })

	bctx := headlessBrowser(t, chrome, 90*time.Second)
	// The token is in localStorage before the page's scripts read it.
	if err := chromedp.Do(bctx, chromedp.Navigate(h.admin+"/#guards")); err != nil {
		t.Skipf("headless Chromium (%s) did not start or load the console: %v", chrome, err)
	}
	if err := chromedp.Do(bctx, chromedp.Evaluate[chromedp.Void](`(()=>{const f=document.getElementById('tok');f.value='s3cret-ops';f.dispatchEvent(new Event('change'))})()`)); err != nil {
		t.Fatal(err)
	}
	poll := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s; the tab shows:\n%s", what, pageText(t, bctx, `#guards`))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	poll("the holding guard", func() bool {
		return strings.Contains(pageText(t, bctx, `div[data-guard-alert="web"]`), "holding a in service") &&
			strings.Contains(pageText(t, bctx, `tr[data-guard="web"]`), "holding") &&
			strings.Contains(pageText(t, bctx, `#gd-count`), "1 holding")
	})

	dialogs := chromedp.Events(bctx, page.JavascriptDialogOpening)
	go func() {
		for _, err := range dialogs {
			if err != nil {
				return
			}
			_, _ = chromedp.Call(bctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
		}
	}()
	// Drill pool a: the guard (a held, b the only healthy pool) refuses it.
	if err := chromedp.Do(bctx,
		chromedp.SetValue(`#gd-form select[name=target]`, "pool:a"),
		chromedp.SetValue(`#gd-form input[name=duration]`, "1h"),
		chromedp.Click(`#gd-form button`)); err != nil {
		t.Fatal(err)
	}
	poll("the refusal", func() bool {
		return strings.Contains(pageText(t, bctx, `#gd-form-out`), "409: refused: service web: guard min_pools 2: a would stop serving")
	})
	if err := chromedp.Do(bctx, chromedp.Click(`#gd-form input[name=force]`), chromedp.Click(`#gd-form button`)); err != nil {
		t.Fatal(err)
	}
	poll("the forced drill running with its measured drain", func() bool {
		row := pageText(t, bctx, `tr[data-drill="d2"]`)
		return strings.Contains(row, "running") && strings.Contains(row, "forced") && strings.Contains(row, " ms") &&
			strings.Contains(pageText(t, bctx, `tr[data-drill="d1"]`), "refused")
	})
	if err := chromedp.Do(bctx, chromedp.Click(`tr[data-drill="d2"] button[data-drill-abort]`)); err != nil {
		t.Fatal(err)
	}
	poll("the drill aborted", func() bool { return strings.Contains(pageText(t, bctx, `tr[data-drill="d2"]`), "aborted") })
	if st := h.tableAuth(auth).Pools["a"].Endpoints[0].Health; st.Override != "" {
		t.Errorf("after the abort from the console: a's override %q", st.Override)
	}
}
