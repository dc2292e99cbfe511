package health

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"syscall"
)

// dialProbe opens a probe's TCP connection to an IP:port. It is what
// net.Dialer does minus what a probe does not need, and it closes with a
// reset.
//
// Why: at 5,000 TCP checks a second the prober used about a third of a
// core against HAProxy's 17% for the same checks (performance.md);
// net.Dialer sets TCP keep-alive (four setsockopt calls), starts a
// goroutine per dial to watch the context, and reads back both addresses,
// and the ordinary close makes both ends go through FIN and the prober's
// end through TIME_WAIT. Here: a non-blocking socket with SO_LINGER 0 (the
// connection is reset when closed, as HAProxy's checks do: no FIN
// exchange, no TIME_WAIT, nothing the checked server has to drain),
// connect, and Go's poller to wait for it, bounded by r's deadline; an
// abort sets a past deadline. The connection is an *os.File that r
// watches (the caller unwatches before closing it). Errors read as
// net.Dialer's ("dial tcp ADDR: connect: connection refused").
//
// delayAck turns off quick ACKs before connecting (TCP_QUICKACK 0, as
// HAProxy's checks do): the last ACK of the handshake is held back and
// rides on the first bytes the probe sends, or, for a connect-only check,
// is never sent, since the reset ends the connection first. The server
// kernel then never completes the handshake for a connect-only check (no
// accepted socket, no wake-up of the server's accept loop), and on
// loopback that work was a sixth of the prober's CPU: it runs in the
// connecting process's context. Callers set it only for connect-only
// checks: a check that reads an answer would delay its own ACKs too, and a
// server writing in two segments without TCP_NODELAY (Nagle) would wait
// out the delayed ACK, 40 ms, before its second.
//
// With connectOnly, the connection is closed as soon as it is made and the
// result is nil, nil.
func dialProbe(r *probeRun, ap netip.AddrPort, connectOnly, delayAck bool) (*os.File, error) {
	fail := func(err error) error {
		return &net.OpError{Op: "dial", Net: "tcp", Addr: net.TCPAddrFromAddrPort(ap), Err: err}
	}
	var sa syscall.Sockaddr
	family := syscall.AF_INET
	if ip := ap.Addr().Unmap(); ip.Is4() {
		sa = &syscall.SockaddrInet4{Port: int(ap.Port()), Addr: ip.As4()}
	} else {
		family = syscall.AF_INET6
		sa = &syscall.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
	}
	if err := r.done(); err != nil {
		return nil, fail(err)
	}
	spare := r.spare
	if !connectOnly {
		spare = nil // the connection outlives this call
	}
	fd, ok := spare.take(family)
	if !ok {
		var err error
		fd, err = syscall.Socket(family, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
		if err != nil {
			return nil, fail(os.NewSyscallError("socket", err))
		}
		if err := syscall.SetsockoptLinger(fd, syscall.SOL_SOCKET, syscall.SO_LINGER, &syscall.Linger{Onoff: 1, Linger: 0}); err != nil {
			syscall.Close(fd)
			return nil, fail(os.NewSyscallError("setsockopt", err))
		}
	}
	if delayAck {
		// Best effort: without it the probe is the same, only dearer.
		syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_QUICKACK, 0)
	}
	switch err := syscall.Connect(fd, sa); err {
	case nil:
		if connectOnly {
			spare.put(fd, family)
			return nil, nil
		}
	case syscall.EINPROGRESS, syscall.EALREADY, syscall.EINTR:
		if connectOnly {
			// On loopback and fast links the handshake is often over by
			// now: then the socket never needs the poller.
			if _, err := syscall.Getpeername(fd); err == nil {
				spare.put(fd, family)
				return nil, nil
			}
		}
	default:
		syscall.Close(fd)
		return nil, fail(os.NewSyscallError("connect", err))
	}
	f := os.NewFile(uintptr(fd), "tcp "+ap.String())
	if err := r.watch(f); err != nil {
		f.Close()
		return nil, fail(err)
	}
	rc, err := f.SyscallConn()
	if err != nil {
		r.unwatch()
		f.Close()
		return nil, fail(err)
	}
	var cerr error
	r.waiting()
	werr := rc.Write(func(fd uintptr) bool {
		// Connected, failed, or (ENOTCONN) still connecting: then the
		// poller waits for the socket to become writable.
		if _, err := syscall.Getpeername(int(fd)); err == nil {
			return true
		}
		v, err := syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_ERROR)
		switch {
		case err != nil:
			cerr = os.NewSyscallError("getsockopt", err)
		case v != 0:
			cerr = os.NewSyscallError("connect", syscall.Errno(v))
		default:
			return false
		}
		return true
	})
	if werr == nil {
		werr = cerr
	}
	if werr != nil || connectOnly {
		r.unwatch()
		f.Close()
		if werr == nil {
			return nil, nil
		}
		if err := r.done(); err != nil {
			werr = err
		} else if errors.Is(werr, os.ErrDeadlineExceeded) {
			werr = os.ErrDeadlineExceeded
		}
		return nil, fail(werr)
	}
	return f, nil
}

// spareSocket is a probe worker's TCP socket kept for its next
// connect-only check.
//
// Why: after the kernel's own work on the handshake and the reset, making
// and freeing a socket per probe (socket, SO_LINGER, close with its file
// and fd-table work) was the biggest cost left in a TCP check. A connected
// TCP socket can be disconnected with connect(AF_UNSPEC), which resets the
// connection as the SO_LINGER 0 close did (no FIN, no TIME_WAIT) and
// releases its local port, and then connects again. Only a socket whose
// connect succeeded without the poller is kept (it never became an
// *os.File); any other is closed. The worker closes its spare when it
// exits; a nil *spareSocket keeps nothing.
type spareSocket struct {
	fd     int
	family int
	ok     bool
}

// take returns the spare socket if there is one of family.
func (s *spareSocket) take(family int) (int, bool) {
	if s == nil || !s.ok || s.family != family {
		return -1, false
	}
	s.ok = false
	return s.fd, true
}

// put disconnects fd (a reset) and keeps it, or closes it.
func (s *spareSocket) put(fd, family int) {
	if s == nil || s.ok || disconnect(fd) != nil {
		syscall.Close(fd)
		return
	}
	s.fd, s.family, s.ok = fd, family, true
}

// close closes the spare socket, if any.
func (s *spareSocket) close() {
	if s != nil && s.ok {
		syscall.Close(s.fd)
		s.ok = false
	}
}
