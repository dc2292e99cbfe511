package proxy

import (
	"context"
	"io/fs"
	"strings"
	"testing"

	"github.com/meridian-lb/meridian/examples"
	"github.com/meridian-lb/meridian/health"
	"github.com/meridian-lb/meridian/internal/demo"
)

// exampleEnv serves a shipped example through the proxy, with the demo
// upstreams on free ports standing in for 127.0.0.1:9101-9103 and the
// health engine probing them as in the real binary.
func exampleEnv(t *testing.T, name string) (*env, demo.Set) {
	t.Helper()
	b, err := fs.ReadFile(examples.Files, name)
	if err != nil {
		t.Fatal(err)
	}
	ups := demo.Set{
		"eu":     {Name: "eu", Addr: "127.0.0.1:0"},
		"us":     {Name: "us", Addr: "127.0.0.1:0"},
		"canary": {Name: "canary", Addr: "127.0.0.1:0"},
	}
	if err := ups.StartAll(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ups.StopAll)
	y := strings.NewReplacer("127.0.0.1:9101", ups["eu"].Addr, "127.0.0.1:9102", ups["us"].Addr, "127.0.0.1:9103", ups["canary"].Addr).Replace(string(b))
	e := newEnv(t, y, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.eng.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	waitFor(t, "the demo upstreams to be probed up", func() bool {
		for _, s := range e.eng.Snapshot() {
			if s.State != health.StateUp {
				return false
			}
		}
		return true
	})
	return e, ups
}

func TestExampleCanary(t *testing.T) {
	e, _ := exampleEnv(t, "canary.yaml")
	if res, body := e.get("/", "X-Canary", "1"); !strings.HasPrefix(body, "hello from canary") || res.Header.Get("X-Served-By") != "meridian" {
		t.Errorf("X-Canary: %q %v", body, res.Header)
	}
	if _, body := e.get("/", "Cookie", "canary=always"); !strings.HasPrefix(body, "hello from canary") {
		t.Errorf("canary cookie: %q", body)
	}
	counts := map[string]int{}
	for range 400 {
		res, body := e.get("/")
		if res.StatusCode != 200 || len(res.Cookies()) != 1 {
			t.Fatalf("%d %v", res.StatusCode, res.Header)
		}
		counts[strings.Fields(body)[2]]++
	}
	if counts["canary"] < 5 || counts["canary"] > 45 || counts["eu"] == 0 || counts["us"] == 0 {
		t.Errorf("new users spread %v, want about 5%% canary", counts)
	}
}

func TestExampleMirror(t *testing.T) {
	e, ups := exampleEnv(t, "mirror.yaml")
	for range 50 {
		if res, body := e.get("/api/orders"); res.StatusCode != 200 || !strings.HasPrefix(body, "hello from eu") {
			t.Fatalf("%d %q", res.StatusCode, body)
		}
	}
	e.h.waitMirrors(context.Background())
	if got := e.metric("meridian_http_mirror_total", map[string]string{"result": "sent"}); got != 10 {
		t.Errorf("%v copies sent for 50 /api requests, want 10", got)
	}
	if _, body := e.get("/about"); !strings.HasPrefix(body, "hello from eu") {
		t.Errorf("www route: %q", body)
	}
	// The shadow going away changes nothing for clients.
	ups["canary"].Stop()
	for range 10 {
		if res, _ := e.get("/api/orders"); res.StatusCode != 200 {
			t.Fatalf("status %d with the shadow down", res.StatusCode)
		}
	}
}
