package zone

import (
	"errors"
	"fmt"
	"hash/fnv"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/meridian-lb/meridian/config"
	"github.com/meridian-lb/meridian/dns/dnssec"
)

// Services tells the zone compiler about the services steered records
// name. routing.Compile passes its compiled services, so that each target
// reads the live health of its endpoints; Check passes the config's.
type Services interface {
	// Pools returns the pools of the named service in configured order;
	// ok is false when there is no such service.
	Pools(service string) (pools []Pool, ok bool)
}

// Pool is one pool of a steered record's service.
type Pool struct {
	Name      string
	Endpoints []Endpoint
}

// Endpoint is one endpoint of such a pool.
type Endpoint struct {
	// Address is host:port, for explanations.
	Address string
	// IP is the host when it is an address; a host name gets no record.
	IP     netip.Addr
	Weight int
	// State is the endpoint's live state, read on every answer; nil means
	// always available. routing's *Endpoint implements it.
	State State
}

// State is an endpoint's live state as answering reads it.
type State interface {
	// Available reports whether the endpoint may get traffic now.
	Available() bool
	// Excluded reports whether an operator drained it or forced it down,
	// which even a fail-open answer respects.
	Excluded() bool
}

// Available reports whether the endpoint may get traffic now.
func (e Endpoint) Available() bool { return e.State == nil || e.State.Available() }

// Excluded reports whether an operator drained the endpoint or forced it
// down.
func (e Endpoint) Excluded() bool { return e.State != nil && e.State.Excluded() }

// staticTypes are the record types a zone may hold as static records. A
// DS is only allowed at a delegation point: the child's key, which the
// parent serves and signs.
var staticTypes = []string{"A", "AAAA", "CNAME", "MX", "TXT", "SRV", "CAA", "NS", "PTR", "DS"}

// Compile builds every zone of cfg, resolving steered records with
// services. It reports every problem it finds, each by its config path
// (zones[0].records[2].values[1]) for config.Config.Locate; zones is nil
// when there is any. Compile reads cfg.Zones only and never changes it,
// and it copes with a config whose other rules failed (Check runs it on
// such).
//
// A zone with a dnssec: block gets its keys from its key_dir (see
// dnssec.Load): when the directory holds none for the zone, Compile
// generates a signing key there, the one thing it writes. A key file that
// cannot be read or used is a problem at zones[i].dnssec.key_dir, so the
// last good table, with its keys, keeps serving.
func Compile(cfg *config.Config, services Services) (zones []*Zone, problems []config.Problem) {
	return compileZones(cfg, services, true)
}

// Options tune CompileWith.
type Options struct {
	// NoKeyGeneration compiles a signed zone whose key_dir holds no key
	// for it without generating one (and unsigned): for callers that
	// compile a config without serving it (meridian validate, meridian
	// diff), which should write nothing.
	NoKeyGeneration bool
}

// CompileWith is Compile with options.
func CompileWith(cfg *config.Config, services Services, opts Options) (zones []*Zone, problems []config.Problem) {
	return compileZones(cfg, services, !opts.NoKeyGeneration)
}

func compileZones(cfg *config.Config, services Services, generate bool) (zones []*Zone, problems []config.Problem) {
	c := &compiler{services: services, pools: map[string][]Pool{}, generate: generate, now: time.Now()}
	out := make([]*Zone, 0, len(cfg.Zones))
	index := make(map[string]*Zone, len(cfg.Zones))
	at := map[string]int{} // zone name → its index in cfg.Zones
	for i, zc := range cfg.Zones {
		p := "zones[" + strconv.Itoa(i) + "]"
		if zc == nil {
			c.add(p, "empty zone")
			continue
		}
		z := c.zone(p, zc)
		if z == nil {
			continue
		}
		if j, dup := at[z.Name]; dup {
			c.add(p+".origin", "duplicate zone %q (also zones[%d])", zc.Origin, j)
			continue
		}
		at[z.Name] = i
		z.index = index
		index[z.Name] = z
		out = append(out, z)
	}
	if len(c.probs) > 0 {
		return nil, c.probs
	}
	return out, nil
}

