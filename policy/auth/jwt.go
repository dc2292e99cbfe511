package auth

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// maxTokenBytes bounds a bearer token. Tokens with a long groups claim
// reach a few KiB; 16 KiB is what most proxies allow for a whole header.
const maxTokenBytes = 16 << 10

// Reasons Verify gives for a refusal. They are short, fixed, and reveal
// nothing the client did not send, so they may be shown to it (as the
// RFC 6750 error_description) and used as metric labels.
const (
	ReasonMissing        = "missing bearer token"
	ReasonMalformed      = "malformed token"
	ReasonTooLarge       = "token too large"
	ReasonAlgorithm      = "unsupported algorithm"
	ReasonAlgorithmKey   = "algorithm does not match key"
	ReasonNoKeys         = "signing keys not available yet"
	ReasonUnknownKey     = "unknown signing key"
	ReasonBadSignature   = "bad signature"
	ReasonExpired        = "token expired"
	ReasonNotYetValid    = "token not valid yet"
	ReasonWrongIssuer    = "wrong issuer"
	ReasonWrongAudience  = "wrong audience"
	ReasonMalformedClaim = "malformed claims"
)

// signatureAlgs are every algorithm any key type may verify; which one a
// token may use is decided by its key. Never modified.
var signatureAlgs = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512, jose.EdDSA,
	jose.HS256, jose.HS384, jose.HS512,
}

// JWTSpec describes one JWT verifier.
type JWTSpec struct {
	// JWKS is a file path, or an https:// URL (http:// only for a
	// loopback host).
	JWKS string
	// Issuer, when set, is the iss a token must carry.
	Issuer string
	// Audiences, when set, must include one of the token's aud values.
	Audiences []string
	// Claims maps a top-level claim name to the request header it is
	// copied to.
	Claims map[string]string
	// Leeway is the tolerance on exp and nbf, for clock skew.
	Leeway time.Duration
	// Refresh is how often a URL key set is refetched; 0 means
	// DefaultRefresh, and it may not be below MinRefresh.
	Refresh time.Duration
}

// claimHeader is one claims-to-headers mapping.
type claimHeader struct {
	claim, header string
}

// JWT verifies bearer tokens for one spec. It is immutable and safe for
// concurrent use.
type JWT struct {
	issuer    string
	audiences []string
	leeway    time.Duration
	claims    []claimHeader // sorted by claim

	file   *keySet    // a JWKS file's keys, or
	remote *remoteSet // a URL's shared set
	ks     *KeySets

	fp [32]byte
}

// NewJWT compiles a verifier for s. A JWKS file is read and parsed now
// (Refresh does not apply to it); a URL set is registered with k and
// fetched by Run (at once if it is new). k must not be nil.
func (k *KeySets) NewJWT(s JWTSpec) (*JWT, error) {
	if s.JWKS == "" {
		return nil, errors.New("jwks: no file or URL given")
	}
	if s.Leeway < 0 {
		return nil, fmt.Errorf("leeway %v is negative", s.Leeway)
	}
	if s.Refresh == 0 {
		s.Refresh = DefaultRefresh
	}
	if isURL(s.JWKS) && s.Refresh < k.minRefresh {
		return nil, fmt.Errorf("refresh %v is below the minimum %v", s.Refresh, k.minRefresh)
	}
	j := &JWT{issuer: s.Issuer, leeway: s.Leeway, ks: k}
	for _, a := range s.Audiences {
		if a == "" {
			return nil, errors.New("audiences: empty audience")
		}
		j.audiences = append(j.audiences, a)
	}
	used := make(map[string]string, len(s.Claims))
	for c, h := range s.Claims {
		if c == "" {
			return nil, errors.New("claims_to_headers: empty claim name")
		}
		ch, err := checkHeaderName(h)
		if err != nil {
			return nil, fmt.Errorf("claims_to_headers: claim %q: %w", c, err)
		}
		if other, dup := used[ch]; dup {
			a, b := min(c, other), max(c, other)
			return nil, fmt.Errorf("claims_to_headers: claims %q and %q both set header %q", a, b, ch)
		}
		used[ch] = c
		j.claims = append(j.claims, claimHeader{c, ch})
	}
	slices.SortFunc(j.claims, func(a, b claimHeader) int { return strings.Compare(a.claim, b.claim) })

	fp := sha256.New()
	writeFP(fp, "jwks", s.JWKS, "iss", s.Issuer)
	auds := slices.Sorted(slices.Values(j.audiences))
	writeFP(fp, "aud", strconv.Itoa(len(auds)))
	writeFP(fp, auds...)
	writeFP(fp, "claims", strconv.Itoa(len(j.claims)))
	for _, c := range j.claims {
		writeFP(fp, c.claim, c.header)
	}
	writeFP(fp, "leeway", s.Leeway.String())

	if isURL(s.JWKS) {
		writeFP(fp, "refresh", s.Refresh.String())
		u, err := url.Parse(s.JWKS)
		if err != nil {
			return nil, fmt.Errorf("jwks %q: %w", s.JWKS, err)
		}
		if err := checkJWKSURL(u); err != nil {
			return nil, fmt.Errorf("jwks %q: %w", s.JWKS, err)
		}
		rs, err := k.acquire(s.JWKS, s.Refresh)
		if err != nil {
			return nil, fmt.Errorf("jwks %q: %w", s.JWKS, err)
		}
		j.remote = rs
		k.track(j, rs, s.Refresh)
	} else {
		data, err := readCapped(s.JWKS, maxJWKSBytes)
		if err != nil {
			return nil, fmt.Errorf("jwks %q: %w", s.JWKS, err)
		}
		set, _, err := parseJWKS(data)
		if err != nil {
			return nil, fmt.Errorf("jwks %q: %w", s.JWKS, err)
		}
		j.file = set
		writeFP(fp, "file")
		fp.Write(data)
	}
	fp.Sum(j.fp[:0])
	return j, nil
}

