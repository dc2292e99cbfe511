package dns

import (
	"sort"

	mdns "github.com/miekg/dns"
	"go.uber.org/zap"

	"github.com/meridian-lb/meridian/dns/dnssec"
	"github.com/meridian-lb/meridian/dns/zone"
	"github.com/meridian-lb/meridian/routing"
)

// xfrChunk bounds the records packed into one AXFR message (well under the
// 64 KiB a TCP message can hold).
const xfrChunk = 16 << 10

// transfer streams zone res.zone to a client that answer allowed: the SOA,
// every record, the SOA again (RFC 5936), in messages of at most xfrChunk
// bytes. An IXFR gets the same full transfer (RFC 1995 §4 allows it). A
// signed zone is sent signed (see zoneRecords).
func (s *Server) transfer(w msgWriter, t *routing.Table, res result, c client) {
	z := res.zone
	rrs, err := zoneRecords(t, z, s.signer)
	if err != nil {
		s.met.xfr.WithLabelValues(z.Name, "error").Inc()
		s.log.Error("zone transfer: signing", zap.String("zone", z.Name), zap.Error(err))
		m := &mdns.Msg{MsgHdr: res.msg.MsgHdr, Question: res.msg.Question}
		m.Rcode = mdns.RcodeServerFailure
		_ = w.WriteMsg(m)
		return
	}
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
//
// A signed zone is listed signed, as a secondary can serve it: each
// authoritative RRset followed by its RRSIGs (the same, cached, that
// answers carry), and an NSEC chain over the zone's authoritative names
// in canonical order (RFC 4034 §4), which answers never show: the
// secondary's denial has to come from somewhere, and it holds every name
// anyway. Delegation NS sets and glue stay unsigned. The signatures are
// valid for at least dnssec.Validity-dnssec.Refresh; a signed zone's
// serial moves once a dnssec.Refresh (see digest), so NOTIFY brings
// secondaries fresh ones long before those expire.
func zoneRecords(t *routing.Table, z *zone.Zone, signer *dnssec.Signer) ([]mdns.RR, error) {
	soa := z.SOA()
	out := []mdns.RR{soa}
	signed := z.Signed()
	sign := func(name string, rrs []mdns.RR, key []byte) error {
		if !signed || len(rrs) == 0 {
			return nil
		}
		if key == nil {
			key = dnssec.ContentKey(name, rrs)
		}
		sigs, err := signer.Sign(z.Keys, key, rrs)
		out = append(out, sigs...)
		return err
	}
	if err := sign(z.Name, []mdns.RR{soa}, z.SOAKey()); err != nil {
		return nil, err
	}
	names := z.Names // canonical order, signed zones
	if names == nil {
		names = make([]string, 0, len(z.Nodes))
		for name := range z.Nodes {
			names = append(names, name)
		}
		sort.Strings(names)
	}
	var chain []string // authoritative names with data, for the NSEC chain
	for _, name := range names {
		n := z.Nodes[name]
		occluded := signed && z.HasCuts && !n.Cut && findCut(z, name) != nil
		if signed && !occluded && (!n.Empty() || name == z.Name) {
			chain = append(chain, name)
		}
		for i := range n.Sets {
			set := &n.Sets[i]
			out = append(out, set.RRs...)
			if occluded || (n.Cut && set.Type != mdns.TypeDS) {
				continue // the child's NS set, and glue
			}
			if err := sign(name, set.RRs, set.Key); err != nil {
				return nil, err
			}
		}
		for _, st := range n.Steered {
			m := &mdns.Msg{}
			r := resolver{t: t, z: z, m: m, qtype: st.Type}
			r.steer(st, st.Name)
			out = append(out, m.Answer...)
			if !occluded && len(m.Answer) > 0 && m.Answer[0].Header().Rrtype == st.Type {
				if err := sign(name, m.Answer, nil); err != nil {
					return nil, err
				}
			}
		}
	}
	for i, name := range chain {
		nsec := dnssec.CompactNSEC(name, z.NegativeTTL, z.Nodes[name].Types, false)
		nsec.NextDomain = chain[(i+1)%len(chain)]
		out = append(out, nsec)
		if err := sign(name, []mdns.RR{nsec}, nil); err != nil {
			return nil, err
		}
	}
	return append(out, soa), nil
}
