package dns

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/meridian-lb/meridian/config"
	"github.com/meridian-lb/meridian/dns/dnssec"
	"github.com/meridian-lb/meridian/dns/zone"
	"github.com/meridian-lb/meridian/health"
	"github.com/meridian-lb/meridian/routing"
)

// signedConfig is testdata/zone.yaml with example.com. signed by the keys
// in dir (generated there at the first compile when it has none), of the
// algorithm given (default ecdsap256sha256).
func signedConfig(t testing.TB, dir string, algorithm ...string) *config.Config {
	t.Helper()
	b, err := os.ReadFile("testdata/zone.yaml")
	if err != nil {
		t.Fatal(err)
	}
	alg := ""
	if len(algorithm) > 0 {
		alg = ", algorithm: " + algorithm[0]
	}
	text := strings.Replace(string(b), "    transfer: {allow: [127.0.0.1/32]}\n",
		"    transfer: {allow: [127.0.0.1/32]}\n    dnssec: {key_dir: "+dir+alg+"}\n", 1)
	return parseConfig(t, text)
}

// sigText is an RRSIG as the signed cases write it: what it covers and
// how, without the times, tag and signature (checked by verifying).
func sigText(s *mdns.RRSIG) string {
	return fmt.Sprintf("%s %d IN RRSIG %s %d %d %d %s", s.Hdr.Name, s.Hdr.Ttl, mdns.TypeToString[s.TypeCovered], s.Algorithm, s.Labels, s.OrigTtl, s.SignerName)
}

// checkSigned compares a signed response with tc, RRSIGs written as
// sigText, and verifies every RRSIG against the zone's DNSKEYs: over the
// RRset it covers in its section, valid now, by a key of the DNSKEY set.
func checkSigned(t *testing.T, resp *mdns.Msg, tc tcase, serial uint32, keys []*mdns.DNSKEY) {
	t.Helper()
	if resp.Rcode != tc.rcode {
		t.Errorf("%s: rcode %s, want %s\n%v", tc.name, mdns.RcodeToString[resp.Rcode], mdns.RcodeToString[tc.rcode], resp)
	}
	if resp.Authoritative == tc.noAA {
		t.Errorf("%s: AA=%t, want %t", tc.name, resp.Authoritative, !tc.noAA)
	}
	var extra []mdns.RR
	for _, rr := range resp.Extra {
		if _, ok := rr.(*mdns.OPT); !ok {
			extra = append(extra, rr)
		}
	}
	for _, sec := range []struct {
		what string
		got  []mdns.RR
		want []string
	}{{"answer", resp.Answer, tc.answer}, {"authority", resp.Ns, tc.ns}, {"additional", extra, tc.extra}} {
		var g, w []string
		for _, rr := range sec.got {
			if s, ok := rr.(*mdns.RRSIG); ok {
				g = append(g, sigText(s))
				verifySig(t, tc.name+": "+sec.what, s, sec.got, keys)
				continue
			}
			g = append(g, strings.ReplaceAll(rr.String(), "\t", " "))
		}
		for _, s := range sec.want {
			s = strings.ReplaceAll(s, "SERIAL", fmt.Sprint(serial))
			if !strings.Contains(s, " RRSIG ") {
				rr, err := mdns.NewRR(s)
				if err != nil {
					t.Fatalf("bad expected record %q: %v", s, err)
				}
				s = strings.ReplaceAll(rr.String(), "\t", " ")
			}
			w = append(w, s)
		}
		slices.Sort(g)
		slices.Sort(w)
		if !slices.Equal(g, w) {
			t.Errorf("%s: %s:\n got  %s\n want %s", tc.name, sec.what, strings.Join(g, "\n      "), strings.Join(w, "\n      "))
		}
	}
}

func verifySig(t *testing.T, what string, s *mdns.RRSIG, section []mdns.RR, keys []*mdns.DNSKEY) {
	t.Helper()
	var set []mdns.RR
	for _, rr := range section {
		if h := rr.Header(); h.Rrtype == s.TypeCovered && strings.EqualFold(h.Name, s.Hdr.Name) {
			set = append(set, rr)
		}
	}
	for _, k := range keys {
		if k.KeyTag() != s.KeyTag {
			continue
		}
		if len(set) == 0 {
			return // an RRSIG answered alone (qtype RRSIG)
		}
		if err := s.Verify(k, set); err != nil {
			t.Errorf("%s: %s does not verify over %v: %v", what, sigText(s), set, err)
		}
		if !s.ValidityPeriod(time.Now()) {
			t.Errorf("%s: %s is not valid now", what, sigText(s))
		}
		return
	}
	t.Errorf("%s: %s is by key %d, which is not in the DNSKEY set", what, sigText(s), s.KeyTag)
}

