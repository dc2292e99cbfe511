package proxy

import (
	"context"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/meridian-lb/meridian/config"
	"github.com/meridian-lb/meridian/routing"
)

func TestParseTraceparent(t *testing.T) {
	const tid, sid = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	tests := []struct {
		in      string
		ok      bool
		sampled bool
	}{
		{"00-" + tid + "-" + sid + "-01", true, true},
		{"00-" + tid + "-" + sid + "-00", true, false},
		{"00-" + tid + "-" + sid + "-09", true, true},
		{"01-" + tid + "-" + sid + "-01-future-fields", true, true}, // a later version may add fields
		{"01-" + tid + "-" + sid + "-01", true, true},
		{"00-" + tid + "-" + sid + "-01-extra", false, false}, // version 00 is exactly 55 characters
		{"01-" + tid + "-" + sid + "-01x", false, false},
		{"ff-" + tid + "-" + sid + "-01", false, false},
		{"00-" + strings.ToUpper(tid) + "-" + sid + "-01", false, false},
		{"00-00000000000000000000000000000000-" + sid + "-01", false, false},
		{"00-" + tid + "-0000000000000000-01", false, false},
		{"00-" + tid + "-" + sid + "-0g", false, false},
		{"00_" + tid + "-" + sid + "-01", false, false},
		{"00-" + tid[:31] + "-" + sid + "-01", false, false},
		{"", false, false},
	}
	for _, tc := range tests {
		gotT, gotS, flags, ok := parseTraceparent(tc.in)
		if ok != tc.ok || ok && (flags&1 != 0) != tc.sampled {
			t.Errorf("%q: ok %v flags %x, want ok %v sampled %v", tc.in, ok, flags, tc.ok, tc.sampled)
			continue
		}
		if ok && (hex.EncodeToString(gotT[:]) != tid || hex.EncodeToString(gotS[:]) != sid) {
			t.Errorf("%q: ids %x %x", tc.in, gotT, gotS)
		}
	}
	a, b := newTraceID(), newSpanID()
	if got := formatTraceparent(a, b, true); got != "00-"+hex.EncodeToString(a[:])+"-"+hex.EncodeToString(b[:])+"-01" {
		t.Errorf("formatTraceparent = %q", got)
	}
	if _, _, _, ok := parseTraceparent(formatTraceparent(a, b, false)); !ok {
		t.Error("a formatted traceparent does not parse")
	}
}

func TestTracestate(t *testing.T) {
	long := strings.Repeat("k=v,", 40)
	tests := []struct {
		in   []string
		want string
	}{
		{nil, ""},
		{[]string{"rojo=00f067aa0ba902b7"}, "rojo=00f067aa0ba902b7"},
		{[]string{"rojo=1", "congo=2"}, "rojo=1,congo=2"},
		{[]string{long}, ""},
		{[]string{"a=\x01"}, ""},
		{[]string{strings.Repeat("x", 600)}, ""},
		{[]string{" , "}, ""},
	}
	for _, tc := range tests {
		if got := tracestate(tc.in); got != tc.want {
			t.Errorf("%q: got %q, want %q", tc.in, got, tc.want)
		}
	}
}

// upstreamTrace returns the traceparent and tracestate the backend got
// with its last request.
func upstreamTrace(t *testing.T, b *backend) (tp, ts string, n int) {
	t.Helper()
	r, _ := b.lastRequest()
	if r == nil {
		t.Fatal("no upstream request")
	}
	return r.Header.Get("Traceparent"), r.Header.Get("Tracestate"), len(r.Header["Traceparent"])
}

