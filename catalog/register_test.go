package catalog

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/meridian-lb/meridian/catalog/consultest"
	"github.com/meridian-lb/meridian/config"
)

func TestRegistration(t *testing.T) {
	reg := config.Register{Name: "meridian", Tags: []string{"edge"}, CheckInterval: config.Duration(5 * time.Second)}
	tests := []struct {
		name      string
		self      Self
		cfg       config.Register
		wantErr   string
		wantID    string
		wantAddr  string
		wantPort  int
		wantMeta  map[string]string
		wantHTTP  string
		wantTCP   string
		wantDereg string
	}{
		{
			name:     "all listeners",
			self:     Self{HTTP: "10.0.0.5:8080", HTTPS: "10.0.0.5:8443", DNS: "10.0.0.5:53", Admin: "127.0.0.1:9090", Hostname: "edge-1.example"},
			cfg:      reg,
			wantID:   "meridian-edge-1.example-8080",
			wantAddr: "10.0.0.5", wantPort: 8080,
			wantMeta:  map[string]string{MetaDNSPort: "53", MetaHTTPSPort: "8443", MetaAdminPort: "9090"},
			wantHTTP:  "http://127.0.0.1:9090/readyz",
			wantDereg: "1m0s",
		},
		{
			name:     "wildcard binds",
			self:     Self{HTTP: "0.0.0.0:80", Admin: "[::]:9090", Hostname: "h"},
			cfg:      config.Register{Name: "lb", CheckInterval: config.Duration(30 * time.Second)},
			wantID:   "lb-h-80",
			wantPort: 80, wantMeta: map[string]string{MetaAdminPort: "9090"},
			wantHTTP:  "http://[::1]:9090/readyz",
			wantDereg: "5m0s",
		},
		{
			name:     "https only, no admin: tcp check",
			self:     Self{HTTPS: ":8443", Hostname: "host_with spaces"},
			cfg:      reg,
			wantID:   "meridian-host_with-spaces-8443",
			wantPort: 8443, wantMeta: map[string]string{MetaHTTPSPort: "8443"},
			wantTCP:   "127.0.0.1:8443",
			wantDereg: "1m0s",
		},
		{name: "no listener", self: Self{DNS: ":53"}, cfg: reg, wantErr: "no HTTP or HTTPS listener"},
		{name: "unresolved port", self: Self{HTTP: "127.0.0.1:0"}, cfg: reg, wantErr: "invalid port"},
		{name: "bad admin", self: Self{HTTP: "127.0.0.1:80", Admin: "nope", Hostname: "h"}, cfg: reg, wantErr: "admin address"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := registration(tc.cfg.Name, tc.cfg, tc.self)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.ID != tc.wantID || r.Address != tc.wantAddr || r.Port != tc.wantPort || r.Name != tc.cfg.Name {
				t.Errorf("id %q addr %q port %d name %q", r.ID, r.Address, r.Port, r.Name)
			}
			if len(r.Meta) != len(tc.wantMeta) {
				t.Errorf("meta = %v, want %v", r.Meta, tc.wantMeta)
			}
			for k, v := range tc.wantMeta {
				if r.Meta[k] != v {
					t.Errorf("meta[%s] = %q, want %q", k, r.Meta[k], v)
				}
			}
			c := r.Check
			if c.HTTP != tc.wantHTTP || c.TCP != tc.wantTCP || c.DeregisterCriticalServiceAfter != tc.wantDereg || c.Interval == "" || c.CheckID != r.ID+"-readyz" {
				t.Errorf("check = %+v", c)
			}
		})
	}
}

func TestRegisterWithAgent(t *testing.T) {
	const token = "reg-token-77aa-SECRET"
	srv := consultest.New(t, consultest.Options{Token: token, NodeName: "edge-node"})
	tokenFile := writeFile(t, "token", []byte(token))
	client := testClient(t, srv, func(c *config.Consul) { c.TokenFile = tokenFile })
	self := Self{HTTP: "127.0.0.1:8080", DNS: "127.0.0.1:5353", Admin: "127.0.0.1:9090", Hostname: "h1"}
	cfg := config.Register{Name: "meridian", Tags: []string{"edge"}, CheckInterval: config.Duration(10 * time.Second)}

	deregister, err := Register(context.Background(), client, cfg, self)
	if err != nil {
		t.Fatal(err)
	}
	got, ok := srv.Registrations()["meridian-h1-8080"]
	if !ok {
		t.Fatalf("not registered: %v", srv.Registrations())
	}
	if got.Port != 8080 || got.Meta[MetaDNSPort] != "5353" || got.Check == nil || got.Check.HTTP != "http://127.0.0.1:9090/readyz" || !got.ReplaceExistingChecks {
		t.Errorf("registration = %+v check %+v", got, got.Check)
	}
	// The fleet sees the instance (critical until its first check passes).
	sel := config.ConsulSelect{Service: "meridian", Health: "any"}
	r := runWatcher(t, client, fastOptions(), KeyOf(sel))
	waitFor(t, "the registered instance", func() bool {
		inst, _ := r.w.Snapshot().Instances(sel)
		return len(inst) == 1 && inst[0].Status == StatusCritical && inst[0].Node == "edge-node"
	})

	if err := deregister(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, ok := srv.Registrations()["meridian-h1-8080"]; ok {
		t.Fatal("still registered")
	}
	waitFor(t, "the instance to leave the catalog", func() bool {
		inst, _ := r.w.Snapshot().Instances(sel)
		return len(inst) == 0
	})

	t.Run("errors carry no token", func(t *testing.T) {
		srv.Fail(consultest.Fault{Code: 403, EchoToken: true})
		defer srv.ClearFaults()
		_, err := Register(context.Background(), client, cfg, self)
		if err == nil || strings.Contains(err.Error(), token) {
			t.Fatalf("err = %v", err)
		}
		if err := deregister(context.Background()); err == nil || strings.Contains(err.Error(), token) {
			t.Fatalf("deregister err = %v", err)
		}
	})
}
