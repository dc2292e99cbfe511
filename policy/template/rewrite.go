package template

import (
	"errors"
	"fmt"
	"maps"
	"net/url"
	"regexp"
	"slices"
	"strings"
)

// Rewrite is a compiled routes[].rewrite: it changes the request's path
// and query before the request is forwarded. Build it with
// CompileRewrite, which checks every template against Re.
type Rewrite struct {
	// Re selects the paths to rewrite and provides the captures of To and
	// of the query values; nil with a non-nil To rewrites every path.
	Re *regexp.Regexp
	// To is the new path; nil keeps the path (a query-only rewrite).
	To *Template
	// QueryAdd sets parameters: each key ends up with exactly one value.
	QueryAdd map[string]*Template
	// QueryRemove drops every value of these parameters.
	QueryRemove []string

	addKeys []string // QueryAdd's keys, sorted: new parameters go in this order
}

// CompileRewrite compiles a rewrite. to replaces the whole path when
// pathRegex matches it, as nginx's rewrite does (not only the matched
// part, as Traefik's ReplacePathRegex does: anchor the expression and use
// captures for that). add and remove edit the query. Errors name the
// field at fault ("to: column 7: ...", "query.add[\"k\"]: ...").
func CompileRewrite(pathRegex, to string, add map[string]string, remove []string) (*Rewrite, error) {
	rw := &Rewrite{}
	if pathRegex != "" {
		re, err := regexp.Compile(pathRegex)
		if err != nil {
			return nil, fmt.Errorf("path_regex: %w", err)
		}
		rw.Re = re
		if to == "" {
			return nil, errors.New("to: missing: path_regex needs a to template for the new path")
		}
	}
	if to != "" {
		t, err := Compile(to, rw.Re)
		if err != nil {
			return nil, fmt.Errorf("to: %w", err)
		}
		rw.To = t
	}
	rw.addKeys = make([]string, 0, len(add))
	for k := range add {
		rw.addKeys = append(rw.addKeys, k)
	}
	slices.Sort(rw.addKeys)
	if len(add) > 0 {
		rw.QueryAdd = make(map[string]*Template, len(add))
	}
	for _, k := range rw.addKeys {
		if k == "" {
			return nil, errors.New("query.add: empty parameter name")
		}
		t, err := Compile(add[k], rw.Re)
		if err != nil {
			return nil, fmt.Errorf("query.add[%q]: %w", k, err)
		}
		rw.QueryAdd[k] = t
	}
	for i, k := range remove {
		if k == "" {
			return nil, fmt.Errorf("query.remove[%d]: empty parameter name", i)
		}
		if _, ok := add[k]; ok {
			// Add already replaces every value; both at once is a mistake
			// whose intended outcome cannot be guessed.
			return nil, fmt.Errorf("query.remove[%d]: %q is also in query.add, which already replaces its values", i, k)
		}
	}
	rw.QueryRemove = slices.Clone(remove)
	if rw.To == nil && len(add) == 0 && len(remove) == 0 {
		return nil, errors.New("nothing to rewrite: set path_regex and to, or query.add or query.remove")
	}
	return rw, nil
}

// Apply rewrites u in place with the request's vars and reports whether
// its path changed. The path is rewritten only when Re matches u.Path; the
// query is edited either way (captures in query values expand to nothing
// when the path did not match). The new path always starts with a single
// "/" and has its dot segments resolved (RFC 3986 §5.2.4), so a capture
// holding "../" cannot climb above the root. RawPath is cleared when the
// path changes, so the forwarded path is u.Path escaped afresh: a "?" or
// "#" decoded into a capture stays in the path, and a %2F becomes "/".
// Untouched query parameters keep their order and their bytes; a
// parameter in QueryAdd keeps its place if the request had it, and is
// appended otherwise.
func (rw *Rewrite) Apply(u *url.URL, v *Vars) bool {
	var caps []int
	matched := rw.Re == nil
	if rw.Re != nil {
		caps = rw.Re.FindStringSubmatchIndex(u.Path)
		matched = caps != nil
	}
	src := u.Path
	changed := false
	if rw.To != nil && matched {
		var buf [256]byte
		if p := cleanPath(rw.To.Expand(buf[:0], v, src, caps)); p != u.Path {
			u.Path, u.RawPath = p, ""
			changed = true
		}
	}
	if len(rw.QueryAdd) > 0 || len(rw.QueryRemove) > 0 {
		u.RawQuery = rw.editQuery(u.RawQuery, v, src, caps)
	}
	return changed
}

