package dns

import (
	"testing"

	mdns "github.com/miekg/dns"
)

const negSOA = "example.com. 300 IN SOA ns1.example.com. hostmaster.example.com. SERIAL 3600 900 604800 300"

// zoneCases covers the static and steered answers of testdata/zone.yaml
// with every endpoint up, for a client in eu (127.0.0.1) unless from says
// otherwise (127.0.0.2 is in us).
var zoneCases = []tcase{
	{name: "static A", qname: "ns1.example.com.", qtype: mdns.TypeA,
		answer: []string{"ns1.example.com. 300 IN A 192.0.2.53"}},
	{name: "mixed case kept", qname: "NS1.ExAmPlE.cOm.", qtype: mdns.TypeA,
		answer: []string{"NS1.ExAmPlE.cOm. 300 IN A 192.0.2.53"}},
	{name: "apex SOA", qname: "example.com.", qtype: mdns.TypeSOA,
		answer: []string{"example.com. 3600 IN SOA ns1.example.com. hostmaster.example.com. SERIAL 3600 900 604800 300"}},
	{name: "apex NS, with the servers' addresses", qname: "example.com.", qtype: mdns.TypeNS,
		answer: []string{"example.com. 3600 IN NS ns1.example.com.", "example.com. 3600 IN NS ns2.example.com."},
		extra:  []string{"ns1.example.com. 300 IN A 192.0.2.53", "ns2.example.com. 300 IN A 192.0.2.54"}},
	{name: "apex MX, with the exchanger's address", qname: "example.com.", qtype: mdns.TypeMX,
		answer: []string{"example.com. 300 IN MX 10 mx.example.com."}, extra: []string{"mx.example.com. 300 IN A 192.0.2.25"}},
	{name: "apex CAA", qname: "example.com.", qtype: mdns.TypeCAA,
		answer: []string{`example.com. 300 IN CAA 0 issue "letsencrypt.org"`}},
	{name: "TXT", qname: "txt.example.com.", qtype: mdns.TypeTXT,
		answer: []string{`txt.example.com. 300 IN TXT "hello world"`}},
	{name: "SRV, its target has no address here", qname: "_sip._tcp.example.com.", qtype: mdns.TypeSRV,
		answer: []string{"_sip._tcp.example.com. 300 IN SRV 10 5 5060 sip.example.com."}},
	{name: "NXDOMAIN carries the SOA with the negative TTL", qname: "nope.example.com.", qtype: mdns.TypeA,
		rcode: mdns.RcodeNameError, ns: []string{negSOA}},
	{name: "NODATA", qname: "ns1.example.com.", qtype: mdns.TypeAAAA, ns: []string{negSOA}},
	{name: "SOA below the apex is NODATA", qname: "ns1.example.com.", qtype: mdns.TypeSOA, ns: []string{negSOA}},
	{name: "unknown type is NODATA", qname: "ns1.example.com.", qtype: 1000, ns: []string{negSOA}},
	{name: "empty non-terminal is NODATA", qname: "b.deep.example.com.", qtype: mdns.TypeTXT, ns: []string{negSOA}},
	{name: "below an existing name is NXDOMAIN", qname: "x.a.b.deep.example.com.", qtype: mdns.TypeTXT,
		rcode: mdns.RcodeNameError, ns: []string{negSOA}},
	{name: "wildcard", qname: "x.app.example.com.", qtype: mdns.TypeA,
		answer: []string{"x.app.example.com. 300 IN A 192.0.2.80"}},
	{name: "wildcard two labels down", qname: "y.X.app.example.com.", qtype: mdns.TypeA,
		answer: []string{"y.X.app.example.com. 300 IN A 192.0.2.80"}},
	{name: "wildcard NODATA", qname: "x.app.example.com.", qtype: mdns.TypeAAAA, ns: []string{negSOA}},
	{name: "wildcard does not cover its parent", qname: "app.example.com.", qtype: mdns.TypeA, ns: []string{negSOA}},
	{name: "CNAME to a steered name", qname: "api.example.com.", qtype: mdns.TypeA,
		answer: []string{"api.example.com. 300 IN CNAME www.example.com.",
			"www.example.com. 30 IN A 192.0.2.1", "www.example.com. 30 IN A 192.0.2.2"}},
	{name: "CNAME chain", qname: "chain.example.com.", qtype: mdns.TypeA,
		answer: []string{"chain.example.com. 300 IN CNAME api.example.com.", "api.example.com. 300 IN CNAME www.example.com.",
			"www.example.com. 30 IN A 192.0.2.1", "www.example.com. 30 IN A 192.0.2.2"}},
	{name: "CNAME asked for itself", qname: "api.example.com.", qtype: mdns.TypeCNAME,
		answer: []string{"api.example.com. 300 IN CNAME www.example.com."}},
	{name: "CNAME out of the zone is not followed", qname: "ext.example.com.", qtype: mdns.TypeA,
		answer: []string{"ext.example.com. 300 IN CNAME www.example.org."}},
	{name: "CNAME to a missing type", qname: "api.example.com.", qtype: mdns.TypeMX,
		answer: []string{"api.example.com. 300 IN CNAME www.example.com."}, ns: []string{negSOA}},
	{name: "CNAME loop: each record once", qname: "loop1.example.com.", qtype: mdns.TypeA,
		answer: []string{"loop1.example.com. 300 IN CNAME loop2.example.com.", "loop2.example.com. 300 IN CNAME loop1.example.com."}},
	{name: "CNAME into a delegation: the referral beside it, AA kept", qname: "cust.example.com.", qtype: mdns.TypeA,
		answer: []string{"cust.example.com. 300 IN CNAME host.sub.example.com."},
		ns:     []string{"sub.example.com. 300 IN NS ns.sub.example.com."}, extra: []string{"ns.sub.example.com. 300 IN A 192.0.2.200"}},
	{name: "delegation gives a referral with glue", qname: "host.sub.example.com.", qtype: mdns.TypeA, noAA: true,
		ns: []string{"sub.example.com. 300 IN NS ns.sub.example.com."}, extra: []string{"ns.sub.example.com. 300 IN A 192.0.2.200"}},
	{name: "the cut itself is a referral", qname: "sub.example.com.", qtype: mdns.TypeNS, noAA: true,
		ns: []string{"sub.example.com. 300 IN NS ns.sub.example.com."}, extra: []string{"ns.sub.example.com. 300 IN A 192.0.2.200"}},
	{name: "glue is not answered authoritatively", qname: "ns.sub.example.com.", qtype: mdns.TypeA, noAA: true,
		ns: []string{"sub.example.com. 300 IN NS ns.sub.example.com."}, extra: []string{"ns.sub.example.com. 300 IN A 192.0.2.200"}},
	{name: "DS at the cut is the parent's NODATA", qname: "sub.example.com.", qtype: mdns.TypeDS, ns: []string{negSOA}},
	{name: "out of zone is REFUSED", qname: "www.example.org.", qtype: mdns.TypeA, rcode: mdns.RcodeRefused, noAA: true},
	{name: "ANY is one RRset", qname: "example.com.", qtype: mdns.TypeANY,
		answer: []string{"example.com. 3600 IN NS ns1.example.com.", "example.com. 3600 IN NS ns2.example.com."},
		extra:  []string{"ns1.example.com. 300 IN A 192.0.2.53", "ns2.example.com. 300 IN A 192.0.2.54"}},
	{name: "ANY at a steered name", qname: "www.example.com.", qtype: mdns.TypeANY,
		answer: []string{"www.example.com. 30 IN A 192.0.2.1", "www.example.com. 30 IN A 192.0.2.2"}},
	{name: "ANY at a CNAME", qname: "api.example.com.", qtype: mdns.TypeANY,
		answer: []string{"api.example.com. 300 IN CNAME www.example.com."}},

	// Steered records.
	{name: "geo: eu client gets eu", qname: "www.example.com.", qtype: mdns.TypeA,
		answer: []string{"www.example.com. 30 IN A 192.0.2.1", "www.example.com. 30 IN A 192.0.2.2"}},
	{name: "geo: us client by source address", qname: "www.example.com.", qtype: mdns.TypeA, from: "127.0.0.2",
		answer: []string{"www.example.com. 30 IN A 198.51.100.10", "www.example.com. 30 IN A 198.51.100.11"}},
	{name: "geo: us by ECS, scope is the deciding prefix", qname: "www.example.com.", qtype: mdns.TypeA, ecs: "198.51.100.0/24", scope: 24,
		answer: []string{"www.example.com. 30 IN A 198.51.100.10", "www.example.com. 30 IN A 198.51.100.11"}},
	{name: "geo: eu by ECS wins over a us source", qname: "www.example.com.", qtype: mdns.TypeA, from: "127.0.0.2", ecs: "10.1.2.0/24", scope: 8,
		answer: []string{"www.example.com. 30 IN A 192.0.2.1", "www.example.com. 30 IN A 192.0.2.2"}},
	{name: "geo: ECS longer than the deciding network", qname: "www.example.com.", qtype: mdns.TypeA, ecs: "198.51.100.7/32", scope: 24,
		answer: []string{"www.example.com. 30 IN A 198.51.100.10", "www.example.com. 30 IN A 198.51.100.11"}},
	{name: "geo: ECS /0 leaves it to the source, scope 0", qname: "www.example.com.", qtype: mdns.TypeA, from: "127.0.0.2", ecs: "0.0.0.0/0", scope: 0,
		answer: []string{"www.example.com. 30 IN A 198.51.100.10", "www.example.com. 30 IN A 198.51.100.11"}},
	{name: "geo: IPv6 ECS", qname: "www.example.com.", qtype: mdns.TypeA, ecs: "2001:db8:1::/56", scope: 48,
		answer: []string{"www.example.com. 30 IN A 198.51.100.10", "www.example.com. 30 IN A 198.51.100.11"}},
	{name: "geo AAAA: host names and IPv4 skipped, other region's v6", qname: "www.example.com.", qtype: mdns.TypeAAAA, ecs: "198.51.100.0/24", scope: 24,
		answer: []string{"www.example.com. 30 IN AAAA 2001:db8::1"}},
	{name: "static with ECS has scope 0", qname: "ns1.example.com.", qtype: mdns.TypeA, ecs: "198.51.100.0/24", scope: 0,
		answer: []string{"ns1.example.com. 300 IN A 192.0.2.53"}},
	{name: "failover ignores location, scope 0", qname: "fo.example.com.", qtype: mdns.TypeA, ecs: "10.1.2.0/24", scope: 0,
		answer: []string{"fo.example.com. 20 IN A 198.51.100.10", "fo.example.com. 20 IN A 198.51.100.11"}},
	{name: "NXDOMAIN with ECS has scope 0", qname: "nope.example.com.", qtype: mdns.TypeA, ecs: "198.51.100.0/24", scope: 0,
		rcode: mdns.RcodeNameError, ns: []string{negSOA}},
	{name: "steered name, other type", qname: "fo.example.com.", qtype: mdns.TypeTXT, ns: []string{negSOA}},
}

