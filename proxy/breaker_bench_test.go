package proxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
)

// BenchmarkProxyLimits is BenchmarkProxy's meridian case with the pool's
// circuit breakers at their defaults and with no breakers at all
// (Handler.limitsOff), on the same backend and client, so the difference is what
// the breakers cost a request: an add and a compare at the pick, an add at
// the end, and nothing per reused connection.
func BenchmarkProxyLimits(b *testing.B) {
	body := []byte("hello world!\n")
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) }))
	b.Cleanup(up.Close)
	u, _ := url.Parse(up.URL)
	const conf = `
http: {access_log: false}
pools: {backend: {endpoints: [{{UP}}]}}
services: {web: {pools: [backend]}}
routes: [{name: www, match: {path_prefix: /}, service: web}]
`
	for _, off := range []bool{false, true} {
		var opts []envOpt
		if off {
			opts = append(opts, withoutLimits())
		}
		e := newEnv(b, conf, map[string]string{"UP": u.Host}, opts...)
		b.Cleanup(e.shutdown)
		name := "default-limits"
		if off {
			name = "no-limits"
		}
		b.Run(name, func(b *testing.B) {
			c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
			defer c.CloseIdleConnections()
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					res, err := c.Get(e.url + "/items/42")
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

// BenchmarkBreakerAdmit is the breakers' whole per-request cost on a
// reused connection: admit at the pick and done at the end, from every
// CPU at once on one pool (the counter's cache line moves between them).
func BenchmarkBreakerAdmit(b *testing.B) {
	brk := newBreaker("p")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if brk.admit() != nil {
				b.Error("refused under the default limit")
				return
			}
			brk.done(false)
		}
	})
}
