package policy

import (
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/meridian-lb/meridian/config"
	"github.com/meridian-lb/meridian/policy/template"
)

// HeaderValue is one header a route sets (add_headers,
// response_headers.add): a literal value, or a template when the value
// has a {placeholder} ({client_ip}, {request_id}, {route}, {host}, ...;
// `{{` and `}}` are literal braces). A value without `{` is taken as
// written, so configs from before templates keep their meaning.
type HeaderValue struct {
	Name    string // canonical
	Literal string
	T       *template.Template // nil for a literal
}

// CompileHeaders compiles the header map at path (routes[i].add_headers),
// in name order. A bad template is a config.Problem at its key.
func CompileHeaders(path string, m map[string]string) ([]HeaderValue, []error) {
	if len(m) == 0 {
		return nil, nil
	}
	var out []HeaderValue
	var errs []error
	for _, k := range slices.Sorted(maps.Keys(m)) {
		v := m[k]
		hv := HeaderValue{Name: http.CanonicalHeaderKey(k), Literal: v}
		if strings.IndexByte(v, '{') >= 0 || strings.IndexByte(v, '}') >= 0 {
			t, err := template.Compile(v, nil)
			if err != nil {
				errs = append(errs, config.Problem{Path: path + "." + k, Msg: err.Error()})
				continue
			}
			if lit, ok := t.Literal(); ok {
				hv.Literal = lit
			} else {
				hv.T = t
			}
		}
		out = append(out, hv)
	}
	return out, errs
}

// Value returns the header's value for a request. Expanded values have CR,
// LF and NUL replaced (template.ExpandHeader), so a client-controlled
// part can never split a header.
func (hv *HeaderValue) Value(v *template.Vars) string {
	if hv.T == nil {
		return hv.Literal
	}
	return string(hv.T.ExpandHeader(nil, v, "", nil))
}

// RequestVars fills the template variables of a request.
func RequestVars(r *http.Request, client, requestID, route string) template.Vars {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return template.Vars{
		ClientIP: client, RequestID: requestID, Route: route,
		Host: hostOnly(r.Host), Scheme: scheme, Path: r.URL.Path, Query: r.URL.RawQuery,
		URI: r.URL.RequestURI(),
	}
}
