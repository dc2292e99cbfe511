package consultest

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"
)

// checkRunner runs the checks of one registered service (Options.RunChecks).
type checkRunner struct {
	ctx    context.Context
	cancel context.CancelFunc
}

// startChecksLocked starts running the HTTP and TCP checks of a service
// just registered through the agent, replacing a runner it had: each check
// runs at once, then every Interval, with Timeout (default 10s, at most the
// interval), as a Consul agent runs them. An HTTP check passes on 2xx, warns
// on 429 and is critical otherwise; a TCP check passes when it connects. A
// check critical for DeregisterCriticalServiceAfter removes its service, as
// the agent's reaper does (Consul's floor of one minute is not applied).
func (s *Server) startChecksLocked(in Instance) {
	s.stopChecksLocked(in.ID)
	ctx, cancel := context.WithCancel(context.Background())
	r := &checkRunner{ctx: ctx, cancel: cancel}
	s.checks[in.ID] = r
	for _, c := range in.Checks {
		if c.HTTP == "" && c.TCP == "" {
			continue
		}
		go s.runCheck(r, in.ID, c)
	}
}

// stopChecksLocked stops the service's check runner, if it has one.
func (s *Server) stopChecksLocked(id string) {
	if r := s.checks[id]; r != nil {
		r.cancel()
		delete(s.checks, id)
	}
}

func (s *Server) runCheck(r *checkRunner, id string, c Check) {
	interval, err := time.ParseDuration(c.Interval)
	if err != nil || interval <= 0 {
		return
	}
	timeout := 10 * time.Second
	if d, err := time.ParseDuration(c.Timeout); err == nil && d > 0 {
		timeout = d
	}
	timeout = min(timeout, interval)
	var reapAfter time.Duration
	if d, err := time.ParseDuration(c.DeregisterCriticalServiceAfter); err == nil {
		reapAfter = d
	}
	var criticalSince time.Time
	for {
		status, output := probeCheck(r.ctx, c, timeout)
		if r.ctx.Err() != nil {
			return
		}
		now := time.Now()
		if status == "critical" {
			if criticalSince.IsZero() {
				criticalSince = now
			}
		} else {
			criticalSince = time.Time{}
		}
		if !s.checkResult(r, id, c.ID, status, output, reapAfter > 0 && !criticalSince.IsZero() && now.Sub(criticalSince) >= reapAfter) {
			return
		}
		t := time.NewTimer(interval)
		select {
		case <-r.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// checkResult records one result; with reap it deregisters the service. It
// reports whether the runner goes on.
func (s *Server) checkResult(r *checkRunner, id, checkID, status, output string, reap bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.checks[id] != r || r.ctx.Err() != nil {
		return false
	}
	in := s.insts[id]
	if in == nil {
		return false
	}
	if reap {
		s.stopChecksLocked(id)
		delete(s.regs, id)
		delete(s.insts, id)
		s.bumpLocked(&s.dcLocked(in.Datacenter).catalogIdx)
		return false
	}
	for i := range in.Checks {
		ch := &in.Checks[i]
		if ch.ID != checkID || (ch.Status == status && ch.Output == output) {
			continue
		}
		changed := ch.Status != status
		ch.Status, ch.Output = status, output
		if changed {
			// Consul writes a check's output without a status change to
			// the servers only now and then; a status change at once.
			in.modIdx = s.bumpLocked(&s.dcLocked(in.Datacenter).catalogIdx)
		}
	}
	return true
}

// probeCheck runs one check.
func probeCheck(ctx context.Context, c Check, timeout time.Duration) (status, output string) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if c.TCP != "" {
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", c.TCP)
		if err != nil {
			return "critical", fmt.Sprintf("dial tcp %s: %v", c.TCP, err)
		}
		conn.Close()
		return "passing", fmt.Sprintf("TCP connect %s: Success", c.TCP)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.HTTP, nil)
	if err != nil {
		return "critical", err.Error()
	}
	req.Header.Set("User-Agent", "Consul Health Check")
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		return "critical", fmt.Sprintf("Get %q: %v", c.HTTP, err)
	}
	resp.Body.Close()
	out := fmt.Sprintf("HTTP GET %s: %s", c.HTTP, resp.Status)
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return "passing", out
	case resp.StatusCode == http.StatusTooManyRequests:
		return "warning", out
	}
	return "critical", out
}
