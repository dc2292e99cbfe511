package dns

import (
	"net"
	"net/netip"
	"testing"

	mdns "github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/meridian-lb/meridian/routing"
)

// benchAnswer measures answer plus packing, the CPU ServeDNS spends per
// query besides miekg's decoding and the socket.
func benchAnswer(b *testing.B, q *mdns.Msg, wantAnswers int) {
	tab := compile(b, loadConfig(b, "zone.yaml"))
	c := client{addr: netip.MustParseAddr("127.0.0.1")}
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
