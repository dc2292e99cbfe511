package template

import (
	"errors"
	"net/url"
	"testing"
)

// varsFor is what the proxy fills for a request to u.
func varsFor(u *url.URL) *Vars {
	v := testVars
	v.Path, v.Query, v.URI = u.Path, u.RawQuery, u.RequestURI()
	return &v
}

// TestRewrite: request URI in, forwarded URI out (URL.RequestURI, so the
// path is shown escaped as it goes upstream).
func TestRewrite(t *testing.T) {
	tests := []struct {
		name, re, to string
		add          map[string]string
		remove       []string
		in, want     string
		changed      bool
	}{
		{name: "prefix swap", re: `^/api/(.*)$`, to: `/v2/$1`,
			in: "/api/users?x=1", want: "/v2/users?x=1", changed: true},
		{name: "whole path is replaced, as nginx does", re: `/old/`, to: `/new/`,
			in: "/a/old/b", want: "/new/", changed: true},
		{name: "no match keeps the path", re: `^/api/(.*)$`, to: `/v2/$1`,
			in: "/other?x=1", want: "/other?x=1"},
		{name: "same path is no change", re: `^/(.*)$`, to: `/$1`,
			in: "/same", want: "/same"},
		{name: "named capture and placeholders", re: `^/u/(?P<id>\d+)$`, to: `/users/${id}/{route}`,
			in: "/u/42", want: "/users/42/api", changed: true},
		{name: "missing leading slash is added", re: `^/(.*)$`, to: `v2/$1`,
			in: "/foo", want: "/v2/foo", changed: true},
		{name: "to without path_regex rewrites every path", to: `/maintenance.html`,
			in: "/any/thing?x", want: "/maintenance.html?x", changed: true},
		{name: "trailing slash kept", re: `^/a/(.*)$`, to: `/b/$1`,
			in: "/a/dir/", want: "/b/dir/", changed: true},
		{name: "inner double slash kept", re: `^/a/(.*)$`, to: `/b/$1`,
			in: "/a/x//y", want: "/b/x//y", changed: true},
		{name: "leading double slash from a capture is one", re: `^/a(.*)$`, to: `/$1`,
			in: "/a//evil.com/x", want: "/evil.com/x", changed: true},

		// Traversal: captures hold the decoded path, ".." included.
		{name: "capture cannot climb above the root", re: `^/files/(.*)$`, to: `/static/$1`,
			in: "/files/..%2F..%2F..%2Fetc/passwd", want: "/etc/passwd", changed: true},
		{name: "dot segments resolved", re: `^/files/(.*)$`, to: `/static/$1`,
			in: "/files/a/./b/../c", want: "/static/a/c", changed: true},
		{name: "trailing .. keeps a slash", re: `^/files/(.*)$`, to: `/static/$1`,
			in: "/files/a/..", want: "/static/", changed: true},
		{name: "encoded dots are dots", re: `^/files/(.*)$`, to: `/static/$1`,
			in: "/files/%2e%2e/%2e%2e/x", want: "/x", changed: true},
		{name: "dots inside names are not segments", re: `^/files/(.*)$`, to: `/static/$1`,
			in: "/files/..a/b..", want: "/static/..a/b..", changed: true},

		// Escaping: the new path is escaped afresh.
		{name: "decoded ? stays in the path", re: `^/api/(.*)$`, to: `/v2/$1`,
			in: "/api/a%3Fb?q=1", want: "/v2/a%3Fb?q=1", changed: true},
		{name: "decoded # stays in the path", re: `^/api/(.*)$`, to: `/v2/$1`,
			in: "/api/a%23b", want: "/v2/a%23b", changed: true},
		{name: "encoded slash becomes a slash", re: `^/api/(.*)$`, to: `/v2/$1`,
			in: "/api/a%2Fb", want: "/v2/a/b", changed: true},
		{name: "CRLF in the path is escaped", re: `(?s)^/api/(.*)$`, to: `/v2/$1`,
			in: "/api/a%0D%0Ab", want: "/v2/a%0D%0Ab", changed: true},

		// Query edits.
		{name: "add replaces in place, drops repeats", add: map[string]string{"b": "{client_ip}"},
			in: "/p?a=1&b=old&c=3&b=again", want: "/p?a=1&b=192.0.2.7&c=3"},
		{name: "new parameters appended in key order", add: map[string]string{"z": "1", "m": "x y&z"},
			in: "/p?a=1", want: "/p?a=1&m=x+y%26z&z=1"},
		{name: "add to an empty query", add: map[string]string{"k": "{request_id}"},
			in: "/p", want: "/p?k=req-1"},
		{name: "remove keeps the others' order and bytes", remove: []string{"utm_source", "utm_medium"},
			in: "/p?utm_source=x&id=7&q=a%20b+c&utm_medium=y&flag&utm_source=z", want: "/p?id=7&q=a%20b+c&flag"},
		{name: "remove matches the decoded key", remove: []string{"utm_source"},
			in: "/p?utm%5Fsource=x&id=7", want: "/p?id=7"},
		{name: "remove everything", remove: []string{"a"},
			in: "/p?a=1&a=2", want: "/p"},
		{name: "empty pieces dropped", remove: []string{"a"},
			in: "/p?a=1&&b=2&", want: "/p?b=2"},
		{name: "undecodable key kept and matched as written", remove: []string{"%zz"},
			in: "/p?%zz=1&ok=2", want: "/p?ok=2"},
		{name: "path and query together", re: `^/u/(?P<id>\d+)$`, to: `/users`,
			add: map[string]string{"id": "${id}"}, remove: []string{"debug"},
			in: "/u/42?debug=1&x=1", want: "/users?x=1&id=42", changed: true},
		{name: "no match: query still edited, captures empty", re: `^/u/(\d+)$`, to: `/users`,
			add: map[string]string{"id": "$1", "v": "2"},
			in:  "/other?x", want: "/other?x&id=&v=2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rw, err := CompileRewrite(tc.re, tc.to, tc.add, tc.remove)
			if err != nil {
				t.Fatal(err)
			}
			u, err := url.ParseRequestURI(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			changed := rw.Apply(u, varsFor(u))
			if got := u.RequestURI(); got != tc.want || changed != tc.changed {
				t.Errorf("Apply(%s) = %s, changed %v; want %s, changed %v", tc.in, got, changed, tc.want, tc.changed)
			}
		})
	}
}

