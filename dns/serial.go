package dns

import (
	"context"
	"net/netip"
	"time"

	mdns "github.com/miekg/dns"
	"go.uber.org/zap"

	"github.com/meridian-lb/meridian/dns/dnssec"
	"github.com/meridian-lb/meridian/dns/zone"
	"github.com/meridian-lb/meridian/routing"
)

// serialState is what the server remembers of one zone across tables.
type serialState struct {
	digest uint64
	serial uint32
}

// notifyJob is one zone's NOTIFY round: its serial and its secondaries.
type notifyJob struct {
	zone    string
	soa     *mdns.SOA
	targets []netip.AddrPort
}

// TableChanged gives the zones of t their serials. Call it for every table
// before (or right after) publishing it; the rebuild loop's apply step,
// after BindHealth, is the right place. A zone whose answer set is unchanged
// keeps its serial; a changed or new one gets the next serial, and its
// secondaries a NOTIFY. Health changes after that are picked up through
// HealthChanged. Tables nobody announced get their serials at their first
// query.
func (s *Server) TableChanged(t *routing.Table) {
	if t == nil {
		return
	}
	s.telTable(t)
	if c := s.cache.Load(); c == nil || c.table != t {
		// The new table's answer cache, empty, ready before its first
		// query; the old table's answers go with it.
		s.cache.Store(newAnswerCache(t))
	}
	s.serialMu.Lock()
	s.current = t
	jobs := s.updateLocked(t)
	s.serialMu.Unlock()
	s.notify(jobs)
}

// HealthChanged tells the server that some endpoint's availability changed,
// so the serials of the zones whose steered answers use it move. It never
// blocks and does not call back into the health engine, so it can be the
// health engine's OnChange hook; Run does the work.
func (s *Server) HealthChanged() {
	select {
	case s.poke <- struct{}{}:
	default:
	}
}

