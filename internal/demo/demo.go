package demo

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Upstream is one demo backend: it answers every request with its name, and
// /healthz with 200, until it is stopped. It can be told to fail (every
// request but /healthz answers 500) or to be slow (every request but
// /healthz waits first): its health checks stay green while its traffic
// goes bad, which only a rollout's judgement of that traffic notices.
type Upstream struct {
	Name string
	Addr string

	mu      sync.Mutex
	srv     *http.Server
	failing atomic.Bool
	delay   atomic.Int64 // nanoseconds each request waits
}

// MaxSlow bounds SetSlow.
const MaxSlow = time.Minute

// SetFailing makes every request but /healthz answer 500 (true), or
// answer normally again (false).
func (u *Upstream) SetFailing(on bool) { u.failing.Store(on) }

// SetSlow makes every request but /healthz wait d before it is answered; 0
// answers at once again. d is capped at MaxSlow.
func (u *Upstream) SetSlow(d time.Duration) { u.delay.Store(int64(min(max(d, 0), MaxSlow))) }

// Heal undoes SetFailing and SetSlow.
func (u *Upstream) Heal() {
	u.SetFailing(false)
	u.SetSlow(0)
}

// Faults describes what SetFailing and SetSlow set, "" when healthy.
func (u *Upstream) Faults() string {
	var f []string
	if u.failing.Load() {
		f = append(f, "failing")
	}
	if d := time.Duration(u.delay.Load()); d > 0 {
		f = append(f, "slow "+d.String())
	}
	return strings.Join(f, ", ")
}

// faulty applies the upstream's faults to every request but /healthz.
func (u *Upstream) faulty(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			next.ServeHTTP(w, r)
			return
		}
		if d := time.Duration(u.delay.Load()); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return
			}
		}
		if u.failing.Load() {
			w.Header().Set("X-Upstream", u.Name)
			http.Error(w, "demo: "+u.Name+" is failing (POST /upstreams/"+u.Name+"/heal on the control API)", http.StatusInternalServerError)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Start binds the upstream's address and serves in the background.
func (u *Upstream) Start() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.srv != nil {
		return nil
	}
	ln, err := net.Listen("tcp", u.Addr)
	if err != nil {
		return fmt.Errorf("demo upstream %s: %w", u.Name, err)
	}
	u.Addr = ln.Addr().String()
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	// /auth is a forward-auth service for examples/edge.yaml: it lets a
	// request through when it carries X-Demo-Key: letmein, and names the
	// user for the upstream.
	mux.HandleFunc("/auth", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Demo-Key") != "letmein" {
			w.Header().Set("WWW-Authenticate", `DemoKey realm="meridian demo"`)
			http.Error(w, "demo auth: send X-Demo-Key: letmein", http.StatusUnauthorized)
			return
		}
		w.Header().Set("X-Auth-User", "demo")
		w.WriteHeader(http.StatusNoContent)
	})
	// /data.json is a response large enough to be compressed.
	mux.HandleFunc("/data.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Upstream", u.Name)
		fmt.Fprint(w, `{"upstream":"`+u.Name+`","items":[`)
		for i := range 200 {
			if i > 0 {
				fmt.Fprint(w, ",")
			}
			fmt.Fprintf(w, `{"id":%d,"name":"item %d","region":"%s"}`, i, i, u.Name)
		}
		fmt.Fprint(w, "]}\n")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Upstream", u.Name)
		fmt.Fprintf(w, "hello from %s (%s) path=%s\n", u.Name, u.Addr, r.URL.Path)
	})
	u.srv = &http.Server{Handler: u.faulty(mux), ReadHeaderTimeout: 5 * time.Second}
	go func(s *http.Server) { _ = s.Serve(ln) }(u.srv)
	return nil
}

// Stop closes the listener and every connection, as a crashed server would.
func (u *Upstream) Stop() {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.srv != nil {
		_ = u.srv.Close()
		u.srv = nil
	}
}

// Running reports whether the upstream is serving.
func (u *Upstream) Running() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.srv != nil
}

// Set is the demo's upstreams by name.
type Set map[string]*Upstream

// Default returns the three upstreams examples/quickstart.yaml points at:
// two regions and a canary.
func Default() Set {
	return Set{
		"eu":     {Name: "eu", Addr: "127.0.0.1:9101"},
		"us":     {Name: "us", Addr: "127.0.0.1:9102"},
		"canary": {Name: "canary", Addr: "127.0.0.1:9103"},
	}
}

// StartAll starts every upstream, stopping those already started on error.
func (s Set) StartAll() error {
	for _, name := range s.names() {
		if err := s[name].Start(); err != nil {
			s.StopAll()
			return err
		}
	}
	return nil
}

// StopAll stops every upstream.
func (s Set) StopAll() {
	for _, u := range s {
		u.Stop()
	}
}

func (s Set) names() []string {
	names := make([]string, 0, len(s))
	for n := range s {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Handler is the control API: GET / lists upstreams; POST
// /upstreams/{name}/stop and /upstreams/{name}/start stop and start one;
// /upstreams/{name}/fail makes it answer 500 to every request but
// /healthz (health checks stay green), /upstreams/{name}/slow?ms=N makes it
// wait N ms before answering, and /upstreams/{name}/heal undoes both.
func (s Set) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		for _, n := range s.names() {
			state := "stopped"
			if s[n].Running() {
				state = "running"
			}
			if f := s[n].Faults(); f != "" {
				state += " (" + f + ")"
			}
			fmt.Fprintf(w, "%s %s %s\n", n, s[n].Addr, state)
		}
	})
	mux.HandleFunc("POST /upstreams/{name}/{action}", func(w http.ResponseWriter, r *http.Request) {
		u, ok := s[r.PathValue("name")]
		if !ok {
			http.Error(w, "no such upstream", http.StatusNotFound)
			return
		}
		switch r.PathValue("action") {
		case "stop":
			u.Stop()
		case "start":
			if err := u.Start(); err != nil {
				http.Error(w, err.Error(), http.StatusConflict)
				return
			}
		case "fail":
			u.SetFailing(true)
		case "heal":
			u.Heal()
		case "slow":
			ms, err := strconv.ParseInt(r.URL.Query().Get("ms"), 10, 64)
			if err != nil || ms < 0 || time.Duration(ms)*time.Millisecond > MaxSlow {
				http.Error(w, fmt.Sprintf("slow wants ?ms=N, 0 to %d", MaxSlow.Milliseconds()), http.StatusBadRequest)
				return
			}
			u.SetSlow(time.Duration(ms) * time.Millisecond)
		default:
			http.Error(w, "action is stop, start, fail, heal or slow?ms=N", http.StatusBadRequest)
			return
		}
		state := "healthy"
		if f := u.Faults(); f != "" {
			state = f
		}
		if !u.Running() {
			state += ", stopped"
		}
		fmt.Fprintf(w, "%s %s: %s\n", u.Name, r.PathValue("action"), state)
	})
	return mux
}

// ServeControl serves the control API on addr until ctx is done.
func (s Set) ServeControl(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
