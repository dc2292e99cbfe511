package rollout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"
	"go.uber.org/zap"
)

// ErrNotDriver is returned by ConsulStore.Save (and by Manager.Act) on an
// instance that does not hold the rollout's lock.
var ErrNotDriver = errors.New("this instance follows the rollout; another instance drives it")

// Defaults of a ConsulStore's tunables.
const (
	DefaultConsulTTL          = 15 * time.Second
	DefaultConsulAcquireEvery = 5 * time.Second
	DefaultConsulWait         = 30 * time.Second
	consulCallTimeout         = 5 * time.Second
)

// ConsulStore shares rollouts between instances through Consul KV, so one
// instance drives each rollout (judges its own traffic, steps, saves) and
// the others follow the weight it saved.
//
// Keys, for a rollout NAME (path-escaped) under prefix: prefix/NAME/lock is
// the lock, held through KV acquire by this instance's session (its value
// names the holder); prefix/NAME/state is the JSON State, written with
// acquire under the same session, so a write from an instance whose session
// is gone fails (a deposed driver cannot overwrite its successor's state).
//
// Run keeps one session (TTL, renewed every TTL/2, behaviour release, the
// agent's serfHealth check), tries every rollout's lock every AcquireEvery
// (which also confirms the locks it holds), and watches every state key with
// a blocking query (X-Consul-Index, at most Wait per query) so Load answers
// from memory. A driver that dies stops renewing: Consul invalidates the
// session after its TTL (up to twice the TTL), releases its locks, and
// after the lock-delay (LockDelay; Consul's default 15 s) another instance's
// next attempt takes over: 30 to 50 s with the defaults. A driver that
// stops cleanly (Run's context ends) releases its locks and destroys its
// session, and a follower takes over at its next attempt. A driver whose
// renewals fail for longer than the TTL, or whose session is gone (its
// renewal or an acquire that fails finds out), stops driving at once and
// starts a new session.
//
// Set the exported fields before Run. Load, Save, Driver and Retain are
// safe for concurrent use with Run and each other.
type ConsulStore struct {
	TTL          time.Duration // session TTL; default DefaultConsulTTL (Consul accepts 10s to 24h)
	LockDelay    time.Duration // the session's lock-delay; 0: Consul's default (15 s)
	AcquireEvery time.Duration // default DefaultConsulAcquireEvery
	Wait         time.Duration // blocking query wait; default DefaultConsulWait
	Identity     string        // the lock's value, naming this instance; default the host name

	kv       *api.KV
	sessions *api.Session
	prefix   string
	log      *zap.Logger

	mu        sync.Mutex
	running   bool
	session   string
	lastRenew time.Time
	names     map[string]*consulEntry
	release   []string // names dropped by Retain while held
	wake      chan struct{}
	renewErr  bool
	acqErr    bool
}

type consulEntry struct {
	held   bool
	loaded bool // the watch answered at least once
	have   bool // a state exists
	state  State
	cancel context.CancelFunc // the watch's, once Run started it
}

// NewConsulStore returns a store under prefix (e.g. "meridian/rollouts").
// Nothing happens until Run; Driver is false until Run has taken a lock.
func NewConsulStore(client *api.Client, prefix string, logger *zap.Logger) *ConsulStore {
	if logger == nil {
		logger = zap.NewNop()
	}
	return &ConsulStore{
		kv:       client.KV(),
		sessions: client.Session(),
		prefix:   strings.Trim(prefix, "/"),
		log:      logger.Named("rollout_consul"),
		names:    map[string]*consulEntry{},
		wake:     make(chan struct{}, 1),
	}
}

func (s *ConsulStore) key(name, leaf string) string {
	// A rollout's name is "route:NAME" or "service:NAME": its kind becomes
	// a key segment, since recent Consul versions refuse ":" in key names;
	// the escaped NAME cannot contain "/".
	kind, rest, ok := strings.Cut(name, ":")
	k := url.PathEscape(name) + "/" + leaf
	if ok {
		k = url.PathEscape(kind) + "/" + url.PathEscape(rest) + "/" + leaf
	}
	if s.prefix != "" {
		k = s.prefix + "/" + k
	}
	return k
}

