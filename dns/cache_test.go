package dns

import (
	"bytes"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/meridian-lb/meridian/health"
	"github.com/meridian-lb/meridian/routing"
	"github.com/meridian-lb/meridian/telemetry"
)

// direct is a Server answering datagrams in-process, as a UDP worker does.
type direct struct {
	t   *testing.T
	srv *Server
	sc  *scratch
}

func newDirect(t *testing.T, live *routing.Live, opts Options) *direct {
	t.Helper()
	opts.Tables = live
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	return &direct{t: t, srv: NewServer(opts), sc: new(scratch)}
}

// ask sends m from addr and returns the raw response and whether the
// answer cache answered it.
func (d *direct) ask(m *mdns.Msg, from string) (resp []byte, hit bool) {
	d.t.Helper()
	b, err := m.Pack()
	if err != nil {
		d.t.Fatal(err)
	}
	addr := netip.MustParseAddr(from)
	var w batchSlot
	done, miss := d.srv.fastPath(b, addr, &w, &d.sc.q, &d.sc.miss, d.sc.key[:0])
	if !done {
		d.srv.slowDatagram(b, addr, &w, miss)
	}
	return w.data, done
}

// query is ask, decoded.
func (d *direct) query(m *mdns.Msg, from string) (*mdns.Msg, bool) {
	d.t.Helper()
	b, hit := d.ask(m, from)
	resp := new(mdns.Msg)
	if err := resp.Unpack(b); err != nil {
		d.t.Fatalf("response %x: %v", b, err)
	}
	return resp, hit
}

func addrs(rrs []mdns.RR) string {
	var out []string
	for _, rr := range rrs {
		switch a := rr.(type) {
		case *mdns.A:
			out = append(out, a.A.String())
		case *mdns.AAAA:
			out = append(out, a.AAAA.String())
		case *mdns.CNAME:
			out = append(out, "CNAME "+a.Target)
		}
	}
	return strings.Join(out, " ")
}

// TestAnswerCacheHits: the second of two queries with one key is answered
// from the cache, the same bytes but for the ID, RD and CD and the ECS
// option, which follow the query.
func TestAnswerCacheHits(t *testing.T) {
	live := &routing.Live{}
	live.Store(compile(t, loadConfig(t, "zone.yaml")))
	d := newDirect(t, live, Options{})
	for _, tc := range []struct {
		name, qname string
		qtype       uint16
		ecs         string
		edns        bool
	}{
		{"static", "ns1.example.com.", mdns.TypeA, "", false},
		{"static, mixed case", "Ns1.Example.COM.", mdns.TypeA, "", true},
		{"steered, ECS us", "www.example.com.", mdns.TypeA, "198.51.100.0/24", true},
		{"steered, ECS eu", "www.example.com.", mdns.TypeA, "10.1.0.0/16", true},
		{"steered AAAA, ECS v6", "www.example.com.", mdns.TypeAAAA, "2001:db8:1::/56", true},
		{"CNAME to steered", "api.example.com.", mdns.TypeA, "", true},
		{"wildcard", "x.app.example.com.", mdns.TypeA, "", false},
		{"referral", "host.sub.example.com.", mdns.TypeA, "", false},
		{"NXDOMAIN", "nope.example.com.", mdns.TypeA, "", true},
		{"NODATA", "txt.example.com.", mdns.TypeA, "", true},
		{"MX with additional", "example.com.", mdns.TypeMX, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := new(mdns.Msg)
			q.SetQuestion(tc.qname, tc.qtype)
			if tc.edns {
				q.SetEdns0(1232, false)
				if tc.ecs != "" {
					q.IsEdns0().Option = append(q.IsEdns0().Option, ecsOption(t, tc.ecs))
				}
			}
			// A key is kept the second time it is asked: once first.
			// Steered answers rotate over two addresses: the third and
			// fourth queries meet the decisions of the first and second.
			d.query(q, "127.0.0.1")
			var resp [4]*mdns.Msg
			for i := range resp {
				q.Id++
				q.RecursionDesired = i%2 == 0
				q.CheckingDisabled = i >= 2
				var hit bool
				resp[i], hit = d.query(q, "127.0.0.1")
				if i >= 2 && !hit {
					t.Fatalf("query %d missed the cache", i)
				}
			}
			second := resp[3]
			if second.Id != q.Id || second.RecursionDesired != q.RecursionDesired || !second.CheckingDisabled {
				t.Errorf("header %v, want the query's ID, RD and CD", second.MsgHdr)
			}
			for i := range 2 {
				first, second := resp[i], resp[i+2]
				first.Id, first.CheckingDisabled = second.Id, second.CheckingDisabled
				if first.String() != second.String() {
					t.Errorf("from the cache\n%v\nfrom the resolver\n%v", second, first)
				}
			}
			if tc.ecs != "" {
				scope := -1
				if o := second.IsEdns0(); o != nil {
					for _, opt := range o.Option {
						if s, ok := opt.(*mdns.EDNS0_SUBNET); ok {
							scope = int(s.SourceScope)
						}
					}
				}
				if scope < 0 {
					t.Error("no ECS option echoed")
				}
			}
		})
	}
}

