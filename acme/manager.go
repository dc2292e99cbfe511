package acme

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"

	"github.com/meridian-lb/meridian/config"
)

// ALPNProto is the protocol a TLS-ALPN-01 validation offers, alone; the
// TLS listener must list it for the handshake to reach Certificate.
const ALPNProto = "acme-tls/1"

// Options are what a Manager needs beyond its config section.
type Options struct {
	// HTTPAddr and HTTPSAddr are the listen.http and listen.https
	// addresses: the CA validates HTTP-01 on the first one's port and
	// TLS-ALPN-01 on the second one's (80 and 443 facing the Internet;
	// other ports only behind a forward). With no HTTPAddr, certmagic
	// opens port 80 itself while it solves an HTTP-01 challenge.
	HTTPAddr, HTTPSAddr string
	Logger              *zap.Logger
	// OnEvent, when set, is told of issuance events (obtaining, obtained,
	// failed) for metrics; it must not block.
	OnEvent func(event, domain string)
	// RenewCheckInterval is how often certificates are checked for
	// renewal; 0 means certmagic's default (10 minutes).
	RenewCheckInterval time.Duration
}

// Manager obtains, stores and renews one tls.acme section's certificates
// and serves them, and the challenges, to Meridian's listeners.
type Manager struct {
	cfg     config.ACME
	caSum   [32]byte // of the CA file's contents
	domains []string // normalised, in config order
	magic   *certmagic.Config
	issuer  *certmagic.ACMEIssuer
	cache   *certmagic.Cache
	http01  bool
	alpn01  bool
	log     *zap.Logger
	onEvent func(event, domain string)

	mu      sync.Mutex
	cancel  context.CancelFunc
	stopped bool
	failed  map[string]string // domain → last failure to obtain or renew
}

// New prepares a Manager for cfg (defaults applied, validated): it creates
// the storage directory, reads the CA file and loads the stored
// certificates, so they serve from the first handshake. It asks the CA for
// nothing new until Start, but certmagic's maintenance, which renews
// stored certificates when due, runs from here on: every Manager must be
// stopped.
func New(cfg config.ACME, o Options) (*Manager, error) {
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if err := os.MkdirAll(cfg.Storage, 0o700); err != nil {
		return nil, fmt.Errorf("tls.acme.storage: %w", err)
	}
	var roots *x509.CertPool
	var caSum [32]byte
	if cfg.CA != "" {
		pem, err := os.ReadFile(cfg.CA)
		if err != nil {
			return nil, fmt.Errorf("tls.acme.ca: %w", err)
		}
		caSum = sha256.Sum256(pem)
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls.acme.ca %s: no certificate found", cfg.CA)
		}
	}
	m := &Manager{
		cfg:     cfg,
		caSum:   caSum,
		http01:  slices.Contains(cfg.Challenges, config.ChallengeHTTP01),
		alpn01:  slices.Contains(cfg.Challenges, config.ChallengeTLSALPN01),
		log:     o.Logger,
		onEvent: o.OnEvent,
		failed:  map[string]string{},
	}
	for _, d := range cfg.Domains {
		m.domains = append(m.domains, normalize(d))
	}
	var magic *certmagic.Config
	m.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert:   func(certmagic.Certificate) (*certmagic.Config, error) { return magic, nil },
		RenewCheckInterval: o.RenewCheckInterval,
		Logger:             o.Logger,
	})
	magic = certmagic.New(m.cache, certmagic.Config{
		Storage: &certmagic.FileStorage{Path: cfg.Storage},
		Logger:  o.Logger,
		OnEvent: m.event,
		// Events are built only for what event uses, not for every
		// handshake (tls_get_certificate).
		ShouldEmitFunc: func(e string) bool { return strings.HasPrefix(e, "cert_") || e == "cached_managed_cert" },
		// Let's Encrypt ended OCSP in 2025; stapling would only add
		// requests that fail.
		OCSP: certmagic.OCSPConfig{DisableStapling: true},
	})
	// One host serves both solvers: the listeners' when they agree, else
	// every address (the solvers' own listeners are then on other hosts
	// than Meridian's, which is what they need).
	host, httpPort := splitAddr(o.HTTPAddr)
	tlsHost, tlsPort := splitAddr(o.HTTPSAddr)
	switch {
	case o.HTTPAddr == "":
		host = tlsHost
	case o.HTTPSAddr != "" && tlsHost != host:
		host = ""
	}
	m.issuer = certmagic.NewACMEIssuer(magic, certmagic.ACMEIssuer{
		CA:     cfg.Directory,
		Email:  cfg.Email,
		Agreed: true, // configuring tls.acme is the operator's agreement
		// The solvers try to bind these first; finding Meridian's own
		// listeners there, they leave the answers to ServeHTTPChallenge
		// and Certificate.
		ListenHost:              host,
		AltHTTPPort:             httpPort,
		AltTLSALPNPort:          tlsPort,
		DisableHTTPChallenge:    !m.http01,
		DisableTLSALPNChallenge: !m.alpn01,
		TrustedRoots:            roots,
		Logger:                  o.Logger,
	})
	magic.Issuers = []certmagic.Issuer{m.issuer}
	m.magic = magic
	// Stored certificates are served from the first handshake on, not
	// only once Start's background work has loaded them.
	for _, d := range m.domains {
		if _, err := magic.CacheManagedCertificate(context.Background(), d); err != nil && !errors.Is(err, fs.ErrNotExist) {
			m.log.Warn("stored certificate unusable; a new one will be obtained", zap.String("domain", d), zap.Error(err))
		}
	}
	return m, nil
}

