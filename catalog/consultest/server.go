package consultest

import (
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options configures a Server. Zero values take Consul-like defaults.
type Options struct {
	Datacenter  string        // the agent's datacenter; default "dc1"
	NodeName    string        // the agent's node, where registered services live; default "agent-1"
	NodeAddress string        // the agent node's address; default "127.0.0.1"
	DefaultWait time.Duration // blocking wait when ?wait= is absent; default 5m
	MaxWait     time.Duration // cap on ?wait=; default 10m
	// Token, when set, is the only accepted ACL token: a request without it
	// (in X-Consul-Token, or ?token= which Call.TokenInQuery flags) gets
	// 403 "ACL not found".
	Token string
	// TLS serves HTTPS with httptest's certificate for 127.0.0.1 (see
	// CAPEM). ClientCAs, with TLS, requires client certificates they sign.
	TLS       bool
	ClientCAs *x509.CertPool
	// MinSessionTTL is the shortest session TTL accepted, like the
	// servers' session_ttl_min; default 10s, Consul's. Tests that want
	// sessions to lapse quickly lower it.
	MinSessionTTL time.Duration
	// RunChecks makes the agent run the HTTP and TCP checks of services
	// registered through /v1/agent/service/register (and of instances
	// added with AddInstance whose checks name an HTTP URL or TCP address
	// and an interval), as a real agent does (checks.go): without it they
	// keep their initial state.
	RunChecks bool
	// Addr is the address to listen on; default 127.0.0.1:0 (any free
	// port). `meridian demo -consul` listens on 127.0.0.1:8500.
	Addr string
}

// Instance is a service instance in the test catalog. AddInstance fills the
// defaults noted on each field.
type Instance struct {
	Datacenter  string // default: Options.Datacenter
	Node        string // default: "node-" + ID
	NodeAddress string // default: "127.0.0.1"
	NodeMeta    map[string]string
	ID          string // service ID; required and unique within the server
	Service     string // service name; required
	Address     string // may be empty: clients then use NodeAddress
	Port        int
	Tags        []string
	Meta        map[string]string
	Weights     Weights // zero: {Passing: 1, Warning: 1}
	// Checks are the service's checks; nil means one passing check
	// "service:<ID>". Every node also has a "serfHealth" check (passing
	// unless changed with SetCheck).
	Checks []Check
}

// Weights are Consul's service weights.
type Weights struct{ Passing, Warning int }

// Check is one service check.
type Check struct {
	ID     string // CheckID; default "service:<instance ID>" (plus ":<n>" when several)
	Name   string
	Status string // passing | warning | critical | maintenance; default passing
	Output string
	// Definition fields, shown in the answer's Definition object.
	HTTP, TCP, Interval, Timeout, DeregisterCriticalServiceAfter string
}

// Registration is what a client sent to /v1/agent/service/register.
type Registration struct {
	ID                    string
	Name                  string
	Tags                  []string
	Port                  int
	Address               string
	Meta                  map[string]string
	Weights               *Weights
	Check                 *CheckDefinition
	Checks                []*CheckDefinition
	ReplaceExistingChecks bool `json:"-"` // the ?replace-existing-checks flag
}

// CheckDefinition is a check in a Registration.
type CheckDefinition struct {
	CheckID                        string
	Name                           string
	HTTP                           string
	Method                         string
	TCP                            string
	TTL                            string
	Interval                       string
	Timeout                        string
	DeregisterCriticalServiceAfter string
	Status                         string
	Notes                          string
}

// Fault makes matching requests fail instead of being served.
type Fault struct {
	Code  int    // HTTP status, e.g. 500 or 403
	Body  string // default: Consul's text for the code
	Count int    // how many requests fail; 0 means until ClearFaults
	Path  string // only requests whose path has this prefix; "" means all
	// EchoToken appends the request's X-Consul-Token to the body, like a
	// careless proxy would, to test that clients redact it.
	EchoToken bool
}

// Call is one observed request.
type Call struct {
	Method       string
	Path         string
	Query        url.Values
	Token        string // the X-Consul-Token header
	TokenInQuery bool   // the request used ?token= (leaks into access logs)
	Time         time.Time
}

// maxHistory bounds the stored calls; counts are kept for all.
const maxHistory = 4096

// Server is a running test Consul. The zero value is not usable; call New.
type Server struct {
	// URL is the base URL ("http://127.0.0.1:port"); Addr is "127.0.0.1:port".
	// Both stay the same across Stop and Restart.
	URL  string
	Addr string

	opts     Options
	handler  http.Handler
	inFlight atomic.Int64

	srvMu sync.Mutex // serialises Stop, Restart and Close
	hs    *httptest.Server

	mu          sync.Mutex
	quit        chan struct{} // closed by Stop to release blocked requests
	wake        chan struct{} // closed and replaced on every index bump
	index       uint64        // raft index
	kvIdx       uint64
	sessionIdx  uint64
	dcs         map[string]*dcState // by name; each has its own catalog (datacenters.go)
	nodes       map[string]*node    // "dc/node"
	insts       map[string]*storedInstance
	kv          map[string]*kvEntry
	sessions    map[string]*session
	lockDelay   map[string]time.Time // key → end of its lock-delay
	regs        map[string]Registration
	knownLeader bool
	fault       *Fault
	hang        chan struct{} // non-nil while hanging
	hangPrefix  string
	calls       []Call
	callCounts  map[string]int
	checks      map[string]*checkRunner // RunChecks: by service ID (checks.go)
}

type node struct {
	dc, name, address string
	meta              map[string]string
	serfStatus        string
	createIdx, modIdx uint64
}

type storedInstance struct {
	Instance
	createIdx, modIdx uint64
}

type kvEntry struct {
	value             []byte
	flags             uint64
	createIdx, modIdx uint64
	session           string // the lock holder, "" when unlocked
	lockIdx           uint64
}

// TB is the part of testing.TB that New uses; *testing.T and *testing.B
// satisfy it. The package does not import testing, so that `meridian demo
// -consul` can run a Server without linking it.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
	Cleanup(func())
}

