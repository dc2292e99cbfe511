package proxy

import (
	"net/http"
	"time"
	"unsafe"

	"github.com/meridian-lb/meridian/config"
	"github.com/meridian-lb/meridian/routing"
	"github.com/meridian-lb/meridian/telemetry"
)

// The proxy's side of package telemetry. Compile finds the cells of every
// route arm and pool endpoint of a table and keeps them on the compiled
// state (routeState.tel by split entry, upstream.tel by endpoint index), so
// the request path reaches its cells through a slice index and counts with
// atomic adds, in the stripe of its exchange (telHint): no map, no lock, no
// allocation. The hooks below are called from one line each in handler.go
// (prepare, finish) and transport.go (beginAttempt, endAttempt and its
// failure branch, upBody.Read).

// compileTelemetry finds st's telemetry cells; Install activates them.
// Caller holds stateMu.
func (h *Handler) compileTelemetry(st *tableState) {
	t := st.table
	routes := make([]telemetry.RouteSpec, len(st.routes))
	var arms []telemetry.ArmSpec // every route's, cut from one slice
	for i, rs := range st.routes {
		routes[i], arms = routeSpec(rs.route, arms)
	}
	names := sortedPoolNames(t)
	pools := make([]telemetry.PoolSpec, len(names))
	for i, n := range names {
		p := t.Pools[n]
		eps := make([]telemetry.EndpointSpec, len(p.Endpoints))
		for j, e := range p.Endpoints {
			eps[j] = telemetry.EndpointSpec{Address: e.Address, Load: e}
		}
		pools[i] = telemetry.PoolSpec{Name: n, Endpoints: eps}
	}
	set := h.tel.PrepareHTTP(routes, pools)
	for i, rs := range st.routes {
		rs.tel = set.Arms(i)
	}
	for i, n := range names {
		if up := st.pools[t.Pools[n]]; up != nil {
			up.tel, up.telEPs = set.Endpoints(i), t.Pools[n].Endpoints
		}
	}
	st.tel = set
}

// routeSpec lists a route's arms by split entry, or its one service. The
// arms are appended to buf, which is returned: the specs of a table's
// routes share its backing arrays.
func routeSpec(r *routing.Route, buf []telemetry.ArmSpec) (telemetry.RouteSpec, []telemetry.ArmSpec) {
	if cap(buf)-len(buf) < 1+len(splitOf(r)) {
		buf = make([]telemetry.ArmSpec, 0, max(1024, 1+len(splitOf(r))))
	}
	n := len(buf)
	if r.Split == nil || r.Config == nil {
		name := ""
		if r.Service != nil {
			name = r.Service.Name
		}
		buf = append(buf, telemetry.ArmSpec{Entry: -1, Service: name})
	} else {
		for i, e := range r.Config.Split {
			a := telemetry.ArmSpec{Entry: i, Service: e.Service, Rule: e.When != nil}
			if !a.Rule {
				a.Weight = 1
				if e.Weight != nil {
					a.Weight = max(*e.Weight, 0)
				}
			}
			buf = append(buf, a)
		}
	}
	return telemetry.RouteSpec{Name: r.Name, Arms: buf[n:len(buf):len(buf)]}, buf
}

// splitOf is the route's split entries, if any.
func splitOf(r *routing.Route) []*config.SplitEntry {
	if r.Split == nil || r.Config == nil {
		return nil
	}
	return r.Config.Split
}

// cell is the telemetry cell of one of the pool's endpoints; nil for an
// endpoint of another table (which cannot happen: the exchange picks from
// the table its state was compiled for).
func (u *upstream) cell(ep *routing.Endpoint) *telemetry.HTTP {
	if i := ep.Index; i >= 0 && i < len(u.tel) && u.telEPs[i] == ep {
		return u.tel[i]
	}
	return nil
}

// telHint is the stripe hint of x's counts (see telemetry.HTTP): its
// address, hashed. Exchanges are pooled, and sync.Pool hands each P the one
// it last put back, so a CPU keeps counting through the same few exchanges,
// in stripes other CPUs mostly do not write.
func (x *exchange) telHint() uint {
	return uint(uint64(uintptr(unsafe.Pointer(x))) * 0x9E3779B97F4A7C15 >> 56)
}

// telStart counts the request in flight on the arm its split chose.
func (x *exchange) telStart() { x.telArm().Begin(x.telHint()) }

// telArm is the cell of the arm the request's split chose.
func (x *exchange) telArm() *telemetry.HTTP {
	tel := x.rs.tel
	if i := max(x.choice.Entry, 0); i < len(tel) {
		return tel[i]
	}
	return nil
}

// telBegin finds the attempt's endpoint cell and starts its clock, unless
// attemptStarted already did (the access log or tracing times attempts).
func (x *exchange) telBegin(up *upstream) {
	c := &x.cur
	c.tel = up.cell(c.ep)
	if !x.st.timed {
		c.t0 = time.Now()
	}
}

// telEnd counts an attempt that got a response head on its endpoint, with
// its upstream latency, and adds the latency to the request's upstream
// time (attemptEnded does that when the table times attempts).
func (x *exchange) telEnd(res *http.Response) {
	c := &x.cur
	d := time.Since(c.t0)
	if !x.st.timed {
		x.upDur += d
	}
	if res != nil {
		c.tel.Response(x.telHint(), res.StatusCode, d)
	}
}

// telFailed counts an attempt that failed by the upstream's fault.
func (x *exchange) telFailed(kind string) { x.cur.tel.Failed(x.telHint(), kind) }

// telBodyFailed counts an upstream failure while the body was relayed.
func (x *exchange) telBodyFailed(kind string) { x.cur.tel.BodyFailed(x.telHint(), kind) }

// telDone counts the finished request on its arm and, when an endpoint
// served its last attempt, on that endpoint.
func (h *Handler) telDone(x *exchange, code int, d time.Duration) {
	if x.rs == nil {
		return
	}
	var in int64
	if x.body != nil {
		in = x.body.n.Load()
	}
	hint := x.telHint()
	x.telArm().Done(hint, code, x.errKind, d, x.upDur, in, x.rw.bytes)
	if x.ep != nil {
		x.cur.tel.Served(hint, d, in, x.rw.bytes)
	}
}
