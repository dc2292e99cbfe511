package app

import (
	_ "embed"
	"net/http"
)

// dashboardHTML is the operations console: one self-contained page (inline
// CSS, JavaScript and SVG; no external asset, no build step) embedded in
// the binary, so it works offline and matches the API it was built with.
//
//go:embed dashboard.html
var dashboardHTML []byte

// dashboard serves the console at /. It polls /api/v1/table and
// /api/v1/stats every two seconds and renders an overview (per route and
// pool rate, error ratio and p99 with 15-minute sparklines; a timeline of
// health transitions), the endpoints with their health, traffic and
// drain / force down / enable buttons, the routes with their split arms'
// declared weight beside the live share, the zones with the answer each
// region gets now, an explain form for an HTTP request and a DNS query,
// and the last reload's outcome. The token typed into its field is kept
// in the browser's local storage and sent as a bearer token.
func (a *admin) dashboard(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' data:")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(dashboardHTML)
}