// New starts a server on 127.0.0.1 and stops it when the test ends.
func New(tb TB, opts Options) *Server {
	tb.Helper()
	s, err := Start(opts)
	if err != nil {
		tb.Fatalf("consultest: %v", err)
	}
	tb.Cleanup(s.Close)
	return s
}

// Start starts a server on 127.0.0.1; the caller must Close it.
func Start(opts Options) (*Server, error) {
	if opts.Datacenter == "" {
		opts.Datacenter = "dc1"
	}
	if opts.NodeName == "" {
		opts.NodeName = "agent-1"
	}
	if opts.NodeAddress == "" {
		opts.NodeAddress = "127.0.0.1"
	}
	if opts.DefaultWait <= 0 {
		opts.DefaultWait = 5 * time.Minute
	}
	if opts.MaxWait <= 0 {
		opts.MaxWait = 10 * time.Minute
	}
	if opts.MinSessionTTL <= 0 {
		opts.MinSessionTTL = 10 * time.Second
	}
	s := &Server{
		opts:        opts,
		wake:        make(chan struct{}),
		quit:        make(chan struct{}),
		index:       1,
		kvIdx:       1,
		sessionIdx:  1,
		dcs:         map[string]*dcState{opts.Datacenter: {catalogIdx: 1}},
		nodes:       map[string]*node{},
		insts:       map[string]*storedInstance{},
		kv:          map[string]*kvEntry{},
		sessions:    map[string]*session{},
		lockDelay:   map[string]time.Time{},
		regs:        map[string]Registration{},
		knownLeader: true,
		callCounts:  map[string]int{},
		checks:      map[string]*checkRunner{},
	}
	s.handler = s.routes()
	addr := opts.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	s.Addr = l.Addr().String()
	s.startLocked(l)
	s.URL = s.hs.URL
	return s, nil
}