// isURL tells a JWKS URL from a file path: anything with a scheme is meant
// as a URL (and checkJWKSURL refuses the schemes other than http(s)).
func isURL(s string) bool {
	i := strings.Index(s, "://")
	return i > 0 && !strings.ContainsAny(s[:i], `/\`)
}

// writeFP writes length-prefixed strings, so no two specs hash alike.
func writeFP(h hash.Hash, ss ...string) {
	var n [8]byte
	for _, s := range ss {
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
}

// Fingerprint identifies the spec and, for a JWKS file, its content: a
// caller may keep a verifier across reloads while it is unchanged.
func (j *JWT) Fingerprint() [32]byte { return j.fp }

// Verify checks r's Authorization: Bearer token at now. On success set
// holds one entry per configured claim header (no values when the token
// lacks the claim; see ApplyHeaders). On failure reason is one of the
// Reason constants.
func (j *JWT) Verify(r *http.Request, now time.Time) (set http.Header, reason string, ok bool) {
	vals := r.Header.Values("Authorization")
	if len(vals) == 0 {
		return nil, ReasonMissing, false
	}
	if len(vals) > 1 {
		return nil, ReasonMalformed, false
	}
	scheme, token, _ := strings.Cut(strings.TrimSpace(vals[0]), " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return nil, ReasonMissing, false
	}
	token = strings.TrimSpace(token)
	switch {
	case token == "":
		return nil, ReasonMissing, false
	case len(token) > maxTokenBytes:
		return nil, ReasonTooLarge, false
	}

	keys := j.keys()
	if keys == nil {
		return nil, ReasonNoKeys, false
	}
	jws, err := jose.ParseSignedCompact(token, signatureAlgs)
	if err != nil {
		var ue *jose.ErrUnexpectedSignatureAlgorithm
		if errors.As(err, &ue) {
			return nil, ReasonAlgorithm, false
		}
		return nil, ReasonMalformed, false
	}
	hdr := jws.Signatures[0].Header
	alg := jose.SignatureAlgorithm(hdr.Algorithm)

	candidates := keys.keys
	if hdr.KeyID != "" {
		candidates = keys.byKid[hdr.KeyID]
		if len(candidates) == 0 && j.remote != nil {
			j.awaitRefetch(r)
			if keys = j.keys(); keys != nil {
				candidates = keys.byKid[hdr.KeyID]
			}
		}
		if len(candidates) == 0 {
			return nil, ReasonUnknownKey, false
		}
	}
	var payload []byte
	tried := false
	for _, k := range candidates {
		if !k.allows(alg) {
			continue
		}
		tried = true
		if p, err := jws.Verify(k.key); err == nil {
			payload = p
			break
		}
	}
	switch {
	case !tried:
		// The token's alg is not one its key (or, without a kid, any key)
		// may use: an HS256 token against an RSA key ends here.
		return nil, ReasonAlgorithmKey, false
	case payload == nil:
		return nil, ReasonBadSignature, false
	}
	return j.checkClaims(payload, now)
}

// keys is the current key set, nil while a URL set has none yet.
func (j *JWT) keys() *keySet {
	if j.file != nil {
		return j.file
	}
	return j.remote.keys.Load()
}

// awaitRefetch asks for a refetch of the URL set and waits, bounded by
// kidWait and the request's context, for it to end.
func (j *JWT) awaitRefetch(r *http.Request) {
	done := j.ks.refetch(j.remote)
	if done == nil {
		return
	}
	t := time.NewTimer(kidWait)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	case <-r.Context().Done():
	}
}

// checkClaims validates a verified payload's registered claims at now and
// builds the claim headers.
func (j *JWT) checkClaims(payload []byte, now time.Time) (http.Header, string, bool) {
	var c map[string]json.RawMessage
	if err := json.Unmarshal(payload, &c); err != nil || c == nil {
		return nil, ReasonMalformedClaim, false
	}
	if raw, ok := c["exp"]; ok {
		exp, ok := numericDate(raw)
		if !ok {
			return nil, ReasonMalformedClaim, false
		}
		if !now.Before(exp.Add(j.leeway)) {
			return nil, ReasonExpired, false
		}
	}
	if raw, ok := c["nbf"]; ok {
		nbf, ok := numericDate(raw)
		if !ok {
			return nil, ReasonMalformedClaim, false
		}
		if now.Add(j.leeway).Before(nbf) {
			return nil, ReasonNotYetValid, false
		}
	}
	if j.issuer != "" {
		var iss string
		if raw, ok := c["iss"]; !ok || json.Unmarshal(raw, &iss) != nil || iss != j.issuer {
			return nil, ReasonWrongIssuer, false
		}
	}
	if len(j.audiences) > 0 && !j.audienceOK(c["aud"]) {
		return nil, ReasonWrongAudience, false
	}
	if len(j.claims) == 0 {
		return nil, "", true
	}
	set := make(http.Header, len(j.claims))
	for _, ch := range j.claims {
		v, ok := claimText(c[ch.claim])
		if !ok {
			set[ch.header] = nil
			continue
		}
		set[ch.header] = []string{headerText(v)}
	}
	return set, "", true
}

// audienceOK reports whether aud (a string or an array of strings) holds
// one of the accepted audiences.
func (j *JWT) audienceOK(raw json.RawMessage) bool {
	if raw == nil {
		return false
	}
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return slices.Contains(j.audiences, one)
	}
	var many []string
	if json.Unmarshal(raw, &many) != nil {
		return false
	}
	for _, a := range many {
		if slices.Contains(j.audiences, a) {
			return true
		}
	}
	return false
}

// numericDate parses an RFC 7519 NumericDate (seconds, possibly
// fractional), clamping absurd values instead of overflowing.
func numericDate(raw json.RawMessage) (time.Time, bool) {
	var f float64
	if err := json.Unmarshal(raw, &f); err != nil || math.IsNaN(f) {
		return time.Time{}, false
	}
	const limit = 1 << 40 // about 34,800 years either way
	f = max(-limit, min(limit, f))
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), true
}

// claimText renders a claim as header text; false when it is absent or
// null.
func claimText(raw json.RawMessage) (string, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", false
	}
	switch raw[0] {
	case '"':
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return "", false
		}
		return s, true
	case '[':
		var items []json.RawMessage
		if json.Unmarshal(raw, &items) != nil {
			return "", false
		}
		parts := make([]string, 0, len(items))
		for _, it := range items {
			if s, ok := claimText(it); ok {
				parts = append(parts, s)
			}
		}
		return strings.Join(parts, ","), true
	case '{':
		var b bytes.Buffer
		if json.Compact(&b, raw) != nil {
			return "", false
		}
		return b.String(), true
	default: // numbers as written, true, false
		return string(raw), true
	}
}

// JWTChallenge sets the WWW-Authenticate header of a 401 answer for
// reason: a bare Bearer realm when no token was sent (RFC 6750 §3.1 asks
// for no error code then), otherwise error="invalid_token" with reason as
// the error_description.
func JWTChallenge(h http.Header, reason string) {
	if reason == ReasonMissing || reason == "" {
		h.Set("WWW-Authenticate", `Bearer realm=`+quote(defaultRealm))
		return
	}
	// error_description allows %x20-21 / %x23-5B / %x5D-7E only.
	desc := strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' {
			return -1
		}
		return r
	}, reason)
	h.Set("WWW-Authenticate", `Bearer error="invalid_token", error_description="`+desc+`"`)
}
