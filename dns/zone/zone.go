package zone

import (
	"net/netip"
	"sync/atomic"

	mdns "github.com/miekg/dns"

	"github.com/meridian-lb/meridian/config"
	"github.com/meridian-lb/meridian/dns/dnssec"
)

// Zone is a compiled DNS zone. Everything is read-only after Compile except
// the serial, which the DNS server moves (atomically) when the zone's
// answers change.
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
	// Keys sign the zone's answers online (package dnssec); nil when the
	// zone has no dnssec: block. Their DNSKEY, CDS and CDNSKEY RRsets are
	// static sets at the apex, at the SOA TTL.
	Keys *dnssec.KeySet
	// Names lists every owner name in canonical order (RFC 4034 §6.1):
	// the NSEC chain of a signed zone's transfer, and the neighbours a
	// wildcard's proof must not cover. Nil when the zone is not signed.
	Names []string

	soa   mdns.SOA                // template: serial 0, SOA TTL
	cur   atomic.Pointer[soaPair] // the SOA records of the current serial
	index map[string]*Zone        // every zone of the set by Name; shared
}

// soaPair is the zone's SOA at one serial: as answered at the apex, and as
// put in negative answers with the negative TTL.
type soaPair struct {
	serial         uint32
	apex, negative *mdns.SOA
	// apexKey and negativeKey are their dnssec.ContentKeys (signed zones).
	apexKey, negativeKey []byte
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
	p := &soaPair{serial: serial, apex: &apex, negative: &neg}
	if z.Keys != nil {
		p.apexKey = dnssec.ContentKey(z.Name, []mdns.RR{&apex})
		p.negativeKey = dnssec.ContentKey(z.Name, []mdns.RR{&neg})
	}
	z.cur.Store(p)
}

// SOAKey returns the dnssec.ContentKey of SOA(), for the signature cache;
// nil when the zone is not signed (or has no serial yet: signing then
// builds the key from the record).
func (z *Zone) SOAKey() []byte {
	if p := z.cur.Load(); p != nil {
		return p.apexKey
	}
	return nil
}

// NegativeSOAKey returns the dnssec.ContentKey of NegativeSOA(), as SOAKey.
func (z *Zone) NegativeSOAKey() []byte {
	if p := z.cur.Load(); p != nil {
		return p.negativeKey
	}
	return nil
}

// Signed reports whether the zone's answers are signed.
func (z *Zone) Signed() bool { return z.Keys != nil }

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
	// Types are the types the name has, sorted: its static sets, its
	// steered records (whether or not they have an answer now) and, at the
	// apex, the SOA. A signed zone's NSEC bitmaps are made from them; nil
	// when the zone is not signed.
	Types []uint16
}

// RRSet is the records of one owner and type.
type RRSet struct {
	Type uint16
	RRs  []mdns.RR
	// Key is the set's dnssec.ContentKey, what its signatures are cached
	// by; nil when the zone is not signed.
	Key []byte
	// Additional are the in-zone A and AAAA sets of the names an NS, MX or
	// SRV set points to, for the additional section (RFC 1034 §4.3.2 step
	// 6): static records of names the zone is authoritative for, not at or
	// below a delegation, and not synthesised by a wildcard.
	Additional []*RRSet
}

// Set returns the static records of type t, or nil.
func (n *Node) Set(t uint16) []mdns.RR {
	if s := n.SetOf(t); s != nil {
		return s.RRs
	}
	return nil
}

// SetOf returns the static RRset of type t, or nil.
func (n *Node) SetOf(t uint16) *RRSet {
	for i := range n.Sets {
		if n.Sets[i].Type == t {
			return &n.Sets[i]
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
	// pool: fail_open (every endpoint of the first pool that has some, at
	// the degraded TTL), nodata or fallback.
	OnAllDown config.RecordOnAllDown
	// Fallback are the records answered under on_all_down: fallback, owned
	// by Name, at DegradedTTL.
	Fallback []mdns.RR
	// FallbackTarget is the lower-case target when Fallback is a CNAME.
	FallbackTarget string
	// FallbackKey is Fallback's dnssec.ContentKey (signed zones only).
	FallbackKey []byte
	// Service names the service whose policy orders the pools; the table
	// that holds the zone has it under this name.
	Service string
	// Pools are the names of the service's pools in configured order.
	Pools []string
	// Targets holds, by pool name, the pool's endpoints of this record's
	// family with their pre-built records. Endpoints whose address is a
	// host name or of the other family are absent, as are pools with none
	// left.
	Targets map[string][]Target

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
	Endpoints []Endpoint
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

// Excluded reports whether an operator drained or forced down every
// endpoint at the address, so a fail-open answer leaves it out too.
func (t *Target) Excluded() bool {
	for _, e := range t.Endpoints {
		if !e.Excluded() {
			return false
		}
	}
	return true
}

// Addresses lists the endpoints' addresses, for explanations.
func (t *Target) Addresses() []string {
	out := make([]string, len(t.Endpoints))
	for i, e := range t.Endpoints {
		out[i] = e.Address
	}
	return out
}

// Find returns the zone of zones that is authoritative for name (lower
// case, fully qualified): the one with the longest origin that name is at or
// below. It returns nil for names outside every zone. It does not allocate.
func Find(zones []*Zone, name string) *Zone {
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
