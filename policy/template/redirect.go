package template

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// Redirect is a compiled routes[].redirect: every request of the route is
// answered with Code and a Location built from To.
type Redirect struct {
	To   *Template
	Code int // 301, 302, 307 or 308
}

// CompileRedirect compiles a redirect to template to, whose captures come
// from re (the route's match.path_regex, or nil). Code 0 means 302; other
// codes than 301, 302, 307 and 308 are refused, because any other 3xx
// either is not a redirect or is not followed by browsers.
func CompileRedirect(to string, code int, re *regexp.Regexp) (*Redirect, error) {
	switch code {
	case 0:
		code = 302
	case 301, 302, 307, 308:
	default:
		return nil, fmt.Errorf("code: want 301, 302, 307 or 308, not %d", code)
	}
	if to == "" {
		return nil, fmt.Errorf("to: missing target")
	}
	t, err := Compile(to, re)
	if err != nil {
		return nil, fmt.Errorf("to: %w", err)
	}
	return &Redirect{To: t, Code: code}, nil
}

// Location builds the Location value for a request. An http or https URL
// with a host (and no user info, a phishing device) is kept; anything
// else is made a path on this site: a leading "/" is added when missing,
// and a run of leading slashes and backslashes becomes one, because
// browsers read "//evil.com" and "/\evil.com" as another host and
// captures are client-controlled. Bytes a URL cannot hold (controls,
// space, non-ASCII, a "%" that starts no escape) are percent-encoded
// first, so CR, LF and NUL never reach the header and a tab that browsers
// would strip cannot hide a second slash. {path} and captures are the
// decoded path: use {uri} to keep the client's own escaping.
func (rd *Redirect) Location(v *Vars, src string, captures []int) string {
	if rd == nil || rd.To == nil {
		return "/"
	}
	if lit, ok := rd.To.Literal(); ok {
		return safeLocation([]byte(lit))
	}
	var buf [256]byte
	return safeLocation(rd.To.Expand(buf[:0], v, src, captures))
}

const upperHex = "0123456789ABCDEF"

// safeLocation turns an expansion into a Location value (see Location).
func safeLocation(raw []byte) string {
	var b strings.Builder
	b.Grow(len(raw) + 1)
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case c <= ' ' || c >= 0x7f,
			c == '%' && !(i+2 < len(raw) && isHex(raw[i+1]) && isHex(raw[i+2])):
			b.WriteByte('%')
			b.WriteByte(upperHex[c>>4])
			b.WriteByte(upperHex[c&15])
		default:
			b.WriteByte(c)
		}
	}
	e := b.String()
	if absoluteHTTP(e) {
		return e
	}
	rest := strings.TrimLeft(e, `/\`)
	if len(rest) == len(e)-1 && e[0] == '/' {
		return e // already a path with a single leading slash
	}
	return "/" + rest
}

// absoluteHTTP reports whether s is an http(s) URL with a host and without
// user info.
func absoluteHTTP(s string) bool {
	if len(s) < len("http://x") || !(hasPrefixFold(s, "http://") || hasPrefixFold(s, "https://")) {
		return false
	}
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Opaque == "" && u.User == nil && u.Host != "" && u.Hostname() != ""
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}
