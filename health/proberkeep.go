package health

import (
	"os"
	"syscall"
)

// keptConn is an http target's connection, kept between probes.
//
// Why: at 5,000 http checks a second a fresh connection per probe is most
// of the prober's cost (socket, connect with the loopback handshake in the
// prober's context, reset), and the checked server pays an accept and a
// close for each. Envoy's HTTP health checker keeps its connection by
// default; so does this one, with the rules a kept connection needs so
// that it does not change a probe's verdict:
//
//   - a connection is kept only after a clean success: a failed probe (any
//     error, an unexpected status, a missing body string), a response that
//     asks to close (Connection: close, HTTP/1.0, a body ended by the
//     close), a body beyond the 64 KiB cap, or bytes after the response
//     drop it (with a reset, as dialProbe's), so a failure is always
//     confirmed on a fresh connection;
//   - before a kept connection carries a probe, a non-blocking peek drops
//     it if the server closed it meanwhile or sent anything unasked (an
//     idle timeout's 408, say);
//   - a probe on a kept connection has half the time left to get its
//     response; if it fails before one (nothing came: the server closed
//     it as the request went out, or a middlebox dropped it silently; or
//     what came is no response, or a 408: left over from before), the
//     probe goes again at once on a fresh connection with the rest of its
//     deadline, so a stale connection does not report a target down;
//   - every keptProbes-th probe takes a fresh connection, so a server that
//     accepts no new connection (out of descriptors, a stuck accept loop)
//     is found out within that many intervals, and cannot look healthy on
//     the one it accepted long ago.
//
// At most one connection per target is kept (one descriptor per http
// IP:port target, as many as Envoy keeps); it is closed when the target
// goes away or Run returns. https probes and http probes to a host name go
// through net/http, which does not keep them (DisableKeepAlives).
// keptProbes is how many probes a kept connection carries before a fresh
// one is dialled (see keptConn).
const keptProbes = 5

type keptConn struct {
	f    *os.File
	rc   syscall.RawConn
	uses int // probes it has carried
	// peek's results, fields so that the bound method value is made once
	// per connection rather than a closure per probe.
	peekFn   func(fd uintptr) bool
	peekLive bool
}

func newKeptConn(f *os.File) *keptConn {
	kc := &keptConn{f: f}
	kc.peekFn = kc.peek
	return kc
}

func (kc *keptConn) close() { kc.f.Close() }

// live reports whether the idle connection may carry a probe: the server
// has not closed it and sent nothing since the last response. The
// connection's deadline must be in the future (the poller checks it).
func (kc *keptConn) live() bool {
	if kc.rc == nil {
		rc, err := kc.f.SyscallConn()
		if err != nil {
			return false
		}
		kc.rc = rc
	}
	kc.peekLive = false
	if err := kc.rc.Read(kc.peekFn); err != nil {
		return false
	}
	return kc.peekLive
}

// peek is live's raw read: one non-blocking MSG_PEEK, never waiting.
func (kc *keptConn) peek(fd uintptr) bool {
	var b [1]byte
	// Data (unasked) or end of stream (n == 0, no error) both end it.
	_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	kc.peekLive = err == syscall.EAGAIN || err == syscall.EWOULDBLOCK
	return true
}

// takeConn takes the target's kept connection, if any; the caller checks
// it is live once it has set the probe's deadline.
func (c *probeCache) takeConn() *keptConn {
	c.mu.Lock()
	kc := c.idle
	c.idle = nil
	c.mu.Unlock()
	return kc
}

// putConn keeps kc for the next probe, or closes it if the target is gone
// or keeps one already.
func (c *probeCache) putConn(kc *keptConn) {
	c.mu.Lock()
	if c.closed || c.idle != nil {
		c.mu.Unlock()
		kc.close()
		return
	}
	c.idle = kc
	c.mu.Unlock()
}

// dropConn closes the kept connection, if any; with final, later ones
// are closed instead of kept (the target is gone).
func (c *probeCache) dropConn(final bool) {
	c.mu.Lock()
	kc := c.idle
	c.idle = nil
	c.closed = c.closed || final
	c.mu.Unlock()
	if kc != nil {
		kc.close()
	}
}
