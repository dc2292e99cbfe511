package zone

import (
	"net/netip"
	"os"
	"strings"
	"testing"

	mdns "github.com/miekg/dns"

	"github.com/meridian-lb/meridian/config"
)

const zonesYAML = `
pools: # the endpoints steered records see are those of services, below
  eu: {region: eu, endpoints: [192.0.2.1:80]}
  us: {region: us, endpoints: [198.51.100.1:80]}
services:
  web: {policy: geo, pools: [eu, us]}
zones:
  - origin: Example.COM
    soa: {ns: ns1.example.com., mbox: hostmaster@example.com, ttl: 600, minimum: 900}
    ns: [NS1.example.com.]
    transfer: {allow: [192.0.2.0/24, 2001:db8::1], notify: ["192.0.2.53:53"]}
    records:
      - {name: www, type: A, service: web, ttl: 30}
      - {name: www, type: AAAA, service: web, ttl: 30}
      - {name: ns1, type: A, values: [192.0.2.53], ttl: 100}
      - {name: ns1, type: A, values: [192.0.2.54], ttl: 50}
      - {name: alias, type: CNAME, values: [WWW.Example.com.]}
      - {name: "*.wild", type: TXT, values: [hi]}
      - {name: a.b.c, type: TXT, values: [deep]}
      - {name: sub, type: NS, values: [ns.sub.example.com., ns1.example.com.]}
      - {name: ns.sub, type: AAAA, values: ["2001:db8::53"]}
      - {name: down, type: A, service: web, on_all_down: fallback, fallback: {type: CNAME, values: [Sorry.Example.NET.]}}
  - origin: sub2.example.com.
    soa: {ns: ns1.example.com., mbox: hostmaster.example.com.}
    ns: [ns1.example.com.]
`

// services is the Services of the tests: web's pools eu and us, with the
// endpoints routing would hand over (a host name and a second port at one
// address included).
var services = fakeServices{"web": {
	{Name: "eu", Endpoints: []Endpoint{
		ep("192.0.2.1:80", 1), ep("192.0.2.1:81", 1), ep("192.0.2.2:80", 3), ep("[2001:db8::1]:80", 1),
		{Address: "web.example.net:80", Weight: 1},
	}},
	{Name: "us", Endpoints: []Endpoint{ep("198.51.100.1:80", 1)}},
}}

type fakeServices map[string][]Pool

func (f fakeServices) Pools(name string) ([]Pool, bool) { p, ok := f[name]; return p, ok }

func ep(addr string, weight int) Endpoint {
	return Endpoint{Address: addr, IP: netip.MustParseAddrPort(addr).Addr(), Weight: weight}
}

