package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"
	"go.uber.org/zap"
)

const (
	// maxJWKSBytes bounds a JWKS document, file or fetched. Real sets are a
	// few KiB; 1 MiB leaves room for certificate chains (x5c).
	maxJWKSBytes = 1 << 20

	// maxKeys bounds the keys used from one set. A token without a kid is
	// tried against every key of its algorithm, so this also bounds the
	// signature checks one request can cost.
	maxKeys = 64

	// maxKeySets bounds the distinct JWKS URLs a KeySets holds.
	maxKeySets = 256

	// minRSABits is the smallest RSA modulus accepted (NIST SP 800-131A).
	minRSABits = 2048

	// fetchTimeout bounds one JWKS fetch, connection to last byte.
	fetchTimeout = 10 * time.Second

	// kidRefetchEvery is the least time between two refetches triggered by
	// tokens with an unknown kid, per URL: a client sending made-up kids
	// cannot turn Meridian into a load generator against the IdP.
	kidRefetchEvery = 30 * time.Second

	// kidWait bounds how long a request with an unknown kid waits for the
	// refetch it triggered (or one already under way).
	kidWait = 2 * time.Second

	// retryBase is the wait after a first failed fetch; it doubles with each
	// failure up to the refresh interval.
	retryBase = time.Second

	// idleKeep is how long a URL set no verifier uses is kept (not
	// refreshed) in case a reload brings its route back.
	idleKeep = 10 * time.Minute

	// DefaultRefresh is the refresh interval of a URL key set when the spec
	// gives none (config.DefaultJWKSRefresh, Envoy's cache_duration).
	DefaultRefresh = 10 * time.Minute

	// MinRefresh is the shortest refresh interval accepted.
	MinRefresh = 30 * time.Second
)

// verifyKey is one usable key of a set and the algorithms it may verify.
type verifyKey struct {
	kid  string
	key  any // *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey or []byte
	algs []jose.SignatureAlgorithm
}

func (k *verifyKey) allows(alg jose.SignatureAlgorithm) bool {
	for _, a := range k.algs {
		if a == alg {
			return true
		}
	}
	return false
}

// keySet is an immutable parsed JWKS.
type keySet struct {
	keys  []*verifyKey
	byKid map[string][]*verifyKey
}

// parseJWKS parses a JWK set document. Keys that cannot be used (unknown
// type, encryption keys, weak keys, an "alg" that does not fit the key) are
// skipped and described in skipped, as RFC 7517 §5 asks; a set with no
// usable key is an error that includes those descriptions.
func parseJWKS(data []byte) (set *keySet, skipped []string, err error) {
	var doc struct {
		Keys *[]json.RawMessage `json:"keys"`
	}
	if len(strings.TrimSpace(string(data))) == 0 {
		return nil, nil, errors.New("empty")
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, nil, fmt.Errorf("not a JWK set: %w", err)
	}
	if doc.Keys == nil {
		return nil, nil, errors.New(`not a JWK set: no "keys" array`)
	}
	set = &keySet{byKid: make(map[string][]*verifyKey)}
	for i, raw := range *doc.Keys {
		if len(set.keys) == maxKeys {
			skipped = append(skipped, fmt.Sprintf("keys after the first %d usable ones ignored", maxKeys))
			break
		}
		k, err := usableKey(raw)
		if err != nil {
			skipped = append(skipped, fmt.Sprintf("key %d: %v", i, err))
			continue
		}
		set.keys = append(set.keys, k)
		set.byKid[k.kid] = append(set.byKid[k.kid], k)
	}
	if len(set.keys) == 0 {
		msg := "no usable key"
		if len(skipped) > 0 {
			n := min(len(skipped), 4)
			msg += " (" + strings.Join(skipped[:n], "; ")
			if n < len(skipped) {
				msg += fmt.Sprintf("; %d more", len(skipped)-n)
			}
			msg += ")"
		}
		return nil, skipped, errors.New(msg)
	}
	return set, skipped, nil
}

