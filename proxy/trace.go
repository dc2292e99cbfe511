package proxy

import (
	"context"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	oteltrace "go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/meridian-lb/meridian/config"
	"github.com/meridian-lb/meridian/internal/promutil"
	"github.com/meridian-lb/meridian/routing"
)

// Tracing (the tracing: block) has two parts.
//
// Propagation (W3C Trace Context) is plain code: with tracing on, every
// proxied request carries a traceparent upstream. A valid inbound
// traceparent is continued: its trace id is kept, whoever sent it (that is
// what lets a browser or a mobile app correlate its own spans), and the
// proxy's hop gets a span id of its own. The sampled flag is decided here,
// by tracing.sample, except for requests from http.trusted_proxies, whose
// flag is kept: an Internet client must not be able to turn on the export
// of every request it sends, while a tier of our own keeps its trace whole.
// Without a valid traceparent a trace starts here. A valid tracestate is
// passed on; an invalid traceparent drops it, as the spec requires.
//
// Export (tracing.otlp) uses the OpenTelemetry SDK with the OTLP/HTTP
// exporter. The spans are made when the request ends, from what the
// exchange recorded (the hop, each upstream attempt, the mirror copy), and
// only for sampled requests, so an unsampled request makes no OpenTelemetry
// call at all, and with tracing off nothing but a nil check runs. Span ids
// are chosen by the proxy (they are in the headers before any span exists)
// and handed to the SDK through the context (presetIDs). Spans queue in the
// SDK's batch processor, bounded at maxQueuedSpans: when the collector is
// slow or down, spans are dropped, never waited for.

// tracing is a table's compiled tracing: block.
type tracing struct {
	sample float64
	exp    *traceExporter // nil: propagate only
}

// Bounds of the export.
const (
	maxQueuedSpans   = 2048            // spans waiting for the collector
	maxSpansPerBatch = 512             // spans per OTLP request
	spanBatchTimeout = 5 * time.Second // longest a span waits for its batch
	exportTimeout    = 10 * time.Second
	// maxTracestate is the longest tracestate passed on; W3C asks that at
	// least 512 characters be propagated.
	maxTracestate = 512
	// maxTracestateMembers is W3C's limit on tracestate list members.
	maxTracestateMembers = 32
)

// traceExporters are a handler's OTLP exporters, by collector URL and
// service name, shared by every table that names the same ones.
type traceExporters struct {
	log      *zap.Logger
	exported prometheus.Counter
	failed   prometheus.Counter
	byKey    map[string]*traceExporter // guarded by Handler.stateMu
}

// traceExporter is one collector's tracer provider.
type traceExporter struct {
	tp     *sdktrace.TracerProvider
	tracer oteltrace.Tracer
}

func (te *traceExporters) init(reg prometheus.Registerer, lg *zap.Logger) {
	te.log = lg.Named("tracing")
	spans := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "meridian_tracing_spans_total",
		Help: "Spans sent to the OTLP collector, by result: exported, failed (the collector refused them or could not be reached).",
	}, []string{"result"})
	if reg != nil {
		spans = promutil.Logged(reg, spans, lg)
	}
	te.exported = spans.WithLabelValues("exported")
	te.failed = spans.WithLabelValues("failed")
	te.byKey = map[string]*traceExporter{}
}

// compile builds a table's tracing, making the exporter when no earlier
// table did. The caller holds Handler.stateMu.
func (te *traceExporters) compile(c *config.Tracing) (*tracing, error) {
	if c == nil {
		return nil, nil
	}
	tr := &tracing{sample: 1}
	if c.Sample != nil {
		tr.sample = *c.Sample
	}
	if c.OTLP == "" {
		return tr, nil
	}
	name := c.ServiceName
	if name == "" {
		name = config.DefaultTracingService
	}
	key := c.OTLP + "\x00" + name
	e := te.byKey[key]
	if e == nil {
		var err error
		if e, err = te.open(c.OTLP, name); err != nil {
			return nil, config.Problem{Path: "tracing.otlp", Msg: err.Error()}
		}
		te.byKey[key] = e
	}
	tr.exp = e
	return tr, nil
}

