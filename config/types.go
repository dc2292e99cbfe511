package config

import (
	"net/netip"
	"regexp"

	"go.yaml.in/yaml/v3"
)

// Config is the whole routing configuration as the operator wrote it, after
// defaults were applied. It is the input to routing.Compile and is never
// mutated once Load returns it.
type Config struct {
	// Region is where this instance runs (fleet.go): it is put in the
	// instance's Consul registration (meta meridian-region), decides which
	// pools a service with on_all_down: forward serves from here, and which
	// region's edges are "next".
	Region   string              `yaml:"region,omitempty"`
	Listen   Listen              `yaml:"listen,omitempty"`
	Log      Log                 `yaml:"log,omitempty"`
	Admin    Admin               `yaml:"admin,omitempty"`
	TLS      TLS                 `yaml:"tls,omitempty"`
	Consul   *Consul             `yaml:"consul,omitempty"`
	Rollouts RolloutSettings     `yaml:"rollouts,omitempty"`
	Geo      Geo                 `yaml:"geo,omitempty"`
	HTTP     HTTP                `yaml:"http,omitempty"`
	Tracing  *Tracing            `yaml:"tracing,omitempty"`
	DNS      DNS                 `yaml:"dns,omitempty"`
	Health   Health              `yaml:"health,omitempty"`
	Shutdown Shutdown            `yaml:"shutdown,omitempty"`
	Checks   map[string]*Check   `yaml:"checks,omitempty"`
	Pools    map[string]*Pool    `yaml:"pools,omitempty"`
	Services map[string]*Service `yaml:"services,omitempty"`
	Routes   []*Route            `yaml:"routes,omitempty"`
	Zones    []*Zone             `yaml:"zones,omitempty"`

	// regexps holds every regular expression of the config (path_regex and
	// regex matchers), compiled once by Parse while validating, so routing
	// does not compile them again. Read-only once Parse returns.
	regexps map[string]*regexp.Regexp
	// src is the file Parse read, for Locate; nil for a Config built by hand.
	src *source
}

// Regexp returns expr compiled, when Parse compiled it while validating this
// config, so a reload compiles each distinct expression once; nil otherwise
// (a Config built by hand), and the caller compiles it. The result is shared
// and, like every *regexp.Regexp, safe for concurrent use.
func (c *Config) Regexp(expr string) *regexp.Regexp { return c.regexps[expr] }

// Listen holds the addresses Meridian binds. An empty address disables that
// listener, except admin which defaults to loopback.
type Listen struct {
	HTTP  string `yaml:"http,omitempty"`
	HTTPS string `yaml:"https,omitempty"`
	DNS   string `yaml:"dns,omitempty"`
	Admin string `yaml:"admin,omitempty"`
}

// Log selects the zap logger's level and encoding; both change on reload.
type Log struct {
	Level  string `yaml:"level,omitempty"`  // debug | info | warn | error
	Format string `yaml:"format,omitempty"` // json | console
}

// Admin configures the admin API.
type Admin struct {
	// TokenFile, when set, holds the bearer token every /api/ call must present.
	TokenFile string `yaml:"token_file,omitempty"`
	// Tokens are named tokens, each in its own file: any of them (or
	// TokenFile's) is accepted, and the audit log records which was used.
	Tokens []NamedToken `yaml:"tokens,omitempty"`
	// History is how many accepted configs are kept for diff and rollback
	// (default DefaultConfigHistory).
	History int `yaml:"history,omitempty"`
	// AuditLog is the file admin actions are appended to as JSON lines;
	// empty keeps them in memory only (the last DefaultAuditEntries).
	AuditLog string `yaml:"audit_log,omitempty"`
}

// NamedToken is one admin token and the name the audit log gives it.
type NamedToken struct {
	Name string `yaml:"name,omitempty"`
	File string `yaml:"file,omitempty"`
}

// TLS configures termination on listen.https.
type TLS struct {
	Certificates []CertPair `yaml:"certificates,omitempty"`
	MinVersion   string     `yaml:"min_version,omitempty"` // "1.2" (default) | "1.3"
	// UnknownSNI says what a handshake for a name no certificate covers gets:
	// "default" (the first certificate) or "fail".
	UnknownSNI string `yaml:"unknown_sni,omitempty"`
	ACME       *ACME  `yaml:"acme,omitempty"`
}

// CertPair names a PEM certificate chain and its key.
type CertPair struct {
	Cert string `yaml:"cert,omitempty"`
	Key  string `yaml:"key,omitempty"`
}

// ACME configures automatic certificates: the listed domains get
// certificates from an ACME CA, renewed before they expire and kept in
// Storage, so a restart serves them without asking again.
type ACME struct {
	// Directory is the CA's directory URL (default: Let's Encrypt).
	Directory string `yaml:"directory,omitempty"`
	// Email is the account contact the CA warns about expiry problems.
	Email   string   `yaml:"email,omitempty"`
	Domains []string `yaml:"domains,omitempty"`
	// Storage is the directory that keeps the account, keys and
	// certificates. Instances that share it (a network file system) share
	// certificates and solve each other's challenges.
	Storage string `yaml:"storage,omitempty"`
	// CA is a PEM file trusted for the directory's HTTPS, for private and
	// test CAs; default: the system roots.
	CA string `yaml:"ca,omitempty"`
	// Challenges are the validation methods offered: http-01 (on
	// listen.http, or a port 80 listener of its own) and tls-alpn-01 (on
	// listen.https). Default: both.
	Challenges []string `yaml:"challenges,omitempty"`
}