// TestTracePropagation: with tracing on, a valid inbound traceparent keeps
// its trace id and gets the proxy's span as parent; its sampled flag is
// kept from trusted proxies only; without one (or with an invalid one) a
// trace starts here. With tracing off, the headers pass as they came.
func TestTracePropagation(t *testing.T) {
	const tid = "4bf92f3577b34da6a3ce929d0e0e4736"
	const inbound = "00-" + tid + "-00f067aa0ba902b7-01"
	a := newBackend(t, "a", nil)
	logPath := filepath.Join(t.TempDir(), "access.log")
	conf := func(tracing, trusted string) string {
		return tracing + `
http: {trusted_proxies: [` + trusted + `], access_log: {to: ` + logPath + `}}
pools: {a: {endpoints: [{{A}}]}}
services: {sa: {pools: [a]}}
routes: [{name: r, service: sa}]
`
	}
	vars := map[string]string{"A": a.addr}

	t.Run("off passes headers through", func(t *testing.T) {
		e := newEnv(t, conf("", "192.0.2.1/32"), vars)
		e.get("/", "Traceparent", "garbage", "Tracestate", "k=v")
		if tp, ts, _ := upstreamTrace(t, a); tp != "garbage" || ts != "k=v" {
			t.Errorf("traceparent %q tracestate %q, want them as sent", tp, ts)
		}
		e.get("/")
		if tp, _, n := upstreamTrace(t, a); n != 0 {
			t.Errorf("traceparent %q added with tracing off", tp)
		}
		if st := e.h.state.Load(); st.tracing != nil {
			t.Error("tracing compiled in with no tracing block")
		}
	})

	e := newEnv(t, conf("tracing: {sample: 0}", "192.0.2.1/32"), vars)
	t.Run("continued from a client", func(t *testing.T) {
		e.get("/", "Traceparent", inbound, "Tracestate", "rojo=1", "Tracestate", "congo=2")
		tp, ts, n := upstreamTrace(t, a)
		gotT, gotS, flags, ok := parseTraceparent(tp)
		if !ok || n != 1 || hex.EncodeToString(gotT[:]) != tid {
			t.Fatalf("traceparent %q (%d), want trace %s continued", tp, n, tid)
		}
		if hex.EncodeToString(gotS[:]) == "00f067aa0ba902b7" {
			t.Error("the proxy hop did not get a span id of its own")
		}
		if flags != 0 {
			t.Errorf("flags %02x: an untrusted client set sampled, and sample is 0", flags)
		}
		if ts != "rojo=1,congo=2" {
			t.Errorf("tracestate %q", ts)
		}
	})
	t.Run("started here", func(t *testing.T) {
		e.get("/", "Tracestate", "orphan=1")
		tp, ts, _ := upstreamTrace(t, a)
		gotT, _, _, ok := parseTraceparent(tp)
		if !ok || hex.EncodeToString(gotT[:]) == tid {
			t.Errorf("traceparent %q, want a new trace", tp)
		}
		if ts != "" {
			t.Errorf("tracestate %q passed without a traceparent", ts)
		}
	})
	t.Run("invalid restarts", func(t *testing.T) {
		e.get("/", "Traceparent", strings.ToUpper(inbound), "Tracestate", "rojo=1")
		tp, ts, _ := upstreamTrace(t, a)
		if gotT, _, _, ok := parseTraceparent(tp); !ok || hex.EncodeToString(gotT[:]) == strings.ToLower(tid) || ts != "" {
			t.Errorf("traceparent %q tracestate %q, want a new trace and no tracestate", tp, ts)
		}
	})
	t.Run("trace id in the access log", func(t *testing.T) {
		e.get("/logged", "Traceparent", inbound)
		var line map[string]any
		waitFor(t, "the line", func() bool {
			for _, l := range readLines(t, logPath) {
				if m := decodeLine(t, l); m["path"] == "/logged" {
					line = m
					return true
				}
			}
			return false
		})
		if line["trace_id"] != tid {
			t.Errorf("trace_id %v, want %s", line["trace_id"], tid)
		}
	})
	t.Run("sampled flag kept from a trusted proxy", func(t *testing.T) {
		e := newEnv(t, conf("tracing: {sample: 0}", "127.0.0.0/8"), vars)
		e.get("/", "Traceparent", inbound)
		tp, _, _ := upstreamTrace(t, a)
		if _, _, flags, ok := parseTraceparent(tp); !ok || flags != 1 {
			t.Errorf("traceparent %q, want the trusted parent's sampled flag", tp)
		}
		e.get("/", "Traceparent", "00-"+tid+"-00f067aa0ba902b7-00")
		tp, _, _ = upstreamTrace(t, a)
		if _, _, flags, _ := parseTraceparent(tp); flags != 0 {
			t.Errorf("traceparent %q, want the trusted parent's unsampled flag", tp)
		}
	})
	t.Run("sample 1 samples new traces", func(t *testing.T) {
		e := newEnv(t, conf("tracing: {}", "192.0.2.1/32"), vars)
		e.get("/")
		tp, _, _ := upstreamTrace(t, a)
		if _, _, flags, ok := parseTraceparent(tp); !ok || flags != 1 {
			t.Errorf("traceparent %q, want sampled", tp)
		}
	})
}

