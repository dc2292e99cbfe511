// Command tlsmeridian serves a Meridian config's proxy on its TLS listener
// alone, for bench/h2spec.sh: config.Load, routing.Compile, a health
// engine, proxy.NewHandler behind proxy.NewTLSServer (with the certificate
// watcher), as the real binary wires them, without the DNS layer.
package main

import (
	"context"
	"flag"
	"log"
	"net"
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
	flag.Parse()
	cfg, _, err := config.Load(*path)
	if err != nil {
		log.Fatal(err)
	}
	logger := zap.NewNop()
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
	h := proxy.NewHandler(proxy.Options{Tables: &live, Logger: logger, Registerer: reg, Settings: cfg.HTTP})
	ts, err := proxy.NewTLSServer(h, cfg, logger, reg)
	if err != nil {
		log.Fatal(err)
	}
	go ts.Run(ctx)
	ln, err := net.Listen("tcp", cfg.Listen.HTTPS)
	if err != nil {
		log.Fatal(err)
	}
	if err := ts.Serve(ctx, ln); err != nil {
		log.Fatal(err)
	}
}
