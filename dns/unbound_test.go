package dns

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/meridian-lb/meridian/dns/dnssec"
	"github.com/meridian-lb/meridian/health"
)

// TestUnboundValidates runs Unbound on loopback as a validating resolver
// whose only trust anchor is the signed zone's DNSKEY and whose stub zone
// points at Meridian, and checks that what Meridian signs online
// validates: static, geo-steered (with ECS, which Unbound's subnetcache
// module forwards), weighted, NXDOMAIN (compact denial), NODATA and
// wildcard answers all come back with AD; and that when a health change
// moves a steered answer, the new answer validates too.
func TestUnboundValidates(t *testing.T) {
	unbound := findTool(t, "MERIDIAN_UNBOUND", "unbound", "unbound")
	control := findTool(t, "MERIDIAN_UNBOUND_CONTROL", "unbound-control", "unbound")
	if testing.Short() {
		t.Skip("starts Unbound: not in -short")
	}
	h := newHarness(t, signedConfig(t, t.TempDir()))
	keys := dnskeys(h.live.Load().Zones[0])

	addr, confPath := startUnbound(t, unbound, h.udp, keys)
	resolve := func(name string, qtype uint16, ecs string) *mdns.Msg {
		t.Helper()
		return resolveAt(t, addr, name, qtype, ecs)
	}
	addrs := func(m *mdns.Msg) []string {
		var out []string
		for _, rr := range m.Answer {
			if a, ok := rr.(*mdns.A); ok {
				out = append(out, a.A.String())
			}
		}
		slices.Sort(out)
		return out
	}
	for _, tt := range []struct {
		what, name string
		qtype      uint16
		ecs        string
		rcodes     []int    // NOERROR, unless set
		want       []string // the A records; nil for none
		anyOf      []string // or: one of these
	}{
		{what: "static", name: "ns1.example.com.", qtype: mdns.TypeA, want: []string{"192.0.2.53"}},
		{what: "geo-steered, ECS in us", name: "www.example.com.", qtype: mdns.TypeA, ecs: "198.51.100.0/24", want: []string{"198.51.100.10", "198.51.100.11"}},
		{what: "geo-steered, the resolver in eu", name: "www.example.com.", qtype: mdns.TypeA, want: []string{"192.0.2.1", "192.0.2.2"}},
		{what: "weighted", name: "bg.example.com.", qtype: mdns.TypeA, anyOf: []string{"203.0.113.1", "203.0.113.2"}},
		// Compact denial: a validator sees NODATA (NOERROR); one that
		// knows RFC 9824 may say NXDOMAIN.
		{what: "NXDOMAIN", name: "nope.example.com.", qtype: mdns.TypeA, rcodes: []int{mdns.RcodeSuccess, mdns.RcodeNameError}},
		{what: "NODATA", name: "ns1.example.com.", qtype: mdns.TypeAAAA},
		{what: "empty non-terminal", name: "b.deep.example.com.", qtype: mdns.TypeTXT},
		{what: "wildcard", name: "x.app.example.com.", qtype: mdns.TypeA, want: []string{"192.0.2.80"}},
		{what: "wildcard NODATA", name: "x.app.example.com.", qtype: mdns.TypeAAAA},
		{what: "CNAME chain to a steered name", name: "api.example.com.", qtype: mdns.TypeA, want: []string{"192.0.2.1", "192.0.2.2"}},
		{what: "DNSKEY", name: "example.com.", qtype: mdns.TypeDNSKEY},
	} {
		t.Run(tt.what, func(t *testing.T) {
			resp := resolve(tt.name, tt.qtype, tt.ecs)
			rcodes := tt.rcodes
			if rcodes == nil {
				rcodes = []int{mdns.RcodeSuccess}
			}
			if !slices.Contains(rcodes, resp.Rcode) || !resp.AuthenticatedData {
				t.Fatalf("rcode %s AD=%t, want %v with AD (see Unbound's log below)\n%v", mdns.RcodeToString[resp.Rcode], resp.AuthenticatedData, rcodes, resp)
			}
			got := addrs(resp)
			switch {
			case tt.anyOf != nil:
				if len(got) != 1 || !slices.Contains(tt.anyOf, got[0]) {
					t.Errorf("answer %v, want one of %v", got, tt.anyOf)
				}
			case !slices.Equal(got, tt.want):
				t.Errorf("answer %v, want %v", got, tt.want)
			}
		})
	}

	t.Run("with another key as the trust anchor the answers are bogus: AD above means validated", func(t *testing.T) {
		other, err := dnssec.Generate(t.TempDir(), "example.com.", mdns.ECDSAP256SHA256, 257, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		wrong, _ := startUnbound(t, unbound, h.udp, []*mdns.DNSKEY{other.DNSKEY})
		if resp := resolveAt(t, wrong, "ns1.example.com.", mdns.TypeA, ""); resp.Rcode != mdns.RcodeServerFailure || resp.AuthenticatedData {
			t.Errorf("rcode %s AD=%t with a trust anchor Meridian does not sign with; want SERVFAIL", mdns.RcodeToString[resp.Rcode], resp.AuthenticatedData)
		}
	})

	t.Run("a health change moves the steered answer, which validates", func(t *testing.T) {
		h.override("web-us", "198.51.100.10:80", health.ActionDown)
		h.override("web-us", "198.51.100.11:80", health.ActionDown)
		if out, err := exec.Command(control, "-c", confPath, "flush_zone", "example.com.").CombinedOutput(); err != nil {
			t.Logf("unbound-control flush_zone: %v %s (waiting for the cache instead)", err, out)
		}
		want := []string{"192.0.2.1", "192.0.2.2"}
		deadline := time.Now().Add(10 * time.Second)
		for {
			resp := resolve("www.example.com.", mdns.TypeA, "198.51.100.0/24")
			if got := addrs(resp); slices.Equal(got, want) {
				if resp.Rcode != mdns.RcodeSuccess || !resp.AuthenticatedData {
					t.Fatalf("moved answer: rcode %s AD=%t\n%v", mdns.RcodeToString[resp.Rcode], resp.AuthenticatedData, resp)
				}
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("the us client still gets %v, want %v", addrs(resp), want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}

// TestUnboundValidatesKSKZSK: the same with Ed25519 keys split into a KSK,
// the resolver's trust anchor (as a DS at the parent would name it), and
// a ZSK that signs the answers.
func TestUnboundValidatesKSKZSK(t *testing.T) {
	unbound := findTool(t, "MERIDIAN_UNBOUND", "unbound", "unbound")
	if testing.Short() {
		t.Skip("starts Unbound: not in -short")
	}
	dir := t.TempDir()
	ksk, err := dnssec.Generate(dir, "example.com.", mdns.ED25519, 257, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dnssec.Generate(dir, "example.com.", mdns.ED25519, 256, time.Now()); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, signedConfig(t, dir, "ed25519"))
	if ks := h.live.Load().Zones[0].Keys; !ks.Split() {
		t.Fatalf("keys %v: want a KSK and a ZSK", ks)
	}
	addr, _ := startUnbound(t, unbound, h.udp, []*mdns.DNSKEY{ksk.DNSKEY})
	for _, q := range []struct {
		name  string
		qtype uint16
		ecs   string
	}{
		{"ns1.example.com.", mdns.TypeA, ""},
		{"www.example.com.", mdns.TypeA, "198.51.100.0/24"},
		{"bg.example.com.", mdns.TypeA, ""},
		{"nope.example.com.", mdns.TypeA, ""},
		{"ns1.example.com.", mdns.TypeAAAA, ""},
		{"x.app.example.com.", mdns.TypeA, ""},
		{"example.com.", mdns.TypeCDS, ""},
	} {
		resp := resolveAt(t, addr, q.name, q.qtype, q.ecs)
		if resp.Rcode != mdns.RcodeSuccess || !resp.AuthenticatedData {
			t.Errorf("%s %s: rcode %s AD=%t, want NOERROR with AD\n%v", q.name, typeString(q.qtype), mdns.RcodeToString[resp.Rcode], resp.AuthenticatedData, resp)
		}
	}
}

// startUnbound runs a validating Unbound on loopback, trusting keys only,
// with a stub zone for example.com. at stub (Meridian's UDP address). It
// returns its address and its config file.
func startUnbound(t *testing.T, unbound, stub string, keys []*mdns.DNSKEY) (addr, confPath string) {
	t.Helper()
	dir := t.TempDir()
	port := freePort(t)
	var anchors strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&anchors, "  trust-anchor: %q\n", strings.ReplaceAll(k.String(), "\t", " "))
	}
	conf := fmt.Sprintf(`server:
  interface: 127.0.0.1
  port: %[2]d
  do-ip6: no
  username: ""
  chroot: ""
  directory: "%[1]s"
  pidfile: "%[1]s/unbound.pid"
  use-syslog: no
  logfile: ""
  verbosity: 1
  val-log-level: 2
  do-not-query-localhost: no
  access-control: 127.0.0.0/8 allow
  module-config: "subnetcache validator iterator"
  send-client-subnet: 127.0.0.1
  client-subnet-always-forward: yes
  max-client-subnet-ipv4: 24
  qname-minimisation: no
  aggressive-nsec: no
  prefetch: no
  harden-dnssec-stripped: yes
  val-permissive-mode: no
  cache-max-ttl: 1
  cache-max-negative-ttl: 1
%[4]s
remote-control:
  control-enable: yes
  control-use-cert: no
  control-interface: "%[1]s/control.sock"

stub-zone:
  name: "example.com."
  stub-addr: %[3]s
`, dir, port, strings.Replace(stub, ":", "@", 1), anchors.String())
	confPath = filepath.Join(dir, "unbound.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(filepath.Join(filepath.Dir(unbound), "unbound-checkconf"), confPath).CombinedOutput(); err != nil && !os.IsNotExist(err) {
		t.Fatalf("unbound-checkconf: %v\n%s", err, out)
	}
	addr = fmt.Sprintf("127.0.0.1:%d", port)
	d := startDaemon(t, unbound, "-d", "-c", confPath)
	d.waitServing(t, addr, "example.com.")

	return addr, confPath
}

// resolveAt asks the resolver at addr for name, with DO and RD, and ECS
// when ecs is set.
func resolveAt(t *testing.T, addr, name string, qtype uint16, ecs string) *mdns.Msg {
	t.Helper()
	m := new(mdns.Msg)
	m.SetQuestion(name, qtype)
	m.RecursionDesired = true
	m.SetEdns0(1232, true)
	if ecs != "" {
		m.IsEdns0().Option = append(m.IsEdns0().Option, ecsOption(t, ecs))
	}
	c := &mdns.Client{Net: "udp", Timeout: 5 * time.Second}
	resp, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("%s %s: %v", name, typeString(qtype), err)
	}
	return resp
}
