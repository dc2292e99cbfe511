package routing

import (
	"encoding/binary"
	"math"
	"math/bits"
	"strings"
)

// routeIndex finds the routes a request's host and path can match without
// looking at the others, so matching costs about the same with 3 routes or
// 10,000, and hands them over in route order, so first-match-wins is exactly
// what a scan in order gives.
//
// Routes are grouped by host condition: one group per exact host, one per
// wildcard suffix, one for routes without a host. A request host selects at
// most one exact group, one wildcard group per label suffix and the
// host-less group. Within a group, exact paths and path prefixes sit in a
// radix tree of path bytes; routes with a regex path or none stay in an
// ordered list, their path checked per request. Walking the tree along the
// request path yields runs of route numbers, each ascending; match merges
// the runs of every selected group and checks the remaining conditions in
// ascending order. A route with several hosts is in several groups and is
// tried once.
//
// The trees of all groups share one slice of nodes, one of route numbers
// and one string of labels: a few large allocations per table instead of
// several per route, laid out breadth first, so a walk down a tree reads
// memory close together.
type routeIndex struct {
	routes   []*Route
	exact    map[string]int32 // normalised host → the group of routes naming it, in sets
	wildcard map[string]int32 // ".example.com" → the group of routes with *.example.com
	sets     []pathSet        // the groups; the first has the routes without a host
	// wildMin and wildMax bound the wildcard keys' lengths, so host
	// suffixes no wildcard can equal are not looked up.
	wildMin, wildMax int

	nodes  []pathNode
	first  []byte  // first[i] is the first byte of nodes[i]'s label, so finding a child reads one short run of bytes
	labels string  // the nodes' labels, end to end
	ids    []int32 // route numbers (positions in routes), in runs
}

// idRange is the half-open range [lo, hi) of one of routeIndex's slices;
// int32 halves its size, and route and node counts stay far below 2^31.
type idRange struct{ lo, hi int32 }

func (r idRange) empty() bool { return r.lo >= r.hi }

// pathSet is one host group's routes.
type pathSet struct {
	root  int32   // the group's tree in nodes; -1 when it has none
	other idRange // routes with a regex path or none, in ids
}

// pathNode is one node of a group's radix tree. Its key, the bytes from the
// root, is the concatenation of the labels on the way down; routes whose
// exact path or path prefix equals a key are listed on its node.
type pathNode struct {
	label  idRange // in labels: the key's bytes below the parent's key; empty only at a root
	kids   idRange // children in nodes, ordered by their labels' first byte, which differ
	prefix idRange // routes whose path_prefix is the key, in ids
	exact  idRange // routes whose path is the key, in ids
}

// candidates is a run of route numbers in ids, ascending; match consumes
// it from lo. checkPath says the routes' path condition is still to be
// checked (regex and path-less routes); a run from a tree node is known to
// match the path. Twelve bytes, so the runs of a request fit on the stack
// cheaply.
type candidates struct {
	idRange
	checkPath bool
}

// match returns the first route whose conditions all hold for the request
// with normalised host h, or nil.
func (ix *routeIndex) match(h string, v *reqView) *Route {
	// Most requests collect one to three runs; the array keeps them off
	// the heap, and a deep path with prefixes at every level spills over.
	var buf [8]candidates
	runs := buf[:0]
	if g, ok := ix.exact[h]; ok {
		runs = ix.collect(runs, ix.sets[g], v.path)
	}
	if len(ix.wildcard) > 0 {
		// A wildcard ".suffix" matches a host that ends with it and is
		// longer: every suffix of h that starts at a dot after the first
		// byte.
		for i := 1; i < len(h); i++ {
			j := strings.IndexByte(h[i:], '.')
			if j < 0 {
				break
			}
			i += j
			if n := len(h) - i; n < ix.wildMin || n > ix.wildMax {
				continue
			}
			if g, ok := ix.wildcard[h[i:]]; ok {
				runs = ix.collect(runs, ix.sets[g], v.path)
			}
		}
	}
	runs = ix.collect(runs, ix.sets[0], v.path)
	return ix.earliest(runs, v)
}

// collect appends the runs of group s whose path condition can hold for
// the cleaned path p: the prefix routes of every tree node whose key is a
// segment-aware prefix of p (see atSegmentEnd), the exact routes of the node
// whose key is p, and the group's ordered list.
func (ix *routeIndex) collect(runs []candidates, s pathSet, p string) []candidates {
	if s.root >= 0 {
		n, depth := &ix.nodes[s.root], 0
		for {
			if !n.prefix.empty() && atSegmentEnd(p, depth) {
				runs = append(runs, candidates{idRange: n.prefix})
			}
			if depth == len(p) {
				if !n.exact.empty() {
					runs = append(runs, candidates{idRange: n.exact})
				}
				break
			}
			i := findByte(ix.first[n.kids.lo:n.kids.hi], p[depth])
			if i < 0 {
				break
			}
			k := &ix.nodes[n.kids.lo+int32(i)]
			// findByte matched the label's first byte; on a walk
			// down numbered or named routes most labels have no
			// more.
			end := depth + int(k.label.hi-k.label.lo)
			if end > len(p) || end > depth+1 && p[depth+1:end] != ix.labels[k.label.lo+1:k.label.hi] {
				break
			}
			n, depth = k, end
		}
	}
	if !s.other.empty() {
		runs = append(runs, candidates{idRange: s.other, checkPath: true})
	}
	return runs
}

