// Command dnsbare is the floor bench/dns.sh measures Meridian against: the
// least a miekg/dns server does, one UDP socket answering every query with
// one authoritative A record for the asked name.
package main

import (
	"flag"
	"log"
	"net"

	mdns "github.com/miekg/dns"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:5302", "UDP `address` to serve")
	flag.Parse()
	ip := net.ParseIP("192.0.2.1").To4()
	h := mdns.HandlerFunc(func(w mdns.ResponseWriter, r *mdns.Msg) {
		m := new(mdns.Msg)
		m.SetReply(r)
		m.Authoritative = true
		m.Answer = []mdns.RR{&mdns.A{Hdr: mdns.RR_Header{Name: r.Question[0].Name, Rrtype: mdns.TypeA, Class: mdns.ClassINET, Ttl: 300}, A: ip}}
		_ = w.WriteMsg(m)
	})
	log.Fatal((&mdns.Server{Addr: *addr, Net: "udp", Handler: h}).ListenAndServe())
}
