package dnssec

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
)

var testNow = time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)

func writeKey(t *testing.T, dir, zone string, alg uint8, flags uint16) *Key {
	t.Helper()
	k, err := Generate(dir, zone, alg, flags, testNow)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestGenerateThenLoad(t *testing.T) {
	for _, alg := range []uint8{mdns.ECDSAP256SHA256, mdns.ED25519} {
		t.Run(AlgorithmName(alg), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "keys") // missing: Load creates it
			ks, probs := Load(dir, "Example.COM", alg, true, testNow)
			if len(probs) > 0 || ks == nil || len(ks.Keys) != 1 {
				t.Fatalf("Load: %v %v", ks, probs)
			}
			k := ks.Keys[0]
			if !k.SEP() || ks.Split() || k.DNSKEY.Algorithm != alg {
				t.Errorf("generated %v: want a combined signing key (257) of algorithm %d", k.DNSKEY, alg)
			}
			base := filepath.Join(dir, baseName("example.com.", alg, k.Tag))
			for ext, mode := range map[string]os.FileMode{".key": 0o644, ".private": 0o600} {
				fi, err := os.Stat(base + ext)
				if err != nil || fi.Mode().Perm() != mode {
					t.Errorf("%s%s: %v, mode %v, want %v", base, ext, err, fi.Mode().Perm(), mode)
				}
			}
			if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
				t.Errorf("key_dir mode %v (%v), want 0700", fi.Mode().Perm(), err)
			}
			entries, _ := os.ReadDir(dir)
			if len(entries) != 2 {
				t.Errorf("key_dir holds %d files, want the two of the key (no temporary left)", len(entries))
			}
			again, probs := Load(dir, "example.com.", alg, true, testNow)
			if len(probs) > 0 || len(again.Keys) != 1 || again.Keys[0].Tag != k.Tag || again.Keys[0].DNSKEY.PublicKey != k.DNSKEY.PublicKey {
				t.Fatalf("second Load generated again or differs: %v %v", again, probs)
			}
			if again.id != ks.id {
				t.Error("the same keys have another id")
			}
		})
	}
}

func TestLoadWithoutGenerateWritesNothing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	ks, probs := Load(dir, "example.com.", mdns.ED25519, false, testNow)
	if len(probs) > 0 || ks == nil || len(ks.Keys) != 0 {
		t.Fatalf("Load: %v %v", ks, probs)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("key_dir was created: %v", err)
	}
}

// TestLoadForeignFormats reads key files laid out as ldns-keygen and
// BIND's dnssec-keygen write them, and ignores files of other zones and
// other files (BIND's .state files).
func TestLoadForeignFormats(t *testing.T) {
	src := t.TempDir()
	k := writeKey(t, src, "example.com.", mdns.ECDSAP256SHA256, 257)
	priv, err := os.ReadFile(filepath.Join(src, k.File+".private"))
	if err != nil {
		t.Fatal(err)
	}
	privKey := ""
	for _, line := range strings.Split(string(priv), "\n") {
		if strings.HasPrefix(line, "PrivateKey:") {
			privKey = strings.TrimSpace(strings.TrimPrefix(line, "PrivateKey:"))
		}
	}
	layouts := map[string][2]string{
		"ldns": {
			k.DNSKEY.Hdr.Name + "\tIN\tDNSKEY\t257 3 13 " + k.DNSKEY.PublicKey + " ;{id = 1 (ksk), size = 256b}\n",
			"Private-key-format: v1.2\nAlgorithm: 13 (ECDSAP256SHA256)\nPrivateKey: " + privKey + "\n",
		},
		"bind": {
			"; This is a key-signing key, keyid 1, for example.com.\n; Created: 20261206120000 (Sun Dec  6 12:00:00 2026)\n; Publish: 20261206120000 (Sun Dec  6 12:00:00 2026)\n; Activate: 20261206120000 (Sun Dec  6 12:00:00 2026)\n" +
				"example.com. 3600 IN DNSKEY 257 3 13 " + k.DNSKEY.PublicKey + "\n",
			"Private-key-format: v1.3\nAlgorithm: 13 (ECDSAP256SHA256)\nPrivateKey: " + privKey + "\nCreated: 20261206120000\nPublish: 20261206120000\nActivate: 20261206120000\nSyncPublish: 20261207130000\n",
		},
	}
	for name, files := range layouts {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			write(t, dir, k.File+".key", files[0])
			write(t, dir, k.File+".private", files[1])
			write(t, dir, k.File+".state", "Algorithm: 13\n")
			write(t, dir, "Kexample.org.+013+00001.key", "not even a key")
			write(t, dir, "README", "keys for example.com")
			ks, probs := Load(dir, "example.com.", mdns.ECDSAP256SHA256, true, testNow)
			if len(probs) > 0 || len(ks.Keys) != 1 || ks.Keys[0].Tag != k.Tag {
				t.Fatalf("Load: %v %v", ks, probs)
			}
			sig := signWith(t, ks, "www.example.com. 300 IN A 192.0.2.1")
			if err := sig.Verify(k.DNSKEY, []mdns.RR{mustRR(t, "www.example.com. 300 IN A 192.0.2.1")}); err != nil {
				t.Errorf("a signature by the loaded key does not verify: %v", err)
			}
		})
	}
}