// open makes the tracer provider for a collector. Nothing is sent until a
// span ends.
func (te *traceExporters) open(endpoint, service string) (*traceExporter, error) {
	if u, err := url.Parse(endpoint); err == nil && (u.Path == "" || u.Path == "/") {
		endpoint = strings.TrimSuffix(endpoint, "/") + "/v1/traces"
	}
	exp, err := otlptracehttp.New(context.Background(),
		otlptracehttp.WithEndpointURL(endpoint),
		otlptracehttp.WithTimeout(exportTimeout))
	if err != nil {
		return nil, err
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(&countedExporter{SpanExporter: exp, te: te, endpoint: endpoint},
			sdktrace.WithMaxQueueSize(maxQueuedSpans),
			sdktrace.WithMaxExportBatchSize(maxSpansPerBatch),
			sdktrace.WithBatchTimeout(spanBatchTimeout),
			sdktrace.WithExportTimeout(exportTimeout)),
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", service))),
		// Only sampled requests make spans, so every span is kept.
		sdktrace.WithSampler(sdktrace.AlwaysSample()),
		sdktrace.WithIDGenerator(presetIDs{}),
	)
	return &traceExporter{tp: tp, tracer: tp.Tracer("github.com/meridian-lb/meridian/proxy")}, nil
}

// install shuts down, in the background, the exporters the installed
// table does not use; their queued spans are sent first. The caller holds
// Handler.stateMu.
func (te *traceExporters) install(tr *tracing) {
	for key, e := range te.byKey {
		if tr != nil && tr.exp == e {
			continue
		}
		delete(te.byKey, key)
		go e.shutdown(te.log)
	}
}

// closeAll shuts every exporter down, sending what is queued, within
// exportTimeout. The caller holds Handler.stateMu.
func (te *traceExporters) closeAll() {
	var wg sync.WaitGroup
	for _, e := range te.byKey {
		wg.Go(func() { e.shutdown(te.log) })
	}
	wg.Wait()
	clear(te.byKey)
}

func (e *traceExporter) shutdown(lg *zap.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), exportTimeout)
	defer cancel()
	if err := e.tp.Shutdown(ctx); err != nil {
		lg.Warn("tracing exporter shutdown", zap.Error(err))
	}
}

// flush sends the queued spans now (tests).
func (te *traceExporters) flush(ctx context.Context) {
	for _, e := range te.byKey {
		_ = e.tp.ForceFlush(ctx)
	}
}

// countedExporter counts the spans the collector took or refused, and logs
// a failure once per run of failures. It reports success to the batch
// processor in every case, which would otherwise hand each error to
// OpenTelemetry's process-wide error handler (standard log output).
type countedExporter struct {
	sdktrace.SpanExporter
	te       *traceExporters
	endpoint string
	failing  atomic.Bool
}

func (c *countedExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	err := c.SpanExporter.ExportSpans(ctx, spans)
	if err != nil {
		c.te.failed.Add(float64(len(spans)))
		if !c.failing.Swap(true) {
			c.te.log.Warn("exporting spans failed; they are dropped until the collector answers", zap.String("otlp", c.endpoint), zap.Error(err))
		}
		return nil
	}
	c.te.exported.Add(float64(len(spans)))
	if c.failing.Swap(false) {
		c.te.log.Info("exporting spans works again", zap.String("otlp", c.endpoint))
	}
	return nil
}

// presetIDs is the SDK's id generator: it returns the ids the proxy chose
// (and already sent in headers), which withIDs put in the context.
type presetIDs struct{}

type presetIDKey struct{}

type presetID struct {
	trace oteltrace.TraceID
	span  oteltrace.SpanID
}

func withIDs(ctx context.Context, tid [16]byte, sid [8]byte) context.Context {
	return context.WithValue(ctx, presetIDKey{}, presetID{tid, sid})
}

