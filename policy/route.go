package policy

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/meridian-lb/meridian/config"
	"github.com/meridian-lb/meridian/policy/access"
	"github.com/meridian-lb/meridian/policy/auth"
	"github.com/meridian-lb/meridian/policy/compress"
	"github.com/meridian-lb/meridian/policy/cors"
	"github.com/meridian-lb/meridian/policy/ratelimit"
	"github.com/meridian-lb/meridian/policy/template"
)

// KeySets fetches and caches JWKS (package auth); one per process.
type KeySets = auth.KeySets

// NewKeySets returns the process's JWKS cache; Run it (KeySets.Run) to
// keep URL key sets fresh.
func NewKeySets(logger *zap.Logger) *KeySets { return auth.NewKeySets(nil, logger) }

// Vars are the values templates expand (package template).
type Vars = template.Vars

// Step names one policy: the label its answers are counted under and the
// name explain shows.
type Step uint8

// The steps, in the order Before runs them.
const (
	StepNone Step = iota
	StepAccess
	StepRateLimit
	StepCORS // preflights; actual requests get CORS headers on the response
	StepBasicAuth
	StepJWT
	StepForwardAuth
	StepRedirect
	StepRewrite
	StepMaxBody
	StepCompress
)

var stepNames = [...]string{"", "access", "rate_limit", "cors", "basic_auth", "jwt", "forward_auth", "redirect", "rewrite", "max_body", "compress"}

func (s Step) String() string { return stepNames[s] }

// Outcome is what Before did: Step is zero when the request goes on to be
// forwarded; otherwise Step answered it with Code. Reason is a short word
// for logs and metrics ("denied", "over_limit", "bad_credentials", ...).
type Outcome struct {
	Step   Step
	Code   int
	Reason string
}

// Exchange is one request as the policies see it. The proxy fills it; R
// and its header and URL are changed in place by the steps that rewrite
// them (rewrite, JWT claims and forward-auth headers, Authorization).
type Exchange struct {
	W         http.ResponseWriter
	R         *http.Request
	Client    netip.Addr // the client address, trusted_proxies honoured
	RequestID string
	Route     string
	Now       time.Time
}

// Env is what compiling needs from outside the config.
type Env struct {
	// KeySets fetches and caches the JWKS of jwt policies that name a
	// URL; nil (meridian validate) checks such URLs without fetching.
	KeySets *auth.KeySets
	// Client sends forward-auth subrequests; nil uses a client of its own
	// per policy (its timeout bounds each subrequest in either case).
	Client *http.Client
	// Previous is the same-named route's policies in the live table, or
	// nil: state whose settings did not change (rate-limit buckets) is
	// carried over from it.
	Previous *Route
	// Fleet returns how many live Meridian instances share the fleet's
	// rate limits (scope: fleet); nil or a result below 1 counts as 1.
	Fleet func() int
	// Regexp returns the config's compiled expression for a route's
	// match.path_regex (config.Config.Regexp).
	Regexp func(string) *regexp.Regexp
}

// Route is one route's compiled policies; a nil *Route has none.
type Route struct {
	name   string
	access *access.List
	rate   *rateLimit
	basic  *auth.Basic
	jwt    *auth.JWT
	fwd    *auth.Forward
	// keepAuthorization passes the client's Authorization header upstream
	// on a route with an auth policy (forward_authorization).
	keepAuthorization bool
	cors              *cors.Policy
	redirect          *template.Redirect
	pathRe            *regexp.Regexp // match.path_regex, for the redirect's captures
	rewrite           *template.Rewrite
	// jwtUnfetched marks a jwt policy compiled without key sets (for
	// validation only): its tokens cannot be checked, so none passes.
	jwtUnfetched bool
	maxBody      int64
	compress     *compress.Policy
	// steps is what the route has, in order, for explain.
	steps       []Described
	fingerprint [32]byte
}

// rateLimit is a compiled rate_limit: its buckets and how to key them.
type rateLimit struct {
	lim   *ratelimit.Limiter
	key   config.RateLimitKey
	fleet func() int // nil: scope instance
}

// Described is one step of a route, as explain shows it.
type Described struct {
	Step   string `json:"step"`
	Detail string `json:"detail"`
}

