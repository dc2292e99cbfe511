package dns

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	"go.uber.org/zap"
	"golang.org/x/net/ipv4"

	"github.com/meridian-lb/meridian/routing"
)

func soaQuery() *mdns.Msg {
	m := new(mdns.Msg)
	m.SetQuestion("example.com.", mdns.TypeSOA)
	m.RecursionDesired = false
	return m
}

// TestEDNS covers the RFC 8906 §8 EDNS rows: version negotiation, unknown
// options and flags, DO.
func TestEDNS(t *testing.T) {
	h := newHarness(t, loadConfig(t, "zone.yaml"))
	tests := []struct {
		name      string
		edit      func(m *mdns.Msg)
		rcode     int
		wantSOA   bool
		wantAA    bool
		wantDO    bool
		wantNoOpt bool
	}{
		{name: "no EDNS", edit: func(m *mdns.Msg) {}, rcode: mdns.RcodeSuccess, wantSOA: true, wantAA: true, wantNoOpt: true},
		{name: "EDNS 0", edit: func(m *mdns.Msg) { m.SetEdns0(1232, false) }, rcode: mdns.RcodeSuccess, wantSOA: true, wantAA: true},
		{name: "EDNS 1 is BADVERS", edit: func(m *mdns.Msg) {
			m.SetEdns0(1232, false)
			m.IsEdns0().SetVersion(1)
		}, rcode: mdns.RcodeBadVers},
		{name: "EDNS 1 with an unknown option and flag is BADVERS", edit: func(m *mdns.Msg) {
			m.SetEdns0(1232, false)
			o := m.IsEdns0()
			o.SetVersion(1)
			o.SetZ(0x40)
			o.Option = append(o.Option, &mdns.EDNS0_LOCAL{Code: 100, Data: []byte{1, 2}})
		}, rcode: mdns.RcodeBadVers},
		{name: "unknown option ignored", edit: func(m *mdns.Msg) {
			m.SetEdns0(1232, false)
			m.IsEdns0().Option = append(m.IsEdns0().Option, &mdns.EDNS0_LOCAL{Code: 100, Data: []byte{1, 2}})
		}, rcode: mdns.RcodeSuccess, wantSOA: true, wantAA: true},
		{name: "unknown flag not echoed", edit: func(m *mdns.Msg) {
			m.SetEdns0(1232, false)
			m.IsEdns0().SetZ(0x40)
		}, rcode: mdns.RcodeSuccess, wantSOA: true, wantAA: true},
		{name: "DO copied", edit: func(m *mdns.Msg) { m.SetEdns0(1232, true) }, rcode: mdns.RcodeSuccess, wantSOA: true, wantAA: true, wantDO: true},
		{name: "several known options", edit: func(m *mdns.Msg) {
			m.SetEdns0(1232, false)
			o := m.IsEdns0()
			o.Option = append(o.Option, &mdns.EDNS0_COOKIE{Code: mdns.EDNS0COOKIE, Cookie: "0102030405060708"},
				&mdns.EDNS0_NSID{Code: mdns.EDNS0NSID}, &mdns.EDNS0_EXPIRE{Code: mdns.EDNS0EXPIRE, Empty: true})
		}, rcode: mdns.RcodeSuccess, wantSOA: true, wantAA: true},
	}
	for _, tt := range tests {
		for _, network := range []string{"udp", "tcp"} {
			t.Run(tt.name+"/"+network, func(t *testing.T) {
				m := soaQuery()
				m.Zero = true // the header Z bit must not be echoed either
				tt.edit(m)
				resp := h.mustExchange(m, network, "")
				if resp.Rcode != tt.rcode {
					t.Fatalf("rcode %s, want %s", mdns.RcodeToString[resp.Rcode], mdns.RcodeToString[tt.rcode])
				}
				if resp.Authoritative != tt.wantAA {
					t.Errorf("AA=%t, want %t", resp.Authoritative, tt.wantAA)
				}
				if resp.Zero {
					t.Error("Z bit echoed")
				}
				if got := len(resp.Answer) == 1; got != tt.wantSOA {
					t.Errorf("answer %v, want SOA=%t", resp.Answer, tt.wantSOA)
				}
				if len(resp.Question) != 1 {
					t.Errorf("question not echoed: %v", resp.Question)
				}
				opt := resp.IsEdns0()
				if tt.wantNoOpt {
					if opt != nil {
						t.Errorf("OPT in a response to a query without one: %v", opt)
					}
					return
				}
				if opt == nil {
					t.Fatal("no OPT in the response")
				}
				if opt.Version() != 0 || opt.UDPSize() != 1232 || opt.Z() != 0 || len(opt.Option) != 0 {
					t.Errorf("OPT version=%d size=%d z=%#x options=%v, want version 0, 1232, no flags, no options",
						opt.Version(), opt.UDPSize(), opt.Z(), opt.Option)
				}
				if opt.Do() != tt.wantDO {
					t.Errorf("DO=%t, want %t", opt.Do(), tt.wantDO)
				}
			})
		}
	}
}