func (s *ConsulStore) ttl() time.Duration  { return orDefault(s.TTL, DefaultConsulTTL) }
func (s *ConsulStore) wait() time.Duration { return orDefault(s.Wait, DefaultConsulWait) }
func (s *ConsulStore) acquireEvery() time.Duration {
	return orDefault(s.AcquireEvery, DefaultConsulAcquireEvery)
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// Retain sets the rollouts this instance takes part in. New names are
// watched and their locks tried at once (while Run runs); for names dropped,
// the watch stops and a held lock is released. Their state stays in KV.
func (s *ConsulStore) Retain(names []string) error {
	s.mu.Lock()
	for n, e := range s.names {
		if slices.Contains(names, n) {
			continue
		}
		if e.cancel != nil {
			e.cancel()
		}
		if e.held {
			s.release = append(s.release, n)
		}
		delete(s.names, n)
	}
	for _, n := range names {
		if s.names[n] == nil {
			s.names[n] = &consulEntry{}
		}
	}
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return nil
}

// Driver reports whether this instance holds the rollout's lock, as of
// the last attempt (at most AcquireEvery ago) and while its session lives.
func (s *ConsulStore) Driver(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.names[name]
	return e != nil && e.held && s.session != ""
}

// Session returns the current session's ID, "" when there is none.
func (s *ConsulStore) Session() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.session
}

// Load returns the rollout's state: from the watch once it has answered,
// else read from Consul (a consistent read, at most 5 s).
func (s *ConsulStore) Load(name string) (State, bool, error) {
	s.mu.Lock()
	if e := s.names[name]; e != nil && e.loaded {
		st, have := e.state.Clone(), e.have
		s.mu.Unlock()
		return st, have, nil
	}
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), consulCallTimeout)
	defer cancel()
	pair, _, err := s.kv.Get(s.key(name, "state"), (&api.QueryOptions{RequireConsistent: true}).WithContext(ctx))
	if err != nil {
		return State{}, false, fmt.Errorf("consul: read rollout %q: %w", name, err)
	}
	if pair == nil {
		return State{}, false, nil
	}
	var st State
	if err := json.Unmarshal(pair.Value, &st); err != nil {
		return State{}, false, fmt.Errorf("consul: rollout %q: state in %s does not parse: %w", name, pair.Key, err)
	}
	return st, true, nil
}

// Save writes the state under this instance's session. It returns
// ErrNotDriver when this instance does not hold the lock, or when Consul
// refuses the write because another session holds the key (this instance
// then stops driving).
func (s *ConsulStore) Save(name string, st State) error {
	s.mu.Lock()
	e, id := s.names[name], s.session
	held := e != nil && e.held && id != ""
	s.mu.Unlock()
	if !held {
		return ErrNotDriver
	}
	b, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("consul: rollout %q: %w", name, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), consulCallTimeout)
	defer cancel()
	ok, _, err := s.kv.Acquire(&api.KVPair{Key: s.key(name, "state"), Value: b, Session: id}, (&api.WriteOptions{}).WithContext(ctx))
	if err != nil {
		return fmt.Errorf("consul: save rollout %q: %w", name, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e = s.names[name]
	if !ok {
		if e != nil && s.session == id && e.held {
			e.held = false
			s.log.Warn("rollout lock lost: another instance drives it now", zap.String("rollout", name))
		}
		return ErrNotDriver
	}
	if e != nil {
		e.loaded, e.have, e.state = true, true, st.Clone()
	}
	return nil
}

// Run keeps the session, the locks and the watches until ctx ends, then
// releases the locks it holds, destroys its session and returns nil.
func (s *ConsulStore) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.running {
		s.mu.Unlock()
		return errors.New("rollout: ConsulStore.Run called twice")
	}
	s.running = true
	s.mu.Unlock()

	var wg sync.WaitGroup
	defer func() {
		wg.Wait() // the watches end with ctx
		s.shutdown()
	}()
	renew := time.NewTicker(s.ttl() / 2)
	defer renew.Stop()
	acquire := time.NewTicker(s.acquireEvery())
	defer acquire.Stop()
	backoff := time.Duration(0)
	for {
		s.reconcile(ctx, &wg)
		if s.Session() == "" {
			if err := s.createSession(ctx); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				backoff = min(max(2*backoff, 500*time.Millisecond), s.ttl())
				s.log.Warn("rollout session: cannot create; retrying", zap.Error(err), zap.Duration("in", backoff))
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(backoff):
				}
				continue
			}
			backoff = 0
			s.acquireAll(ctx)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.wake:
			s.reconcile(ctx, &wg)
			s.acquireAll(ctx)
		case <-renew.C:
			s.renew(ctx)
		case <-acquire.C:
			s.acquireAll(ctx)
		}
	}
}

