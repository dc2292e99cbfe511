package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"slices"
	"strings"
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

// modernCiphers are the TLS 1.2 suites served: forward secret AEADs only.
// TLS 1.3 suites are not configurable in Go and are all modern.
var modernCiphers = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

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
// over HTTP/1.1 and HTTP/2 (ALPN). It picks certificates by SNI, re-reads
// certificate, key and client CA files when they change on disk (Run) or on
// reload (Reload) without touching open connections, keeps the last good
// pair when new files are bad, and enforces the routes' TLS policy (client
// certificates, SNI/Host agreement, HSTS) in front of the handler.
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

	gen  atomic.Pointer[tlsGen]
	port atomic.Int32

	mu     sync.Mutex // serialises reloads; guards the fields below
	tlsCfg config.TLS
	listen config.Listen
	routes []*config.Route
	// acme is the manager the current generation uses, nil without one;
	// acmeCtx is Run's context, which managers run under (nil before Run,
	// when a new manager waits for Run to start it). acmeErr is the last
	// error building a manager, so a retry that fails the same way is not
	// reported again. retired managers are stopped once mu is released:
	// stopping waits for certmagic's maintenance, which may be talking to
	// the CA. closed is set when Run ends or Close is called: no manager
	// is built after it.
	acme    *acme.Manager
	acmeCtx context.Context
	acmeErr string
	retired []*acme.Manager
	closed  bool
	pairs   map[config.CertPair]*pairState
	cas     map[string]*caFile
	status  TLSStatus
	paths   []string
	repath  chan struct{} // pokes Run to watch a new set of paths
}

// pairState is one configured pair: what is served, and what was last seen
// on disk.
type pairState struct {
	good    *loadedPair
	seen    [32]byte
	seenErr string
	err     error
}

// tlsGen is one immutable generation of everything a handshake reads.
type tlsGen struct {
	certs      *certSet
	acme       *acme.Manager // nil without tls.acme
	minVersion uint16
	base       *tls.Config // no client certificate requested
	auth       []authRoute // routes requiring client certificates
	cas        map[string]*x509.CertPool
	caCerts    map[string][]*x509.Certificate
	caPaths    []string // index → client CA file, for authConfigs' masks

	authMu      sync.Mutex
	authConfigs map[uint64]*tls.Config
}

// authRoute is the host condition of a route that requires a client
// certificate, matched like routing matches hosts.
type authRoute struct {
	any   bool
	hosts []string
	wild  []string // "*.example.com" as ".example.com"
	ca    int      // index into caPaths
}

