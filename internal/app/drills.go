package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/meridian-lb/meridian/health"
	"github.com/meridian-lb/meridian/internal/audit"
	"github.com/meridian-lb/meridian/routing"
)

// Failover drills and the admin side of failover guardrails.
//
// A drill drains every endpoint of one pool of a service, or of the
// service's pools in one region, for a while, through the health engine's
// operator overrides (source "drill:ID", so that restoring ends only the
// drill's own overrides and never an operator's), then restores them. It
// measures how long HTTP and DNS take to stop sending to the target and to
// come back after, from the decisions the proxy and DNS make: it polls
// routing.Table.Serving, which runs the proxy's pick and DNS steering over
// every pool order a client can get, on the live table, without taking a
// weighted slot or a rotation. Polling decisions rather than counting
// traffic per pool measures without traffic (a drill at a quiet hour, or
// in a test), at a fixed resolution (drillPoll), and without mistaking a
// quiet minute for a drained pool; telemetry's per-pool numbers are
// one-second ticks. What decisions cannot show is reported beside: the
// HTTP requests still in flight on the target when it was drained and how
// long they took to finish, and the DNS TTL resolvers may cache an answer
// for.
//
// One drill runs per service at a time. A drill whose drain would break a
// failover guard is refused (409) unless forced; refused drills are kept
// in the results too. The last maxDrills results are kept in memory.
// Every start, refusal, abort and end goes to the audit log. A drill ends
// early on DELETE and when the App stops: its overrides are released
// either way before Run returns.

const (
	maxDrills = 100
	// drillPoll is how often a drill reads the decisions.
	drillPoll = time.Millisecond
	// drillRecoverWait bounds the wait for traffic to come back after a
	// drill; a target that does not is reported as not recovered.
	drillRecoverWait = 30 * time.Second
	// maxDrillDuration bounds a drill's duration.
	maxDrillDuration = time.Hour
	// defaultDrillDuration is a drill's duration when none is given.
	defaultDrillDuration = 30 * time.Second
)

// Drill states.
const (
	drillRunning    = "running"    // the target is drained
	drillRecovering = "recovering" // restored; waiting for traffic to come back
	drillDone       = "done"
	drillAborted    = "aborted"
	drillRefused    = "refused"
)

// drillHealth is what drills need of the health engine.
type drillHealth interface {
	OverrideAs(pool, address string, a health.Action, source string) error
	ReleaseOverride(pool, address, source string) (bool, error)
}

// DrillResult is one drill, as GET /api/v1/drills shows it.
type DrillResult struct {
	ID      string `json:"id"`
	Service string `json:"service"`
	// Pool or Region is the target; Pools are the service's pools it
	// covers.
	Pool   string   `json:"pool,omitempty"`
	Region string   `json:"region,omitempty"`
	Pools  []string `json:"pools"`
	// Endpoints were drained ("pool/address"); Skipped were drained or
	// forced down by an operator already and left alone.
	Endpoints []string `json:"endpoints"`
	Skipped   []string `json:"skipped,omitempty"`
	Duration  string   `json:"duration"`
	State     string   `json:"state"`
	// Start is when the drain was applied, End when it was restored (zero
	// while running), Finished when the drill stopped measuring.
	Start    time.Time `json:"start"`
	End      time.Time `json:"end,omitzero"`
	Finished time.Time `json:"finished,omitzero"`
	// GuardRefused says a failover guard refused the drill; Forced that it
	// ran past one (?force=true). Guard lists the guards it would break.
	GuardRefused bool                  `json:"guard_refused"`
	Forced       bool                  `json:"forced,omitempty"`
	Guard        []routing.GuardBreach `json:"guard,omitempty"`
	HTTP         DrillLayer            `json:"http"`
	DNS          DrillLayer            `json:"dns"`
	// Token and Client started it.
	Token  string `json:"token,omitempty"`
	Client string `json:"client,omitempty"`
	// Aborted says why the drill ended early.
	Aborted string   `json:"aborted,omitempty"`
	Notes   []string `json:"notes,omitempty"`
}

