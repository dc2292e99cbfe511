package geotest

import (
	"net/netip"
	"path/filepath"
	"testing"

	maxminddb "github.com/oschwald/maxminddb-golang/v2"
)

func TestWriteMMDB(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "City.mmdb")
	WriteMMDB(t, path, map[string]Record{
		"81.2.0.0/16":   {Country: "FR", Continent: "EU"},
		"81.2.69.0/24":  {Country: "GB", Continent: "EU", City: "London"},
		"192.0.2.1":     {RegisteredCountry: "JP", Continent: "AS"},
		"2a02:ec0::/32": {Country: "DE", Continent: "EU"},
	})
	r, err := maxminddb.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := r.Verify(); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if r.Metadata.DatabaseType != "GeoIP2-City" || r.Metadata.IPVersion != 6 {
		t.Errorf("metadata %+v", r.Metadata)
	}
	type rec struct {
		Country struct {
			ISOCode string            `maxminddb:"iso_code"`
			Names   map[string]string `maxminddb:"names"`
		} `maxminddb:"country"`
		Registered struct {
			ISOCode string `maxminddb:"iso_code"`
		} `maxminddb:"registered_country"`
		Continent struct {
			Code string `maxminddb:"code"`
		} `maxminddb:"continent"`
		City struct {
			Names map[string]string `maxminddb:"names"`
		} `maxminddb:"city"`
	}
	for _, tc := range []struct {
		addr                          string
		bits                          int
		country, reg, continent, city string
	}{
		{"81.2.69.1", 24, "GB", "", "EU", "London (en)"},
		{"81.2.1.1", 18, "FR", "", "EU", ""}, // the /16 minus the /24, split
		{"::ffff:81.2.1.1", 114, "FR", "", "EU", ""},
		{"192.0.2.1", 32, "", "JP", "AS", ""},
		{"2a02:ec0::1", 32, "DE", "", "EU", ""},
	} {
		t.Run(tc.addr, func(t *testing.T) {
			res := r.Lookup(netip.MustParseAddr(tc.addr))
			var got rec
			if err := res.Decode(&got); err != nil {
				t.Fatal(err)
			}
			if !res.Found() || res.Prefix().Bits() != tc.bits {
				t.Errorf("found %v prefix %v, want /%d", res.Found(), res.Prefix(), tc.bits)
			}
			if got.Country.ISOCode != tc.country || got.Registered.ISOCode != tc.reg ||
				got.Continent.Code != tc.continent || got.City.Names["en"] != tc.city {
				t.Errorf("record %+v", got)
			}
			if tc.country != "" && got.Country.Names["de"] == "" {
				t.Errorf("country names missing: %+v", got.Country.Names)
			}
		})
	}

	v4 := MMDB(t, 4, map[string]Record{"1.2.3.0/24": {Country: "AU", Continent: "OC"}})
	r4, err := maxminddb.OpenBytes(v4)
	if err != nil {
		t.Fatal(err)
	}
	if r4.Metadata.IPVersion != 4 || r4.Metadata.DatabaseType != "GeoIP2-Country" {
		t.Errorf("v4 metadata %+v", r4.Metadata)
	}
}
