package health_test

import (
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/meridian-lb/meridian/config"
	"github.com/meridian-lb/meridian/health"
)

// manyAddrs returns n distinct addresses, prefix .1 to .n.
func manyAddrs(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s.%d.%d:80", prefix, i/250, i%250+1)
	}
	return out
}

func TestThousandsOfTargetsEachProbedOncePerInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, health.Options{})
		defer r.stop()
		eps := manyAddrs("10.1", 3000)
		c := tcpCheck(time.Second, 2, 2, "down")
		c.Jitter = 0.2 // each delay in [0.9s, 1.1s]
		r.e.Sync([]health.PoolSpec{{Name: "web", CheckName: "c", Check: c, Endpoints: eps}})
		time.Sleep(10500 * time.Millisecond)
		lo, hi := 1<<30, 0
		for _, a := range eps {
			n := r.p.Calls(a)
			lo, hi = min(lo, n), max(hi, n)
		}
		// A probe at 0s, then one every 0.9-1.1s until 10.5s.
		if lo < 10 || hi > 12 {
			t.Fatalf("probes per target in 10.5s: %d to %d, want 10 to 12", lo, hi)
		}
	})
}

func TestSlowTargetDoesNotHoldUpOthers(t *testing.T) {
	for _, inFlight := range []int{2, 0} { // a pool of two, and the default
		t.Run(fmt.Sprintf("max in flight %d", inFlight), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r := newRig(t, health.Options{MaxInFlight: inFlight})
				defer r.stop()
				const slow = "10.9.9.9:80"
				r.p.SetDelay(slow, time.Hour) // every probe times out
				fast := manyAddrs("10.2", 200)
				c := tcpCheck(time.Second, 1, 1, "down")
				c.Timeout = config.Duration(5 * time.Second)
				start := time.Now()
				r.e.Sync([]health.PoolSpec{
					{Name: "slow", CheckName: "c", Check: c, Endpoints: []string{slow}},
					{Name: "fast", CheckName: "c", Check: c, Endpoints: fast},
				})
				time.Sleep(10500 * time.Millisecond)
				for _, a := range fast {
					if got := r.p.Calls(a); got != 11 {
						t.Fatalf("%s: %d probes in 10.5s beside a slow target, want 11", a, got)
					}
					s := r.status(t, "fast", a)
					// Its last probe was due at 10s; waiting for a worker
					// costs it a few milliseconds at most (and batching
					// may run it up to 10ms early).
					if late := s.Probe.LastProbe.Sub(start.Add(10 * time.Second)); late < -10*time.Millisecond || late > 50*time.Millisecond {
						t.Fatalf("%s: last probe %s off its time", a, late)
					}
				}
				if got := r.p.Calls(slow); got != 3 { // at 0s, 5s and 10s
					t.Fatalf("slow target: %d probes, want 3", got)
				}
			})
		})
	}
}

func TestRemovalStopsProbingAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Two workers and slow probes: at the removal some targets are in
		// flight, some wait for a worker, some wait for their time.
		r := newRig(t, health.Options{MaxInFlight: 2})
		defer r.stop()
		eps := manyAddrs("10.3", 40)
		for _, a := range eps[1:] { // eps[0], kept, is never in flight when looked at
			r.p.SetDelay(a, 100*time.Millisecond)
		}
		c := tcpCheck(time.Second, 1, 1, "down")
		c.Timeout = config.Duration(500 * time.Millisecond)
		spec := func(eps []string) []health.PoolSpec {
			return []health.PoolSpec{{Name: "web", CheckName: "c", Check: c, Endpoints: eps}}
		}
		r.e.Sync(spec(eps))
		time.Sleep(1250 * time.Millisecond)
		kept, gone := eps[:1], eps[1:]
		before := map[string]int{}
		for _, a := range gone {
			before[a] = r.p.Calls(a)
		}
		r.e.Sync(spec(kept))
		synctest.Wait()
		aborted := 0
		for _, a := range gone {
			aborted += r.p.Aborted(a)
		}
		if aborted != 2 {
			t.Fatalf("probes in flight aborted at the removal: %d, want 2", aborted)
		}
		time.Sleep(5 * time.Second)
		for _, a := range gone {
			if got := r.p.Calls(a); got != before[a] {
				t.Fatalf("%s: probed %d times after its removal", a, got-before[a])
			}
		}
		if got := r.p.Calls(kept[0]); got < 6 {
			t.Fatalf("kept target: %d probes in 6.25s, want at least 6", got)
		}
	})
}
