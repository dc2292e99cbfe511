package dns

import (
	"encoding/binary"
	"io"
	"math/rand/v2"
	"net/netip"
	"time"

	mdns "github.com/miekg/dns"
	"go.uber.org/zap"

	"github.com/meridian-lb/meridian/routing"
)

// cacheMiss is what the fast path hands the slow path for a query it
// could not answer from the cache: the parsed query and its key, to keep
// the answer the slow path builds, and what it did already (rate limiting
// accounted, the steering decided).
type cacheMiss struct {
	q       *wireQuery
	cache   *answerCache
	key     []byte
	ecsOn   bool
	rrlDone bool
	plan    *steerPlan
	planBuf steerPlan // plan's storage, reused query after query
}

// fastPath answers a datagram from the answer cache (cache.go) when it
// can: the query parses on the wire (parseQuery), the table's cache has
// an entry for its key, and the entry has an answer for this query's
// steering decision that fits the client's buffer. Everything the slow
// path does around answering is done here the same way, in the same
// order: the table's serials, rate limiting, the metrics, telemetry, the
// latency histogram and the sampled query log. It reports whether the
// query is dealt with; when not, miss says how to keep the slow path's
// answer (nil: do not keep it).
func (s *Server) fastPath(b []byte, addr netip.Addr, w io.Writer, q *wireQuery, m *cacheMiss, keyBuf []byte) (done bool, miss *cacheMiss) {
	defer func() {
		if p := recover(); p != nil {
			s.met.panics.Inc()
			s.log.Error("dns: panic answering a query", zap.Any("panic", p), zap.Stack("stack"))
			done, miss = true, nil
		}
	}()
	if !parseQuery(b, q) || q.qtype == mdns.TypeAXFR || q.qtype == mdns.TypeIXFR {
		return false, nil
	}
	start := time.Now()
	t := s.tables.Load()
	if t == nil {
		return false, nil
	}
	if len(t.Zones) > 0 && t.Zones[0].Serial() == 0 {
		s.TableChanged(t) // as serve does, before anything is answered
	}
	c := s.cacheFor(t)
	if c == nil {
		return false, nil
	}
	ecsOn := q.ecs != nil && ecsEnabled(t)
	key := cacheKey(keyBuf, q, ecsOn)
	*m = cacheMiss{q: q, cache: c, key: key, ecsOn: ecsOn}
	e := c.get(key)
	if e == nil {
		return false, m
	}
	if s.rrl != nil {
		m.rrlDone = true
		switch s.rrl.account(addr, start) {
		case rrlDrop:
			s.met.rrl.WithLabelValues("drop").Inc()
			return true, nil
		case rrlSlip:
			s.met.rrl.WithLabelValues("slip").Inc()
			req := new(mdns.Msg)
			if req.Unpack(b) == nil {
				s.writeSlip(w, req)
			}
			return true, nil
		}
	}

	var (
		v      variantKey
		scope  int
		region string
	)
	if st := e.steered; st != nil {
		svc := e.service
		if svc == nil {
			return false, m
		}
		if svc.LocationDependent() {
			ecs := ecsInfo{present: ecsOn, addr: q.ecsAddr, bits: q.ecsBits}
			loc, sc, _ := locateClient(t, addr, &ecs)
			region = loc.Region
			if ecsOn {
				scope = sc
			}
		}
		var pools [8]*routing.Pool
		p := &m.planBuf
		p.decide(st, svc.Order(pools[:0], region))
		m.plan = p
		var ok bool
		if v, ok = p.variant(); !ok {
			return false, m
		}
	}
	a := e.lookup(v)
	if a == nil {
		return false, m
	}
	size := len(a.wire)
	if ecsOn {
		size += 4 + len(q.ecs)
	}
	if size > q.udpSize(tableUDPSize(t)) {
		return false, m // truncation: the slow path's
	}

	// The response: the kept one with this query's ID, RD and CD, and its
	// ECS option echoed with our scope.
	var out []byte
	slot, direct := w.(*batchSlot)
	var bp *[]byte
	if direct {
		out = slot.data[:0]
	} else {
		bp = s.bufs.Get().(*[]byte)
		defer s.bufs.Put(bp)
		out = (*bp)[:0]
	}
	if ecsOn {
		out = append(out, a.wire[:a.optRData]...)
		out = binary.BigEndian.AppendUint16(out, mdns.EDNS0SUBNET)
		out = binary.BigEndian.AppendUint16(out, uint16(len(q.ecs)))
		out = append(out, q.ecs...)
		out[len(out)-len(q.ecs)+3] = byte(scope)
		out = append(out, a.wire[a.optRData:]...)
		rdlen := a.optRData - 2
		binary.BigEndian.PutUint16(out[rdlen:], binary.BigEndian.Uint16(out[rdlen:])+uint16(4+len(q.ecs)))
	} else {
		out = append(out, a.wire...)
	}
	out[0], out[1] = b[0], b[1]
	out[2] = out[2]&^0x01 | b[2]&0x01 // RD
	out[3] = out[3]&^0x10 | b[3]&0x10 // CD
	if direct {
		slot.data = out
	} else {
		_, _ = w.Write(out)
	}

	a.counter.Inc()
	set, rec := s.telSet.Load(), a.telRec
	if set != a.telSet {
		rec = set.Record(e.zone.Name, a.record)
	}
	rec.Query(a.rcode, a.answers == 0, a.pool)
	d := time.Since(start)
	s.met.udpHist.Observe(d.Seconds())
	if s.set.QueryLog > 0 && rand.Float64() < s.set.QueryLog {
		var qname string
		if name, _, err := mdns.UnpackDomainName(b, 12); err == nil {
			qname = name
		}
		s.logLine(client{addr: addr}, a.rcode, a.answers, qname, q.qtype, true, e.zone.Name, region, scope, d)
	}
	return true, nil
}

