package dns

import (
	"sort"

	mdns "github.com/miekg/dns"
	"go.uber.org/zap"

	"github.com/meridian-lb/meridian/dns/zone"
	"github.com/meridian-lb/meridian/routing"
)

// xfrChunk bounds the records packed into one AXFR message (well under the
// 64 KiB a TCP message can hold).
const xfrChunk = 16 << 10

// transfer streams zone res.zone to a client that answer allowed: the SOA,
// every record, the SOA again (RFC 5936), in messages of at most xfrChunk
// bytes. An IXFR gets the same full transfer (RFC 1995 §4 allows it).
func (s *Server) transfer(w msgWriter, t *routing.Table, res result, c client) {
	z := res.zone
	rrs := zoneRecords(t, z)
	send := func(chunk []mdns.RR) error {
		m := &mdns.Msg{MsgHdr: res.msg.MsgHdr, Question: res.msg.Question, Answer: chunk}
		m.Compress = true
		return w.WriteMsg(m)
	}
	start, size := 0, 0
	for i, rr := range rrs {
		l := mdns.Len(rr)
		if size+l > xfrChunk && i > start {
			if err := send(rrs[start:i]); err != nil {
				s.met.xfr.WithLabelValues(z.Name, "error").Inc()
				s.log.Warn("zone transfer", zap.String("zone", z.Name), zap.Error(err))
				return
			}
			start, size = i, 0
		}
		size += l
	}
	if err := send(rrs[start:]); err != nil {
		s.met.xfr.WithLabelValues(z.Name, "error").Inc()
		s.log.Warn("zone transfer", zap.String("zone", z.Name), zap.Error(err))
		return
	}
	s.met.xfr.WithLabelValues(z.Name, "ok").Inc()
	s.log.Info("zone transfer", zap.String("zone", z.Name), zap.Uint32("serial", z.Serial()),
		zap.Stringer("client", c.addr), zap.Int("records", len(rrs)))
}

// zoneRecords lists the zone as a secondary should hold it: SOA first and
// last, static records, and steered records as answered right now to a
// client of the default region (a secondary cannot steer).
func zoneRecords(t *routing.Table, z *zone.Zone) []mdns.RR {
	soa := z.SOA()
	out := []mdns.RR{soa}
	names := make([]string, 0, len(z.Nodes))
	for name := range z.Nodes {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		n := z.Nodes[name]
		for _, set := range n.Sets {
			out = append(out, set.RRs...)
		}
		for _, st := range n.Steered {
			m := &mdns.Msg{}
			r := resolver{t: t, z: z, m: m, qtype: st.Type}
			r.steer(st, st.Name)
			out = append(out, m.Answer...)
		}
	}
	return append(out, soa)
}
