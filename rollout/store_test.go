package rollout

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/meridian-lb/meridian/config"
)

// stateAt runs a machine of p to its second step and returns its state.
func stateAt(t *testing.T, p Plan) State {
	t.Helper()
	m := NewMachine(p, t0)
	m.Tick(t0, Window{}, Window{})
	m.Tick(t0.Add(p.Interval), Window{Requests: 1000, Errors5xx: 1, P99: time.Millisecond}, Window{Requests: 9000})
	st := m.State()
	if st.Step != 1 {
		t.Fatalf("state %+v", st)
	}
	return st
}

func TestFileStoreRoundTrip(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "rollouts.json")
	p := mustPlan(t, config.Rollout{Canary: "c", Steps: []int{10, 50}, Interval: dur(time.Minute)})
	st := stateAt(t, p)

	fs := NewFileStore(path)
	if _, ok, err := fs.Load("route:api"); ok || err != nil {
		t.Fatalf("empty store: %v %v", ok, err)
	}
	if err := fs.Save("route:api", st); err != nil {
		t.Fatal(err)
	}
	if err := fs.Save("service:web", st); err != nil {
		t.Fatal(err)
	}
	// A new store (a restart) reads the same state back.
	got, ok, err := NewFileStore(path).Load("route:api")
	if err != nil || !ok {
		t.Fatalf("load: %v %v", ok, err)
	}
	if !reflect.DeepEqual(normal(got), normal(st)) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, st)
	}
	if !fs.Driver("route:api") {
		t.Error("a file store's instance drives")
	}
	// Only the file is left in the directory: the temporary files were
	// renamed.
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("directory holds %d entries", len(ents))
	}
	// Retain forgets the others, in the file too.
	if err := fs.Retain([]string{"service:web"}); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := NewFileStore(path).Load("route:api"); ok {
		t.Error("route:api survived Retain")
	}
	if _, ok, _ := NewFileStore(path).Load("service:web"); !ok {
		t.Error("service:web lost by Retain")
	}
}

// normal makes times comparable after a JSON round trip.
func normal(s State) State {
	b, _ := json.Marshal(s)
	var out State
	json.Unmarshal(b, &out)
	return out
}

func TestFileStoreCorrupt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rollouts.json")
	if err := os.WriteFile(path, []byte(`{"version": 1, "rollouts": {`), 0o600); err != nil {
		t.Fatal(err)
	}
	fs := NewFileStore(path)
	if _, _, err := fs.Load("a"); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("corrupt file: %v", err)
	}
	st := stateAt(t, mustPlan(t, config.Rollout{Canary: "c", Steps: []int{10, 50}}))
	if err := fs.Save("a", st); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := NewFileStore(path).Load("a"); !ok || err != nil {
		t.Fatalf("after the save that replaced the corrupt file: %v %v", ok, err)
	}
	if err := os.WriteFile(path, []byte(`{"version": 7}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := NewFileStore(path).Load("a"); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "version 7") {
		t.Fatalf("unknown version: %v", err)
	}
	// An empty file is an empty store.
	os.WriteFile(path, nil, 0o600)
	if _, ok, err := NewFileStore(path).Load("a"); ok || err != nil {
		t.Fatalf("empty file: %v %v", ok, err)
	}
	// A directory that does not exist fails the save and keeps nothing.
	bad := NewFileStore(filepath.Join(t.TempDir(), "missing", "rollouts.json"))
	if err := bad.Save("a", st); err == nil {
		t.Fatal("saved into a missing directory")
	}
	if _, ok, _ := bad.Load("a"); ok {
		t.Error("a failed save is kept in memory")
	}
}

func TestFileStoreBounded(t *testing.T) {
	fs := NewFileStore(filepath.Join(t.TempDir(), "rollouts.json"))
	fs.states = make(map[string]State, MaxFileStates)
	fs.read = true
	for i := range MaxFileStates {
		fs.states[string(rune('a'+i%26))+strings.Repeat("x", i/26)] = State{}
	}
	if err := fs.Save("one-too-many", State{}); err == nil {
		t.Fatal("saved beyond MaxFileStates")
	}
	if err := fs.Save("a", State{Phase: Paused}); err != nil {
		t.Fatalf("an existing name: %v", err)
	}
}

// TestManagerResumesFromFile: a restart resumes at the same step; a
// changed plan discards the saved state and starts over.
func TestManagerResumesFromFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rollouts.json")
	p := mustPlan(t, config.Rollout{Canary: "c", Steps: []int{10, 25, 50}, Interval: dur(time.Minute)})
	healthy := func(n *uint64) func(string, Plan) (Window, Window) {
		return func(string, Plan) (Window, Window) {
			*n += 200
			return Window{Requests: *n}, Window{Requests: 10 * *n}
		}
	}
	var n uint64
	mg := NewManager(NewFileStore(path), nil)
	mg.Sync(t0, map[string]Plan{"route:api": p})
	now := t0
	for range 3 { // t0: the first interval starts; +1m: 10 → 25; +2m: 25 → 50
		mg.Tick(now, healthy(&n))
		now = now.Add(time.Minute)
	}
	if w, _ := mg.Weight("route:api"); w != 50 {
		t.Fatalf("weight %d before the restart", w)
	}

	// Restart: a new manager over the same file resumes at 50 on its
	// first Tick, and judges a fresh interval of its own.
	mg2 := NewManager(NewFileStore(path), nil)
	mg2.Sync(now, map[string]Plan{"route:api": p})
	if w, _ := mg2.Weight("route:api"); w != 10 {
		t.Fatalf("before its first tick the new manager is at %d", w)
	}
	var n2 uint64
	if !mg2.Tick(now, healthy(&n2)) {
		t.Error("Tick did not report the resumed weight as a change")
	}
	if w, _ := mg2.Weight("route:api"); w != 50 {
		t.Fatalf("resumed at %d, want 50", w)
	}
	st := mg2.Status()[0].State
	if !st.IntervalStartedAt.Equal(now) || len(st.History) != 2 {
		t.Fatalf("resumed state %+v", st)
	}
	mg2.Tick(now.Add(time.Minute), healthy(&n2))
	if st := mg2.Status()[0].State; st.Phase != Promoted {
		t.Fatalf("after the restart: %+v", st)
	}

	// The rollout's config changed: the saved state is discarded.
	changed := mustPlan(t, config.Rollout{Canary: "c", Steps: []int{5, 50}, Interval: dur(time.Minute)})
	mg3 := NewManager(NewFileStore(path), nil)
	mg3.Sync(now, map[string]Plan{"route:api": changed})
	mg3.Tick(now, healthy(new(uint64)))
	if w, _ := mg3.Weight("route:api"); w != 5 {
		t.Fatalf("changed plan at %d, want its first step 5", w)
	}
	saved, ok, err := NewFileStore(path).Load("route:api")
	if !ok || err != nil || saved.Fingerprint != changed.Fingerprint() || saved.Weight != 5 {
		t.Fatalf("the file holds %+v (%v %v)", saved, ok, err)
	}
}
