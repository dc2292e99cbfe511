package geo

import (
	"math/bits"
	"net/netip"
)

// u128 is an address as a 128-bit integer, most significant bit first. IPv4
// addresses occupy the top 32 bits so that bit i of the address is bit i of
// the integer in both families.
type u128 struct{ hi, lo uint64 }

func addrBits(a netip.Addr) u128 {
	if a.Is4() {
		b := a.As4()
		return u128{hi: uint64(b[0])<<56 | uint64(b[1])<<48 | uint64(b[2])<<40 | uint64(b[3])<<32}
	}
	b := a.As16()
	return u128{
		hi: uint64(b[0])<<56 | uint64(b[1])<<48 | uint64(b[2])<<40 | uint64(b[3])<<32 |
			uint64(b[4])<<24 | uint64(b[5])<<16 | uint64(b[6])<<8 | uint64(b[7]),
		lo: uint64(b[8])<<56 | uint64(b[9])<<48 | uint64(b[10])<<40 | uint64(b[11])<<32 |
			uint64(b[12])<<24 | uint64(b[13])<<16 | uint64(b[14])<<8 | uint64(b[15]),
	}
}

// bit returns bit i (0 = most significant) of x.
func (x u128) bit(i int) int {
	if i < 64 {
		return int(x.hi>>(63-i)) & 1
	}
	return int(x.lo>>(127-i)) & 1
}

// common returns how many leading bits x and y share (0..128).
func (x u128) common(y u128) int {
	if d := x.hi ^ y.hi; d != 0 {
		return bits.LeadingZeros64(d)
	}
	return 64 + bits.LeadingZeros64(x.lo^y.lo)
}

// noValue marks a trie node that only joins branches.
const noValue = -1

// tnode is one node of a path-compressed binary trie: every node is the root,
// a prefix that carries a value, or a fork with two children. Children are
// indexes into trie.nodes; 0 means none (the root is never anyone's child).
type tnode struct {
	key   u128 // the node's prefix, masked to plen bits
	child [2]uint32
	value int32 // index of the value, or noValue
	plen  uint8
}

// trie maps prefixes of one address family to small integer values and
// answers longest-prefix queries together with the ECS scope of the answer.
// It is built once by buildTrie and never modified, so any number of
// goroutines may query it.
type trie struct {
	nodes  []tnode // nodes[0] is the root, the /0 prefix
	bitLen int     // 32 or 128
}

// match is the outcome of a trie query.
type match struct {
	value int32 // the longest matching prefix's value, or noValue
	// scope is the length of the shortest prefix of the queried address
	// inside which every address gets the same answer. It is never less than
	// the matched prefix's length and never reaches into a more specific
	// entry that does not contain the address.
	scope int
}

// lookup returns the longest prefix containing a and the scope of that
// answer. a must have bitLen bits.
func (t *trie) lookup(a u128) match {
	m := match{value: noValue}
	nodes := t.nodes
	n := &nodes[0]
	for {
		p := int(n.plen)
		if c := a.common(n.key); c < p {
			// The address leaves the trie inside this node's compressed
			// path: a/(c+1) holds no entry, a/c holds this subtree.
			m.scope = c + 1
			return m
		}
		if n.value != noValue {
			m.value = n.value
		}
		if p >= t.bitLen {
			m.scope = p
			return m
		}
		next := n.child[a.bit(p)]
		if next == 0 {
			if n.child[0] == 0 && n.child[1] == 0 {
				// A leaf (or the empty root): the whole prefix answers alike.
				m.scope = p
			} else {
				// A more specific entry sits in the other half.
				m.scope = p + 1
			}
			return m
		}
		n = &nodes[next]
	}
}

// bnode is a node of the uncompressed binary trie buildTrie starts from.
type bnode struct {
	child [2]*bnode
	value int32
}

// buildTrie compiles prefixes (all of one family, masked, bitLen bits) with
// their values into a path-compressed trie. A later duplicate replaces an
// earlier one; callers reject conflicting duplicates before.
func buildTrie(bitLen int, prefixes []netip.Prefix, values []int32) *trie {
	root := &bnode{value: noValue}
	for i, p := range prefixes {
		k := addrBits(p.Addr())
		n := root
		for d := 0; d < p.Bits(); d++ {
			b := k.bit(d)
			if n.child[b] == nil {
				n.child[b] = &bnode{value: noValue}
			}
			n = n.child[b]
		}
		n.value = values[i]
	}
	t := &trie{bitLen: bitLen, nodes: []tnode{{value: root.value}}}
	for b := range 2 {
		if root.child[b] != nil {
			t.nodes[0].child[b] = t.compress(root.child[b], u128{}.setBit(0, b), 1)
		}
	}
	return t
}

// compress appends the compressed form of the subtree at n, whose prefix is
// key/depth, and returns its index.
func (t *trie) compress(n *bnode, key u128, depth int) uint32 {
	// Skip nodes that neither carry a value nor fork.
	for n.value == noValue && (n.child[0] == nil) != (n.child[1] == nil) {
		b := 0
		if n.child[0] == nil {
			b = 1
		}
		key = key.setBit(depth, b)
		depth++
		n = n.child[b]
	}
	idx := uint32(len(t.nodes))
	t.nodes = append(t.nodes, tnode{key: key, plen: uint8(depth), value: n.value})
	for b := range 2 {
		if n.child[b] != nil {
			c := t.compress(n.child[b], key.setBit(depth, b), depth+1)
			t.nodes[idx].child[b] = c
		}
	}
	return idx
}

// setBit returns x with bit i set to b (b is 0 or 1; a 0 leaves x as is,
// since keys are built from zeroed bits).
func (x u128) setBit(i, b int) u128 {
	if b == 0 {
		return x
	}
	if i < 64 {
		x.hi |= 1 << (63 - i)
	} else {
		x.lo |= 1 << (127 - i)
	}
	return x
}
