package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"go.uber.org/zap"
)

// fileJWT is a verifier over a JWKS file of allKeys, tuned by edit.
func fileJWT(t testing.TB, edit func(*JWTSpec)) *JWT {
	t.Helper()
	s := JWTSpec{JWKS: writeFile(t, "jwks.json", jwksJSON(t, allKeys()...)), Leeway: time.Minute}
	if edit != nil {
		edit(&s)
	}
	j, err := NewKeySets(nil, zap.NewNop()).NewJWT(s)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func claimsAt(now time.Time) map[string]any {
	return map[string]any{"sub": "alice", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
}

func verifyTok(j *JWT, tok string, now time.Time) (http.Header, string, bool) {
	return j.Verify(bearer(tok), now)
}

func TestJWTAlgorithms(t *testing.T) {
	now := time.Now()
	j := fileJWT(t, nil)
	for _, tc := range []struct {
		alg jose.SignatureAlgorithm
		key any
		kid string
	}{
		{jose.RS256, testRSA(), "rsa"},
		{jose.RS512, testRSA(), "rsa"},
		{jose.PS256, testRSA(), "rsa"},
		{jose.ES256, testEC(), "ec"},
		{jose.EdDSA, testEd(), "ed"},
		{jose.HS256, testHMAC(), "hs"},
		// Without a kid, every key allowing the algorithm is tried.
		{jose.RS256, testRSA(), ""},
		{jose.ES256, testEC(), ""},
		{jose.HS256, testHMAC(), ""},
	} {
		tok := sign(t, tc.alg, tc.key, tc.kid, claimsAt(now))
		if _, reason, ok := verifyTok(j, tok, now); !ok {
			t.Errorf("%s kid %q: refused: %s", tc.alg, tc.kid, reason)
		}
	}
}

func TestJWTRefusals(t *testing.T) {
	now := time.Now()
	j := fileJWT(t, func(s *JWTSpec) {
		s.Issuer = "https://idp.test"
		s.Audiences = []string{"api", "web"}
	})
	c := func(edit func(map[string]any)) map[string]any {
		m := claimsAt(now)
		m["iss"] = "https://idp.test"
		m["aud"] = "api"
		if edit != nil {
			edit(m)
		}
		return m
	}
	rs := func(m map[string]any) string { return sign(t, jose.RS256, testRSA(), "rsa", m) }
	otherEC, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	good := rs(c(nil))
	parts := strings.Split(good, ".")
	forged, _ := json.Marshal(c(func(m map[string]any) { m["sub"] = "root" }))
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString(forged) + "." + parts[2]

	for _, tc := range []struct {
		name, tok, want string
	}{
		{"good", good, ""},
		{"aud array", rs(c(func(m map[string]any) { m["aud"] = []string{"x", "web"} })), ""},
		{"exp within leeway", rs(c(func(m map[string]any) { m["exp"] = now.Add(-30 * time.Second).Unix() })), ""},
		{"no exp", rs(c(func(m map[string]any) { delete(m, "exp") })), ""},
		{"exp beyond leeway", rs(c(func(m map[string]any) { m["exp"] = now.Add(-61 * time.Second).Unix() })), ReasonExpired},
		{"nbf within leeway", rs(c(func(m map[string]any) { m["nbf"] = now.Add(30 * time.Second).Unix() })), ""},
		{"nbf beyond leeway", rs(c(func(m map[string]any) { m["nbf"] = now.Add(90 * time.Second).Unix() })), ReasonNotYetValid},
		{"exp not a number", rs(c(func(m map[string]any) { m["exp"] = "tomorrow" })), ReasonMalformedClaim},
		{"wrong iss", rs(c(func(m map[string]any) { m["iss"] = "https://evil.test" })), ReasonWrongIssuer},
		{"no iss", rs(c(func(m map[string]any) { delete(m, "iss") })), ReasonWrongIssuer},
		{"wrong aud", rs(c(func(m map[string]any) { m["aud"] = "other" })), ReasonWrongAudience},
		{"wrong aud array", rs(c(func(m map[string]any) { m["aud"] = []string{"x", "y"} })), ReasonWrongAudience},
		{"no aud", rs(c(func(m map[string]any) { delete(m, "aud") })), ReasonWrongAudience},
		{"tampered payload", tampered, ReasonBadSignature},
		{"other EC key, same kid", sign(t, jose.ES256, otherEC, "ec", c(nil)), ReasonBadSignature},
		{"unknown kid", sign(t, jose.ES256, otherEC, "nope", c(nil)), ReasonUnknownKey},
		{"ES256 against the RSA kid", sign(t, jose.ES256, testEC(), "rsa", c(nil)), ReasonAlgorithmKey},
		{"none", rawToken(map[string]any{"alg": "none", "kid": "rsa"}, c(nil), nil), ReasonAlgorithm},
		{"NONE", rawToken(map[string]any{"alg": "NONE"}, c(nil), nil), ReasonAlgorithm},
		{"payload not an object", sign(t, jose.HS256, testHMAC(), "hs", nil), ReasonMalformedClaim},
		{"garbage", "abc", ReasonMalformed},
		{"bad base64", "a!.b.c", ReasonMalformed},
		{"four parts", good + ".x", ReasonMalformed},
		{"json serialization", `{"payload":"e30","protected":"eyJhbGciOiJIUzI1NiJ9","signature":"AA"}`, ReasonMalformed},
		{"too large", strings.Repeat("a", maxTokenBytes+1), ReasonTooLarge},
	} {
		_, reason, ok := verifyTok(j, tc.tok, now)
		if ok != (tc.want == "") || reason != tc.want {
			t.Errorf("%s: got ok=%v reason %q, want %q", tc.name, ok, reason, tc.want)
		}
	}
}

// TestJWTAlgorithmConfusion signs HS256 tokens with an RSA public key's
// bytes, as an attacker who knows the JWKS would: a verifier that let the
// token's alg pick the key's use would accept them.
func TestJWTAlgorithmConfusion(t *testing.T) {
	now := time.Now()
	j := fileJWT(t, nil)
	der, err := x509.MarshalPKIXPublicKey(&testRSA().PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	for _, secret := range [][]byte{der, pemBytes, x509.MarshalPKCS1PublicKey(&testRSA().PublicKey)} {
		for _, kid := range []string{"rsa", ""} {
			hdr := map[string]any{"alg": "HS256", "typ": "JWT"}
			if kid != "" {
				hdr["kid"] = kid
			}
			unsigned := rawToken(hdr, claimsAt(now), nil)
			unsigned = unsigned[:len(unsigned)-1] // drop the "." of the empty signature
			m := hmac.New(sha256.New, secret)
			m.Write([]byte(unsigned))
			tok := unsigned + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
			_, reason, ok := verifyTok(j, tok, now)
			if ok {
				t.Fatalf("HS256 token keyed with RSA public key bytes (kid %q) accepted", kid)
			}
			// Without a kid the HS256 token is tried against the oct key.
			want := ReasonAlgorithmKey
			if kid == "" {
				want = ReasonBadSignature
			}
			if reason != want {
				t.Errorf("kid %q: reason %q, want %q", kid, reason, want)
			}
		}
	}
	// The same key set without an oct key refuses any HS256 token outright.
	only := fileJWT(t, func(s *JWTSpec) {
		s.JWKS = writeFile(t, "rsa.json", jwksJSON(t, pubJWK("rsa", testRSA())))
	})
	if _, reason, _ := verifyTok(only, sign(t, jose.HS256, pemBytes, "", claimsAt(now)), now); reason != ReasonAlgorithmKey {
		t.Errorf("HS256 against an RSA-only set: reason %q, want %q", reason, ReasonAlgorithmKey)
	}
}

func TestJWTKeyAlgNarrows(t *testing.T) {
	now := time.Now()
	k := pubJWK("rsa", testRSA())
	k.Algorithm = string(jose.PS256)
	j := fileJWT(t, func(s *JWTSpec) { s.JWKS = writeFile(t, "ps.json", jwksJSON(t, k)) })
	if _, reason, _ := verifyTok(j, sign(t, jose.RS256, testRSA(), "rsa", claimsAt(now)), now); reason != ReasonAlgorithmKey {
		t.Errorf("RS256 token for a PS256 key: reason %q", reason)
	}
	if _, reason, ok := verifyTok(j, sign(t, jose.PS256, testRSA(), "rsa", claimsAt(now)), now); !ok {
		t.Errorf("PS256 token refused: %s", reason)
	}
}

func TestJWTAuthorizationHeader(t *testing.T) {
	now := time.Now()
	j := fileJWT(t, nil)
	tok := sign(t, jose.HS256, testHMAC(), "hs", claimsAt(now))
	for _, tc := range []struct {
		values []string
		want   string
	}{
		{nil, ReasonMissing},
		{[]string{"Basic YTpi"}, ReasonMissing},
		{[]string{"Bearer"}, ReasonMissing},
		{[]string{"Bearer    "}, ReasonMissing},
		{[]string{"bearer " + tok}, ""},
		{[]string{"BEARER  " + tok + " "}, ""},
		{[]string{"Bearer " + tok, "Bearer " + tok}, ReasonMalformed},
	} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header["Authorization"] = tc.values
		_, reason, ok := j.Verify(r, now)
		if ok != (tc.want == "") || reason != tc.want {
			t.Errorf("%q: ok=%v reason %q, want %q", tc.values, ok, reason, tc.want)
		}
	}
}

func TestJWTClaimsToHeaders(t *testing.T) {
	now := time.Now()
	j := fileJWT(t, func(s *JWTSpec) {
		s.Claims = map[string]string{
			"sub": "x-user", "n": "X-Num", "f": "X-Float", "admin": "X-Admin",
			"groups": "X-Groups", "org": "X-Org", "name": "X-Name", "gone": "X-Gone", "nil": "X-Nil",
		}
	})
	claims := claimsAt(now)
	claims["n"] = 42
	claims["f"] = 1.5
	claims["admin"] = true
	claims["groups"] = []any{"dev", "ops", 7}
	claims["org"] = map[string]any{"id": 3, "name": "acme"}
	claims["name"] = "Eve\r\nX-Evil: 1"
	claims["nil"] = nil
	set, reason, ok := verifyTok(j, sign(t, jose.ES256, testEC(), "ec", claims), now)
	if !ok {
		t.Fatal(reason)
	}
	want := map[string][]string{
		"X-User":   {"alice"},
		"X-Num":    {"42"},
		"X-Float":  {"1.5"},
		"X-Admin":  {"true"},
		"X-Groups": {"dev,ops,7"},
		"X-Org":    {`{"id":3,"name":"acme"}`},
		"X-Name":   {"Eve  X-Evil: 1"},
		"X-Gone":   nil,
		"X-Nil":    nil,
	}
	if len(set) != len(want) {
		t.Fatalf("got %d headers %v, want %d", len(set), set, len(want))
	}
	for k, v := range want {
		got, present := set[k]
		if !present || fmt.Sprint(got) != fmt.Sprint(v) || (v == nil) != (got == nil) {
			t.Errorf("%s: got %q (present %v), want %q", k, got, present, v)
		}
	}

	// Applied to the upstream request, absent claims delete client copies.
	up := http.Header{"X-Gone": {"forged"}, "X-User": {"forged"}, "Cookie": {"c=1"}}
	ApplyHeaders(up, set)
	if up.Get("X-User") != "alice" || up.Get("X-Gone") != "" || up.Get("Cookie") != "c=1" || up.Get("X-Num") != "42" {
		t.Errorf("applied headers: %v", up)
	}
}

func TestNewJWTErrors(t *testing.T) {
	ks := NewKeySets(nil, zap.NewNop())
	short := pubJWK("short", make([]byte, 16))
	enc := pubJWK("enc", testRSA())
	enc.Use = "enc"
	empty := writeFile(t, "empty.json", nil)
	missing := empty + ".missing"
	noUsable := writeFile(t, "nokeys.json", jwksJSON(t, short, enc))
	noKeys := writeFile(t, "nokeysarray.json", []byte(`{"kty":"RSA"}`))
	for _, tc := range []struct {
		name string
		spec JWTSpec
		want string
	}{
		{"no jwks", JWTSpec{}, "jwks: no file or URL given"},
		{"empty file", JWTSpec{JWKS: empty}, fmt.Sprintf("jwks %q: empty", empty)},
		{"missing file", JWTSpec{JWKS: missing}, fmt.Sprintf("jwks %q: open %s: no such file or directory", missing, missing)},
		{"no usable key", JWTSpec{JWKS: noUsable}, fmt.Sprintf(`jwks %q: no usable key (key 0: kid "short": oct key of 16 bytes, shorter than HS256's 32; key 1: kid "enc": use "enc", not sig)`, noUsable)},
		{"not a set", JWTSpec{JWKS: noKeys}, fmt.Sprintf(`jwks %q: not a JWK set: no "keys" array`, noKeys)},
		{"ftp", JWTSpec{JWKS: "ftp://idp.test/jwks"}, `jwks "ftp://idp.test/jwks": scheme "ftp": want https:// (or a file path)`},
		{"http remote", JWTSpec{JWKS: "http://idp.test/jwks"}, `jwks "http://idp.test/jwks": http:// only for loopback hosts; use https:// for "idp.test"`},
		{"refresh", JWTSpec{JWKS: "https://idp.test/jwks", Refresh: time.Second}, "refresh 1s is below the minimum 30s"},
		{"leeway", JWTSpec{JWKS: "https://idp.test/jwks", Leeway: -time.Second}, "leeway -1s is negative"},
		{"bad header", JWTSpec{JWKS: "https://idp.test/jwks", Claims: map[string]string{"sub": "X User"}}, `claims_to_headers: claim "sub": header "X User": not a valid header name`},
		{"framing header", JWTSpec{JWKS: "https://idp.test/jwks", Claims: map[string]string{"sub": "content-length"}}, `claims_to_headers: claim "sub": header "content-length" cannot be set by an auth policy`},
		{"same header", JWTSpec{JWKS: "https://idp.test/jwks", Claims: map[string]string{"sub": "X-User", "email": "x-user"}}, `claims_to_headers: claims "email" and "sub" both set header "X-User"`},
		{"empty audience", JWTSpec{JWKS: "https://idp.test/jwks", Audiences: []string{""}}, "audiences: empty audience"},
	} {
		_, err := ks.NewJWT(tc.spec)
		if err == nil || err.Error() != tc.want {
			t.Errorf("%s:\n got %v\nwant %s", tc.name, err, tc.want)
		}
	}
}

func TestJWTFingerprint(t *testing.T) {
	p := writeFile(t, "jwks.json", jwksJSON(t, allKeys()...))
	ks := NewKeySets(nil, zap.NewNop())
	fp := func(s JWTSpec) [32]byte {
		t.Helper()
		j, err := ks.NewJWT(s)
		if err != nil {
			t.Fatal(err)
		}
		return j.Fingerprint()
	}
	base := JWTSpec{JWKS: p, Issuer: "i", Audiences: []string{"a", "b"}, Claims: map[string]string{"sub": "X-User"}, Leeway: time.Minute}
	f0 := fp(base)
	same := base
	same.Audiences = []string{"b", "a"}
	if fp(same) != f0 {
		t.Error("audience order changed the fingerprint")
	}
	for name, edit := range map[string]func(*JWTSpec){
		"issuer":   func(s *JWTSpec) { s.Issuer = "j" },
		"audience": func(s *JWTSpec) { s.Audiences = []string{"ab"} },
		"claims":   func(s *JWTSpec) { s.Claims = map[string]string{"sub": "X-Sub"} },
		"leeway":   func(s *JWTSpec) { s.Leeway = 0 },
	} {
		s := base
		edit(&s)
		if fp(s) == f0 {
			t.Errorf("changing %s kept the fingerprint", name)
		}
	}
	if err := os.WriteFile(p, jwksJSON(t, pubJWK("rsa", testRSA())), 0o600); err != nil {
		t.Fatal(err)
	}
	if fp(base) == f0 {
		t.Error("changing the JWKS file kept the fingerprint")
	}
}

func TestJWTChallenge(t *testing.T) {
	for reason, want := range map[string]string{
		ReasonMissing:  `Bearer realm="meridian"`,
		ReasonExpired:  `Bearer error="invalid_token", error_description="token expired"`,
		`a"b\c` + "\n": `Bearer error="invalid_token", error_description="abc"`,
	} {
		h := http.Header{}
		JWTChallenge(h, reason)
		if got := h.Get("WWW-Authenticate"); got != want {
			t.Errorf("%q: got %s, want %s", reason, got, want)
		}
	}
}
