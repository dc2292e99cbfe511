// Package history keeps the configs an instance accepted, for the admin
// API's history, diff and rollback (GET /api/v1/config/history,
// /api/v1/config/diff, POST /api/v1/config/rollback/{version}), and compares
// two compiled tables for `meridian diff` (semantic.go).
//
// A History holds the last N accepted configs (admin.history, default
// config.DefaultConfigHistory), each with the routing table version it
// compiled to, when it was accepted, where it came from and its bytes. The
// bytes are bounded twice: one config is at most MaxEntryBytes (the config
// loader's own limit, config.MaxFileBytes, so nothing accepted is larger),
// and all the configs held together at most MaxTotalBytes; past that the
// oldest are dropped, but the newest (the live config) is always kept.
//
// Add is on the rebuild loop's publish path, so it only appends: the
// unified diff between two configs is computed when it is asked for (Diff),
// never when a config is accepted.
//
// Concurrency: every method is safe from any goroutine. The Raw bytes of an
// Entry are shared, never copied: callers must not modify them.
package history

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/aymanbagabas/go-udiff"

	"github.com/meridian-lb/meridian/config"
)

const (
	// MaxEntryBytes caps one config's bytes: the config loader refuses
	// larger files, so an accepted config is never over it. An entry over
	// it anyway is kept without its bytes (Summary.RawOmitted).
	MaxEntryBytes = config.MaxFileBytes
	// MaxTotalBytes caps the bytes of all entries together: 50 configs
	// of 16 MiB would otherwise hold 800 MiB. Past it the oldest entries
	// are dropped (never the newest).
	MaxTotalBytes = 64 << 20
	// maxAliases caps the later table versions remembered per entry.
	maxAliases = 32
)

// ErrUnknownVersion is returned (wrapped) by Diff for a version the history
// does not hold.
var ErrUnknownVersion = errors.New("unknown version")

// Entry is one accepted config.
type Entry struct {
	// Version is the routing table version the config compiled to when it
	// was accepted.
	Version string
	// Time is when it was accepted (the table's publication).
	Time time.Time
	// Source names where it was read: the file path, or consul://KEY.
	Source string
	// Raw is the config's bytes, as read; shared, never modify.
	Raw []byte
	// Aliases are later table versions of the same config: the catalog,
	// a GeoIP database or a TLS file changed and the table was rebuilt
	// from it. Get finds the entry by any of them. Set by History.
	Aliases []string
	// Seq numbers the entries accepted by this History, from 1. Set by
	// History.
	Seq uint64
}

// Summary describes an entry without its bytes, for listings.
type Summary struct {
	Seq        uint64    `json:"seq"`
	Version    string    `json:"version"`
	Aliases    []string  `json:"later_versions,omitempty"`
	Time       time.Time `json:"time"`
	Source     string    `json:"source"`
	Bytes      int       `json:"bytes"`
	SHA256     string    `json:"sha256"`
	RawOmitted bool      `json:"raw_omitted,omitempty"`
	// Previous is the version of the entry accepted before this one, if
	// the history still holds it: the text diff of this entry is
	// Diff(Previous, Version).
	Previous string `json:"previous,omitempty"`
}

type entry struct {
	Entry
	omitted bool
	sumOnce sync.Once
	sum     string // hex SHA-256 of Raw, computed when first listed
}

// hash returns the entry's SHA-256, computing it the first time: List
// pays for it, not Add on the publish path.
func (e *entry) hash() string {
	e.sumOnce.Do(func() {
		s := sha256.Sum256(e.Raw)
		e.sum = hex.EncodeToString(s[:])
	})
	return e.sum
}

// History holds the last accepted configs, oldest first.
type History struct {
	mu       sync.Mutex
	limit    int
	maxBytes int
	total    int // bytes held
	seq      uint64
	entries  []*entry
}

// New returns a history that keeps the last limit configs (limit < 1
// means config.DefaultConfigHistory) in at most MaxTotalBytes.
func New(limit int) *History {
	h := &History{maxBytes: MaxTotalBytes}
	h.SetLimit(limit)
	return h
}

// SetLimit changes how many configs are kept (limit < 1 means
// config.DefaultConfigHistory), dropping the oldest when it shrinks: the
// config's admin.history, applied with each config.
func (h *History) SetLimit(limit int) {
	if limit < 1 {
		limit = config.DefaultConfigHistory
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.limit = limit
	h.trimLocked()
}

// SetMaxBytes changes the cap on the bytes held (n < 1 means
// MaxTotalBytes); for tests and embedders.
func (h *History) SetMaxBytes(n int) {
	if n < 1 {
		n = MaxTotalBytes
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.maxBytes = n
	h.trimLocked()
}

// Add records an accepted config as the newest entry. It is cheap (an
// append; nothing is copied, hashed or diffed): it runs on the publish
// path. Seq and Aliases are set by the history.
func (h *History) Add(e Entry) {
	ne := &entry{Entry: e}
	ne.Aliases = nil
	if len(ne.Raw) > MaxEntryBytes {
		ne.Raw, ne.omitted = nil, true
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.seq++
	ne.Seq = h.seq
	h.entries = append(h.entries, ne)
	h.total += len(ne.Raw)
	h.trimLocked()
}

// Alias records that the newest entry's config now compiles to table
// version v (an input other than the config changed). Get then finds the
// entry by v as well.
func (h *History) Alias(v string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.entries) == 0 {
		return
	}
	e := h.entries[len(h.entries)-1]
	if v == "" || v == e.Version || slices.Contains(e.Aliases, v) {
		return
	}
	if len(e.Aliases) >= maxAliases {
		e.Aliases = slices.Delete(e.Aliases, 0, 1)
	}
	e.Aliases = append(e.Aliases, v)
}

// trimLocked drops the oldest entries past the limits, keeping the newest.
func (h *History) trimLocked() {
	drop := 0
	for len(h.entries)-drop > 1 && (len(h.entries)-drop > h.limit || h.total > h.maxBytes) {
		h.total -= len(h.entries[drop].Raw)
		h.entries[drop] = nil
		drop++
	}
	if drop > 0 {
		h.entries = slices.Delete(h.entries, 0, drop)
	}
}

// Len is how many entries are held.
func (h *History) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.entries)
}

