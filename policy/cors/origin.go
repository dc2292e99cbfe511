package cors

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// wildcard is a compiled "scheme://*.suffix[:port]" pattern. It matches an
// origin with exactly that scheme and port whose host is suffix preceded by
// one or more labels: any subdomain of suffix, at any depth, but not suffix
// itself. That is what rs/cors and Spring's allowedOriginPatterns do with
// a leading "*."; a TLS wildcard certificate, by contrast, covers one
// label only.
type wildcard struct {
	prefix string // "https://"
	suffix string // ".example.com"
	port   string // ":8443", or "" for the scheme's default
}

func (w wildcard) match(origin string) bool {
	rest, ok := strings.CutPrefix(origin, w.prefix)
	if !ok {
		return false
	}
	if w.port != "" {
		if rest, ok = strings.CutSuffix(rest, w.port); !ok {
			return false
		}
	}
	sub, ok := strings.CutSuffix(rest, w.suffix)
	return ok && isLabels(sub)
}

// isLabels reports whether s is one or more dot-separated, non-empty
// labels of lower-case letters, digits and hyphens: the subdomain part of
// a host as a browser serializes it in Origin.
func isLabels(s string) bool {
	if s == "" {
		return false
	}
	n := 0 // length of the current label
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '.':
			if n == 0 {
				return false
			}
			n = 0
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-':
			n++
		default:
			return false
		}
	}
	return n > 0
}

// pattern is one parsed entry of Spec.Origins.
type pattern struct {
	any   bool      // "*"
	exact string    // a serialized origin, or "null"
	wild  *wildcard // "scheme://*.suffix[:port]"
}

// parsePattern parses an allowed origin: "*", "null", an origin
// "scheme://host[:port]", or one with a leading wildcard label,
// "scheme://*.example.com[:port]". It returns the origin as a browser
// serializes it (RFC 6454 6.2, the URL standard): scheme and host in lower
// case, the scheme's default port left out, so that matching can compare
// bytes.
func parsePattern(s string) (pattern, error) {
	switch s {
	case "*":
		return pattern{any: true}, nil
	case "null":
		return pattern{exact: "null"}, nil
	}
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return pattern{}, fmt.Errorf("origin %q: write an internationalized host in its ASCII (xn--) form, as browsers send it", s)
		}
	}
	lower := strings.ToLower(s)
	scheme, rest, ok := strings.Cut(lower, "://")
	if !ok || !isScheme(scheme) {
		return pattern{}, fmt.Errorf("origin %q: want scheme://host[:port], e.g. https://app.example.com", s)
	}
	if i := strings.IndexAny(rest, "/?#@\\ \t"); i >= 0 {
		if rest[i:] == "/" {
			return pattern{}, fmt.Errorf("origin %q: an origin has no trailing slash", s)
		}
		return pattern{}, fmt.Errorf("origin %q: an origin is scheme://host[:port], without path, query or user", s)
	}
	host, port, err := splitHostPort(rest)
	if err != nil {
		return pattern{}, fmt.Errorf("origin %q: %w", s, err)
	}
	if defaultPort(scheme) == port {
		port = ""
	}
	if port != "" {
		port = ":" + port
	}
	if sub, ok := strings.CutPrefix(host, "*."); ok {
		if err := checkHost(sub); err != nil {
			return pattern{}, fmt.Errorf("origin %q: %w", s, err)
		}
		if !strings.Contains(sub, ".") && sub != "localhost" {
			return pattern{}, fmt.Errorf("origin %q: a wildcard over a top-level domain trusts every site under it", s)
		}
		return pattern{wild: &wildcard{prefix: scheme + "://", suffix: "." + sub, port: port}}, nil
	}
	if strings.Contains(host, "*") {
		return pattern{}, fmt.Errorf("origin %q: a wildcard may only be the whole first label, as in https://*.example.com", s)
	}
	if !strings.HasPrefix(host, "[") {
		if err := checkHost(host); err != nil {
			return pattern{}, fmt.Errorf("origin %q: %w", s, err)
		}
	}
	return pattern{exact: scheme + "://" + host + port}, nil
}

// isScheme reports whether s is a URL scheme: a letter, then letters,
// digits, "+", "-" or ".".
func isScheme(s string) bool {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '+' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// splitHostPort splits a lower-cased authority into its host (an IPv6
// literal keeps its brackets, in canonical form) and its port, returned
// without leading zeros, or "".
func splitHostPort(s string) (host, port string, err error) {
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return "", "", errors.New("unclosed IPv6 literal")
		}
		a, err := netip.ParseAddr(s[1:end])
		if err != nil || !a.Is6() || a.Zone() != "" {
			return "", "", fmt.Errorf("bad IPv6 literal %q", s[:end+1])
		}
		host, s = "["+a.String()+"]", s[end+1:]
		if s == "" {
			return host, "", nil
		}
		if s[0] != ':' {
			return "", "", errors.New("junk after the IPv6 literal")
		}
		port = s[1:]
	} else {
		var ok bool
		if host, port, ok = strings.Cut(s, ":"); !ok {
			return host, "", nil
		}
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 || port[0] == '+' || port[0] == '-' {
		return "", "", fmt.Errorf("bad port %q", port)
	}
	return host, strconv.Itoa(n), nil
}

// checkHost checks a host name as an origin carries it: labels of letters,
// digits and hyphens, each 1 to 63 bytes (an IPv4 address passes too).
func checkHost(h string) error {
	if h == "" {
		return errors.New("no host")
	}
	if len(h) > 253 {
		return errors.New("host longer than 253 bytes")
	}
	for label := range strings.SplitSeq(h, ".") {
		if len(label) > 63 || !isLabels(label) {
			return fmt.Errorf("bad host %q", h)
		}
	}
	return nil
}

func defaultPort(scheme string) string {
	switch scheme {
	case "http", "ws":
		return "80"
	case "https", "wss":
		return "443"
	}
	return ""
}
