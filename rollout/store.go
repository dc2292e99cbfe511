package rollout

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
)

// Store keeps rollouts' states by name, so a restart (or another instance)
// resumes at the same step. Load reports false, with no error, for a name
// it has no state for. A state saved under another plan is still returned:
// Machine.Restore refuses it by its fingerprint.
type Store interface {
	Load(name string) (State, bool, error)
	Save(name string, s State) error
}

// Driver is implemented by stores shared between instances (ConsulStore):
// it reports whether this instance drives the rollout (judges it and saves
// its state) or follows it (adopts the state the driver saved). A Store
// without it is this instance's alone, and every rollout is driven.
type Driver interface {
	Driver(name string) bool
}

// Retainer is implemented by stores that keep only the rollouts they are
// told about: Retain names every rollout of the current config.
type Retainer interface {
	Retain(names []string) error
}

// ErrCorrupt is matched (errors.Is) by a FileStore's Load error when the
// file does not parse: its states are lost, and the next Save replaces it.
var ErrCorrupt = errors.New("rollout state file is corrupt")

// Limits of a FileStore, so the file stays small whatever happens: a
// state's history and reasons are bounded by the Machine, names here.
const (
	MaxFileStates = 1024
	MaxFileBytes  = 16 << 20
)

// MemoryStore is a Store in memory, for tests and instances that persist
// nothing. Safe for concurrent use.
type MemoryStore struct {
	mu sync.Mutex
	m  map[string]State
}

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore { return &MemoryStore{m: map[string]State{}} }

// Load returns the state saved under name.
func (s *MemoryStore) Load(name string) (State, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.m[name]
	return st.Clone(), ok, nil
}

// Save keeps a copy of st under name.
func (s *MemoryStore) Save(name string, st State) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[name] = st.Clone()
	return nil
}

// Retain forgets the names not listed.
func (s *MemoryStore) Retain(names []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for n := range s.m {
		if !slices.Contains(names, n) {
			delete(s.m, n)
		}
	}
	return nil
}

// FileStore keeps every rollout's state in one JSON file, rewritten whole
// on each Save (a few KiB per rollout; a save happens once per interval or
// action): written to a temporary file in the same directory, synced, then
// renamed over the old one, so a crash leaves the old file or the new one,
// never a mix. The file is read once, at the first Load or Save. It belongs
// to one process: two instances must not share a file (use a ConsulStore).
// Safe for concurrent use.
type FileStore struct {
	path string

	mu      sync.Mutex
	read    bool
	readErr error
	states  map[string]State
}

// fileDoc is the file's shape.
type fileDoc struct {
	Version  int              `json:"version"`
	Rollouts map[string]State `json:"rollouts"`
}

// NewFileStore returns a store kept in path. Nothing is read or written
// until it is used; a missing file is an empty store.
func NewFileStore(path string) *FileStore {
	return &FileStore{path: path, states: map[string]State{}}
}

// readLocked reads the file once. A missing file is empty; an unreadable
// one is retried on the next call; a corrupt one is remembered as such.
func (f *FileStore) readLocked() error {
	if f.read {
		return f.readErr
	}
	fh, err := os.Open(f.path)
	if errors.Is(err, os.ErrNotExist) {
		f.read = true
		return nil
	}
	if err != nil {
		return fmt.Errorf("rollout state file: %w", err)
	}
	defer fh.Close()
	b, err := io.ReadAll(io.LimitReader(fh, MaxFileBytes+1))
	if err != nil {
		return fmt.Errorf("rollout state file: %w", err)
	}
	f.read = true
	var doc fileDoc
	switch {
	case len(b) > MaxFileBytes:
		f.readErr = fmt.Errorf("%w: %s is over %d bytes", ErrCorrupt, f.path, MaxFileBytes)
	case len(bytes.TrimSpace(b)) == 0:
	default:
		if err := json.Unmarshal(b, &doc); err != nil {
			f.readErr = fmt.Errorf("%w: %s: %v", ErrCorrupt, f.path, err)
		} else if doc.Version != 1 {
			f.readErr = fmt.Errorf("%w: %s: unknown version %d", ErrCorrupt, f.path, doc.Version)
		} else {
			for n, st := range doc.Rollouts {
				f.states[n] = st
			}
		}
	}
	return f.readErr
}

// Load returns the state saved under name. A corrupt file gives an error
// matching ErrCorrupt, for every name, until the next Save replaces it.
func (f *FileStore) Load(name string) (State, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.readLocked(); err != nil {
		return State{}, false, err
	}
	st, ok := f.states[name]
	return st.Clone(), ok, nil
}

// Save stores st under name and rewrites the file. A corrupt file is
// replaced by the states saved since it was read. A new name beyond
// MaxFileStates is refused.
func (f *FileStore) Save(name string, st State) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.readLocked(); err != nil && !errors.Is(err, ErrCorrupt) {
		return err
	}
	if _, ok := f.states[name]; !ok && len(f.states) >= MaxFileStates {
		return fmt.Errorf("rollout state file: more than %d rollouts", MaxFileStates)
	}
	old, had := f.states[name]
	f.states[name] = st.Clone()
	if err := f.writeLocked(); err != nil {
		if had {
			f.states[name] = old
		} else {
			delete(f.states, name)
		}
		return err
	}
	f.readErr = nil
	return nil
}

// Retain drops the states of rollouts not named and rewrites the file if
// that changed it.
func (f *FileStore) Retain(names []string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.readLocked(); err != nil && !errors.Is(err, ErrCorrupt) {
		return err
	}
	dropped := map[string]State{}
	for n, st := range f.states {
		if !slices.Contains(names, n) {
			dropped[n] = st
			delete(f.states, n)
		}
	}
	if len(dropped) == 0 {
		return nil
	}
	if err := f.writeLocked(); err != nil {
		for n, st := range dropped {
			f.states[n] = st
		}
		return err
	}
	return nil
}

// Driver reports true: a file is one instance's own.
func (f *FileStore) Driver(string) bool { return true }

func (f *FileStore) writeLocked() error {
	b, err := json.MarshalIndent(fileDoc{Version: 1, Rollouts: f.states}, "", "  ")
	if err != nil {
		return fmt.Errorf("rollout state file: %w", err)
	}
	if len(b) > MaxFileBytes {
		return fmt.Errorf("rollout state file: %d bytes is over %d", len(b), MaxFileBytes)
	}
	dir, base := filepath.Split(f.path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp*")
	if err != nil {
		return fmt.Errorf("rollout state file: %w", err)
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("rollout state file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("rollout state file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("rollout state file: %w", err)
	}
	if err := os.Rename(tmp.Name(), f.path); err != nil {
		return fmt.Errorf("rollout state file: %w", err)
	}
	done = true
	// Make the rename itself durable; not every system can sync a
	// directory, and the file is complete either way.
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