// DefaultACMEDirectory is Let's Encrypt's production directory.
const DefaultACMEDirectory = "https://acme-v02.api.letsencrypt.org/directory"

// ACME challenge types tls.acme.challenges accepts.
const (
	ChallengeHTTP01    = "http-01"
	ChallengeTLSALPN01 = "tls-alpn-01"
)

// Consul configures the catalog and KV client.
type Consul struct {
	Address    string    `yaml:"address,omitempty"` // host:port, or an http(s):// URL
	Datacenter string    `yaml:"datacenter,omitempty"`
	TokenFile  string    `yaml:"token_file,omitempty"`
	CAFile     string    `yaml:"ca_file,omitempty"`
	CertFile   string    `yaml:"cert_file,omitempty"`
	KeyFile    string    `yaml:"key_file,omitempty"`
	Namespace  string    `yaml:"namespace,omitempty"`
	Partition  string    `yaml:"partition,omitempty"`
	Stale      bool      `yaml:"stale,omitempty"`
	Register   *Register `yaml:"register,omitempty"`
	// Fleet tunes how registered instances share state through Consul KV
	// (package fleet): health reports, shared overrides. It is on whenever
	// Register is set; this block only changes its defaults.
	Fleet *Fleet `yaml:"fleet,omitempty"`
}

// Fleet is consul.fleet.
type Fleet struct {
	// Prefix is the KV folder the fleet writes under (default
	// DefaultFleetPrefix): reports/<instance> and overrides/<pool>/<address>.
	Prefix string `yaml:"prefix,omitempty"`
	// SessionTTL is the TTL of each instance's session (default
	// DefaultFleetSessionTTL; Consul accepts 10s to 24h). An instance that
	// dies loses its reports once Consul invalidates its session: between
	// one and two TTLs later.
	SessionTTL Duration `yaml:"session_ttl,omitempty"`
	// SharedOverrides, when false, keeps drains and overrides local to
	// each instance; unset means true.
	SharedOverrides *bool `yaml:"shared_overrides,omitempty"`
}

// Register makes Meridian register itself with the local Consul agent.
type Register struct {
	Name          string   `yaml:"name,omitempty"`
	Tags          []string `yaml:"tags,omitempty"`
	CheckInterval Duration `yaml:"check_interval,omitempty"`
}

// Geo maps client addresses to regions.
type Geo struct {
	MMDB          string            `yaml:"mmdb,omitempty"`
	Nets          map[string]string `yaml:"nets,omitempty"` // CIDR → region
	Regions       map[string]Region `yaml:"regions,omitempty"`
	DefaultRegion string            `yaml:"default_region,omitempty"`
	// ECS, when false, makes DNS ignore EDNS Client Subnet options.
	ECS *bool `yaml:"ecs,omitempty"`
}

// Region lists where a region's clients are, in GeoIP terms.
type Region struct {
	Continents []string `yaml:"continents,omitempty"`
	Countries  []string `yaml:"countries,omitempty"`
}

// HTTP holds listener-wide settings of the proxy.
type HTTP struct {
	TrustedProxies    []string `yaml:"trusted_proxies,omitempty"`
	ReadHeaderTimeout Duration `yaml:"read_header_timeout,omitempty"`
	ReadTimeout       Duration `yaml:"read_timeout,omitempty"`
	IdleTimeout       Duration `yaml:"idle_timeout,omitempty"`
	MaxHeaderBytes    Size     `yaml:"max_header_bytes,omitempty"`
	MaxConns          int      `yaml:"max_conns,omitempty"`
	// AllowAmbiguousPaths turns off the 400 for %2e%2e, encoded slashes,
	// backslashes and NUL in the path.
	AllowAmbiguousPaths bool `yaml:"allow_ambiguous_paths,omitempty"`
	// AccessLog writes one line per proxied request (both listeners);
	// off unless set. `true` is short for {to: stderr, format: json}.
	AccessLog AccessLog `yaml:"access_log,omitempty"`
	// MaxIdleConnsPerHost bounds the idle upstream connections per endpoint.
	MaxIdleConnsPerHost int `yaml:"max_idle_conns_per_host,omitempty"`
	// RouteTimeout is the timeout of routes that set none: the response
	// head must arrive within it (Envoy's 15 s route timeout, but
	// streamed bodies and WebSockets are not cut).
	RouteTimeout Duration `yaml:"route_timeout,omitempty"`
	// BodyTimeout cuts a request body that sends no byte for this long
	// (408): the client's stall, charged to the client.
	BodyTimeout Duration `yaml:"body_timeout,omitempty"`
	// MinBodyRate is the slowest request body accepted, in bytes per second
	// of waiting on the client, once BodyRateGrace of such waiting has
	// passed; a slower body is cut with 408 (Apache's mod_reqtimeout
	// MinRate). Time the upstream takes to accept the body is not counted.
	MinBodyRate   Size     `yaml:"min_body_rate,omitempty"`
	BodyRateGrace Duration `yaml:"body_rate_grace,omitempty"`
	// MaxBodyBytes refuses larger request bodies with 413. Zero (the
	// default) accepts any size: bodies are streamed, so a large one costs
	// time, which the body limits above bound, not memory.
	MaxBodyBytes Size `yaml:"max_body_bytes,omitempty"`
	// UpstreamIdleTimeout cuts an upstream response body that sends no
	// byte for this long (nginx's proxy_read_timeout); WebSocket tunnels
	// are not cut.
	UpstreamIdleTimeout Duration `yaml:"upstream_idle_timeout,omitempty"`
	// MaxResponseHeaderBytes caps an upstream response head (502 above it).
	MaxResponseHeaderBytes Size `yaml:"max_response_header_bytes,omitempty"`
	// Engine is the plain listener's HTTP/1.1 server: fast (Meridian's own
	// connection loop, proxy/fast.go) or std (net/http's). Either way h2c,
	// upgrades and whatever the fast lane does not take are served by
	// net/http.
	Engine HTTPEngine `yaml:"engine,omitempty"`
}

