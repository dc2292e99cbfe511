package fleet

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/meridian-lb/meridian/catalog"
	"github.com/meridian-lb/meridian/config"
	"github.com/meridian-lb/meridian/health"
	"github.com/meridian-lb/meridian/routing"
)

// TestRealAgentFleet runs two fleet members against a real Consul agent:
// reports under sessions (TTL 10s, Consul's minimum), a shared override,
// and the report deleted with the session at a clean stop. It needs
// CONSUL_HTTP_ADDR (and CONSUL_HTTP_TOKEN with ACLs: key_prefix write on
// the run's prefix, session write on the agent's node); it writes only
// below a prefix unique to the run.
func TestRealAgentFleet(t *testing.T) {
	addr := os.Getenv(catalog.EnvAddr)
	if addr == "" {
		t.Skip("CONSUL_HTTP_ADDR not set: skipping the real-agent test (it runs against a live Consul agent)")
	}
	client, err := catalog.NewClient(&config.Consul{Address: addr})
	if err != nil {
		t.Fatal(err)
	}
	prefix := fmt.Sprintf("meridian-test-%d/fleet", time.Now().UnixNano())
	t.Cleanup(func() { client.KV().DeleteTree(prefix, nil) })
	start := func(id string) (*Fleet, *fakeHealth, context.CancelFunc, chan error) {
		h, tbl := newFakeHealth(ep1, ep2), newTable(t)
		f, err := New(Options{Client: client, Prefix: prefix, SessionTTL: 10 * time.Second, Health: h, Table: func() *routing.Table { return tbl }, Wait: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		f.SetID(id)
		f.Configure(&config.Quorum{MinReporters: 2, DownRatio: 0.5}, true)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- f.Run(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
		return f, h, cancel, done
	}
	a, _, _, _ := start("a")
	b, bh, stopB, doneB := start("b")
	waitFor(t, "two reporters", func() bool { return len(a.Status().Reporters) == 2 && len(b.Status().Reporters) == 2 })
	if err := a.Share(context.Background(), "web", ep1, health.ActionDrain); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b drains", func() bool { act, _ := bh.override(ep1); return act == health.ActionDrain })
	if err := a.Share(context.Background(), "web", ep1, health.ActionEnable); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b lifts it", func() bool { act, _ := bh.override(ep1); return act == "" })
	stopB()
	<-doneB
	doneB <- nil // for the cleanup
	waitFor(t, "b's report gone", func() bool { return len(a.Status().Reporters) == 1 })
}
