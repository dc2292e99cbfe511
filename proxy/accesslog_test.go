package proxy

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/meridian-lb/meridian/config"
	"github.com/meridian-lb/meridian/internal/certtest"
	"github.com/meridian-lb/meridian/routing"
)

// syncBuffer is a bytes.Buffer the access log's writer goroutine and the
// test can share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// readLines returns the lines of a file ("" lines dropped); a missing file
// has none.
func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return splitLines(string(b))
}

func splitLines(s string) []string {
	var out []string
	for l := range strings.SplitSeq(s, "\n") {
		if l != "" {
			out = append(out, l)
		}
	}
	return out
}

// waitLines waits until path has n lines and returns them.
func waitLines(t *testing.T, path string, n int) []string {
	t.Helper()
	var lines []string
	waitFor(t, "access log lines", func() bool { lines = readLines(t, path); return len(lines) >= n })
	if len(lines) != n {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), n, strings.Join(lines, "\n"))
	}
	return lines
}

func decodeLine(t *testing.T, line string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		t.Fatalf("not a JSON line: %v\n%s", err, line)
	}
	return m
}

const accessConfig = `
http:
  access_log: {to: {{LOG}}, redact_query: [token, API_KEY]}
pools:
  a: {endpoints: [{{A}}]}
  dead: {endpoints: [{{DEAD}}]}
services: {sa: {pools: [a]}, sd: {pools: [dead]}}
routes:
  - {name: dead, match: {path_prefix: /dead}, service: sd}
  - {name: api, match: {path_prefix: /}, service: sa}
`

// TestAccessLogJSON sends requests through the real listener and checks
// every field of the JSON lines, the query redaction and that failures are
// logged with their kind.
func TestAccessLogJSON(t *testing.T) {
	a := newBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(201)
		w.Write([]byte("created!"))
	})
	logPath := filepath.Join(t.TempDir(), "access.log")
	e := newEnv(t, accessConfig, map[string]string{"A": a.addr, "DEAD": deadAddr(t), "LOG": logPath})

	res, _ := e.do(nil, "POST", "/v1/items?id=7&token=s3cret&Api_Key=k&api%5Fkey=x&empty=", strings.NewReader("hello"),
		"Host", "api.test", "X-Request-Id", "rid-1", "User-Agent", "curl/8 \"quoted\"", "Referer", "https://ref.test/a")
	if res.StatusCode != 201 {
		t.Fatalf("status %d", res.StatusCode)
	}
	e.get("/dead/x", "Host", "api.test")
	lines := waitLines(t, logPath, 2)

	got := decodeLine(t, lines[0])
	want := map[string]any{
		"request_id": "rid-1", "client": "127.0.0.1", "method": "POST", "host": "api.test", "path": "/v1/items",
		"query": "id=7&token=REDACTED&Api_Key=REDACTED&api%5Fkey=REDACTED&empty=", "proto": "HTTP/1.1",
		"status": 201.0, "upstream_status": 201.0, "bytes_in": 5.0, "bytes_out": 8.0,
		"route": "api", "service": "sa", "pool": "a", "endpoint": a.addr, "retries": 0.0,
		"user_agent": `curl/8 "quoted"`, "referer": "https://ref.test/a",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %#v, want %#v", k, got[k], v)
		}
	}
	for _, k := range []string{"tls_version", "sni", "error", "trace_id"} {
		if _, ok := got[k]; ok {
			t.Errorf("%s present on a plain request without tracing: %v", k, got[k])
		}
	}
	if ts, err := time.Parse(time.RFC3339Nano, got["ts"].(string)); err != nil || time.Since(ts) > time.Minute {
		t.Errorf("ts = %v (%v)", got["ts"], err)
	}
	if d, up := got["duration"].(float64), got["upstream_duration"].(float64); d <= 0 || up <= 0 || up > d {
		t.Errorf("duration %v, upstream_duration %v", d, up)
	}
	if strings.Contains(lines[0], "s3cret") {
		t.Error("a redacted value reached the log")
	}

	failed := decodeLine(t, lines[1])
	if failed["status"] != 502.0 || failed["error"] != kindConnect || failed["route"] != "dead" || failed["retries"] != 0.0 {
		t.Errorf("failed request line: %s", lines[1])
	}
	if _, ok := failed["upstream_status"]; ok {
		t.Errorf("upstream_status on a request no upstream answered: %s", lines[1])
	}
}

