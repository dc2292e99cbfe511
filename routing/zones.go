package routing

import (
	"cmp"
	"fmt"
	"hash/fnv"
	"io"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"

	mdns "github.com/miekg/dns"

	"github.com/meridian-lb/meridian/config"
)

// Zone is a compiled DNS zone: every owner name in a map, static RRsets
// pre-built as mdns.RR, steered records bound to their service's pools with
// one pre-built RR per endpoint, wildcards indexed by their parent, and
// delegation points marked, so that answering does map lookups and appends
// and never parses. Everything is read-only after Compile except the serial,
// which the DNS server moves (atomically) when the zone's answers change.
type Zone struct {
	// Origin is the zone name as configured.
	Origin string
	// Config is the zone as configured, after defaults.
	Config *config.Zone
	// Name is the canonical origin: lower case, fully qualified.
	Name string
	// Nodes holds every owner name of the zone (lower case): names with
	// records, the apex, and empty non-terminals (names that exist only
	// because a name below them does, which answer NODATA, not NXDOMAIN).
	// A wildcard node is here under its literal "*." name too.
	Nodes map[string]*Node
	// Wildcards maps the parent of each wildcard to it: "*.app.example.com."
	// is under "app.example.com.", the closest encloser that synthesises.
	Wildcards map[string]*Node
	// HasCuts is true when the zone delegates a subdomain, so answering
	// only looks for delegation points in zones that have them.
	HasCuts bool
	// NegativeTTL is min(SOA TTL, SOA minimum) (RFC 2308), the TTL of the
	// SOA in NXDOMAIN and NODATA answers.
	NegativeTTL uint32
	// DegradedTTL caps steered TTLs while a record fails open.
	DegradedTTL uint32
	// TransferAllow lists the networks allowed to AXFR the zone over TCP.
	TransferAllow []netip.Prefix
	// Notify lists the secondaries sent a NOTIFY when the serial moves.
	Notify []netip.AddrPort
	// StaticDigest hashes every static record, so that the DNS server can
	// tell a changed zone from an unchanged one across reloads.
	StaticDigest uint64
	// Steered lists every steered record of the zone in owner order.
	Steered []*Steered

	soa   mdns.SOA                // template: serial 0, SOA TTL
	cur   atomic.Pointer[soaPair] // the SOA records of the current serial
	index map[string]*Zone        // every zone of the table by Name; shared
}

// soaPair is the zone's SOA at one serial: as answered at the apex, and as
// put in negative answers with the negative TTL.
type soaPair struct {
	serial         uint32
	apex, negative *mdns.SOA
}

// Serial returns the zone's current serial; 0 until the DNS server set one.
func (z *Zone) Serial() uint32 {
	if p := z.cur.Load(); p != nil {
		return p.serial
	}
	return 0
}

// SetSerial publishes a new serial. The DNS server derives it from the
// zone's answer set (see package dns) and calls this when the set changes;
// readers see either the old or the new SOA, never a torn one.
func (z *Zone) SetSerial(serial uint32) {
	if p := z.cur.Load(); p != nil && p.serial == serial {
		return
	}
	apex, neg := z.soa, z.soa
	apex.Serial, neg.Serial = serial, serial
	neg.Hdr.Ttl = z.NegativeTTL
	z.cur.Store(&soaPair{serial: serial, apex: &apex, negative: &neg})
}

// SOA returns the apex SOA record at the current serial. It is shared by
// every response: callers must not modify it.
func (z *Zone) SOA() *mdns.SOA {
	if p := z.cur.Load(); p != nil {
		return p.apex
	}
	s := z.soa
	return &s
}

// NegativeSOA returns the SOA for the authority section of NXDOMAIN and
// NODATA answers: the current serial, with the negative TTL. Shared: callers
// must not modify it.
func (z *Zone) NegativeSOA() *mdns.SOA {
	if p := z.cur.Load(); p != nil {
		return p.negative
	}
	s := z.soa
	s.Hdr.Ttl = z.NegativeTTL
	return &s
}

