package proxy

import (
	"context"
	"errors"

	"github.com/meridian-lb/meridian/acme"
	"github.com/meridian-lb/meridian/config"
)

// acmeLife is the lifecycle of the tls.acme manager: the one the current
// generation uses (cur, nil without tls.acme), built anew when the section
// (or its CA file) changes and adopted only when a generation that uses it
// is published, started under Run's context (ctx; nil before Run, when a
// new manager waits for Run to start it), and retired managers handed out
// to be stopped once the TLSServer's mutex is released. lastErr is the
// last error building a manager, so a retry that fails the same way is not
// reported again; after close no manager is built. The TLSServer's mutex
// guards it.
type acmeLife struct {
	newManager func(config.ACME) (*acme.Manager, error)

	cur     *acme.Manager
	ctx     context.Context
	lastErr string
	retired []*acme.Manager
	closed  bool
}

// candidate returns the manager the next generation should use for want:
// the current one while the section is unchanged, a new, unstarted one
// when it changed, nil without a section. A section whose manager cannot
// be built keeps the current one, with the error.
func (a *acmeLife) candidate(want *config.ACME) (*acme.Manager, error) {
	switch {
	case want == nil:
		return nil, nil
	case a.cur != nil && a.cur.Matches(*want):
		return a.cur, nil
	case a.closed:
		return a.cur, errors.New("tls.acme: the TLS server has stopped")
	}
	m, err := a.newManager(*want)
	if err != nil {
		return a.cur, err
	}
	return m, nil
}

// noteErr records the outcome of candidate and reports whether err is a
// new failure, to be counted once.
func (a *acmeLife) noteErr(err error) bool {
	if err == nil {
		a.lastErr = ""
		return false
	}
	if msg := err.Error(); msg != a.lastErr {
		a.lastErr = msg
		return true
	}
	return false
}

// adopt makes m the current manager once its generation is published,
// retiring the previous one and starting m if Run has; it reports whether
// the manager changed.
func (a *acmeLife) adopt(m *acme.Manager) bool {
	if m == a.cur {
		return false
	}
	if a.cur != nil {
		a.retired = append(a.retired, a.cur)
	}
	a.cur = m
	if m != nil && a.ctx != nil {
		m.Start(a.ctx)
	}
	return true
}

// start runs the current manager, and every later one, under ctx.
func (a *acmeLife) start(ctx context.Context) {
	if a.closed {
		return
	}
	a.ctx = ctx
	if a.cur != nil {
		a.cur.Start(ctx)
	}
}

// close retires the current manager; no manager is built after it.
func (a *acmeLife) close() {
	a.closed = true
	a.ctx = nil
	if a.cur != nil {
		a.retired = append(a.retired, a.cur)
		a.cur = nil
	}
}

// takeRetired hands out the managers to stop.
func (a *acmeLife) takeRetired() []*acme.Manager {
	r := a.retired
	a.retired = nil
	return r
}