// serialLoop recomputes serials after health changes until ctx is done. A
// burst of changes costs one pass per 100 ms at most. It also looks every
// serialTick, for signed zones whose signature period ended (see digest).
func (s *Server) serialLoop(ctx context.Context) {
	tick := time.NewTicker(serialTick)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.poke:
		case <-tick.C:
		}
		s.serialMu.Lock()
		t := s.current
		if t == nil {
			t = s.tables.Load()
			s.current = t
		}
		var jobs []notifyJob
		if t != nil {
			jobs = s.updateLocked(t)
		}
		s.serialMu.Unlock()
		s.notify(jobs)
		select {
		case <-ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// serialTick is how often serialLoop looks without a health change: a
// signed zone's serial moves at most this long after its signature period
// ends.
const serialTick = 5 * time.Minute

// updateLocked sets every zone's serial from its digest and returns the
// NOTIFY rounds for zones that changed. Caller holds serialMu.
func (s *Server) updateLocked(t *routing.Table) []notifyJob {
	var jobs []notifyJob
	now := uint32(s.now().Unix())
	for _, z := range t.Zones {
		d := digest(z, s.now())
		st, seen := s.serials[z.Name]
		changed := !seen || st.digest != d
		if changed {
			if seen {
				st.serial = nextSerial(st.serial, now)
			} else {
				st.serial = max(now, 1)
			}
			st.digest = d
			s.serials[z.Name] = st
		}
		z.SetSerial(st.serial)
		s.met.serial.WithLabelValues(z.Name).Set(float64(st.serial))
		if changed {
			s.log.Info("zone serial", zap.String("zone", z.Name), zap.Uint32("serial", st.serial))
			if len(z.Notify) > 0 {
				jobs = append(jobs, notifyJob{zone: z.Name, soa: z.SOA(), targets: z.Notify})
			}
		}
	}
	return jobs
}

// nextSerial is the serial after prev: the current time in seconds when
// that is ahead of prev in serial arithmetic (RFC 1982), else prev+1. Time
// keeps serials ahead of those served before a restart; +1 keeps them
// moving when they change faster than once a second.
func nextSerial(prev, now uint32) uint32 {
	next := prev + 1
	if int32(now-prev) > 0 {
		next = now
	}
	if next == 0 {
		next = 1
	}
	return next
}

// digest hashes a zone's answer set: its static content (which includes
// every steered record's endpoints, and a signed zone's keys) and which
// of those endpoints are available now. In a signed zone the signatures
// are part of the answers too, and they are renewed every
// dnssec.Refresh: the period number is hashed in, so the serial moves
// once a period and secondaries transfer fresh signatures.
func digest(z *zone.Zone, now time.Time) uint64 {
	const prime = 1099511628211
	h := z.StaticDigest
	if z.Signed() {
		h = (h ^ uint64(now.Unix()/int64(dnssec.Refresh/time.Second))) * prime
	}
	for _, st := range z.Steered {
		for _, p := range st.Pools {
			for i := range st.Targets[p] {
				b := uint64(2)
				if st.Targets[p][i].Available() {
					b = 3
				}
				h = (h ^ b) * prime
			}
			h = (h ^ 5) * prime
		}
	}
	return h
}

// notify starts the NOTIFY rounds, or keeps them for Run when the server
// is not running. A newer round for a zone replaces an older one.
func (s *Server) notify(jobs []notifyJob) {
	if len(jobs) == 0 {
		return
	}
	s.notifyMu.Lock()
	defer s.notifyMu.Unlock()
	for _, j := range jobs {
		if s.notifyCtx == nil {
			s.pending[j.zone] = j
			continue
		}
		s.startNotifyLocked(j)
	}
}

// startNotifyLocked runs one NOTIFY round. Caller holds notifyMu and
// notifyCtx is set.
func (s *Server) startNotifyLocked(j notifyJob) {
	if cancel := s.inflight[j.zone]; cancel != nil {
		cancel()
	}
	ctx, cancel := context.WithCancel(s.notifyCtx)
	s.inflight[j.zone] = cancel
	for _, target := range j.targets {
		s.notifyWG.Add(1)
		go func() {
			defer s.notifyWG.Done()
			s.notifyOne(ctx, j, target)
		}()
	}
}

// notifyAttempts bounds how often one secondary is notified of one serial.
const notifyAttempts = 5

// notifyOne sends a NOTIFY (RFC 1996) for j to one secondary, every
// notify_retry until it answers or notifyAttempts were sent.
func (s *Server) notifyOne(ctx context.Context, j notifyJob, target netip.AddrPort) {
	period := durationOr(s.set.NotifyPeriod, 10*time.Second)
	c := &mdns.Client{Net: "udp", Timeout: min(2*time.Second, period)}
	log := s.log.With(zap.String("zone", j.zone), zap.String("secondary", addrString(target)), zap.Uint32("serial", j.soa.Serial))
	for attempt := 1; attempt <= notifyAttempts; attempt++ {
		m := new(mdns.Msg)
		m.SetNotify(j.zone)
		m.Answer = []mdns.RR{j.soa}
		resp, _, err := c.ExchangeContext(ctx, m, target.String())
		if ctx.Err() != nil {
			return // a newer serial, or shutdown
		}
		if err == nil {
			if resp.Rcode == mdns.RcodeSuccess {
				s.met.notify.WithLabelValues(j.zone, "ok").Inc()
				log.Debug("notify acknowledged")
			} else {
				s.met.notify.WithLabelValues(j.zone, "error").Inc()
				log.Warn("notify answered with an error", zap.String("rcode", rcodeLabel(resp.Rcode)))
			}
			return
		}
		s.met.notify.WithLabelValues(j.zone, "error").Inc()
		log.Warn("notify", zap.Int("attempt", attempt), zap.Error(err))
		select {
		case <-ctx.Done():
			return
		case <-time.After(period):
		}
	}
}
