package template

import (
	"bytes"
	"errors"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// fuzzRe has a named group, an optional one and an alternative that is
// never taken together with them, so captures are often absent.
const fuzzRe = `(?s)^/(?P<dir>[^/]*)(?:/(?P<rest>.*))?$|^(x)$`

// templateSeeds are the shapes the table tests cover and the near misses
// around them.
var templateSeeds = []string{
	"", "/plain", "{path}", "https://{host}{uri}", "{scheme}://{host}/{route}?{query}", "{client_ip} {request_id}",
	"$1", "${1}", "$0", "${dir}/$rest", "$dir.json", "$1x", "${1}x", "$01", "$100000000", "$$", "$$1", "$$$1",
	"{{", "}}", "{{path}}", "{{{path}}}", "{", "}", "{}", "{path", "{path}}", "${", "${1", "${}", "${a-b}", "$", "a$/b",
	"é{x}", "$é", "${é}", "/\\{path}", "//$2",
}

// FuzzCompile: Compile never panics, its errors are SyntaxErrors with a
// column inside the template, and a compiled template expands as
// regexp.Expand would (for templates without braces) and as plain
// substitution would (for templates without captures). ExpandHeader never
// lets a control character other than HTAB through.
func FuzzCompile(f *testing.F) {
	re := regexp.MustCompile(fuzzRe)
	for _, s := range templateSeeds {
		f.Add(s, "/a/b\r\nX-Evil: 1")
		f.Add(s, "x")
	}
	f.Fuzz(func(t *testing.T, tmpl, path string) {
		tpl, err := Compile(tmpl, re)
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) || se.Col < 1 || se.Col > utf8.RuneCountInString(tmpl)+1 {
				t.Fatalf("Compile(%q): %v is not a SyntaxError inside the template", tmpl, err)
			}
			return
		}
		if tpl.String() != tmpl {
			t.Fatalf("String() = %q, want %q", tpl.String(), tmpl)
		}
		caps := re.FindStringSubmatchIndex(path)
		v := Vars{ClientIP: path, RequestID: path + "1", Route: path + "2", Host: path + "3", Scheme: path + "4",
			Path: path + "5", Query: path + "6", URI: path + "7"}
		out := tpl.Expand(nil, &v, path, caps)

		if !strings.ContainsAny(tmpl, "{}") {
			if want := re.ExpandString(nil, tmpl, path, caps); !bytes.Equal(out, want) {
				t.Fatalf("Expand(%q) on %q = %q, regexp.Expand gives %q", tmpl, path, out, want)
			}
		}
		if !strings.Contains(tmpl, "$") {
			want := strings.NewReplacer("{{", "{", "}}", "}", "{client_ip}", v.ClientIP, "{request_id}", v.RequestID,
				"{route}", v.Route, "{host}", v.Host, "{scheme}", v.Scheme, "{path}", v.Path, "{query}", v.Query,
				"{uri}", v.URI).Replace(tmpl)
			if string(out) != want {
				t.Fatalf("Expand(%q) = %q, substitution gives %q", tmpl, out, want)
			}
		}
		if lit, ok := tpl.Literal(); ok && (string(out) != lit || tpl.UsesCaptures()) {
			t.Fatalf("literal %q expands to %q", lit, out)
		}
		if _, err := Compile(tmpl, nil); (err == nil) == tpl.UsesCaptures() {
			t.Fatalf("Compile(%q, nil) = %v, but UsesCaptures is %v", tmpl, err, tpl.UsesCaptures())
		}

		h := tpl.ExpandHeader([]byte("k: "), &v, path, caps)
		if string(h[:3]) != "k: " || len(h)-3 != len(out) {
			t.Fatalf("ExpandHeader = %q, Expand = %q", h, out)
		}
		for i, c := range h[3:] {
			if c < ' ' && c != '\t' || c == 0x7f {
				t.Fatalf("ExpandHeader(%q) = %q: control byte %#x", tmpl, h, c)
			}
			if c != out[i] && c != ' ' {
				t.Fatalf("ExpandHeader changed %q to %q", out[i], c)
			}
		}
	})
}

