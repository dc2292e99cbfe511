package dns

import (
	"encoding/binary"
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
// the source prefix, a non-zero scope in a query, or two ECS options. The
// number of address octets is checked on the wire, by ecsWireOK.
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

// ecsWireOK reports whether every ECS option in the raw message msg has
// exactly the address octets its source prefix needs, ceil(SOURCE/8):
// RFC 7871 §6 says a server SHOULD answer FORMERR to too few or too many,
// as BIND does. It reads the wire because miekg's decoder copies the
// address into a full-size one, dropping extra octets and padding missing
// ones, so the decoded option no longer shows the length. The other checks
// (family, prefix, bits set beyond it, scope) are parseECS's. A message
// this cannot walk is reported OK: the decoder rejects it anyway.
func ecsWireOK(msg []byte) bool {
	if len(msg) < 12 || binary.BigEndian.Uint16(msg[10:]) == 0 {
		return true // no additional records, so no OPT
	}
	qd := int(binary.BigEndian.Uint16(msg[4:]))
	rrs := int(binary.BigEndian.Uint16(msg[6:])) + int(binary.BigEndian.Uint16(msg[8:])) + int(binary.BigEndian.Uint16(msg[10:]))
	off := 12
	for range qd {
		if off = skipName(msg, off); off < 0 {
			return true
		}
		off += 4 // type, class
	}
	for range rrs {
		if off = skipName(msg, off); off < 0 || off+10 > len(msg) {
			return true
		}
		typ, n := binary.BigEndian.Uint16(msg[off:]), int(binary.BigEndian.Uint16(msg[off+8:]))
		off += 10 // type, class, TTL, RDLENGTH
		if off+n > len(msg) {
			return true
		}
		if typ == mdns.TypeOPT && !optECSOK(msg[off:off+n]) {
			return false
		}
		off += n
	}
	return true
}

// optECSOK checks the ECS options in an OPT record's RDATA for ecsWireOK.
func optECSOK(rdata []byte) bool {
	for len(rdata) >= 4 {
		code, n := binary.BigEndian.Uint16(rdata), int(binary.BigEndian.Uint16(rdata[2:]))
		rdata = rdata[4:]
		if n > len(rdata) {
			return true // overflows the record: the decoder rejects it
		}
		if code == mdns.EDNS0SUBNET && n >= 4 && n != 4+(int(rdata[2])+7)/8 {
			return false // family (2), SOURCE, SCOPE, then the address
		}
		rdata = rdata[n:]
	}
	return true
}

// skipName returns the offset just past the domain name at off in msg, or
// -1 when the name runs off the end or uses a reserved label type. A
// compression pointer ends the name where it stands; it is not followed.
func skipName(msg []byte, off int) int {
	for off < len(msg) {
		c := int(msg[off])
		switch c & 0xC0 {
		case 0x00:
			if c == 0 {
				return off + 1
			}
			off += 1 + c
		case 0xC0:
			if off+2 > len(msg) {
				return -1
			}
			return off + 2
		default:
			return -1
		}
	}
	return -1
}