// AccessLog is http.access_log. The lines go through a writer of their
// own, not the application's zap logger, so they can go to another stream
// or file, in a format log tools already parse, and a slow destination
// drops lines (counted) instead of slowing requests.
type AccessLog struct {
	// To is where lines go: stdout, stderr or a file path (opened for
	// appending, created 0644 when missing, reopened on SIGUSR1 for
	// logrotate). Empty means off.
	To string `yaml:"to,omitempty"`
	// Format is json (one object per line) or combined (Apache/nginx
	// combined, then Meridian's fields).
	Format AccessLogFormat `yaml:"format,omitempty"`
	// Sample is the share of successful requests (status below 400 and no
	// error) that are logged, 0 to 1; failed requests are always logged.
	// Unset means 1.
	Sample *float64 `yaml:"sample,omitempty"`
	// RedactQuery names query parameters (case-insensitive) whose values
	// are logged as REDACTED: tokens and keys that must not reach logs.
	RedactQuery []string `yaml:"redact_query,omitempty"`
	// Buffer bounds the bytes of lines waiting for the destination; a
	// line that does not fit is dropped and counted, so a slow disk never
	// holds a request.
	Buffer Size `yaml:"buffer,omitempty"`

	// on is set when the YAML turned the log on (`true` or a mapping), so
	// SetDefaults can fill To for a mapping that leaves it out.
	on bool
}

// Enabled reports whether the access log is on.
func (a *AccessLog) Enabled() bool { return a.on || a.To != "" }

// Access log destinations besides a file path.
const (
	AccessLogStdout = "stdout"
	AccessLogStderr = "stderr"
)

// UnmarshalYAML accepts `true` (today's access log: JSON lines on
// stderr), `false` (off) and the mapping form.
func (a *AccessLog) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		var on bool
		if err := n.Decode(&on); err != nil {
			return lineErr(n, "expected true, false or a mapping such as {to: stdout, format: json}")
		}
		*a = AccessLog{}
		if on {
			*a = AccessLog{To: AccessLogStderr, on: true}
		}
		return nil
	}
	type plain AccessLog
	var p plain
	if err := decodeStrict(n, &p, accessLogKeys); err != nil {
		return err
	}
	*a = AccessLog(p)
	a.on = true
	return nil
}

// MarshalYAML writes the mapping form, or false when the log is off.
func (a AccessLog) MarshalYAML() (any, error) {
	if !a.Enabled() {
		return false, nil
	}
	type plain AccessLog
	return plain(a), nil
}

// Tracing is the tracing: block. Present, the proxy takes part in W3C
// trace context: it continues a valid inbound traceparent (or starts a
// trace), gives its hop a span id and sends traceparent and tracestate
// upstream. With OTLP set it also exports spans.
type Tracing struct {
	// OTLP is the URL of an OTLP/HTTP collector (protobuf), such as
	// http://127.0.0.1:4318; /v1/traces is added to a URL without a
	// path. Empty: propagate only, export nothing.
	OTLP string `yaml:"otlp,omitempty"`
	// Sample is the share of new traces sampled, 0 to 1 (default 1). A
	// trace continued from a trusted proxy (http.trusted_proxies) keeps
	// the sampled flag it came with.
	Sample *float64 `yaml:"sample,omitempty"`
	// ServiceName is the exported service.name (default meridian).
	ServiceName string `yaml:"service_name,omitempty"`
}

// DNS holds server-wide settings of the DNS layer.
type DNS struct {
	UDPSize      int      `yaml:"udp_size,omitempty"` // advertised EDNS buffer
	MaxAnswers   int      `yaml:"max_answers,omitempty"`
	TCPIdle      Duration `yaml:"tcp_idle_timeout,omitempty"`
	TCPRead      Duration `yaml:"tcp_read_timeout,omitempty"`
	TCPMaxConns  int      `yaml:"tcp_max_conns,omitempty"`
	Listeners    int      `yaml:"listeners,omitempty"` // SO_REUSEPORT UDP sockets
	RRL          *RRL     `yaml:"rrl,omitempty"`
	QueryLog     float64  `yaml:"query_log,omitempty"` // share of queries logged, 0..1
	DegradedTTL  uint32   `yaml:"degraded_ttl,omitempty"`
	NotifyPeriod Duration `yaml:"notify_retry,omitempty"`
}

