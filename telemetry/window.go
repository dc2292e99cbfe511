package telemetry

import (
	"time"
)

// Sliding windows are differences of cumulative snapshots, taken by the
// tick (once a second) rather than on the request path: the fine ring keeps
// the last FineSlots one-second snapshots (for the 10 s window), the coarse
// ring one every CoarseEvery ticks for five minutes (1 min and 5 min), and
// the series one point per coarse step for SeriesPoints steps (sparklines
// of the last 15 minutes). A window's numbers are as of the last tick.
const (
	// Tick is how often snapshots are taken.
	Tick = time.Second
	// CoarseEvery is how many ticks apart coarse snapshots and series
	// points are.
	CoarseEvery = 10
	// SeriesPoints is the length of a series: 15 minutes of 10 s steps.
	SeriesPoints = 90

	fineSlots   = 11 // 10 s back, plus the newest
	coarseSlots = 31 // 5 min back at 10 s, plus the newest
)

// windowSpecs are the window lengths a stats document reports, shortest
// first, by the names its windows maps use.
var windowSpecs = [...]struct {
	name string
	d    time.Duration
}{{"10s", 10 * time.Second}, {"1m", time.Minute}, {"5m", 5 * time.Minute}}

// snap is one cumulative snapshot: counts, and the bucket counts of the
// windowed latency histogram (kept modulo 2^32: a window only needs the
// difference, which is exact while fewer than 2^32 requests fall in one
// bucket within five minutes).
type snap struct {
	t         int64 // tick time, Unix ns
	n, err    uint64
	bin, bout uint64
	h         []uint32 // nil for cells without latency (DNS)
}

// ring is a fixed ring of snapshots, newest at head.
type ring struct {
	s    []snap
	head int
	n    int
}

func newRing(slots int, hist bool) *ring {
	r := &ring{s: make([]snap, slots)}
	if hist {
		buf := make([]uint32, slots*NumBuckets)
		for i := range r.s {
			r.s[i].h = buf[i*NumBuckets : (i+1)*NumBuckets : (i+1)*NumBuckets]
		}
	}
	return r
}

// push stores a snapshot in the next slot, reusing its histogram storage.
func (r *ring) push(t int64, n, err, bin, bout uint64, h *histVals) {
	if r.n > 0 {
		r.head = (r.head + 1) % len(r.s)
	}
	r.n = min(r.n+1, len(r.s))
	s := &r.s[r.head]
	s.t, s.n, s.err, s.bin, s.bout = t, n, err, bin, bout
	switch {
	case s.h != nil && h != nil:
		for i := range s.h {
			s.h[i] = uint32(h.c[i])
		}
	case s.h != nil:
		clear(s.h)
	}
}

// clone returns a copy of r that shares nothing with it.
func (r *ring) clone() *ring {
	c := newRing(len(r.s), r.s[0].h != nil)
	for i := range r.s {
		h := c.s[i].h
		c.s[i] = r.s[i]
		c.s[i].h = h
		copy(h, r.s[i].h)
	}
	c.head, c.n = r.head, r.n
	return c
}

// at returns the snapshot k pushes back (0: newest), or nil.
func (r *ring) at(k int) *snap {
	if k < 0 || k >= r.n {
		return nil
	}
	return &r.s[(r.head-k+len(r.s))%len(r.s)]
}

// oldest returns the oldest snapshot kept, or nil.
func (r *ring) oldest() *snap { return r.at(r.n - 1) }

// base returns the newest snapshot at or before cutoff, or nil.
func (r *ring) base(cutoff int64) *snap {
	for k := 0; k < r.n; k++ {
		if s := r.at(k); s.t <= cutoff {
			return s
		}
	}
	return nil
}

// point is one series step: requests and errors in the step, and its
// latency quantiles in nanoseconds.
type point struct {
	n, err   uint64
	p50, p99 float32
}

// series is the last SeriesPoints steps, newest at head.
type series struct {
	p    [SeriesPoints]point
	head int
	n    int
	end  int64 // Unix ns of the newest point's end
}

func (s *series) push(end int64, p point) {
	if s.n > 0 {
		s.head = (s.head + 1) % SeriesPoints
	}
	s.n = min(s.n+1, SeriesPoints)
	s.p[s.head] = p
	s.end = end
}

// windows is one entity's snapshot rings and, for routes, services, pools
// and zones, its series.
type windows struct {
	fine, coarse *ring
	series       *series
	hist         bool
	ticks        uint64 // snapshots pushed
	born         int64  // Unix ns when the counts were known to be zero; 0: unknown
}

// newWindows makes an entity's windows. born is a time its counts were
// still all zero (when it was made, or the tick before a cell first
// counted): the first snapshot is taken against it, so the first events
// fall inside the windows rather than before them.
func newWindows(hist, withSeries bool, born int64) *windows {
	w := &windows{fine: newRing(fineSlots, hist), coarse: newRing(coarseSlots, hist), hist: hist, born: born}
	if withSeries {
		w.series = new(series)
	}
	return w
}

// clone returns a copy of w that shares nothing with it.
func (w *windows) clone() *windows {
	c := *w
	c.fine, c.coarse = w.fine.clone(), w.coarse.clone()
	if w.series != nil {
		s := *w.series
		c.series = &s
	}
	return &c
}

