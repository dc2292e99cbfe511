package dns

import (
	"net/netip"
	"testing"

	mdns "github.com/miekg/dns"

	"github.com/meridian-lb/meridian/health"
)

func aQuery(name string) tcase { return tcase{qname: name, qtype: mdns.TypeA} }

// TestFailoverAndRecovery takes endpoints out with a real health engine
// (operator overrides and passive ejections) and checks the answers, the
// serial and the return when they recover. Panic mode overrides health
// verdicts only: a drained or forced-down endpoint is never answered, so a
// pool an operator emptied is skipped even when everything fails open.
func TestFailoverAndRecovery(t *testing.T) {
	h := newHarness(t, loadConfig(t, "zone.yaml"))
	www := func(from string) *mdns.Msg {
		q := aQuery("www.example.com.")
		return h.mustExchange(q.query(t), "udp", from)
	}
	serialAfter := func(before uint32) uint32 {
		t.Helper()
		waitFor(t, "the serial to move", func() bool { return h.serial() != before })
		s := h.serial()
		if int32(s-before) <= 0 {
			t.Fatalf("serial went from %d to %d", before, s)
		}
		return s
	}
	steps := []struct {
		name   string
		act    func()
		from   string
		answer []string
	}{
		{name: "all up: eu", act: func() {}, answer: []string{"www.example.com. 30 IN A 192.0.2.1", "www.example.com. 30 IN A 192.0.2.2"}},
		{name: "one eu endpoint down", act: func() { h.override("web-eu", "192.0.2.1:80", health.ActionDown) },
			answer: []string{"www.example.com. 30 IN A 192.0.2.2"}},
		{name: "eu pool down: eu clients fail over to us", act: func() { h.override("web-eu", "192.0.2.2:80", health.ActionDrain) },
			answer: []string{"www.example.com. 30 IN A 198.51.100.10", "www.example.com. 30 IN A 198.51.100.11"}},
		{name: "us clients unaffected", act: func() {}, from: "127.0.0.2",
			answer: []string{"www.example.com. 30 IN A 198.51.100.10", "www.example.com. 30 IN A 198.51.100.11"}},
		{name: "everything down: eu clients fail open to us, not to the drained eu", act: func() {
			h.eject("web-us", "198.51.100.10:80")
			h.eject("web-us", "198.51.100.11:80")
		}, answer: []string{"www.example.com. 10 IN A 198.51.100.10", "www.example.com. 10 IN A 198.51.100.11"}},
		{name: "fail open for us clients", act: func() {}, from: "127.0.0.2",
			answer: []string{"www.example.com. 10 IN A 198.51.100.10", "www.example.com. 10 IN A 198.51.100.11"}},
		{name: "eu endpoint enabled: eu clients go there", act: func() { h.override("web-eu", "192.0.2.1:80", health.ActionEnable) },
			answer: []string{"www.example.com. 30 IN A 192.0.2.1"}},
		{name: "eu recovers: eu clients return", act: func() { h.override("web-eu", "192.0.2.2:80", health.ActionEnable) },
			answer: []string{"www.example.com. 30 IN A 192.0.2.1", "www.example.com. 30 IN A 192.0.2.2"}},
	}
	serial := h.serial()
	for i, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			st.act()
			if i > 0 && st.from == "" {
				serial = serialAfter(serial)
			}
			resp := www(st.from)
			checkSection(t, "answer", resp.Answer, st.answer, 0)
			soa := h.mustExchange(soaQuery(), "udp", "")
			if got := soa.Answer[0].(*mdns.SOA).Serial; got != h.serial() {
				t.Errorf("SOA serial %d, zone serial %d", got, h.serial())
			}
		})
	}
}

