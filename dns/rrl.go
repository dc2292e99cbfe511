package dns

import (
	"hash/maphash"
	"net/netip"
	"sync"
	"time"

	"github.com/meridian-lb/meridian/config"
)

// rrlAction is what response rate limiting decided for one response.
type rrlAction int

const (
	rrlPass rrlAction = iota // send it
	rrlDrop                  // send nothing
	rrlSlip                  // send it truncated (TC=1, no records)
)

// rrlShards spreads the limiter's state over independently locked maps.
const rrlShards = 64

// rrlMaxEntries bounds each shard; at the cap, idle entries are evicted.
const rrlMaxEntries = 4096

// limiter is response rate limiting per client network (a /24 or a /56 by
// default), after the ISC design NSD, BIND and Knot share: each network has
// a credit balance that refills at responses_per_second, capped at one
// second's worth, and each UDP response spends one credit. The balance may
// go into debt down to -window×rate, so a flood stays limited until it has
// been quiet for a while. Limited responses are dropped, except every
// slip-th, which is sent truncated: a real resolver behind a spoofed flood
// retries over TCP, which cannot be spoofed, and still gets its answer.
type limiter struct {
	rate   float64
	slip   int
	debt   float64
	v4, v6 int
	seed   maphash.Seed
	shards [rrlShards]rrlShard
}

type rrlShard struct {
	mu sync.Mutex
	m  map[netip.Prefix]*rrlEntry
}

type rrlEntry struct {
	credit  float64
	last    time.Time
	limited int
}

func newLimiter(c *config.RRL) *limiter {
	if c == nil || c.ResponsesPerSecond <= 0 {
		return nil
	}
	l := &limiter{
		rate: float64(c.ResponsesPerSecond),
		slip: c.Slip,
		v4:   c.IPv4Prefix,
		v6:   c.IPv6Prefix,
		seed: maphash.MakeSeed(),
	}
	l.debt = -l.rate * max(c.Window.D().Seconds(), 1)
	if l.v4 <= 0 || l.v4 > 32 {
		l.v4 = 24
	}
	if l.v6 <= 0 || l.v6 > 128 {
		l.v6 = 56
	}
	for i := range l.shards {
		l.shards[i].m = map[netip.Prefix]*rrlEntry{}
	}
	return l
}

// account spends one credit of addr's network at now and says what to do
// with the response.
func (l *limiter) account(addr netip.Addr, now time.Time) rrlAction {
	bits := l.v6
	if addr.Is4() {
		bits = l.v4
	}
	key, err := addr.Prefix(bits)
	if err != nil {
		return rrlPass
	}
	sh := &l.shards[maphash.Comparable(l.seed, key)%rrlShards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e := sh.m[key]
	if e == nil {
		if len(sh.m) >= rrlMaxEntries {
			l.evict(sh, now)
		}
		e = &rrlEntry{credit: l.rate, last: now}
		sh.m[key] = e
	}
	if d := now.Sub(e.last).Seconds(); d > 0 {
		e.credit = min(e.credit+d*l.rate, l.rate)
		e.last = now
	}
	e.credit = max(e.credit-1, l.debt)
	if e.credit >= 0 {
		e.limited = 0
		return rrlPass
	}
	e.limited++
	if l.slip > 0 && e.limited%l.slip == 0 {
		return rrlSlip
	}
	return rrlDrop
}

// evict removes entries whose balance has refilled (they would be created
// afresh with the same state), or, if none has, an arbitrary half.
func (l *limiter) evict(sh *rrlShard, now time.Time) {
	for k, e := range sh.m {
		if e.credit+now.Sub(e.last).Seconds()*l.rate >= l.rate {
			delete(sh.m, k)
		}
	}
	if len(sh.m) < rrlMaxEntries {
		return
	}
	n := 0
	for k := range sh.m {
		if n%2 == 0 {
			delete(sh.m, k)
		}
		n++
	}
}
