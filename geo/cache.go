package geo

import "sync/atomic"

// cacheBits sizes recordCache: 8192 slots, 64 KiB per loaded database.
const cacheBits = 13

// recordCache remembers decoded records by their offset in one database
// version, so that repeated lookups of popular networks skip decoding (a
// decode costs several hundred nanoseconds and an allocation; a hit a few).
//
// It is direct-mapped and lock-free: each slot is one atomic word packing
// the offset with the two codes, so readers never see a torn entry and a
// store never allocates. A colliding offset simply replaces the slot. A
// reload starts a new cache with the new reader, so offsets never refer to
// another file. Records whose codes are not two upper-case letters (or
// empty) are not cached; they are decoded every time.
type recordCache struct {
	slots [1 << cacheBits]atomic.Uint64
}

// Slot layout: bit 63 set marks a used slot; bits 20..59 hold the offset;
// bits 10..19 the country and bits 0..9 the continent, each as code2+1
// (0 = empty).
const (
	slotUsed   = 1 << 63
	offsetBits = 40
	codeMask   = 1<<10 - 1
)

func newRecordCache() *recordCache { return new(recordCache) }

func slotOf(off uintptr) uint64 {
	return (uint64(off) * 0x9E3779B97F4A7C15) >> (64 - cacheBits)
}

func (c *recordCache) get(off uintptr) (record, bool) {
	if uint64(off) >= 1<<offsetBits {
		return record{}, false
	}
	v := c.slots[slotOf(off)].Load()
	if v&slotUsed == 0 || (v>>20)&(1<<offsetBits-1) != uint64(off) {
		return record{}, false
	}
	return record{country: codeName((v >> 10) & codeMask), continent: codeName(v & codeMask)}, true
}

func (c *recordCache) put(off uintptr, rec record) {
	if uint64(off) >= 1<<offsetBits {
		return
	}
	cc, ok1 := codeNum(rec.country)
	kc, ok2 := codeNum(rec.continent)
	if !ok1 || !ok2 {
		return
	}
	c.slots[slotOf(off)].Store(slotUsed | uint64(off)<<20 | cc<<10 | kc)
}

// codeNum encodes "" as 0 and a two-letter code as code2+1.
func codeNum(s string) (uint64, bool) {
	if s == "" {
		return 0, true
	}
	k := code2(s)
	if k < 0 {
		return 0, false
	}
	return uint64(k) + 1, true
}

// codeName decodes codeNum's encoding without allocating.
func codeName(n uint64) string {
	if n == 0 || n > codeSpace {
		return ""
	}
	return codeNames[n-1]
}

// codeNames holds "AA" … "ZZ", so cached records hand out shared strings.
var codeNames = func() (names [codeSpace]string) {
	for k := range names {
		names[k] = string([]byte{byte('A' + k/26), byte('A' + k%26)})
	}
	return names
}()