// splitAddr returns a listen address's host and port, port 0 when it has
// none or lets the kernel pick.
func splitAddr(addr string) (string, int) {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0
	}
	n, _ := strconv.Atoi(p)
	return h, n
}

func normalize(name string) string {
	return strings.ToLower(strings.TrimSuffix(name, "."))
}

// Matches reports whether cfg is the section the Manager was built from,
// with the same CA file contents, so a reload keeps the Manager. An
// unreadable CA file counts as unchanged: the Manager keeps the roots it
// read.
func (m *Manager) Matches(cfg config.ACME) bool {
	if !reflect.DeepEqual(m.cfg, cfg) {
		return false
	}
	if cfg.CA == "" {
		return true
	}
	b, err := os.ReadFile(cfg.CA)
	return err != nil || sha256.Sum256(b) == m.caSum
}

// ALPN reports whether the TLS listener must offer ALPNProto, that is
// whether TLS-ALPN-01 is among the challenges.
func (m *Manager) ALPN() bool { return m.alpn01 }

// Start obtains, in the background, the certificates missing from storage
// and renews those due, until Stop or ctx ends; certmagic's maintenance
// then checks for renewals every RenewCheckInterval. Calls after the first
// do nothing.
func (m *Manager) Start(ctx context.Context) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cancel != nil || m.stopped {
		return
	}
	ctx, m.cancel = context.WithCancel(ctx)
	if err := m.magic.ManageAsync(ctx, m.domains); err != nil {
		m.log.Error("starting certificate management", zap.Strings("domains", m.domains), zap.Error(err))
	}
	// ManageAsync leaves the certificates New loaded to the maintenance
	// ticker; one pass now renews those already due.
	go func() {
		if err := m.cache.RenewManagedCertificates(ctx); err != nil && ctx.Err() == nil {
			m.log.Error("renewing stored certificates", zap.Error(err))
		}
	}()
}

// Stop ends issuance, renewal and the cache's maintenance. Certificates
// already handed to connections stay valid; storage is left as it is.
func (m *Manager) Stop() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stopped {
		return
	}
	m.stopped = true
	if m.cancel != nil {
		m.cancel()
	}
	m.cache.Stop()
}

// Covers reports whether name (lower case, no trailing dot) is one of the
// managed domains.
func (m *Manager) Covers(name string) bool { return slices.Contains(m.domains, name) }

// IsChallenge reports whether a handshake is a TLS-ALPN-01 validation
// (RFC 8737: a server name and the single protocol acme-tls/1).
func IsChallenge(hello *tls.ClientHelloInfo) bool {
	return hello.ServerName != "" && len(hello.SupportedProtos) == 1 && hello.SupportedProtos[0] == ALPNProto
}

