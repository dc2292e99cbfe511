package cors

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"
)

// maxRequestHeaders bounds the names one Access-Control-Request-Headers
// may list; a preflight asking for more is refused. Browsers list only the
// non-safelisted headers a script sets, a handful in practice.
const maxRequestHeaders = 64

// Spec is a CORS policy in plain values.
type Spec struct {
	// Origins are the allowed origins: "*" (any, only without
	// credentials), "null", "scheme://host[:port]", or
	// "scheme://*.example.com[:port]" for any subdomain of example.com.
	Origins []string
	// Methods a preflight may ask for; "*" allows any. Empty means GET,
	// HEAD and POST, the methods a browser sends without asking.
	Methods []string
	// Headers a preflight may ask to send, case-insensitive; "*" allows
	// any.
	Headers []string
	// Expose are the response headers scripts may read beyond the
	// safelisted ones; "*" means all, only without credentials.
	Expose []string
	// Credentials lets browsers send cookies and HTTP authentication and
	// read the response.
	Credentials bool
	// MaxAge is how long a browser may cache a preflight's answer, in
	// whole seconds (browsers cap it: Chromium at 2 hours, Firefox at 24).
	// 0 leaves it to the browser's default of 5 seconds.
	MaxAge time.Duration
}

// Policy is a compiled CORS policy. It is immutable and safe for
// concurrent use.
type Policy struct {
	anyOrigin   bool
	origins     map[string]struct{} // serialized origins, and "null" when listed
	wildcards   []wildcard
	methods     []string
	anyMethod   bool
	headers     []string // lower case
	anyHeader   bool
	credentials bool
	// Header values, joined once.
	allowMethods string
	allowHeaders string
	expose       string
	maxAge       string
}

// New compiles s. It fails on an empty origin list, "*" with credentials
// (the Fetch standard ignores a wildcard Access-Control-Allow-Origin on a
// credentialed request, so the policy could never work), a malformed
// origin pattern, a method or header that is not an HTTP token, Expose
// "*" with credentials (taken literally then), and a negative MaxAge.
func New(s Spec) (*Policy, error) {
	if len(s.Origins) == 0 {
		return nil, errors.New("cors: no origins")
	}
	p := &Policy{origins: map[string]struct{}{}, credentials: s.Credentials}
	for _, o := range s.Origins {
		pat, err := parsePattern(strings.TrimSpace(o))
		if err != nil {
			return nil, fmt.Errorf("cors: %w", err)
		}
		switch {
		case pat.any:
			p.anyOrigin = true
		case pat.wild != nil:
			p.wildcards = append(p.wildcards, *pat.wild)
		default:
			p.origins[pat.exact] = struct{}{}
		}
	}
	if p.anyOrigin && s.Credentials {
		return nil, errors.New(`cors: origin "*" with credentials: browsers reject a wildcard origin on credentialed requests; list the origins`)
	}

	methods := s.Methods
	if len(methods) == 0 {
		methods = []string{"GET", "HEAD", "POST"}
	}
	for _, m := range methods {
		m = strings.TrimSpace(m)
		if !httpguts.ValidHeaderFieldName(m) {
			return nil, fmt.Errorf("cors: method %q is not a token", m)
		}
		if m == "*" {
			p.anyMethod = true
			continue
		}
		m = normalizeMethod(m)
		if !slices.Contains(p.methods, m) {
			p.methods = append(p.methods, m)
		}
	}
	for _, h := range s.Headers {
		h = strings.ToLower(strings.TrimSpace(h))
		if !httpguts.ValidHeaderFieldName(h) {
			return nil, fmt.Errorf("cors: header %q is not a token", h)
		}
		if h == "*" {
			p.anyHeader = true
		} else if !slices.Contains(p.headers, h) {
			p.headers = append(p.headers, h)
		}
	}
	var expose []string
	for _, h := range s.Expose {
		h = strings.TrimSpace(h)
		if !httpguts.ValidHeaderFieldName(h) {
			return nil, fmt.Errorf("cors: expose header %q is not a token", h)
		}
		if h == "*" && s.Credentials {
			return nil, errors.New(`cors: expose "*" with credentials: browsers take it as a header named "*"; list the headers`)
		}
		expose = append(expose, h)
	}
	if s.MaxAge < 0 {
		return nil, fmt.Errorf("cors: negative max age %v", s.MaxAge)
	}
	if s.MaxAge > 0 {
		p.maxAge = strconv.FormatInt(max(1, int64(s.MaxAge/time.Second)), 10)
	}
	p.allowMethods = strings.Join(p.methods, ", ")
	p.allowHeaders = strings.Join(p.headers, ", ")
	p.expose = strings.Join(expose, ", ")
	return p, nil
}