// Compile builds the policies of route r, found at path (routes[i]) in the
// config. It returns nil and no error for a route without any. Problems
// are config.Problems at their paths, joined.
func Compile(path string, r *config.Route, env Env) (*Route, error) {
	if !hasPolicy(r) {
		return nil, nil
	}
	p := &Route{name: r.Name, keepAuthorization: r.ForwardAuthorization}
	var errs []error
	bad := func(key string, err error) {
		// The path names the policy already: "routes[3].cors: cors: ..."
		// says it twice.
		msg := strings.TrimPrefix(err.Error(), key[strings.LastIndexByte(key, '.')+1:]+": ")
		errs = append(errs, config.Problem{Path: path + "." + key, Msg: msg})
	}
	h := sha256.New()
	if len(r.Allow) > 0 || len(r.Deny) > 0 {
		l, err := access.Compile(r.Allow, r.Deny)
		if ee := (*access.EntryError)(nil); errors.As(err, &ee) {
			errs = append(errs, config.Problem{Path: fmt.Sprintf("%s.%s[%d]", path, ee.List, ee.Index), Msg: fmt.Sprintf("%q: %s", ee.Entry, ee.Reason)})
		} else if err != nil {
			bad("allow", err)
		}
		p.access = l
		p.describe(StepAccess, fmt.Sprintf("allow %d, deny %d CIDRs", len(r.Allow), len(r.Deny)))
	}
	if rl := r.RateLimit; rl != nil {
		p.compileRate(path, rl, env, &errs)
	}
	if c := r.CORS; c != nil {
		spec := cors.Spec{Origins: c.Origins, Methods: c.Methods, Headers: c.Headers, Expose: c.Expose, Credentials: c.Credentials, MaxAge: c.MaxAge.D()}
		if cp, err := cors.New(spec); err != nil {
			bad("cors", err)
		} else {
			p.cors = cp
		}
		p.describe(StepCORS, "origins "+strings.Join(c.Origins, ", "))
	}
	if b := r.BasicAuth; b != nil {
		if b.Htpasswd == "" {
			bad("basic_auth.htpasswd", errors.New("missing htpasswd file"))
		} else if ba, err := auth.LoadBasic(b.Htpasswd, b.Realm); err != nil {
			bad("basic_auth.htpasswd", err)
		} else {
			p.basic = ba
			fp := ba.Fingerprint()
			h.Write(fp[:])
		}
		p.describe(StepBasicAuth, fmt.Sprintf("htpasswd %s, realm %q", b.Htpasswd, b.Realm))
	}
	if j := r.JWT; j != nil {
		p.compileJWT(j, env, bad, h)
	}
	if f := r.ForwardAuth; f != nil {
		spec := auth.ForwardSpec{URL: f.URL, CopyHeaders: f.CopyHeaders, Timeout: f.Timeout.D()}
		if fa, err := auth.NewForward(spec, env.Client); err != nil {
			bad("forward_auth.url", err)
		} else {
			p.fwd = fa
		}
		p.describe(StepForwardAuth, fmt.Sprintf("%s (timeout %s)", f.URL, f.Timeout.D()))
	}
	if rd := r.Redirect; rd != nil {
		p.compileRedirect(r, rd, env, bad)
	}
	if rw := r.Rewrite; rw != nil {
		var add map[string]string
		var remove []string
		if rw.Query != nil {
			add, remove = rw.Query.Add, rw.Query.Remove
		}
		if rw.To != "" && rw.PathRegex == "" {
			bad("rewrite.path_regex", errors.New("a rewrite with to: needs path_regex"))
		} else if c, err := template.CompileRewrite(rw.PathRegex, rw.To, add, remove); err != nil {
			bad("rewrite", err)
		} else {
			p.rewrite = c
		}
		d := "query edits"
		if rw.PathRegex != "" {
			d = fmt.Sprintf("%s → %s", rw.PathRegex, rw.To)
		}
		p.describe(StepRewrite, d)
	}
	if r.MaxBody != nil {
		p.maxBody = int64(*r.MaxBody)
		if p.maxBody <= 0 {
			bad("max_body", errors.New("must be more than 0"))
		}
		p.describe(StepMaxBody, strconv.FormatInt(p.maxBody, 10)+" bytes")
	}
	if c := r.Compress; c != nil {
		encs := make([]string, len(c.Encodings))
		for i, e := range c.Encodings {
			encs[i] = string(e)
		}
		if cp, err := compress.New(compress.Spec{Encodings: encs, MinSize: int64(c.MinSize), Types: c.Types}); err != nil {
			bad("compress", err)
		} else {
			p.compress = cp
		}
		p.describe(StepCompress, strings.Join(encs, ", ")+" from "+strconv.FormatInt(int64(c.MinSize), 10)+" bytes")
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	h.Sum(p.fingerprint[:0])
	return p, nil
}

// hasPolicy reports whether r sets any edge policy.
func hasPolicy(r *config.Route) bool {
	return len(r.Allow) > 0 || len(r.Deny) > 0 || r.RateLimit != nil || r.BasicAuth != nil ||
		r.JWT != nil || r.ForwardAuth != nil || r.CORS != nil || r.Redirect != nil ||
		r.Rewrite != nil || r.MaxBody != nil || r.Compress != nil
}

func (p *Route) describe(s Step, detail string) {
	p.steps = append(p.steps, Described{Step: s.String(), Detail: detail})
}

func (p *Route) compileRate(path string, rl *config.RateLimit, env Env, errs *[]error) {
	at := func(key, format string, args ...any) {
		*errs = append(*errs, config.Problem{Path: path + ".rate_limit." + key, Msg: fmt.Sprintf(format, args...)})
	}
	if rl.Requests <= 0 {
		at("requests", "must be more than 0")
	}
	if rl.Burst < 0 {
		at("burst", "must not be negative")
	}
	if rl.Per.D() < time.Millisecond {
		at("per", "must be at least 1ms")
	}
	if rl.MaxKeys < 0 {
		at("max_keys", "must not be negative")
	}
	if rl.Requests <= 0 || rl.Burst < 0 || rl.Per.D() < time.Millisecond || rl.MaxKeys < 0 {
		return
	}
	spec := ratelimit.Spec{Requests: rl.Requests, Per: rl.Per.D(), Burst: max(rl.Burst, 1), MaxKeys: max(rl.MaxKeys, 1)}
	c := &rateLimit{key: rl.Key}
	if prev := env.Previous; prev != nil && prev.rate != nil && prev.rate.lim.Spec() == spec && prev.rate.key == rl.Key {
		c.lim = prev.rate.lim // unchanged: its buckets go on counting
	} else {
		c.lim = ratelimit.New(spec)
	}
	detail := fmt.Sprintf("%d per %s, burst %d, by %s", rl.Requests, rl.Per.D(), spec.Burst, rl.Key)
	if rl.Scope == config.ScopeFleet {
		c.fleet = env.Fleet
		if c.fleet == nil {
			c.fleet = func() int { return 1 }
		}
		n := max(c.fleet(), 1)
		detail += fmt.Sprintf(", scope fleet: divided by %d live instance(s), %d per %s here", n, max(rl.Requests/n, 1), rl.Per.D())
	}
	p.rate = c
	p.describe(StepRateLimit, detail)
}

func (p *Route) compileJWT(j *config.JWT, env Env, bad func(string, error), h io.Writer) {
	spec := auth.JWTSpec{JWKS: j.JWKS, Issuer: j.Issuer, Audiences: j.Audiences, Claims: j.ClaimsToHeaders, Refresh: j.Refresh.D()}
	if j.Leeway != nil {
		spec.Leeway = j.Leeway.D()
	}
	p.describe(StepJWT, "keys "+j.JWKS)
	if j.JWKS == "" {
		bad("jwt.jwks", errors.New("missing JWKS file or URL"))
		return
	}
	ks := env.KeySets
	if isURL(j.JWKS) {
		if err := checkJWKSURL(j.JWKS); err != nil {
			bad("jwt.jwks", err)
			return
		}
		if ks == nil {
			// meridian validate: a URL is checked, not fetched. Should such
			// a route ever serve, it refuses every token.
			p.jwtUnfetched = true
			return
		}
	} else if ks == nil {
		// A file is read the same way validating or serving; a key set of
		// files only never fetches, so a throwaway one is enough.
		ks = auth.NewKeySets(nil, nil)
	}
	v, err := ks.NewJWT(spec)
	if err != nil {
		bad("jwt", err)
		return
	}
	p.jwt = v
	fp := v.Fingerprint()
	h.Write(fp[:])
}

func isURL(s string) bool {
	return strings.HasPrefix(s, "https://") || strings.HasPrefix(s, "http://")
}

// checkJWKSURL accepts https URLs, and http ones only to loopback hosts:
// keys fetched in clear text could be replaced on the way.
func checkJWKSURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return fmt.Errorf("invalid JWKS URL %q", s)
	}
	if u.Scheme == "http" {
		host := u.Hostname()
		if a, err := netip.ParseAddr(host); !(host == "localhost" || err == nil && a.IsLoopback()) {
			return fmt.Errorf("JWKS URL %q: use https (http is accepted for loopback hosts only)", s)
		}
	}
	return nil
}