// Node is one owner name of a zone with everything that lives there.
type Node struct {
	// Name is the owner name, lower case (the literal "*.x." for a wildcard).
	Name string
	// Sets are the static RRsets, sorted by type, each with one TTL. At the
	// apex they include the NS set (the SOA is the zone's, see Zone.SOA).
	Sets []RRSet
	// Steered are the steered records here, at most one per type.
	Steered []*Steered
	// CNAMETarget is the lower-case target when the node holds a CNAME,
	// for following chains without case folding on the answer path.
	CNAMETarget string
	// Cut marks a delegation point: NS records below the apex. Queries at or
	// below it get a referral.
	Cut bool
	// Glue are the in-zone A and AAAA records of a cut's name servers, for
	// the additional section of referrals.
	Glue []mdns.RR
	// Wildcard marks a "*." node.
	Wildcard bool
}

// RRSet is the records of one owner and type.
type RRSet struct {
	Type uint16
	RRs  []mdns.RR
}

// Set returns the static records of type t, or nil.
func (n *Node) Set(t uint16) []mdns.RR {
	for i := range n.Sets {
		if n.Sets[i].Type == t {
			return n.Sets[i].RRs
		}
	}
	return nil
}

// SteeredFor returns the steered record of type t, or nil.
func (n *Node) SteeredFor(t uint16) *Steered {
	for _, s := range n.Steered {
		if s.Type == t {
			return s
		}
	}
	return nil
}

// Empty reports whether the node has no data (an empty non-terminal).
func (n *Node) Empty() bool { return len(n.Sets) == 0 && len(n.Steered) == 0 }

// Steered is a record answered from a service's available endpoints.
type Steered struct {
	// Name is the owner, lower case; Type is A or AAAA.
	Name string
	Type uint16
	// TTL is the record's; DegradedTTL is the TTL while failing open or
	// answering the fallback: min(TTL, the zone's degraded_ttl).
	TTL, DegradedTTL uint32
	// MaxAnswers bounds the addresses in one response.
	MaxAnswers int
	// OnAllDown says what to answer when no endpoint is available in any
	// pool: "fail_open" (every endpoint of the first pool that has some, at
	// the degraded TTL), "nodata" or "fallback".
	OnAllDown string
	// Fallback are the records answered under on_all_down: fallback, owned
	// by Name, at DegradedTTL.
	Fallback []mdns.RR
	// FallbackTarget is the lower-case target when Fallback is a CNAME.
	FallbackTarget string
	// Service is the steering policy and its pools.
	Service *Service
	// Targets holds, per pool of the service, the endpoints of this record's
	// family with their pre-built records. Endpoints whose address is a host
	// name or of the other family are absent, as are pools with none left.
	Targets map[*Pool][]Target

	next atomic.Uint64
}

// Next returns a per-record counter value that DNS uses to rotate the
// addresses it returns; it advances on every call.
func (s *Steered) Next() uint64 { return s.next.Add(1) - 1 }

// Target is one address of a steered record with its answer records.
// Endpoints of a pool that share an address (same host, several ports) are
// one Target, so an answer never repeats an address.
type Target struct {
	IP netip.Addr
	// Endpoints are the pool's endpoints at IP, in pool order.
	Endpoints []*Endpoint
	// Weight is the sum of the endpoints' weights.
	Weight int
	// RR is the record at the record TTL; Degraded at the degraded TTL.
	// Both are owned by Steered.Name and shared: never modify them.
	RR, Degraded mdns.RR
}

// Available reports whether any endpoint at the address may get traffic.
func (t *Target) Available() bool {
	for _, e := range t.Endpoints {
		if e.Available() {
			return true
		}
	}
	return false
}

// Addresses lists the endpoints' addresses, for explanations.
func (t *Target) Addresses() []string {
	out := make([]string, len(t.Endpoints))
	for i, e := range t.Endpoints {
		out[i] = e.Address
	}
	return out
}

