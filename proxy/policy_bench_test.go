package proxy

import (
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// BenchmarkPolicies is BenchmarkHandlerInProcess's request on routes with
// edge policies, so each policy's CPU per request reads as the difference
// from "none": a rate limit (one bucket), JWT (HS256 from a JWKS file),
// compression (gzip of a 16 KiB JSON answer; "none-16k" is the same answer
// uncompressed), and all three.
func BenchmarkPolicies(b *testing.B) {
	key := []byte("0123456789abcdef0123456789abcdef")
	dir := b.TempDir()
	jf := filepath.Join(dir, "jwks.json")
	jwks := fmt.Sprintf(`{"keys":[{"kty":"oct","kid":"k1","alg":"HS256","k":%q}]}`, base64.RawURLEncoding.EncodeToString(key))
	if err := os.WriteFile(jf, []byte(jwks), 0o600); err != nil {
		b.Fatal(err)
	}
	e := newEnv(b, `
http: {access_log: false}
pools: {backend: {endpoints: [127.0.0.1:9]}}
services: {web: {pools: [backend]}}
routes:
  - {name: none, match: {path_prefix: /none}, service: web}
  - {name: rate, match: {path_prefix: /rate}, rate_limit: {requests: 1000000000, per: 1s}, service: web}
  - {name: jwt, match: {path_prefix: /jwt}, jwt: {jwks: "{{J}}", issuer: iss}, service: web}
  - {name: gzip, match: {path_prefix: /gzip}, compress: {encodings: [gzip]}, service: web}
  - name: all
    match: {path_prefix: /all}
    rate_limit: {requests: 1000000000, per: 1s}
    jwt: {jwks: "{{J}}", issuer: iss}
    compress: {encodings: [gzip]}
    service: web
`, map[string]string{"J": jf})
	for _, up := range e.h.state.Load().pools {
		up.rt = memJSON{}
	}
	tok := hs256(&testing.T{}, key, "k1", map[string]any{"iss": "iss", "sub": "bench", "exp": time.Now().Add(time.Hour).Unix()})
	for _, c := range []struct{ name, path string }{
		{"none", "/none/small"}, {"rate_limit", "/rate/small"}, {"jwt", "/jwt/small"},
		{"none-16k", "/none/big"}, {"gzip-16k", "/gzip/big"}, {"all-16k", "/all/big"},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			req := httptest.NewRequest("GET", "http://www.example.test"+c.path, nil)
			req.RemoteAddr = "192.0.2.1:1234"
			req.Header.Set("Authorization", "Bearer "+tok)
			req.Header.Set("Accept-Encoding", "gzip")
			w := &discardWriter{h: http.Header{}}
			c0 := processCPU()
			for b.Loop() {
				clear(w.h)
				w.code = 0
				r := req.Clone(req.Context()) // the policies edit the header
				e.h.ServeHTTP(w, r)
				if w.code != 200 {
					b.Fatalf("status %d", w.code)
				}
			}
			b.ReportMetric(float64(processCPU()-c0)/float64(b.N), "cpu-ns/op")
		})
	}
}

// memJSON answers from memory: a small text for paths ending in /small,
// 16 KiB of JSON for the others.
type memJSON struct{}

var bigJSON = "[" + strings.Repeat(`{"id":12345,"name":"an item","region":"eu-west"},`, 330) + "{}]"

func (memJSON) RoundTrip(r *http.Request) (*http.Response, error) {
	body, ct := "hello world!\n", "text/plain"
	if !strings.HasSuffix(r.URL.Path, "/small") {
		body, ct = bigJSON, "application/json"
	}
	return &http.Response{StatusCode: 200, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{"Content-Type": {ct}}, ContentLength: int64(len(body)),
		Body: io.NopCloser(strings.NewReader(body)), Request: r}, nil
}