// TestAccessLogShorthand checks that `access_log: true` is today's
// destination (stderr) in the JSON format, and that the lines do not go
// through the application's zap logger any more.
func TestAccessLogShorthand(t *testing.T) {
	a := newBackend(t, "a", nil)
	var out syncBuffer
	core, logs := observer.New(zap.DebugLevel)
	e := newEnv(t, `
http: {access_log: true}
pools: {a: {endpoints: [{{A}}]}}
services: {sa: {pools: [a]}}
routes: [{name: r, service: sa}]
`, map[string]string{"A": a.addr}, withStdio(&out), withLogger(zap.New(core)))
	e.get("/x")
	waitFor(t, "a line on stderr", func() bool { return strings.Count(out.String(), "\n") == 1 })
	if m := decodeLine(t, out.String()); m["route"] != "r" || m["status"] != 200.0 {
		t.Errorf("line: %s", out.String())
	}
	if n := logs.Len(); n != 0 {
		t.Errorf("%d application log entries for a request; the access log must be apart", n)
	}
}

// TestAccessLogTLS checks the TLS version and SNI of a request over TLS.
func TestAccessLogTLS(t *testing.T) {
	ca := certtest.NewCA(t, "test CA")
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	dir := t.TempDir()
	writePair(t, ca, dir, "a", "a.example.com")
	be := newBackend(t, "be", nil)
	logPath := filepath.Join(dir, "access.log")
	e := newTLSEnv(t, rotateConfig+"http: {access_log: {to: {{LOG}}, format: json}}\n",
		map[string]string{"A": filepath.Join(dir, "a"), "BACKEND": be.addr, "LOG": logPath}, roots)
	t.Cleanup(e.h.Close)
	c := e.client(&tls.Config{MaxVersion: tls.VersionTLS12})
	if res, _ := e.get(c, "https://a.example.com/tls", ""); res.StatusCode != 200 {
		t.Fatalf("status %d", res.StatusCode)
	}
	m := decodeLine(t, waitLines(t, logPath, 1)[0])
	if m["tls_version"] != "TLSv1.2" || m["sni"] != "a.example.com" || m["proto"] != "HTTP/2.0" {
		t.Errorf("tls_version %v, sni %v, proto %v", m["tls_version"], m["sni"], m["proto"])
	}
}

// TestAccessLogSampling: sample leaves out a share of successful requests
// only; every failed one is logged.
func TestAccessLogSampling(t *testing.T) {
	a := newBackend(t, "a", nil)
	dir := t.TempDir()
	vars := map[string]string{"A": a.addr, "DEAD": deadAddr(t)}
	cfg := func(sample string) string {
		return `
http: {access_log: {to: ` + filepath.Join(dir, sample+".log") + `, sample: ` + sample + `}}
pools: {a: {endpoints: [{{A}}]}, dead: {endpoints: [{{DEAD}}]}}
services: {sa: {pools: [a]}, sd: {pools: [dead]}}
routes:
  - {name: dead, match: {path_prefix: /dead}, service: sd}
  - {name: ok, match: {path: /ok}, service: sa}
`
	}
	t.Run("zero keeps only failures", func(t *testing.T) {
		e := newEnv(t, cfg("0"), vars)
		for range 20 {
			e.get("/ok")
		}
		e.get("/missing") // 404: no route
		e.get("/dead")    // 502
		lines := waitLines(t, filepath.Join(dir, "0.log"), 2)
		if s0, s1 := decodeLine(t, lines[0])["status"], decodeLine(t, lines[1])["status"]; s0 != 404.0 || s1 != 502.0 {
			t.Errorf("statuses %v %v, want 404 502", s0, s1)
		}
	})
	t.Run("a quarter", func(t *testing.T) {
		e := newEnv(t, cfg("0.25"), vars)
		const n = 800
		for range n {
			e.get("/ok")
		}
		e.h.Close() // flushes
		got := len(readLines(t, filepath.Join(dir, "0.25.log")))
		if got < n/4-80 || got > n/4+80 {
			t.Errorf("%d of %d logged at 0.25", got, n)
		}
	})
}