func TestFormerrAndNotimp(t *testing.T) {
	h := newHarness(t, loadConfig(t, "zone.yaml"))
	withOPT := func(m *mdns.Msg, opts ...mdns.EDNS0) *mdns.Msg {
		m.SetEdns0(1232, false)
		m.IsEdns0().Option = opts
		return m
	}
	tests := []struct {
		name  string
		msg   func() *mdns.Msg
		rcode int
	}{
		{name: "two OPT records", rcode: mdns.RcodeFormatError, msg: func() *mdns.Msg {
			m := withOPT(soaQuery())
			o := &mdns.OPT{Hdr: mdns.RR_Header{Name: ".", Rrtype: mdns.TypeOPT}}
			o.SetUDPSize(512)
			m.Extra = append(m.Extra, o)
			return m
		}},
		{name: "OPT in the answer section", rcode: mdns.RcodeFormatError, msg: func() *mdns.Msg {
			m := soaQuery()
			o := &mdns.OPT{Hdr: mdns.RR_Header{Name: ".", Rrtype: mdns.TypeOPT}}
			m.Answer = append(m.Answer, o)
			return m
		}},
		{name: "no question", rcode: mdns.RcodeFormatError, msg: func() *mdns.Msg {
			m := soaQuery()
			m.Question = nil
			return m
		}},
		{name: "two questions", rcode: mdns.RcodeFormatError, msg: func() *mdns.Msg {
			m := soaQuery()
			m.Question = append(m.Question, mdns.Question{Name: "ns1.example.com.", Qtype: mdns.TypeA, Qclass: mdns.ClassINET})
			return m
		}},
		{name: "ECS with a scope in the query", rcode: mdns.RcodeFormatError, msg: func() *mdns.Msg {
			return withOPT(soaQuery(), &mdns.EDNS0_SUBNET{Code: mdns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, SourceScope: 24, Address: net.IPv4(10, 1, 2, 0)})
		}},
		{name: "two ECS options", rcode: mdns.RcodeFormatError, msg: func() *mdns.Msg {
			e := &mdns.EDNS0_SUBNET{Code: mdns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: net.IPv4(10, 1, 2, 0)}
			return withOPT(soaQuery(), e, e)
		}},
		{name: "qtype OPT", rcode: mdns.RcodeFormatError, msg: func() *mdns.Msg {
			m := soaQuery()
			m.Question[0].Qtype = mdns.TypeOPT
			return m
		}},
		{name: "CHAOS class is refused", rcode: mdns.RcodeRefused, msg: func() *mdns.Msg {
			m := new(mdns.Msg)
			m.SetQuestion("version.bind.", mdns.TypeTXT)
			m.Question[0].Qclass = mdns.ClassCHAOS
			return m
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := h.mustExchange(tt.msg(), "udp", "")
			if resp.Rcode != tt.rcode {
				t.Fatalf("rcode %s, want %s", mdns.RcodeToString[resp.Rcode], mdns.RcodeToString[tt.rcode])
			}
			if resp.Authoritative || len(resp.Answer) > 0 {
				t.Errorf("AA=%t answer=%v, want neither", resp.Authoritative, resp.Answer)
			}
		})
	}

	// miekg cannot pack these options; they are written by hand.
	for _, tt := range []struct {
		name   string
		option []byte // family, source, scope, address
	}{
		{"unknown ECS family", []byte{0, 3, 0, 0}},
		{"ECS address bits beyond the prefix", []byte{0, 1, 16, 0, 10, 1, 2}},
		{"ECS prefix longer than IPv4", []byte{0, 1, 33, 0, 10, 1, 2, 3, 4}},
		{"ECS family 0 with a prefix", []byte{0, 0, 8, 0, 10}},
		{"ECS option too short", []byte{0, 1}},
	} {
		t.Run(tt.name+" on the wire", func(t *testing.T) {
			resp := h.raw(rawECSQuery(tt.option), 2*time.Second)
			if resp == nil {
				t.Fatal("no answer")
			}
			m := new(mdns.Msg)
			if err := m.Unpack(resp); err != nil {
				t.Fatal(err)
			}
			if m.Rcode != mdns.RcodeFormatError || m.Id != 0xabcd {
				t.Fatalf("rcode %s id %#x, want FORMERR for 0xabcd", mdns.RcodeToString[m.Rcode], m.Id)
			}
		})
	}

	for _, opcode := range []int{mdns.OpcodeUpdate, 15, mdns.OpcodeNotify} {
		t.Run("opcode "+mdns.OpcodeToString[opcode]+" is NOTIMP without flags", func(t *testing.T) {
			m := soaQuery()
			m.Opcode = opcode
			m.RecursionDesired, m.AuthenticatedData, m.CheckingDisabled = true, true, true
			resp := h.mustExchange(m, "udp", "")
			if resp.Rcode != mdns.RcodeNotImplemented || resp.Opcode != opcode {
				t.Fatalf("rcode %s opcode %d, want NOTIMP %d", mdns.RcodeToString[resp.Rcode], resp.Opcode, opcode)
			}
			if resp.Authoritative || resp.RecursionDesired || resp.AuthenticatedData || resp.CheckingDisabled {
				t.Errorf("flags echoed: aa=%t rd=%t ad=%t cd=%t", resp.Authoritative, resp.RecursionDesired, resp.AuthenticatedData, resp.CheckingDisabled)
			}
		})
	}

	t.Run("header-only unknown opcode", func(t *testing.T) {
		b := []byte{0x12, 0x34, 15 << 3, 0, 0, 0, 0, 0, 0, 0, 0, 0}
		resp := h.raw(b, 2*time.Second)
		m := new(mdns.Msg)
		if resp == nil || m.Unpack(resp) != nil || m.Rcode != mdns.RcodeNotImplemented {
			t.Fatalf("want NOTIMP, got %v", m)
		}
	})

	t.Run("RD and CD copied on answers, AD and RA not set", func(t *testing.T) {
		m := soaQuery()
		m.RecursionDesired, m.CheckingDisabled, m.AuthenticatedData = true, true, true
		resp := h.mustExchange(m, "udp", "")
		if !resp.RecursionDesired || !resp.CheckingDisabled || resp.AuthenticatedData || resp.RecursionAvailable {
			t.Errorf("rd=%t cd=%t ad=%t ra=%t, want rd cd only", resp.RecursionDesired, resp.CheckingDisabled, resp.AuthenticatedData, resp.RecursionAvailable)
		}
	})
}

