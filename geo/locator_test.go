package geo

import (
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meridian-lb/meridian/config"
	"github.com/meridian-lb/meridian/geo/geotest"
	maxminddb "github.com/oschwald/maxminddb-golang/v2"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"
)

// testGeo is the geo config the Locator tests share.
func testGeo() config.Geo {
	return config.Geo{
		Nets: map[string]string{
			"10.0.0.0/8":              "corp-a", // private, but covered
			"10.1.0.0/16":             "corp-b",
			"10.1.2.3":                "host",  // bare address: /32
			"198.51.100.0/24":         "us",    // documentation range, covered
			"::ffff:100.64.0.0/106":   "cgnat", // mapped: becomes 100.64.0.0/10
			"2001:db8:1::/48":         "v6-a",
			"2001:db8:1:2::/64":       "v6-b",
			"2001:db8:1:2::/64 ":      "v6-b", // same network, same region: fine
			"2a02:ec0:1::/48":         "nets-de",
			"81.2.69.128/25":          "london-office",
			"203.0.113.0/25":          "doc-half",
			"2a02:ec0:ffff:ffff::/64": "nets-de",
		},
		Regions: map[string]config.Region{
			"eu":   {Continents: []string{"EU", "AF"}},
			"us":   {Continents: []string{"NA", "SA"}, Countries: []string{"JP"}},
			"apac": {Continents: []string{"as", "OC"}}, // case does not matter
			"de":   {Countries: []string{"de"}},
		},
		DefaultRegion: "eu",
	}
}

// testRecords is the database the Locator tests share.
var testRecords = map[string]geotest.Record{
	"81.2.69.0/24":  {Country: "GB", Continent: "EU", City: "London"},
	"1.0.16.0/20":   {Country: "JP", Continent: "AS"},
	"1.0.64.0/18":   {Country: "CN", Continent: "AS"},
	"2.16.0.0/13":   {Country: "DE", Continent: "EU"},
	"12.0.0.0/8":    {Country: "US", Continent: "NA"},
	"5.5.5.0/24":    {Continent: "AN"}, // no region lists AN
	"6.6.6.0/24":    {RegisteredCountry: "JP", Continent: "AS"},
	"7.7.7.0/24":    {Country: "XK", Continent: "EU"}, // unlisted country, listed continent
	"2a02:ec0::/32": {Country: "DE", Continent: "EU"},
	"2600::/12":     {Country: "US", Continent: "NA"},
	"10.0.0.0/8":    {Country: "US", Continent: "NA"}, // never reached: private
}

