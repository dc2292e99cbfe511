package dns

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/meridian-lb/meridian/config"
	"github.com/meridian-lb/meridian/dns/dnssec"
	"github.com/meridian-lb/meridian/routing"
	"github.com/meridian-lb/meridian/telemetry"
)

// Tables hands out the live routing table; routing.Live implements it.
type Tables interface {
	Load() *routing.Table
}

// Options configure a Server. Tables is required.
type Options struct {
	// Tables is read once per query.
	Tables Tables
	// Settings are the server-wide settings read once, at NewServer and Run:
	// listeners, tcp_idle_timeout, tcp_read_timeout, tcp_max_conns, rrl,
	// query_log and notify_retry. udp_size, max_answers and degraded_ttl
	// follow the live table, so a reload changes them.
	Settings config.DNS
	// Logger receives serving errors, NOTIFY results and the sampled query
	// log. Nil discards.
	Logger *zap.Logger
	// Registerer receives the DNS metrics. Nil registers nothing.
	Registerer prometheus.Registerer
	// Telemetry receives per-zone and per-record counts; nil counts none.
	Telemetry *telemetry.Telemetry
	// SignatureCache bounds the RRsets whose signatures the server keeps
	// for signed zones; 0 means dnssec.DefaultCacheSize, below 0 none
	// (every signed answer is signed anew: benchmarks of the cold path).
	SignatureCache int
}

// udpReadSize is the receive buffer for one UDP query, and the size of the
// pooled buffers responses are packed into. Queries are small; a larger
// one is cut and answered FORMERR.
const udpReadSize = 4096

// Server is the authoritative DNS server. Create it with NewServer, serve
// with Run, and tell it about new tables (TableChanged) and health changes
// (HealthChanged) so zone serials and NOTIFYs follow. It is safe for
// concurrent use and must not be copied.
type Server struct {
	tables Tables
	set    config.DNS
	log    *zap.Logger
	met    *metrics
	rrl    *limiter
	bufs   sync.Pool // *[]byte of udpReadSize, for packing responses

	serialMu sync.Mutex
	serials  map[string]serialState // by canonical origin
	current  *routing.Table         // the newest table seen
	poke     chan struct{}          // health changed; 1-buffered
	now      func() time.Time

	notifyMu  sync.Mutex
	notifyCtx context.Context // the running Run's; nil when not running
	pending   map[string]notifyJob
	inflight  map[string]context.CancelFunc
	notifyWG  sync.WaitGroup

	running atomic.Bool

	tel    *telemetry.Telemetry             // nil: no per-record counts
	telSet atomic.Pointer[telemetry.DNSSet] // the live table's counters (telemetry.go)

	// signer signs the answers of signed zones; its cache outlives
	// tables, so a reload that keeps a zone's keys keeps its signatures.
	signer *dnssec.Signer

	// cache is the live table's answer cache (cache.go), for UDP.
	cache atomic.Pointer[answerCache]
}

var _ mdns.Handler = (*Server)(nil)

// NewServer builds a server; it binds nothing until Run.
func NewServer(opts Options) *Server {
	log := opts.Logger
	if log == nil {
		log = zap.NewNop()
	}
	s := &Server{
		tables:   opts.Tables,
		set:      opts.Settings,
		log:      log,
		met:      newMetrics(opts.Registerer, log),
		tel:      opts.Telemetry,
		rrl:      newLimiter(opts.Settings.RRL),
		serials:  map[string]serialState{},
		poke:     make(chan struct{}, 1),
		now:      time.Now,
		pending:  map[string]notifyJob{},
		inflight: map[string]context.CancelFunc{},
	}
	s.bufs.New = func() any { b := make([]byte, udpReadSize); return &b }
	size := opts.SignatureCache
	if size == 0 {
		size = dnssec.DefaultCacheSize
	}
	s.signer = dnssec.NewSigner(dnssec.NewCache(size), func() time.Time { return s.now() })
	s.met.signatureCache(opts.Registerer, log, s.signer.Cache())
	return s
}