func (presetIDs) NewIDs(ctx context.Context) (oteltrace.TraceID, oteltrace.SpanID) {
	if id, ok := ctx.Value(presetIDKey{}).(presetID); ok {
		return id.trace, id.span
	}
	return newTraceID(), newSpanID()
}

func (presetIDs) NewSpanID(ctx context.Context, _ oteltrace.TraceID) oteltrace.SpanID {
	if id, ok := ctx.Value(presetIDKey{}).(presetID); ok {
		return id.span
	}
	return newSpanID()
}

// newTraceID and newSpanID make random non-zero ids. math/rand/v2's
// generator is seeded from the system and unpredictable, as W3C asks.
func newTraceID() (id [16]byte) {
	for id == ([16]byte{}) {
		a, b := rand.Uint64(), rand.Uint64()
		for i := range 8 {
			id[i], id[8+i] = byte(a>>(8*i)), byte(b>>(8*i))
		}
	}
	return id
}

func newSpanID() (id [8]byte) {
	for id == ([8]byte{}) {
		a := rand.Uint64()
		for i := range 8 {
			id[i] = byte(a >> (8 * i))
		}
	}
	return id
}

// traceState is one request's part in a trace (exchange.tr). It exists
// only when tracing is on and is touched only by the handler's goroutine.
type traceState struct {
	traceID [16]byte
	parent  [8]byte // the inbound parent span; zero when the trace starts here
	span    [8]byte // the proxy hop's span
	next    [8]byte // the parent id sent with the first attempt: its span when exporting, else span
	sampled bool
	export  bool      // sampled, and spans are exported: attempts are recorded
	state   string    // tracestate to pass on
	header  string    // the first attempt's traceparent, formatted once
	vals    [2]string // header and state, for outbound headers to share

	attempts []attemptSpan // when export
}

// attemptSpan is what one upstream attempt's span needs.
type attemptSpan struct {
	id     [8]byte
	t0, t1 time.Time
	pool   *routing.Pool
	ep     *routing.Endpoint
	status int
	kind   string
}

// trace returns the request's trace state, making it on first use;
// tracing must be on (x.st.tracing set).
func (x *exchange) trace() *traceState {
	if x.tr == nil {
		x.tr = newTraceState(x)
	}
	return x.tr
}

func newTraceState(x *exchange) *traceState {
	conf := x.st.tracing
	t := &traceState{}
	var flags byte
	ok := false
	if v := x.req.Header["Traceparent"]; len(v) == 1 {
		t.traceID, t.parent, flags, ok = parseTraceparent(v[0])
	}
	switch {
	case ok && x.trusted:
		t.sampled = flags&1 != 0
	default:
		s := conf.sample
		t.sampled = s >= 1 || s > 0 && rand.Float64() < s
	}
	if ok {
		t.state = tracestate(x.req.Header["Tracestate"])
	} else {
		t.traceID, t.parent = newTraceID(), [8]byte{}
	}
	t.span = newSpanID()
	t.next = t.span
	if t.sampled && conf.exp != nil {
		t.export = true
		t.next = newSpanID()
	}
	return t
}

// traceHeaders sets traceparent and tracestate on an outbound header when
// tracing is on (setForwarded calls it for the relayed request, upgrades
// and mirror copies). With tracing off the inbound headers pass as they
// came, as before tracing existed, and this inlined check is all it costs.
func (x *exchange) traceHeaders(hdr http.Header) {
	if x.st != nil && x.st.tracing != nil {
		x.setTraceHeaders(hdr)
	}
}

func (x *exchange) setTraceHeaders(hdr http.Header) {
	t := x.trace()
	if t.header == "" {
		t.header = formatTraceparent(t.traceID, t.next, t.sampled)
		t.vals = [2]string{t.header, t.state}
	}
	// The values live in the trace state, which is never reused: the
	// transport may read the header after the handler returned.
	hdr["Traceparent"] = t.vals[0:1:1]
	if t.state == "" {
		delete(hdr, "Tracestate")
		return
	}
	hdr["Tracestate"] = t.vals[1:2:2]
}

