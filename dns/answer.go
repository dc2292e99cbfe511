package dns

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"

	mdns "github.com/miekg/dns"

	"github.com/meridian-lb/meridian/dns/dnssec"
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
	// signer signs the answers of signed zones: the server's, through its
	// signature cache. Nil signs without a cache (explain, tests).
	signer *dnssec.Signer
	// plan is what the answer cache decided for the steered record the
	// query meets (nil: nothing decided yet); steer uses it rather than
	// deciding again, so the rotation moves once per query.
	plan *steerPlan
	// miss is set for a UDP query the answer cache missed (fast.go).
	miss *cacheMiss
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
	// optional is how many records at the end of msg.Extra, before the
	// OPT, are additional data (and their RRSIGs): a UDP response too
	// large for its buffer drops them, without setting TC (RFC 2181 §9),
	// before it truncates anything else.
	optional int
	// err is why the response is SERVFAIL: signing failed. The server
	// logs it.
	err error
	// cacheable is set when the response is a function of the table, the
	// zone's serial, the query's cache key (cache.go) and, when steered is
	// set, the one steering decision variant names: what the answer cache
	// may keep and serve again.
	cacheable bool
	serial    uint32 // the zone's, read before answering
	steered   *zone.Steered
	variant   variantKey
}

// answer computes the response to req from table t as seen by client c. It
// is pure apart from the rotation and weighted-schedule counters inside the
// table and the random draws for weighted endpoints: no I/O, no locks. A
// signed zone's answer to a query with DO is signed through c.signer,
// whose cache is the one shared state it touches (a shard lock per
// lookup), and which reads the clock. A nil table refuses every query.
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
	// ede is the extended DNS error (RFC 8914) the response carries, if
	// any: only a response with an OPT can.
	var ede *mdns.EDNS0_EDE
	if opt != nil {
		res.udpSize = min(max(int(opt.UDPSize()), mdns.MinMsgSize), ourSize)
		ropt = &mdns.OPT{Hdr: mdns.RR_Header{Name: ".", Rrtype: mdns.TypeOPT}}
		ropt.SetUDPSize(uint16(ourSize))
		if opt.Do() {
			ropt.SetDo() // RFC 3225: DO is copied; unknown flags are not
		}
		m.Extra = []mdns.RR{ropt}
		// Runs after the ECS option is set (defers run last first).
		defer func() {
			if ede != nil {
				ropt.Option = append(ropt.Option, ede)
			}
		}()
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
		ede = &mdns.EDNS0_EDE{InfoCode: mdns.ExtendedErrorCodeNotSupported, ExtraText: "opcode " + opcodeString(req.Opcode) + " is not supported"}
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
			ede = &mdns.EDNS0_EDE{InfoCode: mdns.ExtendedErrorCodeOther, ExtraText: "malformed EDNS Client Subnet option (RFC 7871 section 6)"}
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
		ede = &mdns.EDNS0_EDE{InfoCode: mdns.ExtendedErrorCodeNotAuthoritative, ExtraText: "only class IN is served here"}
		return res
	}
	if q.Qtype == mdns.TypeOPT || !mdns.IsFqdn(q.Name) {
		m.Rcode = mdns.RcodeFormatError
		return res
	}
	if q.Qtype == mdns.TypeNXNAME {
		// RFC 9824 §4: NXNAME is a meta-type, never asked for.
		m.Rcode = mdns.RcodeFormatError
		ede = &mdns.EDNS0_EDE{InfoCode: mdns.ExtendedErrorCodeInvalidQueryType, ExtraText: "NXNAME is a meta-type"}
		return res
	}
	if t == nil {
		m.Rcode = mdns.RcodeRefused
		ede = &mdns.EDNS0_EDE{InfoCode: mdns.ExtendedErrorCodeNotReady, ExtraText: "no zones loaded yet"}
		return res
	}
	lower := strings.ToLower(q.Name)
	z := zone.Find(t.Zones, lower)
	if z != nil && q.Qtype == mdns.TypeDS && lower == z.Name && lower != "." {
		// The DS of a zone's apex is the parent's (RFC 4035 §3.1.4.1):
		// answer from the parent zone when it is ours too.
		if off, end := mdns.NextLabel(lower, 0); !end {
			if p := zone.Find(t.Zones, lower[off:]); p != nil {
				z = p
			}
		}
	}
	if z == nil {
		m.Rcode = mdns.RcodeRefused // out of zone: no recursion, no AA
		ede = &mdns.EDNS0_EDE{InfoCode: mdns.ExtendedErrorCodeNotAuthoritative, ExtraText: "not in a zone served here"}
		if tr := c.tr; tr != nil {
			tr.note("%s is in none of our zones: REFUSED", q.Name)
		}
		return res
	}
	res.zone, res.serial = z, z.Serial()
	if tr := c.tr; tr != nil {
		tr.note("zone %s (serial %d)", z.Name, z.Serial())
	}

	if q.Qtype == mdns.TypeAXFR || q.Qtype == mdns.TypeIXFR {
		switch {
		case !transferAllowed(z, c.addr):
			m.Rcode = mdns.RcodeRefused
			ede = &mdns.EDNS0_EDE{InfoCode: mdns.ExtendedErrorCodeProhibited, ExtraText: "zone transfer not allowed from this address"}
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
			ede = &mdns.EDNS0_EDE{InfoCode: mdns.ExtendedErrorCodeNotSupported, ExtraText: "AXFR is served over TCP only"}
			if tr := c.tr; tr != nil {
				tr.note("AXFR over UDP refused: transfers are TCP only")
			}
		}
		return res
	}

	m.Authoritative = true
	r := resolver{t: t, z: z, m: m, c: c, ecs: ecs, qtype: q.Qtype}
	if z.Signed() && opt != nil && opt.Do() {
		r.sign = true
		r.co = opt.Co()
		if r.co {
			ropt.SetCo() // RFC 9824 §5: we honour it
		}
	}
	if tr := c.tr; tr != nil && z.Signed() {
		if r.sign {
			tr.note("zone %s is signed (keys %s): answers carry RRSIGs, denial is compact (RFC 9824)", z.Name, z.Keys)
		} else {
			tr.note("zone %s is signed (keys %s); this query has no DO, so nothing is signed", z.Name, z.Keys)
		}
	}
	r.resolve(lower, q.Name)
	if err := r.signAll(); err != nil {
		m.Rcode, m.Answer, m.Ns, r.extra, r.optional = mdns.RcodeServerFailure, nil, nil, nil, 0
		r.ede = &mdns.EDNS0_EDE{InfoCode: mdns.ExtendedErrorCodeOther, ExtraText: "DNSSEC signing failed"}
		res.err = err
	}
	if r.sign && q.Qtype == mdns.TypeRRSIG {
		// Answered like ANY; the signatures are what was asked for.
		m.Answer = slices.DeleteFunc(m.Answer, func(rr mdns.RR) bool { return rr.Header().Rrtype != mdns.TypeRRSIG })
	}
	if len(r.extra) > 0 {
		m.Extra = append(r.extra, m.Extra...)
		res.optional = r.optional
	}
	if r.ede != nil {
		ede = r.ede
	}
	res.record, res.pool = r.node, r.pool
	res.region = r.loc.Region
	if r.located && ecs.present {
		res.scope = r.scope
	} else {
		res.scope = 0
	}
	if res.err == nil && !r.sign && c.tr == nil && !c.tcp && r.steers <= 1 {
		res.cacheable = true
		if r.steers == 1 {
			res.steered = r.plan.s
			res.variant, res.cacheable = r.plan.variant()
		}
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

	// sign is set when the zone is signed and the query has DO: answers
	// get RRSIGs (sets lists the RRsets to sign) and denial gets NSECs.
	sign bool
	// co is set when the query also has CO (Compact Answers OK, RFC 9824
	// §5): a name that does not exist keeps its NXDOMAIN rcode.
	co   bool
	sets []span
	// extra is the additional section being built (glue, then additional
	// data, each RRset followed by its RRSIGs); answer puts the OPT after
	// it. optional counts the records at its end that are additional
	// data, which a response too large for its buffer drops first.
	extra    []mdns.RR
	optional int
	// ede is an extended DNS error (RFC 8914) for the response's OPT.
	ede *mdns.EDNS0_EDE

	located bool       // loc is set
	loc     geo.Result // where the client is
	scope   int        // ECS scope of the location used
	pools   [8]*routing.Pool
	// plan is the last steering decision, steers how many steered
	// records were answered, planUsed whether c.plan was.
	plan     steerPlan
	steers   int
	planUsed bool
	node     string // the owner name matched on the first hop (telemetry)
	pool     string // the pool the last steered answer came from (telemetry)
	// seen are the names answered so far, so a CNAME loop gives each
	// record once (RFC 1034 §3.6.2, RFC 2181 §10.1).
	seen  [maxChain + 1]string
	nseen int
}

