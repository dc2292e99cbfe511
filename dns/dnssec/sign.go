package dnssec

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"time"

	mdns "github.com/miekg/dns"
)

// Signature timing (see the package comment).
const (
	// Backdate is how far before signing an RRSIG's inception lies, for
	// validators whose clocks are behind ours.
	Backdate = time.Hour
	// Validity is how long after signing an RRSIG expires, before Jitter.
	Validity = 7 * 24 * time.Hour
	// Jitter is the most that is added to Validity, drawn per signature,
	// so signatures made together expire apart.
	Jitter = 24 * time.Hour
	// Refresh is how long a cached signature is served: each one served
	// has at least Validity-Refresh (six days) left.
	Refresh = 24 * time.Hour
)

// Signer makes RRSIGs, through a Cache. It is safe for concurrent use.
type Signer struct {
	cache *Cache
	now   func() time.Time
}

// NewSigner returns a signer that caches in cache (nil: no caching) and
// reads the time from now (nil: time.Now).
func NewSigner(cache *Cache, now func() time.Time) *Signer {
	if now == nil {
		now = time.Now
	}
	return &Signer{cache: cache, now: now}
}

// Cache returns the signer's cache (nil when it has none).
func (s *Signer) Cache() *Cache { return s.cache }

// Sign returns the RRSIGs over rrset, one per key of ks that signs its
// type. content is the RRset's ContentKey; rrset is only read when the
// cache has no signature for content, so a caller that has the key can
// skip building the records' canonical form. The records of rrset must
// all be owned by the name they are signed under (a wildcard's "*.x" for
// a synthesised answer: the RRSIG's label count is then the wildcard's)
// and share one TTL. The RRSIGs returned are shared by every caller:
// copy one before changing it (to give it the query's owner spelling).
func (s *Signer) Sign(ks *KeySet, content []byte, rrset []mdns.RR) ([]mdns.RR, error) {
	if len(ks.Keys) == 0 {
		return nil, nil
	}
	now := s.now()
	if sigs := s.cache.lookup(ks.id, content, now); sigs != nil {
		return sigs, nil
	}
	if len(rrset) == 0 {
		return nil, nil
	}
	h := rrset[0].Header()
	inception := uint32(now.Add(-Backdate).Unix())
	expiration := uint32(now.Add(Validity + rand.N(Jitter)).Unix())
	keys := ks.SignersFor(h.Rrtype)
	sigs := make([]mdns.RR, 0, len(keys))
	for _, k := range keys {
		sig := &mdns.RRSIG{
			Hdr:        mdns.RR_Header{Ttl: h.Ttl},
			Algorithm:  k.DNSKEY.Algorithm,
			KeyTag:     k.Tag,
			SignerName: ks.Zone,
			Inception:  inception,
			Expiration: expiration,
		}
		if err := sig.Sign(k.Signer, rrset); err != nil {
			return nil, fmt.Errorf("dnssec: signing %s %s with key %d: %w", h.Name, mdns.TypeToString[h.Rrtype], k.Tag, err)
		}
		sigs = append(sigs, sig)
	}
	s.cache.store(ks.id, content, sigs, now.Add(Refresh))
	return sigs, nil
}

// lookup and store are get and put on a cache that may be nil.
func (c *Cache) lookup(id string, content []byte, now time.Time) []mdns.RR {
	if c == nil {
		return nil
	}
	return c.get(id, content, now)
}

func (c *Cache) store(id string, content []byte, sigs []mdns.RR, until time.Time) {
	if c != nil {
		c.put(id, content, sigs, until)
	}
}

// appendHeader starts a content key: the owner, lower case, then type,
// class and TTL.
func appendHeader(buf []byte, name string, rrtype, class uint16, ttl uint32) []byte {
	buf = append(buf, strings.ToLower(name)...)
	buf = append(buf, 0)
	buf = binary.BigEndian.AppendUint16(buf, rrtype)
	buf = binary.BigEndian.AppendUint16(buf, class)
	return binary.BigEndian.AppendUint32(buf, ttl)
}

func appendRdata(buf, rdata []byte) []byte {
	buf = binary.BigEndian.AppendUint16(buf, uint16(len(rdata)))
	return append(buf, rdata...)
}

// ContentKey is what a Cache keys an RRset's signatures by: the name it is
// signed under (name; lower-cased), its type, class and TTL, and each
// record's RDATA in canonical order (RFC 4034 §6.3), so the same records
// in another order share one key. It packs copies: rrs are not changed.
func ContentKey(name string, rrs []mdns.RR) []byte {
	if len(rrs) == 0 {
		return nil
	}
	h := rrs[0].Header()
	rdatas := make([][]byte, 0, len(rrs))
	buf := make([]byte, 0, 512)
	for _, rr := range rrs {
		c := mdns.Copy(rr)
		c.Header().Name = "."
		wire := make([]byte, mdns.Len(c)+16)
		off, err := mdns.PackRR(c, wire, 0, nil, false)
		if err != nil || off < 11 {
			// Cannot happen for records that were parsed; keep them
			// apart by their text rather than share a key.
			rdatas = append(rdatas, []byte(rr.String()))
			continue
		}
		rdatas = append(rdatas, wire[11:off])
	}
	slices.SortFunc(rdatas, bytes.Compare)
	buf = appendHeader(buf, name, h.Rrtype, h.Class, h.Ttl)
	for i, r := range rdatas {
		if i > 0 && bytes.Equal(r, rdatas[i-1]) {
			continue // an RRset holds each record once
		}
		buf = appendRdata(buf, r)
	}
	return buf
}

// AppendAddressKey appends to buf the ContentKey of an A or AAAA RRset
// given by its addresses, without packing records: what answering builds
// for each steered answer. addrs is sorted in place.
func AppendAddressKey(buf []byte, name string, rrtype uint16, ttl uint32, addrs []netip.Addr) []byte {
	slices.SortFunc(addrs, func(a, b netip.Addr) int { return a.Compare(b) })
	buf = appendHeader(buf, name, rrtype, mdns.ClassINET, ttl)
	for i, a := range addrs {
		if i > 0 && a == addrs[i-1] {
			continue
		}
		if rrtype == mdns.TypeA {
			b := a.As4()
			buf = appendRdata(buf, b[:])
		} else {
			b := a.As16()
			buf = appendRdata(buf, b[:])
		}
	}
	return buf
}