// reconcile starts the watches of new names and releases dropped locks.
func (s *ConsulStore) reconcile(ctx context.Context, wg *sync.WaitGroup) {
	s.mu.Lock()
	rel, id := s.release, s.session
	s.release = nil
	for n, e := range s.names {
		if e.cancel == nil {
			wctx, cancel := context.WithCancel(ctx)
			e.cancel = cancel
			wg.Add(1)
			go func() {
				defer wg.Done()
				s.watch(wctx, n, e)
			}()
		}
	}
	s.mu.Unlock()
	if id == "" {
		return
	}
	for _, n := range rel {
		s.releaseKeys(ctx, id, n)
	}
}

// releaseKeys gives up a rollout's keys: the state key first (the session
// holds it since its first Save), so the next driver can write it as soon
// as it has the lock.
func (s *ConsulStore) releaseKeys(ctx context.Context, id, name string) {
	for _, leaf := range []string{"state", "lock"} {
		cctx, cancel := context.WithTimeout(ctx, consulCallTimeout)
		// Consul stores a release's body as the key's value: release with
		// the value the key holds, or the state would be emptied.
		p := &api.KVPair{Key: s.key(name, leaf), Session: id}
		cur, _, err := s.kv.Get(p.Key, (&api.QueryOptions{}).WithContext(cctx))
		if err == nil && cur != nil && cur.Session == id {
			p.Value, p.Flags = cur.Value, cur.Flags
		}
		if err == nil {
			_, _, err = s.kv.Release(p, (&api.WriteOptions{}).WithContext(cctx))
		}
		cancel()
		if err != nil {
			s.log.Warn("rollout lock: cannot release; it ends with the session", zap.String("rollout", name), zap.String("key", s.key(name, leaf)), zap.Error(err))
		}
	}
}

func (s *ConsulStore) createSession(ctx context.Context) error {
	id := s.identity()
	cctx, cancel := context.WithTimeout(ctx, consulCallTimeout)
	defer cancel()
	sid, _, err := s.sessions.Create(&api.SessionEntry{
		Name:      "meridian rollouts " + id,
		TTL:       s.ttl().String(),
		Behavior:  api.SessionBehaviorRelease,
		LockDelay: s.LockDelay,
	}, (&api.WriteOptions{}).WithContext(cctx))
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.session, s.lastRenew = sid, time.Now()
	s.mu.Unlock()
	s.log.Info("rollout session created", zap.String("session", sid), zap.Duration("ttl", s.ttl()))
	return nil
}

func (s *ConsulStore) identity() string {
	if s.Identity != "" {
		return s.Identity
	}
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "meridian"
	}
	return h
}

func (s *ConsulStore) renew(ctx context.Context) {
	s.mu.Lock()
	id, last := s.session, s.lastRenew
	s.mu.Unlock()
	if id == "" {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, consulCallTimeout)
	entry, _, err := s.sessions.Renew(id, (&api.WriteOptions{}).WithContext(cctx))
	cancel()
	switch {
	case err != nil:
		if ctx.Err() != nil {
			return
		}
		if !s.renewErr {
			s.log.Warn("rollout session: renewal failed", zap.String("session", id), zap.Error(err))
			s.renewErr = true
		}
		if time.Since(last) > s.ttl() {
			s.lost(id, "renewals failed for longer than the session's TTL")
		}
	case entry == nil:
		s.lost(id, "the session expired or was destroyed")
	default:
		s.renewErr = false
		s.mu.Lock()
		if s.session == id {
			s.lastRenew = time.Now()
		}
		s.mu.Unlock()
	}
}

// lost drops a session: this instance drives nothing until it has a new
// one and its locks.
func (s *ConsulStore) lost(id, why string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.session != id {
		return
	}
	s.session = ""
	var held []string
	for n, e := range s.names {
		if e.held {
			held = append(held, n)
			e.held = false
		}
	}
	slices.Sort(held)
	s.log.Warn("rollout session lost: following every rollout until a new session takes the locks",
		zap.String("session", id), zap.String("why", why), zap.Strings("was_driving", held))
}

