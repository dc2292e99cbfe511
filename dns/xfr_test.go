package dns

import (
	"net"
	"sync"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/meridian-lb/meridian/config"
	"github.com/meridian-lb/meridian/health"
)

func TestZoneTransfer(t *testing.T) {
	h := newHarness(t, loadConfig(t, "zone.yaml"))
	axfr := func() *mdns.Msg {
		m := new(mdns.Msg)
		m.SetAxfr("example.com.")
		return m
	}

	t.Run("AXFR over TCP from an allowed network", func(t *testing.T) {
		env, err := (&mdns.Transfer{}).In(axfr(), h.tcp)
		if err != nil {
			t.Fatal(err)
		}
		var rrs []mdns.RR
		for e := range env {
			if e.Error != nil {
				t.Fatal(e.Error)
			}
			rrs = append(rrs, e.RR...)
		}
		if len(rrs) < 2 {
			t.Fatalf("%d records", len(rrs))
		}
		first, okF := rrs[0].(*mdns.SOA)
		last, okL := rrs[len(rrs)-1].(*mdns.SOA)
		if !okF || !okL || first.Serial != h.serial() || last.Serial != h.serial() {
			t.Fatalf("transfer must start and end with the SOA at serial %d: %v ... %v", h.serial(), rrs[0], rrs[len(rrs)-1])
		}
		have := map[string]bool{}
		for _, rr := range rrs {
			have[rr.String()] = true
		}
		for _, want := range []string{
			"ns1.example.com.\t300\tIN\tA\t192.0.2.53",
			"example.com.\t3600\tIN\tNS\tns2.example.com.",
			"*.app.example.com.\t300\tIN\tA\t192.0.2.80",
			"sub.example.com.\t300\tIN\tNS\tns.sub.example.com.",
			"ns.sub.example.com.\t300\tIN\tA\t192.0.2.200",
			"www.example.com.\t30\tIN\tA\t192.0.2.1", // steered, as the default region sees it
			"www.example.com.\t30\tIN\tAAAA\t2001:db8::1",
		} {
			if !have[want] {
				t.Errorf("transfer lacks %q", want)
			}
		}
		// Counted once the last envelope is out, which may be after the
		// client has read it.
		waitFor(t, "transfers_total{result=ok} = 1", func() bool {
			return counterValue(t, h, "meridian_dns_transfers_total", map[string]string{"result": "ok"}) == 1
		})
	})

	for _, tt := range []struct {
		name, network, from string
		qtype               uint16
		rcode               int
		soaOnly             bool
	}{
		{name: "AXFR over TCP from elsewhere is refused", network: "tcp", from: "127.0.0.2", qtype: mdns.TypeAXFR, rcode: mdns.RcodeRefused},
		{name: "AXFR over UDP is refused", network: "udp", qtype: mdns.TypeAXFR, rcode: mdns.RcodeRefused},
		{name: "IXFR over UDP answers the SOA", network: "udp", qtype: mdns.TypeIXFR, rcode: mdns.RcodeSuccess, soaOnly: true},
		{name: "IXFR over UDP from elsewhere is refused", network: "udp", from: "127.0.0.2", qtype: mdns.TypeIXFR, rcode: mdns.RcodeRefused},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := new(mdns.Msg)
			m.SetQuestion("example.com.", tt.qtype)
			resp := h.mustExchange(m, tt.network, tt.from)
			if resp.Rcode != tt.rcode {
				t.Fatalf("rcode %s, want %s", mdns.RcodeToString[resp.Rcode], mdns.RcodeToString[tt.rcode])
			}
			if tt.soaOnly {
				if len(resp.Answer) != 1 || resp.Answer[0].Header().Rrtype != mdns.TypeSOA {
					t.Fatalf("answer %v, want the SOA alone", resp.Answer)
				}
			} else if len(resp.Answer) != 0 {
				t.Fatalf("answer %v, want none", resp.Answer)
			}
		})
	}
}

// secondary is a miekg server on loopback that records the NOTIFYs it gets.
// It leaves the first NOTIFY of each serial unanswered, so the retry path
// runs too.
type secondary struct {
	addr string
	got  chan *mdns.Msg
}