// section names the message section a span is in.
type section uint8

const (
	secAnswer section = iota
	secAuthority
	secAdditional
)

// span is one RRset appended to the response that a signed answer signs.
type span struct {
	sec        section
	start, end int // its records in the section
	// name is the owner the records were compiled under, which they are
	// signed under: "*.x." for an answer a wildcard synthesised.
	name string
	// rrs are the records as compiled (owned by name), what is signed on
	// a cache miss; the section's copies may have another owner spelling.
	rrs []mdns.RR
	// key is the RRset's dnssec.ContentKey; nil builds it from rrs.
	key []byte
}

// resolve answers name (lower case) whose answer owner is owner (the
// question's spelling on the first hop), following CNAMEs inside the zone.
func (r *resolver) resolve(name, owner string) {
	z := r.z
	for hop := 0; hop <= maxChain; hop++ {
		if z.HasCuts {
			if cut := findCut(z, name); cut != nil && !(r.qtype == mdns.TypeDS && cut.Name == name) {
				// At the start a referral; after a CNAME the chain leaves
				// our authority there, and the referral goes beside the
				// CNAMEs (RFC 1034 §4.3.2 step 3b), as Knot and NSD do.
				r.referral(cut, hop == 0)
				return
			}
		}
		r.seen[r.nseen], r.nseen = name, r.nseen+1
		n := z.Nodes[name]
		wild := false
		if n == nil {
			if n = findWildcard(z, name); n == nil {
				if r.sign && r.qtype == mdns.TypeNSEC {
					r.nsecAnswer(owner, name, nil) // its NSEC says NXNAME
					return
				}
				if tr := r.c.tr; tr != nil {
					tr.note("%s does not exist: NXDOMAIN", name)
				}
				r.negative(mdns.RcodeNameError, name, nil)
				return
			}
			wild = true
			if tr := r.c.tr; tr != nil {
				tr.note("%s is synthesised from the wildcard %s", name, n.Name)
			}
		}
		if hop == 0 {
			r.node = n.Name
		}
		if r.qtype == mdns.TypeANY || (r.sign && r.qtype == mdns.TypeRRSIG) {
			if r.any(n, owner, name) && wild {
				r.wildcardProof(name)
			}
			return
		}
		if r.sign && r.qtype == mdns.TypeNSEC {
			r.nsecAnswer(owner, name, n.Types)
			return
		}
		if n.CNAMETarget != "" && r.qtype != mdns.TypeCNAME {
			r.appendSet(n.SetOf(mdns.TypeCNAME), owner, n.Name)
			if wild {
				r.wildcardProof(name)
			}
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
				tr.note("%s has no %s data: NODATA", name, typeString(r.qtype))
			}
			r.negative(mdns.RcodeSuccess, name, n)
			return
		case wild:
			r.wildcardProof(name)
		}
		if next == "" || !r.follow(next) {
			return
		}
		name, owner = next, next
	}
	if tr := r.c.tr; tr != nil {
		tr.note("CNAME chain longer than %d hops: stopped", maxChain)
	}
}

