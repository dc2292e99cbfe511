package proxy

import (
	"bufio"
	"context"
	"encoding/binary"
	"net"
	"net/http"
	"sync"
	"time"
)

// Hijack hands the client connection to ReverseProxy for a 101 Switching
// Protocols tunnel (WebSocket: the only upgrade the proxy forwards). The
// connection is tracked so a shutdown can close it properly, and its
// deadlines are cleared: a tunnel lives as long as both ends want.
func (w *respWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := w.w.(http.Hijacker)
	if !ok {
		return nil, nil, http.ErrNotSupported
	}
	c, brw, err := hj.Hijack()
	if err != nil {
		return nil, nil, err
	}
	_ = c.SetDeadline(time.Time{})
	w.wrote, w.status = true, http.StatusSwitchingProtocols
	return w.x.h.upgrades.track(c), brw, nil
}

// upgradeSet tracks the WebSocket connections the handler has hijacked,
// which http.Server.Shutdown neither waits for nor closes.
type upgradeSet struct {
	mu       sync.Mutex
	conns    map[*wsConn]struct{}
	draining bool
	empty    chan struct{} // closed and replaced when conns becomes empty during drain
}

func (s *upgradeSet) init() { s.conns = map[*wsConn]struct{}{} }

func (s *upgradeSet) track(c net.Conn) *wsConn {
	wc := &wsConn{Conn: c, set: s, need: 2}
	s.mu.Lock()
	s.conns[wc] = struct{}{}
	draining := s.draining
	s.mu.Unlock()
	if draining {
		wc.goingAway()
	}
	return wc
}

func (s *upgradeSet) remove(c *wsConn) {
	s.mu.Lock()
	delete(s.conns, c)
	if len(s.conns) == 0 && s.empty != nil {
		close(s.empty)
		s.empty = nil
	}
	s.mu.Unlock()
}

// count is the number of tracked connections.
// drain asks every tracked connection to close (a WebSocket close frame,
// 1001 going away, sent between frames), waits until they are gone or ctx
// is done, then closes what is left.
func (s *upgradeSet) drain(ctx context.Context) {
	s.mu.Lock()
	s.draining = true
	conns := make([]*wsConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	var empty chan struct{}
	if len(s.conns) > 0 {
		if s.empty == nil {
			s.empty = make(chan struct{})
		}
		empty = s.empty
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.goingAway()
	}
	if empty == nil {
		return
	}
	select {
	case <-empty:
	case <-ctx.Done():
		s.mu.Lock()
		conns = conns[:0]
		for c := range s.conns {
			conns = append(conns, c)
		}
		s.mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	}
}

// wsConn is a hijacked client connection carrying WebSocket frames. It
// follows the frame boundaries of what the upstream sends (the writes), so
// a close frame can be injected between two frames, never inside one.
type wsConn struct {
	net.Conn
	set *upgradeSet

	mu        sync.Mutex
	hdr       [14]byte
	hdrN      int    // header bytes seen of the current frame
	need      int    // header length once known (2 until the length byte)
	remaining uint64 // payload bytes left in the current frame
	pending   bool   // send a close at the next boundary
	sent      bool   // close sent; drop what the upstream sends after it
	closed    bool
}

// closeFrame is an unmasked (server-to-client) close frame, status 1001.
var closeFrame = [4]byte{0x88, 0x02, 0x03, 0xe9}

func (c *wsConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sent {
		return len(p), nil
	}
	if !c.pending {
		n, err := c.Conn.Write(p)
		c.track(p[:n])
		return n, err
	}
	// Write up to the next frame boundary, then the close.
	i := 0
	for i < len(p) && !c.atBoundary() {
		i += c.track(p[i:])
	}
	if i > 0 {
		if n, err := c.Conn.Write(p[:i]); err != nil {
			return n, err
		}
	}
	if c.atBoundary() {
		c.sendClose()
	}
	return len(p), nil
}

func (c *wsConn) atBoundary() bool { return c.hdrN == 0 && c.remaining == 0 }

// track advances the frame parser over p and returns how many bytes it
// consumed: it stops at the end of the current frame.
func (c *wsConn) track(p []byte) int {
	used := 0
	for used < len(p) {
		if c.remaining > 0 {
			k := uint64(len(p) - used)
			if k > c.remaining {
				k = c.remaining
			}
			c.remaining -= k
			used += int(k)
			if c.remaining == 0 {
				return used
			}
			continue
		}
		c.hdr[c.hdrN] = p[used]
		c.hdrN++
		used++
		if c.hdrN == 2 {
			c.need = 2
			switch c.hdr[1] & 0x7f {
			case 126:
				c.need += 2
			case 127:
				c.need += 8
			}
			if c.hdr[1]&0x80 != 0 {
				c.need += 4
			}
		}
		if c.hdrN >= 2 && c.hdrN == c.need {
			var n uint64
			switch l := c.hdr[1] & 0x7f; l {
			case 126:
				n = uint64(binary.BigEndian.Uint16(c.hdr[2:4]))
			case 127:
				n = binary.BigEndian.Uint64(c.hdr[2:10])
			default:
				n = uint64(l)
			}
			c.hdrN, c.need, c.remaining = 0, 2, n
			if n == 0 {
				return used
			}
		}
	}
	return used
}

func (c *wsConn) sendClose() {
	c.sent, c.pending = true, false
	_ = c.Conn.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = c.Conn.Write(closeFrame[:])
	_ = c.Conn.SetWriteDeadline(time.Time{})
}

// goingAway sends the close frame now if the upstream is between frames,
// else right after the frame it is sending.
func (c *wsConn) goingAway() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sent || c.closed {
		return
	}
	if c.atBoundary() {
		c.sendClose()
		return
	}
	c.pending = true
}

// CloseWrite passes a half-close on, so an upstream EOF reaches the client.
func (c *wsConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

func (c *wsConn) Close() error {
	c.mu.Lock()
	first := !c.closed
	c.closed = true
	c.mu.Unlock()
	err := c.Conn.Close()
	if first {
		c.set.remove(c)
	}
	return err
}