// compile parses text as a config (its own rules only) and compiles its
// zones.
func compile(t *testing.T, text string, svc Services) ([]*Zone, []config.Problem) {
	t.Helper()
	cfg, err := config.Parse("zones.yaml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return Compile(cfg, svc)
}

func mustCompile(t *testing.T, text string) []*Zone {
	t.Helper()
	zones, probs := compile(t, text, services)
	if len(probs) > 0 {
		t.Fatalf("problems: %v", probs)
	}
	return zones
}

func TestCompile(t *testing.T) {
	z := mustCompile(t, zonesYAML)[0]
	if z.Origin != "Example.COM" || z.Name != "example.com." || z.Config == nil {
		t.Fatalf("origin %q name %q", z.Origin, z.Name)
	}
	t.Run("SOA and negative TTL", func(t *testing.T) {
		if z.NegativeTTL != 600 {
			t.Errorf("negative TTL %d, want min(600, 900)", z.NegativeTTL)
		}
		z.SetSerial(42)
		soa, neg := z.SOA(), z.NegativeSOA()
		if soa.Serial != 42 || neg.Serial != 42 || soa.Hdr.Ttl != 600 || neg.Hdr.Ttl != 600 {
			t.Errorf("soa %v neg %v", soa, neg)
		}
		if soa.Mbox != "hostmaster.example.com." || soa.Ns != "ns1.example.com." {
			t.Errorf("soa names %q %q", soa.Ns, soa.Mbox)
		}
		if z.Serial() != 42 {
			t.Errorf("serial %d", z.Serial())
		}
	})
	t.Run("transfer", func(t *testing.T) {
		if len(z.TransferAllow) != 2 || z.TransferAllow[1].String() != "2001:db8::1/128" || len(z.Notify) != 1 || z.Notify[0].String() != "192.0.2.53:53" {
			t.Errorf("allow %v notify %v", z.TransferAllow, z.Notify)
		}
	})
	nodes := []struct {
		name     string
		empty    bool
		cut      bool
		wildcard bool
		types    []uint16
	}{
		{name: "example.com.", types: []uint16{mdns.TypeNS}},
		{name: "ns1.example.com.", types: []uint16{mdns.TypeA}},
		{name: "alias.example.com.", types: []uint16{mdns.TypeCNAME}},
		{name: "wild.example.com.", empty: true},
		{name: "*.wild.example.com.", wildcard: true, types: []uint16{mdns.TypeTXT}},
		{name: "c.example.com.", empty: true},
		{name: "b.c.example.com.", empty: true},
		{name: "a.b.c.example.com.", types: []uint16{mdns.TypeTXT}},
		{name: "sub.example.com.", cut: true, types: []uint16{mdns.TypeNS}},
		{name: "ns.sub.example.com.", types: []uint16{mdns.TypeAAAA}},
		{name: "www.example.com."},
	}
	for _, want := range nodes {
		t.Run("node "+want.name, func(t *testing.T) {
			n := z.Nodes[want.name]
			if n == nil {
				t.Fatal("missing")
			}
			if n.Empty() != want.empty || n.Cut != want.cut || n.Wildcard != want.wildcard {
				t.Errorf("empty=%t cut=%t wildcard=%t", n.Empty(), n.Cut, n.Wildcard)
			}
			var types []uint16
			for _, s := range n.Sets {
				types = append(types, s.Type)
			}
			if len(types) != len(want.types) {
				t.Fatalf("types %v, want %v", types, want.types)
			}
			for i := range types {
				if types[i] != want.types[i] {
					t.Errorf("types %v, want %v", types, want.types)
				}
			}
		})
	}
	if len(z.Nodes) != len(nodes)+1 { // + down.example.com.
		t.Errorf("%d nodes, want %d", len(z.Nodes), len(nodes)+1)
	}
	t.Run("RRset TTLs are one", func(t *testing.T) {
		for _, rr := range z.Nodes["ns1.example.com."].Set(mdns.TypeA) {
			if rr.Header().Ttl != 50 {
				t.Errorf("%v: want the set's lowest TTL, 50", rr)
			}
		}
	})
	t.Run("targets are lower case", func(t *testing.T) {
		if got := z.Nodes["alias.example.com."].CNAMETarget; got != "www.example.com." {
			t.Errorf("CNAME target %q", got)
		}
		if got := z.Nodes["example.com."].Set(mdns.TypeNS)[0].(*mdns.NS).Ns; got != "ns1.example.com." {
			t.Errorf("NS %q", got)
		}
	})
	t.Run("wildcards by parent", func(t *testing.T) {
		if w := z.Wildcards["wild.example.com."]; w == nil || w.Name != "*.wild.example.com." {
			t.Errorf("wildcards %v", z.Wildcards)
		}
	})
	t.Run("glue", func(t *testing.T) {
		glue := z.Nodes["sub.example.com."].Glue
		var got []string
		for _, rr := range glue {
			got = append(got, rr.String())
		}
		if len(glue) != 3 || !strings.Contains(got[0], "2001:db8::53") || !strings.Contains(got[1], "192.0.2.53") || !strings.Contains(got[2], "192.0.2.54") {
			t.Errorf("glue %v", got)
		}
		if !z.HasCuts {
			t.Error("HasCuts false")
		}
	})
	t.Run("steered targets", func(t *testing.T) {
		a := z.Nodes["www.example.com."].SteeredFor(mdns.TypeA)
		aaaa := z.Nodes["www.example.com."].SteeredFor(mdns.TypeAAAA)
		if a == nil || aaaa == nil || a.TTL != 30 || a.DegradedTTL != 10 || a.MaxAnswers != 4 || a.OnAllDown != config.RecordFailOpen {
			t.Fatalf("steered %+v %+v", a, aaaa)
		}
		if a.Service != "web" || strings.Join(a.Pools, ",") != "eu,us" {
			t.Errorf("service %q pools %v", a.Service, a.Pools)
		}
		ts := a.Targets["eu"]
		if len(ts) != 2 || ts[0].IP.String() != "192.0.2.1" || len(ts[0].Endpoints) != 2 || ts[0].Weight != 2 || ts[1].Weight != 3 {
			t.Fatalf("eu A targets %+v: one per address, host names and IPv6 skipped", ts)
		}
		if ts[0].RR.Header().Ttl != 30 || ts[0].Degraded.Header().Ttl != 10 || ts[0].RR.Header().Name != "www.example.com." {
			t.Errorf("records %v %v", ts[0].RR, ts[0].Degraded)
		}
		if len(aaaa.Targets["eu"]) != 1 || aaaa.Targets["us"] != nil {
			t.Errorf("AAAA targets %+v", aaaa.Targets)
		}
		if !ts[0].Available() || ts[0].Excluded() {
			t.Error("an endpoint without state is available and not excluded")
		}
		down := z.Nodes["down.example.com."].SteeredFor(mdns.TypeA)
		if down.OnAllDown != config.RecordFallback || down.FallbackTarget != "sorry.example.net." || len(down.Fallback) != 1 || down.Fallback[0].Header().Ttl != 10 {
			t.Errorf("fallback %+v", down)
		}
		if len(z.Steered) != 3 {
			t.Errorf("%d steered records, want 3", len(z.Steered))
		}
	})
	t.Run("static digest is deterministic and content-sensitive", func(t *testing.T) {
		again := mustCompile(t, zonesYAML)[0]
		if again.StaticDigest != z.StaticDigest {
			t.Error("same input, different digest")
		}
		other := mustCompile(t, strings.Replace(zonesYAML, "values: [hi]", "values: [ho]", 1))[0]
		if other.StaticDigest == z.StaticDigest {
			t.Error("changed record, same digest")
		}
	})
}

// state is an endpoint's live state for the target tests.
type state struct{ available, excluded bool }

func (s state) Available() bool { return s.available }
func (s state) Excluded() bool  { return s.excluded }

// TestTargetState: a target reads its endpoints' live state: available
// when any is, excluded only when all are.
func TestTargetState(t *testing.T) {
	up, down, drained := state{available: true}, state{}, state{excluded: true}
	tests := []struct {
		name                string
		states              []State
		available, excluded bool
	}{
		{"one up", []State{up}, true, false},
		{"one down", []State{down}, false, false},
		{"one up of two", []State{down, up}, true, false},
		{"all drained", []State{drained, drained}, false, true},
		{"one drained", []State{drained, down}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var tg Target
			for _, s := range tt.states {
				tg.Endpoints = append(tg.Endpoints, Endpoint{State: s})
			}
			if tg.Available() != tt.available || tg.Excluded() != tt.excluded {
				t.Errorf("available %t excluded %t, want %t %t", tg.Available(), tg.Excluded(), tt.available, tt.excluded)
			}
		})
	}
}