// RRL configures response rate limiting per client network.
type RRL struct {
	ResponsesPerSecond int      `yaml:"responses_per_second,omitempty"`
	Slip               int      `yaml:"slip,omitempty"`
	Window             Duration `yaml:"window,omitempty"`
	IPv4Prefix         int      `yaml:"ipv4_prefix,omitempty"`
	IPv6Prefix         int      `yaml:"ipv6_prefix,omitempty"`
}

// Health holds engine-wide settings.
type Health struct {
	MaxInFlight int    `yaml:"max_in_flight,omitempty"`
	StateFile   string `yaml:"state_file,omitempty"` // gdnsd-style admin overrides
	// Quorum makes DNS answer by the fleet's health verdicts rather than
	// this instance's alone (package fleet): an endpoint is down for DNS
	// when at least DownRatio of the live reporters see it down, and there
	// are at least MinReporters of them. Needs consul.register.
	Quorum *Quorum `yaml:"quorum,omitempty"`
}

// FleetSettings returns consul.fleet with its defaults filled in (the block
// is optional: the fleet is on whenever consul.register is set).
func (c *Consul) FleetSettings() Fleet {
	var f Fleet
	if c != nil && c.Fleet != nil {
		f = *c.Fleet
	}
	def(&f.Prefix, DefaultFleetPrefix)
	defDur(&f.SessionTTL, DefaultFleetSessionTTL)
	return f
}

// Quorum is health.quorum.
type Quorum struct {
	MinReporters int     `yaml:"min_reporters,omitempty"` // default DefaultQuorumMinReporters
	DownRatio    float64 `yaml:"down_ratio,omitempty"`    // 0 < r <= 1; default DefaultQuorumDownRatio
}

// Shutdown shapes the drain on SIGTERM.
type Shutdown struct {
	// Delay is how long /readyz answers 503 before the listeners close, so
	// load balancers stop sending first (their check interval × fall).
	Delay Duration `yaml:"delay,omitempty"`
	// Grace bounds how long in-flight requests then get to finish.
	Grace Duration `yaml:"grace,omitempty"`
}

// Check says how to probe an endpoint.
type Check struct {
	Type     CheckType `yaml:"type,omitempty"` // http | https | tcp | dns
	Interval Duration  `yaml:"interval,omitempty"`
	Timeout  Duration  `yaml:"timeout,omitempty"`
	Jitter   float64   `yaml:"jitter,omitempty"` // share of interval, 0..1
	Rise     int       `yaml:"rise,omitempty"`
	Fall     int       `yaml:"fall,omitempty"`
	Initial  string    `yaml:"initial,omitempty"` // up | down: state before the first probe completes

	// http and https
	Method     string            `yaml:"method,omitempty"`
	Path       string            `yaml:"path,omitempty"`
	Host       string            `yaml:"host,omitempty"`
	Expect     []StatusRange     `yaml:"expect,omitempty"`
	Body       string            `yaml:"body,omitempty"` // substring the response body must contain
	ServerName string            `yaml:"server_name,omitempty"`
	SkipVerify bool              `yaml:"insecure_skip_verify,omitempty"`
	Headers    map[string]string `yaml:"headers,omitempty"`
	// ReuseConnection keeps an http check's connection to an IP:port
	// between probes, as Envoy's reuse_connection; nil means true.
	ReuseConnection *bool `yaml:"reuse_connection,omitempty"`

	// tcp
	Send    string `yaml:"send,omitempty"`
	Receive string `yaml:"receive,omitempty"`

	// dns
	QName string `yaml:"qname,omitempty"`
	QType string `yaml:"qtype,omitempty"`
	RCode string `yaml:"rcode,omitempty"`
}

// StatusRange is an inclusive HTTP status range; `200` and `"200-299"` both
// decode into it.
type StatusRange struct{ Lo, Hi int }

// Pool is a set of endpoints in one place that share a check and a balancer.
type Pool struct {
	Region    string        `yaml:"region,omitempty"`
	Endpoints []Endpoint    `yaml:"endpoints,omitempty"`
	Check     string        `yaml:"check,omitempty"`
	Balance   Balance       `yaml:"balance,omitempty"` // round_robin | least_request | random | ring_hash | maglev
	HashOn    *HashOn       `yaml:"hash_on,omitempty"`
	Outlier   *Outlier      `yaml:"outlier,omitempty"`
	OnAllDown OnAllDown     `yaml:"on_all_down,omitempty"` // fail_open (default) | fail
	Consul    *ConsulSelect `yaml:"consul,omitempty"`
	TLS       *UpstreamTLS  `yaml:"tls,omitempty"`
	// Protocol is what the proxy speaks to the endpoints: auto (default:
	// HTTP/1.1 in plain text; over the pool's tls:, h2 when the endpoint
	// offers it in ALPN, else HTTP/1.1, as Envoy's auto_config does),
	// http1 (HTTP/1.1 only), h2c (HTTP/2 without TLS, prior knowledge: gRPC
	// backends) or h2 (HTTP/2 over tls:, required).
	Protocol Protocol `yaml:"protocol,omitempty"`
	// Limits are the pool's circuit breakers; SetDefaults fills every
	// limit left at 0 with its default.
	Limits *PoolLimits `yaml:"limits,omitempty"`
	// SlowStart ramps a new or returning endpoint's share of traffic up
	// over this window (round_robin, least_request and random pools).
	SlowStart Duration `yaml:"slow_start,omitempty"`
}