// FuzzLocation: whatever the template and the request, a Location is
// printable ASCII, and is either a path on this site that no browser
// reads as another host, or an http(s) URL with a host.
func FuzzLocation(f *testing.F) {
	re := regexp.MustCompile(`(?s)^/go/(.*)$`)
	for _, s := range []string{"$1", "{path}", "/x{path}", "https://{host}{uri}", "https://{host}/$1", "{host}", "//{host}", "/\\$1"} {
		for _, p := range []string{"/go//evil.com", "/go/\\\\evil.com", "/go//\t/evil.com", "/go/ //evil.com", "/go/https:/\\evil.com",
			"/go/https://good.com\\@evil.com", "/go/https://a@evil.com", "/go/javascript:alert(1)", "/go/\r\nSet-Cookie: a=1", "/go/%zz", "/go/é"} {
			f.Add(s, p)
		}
	}
	f.Fuzz(func(t *testing.T, tmpl, path string) {
		tpl, err := Compile(tmpl, re)
		if err != nil {
			return
		}
		v := Vars{ClientIP: path, RequestID: path, Route: path, Host: path, Scheme: path, Path: path, Query: path, URI: path}
		loc := (&Redirect{To: tpl, Code: 302}).Location(&v, path, re.FindStringSubmatchIndex(path))
		checkLocation(t, loc)
	})
}

func checkLocation(t *testing.T, loc string) {
	t.Helper()
	for i := 0; i < len(loc); i++ {
		if c := loc[i]; c <= ' ' || c >= 0x7f {
			t.Fatalf("Location %q has byte %#x", loc, c)
		}
	}
	// Browsers take "\" for "/" in http(s) URLs.
	browser := strings.ReplaceAll(loc, `\`, "/")
	if strings.HasPrefix(browser, "/") {
		if strings.HasPrefix(browser, "//") {
			t.Fatalf("Location %q is protocol-relative", loc)
		}
		return
	}
	u, err := url.Parse(loc)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		t.Fatalf("Location %q is neither a path nor an http(s) URL with a host", loc)
	}
	if rest := browser[len(u.Scheme)+1:]; !strings.HasPrefix(rest, "//") || strings.HasPrefix(rest, "///") {
		t.Fatalf("Location %q: a browser would find another authority than %q", loc, u.Host)
	}
}

// FuzzApply: the rewritten path is absolute, never "//", without dot
// segments; removed parameters are gone, added ones are there once, and
// the others are untouched and in order.
func FuzzApply(f *testing.F) {
	rw, err := CompileRewrite(`(?s)^/api/(.*)$`, "/v2/$1", map[string]string{"id": "$1", "k": "{client_ip}"}, []string{"utm_source", "x y"})
	if err != nil {
		f.Fatal(err)
	}
	for _, p := range []string{"/api/a", "/api/../../x", "/api//evil", "/other", "/api/a?b#c", "/api/\r\n", "/api/.."} {
		f.Add(p, "a=1&id=2&utm_source=3&id=4&x+y=5&%zz&&k")
		f.Add(p, "")
	}
	f.Fuzz(func(t *testing.T, path, query string) {
		u := &url.URL{Path: path, RawQuery: query}
		matched := rw.Re.MatchString(path)
		changed := rw.Apply(u, &Vars{ClientIP: "192.0.2.1"})
		if changed && !matched {
			t.Fatalf("%q changed without a match", path)
		}
		if matched {
			p := u.Path
			if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") {
				t.Fatalf("%q rewritten to %q", path, p)
			}
			if hasDotSegment(p) {
				t.Fatalf("%q rewritten to %q, with a dot segment", path, p)
			}
		} else if u.Path != path {
			t.Fatalf("unmatched %q became %q", path, u.Path)
		}
		var want, got []string
		for piece := range strings.SplitSeq(query, "&") {
			if k := decodedKey(piece); piece != "" && k != "utm_source" && k != "x y" && k != "id" && k != "k" {
				want = append(want, piece)
			}
		}
		seen := map[string]int{}
		for piece := range strings.SplitSeq(u.RawQuery, "&") {
			switch k := decodedKey(piece); k {
			case "utm_source", "x y":
				t.Fatalf("%q kept %q: %q", query, k, u.RawQuery)
			case "id", "k":
				seen[k]++
			default:
				if piece != "" {
					got = append(got, piece)
				}
			}
		}
		if seen["id"] != 1 || seen["k"] != 1 || !slices.Equal(got, want) {
			t.Fatalf("query %q became %q", query, u.RawQuery)
		}
	})
}

func decodedKey(piece string) string {
	k, _, _ := strings.Cut(piece, "=")
	if d, err := url.QueryUnescape(k); err == nil {
		return d
	}
	return k
}