func TestFind(t *testing.T) {
	zones := mustCompile(t, zonesYAML)
	for _, tt := range []struct{ name, want string }{
		{"example.com.", "example.com."},
		{"www.example.com.", "example.com."},
		{"a.b.sub2.example.com.", "sub2.example.com."},
		{"sub2.example.com.", "sub2.example.com."},
		{"xsub2.example.com.", "example.com."},
		{"example.org.", ""},
		{"com.", ""},
		{".", ""},
		{`a\.b.example.com.`, "example.com."},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := ""
			if z := Find(zones, tt.name); z != nil {
				got = z.Name
			}
			if got != tt.want {
				t.Errorf("Find(%q) = %q, want %q", tt.name, got, tt.want)
			}
		})
	}
	if Find(nil, "example.com.") != nil {
		t.Error("a zone from no zones")
	}
}

func TestDump(t *testing.T) {
	var b strings.Builder
	mustCompile(t, zonesYAML)[0].Dump(&b)
	for _, want := range []string{
		"zone example.com. negative_ttl=600 degraded_ttl=10\n",
		"  transfer allow 192.0.2.0/24\n",
		"  cut sub.example.com.\n",
		"    glue ns.sub.example.com. 300 IN AAAA 2001:db8::53\n",
		"  wildcard *.wild.example.com.\n",
		"  empty b.c.example.com.\n",
		"  steered www.example.com. A service=web ttl=30 degraded_ttl=10 max_answers=4 on_all_down=fail_open pools=eu[192.0.2.1:80+192.0.2.1:81 192.0.2.2:80],us[198.51.100.1:80]\n",
		"    fallback down.example.com. 10 IN CNAME sorry.example.net.\n",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("dump lacks %q:\n%s", want, b.String())
		}
	}
}

