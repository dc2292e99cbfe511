package config

import (
	"fmt"
	"time"
)

// Defaults used by SetDefaults. They live here, in one place, so the README's
// config reference and the code cannot disagree.
const (
	DefaultAdminAddr           = "127.0.0.1:9090"
	DefaultGrace               = 15 * time.Second
	DefaultCheckInterval       = 5 * time.Second
	DefaultCheckTimeout        = 2 * time.Second
	DefaultRise                = 2
	DefaultFall                = 2
	DefaultJitter              = 0.1
	DefaultMaxAnswers          = 4
	DefaultUDPSize             = 1232
	DefaultDegradedTTL         = 10
	DefaultRecordTTL           = 300
	DefaultSOATTL              = 3600
	DefaultSOAMinimum          = 300
	DefaultDNSSECAlgorithm     = "ecdsap256sha256"
	DefaultOutlierFailures     = 5
	DefaultOutlierEjection     = 30 * time.Second
	DefaultOutlierMaxEjection  = 300 * time.Second
	DefaultOutlierMaxEjectPct  = 50
	DefaultMirrorMaxBody       = 64 << 10
	DefaultMirrorTimeout       = 5 * time.Second
	DefaultMirrorInFlight      = 64
	DefaultRetryBudgetPercent  = 20
	DefaultMaxRetryBody        = 64 << 10
	DefaultReadHeaderTimeout   = 10 * time.Second
	DefaultIdleTimeout         = 120 * time.Second
	DefaultMaxHeaderBytes      = 64 << 10
	DefaultMaxConns            = 10000
	DefaultMaxIdleConnsPerHost = 64
	DefaultHealthInFlight      = 256
	// DefaultAccessLogBuffer bounds the bytes of access log lines held for
	// their destination (those queued and the batch being written): about
	// ten thousand typical lines, so a disk stall of a fraction of a second
	// at tens of thousands of requests a second loses nothing.
	DefaultAccessLogBuffer = 4 << 20
	// DefaultTracingService is the service.name exported spans carry.
	DefaultTracingService = "meridian"
	// Request-path limits; the README's "Limits and defaults" table says
	// why each has its value.
	DefaultRouteTimeout           = 15 * time.Second // Envoy's route timeout
	DefaultBodyTimeout            = 30 * time.Second
	DefaultMinBodyRate            = 512 // bytes per second
	DefaultBodyRateGrace          = 10 * time.Second
	DefaultUpstreamIdleTimeout    = 60 * time.Second // nginx's proxy_read_timeout
	DefaultMaxResponseHeaderBytes = 64 << 10
	// Edge policies (package policy); the README's policy sections say
	// why each has its value.
	DefaultRateLimitPer       = time.Second
	DefaultRateLimitKeys      = 65536 // buckets per route: about 6 MiB
	DefaultAuthRealm          = "meridian"
	DefaultJWTLeeway          = 60 * time.Second // Envoy's clock_skew_seconds
	DefaultJWKSRefresh        = 10 * time.Minute // Envoy's remote JWKS cache_duration
	DefaultForwardAuthTimeout = 2 * time.Second
	DefaultRedirectCode       = 302
	DefaultCompressMinSize    = 1024 // Traefik's minResponseBodyBytes
	// Circuit breakers per pool: Envoy's defaults for connections, pending
	// and requests. Retries are bounded by the route's retry budget first;
	// this caps them in flight per pool.
	DefaultPoolMaxConnections = 1024
	DefaultPoolMaxPending     = 1024
	DefaultPoolMaxRequests    = 1024
	DefaultPoolMaxRetries     = 1024
	// Rollouts, history and audit (issue 17's features).
	DefaultRolloutInterval     = time.Minute
	DefaultRolloutFailureLimit = 2
	DefaultRolloutDeadline     = 30 * time.Minute
	DefaultRolloutMinRequests  = 100
	DefaultRolloutSuccessRate  = 99.0
	DefaultConfigHistory       = 50
	DefaultRolloutPrefix       = "meridian/rollouts"
	DefaultAuditEntries        = 1000
	// The fleet (package fleet): Consul KV folder, session TTL (Consul's
	// minimum), and the health quorum.
	DefaultFleetPrefix        = "meridian/fleet"
	DefaultFleetSessionTTL    = 10 * time.Second
	DefaultQuorumMinReporters = 2
	DefaultQuorumDownRatio    = 0.5
	// MaxInformationalResponses is how many 1xx responses one request may
	// relay; http.Transport stops at the same count without a trace hook.
	MaxInformationalResponses = 5
)

