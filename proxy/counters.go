package proxy

import (
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// counterSet holds the metric children a route has resolved, by key, in a
// short slice that is scanned without a lock and copied on each addition:
// a route sees few outcomes, comparing a few words costs less than
// hashing them, and the request path never takes the vector's lock or
// formats a label after the first time.
type counterSet[K comparable] struct {
	list atomic.Pointer[[]keyedCounter[K]]
	mu   sync.Mutex // serialises additions
}

type keyedCounter[K comparable] struct {
	key K
	c   prometheus.Counter
}

// lookup returns the child resolved for k, if there is one.
func (s *counterSet[K]) lookup(k K) (prometheus.Counter, bool) {
	if l := s.list.Load(); l != nil {
		for i := range *l {
			if (*l)[i].key == k {
				return (*l)[i].c, true
			}
		}
	}
	return nil, false
}

// add resolves k's child with resolve, once however many requests race to
// it, and keeps it.
func (s *counterSet[K]) add(k K, resolve func() prometheus.Counter) prometheus.Counter {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.lookup(k); ok {
		return c
	}
	var cur []keyedCounter[K]
	if l := s.list.Load(); l != nil {
		cur = *l
	}
	c := resolve()
	next := append(cur[:len(cur):len(cur)], keyedCounter[K]{k, c})
	s.list.Store(&next)
	return c
}