// FindZone returns the zone of zones that is authoritative for name (lower
// case, fully qualified): the one with the longest origin that name is at or
// below. It returns nil for names outside every zone. It does not allocate.
func FindZone(zones []*Zone, name string) *Zone {
	if len(zones) == 0 {
		return nil
	}
	idx := zones[0].index
	for off := 0; ; {
		if z := idx[name[off:]]; z != nil {
			return z
		}
		var end bool
		off, end = mdns.NextLabel(name, off)
		if end || off >= len(name) {
			return idx["."]
		}
	}
}

func compileZones(cfg *config.Config, services map[string]*Service) ([]*Zone, error) {
	out := make([]*Zone, 0, len(cfg.Zones))
	index := make(map[string]*Zone, len(cfg.Zones))
	for _, zc := range cfg.Zones {
		z, err := compileZone(zc, services)
		if err != nil {
			return nil, fmt.Errorf("zone %q: %w", zc.Origin, err)
		}
		if _, dup := index[z.Name]; dup {
			return nil, fmt.Errorf("zone %q: defined twice", zc.Origin)
		}
		z.index = index
		index[z.Name] = z
		out = append(out, z)
	}
	return out, nil
}

// zoneBuilder accumulates one zone's records before they are frozen.
type zoneBuilder struct {
	z     *Zone
	nodes map[string]*nodeBuilder
}

type nodeBuilder struct {
	sets    map[uint16][]mdns.RR
	steered []*Steered
}

func compileZone(zc *config.Zone, services map[string]*Service) (*Zone, error) {
	origin := strings.ToLower(mdns.Fqdn(zc.Origin))
	if _, ok := mdns.IsDomainName(origin); !ok {
		return nil, fmt.Errorf("invalid origin")
	}
	z := &Zone{
		Origin:      zc.Origin,
		Config:      zc,
		Name:        origin,
		Nodes:       map[string]*Node{},
		Wildcards:   map[string]*Node{},
		NegativeTTL: min(zc.SOA.TTL, zc.SOA.Minimum),
		DegradedTTL: zc.DegradedTTL,
	}
	z.soa = mdns.SOA{
		Hdr:     mdns.RR_Header{Name: origin, Rrtype: mdns.TypeSOA, Class: mdns.ClassINET, Ttl: zc.SOA.TTL},
		Ns:      strings.ToLower(mdns.Fqdn(zc.SOA.NS)),
		Mbox:    mailbox(zc.SOA.MBox),
		Refresh: seconds(zc.SOA.Refresh),
		Retry:   seconds(zc.SOA.Retry),
		Expire:  seconds(zc.SOA.Expire),
		Minttl:  zc.SOA.Minimum,
	}
	if t := zc.Transfer; t != nil {
		for i, a := range t.Allow {
			p, err := config.ParsePrefix(a)
			if err != nil {
				return nil, fmt.Errorf("transfer.allow[%d]: %w", i, err)
			}
			z.TransferAllow = append(z.TransferAllow, p)
		}
		for i, a := range t.Notify {
			ap, err := netip.ParseAddrPort(a)
			if err != nil {
				return nil, fmt.Errorf("transfer.notify[%d]: %w", i, err)
			}
			z.Notify = append(z.Notify, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()))
		}
	}

	b := &zoneBuilder{z: z, nodes: map[string]*nodeBuilder{}}
	apexTTL := zc.SOA.TTL
	for _, ns := range zc.NS {
		rr := &mdns.NS{Hdr: mdns.RR_Header{Name: origin, Rrtype: mdns.TypeNS, Class: mdns.ClassINET, Ttl: apexTTL}, Ns: strings.ToLower(mdns.Fqdn(ns))}
		b.add(origin, rr)
	}
	for i, r := range zc.Records {
		if err := b.record(r, services); err != nil {
			return nil, fmt.Errorf("records[%d] (%s %s): %w", i, r.Name, r.Type, err)
		}
	}
	if err := b.freeze(); err != nil {
		return nil, err
	}
	return z, nil
}

// mailbox turns an SOA RNAME written as an address (hostmaster@example.com)
// into its domain-name form.
func mailbox(s string) string {
	if local, domain, ok := strings.Cut(s, "@"); ok {
		s = strings.ReplaceAll(local, ".", `\.`) + "." + domain
	}
	return strings.ToLower(mdns.Fqdn(s))
}

