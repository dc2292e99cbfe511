package dns

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	"go.uber.org/zap"

	"github.com/meridian-lb/meridian/config"
	"github.com/meridian-lb/meridian/routing"
)

// benchChildEnv names the config a re-run test binary serves (see
// TestMain); benchCacheEnv its signature cache size.
const (
	benchChildEnv = "MERIDIAN_DNS_BENCH_SERVE"
	benchCacheEnv = "MERIDIAN_DNS_BENCH_CACHE"
	benchAddrEnv  = "MERIDIAN_DNS_BENCH_ADDR"
)

// TestMain lets BenchmarkServerCPU run this test binary as a DNS server
// process, so its CPU can be measured apart from the client's.
func TestMain(m *testing.M) {
	if path := os.Getenv(benchChildEnv); path != "" {
		if err := serveForBench(path, os.Getenv(benchAddrEnv), os.Getenv(benchCacheEnv)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// serveForBench serves the config at path on addr until SIGTERM or
// SIGINT: the DNS server alone, with no health checks (every endpoint up).
func serveForBench(path, addr, cache string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	cfg, err := config.Parse(path, b)
	if err != nil {
		return err
	}
	tab, err := routing.Compile(cfg, routing.Inputs{})
	if err != nil {
		return err
	}
	size, _ := strconv.Atoi(cache)
	live := &routing.Live{}
	s := NewServer(Options{Tables: live, Settings: cfg.DNS, Logger: zap.NewNop(), SignatureCache: size})
	s.TableChanged(tab)
	live.Store(tab)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	return s.Run(ctx, addr, nil)
}

// BenchmarkServerCPU measures what a server process spends on the CPU per
// UDP query, sockets included, the way bench/dns.sh does (utime+stime
// from /proc/<pid>/stat over the run, divided by the queries answered):
// Meridian (this test binary re-run as a DNS server, see TestMain)
// answering a geo-steered A record with ECS, unsigned, signed with a warm
// signature cache, and signed with no cache (every answer signed anew);
// and Knot answering the same name, a static record there, unsigned and
// signed online by mod-onlinesign. Eight goroutines query in a closed
// loop. The figure is reported as server-µs/query; ns/op is the client's
// wall time per query. Knot's cases skip when knotd is missing.
//
//	go test ./dns -run '^$' -bench ServerCPU -benchtime 20000x
func BenchmarkServerCPU(b *testing.B) {
	zoneYAML, err := os.ReadFile("testdata/zone.yaml")
	if err != nil {
		b.Fatal(err)
	}
	keys := b.TempDir()
	signed := strings.Replace(string(zoneYAML), "    transfer: {allow: [127.0.0.1/32]}\n",
		"    transfer: {allow: [127.0.0.1/32]}\n    dnssec: {key_dir: "+keys+"}\n", 1)
	for _, tc := range []struct {
		name, config string
		cache        int
		do           bool
	}{
		{"meridian/unsigned", string(zoneYAML), 0, false},
		{"meridian/signed-warm", signed, 0, true},
		{"meridian/signed-cold", signed, -1, true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "zone.yaml")
			if err := os.WriteFile(path, []byte(tc.config), 0o600); err != nil {
				b.Fatal(err)
			}
			addr := fmt.Sprintf("127.0.0.1:%d", freePort(b))
			d := startDaemonEnv(b, []string{benchChildEnv + "=" + path, benchAddrEnv + "=" + addr, benchCacheEnv + "=" + strconv.Itoa(tc.cache)}, os.Args[0], "-test.run=^$")
			d.waitServing(b, addr, "example.com.")
			serverCPU(b, d, addr, tc.do)
		})
	}
	for _, signedKnot := range []bool{false, true} {
		name := "knot/unsigned"
		if signedKnot {
			name = "knot/onlinesign"
		}
		b.Run(name, func(b *testing.B) {
			knotd := findTool(b, "MERIDIAN_KNOTD", "knotd", "knot")
			dir := b.TempDir()
			zf := "$ORIGIN example.com.\n$TTL 300\n@ 3600 IN SOA ns1.example.com. hostmaster.example.com. 1 3600 900 604800 300\n" +
				"@ 3600 IN NS ns1.example.com.\n@ 3600 IN NS ns2.example.com.\nns1 IN A 192.0.2.53\nwww 30 IN A 198.51.100.10\nwww 30 IN A 198.51.100.11\n"
			if err := os.WriteFile(filepath.Join(dir, "example.com.zone"), []byte(zf), 0o600); err != nil {
				b.Fatal(err)
			}
			port := freePort(b)
			module := ""
			if signedKnot {
				module = "    module: mod-onlinesign/default\n"
			}
			conf := fmt.Sprintf(`server:
    rundir: "%[1]s"
    listen: 127.0.0.1@%[2]d
    udp-workers: 2
    tcp-workers: 1
    background-workers: 1
database:
    storage: "%[1]s"
log:
  - target: stderr
    any: warning
policy:
  - id: ecdsa
    algorithm: ecdsap256sha256
    single-type-signing: on
mod-onlinesign:
  - id: default
    policy: ecdsa
zone:
  - domain: example.com
    storage: "%[1]s"
    file: "example.com.zone"
%[3]s`, dir, port, module)
			if err := os.WriteFile(filepath.Join(dir, "knot.conf"), []byte(conf), 0o600); err != nil {
				b.Fatal(err)
			}
			addr := fmt.Sprintf("127.0.0.1:%d", port)
			d := startDaemon(b, knotd, "-c", filepath.Join(dir, "knot.conf"))
			d.waitServing(b, addr, "example.com.")
			serverCPU(b, d, addr, signedKnot)
		})
	}
}

// serverCPU queries the server at addr b.N times from eight goroutines
// (www.example.com. A with ECS 198.51.100.0/24, DO when do) and reports
// the server process's CPU per query.
func serverCPU(b *testing.B, d *daemon, addr string, do bool) {
	b.Helper()
	q := new(mdns.Msg)
	q.SetQuestion("www.example.com.", mdns.TypeA)
	q.SetEdns0(1232, do)
	q.IsEdns0().Option = append(q.IsEdns0().Option, ecsOption(b, "198.51.100.0/24"))
	wire, err := q.Pack()
	if err != nil {
		b.Fatal(err)
	}
	check, _, err := (&mdns.Client{Net: "udp", Timeout: 2 * time.Second}).Exchange(q, addr)
	if err != nil || len(check.Answer) < 2 || (do && !hasRRSIG(check.Answer)) {
		b.Fatalf("the server's answer %v (%v): want the addresses, signed when DO", check, err)
	}
	for range 2000 { // warm up: caches, goroutines, code paths
		exchangeRaw(b, addr, wire)
	}
	pid := d.cmd.Process.Pid
	before := procCPU(b, pid)
	b.SetParallelism(4) // 8 goroutines on 2 CPUs
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		conn, err := net.Dial("udp", addr)
		if err != nil {
			b.Error(err)
			return
		}
		defer conn.Close()
		buf := make([]byte, 4096)
		for pb.Next() {
			_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
			if _, err := conn.Write(wire); err != nil {
				b.Error(err)
				return
			}
			if _, err := conn.Read(buf); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	used := procCPU(b, pid) - before
	b.ReportMetric(float64(used.Microseconds())/float64(b.N), "server-µs/query")
}

func hasRRSIG(rrs []mdns.RR) bool {
	for _, rr := range rrs {
		if rr.Header().Rrtype == mdns.TypeRRSIG {
			return true
		}
	}
	return false
}

func exchangeRaw(b *testing.B, addr string, wire []byte) {
	conn, err := net.Dial("udp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := conn.Write(wire); err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 4096)
	if _, err := conn.Read(buf); err != nil {
		b.Fatal(err)
	}
}

// procCPU is a process's user and system CPU time so far, from
// /proc/<pid>/stat (clock ticks of 10 ms, Linux's USER_HZ).
func procCPU(b *testing.B, pid int) time.Duration {
	b.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Skipf("no /proc: %v", err)
	}
	s := string(raw)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		b.Fatalf("/proc/%d/stat: %q", pid, s)
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond
}