// Check compiles cfg's zones for their problems only, resolving steered
// records against the services cfg defines. config.Parse takes it as an
// extra check (meridian validate does), so the zone problems of a file are
// listed with the rest even when its other rules fail and it never gets to
// routing.Compile.
//
// Check writes nothing: a signed zone whose key_dir holds no key yet is no
// problem (serving generates one), and its keys are read and checked
// when there are some.
func Check(cfg *config.Config) error {
	_, probs := compileZones(cfg, configServices(cfg.Services), false)
	errs := make([]error, len(probs))
	for i, p := range probs {
		errs[i] = p
	}
	return errors.Join(errs...)
}

// configServices resolves steered records against the config's services:
// pools by name, without endpoints, which is all problems depend on.
type configServices map[string]*config.Service

func (cs configServices) Pools(name string) ([]Pool, bool) {
	s, ok := cs[name]
	if !ok || s == nil {
		return nil, ok
	}
	out := make([]Pool, len(s.Pools))
	for i, p := range s.Pools {
		out[i] = Pool{Name: p}
	}
	return out, true
}

// compiler collects the problems of one Compile call.
type compiler struct {
	services Services
	pools    map[string][]Pool // by service, as services returned them
	probs    []config.Problem
	generate bool      // generate the keys of a signed zone that has none
	now      time.Time // for the timestamps of generated keys
}

func (c *compiler) add(path, format string, args ...any) {
	c.probs = append(c.probs, config.Problem{Path: path, Msg: fmt.Sprintf(format, args...)})
}

// zoneBuilder accumulates one zone's records before they are frozen, and
// what each owner name holds so far, to report conflicts at the record
// that causes them.
type zoneBuilder struct {
	c     *compiler
	z     *Zone
	nodes map[string]*nodeBuilder
}

type nodeBuilder struct {
	sets    map[uint16][]mdns.RR
	steered []*Steered
	// first records the first record of each kind at this name, by its
	// path, for messages: "CNAME", "other" (anything but a CNAME) and
	// "static A"/"steered A" and so on.
	first map[string]string
}

// zone compiles one zone at path p; nil when its origin is unusable (its
// records cannot be placed) or it has problems.
func (c *compiler) zone(p string, zc *config.Zone) *Zone {
	origin := strings.ToLower(mdns.Fqdn(zc.Origin))
	if _, ok := mdns.IsDomainName(zc.Origin); !ok {
		c.add(p+".origin", "invalid zone name %q", zc.Origin)
		return nil
	}
	before := len(c.probs)
	z := &Zone{
		Origin:      zc.Origin,
		Config:      zc,
		Name:        origin,
		Nodes:       map[string]*Node{},
		Wildcards:   map[string]*Node{},
		NegativeTTL: min(zc.SOA.TTL, zc.SOA.Minimum),
		DegradedTTL: zc.DegradedTTL,
	}
	if zc.SOA.NS == "" {
		c.add(p+".soa.ns", "missing primary name server")
	}
	if zc.SOA.MBox == "" {
		c.add(p+".soa.mbox", "missing hostmaster mailbox")
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
			pr, err := config.ParsePrefix(a)
			if err != nil {
				c.add(fmt.Sprintf("%s.transfer.allow[%d]", p, i), "invalid CIDR %q", a)
				continue
			}
			z.TransferAllow = append(z.TransferAllow, pr)
		}
		for i, a := range t.Notify {
			ap, err := netip.ParseAddrPort(a)
			if err != nil {
				c.add(fmt.Sprintf("%s.transfer.notify[%d]", p, i), "want ip:port, not %q", a)
				continue
			}
			z.Notify = append(z.Notify, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()))
		}
	}

	b := &zoneBuilder{c: c, z: z, nodes: map[string]*nodeBuilder{}}
	if len(zc.NS) == 0 {
		c.add(p+".ns", "at least one NS is needed")
	}
	for i, ns := range zc.NS {
		if !isName(ns) {
			c.add(fmt.Sprintf("%s.ns[%d]", p, i), "invalid name %q", ns)
			continue
		}
		rr := &mdns.NS{Hdr: mdns.RR_Header{Name: origin, Rrtype: mdns.TypeNS, Class: mdns.ClassINET, Ttl: zc.SOA.TTL}, Ns: strings.ToLower(mdns.Fqdn(ns))}
		b.add(origin, rr)
		b.node(origin).claim("other", fmt.Sprintf("%s.ns[%d]", p, i))
	}
	for i, r := range zc.Records {
		b.record(fmt.Sprintf("%s.records[%d]", p, i), r)
	}
	b.checkDS()
	if zc.DNSSEC != nil {
		b.keys(p+".dnssec", zc.DNSSEC)
	}
	if len(c.probs) > before {
		return nil
	}
	b.freeze()
	return z
}

