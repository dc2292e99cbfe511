package geo

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"path/filepath"
	"testing"

	"github.com/meridian-lb/meridian/config"
	"github.com/meridian-lb/meridian/geo/geotest"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// benchNets returns n distinct global /24s (v4) and /48s (v6) spread over
// the address space, with regions cycling through five names.
func benchNets(n int) map[string]string {
	r := rand.New(rand.NewPCG(1, 2))
	nets := map[string]string{}
	for len(nets) < n {
		region := fmt.Sprintf("r%d", len(nets)%5)
		if len(nets)%4 == 3 {
			nets[fmt.Sprintf("2a%02x:%x:%x::/48", r.IntN(256), r.IntN(65536), r.IntN(65536))] = region
		} else {
			nets[fmt.Sprintf("%d.%d.%d.0/24", 1+r.IntN(223), r.IntN(256), r.IntN(256))] = region
		}
	}
	return nets
}

// benchAddrs picks addresses inside the given networks.
func benchAddrs(nets []string, n int) []netip.Addr {
	r := rand.New(rand.NewPCG(3, 4))
	addrs := make([]netip.Addr, n)
	for i := range addrs {
		p := netip.MustParsePrefix(nets[r.IntN(len(nets))])
		b := p.Addr().AsSlice()
		b[len(b)-1] = byte(r.IntN(256))
		a, _ := netip.AddrFromSlice(b)
		addrs[i] = a
	}
	return addrs
}

func BenchmarkLookupNets(b *testing.B) {
	nets := benchNets(5000)
	l, err := NewLocator(config.Geo{Nets: nets, DefaultRegion: "r0"}, nil)
	if err != nil {
		b.Fatal(err)
	}
	keys := make([]string, 0, len(nets))
	for k := range nets {
		keys = append(keys, k)
	}
	addrs := benchAddrs(keys, 4096)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if l.Lookup(addrs[i&4095]).Source != SourceNets {
			b.Fatal("not from nets")
		}
	}
}

func BenchmarkLookupMMDB(b *testing.B) {
	countries := []string{"DE", "FR", "GB", "US", "JP", "BR", "ZA", "AU", "IN", "CA"}
	continents := []string{"EU", "EU", "EU", "NA", "AS", "SA", "AF", "OC", "AS", "NA"}
	r := rand.New(rand.NewPCG(5, 6))
	recs := map[string]geotest.Record{}
	var keys []string
	for len(recs) < 2000 {
		k := fmt.Sprintf("%d.%d.%d.0/24", 1+r.IntN(9), r.IntN(256), r.IntN(256))
		if _, ok := recs[k]; ok {
			continue
		}
		c := r.IntN(len(countries))
		recs[k] = geotest.Record{Country: countries[c], Continent: continents[c], City: fmt.Sprintf("City%d", len(recs))}
		keys = append(keys, k)
	}
	path := filepath.Join(b.TempDir(), "City.mmdb")
	geotest.WriteMMDB(b, path, recs)
	db, err := OpenDB(path, zap.NewNop(), prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	l, err := NewLocator(config.Geo{
		Regions: map[string]config.Region{
			"eu": {Continents: []string{"EU", "AF"}},
			"us": {Continents: []string{"NA", "SA"}, Countries: []string{"JP"}},
			"ap": {Continents: []string{"AS", "OC"}},
		},
		DefaultRegion: "eu",
	}, db)
	if err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		addrs []netip.Addr
	}{
		{"hot", benchAddrs(keys[:50], 4096)},
		{"spread", benchAddrs(keys, 4096)},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if l.Lookup(tc.addrs[i&4095]).Source != SourceMMDB {
					b.Fatal("not from mmdb")
				}
			}
		})
	}
	// Reference: maxminddb decoding without the record cache.
	b.Run("uncached-decode", func(b *testing.B) {
		st := db.state.Load()
		addrs := benchAddrs(keys, 4096)
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			res := st.reader.Lookup(addrs[i&4095])
			var m mmdbRecord
			if err := res.Decode(&m); err != nil || m.Country.ISOCode == "" {
				b.Fatal(err)
			}
		}
	})
}