// TestAccessLogReopen rotates the file as logrotate does (rename, then
// SIGUSR1): lines before the signal are in the renamed file, lines after
// in a new file at the configured path, and none is lost.
func TestAccessLogReopen(t *testing.T) {
	a := newBackend(t, "a", nil)
	dir := t.TempDir()
	logPath := filepath.Join(dir, "access.log")
	e := newEnv(t, accessConfig, map[string]string{"A": a.addr, "DEAD": deadAddr(t), "LOG": logPath})
	e.get("/one")
	waitLines(t, logPath, 1)
	rotated := logPath + ".1"
	if err := os.Rename(logPath, rotated); err != nil {
		t.Fatal(err)
	}
	e.get("/two") // after the rename, before the signal: still the open file
	waitLines(t, rotated, 2)
	e.h.ReopenLogs()
	waitFor(t, "the new file", func() bool { _, err := os.Stat(logPath); return err == nil })
	e.get("/three")
	e.get("/four")
	fresh := waitLines(t, logPath, 2)
	if decodeLine(t, fresh[0])["path"] != "/three" || decodeLine(t, fresh[1])["path"] != "/four" {
		t.Errorf("new file: %v", fresh)
	}
	if old := readLines(t, rotated); len(old) != 2 || decodeLine(t, old[1])["path"] != "/two" {
		t.Errorf("rotated file: %v", old)
	}
	if got := e.metric("meridian_http_access_log_dropped_total", nil); got != 0 {
		t.Errorf("%v lines dropped", got)
	}
}

// stallWriter blocks every write until released.
type stallWriter struct {
	entered chan struct{}
	release chan struct{}
	syncBuffer
}

func (s *stallWriter) Write(p []byte) (int, error) {
	select {
	case s.entered <- struct{}{}:
	default:
	}
	<-s.release
	return s.syncBuffer.Write(p)
}

// TestAccessLogFullBufferDrops: with the destination stalled, requests go
// on at full speed and the lines past the buffer are dropped and counted.
func TestAccessLogFullBufferDrops(t *testing.T) {
	a := newBackend(t, "a", nil)
	w := &stallWriter{entered: make(chan struct{}, 1), release: make(chan struct{})}
	e := newEnv(t, `
http: {access_log: {to: stdout, buffer: 64KiB}}
pools: {a: {endpoints: [{{A}}]}}
services: {sa: {pools: [a]}}
routes: [{name: r, service: sa}]
`, map[string]string{"A": a.addr}, withStdio(w))
	e.get("/first")
	<-w.entered // the writer is stuck on the first line
	long := "/" + strings.Repeat("x", 2000)
	const n = 100 // 100 lines of over 2 KiB: three times the buffer
	start := time.Now()
	for range n {
		if res, _ := e.get(long); res.StatusCode != 200 {
			t.Fatalf("status %d", res.StatusCode)
		}
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("requests took %v behind a stalled log", d)
	}
	dropped := e.metric("meridian_http_access_log_dropped_total", map[string]string{"reason": dropFull})
	if dropped < n/2 || dropped >= n {
		t.Errorf("%v of %d lines dropped with a 64 KiB buffer", dropped, n)
	}
	close(w.release)
	e.h.Close()
	if got := len(splitLines(w.String())); float64(got)+dropped != n+1 {
		t.Errorf("%d written + %v dropped != %d lines", got, dropped, n+1)
	}
}

// TestAccessLogBadFile: a file that cannot be opened fails the compile,
// with the problem at http.access_log.to, and a reload to a new file
// retires the old one.
func TestAccessLogBadFile(t *testing.T) {
	a := newBackend(t, "a", nil)
	dir := t.TempDir()
	first := filepath.Join(dir, "first.log")
	e := newEnv(t, accessConfig, map[string]string{"A": a.addr, "DEAD": deadAddr(t), "LOG": first})
	bad := e.compile(accessConfig, map[string]string{"A": a.addr, "DEAD": deadAddr(t), "LOG": filepath.Join(dir, "no/such/dir.log")})
	c := e.h.Compile(bad)
	var p config.Problem
	if err := c.Err(); !errors.As(err, &p) || p.Path != "http.access_log.to" {
		t.Fatalf("Err = %v, want a problem at http.access_log.to", err)
	}
	e.get("/still-first")
	waitLines(t, first, 1)

	second := filepath.Join(dir, "second.log")
	e.swap(accessConfig, map[string]string{"A": a.addr, "DEAD": deadAddr(t), "LOG": second})
	e.get("/second")
	if l := waitLines(t, second, 1); decodeLine(t, l[0])["path"] != "/second" {
		t.Errorf("second file: %v", l)
	}
	e.h.logs.retiredMu.Lock()
	retired := len(e.h.logs.retired)
	e.h.logs.retiredMu.Unlock()
	if retired != 1 {
		t.Errorf("%d retired destinations, want the first file's", retired)
	}
}

