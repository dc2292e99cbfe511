package routing

import (
	"errors"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"net/textproto"
	"sort"
	"strconv"

	"github.com/meridian-lb/meridian/config"
)

// picker chooses an endpoint of a pool for one request. Pickers are built at
// compile time over every endpoint of the pool and are safe for concurrent
// use; the only state they change is atomics.
type picker interface {
	pick(p *Pool, k pickKey) *Endpoint
}

// pickKey is one pick's input: the request's hash key (ring_hash, maglev),
// the endpoints this request already tried (retries), and whether the pool
// is in panic mode (every endpoint counts, available or not, except those
// an operator drained or forced down).
type pickKey struct {
	hash   uint64
	hashed bool
	tried  []*Endpoint
	all    bool
}

func (k *pickKey) eligible(e *Endpoint) bool {
	if k.all {
		if e.Excluded() {
			return false // panic mode overrides health, never the operator
		}
	} else if !e.Available() {
		return false
	}
	for _, t := range k.tried {
		if t == e {
			return false
		}
	}
	return true
}

// Pick chooses an endpoint for a request: one that is Available and not in
// tried (the endpoints this request already failed on). hash is the
// request's key for ring_hash and maglev (see HashKey; hashed false means
// the request has none and gets a random endpoint). With panicMode every
// endpoint not yet tried counts, available or not, except the ones an
// operator drained or forced down (Endpoint.Excluded): the caller sets it
// when the pool is in panic mode (Usable reports it) and no other pool of
// the service has an available endpoint. Pick returns nil when nothing is
// left, and the caller moves on to the service's next pool.
func (p *Pool) Pick(hash uint64, hashed bool, tried []*Endpoint, panicMode bool) *Endpoint {
	if len(p.Endpoints) == 0 {
		return nil
	}
	k := pickKey{hash: hash, hashed: hashed, tried: tried, all: panicMode}
	if p.slow != nil {
		return p.slow.pick(p, k)
	}
	return p.picker.pick(p, k)
}

// Acquire counts a request in flight on the endpoint (least_request reads
// the count); every Acquire needs one Release when the exchange ends.
func (e *Endpoint) Acquire() { e.inflight.Add(1) }

// Release ends what Acquire counted.
func (e *Endpoint) Release() { e.inflight.Add(-1) }

// InFlight is the number of requests in flight on the endpoint.
func (e *Endpoint) InFlight() int64 { return e.inflight.Load() }

// newPicker builds the pool's balancer, and its slow-start ramp
// (slowstart.go). An unset balancer is round robin, the default; an
// unknown one is an error, never quietly round robin (a parsed config
// cannot have one, but a Config built by hand can), and so is slow_start
// on a balancer that cannot ramp (a config.Problem at its own path). prev
// is the live table's pool of the same name, if any: a maglev lookup table
// it built over the same endpoints is reused rather than built again. With
// later, a maglev table to build is appended there instead, for Compile's
// caller to have it built before the pool picks (Inputs.Defer).
func newPicker(p, prev *Pool, later *[]func()) (picker, error) {
	pk, err := newBalancer(p, prev, later)
	if err != nil {
		return nil, err
	}
	if p.slow, err = newSlowStart(p); err != nil {
		return nil, err
	}
	return pk, nil
}

// pickerProblem is newPicker's error as a problem at its config path:
// pools.NAME.balance unless it names its own.
func pickerProblem(p *Pool, err error) error {
	var pr config.Problem
	if errors.As(err, &pr) {
		return pr
	}
	return config.Problem{Path: "pools." + p.Name + ".balance", Msg: err.Error()}
}

// newBalancer builds the pool's balancer; prev and later as for newPicker.
func newBalancer(p, prev *Pool, later *[]func()) (picker, error) {
	w := weighted{}
	for _, e := range p.Endpoints {
		w.total += uint64(max(e.Weight, 1))
		w.cum = append(w.cum, w.total)
	}
	switch p.Balance {
	case config.BalanceLeastRequest:
		return &leastRequest{w}, nil
	case config.BalanceRandom:
		return &randomPicker{w}, nil
	case config.BalanceRingHash:
		return newRing(p, w), nil
	case config.BalanceMaglev:
		if m := reuseMaglev(p, prev, w); m != nil {
			return m, nil
		}
		if later != nil {
			m := &maglev{hashOn: newHashOn(p), w: w}
			*later = append(*later, func() { m.table = maglevTable(p) })
			return m, nil
		}
		return newMaglev(p, w), nil
	case config.BalanceRoundRobin, "":
		weights := make([]int, len(p.Endpoints))
		for i, e := range p.Endpoints {
			weights[i] = max(e.Weight, 1)
		}
		return &roundRobin{wrr: newWRR(weights), w: w}, nil
	}
	return nil, fmt.Errorf("unknown balancer %q", p.Balance)
}