func seconds(d config.Duration) uint32 { return uint32(d.D().Seconds()) }

func (b *zoneBuilder) node(owner string) *nodeBuilder {
	n := b.nodes[owner]
	if n == nil {
		n = &nodeBuilder{sets: map[uint16][]mdns.RR{}}
		b.nodes[owner] = n
	}
	return n
}

func (b *zoneBuilder) add(owner string, rr mdns.RR) {
	n := b.node(owner)
	t := rr.Header().Rrtype
	for _, have := range n.sets[t] {
		if mdns.IsDuplicate(have, rr) {
			return
		}
	}
	n.sets[t] = append(n.sets[t], rr)
}

func (b *zoneBuilder) record(r *config.Record, services map[string]*Service) error {
	if r == nil {
		return fmt.Errorf("empty record")
	}
	owner, err := config.RecordOwner(r.Name, b.z.Name)
	if err != nil {
		return err
	}
	typ := strings.ToUpper(r.Type)
	if r.Service != "" {
		return b.steered(owner, typ, r, services)
	}
	rrtype, ok := mdns.StringToType[typ]
	if !ok {
		return fmt.Errorf("unknown type %q", r.Type)
	}
	switch rrtype {
	case mdns.TypeSOA:
		return fmt.Errorf("the SOA is built from soa:, not records")
	case mdns.TypeCNAME:
		if owner == b.z.Name {
			return fmt.Errorf("a CNAME cannot be at the zone apex")
		}
		if len(r.Values) != 1 {
			return fmt.Errorf("a CNAME takes exactly one value")
		}
	}
	for _, v := range r.Values {
		rr, err := config.ParseRR(owner, r.TTL, typ, v)
		if err != nil {
			return err
		}
		lowerTargets(rr)
		b.add(owner, rr)
	}
	return nil
}

// lowerTargets lower-cases the domain names inside rr that answering
// compares (CNAME and NS targets), so chains and glue match without folding.
func lowerTargets(rr mdns.RR) {
	switch v := rr.(type) {
	case *mdns.CNAME:
		v.Target = strings.ToLower(v.Target)
	case *mdns.NS:
		v.Ns = strings.ToLower(v.Ns)
	}
}

func (b *zoneBuilder) steered(owner, typ string, r *config.Record, services map[string]*Service) error {
	svc := services[r.Service]
	if svc == nil {
		return fmt.Errorf("unknown service %q", r.Service)
	}
	var rrtype uint16
	switch typ {
	case "A":
		rrtype = mdns.TypeA
	case "AAAA":
		rrtype = mdns.TypeAAAA
	default:
		return fmt.Errorf("steered records are A or AAAA")
	}
	n := b.node(owner)
	for _, s := range n.steered {
		if s.Type == rrtype {
			return fmt.Errorf("a second steered %s record at %s", typ, owner)
		}
	}
	s := &Steered{
		Name:        owner,
		Type:        rrtype,
		TTL:         r.TTL,
		DegradedTTL: min(r.TTL, b.z.DegradedTTL),
		MaxAnswers:  max(r.MaxAnswers, 1),
		OnAllDown:   cmp.Or(r.OnAllDown, "fail_open"),
		Service:     svc,
		Targets:     map[*Pool][]Target{},
	}
	if s.DegradedTTL == 0 {
		s.DegradedTTL = r.TTL
	}
	if f := r.Fallback; f != nil {
		for _, v := range f.Values {
			rr, err := config.ParseRR(owner, s.DegradedTTL, f.Type, v)
			if err != nil {
				return fmt.Errorf("fallback: %w", err)
			}
			lowerTargets(rr)
			if c, ok := rr.(*mdns.CNAME); ok {
				s.FallbackTarget = c.Target
			}
			s.Fallback = append(s.Fallback, rr)
		}
		if s.FallbackTarget != "" && len(s.Fallback) != 1 {
			return fmt.Errorf("fallback: a CNAME takes exactly one value")
		}
	}
	if s.OnAllDown == "fallback" && len(s.Fallback) == 0 {
		return fmt.Errorf("on_all_down: fallback needs fallback records")
	}
	hdr := mdns.RR_Header{Name: owner, Rrtype: rrtype, Class: mdns.ClassINET}
	for _, p := range svc.Pools {
		var ts []Target
		at := map[netip.Addr]int{}
		for _, e := range p.Endpoints {
			ip := e.IP
			if !ip.IsValid() || ip.Is4() != (rrtype == mdns.TypeA) {
				continue
			}
			if i, dup := at[ip]; dup {
				ts[i].Endpoints = append(ts[i].Endpoints, e)
				ts[i].Weight += e.Weight
				continue
			}
			at[ip] = len(ts)
			ts = append(ts, Target{IP: ip, Endpoints: []*Endpoint{e}, Weight: e.Weight,
				RR: addrRR(hdr, r.TTL, ip), Degraded: addrRR(hdr, s.DegradedTTL, ip)})
		}
		if len(ts) > 0 {
			s.Targets[p] = ts
		}
	}
	n.steered = append(n.steered, s)
	return nil
}

