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
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/meridian-lb/meridian/config"
	"github.com/meridian-lb/meridian/examples"
	"github.com/meridian-lb/meridian/internal/app"
	"github.com/meridian-lb/meridian/internal/demo"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `meridian: geo-DNS and HTTP traffic steering in one binary

Usage:
  meridian [run] [-config FILE]      serve FILE (default ./meridian.yaml), reloading it when it changes
  meridian run -config consul://KEY  serve the config kept in Consul KV, following its changes
  meridian validate -config FILE     check FILE and print every problem with its line
  meridian demo [-config FILE]       start three demo upstreams and serve the quickstart config (or FILE):
                                     ./examples/quickstart.yaml when it exists, else the copy built into meridian
  meridian demo -consul              the same with the in-repo Consul API test server (a test stand-in) on
                                     127.0.0.1:8500, the upstreams registered in it, serving examples/fleet.yaml
  meridian explain HOST [PATH]       ask a running instance how it would route an HTTP request, and why
  meridian explain -dns NAME         ask it how it would answer a DNS query, and why
  meridian diff -config FILE         show what FILE would change versus a running instance
                                     (-against URL, default http://127.0.0.1:9090) or another file (-against FILE)
  meridian version                   print the version
  meridian help [COMMAND]            print this help, or a command's

Run "meridian COMMAND -h" for a command's flags; README.md has the rest.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	cmd := "run"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	} else if len(args) > 0 && isHelpFlag(args[0]) {
		// "meridian -h" lists the commands; "meridian -config F -h" is
		// still the run command's help.
		cmd, args = "help", nil
	} else if len(args) == 1 && (args[0] == "-version" || args[0] == "--version") {
		cmd, args = "version", nil
	}
	switch cmd {
	case "run":
		return cmdRun(args, stderr)
	case "validate":
		return cmdValidate(args, stdout, stderr)
	case "demo":
		return cmdDemo(args, stdout, stderr)
	case "explain":
		return cmdExplain(args, stdout, stderr)
	case "diff":
		return cmdDiff(args, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "meridian", buildVersion())
		return 0
	case "help", "-h", "--help":
		if len(args) > 0 && args[0] != "help" && !isHelpFlag(args[0]) {
			return run([]string{args[0], "-h"}, stdout, stderr) // meridian help COMMAND
		}
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "meridian: unknown command %q\n", cmd)
	if ext := filepath.Ext(cmd); ext == ".yaml" || ext == ".yml" {
		fmt.Fprintf(stderr, "meridian: to serve a file, give it with -config: meridian run -config %s\n", cmd)
	}
	fmt.Fprintf(stderr, "\n%s", usage)
	return 2
}

func isHelpFlag(arg string) bool {
	return arg == "-h" || arg == "-help" || arg == "--help" || arg == "--h"
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
		"SIGTERM or SIGINT drain gracefully (shutdown.grace); a second signal exits at once.\n"+
		"run is the default command: \"meridian -config FILE\" is the same; \"meridian -h\" lists the others.", stderr)
	watch := fs.Bool("watch", true, "reload when the file changes; with -watch=false only SIGHUP reloads")
	consulAddr := fs.String("consul-addr", "", "Consul `address` for a -config consul://KEY (default $CONSUL_HTTP_ADDR, else 127.0.0.1:8500)")
	settle := fs.Duration("settle", config.DefaultSettle, "how long a config file written in place must stay unchanged before it is applied;\n"+
		"a file replaced by a rename or a symlink swap is applied at once")
	region := fs.String("region", "", "`name` of the region this instance runs in, overriding the config's region:\n"+
		"for a fleet sharing one config (consul://KEY) across regions")
	if err := fs.Parse(args); err != nil {
		return parseExit(err)
	}
	if !noArgs(fs, stderr) {
		return 2
	}
	if *settle <= 0 {
		fmt.Fprintf(stderr, "meridian run: -settle %v: want a positive duration\n", *settle)
		return 2
	}
	if !flagSet(fs, "config") {
		if _, err := os.Stat(*path); errors.Is(err, os.ErrNotExist) {
			fmt.Fprintf(stderr, "meridian: no -config given and %s does not exist\n"+
				"meridian: serve a file with \"meridian run -config FILE\", try \"meridian demo\", or see \"meridian -h\"\n", *path)
			return 1
		}
	}
	return serve(app.Options{ConfigPath: *path, NoWatch: !*watch, ConsulAddr: *consulAddr, Settle: *settle, Region: *region}, stderr)
}

func serve(opts app.Options, stderr io.Writer) int {
	// Signals are caught before the (possibly slow) start, so an early
	// SIGHUP does not kill the process; it reloads once the app exists.
	var reload, reopen atomic.Pointer[func()]
	ctx, stop := signalContext(func() { callStored(&reload) }, func() { callStored(&reopen) })
	defer stop()
	a, err := app.New(opts)
	if err != nil {
		startError(stderr, err)
		return 1
	}
	f, g := a.Reload, a.ReopenLogs
	reload.Store(&f)
	reopen.Store(&g)
	if err := a.Run(ctx); err != nil {
		fmt.Fprintf(stderr, "meridian: %v\n", err)
		return 1
	}
	return 0
}

// startError prints why the start failed. A config mistake is printed the
// way validate prints it, one "file:line: path: message" line per problem
// (a summary follows when there are several); other errors get one
// "meridian: ..." line. Nothing here is a log record: no stack trace.
func startError(w io.Writer, err error) {
	var ce *config.Error
	if !errors.As(err, &ce) || len(ce.Problems) == 0 || err.Error() != ce.Error() {
		fmt.Fprintf(w, "meridian: %v\n", err)
		return
	}
	for _, p := range ce.Problems {
		fmt.Fprintln(w, p.String())
	}
	if n := len(ce.Problems); n > 1 {
		fmt.Fprintf(w, "meridian: %d problems in the config; not started\n", n)
	}
}

// callStored calls the function stored in p, if any.
func callStored(p *atomic.Pointer[func()]) {
	if f := p.Load(); f != nil {
		(*f)()
	}
}

// signalContext is cancelled by the first SIGTERM or SIGINT; a second one
// exits at once. SIGHUP calls reload; SIGUSR1 (where the system has it)
// calls reopen, which reopens the access log files after logrotate.
func signalContext(reload, reopen func()) (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, append([]os.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP}, reopenSignals()...)...)
	go func() {
		stopping := false
		for sig := range ch {
			switch {
			case sig == syscall.SIGHUP:
				reload()
			case slices.Contains(reopenSignals(), sig):
				reopen()
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
	if !noArgs(fs, stderr) {
		return 2
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
	fs, path := newFlags("demo", "Start three demo upstreams (eu 127.0.0.1:9101, us :9102, canary :9103) and their control API\n"+
		"(-control; POST /upstreams/{name}/stop|start), then serve a config like `run`, reloading it when it changes.\n"+
		"The control API also breaks an upstream while its health checks stay green, for rollouts to judge:\n"+
		"POST /upstreams/{name}/fail (500 to every request but /healthz), .../slow?ms=N, .../heal.\n"+
		"Try -config examples/rollout.yaml, then POST /upstreams/canary/fail and watch the canary roll back.\n"+
		"\n"+
		"Without -config it serves the quickstart config, examples/quickstart.yaml:\n"+
		"  - ./examples/quickstart.yaml, relative to the working directory, when that file exists\n"+
		"    (the repository's copy, when run from the repository root: edit it and the table reloads);\n"+
		"  - otherwise the copy built into this binary, written to a new temporary file.\n"+
		"The banner it prints on start names the file served (config: ...).", stderr)
	if f := fs.Lookup("config"); f != nil {
		f.Usage = "path of the YAML config `file` to serve instead of the quickstart"
		f.DefValue = "" // the default is the quickstart, described above
	}
	control := fs.String("control", "127.0.0.1:9100", "`address` of the demo control API")
	withConsul := fs.Bool("consul", false, "also start the in-repo Consul API test server (catalog/consultest: a test stand-in, not Consul)\n"+
		"with the upstreams registered in it (web eu and canary in dc1, web us in dc2), and serve examples/fleet.yaml;\n"+
		"the control API also takes POST /consul/datacenters/{dc}/stop|start")
	consulAddr := fs.String("consul-addr", "127.0.0.1:8500", "`address` of the Consul stand-in (with -consul; the config's consul.address must match)")
	if err := fs.Parse(args); err != nil {
		return parseExit(err)
	}
	if !noArgs(fs, stderr) {
		return 2
	}
	cfgPath, origin := *path, "the -config file"
	if !flagSet(fs, "config") && *withConsul {
		p, embedded, err := examplePath("fleet.yaml")
		if err != nil {
			fmt.Fprintf(stderr, "meridian demo: %v\n", err)
			return 1
		}
		cfgPath, origin = p, "./examples/fleet.yaml"
		if embedded {
			origin = "the copy of examples/fleet.yaml built into meridian"
		}
	} else if !flagSet(fs, "config") {
		p, embedded, err := quickstartPath()
		if err != nil {
			fmt.Fprintf(stderr, "meridian demo: %v\n", err)
			return 1
		}
		cfgPath, origin = p, "./examples/quickstart.yaml"
		if embedded {
			origin = "the copy of examples/quickstart.yaml built into meridian"
		}
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
	if *withConsul {
		dc, err := startDemoConsul(*consulAddr, ups)
		if err != nil {
			fmt.Fprintf(stderr, "meridian demo: %v\n", err)
			return 1
		}
		defer dc.Close()
		srv := &http.Server{Handler: dc.control(ups.Handler()), ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		defer srv.Close()
		fmt.Fprintf(stdout, `meridian demo -consul
  consul:    %s: the in-repo Consul API test server (catalog/consultest), a TEST STAND-IN, not Consul
             web eu, canary in dc1 and web us in dc2, with the upstreams' health checks
             curl -X POST http://%s/consul/datacenters/dc2/stop   (and .../start): a datacenter stops answering
             curl http://127.0.0.1:9090/api/v1/fleet               the fleet: members, reports, quorum, forwarding
