// Command idleconns opens N keep-alive connections to a server, sends one
// request on each and reads its response, then holds them idle until its
// standard input closes: bench/idle.sh measures what the server keeps per
// idle connection.
package main

import (
	"bufio"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "server address")
	n := flag.Int("n", 1000, "connections")
	useTLS := flag.Bool("tls", false, "TLS (ALPN http/1.1, certificate not verified)")
	flag.Parse()
	conns := make([]net.Conn, 0, *n)
	for i := range *n {
		c, err := net.Dial("tcp", *addr)
		if err != nil {
			log.Fatalf("connection %d: %v", i, err)
		}
		if *useTLS {
			tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}, ServerName: "localhost"})
			if err := tc.Handshake(); err != nil {
				log.Fatalf("handshake %d: %v", i, err)
			}
			c = tc
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: localhost\r\nUser-Agent: idleconns\r\n\r\n"); err != nil {
			log.Fatalf("request %d: %v", i, err)
		}
		res, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			log.Fatalf("response %d: %v", i, err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != 200 {
			log.Fatalf("response %d: status %d", i, res.StatusCode)
		}
		c.SetDeadline(time.Time{})
		conns = append(conns, c)
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
	for _, c := range conns {
		c.Close()
	}
}