func (s *Server) startLocked(l net.Listener) {
	hs := httptest.NewUnstartedServer(s.handler)
	hs.Listener.Close()
	hs.Listener = l
	// Handshake failures are expected in TLS tests; keep them out of the output.
	hs.Config.ErrorLog = log.New(io.Discard, "", 0)
	s.mu.Lock()
	s.quit = make(chan struct{})
	s.mu.Unlock()
	if s.opts.TLS {
		if s.opts.ClientCAs != nil {
			hs.TLS = &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: s.opts.ClientCAs}
		}
		hs.StartTLS()
	} else {
		hs.Start()
	}
	s.hs = hs
}

// CAPEM returns the PEM certificate a TLS server presents (nil without
// TLS), for a client's CA file.
func (s *Server) CAPEM() []byte {
	s.srvMu.Lock()
	defer s.srvMu.Unlock()
	if s.hs == nil || s.hs.TLS == nil {
		return nil
	}
	c := s.hs.Certificate()
	if c == nil {
		return nil
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// Stop takes the agent down: blocked requests are released, connections
// are closed, and the address refuses connections until Restart. State
// (catalog, KV, sessions, index) is kept, and session TTLs keep running,
// as they do on the servers.
func (s *Server) Stop() {
	s.srvMu.Lock()
	defer s.srvMu.Unlock()
	s.stopLocked()
}

func (s *Server) stopLocked() {
	if s.hs == nil {
		return
	}
	s.mu.Lock()
	close(s.quit)
	s.mu.Unlock()
	s.hs.CloseClientConnections()
	s.hs.Close()
	s.hs = nil
}

// Restart brings a stopped agent back on the same address.
func (s *Server) Restart() error {
	s.srvMu.Lock()
	defer s.srvMu.Unlock()
	if s.hs != nil {
		return errors.New("consultest: Restart: server is running")
	}
	var (
		l   net.Listener
		err error
	)
	for range 50 {
		if l, err = net.Listen("tcp", s.Addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond) // the port is briefly busy after Stop
	}
	if err != nil {
		return fmt.Errorf("consultest: Restart: %w", err)
	}
	s.startLocked(l)
	return nil
}

// Close stops the server for good. Sessions stop expiring.
func (s *Server) Close() {
	s.srvMu.Lock()
	defer s.srvMu.Unlock()
	s.stopLocked()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, se := range s.sessions {
		if se.timer != nil {
			se.timer.Stop()
		}
	}
	for id := range s.checks {
		s.stopChecksLocked(id)
	}
}

// bumpLocked advances the raft index, sets the given table index to it and
// wakes blocked queries.
func (s *Server) bumpLocked(table *uint64) uint64 {
	s.index++
	*table = s.index
	close(s.wake)
	s.wake = make(chan struct{})
	return s.index
}

// Index returns the current raft index.
func (s *Server) Index() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.index
}

// AddInstance adds or replaces (by ID) a service instance and bumps the
// catalog index.
func (s *Server) AddInstance(in Instance) {
	if in.ID == "" || in.Service == "" {
		panic("consultest: AddInstance needs ID and Service")
	}
	in = cloneInstance(in)
	if in.Datacenter == "" {
		in.Datacenter = s.opts.Datacenter
	}
	if in.Node == "" {
		in.Node = "node-" + in.ID
	}
	if in.NodeAddress == "" {
		in.NodeAddress = "127.0.0.1"
	}
	if in.Weights == (Weights{}) {
		in.Weights = Weights{Passing: 1, Warning: 1}
	}
	if in.Checks == nil {
		in.Checks = []Check{{}}
	}
	for i := range in.Checks {
		c := &in.Checks[i]
		if c.ID == "" {
			c.ID = "service:" + in.ID
			if len(in.Checks) > 1 {
				c.ID = fmt.Sprintf("service:%s:%d", in.ID, i+1)
			}
		}
		if c.Name == "" {
			c.Name = fmt.Sprintf("Service '%s' check", in.Service)
		}
		if c.Status == "" {
			c.Status = "passing"
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addLocked(in)
	if s.opts.RunChecks {
		s.startChecksLocked(in)
	}
}

func (s *Server) addLocked(in Instance) {
	idx := s.bumpLocked(&s.dcLocked(in.Datacenter).catalogIdx)
	nk := in.Datacenter + "/" + in.Node
	n := s.nodes[nk]
	if n == nil {
		n = &node{dc: in.Datacenter, name: in.Node, serfStatus: "passing", createIdx: idx}
		s.nodes[nk] = n
	}
	n.address, n.meta, n.modIdx = in.NodeAddress, in.NodeMeta, idx
	created := idx
	if old := s.insts[in.ID]; old != nil {
		created = old.createIdx
	}
	s.insts[in.ID] = &storedInstance{Instance: in, createIdx: created, modIdx: idx}
}

// RemoveInstance removes an instance; it reports whether it existed.
func (s *Server) RemoveInstance(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	in, ok := s.insts[id]
	if !ok {
		return false
	}
	s.stopChecksLocked(id)
	delete(s.insts, id)
	s.bumpLocked(&s.dcLocked(in.Datacenter).catalogIdx)
	return true
}

// SetCheck sets one check's status on instance id. The check ID
// "serfHealth" sets the health of the instance's node (every instance on
// it); critical invalidates the node's sessions bound to it, as in Consul.
func (s *Server) SetCheck(id, checkID, status string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	in := s.insts[id]
	if in == nil {
		return fmt.Errorf("consultest: no instance %q", id)
	}
	if checkID == "serfHealth" {
		s.nodes[in.Datacenter+"/"+in.Node].serfStatus = status
		s.bumpLocked(&s.dcLocked(in.Datacenter).catalogIdx)
		if status == "critical" {
			s.invalidateNodeLocked(in.Datacenter, in.Node)
		}
		return nil
	}
	for i := range in.Checks {
		if in.Checks[i].ID == checkID {
			in.Checks[i].Status = status
			in.modIdx = s.bumpLocked(&s.dcLocked(in.Datacenter).catalogIdx)
			return nil
		}
	}
	return fmt.Errorf("consultest: instance %q has no check %q", id, checkID)
}

// SetStatus sets every service check of instance id to status.
func (s *Server) SetStatus(id, status string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	in := s.insts[id]
	if in == nil {
		return fmt.Errorf("consultest: no instance %q", id)
	}
	for i := range in.Checks {
		in.Checks[i].Status = status
	}
	in.modIdx = s.bumpLocked(&s.dcLocked(in.Datacenter).catalogIdx)
	return nil
}

// Touch bumps the agent datacenter's catalog index without changing any
// content, like an idempotent write or a change to an unrelated service.
func (s *Server) Touch() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bumpLocked(&s.dcLocked(s.opts.Datacenter).catalogIdx)
}

// ResetIndex makes the index go backwards to to (at least 1), as after a
// snapshot restore: every index above it is lowered to it. Blocked queries
// are woken and keep blocking while their ?index is not exceeded.
func (s *Server) ResetIndex(to uint64) {
	to = max(to, 1)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.index = to
	for _, d := range s.dcs {
		d.catalogIdx = min(d.catalogIdx, to)
	}
	s.kvIdx = min(s.kvIdx, to)
	s.sessionIdx = min(s.sessionIdx, to)
	for _, n := range s.nodes {
		n.createIdx, n.modIdx = min(n.createIdx, to), min(n.modIdx, to)
	}
	for _, in := range s.insts {
		in.createIdx, in.modIdx = min(in.createIdx, to), min(in.modIdx, to)
	}
	for _, e := range s.kv {
		e.createIdx, e.modIdx = min(e.createIdx, to), min(e.modIdx, to)
	}
	for _, se := range s.sessions {
		se.createIdx = min(se.createIdx, to)
	}
	close(s.wake)
	s.wake = make(chan struct{})
}

// AddDatacenter makes ?dc=<dc> valid even before it has instances.
func (s *Server) AddDatacenter(dc string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dcLocked(dc)
}

// SetKnownLeader sets X-Consul-KnownLeader (and /v1/status/leader) as if
// the cluster lost or regained its leader.
func (s *Server) SetKnownLeader(known bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.knownLeader = known
}

// PutKV writes a key, bumping its ModifyIndex. Like a plain PUT, it keeps
// the key's lock (locks are advisory).
func (s *Server) PutKV(key string, value []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.putKVLocked(key, value, 0)
}

func (s *Server) putKVLocked(key string, value []byte, flags uint64) {
	idx := s.bumpLocked(&s.kvIdx)
	e := s.kv[key]
	if e == nil {
		e = &kvEntry{createIdx: idx}
		s.kv[key] = e
	}
	e.value, e.flags, e.modIdx = slices.Clone(value), flags, idx
}

// DeleteKV deletes a key; it reports whether it existed.
func (s *Server) DeleteKV(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.kv[key]; !ok {
		return false
	}
	delete(s.kv, key)
	s.bumpLocked(&s.kvIdx)
	return true
}

// KV returns a key's value.
func (s *Server) KV(key string) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.kv[key]
	if !ok {
		return nil, false
	}
	return slices.Clone(e.value), true
}

// Registrations returns the services registered through the agent
// endpoint, by service ID.
func (s *Server) Registrations() map[string]Registration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.regs)
}

