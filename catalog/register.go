package catalog

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/meridian-lb/meridian/config"
)

// Meta keys Meridian sets on its own fleet registration.
const (
	MetaDNSPort   = "meridian-dns-port"
	MetaHTTPSPort = "meridian-https-port"
	MetaAdminPort = "meridian-admin-port"
)

// Self describes the running Meridian instance for fleet registration: its
// listen addresses (config listen:, after binding, so ":0" is resolved).
type Self struct {
	HTTP     string // host:port of listen.http; its port is the service port
	HTTPS    string // host:port of listen.https (meta; the service port when HTTP is off)
	DNS      string // host:port of listen.dns (meta)
	Admin    string // host:port of listen.admin; the check GETs http://<Admin>/readyz
	Hostname string // "" means os.Hostname()
	// Region is where the instance runs (config region): meta
	// meridian-region, so the fleet can find the next region's edges.
	Region string
}

// ServiceID is the ID Register gives the instance's registration,
// "<name>-<host>-<port>": unique per instance and stable across restarts.
// The fleet names the instance by it.
func ServiceID(name string, self Self) (string, error) {
	reg, err := registration(name, config.Register{CheckInterval: config.Duration(10 * time.Second)}, self)
	if err != nil {
		return "", err
	}
	return reg.ID, nil
}

// Register registers this instance with the local Consul agent as service
// cfg.Name, with an HTTP check on its own /readyz (so a draining or
// not-ready instance leaves Consul's passing set first), and returns the
// function that deregisters it on shutdown. The service ID,
// "<name>-<host>-<port>", is unique per instance and stable across
// restarts, so a restart replaces its own registration. The check is
// deregistered by Consul after being critical for 10 check intervals (at
// least a minute), which cleans up instances that crashed.
func Register(ctx context.Context, client *api.Client, cfg config.Register, self Self) (deregister func(context.Context) error, err error) {
	if client == nil {
		return nil, errors.New("consul register: nil Consul client")
	}
	name := cfg.Name // config.SetDefaults fills name and check_interval
	reg, err := registration(name, cfg, self)
	if err != nil {
		return nil, fmt.Errorf("consul register %q: %w", name, err)
	}
	agent := client.Agent()
	opts := api.ServiceRegisterOpts{ReplaceExistingChecks: true}.WithContext(ctx)
	if err := agent.ServiceRegisterOpts(reg, opts); err != nil {
		return nil, fmt.Errorf("consul register %q (id %q): %w", name, reg.ID, err)
	}
	id := reg.ID
	return func(ctx context.Context) error {
		q := (&api.QueryOptions{}).WithContext(ctx)
		if err := agent.ServiceDeregisterOpts(id, q); err != nil {
			return fmt.Errorf("consul deregister %q: %w", id, err)
		}
		return nil
	}, nil
}

// registration builds the agent registration; it is pure so it can be
// tested without an agent.
func registration(name string, cfg config.Register, self Self) (*api.AgentServiceRegistration, error) {
	svcAddr := self.HTTP
	if svcAddr == "" {
		svcAddr = self.HTTPS
	}
	if svcAddr == "" {
		return nil, errors.New("no HTTP or HTTPS listener to register")
	}
	host, port, err := splitPort(svcAddr)
	if err != nil {
		return nil, fmt.Errorf("service address %q: %w", svcAddr, err)
	}
	hostname := self.Hostname
	if hostname == "" {
		if hostname, err = os.Hostname(); err != nil {
			return nil, fmt.Errorf("hostname: %w", err)
		}
	}
	reg := &api.AgentServiceRegistration{
		ID:   fmt.Sprintf("%s-%s-%d", name, sanitizeID(hostname), port),
		Name: name,
		Tags: cfg.Tags,
		Port: port,
		Meta: map[string]string{},
	}
	if !unspecified(host) {
		reg.Address = host
	}
	if self.Region != "" {
		reg.Meta[MetaRegion] = self.Region
	}
	for _, m := range []struct{ key, what, addr string }{
		{MetaDNSPort, "dns", self.DNS},
		{MetaHTTPSPort, "https", self.HTTPS},
		{MetaAdminPort, "admin", self.Admin},
	} {
		if m.addr == "" {
			continue
		}
		_, p, err := splitPort(m.addr)
		if err != nil {
			return nil, fmt.Errorf("%s address %q: %w", m.what, m.addr, err)
		}
		reg.Meta[m.key] = strconv.Itoa(p)
	}
	interval := cfg.CheckInterval.D()
	check := &api.AgentServiceCheck{
		CheckID:                        reg.ID + "-readyz",
		Interval:                       interval.String(),
		Timeout:                        min(interval, 10*time.Second).String(),
		DeregisterCriticalServiceAfter: max(10*interval, time.Minute).String(),
	}
	if self.Admin != "" {
		ah, ap, err := splitPort(self.Admin)
		if err != nil {
			return nil, fmt.Errorf("admin address %q: %w", self.Admin, err)
		}
		check.Name = "Meridian /readyz"
		check.HTTP = "http://" + net.JoinHostPort(loopbackIfUnspecified(ah), strconv.Itoa(ap)) + "/readyz"
		check.Method = "GET"
	} else {
		// Without an admin listener there is no /readyz: check the port.
		check.Name = "Meridian service port"
		check.TCP = net.JoinHostPort(loopbackIfUnspecified(host), strconv.Itoa(port))
	}
	reg.Check = check
	return reg, nil
}

func splitPort(addr string) (string, int, error) {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	n, err := strconv.Atoi(p)
	if err != nil || n < 1 || n > 65535 {
		return "", 0, fmt.Errorf("invalid port %q (bind first so :0 is resolved)", p)
	}
	return h, n, nil
}

func unspecified(host string) bool {
	if host == "" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsUnspecified()
}

// loopbackIfUnspecified turns a wildcard bind host into the loopback address
// the local agent can reach.
func loopbackIfUnspecified(host string) string {
	if !unspecified(host) {
		return host
	}
	if a, err := netip.ParseAddr(host); err == nil && a.Is6() {
		return "::1"
	}
	return "127.0.0.1"
}

// sanitizeID keeps a service ID to characters Consul and DNS accept.
func sanitizeID(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			b[i] = '-'
		}
	}
	if len(b) == 0 {
		return "unknown"
	}
	return string(b)
}
