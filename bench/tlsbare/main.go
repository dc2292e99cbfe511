// Command tlsbare is the baseline of bench/h2spec.sh: a stock net/http
// server on TLS (HTTP/1.1 and h2 by ALPN) answering every request with a
// 13-byte body, so h2spec failures of Meridian's TLS listener can be told
// apart from those of Go's HTTP/2 server itself.
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
	log.Fatal(srv.ListenAndServeTLS(*cert, *key))
}
