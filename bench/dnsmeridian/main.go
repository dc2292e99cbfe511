// Command dnsmeridian serves a Meridian config's zones with the dns package
// alone: routing.Compile, an optional health engine, dns.Server and the
// explain API. bench/dns.sh uses it so the DNS layer can be measured (and
// profiled) on its own; the docs use it to show answers.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/meridian-lb/meridian/config"
	"github.com/meridian-lb/meridian/dns"
	"github.com/meridian-lb/meridian/geo"
	"github.com/meridian-lb/meridian/health"
	"github.com/meridian-lb/meridian/routing"
)

func main() {
	cfgPath := flag.String("config", "", "Meridian config `file`")
	addr := flag.String("addr", "", "DNS `address` (default: listen.dns)")
	probe := flag.Bool("health", false, "run the health engine (checks probe; without it every endpoint is up)")
	explain := flag.String("explain", "", "serve /api/v1/explain on this `address`")
	cpuprof := flag.String("cpuprofile", "", "write a CPU profile of the whole run to `file`")
	flag.Parse()
	if err := run(*cfgPath, *addr, *probe, *explain, *cpuprof); err != nil {
		log.Fatal(err)
	}
}

func run(path, addr string, probe bool, explainAddr, cpuprof string) error {
	cfg, _, err := config.Load(path)
	if err != nil {
		return err
	}
	if addr == "" {
		addr = cfg.Listen.DNS
	}
	logger, _ := zap.NewProduction()
	reg := prometheus.NewRegistry()
	var db *geo.DB
	if cfg.Geo.MMDB != "" {
		if db, err = geo.OpenDB(cfg.Geo.MMDB, logger, reg); err != nil {
			return err
		}
	}
	tab, err := routing.Compile(cfg, routing.Inputs{GeoDB: db})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	live := &routing.Live{}
	srv := dns.NewServer(dns.Options{Tables: live, Settings: cfg.DNS, Logger: logger, Registerer: reg})
	if probe {
		eng := health.New(health.Options{Logger: logger, Registerer: reg, OnChange: srv.HealthChanged})
		eng.Sync(tab.HealthSpecs())
		tab.BindHealth(eng)
		go func() { _ = eng.Run(ctx) }()
	}
	srv.TableChanged(tab)
	live.Store(tab)

	if explainAddr != "" {
		mux := http.NewServeMux()
		mux.Handle("GET /api/v1/explain", dns.ExplainHandler(live))
		ln, err := net.Listen("tcp", explainAddr)
		if err != nil {
			return err
		}
		go func() { _ = http.Serve(ln, mux) }()
	}
	if cpuprof != "" {
		f, err := os.Create(cpuprof)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	return srv.Run(ctx, addr, func(udp, tcp net.Addr) {
		fmt.Printf("serving DNS on %s (udp) and %s (tcp)\n", udp, tcp)
	})
}
