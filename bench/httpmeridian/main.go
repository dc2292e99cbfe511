// Command httpmeridian serves a Meridian config's HTTP proxy alone, for
// bench/http.sh: config.Load, routing.Compile, a health engine, and
// proxy.NewHandler behind proxy.Server, with metrics on a registry as in
// the real binary. -pprof exposes net/http/pprof for profiling.
package main

import (
	"context"
	"flag"
	"log"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"os/signal"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/meridian-lb/meridian/config"
	"github.com/meridian-lb/meridian/health"
	"github.com/meridian-lb/meridian/proxy"
	"github.com/meridian-lb/meridian/routing"
)

func main() {
	path := flag.String("config", "meridian.yaml", "config file")
	pprof := flag.String("pprof", "", "address for net/http/pprof (empty: off)")
	flag.Parse()
	cfg, _, err := config.Load(*path)
	if err != nil {
		log.Fatal(err)
	}
	logger := zap.NewNop()
	if cfg.HTTP.AccessLog {
		logger, _ = zap.NewProduction()
	}
	reg := prometheus.NewRegistry()
	eng := health.New(health.Options{Registerer: reg, Logger: logger})
	t, err := routing.Compile(cfg, routing.Inputs{})
	if err != nil {
		log.Fatal(err)
	}
	eng.Sync(t.HealthSpecs())
	t.BindHealth(eng)
	var live routing.Live
	live.Store(t)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go eng.Run(ctx)
	if *pprof != "" {
		go func() { log.Println(http.ListenAndServe(*pprof, nil)) }()
	}
	h := proxy.NewHandler(proxy.Options{Tables: &live, Logger: logger, Registerer: reg, Settings: cfg.HTTP})
	ln, err := net.Listen("tcp", cfg.Listen.HTTP)
	if err != nil {
		log.Fatal(err)
	}
	srv := proxy.NewServer(h, cfg.HTTP, logger)
	srv.Grace = cfg.Shutdown.Grace.D()
	if err := srv.Serve(ctx, ln); err != nil {
		log.Fatal(err)
	}
}
