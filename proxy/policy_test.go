package proxy

import (
	"bytes"
	"compress/gzip"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/crypto/bcrypt"

	"github.com/meridian-lb/meridian/config"
	"github.com/meridian-lb/meridian/health"
	"github.com/meridian-lb/meridian/routing"
)

// The edge policies through the real listener: each policy's answers
// with their headers, what the upstream sees, that refusals never reach
// the upstream or its health, and what a reload keeps.

const policyHead = `
pools:
  p: {endpoints: ["{{A}}"]}
services:
  s: {pools: [p]}
routes:
`

// swapKeeping publishes a new table compiled with the live one as its
// previous, as the rebuild loop does: policy state of unchanged routes
// carries over.
func (e *env) swapKeeping(y string, vars map[string]string) {
	e.t.Helper()
	for k, v := range vars {
		y = strings.ReplaceAll(y, "{{"+k+"}}", v)
	}
	cfg, err := config.Parse("test.yaml", []byte(y))
	if err != nil {
		e.t.Fatalf("parse: %v", err)
	}
	tb, err := routing.Compile(cfg, routing.Inputs{Previous: e.live.Load()})
	if err != nil {
		e.t.Fatalf("compile: %v", err)
	}
	e.eng.Sync(tb.HealthSpecs())
	tb.BindHealth(e.eng)
	e.install(tb)
}

func policyAnswers(e *env, route, step string, code int) float64 {
	return e.metric("meridian_http_policy_answers_total", map[string]string{"route": route, "policy": step, "code": fmt.Sprint(code)})
}

func TestPolicyAccessList(t *testing.T) {
	b := newBackend(t, "a", nil)
	e := newEnv(t, policyHead+`
  - {name: office, match: {path_prefix: /office}, allow: [10.0.0.0/8], service: s}
  - {name: blocked, match: {path_prefix: /blocked}, allow: [127.0.0.0/8], deny: [127.0.0.1/32], service: s}
  - {name: open, match: {path_prefix: /open}, allow: ["127.0.0.0/8", "::1"], service: s}
`, map[string]string{"A": b.addr})
	for _, c := range []struct {
		path string
		code int
	}{{"/office", 403}, {"/blocked", 403}, {"/open", 200}} {
		res, body := e.get(c.path)
		if res.StatusCode != c.code {
			t.Errorf("%s: %d %q, want %d", c.path, res.StatusCode, body, c.code)
		}
	}
	if got := b.hits.Load(); got != 1 {
		t.Errorf("upstream hits %d, want only the allowed request", got)
	}
	if got := policyAnswers(e, "office", "access", 403); got != 1 {
		t.Errorf("policy answers for office: %v", got)
	}
}

