package dns

import (
	"net"
	"net/netip"
	"strconv"
	"testing"

	mdns "github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/meridian-lb/meridian/dns/dnssec"
	"github.com/meridian-lb/meridian/routing"
)

// benchAnswer measures answer plus packing, the CPU ServeDNS spends per
// query besides miekg's decoding and the socket.
func benchAnswer(b *testing.B, q *mdns.Msg, wantAnswers int) {
	benchAnswerWith(b, compile(b, loadConfig(b, "zone.yaml")), q, wantAnswers, nil)
}

// benchAnswerWith is benchAnswer on tab, signing with signer.
func benchAnswerWith(b *testing.B, tab *routing.Table, q *mdns.Msg, wantAnswers int, signer *dnssec.Signer) {
	c := client{addr: netip.MustParseAddr("127.0.0.1"), signer: signer}
	buf := make([]byte, udpReadSize)
	if res := answer(tab, q, c); len(res.msg.Answer) != wantAnswers {
		b.Fatalf("answer %v", res.msg.Answer)
	}
	b.ReportAllocs()
	for b.Loop() {
		res := answer(tab, q, c)
		res.msg.Compress = true
		if _, err := res.msg.PackBuffer(buf); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAnswerStatic(b *testing.B) {
	q := new(mdns.Msg)
	q.SetQuestion("ns1.example.com.", mdns.TypeA)
	benchAnswer(b, q, 1)
}

func BenchmarkAnswerSteeredECS(b *testing.B) {
	q := new(mdns.Msg)
	q.SetQuestion("www.example.com.", mdns.TypeA)
	q.SetEdns0(1232, false)
	q.IsEdns0().Option = append(q.IsEdns0().Option, ecsOption(b, "198.51.100.0/24"))
	benchAnswer(b, q, 2)
}

// steeredECSQuery is www.example.com. A from a client in us, by ECS.
func steeredECSQuery(b *testing.B, do bool) *mdns.Msg {
	q := new(mdns.Msg)
	q.SetQuestion("www.example.com.", mdns.TypeA)
	q.SetEdns0(1232, do)
	q.IsEdns0().Option = append(q.IsEdns0().Option, ecsOption(b, "198.51.100.0/24"))
	return q
}

// BenchmarkAnswerSteeredECSSigned is BenchmarkAnswerSteeredECS with DO, in
// a signed zone, with the signature in the cache: the cost of signing
// online once the answer has been signed (a lookup by content).
func BenchmarkAnswerSteeredECSSigned(b *testing.B) {
	tab := compile(b, signedConfig(b, b.TempDir()))
	tab.Zones[0].SetSerial(1)
	benchAnswerWith(b, tab, steeredECSQuery(b, true), 3, dnssec.NewSigner(dnssec.NewCache(dnssec.DefaultCacheSize), nil))
}

// BenchmarkAnswerSteeredECSSignedCold signs every answer anew (no cache):
// what an answer never seen before costs, one ECDSA P-256 signature.
func BenchmarkAnswerSteeredECSSignedCold(b *testing.B) {
	tab := compile(b, signedConfig(b, b.TempDir()))
	tab.Zones[0].SetSerial(1)
	benchAnswerWith(b, tab, steeredECSQuery(b, true), 3, dnssec.NewSigner(nil, nil))
}

// BenchmarkAnswerNXDOMAINSigned is a signed negative answer to a name
// asked once: compact denial's NSEC signed anew, the SOA's from the cache.
func BenchmarkAnswerNXDOMAINSigned(b *testing.B) {
	tab := compile(b, signedConfig(b, b.TempDir()))
	tab.Zones[0].SetSerial(1)
	signer := dnssec.NewSigner(dnssec.NewCache(dnssec.DefaultCacheSize), nil)
	c := client{addr: netip.MustParseAddr("127.0.0.1"), signer: signer}
	buf := make([]byte, udpReadSize)
	q := new(mdns.Msg)
	q.SetEdns0(1232, true)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		q.SetQuestion("n"+strconv.Itoa(i)+".example.com.", mdns.TypeA)
		res := answer(tab, q, c)
		res.msg.Compress = true
		if _, err := res.msg.PackBuffer(buf); err != nil {
			b.Fatal(err)
		}
	}
}

// nullWriter is a ResponseWriter that discards what it is given.
type nullWriter struct{ remote net.Addr }

func (w *nullWriter) LocalAddr() net.Addr         { return w.remote }
func (w *nullWriter) RemoteAddr() net.Addr        { return w.remote }
func (w *nullWriter) Network() string             { return "udp" }
func (w *nullWriter) WriteMsg(*mdns.Msg) error    { return nil }
func (w *nullWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *nullWriter) Close() error                { return nil }
func (w *nullWriter) TsigStatus() error           { return nil }
func (w *nullWriter) TsigTimersOnly(bool)         {}
func (w *nullWriter) Hijack()                     {}

// BenchmarkServeDNSSteeredECS is ServeDNS end to end minus the socket:
// table load, answer, packing, metrics.
func BenchmarkServeDNSSteeredECS(b *testing.B) {
	live := &routing.Live{}
	live.Store(compile(b, loadConfig(b, "zone.yaml")))
	s := NewServer(Options{Tables: live, Logger: zap.NewNop(), Registerer: prometheus.NewRegistry()})
	q := new(mdns.Msg)
	q.SetQuestion("www.example.com.", mdns.TypeA)
	q.SetEdns0(1232, false)
	q.IsEdns0().Option = append(q.IsEdns0().Option, ecsOption(b, "198.51.100.0/24"))
	w := &nullWriter{remote: &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5353}}
	b.ReportAllocs()
	for b.Loop() {
		s.ServeDNS(w, q)
	}
}

// benchDatagram measures a UDP query from its bytes to its response's,
// as a worker handles it (answer cache, metrics, telemetry), minus the
// socket.
func benchDatagram(b *testing.B, q *mdns.Msg) {
	live := &routing.Live{}
	live.Store(compile(b, loadConfig(b, "zone.yaml")))
	s := NewServer(Options{Tables: live, Logger: zap.NewNop(), Registerer: prometheus.NewRegistry()})
	wire, err := q.Pack()
	if err != nil {
		b.Fatal(err)
	}
	addr := netip.MustParseAddr("127.0.0.1")
	sc := new(scratch)
	var w batchSlot
	b.ReportAllocs()
	for b.Loop() {
		w.data = w.data[:0]
		s.datagram(wire, addr, &w, sc)
	}
	if len(w.data) == 0 {
		b.Fatal("no response")
	}
}

func BenchmarkDatagramStatic(b *testing.B) {
	q := new(mdns.Msg)
	q.SetQuestion("ns1.example.com.", mdns.TypeA)
	benchDatagram(b, q)
}

func BenchmarkDatagramSteeredECS(b *testing.B) {
	benchDatagram(b, steeredECSQuery(b, false))
}

// BenchmarkParseQuery is the wire reader of the answer cache against
// miekg's decoder, on the steered query with ECS.
func BenchmarkParseQuery(b *testing.B) {
	wire, err := steeredECSQuery(b, false).Pack()
	if err != nil {
		b.Fatal(err)
	}
	b.Run("parseQuery", func(b *testing.B) {
		var q wireQuery
		b.ReportAllocs()
		for b.Loop() {
			if !parseQuery(wire, &q) {
				b.Fatal("not parsed")
			}
		}
	})
	b.Run("miekg", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := new(mdns.Msg).Unpack(wire); err != nil {
				b.Fatal(err)
			}
		}
	})
}