func TestLookup(t *testing.T) {
	path := filepath.Join(t.TempDir(), "test.mmdb")
	geotest.WriteMMDB(t, path, testRecords)
	db, err := OpenDB(path, zaptest.NewLogger(t), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	l, err := NewLocator(testGeo(), db)
	if err != nil {
		t.Fatal(err)
	}
	// missBits is what the database itself says about a miss.
	ref, err := maxminddb.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ref.Close() })
	missBits := func(s string) int {
		res := ref.Lookup(netip.MustParseAddr(s))
		if res.Found() {
			t.Fatalf("%s is in the test database", s)
		}
		return res.Prefix().Bits()
	}

	for _, tc := range []struct {
		name, addr string
		want       Result
	}{
		// geo.nets: longest prefix wins; the prefix never spans a more
		// specific entry that does not hold the address.
		{"nets host entry", "10.1.2.3", Result{Region: "host", Prefix: 32, Source: SourceNets}},
		{"nets /16 beside a host", "10.1.9.9", Result{Region: "corp-b", Prefix: 21, Source: SourceNets}},
		{"nets /8 beside a /16", "10.2.0.1", Result{Region: "corp-a", Prefix: 15, Source: SourceNets}},
		{"nets /8 far half", "10.200.0.1", Result{Region: "corp-a", Prefix: 9, Source: SourceNets}},
		{"nets cover a documentation range", "198.51.100.7", Result{Region: "us", Prefix: 24, Source: SourceNets}},
		{"nets mapped key covers CGNAT", "100.64.1.1", Result{Region: "cgnat", Prefix: 10, Source: SourceNets}},
		{"nets over the database", "81.2.69.200", Result{Region: "london-office", Prefix: 25, Source: SourceNets}},
		{"nets v6 /64", "2001:db8:1:2::5", Result{Region: "v6-b", Prefix: 64, Source: SourceNets}},
		{"nets v6 /48 beside a /64", "2001:db8:1:3::1", Result{Region: "v6-a", Prefix: 64, Source: SourceNets}},
		{"nets v6 /48 far half", "2001:db8:1:8000::1", Result{Region: "v6-a", Prefix: 49, Source: SourceNets}},
		{"nets v6 inside a database network", "2a02:ec0:1::1", Result{Region: "nets-de", Prefix: 48, Source: SourceNets}},
		{"mapped address is unmapped", "::ffff:10.1.2.3", Result{Region: "host", Prefix: 32, Source: SourceNets}},
		{"zone is ignored", "2001:db8:1:2::5%eth0", Result{Region: "v6-b", Prefix: 64, Source: SourceNets}},

		// Non-global addresses no entry covers: default region, the
		// range's own length.
		{"private 192.168", "192.168.1.1", Result{Region: "eu", Prefix: 16, Source: SourceDefault}},
		{"private 172.16", "172.20.5.4", Result{Region: "eu", Prefix: 12, Source: SourceDefault}},
		{"loopback v4", "127.0.0.1", Result{Region: "eu", Prefix: 8, Source: SourceDefault}},
		{"loopback v6", "::1", Result{Region: "eu", Prefix: 128, Source: SourceDefault}},
		{"link-local v4", "169.254.10.1", Result{Region: "eu", Prefix: 16, Source: SourceDefault}},
		{"link-local v6", "fe80::1%eth0", Result{Region: "eu", Prefix: 10, Source: SourceDefault}},
		{"unique local v6", "fd12:3456::1", Result{Region: "eu", Prefix: 7, Source: SourceDefault}},
		{"multicast", "239.1.2.3", Result{Region: "eu", Prefix: 4, Source: SourceDefault}},
		{"documentation, half covered", "203.0.113.200", Result{Region: "eu", Prefix: 25, Source: SourceDefault}},
		{"documentation v6 beside nets", "2001:db8::1", Result{Region: "eu", Prefix: 48, Source: SourceDefault}},
		{"mapped loopback", "::ffff:127.0.0.1", Result{Region: "eu", Prefix: 8, Source: SourceDefault}},

		// The database: countries win over continents.
		{"continent EU", "81.2.69.1", Result{Region: "eu", Prefix: 25, Source: SourceMMDB, Country: "GB", Continent: "EU"}},
		{"country JP over continent AS", "1.0.16.1", Result{Region: "us", Prefix: 20, Source: SourceMMDB, Country: "JP", Continent: "AS"}},
		{"continent AS", "1.0.65.1", Result{Region: "apac", Prefix: 18, Source: SourceMMDB, Country: "CN", Continent: "AS"}},
		{"country DE", "2.16.0.1", Result{Region: "de", Prefix: 13, Source: SourceMMDB, Country: "DE", Continent: "EU"}},
		{"continent NA", "12.34.56.78", Result{Region: "us", Prefix: 8, Source: SourceMMDB, Country: "US", Continent: "NA"}},
		{"registered country", "6.6.6.6", Result{Region: "us", Prefix: 24, Source: SourceMMDB, Country: "JP", Continent: "AS"}},
		{"unlisted country, listed continent", "7.7.7.7", Result{Region: "eu", Prefix: 24, Source: SourceMMDB, Country: "XK", Continent: "EU"}},
		{"v6 country DE", "2a02:ec0:2::1", Result{Region: "de", Prefix: 47, Source: SourceMMDB, Country: "DE", Continent: "EU"}},
		{"v6 continent NA", "2600:1f00::1", Result{Region: "us", Prefix: 12, Source: SourceMMDB, Country: "US", Continent: "NA"}},
		{"mapped database address", "::ffff:12.34.56.78", Result{Region: "us", Prefix: 8, Source: SourceMMDB, Country: "US", Continent: "NA"}},

		// A record that maps to no region, and misses.
		{"record without region", "5.5.5.5", Result{Region: "eu", Prefix: 24, Source: SourceDefault, Continent: "AN"}},
		{"miss v4", "8.8.8.8", Result{Region: "eu", Prefix: missBits("8.8.8.8"), Source: SourceDefault}},
		{"miss v6", "2c0f:f000::1", Result{Region: "eu", Prefix: missBits("2c0f:f000::1"), Source: SourceDefault}},

		{"invalid address", "", Result{Region: "eu", Prefix: 0, Source: SourceDefault}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var a netip.Addr
			if tc.addr != "" {
				a = netip.MustParseAddr(tc.addr)
			}
			if got := l.Lookup(a); got != tc.want {
				t.Errorf("Lookup(%s) = %+v, want %+v", tc.addr, got, tc.want)
			}
		})
	}
}

