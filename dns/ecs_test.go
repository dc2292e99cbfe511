package dns

import (
	"encoding/binary"
	"net"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
)

// rawECSQueryFor is a query for www.example.com. of type qtype with the
// given id whose OPT carries one ECS option with data as given. It is
// built by hand because miekg packs (and unpacks) the ECS address to the
// length its prefix needs, hiding the malformed lengths tested here.
func rawECSQueryFor(id uint16, qtype uint16, data []byte) []byte {
	b := binary.BigEndian.AppendUint16(nil, id)
	b = append(b, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1,
		3, 'w', 'w', 'w', 7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 3, 'c', 'o', 'm', 0)
	b = binary.BigEndian.AppendUint16(b, qtype)
	b = append(b, 0, 1, // class IN
		0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0) // OPT: root owner, 1232-byte buffer
	b = binary.BigEndian.AppendUint16(b, uint16(4+len(data)))
	b = append(b, 0, 8) // ECS
	b = binary.BigEndian.AppendUint16(b, uint16(len(data)))
	return append(b, data...)
}

// exchangeRaw sends the raw query b over network ("udp" or "tcp", framed
// by hand) and decodes the reply.
func (h *harness) exchangeRaw(t *testing.T, network string, b []byte) *mdns.Msg {
	t.Helper()
	if network == "udp" {
		resp := h.raw(b, 2*time.Second)
		if resp == nil {
			t.Fatal("no UDP answer")
		}
		m := new(mdns.Msg)
		if err := m.Unpack(resp); err != nil {
			t.Fatalf("unpack answer: %v", err)
		}
		return m
	}
	c, err := net.Dial("tcp", h.tcp)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(b))), b...)); err != nil {
		t.Fatal(err)
	}
	m := tcpRead(t, c)
	// The connection still serves: the next query on it is answered.
	tcpQuery(t, c, 0x7777, "ns1.example.com.")
	if next := tcpRead(t, c); next.Id != 0x7777 || next.Rcode != mdns.RcodeSuccess {
		t.Fatalf("next query on the connection: id %#x rcode %s", next.Id, mdns.RcodeToString[next.Rcode])
	}
	return m
}