// follow reports whether a CNAME target is to be followed: in the zone
// being answered, and not answered already in this chain (a loop).
func (r *resolver) follow(target string) bool {
	if zone.Find(r.t.Zones, target) != r.z {
		if tr := r.c.tr; tr != nil {
			tr.note("CNAME target %s is outside zone %s: the resolver follows it", target, r.z.Name)
		}
		return false
	}
	for _, s := range r.seen[:r.nseen] {
		if s == target {
			if tr := r.c.tr; tr != nil {
				tr.note("CNAME target %s was answered already: a loop, stopped", target)
			}
			return false
		}
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
		soa := r.z.SOA()
		r.appendRRs(secAnswer, []mdns.RR{soa}, owner, n.Name, r.z.SOAKey())
		return true, ""
	}
	if s := n.SteeredFor(r.qtype); s != nil {
		return r.steer(s, owner)
	}
	if set := n.SetOf(r.qtype); set != nil {
		r.appendSet(set, owner, n.Name)
		return true, ""
	}
	return false, ""
}

// any answers qtype ANY with one RRset (RFC 8482): the CNAME, else the
// first steered record, else the first static set. It reports whether
// there was one. (A signed zone answers qtype RRSIG this way too, keeping
// only the signatures: see answer.)
func (r *resolver) any(n *zone.Node, owner, name string) bool {
	if n.CNAMETarget != "" {
		r.appendSet(n.SetOf(mdns.TypeCNAME), owner, n.Name)
		return true
	}
	for _, s := range n.Steered {
		if ok, _ := r.steer(s, owner); ok {
			return true
		}
	}
	if len(n.Sets) > 0 {
		r.appendSet(&n.Sets[0], owner, n.Name)
		return true
	}
	r.negative(mdns.RcodeSuccess, name, n)
	return false
}