// editQuery applies QueryRemove and QueryAdd to the raw query q.
func (rw *Rewrite) editQuery(q string, v *Vars, src string, caps []int) string {
	keys := rw.addKeys
	if len(keys) != len(rw.QueryAdd) { // a Rewrite built by hand
		keys = slices.Sorted(maps.Keys(rw.QueryAdd))
	}
	placed := make([]bool, len(keys))
	out := make([]byte, 0, len(q)+32)
	var val []byte
	add := func(i int) {
		if len(out) > 0 {
			out = append(out, '&')
		}
		out = append(out, url.QueryEscape(keys[i])...)
		out = append(out, '=')
		val = rw.QueryAdd[keys[i]].Expand(val[:0], v, src, caps)
		out = append(out, url.QueryEscape(string(val))...)
		placed[i] = true
	}
	for q != "" {
		var piece string
		piece, q, _ = strings.Cut(q, "&")
		if piece == "" {
			continue
		}
		rawKey, _, _ := strings.Cut(piece, "=")
		key, err := url.QueryUnescape(rawKey)
		if err != nil {
			key = rawKey // kept as the client wrote it; matched as written
		}
		if slices.Contains(rw.QueryRemove, key) {
			continue
		}
		if i, ok := slices.BinarySearch(keys, key); ok {
			if !placed[i] {
				add(i)
			}
			continue
		}
		if len(out) > 0 {
			out = append(out, '&')
		}
		out = append(out, piece...)
	}
	for i := range keys {
		if !placed[i] {
			add(i)
		}
	}
	return string(out)
}

// cleanPath makes p an absolute path without dot segments. Unlike
// path.Clean it keeps a trailing slash and inner empty segments ("a//b"),
// which are the upstream's to interpret; it takes away what could climb,
// and makes a leading run of slashes one: "//host/x" is a host to
// anything that turns the path back into a URL reference (url.URL.String,
// an upstream building a redirect from it).
func cleanPath(b []byte) string {
	p := string(b)
	if p == "" || p[0] != '/' {
		p = "/" + p
	}
	if hasDotSegment(p) {
		p = removeDotSegments(p)
	}
	if len(p) > 1 && p[1] == '/' {
		p = p[len(p)-len(strings.TrimLeft(p, "/"))-1:] // keep the last slash of the run
	}
	return p
}

// removeDotSegments resolves the "." and ".." segments of p, which starts
// with "/", keeping a trailing slash.
func removeDotSegments(p string) string {
	segs := strings.Split(p[1:], "/")
	out := segs[:0]
	trailing := false
	for i, s := range segs {
		last := i == len(segs)-1
		switch s {
		case ".":
			trailing = last
		case "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
			trailing = last
		default:
			out = append(out, s)
		}
	}
	r := "/" + strings.Join(out, "/")
	if trailing && !strings.HasSuffix(r, "/") {
		r += "/"
	}
	return r
}

// hasDotSegment reports whether p (starting with "/") has a "." or ".."
// segment.
func hasDotSegment(p string) bool {
	for i := 0; i < len(p); i++ {
		if p[i] != '/' {
			continue
		}
		s := p[i+1:]
		if j := strings.IndexByte(s, '/'); j >= 0 {
			s = s[:j]
		}
		if s == "." || s == ".." {
			return true
		}
	}
	return false
}
