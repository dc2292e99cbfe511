package dns

import (
	"bytes"
	"net/netip"
	"testing"

	mdns "github.com/miekg/dns"
	"go.uber.org/zap"

	"github.com/meridian-lb/meridian/routing"
)

// fastZoneYAML is a zone whose steered answers do not rotate (one address
// per pool and family, no weighted pool choice), so that two answers to
// one query are the same bytes whichever path gives them: what
// FuzzFastPath compares. It has the rest of what answers are made of:
// static records, CNAME chains into steered records, a wildcard, a
// delegation with glue, additional data, NODATA, NXDOMAIN and a record too
// big for 512 bytes.
const fastZoneYAML = `
listen: {dns: 127.0.0.1:0}
geo:
  nets: {127.0.0.0/8: eu, 127.0.0.2/32: us, 198.51.100.0/24: us, 2001:db8:1::/48: us}
  default_region: eu
pools:
  eu: {region: eu, endpoints: [192.0.2.1:80, "[2001:db8::1]:80"]}
  us: {region: us, endpoints: [198.51.100.10:80, "[2001:db8:1::10]:80"]}
services:
  web: {policy: geo, pools: [eu, us]}
  fo: {policy: failover, pools: [us, eu]}
zones:
  - origin: example.com.
    soa: {ns: ns1.example.com., mbox: hostmaster.example.com., ttl: 3600, minimum: 300}
    ns: [ns1.example.com., ns2.example.com.]
    records:
      - {name: www, type: A, service: web, ttl: 30}
      - {name: www, type: AAAA, service: web, ttl: 30}
      - {name: fo, type: A, service: fo, ttl: 20}
      - {name: api, type: CNAME, values: [www.example.com.]}
      - {name: ns1, type: A, values: [192.0.2.53]}
      - {name: ns2, type: A, values: [192.0.2.54]}
      - {name: "@", type: MX, values: ["10 mx.example.com."]}
      - {name: mx, type: A, values: [192.0.2.25]}
      - {name: txt, type: TXT, values: ["hello world"]}
      - {name: "*.app", type: A, values: [192.0.2.80]}
      - {name: sub, type: NS, values: [ns.sub.example.com.]}
      - {name: ns.sub, type: A, values: [192.0.2.200]}
      - name: big
        type: TXT
        values: ["a` + bigText + `", "b` + bigText + `", "c` + bigText + `"]
`

const bigText = "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789"

