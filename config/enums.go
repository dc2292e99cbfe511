package config

import (
	"strings"

	"go.yaml.in/yaml/v3"
)

// The closed sets of names the config takes. Each is a string type whose
// UnmarshalYAML accepts exactly its constants (or nothing, which leaves the
// default to SetDefaults), so an unknown name is a decode problem at its
// line, checked in one place; code that switches on a value can rely on it
// being one of the constants, or unset in a Config built by hand. The YAML
// spelling is the constant's value.

// Balance is how a pool spreads requests over its endpoints.
type Balance string

// The balancers.
const (
	BalanceRoundRobin   Balance = "round_robin"
	BalanceLeastRequest Balance = "least_request"
	BalanceRandom       Balance = "random"
	BalanceRingHash     Balance = "ring_hash"
	BalanceMaglev       Balance = "maglev"
)

func (Balance) values() []Balance {
	return []Balance{BalanceRoundRobin, BalanceLeastRequest, BalanceRandom, BalanceRingHash, BalanceMaglev}
}

// Hashes reports whether the balancer picks by a request key (hash_on).
func (b Balance) Hashes() bool { return b == BalanceRingHash || b == BalanceMaglev }

// UnmarshalYAML accepts one of the balancers.
func (b *Balance) UnmarshalYAML(n *yaml.Node) error { return decodeEnum(n, b, "balancer") }

// Policy is how a service orders its pools.
type Policy string

// The service policies.
const (
	PolicyFailover Policy = "failover"
	PolicyWeighted Policy = "weighted"
	PolicyGeo      Policy = "geo"
)

func (Policy) values() []Policy { return []Policy{PolicyFailover, PolicyWeighted, PolicyGeo} }

// UnmarshalYAML accepts one of the policies.
func (p *Policy) UnmarshalYAML(n *yaml.Node) error { return decodeEnum(n, p, "policy") }

// Protocol is what the proxy speaks to a pool's endpoints (see Pool.Protocol).
type Protocol string

// The upstream protocols.
const (
	ProtocolAuto  Protocol = "auto"
	ProtocolHTTP1 Protocol = "http1"
	ProtocolH2C   Protocol = "h2c"
	ProtocolH2    Protocol = "h2"
)

func (Protocol) values() []Protocol {
	return []Protocol{ProtocolAuto, ProtocolHTTP1, ProtocolH2C, ProtocolH2}
}

// UnmarshalYAML accepts one of the protocols.
func (p *Protocol) UnmarshalYAML(n *yaml.Node) error { return decodeEnum(n, p, "protocol") }

// OnAllDown is what a pool does when none of its endpoints is available.
type OnAllDown string

// A pool's on_all_down values.
const (
	// OnAllDownFailOpen is panic mode: every endpoint an operator has not
	// drained or forced down gets traffic.
	OnAllDownFailOpen OnAllDown = "fail_open"
	// OnAllDownFail makes the pool unusable, so its service fails over.
	OnAllDownFail OnAllDown = "fail"
	// OnAllDownForward is a service's: when none of its pools in this
	// instance's region has an available endpoint, requests go to a
	// Meridian edge of the next region (proxy/forwardregion.go).
	OnAllDownForward OnAllDown = "forward"
)

func (OnAllDown) values() []OnAllDown {
	return []OnAllDown{OnAllDownFailOpen, OnAllDownFail, OnAllDownForward}
}

// UnmarshalYAML accepts fail_open, fail or forward.
func (o *OnAllDown) UnmarshalYAML(n *yaml.Node) error { return decodeEnum(n, o, "on_all_down") }

// RecordOnAllDown is what a steered DNS record answers when no endpoint of
// its service is available in any pool.
type RecordOnAllDown string

// A steered record's on_all_down values.
const (
	// RecordFailOpen answers the endpoints of the first pool that fails
	// open, at the degraded TTL.
	RecordFailOpen RecordOnAllDown = "fail_open"
	// RecordNoData answers NODATA.
	RecordNoData RecordOnAllDown = "nodata"
	// RecordFallback answers the record's fallback records.
	RecordFallback RecordOnAllDown = "fallback"
)

func (RecordOnAllDown) values() []RecordOnAllDown {
	return []RecordOnAllDown{RecordFailOpen, RecordNoData, RecordFallback}
}

// UnmarshalYAML accepts fail_open, nodata or fallback.
func (o *RecordOnAllDown) UnmarshalYAML(n *yaml.Node) error {
	return decodeEnum(n, o, "on_all_down")
}

