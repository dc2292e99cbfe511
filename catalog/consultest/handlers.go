package consultest

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// maxKVValue is Consul's limit on a KV value.
const maxKVValue = 512 << 10

// metaKeyRE is Consul's rule for service meta keys.
var metaKeyRE = regexp.MustCompile(`^[a-zA-Z0-9_-]+$`)

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/health/service/{name}", s.healthService)
	mux.HandleFunc("GET /v1/kv/{key...}", s.kvGet)
	mux.HandleFunc("PUT /v1/kv/{key...}", s.kvPut)
	mux.HandleFunc("DELETE /v1/kv/{key...}", s.kvDelete)
	mux.HandleFunc("PUT /v1/agent/service/register", s.agentRegister)
	mux.HandleFunc("PUT /v1/agent/service/deregister/{id}", s.agentDeregister)
	mux.HandleFunc("GET /v1/status/leader", s.statusLeader)
	mux.HandleFunc("GET /v1/catalog/datacenters", s.catalogDatacenters)
	mux.HandleFunc("GET /v1/coordinate/datacenters", s.coordinateDatacenters)
	mux.HandleFunc("GET /v1/agent/self", s.agentSelf)
	mux.HandleFunc("PUT /v1/session/create", s.sessionCreate)
	mux.HandleFunc("PUT /v1/session/renew/{id...}", s.sessionRenew)
	mux.HandleFunc("PUT /v1/session/destroy/{id...}", s.sessionDestroy)
	mux.HandleFunc("GET /v1/session/info/{id...}", s.sessionQuery("id", "Missing session", func(se *session) string { return se.id }))
	mux.HandleFunc("GET /v1/session/node/{node...}", s.sessionQuery("node", "Missing node name", func(se *session) string { return se.node }))
	mux.HandleFunc("GET /v1/session/list", s.sessionQuery("", "", nil))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "consultest: endpoint not implemented: "+r.Method+" "+r.URL.Path, http.StatusNotFound)
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.inFlight.Add(1)
		defer s.inFlight.Add(-1)
		quit := s.record(r)
		if !s.waitHang(r, quit) {
			return
		}
		if s.injectFault(w, r) {
			return
		}
		if !s.authorized(r) {
			http.Error(w, "ACL not found", http.StatusForbidden)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// record stores the call and returns the current quit channel.
func (s *Server) record(r *http.Request) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := Call{
		Method:       r.Method,
		Path:         r.URL.Path,
		Query:        r.URL.Query(),
		Token:        r.Header.Get("X-Consul-Token"),
		TokenInQuery: r.URL.Query().Has("token"),
		Time:         time.Now(),
	}
	if len(s.calls) >= maxHistory {
		s.calls = slices.Delete(s.calls, 0, len(s.calls)-maxHistory+1)
	}
	s.calls = append(s.calls, c)
	s.callCounts[c.Path]++
	return s.quit
}

// waitHang blocks a matching request while the server hangs; it reports
// false when the request must be abandoned.
func (s *Server) waitHang(r *http.Request, quit <-chan struct{}) bool {
	for {
		s.mu.Lock()
		h, prefix := s.hang, s.hangPrefix
		s.mu.Unlock()
		if h == nil || !strings.HasPrefix(r.URL.Path, prefix) {
			return true
		}
		select {
		case <-h:
		case <-r.Context().Done():
			return false
		case <-quit:
			return false
		}
	}
}

func (s *Server) injectFault(w http.ResponseWriter, r *http.Request) bool {
	s.mu.Lock()
	f := s.fault
	if f == nil || !strings.HasPrefix(r.URL.Path, f.Path) {
		s.mu.Unlock()
		return false
	}
	code, body := f.Code, f.Body
	if f.EchoToken {
		body += fmt.Sprintf(" (token %q)", r.Header.Get("X-Consul-Token"))
	}
	if f.Count > 0 {
		f.Count--
		if f.Count == 0 {
			s.fault = nil
		}
	}
	s.mu.Unlock()
	http.Error(w, body, code)
	return true
}