// negative makes an NXDOMAIN or NODATA answer for name (lower case): the
// SOA with the negative TTL in the authority section (RFC 2308). n is the
// node that has no data of the type asked, nil when name does not exist.
//
// A signed answer proves it with compact denial (RFC 9824): one NSEC at
// name, covering nothing else, whose bitmap lists the types name has
// (without the one asked for), or RRSIG, NSEC and NXNAME when name does
// not exist; the rcode is then NOERROR, unless the query set CO.
func (r *resolver) negative(rcode int, name string, n *zone.Node) {
	r.m.Rcode = rcode
	r.appendRRs(secAuthority, []mdns.RR{r.z.NegativeSOA()}, r.z.Name, r.z.Name, r.z.NegativeSOAKey())
	if !r.sign {
		return
	}
	var nsec *mdns.NSEC
	if n == nil {
		if !r.co {
			r.m.Rcode = mdns.RcodeSuccess
		}
		nsec = dnssec.CompactNSEC(name, r.z.NegativeTTL, nil, true)
	} else {
		nsec = dnssec.CompactNSEC(name, r.z.NegativeTTL, without(n.Types, r.qtype), false)
	}
	r.appendRRs(secAuthority, []mdns.RR{nsec}, nsec.Hdr.Name, nsec.Hdr.Name, nil)
}

// nsecAnswer answers a signed zone's query for type NSEC with the NSEC
// that compact denial gives name: the types it has, or NXNAME when it
// does not exist (types nil and the name not in the zone).
func (r *resolver) nsecAnswer(owner, name string, types []uint16) {
	_, exists := r.z.Nodes[name]
	nsec := dnssec.CompactNSEC(name, r.z.NegativeTTL, types, !exists && findWildcard(r.z, name) == nil)
	r.appendRRs(secAnswer, []mdns.RR{nsec}, owner, nsec.Hdr.Name, nil)
}

