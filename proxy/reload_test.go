package proxy

import (
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestReloadUnderLoad swaps the table continuously while 32 clients send
// requests: every request must succeed, on the old table or the new.
func TestReloadUnderLoad(t *testing.T) {
	a, b, c := newBackend(t, "a", nil), newBackend(t, "b", nil), newBackend(t, "c", nil)
	vars := map[string]string{"A": a.addr, "B": b.addr, "C": c.addr}
	configs := []string{`
pools:
  p1: {endpoints: [{{A}}, {{B}}], balance: least_request}
  p2: {endpoints: [{{C}}]}
services: {s: {pools: [p1, p2]}, t: {pools: [p2]}}
routes:
  - {name: r, split: [{service: s, weight: 70}, {service: t, weight: 30}], retry: {attempts: 1, on: [reset, "503"]}}
`, `
pools:
  p1: {endpoints: [{{B}}, {{C}}], balance: maglev}
services: {s: {pools: [p1]}}
routes:
  - {name: r, match: {path_prefix: /}, service: s, timeout: 10s}
`, `
pools:
  p3: {endpoints: [{{A}}]}
  p4: {endpoints: [{{C}}], protocol: http1}
services: {s: {policy: weighted, pools: [p3, p4], weights: [1, 1]}}
routes:
  - {name: other, match: {host: other.test}, service: s}
  - {name: r2, service: s, mirror: {service: s, percent: 5}}
`}
	e := newEnv(t, configs[0], vars)
	const clients = 32
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}, Timeout: 10 * time.Second}
			defer c.CloseIdleConnections()
			for {
				select {
				case <-stop:
					return
				default:
				}
				res, err := c.Get(e.url + "/")
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				body, _ := io.ReadAll(res.Body)
				res.Body.Close()
				if res.StatusCode != 200 || len(body) != 1 {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Sprintf("status %d body %q", res.StatusCode, body))
					continue
				}
				ok.Add(1)
			}
		})
	}
	swaps := 0
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		e.swap(configs[swaps%len(configs)], vars)
		swaps++
		time.Sleep(10 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d of %d requests failed across %d reloads; first: %v", failed.Load(), ok.Load()+failed.Load(), swaps, firstErr.Load())
	}
	if ok.Load() < 100 || swaps < 20 {
		t.Fatalf("only %d requests and %d swaps ran", ok.Load(), swaps)
	}
	t.Logf("%d requests, %d reloads, no failure", ok.Load(), swaps)
}