// Fail makes matching requests answer f.Code until f.Count requests have
// failed (or until ClearFaults when Count is 0). It replaces any earlier
// fault.
func (s *Server) Fail(f Fault) {
	if f.Body == "" {
		switch f.Code {
		case http.StatusForbidden:
			f.Body = "ACL not found"
		case http.StatusInternalServerError:
			f.Body = "rpc error making call: No cluster leader"
		default:
			f.Body = http.StatusText(f.Code)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fault = &f
}

// ClearFaults ends a Fail.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fault = nil
}

// Hang makes requests whose path starts with pathPrefix ("" for all) wait
// without answering until Unhang, Stop, or the request's context ends.
func (s *Server) Hang(pathPrefix string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hang == nil {
		s.hang = make(chan struct{})
	}
	s.hangPrefix = pathPrefix
}

// Unhang releases hung requests; they are then served normally.
func (s *Server) Unhang() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hang != nil {
		close(s.hang)
		s.hang = nil
	}
}

// Calls counts the requests whose path starts with pathPrefix.
func (s *Server) Calls(pathPrefix string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for p, c := range s.callCounts {
		if strings.HasPrefix(p, pathPrefix) {
			n += c
		}
	}
	return n
}

// LastCall returns the latest request whose path starts with pathPrefix.
func (s *Server) LastCall(pathPrefix string) (Call, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := len(s.calls) - 1; i >= 0; i-- {
		if strings.HasPrefix(s.calls[i].Path, pathPrefix) {
			return s.calls[i], true
		}
	}
	return Call{}, false
}

// History returns the most recent requests (up to 4096), oldest first.
func (s *Server) History() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

// InFlight returns the number of requests being handled right now
// (blocked, hung or in progress).
func (s *Server) InFlight() int { return int(s.inFlight.Load()) }

func cloneInstance(in Instance) Instance {
	in.NodeMeta = maps.Clone(in.NodeMeta)
	in.Tags = slices.Clone(in.Tags)
	in.Meta = maps.Clone(in.Meta)
	in.Checks = slices.Clone(in.Checks)
	return in
}

// nodeID derives a stable UUID-shaped node ID from the node name.
func nodeID(name string) string {
	h := sha1.Sum([]byte(name))
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}
