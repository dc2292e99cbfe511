package routing

import "github.com/prometheus/client_golang/prometheus"

// HasAvailable reports whether any endpoint may get traffic right now.
func (p *Pool) HasAvailable() bool {
	for _, e := range p.Endpoints {
		if e.Available() {
			return true
		}
	}
	return false
}

// CanFailOpen reports whether the pool would serve in panic mode: it fails
// open and has an endpoint that no operator drained or forced down. A pool
// whose endpoints are all taken out by an operator is simply unusable, so
// its service fails over instead.
func (p *Pool) CanFailOpen() bool {
	if !p.FailOpen {
		return false
	}
	for _, e := range p.Endpoints {
		if !e.Excluded() {
			return true
		}
	}
	return false
}

// Usable reports whether the pool can serve: it has an available endpoint,
// or it fails open (panic mode) and has an endpoint not drained or forced
// down (CanFailOpen). panic is true in the second case, when callers pick
// with panic mode on: every endpoint but the excluded ones.
func (p *Pool) Usable() (ok, panic bool) {
	if p.HasAvailable() {
		return true, false
	}
	if p.CanFailOpen() {
		return true, true
	}
	return false, false
}

// AppendAvailable appends the endpoints that may get traffic now. When none
// may and the pool fails open, it appends every endpoint not drained or
// forced down and reports degraded (when it appended any), so DNS can
// lower its TTL while it fails open.
func (p *Pool) AppendAvailable(dst []*Endpoint) (out []*Endpoint, degraded bool) {
	n := len(dst)
	for _, e := range p.Endpoints {
		if e.Available() {
			dst = append(dst, e)
		}
	}
	if len(dst) > n || !p.FailOpen {
		return dst, false
	}
	for _, e := range p.Endpoints {
		if !e.Excluded() {
			dst = append(dst, e)
		}
	}
	return dst, len(dst) > n
}

// panicCollector exports meridian_pool_panic{pool}: 1 for each pool of the
// live table that traffic fails open to right now (Table.FailingOpen), 0
// for the others. It computes at scrape time, so the request path pays
// nothing and the gauge follows health changes and reloads without a hook.
type panicCollector struct {
	live *Live
	desc *prometheus.Desc
}

// NewPanicCollector returns the meridian_pool_panic collector over live,
// for the caller to register.
func NewPanicCollector(live *Live) prometheus.Collector {
	return &panicCollector{live: live, desc: prometheus.NewDesc("meridian_pool_panic",
		"1 while traffic fails open to the pool (panic mode: no pool of a service using it has an available endpoint), else 0.",
		[]string{"pool"}, nil)}
}

func (c *panicCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *panicCollector) Collect(ch chan<- prometheus.Metric) {
	t := c.live.Load()
	if t == nil {
		return
	}
	failing := t.FailingOpen()
	for name := range t.Pools {
		v := 0.0
		if failing[name] {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, v, name)
	}
}
