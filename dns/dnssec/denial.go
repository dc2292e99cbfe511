package dnssec

import (
	"bytes"
	"slices"
	"strings"

	mdns "github.com/miekg/dns"
)

// CompactNSEC returns the NSEC of compact denial of existence (RFC 9824)
// at owner: its next name is owner's immediate successor in canonical
// order (\000.owner), so it covers no other name, and its bitmap holds
// types (the types the name has, without the one asked for) plus RRSIG
// and NSEC. nxname adds the NXNAME pseudo-type, which marks a name that
// does not exist at all. Owner and next name are lower case, so the
// record, and its signature, are the same whatever spelling was asked.
func CompactNSEC(owner string, ttl uint32, types []uint16, nxname bool) *mdns.NSEC {
	owner = strings.ToLower(owner)
	bitmap := make([]uint16, 0, len(types)+3)
	bitmap = append(bitmap, types...)
	bitmap = append(bitmap, mdns.TypeRRSIG, mdns.TypeNSEC)
	if nxname {
		bitmap = append(bitmap, mdns.TypeNXNAME)
	}
	return &mdns.NSEC{
		Hdr:        mdns.RR_Header{Name: owner, Rrtype: mdns.TypeNSEC, Class: mdns.ClassINET, Ttl: ttl},
		NextDomain: `\000.` + owner,
		TypeBitMap: sortedTypes(bitmap),
	}
}

// CoverNSEC returns an NSEC from owner to next, which covers every name in
// between (types RRSIG and NSEC: what any name of a signed zone has).
func CoverNSEC(owner, next string, ttl uint32) *mdns.NSEC {
	return &mdns.NSEC{
		Hdr:        mdns.RR_Header{Name: strings.ToLower(owner), Rrtype: mdns.TypeNSEC, Class: mdns.ClassINET, Ttl: ttl},
		NextDomain: strings.ToLower(next),
		TypeBitMap: []uint16{mdns.TypeRRSIG, mdns.TypeNSEC},
	}
}

// sortedTypes sorts a type list and drops repeats, as an NSEC bitmap
// must be.
func sortedTypes(ts []uint16) []uint16 {
	slices.Sort(ts)
	return slices.Compact(ts)
}

// Before returns a name just before name (lower case, fully qualified, not
// the root) in canonical order, a sibling of it: name's first label with
// its last octet lowered by one and \255 appended ("www" gives "wwv\255"),
// or with a trailing \000 dropped, or the parent when the label is just
// \000. Only names that begin with that sibling label can lie between it
// and name; the caller checks the zone has none (see the minimally
// covering NSEC records of RFC 4470, whose predecessor this is a short
// form of).
func Before(name string) string {
	labels, ok := wireLabels(name)
	if !ok || len(labels) == 0 {
		return name
	}
	first := labels[0]
	last := first[len(first)-1]
	switch {
	case last == 0 && len(first) == 1:
		return fromLabels(labels[1:])
	case last == 0:
		first = first[:len(first)-1]
	default:
		c := last - 1
		if c >= 'A' && c <= 'Z' {
			c = 'A' - 1 // canonical order compares lower case: '[' is followed by 'Z', which sorts as 'z'
		}
		first = append(append(slices.Clone(first[:len(first)-1]), c), 0xff)
		if len(first) > 63 {
			first = first[:63]
		}
	}
	return fromLabels(append([][]byte{first}, labels[1:]...))
}

// After returns the first name after name and everything below it, in
// canonical order: name's first label with \000 appended ("www" gives
// "www\000"), a sibling. For a first label of 63 octets it raises the
// last octet below 255 and drops what follows it; for a label of 63
// \255s it returns the parent's After.
func After(name string) string {
	labels, ok := wireLabels(name)
	if !ok || len(labels) == 0 {
		return name
	}
	for len(labels) > 0 {
		first := labels[0]
		if len(first) < 63 {
			labels[0] = append(slices.Clone(first), 0)
			return fromLabels(labels)
		}
		for i := len(first) - 1; i >= 0; i-- {
			if c := first[i]; c < 0xff {
				c++
				if c >= 'A' && c <= 'Z' {
					c = 'Z' + 1
				}
				labels[0] = append(slices.Clone(first[:i]), c)
				return fromLabels(labels)
			}
		}
		labels = labels[1:]
	}
	return "."
}

// Compare orders two names canonically (RFC 4034 §6.1): by their labels
// from the right, each compared as lower-case octets. It returns -1, 0 or
// +1.
func Compare(a, b string) int {
	la, oka := wireLabels(a)
	lb, okb := wireLabels(b)
	if !oka || !okb {
		return strings.Compare(strings.ToLower(a), strings.ToLower(b))
	}
	for i, j := len(la)-1, len(lb)-1; i >= 0 && j >= 0; i, j = i-1, j-1 {
		if c := compareLabel(la[i], lb[j]); c != 0 {
			return c
		}
	}
	switch {
	case len(la) < len(lb):
		return -1
	case len(la) > len(lb):
		return 1
	}
	return 0
}

func compareLabel(a, b []byte) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		ca, cb := lower(a[i]), lower(b[i])
		if ca != cb {
			if ca < cb {
				return -1
			}
			return 1
		}
	}
	return len(a) - len(b)
}

func lower(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// wireLabels splits a presentation-format name into its labels' octets
// (escapes decoded), leftmost first, without the root.
func wireLabels(name string) ([][]byte, bool) {
	buf := make([]byte, 256)
	off, err := mdns.PackDomainName(mdns.Fqdn(name), buf, 0, nil, false)
	if err != nil {
		return nil, false
	}
	var out [][]byte
	for i := 0; i < off; {
		l := int(buf[i])
		if l == 0 {
			break
		}
		out = append(out, buf[i+1:i+1+l])
		i += 1 + l
	}
	return out, true
}

// fromLabels is the presentation form of labels (leftmost first).
func fromLabels(labels [][]byte) string {
	if len(labels) == 0 {
		return "."
	}
	var wire bytes.Buffer
	for _, l := range labels {
		wire.WriteByte(byte(len(l)))
		wire.Write(l)
	}
	wire.WriteByte(0)
	name, _, err := mdns.UnpackDomainName(wire.Bytes(), 0)
	if err != nil {
		return "."
	}
	return strings.ToLower(name)
}