`, dc.srv.Addr, dialable(ln.Addr()))
	} else {
		go func() { _ = ups.ServeControl(ctx, ln) }()
	}
	fmt.Fprintf(stdout, `meridian demo
  config:    %s (%s; edit it: the table reloads)
  upstreams: eu %s, us %s, canary %s
  control:   curl -X POST http://%s/upstreams/eu/stop   (and .../start; canary/fail, canary/slow?ms=N, canary/heal)
  try:       curl http://127.0.0.1:8080/          curl -H 'X-Canary: 1' http://127.0.0.1:8080/
             dig @127.0.0.1 -p 5353 www.example.test  curl http://127.0.0.1:9090/api/v1/table
`, cfgPath, origin, ups["eu"].Addr, ups["us"].Addr, ups["canary"].Addr, dialable(ln.Addr()))
	return serve(app.Options{ConfigPath: cfgPath}, stderr)
}

// dialable is addr as a client on this host reaches it: a listener on
// every interface (-control 0.0.0.0:9100, say in a container) is shown at
// 127.0.0.1.
func dialable(addr net.Addr) string {
	if ta, ok := addr.(*net.TCPAddr); ok && ta.IP.IsUnspecified() {
		return net.JoinHostPort("127.0.0.1", strconv.Itoa(ta.Port))
	}
	return addr.String()
}

// parseExit is the exit code for a flag error: 0 for -h, 2 for misuse.
func parseExit(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	return 2
}

// noArgs reports whether the command line had only flags; a stray word
// (say, a file name without -config) is an error rather than ignored.
func noArgs(fs *flag.FlagSet, stderr io.Writer) bool {
	if fs.NArg() == 0 {
		return true
	}
	fmt.Fprintf(stderr, "meridian %s: unexpected argument %q", fs.Name(), fs.Arg(0))
	if ext := filepath.Ext(fs.Arg(0)); ext == ".yaml" || ext == ".yml" {
		fmt.Fprintf(stderr, " (a config file goes after -config: meridian %s -config %s)", fs.Name(), fs.Arg(0))
	}
	fmt.Fprintln(stderr)
	return false
}

func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// quickstartPath prefers the repository's examples/quickstart.yaml, so that
// edits show up live; elsewhere it writes the embedded copy to a temp dir
// and says so (embedded).
func quickstartPath() (path string, embedded bool, err error) {
	const rel = "examples/quickstart.yaml"
	if _, err := os.Stat(rel); err == nil {
		p, err := filepath.Abs(rel)
		return p, false, err
	}
	b, err := fs.ReadFile(examples.Files, "quickstart.yaml")
	if err != nil {
		return "", false, err
	}
	dir, err := os.MkdirTemp("", "meridian-demo-")
	if err != nil {
		return "", false, err
	}
	p := filepath.Join(dir, "quickstart.yaml")
	return p, true, os.WriteFile(p, b, 0o644)
}