// Endpoint is one upstream address; `"127.0.0.1:9101"` and
// `{address: ..., weight: 3}` both decode into it.
type Endpoint struct {
	Address string `yaml:"address,omitempty"`
	Weight  int    `yaml:"weight,omitempty"`
}

// HashOn names the key ring_hash and maglev hash: one of header, cookie or
// client_ip.
type HashOn struct {
	Header   string `yaml:"header,omitempty"`
	Cookie   string `yaml:"cookie,omitempty"`
	ClientIP bool   `yaml:"client_ip,omitempty"`
}

// Outlier configures passive ejection from observed upstream failures.
// Every pool has one (SetDefaults adds it): connect failures and resets
// always count, timeouts with OnTimeout and 5xx responses with On5xx, since
// a client can choose requests that are slow or fail on a healthy endpoint.
type Outlier struct {
	// Enabled turns passive detection off when false; unset means on.
	Enabled             *bool    `yaml:"enabled,omitempty"`
	ConsecutiveFailures int      `yaml:"consecutive_failures,omitempty"`
	Ejection            Duration `yaml:"ejection,omitempty"`
	MaxEjection         Duration `yaml:"max_ejection,omitempty"`
	MaxEjectedPercent   int      `yaml:"max_ejected_percent,omitempty"`
	On5xx               bool     `yaml:"on_5xx,omitempty"`
	OnTimeout           bool     `yaml:"on_timeout,omitempty"`
}

// Active reports whether passive detection runs: the block exists and is
// not switched off.
func (o *Outlier) Active() bool { return o != nil && (o.Enabled == nil || *o.Enabled) }

// ConsulSelect selects a pool's endpoints from the Consul catalog.
type ConsulSelect struct {
	Service    string            `yaml:"service,omitempty"`
	Tags       []string          `yaml:"tags,omitempty"`
	Datacenter string            `yaml:"datacenter,omitempty"`
	Near       string            `yaml:"near,omitempty"`
	Health     string            `yaml:"health,omitempty"` // passing (default) | warning | any
	Meta       map[string]string `yaml:"meta,omitempty"`
	// Datacenters are further datacenters to take the instances from,
	// in this order after the local one (Datacenter, else the agent's),
	// with Consul prepared-query semantics: the first datacenter that has
	// an instance passing the filters serves the pool.
	Datacenters []string `yaml:"datacenters,omitempty"`
	// Failover orders the further datacenters by network coordinates
	// instead (or before a fixed list), as a prepared query's Failover.
	Failover *ConsulFailover `yaml:"failover,omitempty"`
}

// ConsulFailover is a pool selection's consul.failover: Nearest other
// datacenters by estimated round-trip time from the local one
// (/v1/coordinate/datacenters), then Datacenters, each queried once.
type ConsulFailover struct {
	Nearest     int      `yaml:"nearest,omitempty"`
	Datacenters []string `yaml:"datacenters,omitempty"`
}

// MultiDC reports whether the selection may take instances from another
// datacenter than its own.
func (s *ConsulSelect) MultiDC() bool {
	return len(s.Datacenters) > 0 || s.Failover != nil && (s.Failover.Nearest > 0 || len(s.Failover.Datacenters) > 0)
}

// UpstreamTLS makes a pool speak HTTPS to its endpoints.
type UpstreamTLS struct {
	CA                 string `yaml:"ca,omitempty"`
	ServerName         string `yaml:"server_name,omitempty"`
	Cert               string `yaml:"cert,omitempty"`
	Key                string `yaml:"key,omitempty"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify,omitempty"`
}

// Service steers across pools; HTTP routes and DNS records both name services.
type Service struct {
	Policy  Policy   `yaml:"policy,omitempty"` // failover (default) | weighted | geo
	Pools   []string `yaml:"pools,omitempty"`
	Weights []int    `yaml:"weights,omitempty"`
	// OnAllDown: forward makes this instance serve the service from the
	// pools of its own region (config region, and pools with no region)
	// and, when none of them has an available endpoint, forward requests
	// to a Meridian edge of the next region instead of failing open. Unset:
	// the pools' own on_all_down decides.
	OnAllDown OnAllDown `yaml:"on_all_down,omitempty"`
	// Rollout steps the weight of one of the service's pools (Canary names
	// the pool) in a weighted service; it steers the DNS records that use
	// the service as well as HTTP.
	Rollout *Rollout `yaml:"rollout,omitempty"`
	// Guard keeps a minimum of pools or regions serving: a health change
	// or drain that would leave fewer is not applied to routing.
	Guard *Guard `yaml:"guard,omitempty"`
}