// checkDS reports a DS record anywhere but at a delegation point (RFC
// 4034 §5: the parent side of a cut holds it).
func (b *zoneBuilder) checkDS() {
	for owner, n := range b.nodes {
		path, ok := n.first["static DS"]
		if !ok {
			continue
		}
		switch {
		case owner == b.z.Name:
			b.c.add(path, "a DS record at the zone apex belongs in the parent zone")
		case len(n.sets[mdns.TypeNS]) == 0:
			b.c.add(path, "a DS record at %s, which is not a delegation (no NS records there)", owner)
		}
	}
}

// keys reads (or, when serving, generates) the zone's keys and publishes
// their DNSKEY, CDS and CDNSKEY RRsets at the apex, at the SOA TTL.
func (b *zoneBuilder) keys(p string, d *config.DNSSEC) {
	c := b.c
	alg, err := dnssec.ParseAlgorithm(d.Algorithm)
	if err != nil {
		c.add(p+".algorithm", "%v", err)
	}
	if d.KeyDir == "" {
		c.add(p+".key_dir", "a signed zone needs a key_dir (its keys are read from it, or generated there)")
	}
	if err != nil || d.KeyDir == "" {
		return
	}
	ks, probs := dnssec.Load(d.KeyDir, b.z.Name, alg, c.generate, c.now)
	for _, e := range probs {
		c.add(p+".key_dir", "%s: %v", d.KeyDir, e)
	}
	if ks == nil || len(ks.Keys) == 0 {
		return // problems, or meridian validate before the first key
	}
	b.z.Keys = ks
	ttl := b.z.soa.Hdr.Ttl
	for _, set := range [][]mdns.RR{ks.DNSKEYs(ttl), ks.CDS(ttl), ks.CDNSKEY(ttl)} {
		for _, rr := range set {
			b.add(b.z.Name, rr)
		}
	}
}

// isName reports whether s is a domain name miekg/dns can carry.
func isName(s string) bool {
	_, ok := mdns.IsDomainName(s)
	return ok && s != ""
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
		n = &nodeBuilder{sets: map[uint16][]mdns.RR{}, first: map[string]string{}}
		b.nodes[owner] = n
	}
	return n
}

