package health

import (
	"container/heap"
	"time"
)

// item is one timed event for the scheduler: the next probe of a target, or
// the end of a member's ejection. Exactly one of t and m is set.
type item struct {
	at    time.Time
	t     *target
	m     *Member
	index int // position in the heap; -1 when not queued
}

// queue is a min-heap of items by time, so the engine needs one timer for any
// number of targets. It is guarded by Engine.mu.
type queue []*item

func (q queue) Len() int           { return len(q) }
func (q queue) Less(i, j int) bool { return q[i].at.Before(q[j].at) }
func (q queue) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].index, q[j].index = i, j
}

func (q *queue) Push(x any) {
	it := x.(*item)
	it.index = len(*q)
	*q = append(*q, it)
}

func (q *queue) Pop() any {
	old := *q
	n := len(old)
	it := old[n-1]
	old[n-1] = nil
	it.index = -1
	*q = old[:n-1]
	return it
}

// schedule queues it at time at, or moves it there if it is queued already.
// It reports whether it became the earliest item, which means the scheduler
// must re-arm its timer.
func (q *queue) schedule(it *item, at time.Time) bool {
	it.at = at
	if it.index >= 0 {
		heap.Fix(q, it.index)
	} else {
		heap.Push(q, it)
	}
	return it.index == 0
}

// remove takes it out of the queue if it is there.
func (q *queue) remove(it *item) {
	if it != nil && it.index >= 0 {
		heap.Remove(q, it.index)
	}
}
