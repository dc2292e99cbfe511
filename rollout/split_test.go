package rollout

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestSplitWeights(t *testing.T) {
	tests := []struct {
		declared []int
		canary   int
		weight   int
		want     []int
	}{
		{[]int{90, 10}, 1, 5, []int{95, 5}},
		{[]int{90, 10}, 1, 0, []int{100, 0}},
		{[]int{90, 10}, 1, 100, []int{0, 100}},
		{[]int{10, 90}, 0, 25, []int{25, 75}},
		{[]int{60, 30, 10}, 2, 5, []int{63, 32, 5}},       // 63.33, 31.67: the larger remainder gets the unit
		{[]int{60, 30, 10}, 2, 1, []int{66, 33, 1}},       // exact
		{[]int{1, 1}, 1, 5, []int{95, 5}},                 // total 2 → 100
		{[]int{1, 1, 1}, 0, 50, []int{51, 26, 25}},        // total 3 → 102: 51 to the canary, 25.5 each: the tie goes to the earlier arm
		{[]int{300, 100, 0}, 2, 10, []int{270, 90, 40}},   // total kept at 400
		{[]int{0, 0, 7}, 2, 10, []int{47, 47, 11}},        // total 7 → 105, 10.5 rounds up; others all 0: equal shares
		{[]int{5}, 0, 30, []int{100}},                     // no other arm
		{[]int{-3, 10}, 1, 50, []int{50, 50}},             // negative counts as 0: others all 0
		{[]int{50, 50}, 5, 10, []int{50, 50}},             // index out of range
		{[]int{99, 1}, 1, 1, []int{99, 1}},                // already there
		{[]int{1, 999}, 1, 1, []int{990, 10}},             // total 1000: 1% is 10
		{[]int{2, 1}, 1, 0, []int{102, 0}},                // total 3 → 102
		{[]int{1000000, 1}, 1, 100, []int{0, 1000001}},    // large totals
		{[]int{3, 3, 3, 1}, 3, 33, []int{23, 22, 22, 33}}, // total 10 → 100: 67 left, 22.33 each
	}
	for _, tc := range tests {
		name := fmt.Sprintf("%v/%d@%d", tc.declared, tc.canary, tc.weight)
		t.Run(name, func(t *testing.T) {
			got := SplitWeights(tc.declared, tc.canary, tc.weight)
			if tc.want != nil && !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// TestSplitWeightsProperties checks, over random declarations, what the
// doc promises: the sum, the canary's exact share, the others within one
// unit of theirs, and the guarantees at the edges.
func TestSplitWeightsProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for n := range 20000 {
		arms := 1 + r.IntN(5)
		declared := make([]int, arms)
		for i := range declared {
			switch r.IntN(6) {
			case 0:
				declared[i] = 0
			case 1:
				declared[i] = 1 + r.IntN(3)
			default:
				declared[i] = r.IntN(1000)
			}
		}
		ci := r.IntN(arms)
		w := r.IntN(101)
		got := SplitWeights(declared, ci, w)
		fail := func(format string, args ...any) {
			t.Helper()
			t.Fatalf("case %d: SplitWeights(%v, %d, %d) = %v: %s", n, declared, ci, w, got, fmt.Sprintf(format, args...))
		}
		total, others, sum := 0, 0, 0
		for i, d := range declared {
			total += d
			if i != ci {
				others += d
			}
		}
		for _, g := range got {
			if g < 0 {
				fail("negative weight")
			}
			sum += g
		}
		want := total
		if want == 0 {
			want = 100
		} else if want < 100 {
			want *= (100 + total - 1) / total
		}
		if sum != want {
			fail("sum %d, want %d", sum, want)
		}
		if sum%max(total, 1) != 0 && total != 0 {
			fail("sum %d is not a multiple of the declared %d", sum, total)
		}
		if arms == 1 {
			continue
		}
		exact := float64(w) * float64(sum) / 100
		if math.Abs(float64(got[ci])-exact) > 0.5 {
			fail("canary %d, exact %.2f", got[ci], exact)
		}
		if w > 0 && got[ci] == 0 || w < 100 && got[ci] == sum {
			fail("edge lost")
		}
		rest := sum - got[ci]
		for i, d := range declared {
			if i == ci {
				continue
			}
			share := float64(rest) / float64(arms-1)
			if others > 0 {
				share = float64(rest) * float64(d) / float64(others)
			}
			if math.Abs(float64(got[i])-share) >= 1 {
				fail("arm %d: %d, exact %.2f", i, got[i], share)
			}
			if others > 0 && d == 0 && got[i] != 0 {
				fail("arm %d declared 0 got %d", i, got[i])
			}
		}
	}
}

// TestInCanaryMonotonic: a key in the canary at one weight is in it at
// every higher weight, and the canary's share of keys is its weight.
func TestInCanaryMonotonic(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	const keys = 20000
	in := make([]int, 101) // keys in the canary per weight
	for range keys {
		var b [12]byte
		for i := range b {
			b[i] = byte(r.IntN(256))
		}
		key := fmt.Sprintf("%x", b[:1+r.IntN(len(b))])
		// Weights in increasing order, random steps.
		was := false
		for w := 0; w <= 100; w++ {
			now := InCanary(key, w)
			if was && !now {
				t.Fatalf("key %q left the canary going up to %d%%", key, w)
			}
			if now {
				in[w]++
			}
			was = now
		}
		if InCanary(key, 0) || !InCanary(key, 100) {
			t.Fatalf("key %q: in at 0%% or out at 100%%", key)
		}
		if b := Bucket(key); b < 0 || b >= Buckets {
			t.Fatalf("bucket %d", b)
		}
	}
	for _, w := range []int{1, 5, 25, 50, 75} {
		share := float64(in[w]) / keys
		if want := float64(w) / 100; math.Abs(share-want) > 0.01+want*0.1 {
			t.Errorf("at %d%% the canary has %.2f%% of the keys", w, 100*share)
		}
	}
}

// TestBucketStable pins the hash: instances and versions must agree on
// every key's bucket.
func TestBucketStable(t *testing.T) {
	got := []int{Bucket(""), Bucket("alice"), Bucket("bob"), Bucket("0123456789abcdef")}
	if want := []int{9576, 7727, 4317, 3748}; !slices.Equal(got, want) {
		t.Fatalf("buckets %v, want %v: the hash changed, which moves users between arms", got, want)
	}
}
