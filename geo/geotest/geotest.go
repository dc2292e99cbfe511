package geotest

import (
	"bytes"
	"cmp"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
)

// Record is the location of one network in a test database. Empty fields
// are left out of the record.
type Record struct {
	Country           string // country.iso_code, e.g. "DE"
	Continent         string // continent.code, e.g. "EU"
	RegisteredCountry string // registered_country.iso_code
	City              string // city.names.en; makes the record City-like
}

// languages are the locales of GeoIP2 names maps.
var languages = []string{"de", "en", "es", "fr", "ja", "pt-BR", "ru", "zh-CN"}

// MMDB builds a database mapping each network to its record and returns
// its bytes. Keys are CIDRs ("81.2.69.0/24", "2a02:ec0::/32") or bare
// addresses (host networks). ipVersion is 6 (IPv4 and IPv6, IPv4 aliased
// into ::ffff:0:0/96 like MaxMind's databases) or 4 (IPv4 only). More
// specific networks are inserted last, so they win over the networks that
// contain them. It fails t on any error.
func MMDB(t testing.TB, ipVersion int, nets map[string]Record) []byte {
	t.Helper()
	dbType := "GeoIP2-Country"
	for _, r := range nets {
		if r.City != "" {
			dbType = "GeoIP2-City"
		}
	}
	w, err := mmdbwriter.New(mmdbwriter.Options{
		DatabaseType:            dbType,
		Description:             map[string]string{"en": "Meridian test database"},
		Languages:               languages,
		IPVersion:               ipVersion,
		RecordSize:              28,
		IncludeReservedNetworks: true,
	})
	if err != nil {
		t.Fatalf("geotest: new writer: %v", err)
	}
	type item struct {
		key    string
		prefix netip.Prefix
	}
	items := make([]item, 0, len(nets))
	for k := range nets {
		p, err := parsePrefix(k)
		if err != nil {
			t.Fatalf("geotest: network %q: %v", k, err)
		}
		items = append(items, item{k, p})
	}
	slices.SortFunc(items, func(a, b item) int {
		if c := cmp.Compare(a.prefix.Bits(), b.prefix.Bits()); c != 0 {
			return c
		}
		return a.prefix.Addr().Compare(b.prefix.Addr())
	})
	for _, it := range items {
		p := it.prefix
		n := &net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
		if err := w.Insert(n, nets[it.key].value()); err != nil {
			t.Fatalf("geotest: insert %s: %v", it.key, err)
		}
	}
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		t.Fatalf("geotest: write database: %v", err)
	}
	return buf.Bytes()
}

// WriteMMDB writes an IPv6 (dual-stack) database built by MMDB to path,
// in place (truncate and write), creating missing parent directories.
func WriteMMDB(t testing.TB, path string, nets map[string]Record) {
	t.Helper()
	data := MMDB(t, 6, nets)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatalf("geotest: %v", err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatalf("geotest: %v", err)
	}
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// value renders r the way GeoIP2 databases lay out their records.
func (r Record) value() mmdbtype.Map {
	m := mmdbtype.Map{}
	if r.Continent != "" {
		m["continent"] = mmdbtype.Map{
			"code":       mmdbtype.String(r.Continent),
			"geoname_id": mmdbtype.Uint32(geonameID(r.Continent)),
			"names":      names(r.Continent),
		}
	}
	if r.Country != "" {
		m["country"] = country(r.Country)
	}
	if r.RegisteredCountry != "" {
		m["registered_country"] = country(r.RegisteredCountry)
	}
	if r.City != "" {
		m["city"] = mmdbtype.Map{
			"geoname_id": mmdbtype.Uint32(geonameID(r.City)),
			"names":      names(r.City),
		}
		m["location"] = mmdbtype.Map{
			"accuracy_radius": mmdbtype.Uint16(100),
			"latitude":        mmdbtype.Float64(51.5142),
			"longitude":       mmdbtype.Float64(-0.0931),
			"time_zone":       mmdbtype.String("Europe/London"),
		}
		m["postal"] = mmdbtype.Map{"code": mmdbtype.String("EC2V")}
		m["subdivisions"] = mmdbtype.Slice{mmdbtype.Map{
			"geoname_id": mmdbtype.Uint32(geonameID(r.City + "-sub")),
			"iso_code":   mmdbtype.String("ENG"),
			"names":      names("England"),
		}}
	}
	return m
}

func country(code string) mmdbtype.Map {
	return mmdbtype.Map{
		"geoname_id": mmdbtype.Uint32(geonameID(code)),
		"iso_code":   mmdbtype.String(code),
		"names":      names(code),
	}
}

func names(s string) mmdbtype.Map {
	m := mmdbtype.Map{}
	for _, l := range languages {
		m[mmdbtype.String(l)] = mmdbtype.String(s + " (" + l + ")")
	}
	return m
}

// geonameID derives a stable fake GeoNames id from a name.
func geonameID(s string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h = (h ^ uint32(s[i])) * 16777619
	}
	return h % 10000000
}
