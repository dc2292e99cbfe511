// Command tlsbare is the baseline of bench/h2spec.sh: a stock net/http
// server on TLS (HTTP/1.1 and h2 by ALPN), and with -h2c-addr one in plain
// text (HTTP/1.1 and h2c with prior knowledge), answering every request
// with a 13-byte body, so h2spec failures of Meridian's listeners can be
// told apart from those of Go's HTTP/2 server itself.
package main

import (
	"flag"
	"log"
	"net/http"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:9443", "listen address")
	cert := flag.String("cert", "server.pem", "certificate file")
	key := flag.String("key", "server.key", "key file")
	h2c := flag.String("h2c-addr", "", "plain-text listen address (h2c); empty: none")
	flag.Parse()
	body := []byte("hello world!\n")
	srv := &http.Server{
		Addr:              *addr,
		ReadHeaderTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			w.Write(body)
		}),
	}
	if *h2c != "" {
		var p http.Protocols
		p.SetHTTP1(true)
		p.SetUnencryptedHTTP2(true)
		plain := &http.Server{Addr: *h2c, ReadHeaderTimeout: srv.ReadHeaderTimeout, Handler: srv.Handler, Protocols: &p}
		go func() { log.Fatal(plain.ListenAndServe()) }()
	}
	log.Fatal(srv.ListenAndServeTLS(*cert, *key))
}
