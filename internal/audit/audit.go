// Package audit records the admin API's actions: who (client address and
// the name of the token used, never the token) did what to what, and how
// it went. Every entry is kept in memory (the last config.DefaultAuditEntries
// by default) for GET /api/v1/audit and the console, and, when
// admin.audit_log names a file, appended to it as one JSON object per line.
//
// The file is opened with O_APPEND (created 0640 when missing), so several
// writers and logrotate's copytruncate keep whole lines; Reopen (SIGUSR1)
// opens the path anew after logrotate renamed the file, and keeps the old
// file when the new one cannot be opened. Admin actions are rare, so each
// entry is written at once, under the log's lock; a write that fails is
// logged and the entry is still kept in memory.
//
// Concurrency: every method is safe from any goroutine.
package audit

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/meridian-lb/meridian/config"
)

// Entry is one admin action.
type Entry struct {
	Time time.Time `json:"time"`
	// Client is the caller's address.
	Client string `json:"client"`
	// Token is the name of the admin token the caller presented
	// (admin.tokens[].name, "default" for admin.token_file, "" when the
	// API needs none). Never the token itself.
	Token string `json:"token"`
	// Action is what was asked: drain, down, enable, rollback, ...
	Action string `json:"action"`
	// Target is what it was asked of: "pool/address", a config version.
	Target string `json:"target"`
	// Result is "ok", or why it was not done.
	Result string `json:"result"`
	// Detail says more, such as the state it led to.
	Detail string `json:"detail,omitempty"`
}

// Options configure a Log.
type Options struct {
	// Max is how many entries are kept in memory; < 1 means
	// config.DefaultAuditEntries.
	Max int
	// Logger reports file errors; nil discards them.
	Logger *zap.Logger
}

// Log is the audit log.
type Log struct {
	log *zap.Logger
	max int

	mu      sync.Mutex
	entries []Entry // oldest first, at most max
	path    string
	file    *os.File
}

// New returns a log that keeps entries in memory only, until SetFile.
func New(opts Options) *Log {
	l := &Log{log: opts.Logger, max: opts.Max}
	if l.log == nil {
		l.log = zap.NewNop()
	}
	if l.max < 1 {
		l.max = config.DefaultAuditEntries
	}
	return l
}

// Open opens path for appending, as the log would: the check a config's
// admin.audit_log must pass before the config is applied.
func Open(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
}

// Path is the file the log appends to; "" for none.
func (l *Log) Path() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.path
}

// SetFile makes the log append to f, opened at path (by Open); nil with ""
// stops writing to a file. The file open before is closed.
func (l *Log) SetFile(path string, f *os.File) {
	l.mu.Lock()
	old := l.file
	if old == f {
		l.mu.Unlock()
		return
	}
	l.path, l.file = path, f
	l.mu.Unlock()
	if old != nil {
		_ = old.Close()
	}
}

// Reopen opens the file's path anew and switches to it (SIGUSR1, after
// logrotate renamed the file); on failure the old file stays in use.
func (l *Log) Reopen() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.file == nil {
		return
	}
	f, err := Open(l.path)
	if err != nil {
		l.log.Error("reopening the audit log failed; still writing to the file open before", zap.String("file", l.path), zap.Error(err))
		return
	}
	old := l.file
	l.file = f
	if err := old.Close(); err != nil {
		l.log.Warn("closing the rotated audit log file failed", zap.String("file", l.path), zap.Error(err))
	}
}

// Close closes the file; entries recorded after are kept in memory only.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.file == nil {
		return nil
	}
	err := l.file.Close()
	l.file = nil
	return err
}

// Record appends an action: in memory, and to the file when there is one.
// A zero Time is now.
func (l *Log) Record(e Entry) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	line, err := json.Marshal(e)
	if err != nil {
		// Strings and a time: cannot happen.
		line = fmt.Appendf(nil, `{"time":%q,"action":"audit","result":%q}`, e.Time.Format(time.RFC3339Nano), err.Error())
	}
	line = append(line, '\n')
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.entries) >= l.max {
		l.entries = slices.Delete(l.entries, 0, len(l.entries)-l.max+1)
	}
	l.entries = append(l.entries, e)
	if l.file != nil {
		if _, err := l.file.Write(line); err != nil {
			l.log.Error("writing the audit log failed; the entry is kept in memory", zap.String("file", l.path), zap.Error(err))
		}
	}
}

// Entries returns the entries kept in memory, newest first.
func (l *Log) Entries() []Entry {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]Entry, len(l.entries))
	for i, e := range l.entries {
		out[len(out)-1-i] = e
	}
	return out
}