func TestPolicyRateLimit(t *testing.T) {
	b := newBackend(t, "a", nil)
	y := policyHead + `
  - {name: api, match: {path_prefix: /api}, rate_limit: {requests: 2, per: 1m}, service: s}
  - {name: keyed, match: {path_prefix: /keyed}, rate_limit: {requests: 1, per: 1m, key: "header:X-Api-Key"}, service: s}
`
	vars := map[string]string{"A": b.addr}
	e := newEnv(t, y, vars)
	for i := range 2 {
		res, _ := e.get("/api")
		if res.StatusCode != 200 {
			t.Fatalf("request %d: %d", i, res.StatusCode)
		}
		if res.Header.Get("RateLimit-Policy") == "" || res.Header.Get("RateLimit") == "" {
			t.Errorf("request %d: no RateLimit headers: %v", i, res.Header)
		}
	}
	res, _ := e.get("/api")
	if res.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("third request: %d, want 429", res.StatusCode)
	}
	if ra := res.Header.Get("Retry-After"); ra == "" || ra == "0" {
		t.Errorf("Retry-After %q", ra)
	}
	if got := res.Header.Get("RateLimit-Policy"); !strings.Contains(got, `"api"`) || !strings.Contains(got, "q=2") || !strings.Contains(got, "w=60") {
		t.Errorf("RateLimit-Policy %q", got)
	}
	if got := res.Header.Get("RateLimit"); !strings.Contains(got, "r=0") {
		t.Errorf("RateLimit %q", got)
	}
	if got := b.hits.Load(); got != 2 {
		t.Errorf("upstream hits %d, want 2", got)
	}

	// A reload that leaves the limit as it was keeps the buckets: the
	// client is still over it.
	e.swapKeeping(y+"  - {name: other, match: {path_prefix: /other}, service: s}\n", vars)
	if res, _ := e.get("/api"); res.StatusCode != http.StatusTooManyRequests {
		t.Errorf("after an unrelated reload: %d, want 429 (buckets kept)", res.StatusCode)
	}
	// Changing the limit starts afresh.
	e.swapKeeping(strings.Replace(y, "requests: 2", "requests: 3", 1), vars)
	if res, _ := e.get("/api"); res.StatusCode != 200 {
		t.Errorf("after changing the limit: %d, want 200 (new buckets)", res.StatusCode)
	}

	// Keyed by a header: each key has its bucket; no header falls back to
	// the client address, so leaving it out is no way around the limit.
	for _, k := range []string{"k1", "k2"} {
		if res, _ := e.get("/keyed", "X-Api-Key", k); res.StatusCode != 200 {
			t.Errorf("key %s: %d", k, res.StatusCode)
		}
	}
	if res, _ := e.get("/keyed", "X-Api-Key", "k1"); res.StatusCode != 429 {
		t.Errorf("key k1 again: %d, want 429", res.StatusCode)
	}
	if res, _ := e.get("/keyed"); res.StatusCode != 200 {
		t.Errorf("no key, first: %d", res.StatusCode)
	}
	if res, _ := e.get("/keyed"); res.StatusCode != 429 {
		t.Errorf("no key, second: %d, want 429", res.StatusCode)
	}
	if got := policyAnswers(e, "keyed", "rate_limit", 429); got != 2 {
		t.Errorf("rate_limit answers for keyed: %v, want 2", got)
	}
}

