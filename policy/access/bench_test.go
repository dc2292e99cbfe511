package access

import (
	"math/rand/v2"
	"net/netip"
	"testing"
)

// benchClients is a fixed mix of v4, v6 and mapped clients, most of them
// in no list entry (the common case for a block list).
func benchClients() []netip.Addr {
	r := rand.New(rand.NewPCG(1, 2))
	out := make([]netip.Addr, 0, 1024)
	for i := range 1024 {
		switch i % 4 {
		case 0, 1:
			out = append(out, netip.AddrFrom4([4]byte{byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32())}))
		case 2:
			var b [16]byte
			b[0], b[1] = 0x20, 0x01
			for j := 2; j < 16; j++ {
				b[j] = byte(r.Uint32())
			}
			out = append(out, netip.AddrFrom16(b))
		case 3:
			out = append(out, netip.AddrFrom16(netip.AddrFrom4([4]byte{10, byte(r.Uint32()), byte(r.Uint32()), 1}).As16()))
		}
	}
	return out
}

// blockList is n distinct random prefixes, /12 to /24 for IPv4 and /24 to
// /48 for IPv6 (9 in 10 IPv4), the shape of a country block list.
func blockList(n int) []string {
	r := rand.New(rand.NewPCG(3, 4))
	seen := map[netip.Prefix]bool{}
	out := make([]string, 0, n)
	for len(out) < n {
		var p netip.Prefix
		if r.IntN(10) < 9 {
			a := netip.AddrFrom4([4]byte{byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32())})
			p, _ = a.Prefix(12 + r.IntN(13))
		} else {
			var b [16]byte
			b[0], b[1] = 0x20, 0x01
			for j := 2; j < 6; j++ {
				b[j] = byte(r.Uint32())
			}
			p, _ = netip.AddrFrom16(b).Prefix(24 + r.IntN(25))
		}
		if !seen[p] {
			seen[p] = true
			out = append(out, p.String())
		}
	}
	return out
}

func benchAllowed(b *testing.B, allow, deny []string) {
	l, err := Compile(allow, deny)
	if err != nil {
		b.Fatal(err)
	}
	clients := benchClients()
	n := 0
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if l.Allowed(clients[i&1023]) {
			n++
		}
		i++
	}
	if n == 0 || n == i {
		b.Fatalf("%d of %d allowed: the benchmark measures one branch only", n, i)
	}
}

func BenchmarkAllowed3(b *testing.B) {
	benchAllowed(b, []string{"10.0.0.0/8", "2001::/16", "192.168.0.0/16"}, nil)
}

func BenchmarkAllowed3Deny(b *testing.B) {
	benchAllowed(b, nil, []string{"10.0.0.0/8", "2001::/16", "192.168.0.0/16"})
}

func BenchmarkAllowed10000Deny(b *testing.B) {
	benchAllowed(b, nil, blockList(10000))
}

func BenchmarkAllowed10000AllowAndDeny(b *testing.B) {
	benchAllowed(b, blockList(10000), []string{"10.0.0.0/8"})
}

func BenchmarkCompile10000(b *testing.B) {
	list := blockList(10000)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Compile(nil, list); err != nil {
			b.Fatal(err)
		}
	}
}
