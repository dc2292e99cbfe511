package health

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/meridian-lb/meridian/config"
)

const (
	// maxStateFile bounds what is read from the state file.
	maxStateFile = 1 << 20
	// stateFileSettle is how long the file must be quiet (no event that
	// concerns it) before it is re-read, so an editor's remove-then-write
	// save is read once, whole, instead of briefly looking like an empty
	// file.
	stateFileSettle = 100 * time.Millisecond
	// stateFilePoll re-reads the file even without events (NFS, a watch
	// lost with its directory); a re-read of unchanged bytes is a no-op.
	stateFilePoll = 30 * time.Second
)

// stateEntry is one line of the state file.
type stateEntry struct {
	Pool    string
	Address string // host:port, or "*" for every member of the pool
	Action  Action
}

// String formats the entry as a state file line.
func (s stateEntry) String() string { return s.Pool + "/" + s.Address + " " + string(s.Action) }

// parseStateLine parses one state file line: "pool/address action", where
// address is host:port or "*" (the whole pool) and action is drain, down or
// enable; "#" starts a comment. ok is false for blank and comment lines.
func parseStateLine(line string) (e stateEntry, ok bool, err error) {
	if i := strings.IndexByte(line, '#'); i >= 0 {
		line = line[:i]
	}
	f := strings.Fields(line)
	if len(f) == 0 {
		return stateEntry{}, false, nil
	}
	if len(f) != 2 {
		return stateEntry{}, false, fmt.Errorf("want \"pool/address action\", got %d fields", len(f))
	}
	pool, addr, found := strings.Cut(f[0], "/")
	if !found || pool == "" || addr == "" {
		return stateEntry{}, false, fmt.Errorf("%q: want pool/address", f[0])
	}
	if addr != "*" {
		host, port, err := net.SplitHostPort(addr)
		if err != nil || host == "" || port == "" || strings.Contains(addr, "/") {
			return stateEntry{}, false, fmt.Errorf("%q: address must be host:port or *", addr)
		}
	}
	a, err := ParseAction(strings.ToLower(f[1]))
	if err != nil {
		return stateEntry{}, false, err
	}
	return stateEntry{Pool: pool, Address: addr, Action: a}, true, nil
}

// stateOverrides is the parsed state file.
type stateOverrides struct {
	members map[memberKey]Action
	pools   map[string]Action // "pool/*" lines
}

// lookup returns the file's action for a member: its own line wins over its
// pool's "*" line. "" means the file says nothing about it.
func (s stateOverrides) lookup(pool, address string) Action {
	if a, ok := s.members[memberKey{pool, address}]; ok {
		return a
	}
	return s.pools[pool]
}

// parseStateFile parses a whole file. Bad lines are returned as errors naming
// their line and otherwise skipped; a later line for the same member wins.
func parseStateFile(data []byte) (stateOverrides, []error) {
	s := stateOverrides{members: map[memberKey]Action{}, pools: map[string]Action{}}
	var errs []error
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), maxStateFile)
	for n := 1; sc.Scan(); n++ {
		e, ok, err := parseStateLine(sc.Text())
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("line %d: %w", n, err))
		case !ok:
		case e.Address == "*":
			s.pools[e.Pool] = e.Action
		default:
			s.members[memberKey{e.Pool, e.Address}] = e.Action
		}
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, err)
	}
	return s, errs
}

// readStateFile reads the file, treating a missing file as empty.
func readStateFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return []byte{}, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxStateFile+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxStateFile {
		return nil, fmt.Errorf("larger than %d bytes", maxStateFile)
	}
	return data, nil
}

// reloadStateFile reads the state file and applies what changed in it: a
// member whose line (or pool line) was added or changed gets that action; a
// member whose line went away loses the override if it came from the file
// (an override set through the API since then is left alone). An unreadable
// file keeps the last good one.
func (e *Engine) reloadStateFile() {
	data, err := readStateFile(e.stateFile)
	if err != nil {
		e.met.stateFileErrors.Inc()
		e.log.Error("reading admin state file; keeping the last good one",
			zap.String("file", e.stateFile), zap.Error(err))
		return
	}
	e.syncMu.Lock()
	defer e.syncMu.Unlock()
	e.mu.Lock()
	if e.fileRaw != nil && bytes.Equal(data, e.fileRaw) {
		e.mu.Unlock()
		return
	}
	next, errs := parseStateFile(data)
	for _, err := range errs {
		e.met.stateFileErrors.Inc()
		e.log.Error("skipping bad admin state file line", zap.String("file", e.stateFile), zap.Error(err))
	}
	type change struct {
		m *Member
		a Action
	}
	var changes []change
	for _, p := range e.pools {
		for addr, m := range p.members {
			if was, now := e.file.lookup(p.name, addr), next.lookup(p.name, addr); was != now {
				changes = append(changes, change{m, now})
			}
		}
	}
	e.file, e.fileRaw = next, data
	e.mu.Unlock()
	e.log.Info("admin state file applied", zap.String("file", e.stateFile),
		zap.Int("members", len(next.members)), zap.Int("pools", len(next.pools)),
		zap.Int("changed", len(changes)), zap.Int("bad_lines", len(errs)))

	now := time.Now()
	changed := false
	for _, c := range changes {
		if c.a == "" {
			changed = c.m.clearFileOverride(now) || changed
		} else {
			changed = c.m.setOverride(c.a, "file", now) || changed
		}
	}
	if changed {
		e.notify()
	}
}

// clearFileOverride removes the member's override if the state file set it.
func (m *Member) clearFileOverride(now time.Time) bool {
	m.mu.Lock()
	fromFile := m.overrideSrc == "file"
	m.mu.Unlock()
	if !fromFile {
		return false
	}
	return m.setOverride(ActionEnable, "file", now)
}

// watchStateFile re-reads the state file whenever it may have changed,
// following it with config.Watcher (its directory, not the file, so atomic
// renames and Kubernetes ConfigMap symlink swaps count, and writes to
// other files beside it do not), plus a slow poll as a safety net. A
// re-read of unchanged bytes is a no-op.
func (e *Engine) watchStateFile(ctx context.Context) {
	w := &config.Watcher{
		Paths:    []string{e.stateFile},
		Debounce: stateFileSettle,
		Poll:     stateFilePoll,
		Logger:   e.log.With(zap.String("file", e.stateFile)),
	}
	// With Poll set, Run does not fail: it polls when it cannot watch.
	_ = w.Run(ctx, e.reloadStateFile)
}