// attemptStarted times an upstream attempt (for the access log's upstream
// duration and the attempt's span) and, for an exported trace, records the
// attempt; a retry gets a span id of its own, sent in a copy of the header
// (the transport may still hold the earlier attempt's). beginAttempt calls
// it when the table logs or exports.
func (x *exchange) attemptStarted(req *http.Request) *http.Request {
	c := &x.cur
	c.t0 = time.Now()
	t := x.tr
	if t == nil || !t.export {
		return req
	}
	a := attemptSpan{id: t.next, t0: c.t0, pool: c.pool, ep: c.ep}
	if len(t.attempts) > 0 {
		a.id = newSpanID()
		if _, ok := req.Header["Traceparent"]; ok {
			h := make(http.Header, len(req.Header))
			for k, v := range req.Header {
				h[k] = v
			}
			h["Traceparent"] = []string{formatTraceparent(t.traceID, a.id, true)}
			req.Header = h
		}
	}
	t.attempts = append(t.attempts, a)
	return req
}

// attemptEnded records the end of the attempt that started at t0: the
// upstream duration, the upstream status (0 when it failed) and, for an
// exported trace, the attempt's outcome. endAttempt defers it, so kind is
// the attempt's failure kind as endAttempt settled it.
func (x *exchange) attemptEnded(t0 time.Time, res *http.Response, kind *string) {
	now := time.Now()
	x.upDur += now.Sub(t0)
	x.upStatus = 0
	if res != nil {
		x.upStatus = res.StatusCode
	}
	if t := x.tr; t != nil && t.export && len(t.attempts) > 0 {
		a := &t.attempts[len(t.attempts)-1]
		a.t1, a.status, a.kind = now, x.upStatus, *kind
	}
}

// observe ends the request's trace and writes its access log line; finish
// calls it when the table has either.
func (h *Handler) observe(x *exchange, code int, d time.Duration) {
	if tr := x.st.tracing; tr != nil {
		if t := x.trace(); t.export {
			tr.exp.spans(x, t, code, x.start.Add(d))
		}
	}
	if x.st.accessLog != nil {
		h.logAccess(x, code, d)
	}
}

