package catalog

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/meridian-lb/meridian/catalog/consultest"
	"github.com/meridian-lb/meridian/config"
)

// waitFor polls cond until it holds, failing the test after 10s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// fastOptions keeps real-HTTP tests quick: short blocking waits, a short
// request timeout (for hung agents) and short backoff.
func fastOptions() WatcherOptions {
	return WatcherOptions{
		MinInterval: 10 * time.Millisecond,
		WaitTime:    300 * time.Millisecond,
		Timeout:     time.Second,
		BackoffBase: 20 * time.Millisecond,
		BackoffMax:  200 * time.Millisecond,
	}
}

func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// testClient builds a client for srv through NewClient; mod may change the
// config (token file, TLS, namespace).
func testClient(t *testing.T, srv *consultest.Server, mod func(*config.Consul)) *api.Client {
	t.Helper()
	cfg := &config.Consul{Address: srv.Addr}
	if mod != nil {
		mod(cfg)
	}
	c, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func observed() (*zap.Logger, *observer.ObservedLogs) {
	core, logs := observer.New(zapcore.DebugLevel)
	return zap.New(core), logs
}

// renderLogs flattens every captured entry (message and fields) to text.
func renderLogs(logs *observer.ObservedLogs) string {
	var b strings.Builder
	for _, e := range logs.All() {
		fmt.Fprintf(&b, "%s %s %v\n", e.Level, e.Message, e.ContextMap())
	}
	return b.String()
}

func countLogs(logs *observer.ObservedLogs, level zapcore.Level, prefix string) int {
	n := 0
	for _, e := range logs.All() {
		if e.Level == level && strings.HasPrefix(e.Message, prefix) {
			n++
		}
	}
	return n
}

// running is a Watcher over a consultest server.
type running struct {
	w     *Watcher
	pokes atomic.Int32
	logs  *observer.ObservedLogs
	reg   *prometheus.Registry
}

func runWatcher(t *testing.T, client *api.Client, opts WatcherOptions, keys ...Key) *running {
	t.Helper()
	r := &running{reg: prometheus.NewRegistry()}
	opts.Logger, r.logs = observed()
	opts.Registerer = r.reg
	opts.Poke = func() { r.pokes.Add(1) }
	w, err := NewWatcher(client, opts)
	if err != nil {
		t.Fatal(err)
	}
	r.w = w
	w.Want(keys)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return r
}