// weighted holds cumulative weights for weighted random choices.
type weighted struct {
	cum   []uint64
	total uint64
}

// random returns a weighted random endpoint index.
func (w *weighted) random() int {
	if w.total == 0 {
		return 0
	}
	x, _ := bits.Mul64(rand.Uint64(), w.total)
	return sort.Search(len(w.cum), func(i int) bool { return w.cum[i] > x })
}

// eligibleRandom is the slow path every picker falls back to: a weighted
// random choice among the eligible endpoints, in two passes.
func (w *weighted) eligibleRandom(p *Pool, k *pickKey) *Endpoint {
	var sum uint64
	for _, e := range p.Endpoints {
		if k.eligible(e) {
			sum += uint64(max(e.Weight, 1))
		}
	}
	if sum == 0 {
		return nil
	}
	x, _ := bits.Mul64(rand.Uint64(), sum)
	for _, e := range p.Endpoints {
		if !k.eligible(e) {
			continue
		}
		wt := uint64(max(e.Weight, 1))
		if x < wt {
			return e
		}
		x -= wt
	}
	return nil
}

// roundRobin is weighted and smooth (nginx's order) and lock-free: the
// schedule is computed at compile time and a pick is one atomic add. A slot
// whose endpoint is not eligible passes to the next slots.
type roundRobin struct {
	wrr *wrrState
	w   weighted
}

func (r *roundRobin) pick(p *Pool, k pickKey) *Endpoint {
	s := r.wrr.schedule
	if len(s) == 0 {
		return nil
	}
	n := r.wrr.next.Add(1) - 1
	limit := min(len(s), 2*len(p.Endpoints)+2)
	for i := range limit {
		e := p.Endpoints[s[(n+uint64(i))%uint64(len(s))]]
		if k.eligible(e) {
			return e
		}
	}
	if e := r.w.eligibleRandom(p, &k); e != nil {
		return e
	}
	// Nothing eligible: give the slot back. Callers ask every pool before
	// asking again in panic mode, and a slot spent on each failed pass
	// would move the schedule two steps a request: a two-endpoint pool in
	// panic mode would send every request to the same endpoint.
	r.wrr.next.Add(^uint64(0))
	return nil
}

// leastRequest is the power of two choices: two weighted random candidates,
// and the one with fewer requests in flight per unit of weight wins (the
// first on a tie).
type leastRequest struct{ w weighted }

func (l *leastRequest) pick(p *Pool, k pickKey) *Endpoint {
	var a, b *Endpoint
	for range 4 {
		e := p.Endpoints[l.w.random()]
		if !k.eligible(e) {
			continue
		}
		if a == nil {
			a = e
			continue
		}
		if e != a || len(p.Endpoints) == 1 {
			b = e
			break
		}
	}
	switch {
	case a == nil:
		return l.w.eligibleRandom(p, &k)
	case b == nil:
		return a
	}
	// b wins only with strictly fewer requests in flight per unit of
	// weight: idle endpoints tie, and the weighted sampling alone then
	// gives each its weight's share.
	if b.InFlight()*int64(max(a.Weight, 1)) < a.InFlight()*int64(max(b.Weight, 1)) {
		return b
	}
	return a
}

// randomPicker is a weighted random choice.
type randomPicker struct{ w weighted }

func (r *randomPicker) pick(p *Pool, k pickKey) *Endpoint {
	for range 3 {
		if e := p.Endpoints[r.w.random()]; k.eligible(e) {
			return e
		}
	}
	return r.w.eligibleRandom(p, &k)
}

// hashOn derives a request's key for ring_hash and maglev.
type hashOn struct {
	header string // canonical key
	cookie string
}