func (s *Server) authorized(r *http.Request) bool {
	if s.opts.Token == "" {
		return true
	}
	t := r.Header.Get("X-Consul-Token")
	if t == "" {
		t = r.URL.Query().Get("token")
	}
	return t == s.opts.Token
}

// blockParams parses ?index and ?wait like Consul does.
func (s *Server) blockParams(w http.ResponseWriter, r *http.Request) (index uint64, wait time.Duration, ok bool) {
	q := r.URL.Query()
	if v := q.Get("index"); v != "" {
		i, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			http.Error(w, "Invalid index", http.StatusBadRequest)
			return 0, 0, false
		}
		index = i
	}
	wait = s.opts.DefaultWait
	if v := q.Get("wait"); v != "" {
		d, err := ParseWait(v)
		if err != nil {
			http.Error(w, "Invalid wait time", http.StatusBadRequest)
			return 0, 0, false
		}
		wait = d
	}
	return index, min(wait, s.opts.MaxWait), true
}

// ParseWait parses a ?wait= value the way Consul does: a Go duration
// ("10s", "5m", "300000ms"); negative values are invalid.
func ParseWait(v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, err
	}
	if d < 0 {
		return 0, fmt.Errorf("negative wait %q", v)
	}
	return d, nil
}

// block waits while view() <= index (when index > 0), up to wait. view is
// called with s.mu held. It reports false when the request must be
// abandoned (client gone, server stopping); it returns true at once when
// the datacenter dc stops answering (StopDatacenter), for the caller's
// checkDC to answer the error.
func (s *Server) block(r *http.Request, dc string, index uint64, wait time.Duration, view func() uint64) bool {
	if index == 0 {
		return true
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		s.mu.Lock()
		cur, wake, quit := view(), s.wake, s.quit
		stopped := s.dcs[dc] != nil && s.dcs[dc].stopped
		s.mu.Unlock()
		if cur > index || stopped {
			return true
		}
		select {
		case <-wake:
		case <-timer.C:
			return true
		case <-r.Context().Done():
			return false
		case <-quit:
			return false
		}
	}
}

// checkDC resolves ?dc; unknown datacenters, and those StopDatacenter
// stopped, fail like Consul.
func (s *Server) checkDC(w http.ResponseWriter, r *http.Request) (string, bool) {
	dc := r.URL.Query().Get("dc")
	if dc == "" {
		dc = s.opts.Datacenter
	}
	s.mu.Lock()
	d := s.dcs[dc]
	s.mu.Unlock()
	if d == nil || d.stopped {
		http.Error(w, "No path to datacenter", http.StatusInternalServerError)
		return "", false
	}
	return dc, true
}

// checkLocalDC is checkDC for the KV and session endpoints, which model
// the agent's datacenter only: another known one answers 500, saying so.
func (s *Server) checkLocalDC(w http.ResponseWriter, r *http.Request) (string, bool) {
	dc, ok := s.checkDC(w, r)
	if ok && dc != s.opts.Datacenter {
		http.Error(w, fmt.Sprintf("consultest: KV and sessions model the agent's datacenter (%s) only, not %s", s.opts.Datacenter, dc), http.StatusInternalServerError)
		return "", false
	}
	return dc, ok
}

// writeMeta sets the blocking-query headers; call with s.mu held.
func (s *Server) writeMetaLocked(w http.ResponseWriter, r *http.Request, index uint64) {
	h := w.Header()
	h.Set("X-Consul-Index", strconv.FormatUint(index, 10))
	h.Set("X-Consul-KnownLeader", strconv.FormatBool(s.knownLeader))
	h.Set("X-Consul-LastContact", "0")
	consistency := "leader"
	switch q := r.URL.Query(); {
	case q.Has("stale"):
		consistency = "stale"
	case q.Has("consistent"):
		consistency = "consistent"
	}
	h.Set("X-Consul-Effective-Consistency", consistency)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Write(b)
}

