package dnssec

import (
	"bufio"
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	mdns "github.com/miekg/dns"
)

// ParseAlgorithm returns the DNSSEC algorithm number of a config name:
// ecdsap256sha256 (13) or ed25519 (15), the two RFC 8624 recommends for
// signing; the number itself is accepted too.
func ParseAlgorithm(name string) (uint8, error) {
	switch strings.ToLower(strings.TrimSpace(name)) {
	case "ecdsap256sha256", "13":
		return mdns.ECDSAP256SHA256, nil
	case "ed25519", "15":
		return mdns.ED25519, nil
	}
	return 0, fmt.Errorf("unsupported algorithm %q: want ecdsap256sha256 or ed25519", name)
}

// AlgorithmName is the config name of a supported algorithm number.
func AlgorithmName(alg uint8) string {
	switch alg {
	case mdns.ECDSAP256SHA256:
		return "ecdsap256sha256"
	case mdns.ED25519:
		return "ed25519"
	}
	return "algorithm " + strconv.Itoa(int(alg))
}

// DNSKEY flags (RFC 4034 §2.1.1, RFC 5011 §7).
const (
	flagZone   = 256
	flagSEP    = 1
	flagRevoke = 128
)

// maxKeyFile bounds what is read of one key file: a key file is a few
// hundred bytes; anything past this is not one.
const maxKeyFile = 64 << 10

// Key is one key of a zone: its DNSKEY record and the private key that
// signs with it.
type Key struct {
	// DNSKEY is the public record as read (its TTL is the file's; the zone
	// publishes it at its own, see KeySet.DNSKEYs).
	DNSKEY *mdns.DNSKEY
	// Signer is the private key.
	Signer crypto.Signer
	// Tag is the key tag (RFC 4034 Appendix B).
	Tag uint16
	// File is the base name of its files, K<zone>+<alg>+<tag>.
	File string
}

// SEP reports whether the key has the Secure Entry Point flag (257): a
// key-signing key, the one a DS at the parent points to.
func (k *Key) SEP() bool { return k.DNSKEY.Flags&flagSEP != 0 }

// ParsePublic parses a .key file: comments and exactly one DNSKEY record
// owned by zone (fully qualified, any case), a zone key (flags 256 or 257,
// not revoked) of a supported algorithm, protocol 3. Errors name the line.
func ParsePublic(zone string, b []byte) (*mdns.DNSKEY, error) {
	zp := mdns.NewZoneParser(bytes.NewReader(b), mdns.Fqdn(zone), "")
	var key *mdns.DNSKEY
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		if key != nil {
			return nil, errors.New("more than one record: a .key file holds one DNSKEY")
		}
		k, isKey := rr.(*mdns.DNSKEY)
		if !isKey || k.Hdr.Rrtype != mdns.TypeDNSKEY {
			return nil, fmt.Errorf("a %s record: want one DNSKEY", mdns.TypeToString[rr.Header().Rrtype])
		}
		key = k
	}
	if err := zp.Err(); err != nil {
		var pe *mdns.ParseError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("not a DNSKEY record: %s", strings.TrimPrefix(pe.Error(), "dns: "))
		}
		return nil, fmt.Errorf("not a DNSKEY record: %w", err)
	}
	if key == nil {
		return nil, errors.New("no DNSKEY record")
	}
	if !strings.EqualFold(key.Hdr.Name, mdns.Fqdn(zone)) {
		return nil, fmt.Errorf("the DNSKEY is for %s, not %s", key.Hdr.Name, mdns.Fqdn(zone))
	}
	if key.Hdr.Class != mdns.ClassINET {
		return nil, fmt.Errorf("class %s: want IN", mdns.ClassToString[key.Hdr.Class])
	}
	if key.Protocol != 3 {
		return nil, fmt.Errorf("protocol %d: want 3", key.Protocol)
	}
	switch {
	case key.Flags&flagRevoke != 0:
		return nil, fmt.Errorf("flags %d: a revoked key (RFC 5011) is not supported", key.Flags)
	case key.Flags != flagZone && key.Flags != flagZone|flagSEP:
		return nil, fmt.Errorf("flags %d: want 256 (zone-signing key) or 257 (key-signing key)", key.Flags)
	}
	if _, err := publicKey(key); err != nil {
		return nil, err
	}
	return key, nil
}