func (p *Route) compileRedirect(r *config.Route, rd *config.Redirect, env Env, bad func(string, error)) {
	switch rd.Code {
	case 301, 302, 307, 308:
	default:
		bad("redirect.code", fmt.Errorf("want 301, 302, 307 or 308, not %d", rd.Code))
	}
	if rd.To == "" {
		bad("redirect.to", errors.New("missing target"))
		return
	}
	var re *regexp.Regexp
	if r.Match.PathRegex != "" && env.Regexp != nil {
		re = env.Regexp(r.Match.PathRegex)
	}
	t, err := template.Compile(rd.To, re)
	if err != nil {
		bad("redirect.to", err)
		return
	}
	p.redirect = &template.Redirect{To: t, Code: rd.Code}
	if t.UsesCaptures() {
		p.pathRe = re
	}
	p.describe(StepRedirect, fmt.Sprintf("%d to %s", rd.Code, rd.To))
}

// Steps lists the route's policies in the order they run, for explain.
func (p *Route) Steps() []Described {
	if p == nil {
		return nil
	}
	return p.steps
}

// Fingerprint changes when a file a policy was compiled from (htpasswd,
// JWKS) changes: it is part of the table's version, so a rotated file
// makes a new table.
func (p *Route) Fingerprint() [32]byte { return p.fingerprint }

