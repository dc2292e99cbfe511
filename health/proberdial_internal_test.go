package health

import (
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSpareSocketReuse: a worker's spare socket, reconnected after
// connect(AF_UNSPEC), probes correctly whatever the previous probe found.
func TestSpareSocketReuse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	live := netip.MustParseAddrPort(ln.Addr().String())
	dead := netip.MustParseAddrPort(closedPortAddr(t))

	var spare spareSocket
	defer spare.close()
	probe := func(ap netip.AddrPort) error {
		var r probeRun
		r.reset(time.Now().Add(time.Second))
		r.spare = &spare
		_, err := dialProbe(&r, ap, true, true)
		return err
	}
	for i, step := range []struct {
		ap   netip.AddrPort
		want string
	}{
		{live, ""}, {live, ""}, {dead, "connection refused"}, {live, ""}, {dead, "connection refused"}, {dead, "connection refused"}, {live, ""},
	} {
		err := probe(step.ap)
		switch {
		case step.want == "" && err != nil:
			t.Fatalf("probe %d of %s: %v", i, step.ap, err)
		case step.want != "" && (err == nil || !strings.Contains(err.Error(), step.want)):
			t.Fatalf("probe %d of %s: %v, want %q", i, step.ap, err, step.want)
		}
		if step.want == "" && !spare.ok {
			t.Fatalf("probe %d: the socket was not kept", i)
		}
	}
	// A spare of another family is not used, and a second one not kept.
	if v6, err := net.Listen("tcp", "[::1]:0"); err == nil {
		defer v6.Close()
		kept := spare.fd
		if err := probe(netip.MustParseAddrPort(v6.Addr().String())); err != nil {
			t.Fatalf("IPv6 probe: %v", err)
		}
		if !spare.ok || spare.fd != kept || spare.family != syscall.AF_INET {
			t.Fatalf("the IPv4 spare changed: %+v (was fd %d)", spare, kept)
		}
	}
}

// closedPortAddr is a 127.0.0.1 port nothing listens on.
func closedPortAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}