// hashKeyer is implemented by the pickers that hash.
type hashKeyer interface {
	key(r *http.Request, client netip.Addr) (uint64, bool)
}

func newHashOn(p *Pool) hashOn {
	h := p.HashOn
	switch {
	case h == nil:
		return hashOn{}
	case h.Header != "":
		return hashOn{header: textproto.CanonicalMIMEHeaderKey(h.Header)}
	case h.Cookie != "":
		return hashOn{cookie: h.Cookie}
	}
	return hashOn{}
}

// key hashes the configured header or cookie, or else the client address
// (the default, and hash_on: {client_ip: true}).
func (h *hashOn) key(r *http.Request, client netip.Addr) (uint64, bool) {
	switch {
	case h.header != "":
		v := r.Header[h.header]
		if len(v) == 0 || v[0] == "" {
			return 0, false
		}
		return hashString(v[0]), true
	case h.cookie != "":
		v, ok := CookieValue(r.Header, h.cookie)
		if !ok || v == "" {
			return 0, false
		}
		return hashString(v), true
	}
	if !client.IsValid() {
		return 0, false
	}
	a := client.Unmap().As16()
	return hashBytes(a[:]), true
}

// HashKey returns the request's key for the pool's ring_hash or maglev
// balancer, and false when the pool does not hash or the request has no key
// (it then gets a random endpoint).
func (p *Pool) HashKey(r *http.Request, client netip.Addr) (uint64, bool) {
	if hk, ok := p.picker.(hashKeyer); ok {
		return hk.key(r, client)
	}
	return 0, false
}

// ringSize bounds the ring: about 100 points per endpoint, at least 1024 and
// at most 65536, shared in proportion to the weights.
func ringSize(n int) uint64 { return uint64(min(max(100*n, 1024), 65536)) }

// ring is a consistent-hash ring (ketama-style) over every endpoint of the
// pool. An unavailable endpoint is walked past, so only its keys move, to
// the next endpoints on the ring.
type ring struct {
	hashOn
	w      weighted
	points []uint64
	owner  []uint32
}

func newRing(p *Pool, w weighted) *ring {
	r := &ring{hashOn: newHashOn(p), w: w}
	if w.total == 0 {
		return r
	}
	size := ringSize(len(p.Endpoints))
	type pt struct {
		h uint64
		o uint32
	}
	var pts []pt
	for i, e := range p.Endpoints {
		n := max(1, size*uint64(max(e.Weight, 1))/w.total)
		for j := range n {
			pts = append(pts, pt{hashString(e.Address + "#" + strconv.FormatUint(j, 10)), uint32(i)})
		}
	}
	sort.Slice(pts, func(a, b int) bool {
		if pts[a].h != pts[b].h {
			return pts[a].h < pts[b].h
		}
		return pts[a].o < pts[b].o
	})
	r.points = make([]uint64, len(pts))
	r.owner = make([]uint32, len(pts))
	for i, x := range pts {
		r.points[i], r.owner[i] = x.h, x.o
	}
	return r
}

func (r *ring) pick(p *Pool, k pickKey) *Endpoint {
	if !k.hashed || len(r.points) == 0 {
		return r.w.eligibleRandom(p, &k)
	}
	i := sort.Search(len(r.points), func(i int) bool { return r.points[i] >= k.hash })
	for j := range len(r.points) {
		if j == walkCheck && !anyEligible(p, &k) {
			return nil
		}
		e := p.Endpoints[r.owner[(i+j)%len(r.points)]]
		if k.eligible(e) {
			return e
		}
	}
	return nil
}

// maglevSizes are the lookup table sizes: primes, the smallest at least
// 100× the endpoint count is used (the Maglev paper's M ≫ N, which keeps
// shares within about 1% and reshuffles minimal), up to Envoy's 65537. A
// small pool's table is small, so a reload with many pools stays cheap.
var maglevSizes = [...]uint64{1021, 2053, 4099, 8191, 16381, 32771, 65537}

func maglevSize(n int) uint64 {
	for _, m := range maglevSizes {
		if m >= 100*uint64(n) {
			return m
		}
	}
	return maglevSizes[len(maglevSizes)-1]
}

