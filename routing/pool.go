package routing

// HasAvailable reports whether any endpoint may get traffic right now.
func (p *Pool) HasAvailable() bool {
	for _, e := range p.Endpoints {
		if e.Available() {
			return true
		}
	}
	return false
}

// Usable reports whether the pool can serve: it has an available endpoint,
// or it fails open (panic mode) and has any endpoint at all. panic is true in
// the second case, when callers should use every endpoint.
func (p *Pool) Usable() (ok, panic bool) {
	if p.HasAvailable() {
		return true, false
	}
	if p.FailOpen && len(p.Endpoints) > 0 {
		return true, true
	}
	return false, false
}

// AppendAvailable appends the endpoints that may get traffic now. When none
// may and the pool fails open, it appends them all and reports degraded, so
// DNS can lower its TTL while it fails open.
func (p *Pool) AppendAvailable(dst []*Endpoint) (out []*Endpoint, degraded bool) {
	n := len(dst)
	for _, e := range p.Endpoints {
		if e.Available() {
			dst = append(dst, e)
		}
	}
	if len(dst) == n && p.FailOpen {
		return append(dst, p.Endpoints...), len(p.Endpoints) > 0
	}
	return dst, false
}