// Preflight reports whether r is a CORS preflight: OPTIONS with Origin and
// Access-Control-Request-Method. If it is, Preflight answers it
// completely on w, and the request goes no further.
//
// The answer is always 204 with "Vary: Origin, Access-Control-Request-
// Method, Access-Control-Request-Headers". When the origin, the method and
// every requested header are allowed, it also has Access-Control-Allow-
// Origin, -Methods (the configured list, or the requested method for "*"),
// -Headers (the configured list, or the requested names for "*"), and
// -Credentials and -Max-Age when configured. When not, it has no
// Access-Control-* header at all, and the browser fails the request. That
// is what rs/cors does; a 403 would fail it the same way, since Fetch
// needs both an ok status and the headers, but would tell a probing
// client which requests are refused for a reason other than CORS. Envoy
// instead forwards a preflight from an unknown origin to the upstream;
// here the edge owns the route's CORS and answers every preflight itself.
func (p *Policy) Preflight(w http.ResponseWriter, r *http.Request) bool {
	if r.Method != http.MethodOptions {
		return false
	}
	origins := r.Header["Origin"]
	acrm := r.Header["Access-Control-Request-Method"]
	if len(origins) == 0 || origins[0] == "" || len(acrm) == 0 || acrm[0] == "" {
		return false
	}
	h := w.Header()
	stripCORS(h)
	addVary(h, "Origin")
	addVary(h, "Access-Control-Request-Method")
	addVary(h, "Access-Control-Request-Headers")
	acrh := r.Header["Access-Control-Request-Headers"]
	if len(origins) == 1 && len(acrm) == 1 && p.originAllowed(origins[0]) &&
		p.methodAllowed(acrm[0]) && p.headersAllowed(acrh) {
		p.allowOrigin(h, origins[0])
		if p.anyMethod {
			h["Access-Control-Allow-Methods"] = []string{acrm[0]}
		} else {
			h["Access-Control-Allow-Methods"] = []string{p.allowMethods}
		}
		if requested := joinRequested(acrh); requested != "" {
			if p.anyHeader {
				h["Access-Control-Allow-Headers"] = []string{requested}
			} else {
				h["Access-Control-Allow-Headers"] = []string{p.allowHeaders}
			}
		}
		if p.maxAge != "" {
			h["Access-Control-Max-Age"] = []string{p.maxAge}
		}
	}
	w.WriteHeader(http.StatusNoContent)
	return true
}

// Response sets the CORS headers of an actual (not preflight) response on
// h, the response's header after the upstream's fields were copied in, for
// a request whose Origin is origin. It first removes every Access-Control-*
// field the upstream set, so the browser sees the edge's policy and only
// it. For an allowed origin it sets Access-Control-Allow-Origin (the
// origin), -Allow-Credentials and -Expose-Headers as configured. With
// origins "*" it sets Access-Control-Allow-Origin: * on every response,
// with or without an Origin, so that one cached copy serves every client.
// Otherwise the answer depends on Origin, so Vary: Origin is added (once)
// whether or not the origin is allowed; a disallowed or absent origin gets
// nothing else.
func (p *Policy) Response(origin string, h http.Header) {
	stripCORS(h)
	if !p.anyOrigin {
		addVary(h, "Origin")
		if origin == "" || !p.originAllowed(origin) {
			return
		}
	}
	p.allowOrigin(h, origin)
	if p.expose != "" {
		h["Access-Control-Expose-Headers"] = []string{p.expose}
	}
}