// signedQuery is tc's query with DO set (and CO when co).
func signedQuery(t testing.TB, tc tcase, co bool) *mdns.Msg {
	m := tc.query(t)
	m.IsEdns0().SetDo()
	if co {
		m.IsEdns0().SetCo()
	}
	return m
}

const (
	negSOASig = "example.com. 300 IN RRSIG SOA 13 2 300 example.com."
	nsecSig   = "%s 300 IN RRSIG NSEC 13 %d 300 example.com."
)

// signedCases are answers of testdata/zone.yaml signed with one ECDSA
// combined signing key, to a query with DO from a client in eu.
var signedCases = []tcase{
	{name: "static A", qname: "ns1.example.com.", qtype: mdns.TypeA,
		answer: []string{"ns1.example.com. 300 IN A 192.0.2.53", "ns1.example.com. 300 IN RRSIG A 13 3 300 example.com."}},
	{name: "mixed case: the RRSIG follows the owner", qname: "NS1.ExAmPlE.cOm.", qtype: mdns.TypeA,
		answer: []string{"NS1.ExAmPlE.cOm. 300 IN A 192.0.2.53", "NS1.ExAmPlE.cOm. 300 IN RRSIG A 13 3 300 example.com."}},
	{name: "steered A", qname: "www.example.com.", qtype: mdns.TypeA,
		answer: []string{"www.example.com. 30 IN A 192.0.2.1", "www.example.com. 30 IN A 192.0.2.2", "www.example.com. 30 IN RRSIG A 13 3 30 example.com."}},
	{name: "steered A by ECS, us", qname: "www.example.com.", qtype: mdns.TypeA, ecs: "198.51.100.0/24", scope: 24,
		answer: []string{"www.example.com. 30 IN A 198.51.100.10", "www.example.com. 30 IN A 198.51.100.11", "www.example.com. 30 IN RRSIG A 13 3 30 example.com."}},
	{name: "apex NS with its servers' addresses, all signed", qname: "example.com.", qtype: mdns.TypeNS,
		answer: []string{"example.com. 3600 IN NS ns1.example.com.", "example.com. 3600 IN NS ns2.example.com.", "example.com. 3600 IN RRSIG NS 13 2 3600 example.com."},
		extra: []string{"ns1.example.com. 300 IN A 192.0.2.53", "ns1.example.com. 300 IN RRSIG A 13 3 300 example.com.",
			"ns2.example.com. 300 IN A 192.0.2.54", "ns2.example.com. 300 IN RRSIG A 13 3 300 example.com."}},
	{name: "apex SOA", qname: "example.com.", qtype: mdns.TypeSOA,
		answer: []string{"example.com. 3600 IN SOA ns1.example.com. hostmaster.example.com. SERIAL 3600 900 604800 300", "example.com. 3600 IN RRSIG SOA 13 2 3600 example.com."}},
	{name: "NXDOMAIN is compact denial: NODATA with NXNAME", qname: "nope.example.com.", qtype: mdns.TypeA,
		ns: []string{negSOA, negSOASig, `nope.example.com. 300 IN NSEC \000.nope.example.com. RRSIG NSEC NXNAME`, fmt.Sprintf(nsecSig, "nope.example.com.", 3)}},
	{name: "NODATA lists the name's types", qname: "ns1.example.com.", qtype: mdns.TypeAAAA,
		ns: []string{negSOA, negSOASig, `ns1.example.com. 300 IN NSEC \000.ns1.example.com. A RRSIG NSEC`, fmt.Sprintf(nsecSig, "ns1.example.com.", 3)}},
	{name: "NODATA at a steered name leaves out the type asked", qname: "fo.example.com.", qtype: mdns.TypeTXT,
		ns: []string{negSOA, negSOASig, `fo.example.com. 300 IN NSEC \000.fo.example.com. A RRSIG NSEC`, fmt.Sprintf(nsecSig, "fo.example.com.", 3)}},
	{name: "empty non-terminal", qname: "b.deep.example.com.", qtype: mdns.TypeTXT,
		ns: []string{negSOA, negSOASig, `b.deep.example.com. 300 IN NSEC \000.b.deep.example.com. RRSIG NSEC`, fmt.Sprintf(nsecSig, "b.deep.example.com.", 4)}},
	{name: "wildcard: signed as the wildcard, with the NSEC that covers the name", qname: "x.app.example.com.", qtype: mdns.TypeA,
		answer: []string{"x.app.example.com. 300 IN A 192.0.2.80", "x.app.example.com. 300 IN RRSIG A 13 3 300 example.com."},
		ns:     []string{`w\255.app.example.com. 300 IN NSEC x\000.app.example.com. RRSIG NSEC`, fmt.Sprintf(nsecSig, `w\255.app.example.com.`, 4)}},
	{name: "wildcard two labels down", qname: "y.x.app.example.com.", qtype: mdns.TypeA,
		answer: []string{"y.x.app.example.com. 300 IN A 192.0.2.80", "y.x.app.example.com. 300 IN RRSIG A 13 3 300 example.com."},
		ns:     []string{`x\255.x.app.example.com. 300 IN NSEC y\000.x.app.example.com. RRSIG NSEC`, fmt.Sprintf(nsecSig, `x\255.x.app.example.com.`, 5)}},
	{name: "wildcard NODATA", qname: "x.app.example.com.", qtype: mdns.TypeAAAA,
		ns: []string{negSOA, negSOASig, `x.app.example.com. 300 IN NSEC \000.x.app.example.com. A RRSIG NSEC`, fmt.Sprintf(nsecSig, "x.app.example.com.", 4)}},
	{name: "CNAME chain", qname: "api.example.com.", qtype: mdns.TypeA,
		answer: []string{"api.example.com. 300 IN CNAME www.example.com.", "api.example.com. 300 IN RRSIG CNAME 13 3 300 example.com.",
			"www.example.com. 30 IN A 192.0.2.1", "www.example.com. 30 IN A 192.0.2.2", "www.example.com. 30 IN RRSIG A 13 3 30 example.com."}},
	{name: "CNAME into a delegation", qname: "cust.example.com.", qtype: mdns.TypeA,
		answer: []string{"cust.example.com. 300 IN CNAME host.sub.example.com.", "cust.example.com. 300 IN RRSIG CNAME 13 3 300 example.com."},
		ns: []string{"sub.example.com. 300 IN NS ns.sub.example.com.",
			`sub.example.com. 300 IN NSEC \000.sub.example.com. NS RRSIG NSEC`, fmt.Sprintf(nsecSig, "sub.example.com.", 3)},
		extra: []string{"ns.sub.example.com. 300 IN A 192.0.2.200"}},
	{name: "referral: NS and glue unsigned, no DS proven", qname: "host.sub.example.com.", qtype: mdns.TypeA, noAA: true,
		ns: []string{"sub.example.com. 300 IN NS ns.sub.example.com.",
			`sub.example.com. 300 IN NSEC \000.sub.example.com. NS RRSIG NSEC`, fmt.Sprintf(nsecSig, "sub.example.com.", 3)},
		extra: []string{"ns.sub.example.com. 300 IN A 192.0.2.200"}},
	{name: "DS at the cut: NODATA from the parent side", qname: "sub.example.com.", qtype: mdns.TypeDS,
		ns: []string{negSOA, negSOASig, `sub.example.com. 300 IN NSEC \000.sub.example.com. NS RRSIG NSEC`, fmt.Sprintf(nsecSig, "sub.example.com.", 3)}},
	{name: "NSEC asked for", qname: "www.example.com.", qtype: mdns.TypeNSEC,
		answer: []string{`www.example.com. 300 IN NSEC \000.www.example.com. A AAAA RRSIG NSEC`, fmt.Sprintf(nsecSig, "www.example.com.", 3)}},
	{name: "NSEC asked for at a name that does not exist", qname: "nope.example.com.", qtype: mdns.TypeNSEC,
		answer: []string{`nope.example.com. 300 IN NSEC \000.nope.example.com. RRSIG NSEC NXNAME`, fmt.Sprintf(nsecSig, "nope.example.com.", 3)}},
	{name: "RRSIG asked for: the signatures of one RRset", qname: "ns1.example.com.", qtype: mdns.TypeRRSIG,
		answer: []string{"ns1.example.com. 300 IN RRSIG A 13 3 300 example.com."}},
	{name: "ANY is one RRset, signed", qname: "www.example.com.", qtype: mdns.TypeANY,
		answer: []string{"www.example.com. 30 IN A 192.0.2.1", "www.example.com. 30 IN A 192.0.2.2", "www.example.com. 30 IN RRSIG A 13 3 30 example.com."}},
}

