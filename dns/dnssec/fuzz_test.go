package dnssec

import (
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
)

// FuzzParsePublic: a .key file never panics the parser, and what it
// accepts is a zone key of the zone, of a supported algorithm.
func FuzzParsePublic(f *testing.F) {
	dir := f.TempDir()
	for _, alg := range []uint8{mdns.ECDSAP256SHA256, mdns.ED25519} {
		k, err := Generate(dir, "example.com.", alg, 257, testNow)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(k.DNSKEY.String())
		f.Add("; comment\n" + k.DNSKEY.String() + " ;{id = 1 (ksk), size = 256b}\n")
	}
	f.Add("example.com. IN DNSKEY 256 3 8 AwEAAc==")
	f.Add("$INCLUDE /etc/passwd\n")
	f.Add("example.com. IN A 192.0.2.1")
	f.Fuzz(func(t *testing.T, text string) {
		k, err := ParsePublic("example.com.", []byte(text))
		if err != nil {
			return
		}
		if !strings.EqualFold(k.Hdr.Name, "example.com.") || k.Flags&flagZone == 0 || k.Flags&flagRevoke != 0 || k.Protocol != 3 {
			t.Fatalf("accepted %v", k)
		}
		if _, err := ParseAlgorithm(AlgorithmName(k.Algorithm)); err != nil {
			t.Fatalf("accepted algorithm %d", k.Algorithm)
		}
	})
}

// FuzzParsePrivate: a .private file never panics the parser, and a key it
// accepts signs what its public half verifies.
func FuzzParsePrivate(f *testing.F) {
	dir := f.TempDir()
	keys := map[uint8]*Key{}
	for _, alg := range []uint8{mdns.ECDSAP256SHA256, mdns.ED25519} {
		k, err := Generate(dir, "example.com.", alg, 257, testNow)
		if err != nil {
			f.Fatal(err)
		}
		keys[alg] = k
		f.Add(alg, k.DNSKEY.PrivateKeyString(k.Signer))
		f.Add(alg, k.DNSKEY.PrivateKeyString(k.Signer)+"Created: 20260101000000\nInactive: 20270101000000\n")
	}
	f.Add(uint8(13), "Private-key-format: v1.3\nAlgorithm: 13\nPrivateKey: AAAA\n")
	f.Add(uint8(15), "Private-key-format: v1.2\r\nAlgorithm: 15 (ED25519)\r\nPrivateKey: ////\r\n")
	f.Fuzz(func(t *testing.T, alg uint8, text string) {
		k := keys[alg]
		if k == nil {
			k = keys[mdns.ED25519]
		}
		signer, err := ParsePrivate(k.DNSKEY, []byte(text))
		if err != nil {
			return
		}
		ks := NewKeySet("example.com.", []*Key{{DNSKEY: k.DNSKEY, Signer: signer, Tag: k.Tag}})
		set := []mdns.RR{&mdns.A{Hdr: mdns.RR_Header{Name: "example.com.", Rrtype: mdns.TypeA, Class: mdns.ClassINET, Ttl: 1}, A: []byte{192, 0, 2, 1}}}
		sigs, err := NewSigner(nil, func() time.Time { return testNow }).Sign(ks, ContentKey("example.com.", set), set)
		if err != nil {
			t.Fatalf("an accepted key does not sign: %v", err)
		}
		if err := sigs[0].(*mdns.RRSIG).Verify(k.DNSKEY, set); err != nil {
			t.Fatalf("an accepted key's signature does not verify: %v", err)
		}
	})
}