// TestCompileSigned: a signed zone publishes its keys at the apex (DNSKEY,
// CDS, CDNSKEY at the SOA TTL), generating one into an empty key_dir, and
// is prepared for signing: content keys, types per name (a delegation's
// NS alone), names in canonical order.
func TestCompileSigned(t *testing.T) {
	dir := t.TempDir()
	text := strings.Replace(zonesYAML, "    transfer: {allow:", "    dnssec: {key_dir: "+dir+"}\n    transfer: {allow:", 1)
	z := mustCompile(t, text)[0]
	if z.Keys == nil || len(z.Keys.Keys) != 1 {
		t.Fatalf("keys %v", z.Keys)
	}
	apex := z.Nodes["example.com."]
	for _, typ := range []uint16{mdns.TypeDNSKEY, mdns.TypeCDS, mdns.TypeCDNSKEY} {
		set := apex.SetOf(typ)
		if set == nil || len(set.RRs) != 1 || set.RRs[0].Header().Ttl != 600 || set.Key == nil {
			t.Errorf("%s at the apex: %v", mdns.TypeToString[typ], set)
		}
	}
	if got := apex.Types; !slicesEqual(got, []uint16{mdns.TypeNS, mdns.TypeSOA, mdns.TypeDNSKEY, mdns.TypeCDS, mdns.TypeCDNSKEY}) {
		t.Errorf("apex types %v", got)
	}
	if got := z.Nodes["sub.example.com."].Types; !slicesEqual(got, []uint16{mdns.TypeNS}) {
		t.Errorf("delegation types %v", got)
	}
	if got := z.Nodes["www.example.com."].Types; !slicesEqual(got, []uint16{mdns.TypeA, mdns.TypeAAAA}) {
		t.Errorf("steered name types %v", got)
	}
	if z.Nodes["down.example.com."].Steered[0].FallbackKey == nil {
		t.Error("no content key for a fallback")
	}
	want := []string{"example.com.", "alias.example.com.", "c.example.com.", "b.c.example.com.", "a.b.c.example.com.", "down.example.com.",
		"ns1.example.com.", "sub.example.com.", "ns.sub.example.com.", "wild.example.com.", "*.wild.example.com.", "www.example.com."}
	if !slicesEqual(z.Names, want) {
		t.Errorf("names\n %v\nwant\n %v", z.Names, want)
	}
	var b strings.Builder
	z.Dump(&b)
	if !strings.Contains(b.String(), "  dnssec keys ecdsap256sha256 ") {
		t.Errorf("dump without the keys:\n%s", b.String())
	}
	again := mustCompile(t, text)[0]
	if again.Keys.Keys[0].Tag != z.Keys.Keys[0].Tag || again.StaticDigest != z.StaticDigest {
		t.Error("a second compile did not use the key the first generated")
	}
	unsigned := mustCompile(t, zonesYAML)[0]
	if unsigned.Keys != nil || unsigned.Names != nil || unsigned.Nodes["www.example.com."].Types != nil || unsigned.StaticDigest == z.StaticDigest {
		t.Error("an unsigned zone is prepared for signing, or digests like the signed one")
	}
}

