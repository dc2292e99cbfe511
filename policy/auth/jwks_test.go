package auth

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// urlJWT is a verifier of the set at srv.
func urlJWT(t testing.TB, k *KeySets, srv *jwksServer) *JWT {
	t.Helper()
	j, err := k.NewJWT(JWTSpec{JWKS: srv.URL + "/jwks.json", Leeway: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func hasKeys(j *JWT) func() bool { return func() bool { return j.keys() != nil } }

func TestRemoteJWKSBeforeFirstFetch(t *testing.T) {
	srv := newJWKSServer(t, jwksJSON(t, pubJWK("ec", testEC())))
	k := NewKeySets(srv.Client(), nil)
	j := urlJWT(t, k, srv)
	now := time.Now()
	tok := sign(t, jose.ES256, testEC(), "ec", claimsAt(now))
	if _, reason, ok := verifyTok(j, tok, now); ok || reason != ReasonNoKeys {
		t.Fatalf("before Run: ok=%v reason %q, want %q", ok, reason, ReasonNoKeys)
	}
	if n := srv.hits.Load(); n != 0 {
		t.Fatalf("%d fetches before Run", n)
	}
	// The fetch kicked by NewJWT waits for Run, which does it at once.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); k.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitFor(t, "first fetch", hasKeys(j))
	if _, reason, ok := verifyTok(j, tok, now); !ok {
		t.Fatal(reason)
	}
}

func TestRemoteJWKSUnknownKidRefetch(t *testing.T) {
	oldKey := testEC()
	newKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	srv := newJWKSServer(t, jwksJSON(t, pubJWK("old", oldKey)))
	k, clk := runKeySets(t, srv.Client(), nil)
	j := urlJWT(t, k, srv)
	waitFor(t, "first fetch", hasKeys(j))
	if n := srv.hits.Load(); n != 1 {
		t.Fatalf("%d fetches, want 1", n)
	}
	now := time.Now()
	rotated := sign(t, jose.ES256, newKey, "new", claimsAt(now))

	// An unknown kid refetches (the server does not have it yet).
	if _, reason, _ := verifyTok(j, rotated, now); reason != ReasonUnknownKey {
		t.Fatalf("reason %q, want %q", reason, ReasonUnknownKey)
	}
	if n := srv.hits.Load(); n != 2 {
		t.Fatalf("%d fetches after an unknown kid, want 2", n)
	}
	// The IdP publishes the key; within 30 s no more refetches are made,
	// however many unknown kids arrive.
	srv.set(http.StatusOK, jwksJSON(t, pubJWK("old", oldKey), pubJWK("new", newKey)))
	clk.advance(29 * time.Second)
	for range 5 {
		if _, reason, _ := verifyTok(j, rotated, now); reason != ReasonUnknownKey {
			t.Fatalf("reason %q, want %q", reason, ReasonUnknownKey)
		}
	}
	if n := srv.hits.Load(); n != 2 {
		t.Fatalf("%d fetches within 30 s, want 2 (rate limited)", n)
	}
	// After 30 s the next unknown kid refetches and the request that asked
	// waits for it: the rotated token passes on the first try.
	clk.advance(2 * time.Second)
	if _, reason, ok := verifyTok(j, rotated, now); !ok {
		t.Fatalf("rotated key refused after refetch: %s", reason)
	}
	if n := srv.hits.Load(); n != 3 {
		t.Fatalf("%d fetches, want 3", n)
	}
	// Known kids never refetch.
	for range 3 {
		verifyTok(j, sign(t, jose.ES256, oldKey, "old", claimsAt(now)), now)
	}
	if n := srv.hits.Load(); n != 3 {
		t.Fatalf("%d fetches after known kids, want 3", n)
	}
}

func TestRemoteJWKSFailureKeepsLastGood(t *testing.T) {
	srv := newJWKSServer(t, jwksJSON(t, pubJWK("ec", testEC())))
	// No retries on their own: every fetch here is one the test asked for.
	k, clk := runKeySets(t, srv.Client(), func(k *KeySets) { k.retryBase = time.Hour })
	j := urlJWT(t, k, srv)
	waitFor(t, "first fetch", hasKeys(j))
	now := time.Now()
	good := sign(t, jose.ES256, testEC(), "ec", claimsAt(now))
	unknown := sign(t, jose.ES256, testEC(), "unknown", claimsAt(now))
	for i, bad := range []struct {
		status int
		body   []byte
	}{
		{http.StatusInternalServerError, []byte("oops")},
		{http.StatusOK, []byte("{not json")},
		{http.StatusOK, []byte(`{"keys":[]}`)},
		{http.StatusOK, append(jwksJSON(t, pubJWK("ec", testEC())), bytes.Repeat([]byte(" "), maxJWKSBytes)...)},
	} {
		srv.set(bad.status, bad.body)
		clk.advance(kidRefetchEvery)
		before := srv.hits.Load()
		verifyTok(j, unknown, now) // forces a refetch, which fails
		if n := srv.hits.Load(); n != before+1 {
			t.Fatalf("case %d: %d fetches, want %d", i, n, before+1)
		}
		if _, reason, ok := verifyTok(j, good, now); !ok {
			t.Fatalf("case %d: the last good set was lost: %s", i, reason)
		}
	}
}

func TestRemoteJWKSGetErrors(t *testing.T) {
	srv := newJWKSServer(t, nil)
	k := NewKeySets(srv.Client(), nil)
	for _, tc := range []struct {
		status int
		body   []byte
		want   string
	}{
		{http.StatusNotFound, nil, "status 404 Not Found"},
		{http.StatusOK, bytes.Repeat([]byte(" "), maxJWKSBytes+1), "answer larger than 1 MiB"},
		{http.StatusOK, []byte(`{"keys":[{"kty":"EC"}]}`), "no usable key (key 0:"},
	} {
		srv.set(tc.status, tc.body)
		_, _, err := k.get(context.Background(), srv.URL)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("got %v, want %q", err, tc.want)
		}
	}
}

func TestRemoteJWKSShared(t *testing.T) {
	srv := newJWKSServer(t, jwksJSON(t, pubJWK("ec", testEC())))
	k, _ := runKeySets(t, srv.Client(), nil)
	a := urlJWT(t, k, srv)
	b, err := k.NewJWT(JWTSpec{JWKS: srv.URL + "/jwks.json", Issuer: "other"})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "first fetch", hasKeys(a))
	if a.remote != b.remote {
		t.Fatal("two verifiers of one URL have two sets")
	}
	if !hasKeys(b)() {
		t.Fatal("second verifier has no keys")
	}
	if n := srv.hits.Load(); n != 1 {
		t.Fatalf("%d fetches for one URL, want 1", n)
	}
	k.mu.Lock()
	users := a.remote.users
	k.mu.Unlock()
	if users != 2 {
		t.Fatalf("users %d, want 2", users)
	}
	runtime.KeepAlive(b)
}

func TestRemoteJWKSRefreshAndRetry(t *testing.T) {
	srv := newJWKSServer(t, nil)
	srv.set(http.StatusServiceUnavailable, nil)
	k, _ := runKeySets(t, srv.Client(), func(k *KeySets) {
		k.now = time.Now
		k.minRefresh = time.Millisecond
		k.retryBase = time.Millisecond
	})
	j, err := k.NewJWT(JWTSpec{JWKS: srv.URL, Refresh: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	// Failures are retried with backoff until the IdP answers...
	waitFor(t, "a few failed fetches", func() bool { return srv.hits.Load() >= 3 })
	srv.set(http.StatusOK, jwksJSON(t, pubJWK("ec", testEC())))
	waitFor(t, "a successful retry", hasKeys(j))
	// ...and a good set is refreshed every Refresh.
	n := srv.hits.Load()
	waitFor(t, "two refreshes", func() bool { return srv.hits.Load() >= n+2 })
	runtime.KeepAlive(j)
}

func TestRemoteJWKSReleasedWhenUnused(t *testing.T) {
	srv := newJWKSServer(t, jwksJSON(t, pubJWK("ec", testEC())))
	k, clk := runKeySets(t, srv.Client(), nil)
	url := srv.URL + "/jwks.json"
	func() {
		j := urlJWT(t, k, srv)
		waitFor(t, "first fetch", hasKeys(j))
	}()
	users := func() int {
		k.mu.Lock()
		defer k.mu.Unlock()
		if s := k.sets[url]; s != nil {
			return s.users
		}
		return -1
	}
	waitFor(t, "the verifier to be collected", func() bool {
		runtime.GC()
		return users() == 0
	})
	// Idle sets are kept a while for a reload that brings the route back...
	func() {
		if !hasKeys(urlJWT(t, k, srv))() {
			t.Fatal("a revived set lost its keys")
		}
	}()
	waitFor(t, "the verifier to be collected again", func() bool {
		runtime.GC()
		return users() == 0
	})
	// ...then dropped.
	clk.advance(idleKeep + time.Second)
	k.wake()
	waitFor(t, "the idle set to be dropped", func() bool { return users() == -1 })
	if n := srv.hits.Load(); n != 1 {
		t.Fatalf("%d fetches, want 1", n)
	}
}
