package dns

import (
	"encoding/binary"
	"net/netip"

	mdns "github.com/miekg/dns"
)

// wireQuery is a UDP query read straight from the datagram by parseQuery,
// for the answer cache: the question, the EDNS settings and the ECS
// option, without building a miekg message. Its slices point into the
// datagram. This reader exists beside miekg's decoder for a measured
// reason: decoding a query with miekg (Msg.Unpack, its allocations and
// their garbage) was 13% of the server's CPU samples on bench/dns.sh's
// steered query (2026-11-27: about 1 µs of 7.3 µs per query), while the
// answer cache needs only the key and the ECS network, which this reads
// in 25 ns without allocating, against miekg's 470 ns and 9 allocations
// (BenchmarkParseQuery, the steered query with ECS). Anything it does not
// accept goes to miekg's decoder as before.
type wireQuery struct {
	msg     []byte // the datagram
	qname   []byte // the question name, wire form, case kept
	qtype   uint16
	qclass  uint16
	edns    bool   // an OPT record
	do      bool   // its DO bit
	bufsize uint16 // its UDP payload size
	// ecs is the ECS option's data (family, SOURCE, SCOPE, address) when
	// the query has one; nil without. ecsAddr and ecsBits are its network.
	ecs     []byte
	ecsAddr netip.Addr
	ecsBits int
}

// EDNS option codes parseQuery lets through: ECS, and the two the
// server ignores anyway (cookies, RFC 7873; padding, RFC 7830).
const (
	optCookie  = 10
	optPadding = 12
)

// parseQuery reads b as the plainest of queries, which is nearly every
// query: QR=0, opcode QUERY, one question with an uncompressed name, no
// answer or authority records, and at most one additional record, an OPT
// of version 0 owned by the root whose options are at most one well-formed
// ECS option (family 1 or 2, the address octets its source prefix needs,
// no bits beyond it, scope 0) besides cookies and padding, with nothing
// after it. It reports false for anything else, which takes the decoder's
// path (miekg's Unpack) as before: the fast path never has to reproduce
// an error answer. FuzzFastPath holds it to miekg's decoding.
func parseQuery(b []byte, q *wireQuery) bool {
	if len(b) < 12+5 || b[2]&0xF8 != 0 { // QR=0, opcode 0
		return false
	}
	h := b[4:12]
	if binary.BigEndian.Uint16(h) != 1 || binary.BigEndian.Uint16(h[2:]) != 0 || binary.BigEndian.Uint16(h[4:]) != 0 {
		return false
	}
	ar := binary.BigEndian.Uint16(h[6:])
	if ar > 1 {
		return false
	}
	off := 12
	for {
		if off >= len(b) {
			return false
		}
		c := int(b[off])
		if c == 0 {
			off++
			break
		}
		if c > 63 { // a pointer or a reserved label type
			return false
		}
		off += 1 + c
	}
	if off-12 > 255 || off+4 > len(b) {
		return false
	}
	*q = wireQuery{msg: b, qname: b[12:off], qtype: binary.BigEndian.Uint16(b[off:]), qclass: binary.BigEndian.Uint16(b[off+2:])}
	off += 4
	if ar == 0 {
		return off == len(b)
	}
	// The OPT: root owner, type, class (payload size), TTL (extended
	// rcode, version, flags), RDLENGTH.
	if off+11 > len(b) || b[off] != 0 || binary.BigEndian.Uint16(b[off+1:]) != mdns.TypeOPT || b[off+6] != 0 {
		return false
	}
	q.edns = true
	q.bufsize = binary.BigEndian.Uint16(b[off+3:])
	q.do = b[off+7]&0x80 != 0
	rdlen := int(binary.BigEndian.Uint16(b[off+9:]))
	off += 11
	if off+rdlen != len(b) {
		return false
	}
	for rd := b[off:]; len(rd) > 0; {
		if len(rd) < 4 {
			return false
		}
		code, n := binary.BigEndian.Uint16(rd), int(binary.BigEndian.Uint16(rd[2:]))
		if 4+n > len(rd) {
			return false
		}
		data := rd[4 : 4+n]
		rd = rd[4+n:]
		switch code {
		case mdns.EDNS0SUBNET:
			if q.ecs != nil || !q.parseECS(data) {
				return false
			}
		case optCookie, optPadding:
		default:
			return false
		}
	}
	return true
}

// parseECS checks an ECS option's data as parseECS and ecsWireOK do
// together, and keeps it. Family 0 (no client information) is left to the
// decoder's path.
func (q *wireQuery) parseECS(d []byte) bool {
	if len(d) < 4 || d[3] != 0 {
		return false
	}
	family, bits := binary.BigEndian.Uint16(d), int(d[2])
	addr := d[4:]
	if len(addr) != (bits+7)/8 {
		return false
	}
	var a netip.Addr
	switch family {
	case 1:
		if bits > 32 {
			return false
		}
		var b4 [4]byte
		copy(b4[:], addr)
		a = netip.AddrFrom4(b4)
	case 2:
		if bits > 128 {
			return false
		}
		var b16 [16]byte
		copy(b16[:], addr)
		a = netip.AddrFrom16(b16)
	default:
		return false
	}
	if bits%8 != 0 && addr[len(addr)-1]&(0xFF>>(bits%8)) != 0 {
		return false // address bits set beyond the source prefix
	}
	q.ecs, q.ecsAddr, q.ecsBits = d, a, bits
	return true
}

// udpSize is the most a UDP response to q may take, as answer computes
// it: the client's EDNS buffer (at least 512) capped at ours, 512 without
// EDNS.
func (q *wireQuery) udpSize(ours int) int {
	if !q.edns {
		return mdns.MinMsgSize
	}
	return min(max(int(q.bufsize), mdns.MinMsgSize), ours)
}

// optRDataOffset finds the OPT record of a packed response (the last
// record, where answer puts it) and returns the offset of its RDATA and
// its length; ok is false when the message has no OPT there or does not
// walk.
func optRDataOffset(msg []byte) (off, n int, ok bool) {
	if len(msg) < 12 {
		return 0, 0, false
	}
	qd := int(binary.BigEndian.Uint16(msg[4:]))
	rrs := int(binary.BigEndian.Uint16(msg[6:])) + int(binary.BigEndian.Uint16(msg[8:])) + int(binary.BigEndian.Uint16(msg[10:]))
	off = 12
	for range qd {
		if off = skipName(msg, off); off < 0 {
			return 0, 0, false
		}
		off += 4
	}
	var typ uint16
	for range rrs {
		if off = skipName(msg, off); off < 0 || off+10 > len(msg) {
			return 0, 0, false
		}
		typ, n = binary.BigEndian.Uint16(msg[off:]), int(binary.BigEndian.Uint16(msg[off+8:]))
		off += 10
		if off+n > len(msg) {
			return 0, 0, false
		}
		off += n
	}
	if rrs == 0 || typ != mdns.TypeOPT || off != len(msg) {
		return 0, 0, false
	}
	return off - n, n, true
}
