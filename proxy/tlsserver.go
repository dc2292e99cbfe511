package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"log"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/meridian-lb/meridian/acme"
	"github.com/meridian-lb/meridian/config"
	"github.com/meridian-lb/meridian/internal/promutil"
	"github.com/meridian-lb/meridian/routing"
)

// certDebounce is the quiet time after a change to a certificate, key or
// client CA file before they are re-read: tools replace the certificate and
// the key one after the other, and a reload between the two would reject
// the mismatched pair once.
const certDebounce = 250 * time.Millisecond

// HTTP/2 limits of the TLS listener. Go's server already bounds rapid
// reset (CVE-2023-44487: at most MaxConcurrentStreams handlers run per
// connection, and a connection queueing more than four times that is closed
// with ENHANCE_YOUR_CALM), CONTINUATION floods (CVE-2023-45288) and HPACK
// bombs; these make the bounds explicit and small.
const (
	h2MaxStreams       = 250
	h2HeaderTableSize  = 4096
	h2WriteByteTimeout = 30 * time.Second
)

// TLSServer terminates TLS on listen.https and serves the proxy handler
// over HTTP/1.1 and HTTP/2 (ALPN). It composes three parts: the
// certificate store (certStore: files by SNI, re-read when they change on
// disk (Run) or on reload (Reload), the last good pair kept when new files
// are bad), the ACME lifecycle (acmeLife), and the handshake (tlsGen,
// handshake.go), which publishes both as one immutable generation and asks
// for client certificates as the routes' compiled TLS policy says. Open
// connections keep what they negotiated. In front of the handler it
// enforces that policy per request (client certificates, SNI/Host
// agreement, HSTS; tlspolicy.go).
type TLSServer struct {
	h        http.Handler // the policy wrapper around ph
	ph       *Handler
	settings config.HTTP
	log      *zap.Logger
	reloads  *prometheus.CounterVec
	h2errs   *prometheus.CounterVec
	acmeEvts *prometheus.CounterVec
	// Grace bounds the drain on shutdown, as Server.Grace does.
	Grace time.Duration

	lane atomic.Pointer[fastLane] // the lane Serve runs, once it runs one

	gen  atomic.Pointer[tlsGen]
	port atomic.Int32

	mu     sync.Mutex // serialises reloads; guards the fields below
	tlsCfg config.TLS
	listen config.Listen
	certs  certStore     // the certificate files as last read
	acme   acmeLife      // the tls.acme manager's lifecycle
	status TLSStatus     // of the last rebuild
	paths  []string      // the files Run watches
	repath chan struct{} // pokes Run to watch a new set of paths
}

// NewTLSServer loads cfg's certificates and builds the TLS listener's
// server around h. It fails when a configured pair cannot be loaded, or
// when nothing could serve a handshake: unlike a reload, a start has no last
// good certificate to keep. Metrics go to reg (nil registers nothing).
func NewTLSServer(h *Handler, cfg *config.Config, logger *zap.Logger, reg prometheus.Registerer) (*TLSServer, error) {
	if logger == nil {
		logger = zap.NewNop()
	}
	s := &TLSServer{
		ph:       h,
		settings: cfg.HTTP,
		log:      logger.Named("tls"),
		Grace:    cfg.Shutdown.Grace.D(),
		certs:    certStore{pairs: map[config.CertPair]*pairState{}},
		repath:   make(chan struct{}, 1),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_tls_cert_reloads_total",
			Help: "Certificate, key and client CA file reloads by result (success, failure); a failure keeps the previous files.",
		}, []string{"result"}),
		h2errs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_http2_errors_total",
			Help: "HTTP/2 protocol errors on the TLS listener by type, e.g. too_many_early_resets (rapid reset).",
		}, []string{"type"}),
		acmeEvts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_acme_events_total",
			Help: "ACME certificate events by type (obtaining, obtained, failed) and domain; renewals count as obtaining and obtained.",
		}, []string{"event", "domain"}),
	}
	if reg != nil {
		s.reloads = promutil.Logged(reg, s.reloads, s.log)
		s.h2errs = promutil.Logged(reg, s.h2errs, s.log)
		s.acmeEvts = promutil.Logged(reg, s.acmeEvts, s.log)
	}
	s.acme.newManager = func(want config.ACME) (*acme.Manager, error) {
		return acme.New(want, acme.Options{
			HTTPAddr:  s.listen.HTTP,
			HTTPSAddr: s.listen.HTTPS,
			Logger:    s.log.Named("acme"),
			OnEvent:   func(event, domain string) { s.acmeEvts.WithLabelValues(event, domain).Inc() },
		})
	}
	s.h = &policyHandler{s: s, next: h}
	if err := s.reload(cfg, true); err != nil {
		return nil, err
	}
	return s, nil
}