// Redirects reports whether the route answers every request with a
// redirect, so it needs no service.
func (p *Route) Redirects() bool { return p != nil && p.redirect != nil }

// MaxBody is the route's body cap, 0 for none.
func (p *Route) MaxBody() int64 {
	if p == nil {
		return 0
	}
	return p.maxBody
}

// Before runs the request-side policies in order. When one answers the
// request (a refusal, a preflight, a redirect) it has written the whole
// answer on x.W and Before returns its Outcome; otherwise the request may
// be forwarded, as the steps left it.
func (p *Route) Before(x *Exchange) Outcome {
	r := x.R
	if p.access != nil && !p.access.Allowed(x.Client) {
		return answer(x, StepAccess, http.StatusForbidden, "denied", "meridian: client address not allowed\n")
	}
	if c := p.rate; c != nil {
		div := 1
		if c.fleet != nil {
			div = c.fleet()
		}
		d := c.lim.Take(p.rateKey(x), x.Now, div)
		d.SetHeaders(x.W.Header(), p.name)
		if !d.Allowed {
			return p.refuse(x, StepRateLimit, http.StatusTooManyRequests, "over_limit", "meridian: rate limit exceeded\n")
		}
	}
	// A CORS preflight never carries credentials (the Fetch standard), so
	// it is answered before authentication, as Envoy's CORS filter does
	// ahead of jwt_authn: behind auth, no browser could ever pass it.
	if p.cors != nil && p.cors.Preflight(x.W, r) {
		return Outcome{Step: StepCORS, Code: http.StatusNoContent, Reason: "preflight"}
	}
	if p.basic != nil {
		if _, ok := p.basic.Check(r); !ok {
			p.basic.Challenge(x.W.Header())
			return p.refuse(x, StepBasicAuth, http.StatusUnauthorized, "bad_credentials", "meridian: authentication required\n")
		}
	}
	if p.jwtUnfetched {
		auth.JWTChallenge(x.W.Header(), "signing keys not available")
		return p.refuse(x, StepJWT, http.StatusUnauthorized, "bad_token", "meridian: signing keys not available\n")
	}
	if p.jwt != nil {
		set, reason, ok := p.jwt.Verify(r, x.Now)
		if !ok {
			auth.JWTChallenge(x.W.Header(), reason)
			return p.refuse(x, StepJWT, http.StatusUnauthorized, "bad_token", "meridian: "+reason+"\n")
		}
		// set names every claims_to_headers header, empty for a claim the
		// token lacks: the client's own values are replaced or removed,
		// so they cannot be forged (forward auth's Copy likewise).
		auth.ApplyHeaders(r.Header, set)
	}
	if p.fwd != nil {
		if o, done := p.forwardAuth(x); done {
			return o
		}
	}
	if (p.basic != nil || p.jwt != nil || p.fwd != nil || p.jwtUnfetched) && !p.keepAuthorization {
		delete(r.Header, "Authorization")
	}
	if rd := p.redirect; rd != nil {
		v := p.vars(x)
		var caps []int
		if p.pathRe != nil {
			caps = p.pathRe.FindStringSubmatchIndex(r.URL.Path)
		}
		x.W.Header().Set("Location", rd.Location(&v, r.URL.Path, caps))
		x.W.WriteHeader(rd.Code)
		return Outcome{Step: StepRedirect, Code: rd.Code, Reason: "redirect"}
	}
	if p.rewrite != nil {
		v := p.vars(x)
		p.rewrite.Apply(r.URL, &v)
	}
	// max_body is enforced by the proxy with its other body limits
	// (MaxBody), so a body over it is the client's fault like any other.
	return Outcome{}
}