// TestCheckWritesNothing: meridian validate's check reads a signed zone's
// key_dir but never generates a key there.
func TestCheckWritesNothing(t *testing.T) {
	dir := t.TempDir()
	text := strings.Replace(zonesYAML, "    transfer: {allow:", "    dnssec: {key_dir: "+dir+"}\n    transfer: {allow:", 1)
	cfg, err := config.Parse("zones.yaml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	if err := Check(cfg); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("Check wrote %d files", len(entries))
	}
	zones, probs := CompileWith(cfg, services, Options{NoKeyGeneration: true})
	if len(probs) > 0 || zones[0].Signed() {
		t.Errorf("CompileWith without key generation: %v, signed %t", probs, zones[0].Signed())
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("CompileWith without key generation wrote %d files", len(entries))
	}
}

// TestAdditional: NS (apex), MX and SRV sets point to the static
// addresses of their in-zone targets that the zone is authoritative for.
func TestAdditional(t *testing.T) {
	z := mustCompile(t, `zones:
  - origin: example.com.
    soa: {ns: ns1.example.com., mbox: hostmaster.example.com.}
    ns: [ns1.example.com., ns.sub.example.com., ns.example.net.]
    records:
      - {name: ns1, type: A, values: [192.0.2.53]}
      - {name: ns1, type: AAAA, values: ["2001:db8::53"]}
      - {name: "@", type: MX, values: ["10 mx.example.com.", "20 MX.example.com.", "30 x.wild.example.com."]}
      - {name: mx, type: A, values: [192.0.2.25]}
      - {name: _s._tcp, type: SRV, values: ["1 1 1 ns1.example.com."]}
      - {name: "*.wild", type: A, values: [192.0.2.9]}
      - {name: sub, type: NS, values: [ns.sub.example.com.]}
      - {name: ns.sub, type: A, values: [192.0.2.200]}
`)[0]
	names := func(sets []*RRSet) []string {
		var out []string
		for _, s := range sets {
			out = append(out, s.RRs[0].Header().Name+" "+mdns.TypeToString[s.Type])
		}
		return out
	}
	apex := z.Nodes["example.com."]
	if got := names(apex.SetOf(mdns.TypeNS).Additional); !slicesEqual(got, []string{"ns1.example.com. A", "ns1.example.com. AAAA"}) {
		t.Errorf("NS additional %v: want ns1's addresses (not the glue below sub, not out of zone)", got)
	}
	if got := names(apex.SetOf(mdns.TypeMX).Additional); !slicesEqual(got, []string{"mx.example.com. A"}) {
		t.Errorf("MX additional %v: want mx's address once (not a wildcard's)", got)
	}
	if got := names(z.Nodes["_s._tcp.example.com."].SetOf(mdns.TypeSRV).Additional); len(got) != 2 {
		t.Errorf("SRV additional %v", got)
	}
	if got := z.Nodes["sub.example.com."].SetOf(mdns.TypeNS).Additional; got != nil {
		t.Errorf("a delegation's NS set has additional data %v: its glue is separate", names(got))
	}
}

func slicesEqual[T comparable](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