func TestSignedAnswers(t *testing.T) {
	dir := t.TempDir()
	h := newHarness(t, signedConfig(t, dir))
	z := h.live.Load().Zones[0]
	keys := dnskeys(z)
	if len(keys) != 1 {
		t.Fatalf("%d keys generated, want 1", len(keys))
	}
	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			for _, tc := range signedCases {
				t.Run(tc.name, func(t *testing.T) {
					checkSigned(t, h.mustExchange(signedQuery(t, tc, false), network, tc.from), tc, h.serial(), keys)
				})
			}
		})
	}
	k := keys[0]
	ds := k.ToDS(mdns.SHA256)
	apex := []tcase{
		{name: "DNSKEY", qname: "example.com.", qtype: mdns.TypeDNSKEY,
			answer: []string{k.String(), "example.com. 3600 IN RRSIG DNSKEY 13 2 3600 example.com."}},
		{name: "CDS: the parent's DS", qname: "example.com.", qtype: mdns.TypeCDS,
			answer: []string{ds.ToCDS().String(), "example.com. 3600 IN RRSIG CDS 13 2 3600 example.com."}},
		{name: "CDNSKEY", qname: "example.com.", qtype: mdns.TypeCDNSKEY,
			answer: []string{k.ToCDNSKEY().String(), "example.com. 3600 IN RRSIG CDNSKEY 13 2 3600 example.com."}},
		{name: "NODATA at the apex lists every apex type", qname: "example.com.", qtype: mdns.TypeTXT,
			ns: []string{negSOA, negSOASig, `example.com. 300 IN NSEC \000.example.com. NS SOA MX RRSIG NSEC DNSKEY CDS CDNSKEY CAA`, fmt.Sprintf(nsecSig, "example.com.", 2)}},
	}
	for _, tc := range apex {
		t.Run(tc.name, func(t *testing.T) {
			checkSigned(t, h.mustExchange(signedQuery(t, tc, false), "udp", ""), tc, h.serial(), keys)
		})
	}

	t.Run("CO keeps NXDOMAIN, and is echoed", func(t *testing.T) {
		tc := tcase{name: "CO", qname: "nope.example.com.", qtype: mdns.TypeA, rcode: mdns.RcodeNameError,
			ns: []string{negSOA, negSOASig, `nope.example.com. 300 IN NSEC \000.nope.example.com. RRSIG NSEC NXNAME`, fmt.Sprintf(nsecSig, "nope.example.com.", 3)}}
		resp := h.mustExchange(signedQuery(t, tc, true), "udp", "")
		checkSigned(t, resp, tc, h.serial(), keys)
		if opt := resp.IsEdns0(); opt == nil || !opt.Co() || !opt.Do() {
			t.Errorf("OPT %v: want DO and CO echoed", opt)
		}
	})
	t.Run("without DO nothing is signed and NXDOMAIN stays", func(t *testing.T) {
		for _, tc := range []tcase{
			{name: "NXDOMAIN", qname: "nope.example.com.", qtype: mdns.TypeA, rcode: mdns.RcodeNameError, ns: []string{negSOA}},
			{name: "static", qname: "ns1.example.com.", qtype: mdns.TypeA, answer: []string{"ns1.example.com. 300 IN A 192.0.2.53"}},
			{name: "DNSKEY is data", qname: "example.com.", qtype: mdns.TypeDNSKEY, answer: []string{k.String()}},
			{name: "NSEC is not", qname: "www.example.com.", qtype: mdns.TypeNSEC, ns: []string{negSOA}},
		} {
			sortAndCheck(t, h.mustExchange(tc.query(t), "udp", ""), tc, h.serial())
		}
	})
}