// Reload applies a new config's tls: section and routes: new or changed
// certificate files are read, the routes' client certificate policy is
// rebuilt. Open connections keep their certificate; new handshakes see the
// new set. A pair that fails to load keeps its previous version (a new pair
// is left out), which Status and the reload metric report; Reload returns
// that error. The rebuild loop calls it for every new table.
func (s *TLSServer) Reload(cfg *config.Config) error {
	return s.reload(cfg, false)
}

// ReloadFiles re-reads the current certificate and key files, as the
// watcher in Run does when they change.
func (s *TLSServer) ReloadFiles() error {
	s.mu.Lock()
	defer s.unlock()
	return s.rebuildLocked(false)
}

func (s *TLSServer) reload(cfg *config.Config, start bool) error {
	s.mu.Lock()
	defer s.unlock()
	s.tlsCfg = cfg.TLS
	if start {
		// Listeners are bound once; ACME challenges keep arriving where
		// they are, whatever a reload says.
		s.listen = cfg.Listen
	}
	return s.rebuildLocked(start)
}

// unlock releases mu, then stops the managers the rebuild retired:
// stopping waits for certmagic's maintenance, which may be talking to the
// CA.
func (s *TLSServer) unlock() {
	retired := s.acme.takeRetired()
	s.mu.Unlock()
	for _, m := range retired {
		m.Stop()
	}
}

// Close stops the ACME manager of a server whose Run will not be called
// (a start that failed after NewTLSServer); Run's end does the same.
func (s *TLSServer) Close() {
	s.mu.Lock()
	defer s.unlock()
	s.acme.close()
}

// rebuildLocked reads what changed on disk and publishes a new generation.
// Caller holds mu.
func (s *TLSServer) rebuildLocked(start bool) error {
	served, errs, changed, failed := s.certs.update(s.tlsCfg.Certificates)

	am, err := s.acme.candidate(s.tlsCfg.ACME)
	if err != nil {
		errs = append(errs, err)
	}
	failed = s.acme.noteErr(err) || failed

	set := buildCertSet(served, s.tlsCfg.UnknownSNI == "fail")
	if set.def == nil && am == nil {
		// Without ACME nothing could answer a handshake. (With it, names
		// wait for their certificates.)
		err := errors.Join(append(errs, errors.New("no usable certificate"))...)
		if start {
			return err
		}
		if old := s.gen.Load(); old != nil {
			// Keep serving the previous set, and manager, rather than
			// nothing.
			set, am = old.certs, old.acme
		}
	}
	if start && len(errs) > 0 {
		if am != nil {
			am.Stop()
		}
		return errors.Join(errs...)
	}
	changed = s.acme.adopt(am) || changed

	g := &tlsGen{
		certs:      set,
		acme:       s.acme.cur,
		minVersion: tls.VersionTLS12,
	}
	if s.tlsCfg.MinVersion == "1.3" {
		g.minVersion = tls.VersionTLS13
	}
	g.base = g.serverConfig(nil)
	s.gen.Store(g)

	s.status = TLSStatus{OK: len(errs) == 0, At: time.Now()}
	if len(errs) > 0 {
		s.status.Error = errors.Join(errs...).Error()
	}
	s.status.Certificates = s.certs.statuses(s.tlsCfg.Certificates)

	switch {
	case failed:
		s.reloads.WithLabelValues("failure").Inc()
		s.log.Error("TLS settings rejected; the previous certificates keep serving", zap.Error(errors.Join(errs...)))
	case changed && !start:
		s.reloads.WithLabelValues("success").Inc()
		s.log.Info("TLS certificates reloaded", zap.Int("certificates", len(served)))
	}

	paths := make([]string, 0, 2*len(s.tlsCfg.Certificates))
	for _, p := range s.tlsCfg.Certificates {
		paths = append(paths, p.Cert, p.Key)
	}
	if !slices.Equal(paths, s.paths) {
		s.paths = paths
		select {
		case s.repath <- struct{}{}:
		default:
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	return nil
}

// ServeACMEChallenge answers an ACME HTTP-01 validation request, which
// reaches the plain listener, and reports whether r was one.
func (s *TLSServer) ServeACMEChallenge(w http.ResponseWriter, r *http.Request) bool {
	g := s.gen.Load()
	return g != nil && g.acme != nil && g.acme.ServeHTTPChallenge(w, r)
}

// tlsConfig is the listener's config: every handshake gets its
// generation's config for its server name, so a reload applies to the next
// handshake and never to an open connection.
func (s *TLSServer) tlsConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2", "http/1.1"},
		GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			var pol *tlsPolicy
			if st := s.ph.state.Load(); st != nil {
				pol = st.tls
			}
			return s.gen.Load().configFor(pol, routing.NormalizeHost(hello.ServerName)), nil
		},
	}
}