// DrillLayer is what one layer (HTTP or DNS) did during a drill.
type DrillLayer struct {
	// Used: the service takes this layer's traffic (HTTP: a route, split
	// arm or mirror names it; DNS: a steered record does).
	Used bool `json:"used"`
	// ServedBefore: the target was serving this layer's traffic for some
	// client when the drill started. A target that was not (the backup
	// pool of a failover service) has nothing to drain or recover.
	ServedBefore bool `json:"served_before"`
	// TimeToDrain is from the drain's start until no decision sent to the
	// target; TimeToRecover from the restore until one did again.
	TimeToDrain     string    `json:"time_to_drain,omitempty"`
	TimeToDrainNS   int64     `json:"time_to_drain_ns,omitempty"`
	DrainedAt       time.Time `json:"drained_at,omitzero"`
	TimeToRecover   string    `json:"time_to_recover,omitempty"`
	TimeToRecoverNS int64     `json:"time_to_recover_ns,omitempty"`
	RecoveredAt     time.Time `json:"recovered_at,omitzero"`
	// HTTP: requests in flight on the target's endpoints when it was
	// drained, and the time from the start until none was.
	InFlightAtDrain int64  `json:"in_flight_at_drain,omitempty"`
	TimeToIdle      string `json:"time_to_idle,omitempty"`
	TimeToIdleNS    int64  `json:"time_to_idle_ns,omitempty"`
	// TTL (DNS): the longest TTL of the service's steered records, for
	// which resolvers may keep answering from their cache.
	TTL uint32 `json:"ttl,omitempty"`
}

func setDur(s *string, ns *int64, d time.Duration) {
	d = max(d, time.Nanosecond) // measured: never reported as "not measured"
	*s, *ns = d.String(), int64(d)
}

// drill is one drill's live state.
type drill struct {
	id      string
	source  string // the health override source, "drill:ID"
	dur     time.Duration
	targets map[string]bool // the target's pools
	eps     [][2]string     // pool, address drained
	cancel  context.CancelFunc
	// restored is closed once the overrides are released, done once the
	// drill stopped measuring.
	restored, done chan struct{}
	once           sync.Once

	mu  sync.Mutex
	res DrillResult
}

func (d *drill) result() DrillResult {
	d.mu.Lock()
	defer d.mu.Unlock()
	r := d.res
	r.Pools, r.Endpoints, r.Skipped, r.Notes = slices.Clone(r.Pools), slices.Clone(r.Endpoints), slices.Clone(r.Skipped), slices.Clone(r.Notes)
	return r
}

func (d *drill) update(f func(*DrillResult)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	f(&d.res)
}

// drills runs failover drills and keeps their results.
type drills struct {
	live   *routing.Live
	health drillHealth
	guards *routing.Guards
	audit  *audit.Log // nil: not recorded
	logger *zap.Logger

	mu      sync.Mutex
	ctx     context.Context // set by Run; nil before, done when the App stops
	closed  bool
	seq     int
	list    []*drill          // oldest first, at most maxDrills
	running map[string]*drill // by service
	wg      sync.WaitGroup
}

func newDrills(live *routing.Live, h drillHealth, g *routing.Guards, log *audit.Log, logger *zap.Logger) *drills {
	return &drills{live: live, health: h, guards: g, audit: log, logger: logger, running: map[string]*drill{}}
}

// Run lets drills start until ctx ends; then it aborts the running ones
// and returns once their endpoints are restored.
func (m *drills) Run(ctx context.Context) error {
	m.mu.Lock()
	m.ctx = ctx
	m.mu.Unlock()
	<-ctx.Done()
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	m.wg.Wait()
	return nil
}

// drillRequest is the POST /api/v1/drills body.
type drillRequest struct {
	Service  string `json:"service"`
	Pool     string `json:"pool"`
	Region   string `json:"region"`
	Duration string `json:"duration"`
	Force    bool   `json:"force"`
}

