package telemetry

import (
	"sync/atomic"
	"time"
)

// Failure kinds, as the proxy names them (see the access log's error
// field). The first UpstreamKinds are the upstream's fault; the rest are the
// client's or Meridian's, and never count against an endpoint.
var kindNames = [...]string{
	"connect_failure", "reset", "timeout", "bad_response",
	"no_endpoint",
	"client_canceled", "client_bad_body", "client_body_timeout", "client_body_slow", "client_body_large",
}

const (
	// NumKinds is the number of failure kinds counted.
	NumKinds = len(kindNames)
	// UpstreamKinds is how many of the first kinds are an upstream's fault
	// on an attempt (no_endpoint is not: no endpoint was tried).
	UpstreamKinds = 4
)

// kindIndex maps a failure kind to its counter; -1 for none or unknown.
func kindIndex(kind string) int {
	switch kind {
	case "":
		return -1
	case "connect_failure":
		return 0
	case "reset":
		return 1
	case "timeout":
		return 2
	case "bad_response":
		return 3
	case "no_endpoint":
		return 4
	case "client_canceled":
		return 5
	case "client_bad_body":
		return 6
	case "client_body_timeout":
		return 7
	case "client_body_slow":
		return 8
	case "client_body_large":
		return 9
	}
	return -1
}

// HTTP is the counters of one HTTP cell: one arm of a route (the service a
// split entry sends to) or one endpoint of a pool. The proxy finds its cells
// when it compiles a table and updates them with atomic adds only: no lock,
// no map, no allocation. Every method is safe on a nil *HTTP, which counts
// nothing (a handler without telemetry, or an endpoint of a table compiled
// without it).
//
// A cell is striped: every method takes a hint, and requests with the same
// hint count in the same stripe. Counters that CPUs share cost a cache-line
// transfer per update once two CPUs serve the same route (on this
// project's machines several hundred nanoseconds per request), so the
// proxy passes a hint that stays on one CPU (its pooled per-request state)
// and each CPU mostly writes lines no other CPU touches. Reads add the
// stripes up. A cell has one stripe until it first counts; the tick after
// gives it the full set (see cur), so idle routes cost one stripe each.
//
// What a count means depends on the cell's side. On an arm it is the
// client's request: its final status class, its failure kind, its whole
// latency, and the sum of its attempts' upstream latencies. On an endpoint
// it is each attempt (retries included): the status class of the
// upstream's response, the kind of a failed attempt, the latency to the
// response head; plus, for the requests whose last attempt it served, the
// whole latency and the bytes.
type HTTP struct {
	// cur is the stripes requests count in now. A cell starts with one
	// stripe (first) and gets its full set from the tick that first sees
	// it count, off the request path (in a Telemetry nobody ticks: from
	// the next activation or read): a table of thousands of routes of
	// which a few get traffic keeps one stripe per idle cell. Writers that
	// loaded first before the switch may still count there, so reads add
	// both sets up.
	cur   atomic.Pointer[[]httpStripe]
	first *[]httpStripe
	// touched is set by the first count, so the tick reads only the cells
	// that ever counted (an idle cell costs it one load). Read-mostly: it
	// shares its line with cur, which every update reads anyway.
	touched atomic.Bool
}

// httpStripe is one stripe of a cell, a whole number of cache lines.
type httpStripe struct {
	inFlight atomic.Int64
	class    [5]atomic.Uint64 // 1xx..5xx
	bytesIn  atomic.Uint64    // request body bytes read from the client
	bytesOut atomic.Uint64    // response bytes written to the client
	failed   atomic.Uint64    // attempts that got no response (endpoint cells)
	kinds    [NumKinds]atomic.Uint64
	_        [5]uint64
	total    Hist // the whole exchange, as the client saw it
	upstream Hist // attempt start to response head
	_        [7]uint64
}

// newHTTP makes a cell of one stripe; grow gives it more.
func newHTTP() *HTTP {
	one := make([]httpStripe, 1)
	c := &HTTP{first: &one}
	c.cur.Store(&one)
	return c
}

// grow gives a cell that counts its full set of n stripes (a power of
// two), once. Only the registry calls it, under its lock.
func (c *HTTP) grow(n int) {
	if n > 1 && c.cur.Load() == c.first {
		s := make([]httpStripe, n)
		c.cur.Store(&s)
	}
}

// stripe returns the stripe of hint, marking the cell touched.
func (c *HTTP) stripe(hint uint) *httpStripe {
	if !c.touched.Load() {
		c.touched.Store(true)
	}
	s := *c.cur.Load()
	return &s[hint&uint(len(s)-1)]
}

// sets calls f with the cell's stripe sets: the first, and the full one
// once it has it.
func (c *HTTP) sets(f func([]httpStripe)) {
	f(*c.first)
	if cur := c.cur.Load(); cur != c.first {
		f(*cur)
	}
}

func classIndex(code int) int {
	c := code/100 - 1
	if c < 0 || c > 4 {
		return 4 // nothing sane came back: count it with the errors
	}
	return c
}

// Begin counts a request in flight on an arm; Done ends it.
func (c *HTTP) Begin(hint uint) {
	if c != nil {
		c.stripe(hint).inFlight.Add(1)
	}
}

