package demo

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestFaults drives the control API: fail makes every request but
// /healthz answer 500, slow delays them, heal undoes both, and the listing
// says what is set.
func TestFaults(t *testing.T) {
	s := Set{"canary": {Name: "canary", Addr: "127.0.0.1:0"}}
	if err := s.StartAll(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.StopAll)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.ServeControl(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	control := "http://" + ln.Addr().String()
	up := "http://" + s["canary"].Addr
	call := func(method, url string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, url, nil)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	if code, body := call("GET", up+"/"); code != 200 || !strings.Contains(body, "hello from canary") {
		t.Fatalf("healthy: %d %q", code, body)
	}
	if code, body := call("POST", control+"/upstreams/canary/fail"); code != 200 || !strings.Contains(body, "failing") {
		t.Fatalf("fail: %d %q", code, body)
	}
	if code, body := call("GET", up+"/some/page"); code != 500 || !strings.Contains(body, "heal") {
		t.Errorf("failing: %d %q, want 500 saying how to heal", code, body)
	}
	if code, _ := call("GET", up+"/healthz"); code != 200 {
		t.Errorf("failing /healthz = %d, want 200: health checks stay green", code)
	}
	if _, body := call("GET", control+"/"); !strings.Contains(body, "canary "+s["canary"].Addr+" running (failing)") {
		t.Errorf("listing: %q", body)
	}
	if code, body := call("POST", control+"/upstreams/canary/heal"); code != 200 || !strings.Contains(body, "healthy") {
		t.Fatalf("heal: %d %q", code, body)
	}
	if code, _ := call("GET", up+"/"); code != 200 {
		t.Errorf("healed: %d", code)
	}

	if code, _ := call("POST", control+"/upstreams/canary/slow?ms=150"); code != 200 {
		t.Fatalf("slow: %d", code)
	}
	t0 := time.Now()
	if code, _ := call("GET", up+"/"); code != 200 || time.Since(t0) < 150*time.Millisecond {
		t.Errorf("slow: %d after %v, want 200 after 150ms", code, time.Since(t0))
	}
	t0 = time.Now()
	if code, _ := call("GET", up+"/healthz"); code != 200 || time.Since(t0) > 100*time.Millisecond {
		t.Errorf("slow /healthz: %d after %v, want at once", code, time.Since(t0))
	}
	if _, body := call("GET", control+"/"); !strings.Contains(body, "(slow 150ms)") {
		t.Errorf("listing: %q", body)
	}
	for _, q := range []string{"", "?ms=x", "?ms=-1", "?ms=999999999"} {
		if code, _ := call("POST", control+"/upstreams/canary/slow"+q); code != 400 {
			t.Errorf("slow%s = %d, want 400", q, code)
		}
	}
	call("POST", control+"/upstreams/canary/heal")
	if s["canary"].Faults() != "" {
		t.Errorf("heal left %q", s["canary"].Faults())
	}
	if code, _ := call("POST", control+"/upstreams/canary/explode"); code != 400 {
		t.Errorf("unknown action = %d, want 400", code)
	}
	if code, _ := call("POST", control+"/upstreams/nope/fail"); code != 404 {
		t.Errorf("unknown upstream = %d, want 404", code)
	}
}