func addrRR(hdr mdns.RR_Header, ttl uint32, ip netip.Addr) mdns.RR {
	hdr.Ttl = ttl
	if ip.Is4() {
		return &mdns.A{Hdr: hdr, A: ip.AsSlice()}
	}
	return &mdns.AAAA{Hdr: hdr, AAAA: ip.AsSlice()}
}

// freeze turns the builder's nodes into the zone's lookup structures: RRsets
// with one TTL, empty non-terminals, wildcards, cuts and glue, and the
// static digest.
func (b *zoneBuilder) freeze() error {
	z := b.z
	b.node(z.Name) // the apex always exists
	owners := make([]string, 0, len(b.nodes))
	for o := range b.nodes {
		owners = append(owners, o)
	}
	slices.SortFunc(owners, compareNames)
	for _, owner := range owners {
		nb := b.nodes[owner]
		n := &Node{Name: owner, Steered: nb.steered, Wildcard: strings.HasPrefix(owner, "*.")}
		types := make([]uint16, 0, len(nb.sets))
		for t := range nb.sets {
			types = append(types, t)
		}
		slices.Sort(types)
		for _, t := range types {
			rrs := nb.sets[t]
			ttl := rrs[0].Header().Ttl
			for _, rr := range rrs {
				ttl = min(ttl, rr.Header().Ttl)
			}
			for _, rr := range rrs {
				rr.Header().Ttl = ttl
			}
			n.Sets = append(n.Sets, RRSet{Type: t, RRs: rrs})
		}
		if c := n.Set(mdns.TypeCNAME); c != nil {
			if len(n.Sets) > 1 || len(n.Steered) > 0 {
				return fmt.Errorf("%s: a CNAME cannot share its name with other records", owner)
			}
			n.CNAMETarget = c[0].(*mdns.CNAME).Target
		}
		for _, s := range n.Steered {
			if n.Set(s.Type) != nil {
				return fmt.Errorf("%s: a steered %s record and static %s records share the name", owner, mdns.TypeToString[s.Type], mdns.TypeToString[s.Type])
			}
		}
		if owner != z.Name && n.Set(mdns.TypeNS) != nil {
			n.Cut = true
			z.HasCuts = true
		}
		z.Nodes[owner] = n
		z.Steered = append(z.Steered, n.Steered...)
	}
	// Empty non-terminals: every ancestor of an owner, up to the apex.
	for _, owner := range owners {
		for name := parent(owner); name != "" && name != z.Name && mdns.IsSubDomain(z.Name, name); name = parent(name) {
			if _, ok := z.Nodes[name]; !ok {
				z.Nodes[name] = &Node{Name: name}
			}
		}
	}
	for _, owner := range owners {
		if n := z.Nodes[owner]; n.Wildcard {
			z.Wildcards[parent(owner)] = n
		}
	}
	// Glue: the in-zone addresses of each cut's name servers.
	for _, owner := range owners {
		n := z.Nodes[owner]
		if !n.Cut {
			continue
		}
		for _, rr := range n.Set(mdns.TypeNS) {
			target := rr.(*mdns.NS).Ns
			if t := z.Nodes[target]; t != nil {
				n.Glue = append(n.Glue, t.Set(mdns.TypeA)...)
				n.Glue = append(n.Glue, t.Set(mdns.TypeAAAA)...)
			}
		}
	}
	h := fnv.New64a()
	fmt.Fprintf(h, "%s\n", z.soa.String())
	for _, owner := range owners {
		n := z.Nodes[owner]
		for _, set := range n.Sets {
			for _, rr := range set.RRs {
				fmt.Fprintf(h, "%s\n", rr.String())
			}
		}
		for _, s := range n.Steered {
			s.dump(h)
		}
	}
	z.StaticDigest = h.Sum64()
	return nil
}