// claim notes that the record at path is of kind at this name, unless one
// was before; it returns the path of the first.
func (n *nodeBuilder) claim(kind, path string) string {
	if first, ok := n.first[kind]; ok {
		return first
	}
	n.first[kind] = path
	return path
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

// record compiles the record at path rp, reporting what is wrong with it.
func (b *zoneBuilder) record(rp string, r *config.Record) {
	c := b.c
	if r == nil {
		c.add(rp, "empty record")
		return
	}
	owner, err := Owner(r.Name, b.z.Name)
	if err != nil {
		c.add(rp+".name", "%v", err)
		return
	}
	typ := strings.ToUpper(r.Type)
	if typ == "CNAME" && r.Service == "" && owner == b.z.Name {
		c.add(rp+".name", "a CNAME cannot be at the zone apex")
		return
	}
	n := b.node(owner)
	// A CNAME owns its name alone (RFC 1034 §3.6.2), and is one record
	// (RFC 2181 §10.1).
	if typ == "CNAME" && r.Service == "" {
		if other := n.first["other"]; other != "" {
			c.add(rp, "CNAME at %s, which has other records (%s)", owner, other)
			return
		}
		if first := n.claim("CNAME", rp); first != rp {
			c.add(rp, "a second CNAME at %s (%s)", owner, first)
			return
		}
	} else {
		if cname := n.first["CNAME"]; cname != "" {
			c.add(rp, "%s record at %s, which has a CNAME (%s)", typ, owner, cname)
			return
		}
		n.claim("other", rp)
	}
	if r.Service != "" {
		b.steered(rp, owner, typ, r)
		return
	}
	if !slices.Contains(staticTypes, typ) {
		c.add(rp+".type", "unsupported type %q: want one of %s", r.Type, strings.Join(staticTypes, " "))
		return
	}
	if len(r.Values) == 0 {
		c.add(rp+".values", "a static record needs values (or a service to steer)")
		return
	}
	if typ == "CNAME" && len(r.Values) != 1 {
		c.add(rp+".values", "a CNAME takes exactly one value")
		return
	}
	if steered := n.first["steered "+typ]; steered != "" {
		c.add(rp, "static %s records at %s, which has a steered %s record (%s)", typ, owner, typ, steered)
		return
	}
	n.claim("static "+typ, rp)
	for i, v := range r.Values {
		rr, err := ParseRR(owner, r.TTL, typ, v)
		if err != nil {
			c.add(fmt.Sprintf("%s.values[%d]", rp, i), "%v", err)
			continue
		}
		lowerTargets(rr)
		b.add(owner, rr)
	}
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

// steered compiles the steered record at rp.
func (b *zoneBuilder) steered(rp, owner, typ string, r *config.Record) {
	c := b.c
	var rrtype uint16
	switch typ {
	case "A":
		rrtype = mdns.TypeA
	case "AAAA":
		rrtype = mdns.TypeAAAA
	default:
		c.add(rp+".type", "steered records are A or AAAA, not %q", r.Type)
		return
	}
	before := len(c.probs)
	if len(r.Values) > 0 {
		c.add(rp+".values", "a steered record takes service or values, not both")
	}
	pools, ok := c.servicePools(r.Service)
	if !ok {
		c.add(rp+".service", "unknown service %q", r.Service)
	}
	if r.MaxAnswers < 1 {
		c.add(rp+".max_answers", "must be at least 1")
	}
	n := b.node(owner)
	if first := n.claim("steered "+typ, rp); first != rp {
		c.add(rp, "a second steered %s record at %s (%s): one name answers one service per type", typ, owner, first)
	} else if static := n.first["static "+typ]; static != "" {
		c.add(rp, "a steered %s record at %s, which has static %s records (%s)", typ, owner, typ, static)
	}
	s := &Steered{
		Name:        owner,
		Type:        rrtype,
		TTL:         r.TTL,
		DegradedTTL: min(r.TTL, b.z.DegradedTTL),
		MaxAnswers:  r.MaxAnswers,
		OnAllDown:   r.OnAllDown,
		Service:     r.Service,
		Targets:     map[string][]Target{},
	}
	if s.OnAllDown == "" {
		s.OnAllDown = config.RecordFailOpen
	}
	if s.DegradedTTL == 0 {
		s.DegradedTTL = r.TTL
	}
	if f := r.Fallback; f != nil {
		fp := rp + ".fallback"
		for i, v := range f.Values {
			rr, err := ParseRR(owner, s.DegradedTTL, f.Type, v)
			if err != nil {
				c.add(fmt.Sprintf("%s.values[%d]", fp, i), "%v", err)
				continue
			}
			lowerTargets(rr)
			if cn, ok := rr.(*mdns.CNAME); ok {
				s.FallbackTarget = cn.Target
			}
			s.Fallback = append(s.Fallback, rr)
		}
		if s.FallbackTarget != "" && len(f.Values) != 1 {
			c.add(fp+".values", "a CNAME takes exactly one value")
		}
	}
	if s.OnAllDown == config.RecordFallback && (r.Fallback == nil || len(r.Fallback.Values) == 0) {
		c.add(rp+".fallback", "on_all_down: fallback needs a fallback record")
	}
	if len(c.probs) > before {
		return
	}
	hdr := mdns.RR_Header{Name: owner, Rrtype: rrtype, Class: mdns.ClassINET}
	for _, p := range pools {
		s.Pools = append(s.Pools, p.Name)
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
			ts = append(ts, Target{IP: ip, Endpoints: []Endpoint{e}, Weight: e.Weight,
				RR: addrRR(hdr, r.TTL, ip), Degraded: addrRR(hdr, s.DegradedTTL, ip)})
		}
		if len(ts) > 0 {
			s.Targets[p.Name] = ts
		}
	}
	n.steered = append(n.steered, s)
}

// servicePools asks Services once per service.
func (c *compiler) servicePools(name string) ([]Pool, bool) {
	if ps, ok := c.pools[name]; ok {
		return ps, true
	}
	if name == "" {
		return nil, false
	}
	ps, ok := c.services.Pools(name)
	if ok {
		c.pools[name] = ps
	}
	return ps, ok
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
// static digest. The records were checked as they were added, so nothing
// here can fail.
func (b *zoneBuilder) freeze() {
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
			n.CNAMETarget = c[0].(*mdns.CNAME).Target
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
	b.additional(owners)
	if z.Keys != nil {
		b.signing()
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
}

// additional links each NS (at the apex), MX and SRV set to the static
// A and AAAA sets of its targets that the zone answers authoritatively.
func (b *zoneBuilder) additional(owners []string) {
	z := b.z
	for _, owner := range owners {
		n := z.Nodes[owner]
		if n.Cut || b.underCut(owner) {
			continue
		}
		for i := range n.Sets {
			set := &n.Sets[i]
			var seen []*Node
			for _, rr := range set.RRs {
				var target string
				switch v := rr.(type) {
				case *mdns.NS:
					target = v.Ns
				case *mdns.MX:
					target = v.Mx
				case *mdns.SRV:
					target = v.Target
				default:
					continue
				}
				t := z.Nodes[strings.ToLower(target)]
				if t == nil || t.Wildcard || t.Cut || b.underCut(t.Name) || slices.Contains(seen, t) {
					continue
				}
				seen = append(seen, t)
				for _, typ := range []uint16{mdns.TypeA, mdns.TypeAAAA} {
					if s := t.SetOf(typ); s != nil {
						set.Additional = append(set.Additional, s)
					}
				}
			}
		}
	}
}

// underCut reports whether name lies below a delegation point of the zone
// (glue, and names the zone is not authoritative for).
func (b *zoneBuilder) underCut(name string) bool {
	for p := parent(name); p != "" && p != b.z.Name && mdns.IsSubDomain(b.z.Name, p); p = parent(p) {
		if n := b.z.Nodes[p]; n != nil && n.Cut {
			return true
		}
	}
	return false
}

// signing prepares a signed zone for answering: each RRset's content key,
// each name's types, the steered fallbacks' keys and the names in
// canonical order.
func (b *zoneBuilder) signing() {
	z := b.z
	for name, n := range z.Nodes {
		var types []uint16
		for i := range n.Sets {
			set := &n.Sets[i]
			set.Key = dnssec.ContentKey(name, set.RRs)
			types = append(types, set.Type)
		}
		for _, s := range n.Steered {
			types = append(types, s.Type)
			if len(s.Fallback) > 0 {
				s.FallbackKey = dnssec.ContentKey(name, s.Fallback)
			}
		}
		if name == z.Name {
			types = append(types, mdns.TypeSOA)
		}
		if n.Cut {
			// The parent side of a delegation has its NS and DS sets;
			// anything else there is the child's (occluded).
			types = slices.DeleteFunc(types, func(t uint16) bool { return t != mdns.TypeNS && t != mdns.TypeDS })
		}
		slices.Sort(types)
		n.Types = slices.Compact(types)
		z.Names = append(z.Names, name)
	}
	slices.SortFunc(z.Names, dnssec.Compare)
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

// Owner turns a record name relative to origin ("www", "@", "*.app") or a
// fully qualified one into a lower-case owner name, or says why the name
// is not inside the zone.
func Owner(name, origin string) (string, error) {
	origin = strings.ToLower(mdns.Fqdn(origin))
	var owner string
	switch {
	case name == "" || name == "@":
		owner = origin
	case strings.HasSuffix(name, "."):
		owner = strings.ToLower(name)
	default:
		owner = strings.ToLower(name) + "." + origin
	}
	if _, ok := mdns.IsDomainName(owner); !ok {
		return "", fmt.Errorf("invalid name %q", name)
	}
	if !mdns.IsSubDomain(origin, owner) {
		return "", fmt.Errorf("name %q is outside the zone %s", name, origin)
	}
	if strings.Contains(strings.TrimPrefix(owner, "*."), "*") {
		return "", fmt.Errorf("a wildcard is only allowed as the leftmost label: %q", name)
	}
	return owner, nil
}

// ParseRR parses one record from its zone-file text, with a message that
// names the type and the value.
func ParseRR(owner string, ttl uint32, typ, value string) (mdns.RR, error) {
	typ = strings.ToUpper(typ)
	if typ == "TXT" && !strings.HasPrefix(value, `"`) {
		value = strconv.Quote(value)
	}
	rr, err := mdns.NewRR(fmt.Sprintf("%s %d IN %s %s", owner, ttl, typ, value))
	if err != nil || rr == nil {
		return nil, fmt.Errorf("invalid %s value %q", typ, value)
	}
	return rr, nil
}
