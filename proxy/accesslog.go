package proxy

import (
	"bytes"
	"crypto/tls"
	"io"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/meridian-lb/meridian/config"
	"github.com/meridian-lb/meridian/internal/promutil"
)

// The access log (http.access_log) is written apart from the application
// log: operators ship it to other places, parse it with other tools and
// rotate it on another schedule, and it must never slow a request. Each
// line is formatted on the request's goroutine into a pooled buffer, then
// copied into its destination's queue (logSink) under a mutex held only for
// the copy. One goroutine per destination writes the queue out in batches.
// The queue is bounded in bytes, not lines, because lines range from a few
// hundred bytes to the size of a request head: when a slow or stalled disk
// lets it fill, new lines are dropped and counted in
// meridian_http_access_log_dropped_total, and requests go on at full speed.
// A channel of lines would bound their count but not their bytes, and
// would hold a buffer per queued line and cost a channel operation per
// line; the byte queue costs one short critical section (a copy), and the
// writer issues one write per batch instead of one per line.

// accessLog is a table's compiled http.access_log: where lines go and how
// they look. The destination (sink) is shared by every table that names it.
type accessLog struct {
	sink     *logSink
	combined bool
	sample   float64  // share of successful requests logged
	redact   []string // query parameter names, matched case-insensitively
}

// The reasons a line is dropped: the label values of
// meridian_http_access_log_dropped_total.
const (
	dropFull   = "buffer_full" // the destination is behind by http.access_log.buffer bytes
	dropError  = "write_error" // the destination refused the write
	dropClosed = "closed"      // the destination was closed (shutdown, or a reload changed it)
)

// logSinks are a handler's access log destinations, by name, and what they
// share: the standard streams, the error log and the drop counters.
type logSinks struct {
	stdout, stderr io.Writer
	log            *zap.Logger

	droppedFull, droppedError, droppedClosed prometheus.Counter

	byDest map[string]*logSink // guarded by Handler.stateMu

	retiredMu sync.Mutex
	retired   map[*logSink]bool // replaced by a reload, until they close (retireDelay)
}

// retireDelay is how long a destination a reload stopped using stays open,
// so the requests in flight on the old table still get their lines written.
const retireDelay = 10 * time.Second

// closeWait bounds how long closing a destination waits for its last batch
// to be written: a stalled disk must not hold shutdown.
const closeWait = 5 * time.Second

// maxPooledLine is the largest format buffer kept for reuse; a line from a
// huge request head is formatted into a buffer that is then let go.
const maxPooledLine = 16 << 10

func (ls *logSinks) init(o Options, lg *zap.Logger) {
	ls.stdout, ls.stderr = o.Stdout, o.Stderr
	if ls.stdout == nil {
		ls.stdout = os.Stdout
	}
	if ls.stderr == nil {
		ls.stderr = os.Stderr
	}
	ls.log = lg.Named("access_log")
	dropped := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "meridian_http_access_log_dropped_total",
		Help: "Access log lines not written, by reason: buffer_full (the destination is behind by http.access_log.buffer), write_error, closed (a reload changed the destination while the request was in flight, or shutdown).",
	}, []string{"reason"})
	if o.Registerer != nil {
		dropped = promutil.Logged(o.Registerer, dropped, lg)
	}
	ls.droppedFull = dropped.WithLabelValues(dropFull)
	ls.droppedError = dropped.WithLabelValues(dropError)
	ls.droppedClosed = dropped.WithLabelValues(dropClosed)
	ls.byDest = map[string]*logSink{}
	ls.retired = map[*logSink]bool{}
}