// drillError is an error answer: a message, and the drill when one was
// recorded (a refusal).
type drillError struct {
	Error string                `json:"error"`
	Guard []routing.GuardBreach `json:"guard,omitempty"`
	Drill *DrillResult          `json:"drill,omitempty"`
}

func writeJSONStatus(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// force reads ?force=true.
func force(r *http.Request) (bool, error) {
	v := r.URL.Query().Get("force")
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("force=%q: want true or false", v)
	}
	return b, nil
}

// drillRoutes serves /api/v1/drills.
func (a *admin) drillRoutes(mux *http.ServeMux) {
	mux.Handle("POST /api/v1/drills", a.auth(http.HandlerFunc(a.drillStart)))
	mux.Handle("GET /api/v1/drills", a.auth(http.HandlerFunc(a.drillList)))
	mux.Handle("GET /api/v1/drills/{id}", a.auth(http.HandlerFunc(a.drillGet)))
	mux.Handle("DELETE /api/v1/drills/{id}", a.auth(http.HandlerFunc(a.drillAbort)))
}

func (a *admin) drillList(w http.ResponseWriter, r *http.Request) {
	m := a.drills
	m.mu.Lock()
	list := slices.Clone(m.list)
	m.mu.Unlock()
	out := make([]DrillResult, 0, len(list))
	for i := len(list) - 1; i >= 0; i-- {
		out = append(out, list[i].result())
	}
	writeJSON(w, struct {
		Drills []DrillResult `json:"drills"`
	}{out})
}

func (m *drills) find(id string) *drill {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, d := range m.list {
		if d.id == id {
			return d
		}
	}
	return nil
}

func (a *admin) drillGet(w http.ResponseWriter, r *http.Request) {
	d := a.drills.find(r.PathValue("id"))
	if d == nil {
		writeJSONStatus(w, http.StatusNotFound, drillError{Error: fmt.Sprintf("no drill %q", r.PathValue("id"))})
		return
	}
	writeJSON(w, d.result())
}

// drillAbort ends a running drill early: its endpoints are restored
// before the answer, and it goes on measuring the recovery.
func (a *admin) drillAbort(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	d := a.drills.find(id)
	if d == nil {
		a.record(r, "drill-abort", id, "not found", "")
		writeJSONStatus(w, http.StatusNotFound, drillError{Error: fmt.Sprintf("no drill %q", id)})
		return
	}
	if st := d.result().State; st != drillRunning {
		a.record(r, "drill-abort", id, "conflict", "state "+st)
		res := d.result()
		writeJSONStatus(w, http.StatusConflict, drillError{Error: fmt.Sprintf("drill %s is %s, not running", id, st), Drill: &res})
		return
	}
	d.update(func(res *DrillResult) {
		if res.State == drillRunning && res.Aborted == "" {
			res.Aborted = "aborted through the admin API" + byToken(r)
		}
	})
	d.cancel()
	select {
	case <-d.restored:
	case <-time.After(10 * time.Second):
	case <-r.Context().Done():
	}
	a.record(r, "drill-abort", id, "ok", "endpoints restored")
	writeJSON(w, d.result())
}

func byToken(r *http.Request) string {
	if n := tokenName(r); n != "" {
		return " (token " + n + ")"
	}
	return ""
}

