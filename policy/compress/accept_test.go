package compress

import (
	"math"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

var serverOrder = []codingID{codingZstd, codingBr, codingGzip}

// negotiated returns the coding name chosen for the Accept-Encoding lines
// vals, or "" for identity.
func negotiated(vals []string, offered []codingID) string {
	a := parseAcceptEncoding(vals)
	if i := a.choose(offered); i >= 0 {
		return offered[i].String()
	}
	return ""
}

func TestNegotiate(t *testing.T) {
	gzipFirst := []codingID{codingGzip, codingBr}
	for _, c := range []struct {
		ae      string
		offered []codingID
		want    string
	}{
		{"", nil, ""}, // present but empty: no coding wanted
		{"gzip", nil, "gzip"},
		{"gzip, deflate, br", nil, "br"}, // server order among equals
		{"gzip, deflate, br, zstd", nil, "zstd"},
		{"br;q=0.5, gzip", nil, "gzip"},
		{"gzip;q=0.8, br;q=0.9", nil, "br"},
		{"gzip ; q=0.8 ,\tbr;q=0.9 ", nil, "br"},
		{"gzip;Q=0.5, br;q=0.4", nil, "gzip"},
		{"br;q=0.8, gzip;q=0.8", nil, "br"},
		{"br;q=0.8, gzip;q=0.8", gzipFirst, "gzip"},
		{"zstd", gzipFirst, ""}, // not offered
		{"gzip;q=0", nil, ""},
		{"gzip;q=0.000", nil, ""},
		{"zstd;q=0.001", nil, "zstd"},
		{"*", nil, "zstd"},
		{"*", gzipFirst, "gzip"},
		{"*;q=0", nil, ""},
		{"*;q=0.5, gzip", nil, "gzip"},
		{"*, zstd;q=0", nil, "br"},
		{"identity", nil, ""},
		{"identity;q=0", nil, ""}, // nothing acceptable: identity anyway
		{"identity;q=0, gzip", nil, "gzip"},
		{"gzip;q=0.5, identity", nil, ""}, // identity strictly preferred
		{"gzip, identity", nil, "gzip"},   // a tie goes to compression
		{"gzip, identity;q=0.5", nil, "gzip"},
		{"gzip;q=0.5, *", nil, "zstd"}, // zstd and identity q=1 via *
		{"gzip;q=0.5, *;q=0.2", nil, "gzip"},
		{"GZIP", nil, "gzip"},
		{"x-gzip", nil, "gzip"},
		{"Br", nil, "br"},
		{"gzip;q=1.001", nil, ""}, // malformed weights drop the element
		{"gzip;q=1.5", nil, ""},
		{"gzip;q=0.0001", nil, ""},
		{"gzip;q=abc", nil, ""},
		{"gzip;q=", nil, ""},
		{"gzip;q=-1", nil, ""},
		{"gzip;q=.5", nil, ""},
		{"gzip;q=1., br;q=0.", nil, "gzip"},
		{"gzip;q=0.8;level=9", nil, "gzip"},
		{"gzip;level=9", nil, "gzip"},
		{"deflate, compress", nil, ""},
		{"gzip;q=0, gzip", nil, ""}, // the first entry counts
		{" ,, gzip ,", nil, "gzip"},
		{"g zip", nil, ""},
		{"gzip\x00", nil, ""},
		{"br;q=0.3,gzip;q=0.2,zstd;q=0.1", nil, "br"},
	} {
		offered := c.offered
		if offered == nil {
			offered = serverOrder
		}
		if got := negotiated([]string{c.ae}, offered); got != c.want {
			t.Errorf("Accept-Encoding %q (offered %v): got %q, want %q", c.ae, offered, got, c.want)
		}
		if got := refChoose([]string{c.ae}, offered); got != c.want {
			t.Errorf("reference, Accept-Encoding %q: got %q, want %q (the oracle disagrees with the table)", c.ae, got, c.want)
		}
	}
	// Field lines combine.
	if got := negotiated([]string{"gzip;q=0.1", "br"}, serverOrder); got != "br" {
		t.Errorf("two lines: got %q, want br", got)
	}
	if got := negotiated([]string{"gzip;q=0", "gzip"}, serverOrder); got != "" {
		t.Errorf("repeat on a second line: got %q, want identity", got)
	}
}

func TestParseQ(t *testing.T) {
	for s, want := range map[string]int16{
		"0": 0, "1": 1000, "0.5": 500, "0.25": 250, "0.125": 125, "1.000": 1000,
		"0.": 0, "1.": 1000, "0.001": 1, "0.999": 999,
	} {
		if q, ok := parseQ(s); !ok || q != want {
			t.Errorf("parseQ(%q) = %d, %v; want %d", s, q, ok, want)
		}
	}
	for _, s := range []string{"", "2", "1.1", "1.0001", "0.1234", ".5", "-0", "0,5", "0.5 ", "1e0", "01", "0x1"} {
		if q, ok := parseQ(s); ok {
			t.Errorf("parseQ(%q) = %d, want malformed", s, q)
		}
	}
}

func TestParseAllocs(t *testing.T) {
	vals := []string{"gzip;q=0.8, deflate, br;q=0.9, zstd, identity;q=0.1, *;q=0"}
	n := testing.AllocsPerRun(100, func() {
		a := parseAcceptEncoding(vals)
		_ = a.choose(serverOrder)
	})
	if n != 0 {
		t.Errorf("negotiation allocates %v times, want 0", n)
	}
}

// FuzzAcceptEncoding checks the negotiation against refChoose, a plain
// reimplementation of the same rules, and that what it picks is offered
// and acceptable.
func FuzzAcceptEncoding(f *testing.F) {
	for _, s := range []string{
		"gzip, deflate, br, zstd", "br;q=0.5, gzip", "*;q=0, identity", "gzip;q=0.5, identity",
		"x-gzip;q=1.000", " , ;q=1, gzip ;q=0.3", "zstd;q=0.001;foo=\"a,b\"", "GZIP;Q=0.",
		"identity;q=0, *;q=0", "br;q=1.5", "\tgzip\t;\tq=0.7\t",
	} {
		f.Add(s, "")
		f.Add(s, "br;q=0.9")
	}
	f.Fuzz(func(t *testing.T, line1, line2 string) {
		vals := []string{line1}
		if line2 != "" {
			vals = append(vals, line2)
		}
		for _, offered := range [][]codingID{serverOrder, {codingGzip, codingBr}, {codingBr}} {
			got := negotiated(vals, offered)
			if want := refChoose(vals, offered); got != want {
				t.Fatalf("%q offered %v: got %q, reference %q", vals, offered, got, want)
			}
			if got == "" {
				continue
			}
			if q, ok := refWeights(vals)[got]; ok && q == 0 {
				t.Fatalf("%q: chose %s, which has q=0", vals, got)
			}
		}
	})
}

var (
	tokenRE  = regexp.MustCompile("^[!#$%&'*+\\-.^_`|~0-9A-Za-z]+$")
	qvalueRE = regexp.MustCompile(`^(0(\.[0-9]{0,3})?|1(\.0{0,3})?)$`)
)

// refWeights is a deliberately naive reading of Accept-Encoding: a map of
// lower-cased coding (x-gzip as gzip) to its first weight, in thousandths.
func refWeights(vals []string) map[string]int {
	w := map[string]int{}
	for _, v := range vals {
		for _, e := range strings.Split(v, ",") {
			parts := strings.Split(e, ";")
			name := strings.ToLower(strings.Trim(parts[0], " \t"))
			if !tokenRE.MatchString(name) {
				continue
			}
			q, bad := 1000, false
			for _, p := range parts[1:] {
				k, val, _ := strings.Cut(p, "=")
				if strings.ToLower(strings.Trim(k, " \t")) != "q" {
					continue
				}
				val = strings.Trim(val, " \t")
				if !qvalueRE.MatchString(val) {
					bad = true
					break
				}
				fq, err := strconv.ParseFloat(strings.TrimSuffix(val, "."), 64)
				if err != nil {
					bad = true
					break
				}
				q = int(math.Round(fq * 1000))
			}
			if bad {
				continue
			}
			if name == "x-gzip" {
				name = "gzip"
			}
			if _, ok := w[name]; !ok {
				w[name] = q
			}
		}
	}
	return w
}

func refChoose(vals []string, offered []codingID) string {
	w := refWeights(vals)
	weight := func(name string) (int, bool) {
		if q, ok := w[name]; ok {
			return q, true
		}
		q, ok := w["*"]
		return q, ok
	}
	best, bestQ := "", 0
	for _, c := range offered {
		if q, ok := weight(c.String()); ok && q > bestQ {
			best, bestQ = c.String(), q
		}
	}
	if best == "" {
		return ""
	}
	if q, ok := weight("identity"); ok && q > bestQ {
		return ""
	}
	return best
}