// compile builds a table's access log, opening its destination when no
// earlier table did. It fails only when a file cannot be opened; the
// caller holds Handler.stateMu.
func (ls *logSinks) compile(c *config.AccessLog) (*accessLog, error) {
	if !c.Enabled() {
		return nil, nil
	}
	dest := c.To
	if dest == "" {
		dest = config.AccessLogStderr
	}
	if dest != config.AccessLogStdout && dest != config.AccessLogStderr {
		abs, err := filepath.Abs(dest)
		if err != nil {
			return nil, config.Problem{Path: "http.access_log.to", Msg: err.Error()}
		}
		dest = abs
	}
	s := ls.byDest[dest]
	if s == nil {
		var err error
		if s, err = ls.open(dest); err != nil {
			return nil, config.Problem{Path: "http.access_log.to", Msg: err.Error()}
		}
		ls.byDest[dest] = s
	}
	al := &accessLog{sink: s, combined: c.Format == config.AccessLogCombined, sample: 1}
	if c.Sample != nil {
		al.sample = *c.Sample
	}
	for _, n := range c.RedactQuery {
		al.redact = append(al.redact, strings.ToLower(n))
	}
	return al, nil
}

// open makes the destination dest and starts its writer.
func (ls *logSinks) open(dest string) (*logSink, error) {
	s := &logSink{
		dest: dest, set: ls, max: config.DefaultAccessLogBuffer,
		wake: make(chan struct{}, 1), reopen: make(chan struct{}, 1),
		stop: make(chan struct{}), done: make(chan struct{}),
	}
	switch dest {
	case config.AccessLogStdout:
		s.w = ls.stdout
	case config.AccessLogStderr:
		s.w = ls.stderr
	default:
		f, err := openLogFile(dest)
		if err != nil {
			return nil, err
		}
		s.w, s.file = f, f
	}
	go s.run()
	return s, nil
}

// openLogFile opens an access log file for appending, so that lines from
// several writers (and logrotate's copytruncate) never overwrite each other.
func openLogFile(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
}

// install applies the buffer size of the installed table and retires the
// destinations it no longer uses: they close after retireDelay. The caller
// holds Handler.stateMu.
func (ls *logSinks) install(al *accessLog, c *config.AccessLog) {
	for dest, s := range ls.byDest {
		if al != nil && s == al.sink {
			continue
		}
		delete(ls.byDest, dest)
		ls.retiredMu.Lock()
		ls.retired[s] = true
		ls.retiredMu.Unlock()
		time.AfterFunc(retireDelay, func() {
			s.close(closeWait)
			ls.retiredMu.Lock()
			delete(ls.retired, s)
			ls.retiredMu.Unlock()
		})
	}
	if al != nil && c.Buffer > 0 {
		al.sink.setMax(int(c.Buffer))
	}
}

// reopen asks every file destination to reopen its file.
func (ls *logSinks) reopenAll() {
	for _, s := range ls.byDest {
		s.reopenFile()
	}
}

// closeAll flushes and closes every destination, waiting for each up to
// closeWait. The caller holds Handler.stateMu.
func (ls *logSinks) closeAll() {
	var wg sync.WaitGroup
	for _, s := range ls.byDest {
		wg.Go(func() { s.close(closeWait) })
	}
	ls.retiredMu.Lock()
	for s := range ls.retired {
		wg.Go(func() { s.close(closeWait) })
	}
	ls.retiredMu.Unlock()
	wg.Wait()
	clear(ls.byDest)
}

// logSink is one access log destination: a byte queue filled by requests
// and written out by its own goroutine (run), which alone touches the file.
type logSink struct {
	dest string // stdout, stderr or an absolute file path
	set  *logSinks

	mu      sync.Mutex
	buf     []byte // lines waiting for the writer
	spare   []byte // the buffer the writer wrote last, to be reused
	writing int    // bytes of the batch being written
	max     int    // bytes waiting and being written, at most
	woken   bool   // a wake is pending: later lines need not send another
	closed  bool

	wake   chan struct{} // 1-buffered: lines are waiting
	reopen chan struct{} // 1-buffered: reopen the file
	stop   chan struct{} // closed by close
	done   chan struct{} // closed when run returns
	once   sync.Once

	lines sync.Pool // *[]byte format buffers

	// The writer goroutine's own: the destination and its error state.
	w       io.Writer
	file    *os.File // nil for stdout and stderr
	failing bool     // the last write failed (logged once per run of failures)
}

func (s *logSink) setMax(n int) {
	s.mu.Lock()
	s.max = n
	s.mu.Unlock()
}

