package rollout

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/meridian-lb/meridian/config"
	"go.uber.org/zap/zaptest"
)

// flakyStore fails Load or Save while told to.
type flakyStore struct {
	*MemoryStore
	loadErr, saveErr error
	saves            int
}

func (f *flakyStore) Load(name string) (State, bool, error) {
	if f.loadErr != nil {
		return State{}, false, f.loadErr
	}
	return f.MemoryStore.Load(name)
}

func (f *flakyStore) Save(name string, s State) error {
	if f.saveErr != nil {
		return f.saveErr
	}
	f.saves++
	return f.MemoryStore.Save(name, s)
}

func TestManager(t *testing.T) {
	p1 := mustPlan(t, config.Rollout{Canary: "c", Steps: []int{10, 50}, Interval: dur(time.Minute)})
	p2 := mustPlan(t, config.Rollout{Canary: "d", StepWeight: 25, Interval: dur(time.Minute)})
	store := &flakyStore{MemoryStore: NewMemoryStore()}
	mg := NewManager(store, zaptest.NewLogger(t))
	mg.Sync(t0, map[string]Plan{"route:api": p1, "service:web": p2})

	var n uint64
	reads := 0
	read := func(name string, p Plan) (Window, Window) {
		reads++
		n += 1000
		return Window{Requests: n}, Window{Requests: n}
	}

	// A store that cannot be read holds every rollout: nothing is judged
	// or saved over a state that may exist.
	store.loadErr = errors.New("consul: no leader")
	if mg.Tick(t0, read) || reads != 0 || store.saves != 0 {
		t.Fatalf("ticked with an unreadable store: reads %d, saves %d", reads, store.saves)
	}
	store.loadErr = nil
	mg.Tick(t0, read)
	if reads != 2 || store.saves != 2 {
		t.Fatalf("first tick: reads %d, saves %d (fresh states are saved at once)", reads, store.saves)
	}
	if !mg.Tick(t0.Add(time.Minute), read) {
		t.Fatal("no weight change reported")
	}
	if got := mg.Weights(); got["route:api"] != 50 || got["service:web"] != 50 {
		t.Fatalf("weights %v", got)
	}
	if mg.Tick(t0.Add(time.Minute+10*time.Second), read) {
		t.Fatal("a weight change reported with none")
	}

	// Actions.
	if _, err := mg.Act(t0, "route:nope", ActionPause); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown: %v", err)
	}
	st, err := mg.Act(t0.Add(2*time.Minute), "route:api", ActionPause)
	if err != nil || st.State.Phase != Paused || !st.Driver || st.Name != "route:api" || st.Plan.Canary != "c" {
		t.Fatalf("pause: %+v %v", st, err)
	}
	if saved, _, _ := store.Load("route:api"); saved.Phase != Paused {
		t.Fatalf("the pause was not saved: %+v", saved)
	}
	if _, err := mg.Act(t0, "route:api", ActionPause); !errors.Is(err, ErrConflict) {
		t.Fatalf("pause twice: %v", err)
	}
	store.saveErr = errors.New("disk full")
	if _, err := mg.Act(t0.Add(3*time.Minute), "route:api", ActionPromote); err == nil || !errors.Is(err, store.saveErr) {
		t.Fatalf("unsaved action: %v", err)
	}
	store.saveErr = nil
	if w, _ := mg.Weight("route:api"); w != 100 {
		t.Fatalf("promote: %d", w)
	}

	// Sync: an unchanged plan keeps its machine; a changed one starts
	// over; a dropped one is gone (and forgotten by the store).
	p2b := mustPlan(t, config.Rollout{Canary: "d", StepWeight: 20, Interval: dur(time.Minute)})
	mg.Sync(t0.Add(4*time.Minute), map[string]Plan{"route:api": p1, "service:web": p2b})
	if w, _ := mg.Weight("route:api"); w != 100 {
		t.Fatalf("unchanged plan lost its state: %d", w)
	}
	if w, _ := mg.Weight("service:web"); w != 20 {
		t.Fatalf("changed plan at %d", w)
	}
	mg.Sync(t0.Add(4*time.Minute), map[string]Plan{"service:web": p2b})
	if _, ok := mg.Weight("route:api"); ok {
		t.Fatal("dropped rollout still there")
	}
	mg.Tick(t0.Add(4*time.Minute), read)
	if _, ok, _ := store.Load("route:api"); ok {
		t.Error("the store kept a dropped rollout")
	}
	if got := mg.Status(); len(got) != 1 || got[0].Name != "service:web" {
		t.Fatalf("status %+v", got)
	}
	if saved, ok, _ := store.Load("service:web"); !ok || saved.Fingerprint != p2b.Fingerprint() {
		t.Fatalf("the changed plan's state was not saved: %+v", saved)
	}
}

// TestManagerActBeforeTick: an action right after a restart applies to
// the stored state, not to a fresh machine that would overwrite it.
func TestManagerActBeforeTick(t *testing.T) {
	p := mustPlan(t, config.Rollout{Canary: "c", Steps: []int{10, 50}, Interval: dur(time.Minute)})
	store := NewMemoryStore()
	store.Save("r", stateAt(t, p))
	mg := NewManager(store, nil)
	mg.Sync(t0, map[string]Plan{"r": p})
	st, err := mg.Act(t0.Add(time.Hour), "r", ActionPause)
	if err != nil || st.State.Phase != Paused || st.State.Weight != 50 {
		t.Fatalf("%+v %v", st, err)
	}
}

// TestManagerSaveRetried: a state the store refused is saved at a later
// tick even when nothing changes.
func TestManagerSaveRetried(t *testing.T) {
	p := mustPlan(t, config.Rollout{Canary: "c", Steps: []int{10, 50}, Interval: dur(time.Minute)})
	store := &flakyStore{MemoryStore: NewMemoryStore(), saveErr: errors.New("disk full")}
	mg := NewManager(store, zaptest.NewLogger(t))
	mg.Sync(t0, map[string]Plan{"r": p})
	mg.Tick(t0, nil)
	mg.Tick(t0.Add(time.Second), nil)
	store.saveErr = nil
	mg.Tick(t0.Add(2*time.Second), nil)
	if _, ok, _ := store.Load("r"); !ok || store.saves != 1 {
		t.Fatalf("saved %t, %d saves", ok, store.saves)
	}
}

// TestStatusJSON pins the admin API's shape of a rollout.
func TestStatusJSON(t *testing.T) {
	p := mustPlan(t, config.Rollout{Canary: "c", Steps: []int{10, 50}, Analysis: config.Analysis{P99: dur(250 * time.Millisecond)}})
	mg := NewManager(nil, nil)
	mg.Sync(t0, map[string]Plan{"route:api": p})
	mg.Tick(t0, nil)
	b, err := json.Marshal(mg.Status())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`"name":"route:api"`, `"driver":true`,
		`"plan":{"canary":"c","steps":[10,50,100],"interval":"1m","analysis":{"min_requests":100,"success_rate":99,"p99":"250ms","compare_to_baseline":false},"failure_limit":2,"progress_deadline":"30m"}`,
		`"phase":"progressing"`, `"weight":10`, `"fingerprint":"` + p.Fingerprint() + `"`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("status JSON lacks %s:\n%s", want, b)
		}
	}
}
