// Command meridian is an authoritative geo-DNS server and HTTP reverse proxy
// that steer clients to healthy sites. See README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"sync/atomic"
	"syscall"

	"github.com/meridian-lb/meridian/config"
	"github.com/meridian-lb/meridian/examples"
	"github.com/meridian-lb/meridian/internal/app"
	"github.com/meridian-lb/meridian/internal/demo"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `meridian: geo-DNS and HTTP traffic steering in one binary

Usage:
  meridian [run] -config FILE      serve FILE, reloading it when it changes (default command)
  meridian run -config consul://KEY  serve the config kept in Consul KV, following its changes
  meridian validate -config FILE   check FILE and print every problem with its line
  meridian demo [-config FILE]     start three demo upstreams and serve examples/quickstart.yaml
  meridian version                 print the version

Run "meridian COMMAND -h" for a command's flags.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	cmd := "run"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "run":
		return cmdRun(args, stderr)
	case "validate":
		return cmdValidate(args, stdout, stderr)
	case "demo":
		return cmdDemo(args, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "meridian", buildVersion())
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "meridian: unknown command %q\n\n%s", cmd, usage)
	return 2
}

func buildVersion() string {
	if version != "dev" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return version
}

func newFlags(name, help string, stderr io.Writer) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "meridian.yaml", "path of the YAML config `file`")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: meridian %s [flags]\n\n%s\n\nFlags:\n", name, help)
		fs.PrintDefaults()
	}
	return fs, path
}

func cmdRun(args []string, stderr io.Writer) int {
	fs, path := newFlags("run", "Serve the config file: HTTP proxy, DNS and admin API on the listen: addresses.\n"+
		"-config consul://KEY reads the config from Consul KV and follows it instead.\n"+
		"The file is reloaded when it changes and on SIGHUP; a bad file never replaces a good one.\n"+
		"SIGTERM or SIGINT drain gracefully (shutdown.grace); a second signal exits at once.", stderr)
	watch := fs.Bool("watch", true, "reload when the file changes; with -watch=false only SIGHUP reloads")
	consulAddr := fs.String("consul-addr", "", "Consul `address` for a -config consul://KEY (default $CONSUL_HTTP_ADDR, else 127.0.0.1:8500)")
	settle := fs.Duration("settle", config.DefaultSettle, "how long a config file written in place must stay unchanged before it is applied;\n"+
		"a file replaced by a rename or a symlink swap is applied at once")
	if err := fs.Parse(args); err != nil {
		return parseExit(err)
	}
	if *settle <= 0 {
		fmt.Fprintf(stderr, "meridian run: -settle %v: want a positive duration\n", *settle)
		return 2
	}
	return serve(app.Options{ConfigPath: *path, NoWatch: !*watch, ConsulAddr: *consulAddr, Settle: *settle}, stderr)
}

func serve(opts app.Options, stderr io.Writer) int {
	// Signals are caught before the (possibly slow) start, so an early
	// SIGHUP does not kill the process; it reloads once the app exists.
	var reload atomic.Pointer[func()]
	ctx, stop := signalContext(func() {
		if f := reload.Load(); f != nil {
			(*f)()
		}
	})
	defer stop()
	a, err := app.New(opts)
	if err != nil {
		fmt.Fprintf(stderr, "meridian: %v\n", err)
		return 1
	}
	f := a.Reload
	reload.Store(&f)
	if err := a.Run(ctx); err != nil {
		fmt.Fprintf(stderr, "meridian: %v\n", err)
		return 1
	}
	return 0
}

// signalContext is cancelled by the first SIGTERM or SIGINT; a second one
// exits at once. SIGHUP calls reload.
func signalContext(reload func()) (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	go func() {
		stopping := false
		for sig := range ch {
			switch {
			case sig == syscall.SIGHUP:
				reload()
			case stopping:
				fmt.Fprintln(os.Stderr, "meridian: second signal, exiting now")
				os.Exit(1)
			default:
				stopping = true
				cancel()
			}
		}
	}()
	return ctx, func() { signal.Stop(ch); cancel() }
}

func cmdValidate(args []string, stdout, stderr io.Writer) int {
	fs, path := newFlags("validate", "Check a config file without serving it. Exit 0 with a summary, or 1 with every problem.", stderr)
	if err := fs.Parse(args); err != nil {
		return parseExit(err)
	}
	data, _, err := config.ReadFile(*path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	cfg, err := app.Check(*path, data)
	if err != nil {
		fmt.Fprintln(stderr, err)
		var ce *config.Error
		if errors.As(err, &ce) {
			fmt.Fprintf(stderr, "%s: %d problem(s)\n", *path, len(ce.Problems))
		}
		return 1
	}
	fmt.Fprintf(stdout, "%s: ok: %d routes, %d services, %d pools, %d checks, %d zones\n",
		*path, len(cfg.Routes), len(cfg.Services), len(cfg.Pools), len(cfg.Checks), len(cfg.Zones))
	return 0
}

func cmdDemo(args []string, stdout, stderr io.Writer) int {
	fs, path := newFlags("demo", "Start three demo upstreams (eu 127.0.0.1:9101, us :9102, canary :9103) and a control API on\n"+
		"127.0.0.1:9100 (POST /upstreams/{name}/stop|start), then serve the config like `run`.\n"+
		"Without -config it serves ./examples/quickstart.yaml when present (edit it live), else a copy of it.", stderr)
	control := fs.String("control", "127.0.0.1:9100", "`address` of the demo control API")
	if err := fs.Parse(args); err != nil {
		return parseExit(err)
	}
	cfgPath := *path
	if !flagSet(fs, "config") {
		p, err := quickstartPath()
		if err != nil {
			fmt.Fprintf(stderr, "meridian demo: %v\n", err)
			return 1
		}
		cfgPath = p
	}
	ups := demo.Default()
	if err := ups.StartAll(); err != nil {
		fmt.Fprintf(stderr, "meridian demo: %v\n", err)
		return 1
	}
	defer ups.StopAll()
	ln, err := net.Listen("tcp", *control)
	if err != nil {
		fmt.Fprintf(stderr, "meridian demo: control API: %v\n", err)
		return 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = ups.ServeControl(ctx, ln) }()
	fmt.Fprintf(stdout, `meridian demo
  config:    %s (edit it: the table reloads)
  upstreams: eu %s, us %s, canary %s
  control:   curl -X POST http://%s/upstreams/eu/stop   (and .../start)
  try:       curl http://127.0.0.1:8080/          curl -H 'X-Canary: 1' http://127.0.0.1:8080/
             dig @127.0.0.1 -p 5353 www.example.test  curl http://127.0.0.1:9090/api/v1/table
`, cfgPath, ups["eu"].Addr, ups["us"].Addr, ups["canary"].Addr, ln.Addr())
	return serve(app.Options{ConfigPath: cfgPath}, stderr)
}

// parseExit is the exit code for a flag error: 0 for -h, 2 for misuse.
func parseExit(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	return 2
}

func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// quickstartPath prefers the repository's examples/quickstart.yaml, so that
// edits show up live; elsewhere it writes the embedded copy to a temp dir.
func quickstartPath() (string, error) {
	const rel = "examples/quickstart.yaml"
	if _, err := os.Stat(rel); err == nil {
		return filepath.Abs(rel)
	}
	b, err := fs.ReadFile(examples.Files, "quickstart.yaml")
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "meridian-demo-")
	if err != nil {
		return "", err
	}
	p := filepath.Join(dir, "quickstart.yaml")
	return p, os.WriteFile(p, b, 0o644)
}
