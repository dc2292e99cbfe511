package ratelimit

import (
	"math/bits"
	"net/http"
	"strconv"
	"time"
)

// Decision is the outcome of one Take, with what the RateLimit header
// fields report about it.
type Decision struct {
	Allowed bool
	// Limit is the effective quota per Window: Requests/div, at least 1.
	Limit int
	// Remaining is the whole tokens left after this request (0 when
	// refused). It can exceed Limit when Burst does.
	Remaining int
	// Reset is how long until the bucket is full again if no request
	// comes: the draft's "t" on an allowed request.
	Reset time.Duration
	// RetryAfter is, when refused, how long until one token is available
	// (more than 0); 0 when allowed.
	RetryAfter time.Duration
	// Window is the Spec's Per.
	Window time.Duration
}

// Header field names in canonical form, so SetHeaders can assign them to
// the map directly.
const (
	fieldPolicy     = "Ratelimit-Policy"
	fieldRateLimit  = "Ratelimit"
	fieldRetryAfter = "Retry-After"
)

// sfMaxInt is the largest Structured Fields Integer (RFC 9651 §3.3.1);
// larger values are written as it.
const sfMaxInt = 999_999_999_999_999

// SetHeaders writes the decision as the fields of
// draft-ietf-httpapi-ratelimit-headers-11 (Structured Fields, one item
// named by the policy):
//
//	RateLimit-Policy: "name";q=Limit;w=Window-in-seconds
//	RateLimit: "name";r=Remaining;t=Reset-in-seconds
//
// and, when refused, Retry-After: RetryAfter in whole seconds, rounded up,
// at least 1. name is the policy's name (the route's); it is written as an
// sf-string with " and \ escaped, and any byte outside printable ASCII (and
// % itself) percent-encoded as %xx, so that any name gives a valid field.
//
// The draft's w is whole seconds. A Window that is not (500ms, 1.5s) is
// advertised over the next whole second up with the quota scaled to it,
// rounded down: 5 per 500ms is q=10;w=1, 3 per 1.5s is q=4;w=2.
//
// t is the seconds until the bucket is full, rounded up; on a refusal it
// is the Retry-After value instead. Section 6 of -11 says Retry-After
// should not point earlier than the end of the effective window (-09:
// should point at the same time as t), and with r=0 the window in which
// the client can use no more than r is exactly until the next token.
//
// The fields are set, replacing earlier values in h; an upstream's own
// RateLimit items added to h afterwards extend the lists, as the draft
// allows.
func (d Decision) SetHeaders(h http.Header, name string) {
	q, w := policyWindow(d.Limit, d.Window)
	r := min(max(int64(d.Remaining), 0), sfMaxInt)
	t := ceilSeconds(d.Reset)
	var ra int64
	if !d.Allowed {
		ra = max(ceilSeconds(d.RetryAfter), 1)
		r, t = 0, ra
	}

	var a [128]byte
	buf := appendSFString(a[:0], name)
	n := len(buf)
	buf = append(buf, ";q="...)
	buf = strconv.AppendInt(buf, q, 10)
	buf = append(buf, ";w="...)
	buf = strconv.AppendInt(buf, w, 10)
	p := len(buf)
	buf = append(buf, buf[:n]...)
	buf = append(buf, ";r="...)
	buf = strconv.AppendInt(buf, r, 10)
	buf = append(buf, ";t="...)
	buf = strconv.AppendInt(buf, t, 10)
	s := string(buf) // one allocation for both values

	vals := make([]string, 2, 3)
	vals[0], vals[1] = s[:p], s[p:]
	// Capacity-limited slices, so an Add to one field never writes into
	// the next one's value.
	h[fieldPolicy] = vals[0:1:1]
	h[fieldRateLimit] = vals[1:2:2]
	if !d.Allowed {
		vals = append(vals, strconv.FormatInt(ra, 10))
		h[fieldRetryAfter] = vals[2:3:3]
	}
}

// policyWindow returns the draft's q and w for limit per per: w is per in
// whole seconds, rounded up, and q the quota over w, rounded down.
func policyWindow(limit int, per time.Duration) (q, w int64) {
	l := uint64(max(limit, 0))
	if per <= 0 {
		return min(int64(l), sfMaxInt), 1
	}
	w = ceilSeconds(per)
	if per%time.Second == 0 {
		q = int64(min(l, sfMaxInt))
	} else {
		hi, lo := bits.Mul64(l, uint64(w)*uint64(time.Second))
		if hi >= uint64(per) {
			q = sfMaxInt
		} else {
			x, _ := bits.Div64(hi, lo, uint64(per))
			q = int64(min(x, sfMaxInt))
		}
	}
	return q, min(w, sfMaxInt)
}

// ceilSeconds is d in whole seconds, rounded up; 0 for d <= 0.
func ceilSeconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	s := int64(d / time.Second)
	if d%time.Second != 0 {
		s++
	}
	return min(s, sfMaxInt)
}

// appendSFString appends s as an RFC 9651 sf-string: " and \ escaped with
// \, and bytes an sf-string cannot hold (outside 0x20-0x7E), plus % so the
// encoding stays reversible, as %xx in lowercase hex, the way RFC 9651
// Display Strings encode them.
func appendSFString(buf []byte, s string) []byte {
	const hex = "0123456789abcdef"
	buf = append(buf, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			buf = append(buf, '\\', c)
		case c == '%' || c < 0x20 || c > 0x7e:
			buf = append(buf, '%', hex[c>>4], hex[c&0xf])
		default:
			buf = append(buf, c)
		}
	}
	return append(buf, '"')
}
