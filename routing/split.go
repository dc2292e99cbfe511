package routing

import (
	"fmt"
	"math/bits"
	"math/rand/v2"
	"net/http"
	"net/textproto"
	"strings"

	"github.com/meridian-lb/meridian/config"
	"github.com/meridian-lb/meridian/rollout"
)

// Split is a route's compiled split: rules (entries with when:) tried in
// order, then the weighted entries. The weighted choice is exact over time
// (a precomputed smooth weighted round-robin schedule); with a sticky key it
// is a consistent hash of the key into the weight ranges instead, so a user
// stays on one arm for as long as the weights do not change.
type Split struct {
	rules    []splitRule
	arms     []splitArm // weighted entries, in config order
	wrr      *wrrState
	total    uint64 // sum of arm weights
	sticky   *config.Sticky
	stHdr    string // canonical sticky header key
	stCookie string
	// canary is the arm a rollout steps (index in arms), -1 for none; a
	// sticky key goes to it when rollout.InCanary(key, canaryWeight), so a
	// user who saw the canary keeps seeing it as its weight grows.
	canary       int
	canaryWeight int
	others       uint64 // the other arms' declared weights, summed, for their sticky draw
}

// splitCanary is a route's rollout as its split needs it: the canary arm's
// service and the weight the rollout is at.
type splitCanary struct {
	service string
	weight  int
}

type splitRule struct {
	entry   int // index in the config split list
	service *Service
	header  []namedMatcher
	cookie  []namedMatcher
	query   []namedMatcher
}

type splitArm struct {
	entry   int
	service *Service
	weight  int
	upper   uint64 // cumulative weight up to and including this arm
	// otherUpper is the cumulative declared weight of the arms that are
	// not a rollout's canary, up to this arm (rollout splits only).
	otherUpper uint64
}

// Choice is where a split sends one request.
type Choice struct {
	Service *Service
	// Entry is the index of the chosen entry in the route's split list
	// (-1 for a route without a split), for logs and the admin explain.
	Entry int
	// Rule is true when a when: rule decided, false for a weighted choice.
	Rule bool
	// SetCookie, when not empty, is a fresh sticky key the proxy must set as
	// the sticky cookie on the response (sticky.set with no key present).
	SetCookie string
}

func compileSplit(cfg *config.Config, r *config.Route, services map[string]*Service, canary *splitCanary) (*Split, error) {
	sp := &Split{sticky: r.Sticky, canary: -1}
	if s := r.Sticky; s != nil {
		if s.Header != "" {
			sp.stHdr = textproto.CanonicalMIMEHeaderKey(s.Header)
		}
		sp.stCookie = s.Cookie
	}
	var weights []int
	for i, e := range r.Split {
		svc, ok := services[e.Service]
		if !ok {
			return nil, fmt.Errorf("split[%d]: unknown service %q", i, e.Service)
		}
		if e.When != nil {
			rule := splitRule{entry: i, service: svc}
			var err error
			if rule.header, err = compileNamed(cfg, e.When.Header, true); err != nil {
				return nil, fmt.Errorf("split[%d].when.header.%w", i, err)
			}
			if rule.cookie, err = compileNamed(cfg, e.When.Cookie, false); err != nil {
				return nil, fmt.Errorf("split[%d].when.cookie.%w", i, err)
			}
			if rule.query, err = compileNamed(cfg, e.When.Query, false); err != nil {
				return nil, fmt.Errorf("split[%d].when.query.%w", i, err)
			}
			sp.rules = append(sp.rules, rule)
			continue
		}
		w := 1
		if e.Weight != nil {
			w = max(*e.Weight, 0)
		}
		sp.total += uint64(w)
		sp.arms = append(sp.arms, splitArm{entry: i, service: svc, weight: w, upper: sp.total})
		weights = append(weights, w)
	}
	if canary != nil {
		sp.applyRollout(canary, weights)
		weights = weights[:0]
		for _, a := range sp.arms {
			weights = append(weights, a.weight)
		}
	}
	if sp.total == 0 {
		return nil, fmt.Errorf("split: no entry with a positive weight")
	}
	sp.wrr = newWRR(weights)
	return sp, nil
}

