package rollout

import (
	"math/bits"
	"slices"
)

// SplitWeights turns a canary weight (percent) into the weights of a
// split's arms (or a weighted service's pools): the canary arm gets weight
// percent of the total and the other arms share the rest in their declared
// proportions. declared are the arms' weights as configured (negative
// counts as 0), canaryIndex the canary's index in it.
//
// The result is integer and sums to the declared total, except that a
// total below 100 is first multiplied by the smallest factor that brings it
// to 100 or more, so every whole percentage is exact ([1, 1] with the
// canary at 5% gives [95, 5], not [1, 1] or [2, 0]). The canary's share is
// rounded to the nearest unit; the rest goes to the other arms by largest
// remainder (ties to the earlier arm), so each is within one unit of its
// exact share. A weight above 0 always gives the canary at least one unit
// and a weight below 100 leaves the others at least one between them. When
// the other arms are all declared 0 they share the rest equally; with no
// other arm the canary gets everything. An index out of range returns a
// copy of declared.
func SplitWeights(declared []int, canaryIndex int, weight int) []int {
	out := make([]int, len(declared))
	if canaryIndex < 0 || canaryIndex >= len(declared) {
		copy(out, declared)
		return out
	}
	weight = min(max(weight, 0), 100)
	var total, others uint64
	nOthers := 0
	for i, d := range declared {
		if d > 0 {
			total += uint64(d)
			if i != canaryIndex {
				others += uint64(d)
			}
		}
		if i != canaryIndex {
			nOthers++
		}
	}
	switch {
	case total == 0:
		total = 100
	case total < 100:
		total *= (100 + total - 1) / total
	}
	if nOthers == 0 {
		out[canaryIndex] = int(total)
		return out
	}
	// The canary: weight×total/100, rounded half up.
	hi, lo := bits.Mul64(uint64(weight), total)
	c, r := bits.Div64(hi, lo, 100)
	if r >= 50 {
		c++
	}
	if weight > 0 && c == 0 {
		c = 1
	}
	if weight < 100 && c == total {
		c--
	}
	out[canaryIndex] = int(c)
	rest := total - c

	// The others: rest×d/others each, largest remainder for the units left.
	share := func(i int) uint64 {
		if others == 0 {
			return 1
		}
		return uint64(max(declared[i], 0))
	}
	den := others
	if den == 0 {
		den = uint64(nOthers)
	}
	type rem struct {
		i int
		r uint64
	}
	rems := make([]rem, 0, nOthers)
	used := uint64(0)
	for i := range declared {
		if i == canaryIndex {
			continue
		}
		hi, lo := bits.Mul64(rest, share(i))
		q, r := bits.Div64(hi, lo, den) // hi < den: the share is at most rest
		out[i] = int(q)
		used += q
		rems = append(rems, rem{i, r})
	}
	slices.SortStableFunc(rems, func(a, b rem) int {
		switch {
		case a.r > b.r:
			return -1
		case a.r < b.r:
			return 1
		}
		return 0
	})
	for k := 0; used < rest && k < len(rems); k++ {
		out[rems[k].i]++
		used++
	}
	return out
}

// Buckets is how many buckets sticky keys hash into: a canary at weight w
// takes buckets [0, w×100), so one bucket is 0.01%.
const Buckets = 10000

// Bucket hashes a sticky key into 0..Buckets-1. The hash (FNV-1a, then a
// 64-bit finaliser, scaled by multiplication) is fixed: every instance and
// every version puts a key in the same bucket. It is independent of the
// hash package routing uses for sticky arms, so choosing among the other
// arms by routing's hash is not skewed by having left the canary's buckets.
func Bucket(key string) int {
	h := uint64(14695981039346656037)
	for i := 0; i < len(key); i++ {
		h ^= uint64(key[i])
		h *= 1099511628211
	}
	// splitmix64's finaliser: every input bit reaches the high bits.
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	b, _ := bits.Mul64(h, Buckets)
	return int(b)
}

// InCanary reports whether the sticky key belongs to the canary at weight
// (percent): its bucket is below weight×100. A key in the canary at one
// weight stays in it at every higher weight (the canary's buckets only
// grow), so a user who saw the canary at 5% keeps seeing it at 25%, and a
// rollback (weight 0) takes everyone out.
//
// The integrator uses it for sticky routes under a rollout: a request with
// a sticky key goes to the canary arm when InCanary(key, weight), else to
// one of the other arms, chosen by routing's own sticky hash over those
// arms' declared weights (which do not change during the rollout, so those
// users stay put too). Requests without a key take the weighted draw over
// SplitWeights. Every rollout puts the same keys first; to give each
// rollout its own cohort, pass the rollout's name and the key together
// (name + "\x00" + key).
func InCanary(key string, weight int) bool {
	return Bucket(key) < weight*(Buckets/100)
}
