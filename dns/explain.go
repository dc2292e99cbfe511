package dns

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"

	mdns "github.com/miekg/dns"

	"github.com/meridian-lb/meridian/dns/zone"
	"github.com/meridian-lb/meridian/geo"
	"github.com/meridian-lb/meridian/routing"
)

// ExplainResult is the answer Meridian would give one query, and why: where
// the client was placed and from what, which pools the policy tried in which
// order, and which endpoints were skipped as unavailable. The admin API
// returns it as JSON so an operator can see why a client gets an address
// without capturing packets.
type ExplainResult struct {
	QName         string `json:"qname"`
	QType         string `json:"qtype"`
	Client        string `json:"client"`
	ECS           string `json:"ecs,omitempty"`
	Zone          string `json:"zone,omitempty"`
	Serial        uint32 `json:"serial,omitempty"`
	Rcode         string `json:"rcode"`
	Authoritative bool   `json:"authoritative"`
	// Location is set when a steered record needed the client's region.
	Location *ExplainLocation `json:"location,omitempty"`
	// Scope is the ECS scope prefix the response carries (only with ECS).
	Scope      *int              `json:"ecs_scope,omitempty"`
	Answer     []string          `json:"answer"`
	Authority  []string          `json:"authority,omitempty"`
	Additional []string          `json:"additional,omitempty"`
	Steered    []*ExplainSteered `json:"steered,omitempty"`
	Notes      []string          `json:"notes,omitempty"`
}

// ExplainLocation says where the client was placed and what decided it.
type ExplainLocation struct {
	Address   string `json:"address"` // the address looked up
	From      string `json:"from"`    // "ecs" or "client" (the source address)
	Region    string `json:"region"`
	Source    string `json:"source"` // nets, mmdb or default
	Prefix    int    `json:"prefix"` // bits that decided the region
	Country   string `json:"country,omitempty"`
	Continent string `json:"continent,omitempty"`
}

// ExplainSteered is one steered record met while answering.
type ExplainSteered struct {
	Name    string `json:"name"`
	Type    string `json:"type"`
	Service string `json:"service"`
	Policy  string `json:"policy"`
	// Region is the region the pools were ordered for ("" when the policy
	// does not depend on location).
	Region string `json:"region,omitempty"`
	// Pools are in the order the policy tried them.
	Pools   []ExplainPool `json:"pools"`
	Outcome string        `json:"outcome"`
	TTL     uint32        `json:"ttl,omitempty"`
}

// ExplainPool is one pool of a steered record, as seen by this query.
type ExplainPool struct {
	Name     string `json:"name"`
	Region   string `json:"region,omitempty"`
	FailOpen bool   `json:"fail_open"`
	// Available are the endpoints of the record's family that could be
	// answered; Unavailable were skipped as unhealthy, drained or ejected.
	Available   []string `json:"available"`
	Unavailable []string `json:"unavailable"`
	Used        bool     `json:"used"`
}

func (p *ExplainPool) fill(ts []zone.Target) {
	p.Available, p.Unavailable = []string{}, []string{}
	for i := range ts {
		for _, e := range ts[i].Endpoints {
			if e.Available() {
				p.Available = append(p.Available, e.Address)
			} else {
				p.Unavailable = append(p.Unavailable, e.Address)
			}
		}
	}
}

// trace collects the reasons behind one answer; nil on the serving path.
type trace struct {
	notes   []string
	ecs     ecsInfo
	located bool
	loc     geo.Result
	from    string
	addr    netip.Addr
	steers  []*ExplainSteered
}

func (tr *trace) note(format string, args ...any) {
	tr.notes = append(tr.notes, fmt.Sprintf(format, args...))
}

func (tr *trace) steered(s *zone.Steered, svc *routing.Service, region string, pools []*routing.Pool) *ExplainSteered {
	ex := &ExplainSteered{
		Name:    s.Name,
		Type:    mdns.TypeToString[s.Type],
		Service: svc.Name,
		Policy:  string(svc.Policy),
		Region:  region,
	}
	for _, p := range pools {
		ep := ExplainPool{Name: p.Name, Region: p.Region, FailOpen: p.FailOpen}
		ep.fill(s.Targets[p.Name])
		ex.Pools = append(ex.Pools, ep)
	}
	tr.steers = append(tr.steers, ex)
	return ex
}

