package dns

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
)

// The interop tests run Debian's knot and unbound beside Meridian. They
// install nothing: scripts/test.sh installs the packages when CI=true;
// elsewhere a test whose program is missing skips and says how to get it.

// findTool returns the path of an external program: $env when set, else
// name on PATH or in the sbin directories Debian puts daemons in (which a
// user's PATH may lack). It skips the test when there is none.
func findTool(t testing.TB, env, name, pkg string) string {
	t.Helper()
	if p := os.Getenv(env); p != "" {
		return p
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/usr/local/sbin", "/usr/bin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	t.Skipf("%s not found: apt-get install %s (scripts/test.sh installs it when CI=true), or set %s", name, pkg, env)
	return ""
}

// freePort returns a port free for both UDP and TCP on 127.0.0.1 when
// asked. Another process may take it before the caller binds it; the
// daemons are started right after, and a failure to bind shows in their
// log.
func freePort(t testing.TB) int {
	t.Helper()
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := pc.LocalAddr().(*net.UDPAddr).Port
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		pc.Close()
		if err == nil {
			ln.Close()
			return port
		}
	}
	t.Fatal("no port free for both UDP and TCP")
	return 0
}

// syncBuffer collects a daemon's output.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// daemon is an external server started for one test.
type daemon struct {
	name string
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
}

// startDaemon runs path with args until the test ends; then it kills that
// process (by its pid, nothing else) and waits for it. Its output is shown
// when the test fails.
func startDaemon(t testing.TB, path string, args ...string) *daemon {
	t.Helper()
	return startDaemonEnv(t, nil, path, args...)
}

// startDaemonEnv is startDaemon with env added to the environment.
func startDaemonEnv(t testing.TB, env []string, path string, args ...string) *daemon {
	t.Helper()
	d := &daemon{name: filepath.Base(path), out: &syncBuffer{}, done: make(chan struct{})}
	d.cmd = exec.Command(path, args...)
	d.cmd.Env = append(os.Environ(), env...)
	d.cmd.Stdout, d.cmd.Stderr = d.out, d.out
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", path, err)
	}
	go func() { _ = d.cmd.Wait(); close(d.done) }()
	t.Cleanup(func() {
		_ = d.cmd.Process.Kill()
		<-d.done
		if t.Failed() {
			t.Logf("%s output:\n%s", d.name, d.out.String())
		}
	})
	return d
}

// waitServing polls addr over UDP with a query for qname until it gets any
// response (SERVFAIL too: a resolver that cannot validate is serving), the
// daemon exits, or 15 s pass.
func (d *daemon) waitServing(t testing.TB, addr, qname string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	c := &mdns.Client{Net: "udp", Timeout: 200 * time.Millisecond}
	m := new(mdns.Msg)
	m.SetQuestion(qname, mdns.TypeSOA)
	for {
		select {
		case <-d.done:
			t.Fatalf("%s exited before serving:\n%s", d.name, d.out.String())
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		resp, _, err := c.ExchangeContext(ctx, m, addr)
		cancel()
		if err == nil && resp != nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not answer on %s: %v\n%s", d.name, addr, err, d.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
