package rollout

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/meridian-lb/meridian/catalog/consultest"
	"github.com/meridian-lb/meridian/config"
	"go.uber.org/zap/zaptest"
)

// waitFor polls cond until it holds, failing the test after 15 s. The
// stores work on real time (Consul sessions and blocking queries), so
// tests wait for outcomes instead of sleeping.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type consulEnv struct {
	t   *testing.T
	srv *consultest.Server
}

func newConsulEnv(t *testing.T) *consulEnv {
	// The stores' TTL (below) is under Consul's 10 s minimum.
	srv := consultest.New(t, consultest.Options{MinSessionTTL: time.Second})
	return &consulEnv{t: t, srv: srv}
}

func (e *consulEnv) client() *api.Client {
	c, err := api.NewClient(&api.Config{Address: e.srv.Addr, Scheme: "http"})
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// acquires counts the lock acquisitions session id attempted.
func (e *consulEnv) acquires(id string) int {
	if id == "" {
		return 0
	}
	n := 0
	for _, c := range e.srv.History() {
		if c.Method == http.MethodPut && c.Query.Get("acquire") == id {
			n++
		}
	}
	return n
}

// cutOffSessions makes every session creation fail, as if the instances
// that need a new one lost Consul; the sessions that live are untouched.
// ClearFaults ends it.
func (e *consulEnv) cutOffSessions() {
	e.srv.Fail(consultest.Fault{Code: http.StatusInternalServerError, Path: "/v1/session/create"})
}

// store starts a ConsulStore for names with test timings; stop ends its
// Run (cleanly: locks released, session destroyed).
//
// The TTL is long enough that a renewal delayed on a loaded machine does
// not expire a session by accident (consultest, like Consul, expires it
// two TTLs after the last renewal); tests that need one to lapse expire it
// with ExpireSession.
func (e *consulEnv) store(id string, names ...string) (s *ConsulStore, stop func()) {
	s = NewConsulStore(e.client(), "meridian/rollouts/", zaptest.NewLogger(e.t).Named(id))
	s.TTL = 4 * time.Second
	s.AcquireEvery = 20 * time.Millisecond
	s.LockDelay = time.Millisecond
	s.Wait = 2 * time.Second
	s.Identity = id
	s.Retain(names)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			e.t.Errorf("%s: Run: %v", id, err)
		}
	}
	e.t.Cleanup(stop)
	return s, stop
}

func loaded(s *ConsulStore, name string, seq uint64) func() bool {
	return func() bool {
		st, ok, err := s.Load(name)
		return err == nil && ok && st.Seq == seq
	}
}