// otlpReceiver is an in-process OTLP/HTTP collector: it decodes the
// protobuf export requests and keeps their spans.
type otlpReceiver struct {
	url   string
	mu    sync.Mutex
	spans []*tracepb.Span
	res   []*tracepb.ResourceSpans
}

func newOTLPReceiver(t testing.TB) *otlpReceiver {
	r := &otlpReceiver{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, err := io.ReadAll(req.Body)
		if req.URL.Path != "/v1/traces" || req.Header.Get("Content-Type") != "application/x-protobuf" || err != nil {
			http.Error(w, "unexpected request", http.StatusBadRequest)
			return
		}
		var ex coltracepb.ExportTraceServiceRequest
		if err := proto.Unmarshal(body, &ex); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		for _, rs := range ex.ResourceSpans {
			r.res = append(r.res, rs)
			for _, ss := range rs.ScopeSpans {
				r.spans = append(r.spans, ss.Spans...)
			}
		}
		r.mu.Unlock()
		out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(out)
	}))
	t.Cleanup(srv.Close)
	r.url = srv.URL
	return r
}

func (r *otlpReceiver) received() ([]*tracepb.Span, []*tracepb.ResourceSpans) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*tracepb.Span(nil), r.spans...), append([]*tracepb.ResourceSpans(nil), r.res...)
}

func attr(s *tracepb.Span, key string) *commonpb.AnyValue {
	for _, kv := range s.Attributes {
		if kv.Key == key {
			return kv.Value
		}
	}
	return nil
}

func attrString(s *tracepb.Span, key string) string { return attr(s, key).GetStringValue() }
func attrInt(s *tracepb.Span, key string) int64     { return attr(s, key).GetIntValue() }

