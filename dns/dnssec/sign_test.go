package dnssec

import (
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
)

func testKeys(t testing.TB, alg uint8, flags ...uint16) *KeySet {
	t.Helper()
	dir := t.TempDir()
	var keys []*Key
	for _, f := range flags {
		k, err := Generate(dir, "example.com.", alg, f, testNow)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	return NewKeySet("example.com.", keys)
}

func rrs(t testing.TB, ss ...string) []mdns.RR {
	out := make([]mdns.RR, len(ss))
	for i, s := range ss {
		out[i] = mustRR(t, s)
	}
	return out
}

// TestSignVerifies: signatures verify with the DNSKEY, for both
// algorithms; the inception is backdated, the expiration jittered within
// its bounds; a wildcard's RRSIG has the wildcard's label count.
func TestSignVerifies(t *testing.T) {
	for _, alg := range []uint8{mdns.ECDSAP256SHA256, mdns.ED25519} {
		t.Run(AlgorithmName(alg), func(t *testing.T) {
			ks := testKeys(t, alg, 257)
			s := NewSigner(nil, func() time.Time { return testNow })
			for _, set := range [][]mdns.RR{
				rrs(t, "www.example.com. 30 IN A 192.0.2.1", "www.example.com. 30 IN A 192.0.2.2"),
				rrs(t, "*.app.example.com. 300 IN A 192.0.2.80"),
				rrs(t, "example.com. 300 IN MX 10 MX.Example.com."),
			} {
				sigs, err := s.Sign(ks, ContentKey(set[0].Header().Name, set), set)
				if err != nil || len(sigs) != 1 {
					t.Fatalf("Sign: %v %v", sigs, err)
				}
				sig := sigs[0].(*mdns.RRSIG)
				if err := sig.Verify(ks.Keys[0].DNSKEY, set); err != nil {
					t.Errorf("%v: %v", sig, err)
				}
				inc, exp := time.Unix(int64(sig.Inception), 0), time.Unix(int64(sig.Expiration), 0)
				if !inc.Equal(testNow.Add(-Backdate)) || exp.Before(testNow.Add(Validity)) || !exp.Before(testNow.Add(Validity+Jitter)) {
					t.Errorf("validity %v to %v: want from now-%v, to within [now+%v, now+%v)", inc, exp, Backdate, Validity, Validity+Jitter)
				}
				if sig.Hdr.Ttl != set[0].Header().Ttl || sig.OrigTtl != set[0].Header().Ttl || sig.SignerName != "example.com." {
					t.Errorf("RRSIG %v: TTLs or signer", sig)
				}
				wantLabels := uint8(mdns.CountLabel(set[0].Header().Name))
				if set[0].Header().Name[0] == '*' {
					wantLabels--
				}
				if sig.Labels != wantLabels {
					t.Errorf("labels %d, want %d", sig.Labels, wantLabels)
				}
			}
		})
	}
}

// TestSignKSKZSK: with a KSK and a ZSK, the DNSKEY RRset is signed by the
// KSK and everything else by the ZSK; with two ZSKs (a rollover), by both.
func TestSignKSKZSK(t *testing.T) {
	ks := testKeys(t, mdns.ECDSAP256SHA256, 257, 256, 256)
	s := NewSigner(nil, func() time.Time { return testNow })
	dnskeys := ks.DNSKEYs(3600)
	sigs, err := s.Sign(ks, ContentKey("example.com.", dnskeys), dnskeys)
	if err != nil || len(sigs) != 1 || sigs[0].(*mdns.RRSIG).KeyTag != ks.SignersFor(mdns.TypeDNSKEY)[0].Tag {
		t.Fatalf("DNSKEY signed by %v (%v): want the KSK alone", sigs, err)
	}
	a := rrs(t, "www.example.com. 30 IN A 192.0.2.1")
	sigs, err = s.Sign(ks, ContentKey("www.example.com.", a), a)
	if err != nil || len(sigs) != 2 {
		t.Fatalf("A signed by %v (%v): want both ZSKs", sigs, err)
	}
	for _, sig := range sigs {
		if sig.(*mdns.RRSIG).KeyTag == ks.SignersFor(mdns.TypeDNSKEY)[0].Tag {
			t.Error("the KSK signed an A RRset")
		}
	}
}

// TestSignCache: a signature is made once per content and key set, found
// again whatever order the records come in, and made again after Refresh
// or for another key set.
func TestSignCache(t *testing.T) {
	ks := testKeys(t, mdns.ED25519, 257)
	now := testNow
	c := NewCache(16)
	s := NewSigner(c, func() time.Time { return now })
	set := rrs(t, "www.example.com. 30 IN A 192.0.2.1", "www.example.com. 30 IN A 192.0.2.2")
	first, _ := s.Sign(ks, ContentKey("www.example.com.", set), set)
	rev := []mdns.RR{set[1], set[0]}
	again, _ := s.Sign(ks, ContentKey("www.example.com.", rev), nil) // nil: must not be read on a hit
	if &first[0] != &again[0] {
		t.Error("the same RRset in another order was signed again")
	}
	if hits, misses := c.Stats(); hits != 1 || misses != 1 {
		t.Errorf("stats %d hits %d misses, want 1 and 1", hits, misses)
	}
	other := testKeys(t, mdns.ED25519, 257)
	if o, _ := s.Sign(other, ContentKey("www.example.com.", set), set); o[0].(*mdns.RRSIG).KeyTag != other.Keys[0].Tag {
		t.Error("another key set got the first one's signature")
	}
	now = now.Add(Refresh)
	if later, _ := s.Sign(ks, ContentKey("www.example.com.", set), set); &later[0] == &first[0] {
		t.Error("a signature was served after Refresh")
	}
	ttl := rrs(t, "www.example.com. 10 IN A 192.0.2.1", "www.example.com. 10 IN A 192.0.2.2")
	if string(ContentKey("www.example.com.", ttl)) == string(ContentKey("www.example.com.", set)) {
		t.Error("another TTL has the same content key")
	}
}

func TestAddressKeyIsContentKey(t *testing.T) {
	set := rrs(t, "www.example.com. 30 IN A 192.0.2.2", "www.example.com. 30 IN A 192.0.2.1")
	addrs := []netip.Addr{netip.MustParseAddr("192.0.2.2"), netip.MustParseAddr("192.0.2.1")}
	if got, want := AppendAddressKey(nil, "WWW.example.com.", mdns.TypeA, 30, addrs), ContentKey("www.example.com.", set); string(got) != string(want) {
		t.Errorf("address key %x, content key %x", got, want)
	}
	set6 := rrs(t, "www.example.com. 30 IN AAAA 2001:db8::1")
	if got, want := AppendAddressKey(nil, "www.example.com.", mdns.TypeAAAA, 30, []netip.Addr{netip.MustParseAddr("2001:db8::1")}), ContentKey("www.example.com.", set6); string(got) != string(want) {
		t.Errorf("AAAA: address key %x, content key %x", got, want)
	}
}

// TestCacheBounded: the cache never holds more than its size (rounded up
// to whole shards), under concurrent use.
func TestCacheBounded(t *testing.T) {
	c := NewCache(64)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				key := []byte{byte(g), byte(i), byte(i >> 8)}
				c.put("id", key, nil, testNow.Add(time.Hour))
				c.get("id", key, testNow)
			}
		}()
	}
	wg.Wait()
	if n := c.Len(); n > 64 || n < 32 {
		t.Errorf("%d entries, want at most 64 (and most of it used)", n)
	}
	if NewCache(0) != nil {
		t.Error("size 0 is no cache")
	}
	var none *Cache
	if none.Len() != 0 || none.lookup("id", nil, testNow) != nil {
		t.Error("a nil cache holds something")
	}
	none.store("id", nil, nil, testNow)
}