// drillStart validates a drill, checks the guards, drains the target and
// starts measuring: 201 with the drill; 400 for a bad request; 409 when a
// guard refuses it (recorded as a refused drill), when a drill runs on the
// service already, or when there is nothing to drain; 503 while Meridian
// is not running.
func (a *admin) drillStart(w http.ResponseWriter, r *http.Request) {
	m := a.drills
	var req drillRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	bad := func(target, msg string) {
		a.record(r, "drill", target, "bad request", msg)
		writeJSONStatus(w, http.StatusBadRequest, drillError{Error: msg})
	}
	if err := dec.Decode(&req); err != nil {
		bad("", "body: "+err.Error()+`: want {"service": S, "pool": P | "region": R, "duration": "30s"}`)
		return
	}
	target := "service " + req.Service
	if req.Pool != "" {
		target += " pool " + req.Pool
	}
	if req.Region != "" {
		target += " region " + req.Region
	}
	f, err := force(r)
	if err != nil {
		bad(target, err.Error())
		return
	}
	req.Force = req.Force || f
	dur := defaultDrillDuration
	if req.Duration != "" {
		if dur, err = time.ParseDuration(req.Duration); err != nil || dur <= 0 || dur > maxDrillDuration {
			bad(target, fmt.Sprintf("duration %q: want a duration above 0 and at most %s, such as 30s", req.Duration, maxDrillDuration))
			return
		}
	}
	t := m.live.Load()
	var svc *routing.Service
	if t != nil {
		svc = t.Services[req.Service]
	}
	switch {
	case req.Service == "":
		bad(target, "service: missing")
		return
	case svc == nil:
		bad(target, fmt.Sprintf("service %q: unknown service", req.Service))
		return
	case (req.Pool == "") == (req.Region == ""):
		bad(target, "name the target: pool or region, one of them")
		return
	}
	var pools []*routing.Pool
	for _, p := range svc.Pools {
		if (p.Name == req.Pool || req.Region != "" && p.Region == req.Region) && !slices.Contains(pools, p) {
			pools = append(pools, p)
		}
	}
	if len(pools) == 0 {
		if req.Pool != "" {
			bad(target, fmt.Sprintf("pool %q is not one of service %s's pools", req.Pool, req.Service))
		} else {
			bad(target, fmt.Sprintf("no pool of service %s is in region %q", req.Service, req.Region))
		}
		return
	}
	d := &drill{dur: dur, targets: map[string]bool{}, restored: make(chan struct{}), done: make(chan struct{})}
	res := DrillResult{Service: req.Service, Pool: req.Pool, Region: req.Region, Duration: dur.String(),
		Token: tokenName(r), Client: clientHost(r), Endpoints: []string{}}
	for _, p := range pools {
		d.targets[p.Name] = true
		res.Pools = append(res.Pools, p.Name)
		for _, e := range p.Endpoints {
			if e.Excluded() {
				res.Skipped = append(res.Skipped, p.Name+"/"+e.Address)
				continue
			}
			d.eps = append(d.eps, [2]string{p.Name, e.Address})
			res.Endpoints = append(res.Endpoints, p.Name+"/"+e.Address)
		}
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ctx == nil || m.closed {
		a.record(r, "drill", target, "unavailable", "Meridian is not running")
		writeJSONStatus(w, http.StatusServiceUnavailable, drillError{Error: "Meridian is not running"})
		return
	}
	if cur := m.running[req.Service]; cur != nil {
		msg := fmt.Sprintf("drill %s is running on service %s; one drill per service at a time", cur.id, req.Service)
		a.record(r, "drill", target, "conflict", msg)
		writeJSONStatus(w, http.StatusConflict, drillError{Error: msg})
		return
	}
	if len(d.eps) == 0 {
		msg := "nothing to drain: every endpoint of the target is drained or forced down already"
		a.record(r, "drill", target, "conflict", msg)
		writeJSONStatus(w, http.StatusConflict, drillError{Error: msg})
		return
	}
	drained := map[[2]string]bool{}
	for _, pa := range d.eps {
		drained[pa] = true
	}
	breaches := m.guards.Check(t, func(pool, addr string) bool { return drained[[2]string{pool, addr}] })
	m.seq++
	d.id = "d" + strconv.Itoa(m.seq)
	d.source = "drill:" + d.id
	res.ID = d.id
	res.Guard = breaches
	res.HTTP.ServedBefore, res.DNS.ServedBefore = m.servedBy(t, d, &res)
	res.Start = time.Now()
	if len(breaches) > 0 && !req.Force {
		res.State, res.GuardRefused, res.Finished = drillRefused, true, res.Start
		d.res = res
		close(d.restored)
		close(d.done)
		m.keep(d)
		reasons := breachReasons(breaches)
		a.record(r, "drill", target, "refused: guard", d.id+": "+reasons)
		writeJSONStatus(w, http.StatusConflict, drillError{Error: "refused: " + reasons + " (add ?force=true to run it anyway)", Guard: breaches, Drill: &res})
		return
	}
	res.Forced = len(breaches) > 0
	res.State = drillRunning
	d.res = res
	ctx, cancel := context.WithCancel(m.ctx)
	d.cancel = cancel
	// The drain: from here on, every way out of this drill restores.
	for _, pa := range d.eps {
		if err := m.health.OverrideAs(pa[0], pa[1], health.ActionDrain, d.source); err != nil {
			d.update(func(r *DrillResult) { r.Notes = append(r.Notes, "not drained: "+err.Error()) })
		}
	}
	m.running[req.Service] = d
	m.keep(d)
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer cancel()
		m.run(ctx, d)
	}()
	detail := fmt.Sprintf("%s: %d endpoint(s) drained for %s", d.id, len(d.eps), dur)
	if res.Forced {
		detail += "; forced past guard: " + breachReasons(breaches)
	}
	a.record(r, "drill", target, "ok", detail)
	w.Header().Set("Location", "/api/v1/drills/"+d.id)
	out := d.result()
	writeJSONStatus(w, http.StatusCreated, out)
}

