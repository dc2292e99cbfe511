package template

import (
	"fmt"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Vars are the request values the placeholders expand to. The proxy fills
// one per request that needs it; a nil *Vars expands every placeholder to
// nothing.
type Vars struct {
	ClientIP  string // {client_ip}: the client address (trusted_proxies honoured)
	RequestID string // {request_id}
	Route     string // {route}: the route's name
	// Host is {host}: the request host without its port. An IPv6 literal
	// should keep its brackets, as it must in a URL ("https://{host}/").
	Host   string
	Scheme string // {scheme}: http or https
	Path   string // {path}: the request path, decoded (URL.Path)
	Query  string // {query}: the raw query, still escaped, without "?"
	URI    string // {uri}: path?query as received, still escaped
}

// kind is what one part of a compiled template expands to.
type kind uint8

const (
	kindLiteral kind = iota
	kindClientIP
	kindRequestID
	kindRoute
	kindHost
	kindScheme
	kindPath
	kindQuery
	kindURI
	kindCapture
)

// knownPlaceholders is the list error messages offer.
const knownPlaceholders = "{client_ip} {request_id} {route} {host} {scheme} {path} {query} {uri}"

// placeholder resolves a placeholder's name. A switch rather than a map:
// no package state, and it compiles to a few comparisons.
func placeholder(name string) (kind, bool) {
	switch name {
	case "client_ip":
		return kindClientIP, true
	case "request_id":
		return kindRequestID, true
	case "route":
		return kindRoute, true
	case "host":
		return kindHost, true
	case "scheme":
		return kindScheme, true
	case "path":
		return kindPath, true
	case "query":
		return kindQuery, true
	case "uri":
		return kindURI, true
	}
	return 0, false
}

// field is the value of placeholder k in v.
func (v *Vars) field(k kind) string {
	if v == nil {
		return ""
	}
	switch k {
	case kindClientIP:
		return v.ClientIP
	case kindRequestID:
		return v.RequestID
	case kindRoute:
		return v.Route
	case kindHost:
		return v.Host
	case kindScheme:
		return v.Scheme
	case kindPath:
		return v.Path
	case kindQuery:
		return v.Query
	case kindURI:
		return v.URI
	}
	return ""
}

// part is one piece of a compiled template: literal text, a placeholder,
// or capture group number group (names are resolved to numbers at compile
// time, so expanding never looks a name up).
type part struct {
	kind  kind
	text  string
	group int
}

// Template is a compiled template. The zero value and nil expand to
// nothing.
type Template struct {
	src      string
	parts    []part
	literal  bool   // no placeholders or captures: lit is the whole expansion
	lit      string // the unescaped text when literal
	captures bool
}

// SyntaxError is a template that does not compile. Col is the 1-based
// column, counted in characters, of the construct at fault.
type SyntaxError struct {
	Col int
	Msg string
}

func (e *SyntaxError) Error() string { return fmt.Sprintf("column %d: %s", e.Col, e.Msg) }

// errAt builds the SyntaxError for byte offset i of s.
func errAt(s string, i int, format string, args ...any) error {
	return &SyntaxError{Col: utf8.RuneCountInString(s[:i]) + 1, Msg: fmt.Sprintf(format, args...)}
}

// Compile parses s. re is the regular expression whose capture groups the
// template may refer to; nil allows none. Every reference is checked
// against re here, so Expand never meets a group that cannot exist.
func Compile(s string, re *regexp.Regexp) (*Template, error) {
	t := &Template{src: s}
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			t.parts = append(t.parts, part{kind: kindLiteral, text: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(s); {
		switch c := s[i]; c {
		case '{':
			if i+1 < len(s) && s[i+1] == '{' {
				lit.WriteByte('{')
				i += 2
				continue
			}
			end := strings.IndexByte(s[i+1:], '}')
			if end < 0 {
				return nil, errAt(s, i, `unclosed "{" (write "{{" for a literal brace)`)
			}
			name := s[i+1 : i+1+end]
			k, ok := placeholder(name)
			if !ok {
				return nil, errAt(s, i, "unknown placeholder %q; known: %s", "{"+name+"}", knownPlaceholders)
			}
			flush()
			t.parts = append(t.parts, part{kind: k})
			i += end + 2
		case '}':
			if i+1 < len(s) && s[i+1] == '}' {
				lit.WriteByte('}')
				i += 2
				continue
			}
			return nil, errAt(s, i, `unmatched "}" (write "}}" for a literal brace)`)
		case '$':
			if i+1 < len(s) && s[i+1] == '$' {
				lit.WriteByte('$')
				i += 2
				continue
			}
			group, next, err := capture(s, i, re)
			if err != nil {
				return nil, err
			}
			flush()
			t.parts = append(t.parts, part{kind: kindCapture, group: group})
			t.captures = true
			i = next
		default:
			lit.WriteByte(c)
			i++
		}
	}
	flush()
	switch {
	case len(t.parts) == 0:
		t.literal = true
	case len(t.parts) == 1 && t.parts[0].kind == kindLiteral:
		t.literal, t.lit = true, t.parts[0].text
	}
	return t, nil
}

// capture parses the reference starting at s[i] == '$' the way
// regexp.Expand does, and resolves it against re. next is the offset
// after the reference.
func capture(s string, i int, re *regexp.Regexp) (group, next int, err error) {
	var name string
	brace := i+1 < len(s) && s[i+1] == '{'
	if brace {
		end := strings.IndexByte(s[i+2:], '}')
		if end < 0 {
			return 0, 0, errAt(s, i, `unclosed "${"`)
		}
		name, next = s[i+2:i+2+end], i+2+end+1
		if name == "" || !isName(name) {
			return 0, 0, errAt(s, i, "invalid capture reference %q: a group is a number or a name of letters, digits and _", s[i:next])
		}
	} else {
		next = i + 1
		for next < len(s) {
			r, size := utf8.DecodeRuneInString(s[next:])
			if !isNameRune(r) {
				break
			}
			next += size
		}
		name = s[i+1 : next]
		if name == "" {
			return 0, 0, errAt(s, i, `"$" is not followed by a capture group (write "$$" for a literal dollar)`)
		}
	}
	ref := s[i:next]
	if re == nil {
		return 0, 0, errAt(s, i, "%s refers to a capture group, but there is no regular expression to capture from (write $$ for a literal dollar)", ref)
	}
	if num := groupNumber(name); num >= 0 {
		if n := re.NumSubexp(); num > n {
			return 0, 0, errAt(s, i, "%s: the regular expression has %s", ref, groups(n))
		}
		return num, next, nil
	}
	if g := re.SubexpIndex(name); g >= 0 {
		return g, next, nil
	}
	msg := fmt.Sprintf("%s: the regular expression has no group named %q", ref, name)
	if !brace {
		// $1x is the group named "1x" (as in regexp.Expand); say how to
		// write what was almost certainly meant.
		d := 0
		for d < len(name) && '0' <= name[d] && name[d] <= '9' {
			d++
		}
		if d > 0 {
			if num := groupNumber(name[:d]); num >= 0 && num <= re.NumSubexp() {
				msg += fmt.Sprintf(" (write ${%s}%s for group %s followed by %q)", name[:d], name[d:], name[:d], name[d:])
			}
		}
	}
	return 0, 0, errAt(s, i, "%s", msg)
}

// groupNumber is name as a group number, or -1 when regexp.Expand would
// take it as a name: not all digits, a leading zero, or 1e8 and above.
func groupNumber(name string) int {
	num := 0
	for i := 0; i < len(name); i++ {
		if name[i] < '0' || '9' < name[i] || num >= 1e8 {
			return -1
		}
		num = num*10 + int(name[i]-'0')
	}
	if name == "" || name[0] == '0' && len(name) > 1 {
		return -1
	}
	return num
}

func groups(n int) string {
	switch n {
	case 0:
		return "no capture groups"
	case 1:
		return "1 capture group"
	}
	return fmt.Sprintf("%d capture groups", n)
}

// isNameRune is regexp.Expand's notion of a name character.
func isNameRune(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) || r == '_' }

func isName(s string) bool {
	for _, r := range s {
		if !isNameRune(r) {
			return false
		}
	}
	return true
}

// String is the template as written.
func (t *Template) String() string {
	if t == nil {
		return ""
	}
	return t.src
}

// Literal returns the expansion of a template without placeholders or
// captures, so a caller can skip expanding per request.
func (t *Template) Literal() (string, bool) {
	if t == nil {
		return "", true
	}
	return t.lit, t.literal
}

// UsesCaptures reports whether the template refers to capture groups: when
// it does not, the caller need not run the regular expression at all.
func (t *Template) UsesCaptures() bool { return t != nil && t.captures }

// Expand appends the expansion to dst. captures is the submatch index
// slice of the template's regular expression on src
// (FindStringSubmatchIndex); it may be nil when UsesCaptures is false or
// the expression did not match, and a group that did not take part in
// the match expands to nothing. Values are copied as they are: see
// ExpandHeader and Redirect.Location for the forms that are safe on the
// wire.
func (t *Template) Expand(dst []byte, v *Vars, src string, captures []int) []byte {
	if t == nil {
		return dst
	}
	if t.literal {
		return append(dst, t.lit...)
	}
	for i := range t.parts {
		p := &t.parts[i]
		switch p.kind {
		case kindLiteral:
			dst = append(dst, p.text...)
		case kindCapture:
			// Bounds are checked rather than trusted: captures from another
			// expression or another string must not crash the proxy.
			if j := 2 * p.group; j+1 < len(captures) {
				if a, b := captures[j], captures[j+1]; 0 <= a && a <= b && b <= len(src) {
					dst = append(dst, src[a:b]...)
				}
			}
		default:
			dst = append(dst, v.field(p.kind)...)
		}
	}
	return dst
}

// ExpandHeader is Expand for a header value: every control character but
// HTAB in the expansion becomes a space. CR and LF would split the header
// and NUL truncates it in some servers; Go's transport refuses to send a
// request with any of them, so a client-controlled {path} could otherwise
// make the upstream request fail.
func (t *Template) ExpandHeader(dst []byte, v *Vars, src string, captures []int) []byte {
	n := len(dst)
	dst = t.Expand(dst, v, src, captures)
	for i := n; i < len(dst); i++ {
		if c := dst[i]; c < ' ' && c != '\t' || c == 0x7f {
			dst[i] = ' '
		}
	}
	return dst
}
