package cors

import (
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"
)

func mustNew(t testing.TB, s Spec) *Policy {
	t.Helper()
	p, err := New(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestNewErrors(t *testing.T) {
	for name, s := range map[string]Spec{
		"no origins":                {},
		"* with credentials":        {Origins: []string{"*"}, Credentials: true},
		"* among others, creds":     {Origins: []string{"https://a.example", "*"}, Credentials: true},
		"trailing slash":            {Origins: []string{"https://a.example/"}},
		"path":                      {Origins: []string{"https://a.example/app"}},
		"query":                     {Origins: []string{"https://a.example?x=1"}},
		"fragment":                  {Origins: []string{"https://a.example#x"}},
		"user":                      {Origins: []string{"https://u@a.example"}},
		"no scheme":                 {Origins: []string{"a.example"}},
		"scheme only":               {Origins: []string{"https://"}},
		"bad scheme":                {Origins: []string{"1http://a.example"}},
		"wildcard not first label":  {Origins: []string{"https://a.*.example.com"}},
		"wildcard inside label":     {Origins: []string{"https://*example.com"}},
		"wildcard alone":            {Origins: []string{"https://*"}},
		"wildcard over a TLD":       {Origins: []string{"https://*.com"}},
		"two wildcards":             {Origins: []string{"https://*.*.example.com"}},
		"wildcard scheme":           {Origins: []string{"*://a.example"}},
		"wildcard with path":        {Origins: []string{"https://*.example.com/"}},
		"port 0":                    {Origins: []string{"http://a.example:0"}},
		"port too big":              {Origins: []string{"http://a.example:65536"}},
		"port not a number":         {Origins: []string{"http://a.example:http"}},
		"empty port":                {Origins: []string{"http://a.example:"}},
		"two colons":                {Origins: []string{"http://a.example:80:80"}},
		"space":                     {Origins: []string{"https://a example.com"}},
		"empty label":               {Origins: []string{"https://a..example"}},
		"trailing dot":              {Origins: []string{"https://a.example."}},
		"underscore":                {Origins: []string{"https://a_b.example"}},
		"unicode host":              {Origins: []string{"https://bücher.example"}},
		"bad IPv6":                  {Origins: []string{"http://[::g]"}},
		"unclosed IPv6":             {Origins: []string{"http://[::1"}},
		"empty origin":              {Origins: []string{""}},
		"method not a token":        {Origins: []string{"*"}, Methods: []string{"GE T"}},
		"empty method":              {Origins: []string{"*"}, Methods: []string{""}},
		"header not a token":        {Origins: []string{"*"}, Headers: []string{"x-a:b"}},
		"expose not a token":        {Origins: []string{"*"}, Expose: []string{"x a"}},
		"expose * with credentials": {Origins: []string{"https://a.example"}, Expose: []string{"*"}, Credentials: true},
		"negative max age":          {Origins: []string{"*"}, MaxAge: -time.Second},
	} {
		if _, err := New(s); err == nil {
			t.Errorf("%s: New accepted %+v", name, s)
		}
	}
}

func TestOriginMatching(t *testing.T) {
	p := mustNew(t, Spec{Origins: []string{
		"https://app.example",
		"HTTP://Admin.Example:8080",
		"https://a.example:443", // the default port, as browsers leave it out
		"https://*.example.com",
		"http://*.dev.example.net:3000",
		"http://*.localhost:5173",
		"http://[::1]:8000",
		"http://127.0.0.1:9000",
		"capacitor://localhost",
	}})
	for origin, want := range map[string]bool{
		"https://app.example":             true,
		"http://app.example":              false, // scheme
		"https://app.example:8443":        false, // port
		"https://app.example.evil.com":    false,
		"https://evilapp.example":         false,
		"https://app.example/":            false,
		"https://APP.example":             false, // browsers send lower case
		"http://admin.example:8080":       true,
		"http://admin.example":            false,
		"https://a.example":               true,
		"https://a.example:443":           false, // never sent by a browser
		"https://x.example.com":           true,
		"https://deep.x.example.com":      true,
		"https://x-1.example.com":         true,
		"https://example.com":             false, // the bare domain
		"https://.example.com":            false,
		"https://x..example.com":          false,
		"https://evilexample.com":         false, // a suffix trick
		"https://x.evilexample.com":       false,
		"https://example.com.evil.com":    false,
		"https://x.example.com.evil.com":  false,
		"https://x.example.com:8443":      false, // port
		"http://x.example.com":            false, // scheme
		"https://x_y.example.com":         false,
		"https://x.example.com/path":      false,
		"https://u@x.example.com":         false,
		"https://X.example.com":           false,
		"http://a.dev.example.net:3000":   true,
		"http://a.dev.example.net":        false,
		"http://a.dev.example.net:30000":  false,
		"http://a.dev.example.net:3000:3": false,
		"http://dev.example.net:3000":     false,
		"http://my-app.localhost:5173":    true,
		"http://[::1]:8000":               true,
		"http://[0:0:0:0:0:0:0:1]:8000":   false, // not serialized
		"http://127.0.0.1:9000":           true,
		"capacitor://localhost":           true,
		"null":                            false,
		"":                                false,
	} {
		if got := p.originAllowed(origin); got != want {
			t.Errorf("origin %q: allowed %v, want %v", origin, got, want)
		}
	}

	withNull := mustNew(t, Spec{Origins: []string{"https://app.example", "null"}})
	if !withNull.originAllowed("null") {
		t.Error(`"null" listed but not allowed`)
	}
	any := mustNew(t, Spec{Origins: []string{"*"}})
	for _, o := range []string{"null", "https://anything.example", "http://x:1"} {
		if !any.originAllowed(o) {
			t.Errorf("* does not allow %q", o)
		}
	}
}

// preflight runs a preflight request through p with the given header
// lines ("Name: value") and returns whether it was one, and the recorder.
func preflight(t *testing.T, p *Policy, method string, header ...string) (bool, *httptest.ResponseRecorder) {
	t.Helper()
	r := httptest.NewRequest(method, "https://api.example/v1/items", nil)
	for _, h := range header {
		k, v, _ := strings.Cut(h, ":")
		r.Header.Add(k, strings.TrimSpace(v))
	}
	w := httptest.NewRecorder()
	return p.Preflight(w, r), w
}

var preflightVary = []string{"Origin", "Access-Control-Request-Method", "Access-Control-Request-Headers"}

func checkVary(t *testing.T, h http.Header, want ...string) {
	t.Helper()
	var got []string
	for _, v := range h.Values("Vary") {
		for _, e := range strings.Split(v, ",") {
			got = append(got, strings.TrimSpace(e))
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("Vary %q, want %q", got, want)
	}
}

// allowHeaders returns the Access-Control-Allow-* fields of h.
func allowHeaders(h http.Header) []string {
	var got []string
	for k := range h {
		if strings.HasPrefix(k, "Access-Control-") {
			got = append(got, k)
		}
	}
	slices.Sort(got)
	return got
}

func TestPreflightAllowed(t *testing.T) {
	p := mustNew(t, Spec{
		Origins:     []string{"https://app.example", "https://*.example.com"},
		Methods:     []string{"get", "POST", "PUT", "DELETE", "PATCH"},
		Headers:     []string{"Content-Type", "X-Request-Id", "Authorization"},
		Expose:      []string{"X-Trace"},
		Credentials: true,
		MaxAge:      10 * time.Minute,
	})
	for _, c := range []struct {
		name      string
		requested bool // headers requested, so Allow-Headers answered
		header    []string
	}{
		{"no headers", false, []string{"Origin: https://app.example", "Access-Control-Request-Method: PUT"}},
		{"as Chromium sends", true, []string{"Origin: https://x.example.com", "Access-Control-Request-Method: DELETE",
			"Access-Control-Request-Headers: authorization,content-type,x-request-id"}},
		{"spaces and case", true, []string{"Origin: https://app.example", "Access-Control-Request-Method: PATCH",
			"Access-Control-Request-Headers:  X-Request-ID ,\tContent-Type , ,authorization"}},
		{"two lines", true, []string{"Origin: https://app.example", "Access-Control-Request-Method: POST",
			"Access-Control-Request-Headers: content-type", "Access-Control-Request-Headers: x-request-id"}},
		{"empty header list", false, []string{"Origin: https://app.example", "Access-Control-Request-Method: GET",
			"Access-Control-Request-Headers: "}},
	} {
		t.Run(c.name, func(t *testing.T) {
			ok, w := preflight(t, p, "OPTIONS", c.header...)
			if !ok {
				t.Fatal("not taken as a preflight")
			}
			h := w.Result().Header
			if w.Code != http.StatusNoContent || w.Body.Len() != 0 {
				t.Errorf("status %d with %d bytes, want 204 and none", w.Code, w.Body.Len())
			}
			origin := strings.TrimPrefix(c.header[0], "Origin: ")
			if got := h.Get("Access-Control-Allow-Origin"); got != origin {
				t.Errorf("Allow-Origin %q, want %q", got, origin)
			}
			if got := h.Get("Access-Control-Allow-Methods"); got != "GET, POST, PUT, DELETE, PATCH" {
				t.Errorf("Allow-Methods %q", got)
			}
			if got := h.Get("Access-Control-Allow-Credentials"); got != "true" {
				t.Errorf("Allow-Credentials %q", got)
			}
			if got := h.Get("Access-Control-Max-Age"); got != "600" {
				t.Errorf("Max-Age %q, want 600", got)
			}
			wantHeaders := ""
			if c.requested {
				wantHeaders = "content-type, x-request-id, authorization"
			}
			if got := h.Get("Access-Control-Allow-Headers"); got != wantHeaders {
				t.Errorf("Allow-Headers %q, want %q", got, wantHeaders)
			}
			if _, ok := h["Access-Control-Expose-Headers"]; ok {
				t.Error("Expose-Headers on a preflight")
			}
			checkVary(t, h, preflightVary...)
		})
	}
}

func TestPreflightRefused(t *testing.T) {
	p := mustNew(t, Spec{
		Origins: []string{"https://app.example", "https://*.example.com"},
		Methods: []string{"GET", "PUT", "PATCH"},
		Headers: []string{"Content-Type", "X-Request-Id"},
	})
	for name, header := range map[string][]string{
		"origin":              {"Origin: https://evil.example", "Access-Control-Request-Method: GET"},
		"bare domain":         {"Origin: https://example.com", "Access-Control-Request-Method: GET"},
		"suffix trick":        {"Origin: https://evilexample.com", "Access-Control-Request-Method: GET"},
		"scheme":              {"Origin: http://app.example", "Access-Control-Request-Method: GET"},
		"port":                {"Origin: https://app.example:444", "Access-Control-Request-Method: GET"},
		"null":                {"Origin: null", "Access-Control-Request-Method: GET"},
		"two origins":         {"Origin: https://app.example", "Origin: https://evil.example", "Access-Control-Request-Method: GET"},
		"method":              {"Origin: https://app.example", "Access-Control-Request-Method: DELETE"},
		"method case":         {"Origin: https://app.example", "Access-Control-Request-Method: patch"},
		"method not a token":  {"Origin: https://app.example", "Access-Control-Request-Method: GE T"},
		"a header":            {"Origin: https://app.example", "Access-Control-Request-Method: PUT", "Access-Control-Request-Headers: content-type,x-other"},
		"header on line two":  {"Origin: https://app.example", "Access-Control-Request-Method: PUT", "Access-Control-Request-Headers: content-type", "Access-Control-Request-Headers: authorization"},
		"header not a token":  {"Origin: https://app.example", "Access-Control-Request-Method: PUT", "Access-Control-Request-Headers: content-type;x"},
		"too many headers":    {"Origin: https://app.example", "Access-Control-Request-Method: PUT", "Access-Control-Request-Headers: " + strings.Repeat("content-type,", 65)},
		"prefix of a header":  {"Origin: https://app.example", "Access-Control-Request-Method: PUT", "Access-Control-Request-Headers: content"},
		"header with a space": {"Origin: https://app.example", "Access-Control-Request-Method: PUT", "Access-Control-Request-Headers: content type"},
	} {
		ok, w := preflight(t, p, "OPTIONS", header...)
		if !ok {
			t.Errorf("%s: not taken as a preflight", name)
			continue
		}
		h := w.Result().Header
		if w.Code != http.StatusNoContent {
			t.Errorf("%s: status %d, want 204", name, w.Code)
		}
		if got := allowHeaders(h); len(got) != 0 {
			t.Errorf("%s: refused preflight has %v", name, got)
		}
		checkVary(t, h, preflightVary...)
	}
}

func TestNotPreflight(t *testing.T) {
	p := mustNew(t, Spec{Origins: []string{"*"}})
	for name, c := range map[string]struct {
		method string
		header []string
	}{
		"no request method": {"OPTIONS", []string{"Origin: https://a.example"}},
		"empty method":      {"OPTIONS", []string{"Origin: https://a.example", "Access-Control-Request-Method: "}},
		"no origin":         {"OPTIONS", []string{"Access-Control-Request-Method: GET"}},
		"not OPTIONS":       {"GET", []string{"Origin: https://a.example", "Access-Control-Request-Method: GET"}},
	} {
		ok, w := preflight(t, p, c.method, c.header...)
		if ok || w.Code != 200 || len(w.Header()) != 0 || w.Body.Len() != 0 {
			t.Errorf("%s: taken as a preflight (%v) or written to (%d, %v)", name, ok, w.Code, w.Header())
		}
	}
}

func TestPreflightWildcards(t *testing.T) {
	p := mustNew(t, Spec{Origins: []string{"*"}, Methods: []string{"*"}, Headers: []string{"*"}})
	ok, w := preflight(t, p, "OPTIONS", "Origin: https://any.example", "Access-Control-Request-Method: PROPFIND",
		"Access-Control-Request-Headers: X-One, x-two")
	h := w.Result().Header
	if !ok || h.Get("Access-Control-Allow-Origin") != "*" || h.Get("Access-Control-Allow-Methods") != "PROPFIND" ||
		h.Get("Access-Control-Allow-Headers") != "x-one, x-two" {
		t.Errorf("wildcards: %v", h)
	}
	if _, ok := h["Access-Control-Allow-Credentials"]; ok {
		t.Error("credentials allowed without being configured")
	}
	if _, ok := h["Access-Control-Max-Age"]; ok {
		t.Error("Max-Age without being configured")
	}

	// With credentials, "*" headers are echoed, which Fetch accepts (a
	// literal "*" would not be).
	creds := mustNew(t, Spec{Origins: []string{"https://a.example"}, Headers: []string{"*"}, Credentials: true, MaxAge: 1500 * time.Millisecond})
	_, w = preflight(t, creds, "OPTIONS", "Origin: https://a.example", "Access-Control-Request-Method: POST",
		"Access-Control-Request-Headers: authorization")
	h = w.Result().Header
	if h.Get("Access-Control-Allow-Origin") != "https://a.example" || h.Get("Access-Control-Allow-Headers") != "authorization" ||
		h.Get("Access-Control-Max-Age") != "1" || h.Get("Access-Control-Allow-Methods") != "GET, HEAD, POST" {
		t.Errorf("credentialed wildcard headers: %v", h)
	}
}

func TestPreflightReplacesHeaders(t *testing.T) {
	p := mustNew(t, Spec{Origins: []string{"https://app.example"}})
	r := httptest.NewRequest("OPTIONS", "/", nil)
	r.Header.Set("Origin", "https://evil.example")
	r.Header.Set("Access-Control-Request-Method", "GET")
	w := httptest.NewRecorder()
	w.Header().Set("Access-Control-Allow-Origin", "*")
	w.Header().Set("Vary", "origin")
	p.Preflight(w, r)
	h := w.Result().Header
	if got := allowHeaders(h); len(got) != 0 {
		t.Errorf("left %v", got)
	}
	checkVary(t, h, "origin", "Access-Control-Request-Method", "Access-Control-Request-Headers")
}

func TestResponse(t *testing.T) {
	p := mustNew(t, Spec{
		Origins:     []string{"https://app.example", "https://*.example.com"},
		Expose:      []string{"X-Trace", "Content-Length"},
		Credentials: true,
	})
	upstream := func() http.Header {
		return http.Header{
			"Content-Type":                     {"application/json"},
			"Vary":                             {"Accept-Encoding"},
			"Access-Control-Allow-Origin":      {"*"},
			"Access-Control-Allow-Credentials": {"false"},
			"Access-Control-Expose-Headers":    {"X-Secret"},
			"Access-Control-Max-Age":           {"86400"},
		}
	}
	h := upstream()
	p.Response("https://x.example.com", h)
	if h.Get("Access-Control-Allow-Origin") != "https://x.example.com" || h.Get("Access-Control-Allow-Credentials") != "true" ||
		h.Get("Access-Control-Expose-Headers") != "X-Trace, Content-Length" {
		t.Errorf("allowed origin: %v", h)
	}
	if _, ok := h["Access-Control-Max-Age"]; ok {
		t.Error("the upstream's Max-Age survived")
	}
	checkVary(t, h, "Accept-Encoding", "Origin")
	if h.Get("Content-Type") != "application/json" {
		t.Error("unrelated header lost")
	}

	for _, origin := range []string{"https://evil.example", "https://example.com", "null", ""} {
		h := upstream()
		p.Response(origin, h)
		if got := allowHeaders(h); len(got) != 0 {
			t.Errorf("origin %q: %v left or set", origin, got)
		}
		checkVary(t, h, "Accept-Encoding", "Origin")
	}

	// Vary: Origin is not repeated, in any case or position.
	for _, vary := range [][]string{{"Origin"}, {"accept-encoding, origin"}, {"Accept-Encoding", "ORIGIN"}, {"*"}} {
		h := http.Header{"Vary": slices.Clone(vary)}
		p.Response("https://app.example", h)
		if !slices.Equal(h["Vary"], vary) {
			t.Errorf("Vary %q became %q", vary, h["Vary"])
		}
	}
}

func TestResponseAnyOrigin(t *testing.T) {
	p := mustNew(t, Spec{Origins: []string{"*"}, Expose: []string{"*"}})
	for _, origin := range []string{"https://a.example", "null", ""} {
		h := http.Header{"Access-Control-Allow-Origin": {"https://b.example"}, "Access-Control-Allow-Credentials": {"true"}}
		p.Response(origin, h)
		if h.Get("Access-Control-Allow-Origin") != "*" || h.Get("Access-Control-Expose-Headers") != "*" {
			t.Errorf("origin %q: %v", origin, h)
		}
		if _, ok := h["Access-Control-Allow-Credentials"]; ok {
			t.Errorf("origin %q: the upstream's Allow-Credentials survived", origin)
		}
		if _, ok := h["Vary"]; ok {
			t.Errorf("origin %q: Vary %q, the answer does not vary", origin, h["Vary"])
		}
	}
}

// TestOverHTTP runs a browser's two requests, preflight then actual,
// through a real server that applies the policy as the proxy does.
func TestOverHTTP(t *testing.T) {
	p := mustNew(t, Spec{
		Origins:     []string{"https://*.example.com"},
		Methods:     []string{"PUT"},
		Headers:     []string{"Content-Type"},
		Expose:      []string{"X-Trace"},
		Credentials: true,
		MaxAge:      time.Hour,
	})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p.Preflight(w, r) {
			return
		}
		// The upstream's answer, then the edge's policy over it.
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.Header().Set("X-Trace", "abc")
		p.Response(r.Header.Get("Origin"), w.Header())
		io.WriteString(w, "ok")
	}))
	defer srv.Close()

	do := func(method string, header ...string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL, strings.NewReader(""))
		for _, h := range header {
			k, v, _ := strings.Cut(h, ":")
			req.Header.Set(k, strings.TrimSpace(v))
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res
	}
	res := do("OPTIONS", "Origin: https://shop.example.com", "Access-Control-Request-Method: PUT",
		"Access-Control-Request-Headers: content-type")
	if res.StatusCode != 204 || res.Header.Get("Access-Control-Allow-Origin") != "https://shop.example.com" ||
		res.Header.Get("Access-Control-Max-Age") != "3600" {
		t.Errorf("preflight: %d %v", res.StatusCode, res.Header)
	}
	res = do("PUT", "Origin: https://shop.example.com", "Content-Type: application/json")
	if res.StatusCode != 200 || res.Header.Get("Access-Control-Allow-Origin") != "https://shop.example.com" ||
		res.Header.Get("Access-Control-Expose-Headers") != "X-Trace" || res.Header.Get("Access-Control-Allow-Credentials") != "true" {
		t.Errorf("actual request: %d %v", res.StatusCode, res.Header)
	}
	res = do("PUT", "Origin: https://evilexample.com")
	if res.Header.Get("Access-Control-Allow-Origin") != "" || res.Header.Get("Vary") != "Origin" {
		t.Errorf("disallowed origin: %v", res.Header)
	}
}

func TestAllocs(t *testing.T) {
	p := mustNew(t, Spec{Origins: []string{"https://app.example", "https://*.example.com"}, Headers: []string{"content-type", "x-a"}})
	vals := []string{"content-type, x-a"}
	if n := testing.AllocsPerRun(100, func() {
		_ = p.originAllowed("https://deep.x.example.com") && p.headersAllowed(vals) && p.methodAllowed("GET")
	}); n != 0 {
		t.Errorf("matching allocates %v times, want 0", n)
	}
}