func TestMalformedAndResponsesDropped(t *testing.T) {
	h := newHarness(t, loadConfig(t, "zone.yaml"))
	resp := soaQuery()
	resp.Response = true
	b, err := resp.Pack()
	if err != nil {
		t.Fatal(err)
	}
	garbage := []struct {
		name string
		b    []byte
	}{
		{"QR=1", b},
		{"one byte", []byte{0}},
		{"short header", []byte{1, 2, 3, 4, 5}},
	}
	for _, g := range garbage {
		t.Run(g.name+" is dropped", func(t *testing.T) {
			if got := h.raw(g.b, 300*time.Millisecond); got != nil {
				t.Fatalf("got a reply %x", got)
			}
		})
	}
	formerr := []struct {
		name string
		b    []byte
	}{
		{"pointer to itself", []byte{0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1}},
		{"truncated name", []byte{0, 2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 7, 'e', 'x', 'a'}},
		{"label of 64 octets", append(append([]byte{0, 3, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 64}, make([]byte, 64)...), 0, 0, 1, 0, 1)},
	}
	for _, g := range formerr {
		t.Run(g.name+" is FORMERR or dropped", func(t *testing.T) {
			got := h.raw(g.b, 500*time.Millisecond)
			if got == nil {
				return
			}
			m := new(mdns.Msg)
			if err := m.Unpack(got); err != nil {
				t.Fatalf("unparseable reply: %v", err)
			}
			if m.Rcode != mdns.RcodeFormatError {
				t.Fatalf("rcode %s, want FORMERR", mdns.RcodeToString[m.Rcode])
			}
		})
	}
	t.Run("counts larger than the packet are read as far as it goes", func(t *testing.T) {
		got := h.raw([]byte{0, 4, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 1, 0, 1}, 2*time.Second)
		m := new(mdns.Msg)
		if got == nil || m.Unpack(got) != nil || m.Rcode != mdns.RcodeRefused {
			t.Fatalf("want REFUSED for the root, got %v", m)
		}
	})
	// The server is still alive after all that.
	if r := h.mustExchange(soaQuery(), "udp", ""); r.Rcode != mdns.RcodeSuccess {
		t.Fatalf("server broken after malformed input: %v", r)
	}
}

