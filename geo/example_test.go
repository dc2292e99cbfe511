package geo_test

import (
	"fmt"
	"net/netip"

	"github.com/meridian-lb/meridian/config"
	"github.com/meridian-lb/meridian/geo"
)

func ExampleLocator_Lookup() {
	l, err := geo.NewLocator(config.Geo{
		Nets: map[string]string{
			"198.51.100.0/24": "us",
			"10.0.0.0/8":      "eu",
			"10.20.0.0/16":    "us",
		},
		Regions:       map[string]config.Region{"us": {Continents: []string{"NA"}}},
		DefaultRegion: "eu",
	}, nil) // no database
	if err != nil {
		panic(err)
	}
	for _, s := range []string{"198.51.100.7", "10.20.1.1", "10.99.0.1", "::ffff:10.20.1.1", "192.168.1.1"} {
		a := netip.MustParseAddr(s)
		r := l.Lookup(a)
		fmt.Printf("%-16s %s /%d (ECS scope %d) from %s\n", s, r.Region, r.Prefix, r.PrefixFor(a), r.Source)
	}

	_, err = geo.NewLocator(config.Geo{Nets: map[string]string{"10.0.0.0/33": "eu"}}, nil)
	fmt.Println(err)
	// Output:
	// 198.51.100.7     us /24 (ECS scope 24) from nets
	// 10.20.1.1        us /16 (ECS scope 16) from nets
	// 10.99.0.1        eu /10 (ECS scope 10) from nets
	// ::ffff:10.20.1.1 us /16 (ECS scope 112) from nets
	// 192.168.1.1      eu /16 (ECS scope 16) from default
	// geo.nets.10.0.0.0/33: netip.ParsePrefix("10.0.0.0/33"): prefix length out of range
}