// TestTraceExportOTLP exports one request's spans to an OTLP/HTTP
// receiver for real: the proxy hop, both attempts of a retried request
// (the first to a dead endpoint) and the mirror copy, linked as parent and
// children, with the ids the upstreams saw in their traceparent.
func TestTraceExportOTLP(t *testing.T) {
	recv := newOTLPReceiver(t)
	live := newBackend(t, "live", nil)
	shadow := newBackend(t, "shadow", nil)
	e := newEnv(t, `
tracing: {otlp: {{OTLP}}, service_name: edge}
pools:
  dead: {endpoints: [{{DEAD}}]}
  live: {endpoints: [{{LIVE}}]}
  shadow: {endpoints: [{{SHADOW}}]}
services:
  web: {pools: [dead, live]}
  shadow: {pools: [shadow]}
routes:
  - {name: www, service: web, mirror: {service: shadow, percent: 100}}
`, map[string]string{"OTLP": recv.url, "DEAD": deadAddr(t), "LIVE": live.addr, "SHADOW": shadow.addr})
	const tid = "4bf92f3577b34da6a3ce929d0e0e4736"
	if res, body := e.get("/x", "Traceparent", "00-"+tid+"-00f067aa0ba902b7-01"); res.StatusCode != 200 || body != "live" {
		t.Fatalf("%d %q", res.StatusCode, body)
	}
	waitFor(t, "the mirror copy", func() bool { return shadow.hits.Load() == 1 })

	var spans []*tracepb.Span
	var res []*tracepb.ResourceSpans
	waitFor(t, "4 spans at the receiver", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		e.h.stateMu.Lock()
		e.h.traces.flush(ctx)
		e.h.stateMu.Unlock()
		cancel()
		spans, res = recv.received()
		return len(spans) >= 4
	})
	if len(spans) != 4 {
		t.Fatalf("%d spans, want 4", len(spans))
	}
	if name := res[0].GetResource().GetAttributes(); len(name) == 0 || name[0].Key != "service.name" || name[0].Value.GetStringValue() != "edge" {
		t.Errorf("resource %v", res[0].GetResource())
	}
	var hop *tracepb.Span
	var attempts, mirrors []*tracepb.Span
	for _, s := range spans {
		if hex.EncodeToString(s.TraceId) != tid {
			t.Errorf("span %q in trace %x", s.Name, s.TraceId)
		}
		switch {
		case s.Kind == tracepb.Span_SPAN_KIND_SERVER:
			hop = s
		case attr(s, "meridian.mirror").GetBoolValue():
			mirrors = append(mirrors, s)
		default:
			attempts = append(attempts, s)
		}
	}
	if hop == nil || len(attempts) != 2 || len(mirrors) != 1 {
		t.Fatalf("hop %v, %d attempts, %d mirrors", hop != nil, len(attempts), len(mirrors))
	}
	if hex.EncodeToString(hop.ParentSpanId) != "00f067aa0ba902b7" || hop.Name != "GET www" {
		t.Errorf("hop %q parent %x", hop.Name, hop.ParentSpanId)
	}
	if attrString(hop, "meridian.route") != "www" || attrString(hop, "meridian.pool") != "live" || attrString(hop, "meridian.endpoint") != live.addr ||
		attrInt(hop, "http.response.status_code") != 200 || attrInt(hop, "meridian.retries") != 1 || attrString(hop, "url.path") != "/x" {
		t.Errorf("hop attributes %v", hop.Attributes)
	}
	if attempts[0].StartTimeUnixNano > attempts[1].StartTimeUnixNano {
		attempts[0], attempts[1] = attempts[1], attempts[0]
	}
	for _, a := range append(attempts, mirrors...) {
		if string(a.ParentSpanId) != string(hop.SpanId) || a.Kind != tracepb.Span_SPAN_KIND_CLIENT {
			t.Errorf("span %q: parent %x kind %v, want a client child of the hop %x", a.Name, a.ParentSpanId, a.Kind, hop.SpanId)
		}
		if a.StartTimeUnixNano < hop.StartTimeUnixNano || a.EndTimeUnixNano < a.StartTimeUnixNano {
			t.Errorf("span %q times %d-%d, hop from %d", a.Name, a.StartTimeUnixNano, a.EndTimeUnixNano, hop.StartTimeUnixNano)
		}
	}
	if a := attempts[0]; attrString(a, "error.type") != kindConnect || attrString(a, "meridian.pool") != "dead" || a.Status.GetCode() != tracepb.Status_STATUS_CODE_ERROR {
		t.Errorf("first attempt %v %v", a.Attributes, a.Status)
	}
	if a := attempts[1]; attrInt(a, "http.response.status_code") != 200 || attrInt(a, "http.request.resend_count") != 1 || attrString(a, "meridian.endpoint") != live.addr {
		t.Errorf("second attempt %v", a.Attributes)
	}
	// The upstreams saw the span of the attempt (or mirror copy) that
	// reached them as their parent.
	tp, _, _ := upstreamTrace(t, live)
	if _, sid, _, _ := parseTraceparent(tp); string(sid[:]) != string(attempts[1].SpanId) {
		t.Errorf("live upstream's parent %x, want the second attempt's span %x", sid, attempts[1].SpanId)
	}
	tp, _, _ = upstreamTrace(t, shadow)
	if _, sid, _, _ := parseTraceparent(tp); string(sid[:]) != string(mirrors[0].SpanId) {
		t.Errorf("shadow upstream's parent %x, want the mirror span %x", sid, mirrors[0].SpanId)
	}
	if got := e.metric("meridian_tracing_spans_total", map[string]string{"result": "exported"}); got != 4 {
		t.Errorf("spans exported = %v", got)
	}
}