func write(t *testing.T, dir, name, text string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

func mustRR(t testing.TB, s string) mdns.RR {
	t.Helper()
	rr, err := mdns.NewRR(s)
	if err != nil {
		t.Fatal(err)
	}
	return rr
}

func signWith(t testing.TB, ks *KeySet, rrs ...string) *mdns.RRSIG {
	t.Helper()
	var set []mdns.RR
	for _, s := range rrs {
		set = append(set, mustRR(t, s))
	}
	sigs, err := NewSigner(nil, func() time.Time { return testNow }).Sign(ks, ContentKey(set[0].Header().Name, set), set)
	if err != nil || len(sigs) == 0 {
		t.Fatalf("Sign: %v %v", sigs, err)
	}
	return sigs[0].(*mdns.RRSIG)
}

// TestLoadProblems: each broken key directory is reported, naming the file
// and what is wrong with it, and nothing is generated in its place.
func TestLoadProblems(t *testing.T) {
	good := writeKey(t, t.TempDir(), "example.com.", mdns.ECDSAP256SHA256, 257)
	other := writeKey(t, t.TempDir(), "example.com.", mdns.ECDSAP256SHA256, 257)
	ed := writeKey(t, t.TempDir(), "example.com.", mdns.ED25519, 257)
	pub := func(k *Key) string { return k.DNSKEY.String() + "\n" }
	priv := func(k *Key) string { return k.DNSKEY.PrivateKeyString(k.Signer) }
	base := good.File
	tests := []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"a .key alone", map[string]string{base + ".key": pub(good)},
			base + ".key has no " + base + ".private beside it: a key Meridian cannot sign with is not published"},
		{"a .private alone", map[string]string{base + ".private": priv(good)},
			base + ".private has no " + base + ".key beside it"},
		{"halves of two keys", map[string]string{base + ".key": pub(good), base + ".private": priv(other)},
			base + ".private: the private key does not match the .key file's public key"},
		{"not a record", map[string]string{base + ".key": "example.com. IN DNSKEY 257 3\n", base + ".private": priv(good)},
			base + ".key: not a DNSKEY record"},
		{"two records", map[string]string{base + ".key": pub(good) + pub(good), base + ".private": priv(good)},
			base + ".key: more than one record: a .key file holds one DNSKEY"},
		{"another zone's key", map[string]string{base + ".key": strings.Replace(pub(good), "example.com.", "example.org.", 1), base + ".private": priv(good)},
			base + ".key: the DNSKEY is for example.org., not example.com."},
		{"revoked", map[string]string{base + ".key": strings.Replace(pub(good), "257 3 13", "385 3 13", 1), base + ".private": priv(good)},
			base + ".key: flags 385: a revoked key (RFC 5011) is not supported"},
		{"the name says another tag", map[string]string{"Kexample.com.+013+00001.key": pub(good), "Kexample.com.+013+00001.private": priv(good)},
			"Kexample.com.+013+00001.key: the DNSKEY's key tag is"},
		{"another algorithm", map[string]string{ed.File + ".key": pub(ed), ed.File + ".private": priv(ed)},
			ed.File + ".key: algorithm 15 (ED25519), but the zone signs with ecdsap256sha256: keys of another algorithm (an algorithm rollover) are not supported"},
		{"RSA", map[string]string{"Kexample.com.+008+00001.key": "example.com. IN DNSKEY 256 3 8 AwEAAa==\n", "Kexample.com.+008+00001.private": "x"},
			"Kexample.com.+008+00001.key: algorithm 8 (RSASHA256): Meridian signs with ecdsap256sha256 (13) or ed25519 (15)"},
		{"no PrivateKey", map[string]string{base + ".key": pub(good), base + ".private": "Private-key-format: v1.3\nAlgorithm: 13\n"},
			base + ".private: no PrivateKey field"},
		{"PrivateKey twice", map[string]string{base + ".key": pub(good), base + ".private": priv(good) + "PrivateKey: AAAA\n"},
			base + ".private: line 4: a second privatekey field (first on line 3)"},
		{"algorithm of the private half", map[string]string{base + ".key": pub(good), base + ".private": strings.Replace(priv(good), "Algorithm: 13", "Algorithm: 15", 1)},
			base + ".private: line 2: Algorithm 15, but the .key file's DNSKEY is algorithm 13"},
		{"format", map[string]string{base + ".key": pub(good), base + ".private": strings.Replace(priv(good), "v1.3", "v2.0", 1)},
			base + `.private: line 1: Private-key-format "v2.0": want v1.2 or v1.3`},
		{"short key", map[string]string{base + ".key": pub(good), base + ".private": "Private-key-format: v1.3\nAlgorithm: 13\nPrivateKey: AAAA\n"},
			base + ".private: line 3: ECDSA P-256 private key of 3 bytes: want 32"},
		{"garbage line", map[string]string{base + ".key": pub(good), base + ".private": "Private-key-format v1.3\n"},
			base + `.private: line 1: want "Field: value", got "Private-key-format v1.3"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, text := range tt.files {
				write(t, dir, name, text)
			}
			ks, probs := Load(dir, "example.com.", mdns.ECDSAP256SHA256, true, testNow)
			if ks != nil || len(probs) != 1 || !strings.HasPrefix(probs[0].Error(), tt.want) {
				t.Fatalf("Load: %v %q\nwant one problem starting %q", ks, probs, tt.want)
			}
			entries, _ := os.ReadDir(dir)
			if len(entries) != len(tt.files) {
				t.Errorf("%d files after Load, want the %d there were: nothing generated", len(entries), len(tt.files))
			}
		})
	}
}

func TestLoadUnreadableDir(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	write(t, filepath.Dir(file), "file", "x")
	_, probs := Load(file, "example.com.", mdns.ECDSAP256SHA256, true, testNow)
	if len(probs) != 1 || !strings.Contains(probs[0].Error(), "not a directory") {
		t.Fatalf("problems %v, want one saying it is not a directory", probs)
	}
}

// TestRoles: a CSK signs everything; with a KSK and a ZSK each signs its
// part; CDS and CDNSKEY name the SEP keys, or every key when none has the
// flag.
func TestRoles(t *testing.T) {
	dir := t.TempDir()
	ksk := writeKey(t, dir, "example.com.", mdns.ECDSAP256SHA256, 257)
	zsk := writeKey(t, dir, "example.com.", mdns.ECDSAP256SHA256, 256)

	csk := NewKeySet("example.com.", []*Key{ksk})
	if csk.Split() || len(csk.SignersFor(mdns.TypeDNSKEY)) != 1 || csk.SignersFor(mdns.TypeA)[0] != ksk {
		t.Errorf("a lone KSK is a CSK: %v", csk)
	}
	split := NewKeySet("example.com.", []*Key{zsk, ksk})
	if !split.Split() || split.SignersFor(mdns.TypeDNSKEY)[0] != ksk || split.SignersFor(mdns.TypeCDS)[0] != ksk ||
		len(split.SignersFor(mdns.TypeSOA)) != 1 || split.SignersFor(mdns.TypeSOA)[0] != zsk {
		t.Errorf("KSK+ZSK roles wrong: %v", split)
	}
	if got := split.String(); !strings.Contains(got, "ksk") || !strings.Contains(got, "zsk") {
		t.Errorf("String %q", got)
	}
	if len(split.DNSKEYs(3600)) != 2 {
		t.Error("both keys are published")
	}
	cds := split.CDS(3600)
	if len(cds) != 1 || cds[0].(*mdns.CDS).KeyTag != ksk.Tag || cds[0].(*mdns.CDS).DigestType != mdns.SHA256 {
		t.Errorf("CDS %v: want the KSK's SHA-256 digest", cds)
	}
	if want := ksk.DNSKEY.ToDS(mdns.SHA256).Digest; cds[0].(*mdns.CDS).Digest != want {
		t.Errorf("CDS digest %s, want %s", cds[0].(*mdns.CDS).Digest, want)
	}
	if cd := split.CDNSKEY(3600); len(cd) != 1 || cd[0].(*mdns.CDNSKEY).PublicKey != ksk.DNSKEY.PublicKey {
		t.Errorf("CDNSKEY %v: want the KSK", cd)
	}
	zonly := NewKeySet("example.com.", []*Key{zsk})
	if len(zonly.CDS(60)) != 1 || zonly.Split() {
		t.Error("with no SEP key, every key is an entry key and signs everything")
	}
	if split.id == csk.id || split.id == zonly.id {
		t.Error("different key sets share an id")
	}
}

func TestParseAlgorithm(t *testing.T) {
	for in, want := range map[string]uint8{"ecdsap256sha256": 13, "ECDSAP256SHA256": 13, "13": 13, "ed25519": 15, "15": 15} {
		if got, err := ParseAlgorithm(in); err != nil || got != want {
			t.Errorf("ParseAlgorithm(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"rsasha256", "8", "", "ed448"} {
		if _, err := ParseAlgorithm(in); err == nil {
			t.Errorf("ParseAlgorithm(%q): no error", in)
		}
	}
}

func TestFileName(t *testing.T) {
	z, a, tag, ext, ok := fileName("Kexample.com.+013+01234.private")
	if !ok || z != "example.com." || a != 13 || tag != 1234 || ext != ".private" {
		t.Errorf("fileName: %q %d %d %q %t", z, a, tag, ext, ok)
	}
	for _, bad := range []string{"example.com.+013+01234.key", "Kexample.com.+013.key", "Kexample.com.+x+1.key", "Kexample.com.+013+01234.state", "K+013+1.key"} {
		if _, _, _, _, ok := fileName(bad); ok {
			t.Errorf("fileName(%q) accepted", bad)
		}
	}
}