// Run serves DNS on addr: UDP on dns.listeners SO_REUSEPORT sockets (one per
// CPU by default, each read by a few long-lived workers) and TCP on the same
// port (miekg's server: read and idle timeouts, pipelining, a connection
// cap). With port 0 the kernel picks a port free for both. ready, if not
// nil, is called once every socket serves. Run also moves zone serials on
// health changes and sends NOTIFYs. It returns nil after ctx is done and
// the listeners are shut down, or the first serving error.
func (s *Server) Run(ctx context.Context, addr string, ready func(udp, tcp net.Addr)) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("dns: server is already running")
	}
	defer s.running.Store(false)
	n := s.set.Listeners
	if n <= 0 {
		n = runtime.GOMAXPROCS(0)
	}
	pcs, ln, err := listen(ctx, addr, n)
	if err != nil {
		return fmt.Errorf("dns: listen %s: %w", addr, err)
	}
	maxConns := s.set.TCPMaxConns
	if maxConns <= 0 {
		maxConns = 1000
	}
	ln = &limitListener{Listener: ln, sem: make(chan struct{}, maxConns), refused: s.met.tcpRefuse}

	idle := durationOr(s.set.TCPIdle, 10*time.Second)
	read := durationOr(s.set.TCPRead, 2*time.Second)
	tcp := &mdns.Server{
		Listener:       ln,
		Handler:        s,
		ReadTimeout:    read,
		WriteTimeout:   read,
		IdleTimeout:    func() time.Duration { return idle },
		MaxTCPQueries:  -1, // pipelining clients keep their connection; idle bounds it
		MsgAcceptFunc:  acceptFunc,
		MsgInvalidFunc: s.invalid,
		DecorateReader: func(r mdns.Reader) mdns.Reader { return &ecsCheckReader{Reader: r, s: s, write: read} },
	}

	g, gctx := errgroup.WithContext(ctx)
	for _, pc := range pcs {
		g.Go(func() error {
			if err := s.serveUDP(pc.(*net.UDPConn)); err != nil {
				return fmt.Errorf("dns: serve udp: %w", err)
			}
			return nil
		})
	}
	// TCP is "settled" once it serves or has failed to start, so that
	// neither ready nor shutdown waits for a server that never will.
	settled := make(chan struct{})
	var once sync.Once
	mark := func() { once.Do(func() { close(settled) }) }
	tcp.NotifyStartedFunc = mark
	g.Go(func() error {
		defer mark()
		if err := tcp.ActivateAndServe(); err != nil {
			return fmt.Errorf("dns: serve tcp: %w", err)
		}
		return nil
	})
	<-settled
	if gctx.Err() == nil && ready != nil {
		ready(pcs[0].LocalAddr(), ln.Addr())
	}

	s.notifyMu.Lock()
	s.notifyCtx = gctx
	jobs := s.pending
	s.pending = map[string]notifyJob{}
	for _, j := range jobs {
		s.startNotifyLocked(j)
	}
	s.notifyMu.Unlock()
	g.Go(func() error { s.serialLoop(gctx); return nil })

	<-gctx.Done()
	for _, pc := range pcs {
		_ = pc.Close()
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = tcp.ShutdownContext(sctx)
	s.notifyMu.Lock()
	s.notifyCtx = nil
	s.notifyMu.Unlock()
	s.notifyWG.Wait()
	if err := g.Wait(); err != nil && ctx.Err() == nil {
		return err
	}
	return nil
}

func durationOr(d config.Duration, def time.Duration) time.Duration {
	if d > 0 {
		return d.D()
	}
	return def
}

