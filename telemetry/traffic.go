package telemetry

import "time"

// Traffic is the cumulative traffic of some HTTP cells, as an automated
// judge reads it (package rollout's canary analysis, through internal/app):
// counts since the cells appeared, and their latency histogram, so that the
// difference of two readings is one interval's traffic and its quantiles.
// It is read off the request path, under the Telemetry's lock; the request
// path is unchanged by it.
type Traffic struct {
	// Requests are client requests (arms) or attempts (pools), as Stats
	// counts them.
	Requests uint64
	// Errors are the requests answered 5xx (arms), or the attempts answered
	// 5xx or failed by the upstream's fault (pools): a subset of Requests.
	Errors uint64
	lat    histVals
}

// add adds v's counts on side sd.
func (tr *Traffic) add(v *httpVals, sd side) {
	tr.Requests += v.requests(sd)
	tr.Errors += v.errors(sd)
	tr.lat.add(v.windowHist(sd))
}

// Add adds o's traffic to tr's: the baseline of a rollout over several
// pools, say.
func (tr *Traffic) Add(o *Traffic) {
	tr.Requests += o.Requests
	tr.Errors += o.Errors
	tr.lat.add(&o.lat)
}

// QuantileSince returns the q-quantile of the latency of the requests
// counted between base and tr (base nil: all of tr's): the whole exchange
// for arms, the upstream's latency for pools. It is 0 without requests in
// between, and tr's own quantile when base is not an earlier reading of the
// same cells (a bucket went backwards: the cells were replaced).
func (tr *Traffic) QuantileSince(base *Traffic, q float64) time.Duration {
	var d [NumBuckets]uint64
	copy(d[:], tr.lat.c[:])
	if base != nil {
		for i := range d {
			if base.lat.c[i] > d[i] {
				copy(d[:], tr.lat.c[:])
				break
			}
			d[i] -= base.lat.c[i]
		}
	}
	return time.Duration(quantile(d[:], q))
}

// ArmTraffic returns the traffic of a live route's weighted arms (split
// entries without when:): the arm whose service is canary, and the other
// weighted arms summed. Arms count client requests: the status the client
// got, the whole latency. An arm's counts go on across tables for as long
// as its route, entry and service stay. ok is false when the route is not
// in the live table or has no weighted arm of that service.
func (t *Telemetry) ArmTraffic(route, canary string) (c, others Traffic, ok bool) {
	if t == nil {
		return c, others, false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.active
	if s == nil {
		return c, others, false
	}
	v := &t.scratch
	for _, r := range s.routes {
		if r.name != route {
			continue
		}
		for _, e := range r.arms {
			if e.arm.Rule || e.arm.Entry < 0 {
				continue
			}
			e.cell.load(v)
			if e.arm.Service == canary && !ok {
				c.add(v, clientSide)
				ok = true
				continue
			}
			others.add(v, clientSide)
		}
		break
	}
	return c, others, ok
}

// PoolTraffic returns the traffic of the named pool of the live table:
// attempts on its endpoints (every route's, retries included), 5xx and
// upstream failures, the upstream's latency. A pool's counts go on while
// its name stays in the table, whatever its endpoints do. ok is false for
// a pool not in the live table.
func (t *Telemetry) PoolTraffic(pool string) (tr Traffic, ok bool) {
	if t == nil {
		return tr, false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	a := t.pools[pool]
	if a == nil || !a.live {
		return tr, false
	}
	// Bring the pool's sum up to date: its endpoints' cells, live and
	// retiring, flushed now (what Tick does for every cell).
	for _, e := range t.eps {
		if e.parents[0] == a {
			t.flushEntry(e)
		}
	}
	for _, e := range t.retiring {
		if e.parents[0] == a {
			t.flushEntry(e)
		}
	}
	tr.add(a.vals(), a.side)
	return tr, true
}
