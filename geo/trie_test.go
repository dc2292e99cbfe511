package geo

import (
	"math/rand/v2"
	"net/netip"
	"testing"
)

// mask keeps the first n bits of x.
func (x u128) mask(n int) u128 {
	switch {
	case n <= 0:
		return u128{}
	case n < 64:
		return u128{hi: x.hi &^ (^uint64(0) >> n)}
	case n < 128:
		return u128{hi: x.hi, lo: x.lo &^ (^uint64(0) >> (n - 64))}
	default:
		return x
	}
}

// bruteMatch is the reference for trie.lookup: the longest prefix containing
// a, by scanning every prefix.
func bruteMatch(prefixes []netip.Prefix, values []int32, a netip.Addr) (int32, int) {
	best, bestLen := int32(noValue), -1
	for i, p := range prefixes {
		if p.Contains(a) && p.Bits() > bestLen {
			best, bestLen = values[i], p.Bits()
		}
	}
	return best, bestLen
}

// checkScope verifies the ECS contract of a trie answer for a: every address
// in a/scope gets the same answer (no prefix longer than scope lies inside
// the block), and the scope is no longer than needed (it equals the matched
// length, or a/(scope-1) holds a prefix at least scope bits long).
func checkScope(t *testing.T, prefixes []netip.Prefix, a netip.Addr, matchLen int, m match) {
	t.Helper()
	block := netip.PrefixFrom(a, m.scope).Masked()
	if m.scope < matchLen {
		t.Fatalf("%s: scope %d shorter than the matched /%d", a, m.scope, matchLen)
	}
	for _, p := range prefixes {
		if p.Bits() > m.scope && block.Contains(p.Addr()) {
			t.Fatalf("%s: scope /%d spans the more specific %s", a, m.scope, p)
		}
	}
	if m.scope == max(matchLen, 0) {
		return
	}
	parent := netip.PrefixFrom(a, m.scope-1).Masked()
	for _, p := range prefixes {
		if p.Bits() >= m.scope && parent.Contains(p.Addr()) {
			return
		}
	}
	t.Fatalf("%s: scope /%d longer than needed (match /%d)", a, m.scope, matchLen)
}

func randAddr(r *rand.Rand, v4 bool) netip.Addr {
	if v4 {
		var b [4]byte
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return netip.AddrFrom4(b)
	}
	var b [16]byte
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return netip.AddrFrom16(b)
}

// near returns an address that shares a random number of leading bits with
// one of the prefixes, so that queries exercise the trie's branches rather
// than miss at the root.
func near(r *rand.Rand, prefixes []netip.Prefix, v4 bool) netip.Addr {
	a := randAddr(r, v4)
	if len(prefixes) == 0 || r.IntN(4) == 0 {
		return a
	}
	p := prefixes[r.IntN(len(prefixes))]
	keep := r.IntN(p.Bits() + 1)
	pb, ab := addrBits(p.Addr()), addrBits(a)
	x := pb.mask(keep)
	// Take the remaining bits from the random address.
	for i := keep; i < a.BitLen(); i++ {
		x = x.setBit(i, ab.bit(i))
	}
	return fromBits(x, v4)
}

func fromBits(x u128, v4 bool) netip.Addr {
	if v4 {
		return netip.AddrFrom4([4]byte{byte(x.hi >> 56), byte(x.hi >> 48), byte(x.hi >> 40), byte(x.hi >> 32)})
	}
	var b [16]byte
	for i := range 8 {
		b[i] = byte(x.hi >> (56 - 8*i))
		b[8+i] = byte(x.lo >> (56 - 8*i))
	}
	return netip.AddrFrom16(b)
}

func TestTrieAgainstBruteForce(t *testing.T) {
	for _, tc := range []struct {
		name  string
		v4    bool
		count int
		maxLn int
	}{
		{"v4 empty", true, 0, 32},
		{"v4 one", true, 1, 32},
		{"v4 few short", true, 8, 8},
		{"v4 many", true, 300, 32},
		{"v6 few", false, 10, 64},
		{"v6 many", false, 300, 128},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(uint64(tc.count), uint64(tc.maxLn)))
			bitLen := 128
			if tc.v4 {
				bitLen = 32
			}
			seen := map[netip.Prefix]bool{}
			var prefixes []netip.Prefix
			var values []int32
			for len(prefixes) < tc.count {
				p := netip.PrefixFrom(near(r, prefixes, tc.v4), r.IntN(tc.maxLn+1)).Masked()
				if seen[p] {
					continue
				}
				seen[p] = true
				prefixes = append(prefixes, p)
				values = append(values, int32(r.IntN(5)))
			}
			tr := buildTrie(bitLen, prefixes, values)
			for range 5000 {
				a := near(r, prefixes, tc.v4)
				want, wantLen := bruteMatch(prefixes, values, a)
				m := tr.lookup(addrBits(a))
				if m.value != want {
					t.Fatalf("%s: value %d, want %d (/%d)", a, m.value, want, wantLen)
				}
				checkScope(t, prefixes, a, wantLen, m)
			}
		})
	}
}

func TestTrieScopes(t *testing.T) {
	prefixes := []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("10.1.0.0/16"),
		netip.MustParsePrefix("10.1.2.3/32"),
		netip.MustParsePrefix("192.168.0.0/16"),
	}
	tr := buildTrie(32, prefixes, []int32{0, 1, 2, 3})
	for _, tc := range []struct {
		addr  string
		value int32
		scope int
	}{
		{"10.2.3.4", 0, 15},       // in the /8, next to 10.0.0.0/14 ⊃ 10.1/16: split at bit 14
		{"10.128.0.1", 0, 9},      // the other half of the /8 has no more specifics
		{"10.1.9.9", 1, 21},       // in the /16, 10.1.2.3 diverges at bit 20
		{"10.1.2.3", 2, 32},       // the host entry
		{"192.168.7.7", 3, 16},    // a leaf entry: its own length
		{"11.0.0.1", noValue, 8},  // 11/8 is empty, 10/7 holds 10/8
		{"200.0.0.1", noValue, 5}, // 200 and 192 share 4 bits
		{"64.0.0.1", noValue, 2},
	} {
		t.Run(tc.addr, func(t *testing.T) {
			m := tr.lookup(addrBits(netip.MustParseAddr(tc.addr)))
			if m.value != tc.value || m.scope != tc.scope {
				t.Errorf("lookup(%s) = value %d scope %d, want value %d scope %d", tc.addr, m.value, m.scope, tc.value, tc.scope)
			}
		})
	}
}