// TestAccessLogFormats formats one exchange in both formats and compares
// with golden lines: the combined line is what Apache and nginx write,
// then Meridian's fields.
func TestAccessLogFormats(t *testing.T) {
	u, _ := url.Parse("/shop/cart%20x?item=1&token=abc;sid=zz")
	req := &http.Request{
		Method: "GET", URL: u, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Host: "shop.example.com",
		RemoteAddr: "192.0.2.7:5555",
		Header: http.Header{
			"User-Agent": {"Mozilla/5.0 (X11) \"q\" \\ é"},
			"Referer":    {"https://example.com/\x01"},
		},
		TLS: &tls.ConnectionState{Version: tls.VersionTLS13, ServerName: "shop.example.com"},
	}
	pool := &routing.Pool{Name: "web-eu"}
	x := &exchange{
		req: req, start: time.Date(2026, 3, 4, 5, 6, 7, 891000000, time.UTC),
		client: netip.MustParseAddr("198.51.100.9"), requestID: "f00d",
		route: &routing.Route{Name: "shop"}, choice: routing.Choice{Service: &routing.Service{Name: "web"}},
		pool: pool, ep: &routing.Endpoint{Address: "10.0.0.5:8080"},
		retries: 1, upStatus: 503, upDur: 1500 * time.Microsecond, errKind: "",
		tr: &traceState{traceID: [16]byte{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36}},
	}
	x.rw.bytes = 1234
	al := &accessLog{redact: []string{"token", "sid"}}
	d := 12345 * time.Microsecond

	wantCombined := `198.51.100.9 - - [04/Mar/2026:05:06:07 +0000] "GET /shop/cart%20x?item=1&token=REDACTED;sid=REDACTED HTTP/1.1" 503 1234 "https://example.com/\x01" "Mozilla/5.0 (X11) \"q\" \\ \xC3\xA9" "shop.example.com" "f00d" "shop" "web" "web-eu" "10.0.0.5:8080" 503 0.012345 0.001500 0 1 "-" "TLSv1.3" "shop.example.com" "4bf92f3577b34da6a3ce929d0e0e4736"` + "\n"
	if got := string(al.appendCombined(nil, x, 503, d)); got != wantCombined {
		t.Errorf("combined:\n got %s\nwant %s", got, wantCombined)
	}
	wantJSON := `{"ts":"2026-03-04T05:06:07.891000Z","request_id":"f00d","client":"198.51.100.9","method":"GET","host":"shop.example.com","path":"/shop/cart%20x","query":"item=1&token=REDACTED;sid=REDACTED","proto":"HTTP/1.1","status":503,"upstream_status":503,"bytes_in":0,"bytes_out":1234,"duration":0.012345,"upstream_duration":0.001500,"route":"shop","service":"web","pool":"web-eu","endpoint":"10.0.0.5:8080","retries":1,"user_agent":"Mozilla/5.0 (X11) \"q\" \\ é","referer":"https://example.com/\u0001","tls_version":"TLSv1.3","sni":"shop.example.com","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736"}` + "\n"
	if got := string(al.appendJSON(nil, x, 503, d)); got != wantJSON {
		t.Errorf("json:\n got %s\nwant %s", got, wantJSON)
	}
	if !json.Valid([]byte(wantJSON)) {
		t.Error("the JSON golden line is not JSON")
	}

	// A request that reached nothing: every field "-" in combined.
	bare := &exchange{req: &http.Request{Method: "GET", URL: &url.URL{Path: "/"}, Proto: "HTTP/1.0", Header: http.Header{}, RemoteAddr: "[2001:db8::1]:4"},
		start: x.start}
	wantBare := `2001:db8::1 - - [04/Mar/2026:05:06:07 +0000] "GET / HTTP/1.0" 404 0 "-" "-" "-" "-" "-" "-" "-" "-" - 0.000001 0.000000 0 0 "-" "-" "-" "-"` + "\n"
	if got := string(al.appendCombined(nil, bare, 404, time.Microsecond)); got != wantBare {
		t.Errorf("bare combined:\n got %s\nwant %s", got, wantBare)
	}
}