func TestOnAllDown(t *testing.T) {
	h := newHarness(t, loadConfig(t, "zone.yaml"))
	h.eject("blue", "203.0.113.1:80")
	h.eject("green", "203.0.113.2:80")
	h.override("strict", "192.0.2.60:80", health.ActionDown)
	h.eject("lenient", "192.0.2.61:80")
	check := func(cases []tcase) {
		t.Helper()
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				sortAndCheck(t, h.mustExchange(tc.query(t), "udp", ""), tc, h.serial())
			})
		}
	}
	check([]tcase{
		{name: "nodata", qname: "nd.example.com.", qtype: mdns.TypeA, ns: []string{negSOA}},
		{name: "fallback CNAME is followed in the zone", qname: "fb.example.com.", qtype: mdns.TypeA,
			answer: []string{"fb.example.com. 10 IN CNAME sorry.example.com.", "sorry.example.com. 300 IN A 192.0.2.99"}},
		{name: "a pool with on_all_down: fail is skipped when failing open", qname: "strict.example.com.", qtype: mdns.TypeA,
			answer: []string{"strict.example.com. 10 IN A 192.0.2.61"}},
		{name: "weighted fails open too", qname: "bg.example.com.", qtype: mdns.TypeA,
			answer: []string{"bg.example.com. 10 IN A 203.0.113.1"}},
	})

	// The operator's drain wins over failing open: a drained endpoint is
	// never answered, and a pool left with nothing else is skipped.
	h.override("blue", "203.0.113.1:80", health.ActionDrain)
	h.override("lenient", "192.0.2.61:80", health.ActionDrain)
	check([]tcase{
		{name: "weighted fails open past the drained pool", qname: "bg.example.com.", qtype: mdns.TypeA,
			answer: []string{"bg.example.com. 10 IN A 203.0.113.2"}},
		{name: "nothing left to fail open to is NODATA", qname: "strict.example.com.", qtype: mdns.TypeA, ns: []string{negSOA}},
	})
}

func TestWeightedShares(t *testing.T) {
	h := newHarness(t, loadConfig(t, "zone.yaml"))
	const n = 10000
	counts := map[string]int{}
	q := aQuery("bg.example.com.").query(t)
	for range n {
		resp := h.mustExchange(q, "udp", "")
		if len(resp.Answer) != 1 {
			t.Fatalf("answer %v, want one address", resp.Answer)
		}
		counts[resp.Answer[0].(*mdns.A).A.String()]++
	}
	for addr, want := range map[string]float64{"203.0.113.1": 0.9, "203.0.113.2": 0.1} {
		got := float64(counts[addr]) / n
		if got < want-0.03 || got > want+0.03 {
			t.Errorf("%s got %.3f of answers, want %.2f ± 0.03 (%v)", addr, got, want, counts)
		}
	}
}

func TestRotation(t *testing.T) {
	tab := compile(t, loadConfig(t, "zone.yaml"))
	first := map[string]int{}
	const n = 600
	for range n {
		resp := answerFor(t, tab, aQuery("many.example.com."))
		if len(resp.Answer) != 4 {
			t.Fatalf("%d answers, want max_answers 4", len(resp.Answer))
		}
		seen := map[string]bool{}
		for _, rr := range resp.Answer {
			seen[rr.(*mdns.A).A.String()] = true
		}
		if len(seen) != 4 {
			t.Fatalf("duplicate addresses in %v", resp.Answer)
		}
		first[resp.Answer[0].(*mdns.A).A.String()]++
	}
	if len(first) != 6 {
		t.Fatalf("first places went to %d endpoints, want all 6: %v", len(first), first)
	}
	for addr, c := range first {
		if c < 80 || c > 120 {
			t.Errorf("%s first %d times of %d, want about %d", addr, c, n, n/6)
		}
	}
}

func TestWeightedEndpoints(t *testing.T) {
	cfg := parseConfig(t, `
pools:
  p: {endpoints: [{address: 192.0.2.1:80, weight: 3}, {address: 192.0.2.2:80, weight: 1}]}
services:
  s: {pools: [p]}
zones:
  - origin: example.com.
    soa: {ns: ns1.example.com., mbox: hostmaster.example.com.}
    ns: [ns1.example.com.]
    records:
      - {name: w, type: A, service: s, ttl: 30}
`)
	tab := compile(t, cfg)
	const n = 4000
	heavy := 0
	for range n {
		resp := answer(tab, aQuery("w.example.com.").query(t), client{addr: netip.MustParseAddr("192.0.2.100")}).msg
		if len(resp.Answer) != 2 {
			t.Fatalf("answer %v, want both endpoints", resp.Answer)
		}
		if resp.Answer[0].(*mdns.A).A.String() == "192.0.2.1" {
			heavy++
		}
	}
	if share := float64(heavy) / n; share < 0.70 || share > 0.80 {
		t.Errorf("weight-3 endpoint first in %.3f of answers, want 0.75 ± 0.05", share)
	}
}
