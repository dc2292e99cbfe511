package healthtest

import (
	"context"
	"sync"
	"time"

	"github.com/meridian-lb/meridian/health"
)

// Prober answers probes from per-address settings: a scripted sequence of
// results, then a standing result (healthy by default), each after an
// optional delay. It records how often each address was probed and how many
// probes ran at once. It is safe for concurrent use.
type Prober struct {
	mu       sync.Mutex
	result   map[string]error
	script   map[string][]error
	delay    map[string]time.Duration
	calls    map[string]int
	inFlight map[string]int
	maxAddr  map[string]int
	aborted  map[string]int
	running  int
	maxTotal int
}

// NewProber returns a Prober under which every address is healthy.
func NewProber() *Prober {
	return &Prober{
		result:   map[string]error{},
		script:   map[string][]error{},
		delay:    map[string]time.Duration{},
		calls:    map[string]int{},
		inFlight: map[string]int{},
		maxAddr:  map[string]int{},
		aborted:  map[string]int{},
	}
}

// Set makes every later probe of address return err (nil: healthy), once
// any scripted results are used up.
func (p *Prober) Set(address string, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.result[address] = err
}

// Script queues results for the next probes of address, in order.
func (p *Prober) Script(address string, results ...error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.script[address] = append(p.script[address], results...)
}

// SetDelay makes each probe of address take d, or until its context ends,
// in which case the probe returns the context's error.
func (p *Prober) SetDelay(address string, d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.delay[address] = d
}

// Calls is how many probes of address have started.
func (p *Prober) Calls(address string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls[address]
}

// Aborted is how many probes of address ended because their context did.
func (p *Prober) Aborted(address string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.aborted[address]
}

// MaxConcurrent is the most probes that ran at once, in total and for
// address.
func (p *Prober) MaxConcurrent(address string) (total, forAddress int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.maxTotal, p.maxAddr[address]
}

// Probe implements health.Prober.
func (p *Prober) Probe(ctx context.Context, t health.Target) error {
	a := t.Address
	p.mu.Lock()
	p.calls[a]++
	p.running++
	p.inFlight[a]++
	p.maxTotal = max(p.maxTotal, p.running)
	p.maxAddr[a] = max(p.maxAddr[a], p.inFlight[a])
	var res error
	if s := p.script[a]; len(s) > 0 {
		res, p.script[a] = s[0], s[1:]
	} else {
		res = p.result[a]
	}
	d := p.delay[a]
	p.mu.Unlock()

	defer func() {
		p.mu.Lock()
		p.running--
		p.inFlight[a]--
		p.mu.Unlock()
	}()
	if d > 0 {
		timer := time.NewTimer(d)
		defer timer.Stop()
		select {
		case <-timer.C:
		case <-ctx.Done():
			p.mu.Lock()
			p.aborted[a]++
			p.mu.Unlock()
			return ctx.Err()
		}
	}
	return res
}