// errNotYet is returned for a managed name whose certificate has not been
// obtained (or loaded) yet.
var errNotYet = errors.New("acme: no certificate for this name yet")

// Certificate answers a handshake: the validation certificate of a
// TLS-ALPN-01 challenge, or the managed certificate for the server name.
// It fails for a name whose certificate is not there yet, so the caller can
// fall back to another.
func (m *Manager) Certificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if IsChallenge(hello) {
		if !m.alpn01 {
			return nil, errors.New("acme: tls-alpn-01 is not among tls.acme.challenges")
		}
		return m.magic.GetCertificate(hello)
	}
	name := normalize(hello.ServerName)
	if !m.Covers(name) {
		return nil, fmt.Errorf("acme: %q is not in tls.acme.domains", hello.ServerName)
	}
	return m.managed(hello, name)
}

// Fallback is the certificate of the first managed domain that has one,
// for handshakes no other certificate covers (no SNI, unknown names) when
// there are no certificate files to default to.
func (m *Manager) Fallback(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	h := *hello
	for _, d := range m.domains {
		h.ServerName = d
		if c, err := m.managed(&h, d); err == nil {
			return c, nil
		}
	}
	return nil, errNotYet
}

// managed returns the certificate for name, refusing one certmagic found
// for another name (it defaults rather than fails) and an expired one
// (after long downtime or failed renewals), so the caller can fall back to
// a certificate file.
func (m *Manager) managed(hello *tls.ClientHelloInfo, name string) (*tls.Certificate, error) {
	c, err := m.magic.GetCertificate(hello)
	if err != nil || c == nil || c.Leaf == nil || c.Leaf.VerifyHostname(name) != nil || !time.Now().Before(c.Leaf.NotAfter) {
		return nil, errNotYet
	}
	return c, nil
}

// ServeHTTPChallenge answers an HTTP-01 validation request and reports
// whether r was one; the plain listener calls it before routing.
func (m *Manager) ServeHTTPChallenge(w http.ResponseWriter, r *http.Request) bool {
	if !m.http01 || !certmagic.LooksLikeHTTPChallenge(r) {
		return false
	}
	return m.issuer.HandleHTTPChallenge(w, r)
}

// event records certmagic's issuance events: failures for Status, all of
// them for the caller's metrics. A certificate loaded into the cache (one
// another instance sharing storage obtained, say) clears a failure too.
func (m *Manager) event(_ context.Context, event string, data map[string]any) error {
	domain, _ := data["identifier"].(string)
	switch event {
	case "cached_managed_cert":
		sans, _ := data["sans"].([]string)
		m.mu.Lock()
		for _, n := range sans {
			delete(m.failed, n)
		}
		m.mu.Unlock()
		return nil
	case "cert_obtained":
		m.mu.Lock()
		delete(m.failed, domain)
		m.mu.Unlock()
	case "cert_failed":
		err, _ := data["error"].(error)
		if errors.Is(err, context.Canceled) {
			return nil // a Stop, not a failure
		}
		msg := "failed"
		if err != nil {
			msg = err.Error()
		}
		m.mu.Lock()
		m.failed[domain] = msg
		m.mu.Unlock()
	case "cert_obtaining":
	default:
		return nil
	}
	if m.onEvent != nil {
		m.onEvent(strings.TrimPrefix(event, "cert_"), domain)
	}
	return nil
}

// Status is one managed domain's state, for the admin API.
type Status struct {
	Domain   string    `json:"domain"`
	NotAfter time.Time `json:"not_after,omitzero"`
	Issuer   string    `json:"issuer,omitempty"`
	// Error is the last failure to obtain or renew, cleared by a success;
	// certmagic retries with backoff meanwhile.
	Error string `json:"error,omitempty"`
}

// Status lists the managed domains in config order.
func (m *Manager) Status() []Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Status, 0, len(m.domains))
	for _, d := range m.domains {
		st := Status{Domain: d, Error: m.failed[d]}
		for _, c := range m.cache.AllMatchingCertificates(d) {
			if c.Leaf != nil && c.Leaf.NotAfter.After(st.NotAfter) {
				st.NotAfter = c.Leaf.NotAfter
				st.Issuer = c.Leaf.Issuer.CommonName
			}
		}
		out = append(out, st)
	}
	return out
}