// Done records a finished request on its arm: the status sent to the
// client, the failure kind ("" for none), the whole latency, the summed
// upstream latency of its attempts (0 when none got a response head), and
// the body bytes in and out. It ends what Begin counted.
func (c *HTTP) Done(hint uint, code int, kind string, total, upstream time.Duration, in, out int64) {
	if c == nil {
		return
	}
	s := c.stripe(hint)
	s.inFlight.Add(-1)
	s.class[classIndex(code)].Add(1)
	if k := kindIndex(kind); k >= 0 {
		s.kinds[k].Add(1)
	}
	s.total.Observe(total)
	if upstream > 0 {
		s.upstream.Observe(upstream)
	}
	s.bytes(in, out)
}

func (s *httpStripe) bytes(in, out int64) {
	if in > 0 {
		s.bytesIn.Add(uint64(in))
	}
	if out > 0 {
		s.bytesOut.Add(uint64(out))
	}
}

// Response records an attempt on an endpoint that got a response head:
// its status and the time from the attempt's start to the head.
func (c *HTTP) Response(hint uint, code int, latency time.Duration) {
	if c == nil {
		return
	}
	s := c.stripe(hint)
	s.class[classIndex(code)].Add(1)
	s.upstream.Observe(latency)
}

// Failed records an attempt on an endpoint that got no response, by the
// upstream's fault (kind is one of the first UpstreamKinds).
func (c *HTTP) Failed(hint uint, kind string) {
	if c == nil {
		return
	}
	s := c.stripe(hint)
	s.failed.Add(1)
	if k := kindIndex(kind); k >= 0 {
		s.kinds[k].Add(1)
	}
}

// BodyFailed records an upstream failure while the response body was
// relayed; the attempt was counted by Response already.
func (c *HTTP) BodyFailed(hint uint, kind string) {
	if c == nil {
		return
	}
	if k := kindIndex(kind); k >= 0 {
		c.stripe(hint).kinds[k].Add(1)
	}
}

// Served records, on the endpoint that served a request's last attempt,
// the request's whole latency and its body bytes.
func (c *HTTP) Served(hint uint, total time.Duration, in, out int64) {
	if c == nil {
		return
	}
	s := c.stripe(hint)
	s.total.Observe(total)
	s.bytes(in, out)
}

// inFlight is the requests in flight on the cell: the sum of the stripes
// (one stripe alone can be negative).
func (c *HTTP) inFlight() int64 {
	var n int64
	c.sets(func(ss []httpStripe) {
		for i := range ss {
			n += ss[i].inFlight.Load()
		}
	})
	return n
}

// httpVals is a plain copy of an HTTP cell's counters (not in flight,
// which is a level, not a count), or a sum of copies.
type httpVals struct {
	class          [5]uint64
	kinds          [NumKinds]uint64
	failed         uint64
	bytesIn, bytes uint64
	total, up      histVals
}

// load sets v to the sum of the cell's stripes.
func (c *HTTP) load(v *httpVals) {
	*v = httpVals{}
	var h histVals
	c.sets(func(ss []httpStripe) {
		for i := range ss {
			s := &ss[i]
			for j := range s.class {
				v.class[j] += s.class[j].Load()
			}
			for j := range s.kinds {
				v.kinds[j] += s.kinds[j].Load()
			}
			v.failed += s.failed.Load()
			v.bytesIn += s.bytesIn.Load()
			v.bytes += s.bytesOut.Load()
			s.total.load(&h)
			v.total.add(&h)
			s.upstream.load(&h)
			v.up.add(&h)
		}
	})
}

func (v *httpVals) add(d *httpVals) {
	for i := range v.class {
		v.class[i] += d.class[i]
	}
	for i := range v.kinds {
		v.kinds[i] += d.kinds[i]
	}
	v.failed += d.failed
	v.bytesIn += d.bytesIn
	v.bytes += d.bytes
	v.total.add(&d.total)
	v.up.add(&d.up)
}

// setDiff sets v to a-b.
func (v *httpVals) setDiff(a, b *httpVals) {
	for i := range v.class {
		v.class[i] = a.class[i] - b.class[i]
	}
	for i := range v.kinds {
		v.kinds[i] = a.kinds[i] - b.kinds[i]
	}
	v.failed = a.failed - b.failed
	v.bytesIn = a.bytesIn - b.bytesIn
	v.bytes = a.bytes - b.bytes
	v.total.setDiff(&a.total, &b.total)
	v.up.setDiff(&a.up, &b.up)
}

func (v *httpVals) responses() uint64 {
	var n uint64
	for _, c := range v.class {
		n += c
	}
	return n
}

// side says how a cell's counts are read: as client requests (arms, and
// the routes and services they add up to) or as attempts on an upstream
// (endpoints, and their pools).
type side uint8

const (
	clientSide side = iota
	upstreamSide
)

// requests is what the windows count: client requests, or attempts.
func (v *httpVals) requests(s side) uint64 {
	if s == upstreamSide {
		return v.responses() + v.failed
	}
	return v.responses()
}

// errors is what the error ratio counts: 5xx responses, plus on the
// upstream side every failure that was the upstream's fault.
func (v *httpVals) errors(s side) uint64 {
	n := v.class[4]
	if s == upstreamSide {
		for _, k := range v.kinds[:UpstreamKinds] {
			n += k
		}
	}
	return n
}

// windowHist is the latency the windows' quantiles read: what the client
// saw for routes and services, the upstream's for pools and endpoints.
func (v *httpVals) windowHist(s side) *histVals {
	if s == upstreamSide {
		return &v.up
	}
	return &v.total
}