// List summarises the entries, newest first.
func (h *History) List() []Summary {
	h.mu.Lock()
	out := make([]Summary, 0, len(h.entries))
	es := make([]*entry, 0, len(h.entries))
	for i := len(h.entries) - 1; i >= 0; i-- {
		e := h.entries[i]
		s := Summary{
			Seq: e.Seq, Version: e.Version, Aliases: slices.Clone(e.Aliases), Time: e.Time, Source: e.Source,
			Bytes: len(e.Raw), RawOmitted: e.omitted,
		}
		if i > 0 {
			s.Previous = h.entries[i-1].Version
		}
		out = append(out, s)
		es = append(es, e)
	}
	h.mu.Unlock()
	for i, e := range es {
		out[i].SHA256 = e.hash() // Raw never changes: no lock needed
	}
	return out
}

// Latest returns the newest entry: the live config.
func (h *History) Latest() (Entry, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.entries) == 0 {
		return Entry{}, false
	}
	return h.entries[len(h.entries)-1].copy(), true
}

// Get returns the newest entry whose version, or one of whose later
// versions, is v. Two entries have the same version when their configs
// compile to the same table (say, they differ only in comments): the
// newest is returned.
func (h *History) Get(v string) (Entry, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if i := h.findLocked(v); i >= 0 {
		return h.entries[i].copy(), true
	}
	return Entry{}, false
}

func (h *History) findLocked(v string) int {
	if v == "" {
		return -1
	}
	for i := len(h.entries) - 1; i >= 0; i-- {
		if h.entries[i].Version == v {
			return i
		}
	}
	for i := len(h.entries) - 1; i >= 0; i-- {
		if slices.Contains(h.entries[i].Aliases, v) {
			return i
		}
	}
	return -1
}

func (e *entry) copy() Entry {
	c := e.Entry
	c.Aliases = slices.Clone(e.Aliases)
	return c
}

// Diff returns the unified diff of the config of version from to the
// config of version to ("" when their bytes are the same). An empty to
// means the newest entry; an empty from means the entry accepted just
// before to (and, for the oldest entry held, an empty file). A version the
// history does not hold is an error wrapping ErrUnknownVersion. The diff is
// computed now, outside the history's lock.
func (h *History) Diff(from, to string) (string, error) {
	h.mu.Lock()
	ti := len(h.entries) - 1
	if to != "" {
		ti = h.findLocked(to)
	}
	if ti < 0 {
		h.mu.Unlock()
		if to == "" {
			return "", fmt.Errorf("%w: the history is empty", ErrUnknownVersion)
		}
		return "", fmt.Errorf("%w %q", ErrUnknownVersion, to)
	}
	b := h.entries[ti].copy()
	var a Entry
	switch {
	case from != "":
		fi := h.findLocked(from)
		if fi < 0 {
			h.mu.Unlock()
			return "", fmt.Errorf("%w %q", ErrUnknownVersion, from)
		}
		a = h.entries[fi].copy()
	case ti > 0:
		a = h.entries[ti-1].copy()
	}
	h.mu.Unlock()
	return Unified(Label(a), Label(b), a.Raw, b.Raw)
}

// Label names an entry in a diff's header: "SOURCE@VERSION", or /dev/null
// for none.
func Label(e Entry) string {
	if e.Version == "" && e.Source == "" {
		return "/dev/null"
	}
	return e.Source + "@" + e.Version
}

// Unified is the unified diff (3 lines of context) of a to b, with the
// labels fromLabel and toLabel; "" when they are equal. The line diff is
// github.com/aymanbagabas/go-udiff (the Go tools' Myers implementation),
// whose search depth is bounded, so two large configs that differ
// everywhere still diff in linear time (with a diff that may be longer
// than the shortest one).
func Unified(fromLabel, toLabel string, a, b []byte) (string, error) {
	if string(a) == string(b) {
		return "", nil
	}
	as, bs := string(a), string(b)
	s, err := udiff.ToUnified(fromLabel, toLabel, as, udiff.Lines(as, bs), udiff.DefaultContextLines)
	if err != nil {
		return "", fmt.Errorf("diff: %w", err)
	}
	return s, nil
}
