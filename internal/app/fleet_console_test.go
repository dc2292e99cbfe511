package app

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestFleetConsoleInBrowser opens the console's Fleet tab in headless
// Chromium on a fleet of three where one instance cannot reach an
// endpoint: the members, each reporter's view of that endpoint (down for
// one, up for the others), the quorum's verdict overruling the instance's
// own, and the forwarding decision are shown.
func TestFleetConsoleInBrowser(t *testing.T) {
	chrome := findChromium()
	if chrome == "" {
		t.Skip("headless Chromium not found: apt-get install chromium, or set MERIDIAN_CHROMIUM")
	}
	env := newFleetEnv(t, true)
	e1, e2, _ := env.startFleet()
	env.usOnly.block("e1", true)
	e2.waitFor("e1's report", func() bool {
		_, views := e2.endpointView("us-only", env.usOnly.addr)
		return views[e1.fleetDoc().Self] == "down"
	})

	bctx := headlessBrowser(t, chrome, 90*time.Second)
	if err := chromedp.Do(bctx, chromedp.Navigate(e1.admin+"/#fleet")); err != nil {
		t.Skipf("headless Chromium (%s) did not start or load the console: %v", chrome, err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		text := pageText(t, bctx, `#fleet`)
		row := ""
		for _, line := range strings.Split(text, "\n") {
			if strings.Contains(line, "us-only / "+env.usOnly.addr) {
				row = line
			}
		}
		if strings.Contains(text, "Members") && strings.Count(text, "127.0.0.1:") >= 3 &&
			strings.Count(row, "down") >= 1 && strings.Count(row, "up") >= 3 && strings.Contains(row, "1/3 down") &&
			strings.Contains(text, "a pool of this region (eu) is available: served here") && strings.Contains(text, "fresh") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the Fleet tab shows:\n%s", text)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