func writeHtpasswd(t *testing.T, dir, user, pass string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pass), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "htpasswd")
	if err := os.WriteFile(p, []byte(user+":"+string(h)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPolicyBasicAuth(t *testing.T) {
	b := newBackend(t, "a", nil)
	dir := t.TempDir()
	vars := map[string]string{"A": b.addr, "F": writeHtpasswd(t, dir, "alice", "s3cret")}
	e := newEnv(t, policyHead+`
  - {name: private, match: {path_prefix: /private}, basic_auth: {htpasswd: "{{F}}", realm: team}, service: s}
  - {name: passing, match: {path_prefix: /passing}, basic_auth: {htpasswd: "{{F}}"}, forward_authorization: true, service: s}
`, vars)
	res, _ := e.get("/private")
	if res.StatusCode != 401 || !strings.Contains(res.Header.Get("WWW-Authenticate"), `Basic realm="team"`) {
		t.Fatalf("no credentials: %d %q", res.StatusCode, res.Header.Get("WWW-Authenticate"))
	}
	basic := func(u, p string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte(u+":"+p)) }
	if res, _ := e.get("/private", "Authorization", basic("alice", "wrong")); res.StatusCode != 401 {
		t.Errorf("wrong password: %d", res.StatusCode)
	}
	if b.hits.Load() != 0 {
		t.Fatal("a refused request reached the upstream")
	}
	if res, _ := e.get("/private", "Authorization", basic("alice", "s3cret")); res.StatusCode != 200 {
		t.Fatalf("right password: %d", res.StatusCode)
	}
	if r, _ := b.lastRequest(); r.Header.Get("Authorization") != "" {
		t.Errorf("the upstream got the client's credentials: %q", r.Header.Get("Authorization"))
	}
	if res, _ := e.get("/passing", "Authorization", basic("alice", "s3cret")); res.StatusCode != 200 {
		t.Fatalf("forward_authorization route: %d", res.StatusCode)
	}
	if r, _ := b.lastRequest(); r.Header.Get("Authorization") == "" {
		t.Error("forward_authorization: true, but the upstream got no Authorization")
	}
	if got := policyAnswers(e, "private", "basic_auth", 401); got != 2 {
		t.Errorf("basic_auth answers: %v, want 2", got)
	}
}

// hs256 signs claims with key as a compact JWS, the way an issuer would.
func hs256(t *testing.T, key []byte, kid string, claims map[string]any) string {
	t.Helper()
	enc := base64.RawURLEncoding
	hdr, _ := json.Marshal(map[string]string{"alg": "HS256", "typ": "JWT", "kid": kid})
	pl, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	in := enc.EncodeToString(hdr) + "." + enc.EncodeToString(pl)
	m := hmac.New(sha256.New, key)
	m.Write([]byte(in))
	return in + "." + enc.EncodeToString(m.Sum(nil))
}

func TestPolicyJWT(t *testing.T) {
	b := newBackend(t, "a", nil)
	key := []byte("0123456789abcdef0123456789abcdef")
	dir := t.TempDir()
	jwks := fmt.Sprintf(`{"keys":[{"kty":"oct","kid":"k1","alg":"HS256","k":%q}]}`, base64.RawURLEncoding.EncodeToString(key))
	jf := filepath.Join(dir, "jwks.json")
	if err := os.WriteFile(jf, []byte(jwks), 0o600); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, policyHead+`
  - name: api
    match: {path_prefix: /api}
    jwt: {jwks: "{{J}}", issuer: https://issuer.test, audiences: [svc], claims_to_headers: {sub: X-User}}
    service: s
`, map[string]string{"A": b.addr, "J": jf})
	now := time.Now().Unix()
	good := hs256(t, key, "k1", map[string]any{"iss": "https://issuer.test", "aud": "svc", "sub": "alice", "exp": now + 300})
	res, body := e.get("/api", "Authorization", "Bearer "+good, "X-User", "mallory")
	if res.StatusCode != 200 {
		t.Fatalf("valid token: %d %q", res.StatusCode, body)
	}
	r, _ := b.lastRequest()
	if got := r.Header.Values("X-User"); len(got) != 1 || got[0] != "alice" {
		t.Errorf("X-User at the upstream %q, want the claim only (the client's own value removed)", got)
	}
	if r.Header.Get("Authorization") != "" {
		t.Error("the upstream got the bearer token")
	}
	for name, tok := range map[string]string{
		"expired":        hs256(t, key, "k1", map[string]any{"iss": "https://issuer.test", "aud": "svc", "exp": now - 3600}),
		"wrong issuer":   hs256(t, key, "k1", map[string]any{"iss": "https://evil.test", "aud": "svc", "exp": now + 300}),
		"wrong audience": hs256(t, key, "k1", map[string]any{"iss": "https://issuer.test", "aud": "other", "exp": now + 300}),
		"bad signature":  hs256(t, []byte("another key, 32 bytes long......"), "k1", map[string]any{"iss": "https://issuer.test", "aud": "svc", "exp": now + 300}),
	} {
		res, _ := e.get("/api", "Authorization", "Bearer "+tok)
		if res.StatusCode != 401 || !strings.Contains(res.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s: %d %q, want 401 with a Bearer challenge", name, res.StatusCode, res.Header.Get("WWW-Authenticate"))
		}
	}
	if res, _ := e.get("/api"); res.StatusCode != 401 {
		t.Errorf("no token: %d", res.StatusCode)
	}
	if got := b.hits.Load(); got != 1 {
		t.Errorf("upstream hits %d, want 1", got)
	}
}