func TestAppendQueryRedaction(t *testing.T) {
	redact := []string{"token", "api_key"}
	tests := []struct{ in, want string }{
		{"a=1&b=2", "a=1&b=2"},
		{"token=x", "token=REDACTED"},
		{"TOKEN=x&token=y", "TOKEN=REDACTED&token=REDACTED"},
		{"tok%65n=x", "tok%65n=REDACTED"},
		{"api+key=x&api_key=y", "api+key=x&api_key=REDACTED"},
		{"a=1;token=x", "a=1;token=REDACTED"},
		{"token", "token"},
		{"token=", "token=REDACTED"},
		{"&&token=a=b&", "&&token=REDACTED&"},
		{"x=token", "x=token"},
	}
	for _, tc := range tests {
		if got := string(appendQuery(nil, tc.in, redact, appendCLFChars)); got != tc.want {
			t.Errorf("%q: got %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestAppendJSONChars(t *testing.T) {
	for _, s := range []string{"plain", "quote\" back\\slash", "ctl\x00\x1f\t\n\r", "bad utf8 \xff\xfe end", "ünïcödé ✓", "\u2028"} {
		b := appendJSONString(nil, s)
		var back string
		if err := json.Unmarshal(b, &back); err != nil {
			t.Errorf("%q → %s: %v", s, b, err)
			continue
		}
		if want := strings.ToValidUTF8(s, "\ufffd"); back != want && !strings.Contains(s, "\xff") {
			t.Errorf("%q round-tripped to %q", s, back)
		}
	}
}

// BenchmarkAccessLog measures the request path with the access log off,
// in each format, and with tracing (propagation only, and exporting every
// request to an OTLP receiver): compare each with "off". The line goes to
// a file in a temp dir.
func BenchmarkAccessLog(b *testing.B) {
	up := newBenchUpstream(b)
	dir := b.TempDir()
	recv := newOTLPReceiver(b)
	base := `
pools: {backend: {endpoints: [{{UP}}]}}
services: {web: {pools: [backend]}}
routes: [{name: www, match: {path_prefix: /}, service: web}]
`
	cases := []struct{ name, conf string }{
		{"off", ""},
		{"json", "http: {access_log: {to: " + filepath.Join(dir, "j.log") + "}}\n"},
		{"combined", "http: {access_log: {to: " + filepath.Join(dir, "c.log") + ", format: combined}}\n"},
		{"json-sampled-0.01", "http: {access_log: {to: " + filepath.Join(dir, "s.log") + ", sample: 0.01}}\n"},
		{"tracing-propagate", "tracing: {}\n"},
		{"tracing-unsampled", "tracing: {otlp: " + recv.url + ", sample: 0}\n"},
		{"tracing-export-all", "tracing: {otlp: " + recv.url + ", sample: 1}\n"},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			e := newEnv(b, tc.conf+base, map[string]string{"UP": up})
			defer e.shutdown()
			benchGet(b, e.url+"/items/42")
		})
	}
}

// BenchmarkAccessLogLine measures what a request pays for its line, apart
// from the network: sampling, formatting into a pooled buffer and the copy
// into the destination's queue (whose writer goroutine writes to a file).
func BenchmarkAccessLogLine(b *testing.B) {
	u, _ := url.Parse("/shop/cart?item=1&token=abc")
	req := &http.Request{Method: "GET", URL: u, Proto: "HTTP/1.1", Host: "shop.example.com", RemoteAddr: "192.0.2.7:5555",
		Header: http.Header{"User-Agent": {"Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/128.0"}, "Referer": {"https://example.com/"}}}
	x := &exchange{req: req, start: time.Now(), client: netip.MustParseAddr("198.51.100.9"), requestID: "0123456789abcdef0123456789abcdef",
		route: &routing.Route{Name: "shop"}, choice: routing.Choice{Service: &routing.Service{Name: "web"}},
		pool: &routing.Pool{Name: "web-eu"}, ep: &routing.Endpoint{Address: "10.0.0.5:8080"}, upStatus: 200, upDur: time.Millisecond}
	for _, format := range []config.AccessLogFormat{config.AccessLogJSON, config.AccessLogCombined} {
		b.Run(string(format), func(b *testing.B) {
			h := NewHandler(Options{})
			defer h.Close()
			h.stateMu.Lock()
			al, err := h.logs.compile(&config.AccessLog{To: filepath.Join(b.TempDir(), "a.log"), Format: format, RedactQuery: []string{"token"}})
			h.stateMu.Unlock()
			if err != nil {
				b.Fatal(err)
			}
			x.st = &tableState{accessLog: al}
			b.ReportAllocs()
			for b.Loop() {
				h.logAccess(x, 200, 2*time.Millisecond)
			}
		})
	}
}

// newBenchUpstream starts a backend answering a short body and returns
// its address.
func newBenchUpstream(b *testing.B) string {
	body := []byte("hello world!\n")
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) }))
	b.Cleanup(up.Close)
	return up.Listener.Addr().String()
}

// benchGet runs parallel GETs of u, as BenchmarkProxy does.
func benchGet(b *testing.B, u string) {
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	defer c.CloseIdleConnections()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			res, err := c.Get(u)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
		}
	})
}
