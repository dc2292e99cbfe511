// Package ratelimit is the token-bucket limiter behind a route's
// rate_limit: one bucket per key, refilled lazily, in bounded memory, and
// the IETF RateLimit header fields that tell a client where it stands. It
// owns the buckets and their arithmetic and nothing of HTTP but the
// headers: the caller (package policy) extracts the key string from the
// request, says how many instances share the limit, and answers 429.
//
// # Model
//
// A Limiter enforces one Spec: Requests tokens per Per, a bucket holding at
// most Burst, at most MaxKeys buckets. A key seen for the first time gets
// a full bucket; each Take refills the bucket for the time elapsed since
// its last update (capped at Burst) and takes one token if there is one.
// Tokens are counted exactly in integers (whole tokens plus a fraction
// in 1/Per-nanosecond parts of one, with 128-bit intermediates), so a
// limit of 3 per second allows exactly 3 per second over any run: no
// drift, no float rounding, no overflow for any Spec.
//
// Take's div divides the limit for scope fleet, where each of div live
// instances enforces its share: rate max(1, Requests/div) per Per, bucket
// max(1, Burst/div). Rounding down keeps the fleet's total at or under the
// configured rate; the floor of 1 keeps a limit from ever becoming "no
// request at all". A bucket is kept when div changes, its tokens capped at
// the new burst.
//
// Time is measured on the monotonic clock from the Limiter's creation when
// now carries a monotonic reading (time.Now does), so a wall-clock step
// neither refills every bucket nor freezes them. Time going backwards
// between two Takes of a key (goroutines racing to the lock with
// slightly different nows) refills nothing and is otherwise ignored.
//
// # Bounded memory
//
// A Limiter tracks at most MaxKeys buckets (config default 65536, at 76
// bytes each by BenchmarkBytesPerKey: under 5 MiB a route); past that the
// least recently used bucket is forgotten. Memory grows with the keys
// seen, up to that bound, and is given back only when the Limiter is
// dropped. The trade-off of the bound: a forgotten key seen again starts
// with a full bucket, so a client can gain one extra burst each time
// about MaxKeys other keys are used after its own.
//
// Keys are held by their 64-bit seeded hash (maphash, a fresh seed per
// Limiter), never as strings: memory per key is fixed however long the
// key is (a header: key can be kilobytes), and nothing of a request is
// retained. Two keys with the same hash share a bucket: about n²/2⁶⁵
// likely for n live keys (1e-10 at 65536), not predictable without the
// seed, and only ever a stricter limit for the two.
//
// # Concurrency contract
//
// All methods are safe for concurrent use. The key space is split by hash
// into up to 64 shards (fewer for small MaxKeys, so each holds at least
// 64 buckets), each with its own mutex, map and LRU list of
// MaxKeys/shards buckets. A Take holds one shard's lock for a map lookup,
// a list move and a few integer operations, and takes no other lock, so
// Takes on different keys rarely wait for each other.
//
// Eviction is LRU within a shard, which with keys spread evenly by hash
// is close to a global LRU; but a full shard evicts while others still
// have room, so evictions begin a little before MaxKeys keys are live
// (65536 distinct keys into the default 64 shards leave about 64700).
//
// A Limiter has no goroutines, timers or Close: it is only memory, so
// the caller may keep one across config reloads (a route whose Spec is
// unchanged keeps its buckets) and simply drop it otherwise.
//
// # Headers
//
// Decision.SetHeaders writes RateLimit-Policy and RateLimit as defined by
// draft-ietf-httpapi-ratelimit-headers-11 (23 May 2026, the latest draft;
// -09 and -10 have the same syntax, -11 renames r and t "available quota"
// and "effective window"), in their Structured Fields form, and
// Retry-After on a refusal:
//
//	RateLimit-Policy: "api";q=100;w=60
//	RateLimit: "api";r=42;t=17
//	Retry-After: 1
package ratelimit