func newSecondary(t *testing.T) *secondary {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &secondary{addr: pc.LocalAddr().String(), got: make(chan *mdns.Msg, 64)}
	var mu sync.Mutex
	seen := map[uint32]bool{}
	srv := &mdns.Server{PacketConn: pc, Handler: mdns.HandlerFunc(func(w mdns.ResponseWriter, r *mdns.Msg) {
		s.got <- r
		serial := uint32(0)
		if len(r.Answer) == 1 {
			if soa, ok := r.Answer[0].(*mdns.SOA); ok {
				serial = soa.Serial
			}
		}
		mu.Lock()
		first := !seen[serial]
		seen[serial] = true
		mu.Unlock()
		if first {
			return // drop the first: the primary must retry
		}
		m := new(mdns.Msg)
		m.SetReply(r)
		_ = w.WriteMsg(m)
	})}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go func() { _ = srv.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { _ = srv.Shutdown() })
	return s
}

// next returns the next NOTIFY, failing after 5 s.
func (s *secondary) next(t *testing.T) *mdns.Msg {
	t.Helper()
	select {
	case m := <-s.got:
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("no NOTIFY arrived")
		return nil
	}
}

func TestNotify(t *testing.T) {
	sec := newSecondary(t)
	cfg := loadConfig(t, "zone.yaml")
	cfg.DNS.NotifyPeriod = config.Duration(50 * time.Millisecond)
	cfg.Zones[0].Transfer.Notify = config.StringList{sec.addr}
	h := newHarness(t, cfg)

	check := func(t *testing.T, m *mdns.Msg, serial uint32) {
		t.Helper()
		if m.Opcode != mdns.OpcodeNotify || !m.Authoritative || len(m.Question) != 1 ||
			m.Question[0].Name != "example.com." || m.Question[0].Qtype != mdns.TypeSOA {
			t.Fatalf("not a NOTIFY for example.com.: %v", m)
		}
		if len(m.Answer) != 1 || m.Answer[0].(*mdns.SOA).Serial != serial {
			t.Fatalf("NOTIFY answer %v, want the SOA at serial %d", m.Answer, serial)
		}
	}
	first := h.serial()
	t.Run("at start, retried until answered", func(t *testing.T) {
		check(t, sec.next(t), first)
		check(t, sec.next(t), first) // the retry
		waitFor(t, "an acknowledged NOTIFY", func() bool {
			return counterValue(t, h, "meridian_dns_notify_total", map[string]string{"result": "ok"}) >= 1
		})
	})
	t.Run("when health changes the answers", func(t *testing.T) {
		h.override("web-eu", "192.0.2.1:80", health.ActionDown)
		m := sec.next(t)
		serial := m.Answer[0].(*mdns.SOA).Serial
		if int32(serial-first) <= 0 || serial != h.serial() {
			t.Fatalf("NOTIFY serial %d, want the new serial %d (after %d)", serial, h.serial(), first)
		}
		check(t, m, serial)
	})
	t.Run("not when a reload changes nothing", func(t *testing.T) {
		before := h.serial()
		for len(sec.got) > 0 {
			<-sec.got
		}
		h.publish(cfg)
		if h.serial() != before {
			t.Fatalf("serial moved from %d to %d on an identical reload", before, h.serial())
		}
		select {
		case m := <-sec.got:
			if m.Answer[0].(*mdns.SOA).Serial != before {
				t.Fatalf("unexpected NOTIFY %v", m)
			}
		case <-time.After(200 * time.Millisecond):
		}
	})
	t.Run("when a reload changes a record", func(t *testing.T) {
		before := h.serial()
		cfg2 := loadConfig(t, "zone.yaml")
		cfg2.DNS.NotifyPeriod = cfg.DNS.NotifyPeriod
		cfg2.Zones[0].Transfer.Notify = cfg.Zones[0].Transfer.Notify
		cfg2.Zones[0].Records[9].Values = config.StringList{"192.0.2.153"} // ns1
		h.publish(cfg2)
		if int32(h.serial()-before) <= 0 {
			t.Fatalf("serial %d after %d", h.serial(), before)
		}
		for {
			m := sec.next(t)
			if m.Answer[0].(*mdns.SOA).Serial == h.serial() {
				return
			}
		}
	})
}