func TestTruncationThenTCP(t *testing.T) {
	h := newHarness(t, loadConfig(t, "zone.yaml"))
	for _, tt := range []struct {
		name  string
		edns  uint16 // 0: no EDNS
		limit int
	}{
		{"no EDNS: 512 bytes", 0, 512},
		{"EDNS 4096 is capped at our 1232", 4096, 1232},
		{"EDNS 800", 800, 800},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := new(mdns.Msg)
			m.SetQuestion("big.example.com.", mdns.TypeTXT)
			if tt.edns > 0 {
				m.SetEdns0(tt.edns, false)
			}
			resp := h.mustExchange(m, "udp", "")
			if !resp.Truncated {
				t.Fatalf("TC not set; %d answers", len(resp.Answer))
			}
			if n := resp.Len(); n > tt.limit {
				t.Errorf("UDP response is %d bytes, over %d", n, tt.limit)
			}
			if len(resp.Answer) >= 8 {
				t.Errorf("truncated response has all %d answers", len(resp.Answer))
			}
			full := h.mustExchange(m, "tcp", "")
			if full.Truncated || len(full.Answer) != 8 {
				t.Errorf("TCP: TC=%t answers=%d, want the whole RRset", full.Truncated, len(full.Answer))
			}
		})
	}
}

// rawECSQuery is an SOA query for example.com. with id 0xabcd whose OPT
// carries one ECS option with the given data.
func rawECSQuery(data []byte) []byte {
	b := []byte{0xab, 0xcd, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1,
		7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 3, 'c', 'o', 'm', 0, 0, 6, 0, 1,
		0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0}
	b = binary.BigEndian.AppendUint16(b, uint16(4+len(data)))
	b = append(b, 0, 8)
	b = binary.BigEndian.AppendUint16(b, uint16(len(data)))
	return append(b, data...)
}

// tcpQuery writes one length-prefixed query.
func tcpQuery(t *testing.T, c net.Conn, id uint16, name string) {
	t.Helper()
	m := new(mdns.Msg)
	m.SetQuestion(name, mdns.TypeA)
	m.Id = id
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(b))), b...)); err != nil {
		t.Fatal(err)
	}
}

