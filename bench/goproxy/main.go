// Command goproxy is the Go floor of bench/http.sh: a bare
// httputil.ReverseProxy (Rewrite, a tuned transport, a buffer pool) serving
// HTTP/1.1 and h2c, with no routing, health or metrics.
package main

import (
	"flag"
	"log"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"time"
)

type pool struct{ p sync.Pool }

func (b *pool) Get() []byte  { return *(b.p.Get().(*[]byte)) }
func (b *pool) Put(x []byte) { b.p.Put(&x) }

func main() {
	addr := flag.String("addr", "127.0.0.1:9501", "listen address")
	upstream := flag.String("upstream", "http://127.0.0.1:9500", "backend URL")
	tlsAddr := flag.String("tls-addr", "", "also serve HTTPS (h2 and HTTP/1.1) on this address, with -cert and -key")
	cert := flag.String("cert", "", "certificate file for -tls-addr")
	key := flag.String("key", "", "key file for -tls-addr")
	flag.Parse()
	target, err := url.Parse(*upstream)
	if err != nil {
		log.Fatal(err)
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.SetXForwarded()
		},
		Transport:  &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: 90 * time.Second, DisableCompression: true},
		BufferPool: &pool{p: sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}},
	}
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	srv := &http.Server{Addr: *addr, Handler: rp, ReadHeaderTimeout: 10 * time.Second, Protocols: &p}
	if *tlsAddr != "" {
		ts := &http.Server{Addr: *tlsAddr, Handler: rp, ReadHeaderTimeout: 10 * time.Second}
		go func() { log.Fatal(ts.ListenAndServeTLS(*cert, *key)) }()
	}
	log.Fatal(srv.ListenAndServe())
}