// buffer lends a format buffer.
func (s *logSink) buffer() *[]byte {
	if bp, ok := s.lines.Get().(*[]byte); ok {
		return bp
	}
	b := make([]byte, 0, 1024)
	return &b
}

// release takes a format buffer back, unless a huge line grew it.
func (s *logSink) release(bp *[]byte) {
	if cap(*bp) <= maxPooledLine {
		s.lines.Put(bp)
	}
}

// write queues one line, or drops it when the destination is behind by
// max bytes or closed. It never waits on the destination.
func (s *logSink) write(line []byte) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.set.droppedClosed.Inc()
		return
	}
	if len(s.buf)+s.writing+len(line) > s.max {
		s.mu.Unlock()
		s.set.droppedFull.Inc()
		return
	}
	s.buf = append(s.buf, line...)
	wake := !s.woken
	s.woken = true
	s.mu.Unlock()
	if wake {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// run writes batches until the sink is closed, then writes what is left.
func (s *logSink) run() {
	defer close(s.done)
	for {
		select {
		case <-s.wake:
			s.flush()
		case <-s.reopen:
			s.flush()
			s.doReopen()
		case <-s.stop:
			s.flush()
			if s.file != nil {
				if err := s.file.Close(); err != nil {
					s.set.log.Warn("closing the access log file failed", zap.String("file", s.dest), zap.Error(err))
				}
			}
			return
		}
	}
}

// flush writes the lines waiting, as one batch.
func (s *logSink) flush() {
	s.mu.Lock()
	b := s.buf
	s.woken = false
	if len(b) == 0 {
		s.mu.Unlock()
		return
	}
	s.buf, s.spare = s.spare[:0], nil
	s.writing = len(b)
	s.mu.Unlock()

	_, err := s.w.Write(b)
	if err != nil {
		s.set.droppedError.Add(float64(bytes.Count(b, []byte{'\n'})))
		if !s.failing {
			s.set.log.Error("writing the access log failed; lines are dropped until a write succeeds", zap.String("to", s.dest), zap.Error(err))
		}
	} else if s.failing {
		s.set.log.Info("writing the access log works again", zap.String("to", s.dest))
	}
	s.failing = err != nil

	s.mu.Lock()
	s.writing = 0
	s.spare = b[:0]
	s.mu.Unlock()
}

// reopenFile asks the writer to reopen the file (SIGUSR1, after logrotate
// renamed it); a request already pending makes this one a no-op.
func (s *logSink) reopenFile() {
	if s.dest == config.AccessLogStdout || s.dest == config.AccessLogStderr {
		return
	}
	select {
	case s.reopen <- struct{}{}:
	default:
	}
}

// doReopen opens the file's path anew and switches to it; on failure the
// old file stays in use. Runs on the writer goroutine, after a flush, so
// every line queued before the signal lands in the old file.
func (s *logSink) doReopen() {
	f, err := openLogFile(s.dest)
	if err != nil {
		s.set.log.Error("reopening the access log failed; still writing to the file open before", zap.String("file", s.dest), zap.Error(err))
		return
	}
	old := s.file
	s.w, s.file = f, f
	if err := old.Close(); err != nil {
		s.set.log.Warn("closing the rotated access log file failed", zap.String("file", s.dest), zap.Error(err))
	}
	s.set.log.Info("access log reopened", zap.String("file", s.dest))
}

// close stops taking lines, has the writer write what is queued and close
// the file, and waits for that up to wait. Closing twice is harmless.
func (s *logSink) close(wait time.Duration) {
	s.once.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		close(s.stop)
	})
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-s.done:
	case <-t.C:
		s.set.log.Warn("the access log destination did not finish writing in time", zap.String("to", s.dest))
	}
}