// spans exports the hop's span and its attempts'.
func (e *traceExporter) spans(x *exchange, t *traceState, code int, end time.Time) {
	r := x.req
	ctx := context.Background()
	if t.parent != ([8]byte{}) {
		ctx = oteltrace.ContextWithRemoteSpanContext(ctx, oteltrace.NewSpanContext(oteltrace.SpanContextConfig{
			TraceID: t.traceID, SpanID: t.parent, TraceFlags: oteltrace.FlagsSampled, Remote: true,
		}))
	}
	route, svc, pool, ep := routeNames(x)
	name := r.Method
	if route != "" {
		name += " " + route
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	client := ""
	if x.client.IsValid() {
		client = x.client.String()
	} else {
		client = hostOf(r.RemoteAddr)
	}
	attrs := []attribute.KeyValue{
		attribute.String("http.request.method", r.Method),
		attribute.String("url.scheme", scheme),
		attribute.String("url.path", r.URL.EscapedPath()),
		attribute.String("server.address", r.Host),
		attribute.String("client.address", client),
		attribute.String("network.protocol.version", protoVersion(r)),
		attribute.Int("http.response.status_code", code),
		attribute.String("meridian.route", route),
		attribute.String("meridian.service", svc),
		attribute.String("meridian.pool", pool),
		attribute.String("meridian.endpoint", ep),
		attribute.Int("meridian.retries", x.retries),
		attribute.String("meridian.request_id", x.requestID),
	}
	if x.errKind != "" {
		attrs = append(attrs, attribute.String("error.type", x.errKind))
	}
	_, sp := e.tracer.Start(withIDs(ctx, t.traceID, t.span), name,
		oteltrace.WithSpanKind(oteltrace.SpanKindServer), oteltrace.WithTimestamp(x.start), oteltrace.WithAttributes(attrs...))
	if code >= 500 || x.errKind != "" && !clientKind(x.errKind) {
		sp.SetStatus(codes.Error, x.errKind)
	}
	sp.End(oteltrace.WithTimestamp(end))

	hop := oteltrace.ContextWithSpanContext(context.Background(), oteltrace.NewSpanContext(oteltrace.SpanContextConfig{
		TraceID: t.traceID, SpanID: t.span, TraceFlags: oteltrace.FlagsSampled,
	}))
	for i, a := range t.attempts {
		t1 := a.t1
		if t1.IsZero() {
			t1 = end
		}
		attrs := []attribute.KeyValue{
			attribute.String("http.request.method", r.Method),
			attribute.String("meridian.pool", poolName(a.pool)),
			attribute.String("meridian.endpoint", endpointName(a.ep)),
		}
		attrs = append(attrs, endpointAttrs(a.ep)...)
		if i > 0 {
			attrs = append(attrs, attribute.Int("http.request.resend_count", i))
		}
		if a.status != 0 {
			attrs = append(attrs, attribute.Int("http.response.status_code", a.status))
		}
		if a.kind != "" {
			attrs = append(attrs, attribute.String("error.type", a.kind))
		}
		_, s := e.tracer.Start(withIDs(hop, t.traceID, a.id), r.Method+" "+poolName(a.pool),
			oteltrace.WithSpanKind(oteltrace.SpanKindClient), oteltrace.WithTimestamp(a.t0), oteltrace.WithAttributes(attrs...))
		if a.kind != "" || a.status >= 500 {
			s.SetStatus(codes.Error, a.kind)
		}
		s.End(oteltrace.WithTimestamp(t1))
	}
}

// endpointAttrs are server.address and server.port of an endpoint.
func endpointAttrs(ep *routing.Endpoint) []attribute.KeyValue {
	if ep == nil {
		return nil
	}
	host, port, err := net.SplitHostPort(ep.Address)
	if err != nil {
		return []attribute.KeyValue{attribute.String("server.address", ep.Address)}
	}
	n, _ := strconv.Atoi(port)
	return []attribute.KeyValue{attribute.String("server.address", host), attribute.Int("server.port", n)}
}

func poolName(p *routing.Pool) string {
	if p == nil {
		return ""
	}
	return p.Name
}

// protoVersion is network.protocol.version: 1.0, 1.1 or 2.
func protoVersion(r *http.Request) string {
	switch {
	case r.ProtoMajor == 2:
		return "2"
	case r.ProtoMinor == 0:
		return "1.0"
	}
	return "1.1"
}

// mirrorSpan is a mirror copy's span, when its request's trace is
// exported: a child of the proxy hop, like the attempts.
type mirrorSpan struct {
	exp     *traceExporter
	traceID [16]byte
	parent  [8]byte
	id      [8]byte
}

// traceMirror gives a mirror copy a span of its own, in its traceparent
// too, when the request's trace is exported; otherwise the copy carries
// the traceparent setForwarded gave it, and no span is made.
func (x *exchange) traceMirror(hdr http.Header) *mirrorSpan {
	t := x.tr
	if t == nil || !t.export {
		return nil
	}
	m := &mirrorSpan{exp: x.st.tracing.exp, traceID: t.traceID, parent: t.span, id: newSpanID()}
	if _, ok := hdr["Traceparent"]; ok {
		hdr["Traceparent"] = []string{formatTraceparent(t.traceID, m.id, true)}
	}
	return m
}

// roundTrip sends the mirror copy, exporting its span when it has one.
func (j *mirrorJob) roundTrip(rt http.RoundTripper, req *http.Request, pool *routing.Pool, ep *routing.Endpoint) (*http.Response, error) {
	if j.span == nil {
		return rt.RoundTrip(req)
	}
	t0 := time.Now()
	res, err := rt.RoundTrip(req)
	m := j.span
	parent := oteltrace.ContextWithSpanContext(context.Background(), oteltrace.NewSpanContext(oteltrace.SpanContextConfig{
		TraceID: m.traceID, SpanID: m.parent, TraceFlags: oteltrace.FlagsSampled,
	}))
	attrs := []attribute.KeyValue{
		attribute.String("http.request.method", req.Method),
		attribute.String("meridian.pool", poolName(pool)),
		attribute.String("meridian.endpoint", endpointName(ep)),
		attribute.Bool("meridian.mirror", true),
	}
	attrs = append(attrs, endpointAttrs(ep)...)
	if res != nil {
		attrs = append(attrs, attribute.Int("http.response.status_code", res.StatusCode))
	}
	_, s := m.exp.tracer.Start(withIDs(parent, m.traceID, m.id), req.Method+" "+poolName(pool)+" (mirror)",
		oteltrace.WithSpanKind(oteltrace.SpanKindClient), oteltrace.WithTimestamp(t0), oteltrace.WithAttributes(attrs...))
	switch {
	case err != nil:
		s.SetStatus(codes.Error, err.Error())
	case res.StatusCode >= 500:
		s.SetStatus(codes.Error, "")
	}
	s.End()
	return res, err
}

// parseTraceparent parses a W3C traceparent header value. Version 00 must
// be exactly 55 characters; a later version may append fields after a
// dash, which are ignored; version ff, upper-case hex and all-zero ids are
// invalid.
func parseTraceparent(s string) (tid [16]byte, sid [8]byte, flags byte, ok bool) {
	if len(s) < 55 || s[2] != '-' || s[35] != '-' || s[52] != '-' {
		return tid, sid, 0, false
	}
	ver, ok1 := hexByte(s[0], s[1])
	if !ok1 || ver == 0xff || ver == 0 && len(s) != 55 || len(s) > 55 && s[55] != '-' {
		return tid, sid, 0, false
	}
	for i := range tid {
		b, ok := hexByte(s[3+2*i], s[4+2*i])
		if !ok {
			return tid, sid, 0, false
		}
		tid[i] = b
	}
	for i := range sid {
		b, ok := hexByte(s[36+2*i], s[37+2*i])
		if !ok {
			return tid, sid, 0, false
		}
		sid[i] = b
	}
	flags, ok = hexByte(s[53], s[54])
	if !ok || tid == ([16]byte{}) || sid == ([8]byte{}) {
		return tid, sid, 0, false
	}
	return tid, sid, flags, true
}

// hexByte decodes two lower-case hex digits.
func hexByte(a, b byte) (byte, bool) {
	x, ok1 := hexDigit(a)
	y, ok2 := hexDigit(b)
	return x<<4 | y, ok1 && ok2
}

func hexDigit(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// formatTraceparent formats a version 00 traceparent.
func formatTraceparent(tid [16]byte, sid [8]byte, sampled bool) string {
	var b [55]byte
	b[0], b[1], b[2] = '0', '0', '-'
	appendHex(b[3:3], tid[:])
	b[35] = '-'
	appendHex(b[36:36], sid[:])
	b[52], b[53], b[54] = '-', '0', '0'
	if sampled {
		b[54] = '1'
	}
	return string(b[:])
}

func appendHex(dst, src []byte) []byte {
	const hexd = "0123456789abcdef"
	for _, c := range src {
		dst = append(dst, hexd[c>>4], hexd[c&15])
	}
	return dst
}

// appendTraceID appends the trace id in hex, as traceparent shows it.
func (t *traceState) appendTraceID(b []byte) []byte { return appendHex(b, t.traceID[:]) }

// tracestate returns the inbound tracestate to pass on: its header lines
// joined, or "" when it is longer than maxTracestate, has more than
// maxTracestateMembers members or a character W3C does not allow.
func tracestate(vals []string) string {
	if len(vals) == 0 {
		return ""
	}
	s := vals[0]
	if len(vals) > 1 {
		s = strings.Join(vals, ",")
	}
	if len(s) > maxTracestate || strings.Count(s, ",") >= maxTracestateMembers {
		return ""
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e {
			return ""
		}
	}
	if strings.TrimSpace(strings.ReplaceAll(s, ",", "")) == "" {
		return ""
	}
	return s
}