// findByte is bytes.IndexByte for the short child lists of a tree, where a
// call costs more than the search: eight bytes at a time (x has a zero byte
// where b has c; the lowest set bit of the test marks the first), then one.
func findByte(b []byte, c byte) int {
	const lsb, msb = 0x0101010101010101, 0x8080808080808080
	i := 0
	for ; i+8 <= len(b); i += 8 {
		x := binary.LittleEndian.Uint64(b[i:]) ^ lsb*uint64(c)
		if t := (x - lsb) &^ x & msb; t != 0 {
			return i + bits.TrailingZeros64(t)/8
		}
	}
	for ; i < len(b); i++ {
		if b[i] == c {
			return i
		}
	}
	return -1
}

// earliest merges the runs and returns the lowest-numbered route whose
// remaining conditions hold. Runs are few, so the smallest head is found by
// a scan rather than a heap. A route in two runs (two of its hosts match)
// comes out twice in a row and is checked once.
func (ix *routeIndex) earliest(runs []candidates, v *reqView) *Route {
	last := int32(-1)
	for {
		best, id := -1, int32(math.MaxInt32)
		for i := range runs {
			if c := &runs[i]; c.lo < c.hi && ix.ids[c.lo] < id {
				best, id = i, ix.ids[c.lo]
			}
		}
		if best < 0 {
			return nil
		}
		runs[best].lo++
		if id == last {
			continue
		}
		last = id
		rt := ix.routes[id]
		if (!runs[best].checkPath || rt.path.match(v.path)) && rt.cond.match(v) {
			return rt
		}
	}
}

// buildRouteIndex indexes routes in one pass: each route goes into the
// group of each of its hosts (or the host-less group) in route order, so
// every run comes out ascending without sorting. The builder works in
// slices indexed by number, not per-node allocations, so a 10,000-route
// table costs a few dozen allocations beyond the maps.
func buildRouteIndex(routes []*Route) *routeIndex {
	// Sized for the usual case, so the slices rarely grow: a route is
	// in one group per host, a tree has fewer than two nodes per key.
	entries, paths := 0, 0
	for _, r := range routes {
		entries += max(1, len(r.host)+len(r.wildcards))
		if r.path.kind == pathExact || r.path.kind == pathPrefix {
			paths++
		}
	}
	b := indexBuilder{
		exact:    map[string]int32{},
		wildcard: map[string]int32{},
		nodes:    make([]buildNode, 0, 2*paths+1),
		entries:  make([]listEntry, 0, entries),
	}
	anyHost := b.newGroup()
	for i, r := range routes {
		id := int32(i)
		if len(r.host) == 0 && len(r.wildcards) == 0 {
			b.add(anyHost, id, &r.path)
		}
		for _, h := range r.host {
			b.add(b.group(b.exact, h), id, &r.path)
		}
		for _, w := range r.wildcards {
			b.add(b.group(b.wildcard, w), id, &r.path)
		}
	}
	ix := &routeIndex{routes: routes, exact: b.exact, wildcard: b.wildcard, wildMin: math.MaxInt}
	for w := range b.wildcard {
		ix.wildMin, ix.wildMax = min(ix.wildMin, len(w)), max(ix.wildMax, len(w))
	}
	b.lay(ix)
	return ix
}

// indexBuilder collects the index while the routes are read in order.
// Route numbers go to lists (a group's ordered list, a node's prefix or
// exact routes), recorded as entries and placed in one slice at the end.
type indexBuilder struct {
	exact, wildcard map[string]int32 // host key → group; become the index's
	groups          []buildGroup
	nodes           []buildNode
	entries         []listEntry // in route order
	lists           int32       // list numbers handed out
}

type buildGroup struct {
	root  int32 // tree root in nodes, -1 until a route has an exact or prefix path
	other int32 // list of regex and path-less routes, -1 until one comes
	last  int32 // the last route added: a route naming one host twice goes in once
}

// buildNode is a radix tree node while the index is built; its children
// are a list through next, ordered by their labels' first byte.
type buildNode struct {
	label         string
	first         byte // label[0], read without following the label
	kid, next     int32
	prefix, exact int32 // list numbers, -1 for none
}

type listEntry struct{ list, id int32 }

func (b *indexBuilder) newGroup() int32 {
	b.groups = append(b.groups, buildGroup{root: -1, other: -1, last: -1})
	return int32(len(b.groups) - 1)
}