// maglev is Google's Maglev consistent hashing with Envoy's weighting: a
// lookup table built over every endpoint; a key indexes the table, and an
// unavailable endpoint's entry passes to the following entries, which
// belong to endpoints spread evenly over the pool.
type maglev struct {
	hashOn
	w     weighted
	table []uint32
}

func newMaglev(p *Pool, w weighted) *maglev {
	return &maglev{hashOn: newHashOn(p), w: w, table: maglevTable(p)}
}

// maglevTable builds a maglev pool's lookup table; nil without endpoints.
func maglevTable(p *Pool) []uint32 {
	n := len(p.Endpoints)
	if n == 0 {
		return nil
	}
	size := maglevSize(n)
	// Endpoint i's preference list is (offset + j·skip) mod size for
	// j = 0, 1, ...; pos holds its next entry and is advanced by adding skip
	// and subtracting size once, which gives the same list without a
	// division per probe. The loop works on locals and plain slices: it is
	// most of the cost of a reload with many maglev pools.
	pos := make([]uint64, n)
	skip := make([]uint64, n)
	weight := make([]uint64, n)
	filled := make([]uint64, n)
	var maxW uint64
	for i, e := range p.Endpoints {
		pos[i] = hashString(e.Address) % size
		skip[i] = hashString(e.Address+"\x00skip")%(size-1) + 1
		weight[i] = uint64(max(e.Weight, 1))
		maxW = max(maxW, weight[i])
	}
	const empty = ^uint32(0)
	table := make([]uint32, size)
	for i := range table {
		table[i] = empty
	}
	placed := uint64(0)
	for round := uint64(1); placed < size; round++ {
		for i := range n {
			// An endpoint fills one more entry each time its share of
			// rounds is due, so entries follow the weights.
			if round*weight[i] < maxW*filled[i] {
				continue
			}
			// Take the first free entry of i's list, and move past it.
			c, s := pos[i], skip[i]
			for table[c] != empty {
				if c += s; c >= size {
					c -= size
				}
			}
			table[c] = uint32(i)
			if c += s; c >= size {
				c -= size
			}
			pos[i] = c
			filled[i]++
			if placed++; placed == size {
				break
			}
		}
	}
	return table
}

// reuseMaglev returns a maglev balancer for p over prev's lookup table, or
// nil when prev has none for the same endpoints: the table depends only on
// the endpoints' addresses and weights, in order, and is never written
// once built, so two tables can share it. A reload that leaves a pool's
// endpoints alone skips its table build, most of the balancers' cost.
func reuseMaglev(p, prev *Pool, w weighted) *maglev {
	if prev == nil || len(prev.Endpoints) != len(p.Endpoints) || len(p.Endpoints) == 0 {
		return nil
	}
	old, ok := prev.picker.(*maglev)
	if !ok || len(old.table) == 0 {
		return nil
	}
	for i, e := range p.Endpoints {
		o := prev.Endpoints[i]
		if e.Address != o.Address || max(e.Weight, 1) != max(o.Weight, 1) {
			return nil
		}
	}
	return &maglev{hashOn: newHashOn(p), w: w, table: old.table}
}

func (m *maglev) pick(p *Pool, k pickKey) *Endpoint {
	if !k.hashed || len(m.table) == 0 {
		return m.w.eligibleRandom(p, &k)
	}
	i := k.hash % uint64(len(m.table))
	for j := range uint64(len(m.table)) {
		if j == walkCheck && !anyEligible(p, &k) {
			return nil
		}
		e := p.Endpoints[m.table[(i+j)%uint64(len(m.table))]]
		if k.eligible(e) {
			return e
		}
	}
	return nil
}

// walkCheck is how far a ring or table walk goes before it checks that an
// eligible endpoint exists at all, so a pool with none left costs O(n), not
// a walk over the whole ring.
const walkCheck = 64

func anyEligible(p *Pool, k *pickKey) bool {
	for _, e := range p.Endpoints {
		if k.eligible(e) {
			return true
		}
	}
	return false
}

// hashString is 64-bit FNV-1a with a final avalanche (splitmix64), stable
// across processes and releases, so every instance of a fleet maps a key to
// the same endpoint and split arm.
func hashString(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return mix64(h)
}

func hashBytes(b []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range b {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return mix64(h)
}

func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
