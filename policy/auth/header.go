package auth

import (
	"fmt"
	"net/http"
	"net/textproto"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// hopByHop are the RFC 9110 §7.6.1 connection-specific headers (plus the
// legacy Proxy-Connection and the proxy-auth pair, which belong to the hop
// to Meridian). They never cross a proxy, in either direction.
var hopByHop = [...]string{
	"Connection",
	"Proxy-Connection",
	"Keep-Alive",
	"Proxy-Authenticate",
	"Proxy-Authorization",
	"Te",
	"Trailer",
	"Transfer-Encoding",
	"Upgrade",
}

// removeHopByHop deletes hop-by-hop headers from h, including those the
// Connection header names.
func removeHopByHop(h http.Header) {
	for _, v := range h.Values("Connection") {
		for f := range strings.SplitSeq(v, ",") {
			if f = textproto.TrimString(f); f != "" {
				h.Del(f)
			}
		}
	}
	for _, k := range hopByHop {
		h.Del(k)
	}
}

// isHopByHop reports whether the canonical name k is a hop-by-hop header.
func isHopByHop(k string) bool {
	for _, h := range hopByHop {
		if k == h {
			return true
		}
	}
	return false
}

// checkHeaderName validates a header a policy is configured to set on the
// upstream request and returns its canonical form. Framing and hop-by-hop
// headers are refused: setting them would break the forwarded request
// rather than inform it.
func checkHeaderName(name string) (string, error) {
	if !httpguts.ValidHeaderFieldName(name) {
		return "", fmt.Errorf("header %q: not a valid header name", name)
	}
	k := textproto.CanonicalMIMEHeaderKey(name)
	switch {
	case isHopByHop(k), k == "Host", k == "Content-Length", k == "Content-Type", k == "Content-Encoding":
		return "", fmt.Errorf("header %q cannot be set by an auth policy", name)
	}
	return k, nil
}

// ApplyHeaders writes set onto dst, the upstream request's headers: a name
// with values replaces whatever dst had, a name without values deletes it.
// Use it for JWT.Verify's headers and Forward's Outcome.Copy, which list
// every configured header so a client-sent copy never survives.
func ApplyHeaders(dst, set http.Header) {
	for k, v := range set {
		if len(v) == 0 {
			dst.Del(k)
			continue
		}
		dst[k] = v
	}
}

// quote renders s as an RFC 9110 quoted-string: '"' and '\' escaped,
// control characters (which no header value may carry) dropped.
func quote(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 && c != '\t', c == 0x7f:
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// headerText makes s safe as a header value: control characters other than
// tab become spaces (a claim may hold a newline; a header may not).
func headerText(s string) string {
	bad := false
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 && c != '\t' || c == 0x7f {
			bad = true
			break
		}
	}
	if !bad {
		return s
	}
	b := []byte(s)
	for i, c := range b {
		if c < 0x20 && c != '\t' || c == 0x7f {
			b[i] = ' '
		}
	}
	return string(b)
}