// usableKey parses one JWK and decides the algorithms it may verify.
func usableKey(raw json.RawMessage) (*verifyKey, error) {
	var jwk jose.JSONWebKey
	if err := jwk.UnmarshalJSON(raw); err != nil {
		return nil, errors.New(strings.TrimPrefix(err.Error(), "go-jose/go-jose: "))
	}
	if jwk.Use != "" && jwk.Use != "sig" {
		return nil, fmt.Errorf("kid %q: use %q, not sig", jwk.KeyID, jwk.Use)
	}
	k := &verifyKey{kid: jwk.KeyID}
	switch key := jwk.Key.(type) {
	case *rsa.PrivateKey:
		k.key = &key.PublicKey
	case *ecdsa.PrivateKey:
		k.key = &key.PublicKey
	case ed25519.PrivateKey:
		k.key = key.Public().(ed25519.PublicKey)
	default:
		k.key = key
	}
	switch key := k.key.(type) {
	case *rsa.PublicKey:
		if bits := key.N.BitLen(); bits < minRSABits {
			return nil, fmt.Errorf("kid %q: RSA key of %d bits, fewer than %d", jwk.KeyID, bits, minRSABits)
		}
		k.algs = []jose.SignatureAlgorithm{jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512}
	case *ecdsa.PublicKey:
		switch key.Curve {
		case elliptic.P256():
			k.algs = []jose.SignatureAlgorithm{jose.ES256}
		case elliptic.P384():
			k.algs = []jose.SignatureAlgorithm{jose.ES384}
		case elliptic.P521():
			k.algs = []jose.SignatureAlgorithm{jose.ES512}
		}
	case ed25519.PublicKey:
		k.algs = []jose.SignatureAlgorithm{jose.EdDSA}
	case []byte:
		// RFC 7518 §3.2: the key must be at least as long as the hash.
		for _, a := range []struct {
			alg jose.SignatureAlgorithm
			n   int
		}{{jose.HS256, 32}, {jose.HS384, 48}, {jose.HS512, 64}} {
			if len(key) >= a.n {
				k.algs = append(k.algs, a.alg)
			}
		}
		if len(k.algs) == 0 {
			return nil, fmt.Errorf("kid %q: oct key of %d bytes, shorter than HS256's 32", jwk.KeyID, len(key))
		}
	}
	if len(k.algs) == 0 {
		return nil, fmt.Errorf("kid %q: unsupported key type", jwk.KeyID)
	}
	if jwk.Algorithm != "" {
		alg := jose.SignatureAlgorithm(jwk.Algorithm)
		if !k.allows(alg) {
			return nil, fmt.Errorf("kid %q: alg %q does not fit the key", jwk.KeyID, jwk.Algorithm)
		}
		k.algs = []jose.SignatureAlgorithm{alg}
	}
	return k, nil
}

// KeySets owns the JWK sets fetched from URLs: one set per URL, shared by
// every verifier of every config generation that names it. Create one per
// process and keep it across reloads.
type KeySets struct {
	client *http.Client
	log    *zap.Logger

	// Test hooks, fixed before first use.
	now        func() time.Time
	minRefresh time.Duration
	retryBase  time.Duration

	kick    chan struct{} // capacity 1: "look at the sets again"
	running atomic.Bool

	mu   sync.Mutex
	sets map[string]*remoteSet
}

// remoteSet is the key set of one URL.
type remoteSet struct {
	url  string
	show string                 // url without a password, for logs
	keys atomic.Pointer[keySet] // nil until the first good fetch

	// Guarded by KeySets.mu.
	users     int
	refreshes map[time.Duration]int // refresh asked for → live verifiers asking
	idleSince time.Time
	due       time.Time // next fetch; zero means at once
	inFlight  bool
	settled   chan struct{} // closed (and replaced) when a fetch ends
	lastKid   time.Time     // last unknown-kid refetch
	failures  int
}

// interval is the shortest refresh live verifiers ask for.
func (s *remoteSet) interval() time.Duration {
	d := time.Duration(0)
	for r := range s.refreshes {
		if d == 0 || r < d {
			d = r
		}
	}
	if d == 0 {
		d = DefaultRefresh
	}
	return d
}

// NewKeySets returns an empty KeySets fetching with client (nil means a
// default client). Redirects are followed at most 5 times and never from
// https to plain http on a non-loopback host.
func NewKeySets(client *http.Client, logger *zap.Logger) *KeySets {
	if client == nil {
		client = &http.Client{}
	}
	if logger == nil {
		logger = zap.NewNop()
	}
	c := *client
	c.Jar = nil
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if len(via) >= 5 {
			return errors.New("stopped after 5 redirects")
		}
		return checkJWKSURL(req.URL)
	}
	return &KeySets{
		client:     &c,
		log:        logger,
		now:        time.Now,
		minRefresh: MinRefresh,
		retryBase:  retryBase,
		kick:       make(chan struct{}, 1),
		sets:       make(map[string]*remoteSet),
	}
}

// checkJWKSURL allows https, and http only to loopback hosts (for tests
// and a sidecar IdP): keys fetched in clear could be swapped in transit.
func checkJWKSURL(u *url.URL) error {
	switch u.Scheme {
	case "https":
	case "http":
		h := u.Hostname()
		if ip := net.ParseIP(h); (ip == nil || !ip.IsLoopback()) && h != "localhost" {
			return fmt.Errorf("http:// only for loopback hosts; use https:// for %q", u.Host)
		}
	default:
		return fmt.Errorf("scheme %q: want https:// (or a file path)", u.Scheme)
	}
	if u.Host == "" {
		return errors.New("no host")
	}
	return nil
}

// redact hides a password in a URL.
func redact(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return u.Redacted()
	}
	return raw
}

// wake asks Run to look at the sets again.
func (k *KeySets) wake() {
	select {
	case k.kick <- struct{}{}:
	default:
	}
}

