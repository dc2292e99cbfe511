package consultest

import (
	"io"
	"net"
	"sync"
)

// Link is a TCP relay on 127.0.0.1 to a server, standing for one client's
// network path to Consul: Cut partitions that client (connections open
// through it are closed, new ones refused) while every other client keeps
// the server. Restore heals it.
type Link struct {
	Addr string // what the client dials instead of the server

	target string
	ln     net.Listener
	mu     sync.Mutex
	cut    bool
	conns  map[net.Conn]bool
	done   chan struct{}
}

// NewLink starts a link to target ("host:port"), closed when the test
// ends.
func NewLink(tb TB, target string) *Link {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("consultest: link: %v", err)
	}
	l := &Link{Addr: ln.Addr().String(), target: target, ln: ln, conns: map[net.Conn]bool{}, done: make(chan struct{})}
	go l.serve()
	tb.Cleanup(l.Close)
	return l
}

func (l *Link) serve() {
	for {
		c, err := l.ln.Accept()
		if err != nil {
			close(l.done)
			return
		}
		l.mu.Lock()
		if l.cut {
			l.mu.Unlock()
			c.Close()
			continue
		}
		l.conns[c] = true
		l.mu.Unlock()
		go l.relay(c)
	}
}

func (l *Link) relay(c net.Conn) {
	defer l.drop(c)
	up, err := net.Dial("tcp", l.target)
	if err != nil {
		return
	}
	l.mu.Lock()
	if l.cut {
		l.mu.Unlock()
		up.Close()
		return
	}
	l.conns[up] = true
	l.mu.Unlock()
	defer l.drop(up)
	go func() {
		io.Copy(up, c)
		up.Close()
	}()
	io.Copy(c, up)
}

func (l *Link) drop(c net.Conn) {
	c.Close()
	l.mu.Lock()
	delete(l.conns, c)
	l.mu.Unlock()
}

// Cut partitions the client: open connections are closed, new ones are
// accepted and closed at once (so requests fail fast, like a reset).
func (l *Link) Cut() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cut = true
	for c := range l.conns {
		c.Close()
	}
}

// Restore heals a Cut.
func (l *Link) Restore() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cut = false
}

// Close stops the link.
func (l *Link) Close() {
	l.ln.Close()
	<-l.done
	l.Cut()
}