// applyRollout sets the arms' weights for a rollout at canary.weight: the
// canary arm gets that share, the others the rest in their declared
// proportions (rollout.SplitWeights).
func (sp *Split) applyRollout(canary *splitCanary, declared []int) {
	for i, a := range sp.arms {
		if a.service.Name == canary.service {
			sp.canary = i
		}
	}
	if sp.canary < 0 {
		return // routing's rollouts checked it is an arm
	}
	sp.canaryWeight = canary.weight
	w := rollout.SplitWeights(declared, sp.canary, canary.weight)
	sp.total, sp.others = 0, 0
	for i := range sp.arms {
		sp.arms[i].weight = w[i]
		sp.total += uint64(w[i])
		sp.arms[i].upper = sp.total
		if i != sp.canary {
			sp.others += uint64(declared[i])
		}
	}
	// The sticky draw over the other arms keeps their declared ranges, so
	// a non-canary user's arm does not move while the canary grows.
	var up uint64
	for i := range sp.arms {
		if i != sp.canary {
			up += uint64(declared[i])
		}
		sp.arms[i].otherUpper = up
	}
}

// Choose decides where the request goes: the route's service, or for a
// split the first matching rule, else the sticky arm of the request's key,
// else the next arm of the weighted schedule.
func (r *Route) Choose(req *http.Request) Choice {
	if r.Split == nil {
		return Choice{Service: r.Service, Entry: -1}
	}
	return r.Split.choose(req)
}

func (sp *Split) choose(req *http.Request) Choice {
	if len(sp.rules) > 0 {
		v := reqView{r: req}
		for i := range sp.rules {
			ru := &sp.rules[i]
			if matchHeaders(ru.header, req.Header) && matchCookies(ru.cookie, req.Header) && matchQuery(ru.query, &v) {
				return Choice{Service: ru.service, Entry: ru.entry, Rule: true}
			}
		}
	}
	if sp.sticky != nil {
		key, ok := sp.stickyKey(req)
		set := ""
		if !ok && sp.sticky.Set && sp.stCookie != "" {
			key, ok = newStickyKey(), true
			set = key
		}
		if ok {
			a := sp.stickyArm(key)
			return Choice{Service: a.service, Entry: a.entry, SetCookie: set}
		}
	}
	a := &sp.arms[sp.wrr.pick()]
	return Choice{Service: a.service, Entry: a.entry}
}

func (sp *Split) stickyKey(req *http.Request) (string, bool) {
	if sp.stHdr != "" {
		v := req.Header[sp.stHdr]
		if len(v) == 0 || v[0] == "" {
			return "", false
		}
		return v[0], true
	}
	v, ok := CookieValue(req.Header, sp.stCookie)
	return v, ok && v != ""
}

// stickyArm is the arm of a sticky key. During a rollout the canary takes
// the keys rollout.InCanary gives it, a set that only grows with the
// weight, and the other keys keep their arm among the others.
func (sp *Split) stickyArm(key string) *splitArm {
	if sp.canary < 0 {
		return sp.armFor(hashString(key))
	}
	if rollout.InCanary(key, sp.canaryWeight) || sp.others == 0 {
		return &sp.arms[sp.canary]
	}
	point, _ := bits.Mul64(hashString(key), sp.others)
	for i := range sp.arms {
		if i != sp.canary && point < sp.arms[i].otherUpper {
			return &sp.arms[i]
		}
	}
	return &sp.arms[sp.canary]
}

// armFor maps a key's hash into the weight ranges: the hash is scaled to a
// point in [0, total) and the arm whose range holds it wins. A weight change
// moves only the keys near the boundaries it shifts.
func (sp *Split) armFor(h uint64) *splitArm {
	point, _ := bits.Mul64(h, sp.total)
	for i := range sp.arms {
		if point < sp.arms[i].upper {
			return &sp.arms[i]
		}
	}
	return &sp.arms[len(sp.arms)-1]
}

// StickyCookie is the cookie name a route sets for sticky splits, or "".
func (r *Route) StickyCookie() string {
	if r.Split == nil || r.Split.sticky == nil || !r.Split.sticky.Set {
		return ""
	}
	return r.Split.stCookie
}

// newStickyKey returns a random key for a client that has none: 16 hex
// digits, enough that two clients never share one by chance.
func newStickyKey() string {
	const hex = "0123456789abcdef"
	var b [16]byte
	x := rand.Uint64()
	for i := range b {
		b[i] = hex[x&15]
		x >>= 4
	}
	return string(b[:])
}

func (sp *Split) dump(b *strings.Builder) {
	for _, ru := range sp.rules {
		fmt.Fprintf(b, "  split[%d] rule -> %s\n", ru.entry, ru.service.Name)
		dumpNamed(b, "    header", ru.header)
		dumpNamed(b, "    cookie", ru.cookie)
		dumpNamed(b, "    query", ru.query)
	}
	for _, a := range sp.arms {
		fmt.Fprintf(b, "  split[%d] weight=%d -> %s\n", a.entry, a.weight, a.service.Name)
	}
	if s := sp.sticky; s != nil {
		fmt.Fprintf(b, "  sticky cookie=%q header=%q set=%t\n", s.Cookie, s.Header, s.Set)
	}
}
