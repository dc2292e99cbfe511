package dns

import (
	"net/netip"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/meridian-lb/meridian/config"
)

func TestLimiter(t *testing.T) {
	l := newLimiter(&config.RRL{ResponsesPerSecond: 5, Slip: 2, Window: config.Duration(2 * time.Second), IPv4Prefix: 24, IPv6Prefix: 56})
	t0 := time.Unix(1000, 0)
	a := netip.MustParseAddr("192.0.2.1")
	sameNet := netip.MustParseAddr("192.0.2.200")
	otherNet := netip.MustParseAddr("192.0.3.1")
	v6 := netip.MustParseAddr("2001:db8:0:ff::1")
	v6Same := netip.MustParseAddr("2001:db8:0:aa::2") // same /56
	var got []rrlAction
	for range 5 {
		got = append(got, l.account(a, t0))
	}
	for range 4 {
		got = append(got, l.account(sameNet, t0)) // the /24 shares the budget
	}
	want := []rrlAction{rrlPass, rrlPass, rrlPass, rrlPass, rrlPass, rrlDrop, rrlSlip, rrlDrop, rrlSlip}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("response %d: %v, want %v (all: %v)", i, got[i], want[i], got)
		}
	}
	if l.account(otherNet, t0) != rrlPass {
		t.Error("another /24 was limited")
	}
	if l.account(v6, t0) != rrlPass || l.account(v6Same, t0) != rrlPass {
		t.Error("IPv6 /56 limited early")
	}
	// Debt: 4 limited responses put the balance at -4; one second refills
	// 5, so one response passes, then it is limited again.
	if l.account(a, t0.Add(time.Second)) != rrlPass {
		t.Error("not refilled after a second")
	}
	if l.account(a, t0.Add(time.Second)) == rrlPass {
		t.Error("the refill was more than one second's worth")
	}
	// A long quiet period restores the full budget, never more.
	later := t0.Add(time.Minute)
	for i := range 5 {
		if l.account(a, later) != rrlPass {
			t.Fatalf("response %d after a quiet minute limited", i)
		}
	}
	if l.account(a, later) == rrlPass {
		t.Error("budget above one second's worth after a quiet period")
	}

	t.Run("slip 0 drops all", func(t *testing.T) {
		l := newLimiter(&config.RRL{ResponsesPerSecond: 1, Slip: 0, Window: config.Duration(time.Second)})
		l.account(a, t0)
		for range 4 {
			if got := l.account(a, t0); got != rrlDrop {
				t.Fatalf("%v, want drop", got)
			}
		}
	})
	t.Run("off by default", func(t *testing.T) {
		if newLimiter(nil) != nil {
			t.Fatal("a limiter without rrl config")
		}
	})
	t.Run("bounded memory", func(t *testing.T) {
		l := newLimiter(&config.RRL{ResponsesPerSecond: 1, Slip: 2, Window: config.Duration(time.Second)})
		for i := range 300000 {
			ip := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), 1})
			l.account(ip, t0)
		}
		n := 0
		for i := range l.shards {
			n += len(l.shards[i].m)
		}
		if n > rrlShards*rrlMaxEntries {
			t.Fatalf("%d entries, over the bound %d", n, rrlShards*rrlMaxEntries)
		}
	})
}

func TestRRLOverUDP(t *testing.T) {
	cfg := loadConfig(t, "zone.yaml")
	cfg.DNS.RRL = &config.RRL{ResponsesPerSecond: 5, Slip: 2, Window: config.Duration(15 * time.Second), IPv4Prefix: 24, IPv6Prefix: 56}
	h := newHarness(t, cfg)
	c := &mdns.Client{Net: "udp", Timeout: 100 * time.Millisecond}
	pass, slip, drop := 0, 0, 0
	for range 20 {
		resp, _, err := c.Exchange(soaQuery(), h.udp)
		switch {
		case err != nil:
			drop++
		case resp.Truncated && len(resp.Answer) == 0:
			slip++
		case resp.Rcode == mdns.RcodeSuccess && len(resp.Answer) == 1:
			pass++
		default:
			t.Fatalf("unexpected response %v", resp)
		}
	}
	if pass < 5 || pass > 7 || slip < 4 || drop < 4 {
		t.Errorf("pass=%d slip=%d drop=%d; want 5-7 passed, the rest split between slips and drops", pass, slip, drop)
	}
	if v := counterValue(t, h, "meridian_dns_rrl_total", map[string]string{"action": "slip"}); int(v) != slip {
		t.Errorf("rrl_total{action=slip} = %v, want %d", v, slip)
	}
	// TCP is not limited: that is where slipped clients go.
	if resp := h.mustExchange(soaQuery(), "tcp", ""); resp.Rcode != mdns.RcodeSuccess || len(resp.Answer) != 1 {
		t.Fatalf("TCP answer %v", resp)
	}
}