// acquireAll tries (or confirms) every lock.
func (s *ConsulStore) acquireAll(ctx context.Context) {
	s.mu.Lock()
	id := s.session
	names := make([]string, 0, len(s.names))
	for n := range s.names {
		names = append(names, n)
	}
	s.mu.Unlock()
	if id == "" {
		return
	}
	slices.Sort(names)
	value, _ := json.Marshal(map[string]string{"holder": s.identity(), "session": id})
	failed := false
	for _, n := range names {
		cctx, cancel := context.WithTimeout(ctx, consulCallTimeout)
		ok, _, err := s.kv.Acquire(&api.KVPair{Key: s.key(n, "lock"), Value: value, Session: id}, (&api.WriteOptions{}).WithContext(cctx))
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			// Until the session is known to be gone (below), a held lock
			// counts as held: a network blip does not stop the driver.
			if !s.acqErr {
				s.log.Warn("rollout lock: acquire failed", zap.String("rollout", n), zap.Error(err))
			}
			failed = true
			continue
		}
		s.mu.Lock()
		if e := s.names[n]; e != nil && s.session == id && e.held != ok {
			e.held = ok
			if ok {
				s.log.Info("driving rollout", zap.String("rollout", n), zap.String("session", id))
			} else {
				s.log.Info("following rollout: another instance holds its lock", zap.String("rollout", n))
			}
		}
		s.mu.Unlock()
	}
	s.acqErr = failed
	if failed {
		// A session Consul no longer knows fails every acquire: find out
		// now rather than at the next renewal, and stop driving.
		cctx, cancel := context.WithTimeout(ctx, consulCallTimeout)
		entry, _, err := s.sessions.Info(id, (&api.QueryOptions{}).WithContext(cctx))
		cancel()
		if err == nil && entry == nil {
			s.lost(id, "the session is gone")
		}
	}
}

// watch follows one state key with blocking queries until ctx ends.
func (s *ConsulStore) watch(ctx context.Context, name string, e *consulEntry) {
	key := s.key(name, "state")
	var index uint64
	fails := 0
	for {
		pair, meta, err := s.kv.Get(key, (&api.QueryOptions{WaitIndex: index, WaitTime: s.wait()}).WithContext(ctx))
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			fails++
			if fails == 1 {
				s.log.Warn("rollout state watch failed; retrying", zap.String("rollout", name), zap.Error(err))
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(min(time.Second<<min(fails-1, 5), 30*time.Second)):
			}
			continue
		}
		if fails > 0 {
			s.log.Info("rollout state watch recovered", zap.String("rollout", name))
			fails = 0
		}
		switch {
		case meta.LastIndex < index:
			index = 0 // the index went backwards (snapshot restore): start over
		case meta.LastIndex == 0:
			index = 1
		default:
			index = meta.LastIndex
		}
		var st State
		have := pair != nil
		if have {
			if err := json.Unmarshal(pair.Value, &st); err != nil {
				s.log.Warn("rollout state in Consul does not parse; ignored", zap.String("key", key), zap.Error(err))
				continue
			}
		}
		s.mu.Lock()
		if s.names[name] == e {
			e.loaded, e.have, e.state = true, have, st
		}
		s.mu.Unlock()
	}
}

// shutdown releases the locks and destroys the session.
func (s *ConsulStore) shutdown() {
	s.mu.Lock()
	id := s.session
	var held []string
	for n, e := range s.names {
		if e.held {
			held = append(held, n)
		}
		e.held = false
		e.cancel = nil
	}
	held = append(held, s.release...)
	s.release = nil
	s.session = ""
	s.running = false
	s.mu.Unlock()
	if id == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), consulCallTimeout)
	defer cancel()
	for _, n := range held {
		s.releaseKeys(ctx, id, n)
	}
	if _, err := s.sessions.Destroy(id, (&api.WriteOptions{}).WithContext(ctx)); err != nil {
		s.log.Warn("rollout session: cannot destroy at shutdown; it expires with its TTL", zap.String("session", id), zap.Error(err))
	}
}