// RolloutSettings says where rollout progress is kept. With consul:
// configured it is Consul KV under ConsulPrefix, where one instance drives
// each rollout under a session lock and the others follow; else StateFile,
// when set; else memory only (a restart starts rollouts over).
type RolloutSettings struct {
	StateFile    string `yaml:"state_file,omitempty"`
	ConsulPrefix string `yaml:"consul_prefix,omitempty"` // default DefaultRolloutPrefix
}

// Rollout steps a canary's weight up while its traffic is judged healthy,
// and takes it to 0 when it is not.
type Rollout struct {
	Canary           string   `yaml:"canary,omitempty"`      // the split arm's service, or the service's pool
	Steps            []int    `yaml:"steps,omitempty"`       // canary weights in percent, e.g. [1, 5, 25, 50, 100]
	StepWeight       int      `yaml:"step_weight,omitempty"` // or steps of this size...
	MaxWeight        int      `yaml:"max_weight,omitempty"`  // ...up to this weight, then promotion
	Interval         Duration `yaml:"interval,omitempty"`    // each step is held and judged this long (default DefaultRolloutInterval)
	Analysis         Analysis `yaml:"analysis,omitempty"`
	FailureLimit     int      `yaml:"failure_limit,omitempty"`     // failed judgements before rollback (default DefaultRolloutFailureLimit)
	ProgressDeadline Duration `yaml:"progress_deadline,omitempty"` // the whole rollout; past it, rollback (default DefaultRolloutDeadline)
}

// Analysis is what a rollout step must show to pass.
type Analysis struct {
	MinRequests       int      `yaml:"min_requests,omitempty"` // fewer is inconclusive (default DefaultRolloutMinRequests)
	SuccessRate       float64  `yaml:"success_rate,omitempty"` // percent of non-5xx answers, at least (default DefaultRolloutSuccessRate)
	P99               Duration `yaml:"p99,omitempty"`          // at most; 0: not judged
	CompareToBaseline bool     `yaml:"compare_to_baseline,omitempty"`
}

// Guard is a service's failover guardrail.
type Guard struct {
	MinPools   int `yaml:"min_pools,omitempty"`
	MinRegions int `yaml:"min_regions,omitempty"`
}

// Route matches HTTP requests and sends them to a service or a split.
type Route struct {
	Name    string        `yaml:"name,omitempty"`
	Match   Match         `yaml:"match,omitempty"`
	Service string        `yaml:"service,omitempty"`
	Split   []*SplitEntry `yaml:"split,omitempty"`
	// Rollout steps the weight of one of the split's weighted arms
	// (Canary names its service).
	Rollout *Rollout `yaml:"rollout,omitempty"`
	Sticky  *Sticky  `yaml:"sticky,omitempty"`
	Mirror  *Mirror  `yaml:"mirror,omitempty"`
	Retry   *Retry   `yaml:"retry,omitempty"`
	// Timeout bounds the whole exchange, retries included. Unset, the
	// route gets http.route_timeout until the response head arrives (so
	// streamed bodies and WebSockets are not cut); an explicit 0 means no
	// limit.
	Timeout         *Duration         `yaml:"timeout,omitempty"`
	PerTryTimeout   Duration          `yaml:"per_try_timeout,omitempty"`
	HostRewrite     string            `yaml:"host_rewrite,omitempty"`
	StripPrefix     string            `yaml:"strip_prefix,omitempty"`
	AddHeaders      map[string]string `yaml:"add_headers,omitempty"`
	RemoveHeaders   []string          `yaml:"remove_headers,omitempty"`
	ResponseHeaders *HeaderOps        `yaml:"response_headers,omitempty"`
	TLS             *RouteTLS         `yaml:"tls,omitempty"`
	HSTS            string            `yaml:"hsts,omitempty"` // Strict-Transport-Security value
	RedirectHTTPS   bool              `yaml:"redirect_https,omitempty"`

	// Edge policies, run in this order before the request is forwarded
	// (package policy): allow/deny, rate_limit, basic_auth, jwt,
	// forward_auth, cors, redirect, rewrite, max_body; compress applies to
	// the response. A route with none of them pays nothing for them.
	Allow       StringList   `yaml:"allow,omitempty"` // client CIDRs let through; others get 403
	Deny        StringList   `yaml:"deny,omitempty"`  // client CIDRs refused with 403 (deny wins)
	RateLimit   *RateLimit   `yaml:"rate_limit,omitempty"`
	BasicAuth   *BasicAuth   `yaml:"basic_auth,omitempty"`
	JWT         *JWT         `yaml:"jwt,omitempty"`
	ForwardAuth *ForwardAuth `yaml:"forward_auth,omitempty"`
	// ForwardAuthorization passes the client's Authorization header to
	// the upstream. Off by default on routes with an auth policy, whose
	// credentials are the edge's business.
	ForwardAuthorization bool      `yaml:"forward_authorization,omitempty"`
	CORS                 *CORS     `yaml:"cors,omitempty"`
	Redirect             *Redirect `yaml:"redirect,omitempty"`
	Rewrite              *Rewrite  `yaml:"rewrite,omitempty"`
	// MaxBody caps the request body on this route: a larger announced
	// body is answered 413 before anything is forwarded, a larger chunked
	// one is cut at the cap and answered 413.
	MaxBody  *Size     `yaml:"max_body,omitempty"`
	Compress *Compress `yaml:"compress,omitempty"`
}