// dnskeys are the DNSKEY records a zone publishes.
func dnskeys(z *zone.Zone) []*mdns.DNSKEY {
	var out []*mdns.DNSKEY
	for _, rr := range z.Nodes[z.Name].Set(mdns.TypeDNSKEY) {
		out = append(out, rr.(*mdns.DNSKEY))
	}
	return out
}

// TestSignedSteeredCached: a steered answer that did not change is not
// signed again, whatever rotation its addresses come in; one that moved
// with health is signed anew, and its signature verifies.
func TestSignedSteeredCached(t *testing.T) {
	h := newHarness(t, signedConfig(t, t.TempDir()))
	keys := dnskeys(h.live.Load().Zones[0])
	q := signedQuery(t, tcase{qname: "www.example.com.", qtype: mdns.TypeA}, false)
	sigOf := func() (*mdns.RRSIG, []string) {
		resp := h.mustExchange(q, "udp", "")
		var addrs []string
		var sig *mdns.RRSIG
		for _, rr := range resp.Answer {
			switch v := rr.(type) {
			case *mdns.A:
				addrs = append(addrs, v.A.String())
			case *mdns.RRSIG:
				sig = v
				verifySig(t, "steered", v, resp.Answer, keys)
			}
		}
		return sig, addrs
	}
	first, order1 := sigOf()
	second, order2 := sigOf()
	if slices.Equal(order1, order2) {
		t.Fatalf("no rotation between two answers: %v", order1)
	}
	if first.Signature != second.Signature {
		t.Error("the same steered RRset in another rotation was signed again")
	}
	before := counterValue(t, h, "meridian_dns_signatures_total", map[string]string{"result": "signed"})
	h.override("web-eu", "192.0.2.1:80", health.ActionDown)
	moved, addrs := sigOf()
	if !slices.Equal(addrs, []string{"192.0.2.2"}) || moved.Signature == first.Signature {
		t.Errorf("after a health change: %v signed %q", addrs, moved.Signature)
	}
	if after := counterValue(t, h, "meridian_dns_signatures_total", map[string]string{"result": "signed"}); after != before+1 {
		t.Errorf("signatures made: %v then %v, want one more", before, after)
	}
	if n := counterValue(t, h, "meridian_dns_signature_cache_entries", nil); n < 2 {
		t.Errorf("cache entries %v", n)
	}
}

