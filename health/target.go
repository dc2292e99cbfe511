package health

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meridian-lb/meridian/config"
)

// targetView is what members read from a target without a lock: its state,
// the reason for it, and whether that state counts as available (for
// StateUnknown that is the check's initial setting).
type targetView struct {
	state  State
	reason string
	avail  bool
}

// target is one (address, check) being probed. Its scheduling and counter
// fields are guarded by Engine.mu; view is read lock-free by members.
type target struct {
	key  string
	spec Target

	// timing, normalised from the check at creation.
	interval, timeout time.Duration
	slack             time.Duration // how early a probe may run (dispatchSlack)
	jitter            float64
	rise, fall        int
	initialUp         bool

	view atomic.Pointer[targetView]

	// run bounds the NetProber's probe in flight; the engine resets it
	// under Engine.mu before each probe and aborts it under Engine.mu.
	run probeRun

	// Guarded by Engine.mu.
	members     []*Member
	item        *item // queue entry while waiting for the next probe
	ready       bool  // due and waiting for a worker (runState.ready)
	readyAt     time.Time
	running     bool
	start       time.Time          // of the probe in flight
	cancel      context.CancelFunc // cancels the probe in flight (a Prober other than NetProber)
	removed     bool
	successes   int // consecutive
	failures    int // consecutive
	probes      uint64
	lastProbe   time.Time
	lastLatency time.Duration
	lastErr     string

	okCount, failCount prometheus.Counter
}

// fingerprint identifies a check's content (plus, for https, the TLS settings
// the probe uses), so a changed definition under the same name is a new
// target. encoding/json sorts map keys, so equal checks give equal prints.
func fingerprint(name string, c *config.Check, tls *config.UpstreamTLS, tlsPrint string) string {
	v := struct {
		Name     string
		Check    *config.Check
		TLS      *config.UpstreamTLS `json:",omitempty"`
		TLSFiles string              `json:",omitempty"`
	}{Name: name, Check: c}
	if c.Type == "https" {
		v.TLS, v.TLSFiles = tls, tlsPrint
	}
	b, err := json.Marshal(v)
	if err != nil { // config.Check holds only strings, numbers, slices and maps
		panic(fmt.Sprintf("health: fingerprint check %q: %v", name, err))
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:12])
}

func newTarget(key string, spec Target, now time.Time) *target {
	c := spec.Check
	t := &target{key: key, spec: spec}
	// config.SetDefaults (with validation) makes interval and timeout
	// positive and rise and fall at least 1.
	t.interval, t.timeout = c.Interval.D(), c.Timeout.D()
	t.slack = min(dispatchSlack, t.interval/10)
	t.jitter = min(max(c.Jitter, 0), 1)
	t.rise, t.fall = c.Rise, c.Fall
	t.initialUp = c.Initial == "up"
	t.view.Store(&targetView{state: StateUnknown, avail: t.initialUp,
		reason: fmt.Sprintf("waiting for the first probe (initial %s)", initialWord(t.initialUp))})
	return t
}

func initialWord(up bool) string {
	if up {
		return "up"
	}
	return "down"
}

// seed carries a previous target's known state into a target that replaces
// it for the same address (the check changed on reload): until the new
// check's first probe completes, a dead endpoint stays dead instead of
// falling back to the check's initial state.
func (t *target) seed(prev *targetView) {
	if prev.state != StateUp && prev.state != StateDown {
		return
	}
	t.view.Store(&targetView{state: StateUnknown, avail: prev.avail,
		reason: fmt.Sprintf("check changed; keeping the previous state (%s) until the first probe", prev.state)})
}

// nextDelay is the interval with the check's jitter applied symmetrically, so
// targets added together drift apart while the mean stays the interval.
func (t *target) nextDelay() time.Duration {
	if t.jitter == 0 {
		return t.interval
	}
	f := 1 + t.jitter*(rand.Float64()-0.5)
	return time.Duration(float64(t.interval) * f)
}

// record applies one probe result to the consecutive counters and reports
// whether the target's state changed. The first completed probe decides the
// state at once (as Envoy does for new hosts); after that Rise consecutive
// successes bring a down target up and Fall consecutive failures take an up
// one down, so interleaved results never flip it. Caller holds Engine.mu.
func (t *target) record(err error, start time.Time, latency time.Duration) bool {
	t.probes++
	t.lastProbe, t.lastLatency = start, latency
	if err == nil {
		t.successes++
		t.failures = 0
		t.lastErr = ""
	} else {
		t.failures++
		t.successes = 0
		t.lastErr = err.Error()
	}
	cur := t.view.Load()
	var next *targetView
	switch {
	case cur.state == StateUnknown && err == nil:
		next = &targetView{state: StateUp, avail: true, reason: "first probe succeeded"}
	case cur.state == StateUnknown:
		next = &targetView{state: StateDown, reason: "first probe failed: " + t.lastErr}
	case cur.state == StateDown && t.successes >= t.rise:
		next = &targetView{state: StateUp, avail: true, reason: fmt.Sprintf("%d consecutive probes succeeded", t.successes)}
	case cur.state == StateUp && t.failures >= t.fall:
		next = &targetView{state: StateDown, reason: fmt.Sprintf("%d consecutive probes failed: %s", t.failures, t.lastErr)}
	default:
		return false
	}
	t.view.Store(next)
	return true
}

// status snapshots the probe side. Caller holds Engine.mu.
func (t *target) status() *ProbeStatus {
	v := t.view.Load()
	return &ProbeStatus{
		State:       v.state,
		Reason:      v.reason,
		LastProbe:   t.lastProbe,
		LastLatency: t.lastLatency,
		LastError:   t.lastErr,
		Successes:   t.successes,
		Failures:    t.failures,
		Probes:      t.probes,
	}
}