// matches reports whether the route can take a request for host h (a
// normalised name); it mirrors routing.Route's host matching.
func (a *authRoute) matches(h string) bool {
	if a.any {
		return true
	}
	if slices.Contains(a.hosts, h) {
		return true
	}
	for _, w := range a.wild {
		if len(h) > len(w) && strings.HasSuffix(h, w) {
			return true
		}
	}
	return false
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
		pairs:    map[config.CertPair]*pairState{},
		cas:      map[string]*caFile{},
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
	if s.Grace <= 0 {
		s.Grace = config.DefaultGrace
	}
	if reg != nil {
		s.reloads = promutil.Logged(reg, s.reloads, s.log)
		s.h2errs = promutil.Logged(reg, s.h2errs, s.log)
		s.acmeEvts = promutil.Logged(reg, s.acmeEvts, s.log)
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

// ReloadFiles re-reads the current certificate, key and client CA files,
// as the watcher in Run does when they change.
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
	s.routes = cfg.Routes
	return s.rebuildLocked(start)
}

// unlock releases mu, then stops the managers the rebuild retired.
func (s *TLSServer) unlock() {
	retired := s.retired
	s.retired = nil
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
	s.closed = true
	s.acmeCtx = nil
	if s.acme != nil {
		s.retired = append(s.retired, s.acme)
		s.acme = nil
	}
}

// rebuildLocked reads what changed on disk and publishes a new generation.
// Caller holds mu.
func (s *TLSServer) rebuildLocked(start bool) error {
	changed, failed := false, false
	var errs []error
	var served []*loadedPair
	keep := map[config.CertPair]*pairState{}
	for _, p := range s.tlsCfg.Certificates {
		ps := s.pairs[p]
		if ps == nil {
			ps = &pairState{}
		}
		keep[p] = ps
		sum, rerr := pairSum(p)
		switch {
		case rerr != nil:
			if msg := rerr.Error(); msg != ps.seenErr {
				ps.seenErr, ps.seen = msg, [32]byte{}
				ps.err = fmt.Errorf("certificate %s / %s: %w", p.Cert, p.Key, rerr)
				failed = true
			}
		case sum != ps.seen || ps.good == nil && ps.err == nil:
			ps.seen, ps.seenErr = sum, ""
			lp, err := loadPair(p)
			if err != nil {
				ps.err = err
				failed = true
			} else {
				ps.good, ps.err = lp, nil
				changed = true
			}
		}
		if ps.err != nil {
			errs = append(errs, ps.err)
		}
		if ps.good != nil {
			served = append(served, ps.good)
		}
	}
	if len(keep) != len(s.pairs) {
		changed = true
	}
	s.pairs = keep

	// Client CAs of the routes that require client certificates.
	cas := map[string]*caFile{}
	var auth []authRoute
	var caPaths []string
	caIndex := map[string]int{}
	for _, r := range s.routes {
		if r.TLS == nil || r.TLS.ClientAuth != "require" || r.TLS.ClientCA == "" {
			continue
		}
		path := r.TLS.ClientCA
		if _, ok := caIndex[path]; !ok {
			caIndex[path] = len(caPaths)
			caPaths = append(caPaths, path)
			old := s.cas[path]
			cf := loadCA(path, old)
			if cf != old {
				if cf.err != nil && (old == nil || old.err == nil || old.err.Error() != cf.err.Error()) {
					failed = true
				} else if cf.err == nil {
					changed = true
				}
			}
			cas[path] = cf
			if cf.err != nil {
				errs = append(errs, cf.err)
			}
		}
		ar := authRoute{ca: caIndex[path]}
		if len(r.Match.Host) == 0 {
			ar.any = true
		}
		for _, h := range r.Match.Host {
			if strings.HasPrefix(h, "*.") {
				ar.wild = append(ar.wild, routing.NormalizeHost(h)[1:])
			} else {
				ar.hosts = append(ar.hosts, routing.NormalizeHost(h))
			}
		}
		auth = append(auth, ar)
	}
	s.cas = cas

	am, err := s.acmeCandidateLocked()
	if err != nil {
		errs = append(errs, err)
		if msg := err.Error(); msg != s.acmeErr {
			s.acmeErr = msg
			failed = true
		}
	} else {
		s.acmeErr = ""
	}

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
	if am != s.acme {
		if s.acme != nil {
			s.retired = append(s.retired, s.acme)
		}
		s.acme = am
		if am != nil && s.acmeCtx != nil {
			am.Start(s.acmeCtx)
		}
		changed = true
	}

	g := &tlsGen{
		certs:       set,
		acme:        s.acme,
		minVersion:  tls.VersionTLS12,
		auth:        auth,
		cas:         map[string]*x509.CertPool{},
		caCerts:     map[string][]*x509.Certificate{},
		caPaths:     caPaths,
		authConfigs: map[uint64]*tls.Config{},
	}
	if s.tlsCfg.MinVersion == "1.3" {
		g.minVersion = tls.VersionTLS13
	}
	for p, cf := range cas {
		g.cas[p] = cf.pool
		g.caCerts[p] = cf.certs
	}
	g.base = g.serverConfig(nil)
	s.gen.Store(g)

	s.status = TLSStatus{OK: len(errs) == 0, At: time.Now()}
	if len(errs) > 0 {
		s.status.Error = errors.Join(errs...).Error()
	}
	for _, p := range s.tlsCfg.Certificates {
		ps := s.pairs[p]
		cs := CertStatus{Cert: p.Cert, Key: p.Key}
		if ps.good != nil {
			cs.Names = certNames(ps.good.cert.Leaf)
			cs.NotAfter = ps.good.cert.Leaf.NotAfter
		}
		if ps.err != nil {
			cs.Error = ps.err.Error()
		}
		s.status.Certificates = append(s.status.Certificates, cs)
	}

	switch {
	case failed:
		s.reloads.WithLabelValues("failure").Inc()
		s.log.Error("TLS settings rejected; the previous certificates keep serving", zap.Error(errors.Join(errs...)))
	case changed && !start:
		s.reloads.WithLabelValues("success").Inc()
		s.log.Info("TLS certificates reloaded", zap.Int("certificates", len(served)))
	}

	paths := make([]string, 0, 2*len(s.tlsCfg.Certificates)+len(caPaths))
	for _, p := range s.tlsCfg.Certificates {
		paths = append(paths, p.Cert, p.Key)
	}
	paths = append(paths, caPaths...)
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

// acmeCandidateLocked returns the manager the next generation should use
// for tls.acme: the current one while the section (and its CA file) is
// unchanged, a new, unstarted one when it changed, nil without a section.
// A section whose manager cannot be built keeps the current one, with the
// error. Caller holds mu.
func (s *TLSServer) acmeCandidateLocked() (*acme.Manager, error) {
	want := s.tlsCfg.ACME
	switch {
	case want == nil:
		return nil, nil
	case s.acme != nil && s.acme.Matches(*want):
		return s.acme, nil
	case s.closed:
		return s.acme, errors.New("tls.acme: the TLS server has stopped")
	}
	m, err := acme.New(*want, acme.Options{
		HTTPAddr:  s.listen.HTTP,
		HTTPSAddr: s.listen.HTTPS,
		Logger:    s.log.Named("acme"),
		OnEvent:   func(event, domain string) { s.acmeEvts.WithLabelValues(event, domain).Inc() },
	})
	if err != nil {
		return s.acme, err
	}
	return m, nil
}

// ServeACMEChallenge answers an ACME HTTP-01 validation request, which
// reaches the plain listener, and reports whether r was one.
func (s *TLSServer) ServeACMEChallenge(w http.ResponseWriter, r *http.Request) bool {
	g := s.gen.Load()
	return g != nil && g.acme != nil && g.acme.ServeHTTPChallenge(w, r)
}

// serverConfig is the handshake config of a generation: for names no route
// asks a client certificate of (cas nil), or asking for one signed by any of
// cas. Client certificates are requested, not verified, at the handshake:
// each route checks them against its own CA and answers 403, so a route
// without client auth on the same name still works without one.
func (g *tlsGen) serverConfig(cas *x509.CertPool) *tls.Config {
	c := &tls.Config{
		MinVersion:     g.minVersion,
		CipherSuites:   modernCiphers,
		NextProtos:     []string{"h2", "http/1.1"},
		GetCertificate: g.getCertificate,
	}
	if g.acme != nil && g.acme.ALPN() {
		// TLS-ALPN-01 validations offer only this protocol: without it in
		// the list their handshakes would fail before GetCertificate.
		c.NextProtos = append(c.NextProtos, acme.ALPNProto)
	}
	if cas != nil {
		c.ClientAuth = tls.RequestClientCert
		c.ClientCAs = cas // sent as acceptable issuers, a hint for clients
		// A session resumed from a ticket issued for a name that asked no
		// certificate would carry none; full handshakes keep it simple.
		c.SessionTicketsDisabled = true
	}
	return c
}

// getCertificate picks the certificate for a handshake by SNI: an ACME
// validation's, then the ACME certificate of a tls.acme domain, then the
// files' (exact, wildcard, default), then, with no files to default to,
// the first ACME domain's.
func (g *tlsGen) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	name := routing.NormalizeHost(hello.ServerName)
	m := g.acme
	if m != nil {
		if acme.IsChallenge(hello) {
			return m.Certificate(hello)
		}
		if m.Covers(name) {
			if c, err := m.Certificate(hello); err == nil {
				return c, nil
			}
		}
	}
	if c := g.certs.lookup(name); c != nil {
		return c, nil
	}
	if m != nil && !g.certs.failUnknown {
		if c, err := m.Fallback(hello); err == nil {
			return c, nil
		}
	}
	return nil, fmt.Errorf("tls: no certificate for server name %q", hello.ServerName)
}

// configFor returns the handshake config for a server name: the base one,
// or one that requests a client certificate when a route that can take
// requests for the name requires one.
func (g *tlsGen) configFor(name string) *tls.Config {
	if len(g.auth) == 0 {
		return g.base
	}
	var mask uint64
	for i := range g.auth {
		a := &g.auth[i]
		// Without SNI (clients that connect by address) any route may be
		// asked for, so every CA is.
		if name == "" || a.matches(name) {
			if a.ca < 64 {
				mask |= 1 << a.ca
			} else {
				mask = ^uint64(0)
			}
		}
	}
	if mask == 0 {
		return g.base
	}
	g.authMu.Lock()
	defer g.authMu.Unlock()
	if c := g.authConfigs[mask]; c != nil {
		return c
	}
	pool := x509.NewCertPool()
	for i, p := range g.caPaths {
		if i >= 64 || mask&(1<<i) != 0 {
			for _, ca := range g.caCerts[p] {
				pool.AddCert(ca)
			}
		}
	}
	c := g.serverConfig(pool)
	g.authConfigs[mask] = c
	return c
}

// tlsConfig is the listener's config: every handshake gets its
// generation's config for its server name, so a reload applies to the next
// handshake and never to an open connection.
func (s *TLSServer) tlsConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2", "http/1.1"},
		GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			g := s.gen.Load()
			return g.configFor(routing.NormalizeHost(hello.ServerName)), nil
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
	if s.acme != nil {
		st.ACME = s.acme.Status()
		for _, a := range st.ACME {
			if a.Error != "" {
				st.OK = false
			}
		}
	}
	return st
}