// fastSeeds are queries the fast path takes, and some it leaves.
func fastSeeds(t testing.TB) [][]byte {
	t.Helper()
	var out [][]byte
	add := func(m *mdns.Msg) {
		b, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	for _, n := range []string{"www.example.com.", "WwW.ExAmPlE.cOm.", "api.example.com.", "x.app.example.com.", "host.sub.example.com.",
		"nope.example.com.", "example.org.", "fo.example.com.", "big.example.com.", "example.com.", "mx.example.com."} {
		for _, qt := range []uint16{mdns.TypeA, mdns.TypeAAAA, mdns.TypeMX, mdns.TypeTXT, mdns.TypeSOA, mdns.TypeANY} {
			m := new(mdns.Msg)
			m.SetQuestion(n, qt)
			add(m)
			m.RecursionDesired = false
			m.SetEdns0(1232, false)
			add(m)
			m.IsEdns0().Option = append(m.IsEdns0().Option, ecsOption(t, "198.51.100.0/24"))
			add(m)
			m.CheckingDisabled = true
			m.IsEdns0().SetDo()
			m.IsEdns0().Option = append(m.IsEdns0().Option, &mdns.EDNS0_COOKIE{Code: mdns.EDNS0COOKIE, Cookie: "0102030405060708"})
			add(m)
		}
	}
	m := new(mdns.Msg)
	m.SetQuestion("www.example.com.", mdns.TypeAAAA)
	m.SetEdns0(4096, false)
	m.IsEdns0().Option = append(m.IsEdns0().Option, ecsOption(t, "2001:db8:1::/56"))
	add(m)
	m.IsEdns0().Option[0] = ecsOption(t, "10.0.0.0/8")
	add(m)
	m.IsEdns0().Option[0] = ecsOption(t, "0.0.0.0/0")
	add(m)
	return append(out, fuzzSeeds(t)...)
}

// FuzzFastPath holds the wire parser and the answer cache to the decoder's
// path. For any datagram parseQuery accepts, miekg decodes the same
// question, EDNS settings and ECS option, and the answer the fast path
// gives (from the cache, kept from another query with the same key: other
// ID, RD and CD, another client in another region) is byte for byte the
// answer the slow path gives the datagram.
func FuzzFastPath(f *testing.F) {
	for _, s := range fastSeeds(f) {
		f.Add(s)
	}
	live := &routing.Live{}
	live.Store(compile(f, parseConfig(f, fastZoneYAML)))
	srv := NewServer(Options{Tables: live, Logger: zap.NewNop()})
	eu, us := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2")
	f.Fuzz(func(t *testing.T, data []byte) {
		var q wireQuery
		if !parseQuery(data, &q) {
			return
		}
		checkParse(t, data, &q)
		if len(data) < 12 || data[2]&0x80 != 0 {
			return
		}
		want := capture(func(w *batchSlot) { srv.slowDatagram(data, eu, w, nil) })
		// Another query with the same key, first from another region,
		// then from this one; then this query, answered from the cache.
		other := append([]byte(nil), data...)
		other[0], other[1] = ^other[0], other[1]+1
		other[2] ^= 0x01 // RD
		other[3] ^= 0x10 // CD
		sc := new(scratch)
		capture(func(w *batchSlot) { srv.datagram(other, us, w, sc) })
		capture(func(w *batchSlot) { srv.datagram(other, eu, w, sc) })
		got := capture(func(w *batchSlot) { srv.datagram(data, eu, w, sc) })
		if !bytes.Equal(got, want) {
			t.Fatalf("fast path answered\n%x\nslow path\n%x\nquery %x", got, want, data)
		}
		// Through a writer that is not a batch slot.
		var buf bytes.Buffer
		srv.datagram(data, eu, &buf, sc)
		if !bytes.Equal(buf.Bytes(), want) {
			t.Fatalf("fast path answered\n%x\nslow path\n%x\nquery %x", buf.Bytes(), want, data)
		}
	})
}

// capture is what a datagram handler writes to a batch slot.
func capture(f func(w *batchSlot)) []byte {
	var w batchSlot
	f(&w)
	return w.data
}

// checkParse compares what parseQuery read from data with miekg's Unpack.
func checkParse(t *testing.T, data []byte, q *wireQuery) {
	t.Helper()
	m := new(mdns.Msg)
	if err := m.Unpack(data); err != nil {
		t.Fatalf("parseQuery accepts what miekg rejects (%v): %x", err, data)
	}
	if m.Response || m.Opcode != mdns.OpcodeQuery || len(m.Question) != 1 || len(m.Answer) != 0 || len(m.Ns) != 0 {
		t.Fatalf("parseQuery accepts %v", m)
	}
	name, _, err := mdns.UnpackDomainName(data, 12)
	if err != nil || name != m.Question[0].Name || m.Question[0].Qtype != q.qtype || m.Question[0].Qclass != q.qclass {
		t.Fatalf("question %v, parsed %q %d %d (%v)", m.Question[0], name, q.qtype, q.qclass, err)
	}
	opt, ok := requestOPT(m)
	if !ok || (opt != nil) != q.edns || len(m.Extra) != len(m.Question)-1+btoi(q.edns) {
		t.Fatalf("OPT %v ok %t, parsed edns %t", opt, ok, q.edns)
	}
	if opt == nil {
		return
	}
	if opt.Version() != 0 || opt.Do() != q.do || opt.UDPSize() != q.bufsize {
		t.Fatalf("OPT %v, parsed do %t size %d", opt, q.do, q.bufsize)
	}
	ecs, ok := parseECS(opt)
	if !ok || !ecsWireOK(data) || ecs.present != (q.ecs != nil) {
		t.Fatalf("ECS %+v ok %t wire ok %t, parsed %x", ecs, ok, ecsWireOK(data), q.ecs)
	}
	if ecs.present && (ecs.addr != q.ecsAddr || ecs.bits != q.ecsBits) {
		t.Fatalf("ECS %s/%d, parsed %s/%d", ecs.addr, ecs.bits, q.ecsAddr, q.ecsBits)
	}
	for _, o := range opt.Option {
		switch o.(type) {
		case *mdns.EDNS0_SUBNET, *mdns.EDNS0_COOKIE, *mdns.EDNS0_PADDING:
		default:
			t.Fatalf("parseQuery accepts option %T", o)
		}
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