// JSON shapes of /v1/health/service, following Consul's documented answer.
type (
	healthEntry struct {
		Node    nodeJSON
		Service serviceJSON
		Checks  []checkJSON
	}
	nodeJSON struct {
		ID              string
		Node            string
		Address         string
		Datacenter      string
		TaggedAddresses map[string]string
		Meta            map[string]string
		CreateIndex     uint64
		ModifyIndex     uint64
	}
	serviceJSON struct {
		Kind              string `json:",omitempty"`
		ID                string
		Service           string
		Tags              []string
		Address           string
		Meta              map[string]string
		Port              int
		Weights           Weights
		EnableTagOverride bool
		Proxy             proxyJSON
		Connect           struct{}
		PeerName          string `json:",omitempty"`
		CreateIndex       uint64
		ModifyIndex       uint64
	}
	proxyJSON struct {
		Mode        string
		MeshGateway struct{}
		Expose      struct{}
	}
	checkJSON struct {
		Node        string
		CheckID     string
		Name        string
		Status      string
		Notes       string
		Output      string
		ServiceID   string
		ServiceName string
		ServiceTags []string
		Type        string
		ExposedPort int
		Definition  definitionJSON
		CreateIndex uint64
		ModifyIndex uint64
	}
	definitionJSON struct {
		HTTP                           string `json:",omitempty"`
		TCP                            string `json:",omitempty"`
		Interval                       string
		Timeout                        string
		DeregisterCriticalServiceAfter string
	}
	kvJSON struct {
		LockIndex   uint64
		Key         string
		Flags       uint64
		Value       []byte
		Session     string `json:",omitempty"`
		CreateIndex uint64
		ModifyIndex uint64
	}
)

func (s *Server) healthService(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Has("filter") {
		http.Error(w, "consultest: ?filter is not implemented", http.StatusBadRequest)
		return
	}
	passing := false
	if q.Has("passing") {
		v := q.Get("passing")
		if v == "" {
			passing = true
		} else {
			b, err := strconv.ParseBool(v)
			if err != nil {
				http.Error(w, "Failed to parse passing", http.StatusBadRequest)
				return
			}
			passing = b
		}
	}
	dc, ok := s.checkDC(w, r)
	if !ok {
		return
	}
	index, wait, ok := s.blockParams(w, r)
	if !ok {
		return
	}
	if !s.block(r, dc, index, wait, func() uint64 { return s.dcs[dc].catalogIdx }) {
		return
	}
	if _, ok := s.checkDC(w, r); !ok {
		return // the datacenter stopped answering while the query blocked
	}
	name, tags := r.PathValue("name"), q["tag"]

	s.mu.Lock()
	out := []healthEntry{}
	for _, in := range s.sortedInstancesLocked() {
		if in.Service != name || in.Datacenter != dc || !hasAll(in.Tags, tags) {
			continue
		}
		e := s.entryLocked(in)
		if passing && !allPassing(e.Checks) {
			continue
		}
		out = append(out, e)
	}
	s.writeMetaLocked(w, r, s.dcs[dc].catalogIdx)
	s.mu.Unlock()
	writeJSON(w, out)
}