// Port is the bound port of the listener, 0 before Serve. The plain
// listener's HTTPS redirects point at it.
func (s *TLSServer) Port() int { return int(s.port.Load()) }

// Run watches the certificate, key and client CA files (their directories,
// like the config file: renames and symlink swaps count) and reloads them
// when they change, until ctx is done. A reload that changes the files in
// use moves the watch.
func (s *TLSServer) Run(ctx context.Context) error {
	s.mu.Lock()
	if !s.closed {
		s.acmeCtx = ctx
		if s.acme != nil {
			s.acme.Start(ctx)
		}
	}
	s.mu.Unlock()
	defer s.Close()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		s.mu.Lock()
		paths := slices.Clone(s.paths)
		s.mu.Unlock()
		wctx, cancel := context.WithCancel(ctx)
		if len(paths) > 0 {
			w := &config.Watcher{Paths: paths, Logger: s.log, Debounce: certDebounce}
			wg.Go(func() {
				if err := w.Run(wctx, func() { _ = s.ReloadFiles() }); err != nil {
					s.log.Error("certificate watcher stopped; files reload only with the config", zap.Error(err))
				}
			})
			// Catch changes made before the watch started.
			_ = s.ReloadFiles()
		}
		select {
		case <-ctx.Done():
			cancel()
			return nil
		case <-s.repath:
			cancel()
			wg.Wait()
		}
	}
}

// Serve accepts TLS connections on ln until ctx is done, then shuts down
// like Server.Serve: stop accepting, let in-flight requests finish for up to
// Grace, close WebSockets with a going-away frame, return nil.
func (s *TLSServer) Serve(ctx context.Context, ln net.Listener) error {
	if a, ok := ln.Addr().(*net.TCPAddr); ok {
		s.port.Store(int32(a.Port))
	}
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetHTTP2(true)
	srv := &http.Server{
		Handler:           s.h,
		TLSConfig:         s.tlsConfig(),
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
	if srv.ReadHeaderTimeout <= 0 {
		// The handshake is bounded by the same timeout as a request head.
		srv.ReadHeaderTimeout = config.DefaultReadHeaderTimeout
	}
	var d drainer
	if s.ph != nil {
		d = s.ph
	}
	return serveUntil(ctx, srv, func() error { return srv.ServeTLS(cl, "", "") }, d, s.Grace, s.log, "HTTPS")
}