// RateLimit is a route's token-bucket rate limit: Requests per Per, with
// bursts of Burst (default Requests), per Key.
type RateLimit struct {
	Requests int          `yaml:"requests,omitempty"`
	Per      Duration     `yaml:"per,omitempty"` // default 1s
	Burst    int          `yaml:"burst,omitempty"`
	Key      RateLimitKey `yaml:"key,omitempty"` // client_ip (default), header:NAME, cookie:NAME
	Scope    RateScope    `yaml:"scope,omitempty"`
	// MaxKeys caps the buckets tracked (default DefaultRateLimitKeys); the
	// least recently used is forgotten first, which gives its key a full
	// bucket.
	MaxKeys int `yaml:"max_keys,omitempty"`
}

// BasicAuth asks for HTTP Basic credentials checked against an htpasswd
// file of bcrypt hashes.
type BasicAuth struct {
	Htpasswd string `yaml:"htpasswd,omitempty"`
	Realm    string `yaml:"realm,omitempty"` // default DefaultAuthRealm
}

// JWT requires a bearer token signed by a key of the JWKS.
type JWT struct {
	// JWKS is a file path or an https:// URL (http:// only for loopback).
	JWKS      string     `yaml:"jwks,omitempty"`
	Issuer    string     `yaml:"issuer,omitempty"`
	Audiences StringList `yaml:"audiences,omitempty"`
	// ClaimsToHeaders copies claims into request headers for the
	// upstream: {claim: Header-Name}.
	ClaimsToHeaders map[string]string `yaml:"claims_to_headers,omitempty"`
	Leeway          *Duration         `yaml:"leeway,omitempty"`  // exp/nbf tolerance, default DefaultJWTLeeway
	Refresh         Duration          `yaml:"refresh,omitempty"` // JWKS URL refresh, default DefaultJWKSRefresh
}

// ForwardAuth asks another service whether to let a request through.
type ForwardAuth struct {
	URL         string     `yaml:"url,omitempty"`
	CopyHeaders StringList `yaml:"copy_headers,omitempty"` // from the auth answer to the upstream request
	Timeout     Duration   `yaml:"timeout,omitempty"`      // default DefaultForwardAuthTimeout
}

// CORS answers preflights at the edge and adds CORS headers for allowed
// origins.
type CORS struct {
	Origins     StringList `yaml:"origins,omitempty"` // exact origins, "*", or "https://*.example.com"
	Methods     StringList `yaml:"methods,omitempty"` // default GET, HEAD, POST
	Headers     StringList `yaml:"headers,omitempty"` // request headers allowed
	Expose      StringList `yaml:"expose,omitempty"`
	Credentials bool       `yaml:"credentials,omitempty"`
	MaxAge      Duration   `yaml:"max_age,omitempty"`
}

// Redirect answers every request of the route with a redirect to a
// template (see package policy/template).
type Redirect struct {
	To   string `yaml:"to,omitempty"`
	Code int    `yaml:"code,omitempty"` // 301, 302 (default), 307 or 308
}

// Rewrite changes the request before it is forwarded: its path by a
// regular expression and template, its query by additions and removals.
type Rewrite struct {
	PathRegex string    `yaml:"path_regex,omitempty"`
	To        string    `yaml:"to,omitempty"`
	Query     *QueryOps `yaml:"query,omitempty"`
}

// QueryOps adds (sets) and removes query parameters.
type QueryOps struct {
	Add    map[string]string `yaml:"add,omitempty"`
	Remove []string          `yaml:"remove,omitempty"`
}

// Compress compresses responses by the client's Accept-Encoding.
type Compress struct {
	Encodings []Encoding `yaml:"encodings,omitempty"` // server preference order; default zstd, br, gzip
	MinSize   Size       `yaml:"min_size,omitempty"`  // default DefaultCompressMinSize
	Types     StringList `yaml:"types,omitempty"`     // media types (type/* allowed); default DefaultCompressTypes
}

// PoolLimits are a pool's circuit breakers, with Envoy's meaning: over a
// limit the request fails at once with 503.
type PoolLimits struct {
	MaxConnections int `yaml:"max_connections,omitempty"` // upstream connections open, all endpoints
	MaxPending     int `yaml:"max_pending,omitempty"`     // requests waiting for a connection
	MaxRequests    int `yaml:"max_requests,omitempty"`    // requests in flight
	MaxRetries     int `yaml:"max_retries,omitempty"`     // retries in flight
}

// HeaderOps adds and removes response headers.
type HeaderOps struct {
	Add    map[string]string `yaml:"add,omitempty"`
	Remove []string          `yaml:"remove,omitempty"`
}

// RouteTLS requires client certificates on a route.
type RouteTLS struct {
	ClientAuth string `yaml:"client_auth,omitempty"` // require | none
	ClientCA   string `yaml:"client_ca,omitempty"`
}