// publicKey decodes a DNSKEY's public key for the supported algorithms.
func publicKey(k *mdns.DNSKEY) (crypto.PublicKey, error) {
	raw, err := base64.StdEncoding.DecodeString(k.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("public key is not base64: %w", err)
	}
	switch k.Algorithm {
	case mdns.ECDSAP256SHA256:
		if len(raw) != 64 {
			return nil, fmt.Errorf("ECDSA P-256 public key of %d bytes: want 64", len(raw))
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append([]byte{4}, raw...))
		if err != nil {
			return nil, fmt.Errorf("ECDSA P-256 public key: %w", err)
		}
		return pub, nil
	case mdns.ED25519:
		if len(raw) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("Ed25519 public key of %d bytes: want %d", len(raw), ed25519.PublicKeySize)
		}
		return ed25519.PublicKey(raw), nil
	}
	return nil, fmt.Errorf("algorithm %d (%s): Meridian signs with ecdsap256sha256 (13) or ed25519 (15)", k.Algorithm, mdns.AlgorithmToString[k.Algorithm])
}

// ParsePrivate parses a .private file (BIND's Private-key-format v1.2 or
// v1.3: "Field: value" lines) for the public key pub, and checks that the
// two are halves of one key. Fields other than Private-key-format,
// Algorithm and PrivateKey (Created, Publish, Activate and the rest of
// dnssec-settime's timing metadata) are read and ignored. Errors name the
// line.
func ParsePrivate(pub *mdns.DNSKEY, b []byte) (crypto.Signer, error) {
	fields := map[string]string{}
	at := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 1024), maxKeyFile)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == ';' {
			continue
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("line %d: want \"Field: value\", got %q", n, clip(line))
		}
		name = strings.ToLower(strings.TrimSpace(name))
		if first, dup := at[name]; dup {
			return nil, fmt.Errorf("line %d: a second %s field (first on line %d)", n, name, first)
		}
		at[name] = n
		fields[name] = strings.TrimSpace(value)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading: %w", err)
	}
	for _, f := range []string{"Private-key-format", "Algorithm", "PrivateKey"} {
		if _, ok := fields[strings.ToLower(f)]; !ok {
			return nil, fmt.Errorf("no %s field", f)
		}
	}
	if v := fields["private-key-format"]; v != "v1.2" && v != "v1.3" {
		return nil, fmt.Errorf("line %d: Private-key-format %q: want v1.2 or v1.3", at["private-key-format"], clip(v))
	}
	algText, _, _ := strings.Cut(fields["algorithm"], " ")
	alg, err := strconv.ParseUint(algText, 10, 8)
	if err != nil {
		return nil, fmt.Errorf("line %d: Algorithm %q: want a number", at["algorithm"], clip(fields["algorithm"]))
	}
	if uint8(alg) != pub.Algorithm {
		return nil, fmt.Errorf("line %d: Algorithm %d, but the .key file's DNSKEY is algorithm %d", at["algorithm"], alg, pub.Algorithm)
	}
	raw, err := base64.StdEncoding.DecodeString(fields["privatekey"])
	if err != nil {
		return nil, fmt.Errorf("line %d: PrivateKey is not base64", at["privatekey"])
	}
	want, err := publicKey(pub)
	if err != nil {
		return nil, err
	}
	var signer crypto.Signer
	switch pub.Algorithm {
	case mdns.ECDSAP256SHA256:
		if len(raw) != 32 {
			return nil, fmt.Errorf("line %d: ECDSA P-256 private key of %d bytes: want 32", at["privatekey"], len(raw))
		}
		k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), raw)
		if err != nil {
			return nil, fmt.Errorf("line %d: ECDSA P-256 private key: %w", at["privatekey"], err)
		}
		signer = k
	case mdns.ED25519:
		if len(raw) != ed25519.SeedSize {
			return nil, fmt.Errorf("line %d: Ed25519 private key of %d bytes: want %d", at["privatekey"], len(raw), ed25519.SeedSize)
		}
		signer = ed25519.NewKeyFromSeed(raw)
	}
	if eq, ok := signer.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !eq.Equal(want) {
		return nil, errors.New("the private key does not match the .key file's public key")
	}
	return signer, nil
}

// clip shortens a value quoted in a message.
func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// fileName splits a key file name, K<zone>+<alg>+<tag>.key or .private.
func fileName(name string) (zone string, alg uint8, tag uint16, ext string, ok bool) {
	base, found := strings.CutSuffix(name, ".key")
	ext = ".key"
	if !found {
		if base, found = strings.CutSuffix(name, ".private"); !found {
			return "", 0, 0, "", false
		}
		ext = ".private"
	}
	if !strings.HasPrefix(base, "K") {
		return "", 0, 0, "", false
	}
	i := strings.LastIndexByte(base, '+')
	if i < 0 {
		return "", 0, 0, "", false
	}
	j := strings.LastIndexByte(base[:i], '+')
	if j < 2 {
		return "", 0, 0, "", false
	}
	a, err1 := strconv.ParseUint(base[j+1:i], 10, 8)
	t, err2 := strconv.ParseUint(base[i+1:], 10, 16)
	if err1 != nil || err2 != nil {
		return "", 0, 0, "", false
	}
	return base[1:j], uint8(a), uint16(t), ext, true
}

