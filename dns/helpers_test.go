package dns

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/meridian-lb/meridian/config"
	"github.com/meridian-lb/meridian/health"
	"github.com/meridian-lb/meridian/routing"
)

// tcase is one query and the response it must get, with records written as
// zone-file text and compared sorted (the CoreDNS test idiom). "SERIAL" in
// a record stands for the zone's current serial.
type tcase struct {
	name   string
	qname  string
	qtype  uint16
	from   string // source address; 127.0.0.1 when empty
	ecs    string // EDNS Client Subnet CIDR; none when empty
	rcode  int
	noAA   bool // the response must not be authoritative
	answer []string
	ns     []string
	extra  []string // without the OPT
	scope  int      // expected ECS scope; only checked when ecs is set
}

// query builds the message for tc: EDNS0 with a 1232-byte buffer, and ECS
// when tc asks for it.
func (tc tcase) query(t testing.TB) *mdns.Msg {
	t.Helper()
	m := new(mdns.Msg)
	m.SetQuestion(tc.qname, tc.qtype)
	m.SetEdns0(1232, false)
	if tc.ecs != "" {
		m.IsEdns0().Option = append(m.IsEdns0().Option, ecsOption(t, tc.ecs))
	}
	return m
}

func ecsOption(t testing.TB, cidr string) *mdns.EDNS0_SUBNET {
	t.Helper()
	p := netip.MustParsePrefix(cidr)
	o := &mdns.EDNS0_SUBNET{Code: mdns.EDNS0SUBNET, SourceNetmask: uint8(p.Bits()), Address: net.IP(p.Addr().AsSlice())}
	o.Family = 2
	if p.Addr().Is4() {
		o.Family = 1
	}
	return o
}

// sortAndCheck compares resp with tc: rcode, AA, the three sections as
// sorted zone text, the question echo and the ECS scope.
func sortAndCheck(t testing.TB, resp *mdns.Msg, tc tcase, serial uint32) {
	t.Helper()
	if resp == nil {
		t.Fatalf("%s: no response", tc.name)
	}
	if resp.Rcode != tc.rcode {
		t.Errorf("%s: rcode %s, want %s\n%v", tc.name, mdns.RcodeToString[resp.Rcode], mdns.RcodeToString[tc.rcode], resp)
	}
	if resp.Authoritative == tc.noAA {
		t.Errorf("%s: AA=%t, want %t", tc.name, resp.Authoritative, !tc.noAA)
	}
	if len(resp.Question) != 1 || resp.Question[0].Name != tc.qname || resp.Question[0].Qtype != tc.qtype {
		t.Errorf("%s: question %v, want %s %s echoed byte-exact", tc.name, resp.Question, tc.qname, mdns.TypeToString[tc.qtype])
	}
	var extra []mdns.RR
	var opt *mdns.OPT
	for _, rr := range resp.Extra {
		if o, ok := rr.(*mdns.OPT); ok {
			opt = o
			continue
		}
		extra = append(extra, rr)
	}
	checkSection(t, tc.name+": answer", resp.Answer, tc.answer, serial)
	checkSection(t, tc.name+": authority", resp.Ns, tc.ns, serial)
	checkSection(t, tc.name+": additional", extra, tc.extra, serial)
	if tc.ecs != "" {
		got := -1
		if opt != nil {
			for _, o := range opt.Option {
				if s, ok := o.(*mdns.EDNS0_SUBNET); ok {
					got = int(s.SourceScope)
					want := ecsOption(t, tc.ecs)
					if s.SourceNetmask != want.SourceNetmask || s.Family != want.Family || !s.Address.Equal(want.Address) {
						t.Errorf("%s: ECS echoed as %v, want %v", tc.name, s, want)
					}
				}
			}
		}
		if got != tc.scope {
			t.Errorf("%s: ECS scope %d, want %d", tc.name, got, tc.scope)
		}
	}
}

// checkSection compares records as zone text, sorted.
func checkSection(t testing.TB, what string, got []mdns.RR, want []string, serial uint32) {
	t.Helper()
	g := make([]string, 0, len(got))
	for _, rr := range got {
		g = append(g, rr.String())
	}
	w := make([]string, 0, len(want))
	for _, s := range want {
		s = strings.ReplaceAll(s, "SERIAL", strconv.FormatUint(uint64(serial), 10))
		rr, err := mdns.NewRR(s)
		if err != nil || rr == nil {
			t.Fatalf("%s: bad expected record %q: %v", what, s, err)
		}
		w = append(w, rr.String())
	}
	slices.Sort(g)
	slices.Sort(w)
	if !slices.Equal(g, w) {
		t.Errorf("%s:\n got  %s\n want %s", what, strings.Join(g, "\n      "), strings.Join(w, "\n      "))
	}
}

// loadConfig parses a YAML config; file names one under testdata.
func loadConfig(t testing.TB, file string) *config.Config {
	t.Helper()
	b, err := os.ReadFile("testdata/" + file)
	if err != nil {
		t.Fatal(err)
	}
	return parseConfig(t, string(b))
}