// TestAnswerCacheNotKept: answers that depend on more than the key are
// never served from the cache.
func TestAnswerCacheNotKept(t *testing.T) {
	live := &routing.Live{}
	live.Store(compile(t, signedConfig(t, t.TempDir())))
	d := newDirect(t, live, Options{})
	signed := new(mdns.Msg)
	signed.SetQuestion("www.example.com.", mdns.TypeA)
	signed.SetEdns0(1232, true)
	axfr := new(mdns.Msg)
	axfr.SetQuestion("example.com.", mdns.TypeAXFR)
	notify := new(mdns.Msg)
	notify.SetQuestion("example.com.", mdns.TypeSOA)
	notify.Opcode = mdns.OpcodeNotify
	for _, q := range []*mdns.Msg{signed, axfr, notify} {
		for range 2 {
			if _, hit := d.ask(q, "127.0.0.1"); hit {
				t.Errorf("%v answered from the cache", q.Question)
			}
		}
	}
}

// TestAnswerCacheTableSwap: a new table answers at once; the old table's
// answers go with it.
func TestAnswerCacheTableSwap(t *testing.T) {
	live := &routing.Live{}
	live.Store(compile(t, loadConfig(t, "zone.yaml")))
	d := newDirect(t, live, Options{})
	q := new(mdns.Msg)
	q.SetQuestion("mx.example.com.", mdns.TypeA)
	for range 2 {
		if resp, _ := d.query(q, "127.0.0.1"); addrs(resp.Answer) != "192.0.2.25" {
			t.Fatalf("answer %v", resp.Answer)
		}
	}
	if _, hit := d.query(q, "127.0.0.1"); !hit {
		t.Fatal("not answered from the cache")
	}
	yaml, err := os.ReadFile("testdata/zone.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tab := compile(t, parseConfig(t, strings.Replace(string(yaml), "values: [192.0.2.25]", "values: [192.0.2.26]", 1)))
	d.srv.TableChanged(tab)
	live.Store(tab)
	resp, hit := d.query(q, "127.0.0.1")
	if hit || addrs(resp.Answer) != "192.0.2.26" {
		t.Fatalf("after the swap: %v (from the cache: %t), want 192.0.2.26 from the new table", resp.Answer, hit)
	}
}

// TestAnswerCacheHealth: a health change changes a kept steered answer
// with the next query, before anything else (serials, the table) moves:
// the decision is made per query from live health, and only the packed
// answer for a decision is kept.
func TestAnswerCacheHealth(t *testing.T) {
	h := newHarness(t, loadConfig(t, "zone.yaml"))
	d := newDirect(t, h.live, Options{})
	d.srv.TableChanged(h.live.Load()) // as the app announces a table to its server
	ask := func(name string) (string, bool) {
		t.Helper()
		resp, hit := d.query(aQuery(name).query(t), "127.0.0.1")
		return addrs(resp.Answer), hit
	}
	report := func(pool, addr string) {
		t.Helper()
		m := h.health.Member(pool, addr)
		if m == nil {
			t.Fatalf("no member %s/%s", pool, addr)
		}
		m.Report(health.ConnectFailure) // no TableChanged: serials stay
	}
	for _, tc := range []struct {
		name, before, after string
		down                [][2]string
	}{
		// failover: web-us first; with both down, web-eu.
		{"fo.example.com.", "198.51.100.", "192.0.2.", [][2]string{{"web-us", "198.51.100.10:80"}, {"web-us", "198.51.100.11:80"}}},
		// on_all_down: nodata.
		{"nd.example.com.", "203.0.113.1", "", [][2]string{{"blue", "203.0.113.1:80"}}},
		// on_all_down: fallback, a CNAME followed in the zone.
		{"fb.example.com.", "203.0.113.2", "CNAME sorry.example.com. 192.0.2.99", [][2]string{{"green", "203.0.113.2:80"}}},
	} {
		ask(tc.name) // kept the second time it is asked
		for i := range 3 {
			got, hit := ask(tc.name)
			if !strings.HasPrefix(got, tc.before) {
				t.Fatalf("%s: %q, want %s…", tc.name, got, tc.before)
			}
			if i == 2 && !hit {
				t.Fatalf("%s: not answered from the cache", tc.name)
			}
		}
		serial := h.serial()
		for _, m := range tc.down {
			report(m[0], m[1])
		}
		if h.serial() != serial {
			t.Fatal("the serial moved already: the test would not show the cache follows health alone")
		}
		for range 2 {
			if got, _ := ask(tc.name); !strings.HasPrefix(got, tc.after) || (tc.after == "" && got != "") || strings.HasPrefix(got, tc.before) {
				t.Fatalf("%s after the health change: %q, want %q…", tc.name, got, tc.after)
			}
		}
	}
}

// TestAnswerCacheRotation: the rotation moves once per query whether the
// answer comes from the cache or not, so every endpoint gets its share of
// first places, in order.
func TestAnswerCacheRotation(t *testing.T) {
	live := &routing.Live{}
	live.Store(compile(t, loadConfig(t, "zone.yaml")))
	d := newDirect(t, live, Options{})
	first := map[string]int{}
	var order []string
	const n = 60
	for range n {
		resp, _ := d.query(aQuery("many.example.com.").query(t), "127.0.0.1")
		if len(resp.Answer) != 4 {
			t.Fatalf("%d answers, want max_answers 4", len(resp.Answer))
		}
		a := resp.Answer[0].(*mdns.A).A.String()
		first[a]++
		order = append(order, a)
	}
	if len(first) != 6 {
		t.Fatalf("first places went to %d endpoints, want 6: %v", len(first), first)
	}
	for i := 6; i < n; i++ {
		if order[i] != order[i-6] {
			t.Fatalf("first places do not cycle through the 6 endpoints: %v", order)
		}
	}
}

// TestAnswerCacheTruncation: a kept answer too big for a client's buffer
// goes the slow way and is truncated, and counted, as before.
func TestAnswerCacheTruncation(t *testing.T) {
	live := &routing.Live{}
	live.Store(compile(t, parseConfig(t, fastZoneYAML)))
	reg := prometheus.NewRegistry()
	d := newDirect(t, live, Options{Registerer: reg})
	big := new(mdns.Msg)
	big.SetQuestion("big.example.com.", mdns.TypeTXT)
	large := big.Copy()
	large.SetEdns0(1232, false)
	small := big.Copy()
	small.SetEdns0(512, false)
	for i, tc := range []struct {
		q         *mdns.Msg
		truncated bool
	}{{big, true}, {large, false}, {large, false}, {large, false}, {small, true}, {big, true}} {
		resp, hit := d.query(tc.q, "127.0.0.1")
		if resp.Truncated != tc.truncated {
			t.Fatalf("query %d: TC=%t, want %t", i, resp.Truncated, tc.truncated)
		}
		if hit && tc.truncated {
			t.Fatalf("query %d: a truncated answer from the cache", i)
		}
		if i == 3 && !hit { // kept the second time it was asked
			t.Fatal("the large query again missed the cache")
		}
	}
	if got := counterValue(t, &harness{reg: reg}, "meridian_dns_truncated_total", nil); got != 3 {
		t.Errorf("truncated_total %v, want 3", got)
	}
	if got := counterValue(t, &harness{reg: reg}, "meridian_dns_queries_total", map[string]string{"zone": "example.com.", "qtype": "TXT", "rcode": "NOERROR"}); got != 6 {
		t.Errorf("queries_total %v, want 6", got)
	}
}

// TestAnswerCacheSerial: a kept negative answer carries the zone's serial
// in its SOA; when the serial moves, the next answer has the new one.
func TestAnswerCacheSerial(t *testing.T) {
	live := &routing.Live{}
	tab := compile(t, loadConfig(t, "zone.yaml"))
	live.Store(tab)
	d := newDirect(t, live, Options{})
	q := aQuery("nope.example.com.").query(t)
	serialOf := func() (uint32, bool) {
		resp, hit := d.query(q, "127.0.0.1")
		if len(resp.Ns) != 1 {
			t.Fatalf("authority %v", resp.Ns)
		}
		return resp.Ns[0].(*mdns.SOA).Serial, hit
	}
	serialOf()
	serialOf() // kept the second time it is asked
	s1, hit := serialOf()
	if !hit || s1 != tab.Zones[0].Serial() {
		t.Fatalf("serial %d (from the cache: %t), want %d from the cache", s1, hit, tab.Zones[0].Serial())
	}
	tab.Zones[0].SetSerial(s1 + 1)
	if s2, _ := serialOf(); s2 != s1+1 {
		t.Fatalf("serial %d after it moved, want %d", s2, s1+1)
	}
}

// TestAnswerCacheBounded: however many names are asked, the cache holds
// at most answerCacheEntries.
func TestAnswerCacheBounded(t *testing.T) {
	live := &routing.Live{}
	live.Store(compile(t, loadConfig(t, "zone.yaml")))
	d := newDirect(t, live, Options{})
	for i := range answerCacheEntries + 100 {
		d.ask(aQuery("n"+strconv.Itoa(i)+".example.com.").query(t), "127.0.0.1")
		d.ask(aQuery("n"+strconv.Itoa(i)+".example.com.").query(t), "127.0.0.1") // kept the second time
		if c := d.srv.cache.Load(); c != nil {
			n := 0
			for j := range c.shards {
				c.shards[j].mu.RLock()
				n += c.shards[j].entries
				if c.shards[j].bytes > answerCacheBytes/cacheShards {
					t.Fatalf("shard %d holds %d bytes", j, c.shards[j].bytes)
				}
				c.shards[j].mu.RUnlock()
			}
			if n > answerCacheEntries {
				t.Fatalf("%d entries", n)
			}
		}
	}
}

// TestAnswerCacheFlood: names asked once each (random subdomains, case
// spellings) are not kept and do not push out a name asked again and
// again.
func TestAnswerCacheFlood(t *testing.T) {
	live := &routing.Live{}
	live.Store(compile(t, loadConfig(t, "zone.yaml")))
	d := newDirect(t, live, Options{})
	hot := aQuery("mx.example.com.").query(t)
	d.ask(hot, "127.0.0.1")
	d.ask(hot, "127.0.0.1") // kept
	for i := range answerCacheEntries + 100 {
		d.ask(aQuery("r"+strconv.Itoa(i)+".example.com.").query(t), "127.0.0.1")
	}
	if _, hit := d.ask(hot, "127.0.0.1"); !hit {
		t.Fatal("a flood of names asked once pushed out the name asked again")
	}
	c := d.srv.cache.Load()
	n := 0
	for i := range c.shards {
		n += c.shards[i].entries
	}
	if n != 1 {
		t.Fatalf("%d entries kept, want only the name asked twice", n)
	}
}

// TestAnswerCacheQueryLog: an answer from the cache is logged as the
// resolver's is.
func TestAnswerCacheQueryLog(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	cfg := loadConfig(t, "zone.yaml")
	cfg.DNS.QueryLog = 1
	live := &routing.Live{}
	live.Store(compile(t, cfg))
	d := newDirect(t, live, Options{Settings: cfg.DNS, Logger: zap.New(core)})
	q := tcase{qname: "www.example.com.", qtype: mdns.TypeA, ecs: "198.51.100.0/24"}.query(t)
	// Seen once, then two decisions (a rotation of two) kept, then one
	// from the cache.
	for i := range 4 {
		if _, hit := d.query(q, "127.0.0.1"); i == 3 && !hit {
			t.Fatal("not answered from the cache")
		}
	}
	entries := logs.FilterMessage("dns query").All()
	if len(entries) != 4 {
		t.Fatalf("%d query log lines, want 4", len(entries))
	}
	for _, e := range entries {
		f := e.ContextMap()
		if f["qname"] != "www.example.com." || f["qtype"] != "A" || f["region"] != "us" || f["ecs_scope"] != int64(24) ||
			f["rcode"] != "NOERROR" || f["zone"] != "example.com." || f["answers"] != int64(2) || f["client"] != "127.0.0.1" {
			t.Errorf("query log fields %v", f)
		}
	}
}

// TestAnswerCacheSameBytes: over a real socket, an answer from the cache
// is the resolver's answer for the same query.
func TestAnswerCacheSameBytes(t *testing.T) {
	h := newHarness(t, loadConfig(t, "zone.yaml"))
	q := tcase{qname: "api.example.com.", qtype: mdns.TypeA, ecs: "198.51.100.0/24"}.query(t)
	b, err := q.Pack()
	if err != nil {
		t.Fatal(err)
	}
	// web-us has two addresses that rotate: compare answers two apart.
	var got [][]byte
	for range 4 {
		got = append(got, h.raw(b, 2*time.Second))
	}
	if got[0] == nil || !bytes.Equal(got[0], got[2]) || !bytes.Equal(got[1], got[3]) || bytes.Equal(got[0], got[1]) {
		t.Fatalf("answers %x", got)
	}
}

// TestAnswerCacheTelemetry: answers from the cache are counted per zone,
// record and pool, as the resolver's are, also after the counters are
// activated anew for the same table.
func TestAnswerCacheTelemetry(t *testing.T) {
	cfg := loadConfig(t, "zone.yaml")
	live := &routing.Live{}
	tel := telemetry.New(telemetry.Options{})
	d := newDirect(t, live, Options{Settings: cfg.DNS, Registerer: prometheus.NewRegistry(), Telemetry: tel})
	tab := compile(t, cfg)
	d.srv.TableChanged(tab)
	live.Store(tab)
	hits := 0
	ask := func(name string, qtype uint16) {
		m := new(mdns.Msg)
		m.SetQuestion(name, qtype)
		if _, hit := d.ask(m, "127.0.0.1"); hit {
			hits++
		}
	}
	for i := range 6 {
		ask("www.example.com.", mdns.TypeA)
		ask("nope.example.com.", mdns.TypeA)
		if i == 2 {
			d.srv.telTable(tab) // fresh counters, same table
		}
	}
	if hits < 6 {
		t.Fatalf("%d answers from the cache, want at least 6", hits)
	}
	z := tel.Stats().DNS.Zones[0]
	recs := map[string]telemetry.RecordStats{}
	for _, r := range z.Records {
		recs[r.Name] = r
	}
	if w := recs["www.example.com."].Totals; w.Queries != 6 || w.Answers["web-eu"] != 6 {
		t.Errorf("www: %+v", w)
	}
	if n := recs[telemetry.NoRecord].Totals; n.Rcodes["NXDOMAIN"] != 6 {
		t.Errorf("unknown names: %+v", n)
	}
}