// logAccess writes x's access log line, unless sampling leaves out this
// successful request. Failed requests (status 400 and up, or an error kind:
// a body cut mid-way can follow a 200) are always logged.
func (h *Handler) logAccess(x *exchange, code int, d time.Duration) {
	al := x.st.accessLog
	if code < 400 && x.errKind == "" && al.sample < 1 && (al.sample <= 0 || rand.Float64() >= al.sample) {
		return
	}
	bp := al.sink.buffer()
	if al.combined {
		*bp = al.appendCombined((*bp)[:0], x, code, d)
	} else {
		*bp = al.appendJSON((*bp)[:0], x, code, d)
	}
	al.sink.write(*bp)
	al.sink.release(bp)
}

// routeNames are the names of what the request went to, "" for each it
// did not reach.
func routeNames(x *exchange) (route, svc, pool, ep string) {
	if x.route != nil {
		route = x.route.Name
	}
	if s := x.svc(); s != nil {
		svc = s.Name
	}
	if x.pool != nil {
		pool = x.pool.Name
	}
	return route, svc, pool, endpointName(x.ep)
}

// bytesIn is the request body bytes read from the client.
func bytesIn(x *exchange) int64 {
	if x.body != nil {
		return x.body.n.Load()
	}
	return 0
}

// appendClient appends the client address: the peer, or the first address
// a trusted proxy forwarded for.
func appendClient(b []byte, x *exchange) []byte {
	if x.client.IsValid() {
		return x.client.AppendTo(b)
	}
	return append(b, hostOf(x.req.RemoteAddr)...)
}

// tlsVersion names a TLS version as nginx's $ssl_protocol does.
func tlsVersion(v uint16) string {
	switch v {
	case tls.VersionTLS13:
		return "TLSv1.3"
	case tls.VersionTLS12:
		return "TLSv1.2"
	case tls.VersionTLS11:
		return "TLSv1.1"
	case tls.VersionTLS10:
		return "TLSv1"
	}
	return "TLS-" + strconv.FormatUint(uint64(v), 16)
}

// appendJSON formats the line as one JSON object. Keys that exist in every
// line come first, in a fixed order; the TLS, query, upstream status,
// client header, error and trace keys appear only when they have a value.
// The names of the fields Meridian logged before (request_id, client,
// method, host, path, proto, route, service, pool, endpoint, status,
// duration, upstream_duration, retries, error) are unchanged; bytes is now
// bytes_out beside bytes_in.
func (al *accessLog) appendJSON(b []byte, x *exchange, code int, d time.Duration) []byte {
	r := x.req
	route, svc, pool, ep := routeNames(x)
	b = append(b, `{"ts":"`...)
	b = x.start.UTC().AppendFormat(b, "2006-01-02T15:04:05.000000Z07:00")
	b = append(b, `","request_id":`...)
	b = appendJSONString(b, x.requestID)
	b = append(b, `,"client":"`...)
	b = appendClient(b, x)
	b = append(b, `","method":`...)
	b = appendJSONString(b, r.Method)
	b = append(b, `,"host":`...)
	b = appendJSONString(b, r.Host)
	b = append(b, `,"path":`...)
	b = appendJSONString(b, r.URL.EscapedPath())
	if q := r.URL.RawQuery; q != "" {
		b = append(b, `,"query":"`...)
		b = appendQuery(b, q, al.redact, appendJSONChars)
		b = append(b, '"')
	}
	b = append(b, `,"proto":`...)
	b = appendJSONString(b, r.Proto)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(code), 10)
	if x.upStatus != 0 {
		b = append(b, `,"upstream_status":`...)
		b = strconv.AppendInt(b, int64(x.upStatus), 10)
	}
	b = append(b, `,"bytes_in":`...)
	b = strconv.AppendInt(b, bytesIn(x), 10)
	b = append(b, `,"bytes_out":`...)
	b = strconv.AppendInt(b, x.rw.bytes, 10)
	b = append(b, `,"duration":`...)
	b = appendSeconds(b, d)
	b = append(b, `,"upstream_duration":`...)
	b = appendSeconds(b, x.upDur)
	b = append(b, `,"route":`...)
	b = appendJSONString(b, route)
	b = append(b, `,"service":`...)
	b = appendJSONString(b, svc)
	b = append(b, `,"pool":`...)
	b = appendJSONString(b, pool)
	b = append(b, `,"endpoint":`...)
	b = appendJSONString(b, ep)
	b = append(b, `,"retries":`...)
	b = strconv.AppendInt(b, int64(x.retries), 10)
	if v := r.Header["User-Agent"]; len(v) > 0 {
		b = append(b, `,"user_agent":`...)
		b = appendJSONString(b, v[0])
	}
	if v := r.Header["Referer"]; len(v) > 0 {
		b = append(b, `,"referer":`...)
		b = appendJSONString(b, v[0])
	}
	if cs := r.TLS; cs != nil {
		b = append(b, `,"tls_version":"`...)
		b = append(b, tlsVersion(cs.Version)...)
		b = append(b, `","sni":`...)
		b = appendJSONString(b, cs.ServerName)
	}
	if x.errKind != "" {
		b = append(b, `,"error":"`...)
		b = append(b, x.errKind...)
		b = append(b, '"')
	}
	if x.tr != nil {
		b = append(b, `,"trace_id":"`...)
		b = x.tr.appendTraceID(b)
		b = append(b, '"')
	}
	return append(b, "}\n"...)
}

