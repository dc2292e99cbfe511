package geo

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	"github.com/meridian-lb/meridian/config"
)

// Sources of a Result, in the order Lookup consults them.
const (
	SourceNets    = "nets"    // a geo.nets entry covers the address
	SourceMMDB    = "mmdb"    // the database's country or continent maps to a region
	SourceDefault = "default" // nothing mapped the address: default_region
)

// Result is where Lookup placed a client and why.
type Result struct {
	// Region is the client's region; DefaultRegion when nothing else
	// decided (empty if default_region is unset).
	Region string
	// Prefix is how many leading bits of the (unmapped) address decided
	// Region: every address sharing them gets the same Result region. DNS
	// uses it as the ECS scope (RFC 7871), so it is never shorter than the
	// network that decided, and it never spans a more specific geo.nets
	// entry or database network that would answer differently. It counts
	// bits of the address's own family; see PrefixFor for IPv4-mapped
	// addresses.
	Prefix int
	// Source is SourceNets, SourceMMDB or SourceDefault.
	Source string
	// Country and Continent are the database's codes for the address (ISO
	// 3166-1 alpha-2, and AF AN AS EU NA OC SA), when it had a record. They
	// are set even when neither mapped to a region. Country falls back to
	// the registered country when the record has no country.
	Country, Continent string
}

// PrefixFor returns r.Prefix counted in the bits of addr as the caller saw
// it: an IPv4-mapped IPv6 address is looked up as IPv4, so its scope in IPv6
// bits is 96 more. DNS uses it when an ECS option of family IPv6 carries a
// mapped address.
func (r Result) PrefixFor(addr netip.Addr) int {
	if addr.Is4In6() {
		return r.Prefix + 96
	}
	return r.Prefix
}

// Locator maps client addresses to regions for one compiled table. It is
// immutable once NewLocator returns, so requests share it without locks; a
// config reload builds a new one. The database it reads may reload
// underneath it (DB swaps its reader atomically).
type Locator struct {
	nets      []netEntry // for String, sorted by network
	names     []string   // nets values: region names
	v4, v6    *trie
	country   [codeSpace]int16 // region index into regions by country code, or -1
	continent [codeSpace]int16 // region index into regions by continent code, or -1
	regions   []string         // region names from geo.regions, sorted
	def       string
	db        *DB
}

// netEntry is one geo.nets entry after parsing.
type netEntry struct {
	key    string // as written
	prefix netip.Prefix
	region string
}

// codeSpace is the number of two-letter codes A-Z × A-Z.
const codeSpace = 26 * 26

// continents are the codes MaxMind databases use in continent.code.
var continents = []string{"AF", "AN", "AS", "EU", "NA", "OC", "SA"}

// code2 returns the index of a two-letter upper-case code, or -1.
func code2(s string) int {
	if len(s) != 2 || s[0] < 'A' || s[0] > 'Z' || s[1] < 'A' || s[1] > 'Z' {
		return -1
	}
	return int(s[0]-'A')*26 + int(s[1]-'A')
}