// Status reports the certificates served and the last reload's problems,
// for the admin API.
func (s *TLSServer) Status() TLSStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.status
	st.Certificates = slices.Clone(st.Certificates)
	if s.acme.cur != nil {
		st.ACME = s.acme.cur.Status()
		for _, a := range st.ACME {
			if a.Error != "" {
				st.OK = false
			}
		}
	}
	return st
}

// parkedConns is how many connections the listener's fast lane has parked
// now (the tests read it).
func (s *TLSServer) parkedConns() int64 { return lanePark(s.lane.Load()) }

// Port is the bound port of the listener, 0 before Serve. The plain
// listener's HTTPS redirects point at it.
func (s *TLSServer) Port() int { return int(s.port.Load()) }

// Run watches the certificate and key files (their directories, like the
// config file: renames and symlink swaps count) and reloads them when they
// change, until ctx is done. A reload that changes the files in use moves
// the watch. Client CA files are part of the compiled table: the App
// watches them with the pools' TLS files and recompiles.
func (s *TLSServer) Run(ctx context.Context) error {
	s.mu.Lock()
	s.acme.start(ctx)
	s.mu.Unlock()
	defer s.Close()
	paths := func() []string {
		s.mu.Lock()
		defer s.mu.Unlock()
		return slices.Clone(s.paths)
	}
	config.WatchMoving(ctx, config.Watcher{Logger: s.log, Debounce: certDebounce}, paths, s.repath,
		func() { _ = s.ReloadFiles() },
		func(err error) {
			s.log.Error("certificate watcher stopped; files reload only with the config", zap.Error(err))
		})
	return nil
}

// Serve accepts TLS connections on ln until ctx is done, then shuts down
// like Server.Serve: stop accepting, let in-flight requests finish for up to
// Grace, close WebSockets with a going-away frame, return nil. With
// http.engine fast the fast lane does the handshakes and serves HTTP/1.1,
// parking idle connections, and net/http serves h2 and what the lane hands
// over (fasttls.go); with std net/http serves every connection.
func (s *TLSServer) Serve(ctx context.Context, ln net.Listener) error {
	if a, ok := ln.Addr().(*net.TCPAddr); ok {
		s.port.Store(int32(a.Port))
	}
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetHTTP2(true)
	srv := &http.Server{
		Handler:   s.h,
		TLSConfig: s.tlsConfig(),
		// Also bounds the TLS handshake: net/http gives it the smallest
		// of its read and write timeouts.
		ReadHeaderTimeout: s.settings.ReadHeaderTimeout.D(),
		IdleTimeout:       s.settings.IdleTimeout.D(),
		MaxHeaderBytes:    int(s.settings.MaxHeaderBytes),
		Protocols:         &p,
		HTTP2: &http.HTTP2Config{
			MaxConcurrentStreams:      h2MaxStreams,
			MaxDecoderHeaderTableSize: h2HeaderTableSize,
			MaxEncoderHeaderTableSize: h2HeaderTableSize,
			WriteByteTimeout:          h2WriteByteTimeout,
			CountError:                func(t string) { s.h2errs.WithLabelValues(t).Inc() },
		},
		ErrorLog: log.New(&zapWriter{s.log}, "", 0),
		ConnContext: func(ctx context.Context, _ net.Conn) context.Context {
			return context.WithValue(ctx, connAuthKey{}, &connAuth{})
		},
	}
	cl := newConnCap(ln, s.settings.MaxConns, nil)
	srv.ConnState = cl.trackState
	var d drainer
	if s.ph != nil {
		d = s.ph
	}
	if s.settings.Engine == config.HTTPEngineFast {
		// The fast lane does the handshakes and serves HTTP/1.1
		// (fasttls.go); srv serves h2 and what the lane hands over.
		lane := newFastLane(s.h, s.settings, s.log, cl, srv, cl.Addr())
		s.lane.Store(lane)
		// A copy, as ServeTLS makes: srv.Serve configures HTTP/2 on
		// srv.TLSConfig while the lane's handshakes read theirs.
		lane.tlsConf = srv.TLSConfig.Clone()
		lane.tlsWait = tlsHandshakeTimeout(srv)
		lane.errLog = srv.ErrorLog
		lane.connCtx = srv.ConnContext
		return serveLane(ctx, lane, srv, cl, d, s.Grace, s.log, "HTTPS")
	}
	return serveUntil(ctx, srv, func() error { return srv.ServeTLS(cl, "", "") }, d, s.Grace, s.log, "HTTPS")
}

// tlsHandshakeTimeout is net/http's bound on a TLS handshake: the smallest
// of srv's positive read header, read and write timeouts.
func tlsHandshakeTimeout(srv *http.Server) time.Duration {
	var d time.Duration
	for _, v := range []time.Duration{srv.ReadHeaderTimeout, srv.ReadTimeout, srv.WriteTimeout} {
		if v > 0 && (d == 0 || v < d) {
			d = v
		}
	}
	return d
}
