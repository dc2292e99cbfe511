package telemetry

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// Latency buckets are log-linear: every power of two between 2^minExp and
// 2^maxExp nanoseconds is split into subs equal parts, so a bucket is at
// most 25% wider than its lower bound and a quantile read from it is off by
// at most half that. Finding the bucket is a bit length and a shift: no
// search, no floating point, on the request path.
const (
	minExp  = 12 // 2^12 ns = 4.1 µs: everything faster shares bucket 0
	maxExp  = 36 // 2^36 ns = 68.7 s: everything slower shares the last bucket
	subBits = 2
	subs    = 1 << subBits

	// NumBuckets is the number of latency buckets of a Hist.
	NumBuckets = 1 + (maxExp-minExp)*subs + 1
)

// bucketOf returns the bucket of a duration in nanoseconds.
func bucketOf(ns int64) int {
	if ns < 1<<minExp {
		return 0
	}
	e := bits.Len64(uint64(ns)) - 1 // ns is in [2^e, 2^(e+1))
	if e >= maxExp {
		return NumBuckets - 1
	}
	sub := int(uint64(ns)>>(e-subBits)) & (subs - 1)
	return 1 + (e-minExp)*subs + sub
}

// bucketUpper is bucket i's exclusive upper bound in nanoseconds; +Inf for
// the last.
func bucketUpper(i int) float64 {
	switch {
	case i <= 0:
		return 1 << minExp
	case i >= NumBuckets-1:
		return math.Inf(1)
	}
	j := i - 1
	e, sub := minExp+j/subs, j%subs
	return float64(uint64(1)<<e) * (1 + float64(sub+1)/subs)
}

// bucketLower is bucket i's inclusive lower bound in nanoseconds.
func bucketLower(i int) float64 {
	if i <= 0 {
		return 0
	}
	return bucketUpper(i - 1)
}

// Hist is a latency histogram safe for concurrent use without locks: one
// atomic add to a bucket and one to the sum per observation.
type Hist struct {
	counts [NumBuckets]atomic.Uint64
	sumNS  atomic.Uint64
}

// Observe records one duration; negative ones count as zero.
func (h *Hist) Observe(d time.Duration) {
	ns := int64(d)
	if ns < 0 {
		ns = 0
	}
	h.counts[bucketOf(ns)].Add(1)
	h.sumNS.Add(uint64(ns))
}

// histVals is a plain copy of a Hist, or a sum or difference of copies.
type histVals struct {
	c     [NumBuckets]uint64
	sumNS uint64
}

func (h *Hist) load(v *histVals) {
	for i := range h.counts {
		v.c[i] = h.counts[i].Load()
	}
	v.sumNS = h.sumNS.Load()
}

func (v *histVals) count() uint64 {
	var n uint64
	for _, c := range v.c {
		n += c
	}
	return n
}

func (v *histVals) add(d *histVals) {
	for i := range v.c {
		v.c[i] += d.c[i]
	}
	v.sumNS += d.sumNS
}

// setDiff sets v to a-b.
func (v *histVals) setDiff(a, b *histVals) {
	for i := range v.c {
		v.c[i] = a.c[i] - b.c[i]
	}
	v.sumNS = a.sumNS - b.sumNS
}

// quantile returns the q-quantile in nanoseconds of bucket counts c (any
// unsigned integer type), interpolating linearly inside the bucket that
// holds it; 0 when c is empty. The open last bucket answers its lower
// bound: the true value is at least that.
func quantile[T uint32 | uint64](c []T, q float64) float64 {
	var total uint64
	for _, n := range c {
		total += uint64(n)
	}
	if total == 0 {
		return 0
	}
	rank := q * float64(total)
	var seen float64
	for i, n := range c {
		if n == 0 {
			continue
		}
		next := seen + float64(n)
		if next >= rank {
			lo, hi := bucketLower(i), bucketUpper(i)
			if math.IsInf(hi, 1) {
				return lo
			}
			return lo + (hi-lo)*(rank-seen)/float64(n)
		}
		seen = next
	}
	return bucketLower(len(c) - 1)
}