// keep stores the response the slow path packed (b, whole: neither
// truncated nor shortened) for a query the fast path missed.
func (s *Server) keep(m *cacheMiss, res result, b []byte) {
	if !res.cacheable || res.zone == nil {
		return
	}
	a := &cachedAnswer{
		variant:  res.variant,
		optRData: -1,
		rcode:    res.msg.Rcode,
		answers:  len(res.msg.Answer),
		record:   res.record,
		pool:     res.pool,
	}
	a.telSet = s.telSet.Load()
	a.telRec = a.telSet.Record(res.zone.Name, res.record)
	var qtype uint16
	if len(res.msg.Question) == 1 {
		qtype = res.msg.Question[0].Qtype
	}
	a.counter = s.met.counter(res.zone.Name, qtype, res.msg.Rcode)
	if off, n, ok := optRDataOffset(b); ok {
		a.optRData = off
		if m.ecsOn {
			// The ECS option comes first; keep the rest without it.
			if n < 4 || binary.BigEndian.Uint16(b[off:]) != mdns.EDNS0SUBNET {
				return
			}
			l := 4 + int(binary.BigEndian.Uint16(b[off+2:]))
			if l > n {
				return
			}
			w := make([]byte, 0, len(b)-l)
			w = append(w, b[:off]...)
			w = append(w, b[off+l:]...)
			binary.BigEndian.PutUint16(w[off-2:], uint16(n-l))
			a.wire = w
		}
	} else if m.q.edns {
		return // an EDNS query's answer has an OPT, last
	}
	if m.ecsOn && a.wire == nil {
		return
	}
	if a.wire == nil {
		a.wire = append([]byte(nil), b...)
	}
	s.cachePut(m.cache, m.key, res.zone, res.serial, res.steered, a)
}

// ecsEnabled reports whether t answers the ECS option (geo.ecs).
func ecsEnabled(t *routing.Table) bool {
	return t.Config == nil || t.Config.Geo.ECS == nil || *t.Config.Geo.ECS
}

// tableUDPSize is our EDNS buffer size under t, as answer advertises it.
func tableUDPSize(t *routing.Table) int {
	if t != nil && t.Config != nil && t.Config.DNS.UDPSize >= mdns.MinMsgSize {
		return t.Config.DNS.UDPSize
	}
	return mdns.DefaultMsgSize
}
