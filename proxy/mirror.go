package proxy

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/netip"
	"sync/atomic"

	"github.com/meridian-lb/meridian/routing"
)

// mirrorHeader marks mirrored copies, so the shadow service can tell them
// apart; a client cannot send it (forwardHeaders removes it).
const mirrorHeader = "X-Meridian-Mirror"

// mirrorDiscardLimit bounds how much of a mirror's response is read (and
// thrown away) before the connection is closed.
const mirrorDiscardLimit = 1 << 20

// mirrorJob is one sampled request's copy. It is prepared while the
// primary request is being handled and sent fire-and-forget: its own
// goroutine, context and timeout, no retries, no health reports, and a
// per-route bound on copies in flight.
type mirrorJob struct {
	h      *Handler
	st     *tableState
	rs     *routeState
	svc    *routing.Service
	client netip.Addr
	region string
	req    *http.Request // outbound copy without a body
	state  atomic.Int32  // 0 pending, 1 fired, 2 abandoned
	span   *mirrorSpan   // nil unless the request's trace is exported (trace.go)
}

// startMirror prepares the copy of x's request. A request without a body
// (or with one already buffered) is sent at once; otherwise the copy is
// sent once the primary has read the whole body, if it fits max_body.
func (h *Handler) startMirror(x *exchange) {
	rs, r := x.rs, x.req
	hasBody := r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0
	if (hasBody && r.ContentLength > rs.mirrorMaxBody) || len(r.Header["Upgrade"]) > 0 ||
		rs.shared.mirrorInFlight.Load() >= rs.mirrorInFlight {
		h.met.mirrorDropped.Inc()
		return
	}
	svc := x.route.Mirror
	region := ""
	if svc.Policy == "geo" {
		region = x.clientRegion()
	}
	j := &mirrorJob{h: h, st: x.st, rs: rs, svc: svc, client: x.client, region: region, req: h.mirrorRequest(x)}
	j.span = x.traceMirror(j.req.Header)
	switch {
	case !hasBody:
		j.fire(nil)
	case x.bodyBuf != nil:
		j.fire(x.bodyBuf)
	default:
		t := &mirrorTee{job: j, max: rs.mirrorMaxBody}
		if r.ContentLength > 0 {
			t.buf = make([]byte, 0, r.ContentLength)
		}
		x.body.tee = t
		x.mirror = j
	}
}

// mirrorRequest builds the copy's request line and headers: what the
// primary upstream gets, plus the mirror marker.
func (h *Handler) mirrorRequest(x *exchange) *http.Request {
	r := x.req
	u := *r.URL
	u.Scheme, u.Host = "http", "mirror.invalid"
	if x.rs.stripPrefix != "" {
		stripPrefix(&u, x.rs.stripPrefix)
	}
	hdr := cloneHeader(r.Header)
	removeHopByHop(hdr)
	delete(hdr, "Forwarded")
	if !x.trusted {
		delete(hdr, "X-Forwarded-For")
	}
	forwardHeaders(hdr, r, x)
	hdr.Set(mirrorHeader, "1")
	host := r.Host
	if x.rs.hostRewrite != "" {
		host = x.rs.hostRewrite
	}
	return &http.Request{
		Method: r.Method, URL: &u, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: hdr, Host: host,
	}
}

// fire sends the copy with body, unless the route's mirrors in flight are
// at max_in_flight (the copy is dropped: mirroring never queues).
func (j *mirrorJob) fire(body []byte) {
	if !j.state.CompareAndSwap(0, 1) {
		return
	}
	sh := &j.rs.shared.mirrorInFlight
	if sh.Add(1) > j.rs.mirrorInFlight {
		sh.Add(-1)
		j.h.met.mirrorDropped.Inc()
		return
	}
	j.h.mirrors.Add(1)
	go j.send(body)
}

// abandon drops a copy whose body never completed; the handler calls it
// when the primary request ends.
func (j *mirrorJob) abandon() {
	if j.state.CompareAndSwap(0, 2) {
		j.h.met.mirrorDropped.Inc()
	}
}

func (j *mirrorJob) send(body []byte) {
	defer j.h.mirrors.Done()
	defer j.rs.shared.mirrorInFlight.Add(-1)
	pool, ep := j.pick()
	if ep == nil {
		j.h.met.mirrorDropped.Inc()
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), j.rs.mirrorTimeout)
	defer cancel()
	up := j.st.pools[pool]
	req := j.req.WithContext(ctx)
	req.URL.Scheme, req.URL.Host = up.scheme, ep.Address
	if body != nil {
		req.Body = io.NopCloser(bytes.NewReader(body))
		req.ContentLength = int64(len(body))
	}
	res, err := j.roundTrip(up.rt, req, pool, ep)
	if err != nil {
		j.h.met.mirrorFailed.Inc()
		return
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, mirrorDiscardLimit))
	_ = res.Body.Close()
	j.h.met.mirrorSent.Inc()
}

// pick chooses the mirror's endpoint the way the primary would, without
// retries.
func (j *mirrorJob) pick() (*routing.Pool, *routing.Endpoint) {
	var buf [4]*routing.Pool
	order := j.svc.Order(buf[:0], j.region)
	for _, panicMode := range []bool{false, true} {
		for _, p := range order {
			if panicMode {
				if ok, pm := p.Usable(); !ok || !pm {
					continue
				}
			}
			hash, hashed := p.HashKey(j.req, j.client)
			if e := p.Pick(hash, hashed, nil, panicMode); e != nil {
				return p, e
			}
		}
	}
	return nil, nil
}

// mirrorTee copies the primary's request body, as the primary reads it,
// for the mirror; a body larger than max_body is not mirrored.
type mirrorTee struct {
	job  *mirrorJob
	max  int64
	buf  []byte
	over bool
}

func (t *mirrorTee) write(p []byte) {
	if t.over {
		return
	}
	if int64(len(t.buf)+len(p)) > t.max {
		t.over, t.buf = true, nil
		return
	}
	t.buf = append(t.buf, p...)
}

func (t *mirrorTee) done() {
	if t.over {
		t.job.abandon()
		return
	}
	t.job.fire(t.buf)
}

// waitMirrors waits for the mirror copies in flight, until ctx is done:
// Drain calls it on shutdown, so copies already sent are not cut (each is
// bounded by its route's mirror timeout, and ctx by the grace period).
func (h *Handler) waitMirrors(ctx context.Context) {
	done := make(chan struct{})
	go func() { h.mirrors.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}
