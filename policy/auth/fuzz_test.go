package auth

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"golang.org/x/net/http/httpguts"
)

func FuzzParseHtpasswd(f *testing.F) {
	const h = "$2y$05$c4WoMPo3SXsafkva.HHa6uXQZWr7oboPiC2bT/r7q1BB8I2s0BRqC"
	for _, s := range []string{
		"", "\n", "# c\n", "alice:" + h, "alice:" + h + "\r\nbob:" + h,
		"alice:" + h + "\nalice:" + h, ":" + h, "alice", "alice:", "a:$apr1$x$y",
		"a:" + h[:59] + "!", "a:" + strings.Replace(h, "$05$", "$99$", 1),
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		users, err := parseHtpasswd(data)
		if err != nil {
			if users != nil {
				t.Fatal("users with an error")
			}
			if !strings.HasPrefix(err.Error(), "line ") && err.Error() != "no users" {
				t.Fatalf("error without a line: %v", err)
			}
			return
		}
		if len(users) == 0 {
			t.Fatal("no users and no error")
		}
		for u, hash := range users {
			if u == "" || strings.ContainsAny(u, ":\n") {
				t.Fatalf("bad user %q", u)
			}
			if err := checkBcrypt(hash); err != nil {
				t.Fatalf("user %q kept a bad hash: %v", u, err)
			}
		}
	})
}

func FuzzParseJWKS(f *testing.F) {
	f.Add(jwksJSON(f, allKeys()...))
	f.Add([]byte(`{"keys":[{"kty":"oct","k":"c2hvcnQ"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"EC","crv":"P-256","x":"","y":""}]}`))
	f.Add([]byte(`{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB","alg":"HS256"}]}`))
	f.Add([]byte(`{"keys":null}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		set, _, err := parseJWKS(data)
		if err != nil {
			if set != nil {
				t.Fatal("set with an error")
			}
			return
		}
		if len(set.keys) == 0 || len(set.keys) > maxKeys {
			t.Fatalf("%d keys", len(set.keys))
		}
		for _, k := range set.keys {
			if len(k.algs) == 0 {
				t.Fatalf("key %q allows no algorithm", k.kid)
			}
			for _, a := range k.algs {
				if a == "none" || a == "" {
					t.Fatalf("key %q allows %q", k.kid, a)
				}
			}
		}
	})
}

// FuzzVerify feeds arbitrary Authorization headers to a verifier with
// every key type and claim headers: it must never panic, and whatever it
// returns must be coherent and safe to put on a request.
func FuzzVerify(f *testing.F) {
	now := time.Unix(1_800_000_000, 0)
	claims := map[string]any{"sub": "alice", "exp": now.Add(time.Hour).Unix(), "iss": "i", "aud": []string{"a"}, "g": []any{"x", 1, map[string]any{"k": "v"}}}
	for _, tok := range []string{
		sign(f, jose.RS256, testRSA(), "rsa", claims),
		sign(f, jose.ES256, testEC(), "", claims),
		sign(f, jose.EdDSA, testEd(), "ed", claims),
		sign(f, jose.HS256, testHMAC(), "hs", claims),
		rawToken(map[string]any{"alg": "none"}, claims, nil),
		rawToken(map[string]any{"alg": "HS256", "kid": "rsa", "crit": []string{"exp"}}, claims, []byte("sig")),
		"a.b.c", "..", "",
	} {
		f.Add("Bearer " + tok)
	}
	f.Add("Basic YTpi")
	f.Add("bearer\t x")
	j := fileJWT(f, func(s *JWTSpec) {
		s.Issuer = "i"
		s.Audiences = []string{"a"}
		s.Claims = map[string]string{"sub": "X-User", "g": "X-Groups", "exp": "X-Exp"}
	})
	f.Fuzz(func(t *testing.T, authz string) {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("Authorization", authz)
		set, reason, ok := j.Verify(r, now)
		if ok != (reason == "") {
			t.Fatalf("ok=%v with reason %q", ok, reason)
		}
		if !ok {
			if set != nil {
				t.Fatal("headers with a refusal")
			}
			return
		}
		if len(set) != 3 {
			t.Fatalf("set %v", set)
		}
		for k, vs := range set {
			for _, v := range vs {
				if !httpguts.ValidHeaderFieldValue(v) {
					t.Fatalf("%s: invalid header value %q", k, v)
				}
			}
		}
	})
}