// without returns types less t, in a new slice.
func without(types []uint16, t uint16) []uint16 {
	out := make([]uint16, 0, len(types))
	for _, x := range types {
		if x != t {
			out = append(out, x)
		}
	}
	return out
}

// wildcardProof adds, to a signed answer synthesised from a wildcard, the
// NSEC that shows name itself does not exist (RFC 4035 §3.1.3.3): from
// just before name to just after it and its descendants, so it covers no
// name of the zone (see dnssec.Before and After). Should a name of the
// zone lie between dnssec.Before(name) and name, the NSEC starts at that
// name instead.
func (r *resolver) wildcardProof(name string) {
	if !r.sign {
		return
	}
	from := dnssec.Before(name)
	names := r.z.Names
	if i, _ := slices.BinarySearchFunc(names, name, dnssec.Compare); i > 0 && dnssec.Compare(names[i-1], from) > 0 {
		from = names[i-1]
	}
	nsec := dnssec.CoverNSEC(from, dnssec.After(name), r.z.NegativeTTL)
	r.appendRRs(secAuthority, []mdns.RR{nsec}, nsec.Hdr.Name, nsec.Hdr.Name, nil)
}

// referral answers a name at or below a delegation point: the cut's NS
// set in authority, glue in additional. first is set when the query name
// itself is delegated (not authoritative: AA clear), clear when a CNAME
// chain led here (the CNAMEs are ours: AA stays). The NS set and glue are
// the child's and never signed (RFC 4035 §2.2); a signed answer adds the
// cut's DS set, or the NSEC that shows there is none (an insecure
// delegation).
func (r *resolver) referral(cut *zone.Node, first bool) {
	if tr := r.c.tr; tr != nil {
		tr.note("%s is delegated: referral", cut.Name)
	}
	if first {
		r.node = cut.Name
		r.m.Authoritative = false
	}
	r.m.Ns = append(r.m.Ns, cut.Set(mdns.TypeNS)...)
	if r.sign {
		if ds := cut.SetOf(mdns.TypeDS); ds != nil {
			r.appendRRs(secAuthority, ds.RRs, cut.Name, cut.Name, ds.Key)
		} else {
			nsec := dnssec.CompactNSEC(cut.Name, r.z.NegativeTTL, without(cut.Types, mdns.TypeDS), false)
			r.appendRRs(secAuthority, []mdns.RR{nsec}, cut.Name, cut.Name, nil)
		}
	}
	r.extra = append(r.extra, cut.Glue...)
}

// appendSet appends a static RRset to the answer, owned by owner, and the
// in-zone addresses of the names it points to to the additional section.
func (r *resolver) appendSet(set *zone.RRSet, owner, name string) {
	r.appendRRs(secAnswer, set.RRs, owner, name, set.Key)
	for _, a := range set.Additional {
		if r.hasExtra(a) {
			continue
		}
		start := len(r.extra)
		r.extra = append(r.extra, a.RRs...)
		if r.sign {
			r.sets = append(r.sets, span{sec: secAdditional, start: start, end: len(r.extra), name: a.RRs[0].Header().Name, rrs: a.RRs, key: a.Key})
		}
		r.optional += len(a.RRs)
	}
}

// hasExtra reports whether set's records are in the additional section
// already (two MX records with one target).
func (r *resolver) hasExtra(set *zone.RRSet) bool {
	for _, rr := range r.extra {
		if rr == set.RRs[0] {
			return true
		}
	}
	return false
}