// push records the tick's cumulative values; coarse says the tick is also
// a coarse step.
func (w *windows) push(t int64, coarse bool, n, err, bin, bout uint64, h *histVals) {
	if w.ticks == 0 && w.born > 0 && w.born < t {
		w.fine.push(w.born, 0, 0, 0, 0, nil)
		w.coarse.push(w.born, 0, 0, 0, 0, nil)
	}
	w.fine.push(t, n, err, bin, bout, h)
	w.ticks++
	if !coarse && w.coarse.n > 0 {
		return
	}
	prev := w.coarse.at(0)
	var pn, perr uint64
	var tmp [NumBuckets]uint32
	// A series point needs a whole step before it: the first coarse
	// snapshot of an entity that appeared between steps is only a base.
	step := int64(CoarseEvery) * int64(Tick)
	hadPrev := prev != nil && t-prev.t > step*9/10
	if hadPrev {
		pn, perr = prev.n, prev.err
		if prev.h != nil {
			copy(tmp[:], prev.h)
		}
	}
	w.coarse.push(t, n, err, bin, bout, h)
	if w.series == nil || !hadPrev {
		return
	}
	p := point{n: n - pn, err: err - perr}
	if h != nil && w.hist {
		var d [NumBuckets]uint32
		for i := range d {
			d[i] = uint32(h.c[i]) - tmp[i]
		}
		p.p50, p.p99 = float32(quantile(d[:], 0.5)), float32(quantile(d[:], 0.99))
	}
	w.series.push(t, p)
}

// Window is one sliding window's numbers. Rates are per second over
// SpanSeconds, which is the window's length once the process has run that
// long, and shorter before. Quantiles are in seconds and absent without
// requests or for cells without latency.
type Window struct {
	SpanSeconds  float64 `json:"span_seconds"`
	Requests     uint64  `json:"requests"`
	Errors       uint64  `json:"errors"`
	Rate         float64 `json:"rate"`
	ErrorRatio   float64 `json:"error_ratio"`
	P50          float64 `json:"p50,omitempty"`
	P95          float64 `json:"p95,omitempty"`
	P99          float64 `json:"p99,omitempty"`
	BytesInRate  float64 `json:"bytes_in_rate,omitempty"`
	BytesOutRate float64 `json:"bytes_out_rate,omitempty"`
}

// window computes the window of length d ending at the newest snapshot:
// against the newest snapshot at least d older (from the fine ring when it
// reaches back that far, else the coarse one), or the oldest kept.
func (w *windows) window(d time.Duration) (Window, bool) {
	cur := w.fine.at(0)
	if cur == nil {
		return Window{}, false
	}
	// Ticks jitter: a snapshot up to half a tick short of d still counts.
	cutoff := cur.t - int64(d) + int64(Tick)/2
	base := w.fine.base(cutoff)
	if base == nil {
		base = w.coarse.base(cutoff)
	}
	if base == nil {
		base = w.coarse.oldest()
		if o := w.fine.oldest(); base == nil || o.t < base.t {
			base = o
		}
	}
	span := float64(cur.t-base.t) / 1e9
	if span <= 0 {
		return Window{}, false
	}
	out := Window{SpanSeconds: span, Requests: cur.n - base.n, Errors: cur.err - base.err}
	out.Rate = float64(out.Requests) / span
	if out.Requests > 0 {
		out.ErrorRatio = float64(out.Errors) / float64(out.Requests)
	}
	out.BytesInRate = float64(cur.bin-base.bin) / span
	out.BytesOutRate = float64(cur.bout-base.bout) / span
	if cur.h != nil && base.h != nil {
		var dh [NumBuckets]uint32
		var any bool
		for i := range dh {
			dh[i] = cur.h[i] - base.h[i]
			any = any || dh[i] != 0
		}
		if any {
			out.P50 = quantile(dh[:], 0.50) / 1e9
			out.P95 = quantile(dh[:], 0.95) / 1e9
			out.P99 = quantile(dh[:], 0.99) / 1e9
		}
	}
	return out, true
}

// windowsJSON returns every window by name.
func (w *windows) windowsJSON() map[string]Window {
	if w == nil {
		return nil
	}
	out := make(map[string]Window, len(windowSpecs))
	for _, win := range windowSpecs {
		if v, ok := w.window(win.d); ok {
			out[win.name] = v
		}
	}
	return out
}

// Series is an entity's last 15 minutes in StepSeconds steps, oldest
// first; End is when the newest step ended. P50 and P99 are in seconds, 0
// for steps without requests.
type Series struct {
	StepSeconds float64   `json:"step_seconds"`
	End         time.Time `json:"end"`
	Rate        []float64 `json:"rate"`
	ErrorRatio  []float64 `json:"error_ratio"`
	P50         []float64 `json:"p50,omitempty"`
	P99         []float64 `json:"p99,omitempty"`
}

func (w *windows) seriesJSON() *Series {
	if w == nil || w.series == nil || w.series.n == 0 {
		return nil
	}
	s := w.series
	step := float64(CoarseEvery) * Tick.Seconds()
	out := &Series{StepSeconds: step, End: time.Unix(0, s.end).UTC(),
		Rate: make([]float64, s.n), ErrorRatio: make([]float64, s.n)}
	if w.hist {
		out.P50, out.P99 = make([]float64, s.n), make([]float64, s.n)
	}
	for i := range s.n {
		p := s.p[(s.head-(s.n-1-i)+SeriesPoints)%SeriesPoints]
		out.Rate[i] = float64(p.n) / step
		if p.n > 0 {
			out.ErrorRatio[i] = float64(p.err) / float64(p.n)
		}
		if w.hist {
			out.P50[i], out.P99[i] = float64(p.p50)/1e9, float64(p.p99)/1e9
		}
	}
	return out
}
