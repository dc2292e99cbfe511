package dns

import (
	"net/netip"
	"strings"

	mdns "github.com/miekg/dns"

	"github.com/meridian-lb/meridian/dns/zone"
	"github.com/meridian-lb/meridian/geo"
	"github.com/meridian-lb/meridian/routing"
)

// maxChain bounds the CNAME hops followed inside a zone, so a loop in the
// configuration costs a few lookups, not a stack.
const maxChain = 8

// client is what ServeDNS knows about a query besides its message.
type client struct {
	addr netip.Addr // source address, unmapped; invalid for "nowhere"
	tcp  bool
	tr   *trace // non-nil only when Explain asks why
	// badECSLength is set by the transport when an ECS option's address
	// length on the wire does not match its source prefix (ecsWireOK),
	// which the decoded message can no longer show.
	badECSLength bool
}

// result is one computed response and what metrics, logs and the
// transport need to know about it.
type result struct {
	// msg is the response; nil means send nothing (QR=1 queries).
	msg *mdns.Msg
	// zone answered the query; nil for REFUSED and header-level errors.
	zone *zone.Zone
	// xfr is set for a permitted AXFR or IXFR over TCP: msg is the header
	// template and the transport streams the zone.
	xfr bool
	// udpSize is the most a UDP response may take: the client's EDNS
	// buffer capped at ours, 512 without EDNS.
	udpSize int
	// region and scope say how the client was located (scope is the ECS
	// scope returned; -1 when the response carries no ECS).
	region string
	scope  int
	// record is the owner name the query matched ("" for none) and pool
	// the pool a steered answer came from: what telemetry counts.
	record, pool string
}

