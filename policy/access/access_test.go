package access

import (
	"errors"
	"net/netip"
	"testing"
)

// TestAllowed: lists in, a verdict per client out.
func TestAllowed(t *testing.T) {
	type check struct {
		client string // "" is the zero (invalid) address
		want   bool
	}
	tests := []struct {
		name        string
		allow, deny []string
		checks      []check
	}{
		{"no lists allow everyone", nil, nil, []check{
			{"192.0.2.1", true}, {"2001:db8::1", true}, {"", true}}},
		{"v4 allow", []string{"10.0.0.0/8", "192.0.2.7"}, nil, []check{
			{"10.1.2.3", true}, {"10.255.255.255", true}, {"11.0.0.0", false},
			{"192.0.2.7", true}, {"192.0.2.8", false}, {"2001:db8::1", false}, {"", false}}},
		{"v4 deny", nil, []string{"203.0.113.0/24"}, []check{
			{"203.0.113.9", false}, {"203.0.114.1", true}, {"2001:db8::1", true}, {"", false}}},
		{"v6 allow", []string{"2001:db8::/32", "::1"}, nil, []check{
			{"2001:db8:ffff::1", true}, {"2001:db9::1", false}, {"::1", true}, {"::2", false},
			{"127.0.0.1", false}, {"fe80::1%eth0", false}}},
		{"v6 zone ignored", []string{"fe80::/10"}, nil, []check{{"fe80::1%eth0", true}}},
		{"mapped client matches a v4 entry", []string{"192.0.2.0/24"}, nil, []check{
			{"::ffff:192.0.2.1", true}, {"::ffff:192.0.3.1", false}}},
		{"mapped client is denied by a v4 entry", nil, []string{"192.0.2.0/24"}, []check{
			{"::ffff:192.0.2.1", false}, {"::ffff:198.51.100.1", true}}},
		{"mapped entry is a v4 entry", []string{"::ffff:192.0.2.0/120", "::ffff:198.51.100.9"}, nil, []check{
			{"192.0.2.200", true}, {"::ffff:192.0.2.200", true}, {"198.51.100.9", true}, {"198.51.100.10", false}}},
		{"::/0 does not cover v4 clients", []string{"::/0"}, nil, []check{
			{"2001:db8::1", true}, {"::", true}, {"192.0.2.1", false}, {"::ffff:192.0.2.1", false}}},
		{"::ffff:0:0/96 is every v4 client", []string{"::ffff:0:0/96"}, nil, []check{
			{"192.0.2.1", true}, {"2001:db8::1", false}}},
		{"deny wins over a wider allow", []string{"10.0.0.0/8"}, []string{"10.1.0.0/16"}, []check{
			{"10.2.3.4", true}, {"10.1.2.3", false}, {"11.0.0.1", false}}},
		{"deny wins over a narrower allow", []string{"10.1.0.0/16"}, []string{"10.0.0.0/8"}, []check{
			{"10.1.2.3", false}, {"10.2.3.4", false}}},
		{"same entry in both is denied", []string{"192.0.2.1"}, []string{"192.0.2.1"}, []check{{"192.0.2.1", false}}},
		{"deny everyone", nil, []string{"0.0.0.0/0", "::/0"}, []check{
			{"192.0.2.1", false}, {"2001:db8::1", false}, {"::ffff:10.0.0.1", false}}},
		{"allow every v4 client, deny one", []string{"0.0.0.0/0"}, []string{"192.0.2.66/32"}, []check{
			{"1.1.1.1", true}, {"192.0.2.66", false}, {"2001:db8::1", false}}},
		{"/32 and /128 edges", []string{"192.0.2.1/32", "2001:db8::1/128"}, nil, []check{
			{"192.0.2.1", true}, {"192.0.2.0", false}, {"192.0.2.2", false},
			{"2001:db8::1", true}, {"2001:db8::", false}, {"2001:db8::2", false}}},
		{"/31 edges", []string{"192.0.2.2/31"}, nil, []check{
			{"192.0.2.1", false}, {"192.0.2.2", true}, {"192.0.2.3", true}, {"192.0.2.4", false}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, err := Compile(tc.allow, tc.deny)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range tc.checks {
				var a netip.Addr
				if c.client != "" {
					a = netip.MustParseAddr(c.client)
				}
				if got := l.Allowed(a); got != c.want {
					t.Errorf("Allowed(%s) = %v, want %v", c.client, got, c.want)
				}
			}
		})
	}
	var nilList *List
	if !nilList.Allowed(netip.Addr{}) {
		t.Error("a nil list refuses")
	}
}