// appendCombined formats the line in the Apache/nginx combined format
// (client, ident, user, [time], "request line", status, bytes out,
// "referer", "user agent"), so the tools that read it work unchanged, then
// Meridian's fields in a fixed order: "host" "request_id" "route"
// "service" "pool" "endpoint" upstream_status duration upstream_duration
// bytes_in retries "error" "tls_version" "sni" "trace_id". Empty values
// are "-", as nginx writes them; quoted values are escaped as nginx does
// (\" \\ and \xHH for control and non-ASCII bytes). The user is always
// "-": credentials are not logged. The time is the request's arrival.
func (al *accessLog) appendCombined(b []byte, x *exchange, code int, d time.Duration) []byte {
	r := x.req
	b = appendClient(b, x)
	b = append(b, " - - ["...)
	b = x.start.AppendFormat(b, "02/Jan/2006:15:04:05 -0700")
	b = append(b, `] "`...)
	b = appendCLFChars(b, r.Method)
	b = append(b, ' ')
	b = appendCLFChars(b, r.URL.EscapedPath())
	if q := r.URL.RawQuery; q != "" {
		b = append(b, '?')
		b = appendQuery(b, q, al.redact, appendCLFChars)
	}
	b = append(b, ' ')
	b = appendCLFChars(b, r.Proto)
	b = append(b, `" `...)
	b = strconv.AppendInt(b, int64(code), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, x.rw.bytes, 10)
	b = appendCLFQuoted(b, firstHeader(r.Header["Referer"]))
	b = appendCLFQuoted(b, firstHeader(r.Header["User-Agent"]))
	route, svc, pool, ep := routeNames(x)
	b = appendCLFQuoted(b, r.Host)
	b = appendCLFQuoted(b, x.requestID)
	b = appendCLFQuoted(b, route)
	b = appendCLFQuoted(b, svc)
	b = appendCLFQuoted(b, pool)
	b = appendCLFQuoted(b, ep)
	b = append(b, ' ')
	if x.upStatus != 0 {
		b = strconv.AppendInt(b, int64(x.upStatus), 10)
	} else {
		b = append(b, '-')
	}
	b = append(b, ' ')
	b = appendSeconds(b, d)
	b = append(b, ' ')
	b = appendSeconds(b, x.upDur)
	b = append(b, ' ')
	b = strconv.AppendInt(b, bytesIn(x), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(x.retries), 10)
	b = appendCLFQuoted(b, x.errKind)
	tlsv, sni := "", ""
	if cs := r.TLS; cs != nil {
		tlsv, sni = tlsVersion(cs.Version), cs.ServerName
	}
	b = appendCLFQuoted(b, tlsv)
	b = appendCLFQuoted(b, sni)
	b = append(b, ` "`...)
	if x.tr != nil {
		b = x.tr.appendTraceID(b)
	} else {
		b = append(b, '-')
	}
	return append(b, "\"\n"...)
}

func firstHeader(v []string) string {
	if len(v) > 0 {
		return v[0]
	}
	return ""
}

