package geo

import "net/netip"

// nonGlobal lists the ranges whose addresses say nothing about where a client
// is: private, shared (CGNAT), loopback, link-local, documentation,
// benchmarking, multicast and reserved space, from the IANA special-purpose
// registries (entries with Global = False) plus multicast. An address in one
// of them that no geo.nets entry covers gets the default region, and its
// scope is the range's own length, so one answer serves the whole range.
//
// IPv4-mapped IPv6 space is absent: addresses are unmapped before lookup.
// 2002::/16 (6to4) is absent too: MaxMind databases alias it to the embedded
// IPv4 address, which is where the client really is.
var nonGlobal = []string{
	"0.0.0.0/8",       // "this network"
	"10.0.0.0/8",      // private
	"100.64.0.0/10",   // shared address space (CGNAT)
	"127.0.0.0/8",     // loopback
	"169.254.0.0/16",  // link-local
	"172.16.0.0/12",   // private
	"192.0.0.0/24",    // IETF protocol assignments
	"192.0.2.0/24",    // documentation (TEST-NET-1)
	"192.88.99.0/24",  // deprecated 6to4 relay anycast
	"192.168.0.0/16",  // private
	"198.18.0.0/15",   // benchmarking
	"198.51.100.0/24", // documentation (TEST-NET-2)
	"203.0.113.0/24",  // documentation (TEST-NET-3)
	"224.0.0.0/4",     // multicast
	"240.0.0.0/4",     // reserved, including broadcast
	"::/128",          // unspecified
	"::1/128",         // loopback
	"64:ff9b:1::/48",  // local-use IPv4/IPv6 translation
	"100::/64",        // discard-only
	"2001::/23",       // IETF protocol assignments (Teredo, benchmarking, ORCHID)
	"2001:db8::/32",   // documentation
	"3fff::/20",       // documentation
	"5f00::/16",       // SRv6 SIDs
	"fc00::/7",        // unique local
	"fe80::/10",       // link-local
	"fec0::/10",       // deprecated site-local
	"ff00::/8",        // multicast
}

// specialTries holds the compiled nonGlobal ranges, one trie per family.
// Built once at init and never modified; every value is 0 (the range itself
// does not matter, only that the address is in one).
type specialTries struct{ v4, v6 *trie }

var special = compileSpecial()

func compileSpecial() specialTries {
	var p4, p6 []netip.Prefix
	for _, s := range nonGlobal {
		p := netip.MustParsePrefix(s)
		if p.Addr().Is4() {
			p4 = append(p4, p)
		} else {
			p6 = append(p6, p)
		}
	}
	return specialTries{
		v4: buildTrie(32, p4, make([]int32, len(p4))),
		v6: buildTrie(128, p6, make([]int32, len(p6))),
	}
}