// answer computes the response to req from table t as seen by client c. It
// is pure apart from the rotation and weighted-schedule counters inside the
// table and the random draws for weighted endpoints: no I/O, no locks. A nil
// table refuses every query.
func answer(t *routing.Table, req *mdns.Msg, c client) (res result) {
	res = result{udpSize: mdns.MinMsgSize, scope: -1}
	if req == nil || req.Response {
		return res // QR=1: never answer a response (no ping-pong)
	}
	m := &mdns.Msg{}
	m.Id, m.Response, m.Opcode = req.Id, true, req.Opcode
	res.msg = m

	opt, ok := requestOPT(req)
	if !ok {
		// Two OPTs, or one in the wrong place or with a non-root owner: the
		// OPT itself is what is wrong, so none is echoed (RFC 6891 §6.1.1).
		m.Rcode = mdns.RcodeFormatError
		return res
	}
	ourSize := mdns.DefaultMsgSize
	if t != nil && t.Config != nil && t.Config.DNS.UDPSize >= mdns.MinMsgSize {
		ourSize = t.Config.DNS.UDPSize
	}
	var ropt *mdns.OPT
	if opt != nil {
		res.udpSize = min(max(int(opt.UDPSize()), mdns.MinMsgSize), ourSize)
		ropt = &mdns.OPT{Hdr: mdns.RR_Header{Name: ".", Rrtype: mdns.TypeOPT}}
		ropt.SetUDPSize(uint16(ourSize))
		if opt.Do() {
			ropt.SetDo() // RFC 3225: DO is copied; unknown flags are not
		}
		m.Extra = []mdns.RR{ropt}
		if opt.Version() != 0 {
			// RFC 6891 §6.1.3: BADVERS with our version (0), no data.
			m.Rcode = mdns.RcodeBadVers
			m.Question = oneQuestion(req)
			return res
		}
	}
	if req.Opcode != mdns.OpcodeQuery {
		// NOTIMP without RD/AD/CD echoed (the miekg reject path copies them).
		m.Rcode = mdns.RcodeNotImplemented
		m.Question = oneQuestion(req)
		return res
	}
	if len(req.Question) != 1 {
		m.Rcode = mdns.RcodeFormatError
		return res
	}
	m.Question = req.Question[:1:1] // byte-exact echo, mixed case kept
	m.RecursionDesired = req.RecursionDesired
	m.CheckingDisabled = req.CheckingDisabled

	var ecs ecsInfo
	if opt != nil && (t == nil || t.Config == nil || t.Config.Geo.ECS == nil || *t.Config.Geo.ECS) {
		if ecs, ok = parseECS(opt); !ok || c.badECSLength {
			m.Rcode = mdns.RcodeFormatError // RFC 7871 §6, §7.1.1
			return res
		}
	}
	if ecs.present {
		defer func() {
			scope := max(res.scope, 0)
			ropt.Option = []mdns.EDNS0{&mdns.EDNS0_SUBNET{
				Code:          mdns.EDNS0SUBNET,
				Family:        ecs.opt.Family,
				SourceNetmask: ecs.opt.SourceNetmask,
				SourceScope:   uint8(scope),
				Address:       ecs.opt.Address,
			}}
			res.scope = scope
		}()
		if c.tr != nil {
			c.tr.ecs = ecs
		}
	}

	q := m.Question[0]
	if q.Qclass != mdns.ClassINET {
		m.Rcode = mdns.RcodeRefused // CHAOS, HESIOD, ANY: not ours
		return res
	}
	if q.Qtype == mdns.TypeOPT || !mdns.IsFqdn(q.Name) {
		m.Rcode = mdns.RcodeFormatError
		return res
	}
	if t == nil {
		m.Rcode = mdns.RcodeRefused
		return res
	}
	lower := strings.ToLower(q.Name)
	z := zone.Find(t.Zones, lower)
	if z == nil {
		m.Rcode = mdns.RcodeRefused // out of zone: no recursion, no AA
		if tr := c.tr; tr != nil {
			tr.note("%s is in none of our zones: REFUSED", q.Name)
		}
		return res
	}
	res.zone = z
	if tr := c.tr; tr != nil {
		tr.note("zone %s (serial %d)", z.Name, z.Serial())
	}

	if q.Qtype == mdns.TypeAXFR || q.Qtype == mdns.TypeIXFR {
		switch {
		case !transferAllowed(z, c.addr):
			m.Rcode = mdns.RcodeRefused
			if tr := c.tr; tr != nil {
				tr.note("zone transfer refused: %s is not in transfer.allow", c.addr)
			}
		case c.tcp:
			m.Authoritative = true
			res.xfr = true
		case q.Qtype == mdns.TypeIXFR:
			// RFC 1995 §4: over UDP, the current SOA tells the client to
			// come back over TCP.
			m.Authoritative = true
			m.Answer = append(m.Answer, z.SOA())
		default:
			m.Rcode = mdns.RcodeRefused // never AXFR over UDP
			if tr := c.tr; tr != nil {
				tr.note("AXFR over UDP refused: transfers are TCP only")
			}
		}
		return res
	}

	m.Authoritative = true
	r := resolver{t: t, z: z, m: m, c: c, ecs: ecs, qtype: q.Qtype}
	r.resolve(lower, q.Name)
	res.record, res.pool = r.node, r.pool
	res.region = r.loc.Region
	if r.located && ecs.present {
		res.scope = r.scope
	} else {
		res.scope = 0
	}
	return res
}

// oneQuestion echoes the question of a message that has exactly one.
func oneQuestion(req *mdns.Msg) []mdns.Question {
	if len(req.Question) == 1 {
		return req.Question[:1:1]
	}
	return nil
}

// requestOPT finds the query's OPT record. ok is false when the message has
// more than one, one outside the additional section, or one whose owner is
// not the root.
func requestOPT(req *mdns.Msg) (opt *mdns.OPT, ok bool) {
	for _, rr := range req.Answer {
		if _, is := rr.(*mdns.OPT); is {
			return nil, false
		}
	}
	for _, rr := range req.Ns {
		if _, is := rr.(*mdns.OPT); is {
			return nil, false
		}
	}
	for _, rr := range req.Extra {
		if o, is := rr.(*mdns.OPT); is {
			if opt != nil {
				return nil, false
			}
			opt = o
		}
	}
	if opt != nil && opt.Hdr.Name != "." {
		return nil, false
	}
	return opt, true
}