// acceptFunc lets every request through to answer, which applies the
// header checks itself (NOTIMP without echoed flags, FORMERR for QDCOUNT ≠
// 1) so that they hold on every transport and are counted; responses
// (QR=1) are dropped unread.
func acceptFunc(dh mdns.Header) mdns.MsgAcceptAction {
	if dh.Bits&(1<<15) != 0 {
		return mdns.MsgIgnore
	}
	return mdns.MsgAccept
}

func (s *Server) invalid(_ []byte, _ error) { s.met.malformed.Inc() }

// ServeDNS answers one query from miekg's TCP server (UDP has its own
// loop, see serveUDP): it gathers the client and the transport and hands
// over to serve.
func (s *Server) ServeDNS(w mdns.ResponseWriter, r *mdns.Msg) {
	var c client
	switch a := w.RemoteAddr().(type) {
	case *net.UDPAddr:
		c.addr = a.AddrPort().Addr().Unmap()
	case *net.TCPAddr:
		c.addr, c.tcp = a.AddrPort().Addr().Unmap(), true
	}
	s.serve(w, r, c)
}

// ecsCheckReader reads TCP queries for miekg's server and makes the one
// check its decoder cannot: the ECS address length on the wire
// (ecsWireOK). A query that fails it is answered here, through serve like
// any other query (FORMERR), and the next one is read; every other message
// goes on to miekg untouched. miekg serves a connection's queries one at a
// time, so nothing else writes to conn meanwhile.
type ecsCheckReader struct {
	mdns.Reader
	s     *Server
	write time.Duration // bounds the write of an answer sent from here
}

func (r *ecsCheckReader) ReadTCP(conn net.Conn, timeout time.Duration) ([]byte, error) {
	for {
		b, err := r.Reader.ReadTCP(conn, timeout)
		if err != nil || ecsWireOK(b) {
			return b, err
		}
		req := new(mdns.Msg)
		if req.Unpack(b) != nil {
			return b, nil // miekg answers what does not decode
		}
		c := client{tcp: true, badECSLength: true}
		if a, ok := conn.RemoteAddr().(*net.TCPAddr); ok {
			c.addr = a.AddrPort().Addr().Unmap()
		}
		_ = conn.SetWriteDeadline(time.Now().Add(r.write))
		r.s.serve(tcpFramer{conn}, req, c)
		_ = conn.SetWriteDeadline(time.Time{}) // miekg's own writes set none
	}
}

// tcpFramer writes each message with its two-byte length (RFC 1035
// 4.2.2), as miekg's TCP response writer does.
type tcpFramer struct{ conn net.Conn }

func (f tcpFramer) Write(b []byte) (int, error) {
	bufs := net.Buffers{binary.BigEndian.AppendUint16(nil, uint16(len(b))), b}
	if _, err := bufs.WriteTo(f.conn); err != nil {
		return 0, fmt.Errorf("dns: write tcp answer: %w", err)
	}
	return len(b), nil
}

// msgWriter is what a zone transfer writes to: miekg's TCP writer frames
// each message.
type msgWriter interface {
	WriteMsg(*mdns.Msg) error
}