// baseName is the files' name for a key: K<zone>+<alg>+<tag>.
func baseName(zone string, alg uint8, tag uint16) string {
	return fmt.Sprintf("K%s+%03d+%05d", mdns.Fqdn(zone), alg, tag)
}

// Load reads the keys of zone (fully qualified) from dir: every pair of
// K<zone>+<alg>+<tag>.key and .private files, each checked (one DNSKEY for
// the zone, of algorithm alg, the tag its name says, a private half that
// matches). Files of other zones, and other files, are ignored, so zones
// can share a directory.
//
// When dir holds no key of the zone and generate is set, it creates dir
// (0700) if missing and generates a combined signing key (flags 257) of
// algorithm alg there. Without generate (meridian validate) nothing is
// written, and a missing dir or one without keys is no problem: serving
// would create them. Every problem found is returned, one error per file
// or condition, with the file's name; ks is nil when there is any.
func Load(dir, zone string, alg uint8, generate bool, now time.Time) (ks *KeySet, problems []error) {
	zone = strings.ToLower(mdns.Fqdn(zone))
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		entries = nil
	case err != nil:
		return nil, []error{fmt.Errorf("cannot read it: %w", pathErr(err))}
	}
	type pair struct{ key, private bool }
	pairs := map[string]*pair{}
	var bases []string
	for _, e := range entries {
		z, _, _, ext, ok := fileName(e.Name())
		if !ok || !strings.EqualFold(mdns.Fqdn(z), zone) || e.IsDir() {
			continue
		}
		base := strings.TrimSuffix(e.Name(), ext)
		p := pairs[base]
		if p == nil {
			p = &pair{}
			pairs[base] = p
			bases = append(bases, base)
		}
		if ext == ".key" {
			p.key = true
		} else {
			p.private = true
		}
	}
	slices.Sort(bases)
	var keys []*Key
	for _, base := range bases {
		p := pairs[base]
		switch {
		case !p.private:
			problems = append(problems, fmt.Errorf("%s.key has no %s.private beside it: a key Meridian cannot sign with is not published", base, base))
			continue
		case !p.key:
			problems = append(problems, fmt.Errorf("%s.private has no %s.key beside it", base, base))
			continue
		}
		k, err := readKey(dir, base, zone, alg)
		if err != nil {
			problems = append(problems, err)
			continue
		}
		keys = append(keys, k)
	}
	if len(problems) > 0 {
		return nil, problems
	}
	if len(keys) == 0 && generate {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, []error{fmt.Errorf("cannot create it: %w", pathErr(err))}
		}
		k, err := Generate(dir, zone, alg, flagZone|flagSEP, now)
		if err != nil {
			return nil, []error{err}
		}
		keys = append(keys, k)
	}
	return NewKeySet(zone, keys), nil
}

// pathErr drops the path an *fs.PathError repeats, since the message
// names the file already.
func pathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// readKey reads and checks one key's two files.
func readKey(dir, base, zone string, alg uint8) (*Key, error) {
	_, fileAlg, fileTag, _, _ := fileName(base + ".key")
	pubText, err := readFile(filepath.Join(dir, base+".key"))
	if err != nil {
		return nil, fmt.Errorf("%s.key: %w", base, err)
	}
	pub, err := ParsePublic(zone, pubText)
	if err != nil {
		return nil, fmt.Errorf("%s.key: %w", base, err)
	}
	tag := pub.KeyTag()
	switch {
	case pub.Algorithm != fileAlg:
		return nil, fmt.Errorf("%s.key: the DNSKEY is algorithm %d, the file name says %d", base, pub.Algorithm, fileAlg)
	case tag != fileTag:
		return nil, fmt.Errorf("%s.key: the DNSKEY's key tag is %d, the file name says %d", base, tag, fileTag)
	case tag == 0:
		return nil, fmt.Errorf("%s.key: key tag 0 cannot sign here: generate another key", base)
	case pub.Algorithm != alg:
		return nil, fmt.Errorf("%s.key: algorithm %d (%s), but the zone signs with %s: keys of another algorithm (an algorithm rollover) are not supported",
			base, pub.Algorithm, mdns.AlgorithmToString[pub.Algorithm], AlgorithmName(alg))
	}
	privText, err := readFile(filepath.Join(dir, base+".private"))
	if err != nil {
		return nil, fmt.Errorf("%s.private: %w", base, err)
	}
	signer, err := ParsePrivate(pub, privText)
	if err != nil {
		return nil, fmt.Errorf("%s.private: %w", base, err)
	}
	return &Key{DNSKEY: pub, Signer: signer, Tag: tag, File: base}, nil
}