func (b *indexBuilder) group(m map[string]int32, key string) int32 {
	g, ok := m[key]
	if !ok {
		g = b.newGroup()
		m[key] = g
	}
	return g
}

func (b *indexBuilder) newNode(label string) int32 {
	n := buildNode{label: label, kid: -1, next: -1, prefix: -1, exact: -1}
	if label != "" {
		n.first = label[0]
	}
	b.nodes = append(b.nodes, n)
	return int32(len(b.nodes) - 1)
}

// list returns *l, handing out a list number first when it has none.
func (b *indexBuilder) list(l *int32) int32 {
	if *l < 0 {
		*l = b.lists
		b.lists++
	}
	return *l
}

// add puts route id with path condition p into group g.
func (b *indexBuilder) add(g, id int32, p *pathMatcher) {
	gr := &b.groups[g]
	if gr.last == id {
		return
	}
	gr.last = id
	var l int32
	switch p.kind {
	case pathExact, pathPrefix:
		if gr.root < 0 {
			gr.root = b.newNode("")
		}
		n := &b.nodes[b.find(gr.root, p.value)]
		if p.kind == pathExact {
			l = b.list(&n.exact)
		} else {
			l = b.list(&n.prefix)
		}
	default:
		l = b.list(&gr.other)
	}
	b.entries = append(b.entries, listEntry{l, id})
}

// find returns the node whose key is key in the tree at root, adding it,
// and splitting an edge, when there is none.
func (b *indexBuilder) find(root int32, key string) int32 {
	n := root
	for key != "" {
		prev, k := int32(-1), b.nodes[n].kid
		for k >= 0 && b.nodes[k].first < key[0] {
			prev, k = k, b.nodes[k].next
		}
		if k < 0 || b.nodes[k].first != key[0] {
			nk := b.newNode(key)
			b.nodes[nk].next = k
			b.link(n, prev, nk)
			return nk
		}
		label := b.nodes[k].label
		c := commonPrefix(label, key)
		if c < len(label) {
			mid := b.newNode(label[:c])
			b.nodes[mid].kid, b.nodes[mid].next = k, b.nodes[k].next
			b.nodes[k].label, b.nodes[k].first, b.nodes[k].next = label[c:], label[c], -1
			b.link(n, prev, mid)
			k = mid
		}
		n, key = k, key[c:]
	}
	return n
}

// link makes x the child of parent that follows prev (the first one when
// prev is -1).
func (b *indexBuilder) link(parent, prev, x int32) {
	if prev < 0 {
		b.nodes[parent].kid = x
	} else {
		b.nodes[prev].next = x
	}
}

// lay writes the groups into ix: each tree breadth first so a node's
// children are contiguous, each list as one range of ix.ids, filled from
// the entries in route order.
func (b *indexBuilder) lay(ix *routeIndex) {
	count := make([]int32, b.lists)
	for _, e := range b.entries {
		count[e.list]++
	}
	at := make([]idRange, b.lists) // each list's range, hi moving while filled
	next := int32(0)
	place := func(l int32) idRange {
		if l < 0 {
			return idRange{}
		}
		r := idRange{next, next + count[l]}
		at[l] = idRange{next, next}
		next = r.hi
		return r
	}
	ix.sets = make([]pathSet, len(b.groups))
	ix.nodes = make([]pathNode, 0, len(b.nodes))
	ix.first = make([]byte, 0, len(b.nodes))
	size := 0
	for i := range b.nodes {
		size += len(b.nodes[i].label)
	}
	var labels strings.Builder
	labels.Grow(size)
	addNode := func(bn *buildNode) {
		lo := int32(labels.Len())
		labels.WriteString(bn.label)
		ix.nodes = append(ix.nodes, pathNode{label: idRange{lo, int32(labels.Len())}})
		ix.first = append(ix.first, bn.first)
	}
	var queue []int32
	for g, gr := range b.groups {
		s := pathSet{root: -1, other: place(gr.other)}
		if gr.root >= 0 {
			s.root = int32(len(ix.nodes))
			addNode(&b.nodes[gr.root])
			queue = append(queue[:0], gr.root)
			// Nodes are appended in queue order: queue[q] is nodes[root+q].
			for q := 0; q < len(queue); q++ {
				bn := &b.nodes[queue[q]]
				lo := int32(len(ix.nodes))
				for k := bn.kid; k >= 0; k = b.nodes[k].next {
					addNode(&b.nodes[k])
					queue = append(queue, k)
				}
				n := &ix.nodes[s.root+int32(q)]
				n.kids = idRange{lo, int32(len(ix.nodes))}
				n.prefix, n.exact = place(bn.prefix), place(bn.exact)
			}
		}
		ix.sets[g] = s
	}
	ix.labels = labels.String()
	ix.ids = make([]int32, next)
	for _, e := range b.entries {
		ix.ids[at[e.list].hi] = e.id
		at[e.list].hi++
	}
}

func commonPrefix(a, b string) int {
	n := min(len(a), len(b))
	for i := range n {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}
