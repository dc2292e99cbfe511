package cors

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

// canonical returns the one pattern a single-origin policy was built from,
// as it was normalized.
func canonical(p *Policy) string {
	switch {
	case p.anyOrigin:
		return "*"
	case len(p.wildcards) == 1:
		w := p.wildcards[0]
		return w.prefix + "*" + w.suffix + w.port
	}
	for o := range p.origins {
		return o
	}
	return ""
}

// FuzzOrigin parses an origin pattern and matches an origin against it:
// normalizing is idempotent, a pattern matches what it names and nothing
// outside it, and Response echoes nothing but the allowed origin or "*".
func FuzzOrigin(f *testing.F) {
	for _, c := range [][2]string{
		{"https://app.example", "https://app.example"},
		{"HTTPS://App.Example:443", "https://app.example"},
		{"https://*.example.com", "https://a.b.example.com"},
		{"https://*.example.com", "https://evilexample.com"},
		{"https://*.example.com:8443", "https://a.example.com:8443"},
		{"http://[::1]:8080", "http://[::1]:8080"},
		{"null", "null"},
		{"*", "https://x"},
		{"http://*.localhost", "http://a.localhost"},
		{"https://a.example/", "https://a.example/"},
		{"https://*.example.com", "https://.example.com"},
		{"ftp://x.example:21", "ftp://x.example:21"},
	} {
		f.Add(c[0], c[1])
	}
	f.Fuzz(func(t *testing.T, pattern, origin string) {
		p, err := New(Spec{Origins: []string{pattern}})
		if err != nil {
			return
		}
		canon := canonical(p)
		p2, err := New(Spec{Origins: []string{canon}})
		if err != nil {
			t.Fatalf("%q normalized to %q, which is rejected: %v", pattern, canon, err)
		}
		if c2 := canonical(p2); c2 != canon {
			t.Fatalf("normalizing is not idempotent: %q → %q → %q", pattern, canon, c2)
		}
		allowed := p.originAllowed(origin)
		if p2.originAllowed(origin) != allowed {
			t.Fatalf("%q and its normal form %q disagree on %q", pattern, canon, origin)
		}

		switch {
		case p.anyOrigin:
		case len(p.wildcards) == 1:
			w := p.wildcards[0]
			if !p.originAllowed(w.prefix+"a"+w.suffix+w.port) || p.originAllowed(w.prefix+w.suffix[1:]+w.port) {
				t.Fatalf("%q: wrong on its own subdomain or bare domain", canon)
			}
			if allowed {
				host, ok := strings.CutPrefix(origin, w.prefix)
				if !ok || strings.ContainsAny(host, "/?#@\\ \t\r\nABCDEFGHIJKLMNOPQRSTUVWXYZ") {
					t.Fatalf("%q allows %q", canon, origin)
				}
				host, ok = strings.CutSuffix(host, w.port)
				if !ok || w.port == "" && strings.Contains(host, ":") {
					t.Fatalf("%q allows %q on another port", canon, origin)
				}
				if !strings.HasSuffix(host, w.suffix) || host == w.suffix || strings.Contains(host, "..") || strings.HasPrefix(host, ".") {
					t.Fatalf("%q allows %q outside its domain", canon, origin)
				}
			}
		default:
			if !p.originAllowed(canon) {
				t.Fatalf("%q does not allow its own origin", canon)
			}
			if allowed != (origin == canon) {
				t.Fatalf("%q: allowed(%q) = %v", canon, origin, allowed)
			}
		}

		h := http.Header{}
		p.Response(origin, h)
		switch got := h.Get("Access-Control-Allow-Origin"); {
		case p.anyOrigin && got != "*":
			t.Fatalf("any origin answered %q", got)
		case !p.anyOrigin && allowed && got != origin:
			t.Fatalf("allowed %q answered %q", origin, got)
		case !p.anyOrigin && !allowed && got != "":
			t.Fatalf("refused %q answered %q", origin, got)
		}
	})
}

var headerTokenRE = regexp.MustCompile("^[!#$%&'*+\\-.^_`|~0-9A-Za-z]+$")

// FuzzRequestHeaders checks the Access-Control-Request-Headers check
// against a naive reading of the list, and Preflight against both.
func FuzzRequestHeaders(f *testing.F) {
	for _, s := range []string{
		"content-type", "content-type,x-a", " X-A ,\tContent-Type ", "x-b", "content-type;x", ",,", "",
		"content-type, x-a, content-type", strings.Repeat("x-a,", 70), "x-a\r\n",
	} {
		f.Add(s)
	}
	p := mustNew(f, Spec{Origins: []string{"https://a.example"}, Methods: []string{"PUT"}, Headers: []string{"Content-Type", "X-A"}})
	f.Fuzz(func(t *testing.T, acrh string) {
		want, n := true, 0
		for _, e := range strings.Split(acrh, ",") {
			e = strings.Trim(e, " \t")
			if e == "" {
				continue
			}
			n++
			if !headerTokenRE.MatchString(e) || (strings.ToLower(e) != "content-type" && strings.ToLower(e) != "x-a") {
				want = false
			}
		}
		if n > maxRequestHeaders {
			want = false
		}
		if got := p.headersAllowed([]string{acrh}); got != want {
			t.Fatalf("%q: allowed %v, want %v", acrh, got, want)
		}
		r := httptest.NewRequest("OPTIONS", "/", nil)
		r.Header["Origin"] = []string{"https://a.example"}
		r.Header["Access-Control-Request-Method"] = []string{"PUT"}
		r.Header["Access-Control-Request-Headers"] = []string{acrh}
		w := httptest.NewRecorder()
		if !p.Preflight(w, r) || w.Code != http.StatusNoContent {
			t.Fatal("not answered as a preflight")
		}
		if got := w.Header().Get("Access-Control-Allow-Origin") != ""; got != want {
			t.Fatalf("%q: preflight allowed %v, want %v", acrh, got, want)
		}
	})
}