func TestPolicyForwardAuth(t *testing.T) {
	b := newBackend(t, "a", nil)
	authSrv := newBackend(t, "auth", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Key") != "ok" {
			w.Header().Set("WWW-Authenticate", `Key realm="x"`)
			w.WriteHeader(403)
			io.WriteString(w, "no key")
			return
		}
		w.Header().Set("X-Auth-User", "bob")
		w.WriteHeader(200)
	})
	dead := deadAddr(t)
	e := newEnv(t, policyHead+`
  - {name: team, match: {path_prefix: /team}, forward_auth: {url: "http://{{AUTH}}/check", copy_headers: [X-Auth-User]}, service: s}
  - {name: down, match: {path_prefix: /down}, forward_auth: {url: "http://{{DEAD}}/check"}, service: s}
`, map[string]string{"A": b.addr, "AUTH": authSrv.addr, "DEAD": dead})
	res, body := e.get("/team/x", "X-Auth-User", "forged")
	if res.StatusCode != 403 || body != "no key" || res.Header.Get("WWW-Authenticate") != `Key realm="x"` {
		t.Fatalf("denied: %d %q %v", res.StatusCode, body, res.Header)
	}
	if b.hits.Load() != 0 {
		t.Fatal("a denied request reached the upstream")
	}
	ar, _ := authSrv.lastRequest()
	if ar.Method != "GET" || ar.Header.Get("X-Forwarded-Uri") != "/team/x" || ar.Header.Get("X-Forwarded-Method") != "GET" {
		t.Errorf("subrequest %s with X-Forwarded-Uri %q, X-Forwarded-Method %q", ar.Method, ar.Header.Get("X-Forwarded-Uri"), ar.Header.Get("X-Forwarded-Method"))
	}
	if res, _ := e.get("/team/x", "X-Key", "ok", "X-Auth-User", "forged"); res.StatusCode != 200 {
		t.Fatalf("allowed: %d", res.StatusCode)
	}
	r, _ := b.lastRequest()
	if got := r.Header.Values("X-Auth-User"); len(got) != 1 || got[0] != "bob" {
		t.Errorf("X-Auth-User at the upstream %q, want the auth service's only", got)
	}
	// The auth service down is neither the client's fault nor the pool's.
	res, _ = e.get("/down")
	if res.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("auth service down: %d, want 503", res.StatusCode)
	}
	if st, _ := e.eng.Status("p", b.addr); st.State != health.StateUp && st.State != health.StateUnknown {
		t.Errorf("pool state after an auth failure: %v", st.State)
	}
	if got := e.metric("meridian_http_upstream_errors_total", map[string]string{"kind": "connect_failure"}); got != 0 {
		t.Errorf("upstream errors %v: an auth service failure was charged to the upstream", got)
	}
}

func TestPolicyCORS(t *testing.T) {
	b := newBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "*") // the edge's policy wins
		io.WriteString(w, "ok")
	})
	e := newEnv(t, policyHead+`
  - name: api
    match: {path_prefix: /}
    cors: {origins: ["https://app.example"], methods: [GET, PUT], headers: [Authorization], expose: [X-Request-Id], credentials: true, max_age: 10m}
    service: s
`, map[string]string{"A": b.addr})
	res, _ := e.do(nil, "OPTIONS", "/x", nil, "Origin", "https://app.example", "Access-Control-Request-Method", "PUT", "Access-Control-Request-Headers", "authorization")
	if res.StatusCode != 204 || res.Header.Get("Access-Control-Allow-Origin") != "https://app.example" ||
		res.Header.Get("Access-Control-Allow-Credentials") != "true" || res.Header.Get("Access-Control-Max-Age") != "600" {
		t.Errorf("preflight: %d %v", res.StatusCode, res.Header)
	}
	res, _ = e.do(nil, "OPTIONS", "/x", nil, "Origin", "https://evil.example", "Access-Control-Request-Method", "PUT")
	if res.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("preflight from a disallowed origin got %v", res.Header)
	}
	if b.hits.Load() != 0 {
		t.Error("a preflight reached the upstream")
	}
	res, _ = e.get("/x", "Origin", "https://app.example")
	if res.Header.Get("Access-Control-Allow-Origin") != "https://app.example" || res.Header.Get("Access-Control-Expose-Headers") == "" {
		t.Errorf("actual request: %v", res.Header)
	}
	res, _ = e.get("/x", "Origin", "https://evil.example")
	if got := res.Header.Get("Access-Control-Allow-Origin"); got != "" {
		t.Errorf("disallowed origin got Access-Control-Allow-Origin %q (the upstream's must not leak through)", got)
	}
}