// readFile reads a key file, refusing one larger than maxKeyFile.
func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, pathErr(err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, pathErr(err)
	}
	if len(b) > maxKeyFile {
		return nil, fmt.Errorf("over %d KiB: not a key file", maxKeyFile>>10)
	}
	return b, nil
}

// Generate makes a key for zone with the given flags (257 for a KSK or
// CSK, 256 for a ZSK) and writes its two files into dir as dnssec-keygen
// does: the .private file 0600, the .key file 0644. Each is written to a
// temporary file and linked into place, so a reader never sees half a
// file and two generators never overwrite each other's key. The .private
// file is placed first: a key is only loaded once both are there.
func Generate(dir, zone string, alg uint8, flags uint16, now time.Time) (*Key, error) {
	zone = strings.ToLower(mdns.Fqdn(zone))
	for attempt := 0; ; attempt++ {
		k := &mdns.DNSKEY{
			Hdr:       mdns.RR_Header{Name: zone, Rrtype: mdns.TypeDNSKEY, Class: mdns.ClassINET, Ttl: 3600},
			Flags:     flags,
			Protocol:  3,
			Algorithm: alg,
		}
		priv, err := k.Generate(256)
		if err != nil {
			return nil, fmt.Errorf("generating a %s key for %s: %w", AlgorithmName(alg), zone, err)
		}
		tag := k.KeyTag()
		base := baseName(zone, alg, tag)
		if tag == 0 || fileExists(filepath.Join(dir, base+".key")) || fileExists(filepath.Join(dir, base+".private")) {
			if attempt < 10 {
				continue // a tag in use, or 0: draw another key
			}
			return nil, fmt.Errorf("generating a key for %s: no free key tag after %d tries", zone, attempt+1)
		}
		stamp := now.UTC().Format("20060102150405")
		private := k.PrivateKeyString(priv) + "Created: " + stamp + "\nPublish: " + stamp + "\nActivate: " + stamp + "\n"
		kind := "zone-signing"
		if flags&flagSEP != 0 {
			kind = "key-signing"
		}
		public := fmt.Sprintf("; This is a %s key, keyid %d, for %s\n; Created: %s (%s)\n; Generated by Meridian\n%s\n",
			kind, tag, zone, stamp, now.UTC().Format(time.ANSIC), k.String())
		if err := placeFile(dir, base+".private", []byte(private), 0o600); err != nil {
			return nil, err
		}
		if err := placeFile(dir, base+".key", []byte(public), 0o644); err != nil {
			return nil, err
		}
		signer, ok := priv.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("generating a key for %s: %T cannot sign", zone, priv)
		}
		return &Key{DNSKEY: k, Signer: signer, Tag: tag, File: base}, nil
	}
}

func fileExists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// placeFile writes b to dir/name through a temporary file linked into
// place, failing if name exists.
func placeFile(dir, name string, b []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(dir, ".meridian-key-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", name, pathErr(err))
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(b)
	if err == nil {
		err = tmp.Chmod(mode)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Link(tmp.Name(), filepath.Join(dir, name))
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", name, pathErr(err))
	}
	return nil
}

// KeySet is the keys of one zone and who signs what.
type KeySet struct {
	// Zone is the zone, lower case, fully qualified: every RRSIG's signer.
	Zone string
	// Keys are every key found, by tag: all published in the DNSKEY RRset.
	Keys []*Key
	ksk  []*Key // sign DNSKEY, CDS, CDNSKEY
	zsk  []*Key // sign the rest
	// id identifies the keys and their roles in cache keys, so that a
	// signature made by a key set that changed is never served.
	id string
}