func TestContentKeyDropsRepeats(t *testing.T) {
	a := ContentKey("x.example.com.", rrs(t, "x.example.com. 1 IN TXT a", "x.example.com. 1 IN TXT b"))
	b := ContentKey("x.example.com.", rrs(t, "x.example.com. 1 IN TXT b", "x.example.com. 1 IN TXT a", "x.example.com. 1 IN TXT a"))
	if !slices.Equal(a, b) {
		t.Error("order or a repeat changed the key")
	}
}

func BenchmarkSign(b *testing.B) {
	for _, alg := range []uint8{mdns.ECDSAP256SHA256, mdns.ED25519} {
		b.Run(AlgorithmName(alg), func(b *testing.B) {
			ks := testKeys(b, alg, 257)
			s := NewSigner(nil, nil)
			set := rrs(b, "www.example.com. 30 IN A 192.0.2.1", "www.example.com. 30 IN A 192.0.2.2")
			key := ContentKey("www.example.com.", set)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.Sign(ks, key, set); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkSignCached(b *testing.B) {
	ks := testKeys(b, mdns.ECDSAP256SHA256, 257)
	s := NewSigner(NewCache(DefaultCacheSize), nil)
	addrs := []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")}
	set := rrs(b, "www.example.com. 30 IN A 192.0.2.1", "www.example.com. 30 IN A 192.0.2.2")
	buf := make([]byte, 0, 64)
	b.ReportAllocs()
	for b.Loop() {
		key := AppendAddressKey(buf[:0], "www.example.com.", mdns.TypeA, 30, addrs)
		if _, err := s.Sign(ks, key, set); err != nil {
			b.Fatal(err)
		}
	}
}