func TestLookupMissPrefix(t *testing.T) {
	// The database: 81.2.69.0/24 and 81.2.0.0/16 only. A miss reports the
	// empty network the database found, so that a resolver caches the
	// default answer no wider than that.
	for _, v := range []int{4, 6} {
		data := geotest.MMDB(t, v, map[string]geotest.Record{
			"81.2.0.0/16":  {Country: "FR", Continent: "EU"},
			"81.2.69.0/24": {Country: "GB", Continent: "EU"},
		})
		path := filepath.Join(t.TempDir(), "db.mmdb")
		writeFile(t, path, data)
		db, err := OpenDB(path, zaptest.NewLogger(t), nil)
		if err != nil {
			t.Fatal(err)
		}
		l, err := NewLocator(config.Geo{DefaultRegion: "x"}, db)
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			addr   string
			prefix int
			found  bool
		}{
			{"81.2.69.7", 24, true},
			{"81.2.1.1", 18, true},  // the /16 around the /24, split by the writer
			{"81.3.0.1", 16, false}, // the database's empty 81.3.0.0/16
			{"64.1.1.1", 4, false},  // the database's empty 64.0.0.0/4
			// The database's miss is 0.0.0.0/2, but 0.0.0.0/8 is
			// non-global: the default holds for 1.0.0.0/8 only.
			{"1.1.1.1", 8, false},
			// An IPv4-only database knows nothing of IPv6, but 2001::/23
			// is non-global: 2800::/5 is the widest safe block.
			{"2a02:ec0::1", 5, false},
		} {
			t.Run(tc.addr+"/v"+string(rune('0'+v)), func(t *testing.T) {
				r := l.Lookup(netip.MustParseAddr(tc.addr))
				if r.Prefix != tc.prefix || (r.Country != "") != tc.found {
					t.Errorf("Lookup(%s) = %+v, want prefix %d, found %v", tc.addr, r, tc.prefix, tc.found)
				}
			})
		}
	}
}

