package template

import (
	"errors"
	"regexp"
	"testing"
)

// vars is the request every expansion test sees unless it says otherwise.
var testVars = Vars{
	ClientIP: "192.0.2.7", RequestID: "req-1", Route: "api", Host: "example.com", Scheme: "https",
	Path: "/old/a b", Query: "x=1&y=%20", URI: "/old/a%20b?x=1&y=%20",
}

// reOf compiles expr, or returns nil for "".
func reOf(t testing.TB, expr string) *regexp.Regexp {
	t.Helper()
	if expr == "" {
		return nil
	}
	return regexp.MustCompile(expr)
}

// TestExpand: template and request in, exact text out. src is the path
// the expression runs on (testVars.Path when empty).
func TestExpand(t *testing.T) {
	tests := []struct{ name, tmpl, re, src, want string }{
		{"literal", "/plain/path", "", "", "/plain/path"},
		{"empty", "", "", "", ""},
		{"client_ip", "{client_ip}", "", "", "192.0.2.7"},
		{"request_id", "{request_id}", "", "", "req-1"},
		{"route", "{route}", "", "", "api"},
		{"host", "{host}", "", "", "example.com"},
		{"scheme", "{scheme}", "", "", "https"},
		{"path is decoded", "{path}", "", "", "/old/a b"},
		{"query is raw", "{query}", "", "", "x=1&y=%20"},
		{"uri is as received", "{uri}", "", "", "/old/a%20b?x=1&y=%20"},
		{"https upgrade", "https://{host}{uri}", "", "", "https://example.com/old/a%20b?x=1&y=%20"},
		{"placeholders side by side", "{scheme}{host}{route}", "", "", "httpsexample.comapi"},
		{"non-ASCII text kept", "é/{route}/ü", "", "", "é/api/ü"},
		{"$1", "/new/$1", `^/old/(.*)$`, "", "/new/a b"},
		{"${1}", "/new/${1}", `^/old/(.*)$`, "", "/new/a b"},
		{"${1} before a letter", "/new/${1}x", `^/old/(.*)$`, "", "/new/a bx"},
		{"$0 is the whole match", "[$0]", `old/a`, "", "[old/a]"},
		{"${name}", "/u/${user}/{route}", `^/old/(?P<user>[^/]+)`, "/old/bob/x", "/u/bob/api"},
		{"$name", "/u/$user", `^/old/(?P<user>[^/]+)`, "/old/bob/x", "/u/bob"},
		{"$name ends at a non-name character", "/u/$user.json", `^/old/(?P<user>[^/]+)`, "/old/bob", "/u/bob.json"},
		{"named group by number", "/u/$1", `^/old/(?P<user>[^/]+)`, "/old/bob", "/u/bob"},
		{"two digits", "$10-$1", `(a)(b)(c)(d)(e)(f)(g)(h)(i)(j)`, "abcdefghij", "j-a"},
		{"group that did not take part", "[$1][$2]", `^/(a)?(b)`, "/b", "[][b]"},
		{"no match: captures empty", "/new/$1", `^/nomatch/(.*)$`, "", "/new/"},
		{"$$", "$$", "", "", "$"},
		{"$$1 is a dollar and a one", "a$$1b", `(x)`, "", "a$1b"},
		{"$$$1", "$$$1", `^/old/(.*)$`, "", "$a b"},
		{"{{ and }}", "{{}}", "", "", "{}"},
		{"{{path}} is literal", "{{path}}", "", "", "{path}"},
		{"{{{path}}}", "{{{path}}}", "", "", "{/old/a b}"},
		{"JSON-ish header value", `{{"route":"{route}"}}`, "", "", `{"route":"api"}`},
		{"mixed", "/new/${user}/{client_ip}?id={request_id}&p=$$", `^/old/(?P<user>[^/]+)`, "/old/bob", "/new/bob/192.0.2.7?id=req-1&p=$"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			re := reOf(t, tc.re)
			tpl, err := Compile(tc.tmpl, re)
			if err != nil {
				t.Fatal(err)
			}
			src := tc.src
			if src == "" {
				src = testVars.Path
			}
			var caps []int
			if re != nil {
				caps = re.FindStringSubmatchIndex(src)
			}
			if got := string(tpl.Expand([]byte("pre:"), &testVars, src, caps)); got != "pre:"+tc.want {
				t.Errorf("Expand(%q) = %q, want %q", tc.tmpl, got, "pre:"+tc.want)
			}
			if tpl.String() != tc.tmpl {
				t.Errorf("String() = %q, want %q", tpl.String(), tc.tmpl)
			}
		})
	}
}