// allowOrigin sets Access-Control-Allow-Origin and -Credentials.
func (p *Policy) allowOrigin(h http.Header, origin string) {
	if p.anyOrigin {
		h["Access-Control-Allow-Origin"] = []string{"*"}
		return
	}
	h["Access-Control-Allow-Origin"] = []string{origin}
	if p.credentials {
		h["Access-Control-Allow-Credentials"] = []string{"true"}
	}
}

// originAllowed matches an Origin value byte for byte against the
// serialized allowed origins and the wildcards. Browsers serialize Origin
// in lower case without a default port, as the patterns were normalized,
// so a value in any other form (which only a non-browser client sends) is
// not allowed. "null" matches only when listed, or under "*".
func (p *Policy) originAllowed(origin string) bool {
	if p.anyOrigin {
		return true
	}
	if _, ok := p.origins[origin]; ok {
		return true
	}
	for _, w := range p.wildcards {
		if w.match(origin) {
			return true
		}
	}
	return false
}

// methodAllowed compares case-sensitively, as Fetch does: a browser sends
// the six standard methods in upper case and any other as the script
// spelled it.
func (p *Policy) methodAllowed(m string) bool {
	return httpguts.ValidHeaderFieldName(m) && (p.anyMethod || slices.Contains(p.methods, m))
}

// headersAllowed reports whether every name in the Access-Control-Request-
// Headers lines vals is allowed. Fetch sends one comma-separated list of
// lower-cased names; any case, optional whitespace around the commas, empty
// elements and several lines are accepted too. A name that is not a token,
// or more than maxRequestHeaders names, refuses the preflight.
func (p *Policy) headersAllowed(vals []string) bool {
	n := 0
	for _, v := range vals {
		for v != "" {
			var name string
			name, v, _ = strings.Cut(v, ",")
			name = strings.Trim(name, " \t")
			if name == "" {
				continue
			}
			if n++; n > maxRequestHeaders || !httpguts.ValidHeaderFieldName(name) {
				return false
			}
			if !p.anyHeader && !containsFold(p.headers, name) {
				return false
			}
		}
	}
	return true
}

// joinRequested returns the requested header names as one list, or "" when
// there are none.
func joinRequested(vals []string) string {
	var b strings.Builder
	for _, v := range vals {
		for v != "" {
			var name string
			name, v, _ = strings.Cut(v, ",")
			if name = strings.Trim(name, " \t"); name == "" {
				continue
			}
			if b.Len() > 0 {
				b.WriteString(", ")
			}
			b.WriteString(strings.ToLower(name))
		}
	}
	return b.String()
}

// normalizeMethod upper-cases the methods Fetch normalizes (DELETE, GET,
// HEAD, OPTIONS, POST, PUT) and keeps any other as written, since a
// browser compares the rest byte for byte.
func normalizeMethod(m string) string {
	for _, std := range []string{"DELETE", "GET", "HEAD", "OPTIONS", "POST", "PUT"} {
		if strings.EqualFold(m, std) {
			return std
		}
	}
	return m
}

// stripCORS deletes every Access-Control-* field.
func stripCORS(h http.Header) {
	const prefix = "Access-Control-"
	for k := range h {
		if len(k) >= len(prefix) && strings.EqualFold(k[:len(prefix)], prefix) {
			delete(h, k)
		}
	}
}

// addVary adds token to Vary unless it, or "*", is already listed.
func addVary(h http.Header, token string) {
	for _, v := range h["Vary"] {
		for v != "" {
			var e string
			e, v, _ = strings.Cut(v, ",")
			if e = strings.Trim(e, " \t"); e == "*" || strings.EqualFold(e, token) {
				return
			}
		}
	}
	h["Vary"] = append(h["Vary"], token)
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}
