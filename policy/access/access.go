package access

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/gaissmai/bart"
)

// List is a compiled allow/deny list of client CIDRs (a bare address
// means /32 or /128; IPv4-mapped IPv6 clients match IPv4 entries).
type List struct {
	allow, deny *bart.Lite // nil when the list is empty
}

// EntryError is an entry that does not parse. List is "allow" or "deny"
// and Index its position there, so a caller can point at the config path
// (routes[3].deny[2]).
type EntryError struct {
	List   string
	Index  int
	Entry  string
	Reason string
}

func (e *EntryError) Error() string {
	return fmt.Sprintf("%s[%d]: %q: %s", e.List, e.Index, e.Entry, e.Reason)
}

// Compile parses allow and deny. The error is the first bad entry, allow's
// before deny's, as an *EntryError.
func Compile(allow, deny []string) (*List, error) {
	l := &List{}
	var err error
	if l.allow, err = compile("allow", allow); err != nil {
		return nil, err
	}
	if l.deny, err = compile("deny", deny); err != nil {
		return nil, err
	}
	return l, nil
}

func compile(name string, entries []string) (*bart.Lite, error) {
	if len(entries) == 0 {
		return nil, nil
	}
	t := new(bart.Lite)
	for i, e := range entries {
		p, reason := parse(e)
		if reason != "" {
			return nil, &EntryError{List: name, Index: i, Entry: e, Reason: reason}
		}
		t.Insert(p)
	}
	return t, nil
}

// parse reads one entry; reason says what is wrong with it, "" if
// nothing.
func parse(s string) (p netip.Prefix, reason string) {
	addrPart, bitsPart, hasBits := strings.Cut(s, "/")
	switch {
	case s == "":
		return p, "empty entry"
	case strings.EqualFold(s, "all"):
		return p, "not an IP address or CIDR (for every client write 0.0.0.0/0 and ::/0)"
	case strings.TrimSpace(s) != s:
		return p, "leading or trailing space"
	}
	a, err := netip.ParseAddr(addrPart)
	if err != nil {
		return p, "not an IP address or CIDR"
	}
	if a.Zone() != "" {
		return p, "an address with a zone cannot be matched (remove %" + a.Zone() + ")"
	}
	bits := a.BitLen()
	if hasBits {
		// Strict decimal, as netip.ParsePrefix: no sign, no leading zero.
		n, err := strconv.Atoi(bitsPart)
		if err != nil || bitsPart[0] == '+' || bitsPart[0] == '-' || len(bitsPart) > 1 && bitsPart[0] == '0' {
			return p, fmt.Sprintf("invalid prefix length %q", bitsPart)
		}
		if n > bits {
			return p, fmt.Sprintf("prefix length %d is longer than an %s address (%d bits)", n, family(a), bits)
		}
		bits = n
	}
	p = netip.PrefixFrom(a, bits)
	if m := p.Masked(); m != p {
		// 10.1.2.3/8 is 10.0.0.0/8 to some tools and a typo for
		// 10.1.2.3/32 to its author; neither guess is safe to make.
		return netip.Prefix{}, fmt.Sprintf("host bits set after /%d (the network is %s)", bits, m)
	}
	if a.Is4In6() {
		// bits >= 96 here: a shorter mapped prefix has the ffff host bits
		// set and was refused above.
		p = netip.PrefixFrom(a.Unmap(), bits-96)
	}
	return p, ""
}

func family(a netip.Addr) string {
	if a.Is4() {
		return "IPv4"
	}
	return "IPv6"
}

// Allowed reports whether client a may pass: a client in deny is refused
// (deny wins); when allow is non-empty a client not in it is refused. An
// invalid (zero) address, a client the proxy could not place, is refused
// when either list is non-empty: a list is a promise about who gets in.
func (l *List) Allowed(a netip.Addr) bool {
	if l == nil || l.allow == nil && l.deny == nil {
		return true
	}
	if !a.IsValid() {
		return false
	}
	a = a.Unmap()
	if l.deny != nil && l.deny.Contains(a) {
		return false
	}
	return l.allow == nil || l.allow.Contains(a)
}

// Len is the number of distinct prefixes in each list, after mapped
// entries are made IPv4 and duplicates merged, for explain and logs.
func (l *List) Len() (allow, deny int) {
	if l == nil {
		return 0, 0
	}
	if l.allow != nil {
		allow = l.allow.Size()
	}
	if l.deny != nil {
		deny = l.deny.Size()
	}
	return allow, deny
}