func TestPolicyCompress(t *testing.T) {
	big := strings.Repeat(`{"id":1,"name":"an item that compresses well"},`, 200)
	b := newBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/small" {
			io.WriteString(w, `{"ok":true}`)
			return
		}
		io.WriteString(w, big)
	})
	e := newEnv(t, policyHead+`
  - {name: c, match: {path_prefix: /}, compress: {encodings: [zstd, gzip], min_size: 1KiB}, service: s}
`, map[string]string{"A": b.addr})
	// Transport would ask for gzip and decode it itself; ask explicitly.
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	res, body := e.do(client, "GET", "/big", nil, "Accept-Encoding", "gzip")
	if res.Header.Get("Content-Encoding") != "gzip" || !strings.Contains(res.Header.Get("Vary"), "Accept-Encoding") {
		t.Fatalf("gzip: %v", res.Header)
	}
	zr, err := gzip.NewReader(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := io.ReadAll(zr); string(got) != big {
		t.Errorf("gzip body decodes to %d bytes, want %d", len(got), len(big))
	}
	res, body = e.do(client, "GET", "/big", nil, "Accept-Encoding", "gzip;q=0.5, zstd")
	if res.Header.Get("Content-Encoding") != "zstd" {
		t.Fatalf("zstd preferred: %v", res.Header)
	}
	zd, _ := zstd.NewReader(nil)
	defer zd.Close()
	if got, err := zd.DecodeAll([]byte(body), nil); err != nil || !bytes.Equal(got, []byte(big)) {
		t.Errorf("zstd body: %v, %d bytes", err, len(got))
	}
	if res, _ := e.do(client, "GET", "/small", nil, "Accept-Encoding", "gzip"); res.Header.Get("Content-Encoding") != "" {
		t.Errorf("a body under min_size was compressed: %v", res.Header)
	}
	if res, _ := e.do(client, "GET", "/big", nil, "Accept-Encoding", "br"); res.Header.Get("Content-Encoding") != "" {
		t.Errorf("an encoding the route does not offer was used: %v", res.Header)
	}
}

