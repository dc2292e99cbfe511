package proxy

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meridian-lb/meridian/health"
)

const mirrorConfig = `
pools:
  main: {endpoints: [{{MAIN}}], outlier: {consecutive_failures: 1}}
  shadow: {endpoints: [{{SHADOW}}], outlier: {consecutive_failures: 1}}
services:
  main: {pools: [main]}
  shadow: {pools: [shadow]}
routes:
  - name: r
    service: main
    mirror: {service: shadow, percent: 25, max_body: 16, timeout: 300ms, max_in_flight: 2}
`

func TestMirrorShareAndMarker(t *testing.T) {
	main := newBackend(t, "main", nil)
	shadow := newBackend(t, "shadow", nil)
	e := newEnv(t, mirrorConfig, map[string]string{"MAIN": main.addr, "SHADOW": shadow.addr})
	const n = 200
	for range n {
		if res, body := e.get("/x"); res.StatusCode != 200 || body != "main" {
			t.Fatalf("primary: %d %q", res.StatusCode, body)
		}
	}
	// Every sampled copy ends as sent, dropped (max_in_flight: a loaded
	// machine can have two copies still out) or failed; sampling itself is
	// exact, so the three add up to a quarter.
	mirrored := func(result string) int64 {
		return int64(e.metric("meridian_http_mirror_total", map[string]string{"result": result}))
	}
	waitFor(t, "mirrors to finish", func() bool { return mirrored("sent")+mirrored("dropped")+mirrored("failed") >= n/4 })
	e.h.waitMirrors(context.Background())
	sent, dropped, failed := mirrored("sent"), mirrored("dropped"), mirrored("failed")
	if sent+dropped+failed != n/4 {
		t.Errorf("mirrored %d sent + %d dropped + %d failed of %d, want exactly 25%%", sent, dropped, failed, n)
	}
	if got := shadow.hits.Load(); got < sent || got > sent+failed {
		t.Errorf("shadow got %d copies, want %d sent (up to %d more that failed late)", got, sent, failed)
	}
	r, _ := shadow.lastRequest()
	if r.Header.Get(mirrorHeader) != "1" || r.URL.Path != "/x" || r.Header.Get("X-Forwarded-For") != "127.0.0.1" {
		t.Errorf("mirror request: path %q headers %v", r.URL.Path, r.Header)
	}
	if r, _ := main.lastRequest(); r.Header.Get(mirrorHeader) != "" {
		t.Error("the primary carries the mirror marker")
	}

	t.Run("bodies", func(t *testing.T) {
		before := shadow.hits.Load()
		for i := range 8 {
			body := "small"
			if i%2 == 1 {
				body = strings.Repeat("x", 100) // over max_body: not mirrored
			}
			if res, _ := e.do(nil, "POST", "/post", strings.NewReader(body)); res.StatusCode != 200 {
				t.Fatalf("status %d", res.StatusCode)
			}
		}
		e.h.waitMirrors(context.Background())
		// 8 requests at 25%: the sampled ones alternate small and big.
		got := shadow.hits.Load() - before
		if got > 2 {
			t.Errorf("shadow got %d copies, want at most 2", got)
		}
		if got > 0 {
			if _, b := shadow.lastRequest(); b != "small" {
				t.Errorf("mirrored body %q", b)
			}
		}
	})
}

func TestMirrorNeverSlowsOrFailsPrimary(t *testing.T) {
	main := newBackend(t, "main", nil)
	release := make(chan struct{})
	var arrived atomic.Int64
	hang := newBackend(t, "hang", func(w http.ResponseWriter, r *http.Request) {
		arrived.Add(1)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	t.Cleanup(func() { close(release) })
	hanging := strings.NewReplacer("percent: 25", "percent: 100", "timeout: 300ms", "timeout: 2s").Replace(mirrorConfig)
	e := newEnv(t, hanging+"    timeout: 30s\n", map[string]string{"MAIN": main.addr, "SHADOW": hang.addr})
	// Route timeout 30s, mirror timeout 2s: every copy hangs until then.
	for i := range 10 {
		res, body := e.get("/")
		if res.StatusCode != 200 || body != "main" {
			t.Fatalf("request %d with a hanging mirror: %d %q", i, res.StatusCode, body)
		}
	}
	// Two copies in flight at most; the rest were dropped, not queued.
	if got := arrived.Load(); got > 2 {
		t.Errorf("%d mirror copies reached the hanging shadow, max_in_flight is 2", got)
	}
	if dropped := e.metric("meridian_http_mirror_total", map[string]string{"result": "dropped"}); dropped < 8 {
		t.Errorf("dropped = %v, want at least 8", dropped)
	}
	e.h.waitMirrors(context.Background())
	if failed := e.metric("meridian_http_mirror_total", map[string]string{"result": "failed"}); failed < 1 {
		t.Errorf("failed = %v: the timed-out copies were not counted", failed)
	}
	// Mirror failures never touch health, even with on-first-failure ejection.
	if m := e.eng.Member("shadow", hang.addr); !m.Available() || m.State() != health.StateUp {
		t.Errorf("shadow endpoint state %s after mirror timeouts", m.State())
	}
	if m := e.eng.Member("main", main.addr); !m.Available() {
		t.Error("primary endpoint unavailable")
	}

	t.Run("dead mirror", func(t *testing.T) {
		e.swap(strings.Replace(mirrorConfig, "percent: 25", "percent: 100", 1), map[string]string{"MAIN": main.addr, "SHADOW": deadAddr(t)})
		before := e.metric("meridian_http_mirror_total", map[string]string{"result": "failed"})
		for range 3 {
			if res, _ := e.get("/"); res.StatusCode != 200 {
				t.Fatalf("status %d with a dead mirror", res.StatusCode)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		e.h.waitMirrors(ctx)
		if after := e.metric("meridian_http_mirror_total", map[string]string{"result": "failed"}); after-before != 3 {
			t.Errorf("failed grew by %v, want 3", after-before)
		}
		if got := e.metric("meridian_http_upstream_errors_total", map[string]string{"kind": kindConnect}); got != 0 {
			t.Errorf("mirror failures counted as upstream errors: %v", got)
		}
	})
}