// TestKeyRollover walks a double-signature rollover the way an operator
// does it with files: a new key is added to key_dir (both published, both
// sign), then the old one is removed (the new one alone). At every step,
// in every answer, each RRSIG is by a key of the DNSKEY set served beside
// it and every RRset is signed; a reload that finds a broken key file is
// rejected and the last good table, signed, keeps serving.
func TestKeyRollover(t *testing.T) {
	dir := t.TempDir()
	cfg := signedConfig(t, dir)
	h := newHarness(t, cfg)
	old := dnskeys(h.live.Load().Zones[0])[0]
	serial := h.serial()

	step := func(name string, wantTags ...uint16) {
		t.Helper()
		keys := dnskeys(h.live.Load().Zones[0])
		var tags []uint16
		for _, k := range keys {
			tags = append(tags, k.KeyTag())
		}
		slices.Sort(tags)
		slices.Sort(wantTags)
		if !slices.Equal(tags, wantTags) {
			t.Fatalf("%s: DNSKEY set %v, want %v", name, tags, wantTags)
		}
		for _, q := range []tcase{
			{qname: "example.com.", qtype: mdns.TypeDNSKEY},
			{qname: "www.example.com.", qtype: mdns.TypeA},
			{qname: "nope.example.com.", qtype: mdns.TypeA},
		} {
			resp := h.mustExchange(signedQuery(t, q, false), "tcp", "")
			for _, sec := range [][]mdns.RR{resp.Answer, resp.Ns} {
				signedBy := map[uint16][]uint16{}
				for _, rr := range sec {
					if s, ok := rr.(*mdns.RRSIG); ok {
						verifySig(t, name+" "+q.qname, s, sec, keys)
						signedBy[s.TypeCovered] = append(signedBy[s.TypeCovered], s.KeyTag)
					}
				}
				for _, rr := range sec {
					if tp := rr.Header().Rrtype; tp != mdns.TypeRRSIG {
						got := signedBy[tp]
						slices.Sort(got)
						if !slices.Equal(got, wantTags) {
							t.Errorf("%s: %s %s signed by %v, want %v", name, q.qname, mdns.TypeToString[tp], got, wantTags)
						}
					}
				}
			}
		}
	}
	step("one key", old.KeyTag())

	added, err := dnssec.Generate(dir, "example.com.", mdns.ECDSAP256SHA256, 257, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	h.publish(cfg)
	step("both keys", old.KeyTag(), added.Tag)
	if h.serial() == serial {
		t.Error("the serial did not move with the DNSKEY set")
	}

	// A broken key file: the reload is rejected, the last table serves.
	bad := filepath.Join(dir, "Kexample.com.+013+00001.key")
	if err := os.WriteFile(bad, []byte("example.com. IN DNSKEY 257 3 13 AAAA\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := routing.Compile(cfg, routing.Inputs{}); err == nil || !strings.Contains(err.Error(), "zones[0].dnssec.key_dir") {
		t.Fatalf("compile with a broken key file: %v", err)
	}
	step("after a rejected reload", old.KeyTag(), added.Tag)
	os.Remove(bad)

	oldBase := filepath.Join(dir, fmt.Sprintf("Kexample.com.+013+%05d", old.KeyTag()))
	for _, ext := range []string{".key", ".private"} {
		if err := os.Remove(oldBase + ext); err != nil {
			t.Fatal(err)
		}
	}
	h.publish(cfg)
	step("new key only", added.Tag)
}

// TestSignedTransfer: AXFR of a signed zone serves its records as now
// answered, each authoritative RRset with its RRSIG, an NSEC chain over
// its names in canonical order, the delegation and glue unsigned.
func TestSignedTransfer(t *testing.T) {
	h := newHarness(t, signedConfig(t, t.TempDir()))
	keys := dnskeys(h.live.Load().Zones[0])
	m := new(mdns.Msg)
	m.SetAxfr("example.com.")
	env, err := (&mdns.Transfer{}).In(m, h.tcp)
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
	type key struct {
		name string
		t    uint16
	}
	sets := map[key][]mdns.RR{}
	sigs := map[key][]*mdns.RRSIG{}
	var chain []*mdns.NSEC
	for _, rr := range rrs[1 : len(rrs)-1] {
		h := rr.Header()
		switch v := rr.(type) {
		case *mdns.RRSIG:
			sigs[key{h.Name, v.TypeCovered}] = append(sigs[key{h.Name, v.TypeCovered}], v)
			continue
		case *mdns.NSEC:
			chain = append(chain, v)
		}
		sets[key{h.Name, h.Rrtype}] = append(sets[key{h.Name, h.Rrtype}], rr)
	}
	sets[key{"example.com.", mdns.TypeSOA}] = []mdns.RR{rrs[0]}
	for k, set := range sets {
		unsigned := (k.name == "sub.example.com." && k.t == mdns.TypeNS) || k.name == "ns.sub.example.com."
		if got := sigs[k]; unsigned != (len(got) == 0) {
			t.Errorf("%s %s: %d RRSIGs (unsigned: %t)", k.name, mdns.TypeToString[k.t], len(got), unsigned)
		}
		for _, s := range sigs[k] {
			if err := s.Verify(keys[0], set); err != nil {
				t.Errorf("%s %s: %v", k.name, mdns.TypeToString[k.t], err)
			}
		}
	}
	var names []string
	for i, n := range chain {
		names = append(names, n.Hdr.Name)
		if next := chain[(i+1)%len(chain)].Hdr.Name; n.NextDomain != next {
			t.Errorf("NSEC %s points to %s, want %s", n.Hdr.Name, n.NextDomain, next)
		}
	}
	if !slices.IsSortedFunc(names, dnssec.Compare) || names[0] != "example.com." {
		t.Errorf("NSEC chain not in canonical order from the apex: %v", names)
	}
	for _, bad := range []string{"deep.example.com.", "ns.sub.example.com.", "b.deep.example.com."} {
		if slices.Contains(names, bad) {
			t.Errorf("the NSEC chain holds %s (an empty non-terminal or glue)", bad)
		}
	}
	for _, want := range []string{"*.app.example.com.", "sub.example.com.", "www.example.com.", "a.b.deep.example.com."} {
		if !slices.Contains(names, want) {
			t.Errorf("the NSEC chain lacks %s", want)
		}
	}
}

// TestSignedZoneSerialEpoch: a signed zone's serial moves when its
// signature period ends, and not within one; an unsigned zone's does not.
func TestSignedZoneSerialEpoch(t *testing.T) {
	cfg := signedConfig(t, t.TempDir())
	s := NewServer(Options{Tables: &routing.Live{}})
	now := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return now }
	tab := compile(t, cfg)
	s.TableChanged(tab)
	first := tab.Zones[0].Serial()
	now = now.Add(time.Hour)
	s.TableChanged(tab)
	if tab.Zones[0].Serial() != first {
		t.Error("the serial moved within a signature period")
	}
	now = now.Add(dnssec.Refresh)
	s.TableChanged(tab)
	if tab.Zones[0].Serial() == first {
		t.Error("the serial did not move when a signature period ended")
	}
}

// TestExtendedErrors: the responses a resolver's operator would ask about
// carry an extended DNS error (RFC 8914) saying why.
func TestExtendedErrors(t *testing.T) {
	cfg := loadConfig(t, "zone.yaml")
	h := newHarness(t, cfg)
	edeOf := func(m *mdns.Msg) *mdns.EDNS0_EDE {
		if opt := m.IsEdns0(); opt != nil {
			for _, o := range opt.Option {
				if e, ok := o.(*mdns.EDNS0_EDE); ok {
					return e
				}
			}
		}
		return nil
	}
	q := func(name string, qtype uint16) *mdns.Msg {
		m := new(mdns.Msg)
		m.SetQuestion(name, qtype)
		m.SetEdns0(1232, false)
		return m
	}
	chaos := q("version.bind.", mdns.TypeTXT)
	chaos.Question[0].Qclass = mdns.ClassCHAOS
	notify := q("example.com.", mdns.TypeSOA)
	notify.Opcode = mdns.OpcodeUpdate
	for _, tt := range []struct {
		name, network, from string
		m                   *mdns.Msg
		rcode               int
		code                uint16
	}{
		{"outside every zone", "udp", "", q("www.example.org.", mdns.TypeA), mdns.RcodeRefused, mdns.ExtendedErrorCodeNotAuthoritative},
		{"class CH", "udp", "", chaos, mdns.RcodeRefused, mdns.ExtendedErrorCodeNotAuthoritative},
		{"AXFR from a network not allowed", "tcp", "127.0.0.2", q("example.com.", mdns.TypeAXFR), mdns.RcodeRefused, mdns.ExtendedErrorCodeProhibited},
		{"AXFR over UDP", "udp", "", q("example.com.", mdns.TypeAXFR), mdns.RcodeRefused, mdns.ExtendedErrorCodeNotSupported},
		{"UPDATE", "udp", "", notify, mdns.RcodeNotImplemented, mdns.ExtendedErrorCodeNotSupported},
		{"NXNAME asked for", "udp", "", q("www.example.com.", mdns.TypeNXNAME), mdns.RcodeFormatError, mdns.ExtendedErrorCodeInvalidQueryType},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp := h.mustExchange(tt.m, tt.network, tt.from)
			e := edeOf(resp)
			if resp.Rcode != tt.rcode || e == nil || e.InfoCode != tt.code {
				t.Fatalf("rcode %s, EDE %v; want %s with EDE %d (%s)", mdns.RcodeToString[resp.Rcode], e, mdns.RcodeToString[tt.rcode], tt.code, mdns.ExtendedErrorCodeToString[tt.code])
			}
		})
	}
	t.Run("failing open says so", func(t *testing.T) {
		h.override("blue", "203.0.113.1:80", health.ActionDown)
		h.eject("green", "203.0.113.2:80")
		resp := h.mustExchange(q("fb.example.com.", mdns.TypeA), "udp", "")
		if e := edeOf(resp); resp.Rcode != mdns.RcodeSuccess || e == nil || e.InfoCode != mdns.ExtendedErrorCodeOther || !strings.Contains(e.ExtraText, "fallback") {
			t.Errorf("fallback answer: rcode %s, EDE %v", mdns.RcodeToString[resp.Rcode], e)
		}
	})
	t.Run("no EDE without EDNS, none on a plain answer", func(t *testing.T) {
		m := new(mdns.Msg)
		m.SetQuestion("www.example.org.", mdns.TypeA)
		if resp := h.mustExchange(m, "udp", ""); resp.IsEdns0() != nil {
			t.Errorf("OPT in a response to a query without: %v", resp)
		}
		if e := edeOf(h.mustExchange(q("ns1.example.com.", mdns.TypeA), "udp", "")); e != nil {
			t.Errorf("EDE on a plain answer: %v", e)
		}
	})
}