// rateKey is the bucket key of the request. A request without the header
// or cookie a limit is keyed by is counted by its client address instead:
// leaving the header out must not be a way around the limit.
func (p *Route) rateKey(x *Exchange) string {
	k := p.rate.key
	switch k.Kind {
	case config.KeyHeader:
		if v := x.R.Header[k.Name]; len(v) > 0 && v[0] != "" {
			return "h:" + v[0]
		}
	case config.KeyCookie:
		if c, err := x.R.Cookie(k.Name); err == nil && c.Value != "" {
			return "c:" + c.Value
		}
	}
	b := x.Client.As16()
	return string(b[:])
}

// forwardAuth asks the auth service; done reports that it answered the
// request (a refusal relayed, or the service failing).
func (p *Route) forwardAuth(x *Exchange) (Outcome, bool) {
	o, err := p.fwd.Check(x.R.Context(), x.R, x.Client.String())
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return p.refuse(x, StepForwardAuth, http.StatusGatewayTimeout, "auth_timeout", "meridian: the authentication service timed out\n"), true
		}
		if x.R.Context().Err() != nil {
			return Outcome{Step: StepForwardAuth, Code: 499, Reason: "client_gone"}, true
		}
		return p.refuse(x, StepForwardAuth, http.StatusServiceUnavailable, "auth_unavailable", "meridian: the authentication service is unavailable\n"), true
	}
	if !o.Pass {
		h := x.W.Header()
		for k, v := range o.Header {
			h[k] = v
		}
		if p.cors != nil {
			p.cors.Response(x.R.Header.Get("Origin"), h)
		}
		x.W.WriteHeader(o.Status)
		x.W.Write(o.Body)
		return Outcome{Step: StepForwardAuth, Code: o.Status, Reason: "denied"}, true
	}
	auth.ApplyHeaders(x.R.Header, o.Copy)
	return Outcome{}, false
}

func (p *Route) vars(x *Exchange) template.Vars {
	return RequestVars(x.R, x.Client.String(), x.RequestID, x.Route)
}

// hostOnly strips the port from a Host header value; an IPv6 literal
// keeps its brackets, so a template can put it in a URL.
func hostOnly(h string) string {
	if strings.HasPrefix(h, "[") {
		if i := strings.IndexByte(h, ']'); i > 0 {
			return h[:i+1]
		}
	}
	if i := strings.LastIndexByte(h, ':'); i >= 0 {
		return h[:i]
	}
	return h
}

// refuse is answer with the route's CORS headers for an allowed origin,
// so a browser's script can read why it was refused (a 401, a 429) rather
// than see an opaque network error.
func (p *Route) refuse(x *Exchange, s Step, code int, reason, body string) Outcome {
	if p.cors != nil {
		p.cors.Response(x.R.Header.Get("Origin"), x.W.Header())
	}
	return answer(x, s, code, reason, body)
}

// answer writes a short plain-text refusal.
func answer(x *Exchange, s Step, code int, reason, body string) Outcome {
	h := x.W.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	x.W.WriteHeader(code)
	io.WriteString(x.W, body)
	return Outcome{Step: s, Code: code, Reason: reason}
}

// Response edits the upstream's response header for the route's response
// policies (CORS) before it is written.
func (p *Route) Response(r *http.Request, h http.Header) {
	if p.cors != nil {
		p.cors.Response(r.Header.Get("Origin"), h)
	}
}

// Wrap returns the writer the response is written through (compressing,
// when the route compresses and the client accepts an encoding) and the
// function that completes it once the response is written.
func (p *Route) Wrap(w http.ResponseWriter, r *http.Request) (http.ResponseWriter, func() error) {
	if p.compress == nil {
		return w, nil
	}
	return p.compress.Wrap(w, r)
}

// Compresses reports whether the route has a compress policy.
func (p *Route) Compresses() bool { return p != nil && p.compress != nil }