func TestPolicyRedirectAndRewrite(t *testing.T) {
	b := newBackend(t, "a", nil)
	e := newEnv(t, policyHead+`
  - {name: moved, match: {path_regex: "^/old/(.*)$"}, redirect: {to: "https://{host}/new/$1", code: 308}}
  - {name: local, match: {path_regex: "^/go/(.*)$"}, redirect: {to: "/$1"}}
  - name: v2
    match: {path_prefix: /v2/}
    rewrite: {path_regex: "^/v2/(.*)$", to: "/api/$1", query: {add: {src: edge}, remove: [debug]}}
    add_headers: {X-Client: "{client_ip}", X-Route: "{route}", X-Literal: "a$1"}
    service: s
`, map[string]string{"A": b.addr})
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, _ := e.do(client, "GET", "/old/docs/a?x=1", nil, "Host", "www.example.test")
	if res.StatusCode != 308 || res.Header.Get("Location") != "https://www.example.test/new/docs/a" {
		t.Errorf("redirect: %d %q", res.StatusCode, res.Header.Get("Location"))
	}
	// A capture the client controls cannot make the target another site.
	res, _ = e.do(client, "GET", "/go//evil.example/x", nil)
	if loc := res.Header.Get("Location"); res.StatusCode != 302 || strings.HasPrefix(loc, "//") || strings.HasPrefix(loc, `/\`) {
		t.Errorf("open redirect: %d %q", res.StatusCode, loc)
	}
	if res, _ := e.get("/v2/items?debug=1&a=b"); res.StatusCode != 200 {
		t.Fatalf("rewrite: %d", res.StatusCode)
	}
	r, _ := b.lastRequest()
	if r.URL.Path != "/api/items" || r.URL.Query().Get("src") != "edge" || r.URL.Query().Has("debug") || r.URL.Query().Get("a") != "b" {
		t.Errorf("upstream got %s", r.URL)
	}
	if r.Header.Get("X-Client") != "127.0.0.1" || r.Header.Get("X-Route") != "v2" || r.Header.Get("X-Literal") != "a$1" {
		t.Errorf("header templates: X-Client %q X-Route %q X-Literal %q", r.Header.Get("X-Client"), r.Header.Get("X-Route"), r.Header.Get("X-Literal"))
	}
	if got := policyAnswers(e, "moved", "redirect", 308); got != 1 {
		t.Errorf("redirect answers: %v", got)
	}
}

func TestPolicyMaxBody(t *testing.T) {
	b := newBackend(t, "a", nil)
	e := newEnv(t, policyHead+`
  - {name: small, match: {path_prefix: /}, max_body: 1KiB, service: s}
`, map[string]string{"A": b.addr})
	res, _ := e.do(nil, "POST", "/up", strings.NewReader(strings.Repeat("x", 2048)))
	if res.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("announced 2 KiB: %d, want 413", res.StatusCode)
	}
	if b.hits.Load() != 0 {
		t.Fatal("an announced body over max_body was forwarded")
	}
	// Chunked: cut at the cap, so the upstream never sees it complete.
	res, _ = e.do(nil, "POST", "/up", io.MultiReader(strings.NewReader(strings.Repeat("y", 4096))))
	if res.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("chunked 4 KiB: %d, want 413", res.StatusCode)
	}
	if _, body := b.lastRequest(); len(body) > 1024 {
		t.Errorf("the upstream read %d bytes of a body capped at 1 KiB", len(body))
	}
	if res, _ := e.do(nil, "POST", "/up", strings.NewReader("small")); res.StatusCode != 200 {
		t.Errorf("a small body: %d", res.StatusCode)
	}
	if got := e.metric("meridian_http_client_errors_total", map[string]string{"kind": "client_body_large"}); got != 2 {
		t.Errorf("client_body_large %v, want 2", got)
	}
}

// TestPolicyOrder checks the documented order where it matters: rate
// limits come before authentication, so a client guessing credentials
// spends its tokens and cannot spend bcrypt time without limit.
func TestPolicyOrder(t *testing.T) {
	b := newBackend(t, "a", nil)
	dir := t.TempDir()
	e := newEnv(t, policyHead+`
  - name: r
    match: {path_prefix: /}
    rate_limit: {requests: 1, per: 1m}
    basic_auth: {htpasswd: "{{F}}"}
    service: s
`, map[string]string{"A": b.addr, "F": writeHtpasswd(t, dir, "u", "p")})
	if res, _ := e.get("/"); res.StatusCode != 401 {
		t.Fatalf("first: %d, want 401", res.StatusCode)
	}
	if res, _ := e.get("/"); res.StatusCode != 429 {
		t.Fatalf("second: %d, want 429 (the 401 took the token: rate limits come before auth)", res.StatusCode)
	}
}

// TestPolicyCORSBeforeAuth: a preflight carries no credentials, so it is
// answered ahead of authentication; a refusal of an actual request carries
// the CORS headers, so the page can read it.
func TestPolicyCORSBeforeAuth(t *testing.T) {
	b := newBackend(t, "a", nil)
	e := newEnv(t, policyHead+`
  - name: api
    match: {path_prefix: /}
    basic_auth: {htpasswd: "{{F}}"}
    cors: {origins: ["https://app.example"], methods: [GET, POST], headers: [Authorization]}
    service: s
`, map[string]string{"A": b.addr, "F": writeHtpasswd(t, t.TempDir(), "u", "p")})
	res, _ := e.do(nil, "OPTIONS", "/x", nil, "Origin", "https://app.example", "Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "authorization")
	if res.StatusCode != 204 || res.Header.Get("Access-Control-Allow-Origin") != "https://app.example" {
		t.Errorf("preflight on an authenticated route: %d %v", res.StatusCode, res.Header)
	}
	res, _ = e.get("/x", "Origin", "https://app.example")
	if res.StatusCode != 401 || res.Header.Get("Access-Control-Allow-Origin") != "https://app.example" {
		t.Errorf("refusal: %d, Access-Control-Allow-Origin %q", res.StatusCode, res.Header.Get("Access-Control-Allow-Origin"))
	}
}