// Explain computes the answer t gives a query for qname and qtype from
// src (the client's source address; invalid means unknown, the default region),
// with ecs as its EDNS Client Subnet when valid, and says why. Like a real
// query it advances rotation and weighted schedules.
func Explain(t *routing.Table, qname string, qtype uint16, src netip.Addr, ecs netip.Prefix) ExplainResult {
	req := new(mdns.Msg)
	req.SetQuestion(mdns.Fqdn(qname), qtype)
	res := ExplainResult{QName: req.Question[0].Name, QType: typeString(qtype), Client: src.String(), Answer: []string{}}
	if ecs.IsValid() {
		ecs = ecs.Masked()
		res.ECS = ecs.String()
		opt := &mdns.OPT{Hdr: mdns.RR_Header{Name: ".", Rrtype: mdns.TypeOPT}}
		opt.SetUDPSize(mdns.DefaultMsgSize)
		sub := &mdns.EDNS0_SUBNET{Code: mdns.EDNS0SUBNET, SourceNetmask: uint8(ecs.Bits()), Address: net.IP(ecs.Addr().AsSlice())}
		sub.Family = 2
		if ecs.Addr().Is4() {
			sub.Family = 1
		}
		opt.Option = append(opt.Option, sub)
		req.Extra = append(req.Extra, opt)
	}
	tr := &trace{}
	out := answer(t, req, client{addr: src.Unmap(), tcp: true, tr: tr})
	if out.zone != nil {
		res.Zone, res.Serial = out.zone.Name, out.zone.Serial()
	}
	if out.xfr {
		tr.note("zone transfer permitted over TCP: the zone would be streamed")
	}
	if m := out.msg; m != nil {
		res.Rcode = mdns.RcodeToString[m.Rcode]
		res.Authoritative = m.Authoritative
		for _, rr := range m.Answer {
			res.Answer = append(res.Answer, rrLine(rr))
		}
		for _, rr := range m.Ns {
			res.Authority = append(res.Authority, rrLine(rr))
		}
		for _, rr := range m.Extra {
			if _, ok := rr.(*mdns.OPT); !ok {
				res.Additional = append(res.Additional, rrLine(rr))
			}
		}
	}
	if tr.located {
		res.Location = &ExplainLocation{
			Address: tr.addr.String(), From: tr.from, Region: tr.loc.Region, Source: tr.loc.Source,
			Prefix: tr.loc.Prefix, Country: tr.loc.Country, Continent: tr.loc.Continent,
		}
	}
	if tr.ecs.present {
		s := max(out.scope, 0)
		res.Scope = &s
	}
	res.Steered, res.Notes = tr.steers, tr.notes
	return res
}

func rrLine(rr mdns.RR) string { return strings.ReplaceAll(rr.String(), "\t", " ") }

func typeString(t uint16) string {
	if s, ok := mdns.TypeToString[t]; ok {
		return s
	}
	return "TYPE" + strconv.Itoa(int(t))
}

// parseType reads a query type by name ("AAAA") or as "TYPE65".
func parseType(s string) (uint16, error) {
	u := strings.ToUpper(strings.TrimSpace(s))
	if u == "" {
		return mdns.TypeA, nil
	}
	if t, ok := mdns.StringToType[u]; ok {
		return t, nil
	}
	if n, ok := strings.CutPrefix(u, "TYPE"); ok {
		if v, err := strconv.ParseUint(n, 10, 16); err == nil {
			return uint16(v), nil
		}
	}
	return 0, fmt.Errorf("unknown query type %q", s)
}

// ExplainHandler serves /api/v1/explain?qname=&qtype=&client=&ecs= as JSON:
// the answer Meridian would give and why (see Explain). qtype defaults to A,
// client to the caller's address; ecs is a CIDR or a bare address.
func ExplainHandler(t Tables) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		fail := func(code int, err error) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(code)
			_ = json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
		}
		qname := strings.TrimSpace(q.Get("qname"))
		if _, ok := mdns.IsDomainName(qname); !ok || qname == "" {
			fail(http.StatusBadRequest, fmt.Errorf("qname: want a domain name, not %q", qname))
			return
		}
		qtype, err := parseType(q.Get("qtype"))
		if err != nil {
			fail(http.StatusBadRequest, fmt.Errorf("qtype: %w", err))
			return
		}
		var addr netip.Addr
		if s := strings.TrimSpace(q.Get("client")); s != "" {
			if addr, err = netip.ParseAddr(s); err != nil {
				fail(http.StatusBadRequest, fmt.Errorf("client: %w", err))
				return
			}
		} else if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
			addr = ap.Addr()
		}
		var ecs netip.Prefix
		if s := strings.TrimSpace(q.Get("ecs")); s != "" {
			if ecs, err = netip.ParsePrefix(s); err != nil {
				a, err2 := netip.ParseAddr(s)
				if err2 != nil {
					fail(http.StatusBadRequest, fmt.Errorf("ecs: want a CIDR or an address, not %q", s))
					return
				}
				ecs = netip.PrefixFrom(a, a.BitLen())
			}
		}
		tab := t.Load()
		if tab == nil {
			fail(http.StatusServiceUnavailable, fmt.Errorf("no routing table yet"))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(Explain(tab, qname, qtype, addr, ecs))
	})
}