// TestRewriteByHand: a Rewrite built without CompileRewrite still orders
// new parameters by key.
func TestRewriteByHand(t *testing.T) {
	one, _ := Compile("1", nil)
	rw := &Rewrite{QueryAdd: map[string]*Template{"b": one, "a": one}}
	u := &url.URL{Path: "/p", RawQuery: "c=3"}
	if rw.Apply(u, nil) || u.RawQuery != "c=3&a=1&b=1" {
		t.Errorf("got %q", u.RawQuery)
	}
}

func TestCompileRewriteErrors(t *testing.T) {
	const known = "known: {client_ip} {request_id} {route} {host} {scheme} {path} {query} {uri}"
	tests := []struct {
		name, re, to string
		add          map[string]string
		remove       []string
		want         string
	}{
		{name: "bad expression", re: `(`, to: "/x", want: "path_regex: error parsing regexp: missing closing ): `(`"},
		{name: "expression without to", re: `^/a`, want: "to: missing: path_regex needs a to template for the new path"},
		{name: "capture the expression lacks", re: `^/a`, to: "/b/$1", want: "to: column 4: $1: the regular expression has no capture groups"},
		{name: "capture without an expression", to: "/b/$1",
			want: "to: column 4: $1 refers to a capture group, but there is no regular expression to capture from (write $$ for a literal dollar)"},
		{name: "bad placeholder in to", re: `^/(a)`, to: "/{pth}", want: `to: column 2: unknown placeholder "{pth}"; ` + known},
		{name: "empty add key", add: map[string]string{"": "x"}, want: "query.add: empty parameter name"},
		{name: "bad add value", add: map[string]string{"k": "{nope}"}, want: `query.add["k"]: column 1: unknown placeholder "{nope}"; ` + known},
		{name: "add value capture without expression", add: map[string]string{"k": "$1"},
			want: `query.add["k"]: column 1: $1 refers to a capture group, but there is no regular expression to capture from (write $$ for a literal dollar)`},
		{name: "empty remove key", remove: []string{"a", ""}, want: "query.remove[1]: empty parameter name"},
		{name: "added and removed", add: map[string]string{"a": "1"}, remove: []string{"b", "a"},
			want: `query.remove[1]: "a" is also in query.add, which already replaces its values`},
		{name: "nothing at all", want: "nothing to rewrite: set path_regex and to, or query.add or query.remove"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := CompileRewrite(tc.re, tc.to, tc.add, tc.remove)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("got %v\nwant %s", err, tc.want)
			}
		})
	}
	_, err := CompileRewrite("", "{x}", nil, nil)
	if se := (*SyntaxError)(nil); !errors.As(err, &se) || se.Col != 1 {
		t.Errorf("the column is not reachable with errors.As: %v", err)
	}
}

func TestCleanPath(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "/"},
		{"/", "/"},
		{"a", "/a"},
		{"/a/b", "/a/b"},
		{"/..", "/"},
		{"/../..", "/"},
		{"..", "/"},
		{"/a/../../b", "/b"},
		{"/a/b/..", "/a/"},
		{"/a/b/.", "/a/b/"},
		{"/a/./b", "/a/b"},
		{"/a//../b", "/a/b"},
		{"/a/.../b", "/a/.../b"},
		{"/.a/b.", "/.a/b."},
		{"//a", "/a"},
		{"///a//b", "/a//b"},
		{"//../a", "/a"},
		{"/..//evil.com", "/evil.com"},
		{"/a/..//evil.com", "/evil.com"},
		{"////", "/"},
	}
	for _, tc := range tests {
		if got := cleanPath([]byte(tc.in)); got != tc.want {
			t.Errorf("cleanPath(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