// keep appends d to the results, dropping the oldest finished ones past
// maxDrills. Caller holds m.mu.
func (m *drills) keep(d *drill) {
	m.list = append(m.list, d)
	for i := 0; len(m.list) > maxDrills && i < len(m.list); {
		if st := m.list[i].result().State; st == drillRunning || st == drillRecovering {
			i++
			continue
		}
		m.list = slices.Delete(m.list, i, i+1)
	}
}

func breachReasons(bs []routing.GuardBreach) string {
	parts := make([]string, len(bs))
	for i, b := range bs {
		parts[i] = b.Reason
	}
	return strings.Join(parts, "; ")
}

func clientHost(r *http.Request) string {
	if h, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return h
	}
	return r.RemoteAddr
}

// servedBy reads, before the drain, whether each layer uses the service
// and sends to the target, and the DNS TTL.
func (m *drills) servedBy(t *routing.Table, d *drill, res *DrillResult) (httpServed, dnsServed bool) {
	h, dn := t.Serving(res.Service)
	res.HTTP.Used, res.DNS.Used = h != nil, dn != nil
	for _, z := range t.Zones {
		for _, st := range z.Steered {
			if st.Service == res.Service {
				res.DNS.TTL = max(res.DNS.TTL, st.TTL)
			}
		}
	}
	return d.hits(h), d.hits(dn)
}

// hits reports whether serving names one of the target's pools.
func (d *drill) hits(serving map[string]bool) bool {
	for p := range serving {
		if d.targets[p] {
			return true
		}
	}
	return false
}

// inFlight counts the requests in flight on the target's endpoints.
func (d *drill) inFlight(t *routing.Table) int64 {
	var n int64
	for name := range d.targets {
		if p := t.Pools[name]; p != nil {
			for _, e := range p.Endpoints {
				n += e.InFlight()
			}
		}
	}
	return n
}