// NewLocator compiles cfg into a Locator. db may be nil (no geo.mmdb, or the
// caller chose to go without it); the Locator then uses nets and the default
// region only. Every problem is reported as a config.Problem at its key's
// path (geo.nets.10.0.0.0/33, geo.regions.eu.countries[1]), so that the
// caller can give it its line (config.Config.Locate); they come joined.
func NewLocator(cfg config.Geo, db *DB) (*Locator, error) {
	l := &Locator{def: cfg.DefaultRegion, db: db}
	var errs []error

	// geo.nets, in a stable order so that errors are deterministic.
	byPrefix := map[netip.Prefix]netEntry{}
	regionIdx := map[string]int32{}
	var p4, p6 []netip.Prefix
	var v4, v6 []int32
	for _, key := range slices.Sorted(maps.Keys(cfg.Nets)) {
		region := cfg.Nets[key]
		p, err := parseNet(key)
		if err != nil {
			errs = append(errs, netProblem(key, err.Error()))
			continue
		}
		if region == "" {
			errs = append(errs, netProblem(key, "empty region"))
			continue
		}
		if prev, ok := byPrefix[p]; ok {
			if prev.region != region {
				errs = append(errs, netProblem(key, fmt.Sprintf("same network %s as geo.nets[%q], which says region %q, not %q",
					p, prev.key, prev.region, region)))
			}
			continue
		}
		byPrefix[p] = netEntry{key: key, prefix: p, region: region}
		l.nets = append(l.nets, byPrefix[p])
		idx, ok := regionIdx[region]
		if !ok {
			idx = int32(len(l.names))
			regionIdx[region] = idx
			l.names = append(l.names, region)
		}
		if p.Addr().Is4() {
			p4, v4 = append(p4, p), append(v4, idx)
		} else {
			p6, v6 = append(p6, p), append(v6, idx)
		}
	}
	slices.SortFunc(l.nets, func(a, b netEntry) int {
		if c := a.prefix.Addr().Compare(b.prefix.Addr()); c != 0 {
			return c
		}
		return a.prefix.Bits() - b.prefix.Bits()
	})
	l.v4 = buildTrie(32, p4, v4)
	l.v6 = buildTrie(128, p6, v6)

	// geo.regions: countries and continents, each in at most one region.
	for i := range l.country {
		l.country[i], l.continent[i] = -1, -1
	}
	l.regions = slices.Sorted(maps.Keys(cfg.Regions))
	for ri, name := range l.regions {
		r := cfg.Regions[name]
		path := "geo.regions." + name
		if name == "" {
			errs = append(errs, config.Problem{Path: "geo.regions", Msg: "empty region name"})
			continue
		}
		for i, c := range r.Countries {
			up := strings.ToUpper(strings.TrimSpace(c))
			k := code2(up)
			if k < 0 {
				errs = append(errs, config.Problem{Path: fmt.Sprintf("%s.countries[%d]", path, i), Msg: fmt.Sprintf("%q is not an ISO 3166-1 alpha-2 code", c)})
				continue
			}
			if prev := l.country[k]; prev >= 0 && int(prev) != ri {
				errs = append(errs, config.Problem{Path: fmt.Sprintf("%s.countries[%d]", path, i), Msg: fmt.Sprintf("country %s is already in region %q", up, l.regions[prev])})
				continue
			}
			l.country[k] = int16(ri)
		}
		for i, c := range r.Continents {
			up := strings.ToUpper(strings.TrimSpace(c))
			if !slices.Contains(continents, up) {
				errs = append(errs, config.Problem{Path: fmt.Sprintf("%s.continents[%d]", path, i), Msg: fmt.Sprintf("%q is not a continent code (one of %s)", c, strings.Join(continents, " "))})
				continue
			}
			k := code2(up)
			if prev := l.continent[k]; prev >= 0 && int(prev) != ri {
				errs = append(errs, config.Problem{Path: fmt.Sprintf("%s.continents[%d]", path, i), Msg: fmt.Sprintf("continent %s is already in region %q", up, l.regions[prev])})
				continue
			}
			l.continent[k] = int16(ri)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return l, nil
}

// netProblem is a problem with the geo.nets entry key.
func netProblem(key, msg string) config.Problem {
	return config.Problem{Path: "geo.nets." + key, Msg: msg}
}

// parseNet parses a geo.nets key: a CIDR, or a bare address meaning a host
// prefix. Host bits are masked off; an IPv4-mapped IPv6 prefix of at least
// 96 bits becomes the IPv4 prefix it maps, since lookups unmap addresses.
func parseNet(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "%") {
		return netip.Prefix{}, errors.New("zoned addresses cannot be networks")
	}
	var p netip.Prefix
	if strings.Contains(s, "/") {
		q, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		p = q.Masked()
	} else {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p, nil
}

// DefaultRegion is the region of clients nothing else places (geo
// default_region); empty when unset.
func (l *Locator) DefaultRegion() string { return l.def }

// DB returns the database the Locator consults, or nil.
func (l *Locator) DB() *DB { return l.db }

// Lookup places addr in a region. Sources, first that decides wins:
//
//  1. geo.nets, longest prefix;
//  2. non-global addresses (private, loopback, link-local, documentation,
//     ...) get the default region with the range's length as the prefix;
//  3. the database: a region listing the record's country, else one listing
//     its continent;
//  4. the default region, with the length of the network the database
//     reported (a miss is a network too).
//
// IPv4-mapped IPv6 addresses are unmapped and zones ignored first. An invalid
// addr gets the default region with prefix 0. Lookup is safe for concurrent
// use and does not allocate, except when it decodes a database record that
// is not cached yet.
func (l *Locator) Lookup(addr netip.Addr) Result {
	if !addr.IsValid() {
		return Result{Region: l.def, Source: SourceDefault}
	}
	addr = addr.Unmap()
	a := addrBits(addr)
	nets, spec := l.v6, special.v6
	if addr.Is4() {
		nets, spec = l.v4, special.v4
	}
	m := nets.lookup(a)
	if m.value != noValue {
		return Result{Region: l.names[m.value], Prefix: m.scope, Source: SourceNets}
	}
	// From here on the answer must hold for a block that holds no nets
	// entry, so the scope never drops below what the nets walk found.
	scope := m.scope
	s := spec.lookup(a)
	scope = max(scope, s.scope)
	if s.value != noValue || l.db == nil {
		return Result{Region: l.def, Prefix: scope, Source: SourceDefault}
	}
	rec, bits, found := l.db.lookup(addr)
	r := Result{Region: l.def, Prefix: max(scope, bits), Source: SourceDefault}
	if !found {
		return r
	}
	r.Country, r.Continent = rec.country, rec.continent
	if k := code2(rec.country); k >= 0 && l.country[k] >= 0 {
		r.Region, r.Source = l.regions[l.country[k]], SourceMMDB
	} else if k := code2(rec.continent); k >= 0 && l.continent[k] >= 0 {
		r.Region, r.Source = l.regions[l.continent[k]], SourceMMDB
	}
	return r
}

// String describes the Locator deterministically (nets by network, regions
// by name), for golden tests and the admin API.
func (l *Locator) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "default_region %q\n", l.def)
	for _, e := range l.nets {
		fmt.Fprintf(&b, "net %s -> %q\n", e.prefix, e.region)
	}
	for ri, name := range l.regions {
		var cs, ks []string
		for k, r := range l.country {
			if int(r) == ri {
				cs = append(cs, codeNames[k])
			}
		}
		for k, r := range l.continent {
			if int(r) == ri {
				ks = append(ks, codeNames[k])
			}
		}
		fmt.Fprintf(&b, "region %q continents=%s countries=%s\n", name, strings.Join(ks, ","), strings.Join(cs, ","))
	}
	if l.db != nil {
		fmt.Fprintf(&b, "mmdb %s\n", l.db.Path())
	}
	return b.String()
}