// NewKeySet groups keys for signing: with both SEP keys and keys without
// the flag, the SEP keys sign the apex key sets (DNSKEY, CDS, CDNSKEY) and
// the others everything else; otherwise every key signs everything.
func NewKeySet(zone string, keys []*Key) *KeySet {
	keys = slices.Clone(keys)
	slices.SortFunc(keys, func(a, b *Key) int { return int(a.Tag) - int(b.Tag) })
	ks := &KeySet{Zone: strings.ToLower(mdns.Fqdn(zone)), Keys: keys}
	var sep, other []*Key
	for _, k := range keys {
		if k.SEP() {
			sep = append(sep, k)
		} else {
			other = append(other, k)
		}
	}
	if len(sep) > 0 && len(other) > 0 {
		ks.ksk, ks.zsk = sep, other
	} else {
		ks.ksk, ks.zsk = keys, keys
	}
	h := sha256.New()
	for _, group := range [][]*Key{ks.ksk, ks.zsk} {
		for _, k := range group {
			fmt.Fprintf(h, "%d %d %d %s\n", k.DNSKEY.Flags, k.DNSKEY.Algorithm, k.Tag, k.DNSKEY.PublicKey)
		}
		h.Write([]byte{0})
	}
	ks.id = string(h.Sum(nil)[:12])
	return ks
}

// Split reports whether separate KSKs and ZSKs sign.
func (ks *KeySet) Split() bool { return len(ks.ksk) != len(ks.Keys) }

// SignersFor returns the keys that sign RRsets of type t.
func (ks *KeySet) SignersFor(t uint16) []*Key {
	switch t {
	case mdns.TypeDNSKEY, mdns.TypeCDS, mdns.TypeCDNSKEY:
		return ks.ksk
	}
	return ks.zsk
}

// entryKeys are the keys a parent should point to: the SEP keys, or every
// key when none has the flag.
func (ks *KeySet) entryKeys() []*Key {
	var out []*Key
	for _, k := range ks.Keys {
		if k.SEP() {
			out = append(out, k)
		}
	}
	if len(out) == 0 {
		return ks.Keys
	}
	return out
}

// DNSKEYs returns the DNSKEY RRset at ttl: every key.
func (ks *KeySet) DNSKEYs(ttl uint32) []mdns.RR {
	out := make([]mdns.RR, 0, len(ks.Keys))
	for _, k := range ks.Keys {
		c := *k.DNSKEY
		c.Hdr = mdns.RR_Header{Name: ks.Zone, Rrtype: mdns.TypeDNSKEY, Class: mdns.ClassINET, Ttl: ttl}
		out = append(out, &c)
	}
	return out
}

// DS returns the DS records the parent should publish (SHA-256, RFC 4509).
func (ks *KeySet) DS(ttl uint32) []*mdns.DS {
	var out []*mdns.DS
	for _, k := range ks.entryKeys() {
		c := *k.DNSKEY
		c.Hdr = mdns.RR_Header{Name: ks.Zone, Rrtype: mdns.TypeDNSKEY, Class: mdns.ClassINET, Ttl: ttl}
		if ds := c.ToDS(mdns.SHA256); ds != nil {
			ds.Hdr.Ttl = ttl
			out = append(out, ds)
		}
	}
	return out
}

// CDS returns the CDS RRset at ttl (RFC 7344): the DS of each entry key.
func (ks *KeySet) CDS(ttl uint32) []mdns.RR {
	var out []mdns.RR
	for _, ds := range ks.DS(ttl) {
		cds := ds.ToCDS()
		cds.Hdr.Ttl = ttl
		out = append(out, cds)
	}
	return out
}

// CDNSKEY returns the CDNSKEY RRset at ttl (RFC 7344): each entry key.
func (ks *KeySet) CDNSKEY(ttl uint32) []mdns.RR {
	var out []mdns.RR
	for _, k := range ks.entryKeys() {
		c := *k.DNSKEY
		c.Hdr = mdns.RR_Header{Name: ks.Zone, Rrtype: mdns.TypeDNSKEY, Class: mdns.ClassINET, Ttl: ttl}
		cd := c.ToCDNSKEY()
		cd.Hdr.Ttl = ttl
		out = append(out, cd)
	}
	return out
}

// Tags lists the key tags, for logs and explanations.
func (ks *KeySet) Tags() []uint16 {
	out := make([]uint16, len(ks.Keys))
	for i, k := range ks.Keys {
		out[i] = k.Tag
	}
	return out
}

// String lists the keys with their roles ("ksk", "zsk" or "csk", a key
// that signs everything) and algorithm: "13 12345 csk, 13 23456 csk".
func (ks *KeySet) String() string {
	parts := make([]string, 0, len(ks.Keys))
	for _, k := range ks.Keys {
		role := "csk"
		if ks.Split() {
			role = "zsk"
			if k.SEP() {
				role = "ksk"
			}
		}
		parts = append(parts, fmt.Sprintf("%s %d %s", AlgorithmName(k.DNSKEY.Algorithm), k.Tag, role))
	}
	return strings.Join(parts, ", ")
}