func parseConfig(t testing.TB, yaml string) *config.Config {
	t.Helper()
	cfg, err := config.Parse("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return cfg
}

func compile(t testing.TB, cfg *config.Config) *routing.Table {
	t.Helper()
	tab, err := routing.Compile(cfg, routing.Inputs{})
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	return tab
}

// harness is a Server on loopback with a live table bound to a real health
// engine, so tests can mark endpoints down with Override.
type harness struct {
	t      *testing.T
	live   *routing.Live
	srv    *Server
	health *health.Engine
	reg    *prometheus.Registry
	udp    string
	tcp    string
}

// newHarness serves cfg on 127.0.0.1:0 until the test ends.
func newHarness(t *testing.T, cfg *config.Config) *harness {
	t.Helper()
	h := &harness{t: t, live: &routing.Live{}, reg: prometheus.NewRegistry()}
	h.srv = NewServer(Options{Tables: h.live, Settings: cfg.DNS, Logger: zap.NewNop(), Registerer: h.reg})
	h.health = health.New(health.Options{OnChange: h.srv.HealthChanged})
	tab := compile(t, cfg)
	h.health.Sync(tab.HealthSpecs())
	tab.BindHealth(h.health)
	h.srv.TableChanged(tab)
	h.live.Store(tab)

	ctx, cancel := context.WithCancel(context.Background())
	type addrs struct{ udp, tcp net.Addr }
	ready := make(chan addrs, 1)
	done := make(chan error, 1)
	go func() {
		done <- h.srv.Run(ctx, "127.0.0.1:0", func(u, tc net.Addr) { ready <- addrs{u, tc} })
	}()
	select {
	case a := <-ready:
		h.udp, h.tcp = a.udp.String(), a.tcp.String()
	case err := <-done:
		cancel()
		t.Fatalf("Run: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run returned %v after cancel", err)
		}
	})
	return h
}

// publish compiles cfg into a new table, binds health and publishes it the
// way the rebuild loop does.
func (h *harness) publish(cfg *config.Config) *routing.Table {
	h.t.Helper()
	tab := compile(h.t, cfg)
	h.health.Sync(tab.HealthSpecs())
	tab.BindHealth(h.health)
	h.srv.TableChanged(tab)
	h.live.Store(tab)
	return tab
}

// serial is the live table's serial of the first zone.
func (h *harness) serial() uint32 { return h.live.Load().Zones[0].Serial() }

// override applies a health override and fails the test on error.
// override applies an admin override and moves the zone serials at once,
// as the server's health-change loop would a moment later, so a test's
// expected SOA does not race that loop.
func (h *harness) override(pool, addr string, a health.Action) {
	h.t.Helper()
	if err := h.health.Override(pool, addr, a); err != nil {
		h.t.Fatal(err)
	}
	h.srv.TableChanged(h.live.Load())
}

// eject reports one connect failure for an endpoint whose pool ejects on
// the first (testdata/zone.yaml's outlier blocks): a health verdict, which
// panic mode overrides, unlike an operator's drain. Like override, it
// moves the zone serials at once.
func (h *harness) eject(pool, addr string) {
	h.t.Helper()
	m := h.health.Member(pool, addr)
	if m == nil {
		h.t.Fatalf("no member %s/%s", pool, addr)
	}
	if m.Report(health.ConnectFailure); m.State() != health.StateEjected {
		h.t.Fatalf("%s/%s: %s, want ejected", pool, addr, m.State())
	}
	h.srv.TableChanged(h.live.Load())
}

// exchange sends m over net ("udp" or "tcp") from source address from.
func (h *harness) exchange(m *mdns.Msg, network, from string) (*mdns.Msg, error) {
	c := &mdns.Client{Net: network, Timeout: 2 * time.Second, UDPSize: 65535}
	if from != "" && from != "127.0.0.1" {
		ip := net.ParseIP(from)
		if network == "tcp" {
			c.Dialer = &net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}, Timeout: 2 * time.Second}
		} else {
			c.Dialer = &net.Dialer{LocalAddr: &net.UDPAddr{IP: ip}, Timeout: 2 * time.Second}
		}
	}
	addr := h.udp
	if network == "tcp" {
		addr = h.tcp
	}
	resp, _, err := c.Exchange(m, addr)
	return resp, err
}

// mustExchange is exchange that fails the test on error.
func (h *harness) mustExchange(m *mdns.Msg, network, from string) *mdns.Msg {
	h.t.Helper()
	resp, err := h.exchange(m, network, from)
	if err != nil {
		h.t.Fatalf("%s exchange: %v", network, err)
	}
	return resp
}

// raw sends bytes over UDP and returns the reply, or nil after wait.
func (h *harness) raw(b []byte, wait time.Duration) []byte {
	h.t.Helper()
	conn, err := net.Dial("udp", h.udp)
	if err != nil {
		h.t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write(b); err != nil {
		h.t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 65535)
	n, err := conn.Read(buf)
	if err != nil {
		return nil
	}
	return buf[:n]
}

// waitFor polls cond until it holds or 5 s passed.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// answerFor runs answer directly for tc, for tests that need a source
// address loopback cannot give.
func answerFor(t testing.TB, tab *routing.Table, tc tcase) *mdns.Msg {
	t.Helper()
	from := tc.from
	if from == "" {
		from = "127.0.0.1"
	}
	res := answer(tab, tc.query(t), client{addr: netip.MustParseAddr(from)})
	return res.msg
}

func sprintf(format string, args ...any) string { return fmt.Sprintf(format, args...) }

// counterValue sums the samples of metric name whose labels include labels.
func counterValue(t testing.TB, h *harness, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for k, v := range labels {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == k && lp.GetValue() == v {
						found = true
					}
				}
				if !found {
					continue next
				}
			}
			switch {
			case m.GetCounter() != nil:
				sum += m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				sum += m.GetGauge().GetValue()
			}
		}
	}
	return sum
}