func TestLookupWithoutDB(t *testing.T) {
	l, err := NewLocator(testGeo(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		addr string
		want Result
	}{
		{"10.1.2.3", Result{Region: "host", Prefix: 32, Source: SourceNets}},
		{"192.168.0.1", Result{Region: "eu", Prefix: 16, Source: SourceDefault}},
		// 81.2.69.1 shares 24 bits with 81.2.69.128/25: the default holds
		// for 81.2.69.0/25 only.
		{"81.2.69.1", Result{Region: "eu", Prefix: 25, Source: SourceDefault}},
	} {
		t.Run(tc.addr, func(t *testing.T) {
			if got := l.Lookup(netip.MustParseAddr(tc.addr)); got != tc.want {
				t.Errorf("Lookup(%s) = %+v, want %+v", tc.addr, got, tc.want)
			}
		})
	}
	if l.DefaultRegion() != "eu" || l.DB() != nil {
		t.Errorf("DefaultRegion %q DB %v", l.DefaultRegion(), l.DB())
	}
}

func TestPrefixFor(t *testing.T) {
	l, err := NewLocator(testGeo(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		addr string
		want int
	}{
		{"10.1.2.3", 32},
		{"::ffff:10.1.2.3", 128},
		{"::ffff:192.168.3.4", 112},
		{"2001:db8:1:2::5", 64},
	} {
		t.Run(tc.addr, func(t *testing.T) {
			a := netip.MustParseAddr(tc.addr)
			if got := l.Lookup(a).PrefixFor(a); got != tc.want {
				t.Errorf("PrefixFor = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestNewLocatorErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  config.Geo
		want []string // substrings of the error, one per problem
	}{
		{"prefix length", config.Geo{Nets: map[string]string{"10.0.0.0/33": "eu"}},
			[]string{`geo.nets.10.0.0.0/33: `}},
		{"not a network", config.Geo{Nets: map[string]string{"banana": "eu"}},
			[]string{`geo.nets.banana: `}},
		{"zone", config.Geo{Nets: map[string]string{"fe80::1%eth0": "eu"}},
			[]string{`geo.nets.fe80::1%eth0: zoned`}},
		{"empty region", config.Geo{Nets: map[string]string{"10.0.0.0/8": ""}},
			[]string{`geo.nets.10.0.0.0/8: empty region`}},
		{"conflicting duplicate", config.Geo{Nets: map[string]string{"10.0.0.0/8": "a", "10.9.9.9/8": "b"}},
			[]string{`geo.nets.10.9.9.9/8: same network 10.0.0.0/8 as geo.nets["10.0.0.0/8"]`}},
		{"bad country", config.Geo{Regions: map[string]config.Region{"us": {Countries: []string{"US", "USA"}}}},
			[]string{`geo.regions.us.countries[1]: "USA" is not an ISO 3166-1 alpha-2 code`}},
		{"bad continent", config.Geo{Regions: map[string]config.Region{"eu": {Continents: []string{"EUR"}}}},
			[]string{`geo.regions.eu.continents[0]: "EUR" is not a continent code`}},
		{"country twice", config.Geo{Regions: map[string]config.Region{
			"a": {Countries: []string{"JP"}}, "b": {Countries: []string{"jp"}}}},
			[]string{`geo.regions.b.countries[0]: country JP is already in region "a"`}},
		{"continent twice", config.Geo{Regions: map[string]config.Region{
			"a": {Continents: []string{"EU"}}, "b": {Continents: []string{"AF", "EU"}}}},
			[]string{`geo.regions.b.continents[1]: continent EU is already in region "a"`}},
		{"every problem", config.Geo{
			Nets:    map[string]string{"1.2.3.4/40": "a", "::/129": "b"},
			Regions: map[string]config.Region{"x": {Countries: []string{"1"}}}},
			[]string{`geo.nets.1.2.3.4/40`, `geo.nets.::/129`, `geo.regions.x.countries[0]`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := NewLocator(tc.cfg, nil)
			if err == nil {
				t.Fatalf("NewLocator succeeded: %v", l)
			}
			msg := err.Error()
			if n := strings.Count(msg, "\n") + 1; n != len(tc.want) {
				t.Errorf("%d problems, want %d:\n%s", n, len(tc.want), msg)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error does not contain %q:\n%s", w, msg)
				}
			}
		})
	}
}

func TestNewLocatorAccepts(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  config.Geo
	}{
		{"empty", config.Geo{}},
		{"same network same region", config.Geo{Nets: map[string]string{"10.0.0.0/8": "a", "10.1.1.1/8": "a"}}},
		{"country repeated in one region", config.Geo{Regions: map[string]config.Region{"a": {Countries: []string{"JP", "jp"}}}}},
		{"default /0 nets", config.Geo{Nets: map[string]string{"0.0.0.0/0": "a", "::/0": "b"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewLocator(tc.cfg, nil); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestLocatorString(t *testing.T) {
	l, err := NewLocator(testGeo(), nil)
	if err != nil {
		t.Fatal(err)
	}
	got := l.String()
	for _, want := range []string{
		`default_region "eu"`,
		`net 10.0.0.0/8 -> "corp-a"`,
		`net 100.64.0.0/10 -> "cgnat"`,
		`region "apac" continents=AS,OC countries=`,
		`region "us" continents=NA,SA countries=JP`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("String() lacks %q:\n%s", want, got)
		}
	}
	// Deterministic: nets sorted, so IPv4 10/8 comes before 198.51.100/24.
	if strings.Index(got, "10.0.0.0/8") > strings.Index(got, "198.51.100.0/24") {
		t.Errorf("nets not sorted:\n%s", got)
	}
	l2, _ := NewLocator(testGeo(), nil)
	if l2.String() != got {
		t.Error("String() differs between two compilations of the same config")
	}
}

func TestLookupDoesNotAllocate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "test.mmdb")
	geotest.WriteMMDB(t, path, testRecords)
	db, err := OpenDB(path, zaptest.NewLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	l, err := NewLocator(testGeo(), db)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"10.1.9.9", "2001:db8:1:2::5", "192.168.1.1", "81.2.69.1", "2a02:ec0:2::1", "8.8.8.8", "::ffff:12.1.1.1"} {
		t.Run(s, func(t *testing.T) {
			a := netip.MustParseAddr(s)
			l.Lookup(a) // fill the record cache
			if n := testing.AllocsPerRun(100, func() { l.Lookup(a) }); n != 0 {
				t.Errorf("Lookup(%s) allocates %v times", s, n)
			}
		})
	}
}
