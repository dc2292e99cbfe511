package rollout

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"
)

// ErrNotFound is returned by Manager.Act for a name that is not a rollout
// of the current config.
var ErrNotFound = errors.New("no such rollout")

// Manager runs every rollout of the current config: the machines, their
// store, and whether this instance drives or follows each. It does no I/O
// in Sync; Tick and Act do the store's. Safe for concurrent use.
type Manager struct {
	store Store
	log   *zap.Logger

	op sync.Mutex // serialises Tick and Act: they use the store and managed's fields

	mu       sync.Mutex
	ros      map[string]*managed
	retain   []string // names to hand to the store's Retain at the next Tick
	toRetain bool
}

type managed struct {
	name     string
	plan     Plan
	m        *Machine
	restored bool // the store was consulted
	unsaved  bool // the store holds no state of this plan: save at the next Tick
	driving  bool
	errMsg   string // the last store error logged, to log each once
}

// Status is one rollout as the admin API shows it.
type Status struct {
	Name   string `json:"name"`
	Plan   Plan   `json:"plan"`
	Driver bool   `json:"driver"` // this instance judges it; false: it follows another's
	State  State  `json:"state"`
}

// NewManager returns a manager keeping states in store (nil: in memory
// only).
func NewManager(store Store, logger *zap.Logger) *Manager {
	if store == nil {
		store = NewMemoryStore()
	}
	if logger == nil {
		logger = zap.NewNop()
	}
	return &Manager{store: store, log: logger.Named("rollout"), ros: map[string]*managed{}}
}

// Sync installs the rollouts of a new config, by name. A rollout whose plan
// did not change keeps its machine; a new or changed one starts at its
// first step at now, and at its next Tick adopts the state the store holds
// for it if that was saved under the same plan. Rollouts not named are
// dropped (and, for stores that implement Retainer, forgotten by the store
// at the next Tick).
func (mg *Manager) Sync(now time.Time, plans map[string]Plan) {
	mg.mu.Lock()
	defer mg.mu.Unlock()
	for name, e := range mg.ros {
		if p, ok := plans[name]; !ok || p.Fingerprint() != e.plan.Fingerprint() {
			delete(mg.ros, name)
		}
	}
	names := make([]string, 0, len(plans))
	for name, p := range plans {
		names = append(names, name)
		if mg.ros[name] == nil {
			mg.ros[name] = &managed{name: name, plan: p, m: NewMachine(p, now)}
		}
	}
	slices.Sort(names)
	mg.retain, mg.toRetain = names, true
}

// Weight is the canary weight of the named rollout now; false for an
// unknown name.
func (mg *Manager) Weight(name string) (int, bool) {
	mg.mu.Lock()
	e := mg.ros[name]
	mg.mu.Unlock()
	if e == nil {
		return 0, false
	}
	return e.m.Weight(), true
}

// Weights returns every rollout's canary weight by name.
func (mg *Manager) Weights() map[string]int {
	out := map[string]int{}
	for _, e := range mg.list() {
		out[e.name] = e.m.Weight()
	}
	return out
}

func (mg *Manager) list() []*managed {
	mg.mu.Lock()
	defer mg.mu.Unlock()
	out := make([]*managed, 0, len(mg.ros))
	for _, e := range mg.ros {
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b *managed) int {
		switch {
		case a.name < b.name:
			return -1
		case a.name > b.name:
			return 1
		}
		return 0
	})
	return out
}

func (mg *Manager) driver(name string) bool {
	if d, ok := mg.store.(Driver); ok {
		return d.Driver(name)
	}
	return true
}

// Tick advances every rollout to now and reports whether any canary weight
// changed (the caller then rebuilds routing). For each rollout, in name
// order: a driver adopts the stored state once after Sync and once when it
// takes over from another instance, then read gives the rollout's
// cumulative windows (see Machine.Tick), and a changed state (or one the
// store does not hold yet, or a save that failed) is saved; a follower
// adopts the driver's saved state at every Tick and reads no traffic. A
// store error other than ErrCorrupt on that read skips the rollout until a
// later Tick, so a driver never overwrites a state it could not read. Call
// Tick from one goroutine, once a second.
func (mg *Manager) Tick(now time.Time, read func(name string, p Plan) (canary, baseline Window)) bool {
	mg.op.Lock()
	defer mg.op.Unlock()
	mg.mu.Lock()
	names, retain := mg.retain, mg.toRetain
	mg.toRetain = false
	mg.mu.Unlock()
	if r, ok := mg.store.(Retainer); ok && retain {
		if err := r.Retain(names); err != nil {
			mg.log.Warn("rollout store: cannot forget removed rollouts", zap.Error(err))
		}
	}
	changed := false
	for _, e := range mg.list() {
		before := e.m.Weight()
		mg.tickOne(now, e, read)
		if e.m.Weight() != before {
			changed = true
		}
	}
	return changed
}

