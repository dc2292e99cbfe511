package consultest

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"time"
)

// Consul's session limits.
const (
	defaultLockDelay = 15 * time.Second
	maxLockDelay     = 60 * time.Second // longer lock-delays are cut to this at invalidation
	sessionTTLMax    = 24 * time.Hour
	// sessionTTLMultiplier: Consul's servers invalidate a TTL session this
	// many TTLs after its creation or last renewal (the TTL is a lower bound).
	sessionTTLMultiplier = 2
	// lockDelayMinThreshold: Consul reads a LockDelay below this many
	// nanoseconds as seconds (a client sending 5 means 5s).
	lockDelayMinThreshold = 1000
)

// Session is a live session, as the Sessions control reports it.
type Session struct {
	ID          string
	Name        string
	Node        string
	Behavior    string        // release or delete
	TTL         time.Duration // 0: no TTL
	LockDelay   time.Duration
	Checks      []string // the node checks it is bound to
	Held        []string // the keys whose lock it holds, sorted
	Renewals    int      // successful renewals
	CreateIndex uint64
}

type session struct {
	id, name, node, dc, behavior string
	ttlText                      string // as the client sent it
	ttl, lockDelay               time.Duration
	checks                       []string
	createIdx                    uint64
	expires                      time.Time   // zero without a TTL
	timer                        *time.Timer // nil without a TTL
	failRenew                    bool
	renewals                     int
}

// sessionJSON is Consul's session entry (/v1/session/info, list, node, renew).
type sessionJSON struct {
	ID            string
	Name          string
	Node          string
	LockDelay     time.Duration
	Behavior      string
	TTL           string
	NodeChecks    []string
	ServiceChecks []struct{ ID, Namespace string }
	CreateIndex   uint64
	ModifyIndex   uint64
}

func (se *session) json() sessionJSON {
	return sessionJSON{
		ID: se.id, Name: se.name, Node: se.node, LockDelay: se.lockDelay, Behavior: se.behavior,
		TTL: se.ttlText, NodeChecks: slices.Clone(se.checks), CreateIndex: se.createIdx, ModifyIndex: se.createIdx,
	}
}

