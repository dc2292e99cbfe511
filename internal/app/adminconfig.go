package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/meridian-lb/meridian/internal/audit"
	"github.com/meridian-lb/meridian/internal/history"
)

// tokenNameKey carries the name of the admin token a request presented.
type tokenNameKey struct{}

// tokenName is the name of the admin token r passed auth with: an
// admin.tokens name, "default" for admin.token_file's, "" when the API
// needs none.
func tokenName(r *http.Request) string {
	s, _ := r.Context().Value(tokenNameKey{}).(string)
	return s
}

// record appends an admin action to the audit log: who (the caller's
// address and token name), what, on what, and how it went.
func (a *admin) record(r *http.Request, action, target, result, detail string) {
	if a.audit == nil {
		return
	}
	client := r.RemoteAddr
	if h, _, err := net.SplitHostPort(client); err == nil {
		client = h
	}
	a.audit.Record(audit.Entry{Client: client, Token: tokenName(r), Action: action, Target: target, Result: result, Detail: detail})
}

// historyDoc is the GET /api/v1/config/history document.
type historyDoc struct {
	// Live is the version of the table serving now.
	Live    string            `json:"live,omitempty"`
	Entries []history.Summary `json:"entries"`
}

func (a *admin) historyList(w http.ResponseWriter, r *http.Request) {
	doc := historyDoc{Entries: a.hist.List()}
	if t := a.live.Load(); t != nil {
		doc.Live = t.Version
	}
	writeJSON(w, doc)
}

// historyGet answers one accepted config's bytes as they were read, with
// where they came from and when in headers.
func (a *admin) historyGet(w http.ResponseWriter, r *http.Request) {
	v := r.PathValue("version")
	e, ok := a.hist.Get(v)
	if !ok {
		http.Error(w, fmt.Sprintf("no version %q in the config history", v), http.StatusNotFound)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/yaml; charset=utf-8")
	h.Set("X-Meridian-Version", e.Version)
	h.Set("X-Meridian-Source", e.Source)
	h.Set("X-Meridian-Seq", strconv.FormatUint(e.Seq, 10))
	h.Set("Last-Modified", e.Time.UTC().Format(http.TimeFormat))
	_, _ = w.Write(e.Raw)
}

// configDiff answers the unified diff between two accepted configs as
// text: ?from= (default: the config accepted before to) and ?to= (default:
// the live config). Equal configs answer an empty body.
func (a *admin) configDiff(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	d, err := a.hist.Diff(q.Get("from"), q.Get("to"))
	if err != nil {
		code := http.StatusInternalServerError
		if errors.Is(err, history.ErrUnknownVersion) {
			code = http.StatusNotFound
		}
		http.Error(w, err.Error(), code)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte(d))
}

// rollbackDoc is the 202 answer of a rollback.
type rollbackDoc struct {
	Version string `json:"version"`
	Source  string `json:"source"`
	Bytes   int    `json:"bytes"`
	Note    string `json:"note"`
}

// rollbackTimeout bounds writing the config back (a Consul round trip).
const rollbackTimeout = 15 * time.Second

// configRollback writes an accepted config back to the config source. It
// does not apply it: the watcher sees the write and applies it as any
// edit, so the file or the KV key stays the single truth, and a config
// that no longer compiles (a TLS file it names is gone) is rejected the
// usual way.
func (a *admin) configRollback(w http.ResponseWriter, r *http.Request) {
	v := r.PathValue("version")
	e, ok := a.hist.Get(v)
	if !ok {
		a.record(r, "rollback", v, "not found", "no such version in the config history")
		http.Error(w, fmt.Sprintf("no version %q in the config history", v), http.StatusNotFound)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), rollbackTimeout)
	defer cancel()
	if err := a.rollback(ctx, e); err != nil {
		code, result := http.StatusInternalServerError, "failed"
		if errors.Is(err, errNotWritable) {
			code, result = http.StatusConflict, "not writable"
		}
		a.record(r, "rollback", v, result, err.Error())
		a.logger.Warn("config rollback failed", zap.String("version", v), zap.Error(err), zap.String("remote", r.RemoteAddr))
		http.Error(w, err.Error(), code)
		return
	}
	a.record(r, "rollback", v, "ok", fmt.Sprintf("wrote %d bytes of version %s (accepted %s) to %s", len(e.Raw), e.Version, e.Time.UTC().Format(time.RFC3339), e.Source))
	a.logger.Info("config rolled back", zap.String("version", v), zap.String("source", e.Source), zap.String("remote", r.RemoteAddr))
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	writeJSON(w, rollbackDoc{Version: e.Version, Source: e.Source, Bytes: len(e.Raw),
		Note: "written to the config source; it applies like any edit: watch /api/v1/table's version and last_reload"})
}

// auditDoc is the GET /api/v1/audit document.
type auditDoc struct {
	Entries []audit.Entry `json:"entries"`
}

// auditList answers the audit log kept in memory, newest first; ?limit=N
// keeps the N newest.
func (a *admin) auditList(w http.ResponseWriter, r *http.Request) {
	es := a.audit.Entries()
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			http.Error(w, fmt.Sprintf("limit %q: want a count", s), http.StatusBadRequest)
			return
		}
		es = es[:min(n, len(es))]
	}
	writeJSON(w, auditDoc{Entries: es})
}