func tcpRead(t *testing.T, c net.Conn) *mdns.Msg {
	t.Helper()
	var l [2]byte
	if _, err := io.ReadFull(c, l[:]); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, binary.BigEndian.Uint16(l[:]))
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatal(err)
	}
	m := new(mdns.Msg)
	if err := m.Unpack(b); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestTCP(t *testing.T) {
	cfg := loadConfig(t, "zone.yaml")
	cfg.DNS.TCPMaxConns = 2
	h := newHarness(t, cfg)

	t.Run("pipelined queries all answered", func(t *testing.T) {
		c, err := net.Dial("tcp", h.tcp)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		names := map[uint16]string{1: "ns1.example.com.", 2: "ns2.example.com.", 3: "mx.example.com."}
		for id := uint16(1); id <= 3; id++ {
			tcpQuery(t, c, id, names[id])
		}
		for range 3 {
			m := tcpRead(t, c)
			want, ok := names[m.Id]
			if !ok || len(m.Answer) != 1 || m.Answer[0].Header().Name != want {
				t.Fatalf("answer %v for id %d", m.Answer, m.Id)
			}
			delete(names, m.Id)
		}
	})

	t.Run("idle connections are closed", func(t *testing.T) {
		c, err := net.Dial("tcp", h.tcp)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		tcpQuery(t, c, 7, "ns1.example.com.")
		tcpRead(t, c)
		start := time.Now()
		if _, err := c.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("read after idle: %v, want EOF", err)
		}
		if d := time.Since(start); d > 4*time.Second {
			t.Errorf("closed after %s, want about tcp_idle_timeout (300ms)", d)
		}
	})

	t.Run("connections beyond tcp_max_conns are closed", func(t *testing.T) {
		h := newHarness(t, cfg) // a fresh server: no slot held by the tests above
		var open []net.Conn
		defer func() {
			for _, c := range open {
				c.Close()
			}
		}()
		for range 2 {
			c, err := net.Dial("tcp", h.tcp)
			if err != nil {
				t.Fatal(err)
			}
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			tcpQuery(t, c, 1, "ns1.example.com.")
			tcpRead(t, c) // served, so it holds a slot
			open = append(open, c)
		}
		c, err := net.Dial("tcp", h.tcp)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Fatal("third connection was served")
		}
		waitFor(t, "the refusal counted", func() bool { return counterValue(t, h, "meridian_dns_tcp_refused_total", nil) >= 1 })
		// A slot freed by a close serves again.
		open[0].Close()
		open = open[1:]
		waitFor(t, "a freed slot", func() bool {
			resp, err := h.exchange(soaQuery(), "tcp", "")
			return err == nil && resp.Rcode == mdns.RcodeSuccess
		})
	})
}

func TestConcurrentUDP(t *testing.T) {
	h := newHarness(t, loadConfig(t, "zone.yaml"))
	const clients, each = 8, 200
	errs := make(chan error, clients)
	for range clients {
		go func() {
			c := &mdns.Client{Net: "udp", Timeout: 2 * time.Second}
			for i := range each {
				q := new(mdns.Msg)
				name := "ns1.example.com."
				if i%2 == 1 {
					name = "ns2.example.com."
				}
				q.SetQuestion(name, mdns.TypeA)
				resp, _, err := c.Exchange(q, h.udp)
				if err != nil {
					errs <- err
					return
				}
				if resp.Id != q.Id || len(resp.Answer) != 1 || resp.Answer[0].Header().Name != name {
					errs <- fmt.Errorf("query %s got %v", name, resp)
					return
				}
			}
			errs <- nil
		}()
	}
	for range clients {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// TestWildcardSocketPath runs the per-datagram worker used for sockets
// bound to every address (replies leave from the query's destination
// address) on a loopback socket with the same control messages enabled.
func TestWildcardSocketPath(t *testing.T) {
	live := &routing.Live{}
	live.Store(compile(t, loadConfig(t, "zone.yaml")))
	s := NewServer(Options{Tables: live, Logger: zap.NewNop()})
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conn := pc.(*net.UDPConn)
	if err := ipv4.NewPacketConn(conn).SetControlMessage(ipv4.FlagDst|ipv4.FlagInterface, true); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.udpWorker(conn, true) }()
	c := &mdns.Client{Net: "udp", Timeout: 2 * time.Second}
	q := new(mdns.Msg)
	q.SetQuestion("ns1.example.com.", mdns.TypeA)
	resp, _, err := c.Exchange(q, conn.LocalAddr().String())
	if err != nil || len(resp.Answer) != 1 {
		t.Fatalf("answer %v, err %v", resp, err)
	}
	conn.Close()
	if err := <-done; err != nil {
		t.Fatalf("worker returned %v after close", err)
	}
}
