package access

import (
	"net/netip"
	"strings"
	"testing"
)

// FuzzAllowed: Compile never panics, accepts nothing netip would not
// parse, and a compiled list gives the verdict of a plain scan over
// netip.Prefix.Contains (the trie is an optimisation, not a semantics).
// Entries are comma-separated.
func FuzzAllowed(f *testing.F) {
	seeds := [][3]string{
		{"10.0.0.0/8,192.0.2.7", "", "10.1.2.3"},
		{"10.0.0.0/8", "10.1.0.0/16", "10.1.2.3"},
		{"::ffff:192.0.2.0/120", "", "::ffff:192.0.2.9"},
		{"", "0.0.0.0/0,::/0", "2001:db8::1"},
		{"::/0", "", "192.0.2.1"},
		{"fe80::/10", "", "fe80::1%eth0"},
		{"10.1.2.3/8", "", "10.1.2.3"},
		{"10.0.0.0/08", "", ""},
		{"::ffff:0:0/96", "2001:db8::/129", "1.2.3.4"},
	}
	for _, s := range seeds {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, allowCSV, denyCSV, client string) {
		allow, deny := split(allowCSV), split(denyCSV)
		l, err := Compile(allow, deny)
		if err != nil {
			return
		}
		ap, dp := reference(t, allow), reference(t, deny)
		a, _ := netip.ParseAddr(client)
		want := true
		if len(ap) > 0 || len(dp) > 0 {
			u := a.Unmap().WithZone("")
			want = a.IsValid() && !containsAny(dp, u) && (len(ap) == 0 || containsAny(ap, u))
		}
		if got := l.Allowed(a); got != want {
			t.Fatalf("allow %q deny %q: Allowed(%s) = %v, a scan says %v", allow, deny, client, got, want)
		}
	})
}

func split(csv string) []string {
	if csv == "" {
		return nil
	}
	return strings.Split(csv, ",")
}

// reference parses accepted entries with netip alone, unmapping mapped
// ones by hand.
func reference(t *testing.T, entries []string) []netip.Prefix {
	var out []netip.Prefix
	for _, e := range entries {
		p, err := netip.ParsePrefix(e)
		if err != nil {
			a, err := netip.ParseAddr(e)
			if err != nil {
				t.Fatalf("Compile accepted %q, which netip does not parse", e)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		if p.Masked() != p {
			t.Fatalf("Compile accepted %q, which has host bits set", e)
		}
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		out = append(out, p)
	}
	return out
}

func containsAny(ps []netip.Prefix, a netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
