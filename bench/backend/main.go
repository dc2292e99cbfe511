// Command backend is the upstream of bench/http.sh: it answers every
// request with a 13-byte body, over HTTP/1.1 and h2c, like the peer figures
// in the performance notes.
package main

import (
	"flag"
	"log"
	"net/http"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:9500", "listen address")
	flag.Parse()
	body := []byte("hello world!\n")
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	srv := &http.Server{
		Addr:              *addr,
		ReadHeaderTimeout: 10 * time.Second,
		Protocols:         &p,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			w.Write(body)
		}),
	}
	log.Fatal(srv.ListenAndServe())
}