// TestTraceExportCollectorDown: a collector that is down costs requests
// nothing; the spans are counted as failed.
func TestTraceExportCollectorDown(t *testing.T) {
	a := newBackend(t, "a", nil)
	e := newEnv(t, `
tracing: {otlp: "http://{{DEAD}}"}
pools: {a: {endpoints: [{{A}}]}}
services: {sa: {pools: [a]}}
routes: [{name: r, service: sa}]
`, map[string]string{"A": a.addr, "DEAD": deadAddr(t)})
	for range 5 {
		if res, _ := e.get("/"); res.StatusCode != 200 {
			t.Fatalf("status %d", res.StatusCode)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	e.h.stateMu.Lock()
	e.h.traces.flush(ctx)
	e.h.stateMu.Unlock()
	if got := e.metric("meridian_tracing_spans_total", map[string]string{"result": "failed"}); got != 10 {
		t.Errorf("failed spans = %v, want 10 (5 hops, 5 attempts)", got)
	}
}

// BenchmarkTracePropagation measures what tracing without export adds to
// a request: parsing the inbound traceparent (or starting a trace), the
// sampling draw and formatting the outbound header.
func BenchmarkTracePropagation(b *testing.B) {
	for _, tc := range []struct{ name, inbound string }{
		{"continued", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
		{"started", ""},
	} {
		b.Run(tc.name, func(b *testing.B) {
			req := &http.Request{Header: http.Header{}}
			if tc.inbound != "" {
				req.Header["Traceparent"] = []string{tc.inbound}
			}
			st := &tableState{tracing: &tracing{sample: 0.01}}
			out := http.Header{}
			b.ReportAllocs()
			for b.Loop() {
				x := exchange{req: req, st: st}
				x.traceHeaders(out)
			}
		})
	}
}

// BenchmarkTraceSpans measures what a sampled, exported request pays on
// its own goroutine when it ends: the hop's span and one attempt's, handed
// to the SDK's batch queue (the OTLP encoding and send happen on the
// exporter's goroutine; a full queue drops spans).
func BenchmarkTraceSpans(b *testing.B) {
	recv := newOTLPReceiver(b)
	h := NewHandler(Options{})
	defer h.Close()
	h.stateMu.Lock()
	tr, err := h.traces.compile(&config.Tracing{OTLP: recv.url})
	h.stateMu.Unlock()
	if err != nil {
		b.Fatal(err)
	}
	u, _ := url.Parse("/shop/cart")
	req := &http.Request{Method: "GET", URL: u, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Host: "shop.example.com", RemoteAddr: "192.0.2.7:5555", Header: http.Header{}}
	pool, ep := &routing.Pool{Name: "web-eu"}, &routing.Endpoint{Address: "10.0.0.5:8080"}
	x := &exchange{req: req, start: time.Now(), st: &tableState{tracing: tr}, requestID: "rid",
		route: &routing.Route{Name: "shop"}, pool: pool, ep: ep}
	b.ReportAllocs()
	for b.Loop() {
		t := &traceState{traceID: newTraceID(), span: newSpanID(), sampled: true, export: true,
			attempts: []attemptSpan{{id: newSpanID(), t0: x.start, t1: x.start.Add(time.Millisecond), pool: pool, ep: ep, status: 200}}}
		tr.exp.spans(x, t, 200, x.start.Add(2*time.Millisecond))
	}
}
