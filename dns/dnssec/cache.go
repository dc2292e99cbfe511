package dnssec

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	mdns "github.com/miekg/dns"
)

// DefaultCacheSize is the number of RRsets whose signatures a Cache holds
// by default: 65,536, about 25 MiB with ECDSA or Ed25519 signatures. A
// static zone needs one entry per RRset; a steered record needs one per
// distinct answer it gives (which subsets of its endpoints, at which TTL),
// and a negative answer one per name asked for. Past the bound an entry
// is evicted to make room, and signing it again is all a miss costs.
const DefaultCacheSize = 1 << 16

// cacheShards spreads the cache over independently locked maps, so the
// UDP workers rarely wait on each other.
const cacheShards = 32

// Cache holds signatures by the content of the RRset they sign and the
// keys that signed it. It is bounded: a shard at its share of the size
// evicts an entry (the first its map yields, which Go randomises) for each
// one it adds. Entries expire after Refresh. A nil *Cache caches nothing.
type Cache struct {
	seed   maphash.Seed
	per    int // entries per shard
	shards [cacheShards]cacheShard

	hits, misses atomic.Uint64
}

type cacheShard struct {
	mu sync.Mutex
	m  map[uint64]*cacheEntry
}

type cacheEntry struct {
	id      string // the KeySet's id
	content string // the RRset's content key
	sigs    []mdns.RR
	until   time.Time
}

// NewCache returns a cache of about size entries; size 0 or less returns
// nil, which caches nothing (every Sign signs).
func NewCache(size int) *Cache {
	if size <= 0 {
		return nil
	}
	c := &Cache{seed: maphash.MakeSeed(), per: max(1, (size+cacheShards-1)/cacheShards)}
	for i := range c.shards {
		c.shards[i].m = make(map[uint64]*cacheEntry)
	}
	return c
}

func (c *Cache) hash(id string, content []byte) uint64 {
	return maphash.Bytes(c.seed, content) ^ maphash.String(c.seed, id)*0x9e3779b97f4a7c15
}

// get returns the signatures cached for content under key set id, or nil.
func (c *Cache) get(id string, content []byte, now time.Time) []mdns.RR {
	h := c.hash(id, content)
	s := &c.shards[h%cacheShards]
	s.mu.Lock()
	e := s.m[h]
	s.mu.Unlock()
	if e != nil && e.id == id && e.content == string(content) && now.Before(e.until) {
		c.hits.Add(1)
		return e.sigs
	}
	c.misses.Add(1)
	return nil
}

// put stores sigs for content under key set id until until.
func (c *Cache) put(id string, content []byte, sigs []mdns.RR, until time.Time) {
	h := c.hash(id, content)
	e := &cacheEntry{id: id, content: string(content), sigs: sigs, until: until}
	s := &c.shards[h%cacheShards]
	s.mu.Lock()
	if _, ok := s.m[h]; !ok && len(s.m) >= c.per {
		for k := range s.m {
			delete(s.m, k)
			break
		}
	}
	s.m[h] = e
	s.mu.Unlock()
}

// Len returns the number of entries held.
func (c *Cache) Len() int {
	if c == nil {
		return 0
	}
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}

// Stats returns the lookups that found a signature and those that had to
// sign, since the cache was made.
func (c *Cache) Stats() (hits, misses uint64) {
	if c == nil {
		return 0, 0
	}
	return c.hits.Load(), c.misses.Load()
}
