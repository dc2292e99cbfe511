package proxy

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/meridian-lb/meridian/config"
)

// Server serves a handler on plain-text listeners: HTTP/1.1 and h2c
// (HTTP/2 with prior knowledge; the h2c Upgrade dance is never honoured) on
// the same port, with the listener-wide limits of config.HTTP.
type Server struct {
	h   http.Handler
	s   config.HTTP
	log *zap.Logger
	// Grace bounds the drain on shutdown: in-flight requests (and
	// WebSockets, which get a close frame) have this long to finish before
	// their connections are closed; the caller sets it (shutdown.grace).
	// Zero closes them at once.
	Grace time.Duration

	lane atomic.Pointer[fastLane] // the lane Serve runs, once it runs one
}

// NewServer returns a server for h with the given listener settings
// (timeouts, header size, connection cap).
func NewServer(h http.Handler, s config.HTTP, logger *zap.Logger) *Server {
	if logger == nil {
		logger = zap.NewNop()
	}
	return &Server{h: h, s: s, log: logger}
}

// drainer is a handler that holds connections http.Server.Shutdown does not
// track (hijacked WebSockets); *Handler is one.
type drainer interface {
	Drain(ctx context.Context)
}

// Serve accepts connections on ln until ctx is done, then shuts down
// gracefully: it stops accepting, lets in-flight requests finish for up to
// Grace, closes WebSockets with a going-away frame, and returns nil. It
// returns an error only if serving fails.
//
// Timeouts: read_header_timeout bounds the request head (slowloris) and the
// h2c preface; idle_timeout bounds keep-alive idling and any stall of a
// request body or of a client reading the response; read_timeout, when set,
// bounds reading each whole request body. max_conns caps open connections
// (beyond it, the longest-idle keep-alive connection is closed, or
// accepting waits; see connCap), and max_header_bytes the request head.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	maxHeader := int(s.s.MaxHeaderBytes)
	ll := newConnCap(ln, s.s.MaxConns, func(c net.Conn, slot *capSlot) net.Conn { return newServerConn(c, slot, maxHeader) })
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	srv := &http.Server{
		Handler:           s.h,
		ReadHeaderTimeout: s.s.ReadHeaderTimeout.D(),
		IdleTimeout:       s.s.IdleTimeout.D(),
		MaxHeaderBytes:    int(s.s.MaxHeaderBytes),
		Protocols:         &p,
		HTTP2: &http.HTTP2Config{
			MaxConcurrentStreams: 250,
		},
		ErrorLog: log.New(&zapWriter{s.log.Named("http")}, "", 0),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if sc, ok := innerConn(c).(*serverConn); ok {
				return context.WithValue(ctx, connKey{}, sc)
			}
			return ctx
		},
		ConnState: func(c net.Conn, st http.ConnState) {
			if sc, ok := innerConn(c).(*serverConn); ok && st == http.StateIdle {
				sc.nextRequest()
			}
			ll.trackState(c, st)
		},
	}
	d, _ := s.h.(drainer)
	if s.s.Engine == config.HTTPEngineFast {
		return s.serveFast(ctx, srv, ll, d)
	}
	return serveUntil(ctx, srv, func() error { return srv.Serve(ll) }, d, s.Grace, s.log, "HTTP")
}

// serveFast is Serve with the fast lane (fast.go) taking the connections
// and net/http serving those it hands over. Shutdown is serveUntil's: stop
// accepting, let requests finish for up to Grace on both, then close.
func (s *Server) serveFast(ctx context.Context, srv *http.Server, ll *connCap, d drainer) error {
	lane := newFastLane(s.h, s.s, s.log, ll, srv, ll.Addr())
	s.lane.Store(lane)
	return serveLane(ctx, lane, srv, ll, d, s.Grace, s.log, "HTTP")
}

// parkedConns is how many connections the listener's fast lane has parked
// now (the tests read it).
func (s *Server) parkedConns() int64 { return lanePark(s.lane.Load()) }

func lanePark(l *fastLane) int64 {
	if l == nil || l.parker == nil {
		return 0
	}
	return l.parker.parked.Load()
}

// serveLane runs lane's accept loop on ll and srv on what the lane hands
// over until ctx is done, then shuts both down as serveUntil does.
func serveLane(ctx context.Context, lane *fastLane, srv *http.Server, ll *connCap, d drainer, grace time.Duration, logger *zap.Logger, what string) error {
	errc := make(chan error, 2)
	go func() { errc <- lane.acceptLoop() }()
	go func() { errc <- srv.Serve(lane.handoff) }()
	var err error
	select {
	case err = <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		if err == nil {
			err = fmt.Errorf("proxy: %s server stopped", what)
		}
	case <-ctx.Done():
	}
	lane.closing.Store(true)
	_ = ll.Close()
	gctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	var wg sync.WaitGroup
	if d != nil {
		wg.Go(func() { d.Drain(gctx) })
	}
	wg.Go(func() {
		if lane.shutdown(gctx) != nil {
			logger.Warn(what + " shutdown grace period over; closing remaining connections")
		}
	})
	if serr := srv.Shutdown(gctx); serr != nil {
		logger.Warn(what+" shutdown grace period over; closing remaining connections", zap.Error(serr))
		_ = srv.Close()
	}
	wg.Wait()
	if err != nil {
		return err
	}
	<-errc
	<-errc
	return nil
}

// serveUntil runs serve (srv's Serve or ServeTLS) until ctx is done, then
// shuts srv down: it stops accepting, lets in-flight requests finish for up
// to grace while d (when set) closes long-lived streams such as WebSockets,
// then closes what remains. It returns serve's error unless that is the
// shutdown's own.
func serveUntil(ctx context.Context, srv *http.Server, serve func() error, d drainer, grace time.Duration, logger *zap.Logger, what string) error {
	errc := make(chan error, 1)
	go func() { errc <- serve() }()
	select {
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	case <-ctx.Done():
	}
	gctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	var wg sync.WaitGroup
	if d != nil {
		wg.Go(func() { d.Drain(gctx) })
	}
	if err := srv.Shutdown(gctx); err != nil {
		logger.Warn(what+" shutdown grace period over; closing remaining connections", zap.Error(err))
		_ = srv.Close()
	}
	wg.Wait()
	<-errc
	return nil
}

// connKey finds the *serverConn in a request context.
type connKey struct{}