// appendRRs appends one RRset to a section, owned by owner, and notes it
// for signing (key is its content key, nil to build it from rrs).
// Pre-built records are shared when the owner is their own name;
// otherwise (mixed case, wildcards) they are copied and renamed.
func (r *resolver) appendRRs(sec section, rrs []mdns.RR, owner, name string, key []byte) {
	dst := r.section(sec)
	start := len(*dst)
	if owner == name {
		*dst = append(*dst, rrs...)
	} else {
		for _, rr := range rrs {
			rr = mdns.Copy(rr)
			rr.Header().Name = owner
			*dst = append(*dst, rr)
		}
	}
	if r.sign && len(rrs) > 0 {
		r.sets = append(r.sets, span{sec: sec, start: start, end: len(*dst), name: name, rrs: rrs, key: key})
	}
}

func (r *resolver) appendOwned1(rr mdns.RR, owner, name string) {
	if owner != name {
		rr = mdns.Copy(rr)
		rr.Header().Name = owner
	}
	r.m.Answer = append(r.m.Answer, rr)
}

// section returns the slice a section's records are appended to.
func (r *resolver) section(sec section) *[]mdns.RR {
	switch sec {
	case secAuthority:
		return &r.m.Ns
	case secAdditional:
		return &r.extra
	}
	return &r.m.Answer
}

// signAll inserts, after each RRset noted in sets, its RRSIGs, owned by
// the owner the RRset was answered under (for a wildcard, the query
// name: the RRSIG's label count tells a validator it was synthesised).
func (r *resolver) signAll() error {
	if len(r.sets) == 0 {
		return nil
	}
	signer := r.c.signer
	if signer == nil {
		signer = dnssec.NewSigner(nil, nil)
	}
	for _, sec := range []section{secAnswer, secAuthority, secAdditional} {
		src := *r.section(sec)
		var out []mdns.RR
		last, optionalFrom := 0, len(src)-r.optional
		for _, sp := range r.sets {
			if sp.sec != sec {
				continue
			}
			if out == nil {
				out = make([]mdns.RR, 0, len(src)+len(r.sets)*len(r.z.Keys.Keys))
			}
			out = append(out, src[last:sp.end]...)
			last = sp.end
			key := sp.key
			if key == nil {
				key = dnssec.ContentKey(sp.name, sp.rrs)
			}
			sigs, err := signer.Sign(r.z.Keys, key, sp.rrs)
			if err != nil {
				return err
			}
			owner := src[sp.start].Header().Name
			for _, sig := range sigs {
				if owner != sig.Header().Name {
					sig = mdns.Copy(sig)
					sig.Header().Name = owner
				}
				out = append(out, sig)
			}
			if sec == secAdditional && sp.start >= optionalFrom {
				r.optional += len(sigs)
			}
		}
		if out == nil {
			continue
		}
		*r.section(sec) = append(out, src[last:]...)
	}
	return nil
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
	var addr netip.Addr
	r.loc, r.scope, addr = locateClient(r.t, r.c.addr, &r.ecs)
	if tr := r.c.tr; tr != nil {
		from := "client"
		if r.ecs.present && r.ecs.bits > 0 {
			from = "ecs"
		}
		tr.located, tr.loc, tr.from, tr.addr = true, r.loc, from, addr
	}
}

// locateClient places a client at addr, or the ECS network when the
// query has one with a source prefix: its location, the ECS scope (0
// when placed by addr) and the address looked up.
func locateClient(t *routing.Table, addr netip.Addr, ecs *ecsInfo) (loc geo.Result, scope int, used netip.Addr) {
	fromECS := ecs.present && ecs.bits > 0
	if fromECS {
		addr = ecs.addr
	}
	if t.Geo != nil {
		loc = t.Geo.Lookup(addr)
	}
	if fromECS {
		scope = loc.PrefixFor(addr)
	}
	return loc, scope, addr
}

func opcodeString(op int) string {
	if s, ok := mdns.OpcodeToString[op]; ok {
		return s
	}
	return strconv.Itoa(op)
}