// TestAdditionalDroppedBeforeTruncating: a UDP response whose additional
// data does not fit loses that data without TC (RFC 2181 §9); the answer
// itself is only cut, with TC, when it does not fit alone.
func TestAdditionalDroppedBeforeTruncating(t *testing.T) {
	var records strings.Builder
	for i := range 12 {
		fmt.Fprintf(&records, "      - {name: \"@\", type: MX, values: [\"%d mail%d.example.com.\"]}\n      - {name: mail%d, type: AAAA, values: [\"2001:db8::%d\"]}\n", i, i, i, i+1)
	}
	cfg := parseConfig(t, `listen: {dns: 127.0.0.1:0}
zones:
  - origin: example.com.
    soa: {ns: ns1.example.com., mbox: hostmaster.example.com.}
    ns: [ns1.example.com.]
    records:
`+records.String())
	h := newHarness(t, cfg)
	m := new(mdns.Msg)
	m.SetQuestion("example.com.", mdns.TypeMX)
	m.SetEdns0(512, false)
	resp := h.mustExchange(m, "udp", "")
	if resp.Truncated || len(resp.Answer) != 12 || len(resp.Extra) != 1 {
		t.Errorf("TC=%t, %d answers, %d additional: want the 12 MX, no additional data (only the OPT), no TC", resp.Truncated, len(resp.Answer), len(resp.Extra))
	}
	resp = h.mustExchange(m, "tcp", "")
	if len(resp.Extra) != 13 {
		t.Errorf("over TCP %d additional, want the 12 AAAA and the OPT", len(resp.Extra))
	}
}