func TestConsulDriverFollower(t *testing.T) {
	env := newConsulEnv(t)
	const name = "route:api"
	p := mustPlan(t, config.Rollout{Canary: "c", Steps: []int{10, 50}, Interval: dur(time.Minute)})
	st := stateAt(t, p)

	a, stopA := env.store("a", name)
	waitFor(t, "a to drive", func() bool { return a.Driver(name) })
	b, _ := env.store("b", name)
	waitFor(t, "b to try the lock", func() bool { return env.acquires(b.Session()) >= 3 })
	if b.Driver(name) || !a.Driver(name) {
		t.Fatalf("a drives %t, b drives %t", a.Driver(name), b.Driver(name))
	}
	lockKey := "meridian/rollouts/route/api/lock" // the kind is a key segment: Consul refuses ":" in keys
	if env.srv.LockHolder(lockKey) != a.Session() {
		t.Fatalf("lock %s held by %q, a's session is %q", lockKey, env.srv.LockHolder(lockKey), a.Session())
	}
	var holder map[string]string
	if v, ok := env.srv.KV(lockKey); !ok || json.Unmarshal(v, &holder) != nil || holder["holder"] != "a" {
		t.Fatalf("lock value %s", v)
	}

	// The driver saves; the follower sees it through its watch.
	if err := a.Save(name, st); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b to see a's state", loaded(b, name, st.Seq))
	if v, ok := env.srv.KV("meridian/rollouts/route/api/state"); !ok || !json.Valid(v) {
		t.Fatalf("state key %q", v)
	}
	if err := b.Save(name, st); !errors.Is(err, ErrNotDriver) {
		t.Fatalf("the follower saved: %v", err)
	}

	// The driver's session is destroyed (an operator, or Consul after the
	// node failed) and it cannot start another: the lock goes to b, and a,
	// whose acquire finds its session gone, stops driving and, back,
	// follows.
	env.cutOffSessions()
	if _, err := env.client().Session().Destroy(a.Session(), nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b to take over", func() bool { return b.Driver(name) })
	waitFor(t, "a to notice", func() bool { return !a.Driver(name) })
	if err := a.Save(name, st); !errors.Is(err, ErrNotDriver) {
		t.Fatalf("the deposed driver saved: %v", err)
	}
	env.srv.ClearFaults()
	waitFor(t, "a to be back, following", func() bool { return env.acquires(a.Session()) >= 3 })
	if a.Driver(name) {
		t.Fatal("a took the lock back from b")
	}
	st2 := st.Clone()
	st2.Seq++
	if err := b.Save(name, st2); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a to follow b", loaded(a, name, st2.Seq))

	// The driver's renewals fail (it lost Consul) and it cannot start a
	// new session: Consul expires its session after the TTL (up to twice
	// it; ExpireSession is that moment, without waiting for the clock),
	// and a takes over. b finds its session gone at its next acquire and
	// stops driving, long before its failing renewals would tell it.
	env.cutOffSessions()
	bs := b.Session()
	env.srv.FailRenewals(bs, true)
	if !env.srv.ExpireSession(bs) {
		t.Fatalf("b's session %q is gone already", bs)
	}
	waitFor(t, "a to take over after b's TTL", func() bool { return a.Driver(name) })
	waitFor(t, "b to stop driving", func() bool { return !b.Driver(name) })
	env.srv.ClearFaults()
	st3 := st2.Clone()
	st3.Seq++
	if err := a.Save(name, st3); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b to follow a again", loaded(b, name, st3.Seq))
	waitFor(t, "b to be back, following", func() bool { return env.acquires(b.Session()) >= 3 })
	if b.Driver(name) || !a.Driver(name) {
		t.Fatalf("a drives %t, b drives %t", a.Driver(name), b.Driver(name))
	}

	// A clean stop releases the lock at once.
	stopA()
	waitFor(t, "b to take over after a's stop", func() bool { return b.Driver(name) })
	if a.Driver(name) {
		t.Error("a stopped but drives")
	}
}

// TestConsulRetain: a rollout dropped from the config releases its lock
// and stops its watch; a new one is taken at once.
func TestConsulRetain(t *testing.T) {
	env := newConsulEnv(t)
	a, _ := env.store("a", "one")
	waitFor(t, "a to drive one", func() bool { return a.Driver("one") })
	if err := a.Save("one", State{Seq: 1}); err != nil {
		t.Fatal(err)
	}
	a.Retain([]string{"two"})
	waitFor(t, "a to drive two", func() bool { return a.Driver("two") })
	if a.Driver("one") {
		t.Error("a drives a dropped rollout")
	}
	waitFor(t, "one's lock to be released", func() bool { return env.srv.LockHolder("meridian/rollouts/one/lock") == "" })
	if h := env.srv.LockHolder("meridian/rollouts/one/state"); h != "" {
		t.Fatalf("one's state key still held by %s", h)
	}
	// Load of a name without a watch reads Consul directly. (That one's
	// state survives the release is TestConsulReleaseKeepsState's.)
	if _, ok, err := a.Load("three"); ok || err != nil {
		t.Fatalf("Load(three): %v %v", ok, err)
	}
	// Another instance that still runs "one" takes it over and can write
	// its state.
	b, _ := env.store("b", "one")
	waitFor(t, "b to drive one", func() bool { return b.Driver("one") })
	if err := b.Save("one", State{Seq: 2}); err != nil {
		t.Fatalf("b's save of a state a wrote: %v", err)
	}
}

// TestConsulReleaseKeepsState: a rollout's state outlives its lock, both
// when the rollout is dropped (Retain) and when the driver stops cleanly.
//
// Skipped: ConsulStore.releaseKeys releases the state key without a value,
// and Consul stores a release's body as the key's value (kvsUnlockTxn), so
// the release empties the state and Load then fails to parse it. The fix
// belongs in consul.go: release the state key with the state's JSON.
func TestConsulReleaseKeepsState(t *testing.T) {
	env := newConsulEnv(t)
	a, stopA := env.store("a", "one", "two")
	waitFor(t, "a to drive", func() bool { return a.Driver("one") && a.Driver("two") })
	for i, n := range []string{"one", "two"} {
		if err := a.Save(n, State{Seq: uint64(i + 1)}); err != nil {
			t.Fatal(err)
		}
	}
	a.Retain([]string{"two"})
	waitFor(t, "one's lock to be released", func() bool { return env.srv.LockHolder("meridian/rollouts/one/lock") == "" })
	if st, ok, err := a.Load("one"); !ok || err != nil || st.Seq != 1 {
		t.Errorf("Load(one) after Retain dropped it: %+v %v %v", st, ok, err)
	}
	stopA()
	b, _ := env.store("b")
	if st, ok, err := b.Load("two"); !ok || err != nil || st.Seq != 2 {
		t.Errorf("Load(two) after a's clean stop: %+v %v %v", st, ok, err)
	}
}

// TestConsulManagers runs two managers over one Consul: the driver judges
// and steps, the follower takes the driver's weight without judging, and
// takes over (with a fresh interval of its own) when the driver goes.
func TestConsulManagers(t *testing.T) {
	env := newConsulEnv(t)
	const name = "route:api"
	p := mustPlan(t, config.Rollout{Canary: "c", Steps: []int{10, 25, 50}, Interval: dur(time.Minute)})
	plans := map[string]Plan{name: p}

	sa, stopA := env.store("a", name)
	waitFor(t, "a to drive", func() bool { return sa.Driver(name) })
	sb, _ := env.store("b", name)
	ma := NewManager(sa, zaptest.NewLogger(t).Named("ma"))
	mb := NewManager(sb, zaptest.NewLogger(t).Named("mb"))
	ma.Sync(t0, plans)
	mb.Sync(t0, plans)
	waitFor(t, "b to try", func() bool { return env.acquires(sb.Session()) >= 2 })

	var n uint64
	healthy := func(string, Plan) (Window, Window) { n += 500; return Window{Requests: n}, Window{Requests: n} }
	follower := func(string, Plan) (Window, Window) { t.Error("a follower read traffic"); return Window{}, Window{} }

	now := t0
	ma.Tick(now, healthy) // the first interval starts
	now = now.Add(time.Minute)
	if !ma.Tick(now, healthy) {
		t.Fatal("the driver did not step up")
	}
	if w, _ := ma.Weight(name); w != 25 {
		t.Fatalf("driver at %d", w)
	}
	waitFor(t, "b to follow to 25", func() bool {
		mb.Tick(now, follower)
		w, _ := mb.Weight(name)
		return w == 25
	})
	if st := mb.Status()[0]; st.Driver || st.State.Seq != ma.Status()[0].State.Seq {
		t.Fatalf("follower status %+v", st)
	}
	if _, err := mb.Act(now, name, ActionPause); !errors.Is(err, ErrNotDriver) {
		t.Fatalf("Act on the follower: %v", err)
	}
	if _, err := ma.Act(now, name, ActionPause); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b to see the pause", func() bool {
		mb.Tick(now, follower)
		return mb.Status()[0].State.Phase == Paused
	})
	if _, err := ma.Act(now, name, ActionResume); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b to see the resume", func() bool {
		mb.Tick(now, follower)
		return mb.Status()[0].State.Phase == Progressing
	})

	// The driver goes away; b drives from the same step with its own
	// counters and a fresh interval.
	stopA()
	waitFor(t, "b to drive", func() bool { return sb.Driver(name) })
	var m uint64
	own := func(string, Plan) (Window, Window) { m += 700; return Window{Requests: 1e6 + m}, Window{Requests: m} }
	now = now.Add(10 * time.Second)
	mb.Tick(now, own)
	st := mb.Status()[0]
	if !st.Driver || st.State.Weight != 25 || !st.State.IntervalStartedAt.Equal(now) || len(st.State.History) != 1 {
		t.Fatalf("b after the handover: %+v", st)
	}
	now = now.Add(time.Minute)
	mb.Tick(now, own)
	st = mb.Status()[0]
	if st.State.Weight != 50 || st.State.History[1].Canary.Requests != 700 {
		t.Fatalf("b's first judgement: %+v", st.State)
	}
	saved, ok, err := sb.Load(name)
	if err != nil || !ok || saved.Seq != st.State.Seq {
		t.Fatalf("b's saved state: %+v %v %v", saved, ok, err)
	}
}