// run measures the drain, waits out the drill (or its abort), restores,
// and measures the recovery.
func (m *drills) run(ctx context.Context, d *drill) {
	defer close(d.done)
	defer m.restore(d) // also on a panic: an aborted drill never leaves endpoints drained
	res := d.result()
	start := res.Start
	end := start.Add(d.dur)
	needHTTP, needDNS := res.HTTP.ServedBefore, res.DNS.ServedBefore
	idle := !needHTTP
	tick := time.NewTicker(drillPoll)
	defer tick.Stop()
	for {
		t := m.live.Load()
		now := time.Now()
		h, dn := t.Serving(res.Service)
		d.update(func(r *DrillResult) {
			if needHTTP && !d.hits(h) {
				needHTTP = false
				r.HTTP.DrainedAt = now
				setDur(&r.HTTP.TimeToDrain, &r.HTTP.TimeToDrainNS, now.Sub(start))
				r.HTTP.InFlightAtDrain = d.inFlight(t)
			}
			if needDNS && !d.hits(dn) {
				needDNS = false
				r.DNS.DrainedAt = now
				setDur(&r.DNS.TimeToDrain, &r.DNS.TimeToDrainNS, now.Sub(start))
			}
			if !idle && !needHTTP && d.inFlight(t) == 0 {
				idle = true
				setDur(&r.HTTP.TimeToIdle, &r.HTTP.TimeToIdleNS, now.Sub(start))
			}
		})
		if !needHTTP && !needDNS && idle {
			break
		}
		if !now.Before(end) {
			break
		}
		select {
		case <-ctx.Done():
		case <-tick.C:
			continue
		}
		break
	}
	d.update(func(r *DrillResult) {
		if needHTTP {
			r.Notes = append(r.Notes, "HTTP kept sending to the target for the whole drill")
		}
		if needDNS {
			r.Notes = append(r.Notes, "DNS kept answering with the target for the whole drill")
		}
		if !idle {
			r.Notes = append(r.Notes, "HTTP requests were still in flight on the target when the drill ended")
		}
	})
	select {
	case <-ctx.Done():
		// Ended early: DELETE said why already; else Meridian stops.
		d.update(func(r *DrillResult) {
			if r.Aborted == "" {
				r.Aborted = "Meridian stopped"
			}
		})
	case <-time.After(time.Until(end)):
	}
	m.restore(d)

	// The recovery, unless Meridian is stopping.
	res = d.result()
	restoredAt := res.End
	needHTTP, needDNS = res.HTTP.ServedBefore, res.DNS.ServedBefore
	m.mu.Lock()
	appCtx := m.ctx
	m.mu.Unlock()
	deadline := time.NewTimer(drillRecoverWait)
	defer deadline.Stop()
	tick.Reset(drillPoll)
	for appCtx.Err() == nil && (needHTTP || needDNS) {
		t := m.live.Load()
		now := time.Now()
		h, dn := t.Serving(res.Service)
		d.update(func(r *DrillResult) {
			if needHTTP && d.hits(h) {
				needHTTP = false
				r.HTTP.RecoveredAt = now
				setDur(&r.HTTP.TimeToRecover, &r.HTTP.TimeToRecoverNS, now.Sub(restoredAt))
			}
			if needDNS && d.hits(dn) {
				needDNS = false
				r.DNS.RecoveredAt = now
				setDur(&r.DNS.TimeToRecover, &r.DNS.TimeToRecoverNS, now.Sub(restoredAt))
			}
		})
		if !needHTTP && !needDNS {
			break
		}
		select {
		case <-appCtx.Done():
		case <-deadline.C:
			d.update(func(r *DrillResult) {
				r.Notes = append(r.Notes, fmt.Sprintf("traffic had not come back %s after the restore (health checks failing, or the service moved on)", drillRecoverWait))
			})
			needHTTP, needDNS = false, false
		case <-tick.C:
		}
	}
	now := time.Now()
	d.update(func(r *DrillResult) {
		r.Finished = now
		if r.Aborted != "" {
			r.State = drillAborted
		} else {
			r.State = drillDone
		}
		if appCtx.Err() != nil && (needHTTP || needDNS) {
			r.Notes = append(r.Notes, "recovery not measured: Meridian stopped")
		}
	})
	m.mu.Lock()
	if m.running[res.Service] == d {
		delete(m.running, res.Service)
	}
	m.mu.Unlock()
	m.auditEnd(d)
}

