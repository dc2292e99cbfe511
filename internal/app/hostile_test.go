package app

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
)

// TestHostileClientsChangeNothingUpstream runs the real App with HTTP and
// DNS listeners and a pool whose one endpoint passive detection may eject
// outright (max_ejected_percent 100). Hundreds of requests with broken
// bodies, of each kind, arrive through the real listener on raw sockets:
// each gets its 4xx, the endpoint is never ejected, no upstream error is
// counted, and the DNS answer for the record steered to the pool is the
// same, record for record and TTL for TTL (an ejection would have dropped
// the TTL to degraded_ttl as the pool failed open).
func TestHostileClientsChangeNothingUpstream(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, "up")
	}))
	t.Cleanup(up.Close)
	path := filepath.Join(t.TempDir(), "meridian.yaml")
	write(t, path, fmt.Sprintf(`
listen: {admin: 127.0.0.1:0, http: 127.0.0.1:0, dns: 127.0.0.1:0}
http: {body_timeout: 300ms}
pools:
  web: {endpoints: [%s], outlier: {consecutive_failures: 3, max_ejected_percent: 100}}
services:
  web: {pools: [web]}
routes:
  - {name: web, service: web}
zones:
  - origin: example.test.
    soa: {ns: ns1.example.test., mbox: hostmaster.example.test.}
    ns: [ns1.example.test.]
    records:
      - {name: ns1, type: A, values: [192.0.2.53]}
      - {name: www, type: A, service: web, ttl: 300}
`, up.Listener.Addr()))
	h := start(t, path)
	addrs := h.app.Addrs()
	answer := func() string {
		t.Helper()
		m := new(mdns.Msg)
		m.SetQuestion("www.example.test.", mdns.TypeA)
		r, err := mdns.Exchange(m, addrs.DNS)
		if err != nil {
			t.Fatal(err)
		}
		var rrs []string
		for _, rr := range r.Answer {
			rrs = append(rrs, rr.String())
		}
		sort.Strings(rrs)
		return mdns.RcodeToString[r.Rcode] + "\n" + strings.Join(rrs, "\n")
	}
	before := answer()
	if !strings.Contains(before, "www.example.test.\t300\tIN\tA\t127.0.0.1") {
		t.Fatalf("answer before:\n%s", before)
	}

	const head = "POST / HTTP/1.1\r\nHost: www.example.test\r\n"
	chunked := head + "Transfer-Encoding: chunked\r\n\r\n"
	kinds := []struct {
		name, raw string
		n, code   int
	}{
		{"bare LF in a chunk line", chunked + "5\nhello\r\n0\r\n\r\n", 200, 400},
		{"chunk size overflow", chunked + "fffffffffffffffffffff\r\n", 200, 400},
		{"short body, half-closed", head + "Content-Length: 10\r\n\r\nabc", 200, 400},
		{"stalled body", head + "Content-Length: 10\r\n\r\nabc", 10, 408},
	}
	for _, k := range kinds {
		var wg sync.WaitGroup
		var mu sync.Mutex
		codes := map[int]int{}
		sem := make(chan struct{}, 16)
		for range k.n {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				code := send(t, addrs.HTTP, k.raw, strings.HasPrefix(k.name, "short"))
				mu.Lock()
				codes[code]++
				mu.Unlock()
			}()
		}
		wg.Wait()
		if codes[k.code] != k.n {
			t.Errorf("%s: statuses %v, want %d × %d", k.name, codes, k.n, k.code)
		}
	}
	for _, kind := range []string{"connect_failure", "reset", "timeout", "bad_response"} {
		if got := h.metric(`meridian_http_upstream_errors_total{kind="` + kind + `"}`); got != "" && got != "0" {
			t.Errorf("upstream errors of kind %s: %s", kind, got)
		}
	}
	if got := h.metric(`meridian_health_ejections_total{pool="web"}`); got != "" && got != "0" {
		t.Errorf("ejections: %s", got)
	}
	if after := answer(); after != before {
		t.Errorf("DNS answer changed:\nbefore\n%s\nafter\n%s", before, after)
	}
	if eps := h.table().Pools["web"].Endpoints; len(eps) != 1 || !eps[0].Available {
		t.Errorf("endpoint not available after the hostile requests: %+v", eps)
	}
}

// send writes raw to addr (half-closing when asked) and returns the status
// code of the answer, 0 for none.
func send(t *testing.T, addr, raw string, halfClose bool) int {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Error(err)
		return 0
	}
	defer c.Close()
	io.WriteString(c, raw)
	if halfClose {
		c.(*net.TCPConn).CloseWrite()
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0
	}
	res.Body.Close()
	return res.StatusCode
}
