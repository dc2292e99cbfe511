package proxy

import (
	"errors"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// parker holds the fast lane's idle connections without a goroutine.
//
// Why: a goroutine waiting for a keep-alive connection's next request
// keeps its stack, which serving a request grew to 8 KiB and which only
// garbage collections shrink; measured with 1,000 idle connections that
// was 5 KiB of stack and 5 KiB of heap per connection, against nginx's
// 0.5 KiB. A connection idle for parkAfter leaves Go's poller for this
// epoll set (one-shot, by file descriptor), its goroutine ends and its
// per-request state is dropped; when the client sends something, the
// parker starts a new goroutine that carries on where the old one stopped.
// A TLS connection parks only when crypto/tls itself waits for the
// socket (fasttls.go), so readiness of the socket is all it can need.
// Connections busy with back-to-back requests never come here, so the
// request path pays nothing for it; a connection that was parked pays a
// goroutine start and a stack that grows again.
//
// The parker also ends parked connections at their idle deadline (a sweep
// every sweepEvery) and, on shutdown, all of them. The descriptor is only
// handed to epoll while the connection's own descriptor reference is held
// (RawConn.Control), so a concurrent close cannot let the number go to
// another socket in between; a closed socket leaves the epoll set by
// itself, and its entry here is dropped when its number comes back or at
// its deadline.
type parker struct {
	lane  *fastLane
	epfd  int
	evfd  int // written to stop the loop
	sweep time.Duration

	mu     sync.Mutex
	conns  map[int32]*fastConn
	closed bool
	done   chan struct{}

	parked atomic.Int64 // connections parked now (the tests read it)
}

// parkAfter is how long a connection idles in Go's poller, with its
// goroutine, before it is parked.
const parkAfter = time.Second

func newParker(l *fastLane) (*parker, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	evfd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, err
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(evfd)}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, evfd, &ev); err != nil {
		unix.Close(epfd)
		unix.Close(evfd)
		return nil, err
	}
	sweep := time.Second
	for _, d := range []time.Duration{l.idle, l.hdrWait} {
		if d > 0 && d/4 < sweep {
			sweep = max(d/4, 10*time.Millisecond)
		}
	}
	p := &parker{lane: l, epfd: epfd, evfd: evfd, sweep: sweep, conns: map[int32]*fastConn{}, done: make(chan struct{})}
	go p.run()
	return p, nil
}

// park hands c to the parker, dropping what it holds per request. On true
// the caller's goroutine must not touch c again.
func (p *parker) park(c *fastConn) bool {
	if p == nil || c.fd <= 0 {
		return false
	}
	c.trim()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	fd := int32(c.fd)
	if old := p.conns[fd]; old != nil && old != c {
		// The number was another connection's, closed meanwhile.
		p.forget(old)
	}
	var err error
	ctlErr := c.rc.Control(func(ufd uintptr) {
		ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT, Fd: fd}
		op := unix.EPOLL_CTL_ADD
		if c.epollReg {
			op = unix.EPOLL_CTL_MOD
		}
		err = unix.EpollCtl(p.epfd, op, int(ufd), &ev)
		if err == unix.EEXIST {
			err = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_MOD, int(ufd), &ev)
		} else if err == unix.ENOENT {
			err = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, int(ufd), &ev)
		}
	})
	if ctlErr != nil || err != nil {
		return false
	}
	c.epollReg = true
	p.conns[fd] = c
	p.parked.Add(1)
	return true
}

// trim drops what a parked connection need not keep: the header maps
// (made again on resume), the last request's values, the timer.
func (c *fastConn) trim() {
	c.putBuf()
	c.resp.putOut()
	c.hdr, c.head, c.tlsSt = nil, fastHead{}, nil
	c.resp = fastResponse{c: c}
	if c.wtimer != nil {
		c.wtimer.Stop()
		c.wtimer = nil
	}
}

func (p *parker) run() {
	defer close(p.done)
	var events [128]unix.EpollEvent
	next := time.Now().Add(p.sweep)
	for {
		n, err := unix.EpollWait(p.epfd, events[:], int(p.sweep/time.Millisecond))
		if err != nil && !errors.Is(err, syscall.EINTR) {
			p.lane.log.Error("fast lane: epoll_wait failed; parked connections are closed", zap.Error(err))
			p.closeAll()
			return
		}
		for i := range max(n, 0) {
			fd := events[i].Fd
			if int(fd) == p.evfd {
				return
			}
			p.mu.Lock()
			c := p.conns[fd]
			delete(p.conns, fd)
			p.mu.Unlock()
			if c != nil {
				p.parked.Add(-1)
				go p.lane.loop(c)
			}
		}
		if now := time.Now(); !now.Before(next) {
			next = now.Add(p.sweep)
			p.expire(now)
		}
	}
}

// expire ends the parked connections whose idle deadline passed.
func (p *parker) expire(now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for fd, c := range p.conns {
		if !c.idleUntil.IsZero() && !now.Before(c.idleUntil) {
			delete(p.conns, fd)
			p.forget(c)
		}
	}
}

// forget closes a parked connection and drops it from the lane. Caller
// holds p.mu.
func (p *parker) forget(c *fastConn) {
	p.parked.Add(-1)
	if c.tc != nil {
		// Closing a TLS connection sends close_notify, which may wait up
		// to 5 s for a client that does not read: not under p.mu.
		go p.lane.drop(c, true)
		return
	}
	p.lane.drop(c, true)
}

// closeAll stops parking and closes every parked connection (shutdown).
func (p *parker) closeAll() {
	if p == nil {
		return
	}
	p.mu.Lock()
	p.closed = true
	for fd, c := range p.conns {
		delete(p.conns, fd)
		p.forget(c)
	}
	p.mu.Unlock()
}

// stop ends the loop and releases the epoll set.
func (p *parker) stop() {
	if p == nil {
		return
	}
	p.closeAll()
	var one = [8]byte{1}
	_, _ = unix.Write(p.evfd, one[:])
	<-p.done
	unix.Close(p.epfd)
	unix.Close(p.evfd)
}