// parent returns the name one label up, or "" for the root.
func parent(name string) string {
	off, end := mdns.NextLabel(name, 0)
	if end || off >= len(name) {
		return ""
	}
	return name[off:]
}

// compareNames orders owner names canonically (RFC 4034 §6.1, on lower-case
// names): by their labels from the right.
func compareNames(a, b string) int {
	la, lb := mdns.SplitDomainName(a), mdns.SplitDomainName(b)
	for i, j := len(la)-1, len(lb)-1; i >= 0 && j >= 0; i, j = i-1, j-1 {
		if c := strings.Compare(la[i], lb[j]); c != 0 {
			return c
		}
	}
	return len(la) - len(lb)
}

func (s *Steered) dump(w io.Writer) {
	pools := make([]string, 0, len(s.Service.Pools))
	for _, p := range s.Service.Pools {
		addrs := make([]string, 0, len(s.Targets[p]))
		for _, t := range s.Targets[p] {
			addrs = append(addrs, strings.Join(t.Addresses(), "+"))
		}
		pools = append(pools, fmt.Sprintf("%s[%s]", p.Name, strings.Join(addrs, " ")))
	}
	fmt.Fprintf(w, "  steered %s %s service=%s ttl=%d degraded_ttl=%d max_answers=%d on_all_down=%s pools=%s\n",
		s.Name, mdns.TypeToString[s.Type], s.Service.Name, s.TTL, s.DegradedTTL, s.MaxAnswers, s.OnAllDown, strings.Join(pools, ","))
	for _, rr := range s.Fallback {
		fmt.Fprintf(w, "    fallback %s\n", rrText(rr))
	}
}

// rrText is an RR's zone-file text with tabs turned into spaces, for dumps.
func rrText(rr mdns.RR) string { return strings.ReplaceAll(rr.String(), "\t", " ") }

func (z *Zone) dump(b *strings.Builder) {
	fmt.Fprintf(b, "zone %s negative_ttl=%d degraded_ttl=%d\n", z.Name, z.NegativeTTL, z.DegradedTTL)
	fmt.Fprintf(b, "  soa %s\n", rrText(&z.soa))
	for _, p := range z.TransferAllow {
		fmt.Fprintf(b, "  transfer allow %s\n", p)
	}
	for _, a := range z.Notify {
		fmt.Fprintf(b, "  transfer notify %s\n", a)
	}
	names := make([]string, 0, len(z.Nodes))
	for name := range z.Nodes {
		names = append(names, name)
	}
	slices.SortFunc(names, compareNames)
	for _, name := range names {
		n := z.Nodes[name]
		switch {
		case n.Cut:
			fmt.Fprintf(b, "  cut %s\n", name)
		case n.Wildcard:
			fmt.Fprintf(b, "  wildcard %s\n", name)
		case n.Empty():
			fmt.Fprintf(b, "  empty %s\n", name)
		}
		for _, set := range n.Sets {
			for _, rr := range set.RRs {
				fmt.Fprintf(b, "  rr %s\n", rrText(rr))
			}
		}
		for _, s := range n.Steered {
			s.dump(b)
		}
		for _, rr := range n.Glue {
			fmt.Fprintf(b, "    glue %s\n", rrText(rr))
		}
	}
}