// newUUID returns a random (version 4) UUID, the shape of Consul's session IDs.
func newUUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func (s *Server) sessionCreate(w http.ResponseWriter, r *http.Request) {
	dc, ok := s.checkLocalDC(w, r)
	if !ok {
		return
	}
	var body struct {
		Name, Node, Behavior, TTL string
		LockDelay                 json.RawMessage
		Checks, NodeChecks        *[]string
		ServiceChecks             []json.RawMessage
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err == nil && len(bytes.TrimSpace(raw)) > 0 {
		err = json.Unmarshal(raw, &body)
	}
	if err != nil {
		http.Error(w, "Request decode failed: "+err.Error(), http.StatusBadRequest)
		return
	}
	se := &session{
		id: newUUID(), name: body.Name, node: body.Node, dc: dc, behavior: body.Behavior,
		ttlText: body.TTL, lockDelay: defaultLockDelay, checks: []string{"serfHealth"},
	}
	if len(body.LockDelay) > 0 && string(body.LockDelay) != "null" {
		d, err := parseLockDelay(body.LockDelay)
		if err != nil {
			http.Error(w, "Request decode failed: "+err.Error(), http.StatusBadRequest)
			return
		}
		se.lockDelay = d
	}
	if body.Checks != nil || body.NodeChecks != nil {
		se.checks = nil
		for _, list := range []*[]string{body.Checks, body.NodeChecks} {
			if list == nil {
				continue
			}
			for _, c := range *list {
				if !slices.Contains(se.checks, c) {
					se.checks = append(se.checks, c)
				}
			}
		}
	}
	if len(body.ServiceChecks) > 0 {
		http.Error(w, "consultest: session ServiceChecks are not implemented", http.StatusBadRequest)
		return
	}
	for _, c := range se.checks {
		if c != "serfHealth" {
			http.Error(w, "consultest: session checks other than serfHealth are not implemented", http.StatusBadRequest)
			return
		}
	}
	switch se.behavior {
	case "":
		se.behavior = "release"
	case "release", "delete":
	default:
		http.Error(w, fmt.Sprintf("Invalid Behavior setting '%s'", se.behavior), http.StatusInternalServerError)
		return
	}
	if se.ttlText != "" {
		ttl, err := time.ParseDuration(se.ttlText)
		if err != nil {
			http.Error(w, fmt.Sprintf("Session TTL '%s' invalid: %v", se.ttlText, err), http.StatusInternalServerError)
			return
		}
		if ttl != 0 && (ttl < s.opts.MinSessionTTL || ttl > sessionTTLMax) {
			http.Error(w, fmt.Sprintf("Invalid Session TTL '%d', must be between [%v=%v]", ttl, s.opts.MinSessionTTL, sessionTTLMax), http.StatusInternalServerError)
			return
		}
		se.ttl = ttl
	}
	if se.node == "" {
		se.node = s.opts.NodeName
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	serf, known := s.serfStatusLocked(dc, se.node)
	if !known {
		http.Error(w, "Missing node registration", http.StatusInternalServerError)
		return
	}
	if slices.Contains(se.checks, "serfHealth") && serf == "critical" {
		http.Error(w, "Check 'serfHealth' is in critical state", http.StatusInternalServerError)
		return
	}
	se.createIdx = s.bumpLocked(&s.sessionIdx)
	s.sessions[se.id] = se
	s.armLocked(se)
	writeJSON(w, struct{ ID string }{se.id})
}

// parseLockDelay reads a LockDelay the way Consul does: a duration string
// or a number of nanoseconds, either read as seconds when below 1000.
func parseLockDelay(raw json.RawMessage) (time.Duration, error) {
	var d time.Duration
	var str string
	var num float64
	switch {
	case json.Unmarshal(raw, &str) == nil:
		v, err := time.ParseDuration(str)
		if err != nil {
			return 0, err
		}
		d = v
	case json.Unmarshal(raw, &num) == nil:
		d = time.Duration(num)
	default:
		return 0, fmt.Errorf("invalid LockDelay %s", raw)
	}
	if d < lockDelayMinThreshold {
		d *= time.Second
	}
	return d, nil
}

// serfStatusLocked returns the serfHealth status of a node and whether the
// node is registered. The agent's own node always is.
func (s *Server) serfStatusLocked(dc, name string) (string, bool) {
	if n := s.nodes[dc+"/"+name]; n != nil {
		return n.serfStatus, true
	}
	if dc == s.opts.Datacenter && name == s.opts.NodeName {
		return "passing", true
	}
	return "", false
}

// armLocked (re)starts a TTL session's expiry: it is invalidated
// sessionTTLMultiplier TTLs from now unless renewed.
func (s *Server) armLocked(se *session) {
	if se.ttl <= 0 {
		return
	}
	d := sessionTTLMultiplier * se.ttl
	se.expires = time.Now().Add(d)
	if se.timer == nil {
		se.timer = time.AfterFunc(d, func() { s.sessionTimer(se) })
	}
	// A running timer finds the later expiry when it fires and waits again.
}

func (s *Server) sessionTimer(se *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sessions[se.id] != se {
		return
	}
	if d := time.Until(se.expires); d > 0 {
		se.timer.Reset(d)
		return
	}
	s.invalidateLocked(se.id)
}

// invalidateLocked ends a session as Consul does (destroy, TTL expiry, its
// node's serfHealth going critical): every key it holds is released (its
// value kept) or deleted, per the session's behavior, in one write that
// bumps their ModifyIndex, and each starts the session's lock-delay.
func (s *Server) invalidateLocked(id string) bool {
	se := s.sessions[id]
	if se == nil {
		return false
	}
	delete(s.sessions, id)
	if se.timer != nil {
		se.timer.Stop()
	}
	idx := s.bumpLocked(&s.sessionIdx)
	delay := min(se.lockDelay, maxLockDelay)
	now := time.Now()
	for key, e := range s.kv {
		if e.session != id {
			continue
		}
		if se.behavior == "delete" {
			delete(s.kv, key)
		} else {
			e.session, e.modIdx = "", idx
		}
		s.kvIdx = idx
		if delay > 0 {
			s.lockDelay[key] = now.Add(delay)
		}
	}
	return true
}

// invalidateNodeLocked invalidates the sessions bound to a node's
// serfHealth check, as Consul does when the check goes critical.
func (s *Server) invalidateNodeLocked(dc, node string) {
	for id, se := range s.sessions {
		if se.dc == dc && se.node == node && slices.Contains(se.checks, "serfHealth") {
			s.invalidateLocked(id)
		}
	}
}

func (s *Server) sessionRenew(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if id == "" {
		http.Error(w, "Missing session", http.StatusBadRequest)
		return
	}
	if _, ok := s.checkLocalDC(w, r); !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	se := s.sessions[id]
	switch {
	case se == nil:
		http.Error(w, fmt.Sprintf("Session id '%s' not found", id), http.StatusNotFound)
	case se.failRenew:
		http.Error(w, "rpc error making call: No cluster leader", http.StatusInternalServerError)
	default:
		se.renewals++
		s.armLocked(se)
		writeJSON(w, []sessionJSON{se.json()})
	}
}

func (s *Server) sessionDestroy(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if id == "" {
		http.Error(w, "Missing session", http.StatusBadRequest)
		return
	}
	if _, ok := s.checkLocalDC(w, r); !ok {
		return
	}
	s.mu.Lock()
	s.invalidateLocked(id) // destroying an unknown session is not an error
	s.mu.Unlock()
	writeJSON(w, true)
}

// sessionQuery serves the blocking session reads: info (sessions whose ID
// is the path value param), node (whose node is) and list (all, param "").
// Their index is the sessions table's.
func (s *Server) sessionQuery(param, missing string, field func(*session) string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		want := ""
		if param != "" {
			if want = r.PathValue(param); want == "" {
				http.Error(w, missing, http.StatusBadRequest)
				return
			}
		}
		dc, ok := s.checkLocalDC(w, r)
		if !ok {
			return
		}
		index, wait, ok := s.blockParams(w, r)
		if !ok {
			return
		}
		if !s.block(r, dc, index, wait, func() uint64 { return s.sessionIdx }) {
			return
		}
		s.mu.Lock()
		out := []sessionJSON{}
		for _, id := range slices.Sorted(maps.Keys(s.sessions)) {
			if se := s.sessions[id]; param == "" || field(se) == want {
				out = append(out, se.json())
			}
		}
		s.writeMetaLocked(w, r, s.sessionIdx)
		s.mu.Unlock()
		writeJSON(w, out)
	}
}

// acquireLocked is PUT /v1/kv/<key>?acquire=<id>, following Consul: a key
// in lock-delay is refused (before the session is even looked up), an
// unknown session is an error, the holder may rewrite the value (LockIndex
// unchanged, and no write at all when nothing changes), and taking a free
// or missing key increments its LockIndex.
func (s *Server) acquireLocked(key, id string, value []byte, flags uint64) (bool, error) {
	if until, ok := s.lockDelay[key]; ok {
		if time.Now().Before(until) {
			return false, nil
		}
		delete(s.lockDelay, key)
	}
	if id == "" {
		return false, errors.New("missing session")
	}
	if s.sessions[id] == nil {
		return false, fmt.Errorf("invalid session %q", id)
	}
	e := s.kv[key]
	switch {
	case e == nil:
		idx := s.bumpLocked(&s.kvIdx)
		s.kv[key] = &kvEntry{value: slices.Clone(value), flags: flags, createIdx: idx, modIdx: idx, session: id, lockIdx: 1}
		return true, nil
	case e.session == id:
		if bytes.Equal(e.value, value) && e.flags == flags {
			return true, nil
		}
	case e.session != "":
		return false, nil
	default:
		e.session = id
		e.lockIdx++
	}
	e.value, e.flags, e.modIdx = slices.Clone(value), flags, s.bumpLocked(&s.kvIdx)
	return true, nil
}

// releaseLocked is PUT /v1/kv/<key>?release=<id>: only the holder
// releases, and, as in Consul, the request's body and flags become the
// key's value and flags (a release without a body empties the key).
func (s *Server) releaseLocked(key, id string, value []byte, flags uint64) (bool, error) {
	if id == "" {
		return false, errors.New("missing session")
	}
	e := s.kv[key]
	if e == nil || e.session != id {
		return false, nil
	}
	e.session = ""
	e.value, e.flags, e.modIdx = slices.Clone(value), flags, s.bumpLocked(&s.kvIdx)
	return true, nil
}

// ExpireSession invalidates a session now, as Consul does when its TTL
// lapses: its keys are released or deleted (per its behavior), their
// ModifyIndex bumped, and its lock-delay starts on each. It reports
// whether the session existed.
func (s *Server) ExpireSession(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.invalidateLocked(id)
}

// FailRenewals makes renewals of the session answer 500 (fail true), as
// if its holder lost the cluster, or ends that (fail false). The session
// still expires on its own TTL clock; ExpireSession ends it at once. It
// reports whether the session exists.
func (s *Server) FailRenewals(id string, fail bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	se := s.sessions[id]
	if se == nil {
		return false
	}
	se.failRenew = fail
	return true
}

// LockHolder returns the session holding key's lock, "" when none.
func (s *Server) LockHolder(key string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.kv[key]; e != nil {
		return e.session
	}
	return ""
}

// Locks returns every held lock: key to session ID.
func (s *Server) Locks() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]string{}
	for k, e := range s.kv {
		if e.session != "" {
			out[k] = e.session
		}
	}
	return out
}

// Sessions returns the live sessions, sorted by ID.
func (s *Server) Sessions() []Session {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Session, 0, len(s.sessions))
	for _, id := range slices.Sorted(maps.Keys(s.sessions)) {
		se := s.sessions[id]
		var held []string
		for k, e := range s.kv {
			if e.session == id {
				held = append(held, k)
			}
		}
		slices.Sort(held)
		out = append(out, Session{
			ID: se.id, Name: se.name, Node: se.node, Behavior: se.behavior, TTL: se.ttl, LockDelay: se.lockDelay,
			Checks: slices.Clone(se.checks), Held: held, Renewals: se.renewals, CreateIndex: se.createIdx,
		})
	}
	return out
}