// TestCompileErrors: golden messages, each naming the column (in
// characters) of the construct at fault.
func TestCompileErrors(t *testing.T) {
	const known = "known: {client_ip} {request_id} {route} {host} {scheme} {path} {query} {uri}"
	tests := []struct{ name, tmpl, re, want string }{
		{"unknown placeholder", "https://{hots}/", "", `column 9: unknown placeholder "{hots}"; ` + known},
		{"empty placeholder", "/a/{}", "", `column 4: unknown placeholder "{}"; ` + known},
		{"placeholder is case-sensitive", "{Host}", "", `column 1: unknown placeholder "{Host}"; ` + known},
		{"unclosed brace", "/a/{path", "", `column 4: unclosed "{" (write "{{" for a literal brace)`},
		{"lone closing brace", "/a}", "", `column 3: unmatched "}" (write "}}" for a literal brace)`},
		{"one closing brace too many", "{path}}", "", `column 7: unmatched "}" (write "}}" for a literal brace)`},
		{"column counts characters", "/é/{x}", "", `column 4: unknown placeholder "{x}"; ` + known},
		{"lone dollar at the end", "/price$", "", `column 7: "$" is not followed by a capture group (write "$$" for a literal dollar)`},
		{"lone dollar before a slash", "a$/b", `(x)`, `column 2: "$" is not followed by a capture group (write "$$" for a literal dollar)`},
		{"unclosed ${", "/x/${1", `(x)`, `column 4: unclosed "${"`},
		{"empty ${}", "${}", `(x)`, `column 1: invalid capture reference "${}": a group is a number or a name of letters, digits and _`},
		{"bad name in ${}", "${a-b}", `(x)`, `column 1: invalid capture reference "${a-b}": a group is a number or a name of letters, digits and _`},
		{"capture without an expression", "/new/$1", "", `column 6: $1 refers to a capture group, but there is no regular expression to capture from (write $$ for a literal dollar)`},
		{"named capture without an expression", "${id}", "", `column 1: ${id} refers to a capture group, but there is no regular expression to capture from (write $$ for a literal dollar)`},
		{"group number too high", "/x/$2", `^/(a)`, `column 4: $2: the regular expression has 1 capture group`},
		{"group number too high, plural", "${3}", `(a)(b)`, `column 1: ${3}: the regular expression has 2 capture groups`},
		{"expression without groups", "$1", `^/a`, `column 1: $1: the regular expression has no capture groups`},
		{"unknown name", "/u/${nme}", `(?P<name>x)`, `column 4: ${nme}: the regular expression has no group named "nme"`},
		{"$1x is a name, with a hint", "$1x", `(a)`, `column 1: $1x: the regular expression has no group named "1x" (write ${1}x for group 1 followed by "x")`},
		{"leading zero is a name", "$01", `(a)`, `column 1: $01: the regular expression has no group named "01"`},
		{"huge number", "$100000000", `(a)`, `column 1: $100000000: the regular expression has 1 capture group`},
		{"number past 1e8 is a name", "$1000000000", `(a)`, `column 1: $1000000000: the regular expression has no group named "1000000000"`},
		{"first error wins", "{x}$9", "", `column 1: unknown placeholder "{x}"; ` + known},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Compile(tc.tmpl, reOf(t, tc.re))
			if err == nil {
				t.Fatalf("Compile(%q) succeeded, want %q", tc.tmpl, tc.want)
			}
			if err.Error() != tc.want {
				t.Errorf("Compile(%q):\n got %s\nwant %s", tc.tmpl, err, tc.want)
			}
			var se *SyntaxError
			if !errors.As(err, &se) || se.Col < 1 {
				t.Errorf("error %T is not a *SyntaxError with a column", err)
			}
		})
	}
}

