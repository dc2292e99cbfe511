package catalog

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/meridian-lb/meridian/config"
)

// TestRealAgent runs the watcher, the KV source and registration against a
// real Consul agent. It needs CONSUL_HTTP_ADDR (and CONSUL_HTTP_TOKEN when
// ACLs are on); it registers and deletes only names unique to this run.
func TestRealAgent(t *testing.T) {
	addr := os.Getenv(EnvAddr)
	if addr == "" {
		t.Skip("CONSUL_HTTP_ADDR not set: skipping the real-agent test (it runs against a live Consul agent)")
	}
	client, err := NewClient(&config.Consul{Address: addr})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	run := fmt.Sprintf("meridian-test-%d", time.Now().UnixNano())

	// Registration, seen through a watcher.
	deregister, err := Register(ctx, client, config.Register{Name: run, Tags: []string{"test"}, CheckInterval: config.Duration(10 * time.Second)},
		Self{HTTP: "127.0.0.1:18080", DNS: "127.0.0.1:15353", Admin: "127.0.0.1:19090", Hostname: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deregister(context.Background()) })
	sel := config.ConsulSelect{Service: run, Tags: []string{"test"}, Health: "any"}
	opts := fastOptions()
	opts.WaitTime = 2 * time.Second
	opts.Timeout = 10 * time.Second
	r := runWatcher(t, client, opts, KeyOf(sel))
	waitFor(t, "the registered instance in the catalog", func() bool {
		inst, _ := r.w.Snapshot().Instances(sel)
		return len(inst) == 1 && inst[0].Port == 18080 && inst[0].Meta[MetaDNSPort] == "15353"
	})
	if err := deregister(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the instance to leave the catalog", func() bool {
		inst, ready := r.w.Snapshot().Instances(sel)
		return ready && len(inst) == 0
	})

	// KV config source.
	key := run + "/config"
	kv := client.KV()
	if _, err := kv.Put(&api.KVPair{Key: key, Value: []byte("a: 1\n")}, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { kv.Delete(key, nil) })
	src := NewKVSource(client, key, KVOptions{MinInterval: 10 * time.Millisecond, WaitTime: 2 * time.Second})
	got, err := src.Get(ctx)
	if err != nil || string(got) != "a: 1\n" {
		t.Fatalf("Get = %q, %v", got, err)
	}
	changes := make(chan string, 1)
	rctx, rcancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- src.Run(rctx, func(b []byte) { changes <- string(b) }) }()
	defer func() {
		rcancel()
		<-done
	}()
	if _, err := kv.Put(&api.KVPair{Key: key, Value: []byte("a: 2\n")}, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case v := <-changes:
		if v != "a: 2\n" {
			t.Fatalf("delivered %q", v)
		}
	case <-ctx.Done():
		t.Fatal("KV change not delivered")
	}
}
