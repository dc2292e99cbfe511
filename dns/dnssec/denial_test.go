package dnssec

import (
	"slices"
	"strings"
	"testing"

	mdns "github.com/miekg/dns"
)

func TestCompactNSEC(t *testing.T) {
	for _, tt := range []struct {
		owner  string
		types  []uint16
		nxname bool
		want   string
	}{
		{"Nope.example.com.", nil, true, `nope.example.com. 300 IN NSEC \000.nope.example.com. RRSIG NSEC NXNAME`},
		{"www.example.com.", []uint16{mdns.TypeAAAA, mdns.TypeA}, false, `www.example.com. 300 IN NSEC \000.www.example.com. A AAAA RRSIG NSEC`},
		{"b.deep.example.com.", nil, false, `b.deep.example.com. 300 IN NSEC \000.b.deep.example.com. RRSIG NSEC`},
	} {
		got := strings.ReplaceAll(CompactNSEC(tt.owner, 300, tt.types, tt.nxname).String(), "\t", " ")
		if got != tt.want {
			t.Errorf("CompactNSEC(%s) = %s, want %s", tt.owner, got, tt.want)
		}
	}
}

// TestBeforeAfter: Before(n) < n < every name below n < After(n), and the
// names between Before(n) and n all start with Before(n)'s first label.
func TestBeforeAfter(t *testing.T) {
	for _, tt := range []struct{ name, before, after string }{
		{"www.example.com.", `wwv\255.example.com.`, `www\000.example.com.`},
		{"x.app.example.com.", `w\255.app.example.com.`, `x\000.app.example.com.`},
		{`a\000.example.com.`, `a.example.com.`, `a\000\000.example.com.`},
		{`\000.example.com.`, `example.com.`, `\000\000.example.com.`},
		{`\[.example.com.`, `@\255.example.com.`, `[\000.example.com.`},
	} {
		if got := Before(tt.name); got != tt.before && got != strings.ReplaceAll(tt.before, "@", `\@`) {
			t.Errorf("Before(%s) = %s, want %s", tt.name, got, tt.before)
		}
		if got := After(tt.name); got != tt.after && got != strings.ReplaceAll(tt.after, "[", `\[`) {
			t.Errorf("After(%s) = %s, want %s", tt.name, got, tt.after)
		}
		checkOrder(t, tt.name)
	}
	long := strings.Repeat("z", 63) + ".example.com."
	checkOrder(t, long)
	max := strings.Repeat(`\255`, 63) + ".example.com."
	if got := After(max); got != `example\000.com.` {
		t.Errorf("After(63 x \\255) = %s", got)
	}
}

func checkOrder(t *testing.T, name string) {
	t.Helper()
	before, after := Before(name), After(name)
	if Compare(before, name) >= 0 || Compare(name, after) >= 0 {
		t.Errorf("%s: not Before %s < name < After %s", name, before, after)
	}
	if below := "a.b." + name; Compare(below, after) >= 0 || Compare(below, name) <= 0 {
		t.Errorf("%s: a name below it is not between it and After %s", name, after)
	}
}

// TestCompare orders names as RFC 4034 §6.1's example does.
func TestCompare(t *testing.T) {
	want := []string{"example.", "a.example.", "yljkjljk.a.example.", `Z.a.example.`, `zABC.a.EXAMPLE.`, "z.example.", `\001.z.example.`, `*.z.example.`, `\200.z.example.`}
	got := slices.Clone(want)
	slices.Reverse(got)
	slices.SortStableFunc(got, Compare)
	if !slices.Equal(got, want) {
		t.Errorf("sorted\n %v\nwant\n %v", got, want)
	}
	if Compare("WWW.example.com.", "www.example.com.") != 0 {
		t.Error("case matters")
	}
}
