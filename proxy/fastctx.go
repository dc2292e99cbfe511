package proxy

import (
	"context"
	"sync"
)

// laneCtx is the context of a request the fast lane serves: the cancelable
// context net/http would give the handler, plus one end hook. The lane
// cancels it (client gone, forced close, the handler's return), and so
// does the upstream guard on a timeout (upstreamGuard.lc), instead of
// deriving a context of its own; and the upstream client hooks its
// connection to it for the length of an exchange (h1Conn.roundTrip),
// instead of a context.AfterFunc.
//
// Why: each derived context and each AfterFunc costs a registration with
// its parent (a children map and a Done channel allocated on each side).
// On the HTTP/1.1 benchmark the guard's context and the upstream client's
// AfterFunc came to 17 of the 35 allocations per proxied request
// (2026-12-06 allocation profile); with this, 6.
//
// The hook runs whenever the context ends through cancel, and nothing else
// ends a context that takes hooks: the lane's parent context is never done
// (newLaneCtx).
type laneCtx struct {
	context.Context // from context.WithCancelCause
	cancelf         context.CancelCauseFunc

	hooks bool // the parent can never end: laneCtxOf may hand c out

	mu    sync.Mutex
	conn  *h1Conn // the exchange's upstream connection, expired when c ends
	ended bool    // cancel ran
}

// laneCtxKey finds the laneCtx under values and wrappers (laneCtxOf).
type laneCtxKey struct{}

// newLaneCtx returns a request context for the lane, ended by its cancel.
// When parent could end on its own, which would skip the hook, the context
// takes no hook: laneCtxOf does not find it.
func newLaneCtx(parent context.Context) *laneCtx {
	ctx, cancel := context.WithCancelCause(parent)
	return &laneCtx{Context: ctx, cancelf: cancel, hooks: parent.Done() == nil}
}

func (c *laneCtx) Value(key any) any {
	if key == (laneCtxKey{}) && c.hooks {
		return c
	}
	return c.Context.Value(key)
}

// cancel ends the context with cause and expires the hooked connection's
// deadline, which ends its read or write in flight.
func (c *laneCtx) cancel(cause error) {
	c.cancelf(cause)
	c.mu.Lock()
	pc := c.conn
	c.conn, c.ended = nil, true
	c.mu.Unlock()
	if pc != nil {
		pc.expireNow()
	}
}

// hook has pc expired when the context ends, at once if it has; false
// means another connection holds the hook (the caller watches the
// context with context.AfterFunc instead).
func (c *laneCtx) hook(pc *h1Conn) bool {
	c.mu.Lock()
	if c.conn != nil {
		c.mu.Unlock()
		return false
	}
	if c.ended {
		c.mu.Unlock()
		pc.expireNow()
		return true
	}
	c.conn = pc
	c.mu.Unlock()
	return true
}

// unhook removes pc's hook; false means the context ended first (the
// connection's deadline is expired), as AfterFunc's stop reports.
func (c *laneCtx) unhook(pc *h1Conn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == pc {
		c.conn = nil
	}
	return !c.ended
}

// laneCtxOf returns the laneCtx ctx derives from when nothing between the
// two can end on its own (a per-try or route timeout would: then the
// caller needs context.AfterFunc). ctx.Done is the tell: values and
// wrappers pass their parent's channel through.
func laneCtxOf(ctx context.Context) *laneCtx {
	lc, _ := ctx.Value(laneCtxKey{}).(*laneCtx)
	if lc == nil || ctx.Done() != lc.Done() {
		return nil
	}
	return lc
}