// TestECSWireLength sends ECS options whose address octets do not match
// their source prefix, or that have bits set beyond it, as raw bytes over
// UDP and TCP: each must get FORMERR (RFC 7871 §6; BIND does the same),
// and a well-formed option must still steer the answer.
func TestECSWireLength(t *testing.T) {
	h := newHarness(t, loadConfig(t, "zone.yaml"))
	eu := []string{"www.example.com. 30 IN A 192.0.2.1", "www.example.com. 30 IN A 192.0.2.2"}
	us := []string{"www.example.com. 30 IN A 198.51.100.10", "www.example.com. 30 IN A 198.51.100.11"}
	tests := []struct {
		name   string
		qtype  uint16
		option []byte // family, source, scope, address
		rcode  int
		answer []string
		scope  int
	}{
		{name: "IPv4 /8 with four address octets", qtype: mdns.TypeA, option: []byte{0, 1, 8, 0, 10, 0, 0, 0}, rcode: mdns.RcodeFormatError},
		{name: "IPv4 /24 with four address octets", qtype: mdns.TypeA, option: []byte{0, 1, 24, 0, 198, 51, 100, 0}, rcode: mdns.RcodeFormatError},
		{name: "IPv4 /32 with five address octets", qtype: mdns.TypeA, option: []byte{0, 1, 32, 0, 198, 51, 100, 7, 0}, rcode: mdns.RcodeFormatError},
		{name: "IPv4 /24 with two address octets", qtype: mdns.TypeA, option: []byte{0, 1, 24, 0, 198, 51}, rcode: mdns.RcodeFormatError},
		{name: "IPv4 /0 with an address octet", qtype: mdns.TypeA, option: []byte{0, 1, 0, 0, 0}, rcode: mdns.RcodeFormatError},
		{name: "IPv6 /48 with sixteen address octets", qtype: mdns.TypeA,
			option: append([]byte{0, 2, 48, 0, 0x20, 0x01, 0x0d, 0xb8, 0, 1}, make([]byte, 10)...), rcode: mdns.RcodeFormatError},
		{name: "family 0 with address octets", qtype: mdns.TypeA, option: []byte{0, 0, 0, 0, 0, 0, 0, 0}, rcode: mdns.RcodeFormatError},
		{name: "IPv4 /12 with bits set beyond the prefix", qtype: mdns.TypeA, option: []byte{0, 1, 12, 0, 10, 0x1f}, rcode: mdns.RcodeFormatError},
		{name: "IPv4 /24 well formed", qtype: mdns.TypeA, option: []byte{0, 1, 24, 0, 198, 51, 100}, answer: us, scope: 24},
		{name: "IPv4 /8 well formed", qtype: mdns.TypeA, option: []byte{0, 1, 8, 0, 10}, answer: eu, scope: 8},
		{name: "IPv4 /12 well formed", qtype: mdns.TypeA, option: []byte{0, 1, 12, 0, 10, 0x10}, answer: eu, scope: 8},
		{name: "IPv6 /48 well formed", qtype: mdns.TypeA, option: []byte{0, 2, 48, 0, 0x20, 0x01, 0x0d, 0xb8, 0, 1}, answer: us, scope: 48},
		{name: "family 0 /0 well formed", qtype: mdns.TypeA, option: []byte{0, 0, 0, 0}, answer: eu, scope: 0},
	}
	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			for i, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					id := uint16(0x1000 + i)
					m := h.exchangeRaw(t, network, rawECSQueryFor(id, tc.qtype, tc.option))
					if m.Id != id || m.Rcode != tc.rcode {
						t.Fatalf("id %#x rcode %s, want %#x %s", m.Id, mdns.RcodeToString[m.Rcode], id, mdns.RcodeToString[tc.rcode])
					}
					checkSection(t, "answer", m.Answer, tc.answer, 0)
					if tc.rcode != mdns.RcodeSuccess {
						if m.Authoritative {
							t.Error("FORMERR with AA set")
						}
						return
					}
					var got *mdns.EDNS0_SUBNET
					if opt := m.IsEdns0(); opt != nil {
						for _, o := range opt.Option {
							if s, ok := o.(*mdns.EDNS0_SUBNET); ok {
								got = s
							}
						}
					}
					if got == nil || int(got.SourceScope) != tc.scope || got.SourceNetmask != tc.option[2] {
						t.Fatalf("ECS echo %v, want source /%d scope /%d", got, tc.option[2], tc.scope)
					}
				})
			}
		})
	}
}

// TestECSWireOK covers the wire walk on its own: the ECS option found
// after other records and options, and messages it cannot walk left to
// the decoder.
func TestECSWireOK(t *testing.T) {
	good := rawECSQueryFor(1, mdns.TypeA, []byte{0, 1, 24, 0, 198, 51, 100})
	bad := rawECSQueryFor(1, mdns.TypeA, []byte{0, 1, 8, 0, 10, 0, 0, 0})
	// An answer-section record (compressed owner) and a cookie option
	// before the ECS option.
	withOthers := func(ecs []byte) []byte {
		q := rawECSQueryFor(1, mdns.TypeA, nil)[:33] // header and question
		q[7] = 1                                     // ANCOUNT
		q = append(q, 0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1)
		opt := append([]byte{0, 10, 0, 8}, make([]byte, 8)...) // COOKIE
		opt = append(opt, 0, 8)
		opt = binary.BigEndian.AppendUint16(opt, uint16(len(ecs)))
		opt = append(opt, ecs...)
		q = append(q, 0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0)
		q = binary.BigEndian.AppendUint16(q, uint16(len(opt)))
		return append(q, opt...)
	}
	tests := []struct {
		name string
		msg  []byte
		want bool
	}{
		{"well formed", good, true},
		{"extra address octets", bad, false},
		{"no additional records", good[:33], true},
		{"after other records and options, well formed", withOthers([]byte{0, 1, 24, 0, 198, 51, 100}), true},
		{"after other records and options, too long", withOthers([]byte{0, 1, 24, 0, 198, 51, 100, 0}), false},
		{"truncated OPT left to the decoder", bad[:len(bad)-3], true},
		{"short header", []byte{1, 2, 3}, true},
		{"name running off the end", []byte{0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 7, 'e', 'x'}, true},
		{"reserved label type", []byte{0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0x40, 0, 0, 1, 0, 1}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := ecsWireOK(tc.msg); got != tc.want {
				t.Fatalf("ecsWireOK = %t, want %t", got, tc.want)
			}
		})
	}
}