func TestLiteralAndUsesCaptures(t *testing.T) {
	re := regexp.MustCompile(`^/(a)`)
	tests := []struct {
		tmpl     string
		lit      string
		literal  bool
		captures bool
	}{
		{"", "", true, false},
		{"/x", "/x", true, false},
		{"{{a}}$$", "{a}$", true, false},
		{"/{path}", "", false, false},
		{"/$1", "", false, true},
		{"{host}/${1}", "", false, true},
	}
	for _, tc := range tests {
		tpl, err := Compile(tc.tmpl, re)
		if err != nil {
			t.Fatal(err)
		}
		lit, ok := tpl.Literal()
		if lit != tc.lit || ok != tc.literal || tpl.UsesCaptures() != tc.captures {
			t.Errorf("%q: Literal() = %q, %v; UsesCaptures() = %v; want %q, %v; %v", tc.tmpl, lit, ok, tpl.UsesCaptures(), tc.lit, tc.literal, tc.captures)
		}
	}
	var nilT *Template
	if lit, ok := nilT.Literal(); lit != "" || !ok || nilT.UsesCaptures() || string(nilT.Expand([]byte("x"), nil, "", nil)) != "x" {
		t.Error("a nil template is not the empty literal")
	}
}

// TestExpandNilVarsAndBadCaptures: a nil *Vars is empty, and captures that
// do not fit src are ignored rather than panicking.
func TestExpandNilVarsAndBadCaptures(t *testing.T) {
	tpl, err := Compile("[{host}][$1][$2]", regexp.MustCompile(`(a)(b)`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		src  string
		caps []int
		want string
	}{
		{"nil vars, no captures", "ab", nil, "[][][]"},
		{"short captures", "ab", []int{0, 2, 0, 1}, "[][a][]"},
		{"captures past src", "a", []int{0, 2, 0, 1, 1, 2}, "[][a][]"},
		{"reversed bounds", "ab", []int{0, 2, 1, 0, 1, 2}, "[][][b]"},
	} {
		if got := string(tpl.Expand(nil, nil, tc.src, tc.caps)); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestExpandHeader: a client-controlled value can never split a header.
func TestExpandHeader(t *testing.T) {
	tests := []struct{ name, tmpl, path, want string }{
		{"plain", "{route}:{path}", "/a", "api:/a"},
		{"CRLF injection", "{path}", "/a\r\nSet-Cookie: admin=1", "/a  Set-Cookie: admin=1"},
		{"bare LF", "x{path}", "/a\nb", "x/a b"},
		{"NUL", "{path}", "/a\x00b", "/a b"},
		{"other controls and DEL", "{path}", "/\x01\x1b\x7f", "/   "},
		{"tab is allowed in a header value", "{path}", "/a\tb", "/a\tb"},
		{"capture carrying CRLF", "v=$1", "/x/\r\nX-Evil: 1", "v=  X-Evil: 1"},
		{"non-ASCII kept", "{path}", "/é", "/é"},
	}
	re := regexp.MustCompile(`(?s)^/x/(.*)$`)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tpl, err := Compile(tc.tmpl, re)
			if err != nil {
				t.Fatal(err)
			}
			v := testVars
			v.Path = tc.path
			got := tpl.ExpandHeader([]byte("\r\n"), &v, tc.path, re.FindStringSubmatchIndex(tc.path))
			if string(got) != "\r\n"+tc.want {
				t.Errorf("got %q, want %q (dst's own bytes untouched)", got, "\r\n"+tc.want)
			}
		})
	}
}