func (mg *Manager) tickOne(now time.Time, e *managed, read func(string, Plan) (Window, Window)) {
	driving := mg.driver(e.name)
	if err := mg.adopt(e, driving); err != nil || !driving {
		return
	}
	var c, b Window
	if read != nil {
		c, b = read(e.name, e.plan)
	}
	before := e.m.State()
	if e.m.Tick(now, c, b) || e.unsaved {
		st := e.m.State()
		if st.Phase != before.Phase || st.Step != before.Step || st.Weight != before.Weight {
			mg.log.Info("rollout "+string(st.Phase), zap.String("rollout", e.name), zap.Int("weight", st.Weight), zap.String("reason", st.Reason))
		}
		mg.save(e, st)
	}
}

// adopt brings the machine up to the stored state: for a driver once
// after Sync and once on taking over, for a follower on every call. It
// returns the store's error when the state could not be read (ErrCorrupt
// aside: that state is lost, and the machine starts over).
func (mg *Manager) adopt(e *managed, driving bool) error {
	if driving != e.driving {
		// Taking over, adopt the last state the old driver saved; losing
		// the drive, follow from the store's state.
		e.driving, e.restored = driving, false
	}
	if e.restored && driving {
		return nil
	}
	st, ok, err := mg.store.Load(e.name)
	adopted := false
	switch {
	case err != nil && !errors.Is(err, ErrCorrupt):
		mg.storeErr(e, "cannot read the rollout's state; it waits until it can", err)
		return err
	case err != nil:
		mg.storeErr(e, "rollout state lost; starting over", err)
	case ok:
		cur := e.m.State()
		if e.restored && st.Seq == cur.Seq && st.UpdatedAt.Equal(cur.UpdatedAt) {
			adopted = true
			break
		}
		switch err := e.m.Restore(st); {
		case err == nil:
			adopted = true
			if !e.restored {
				mg.log.Info("rollout resumed", zap.String("rollout", e.name), zap.Int("weight", st.Weight),
					zap.String("phase", string(st.Phase)), zap.Bool("driver", driving))
			}
		case errors.Is(err, ErrPlanChanged):
			if driving && !e.restored {
				mg.log.Info("rollout changed: its saved state is discarded and it starts over", zap.String("rollout", e.name))
			}
		default:
			mg.storeErr(e, "stored rollout state ignored", err)
		}
	}
	// A driver saves its own state at once when the store has none of
	// this plan, so followers and a restart see the rollout as it is.
	e.unsaved = driving && !adopted
	if err == nil {
		e.errMsg = ""
	}
	e.restored = true
	return nil
}

func (mg *Manager) save(e *managed, st State) error {
	err := mg.store.Save(e.name, st)
	if err != nil {
		mg.storeErr(e, "cannot save the rollout's state; retrying at the next tick", err)
		e.unsaved = true
		return err
	}
	e.unsaved = false
	return nil
}

func (mg *Manager) storeErr(e *managed, msg string, err error) {
	if s := msg + err.Error(); s != e.errMsg {
		e.errMsg = s
		mg.log.Warn(msg, zap.String("rollout", e.name), zap.Error(err))
	}
}

// Act applies an operator's action to the named rollout at now and saves
// the new state. Errors: ErrNotFound, ErrNotDriver (another instance
// drives it: send the action there), a conflict matching ErrConflict, or
// the store's error (the action applied in this instance but was not
// saved).
func (mg *Manager) Act(now time.Time, name string, a Action) (Status, error) {
	mg.mu.Lock()
	e := mg.ros[name]
	mg.mu.Unlock()
	if e == nil {
		return Status{}, fmt.Errorf("%w: %q", ErrNotFound, name)
	}
	mg.op.Lock()
	defer mg.op.Unlock()
	if !mg.driver(name) {
		return mg.status(e), ErrNotDriver
	}
	if err := mg.adopt(e, true); err != nil {
		return mg.status(e), fmt.Errorf("cannot read the rollout's state: %w", err)
	}
	if err := e.m.Do(now, a); err != nil {
		return mg.status(e), err
	}
	st := e.m.State()
	mg.log.Info("rollout "+string(a), zap.String("rollout", name), zap.Int("weight", st.Weight), zap.String("reason", st.Reason))
	if err := mg.save(e, st); err != nil {
		return mg.status(e), fmt.Errorf("applied but not saved: %w", err)
	}
	return mg.status(e), nil
}

// Status lists every rollout, by name.
func (mg *Manager) Status() []Status {
	l := mg.list()
	out := make([]Status, 0, len(l))
	for _, e := range l {
		out = append(out, mg.status(e))
	}
	return out
}

func (mg *Manager) status(e *managed) Status {
	return Status{Name: e.name, Plan: e.plan, Driver: mg.driver(e.name), State: e.m.State()}
}