// restore releases the drill's overrides, once. An override someone set
// since (an operator's drain) stays.
func (m *drills) restore(d *drill) {
	d.once.Do(func() {
		var kept []string
		for _, pa := range d.eps {
			released, err := m.health.ReleaseOverride(pa[0], pa[1], d.source)
			switch {
			case err == nil && !released:
				kept = append(kept, pa[0]+"/"+pa[1])
			case err != nil:
				kept = append(kept, pa[0]+"/"+pa[1]+" (gone: "+err.Error()+")")
			}
		}
		now := time.Now()
		d.update(func(r *DrillResult) {
			r.End = now
			if r.State == drillRunning {
				r.State = drillRecovering
			}
			if len(kept) > 0 {
				r.Notes = append(r.Notes, "not restored by the drill, as someone overrode them since or they left the table: "+strings.Join(kept, ", "))
			}
		})
		close(d.restored)
		m.logger.Info("drill restored", zap.String("drill", d.id), zap.Int("endpoints", len(d.eps)))
	})
}

// auditEnd records a drill's end with what it measured.
func (m *drills) auditEnd(d *drill) {
	r := d.result()
	m.logger.Info("drill finished", zap.String("drill", r.ID), zap.String("service", r.Service), zap.String("state", r.State),
		zap.String("http_time_to_drain", r.HTTP.TimeToDrain), zap.String("dns_time_to_drain", r.DNS.TimeToDrain),
		zap.String("http_time_to_recover", r.HTTP.TimeToRecover), zap.String("dns_time_to_recover", r.DNS.TimeToRecover))
	if m.audit == nil {
		return
	}
	detail := fmt.Sprintf("%s %s: http drain %s recover %s; dns drain %s recover %s", r.ID, r.State,
		drillDash(r.HTTP.TimeToDrain), drillDash(r.HTTP.TimeToRecover), drillDash(r.DNS.TimeToDrain), drillDash(r.DNS.TimeToRecover))
	if r.Aborted != "" {
		detail += "; " + r.Aborted
	}
	target := "service " + r.Service
	if r.Pool != "" {
		target += " pool " + r.Pool
	} else {
		target += " region " + r.Region
	}
	m.audit.Record(audit.Entry{Client: r.Client, Token: r.Token, Action: "drill-end", Target: target, Result: "ok", Detail: detail})
}

func drillDash(s string) string {
	if s == "" {
		return "–"
	}
	return s
}

// guardOverride checks an admin drain or force-down of pool/addr against
// the failover guards. It answers 409 and reports false when the action
// would break one and the caller did not force it; with ?force=true it
// returns what the audit entry should add. Enable never breaks a guard.
func (a *admin) guardOverride(w http.ResponseWriter, r *http.Request, act health.Action, pool, addr string) (forcedNote string, ok bool) {
	t := a.live.Load()
	if a.drills == nil || t == nil || act == health.ActionEnable {
		return "", true
	}
	f, err := force(r)
	if err != nil {
		a.record(r, string(act), pool+"/"+addr, "bad request", err.Error())
		http.Error(w, err.Error(), http.StatusBadRequest)
		return "", false
	}
	breaches := a.drills.guards.Check(t, func(p, ad string) bool { return p == pool && ad == addr })
	if len(breaches) == 0 {
		return "", true
	}
	reasons := breachReasons(breaches)
	if !f {
		a.record(r, string(act), pool+"/"+addr, "refused: guard", reasons)
		http.Error(w, "refused: "+reasons+" (add ?force=true to "+string(act)+" anyway)", http.StatusConflict)
		return "", false
	}
	a.logger.Warn("admin override forced past a failover guard", zap.String("pool", pool), zap.String("endpoint", addr),
		zap.String("action", string(act)), zap.String("token", tokenName(r)), zap.String("guard", reasons))
	return "; forced past guard: " + reasons, true
}