// serve answers one decoded query: it loads the table, applies rate
// limiting, asks answer, and writes the response (truncated to the client's
// buffer over UDP, streamed for zone transfers), then counts and logs it.
// c.miss, for a UDP query the answer cache missed, says what the fast
// path did already and where to keep the answer.
func (s *Server) serve(w io.Writer, r *mdns.Msg, c client) {
	defer func() {
		// A bug must cost one query, not the server: count it, log it,
		// send nothing (the client retries).
		if p := recover(); p != nil {
			s.met.panics.Inc()
			s.log.Error("dns: panic answering a query", zap.Any("panic", p), zap.Stack("stack"))
		}
	}()
	start := time.Now()
	c.signer = s.signer
	t := s.tables.Load()
	if t != nil && len(t.Zones) > 0 && t.Zones[0].Serial() == 0 {
		s.TableChanged(t) // a table nobody announced: give it serials now
	}
	miss := c.miss
	rrlDone := miss != nil && miss.rrlDone
	if miss != nil && miss.cache.table != t {
		// A reload between the fast path and here: its decision and its
		// cache are the old table's. Decide again; keep nothing.
		miss = nil
	}
	if miss != nil {
		c.plan = miss.plan
	}
	if s.rrl != nil && !c.tcp && !r.Response && !rrlDone {
		switch s.rrl.account(c.addr, start) {
		case rrlDrop:
			s.met.rrl.WithLabelValues("drop").Inc()
			return
		case rrlSlip:
			s.met.rrl.WithLabelValues("slip").Inc()
			s.writeSlip(w, r)
			return
		}
	}
	res := answer(t, r, c)
	m := res.msg
	if m == nil {
		return
	}
	if res.err != nil {
		s.log.Error("dns: answering SERVFAIL", zap.String("zone", res.zone.Name), zap.Error(res.err))
	}
	zone := ""
	if res.zone != nil {
		zone = res.zone.Name
	}
	var qtype uint16
	if len(m.Question) == 1 {
		qtype = m.Question[0].Qtype
	}
	if mw, ok := w.(msgWriter); ok && res.xfr {
		s.transfer(mw, t, res, c)
	} else {
		s.write(w, res, c.tcp, miss)
	}
	s.met.query(zone, qtype, m.Rcode)
	s.telQuery(res, m)
	d := time.Since(start)
	if c.tcp {
		s.met.tcpHist.Observe(d.Seconds())
	} else {
		s.met.udpHist.Observe(d.Seconds())
	}
	if s.set.QueryLog > 0 && rand.Float64() < s.set.QueryLog {
		s.logQuery(m, c, res, d)
	}
}

// write packs and sends a response, truncating it to the client's buffer
// over UDP (TC=1: the client retries over TCP and gets it whole). A whole
// response to a query the answer cache missed is kept there.
func (s *Server) write(w io.Writer, res result, tcp bool, miss *cacheMiss) {
	m := res.msg
	bp := s.bufs.Get().(*[]byte)
	defer s.bufs.Put(bp)
	m.Compress = true
	b, err := m.PackBuffer(*bp)
	if err == nil && miss != nil && !tcp && len(b) <= res.udpSize {
		s.keep(miss, res, b)
	}
	if err == nil && !tcp && len(b) > res.udpSize && res.optional > 0 {
		// Additional data first: it may go without TC (RFC 2181 §9).
		dropOptional(m, res.optional)
		b, err = m.PackBuffer(*bp)
	}
	if err == nil && !tcp && len(b) > res.udpSize {
		m.Truncate(res.udpSize)
		m.Compress = true
		b, err = m.PackBuffer(*bp)
		s.met.truncated.Inc()
	}
	if err != nil {
		// Only a question that cannot be packed gets here; say SERVFAIL
		// without records rather than nothing.
		s.log.Debug("dns: packing response", zap.Error(err))
		m.Answer, m.Ns, m.Extra, m.Rcode = nil, nil, nil, mdns.RcodeServerFailure
		if b, err = m.PackBuffer(*bp); err != nil {
			return
		}
	}
	_, _ = w.Write(b)
}

// dropOptional removes the k records of additional data that end m's
// additional section, before its OPT (see result.optional).
func dropOptional(m *mdns.Msg, k int) {
	n := len(m.Extra)
	var opt mdns.RR
	if n > 0 {
		if o, ok := m.Extra[n-1].(*mdns.OPT); ok {
			opt, n = o, n-1
		}
	}
	k = min(k, n)
	m.Extra = m.Extra[: n-k : n-k]
	if opt != nil {
		m.Extra = append(m.Extra, opt)
	}
}

