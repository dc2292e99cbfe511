package proxy

import (
	"net/http"

	"github.com/meridian-lb/meridian/policy"
)

// runPolicy runs the route's edge policies (package policy) on the request.
// It returns false when a policy answered the request itself: a refusal
// (403, 429, 401, a forward-auth answer), a CORS preflight or a redirect.
// Those answers are the edge's own: they are counted by route, policy and
// code in meridian_http_policy_answers_total, and never reach an upstream
// or its health.
func (h *Handler) runPolicy(x *exchange, pol *policy.Route) bool {
	pe := policy.Exchange{W: &x.rw, R: x.req, Client: x.client, RequestID: x.requestID, Route: x.route.Name, Now: x.start}
	o := pol.Before(&pe)
	if o.Step == policy.StepNone {
		return true
	}
	if o.Code == 499 {
		x.errKind = kindCanceled
	}
	x.rs.policyCounter(h.met, o.Step, o.Code).Inc()
	return false
}

// wrapResponse puts the route's response policies (compression) between
// the response writer and the client; the returned function completes
// them once the response is written.
func (x *exchange) wrapResponse(pol *policy.Route) {
	if !pol.Compresses() || isUpgrade(x.req) {
		return
	}
	w, done := pol.Wrap(x.rw.w, x.req)
	x.rw.w, x.respDone = w, done
}

// setHeaders sets the route's configured headers on hdr, expanding the
// templated ones for this request.
func (x *exchange) setHeaders(hdr http.Header, hvs []policy.HeaderValue) {
	var vars policy.Vars
	have := false
	for i := range hvs {
		hv := &hvs[i]
		if hv.T == nil {
			hdr[hv.Name] = []string{hv.Literal}
			continue
		}
		if !have {
			vars, have = policy.RequestVars(x.req, x.client.String(), x.requestID, x.rs.name), true
		}
		hdr[hv.Name] = []string{hv.Value(&vars)}
	}
}