// Match is the conjunction of a route's conditions; empty fields match all.
type Match struct {
	Host       StringList             `yaml:"host,omitempty"`
	Path       string                 `yaml:"path,omitempty"`
	PathPrefix string                 `yaml:"path_prefix,omitempty"`
	PathRegex  string                 `yaml:"path_regex,omitempty"`
	Method     StringList             `yaml:"method,omitempty"`
	Headers    map[string]StringMatch `yaml:"headers,omitempty"`
	Query      map[string]StringMatch `yaml:"query,omitempty"`
	Cookies    map[string]StringMatch `yaml:"cookies,omitempty"`
	ClientCIDR StringList             `yaml:"client_cidr,omitempty"`
}

// StringMatch matches one value: a plain scalar means exact; a mapping may say
// {exact}, {prefix}, {regex} or {present: true|false}.
type StringMatch struct {
	Exact   string `yaml:"exact,omitempty"`
	Prefix  string `yaml:"prefix,omitempty"`
	Regex   string `yaml:"regex,omitempty"`
	Present *bool  `yaml:"present,omitempty"`
}

// SplitEntry is one arm of a split: a rule when When is set, else a weight.
type SplitEntry struct {
	When    *When  `yaml:"when,omitempty"`
	Service string `yaml:"service,omitempty"`
	Weight  *int   `yaml:"weight,omitempty"`
}

// When is a split rule's condition.
type When struct {
	Header map[string]StringMatch `yaml:"header,omitempty"`
	Cookie map[string]StringMatch `yaml:"cookie,omitempty"`
	Query  map[string]StringMatch `yaml:"query,omitempty"`
}

// Sticky keeps a user on one split arm.
type Sticky struct {
	Cookie string `yaml:"cookie,omitempty"`
	Header string `yaml:"header,omitempty"`
	// Set, with Cookie, sets the cookie when the request has none.
	Set bool `yaml:"set,omitempty"`
}

// Mirror copies a sampled share of a route's requests to another service.
type Mirror struct {
	Service string   `yaml:"service,omitempty"`
	Percent float64  `yaml:"percent,omitempty"`
	MaxBody Size     `yaml:"max_body,omitempty"`
	Timeout Duration `yaml:"timeout,omitempty"`
	// MaxInFlight bounds concurrent mirrored requests; extra ones are dropped.
	MaxInFlight int `yaml:"max_in_flight,omitempty"`
}

// Retry bounds re-sending a failed request to another endpoint.
type Retry struct {
	Attempts      int        `yaml:"attempts,omitempty"`
	On            StringList `yaml:"on,omitempty"` // connect_failure | reset | 502 | 503 | 504
	BudgetPercent float64    `yaml:"budget_percent,omitempty"`
	MaxRetryBody  Size       `yaml:"max_retry_body,omitempty"`
}

// Zone is a DNS zone Meridian is authoritative for.
type Zone struct {
	Origin      string    `yaml:"origin,omitempty"`
	SOA         SOA       `yaml:"soa,omitempty"`
	NS          []string  `yaml:"ns,omitempty"`
	Records     []*Record `yaml:"records,omitempty"`
	Transfer    *Transfer `yaml:"transfer,omitempty"`
	DegradedTTL uint32    `yaml:"degraded_ttl,omitempty"`
	DNSSEC      *DNSSEC   `yaml:"dnssec,omitempty"` // online signing; nil serves the zone unsigned
}

// DNSSEC signs a zone online, answer by answer (package dns/dnssec): keys
// in BIND's K<zone>+<alg>+<id>.key/.private files in KeyDir, generated
// there when it holds none for the zone.
type DNSSEC struct {
	KeyDir    string `yaml:"key_dir,omitempty"`
	Algorithm string `yaml:"algorithm,omitempty"` // ecdsap256sha256 (default) | ed25519
}

// SOA holds the zone's start-of-authority fields; the serial is computed.
type SOA struct {
	NS      string   `yaml:"ns,omitempty"`
	MBox    string   `yaml:"mbox,omitempty"`
	TTL     uint32   `yaml:"ttl,omitempty"`
	Refresh Duration `yaml:"refresh,omitempty"`
	Retry   Duration `yaml:"retry,omitempty"`
	Expire  Duration `yaml:"expire,omitempty"`
	Minimum uint32   `yaml:"minimum,omitempty"` // negative-caching TTL
}

// Record is a zone record: static (Values) or steered (Service).
type Record struct {
	Name       string          `yaml:"name,omitempty"` // relative to the origin; "@" is the apex
	Type       string          `yaml:"type,omitempty"`
	TTL        uint32          `yaml:"ttl,omitempty"`
	Values     StringList      `yaml:"values,omitempty"`
	Service    string          `yaml:"service,omitempty"`
	MaxAnswers int             `yaml:"max_answers,omitempty"`
	OnAllDown  RecordOnAllDown `yaml:"on_all_down,omitempty"` // fail_open (default) | nodata | fallback
	Fallback   *Fallback       `yaml:"fallback,omitempty"`
}

// Fallback is what a steered record answers when nothing is available.
type Fallback struct {
	Type   string     `yaml:"type,omitempty"`
	Values StringList `yaml:"values,omitempty"`
}

// Transfer allows AXFR and sends NOTIFY.
type Transfer struct {
	Allow  StringList `yaml:"allow,omitempty"`  // CIDRs
	Notify StringList `yaml:"notify,omitempty"` // host:port of secondaries
}

// ParsePrefix parses a CIDR, or a bare address as a host prefix.
func ParsePrefix(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}
