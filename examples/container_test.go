package examples_test

import (
	"io/fs"
	"net"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/meridian-lb/meridian/config"
	"github.com/meridian-lb/meridian/examples"
)

// TestContainerExample: container.yaml, which the Dockerfile and the
// README run, listens on every interface (a published port never reaches
// a container's loopback), on ports the image exposes, and the command
// the Dockerfile shows names it.
func TestContainerExample(t *testing.T) {
	b, err := fs.ReadFile(examples.Files, "container.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse("container.yaml", b)
	if err != nil {
		t.Fatal(err)
	}
	dockerfile, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	expose := regexp.MustCompile(`(?m)^EXPOSE (.*)$`).FindSubmatch(dockerfile)
	if expose == nil {
		t.Fatal("Dockerfile has no EXPOSE")
	}
	exposed := strings.Fields(string(expose[1]))
	for name, addr := range map[string]string{"http": cfg.Listen.HTTP, "dns": cfg.Listen.DNS, "admin": cfg.Listen.Admin} {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			t.Errorf("listen.%s %q: %v", name, addr, err)
			continue
		}
		if ip := net.ParseIP(host); host != "" && (ip == nil || !ip.IsUnspecified()) {
			t.Errorf("listen.%s %s: want every interface (0.0.0.0), or a published port cannot reach it", name, addr)
		}
		want := port
		if name == "dns" {
			want = port + "/udp"
		}
		found := false
		for _, e := range exposed {
			found = found || e == want
		}
		if !found {
			t.Errorf("listen.%s port %s is not in the Dockerfile's EXPOSE %s", name, want, expose[1])
		}
	}
	if !strings.Contains(string(dockerfile), "/etc/meridian/container.yaml") {
		t.Error("the Dockerfile's example does not run examples/container.yaml")
	}
}