// DefaultCompressTypes are the media types compressed when compress.types
// is not set: text and the structured formats that compress well.
var DefaultCompressTypes = []string{
	"text/*", "application/json", "application/javascript", "application/xml",
	"application/x-ndjson", "application/wasm", "image/svg+xml",
}

// DefaultCORSMethods are the methods a CORS policy allows when it names none.
var DefaultCORSMethods = []string{"GET", "HEAD", "POST"}

// SetDefaults fills every unset field that has a default. Parse calls it
// before Validate; tests that build a Config by hand call it too.
func (c *Config) SetDefaults() {
	def(&c.Listen.Admin, DefaultAdminAddr)
	def(&c.Log.Level, "info")
	def(&c.Log.Format, "json")
	def(&c.TLS.MinVersion, "1.2")
	def(&c.TLS.UnknownSNI, "default")
	def(&c.Rollouts.ConsulPrefix, DefaultRolloutPrefix)
	if a := c.TLS.ACME; a != nil {
		def(&a.Directory, DefaultACMEDirectory)
		if len(a.Challenges) == 0 {
			a.Challenges = []string{ChallengeHTTP01, ChallengeTLSALPN01}
		}
	}
	if c.Shutdown.Grace == 0 {
		c.Shutdown.Grace = Duration(DefaultGrace)
	}
	if c.Consul != nil {
		def(&c.Consul.Address, "127.0.0.1:8500")
		if r := c.Consul.Register; r != nil {
			def(&r.Name, "meridian")
			if r.CheckInterval == 0 {
				r.CheckInterval = Duration(10 * time.Second)
			}
		}
		if f := c.Consul.Fleet; f != nil {
			def(&f.Prefix, DefaultFleetPrefix)
			defDur(&f.SessionTTL, DefaultFleetSessionTTL)
		}
	}
	if c.Geo.ECS == nil {
		t := true
		c.Geo.ECS = &t
	}

	h := &c.HTTP
	defDur(&h.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	defDur(&h.IdleTimeout, DefaultIdleTimeout)
	if h.MaxHeaderBytes == 0 {
		h.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	defInt(&h.MaxConns, DefaultMaxConns)
	defInt(&h.MaxIdleConnsPerHost, DefaultMaxIdleConnsPerHost)
	def(&h.Engine, DefaultHTTPEngine)
	defDur(&h.RouteTimeout, DefaultRouteTimeout)
	defDur(&h.BodyTimeout, DefaultBodyTimeout)
	if h.MinBodyRate == 0 {
		h.MinBodyRate = DefaultMinBodyRate
	}
	defDur(&h.BodyRateGrace, DefaultBodyRateGrace)
	defDur(&h.UpstreamIdleTimeout, DefaultUpstreamIdleTimeout)
	if h.MaxResponseHeaderBytes == 0 {
		h.MaxResponseHeaderBytes = DefaultMaxResponseHeaderBytes
	}
	if al := &h.AccessLog; al.Enabled() {
		def(&al.To, AccessLogStderr)
		def(&al.Format, AccessLogJSON)
		if al.Sample == nil {
			one := 1.0
			al.Sample = &one
		}
		if al.Buffer == 0 {
			al.Buffer = DefaultAccessLogBuffer
		}
	}
	if tr := c.Tracing; tr != nil {
		if tr.Sample == nil {
			one := 1.0
			tr.Sample = &one
		}
		def(&tr.ServiceName, DefaultTracingService)
	}

	d := &c.DNS
	defInt(&d.UDPSize, DefaultUDPSize)
	defInt(&d.MaxAnswers, DefaultMaxAnswers)
	defDur(&d.TCPIdle, 10*time.Second)
	defDur(&d.TCPRead, 2*time.Second)
	defInt(&d.TCPMaxConns, 1000)
	if d.DegradedTTL == 0 {
		d.DegradedTTL = DefaultDegradedTTL
	}
	defDur(&d.NotifyPeriod, 10*time.Second)
	if r := d.RRL; r != nil {
		defInt(&r.ResponsesPerSecond, 10)
		defInt(&r.Slip, 2)
		defDur(&r.Window, 15*time.Second)
		defInt(&r.IPv4Prefix, 24)
		defInt(&r.IPv6Prefix, 56)
	}
	defInt(&c.Health.MaxInFlight, DefaultHealthInFlight)
	if q := c.Health.Quorum; q != nil {
		defInt(&q.MinReporters, DefaultQuorumMinReporters)
		if q.DownRatio == 0 {
			q.DownRatio = DefaultQuorumDownRatio
		}
	}

	for _, ch := range c.Checks {
		if ch != nil {
			ch.SetDefaults()
		}
	}
	for _, p := range c.Pools {
		if p == nil {
			continue
		}
		def(&p.Balance, "round_robin")
		def(&p.OnAllDown, "fail_open")
		def(&p.Protocol, "auto")
		for i := range p.Endpoints {
			if p.Endpoints[i].Weight == 0 {
				p.Endpoints[i].Weight = 1
			}
		}
		if p.Outlier == nil {
			// Passive detection is on unless switched off: a pool without an
			// active check must still stop sending to a dead port.
			p.Outlier = &Outlier{}
		}
		p.Outlier.SetDefaults()
		if p.Limits == nil {
			p.Limits = &PoolLimits{}
		}
		defInt(&p.Limits.MaxConnections, DefaultPoolMaxConnections)
		defInt(&p.Limits.MaxPending, DefaultPoolMaxPending)
		defInt(&p.Limits.MaxRequests, DefaultPoolMaxRequests)
		defInt(&p.Limits.MaxRetries, DefaultPoolMaxRetries)
		if p.Consul != nil {
			def(&p.Consul.Health, "passing")
		}
	}
	for _, s := range c.Services {
		if s != nil {
			def(&s.Policy, "failover")
		}
	}
	for i, r := range c.Routes {
		if r == nil {
			continue
		}
		if r.Name == "" {
			r.Name = fmt.Sprintf("route-%d", i)
		}
		if m := r.Mirror; m != nil {
			if m.MaxBody == 0 {
				m.MaxBody = DefaultMirrorMaxBody
			}
			defDur(&m.Timeout, DefaultMirrorTimeout)
			defInt(&m.MaxInFlight, DefaultMirrorInFlight)
		}
		if rt := r.Retry; rt != nil {
			if len(rt.On) == 0 {
				rt.On = StringList{"connect_failure", "reset"}
			}
			if rt.BudgetPercent == 0 {
				rt.BudgetPercent = DefaultRetryBudgetPercent
			}
			if rt.MaxRetryBody == 0 {
				rt.MaxRetryBody = DefaultMaxRetryBody
			}
		}
		r.setPolicyDefaults()
		for _, e := range r.Split {
			if e != nil && e.When == nil && e.Weight == nil {
				one := 1
				e.Weight = &one
			}
		}
	}
	for _, z := range c.Zones {
		if z == nil {
			continue
		}
		if z.SOA.TTL == 0 {
			z.SOA.TTL = DefaultSOATTL
		}
		if z.SOA.Minimum == 0 {
			z.SOA.Minimum = DefaultSOAMinimum
		}
		defDur(&z.SOA.Refresh, time.Hour)
		defDur(&z.SOA.Retry, 15*time.Minute)
		defDur(&z.SOA.Expire, 7*24*time.Hour)
		if z.DegradedTTL == 0 {
			z.DegradedTTL = c.DNS.DegradedTTL
		}
		if z.DNSSEC != nil && z.DNSSEC.Algorithm == "" {
			z.DNSSEC.Algorithm = DefaultDNSSECAlgorithm
		}
		for _, r := range z.Records {
			if r == nil {
				continue
			}
			if r.TTL == 0 {
				r.TTL = DefaultRecordTTL
			}
			if r.Service != "" {
				defInt(&r.MaxAnswers, c.DNS.MaxAnswers)
				def(&r.OnAllDown, "fail_open")
			}
		}
	}
}

// SetDefaults fills the check's unset fields. Config.SetDefaults calls it
// for every check; a test that hands a check built in code to the health
// engine or prober calls it too, since they read every field as set.
func (ch *Check) SetDefaults() {
	defDur(&ch.Interval, DefaultCheckInterval)
	if ch.Timeout == 0 {
		ch.Timeout = Duration(min(DefaultCheckTimeout, ch.Interval.D()/2))
	}
	defInt(&ch.Rise, DefaultRise)
	defInt(&ch.Fall, DefaultFall)
	if ch.Jitter == 0 {
		ch.Jitter = DefaultJitter
	}
	def(&ch.Initial, "down")
	switch ch.Type {
	case "http", "https":
		def(&ch.Method, "GET")
		def(&ch.Path, "/")
		if len(ch.Expect) == 0 {
			ch.Expect = []StatusRange{{200, 399}}
		}
	case "dns":
		def(&ch.QType, "A")
		def(&ch.RCode, "NOERROR")
	}
}

// SetDefaults fills the outlier block's unset fields. Config.SetDefaults
// calls it for every pool; a test that hands an outlier block built in code
// to the health engine calls it too, since the engine reads every field as
// set.
func (o *Outlier) SetDefaults() {
	defInt(&o.ConsecutiveFailures, DefaultOutlierFailures)
	defDur(&o.Ejection, DefaultOutlierEjection)
	defDur(&o.MaxEjection, max(DefaultOutlierMaxEjection, o.Ejection.D()))
	defInt(&o.MaxEjectedPercent, DefaultOutlierMaxEjectPct)
}

// def sets *s to v when unset; it takes the config's string enums too.
// DefaultHTTPEngine is the plain listener's HTTP/1.1 server (http.engine).
const DefaultHTTPEngine = HTTPEngineFast

func def[S ~string](s *S, v S) {
	if *s == "" {
		*s = v
	}
}

func defInt(i *int, v int) {
	if *i == 0 {
		*i = v
	}
}

func defDur(d *Duration, v time.Duration) {
	if *d == 0 {
		*d = Duration(v)
	}
}

// setPolicyDefaults fills the defaults of the route's edge policies.
func (r *Route) setPolicyDefaults() {
	if rl := r.RateLimit; rl != nil {
		defDur(&rl.Per, DefaultRateLimitPer)
		defInt(&rl.Burst, rl.Requests)
		if rl.Key == (RateLimitKey{}) {
			rl.Key = RateLimitKey{Kind: KeyClientIP}
		}
		def(&rl.Scope, ScopeInstance)
		defInt(&rl.MaxKeys, DefaultRateLimitKeys)
	}
	if b := r.BasicAuth; b != nil {
		def(&b.Realm, DefaultAuthRealm)
	}
	if j := r.JWT; j != nil {
		if j.Leeway == nil {
			l := Duration(DefaultJWTLeeway)
			j.Leeway = &l
		}
		defDur(&j.Refresh, DefaultJWKSRefresh)
	}
	if f := r.ForwardAuth; f != nil {
		defDur(&f.Timeout, DefaultForwardAuthTimeout)
	}
	if c := r.CORS; c != nil && len(c.Methods) == 0 {
		c.Methods = append(StringList(nil), DefaultCORSMethods...)
	}
	if rd := r.Redirect; rd != nil {
		defInt(&rd.Code, DefaultRedirectCode)
	}
	if c := r.Compress; c != nil {
		if len(c.Encodings) == 0 {
			c.Encodings = []Encoding{EncodingZstd, EncodingBr, EncodingGzip}
		}
		if c.MinSize == 0 {
			c.MinSize = DefaultCompressMinSize
		}
		if len(c.Types) == 0 {
			c.Types = append(StringList(nil), DefaultCompressTypes...)
		}
	}
}