// AccessLogFormat is how http.access_log writes a line.
type AccessLogFormat string

// The access log formats.
const (
	// AccessLogJSON is one JSON object per line.
	AccessLogJSON AccessLogFormat = "json"
	// AccessLogCombined is the Apache/nginx combined format, followed by
	// Meridian's own fields.
	AccessLogCombined AccessLogFormat = "combined"
)

func (AccessLogFormat) values() []AccessLogFormat {
	return []AccessLogFormat{AccessLogJSON, AccessLogCombined}
}

// UnmarshalYAML accepts json or combined.
func (f *AccessLogFormat) UnmarshalYAML(n *yaml.Node) error {
	return decodeEnum(n, f, "access log format")
}

// HTTPEngine is the server that serves HTTP/1.1 on the plain and TLS
// listeners (http.engine).
type HTTPEngine string

// The HTTP engines.
const (
	// HTTPEngineFast is Meridian's own HTTP/1.1 connection loop
	// (proxy/fast.go; over TLS it does the handshake too, fasttls.go); it
	// hands h2c, h2, upgrades and anything unusual to net/http on the same
	// connection, HTTP/2 behind a write-batching wrapper (h2batch.go).
	HTTPEngineFast HTTPEngine = "fast"
	// HTTPEngineStd is net/http's server for every connection.
	HTTPEngineStd HTTPEngine = "std"
)

func (HTTPEngine) values() []HTTPEngine { return []HTTPEngine{HTTPEngineFast, HTTPEngineStd} }

// UnmarshalYAML accepts fast or std.
func (e *HTTPEngine) UnmarshalYAML(n *yaml.Node) error { return decodeEnum(n, e, "http engine") }

// CheckType is the kind of probe a health check runs.
type CheckType string

// The check types.
const (
	CheckHTTP  CheckType = "http"
	CheckHTTPS CheckType = "https"
	CheckTCP   CheckType = "tcp"
	CheckDNS   CheckType = "dns"
)

func (CheckType) values() []CheckType { return []CheckType{CheckHTTP, CheckHTTPS, CheckTCP, CheckDNS} }

// UnmarshalYAML accepts one of the check types.
func (t *CheckType) UnmarshalYAML(n *yaml.Node) error { return decodeEnum(n, t, "check type") }

// RateScope is whom a rate limit is counted over.
type RateScope string

// The rate limit scopes.
const (
	// ScopeInstance counts on each Meridian instance alone.
	ScopeInstance RateScope = "instance"
	// ScopeFleet divides the limit by the live Meridian instances
	// registered in Consul, so the fleet as a whole allows about the limit.
	ScopeFleet RateScope = "fleet"
)

func (RateScope) values() []RateScope { return []RateScope{ScopeInstance, ScopeFleet} }

// UnmarshalYAML accepts instance or fleet.
func (s *RateScope) UnmarshalYAML(n *yaml.Node) error { return decodeEnum(n, s, "rate limit scope") }

// Encoding is a response content coding Meridian can compress with.
type Encoding string

// The encodings.
const (
	EncodingZstd Encoding = "zstd"
	EncodingBr   Encoding = "br"
	EncodingGzip Encoding = "gzip"
)

func (Encoding) values() []Encoding { return []Encoding{EncodingZstd, EncodingBr, EncodingGzip} }

// UnmarshalYAML accepts zstd, br or gzip.
func (e *Encoding) UnmarshalYAML(n *yaml.Node) error { return decodeEnum(n, e, "encoding") }

// enum is a closed set of names: its values method lists them, in the
// order messages name them.
type enum[T any] interface {
	~string
	values() []T
}

// decodeEnum decodes the scalar n into *dst when it is one of T's values or
// empty (unset), and otherwise reports it, with the values allowed, at its
// line as the decoder's other type errors are. An unknown value is kept in
// *dst all the same: Parse then fails, and no rule reports the field as
// missing besides.
func decodeEnum[T enum[T]](n *yaml.Node, dst *T, what string) error {
	if n.Kind != yaml.ScalarNode {
		return lineErr(n, "expected a %s name", what)
	}
	v := T(n.Value)
	all := v.values()
	for _, ok := range all {
		if v == ok {
			*dst = v
			return nil
		}
	}
	*dst = v // kept, so that rules on the field see it set (not "missing")
	if n.Value == "" {
		return nil
	}
	names := make([]string, len(all))
	for i, a := range all {
		names[i] = string(a)
	}
	want := strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
	return lineErr(n, "unknown %s %q: want %s", what, n.Value, want)
}