// transferAllowed reports whether addr may transfer z.
func transferAllowed(z *zone.Zone, addr netip.Addr) bool {
	for _, p := range z.TransferAllow {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// resolver walks one zone for one query, appending to m.
type resolver struct {
	t     *routing.Table
	z     *zone.Zone
	m     *mdns.Msg
	c     client
	ecs   ecsInfo
	qtype uint16

	located bool       // loc is set
	loc     geo.Result // where the client is
	scope   int        // ECS scope of the location used
	pools   [8]*routing.Pool
	node    string // the owner name matched on the first hop (telemetry)
	pool    string // the pool the last steered answer came from (telemetry)
}

// resolve answers name (lower case) whose answer owner is owner (the
// question's spelling on the first hop), following CNAMEs inside the zone.
func (r *resolver) resolve(name, owner string) {
	z := r.z
	for hop := 0; hop <= maxChain; hop++ {
		if z.HasCuts {
			if cut := findCut(z, name); cut != nil && !(r.qtype == mdns.TypeDS && cut.Name == name) {
				if hop == 0 {
					r.referral(cut)
				}
				return
			}
		}
		n := z.Nodes[name]
		if n == nil {
			if n = findWildcard(z, name); n == nil {
				if tr := r.c.tr; tr != nil {
					tr.note("%s does not exist: NXDOMAIN", name)
				}
				r.negative(mdns.RcodeNameError)
				return
			}
			if tr := r.c.tr; tr != nil {
				tr.note("%s is synthesised from the wildcard %s", name, n.Name)
			}
		}
		if hop == 0 {
			r.node = n.Name
		}
		if r.qtype == mdns.TypeANY {
			r.any(n, owner)
			return
		}
		if n.CNAMETarget != "" && r.qtype != mdns.TypeCNAME {
			r.appendOwned(n.Set(mdns.TypeCNAME), owner, n.Name)
			if !r.follow(n.CNAMETarget) {
				return
			}
			name, owner = n.CNAMETarget, n.CNAMETarget
			continue
		}
		answered, next := r.data(n, owner)
		switch {
		case !answered:
			if tr := r.c.tr; tr != nil {
				tr.note("%s has no %s data: NODATA", name, mdns.TypeToString[r.qtype])
			}
			r.negative(mdns.RcodeSuccess)
			return
		case next == "" || !r.follow(next):
			return
		}
		name, owner = next, next
	}
	if tr := r.c.tr; tr != nil {
		tr.note("CNAME chain longer than %d hops: stopped", maxChain)
	}
}

// follow reports whether a CNAME target is in the zone being answered.
func (r *resolver) follow(target string) bool {
	if zone.Find(r.t.Zones, target) != r.z {
		if tr := r.c.tr; tr != nil {
			tr.note("CNAME target %s is outside zone %s: the resolver follows it", target, r.z.Name)
		}
		return false
	}
	return true
}

// data appends n's records of the query type. next is a CNAME target to
// follow (a steered record's fallback can be a CNAME).
func (r *resolver) data(n *zone.Node, owner string) (answered bool, next string) {
	if r.qtype == mdns.TypeSOA {
		if n.Name != r.z.Name {
			return false, ""
		}
		r.appendOwned1(r.z.SOA(), owner, n.Name)
		return true, ""
	}
	if s := n.SteeredFor(r.qtype); s != nil {
		return r.steer(s, owner)
	}
	if rrs := n.Set(r.qtype); rrs != nil {
		r.appendOwned(rrs, owner, n.Name)
		return true, ""
	}
	return false, ""
}

// any answers qtype ANY with one RRset (RFC 8482): the CNAME, else the
// first steered record, else the first static set.
func (r *resolver) any(n *zone.Node, owner string) {
	if n.CNAMETarget != "" {
		r.appendOwned(n.Set(mdns.TypeCNAME), owner, n.Name)
		return
	}
	for _, s := range n.Steered {
		if ok, _ := r.steer(s, owner); ok {
			return
		}
	}
	if len(n.Sets) > 0 {
		r.appendOwned(n.Sets[0].RRs, owner, n.Name)
		return
	}
	r.negative(mdns.RcodeSuccess)
}

// negative makes an NXDOMAIN or NODATA answer: the SOA with the negative
// TTL in the authority section (RFC 2308).
func (r *resolver) negative(rcode int) {
	r.m.Rcode = rcode
	r.m.Ns = append(r.m.Ns, r.z.NegativeSOA())
}

// referral answers a name at or below a delegation point: not
// authoritative, the cut's NS set in authority, glue in additional.
func (r *resolver) referral(cut *zone.Node) {
	r.node = cut.Name
	if tr := r.c.tr; tr != nil {
		tr.note("%s is delegated: referral", cut.Name)
	}
	r.m.Authoritative = false
	r.m.Ns = append(r.m.Ns, cut.Set(mdns.TypeNS)...)
	if len(cut.Glue) > 0 {
		extra := make([]mdns.RR, 0, len(cut.Glue)+len(r.m.Extra))
		extra = append(extra, cut.Glue...)
		r.m.Extra = append(extra, r.m.Extra...)
	}
}

// appendOwned appends rrs to the answer, owned by owner. Pre-built records
// are shared when the owner is their own name; otherwise (mixed case,
// wildcards) they are copied and renamed.
func (r *resolver) appendOwned(rrs []mdns.RR, owner, name string) {
	if owner == name {
		r.m.Answer = append(r.m.Answer, rrs...)
		return
	}
	for _, rr := range rrs {
		r.appendOwned1(rr, owner, name)
	}
}

func (r *resolver) appendOwned1(rr mdns.RR, owner, name string) {
	if owner != name {
		rr = mdns.Copy(rr)
		rr.Header().Name = owner
	}
	r.m.Answer = append(r.m.Answer, rr)
}

// findCut returns the highest delegation point at or above name, below
// the apex, or nil.
func findCut(z *zone.Zone, name string) *zone.Node {
	var cut *zone.Node
	stop := len(name) - len(z.Name)
	for off := 0; off < stop; {
		if n := z.Nodes[name[off:]]; n != nil && n.Cut {
			cut = n
		}
		var end bool
		if off, end = mdns.NextLabel(name, off); end {
			break
		}
	}
	return cut
}

// findWildcard returns the wildcard that synthesises name, which does not
// exist: the "*" child of name's closest encloser, if it has one (RFC 4592).
func findWildcard(z *zone.Zone, name string) *zone.Node {
	stop := len(name) - len(z.Name)
	for off, end := mdns.NextLabel(name, 0); !end && off <= stop; off, end = mdns.NextLabel(name, off) {
		s := name[off:]
		if _, ok := z.Nodes[s]; ok {
			return z.Wildcards[s]
		}
	}
	return nil
}

// locate places the client once per query: the ECS address when the query
// has one with a source prefix, else the source address.
func (r *resolver) locate() {
	if r.located {
		return
	}
	r.located = true
	addr, from := r.c.addr, "client"
	if r.ecs.present && r.ecs.bits > 0 {
		addr, from = r.ecs.addr, "ecs"
	}
	if r.t.Geo != nil {
		r.loc = r.t.Geo.Lookup(addr)
	}
	if from == "ecs" {
		r.scope = r.loc.PrefixFor(addr)
	}
	if tr := r.c.tr; tr != nil {
		tr.located, tr.loc, tr.from, tr.addr = true, r.loc, from, addr
	}
}
