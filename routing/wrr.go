package routing

import "sync/atomic"

// maxSchedule bounds a weighted schedule's length; larger weight sums are
// scaled down, which keeps shares exact to well under 0.1%.
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

// normalise divides weights by their greatest common divisor and scales the
// sum under maxSchedule, keeping every positive weight at least 1.
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
	if sum > maxSchedule {
		for i, w := range out {
			if w > 0 {
				out[i] = max(1, w*maxSchedule/sum)
			}
		}
	}
	return out
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
