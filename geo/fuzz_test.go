package geo

import (
	"net/netip"
	"path/filepath"
	"testing"

	"github.com/meridian-lb/meridian/config"
	"github.com/meridian-lb/meridian/geo/geotest"
	"go.uber.org/zap"
)

// FuzzLookup feeds arbitrary address bytes (4 or 16 make an address, any
// other length an invalid one) to a Locator with overlapping nets and a
// database, and checks the answer against a brute-force reading of the
// nets and the ECS scope contract.
func FuzzLookup(f *testing.F) {
	cfg := config.Geo{
		Nets: map[string]string{
			"0.0.0.0/1":          "low",
			"10.0.0.0/8":         "a",
			"10.1.0.0/16":        "b",
			"10.1.2.3/32":        "c",
			"81.2.69.128/25":     "d",
			"255.255.255.255":    "e",
			"2001:db8::/32":      "f",
			"2001:db8:1::/48":    "g",
			"2a02:ec0:1::/48":    "h",
			"::ffff:9.9.9.0/120": "i",
		},
		Regions: map[string]config.Region{
			"eu": {Continents: []string{"EU"}},
			"us": {Continents: []string{"NA"}, Countries: []string{"JP"}},
		},
		DefaultRegion: "default",
	}
	path := filepath.Join(f.TempDir(), "fuzz.mmdb")
	geotest.WriteMMDB(f, path, map[string]geotest.Record{
		"81.2.69.0/24":  {Country: "GB", Continent: "EU"},
		"128.0.0.0/2":   {Country: "JP", Continent: "AS"},
		"200.0.0.0/8":   {Country: "US", Continent: "NA"},
		"2a02:ec0::/32": {Country: "DE", Continent: "EU"},
	})
	db, err := OpenDB(path, zap.NewNop(), nil)
	if err != nil {
		f.Fatal(err)
	}
	l, err := NewLocator(cfg, db)
	if err != nil {
		f.Fatal(err)
	}
	var nets []netip.Prefix
	region := map[netip.Prefix]string{}
	for k, v := range cfg.Nets {
		p, err := parseNet(k)
		if err != nil {
			f.Fatal(err)
		}
		nets = append(nets, p)
		region[p] = v
	}

	for _, seed := range []string{
		"10.1.2.3", "10.1.2.4", "10.200.0.1", "81.2.69.1", "81.2.69.200", "127.0.0.1",
		"192.168.1.1", "255.255.255.255", "0.0.0.0", "200.1.2.3", "130.0.0.1",
		"::1", "::", "fe80::1", "2001:db8:1::1", "2001:db8:2::1", "2a02:ec0:1::1",
		"2a02:ec0:2::1", "::ffff:9.9.9.9", "::ffff:10.1.2.3", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
	} {
		f.Add(netip.MustParseAddr(seed).AsSlice())
	}
	f.Add([]byte{})
	f.Add([]byte{1, 2, 3})
	f.Add(make([]byte, 17))

	f.Fuzz(func(t *testing.T, b []byte) {
		a, ok := netip.AddrFromSlice(b)
		r := l.Lookup(a)
		if !ok {
			if r != (Result{Region: "default", Source: SourceDefault}) {
				t.Fatalf("invalid address: %+v", r)
			}
			return
		}
		u := a.Unmap()
		if r.Prefix < 0 || r.Prefix > u.BitLen() {
			t.Fatalf("%s: prefix %d out of range", a, r.Prefix)
		}
		if got := r.PrefixFor(a); got < 0 || got > a.BitLen() {
			t.Fatalf("%s: PrefixFor %d out of range", a, got)
		}
		// The longest net, by brute force.
		best := netip.Prefix{}
		for _, p := range nets {
			if p.Contains(u) && (!best.IsValid() || p.Bits() > best.Bits()) {
				best = p
			}
		}
		if best.IsValid() != (r.Source == SourceNets) {
			t.Fatalf("%s: source %s, longest net %v", a, r.Source, best)
		}
		if best.IsValid() && (r.Region != region[best] || r.Prefix < best.Bits()) {
			t.Fatalf("%s: %+v for net %s", a, r, best)
		}
		// Every address in the scope block gets the same answer from nets:
		// no net more specific than the scope lies inside it.
		block := netip.PrefixFrom(u, r.Prefix).Masked()
		for _, p := range nets {
			if p.Bits() > r.Prefix && block.Contains(p.Addr()) {
				t.Fatalf("%s: scope %s spans net %s", a, block, p)
			}
		}
		// The answer is the same at both ends of the block.
		first, last := block.Addr(), lastAddr(block)
		for _, e := range []netip.Addr{first, last} {
			if g := l.Lookup(e); g.Region != r.Region || g.Source != r.Source {
				t.Fatalf("%s: %+v, but %s in its block %s: %+v", a, r, e, block, g)
			}
		}
		if r.Source == SourceMMDB && r.Region != "eu" && r.Region != "us" {
			t.Fatalf("%s: region %q from the database", a, r.Region)
		}
	})
}

// lastAddr returns the highest address of p.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}