// writeSlip sends the truncated, empty answer RRL slips to a limited
// client in place of the real one.
func (s *Server) writeSlip(w io.Writer, r *mdns.Msg) {
	m := &mdns.Msg{}
	m.Id, m.Response, m.Opcode, m.Truncated = r.Id, true, r.Opcode, true
	m.Question = oneQuestion(r)
	bp := s.bufs.Get().(*[]byte)
	defer s.bufs.Put(bp)
	if b, err := m.PackBuffer(*bp); err == nil {
		_, _ = w.Write(b)
	}
}

func (s *Server) logQuery(m *mdns.Msg, c client, res result, d time.Duration) {
	var (
		qname string
		qtype uint16
		zone  string
	)
	if len(m.Question) == 1 {
		qname, qtype = m.Question[0].Name, m.Question[0].Qtype
	}
	if res.zone != nil {
		zone = res.zone.Name
	}
	s.logLine(c, m.Rcode, len(m.Answer), qname, qtype, len(m.Question) == 1, zone, res.region, res.scope, d)
}

// logLine writes one line of the sampled query log; the answer cache's
// hits log through it too.
func (s *Server) logLine(c client, rcode, answers int, qname string, qtype uint16, hasQ bool, zone, region string, scope int, d time.Duration) {
	fields := []zap.Field{
		zap.Stringer("client", c.addr),
		zap.Bool("tcp", c.tcp),
		zap.String("rcode", rcodeLabel(rcode)),
		zap.Int("answers", answers),
		zap.Duration("duration", d),
	}
	if hasQ {
		fields = append(fields, zap.String("qname", qname), zap.String("qtype", typeString(qtype)))
	}
	if zone != "" {
		fields = append(fields, zap.String("zone", zone))
	}
	if region != "" {
		fields = append(fields, zap.String("region", region))
	}
	if scope >= 0 {
		fields = append(fields, zap.Int("ecs_scope", scope))
	}
	s.log.Info("dns query", fields...)
}

// listen binds n UDP sockets (SO_REUSEPORT when n > 1) and a TCP listener
// on one address. With port 0, the first UDP socket picks the port and the
// rest bind to it; if TCP cannot have that port, it tries another.
func listen(ctx context.Context, addr string, n int) ([]net.PacketConn, net.Listener, error) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, err
	}
	if !reusePortSupported {
		n = 1
	}
	lc := net.ListenConfig{}
	if n > 1 {
		lc.Control = reusePort
	}
	var lastErr error
	for attempt := 0; attempt < 10; attempt++ {
		first, err := lc.ListenPacket(ctx, "udp", addr)
		if err != nil {
			return nil, nil, err
		}
		bound := first.LocalAddr().String()
		ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", bound)
		if err != nil {
			first.Close()
			lastErr = err
			if port == "0" {
				continue
			}
			return nil, nil, err
		}
		pcs := []net.PacketConn{first}
		for len(pcs) < n {
			pc, err := lc.ListenPacket(ctx, "udp", bound)
			if err != nil {
				for _, p := range pcs {
					p.Close()
				}
				ln.Close()
				return nil, nil, err
			}
			pcs = append(pcs, pc)
		}
		for _, pc := range pcs {
			if u, ok := pc.(*net.UDPConn); ok {
				_ = u.SetReadBuffer(4 << 20) // absorb bursts; the kernel caps it
			}
		}
		return pcs, ln, nil
	}
	return nil, nil, lastErr
}

// limitListener caps open TCP connections: beyond the cap, new ones are
// accepted and closed at once, so the backlog never fills with clients
// that will not be served.
type limitListener struct {
	net.Listener
	sem     chan struct{}
	refused prometheus.Counter
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		select {
		case l.sem <- struct{}{}:
			return &limitConn{Conn: c, release: func() { <-l.sem }}, nil
		default:
			c.Close()
			l.refused.Inc()
		}
	}
}

type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// addrString formats a netip address for logs, "" for invalid.
func addrString(a netip.AddrPort) string {
	if !a.IsValid() {
		return ""
	}
	return a.Addr().String() + ":" + strconv.Itoa(int(a.Port()))
}
