package dns

import (
	"encoding/binary"
	"net/netip"
	"testing"

	mdns "github.com/miekg/dns"

	"github.com/meridian-lb/meridian/dns/dnssec"
)

// fuzzSeeds are wire messages: valid queries of every kind the server
// handles and the malformed set from the hardening notes. The corpus under
// testdata/fuzz/FuzzAnswer holds the same and what fuzzing found since.
func fuzzSeeds(t testing.TB) [][]byte {
	t.Helper()
	var out [][]byte
	add := func(m *mdns.Msg) {
		b, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	q := func(name string, qtype uint16) *mdns.Msg {
		m := new(mdns.Msg)
		m.SetQuestion(name, qtype)
		return m
	}
	for _, n := range []string{"www.example.com.", "WwW.ExAmPlE.cOm.", "api.example.com.", "x.app.example.com.",
		"host.sub.example.com.", "nope.example.com.", "example.org.", "loop1.example.com.", "fb.example.com."} {
		add(q(n, mdns.TypeA))
	}
	for _, qt := range []uint16{mdns.TypeSOA, mdns.TypeNS, mdns.TypeANY, mdns.TypeAXFR, mdns.TypeIXFR, mdns.TypeDS, 1000} {
		add(q("example.com.", qt))
	}
	ecs := q("www.example.com.", mdns.TypeA)
	ecs.SetEdns0(1232, true)
	ecs.IsEdns0().Option = append(ecs.IsEdns0().Option, ecsOption(t, "198.51.100.0/24"))
	add(ecs)
	ecs6 := q("www.example.com.", mdns.TypeAAAA)
	ecs6.SetEdns0(4096, false)
	ecs6.IsEdns0().Option = append(ecs6.IsEdns0().Option, ecsOption(t, "2001:db8:1::/56"))
	add(ecs6)
	badvers := q("example.com.", mdns.TypeSOA)
	badvers.SetEdns0(1232, false)
	badvers.IsEdns0().SetVersion(1)
	add(badvers)
	notify := q("example.com.", mdns.TypeSOA)
	notify.Opcode = mdns.OpcodeNotify
	add(notify)
	big := q("big.example.com.", mdns.TypeTXT)
	add(big)
	twoOPT := q("example.com.", mdns.TypeSOA)
	twoOPT.SetEdns0(1232, false)
	twoOPT.Extra = append(twoOPT.Extra, &mdns.OPT{Hdr: mdns.RR_Header{Name: ".", Rrtype: mdns.TypeOPT}})
	add(twoOPT)
	for _, n := range []string{"nope.example.com.", "x.app.example.com.", "host.sub.example.com.", "cust.example.com.", "b.deep.example.com."} {
		for _, qt := range []uint16{mdns.TypeA, mdns.TypeNSEC, mdns.TypeRRSIG, mdns.TypeDS, mdns.TypeNXNAME} {
			signed := q(n, qt)
			signed.SetEdns0(1232, true)
			signed.IsEdns0().SetCo()
			add(signed)
		}
	}
	out = append(out,
		rawECSQuery([]byte{0, 3, 0, 0}),
		rawECSQuery([]byte{0, 1, 16, 0, 10, 1, 2}),
		rawECSQuery([]byte{0, 1, 8, 0, 10, 0, 0, 0}),
		rawECSQuery([]byte{0, 1, 32, 0, 10, 1, 2, 3, 4}),
		[]byte{0x12, 0x34, 15 << 3, 0, 0, 0, 0, 0, 0, 0, 0, 0},
		[]byte{0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1},
		[]byte{0, 4, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 1, 0, 1},
		[]byte{0, 2, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 1, 0, 1},
		binary.BigEndian.AppendUint16([]byte{0, 5, 0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0}, 1),
	)
	return out
}

// FuzzAnswer feeds decoded messages to answer and checks what must hold
// for any input: no panic; a response for every query and none for a
// response; the ID and QR bit; a UDP answer that fits the client's buffer
// after truncation; zone transfers only over TCP.
//
// It answers from the zone unsigned and signed (with DO seeds among its
// corpus), the signed one through one signature cache.
func FuzzAnswer(f *testing.F) {
	plain := compile(f, loadConfig(f, "zone.yaml"))
	signed := compile(f, signedConfig(f, f.TempDir()))
	signer := dnssec.NewSigner(dnssec.NewCache(1024), nil)
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	src := netip.MustParseAddr("127.0.0.1")
	f.Fuzz(func(t *testing.T, data []byte) {
		req := new(mdns.Msg)
		if err := req.Unpack(data); err != nil {
			return // the server answers these FORMERR before answer runs
		}
		badLength := !ecsWireOK(data)
		for i, tcp := range []bool{false, true, false, true} {
			tab := plain
			if i >= 2 {
				tab = signed
			}
			res := answer(tab, req, client{addr: src, tcp: tcp, badECSLength: badLength, signer: signer})
			if res.err != nil {
				t.Fatalf("signing: %v", res.err)
			}
			if res.msg == nil {
				if !req.Response {
					t.Fatal("no response to a query")
				}
				continue
			}
			if req.Response {
				t.Fatal("answered a response")
			}
			m := res.msg
			if m.Id != req.Id || !m.Response {
				t.Fatalf("id %d response %t, want %d true", m.Id, m.Response, req.Id)
			}
			if res.xfr {
				if !tcp {
					t.Fatal("zone transfer over UDP")
				}
				if rrs, err := zoneRecords(tab, res.zone, signer); err != nil || len(rrs) < 2 {
					t.Fatalf("transfer of %d records: %v", len(rrs), err)
				}
				continue
			}
			m.Compress = true
			b, err := m.Pack()
			if err != nil {
				continue // ServeDNS answers SERVFAIL for unpackable questions
			}
			if !tcp && len(b) > res.udpSize {
				m.Truncate(res.udpSize)
				if b, err = m.Pack(); err == nil && len(b) > res.udpSize {
					t.Fatalf("truncated UDP response is %d bytes, over %d", len(b), res.udpSize)
				}
			}
		}
	})
}
