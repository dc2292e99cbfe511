package dns

import (
	"net/netip"

	mdns "github.com/miekg/dns"
)

// ecsInfo is a query's EDNS Client Subnet option (RFC 7871), checked.
type ecsInfo struct {
	present bool
	opt     *mdns.EDNS0_SUBNET // as received, echoed with our scope
	addr    netip.Addr         // the client network's address
	bits    int                // its source prefix length
}

// parseECS finds and checks the ECS option of opt. ok is false when the
// option is malformed, which the caller answers with FORMERR: an unknown
// family, a source prefix longer than the family, address bits set beyond
// the source prefix, a non-zero scope in a query, or two ECS options.
// Family 0 with prefix 0 (what dig sends for +subnet=0) is accepted as "no
// client information".
func parseECS(opt *mdns.OPT) (e ecsInfo, ok bool) {
	for _, o := range opt.Option {
		s, is := o.(*mdns.EDNS0_SUBNET)
		if !is {
			continue // unknown options are ignored and not echoed
		}
		if e.present {
			return ecsInfo{}, false
		}
		e.present, e.opt = true, s
		if s.SourceScope != 0 {
			return ecsInfo{}, false
		}
		var a netip.Addr
		switch s.Family {
		case 0:
			if s.SourceNetmask != 0 {
				return ecsInfo{}, false
			}
			continue
		case 1:
			ip4 := s.Address.To4()
			if ip4 == nil || s.SourceNetmask > 32 {
				return ecsInfo{}, false
			}
			a = netip.AddrFrom4([4]byte(ip4))
		case 2:
			if len(s.Address) != 16 || s.SourceNetmask > 128 {
				return ecsInfo{}, false
			}
			a = netip.AddrFrom16([16]byte(s.Address))
		default:
			return ecsInfo{}, false
		}
		p := netip.PrefixFrom(a, int(s.SourceNetmask))
		if !p.IsValid() || p.Masked().Addr() != a {
			return ecsInfo{}, false
		}
		e.addr, e.bits = a, int(s.SourceNetmask)
	}
	return e, true
}