func (s *Server) sortedInstancesLocked() []*storedInstance {
	out := make([]*storedInstance, 0, len(s.insts))
	for _, in := range s.insts {
		out = append(out, in)
	}
	slices.SortFunc(out, func(a, b *storedInstance) int {
		if c := strings.Compare(a.Node, b.Node); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

func (s *Server) entryLocked(in *storedInstance) healthEntry {
	n := s.nodes[in.Datacenter+"/"+in.Node]
	tags := in.Tags
	if tags == nil {
		tags = []string{}
	}
	e := healthEntry{
		Node: nodeJSON{
			ID:              nodeID(n.name),
			Node:            n.name,
			Address:         n.address,
			Datacenter:      n.dc,
			TaggedAddresses: map[string]string{"lan": n.address, "lan_ipv4": n.address, "wan": n.address, "wan_ipv4": n.address},
			Meta:            nonNil(n.meta),
			CreateIndex:     n.createIdx,
			ModifyIndex:     n.modIdx,
		},
		Service: serviceJSON{
			ID:          in.ID,
			Service:     in.Service,
			Tags:        tags,
			Address:     in.Address,
			Meta:        nonNil(in.Meta),
			Port:        in.Port,
			Weights:     in.Weights,
			CreateIndex: in.createIdx,
			ModifyIndex: in.modIdx,
		},
	}
	for _, c := range in.Checks {
		e.Checks = append(e.Checks, checkJSON{
			Node:        n.name,
			CheckID:     c.ID,
			Name:        c.Name,
			Status:      c.Status,
			Output:      c.Output,
			ServiceID:   in.ID,
			ServiceName: in.Service,
			ServiceTags: tags,
			Type:        checkType(c),
			Definition: definitionJSON{
				HTTP:                           c.HTTP,
				TCP:                            c.TCP,
				Interval:                       orZero(c.Interval),
				Timeout:                        orZero(c.Timeout),
				DeregisterCriticalServiceAfter: orZero(c.DeregisterCriticalServiceAfter),
			},
			CreateIndex: in.createIdx,
			ModifyIndex: in.modIdx,
		})
	}
	e.Checks = append(e.Checks, checkJSON{
		Node:        n.name,
		CheckID:     "serfHealth",
		Name:        "Serf Health Status",
		Status:      n.serfStatus,
		Output:      "Agent alive and reachable",
		ServiceTags: []string{},
		Definition:  definitionJSON{Interval: "0s", Timeout: "0s", DeregisterCriticalServiceAfter: "0s"},
		CreateIndex: n.createIdx,
		ModifyIndex: n.modIdx,
	})
	return e
}

func checkType(c Check) string {
	switch {
	case c.HTTP != "":
		return "http"
	case c.TCP != "":
		return "tcp"
	default:
		return ""
	}
}

func orZero(d string) string {
	if d == "" {
		return "0s"
	}
	return d
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

func hasAll(have, want []string) bool {
	for _, t := range want {
		if !slices.Contains(have, t) {
			return false
		}
	}
	return true
}

func allPassing(checks []checkJSON) bool {
	for _, c := range checks {
		if c.Status != "passing" {
			return false
		}
	}
	return true
}

func (s *Server) kvGet(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	key := r.PathValue("key")
	list := q.Has("recurse") || q.Has("keys")
	if key == "" && !list {
		http.Error(w, "Missing key name", http.StatusBadRequest)
		return
	}
	dc, ok := s.checkLocalDC(w, r)
	if !ok {
		return
	}
	index, wait, ok := s.blockParams(w, r)
	if !ok {
		return
	}
	view := func() uint64 {
		if e := s.kv[key]; e != nil && !list {
			return e.modIdx
		}
		// A missing key, and a folder (recurse, keys), report the KV
		// table's index: it covers every key and deletion below the
		// prefix, so a blocked listing wakes on any of them (and, like
		// Consul's, sometimes on nothing that concerns it).
		return s.kvIdx
	}
	if !s.block(r, dc, index, wait, view) {
		return
	}
	if list {
		s.kvList(w, r, key, view)
		return
	}
	s.mu.Lock()
	e := s.kv[key]
	s.writeMetaLocked(w, r, view())
	var out []kvJSON
	var raw []byte
	if e != nil {
		raw = slices.Clone(e.value)
		out = []kvJSON{{LockIndex: e.lockIdx, Key: key, Flags: e.flags, Value: raw, Session: e.session, CreateIndex: e.createIdx, ModifyIndex: e.modIdx}}
	}
	s.mu.Unlock()
	if e == nil {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	if q.Has("raw") {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write(raw)
		return
	}
	writeJSON(w, out)
}

// kvList serves GET /v1/kv/<prefix>?recurse (every entry below the
// prefix, sorted by key) and ?keys (their names; with ?separator=S a name
// is cut after the first S past the prefix, and repeats dropped). Nothing
// below the prefix answers 404, as Consul does.
func (s *Server) kvList(w http.ResponseWriter, r *http.Request, prefix string, view func() uint64) {
	q := r.URL.Query()
	sep := q.Get("separator")
	s.mu.Lock()
	var names []string
	for k := range s.kv {
		if strings.HasPrefix(k, prefix) {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	s.writeMetaLocked(w, r, view())
	var entries []kvJSON
	var keys []string
	for _, k := range names {
		if q.Has("keys") {
			if sep != "" {
				if i := strings.Index(k[len(prefix):], sep); i >= 0 {
					k = k[:len(prefix)+i+len(sep)]
				}
			}
			if len(keys) == 0 || keys[len(keys)-1] != k {
				keys = append(keys, k)
			}
			continue
		}
		e := s.kv[k]
		entries = append(entries, kvJSON{LockIndex: e.lockIdx, Key: k, Flags: e.flags, Value: slices.Clone(e.value), Session: e.session, CreateIndex: e.createIdx, ModifyIndex: e.modIdx})
	}
	s.mu.Unlock()
	if len(names) == 0 {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	if q.Has("keys") {
		writeJSON(w, keys)
		return
	}
	writeJSON(w, entries)
}

func (s *Server) kvPut(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("key")
	if key == "" {
		http.Error(w, "Missing key name", http.StatusBadRequest)
		return
	}
	q := r.URL.Query()
	if n := countFlags(q, "cas", "acquire", "release"); n > 1 {
		http.Error(w, "Conflicting flags: "+q.Encode(), http.StatusBadRequest)
		return
	}
	if _, ok := s.checkLocalDC(w, r); !ok {
		return
	}
	var flags uint64
	if v := q.Get("flags"); v != "" {
		f, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			http.Error(w, "Invalid flags", http.StatusBadRequest)
			return
		}
		flags = f
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxKVValue+1))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if len(body) > maxKVValue {
		http.Error(w, fmt.Sprintf("Request body(%d bytes) too large, max size: %d bytes.", len(body), maxKVValue), http.StatusRequestEntityTooLarge)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if q.Has("acquire") || q.Has("release") {
		var (
			ok  bool
			err error
		)
		if q.Has("acquire") {
			ok, err = s.acquireLocked(key, q.Get("acquire"), body, flags)
		} else {
			ok, err = s.releaseLocked(key, q.Get("release"), body, flags)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		writeJSON(w, ok)
		return
	}
	if v := q.Get("cas"); v != "" {
		cas, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			http.Error(w, "Invalid cas", http.StatusBadRequest)
			return
		}
		e := s.kv[key]
		if (cas == 0 && e != nil) || (cas != 0 && (e == nil || e.modIdx != cas)) {
			writeJSON(w, false)
			return
		}
	}
	s.putKVLocked(key, body, flags)
	writeJSON(w, true)
}

// countFlags counts the query parameters present among names.
func countFlags(q url.Values, names ...string) int {
	n := 0
	for _, f := range names {
		if q.Has(f) {
			n++
		}
	}
	return n
}

func (s *Server) kvDelete(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("key")
	if _, ok := s.checkLocalDC(w, r); !ok {
		return
	}
	q := r.URL.Query()
	s.mu.Lock()
	defer s.mu.Unlock()
	if q.Has("cas") {
		cas, err := strconv.ParseUint(q.Get("cas"), 10, 64)
		if err != nil {
			http.Error(w, "Invalid cas", http.StatusBadRequest)
			return
		}
		// Consul: a missing key is a successful no-op; a changed one is not deleted.
		if e := s.kv[key]; e != nil && e.modIdx != cas {
			writeJSON(w, false)
			return
		}
	}
	if _, ok := s.kv[key]; ok {
		delete(s.kv, key)
		s.bumpLocked(&s.kvIdx)
	}
	writeJSON(w, true)
}

func (s *Server) agentRegister(w http.ResponseWriter, r *http.Request) {
	var reg Registration
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	if err := dec.Decode(&reg); err != nil {
		http.Error(w, "Request decode failed: "+err.Error(), http.StatusBadRequest)
		return
	}
	reg.ReplaceExistingChecks = r.URL.Query().Get("replace-existing-checks") == "true"
	if reg.Name == "" {
		http.Error(w, "Missing service name", http.StatusBadRequest)
		return
	}
	if reg.ID == "" {
		reg.ID = reg.Name
	}
	if err := validateMeta(reg.Meta); err != nil {
		http.Error(w, "Invalid Service Meta: "+err.Error(), http.StatusBadRequest)
		return
	}
	defs := reg.Checks
	if reg.Check != nil {
		defs = append([]*CheckDefinition{reg.Check}, defs...)
	}
	in := Instance{
		Datacenter:  s.opts.Datacenter,
		Node:        s.opts.NodeName,
		NodeAddress: s.opts.NodeAddress,
		ID:          reg.ID,
		Service:     reg.Name,
		Address:     reg.Address,
		Port:        reg.Port,
		Tags:        slices.Clone(reg.Tags),
		Meta:        maps.Clone(reg.Meta),
		Weights:     Weights{Passing: 1, Warning: 1},
		Checks:      []Check{},
	}
	if reg.Weights != nil {
		in.Weights = *reg.Weights
	}
	for i, d := range defs {
		if d == nil {
			continue
		}
		if msg := validateCheck(d); msg != "" {
			http.Error(w, msg, http.StatusBadRequest)
			return
		}
		c := Check{
			ID: d.CheckID, Name: d.Name, Status: d.Status, HTTP: d.HTTP, TCP: d.TCP,
			Interval: d.Interval, Timeout: d.Timeout, DeregisterCriticalServiceAfter: d.DeregisterCriticalServiceAfter,
		}
		if c.ID == "" {
			c.ID = "service:" + reg.ID
			if len(defs) > 1 {
				c.ID = fmt.Sprintf("service:%s:%d", reg.ID, i+1)
			}
		}
		if c.Name == "" {
			c.Name = fmt.Sprintf("Service '%s' check", reg.Name)
		}
		if c.Status == "" {
			c.Status = "critical" // Consul's initial state for a new check
		}
		in.Checks = append(in.Checks, c)
	}
	s.mu.Lock()
	s.regs[reg.ID] = reg
	s.addLocked(in)
	if s.opts.RunChecks {
		s.startChecksLocked(in)
	}
	s.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

func validateMeta(m map[string]string) error {
	if len(m) > 64 {
		return fmt.Errorf("Node metadata cannot contain more than 64 key/value pairs")
	}
	for k, v := range m {
		switch {
		case k == "":
			return fmt.Errorf("Key cannot be blank")
		case !metaKeyRE.MatchString(k):
			return fmt.Errorf("Key contains invalid characters")
		case len(k) > 128:
			return fmt.Errorf("Key is too long (limit: 128 characters)")
		case strings.HasPrefix(k, "consul-"):
			return fmt.Errorf("Key prefix 'consul-' is reserved for internal use")
		case len(v) > 512:
			return fmt.Errorf("Value is too long (limit: 512 characters)")
		}
	}
	return nil
}

// validateCheck applies Consul's basic check rules; it returns the error
// text or "".
func validateCheck(d *CheckDefinition) string {
	if d.HTTP == "" && d.TCP == "" && d.TTL == "" {
		return "consultest: only HTTP, TCP and TTL checks are implemented"
	}
	if d.HTTP != "" || d.TCP != "" {
		iv, err := time.ParseDuration(d.Interval)
		if err != nil || iv <= 0 {
			return "Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP or GRPC checks"
		}
	}
	for _, v := range []string{d.Timeout, d.DeregisterCriticalServiceAfter, d.TTL} {
		if v == "" {
			continue
		}
		if _, err := time.ParseDuration(v); err != nil {
			return fmt.Sprintf("Invalid duration %q", v)
		}
	}
	switch d.Status {
	case "", "passing", "warning", "critical":
	default:
		return fmt.Sprintf("Invalid check status %q", d.Status)
	}
	return ""
}

func (s *Server) agentDeregister(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.regs[id]; !ok {
		http.Error(w, fmt.Sprintf("Unknown service ID %q. Ensure that the service ID is passed, not the service name.", id), http.StatusNotFound)
		return
	}
	delete(s.regs, id)
	s.stopChecksLocked(id)
	if in, ok := s.insts[id]; ok {
		delete(s.insts, id)
		s.bumpLocked(&s.dcLocked(in.Datacenter).catalogIdx)
	}
	w.WriteHeader(http.StatusOK)
}

func (s *Server) statusLeader(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	leader := ""
	if s.knownLeader {
		leader = "127.0.0.1:8300"
	}
	s.mu.Unlock()
	writeJSON(w, leader)
}