func TestAnswerOverUDPAndTCP(t *testing.T) {
	h := newHarness(t, loadConfig(t, "zone.yaml"))
	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			for _, tc := range zoneCases {
				t.Run(tc.name, func(t *testing.T) {
					resp := h.mustExchange(tc.query(t), network, tc.from)
					sortAndCheck(t, resp, tc, h.serial())
				})
			}
		})
	}
}

func TestAnswerMixedCaseOwnerOfSteered(t *testing.T) {
	tab := compile(t, loadConfig(t, "zone.yaml"))
	tc := tcase{name: "steered mixed case", qname: "WWW.example.COM.", qtype: mdns.TypeA,
		answer: []string{"WWW.example.COM. 30 IN A 192.0.2.1", "WWW.example.COM. 30 IN A 192.0.2.2"}}
	sortAndCheck(t, answerFor(t, tab, tc), tc, 0)
}

func TestECSDisabled(t *testing.T) {
	cfg := loadConfig(t, "zone.yaml")
	off := false
	cfg.Geo.ECS = &off
	tab := compile(t, cfg)
	tc := tcase{name: "geo.ecs false ignores ECS", qname: "www.example.com.", qtype: mdns.TypeA, ecs: "198.51.100.0/24"}
	resp := answerFor(t, tab, tc)
	if opt := resp.IsEdns0(); opt == nil || len(opt.Option) != 0 {
		t.Fatalf("want an OPT without ECS, got %v", opt)
	}
	checkSection(t, "answer", resp.Answer, []string{"www.example.com. 30 IN A 192.0.2.1", "www.example.com. 30 IN A 192.0.2.2"}, 0)
}

func TestGeoWithMMDB(t *testing.T) {
	testGeoWithMMDB(t)
}
