package routing

import (
	"sort"
	"sync/atomic"
)

// maxSchedule bounds a weighted schedule's length. Larger weight sums are
// scaled down to it by largest remainder, so each share stays within 0.01%
// of exact, except that every positive weight keeps at least one slot: a
// weight below 1/10000 of the total gets 0.01%.
const maxSchedule = 10000

// wrrState is a lock-free, exact weighted round robin: the smooth WRR order
// (nginx's algorithm) is computed once at compile time into a schedule, and
// each pick takes the next slot with one atomic add. Over any full cycle each
// index is chosen exactly in proportion to its weight, spread out evenly.
type wrrState struct {
	schedule []uint16
	next     atomic.Uint64
}

// newWRR builds the schedule for weights; indexes with weight 0 are never
// chosen. All-zero weights give an empty schedule.
func newWRR(weights []int) *wrrState {
	w := normalise(weights)
	total := 0
	for _, x := range w {
		total += x
	}
	s := &wrrState{schedule: make([]uint16, 0, total)}
	cur := make([]int, len(w))
	for range total {
		best := -1
		for i, x := range w {
			cur[i] += x
			if x > 0 && (best < 0 || cur[i] > cur[best]) {
				best = i
			}
		}
		cur[best] -= total
		s.schedule = append(s.schedule, uint16(best))
	}
	return s
}

// pick returns the next index in the schedule, or -1 when it is empty.
func (s *wrrState) pick() int {
	if len(s.schedule) == 0 {
		return -1
	}
	n := s.next.Add(1) - 1
	return int(s.schedule[n%uint64(len(s.schedule))])
}

// normalise divides weights by their greatest common divisor and, when the
// sum is still above maxSchedule, scales it down to maxSchedule by largest
// remainder, keeping every positive weight at least 1.
func normalise(weights []int) []int {
	g := 0
	for _, w := range weights {
		if w > 0 {
			g = gcd(g, w)
		}
	}
	out := make([]int, len(weights))
	if g == 0 {
		return out
	}
	sum := 0
	for i, w := range weights {
		if w > 0 {
			out[i] = w / g
			sum += out[i]
		}
	}
	if sum <= maxSchedule {
		return out
	}
	type rem struct{ i, r int }
	rems := make([]rem, 0, len(out))
	used := 0
	for i, w := range out {
		if w == 0 {
			continue
		}
		q, r := w*maxSchedule/sum, w*maxSchedule%sum
		out[i] = max(1, q)
		used += out[i]
		if q > 0 {
			rems = append(rems, rem{i, r})
		}
	}
	sort.Slice(rems, func(a, b int) bool { return rems[a].r > rems[b].r || rems[a].r == rems[b].r && rems[a].i < rems[b].i })
	for k := 0; used < maxSchedule && k < len(rems); k++ {
		out[rems[k].i]++
		used++
	}
	return out
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
