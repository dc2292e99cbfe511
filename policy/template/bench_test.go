package template

import (
	"net/url"
	"regexp"
	"testing"
)

// benchExpand measures one expansion into a reused buffer: what a header
// value or a redirect costs per request besides the final string.
func benchExpand(b *testing.B, tmpl string, re *regexp.Regexp, src string) {
	tpl, err := Compile(tmpl, re)
	if err != nil {
		b.Fatal(err)
	}
	var caps []int
	if re != nil {
		caps = re.FindStringSubmatchIndex(src)
	}
	v := testVars
	dst := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		dst = tpl.Expand(dst[:0], &v, src, caps)
	}
	if len(dst) == 0 {
		b.Fatal("empty expansion")
	}
}

func BenchmarkExpandLiteral(b *testing.B) {
	benchExpand(b, "https://www.example.com/maintenance.html", nil, "")
}

func BenchmarkExpand3Placeholders(b *testing.B) {
	benchExpand(b, "{scheme}://{host}{uri}", nil, "")
}

func BenchmarkExpandCaptures(b *testing.B) {
	benchExpand(b, "/v2/${user}/$2?route={route}", regexp.MustCompile(`^/old/(?P<user>[^/]+)/(.*)$`), "/old/bob/photos/1.jpg")
}

func BenchmarkExpandHeader(b *testing.B) {
	tpl, _ := Compile("{client_ip}; id={request_id}; {path}", nil)
	v := testVars
	dst := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		dst = tpl.ExpandHeader(dst[:0], &v, "", nil)
	}
}

func BenchmarkLocation(b *testing.B) {
	rd, err := CompileRedirect("https://{host}{uri}", 301, nil)
	if err != nil {
		b.Fatal(err)
	}
	v := testVars
	b.ReportAllocs()
	for b.Loop() {
		_ = rd.Location(&v, "", nil)
	}
}

func BenchmarkRewriteApply(b *testing.B) {
	rw, err := CompileRewrite(`^/api/(.*)$`, "/v2/$1", map[string]string{"src": "{route}"}, []string{"utm_source"})
	if err != nil {
		b.Fatal(err)
	}
	v := testVars
	b.ReportAllocs()
	for b.Loop() {
		u := url.URL{Path: "/api/users/42", RawQuery: "utm_source=x&page=2"}
		rw.Apply(&u, &v)
	}
}