// TestDSAtChildApexFromParent: with both a parent and its child zone
// served, the DS of the child's apex comes from the parent (RFC 4035
// §3.1.4.1), as the DS record configured at the parent's cut.
func TestDSAtChildApexFromParent(t *testing.T) {
	cfg := parseConfig(t, `listen: {dns: 127.0.0.1:0}
zones:
  - origin: example.com.
    soa: {ns: ns1.example.com., mbox: hostmaster.example.com.}
    ns: [ns1.example.com.]
    records:
      - {name: child, type: NS, values: [ns1.example.com.]}
      - {name: child, type: DS, values: ["12345 13 2 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"]}
  - origin: child.example.com.
    soa: {ns: ns1.example.com., mbox: hostmaster.example.com.}
    ns: [ns1.example.com.]
    records:
      - {name: www, type: A, values: [192.0.2.1]}
`)
	tab := compile(t, cfg)
	tc := tcase{name: "DS of the child", qname: "child.example.com.", qtype: mdns.TypeDS,
		answer: []string{"child.example.com. 300 IN DS 12345 13 2 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}}
	sortAndCheck(t, answerFor(t, tab, tc), tc, 0)
	tc = tcase{name: "SOA of the child", qname: "child.example.com.", qtype: mdns.TypeSOA,
		answer: []string{"child.example.com. 3600 IN SOA ns1.example.com. hostmaster.example.com. 0 3600 900 604800 300"}}
	sortAndCheck(t, answerFor(t, tab, tc), tc, 0)
}

// TestSignedAnswerDirect runs answer without a server: a nil signer signs
// uncached, and a zone whose serial is not set yet still signs its SOA.
func TestSignedAnswerDirect(t *testing.T) {
	tab := compile(t, signedConfig(t, t.TempDir()))
	keys := dnskeys(tab.Zones[0])
	tc := tcase{name: "direct NXDOMAIN", qname: "nope.example.com.", qtype: mdns.TypeA,
		ns: []string{strings.Replace(negSOA, "SERIAL", "0", 1), negSOASig, `nope.example.com. 300 IN NSEC \000.nope.example.com. RRSIG NSEC NXNAME`, fmt.Sprintf(nsecSig, "nope.example.com.", 3)}}
	res := answer(tab, signedQuery(t, tc, false), client{addr: netip.MustParseAddr("127.0.0.1")})
	checkSigned(t, res.msg, tc, 0, keys)
}

// TestSignedConcurrent: signed answers from many goroutines at once share
// cached signatures safely (run with -race), and every one verifies.
func TestSignedConcurrent(t *testing.T) {
	h := newHarness(t, signedConfig(t, t.TempDir()))
	keys := dnskeys(h.live.Load().Zones[0])
	done := make(chan struct{})
	for g := range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range 50 {
				name := []string{"www.example.com.", "x.app.example.com.", "nope.example.com.", fmt.Sprintf("n%d-%d.example.com.", g, i)}[i%4]
				resp, err := h.exchange(signedQuery(t, tcase{qname: name, qtype: mdns.TypeA}, false), "udp", "")
				if err != nil {
					t.Error(err)
					return
				}
				for _, sec := range [][]mdns.RR{resp.Answer, resp.Ns} {
					for _, rr := range sec {
						if s, ok := rr.(*mdns.RRSIG); ok {
							verifySig(t, name, s, sec, keys)
						}
					}
				}
			}
		}()
	}
	for range 4 {
		<-done
	}
}