// TestCompileErrors: golden messages naming the list and the index.
func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name        string
		allow, deny []string
		want        string
	}{
		{"not an address", []string{"10.0.0.0/8", "10.0.0.300"}, nil, `allow[1]: "10.0.0.300": not an IP address or CIDR`},
		{"host name", nil, []string{"example.com"}, `deny[0]: "example.com": not an IP address or CIDR`},
		{"nginx all", nil, []string{"192.0.2.1", "all"}, `deny[1]: "all": not an IP address or CIDR (for every client write 0.0.0.0/0 and ::/0)`},
		{"empty", []string{""}, nil, `allow[0]: "": empty entry`},
		{"spaces", []string{" 10.0.0.0/8"}, nil, `allow[0]: " 10.0.0.0/8": leading or trailing space`},
		{"v4 prefix too long", nil, []string{"192.0.2.1", "10.0.0.0/8", "10.0.0.0/33"}, `deny[2]: "10.0.0.0/33": prefix length 33 is longer than an IPv4 address (32 bits)`},
		{"v6 prefix too long", []string{"2001:db8::/129"}, nil, `allow[0]: "2001:db8::/129": prefix length 129 is longer than an IPv6 address (128 bits)`},
		{"empty length", []string{"10.0.0.0/"}, nil, `allow[0]: "10.0.0.0/": invalid prefix length ""`},
		{"signed length", []string{"10.0.0.0/+8"}, nil, `allow[0]: "10.0.0.0/+8": invalid prefix length "+8"`},
		{"leading zero length", []string{"10.0.0.0/08"}, nil, `allow[0]: "10.0.0.0/08": invalid prefix length "08"`},
		{"netmask form", []string{"10.0.0.0/255.0.0.0"}, nil, `allow[0]: "10.0.0.0/255.0.0.0": invalid prefix length "255.0.0.0"`},
		{"host bits v4", []string{"10.1.2.3/8"}, nil, `allow[0]: "10.1.2.3/8": host bits set after /8 (the network is 10.0.0.0/8)`},
		{"host bits v6", nil, []string{"2001:db8::1/32"}, `deny[0]: "2001:db8::1/32": host bits set after /32 (the network is 2001:db8::/32)`},
		{"zone", []string{"fe80::1%eth0"}, nil, `allow[0]: "fe80::1%eth0": an address with a zone cannot be matched (remove %eth0)`},
		{"zone with length", []string{"fe80::%eth0/64"}, nil, `allow[0]: "fe80::%eth0/64": an address with a zone cannot be matched (remove %eth0)`},
		{"short mapped prefix", []string{"::ffff:0:0/95"}, nil, `allow[0]: "::ffff:0:0/95": host bits set after /95 (the network is ::fffe:0:0/95)`},
		{"allow reported before deny", []string{"x"}, []string{"y"}, `allow[0]: "x": not an IP address or CIDR`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, err := Compile(tc.allow, tc.deny)
			if err == nil || err.Error() != tc.want || l != nil {
				t.Fatalf("got %v, %v\nwant %s", l, err, tc.want)
			}
			var ee *EntryError
			if !errors.As(err, &ee) || ee.Entry == "" && tc.name != "empty" {
				t.Errorf("%T is not an *EntryError with its entry", err)
			}
		})
	}
}

func TestLen(t *testing.T) {
	l, err := Compile([]string{"192.0.2.0/24", "::ffff:192.0.2.0/120", "2001:db8::/32"}, []string{"192.0.2.1"})
	if err != nil {
		t.Fatal(err)
	}
	if a, d := l.Len(); a != 2 || d != 1 {
		t.Errorf("Len() = %d, %d; want 2 (the mapped duplicate merged), 1", a, d)
	}
}