// TestLocation: the Location header of a redirect, including what a
// client can try through {path} and captures.
func TestLocation(t *testing.T) {
	const goRe = `^/go/(.*)$`
	tests := []struct{ name, tmpl, re, path, want string }{
		{"path", "/new", "", "/x", "/new"},
		{"https upgrade keeps the client's escaping", "https://{host}{uri}", "", "/old/a b", "https://example.com/old/a%20b?x=1&y=%20"},
		{"capture into a path", "/new/$1", goRe, "/go/a/b", "/new/a/b"},
		{"decoded space is escaped", "/new{path}", "", "/a b", "/new/a%20b"},
		{"non-ASCII is escaped", "/caf{path}", "", "/é", "/caf/%C3%A9"},
		{"a % that starts no escape", "/a%zz{path}", "", "/50%", "/a%25zz/50%25"},
		{"a valid escape is kept", "/a%20b", "", "/", "/a%20b"},
		{"CRLF is escaped", "/x{path}", "", "/a\r\nSet-Cookie: x=1", "/x/a%0D%0ASet-Cookie:%20x=1"},
		{"NUL is escaped", "/x{path}", "", "/a\x00", "/x/a%00"},
		{"empty is the root", "$1", goRe, "/go/", "/"},
		{"relative becomes a path", "$1", goRe, "/go/evil.com", "/evil.com"},

		// Open-redirect attempts: "//host" and "/\host" are other hosts to
		// a browser; each must come out as a path on this site.
		{"// from {path}", "{path}", "", "//evil.com", "/evil.com"},
		{"/\\ from {path}", "{path}", "", "/\\evil.com", "/evil.com"},
		{"/// from {path}", "{path}", "", "///evil.com/x", "/evil.com/x"},
		{"// from a capture", "$1", goRe, "/go//evil.com", "/evil.com"},
		{"\\\\ from a capture", "$1", goRe, "/go/\\\\evil.com", "/evil.com"},
		{"/\\/\\ mixed", "$1", goRe, "/go//\\/\\evil.com", "/evil.com"},
		{"tab between slashes", "$1", goRe, "/go//\t/evil.com", "/%09/evil.com"},
		{"leading tab", "$1", goRe, "/go/\t//evil.com", "/%09//evil.com"},
		{"leading space", "$1", goRe, "/go/ //evil.com", "/%20//evil.com"},
		{"scheme-relative with a scheme typo", "$1", goRe, "/go/https:/\\evil.com", "/https:/\\evil.com"},
		{"opaque https", "$1", goRe, "/go/https:evil.com", "/https:evil.com"},
		{"https without a host", "$1", goRe, "/go/https://", "/https://"},
		{"https with only a port", "$1", goRe, "/go/https://:443/", "/https://:443/"},
		{"backslash authority", "$1", goRe, "/go/https://good.com\\@evil.com", "/https://good.com\\@evil.com"},
		{"user info refused", "https://user@{host}/", "", "/", "/https://user@example.com/"},
		{"user info from a capture", "$1", goRe, "/go/https://good.com@evil.com/", "/https://good.com@evil.com/"},
		{"javascript: becomes a path", "$1", goRe, "/go/javascript:alert(1)", "/javascript:alert(1)"},
		{"data: becomes a path", "$1", goRe, "/go/data:text/html,x", "/data:text/html,x"},
		// A template that is only a capture lets the client pick the whole
		// URL: that is what it says, like Traefik's replacement "$1".
		{"whole-URL capture is the template's choice", "$1", goRe, "/go/https://other.example/", "https://other.example/"},
		{"upper-case scheme kept", "HTTPS://Example.com/x", "", "/", "HTTPS://Example.com/x"},
		{"absolute with CRLF in the path", "https://{host}{path}", "", "/a\r\nb", "https://example.com/a%0D%0Ab"},
		{"absolute with a bad escape", "https://{host}/x{path}", "", "/50%", "https://example.com/x/50%25"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			re := reOf(t, tc.re)
			tpl, err := Compile(tc.tmpl, re)
			if err != nil {
				t.Fatal(err)
			}
			v := testVars
			v.Path = tc.path
			var caps []int
			if re != nil {
				caps = re.FindStringSubmatchIndex(tc.path)
			}
			rd := &Redirect{To: tpl, Code: 301}
			if got := rd.Location(&v, tc.path, caps); got != tc.want {
				t.Errorf("Location(%q) on %q = %q, want %q", tc.tmpl, tc.path, got, tc.want)
			}
		})
	}
	var nilRd *Redirect
	if got := nilRd.Location(nil, "", nil); got != "/" {
		t.Errorf("nil redirect: %q", got)
	}
}

func TestCompileRedirect(t *testing.T) {
	re := regexp.MustCompile(`^/old/(.*)$`)
	tests := []struct {
		name, to string
		code     int
		want     string // error, or the Location for /old/x
		wantCode int
	}{
		{"default code", "/new/$1", 0, "/new/x", 302},
		{"301", "/new", 301, "/new", 301},
		{"308", "https://{host}{uri}", 308, "https://example.com/old/a%20b?x=1&y=%20", 308},
		{"303 refused", "/new", 303, "code: want 301, 302, 307 or 308, not 303", 0},
		{"missing target", "", 301, "to: missing target", 0},
		{"bad template", "/new/$2", 301, "to: column 6: $2: the regular expression has 1 capture group", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rd, err := CompileRedirect(tc.to, tc.code, re)
			if tc.wantCode == 0 {
				if err == nil || err.Error() != tc.want {
					t.Fatalf("got %v, want error %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := rd.Location(&testVars, "/old/x", re.FindStringSubmatchIndex("/old/x")); got != tc.want || rd.Code != tc.wantCode {
				t.Errorf("got %d %q, want %d %q", rd.Code, got, tc.wantCode, tc.want)
			}
		})
	}
	if _, err := CompileRedirect("{nope}", 301, nil); !errors.As(err, new(*SyntaxError)) {
		t.Errorf("a template error is not a *SyntaxError under its field: %v", err)
	}
}
