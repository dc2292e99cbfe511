package config

import (
	"fmt"
	"net/textproto"
	"reflect"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Duration is a time.Duration written as a Go duration string ("500ms").
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// UnmarshalYAML parses a Go duration, naming the line on failure.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return lineErr(n, "expected a duration such as 500ms or 30s")
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return lineErr(n, "invalid duration %q (use a Go duration such as 500ms or 30s)", n.Value)
	}
	if v < 0 {
		return lineErr(n, "negative duration %q", n.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration back as a string.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// Size is a byte count written as a number or with a KiB/MiB/GiB suffix.
type Size int64

var sizeUnits = []struct {
	suffix string
	mult   int64
}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"B", 1}}

// UnmarshalYAML parses "64KiB", "1MiB" or a plain number of bytes.
func (s *Size) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return lineErr(n, "expected a size such as 64KiB")
	}
	v := strings.TrimSpace(n.Value)
	mult := int64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(v, u.suffix) {
			v, mult = strings.TrimSpace(strings.TrimSuffix(v, u.suffix)), u.mult
			break
		}
	}
	num, err := strconv.ParseInt(v, 10, 64)
	if err != nil || num < 0 || num > (1<<62)/mult {
		return lineErr(n, "invalid size %q (use bytes or KiB, MiB, GiB)", n.Value)
	}
	*s = Size(num * mult)
	return nil
}

// StringList accepts a single scalar or a list of scalars.
type StringList []string

// UnmarshalYAML accepts `x` and `[x, y]`.
func (l *StringList) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		*l = StringList{n.Value}
		return nil
	case yaml.SequenceNode:
		out := make(StringList, 0, len(n.Content))
		for _, c := range n.Content {
			if c.Kind != yaml.ScalarNode {
				return lineErr(c, "expected a string")
			}
			out = append(out, c.Value)
		}
		*l = out
		return nil
	}
	return lineErr(n, "expected a string or a list of strings")
}

// UnmarshalYAML accepts `200` and `"200-299"`.
func (r *StatusRange) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return lineErr(n, "expected a status code or a range such as 200-299")
	}
	lo, hi, isRange := strings.Cut(n.Value, "-")
	a, err1 := strconv.Atoi(strings.TrimSpace(lo))
	b := a
	var err2 error
	if isRange {
		b, err2 = strconv.Atoi(strings.TrimSpace(hi))
	}
	if err1 != nil || err2 != nil || a < 100 || b > 599 || a > b {
		return lineErr(n, "invalid status %q (use a code 100-599 or a range such as 200-299)", n.Value)
	}
	*r = StatusRange{Lo: a, Hi: b}
	return nil
}

// MarshalYAML writes the range back in its short form.
func (r StatusRange) MarshalYAML() (any, error) {
	if r.Lo == r.Hi {
		return r.Lo, nil
	}
	return fmt.Sprintf("%d-%d", r.Lo, r.Hi), nil
}

// Contains reports whether code is in the range.
func (r StatusRange) Contains(code int) bool { return code >= r.Lo && code <= r.Hi }

// UnmarshalYAML accepts `"host:port"` and `{address: host:port, weight: N}`.
func (e *Endpoint) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*e = Endpoint{Address: n.Value}
		return nil
	}
	type plain Endpoint
	var p plain
	if err := decodeStrict(n, &p, endpointKeys); err != nil {
		return err
	}
	*e = Endpoint(p)
	return nil
}

// UnmarshalYAML accepts a scalar (exact match) or a mapping.
func (m *StringMatch) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*m = StringMatch{Exact: n.Value}
		return nil
	}
	type plain StringMatch
	var p plain
	if err := decodeStrict(n, &p, stringMatchKeys); err != nil {
		return err
	}
	*m = StringMatch(p)
	return nil
}

// endpointKeys, stringMatchKeys and accessLogKeys are the keys the mapping
// forms of Endpoint, StringMatch and AccessLog take. They are read from the
// struct tags once, since a config has thousands of matchers, and never
// written after.
var (
	endpointKeys    = yamlFields(reflect.TypeFor[Endpoint]())
	stringMatchKeys = yamlFields(reflect.TypeFor[StringMatch]())
	accessLogKeys   = yamlFields(reflect.TypeFor[AccessLog]())
)

// decodeStrict decodes a mapping node into v, rejecting keys that are not
// in keys (v's yaml fields). The yaml package's Node.Decode has no strict
// mode, so the keys are checked first.
func decodeStrict(n *yaml.Node, v any, keys map[string]structField) error {
	if n.Kind != yaml.MappingNode {
		return lineErr(n, "expected a mapping")
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if _, ok := keys[k.Value]; !ok {
			return lineErr(k, "unknown key %q", k.Value)
		}
	}
	return n.Decode(v)
}

// lineErr reports a problem at n's line as a *yaml.TypeError, which the yaml
// decoder collects and continues past, so one run reports every problem.
func lineErr(n *yaml.Node, format string, args ...any) error {
	return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: col %d: %s", n.Line, n.Column, fmt.Sprintf(format, args...))}}
}

// KeyKind is what a rate limit counts requests by.
type KeyKind uint8

// The rate limit key kinds.
const (
	KeyClientIP KeyKind = iota + 1 // the client address (trusted_proxies honoured)
	KeyHeader                      // a request header's value
	KeyCookie                      // a request cookie's value
)

// RateLimitKey is a rate limit's key: client_ip, header:NAME or
// cookie:NAME.
type RateLimitKey struct {
	Kind KeyKind
	Name string // the header (canonical form) or cookie name
}

// UnmarshalYAML accepts client_ip, header:NAME and cookie:NAME.
func (k *RateLimitKey) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return lineErr(n, "expected client_ip, header:NAME or cookie:NAME")
	}
	kind, name, _ := strings.Cut(n.Value, ":")
	switch {
	case n.Value == "client_ip":
		*k = RateLimitKey{Kind: KeyClientIP}
	case kind == "header" && validToken(name):
		*k = RateLimitKey{Kind: KeyHeader, Name: textproto.CanonicalMIMEHeaderKey(name)}
	case kind == "cookie" && validToken(name):
		*k = RateLimitKey{Kind: KeyCookie, Name: name}
	default:
		return lineErr(n, "invalid rate limit key %q: want client_ip, header:NAME or cookie:NAME", n.Value)
	}
	return nil
}

// MarshalYAML writes the key back in its config form.
func (k RateLimitKey) MarshalYAML() (any, error) { return k.String(), nil }

// String is the key in its config form.
func (k RateLimitKey) String() string {
	switch k.Kind {
	case KeyHeader:
		return "header:" + k.Name
	case KeyCookie:
		return "cookie:" + k.Name
	case KeyClientIP:
		return "client_ip"
	}
	return ""
}

// validToken reports whether s is a non-empty RFC 9110 token (a header
// field or cookie name).
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("\"(),/:;<=>?@[\\]{}", c) >= 0 {
			return false
		}
	}
	return true
}
