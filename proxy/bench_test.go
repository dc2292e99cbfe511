package proxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"testing"
)

// BenchmarkProxy measures a request through the handler against a bare
// httputil.ReverseProxy, both behind a loopback server with the same
// backend and client, so the difference is Meridian's own cost (routing,
// metrics, retries bookkeeping). allocs/op counts the client and backend
// too: compare the two sub-benchmarks, not the absolute numbers.
func BenchmarkProxy(b *testing.B) {
	body := []byte("hello world!\n")
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) }))
	b.Cleanup(up.Close)
	u, _ := url.Parse(up.URL)
	bare := &httputil.ReverseProxy{
		Rewrite:    func(pr *httputil.ProxyRequest) { pr.SetURL(u); pr.SetXForwarded() },
		Transport:  &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true},
		BufferPool: newBufferPool(),
	}
	bareSrv := httptest.NewServer(bare)
	b.Cleanup(bareSrv.Close)
	e := newEnv(b, `
http: {access_log: false}
pools: {backend: {endpoints: [{{UP}}]}, other: {endpoints: [127.0.0.1:9]}}
services: {web: {pools: [backend]}, other: {pools: [other]}}
routes:
  - {name: api, match: {host: api.example.test, path_prefix: /v1}, service: other}
  - {name: admin, match: {host: "*.internal.test"}, service: other}
  - {name: www, match: {path_prefix: /}, service: web}
`, map[string]string{"UP": u.Host})
	b.Cleanup(e.shutdown)
	for _, tc := range []struct{ name, url string }{{"bare-reverseproxy", bareSrv.URL}, {"meridian", e.url}} {
		b.Run(tc.name, func(b *testing.B) {
			c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					res, err := c.Get(tc.url + "/items/42")
					if err != nil {
						b.Error(err)
						return
					}
					io.Copy(io.Discard, res.Body)
					res.Body.Close()
				}
			})
		})
	}
}
