package proxy

import (
	"net"
	"net/http"
	"sync"
	"time"
)

// connCap caps a listener's open connections (max_conns). At the cap it
// closes the connection that has been idle between keep-alive requests the
// longest, so a new client is admitted rather than made to wait for
// idle_timeout (nginx reuses idle connections the same way when it runs out
// of worker_connections). Accept waits only while every connection is busy
// with a request, and takes the first one to turn idle.
//
// The server tells the cap which connections are idle through its
// ConnState hook (trackState). Closing an idle connection can race a
// request arriving on it; the client then sees a closed keep-alive
// connection, which HTTP clients retry — the same race every server's idle
// timeout has.
type connCap struct {
	net.Listener
	sem       chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	wrap      func(net.Conn, *capSlot) net.Conn

	mu     sync.Mutex
	idle   map[*capSlot]time.Time // idle connections and since when
	idleCh chan struct{}          // signalled when a connection turns idle
}

// capSlot is one admitted connection's place under the cap.
type capSlot struct {
	c        *connCap
	conn     net.Conn // what Accept returned, closed to reclaim the slot
	freeOnce sync.Once
}

// newConnCap caps ln at n open connections (n <= 0: no cap). wrap, when
// set, wraps each accepted connection; the wrapper must call slot.free
// when it is closed.
func newConnCap(ln net.Listener, n int, wrap func(net.Conn, *capSlot) net.Conn) *connCap {
	l := &connCap{Listener: ln, done: make(chan struct{}), wrap: wrap, idle: map[*capSlot]time.Time{}, idleCh: make(chan struct{}, 1)}
	if n > 0 {
		l.sem = make(chan struct{}, n)
	}
	return l
}

func (l *connCap) Accept() (net.Conn, error) {
	if l.sem != nil {
		if err := l.admit(); err != nil {
			return nil, err
		}
	}
	c, err := l.Listener.Accept()
	if err != nil {
		if l.sem != nil {
			<-l.sem
		}
		return nil, err
	}
	slot := &capSlot{c: l}
	if l.wrap != nil {
		slot.conn = l.wrap(c, slot)
	} else {
		slot.conn = &cappedConn{Conn: c, slot: slot}
	}
	return slot.conn, nil
}

// admit takes a slot, reclaiming the longest-idle connection's when none is
// free.
func (l *connCap) admit() error {
	for {
		select {
		case l.sem <- struct{}{}:
			return nil
		default:
		}
		if l.reclaim() {
			// The closed connection frees its slot in Close.
			select {
			case l.sem <- struct{}{}:
				return nil
			case <-l.done:
				return net.ErrClosed
			}
		}
		select {
		case l.sem <- struct{}{}:
			return nil
		case <-l.idleCh:
		case <-l.done:
			return net.ErrClosed
		}
	}
}

// reclaim closes the connection idle the longest, if any.
func (l *connCap) reclaim() bool {
	l.mu.Lock()
	var oldest *capSlot
	var since time.Time
	for s, t := range l.idle {
		if oldest == nil || t.Before(since) {
			oldest, since = s, t
		}
	}
	if oldest != nil {
		delete(l.idle, oldest)
	}
	l.mu.Unlock()
	if oldest == nil {
		return false
	}
	_ = oldest.conn.Close()
	return true
}

// trackState is the server's ConnState hook's part for the cap: idle
// connections may be reclaimed, any other state takes the connection out
// of the idle set.
func (l *connCap) trackState(c net.Conn, st http.ConnState) {
	if l.sem == nil {
		return
	}
	slot := slotOf(c)
	if slot == nil {
		return
	}
	l.mu.Lock()
	if st == http.StateIdle {
		l.idle[slot] = time.Now()
	} else {
		delete(l.idle, slot)
	}
	l.mu.Unlock()
	if st == http.StateIdle {
		select {
		case l.idleCh <- struct{}{}:
		default:
		}
	}
}

// innerConn looks through a connection's wrappers (TLS, the lane's TLS
// handover, batched writes: each has NetConn), at most three deep, to the
// one the listener accepted.
func innerConn(c net.Conn) net.Conn {
	for range 3 {
		t, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			break
		}
		c = t.NetConn()
	}
	return c
}

// slotOf finds a connection's slot through its wrappers, if any.
func slotOf(c net.Conn) *capSlot {
	switch c := innerConn(c).(type) {
	case *serverConn:
		return c.slot
	case *cappedConn:
		return c.slot
	}
	return nil
}

func (l *connCap) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// free gives the slot back; the connection's Close calls it, once.
func (s *capSlot) free() {
	s.freeOnce.Do(func() {
		c := s.c
		c.mu.Lock()
		delete(c.idle, s)
		c.mu.Unlock()
		if c.sem != nil {
			<-c.sem
		}
	})
}

// cappedConn is a connection under the cap with nothing else to do (TLS).
type cappedConn struct {
	net.Conn
	slot *capSlot
}

func (c *cappedConn) Close() error {
	err := c.Conn.Close()
	c.slot.free()
	return err
}