// appendSeconds appends d in seconds with microsecond precision, as
// nginx's $request_time (in milliseconds) and zap's duration encoder do.
func appendSeconds(b []byte, d time.Duration) []byte {
	return strconv.AppendFloat(b, d.Seconds(), 'f', 6, 64)
}

// appendQuery appends a raw query with the values of the redacted
// parameters replaced by REDACTED, escaping every piece with esc. Both &
// and ; separate parameters here, so a value is never missed because the
// upstream's parser splits differently; a name is compared after
// percent-decoding, so an encoded name does not slip through either.
func appendQuery(b []byte, q string, redact []string, esc func([]byte, string) []byte) []byte {
	if len(redact) == 0 {
		return esc(b, q)
	}
	for q != "" {
		i := strings.IndexAny(q, "&;")
		part, sep := q, ""
		if i >= 0 {
			part, sep, q = q[:i], q[i:i+1], q[i+1:]
		} else {
			q = ""
		}
		name, _, hasValue := strings.Cut(part, "=")
		if hasValue && redacted(name, redact) {
			b = esc(b, name)
			b = append(b, "=REDACTED"...)
		} else {
			b = esc(b, part)
		}
		b = esc(b, sep)
	}
	return b
}

// redacted reports whether a raw parameter name is in the list.
func redacted(name string, redact []string) bool {
	if strings.ContainsAny(name, "%+") {
		if u, err := url.QueryUnescape(name); err == nil {
			name = u
		}
	}
	for _, r := range redact {
		if strings.EqualFold(name, r) {
			return true
		}
	}
	return false
}

// appendJSONString appends s as a JSON string, quotes included.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	b = appendJSONChars(b, s)
	return append(b, '"')
}

// appendJSONChars appends s escaped for the inside of a JSON string:
// quotes, backslashes and control characters escaped, invalid UTF-8
// replaced by U+FFFD, so every line is valid JSON whatever the client sent.
func appendJSONChars(b []byte, s string) []byte {
	const hexd = "0123456789abcdef"
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexd[c>>4], hexd[c&15])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	return append(b, s[start:]...)
}

// appendCLFQuoted appends a space and s in double quotes, "-" when empty.
func appendCLFQuoted(b []byte, s string) []byte {
	b = append(b, ' ', '"')
	if s == "" {
		b = append(b, '-')
	} else {
		b = appendCLFChars(b, s)
	}
	return append(b, '"')
}

// appendCLFChars appends s escaped as nginx escapes log variables: " and \
// get a backslash, control and non-ASCII bytes become \xHH, so a line is
// one line of ASCII whatever the client sent.
func appendCLFChars(b []byte, s string) []byte {
	const hexd = "0123456789ABCDEF"
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c < 0x7f && c != '"' && c != '\\' {
			continue
		}
		b = append(b, s[start:i]...)
		if c == '"' || c == '\\' {
			b = append(b, '\\', c)
		} else {
			b = append(b, '\\', 'x', hexd[c>>4], hexd[c&15])
		}
		start = i + 1
	}
	return append(b, s[start:]...)
}

// ReopenLogs reopens the access log files (SIGUSR1): after logrotate
// renames a file, lines go to the renamed file until this, and to a fresh
// file at the configured path after. It returns at once; each file is
// reopened by its writer once the lines queued before are written, and a
// failure is logged and keeps the old file.
func (h *Handler) ReopenLogs() {
	h.stateMu.Lock()
	defer h.stateMu.Unlock()
	h.logs.reopenAll()
}

// Close flushes and closes the access log destinations and the trace
// exporters, each within a few seconds. Call it once the listeners have
// stopped (App.Run does); lines and spans of later requests are dropped.
func (h *Handler) Close() {
	h.stateMu.Lock()
	defer h.stateMu.Unlock()
	h.logs.closeAll()
	h.traces.closeAll()
}

// Err is the error that keeps c from being installed: an access log file
// that cannot be opened, as a problem at http.access_log.to. Nil means c
// is ready for Install.
func (c *Compiled) Err() error { return c.err }
