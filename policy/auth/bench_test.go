package auth

import (
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

func BenchmarkBasicCheckCached(b *testing.B) {
	bs, err := LoadBasic(writeFile(b, "htpasswd", []byte("alice:"+hashOf(b, "pw")+"\n")), "")
	if err != nil {
		b.Fatal(err)
	}
	r := basicReq("alice", "pw")
	if _, ok := bs.Check(r); !ok {
		b.Fatal("refused")
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := bs.Check(r); !ok {
			b.Fatal("refused")
		}
	}
}

func BenchmarkJWTVerify(b *testing.B) {
	now := time.Now()
	j := fileJWT(b, func(s *JWTSpec) {
		s.Issuer = "https://idp.test"
		s.Audiences = []string{"api"}
		s.Claims = map[string]string{"sub": "X-User", "groups": "X-Groups"}
	})
	claims := claimsAt(now)
	claims["iss"] = "https://idp.test"
	claims["aud"] = "api"
	claims["groups"] = []string{"dev", "ops"}
	for _, tc := range []struct {
		alg jose.SignatureAlgorithm
		key any
		kid string
	}{
		{jose.RS256, testRSA(), "rsa"},
		{jose.ES256, testEC(), "ec"},
		{jose.EdDSA, testEd(), "ed"},
		{jose.HS256, testHMAC(), "hs"},
	} {
		b.Run(string(tc.alg), func(b *testing.B) {
			r := bearer(sign(b, tc.alg, tc.key, tc.kid, claims))
			b.ReportAllocs()
			for b.Loop() {
				if _, reason, ok := j.Verify(r, now); !ok {
					b.Fatal(reason)
				}
			}
		})
	}
}
