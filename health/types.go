package health

import (
	"context"
	"crypto/tls"
	"fmt"
	"time"

	"github.com/meridian-lb/meridian/config"
)

// Prober runs one active health probe. The engine calls it with a context that
// carries the check's timeout and is cancelled when the target goes away, so an
// implementation must return promptly once ctx is done. A nil error means the
// target is healthy; the error text becomes the reason shown in logs and in
// the admin API, so it should say what failed ("status 503, want 200-399").
type Prober interface {
	Probe(ctx context.Context, t Target) error
}

// Target is what one active probe is aimed at: an address and the check that
// probes it. Targets are keyed by (Address, CheckName, check content, and for
// https the pool's TLS settings and the fingerprint of its files), so two
// checks on one address are two targets, a changed check definition under
// the same name is a new one, and so is a rotated CA (seeded with the old
// target's state, so nothing flaps).
type Target struct {
	Address   string              // host:port
	CheckName string              // the name the check has in the config
	Check     *config.Check       // never nil for targets the engine probes
	TLS       *config.UpstreamTLS // the pool's upstream TLS settings; may be nil
	// ClientTLS is the pool's TLS as the table compiled it (roots and
	// client certificate loaded): https probes use it as the proxy's
	// transports do, so both agree after a rotation. Shared: cloned before
	// use. Nil means the system roots and no client certificate.
	ClientTLS *tls.Config

	// cache holds per-target probe state the NetProber can reuse between
	// probes (the https client). It is nil in targets built by hand, which
	// then get a fresh client per probe.
	cache *probeCache
}

// String names the target in logs: "127.0.0.1:80 (check ready)".
func (t Target) String() string { return fmt.Sprintf("%s (check %s)", t.Address, t.CheckName) }

// PoolSpec is one pool as the compiled table needs it probed. The rebuild loop
// passes every pool of the new table to Engine.Sync.
type PoolSpec struct {
	Name      string
	CheckName string              // "" means no active check
	Check     *config.Check       // nil also means no active check
	TLS       *config.UpstreamTLS // pool's upstream TLS, used by https probes; may be nil
	// ClientTLS and TLSFingerprint are the pool's compiled TLS (see
	// Target.ClientTLS) and the fingerprint of its settings and files.
	ClientTLS      *tls.Config
	TLSFingerprint string
	Outlier        *config.Outlier // nil or not Active: no passive ejection
	Endpoints      []string        // "host:port"; duplicates are ignored
}

// State is a member's effective health state. It says why a member is, or is
// not, Available, which a bare bool cannot: the admin API and the logs need
// to tell a draining endpoint from a dead one.
type State string

// States a member can be in, in the order of precedence used to derive it:
// an admin override wins over an ejection, which wins over the probe state.
const (
	// StateUp: probes pass (or the pool has no check). Available.
	StateUp State = "up"
	// StateDown: probes fail. Not available.
	StateDown State = "down"
	// StateUnknown: no probe has completed yet; available or not according
	// to the check's initial setting.
	StateUnknown State = "unknown"
	// StateEjected: passively ejected after consecutive upstream failures;
	// it comes back by itself when the ejection time is up.
	StateEjected State = "ejected"
	// StateDraining: an operator drained it: no new requests or DNS answers,
	// in-flight requests finish.
	StateDraining State = "draining"
	// StateForcedDown: an operator forced it down.
	StateForcedDown State = "forced_down"
)

// Action is an admin override of a member's state.
type Action string

// Admin overrides. ActionEnable removes any override, returning the member to
// probe- and ejection-driven state.
const (
	ActionDrain  Action = "drain"
	ActionDown   Action = "down"
	ActionEnable Action = "enable"
)

// ParseAction parses an admin action name; the admin API and the state file
// both use it so they accept the same words.
func ParseAction(s string) (Action, error) {
	switch a := Action(s); a {
	case ActionDrain, ActionDown, ActionEnable:
		return a, nil
	}
	return "", fmt.Errorf("unknown action %q (want drain, down or enable)", s)
}

// Outcome is the result of one proxied request to an endpoint, as the proxy
// reports it to Member.Report for passive outlier detection.
type Outcome uint8

// Outcomes the proxy reports. Anything that proves the endpoint is serving
// (any status below 500, or a 5xx when the pool does not count 5xx) is
// Success.
const (
	Success        Outcome = iota // a response arrived
	ConnectFailure                // dial failed or was refused
	Reset                         // the connection was reset or closed mid-exchange
	Timeout                       // no response before the deadline
	Status5xx                     // a 5xx response; counts only when the pool's outlier has on_5xx
)

// String names the outcome in ejection reasons.
func (o Outcome) String() string {
	switch o {
	case Success:
		return "success"
	case ConnectFailure:
		return "connect failure"
	case Reset:
		return "reset"
	case Timeout:
		return "timeout"
	case Status5xx:
		return "5xx"
	}
	return fmt.Sprintf("outcome(%d)", uint8(o))
}

// Status is a member's health as the admin API shows it.
type Status struct {
	Pool      string    `json:"pool"`
	Address   string    `json:"address"`
	State     State     `json:"state"`
	Available bool      `json:"available"`
	Reason    string    `json:"reason"`
	Since     time.Time `json:"since"` // when State last changed

	// Check is the active check's name, "" when the pool has none; Probe is
	// then nil.
	Check string       `json:"check,omitempty"`
	Probe *ProbeStatus `json:"probe,omitempty"`

	// Override is the admin override in force ("" for none) and where it
	// came from: "api", "file", or another OverrideAs source ("drill:ID").
	Override       Action `json:"override,omitempty"`
	OverrideSource string `json:"override_source,omitempty"`

	// Passive outlier detection.
	ConsecutiveFailures int       `json:"consecutive_failures"`
	Ejected             bool      `json:"ejected"`
	EjectedUntil        time.Time `json:"ejected_until,omitzero"`
	// EjectionLevel is how many times the ejection time has doubled for the
	// next ejection (it decays while the member stays healthy).
	EjectionLevel int `json:"ejection_level"`

	// Transitions are the member's last state changes, oldest first.
	Transitions []Transition `json:"transitions"`
}

// ProbeStatus is the active-check side of a member's health. Members that
// share an (address, check) share it.
type ProbeStatus struct {
	State       State         `json:"state"` // up, down or unknown
	Reason      string        `json:"reason"`
	LastProbe   time.Time     `json:"last_probe,omitzero"`
	LastLatency time.Duration `json:"last_latency_ns"`
	LastError   string        `json:"last_error,omitempty"`
	Successes   int           `json:"consecutive_successes"`
	Failures    int           `json:"consecutive_failures"`
	Probes      uint64        `json:"probes"`
}

// Transition is one change of a member's state. The first one recorded for a
// member has an empty From: it is the state the member was added in.
type Transition struct {
	Time   time.Time `json:"time"`
	From   State     `json:"from"`
	To     State     `json:"to"`
	Reason string    `json:"reason"`
}
