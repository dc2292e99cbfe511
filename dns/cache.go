package dns

import (
	"encoding/binary"
	"hash/maphash"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meridian-lb/meridian/dns/zone"
	"github.com/meridian-lb/meridian/routing"
	"github.com/meridian-lb/meridian/telemetry"
)

// The answer cache keeps packed UDP responses so that a repeated query
// costs a copy and a few patched bytes instead of miekg's decoding, the
// resolver and miekg's encoding (together about two thirds of the user
// CPU of a query in bench/dns.sh's profile; see docs/benchmarks.md). It
// is built on the packets themselves, so it is home-made: no DNS library
// offers a cache of packed answers keyed on the wire.
//
// What a response depends on, and how the cache keeps to it:
//   - the table (records, services, geo, settings): a cache belongs to one
//     *routing.Table, and a new table gets a new, empty cache;
//   - the zone's serial (in the SOA of negative answers): an entry keeps
//     the serial it was built under and is rebuilt when it moved;
//   - the query: the key is the question name as sent (case kept, as the
//     answer echoes it), type, class, EDNS, DO and whether the ECS option
//     is answered; the ID, RD and CD are patched in, the ECS option is
//     spliced into the OPT with this query's scope, and a response larger
//     than this client's buffer goes the slow way (truncation);
//   - live health and rotation, through a steered record: the query
//     decides first (steerPlan, exactly as the resolver does, reading
//     health now and advancing the rotation once), and the entry keeps one
//     packed answer per decision (variantKey). A decision not seen yet is
//     answered by the resolver with that plan, and kept.
//
// Signed answers (DO in a signed zone), zone transfers, TCP, explain and
// answers that met more than one steered record are never kept.

// Bounds of one table's answer cache: entries (query keys) and bytes
// (packed answers, keys and a fixed overhead per entry and answer),
// shared evenly by its shards. A shard that reaches either starts over,
// empty; the others keep theirs. 16384 entries hold every name and type of
// a large zone, and the common case (a few hundred names) never gets near.
// A key is kept the second time it is asked (admission): names asked
// once, a flood of random subdomains or of case spellings (0x20), cost a
// hash and a small set entry, and do not push out the names asked again
// and again.
const (
	answerCacheEntries = 16384
	answerCacheBytes   = 16 << 20
	entryOverhead      = 256  // an entry and its map slot, beside the key
	answerOverhead     = 160  // a cachedAnswer, beside its packed bytes
	seenPerShard       = 1024 // keys asked once, remembered per shard
	// maxVariants bounds the decisions one entry keeps: the rotations of
	// the pools clients are steered to (a rotation of two addresses in
	// eight regions, of sixteen in one); decisions beyond it are answered
	// by the resolver each time.
	maxVariants = 16
	// maxVariantTargets is the most addresses one kept steered answer has.
	maxVariantTargets = 8
	cacheShards       = 32
)

// variantKey names one steering decision: the outcome, the pool and the
// targets answered, in order. The zero value is "no steered record".
type variantKey struct {
	pool    *routing.Pool
	outcome uint8
	k       uint8
	t       [maxVariantTargets]uint8
}

// variant is p's key; ok is false when it has too many addresses to keep.
func (p *steerPlan) variant() (v variantKey, ok bool) {
	v = variantKey{pool: p.pool, outcome: p.outcome}
	if p.outcome != planAvailable && p.outcome != planFailOpen {
		return v, true
	}
	if p.k > maxVariantTargets {
		return v, false
	}
	v.k = uint8(p.k)
	for i := range p.k {
		j := p.index((p.start + i) % p.n)
		if j > 255 {
			return v, false
		}
		v.t[i] = uint8(j)
	}
	return v, true
}

// answerCache is one table's cache.
type answerCache struct {
	table  *routing.Table
	seed   maphash.Seed
	shards [cacheShards]cacheShard
}

type cacheShard struct {
	mu      sync.RWMutex
	m       map[string]*cacheEntry
	seen    map[uint64]struct{} // hashes of keys asked once, not kept yet
	entries int                 // len(m), guarded by mu
	bytes   int64               // what m holds, counted as the bounds say; mu
}

// cacheEntry is what one query key gets: its zone and serial, the steered
// record its answer depends on (nil for none) and a packed answer per
// decision.
type cacheEntry struct {
	zone     *zone.Zone
	serial   uint32
	steered  *zone.Steered
	service  *routing.Service // steered's, in the cache's table
	bytes    int64            // counted in the shard's bytes; the shard's mu
	variants [maxVariants]atomic.Pointer[cachedAnswer]
}

