package dns

import (
	"errors"
	"io"
	"net"
	"net/netip"

	mdns "github.com/miekg/dns"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// udpWorkers is the number of goroutines reading each UDP socket. While one
// answers, another waits in the kernel, so a socket never idles; more would
// only queue on the socket's read lock.
const udpWorkers = 4

// serveUDP answers queries arriving on conn until it is closed. Instead of
// miekg's Server, which starts a goroutine per packet (and, on this answer
// path, grows its stack on every query), a few long-lived workers each read
// a batch, answer it and write the responses in a loop (udpMmsgWorker on
// 64-bit Linux, udpBatchWorker elsewhere, udpWorker on a socket bound to
// every address); each datagram goes through datagram: the answer cache,
// else miekg's decoding, answer and miekg's encoding.
func (s *Server) serveUDP(conn *net.UDPConn) error {
	wildcard := false
	if ap, err := netip.ParseAddrPort(conn.LocalAddr().String()); err == nil && ap.Addr().IsUnspecified() {
		// Bound to every address: replies must leave from the address each
		// query came to, which the kernel reports in a control message.
		wildcard = true
		err6 := ipv6.NewPacketConn(conn).SetControlMessage(ipv6.FlagDst|ipv6.FlagInterface, true)
		err4 := ipv4.NewPacketConn(conn).SetControlMessage(ipv4.FlagDst|ipv4.FlagInterface, true)
		if err4 != nil && err6 != nil {
			return err4
		}
	}
	var batch batchConn
	if !wildcard {
		if ap, err := netip.ParseAddrPort(conn.LocalAddr().String()); err == nil && ap.Addr().Unmap().Is4() {
			batch = ipv4.NewPacketConn(conn)
		} else {
			batch = ipv6.NewPacketConn(conn)
		}
	}
	errs := make(chan error, udpWorkers)
	for range udpWorkers {
		go func() {
			switch {
			case batch != nil && mmsgSupported:
				errs <- s.udpMmsgWorker(conn)
			case batch != nil:
				errs <- s.udpBatchWorker(batch)
			default:
				errs <- s.udpWorker(conn, true)
			}
		}()
	}
	var first error
	for range udpWorkers {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// udpReply writes one response to the client a worker is answering.
type udpReply struct {
	conn *net.UDPConn
	to   netip.AddrPort
	sess *mdns.SessionUDP // wildcard sockets only
}

func (r *udpReply) Write(b []byte) (int, error) {
	if r.sess != nil {
		return mdns.WriteToSessionUDP(r.conn, b, r.sess)
	}
	return r.conn.WriteToUDPAddrPort(b, r.to)
}

// batchConn reads and writes several datagrams per system call (recvmmsg
// and sendmmsg on Linux); ipv4.PacketConn and ipv6.PacketConn implement it.
type batchConn interface {
	ReadBatch(ms []ipv4.Message, flags int) (int, error)
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
}

// udpBatch bounds the datagrams one worker takes per read. Under load a
// batch amortises the two system calls per query that dominate the CPU
// profile; at low load a read returns the one datagram waiting, so latency
// does not suffer.
const udpBatch = 32

// batchSlot collects one response of a batch.
type batchSlot struct{ data []byte }

func (b *batchSlot) Write(p []byte) (int, error) {
	b.data = append(b.data[:0], p...)
	return len(p), nil
}

// udpBatchWorker reads up to udpBatch queries at once, answers each, and
// sends the responses together. It returns nil once the socket is closed.
func (s *Server) udpBatchWorker(conn batchConn) error {
	in := make([]ipv4.Message, udpBatch)
	out := make([]ipv4.Message, 0, udpBatch)
	slots := make([]batchSlot, udpBatch)
	for i := range in {
		in[i].Buffers = [][]byte{make([]byte, udpReadSize)}
		slots[i].data = make([]byte, 0, 512)
	}
	outBufs := make([][1][]byte, udpBatch)
	sc := new(scratch)
	for {
		n, err := conn.ReadBatch(in, 0)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			continue // e.g. ICMP-induced errors: keep serving
		}
		out = out[:0]
		for i := range n {
			ua, ok := in[i].Addr.(*net.UDPAddr)
			if !ok {
				continue
			}
			slot := &slots[i]
			slot.data = slot.data[:0]
			s.datagram(in[i].Buffers[0][:in[i].N], ua.AddrPort().Addr().Unmap(), slot, sc)
			if len(slot.data) == 0 {
				continue
			}
			outBufs[i][0] = slot.data
			out = append(out, ipv4.Message{Buffers: outBufs[i][:], Addr: in[i].Addr})
		}
		for sent := 0; sent < len(out); {
			k, err := conn.WriteBatch(out[sent:], 0)
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return nil
				}
				// Skip the datagram that failed (say, an unreachable
				// client) and send the rest.
				k = max(k, 1)
			}
			sent += k
		}
	}
}

// udpWorker is one read-answer-write loop for a socket bound to every
// address, where each reply needs the query's destination as its source;
// it returns nil once conn is closed.
func (s *Server) udpWorker(conn *net.UDPConn, wildcard bool) error {
	buf := make([]byte, udpReadSize)
	reply := &udpReply{conn: conn}
	sc := new(scratch)
	for {
		var (
			n   int
			err error
		)
		if wildcard {
			n, reply.sess, err = mdns.ReadFromSessionUDP(conn, buf)
			if err == nil {
				reply.to = reply.sess.RemoteAddr().(*net.UDPAddr).AddrPort()
			}
		} else {
			n, reply.to, err = conn.ReadFromUDPAddrPort(buf)
		}
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			continue // e.g. ICMP-induced errors: keep serving
		}
		s.datagram(buf[:n], reply.to.Addr().Unmap(), reply, sc)
	}
}

// scratch is one UDP worker's reusable state for the fast path.
type scratch struct {
	q    wireQuery
	miss cacheMiss
	key  [256 + 5]byte
}

// datagram answers one UDP query from addr through w: from the answer
// cache when it can (fastPath), else decoded by miekg and answered by
// serve. Responses (QR=1) and packets shorter than a header get nothing;
// undecodable ones get FORMERR. sc is the worker's scratch; nil makes one.
func (s *Server) datagram(b []byte, addr netip.Addr, w io.Writer, sc *scratch) {
	if len(b) < 12 {
		s.met.malformed.Inc()
		return
	}
	if b[2]&0x80 != 0 {
		return // a response: never answer (no ping-pong)
	}
	if sc == nil {
		sc = new(scratch)
	}
	done, miss := s.fastPath(b, addr, w, &sc.q, &sc.miss, sc.key[:0])
	if done {
		return
	}
	s.slowDatagram(b, addr, w, miss)
}

// slowDatagram decodes a query with miekg and answers it through serve,
// keeping the answer in the cache when miss says where.
func (s *Server) slowDatagram(b []byte, addr netip.Addr, w io.Writer, miss *cacheMiss) {
	req := new(mdns.Msg)
	if err := req.Unpack(b); err != nil {
		s.met.malformed.Inc()
		formerr(b, w)
		return
	}
	s.serve(w, req, client{addr: addr, badECSLength: !ecsWireOK(b), miss: miss})
}

// formerr answers a datagram that does not decode: its ID, FORMERR, no
// sections.
func formerr(b []byte, w io.Writer) {
	m := &mdns.Msg{}
	m.Id = uint16(b[0])<<8 | uint16(b[1])
	m.Response = true
	m.Opcode = int(b[2]>>3) & 0xF
	m.Rcode = mdns.RcodeFormatError
	if out, err := m.Pack(); err == nil {
		_, _ = w.Write(out)
	}
}
