package compress

import (
	"strings"

	"golang.org/x/net/http/httpguts"
)

// codingID names the content codings the negotiation knows.
type codingID uint8

const (
	codingZstd codingID = iota
	codingBr
	codingGzip
	numCodings
)

func (c codingID) String() string {
	switch c {
	case codingZstd:
		return "zstd"
	case codingBr:
		return "br"
	case codingGzip:
		return "gzip"
	}
	return "?"
}

// parseCoding returns the id of a coding name as a server names it (lower
// case, as in config).
func parseCoding(s string) (codingID, bool) {
	for c := range numCodings {
		if s == c.String() {
			return c, true
		}
	}
	return 0, false
}

// unset marks a coding the Accept-Encoding field does not name.
const unset = -1

// acceptance is what an Accept-Encoding field says about the codings
// Meridian can produce, as qvalues in thousandths (0–1000), or unset.
type acceptance struct {
	q        [numCodings]int16
	identity int16
	star     int16
}

// parseAcceptEncoding reads the Accept-Encoding field lines vals (RFC 9110
// 12.5.3): a comma-separated list of codings, each with an optional weight
// ";q=" qvalue. Names are case-insensitive and "x-gzip" is gzip (RFC 9110
// 8.4.1.3). Codings Meridian cannot produce are skipped, and so is an
// element whose name is not a token or whose qvalue is malformed: a
// coding the client did not clearly accept is not used. When a coding is
// named twice the first entry counts. It does not allocate and its time
// is linear in the field's length, which the server bounds.
func parseAcceptEncoding(vals []string) acceptance {
	a := acceptance{identity: unset, star: unset}
	for i := range a.q {
		a.q[i] = unset
	}
	for _, v := range vals {
		for v != "" {
			var elem string
			elem, v, _ = strings.Cut(v, ",")
			name, q, ok := parseElement(elem)
			if !ok {
				continue
			}
			var slot *int16
			switch {
			case strings.EqualFold(name, "gzip"), strings.EqualFold(name, "x-gzip"):
				slot = &a.q[codingGzip]
			case strings.EqualFold(name, "br"):
				slot = &a.q[codingBr]
			case strings.EqualFold(name, "zstd"):
				slot = &a.q[codingZstd]
			case strings.EqualFold(name, "identity"):
				slot = &a.identity
			case name == "*":
				slot = &a.star
			default:
				continue
			}
			if *slot == unset {
				*slot = q
			}
		}
	}
	return a
}

// parseElement splits one list element into its coding name and qvalue
// (1000 when it has no weight). ok is false for an empty element, a name
// that is not a token, or a malformed qvalue. Parameters other than q are
// ignored.
func parseElement(elem string) (name string, q int16, ok bool) {
	name, params, _ := strings.Cut(elem, ";")
	name = strings.Trim(name, " \t")
	if !httpguts.ValidHeaderFieldName(name) {
		return "", 0, false
	}
	q = 1000
	for params != "" {
		var p string
		p, params, _ = strings.Cut(params, ";")
		k, v, _ := strings.Cut(p, "=")
		if !strings.EqualFold(strings.Trim(k, " \t"), "q") {
			continue
		}
		if q, ok = parseQ(strings.Trim(v, " \t")); !ok {
			return "", 0, false
		}
	}
	return name, q, true
}

// parseQ parses a qvalue (RFC 9110 12.4.2): "0" ["." 0*3DIGIT] or
// "1" ["." 0*3("0")], into thousandths.
func parseQ(s string) (int16, bool) {
	if s == "" || len(s) > 5 || (s[0] != '0' && s[0] != '1') {
		return 0, false
	}
	q := int16(s[0]-'0') * 1000
	if len(s) == 1 {
		return q, true
	}
	if s[1] != '.' {
		return 0, false
	}
	scale := int16(100)
	for i := 2; i < len(s); i++ {
		d := s[i]
		if d < '0' || d > '9' || (q == 1000 && d != '0') {
			return 0, false
		}
		q += int16(d-'0') * scale
		scale /= 10
	}
	return q, true
}

// choose returns the index in offered (the server's preference order) of
// the coding to use, or -1 for none (identity). A coding's weight is its
// own entry's, else the "*" entry's, else it is not acceptable; weight 0
// excludes it. The highest weight wins and ties go to the server's
// preference. Identity (RFC 9110 12.5.3) wins only when the client weighs
// it strictly above every acceptable coding, by its own entry or "*"'s:
// "gzip;q=0.5, identity" means the client prefers the response
// uncompressed (Caddy and Traefik compress it anyway). Identity is also
// the answer when no coding is acceptable, even if "identity;q=0" or
// "*;q=0" ruled it out: RFC 9110 lets the server send an unencoded
// response then, which is what nginx, Caddy and Traefik do, rather than
// fail the request with 406.
func (a *acceptance) choose(offered []codingID) int {
	best, bestQ := -1, int16(0)
	for i, c := range offered {
		q := a.q[c]
		if q == unset {
			q = a.star
		}
		if q > bestQ {
			best, bestQ = i, q
		}
	}
	if best < 0 {
		return -1
	}
	id := a.identity
	if id == unset {
		id = a.star
	}
	if id > bestQ {
		return -1
	}
	return best
}