// acquire registers a verifier of rawURL asking for refresh and returns
// the URL's set, creating it (due at once) if needed.
func (k *KeySets) acquire(rawURL string, refresh time.Duration) (*remoteSet, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	s := k.sets[rawURL]
	if s == nil {
		if len(k.sets) >= maxKeySets {
			return nil, fmt.Errorf("more than %d JWKS URLs", maxKeySets)
		}
		s = &remoteSet{url: rawURL, show: redact(rawURL), refreshes: make(map[time.Duration]int), settled: make(chan struct{})}
		k.sets[rawURL] = s
	}
	s.users++
	s.refreshes[refresh]++
	// A set revived after idling, or asking for a shorter refresh than it
	// had, may be due now: let Run decide.
	k.wake()
	return s, nil
}

// releaseArg is what the cleanup of a verifier that became unreachable
// needs to unregister it; it must not point at the verifier.
type releaseArg struct {
	k       *KeySets
	s       *remoteSet
	refresh time.Duration
}

func (r releaseArg) run() {
	r.k.mu.Lock()
	defer r.k.mu.Unlock()
	s := r.s
	s.users--
	if s.refreshes[r.refresh]--; s.refreshes[r.refresh] <= 0 {
		delete(s.refreshes, r.refresh)
	}
	if s.users == 0 {
		s.idleSince = r.k.now()
		r.k.wake()
	}
}

// track ties the registration of j with s to j's lifetime.
func (k *KeySets) track(j *JWT, s *remoteSet, refresh time.Duration) {
	runtime.AddCleanup(j, func(r releaseArg) { r.run() }, releaseArg{k, s, refresh})
}

// refetch asks for a fetch of s because a token named a kid it lacks, at
// most once per kidRefetchEvery, and returns a channel closed when the
// fetch under way (or the one just asked for) ends; nil when none is.
func (k *KeySets) refetch(s *remoteSet) <-chan struct{} {
	k.mu.Lock()
	defer k.mu.Unlock()
	if s.inFlight {
		return s.settled
	}
	now := k.now()
	if !s.lastKid.IsZero() && now.Sub(s.lastKid) < kidRefetchEvery {
		return nil
	}
	s.lastKid = now
	s.due = time.Time{}
	k.wake()
	return s.settled
}

// Run fetches and refreshes the URL key sets in use until ctx ends, then
// waits for fetches under way to stop. Call it once.
func (k *KeySets) Run(ctx context.Context) {
	if !k.running.CompareAndSwap(false, true) {
		panic("auth: KeySets.Run called twice")
	}
	defer k.running.Store(false)
	fctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		wait := k.startDue(fctx, &wg)
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-k.kick:
		case <-timer.C:
		}
	}
}

// startDue starts the fetches that are due, drops sets idle for idleKeep,
// and returns how long until the next thing to do.
func (k *KeySets) startDue(ctx context.Context, wg *sync.WaitGroup) time.Duration {
	k.mu.Lock()
	defer k.mu.Unlock()
	now := k.now()
	wait := time.Hour
	for u, s := range k.sets {
		if s.users == 0 {
			if left := s.idleSince.Add(idleKeep).Sub(now); left > 0 {
				wait = min(wait, left)
			} else if !s.inFlight {
				delete(k.sets, u)
			}
			continue
		}
		if s.inFlight {
			continue
		}
		if left := s.due.Sub(now); left > 0 {
			wait = min(wait, left)
			continue
		}
		s.inFlight = true
		wg.Go(func() { k.fetch(ctx, s) })
	}
	return wait
}

// fetch fetches s once and schedules the next fetch: a refresh after a
// success, a backoff after a failure (keeping the last good keys).
func (k *KeySets) fetch(ctx context.Context, s *remoteSet) {
	set, skipped, err := k.get(ctx, s.url)
	k.mu.Lock()
	now := k.now()
	every := max(s.interval(), k.minRefresh)
	if err == nil {
		s.keys.Store(set)
		s.failures = 0
		s.due = now.Add(every)
	} else {
		s.failures++
		back := k.retryBase << min(s.failures-1, 20)
		s.due = now.Add(min(back, every))
	}
	have := s.keys.Load()
	s.inFlight = false
	close(s.settled)
	s.settled = make(chan struct{})
	k.mu.Unlock()
	k.wake()

	switch {
	case err != nil && ctx.Err() != nil:
		// Shutting down.
	case err != nil:
		n := 0
		if have != nil {
			n = len(have.keys)
		}
		k.log.Warn("jwks fetch failed; keeping the last good keys",
			zap.String("url", s.show), zap.Error(err), zap.Int("keys_kept", n))
	default:
		k.log.Debug("jwks fetched", zap.String("url", s.show), zap.Int("keys", len(set.keys)))
		if len(skipped) > 0 {
			k.log.Warn("jwks keys skipped", zap.String("url", s.show), zap.Strings("why", skipped))
		}
	}
}

// get fetches and parses one JWKS URL.
func (k *KeySets) get(ctx context.Context, rawURL string) (*keySet, []string, error) {
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := k.client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil, nil, fmt.Errorf("status %s", resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, nil, fmt.Errorf("reading: %w", err)
	}
	if len(data) > maxJWKSBytes {
		return nil, nil, fmt.Errorf("answer larger than %s", sizeText(maxJWKSBytes))
	}
	return parseJWKS(data)
}