// cachedAnswer is one packed response and what the server counts for it.
type cachedAnswer struct {
	variant variantKey
	// wire is the response as packed, without the ECS option; optRData
	// is the offset of its OPT's RDATA, where the ECS option goes (the
	// first option, as answer orders them), or -1 without an OPT.
	wire     []byte
	optRData int
	rcode    int
	answers  int // records in the answer section (0: NODATA, for telemetry)
	record   string
	pool     string
	counter  prometheus.Counter
	// telRec is the record's telemetry counters in telSet, the set that
	// was live when the answer was kept.
	telSet *telemetry.DNSSet
	telRec *telemetry.DNSRecord
}

func newAnswerCache(t *routing.Table) *answerCache {
	c := &answerCache{table: t, seed: maphash.MakeSeed()}
	for i := range c.shards {
		c.shards[i].m = map[string]*cacheEntry{}
		c.shards[i].seen = map[uint64]struct{}{}
	}
	return c
}

// cacheFor returns the answer cache of t, made when t was announced
// (TableChanged); nil when the live cache is another table's (a query
// still on the table a reload replaced: it is answered without a cache).
func (s *Server) cacheFor(t *routing.Table) *answerCache {
	if c := s.cache.Load(); c != nil && c.table == t {
		return c
	}
	return nil
}

// cacheKey builds q's key into buf: the question name as sent, type,
// class, and a byte of flags (EDNS, DO, ECS answered).
func cacheKey(buf []byte, q *wireQuery, ecsOn bool) []byte {
	k := append(buf[:0], q.qname...)
	k = binary.BigEndian.AppendUint16(k, q.qtype)
	k = binary.BigEndian.AppendUint16(k, q.qclass)
	var f byte
	if q.edns {
		f |= 1
	}
	if q.do {
		f |= 2
	}
	if ecsOn {
		f |= 4
	}
	return append(k, f)
}

func (c *answerCache) shard(key []byte) (*cacheShard, uint64) {
	h := maphash.Bytes(c.seed, key)
	return &c.shards[h%cacheShards], h
}

// get returns key's entry, nil when there is none or its zone's serial
// moved since.
func (c *answerCache) get(key []byte) *cacheEntry {
	sh, _ := c.shard(key)
	sh.mu.RLock()
	e := sh.m[string(key)]
	sh.mu.RUnlock()
	if e == nil || e.zone.Serial() != e.serial {
		return nil
	}
	return e
}

// lookup returns e's answer for decision v, nil when it has none.
func (e *cacheEntry) lookup(v variantKey) *cachedAnswer {
	for i := range e.variants {
		a := e.variants[i].Load()
		if a == nil {
			return nil
		}
		if a.variant == v {
			return a
		}
	}
	return nil
}

// put keeps a for key, in the entry for (z, serial, steered), making it or
// replacing one built under another serial; a key asked for the first
// time is only remembered (admission), and a full shard starts over.
func (s *Server) cachePut(c *answerCache, key []byte, z *zone.Zone, serial uint32, steered *zone.Steered, a *cachedAnswer) {
	const (
		shardEntries = answerCacheEntries / cacheShards
		shardBytes   = answerCacheBytes / cacheShards
	)
	sh, h := c.shard(key)
	cost := int64(len(a.wire)) + answerOverhead
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e := sh.m[string(key)]
	if e == nil || e.serial != serial || e.zone != z || e.steered != steered {
		if e == nil {
			if _, again := sh.seen[h]; !again {
				if len(sh.seen) >= seenPerShard {
					clear(sh.seen)
				}
				sh.seen[h] = struct{}{}
				return
			}
			delete(sh.seen, h)
		} else {
			sh.entries--
			sh.bytes -= e.bytes
		}
		e = &cacheEntry{zone: z, serial: serial, steered: steered, bytes: entryOverhead + int64(len(key))}
		if sh.entries >= shardEntries || sh.bytes+e.bytes+cost > shardBytes {
			clear(sh.m)
			sh.entries, sh.bytes = 0, 0
		}
		if steered != nil {
			e.service = c.table.Services[steered.Service]
		}
		sh.m[string(key)] = e
		sh.entries++
		sh.bytes += e.bytes
	}
	for i := range e.variants {
		cur := e.variants[i].Load()
		if cur == nil {
			if sh.bytes+cost > shardBytes {
				return
			}
			e.variants[i].Store(a)
			e.bytes += cost
			sh.bytes += cost
			return
		}
		if cur.variant == a.variant {
			return // another worker kept it first
		}
	}
}
