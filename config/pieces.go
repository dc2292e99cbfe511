package config

import (
	"bytes"
	"sort"
	"sync"

	"go.yaml.in/yaml/v3"
)

// Parsing a large file in pieces.
//
// The yaml package parses about 10 MB/s here, so a file with thousands of
// routes takes most of a reload's budget in the parser alone. A config file
// is a block mapping whose top-level keys start at column 0, and its big
// sections are block sequences (routes, zones) whose items start at one
// indentation. Cut at such lines, every piece is a YAML document of its own:
// nothing that spans lines (a quoted or flow scalar, a flow collection, a
// block scalar, a multi-line plain scalar) can continue across a line that
// starts a top-level key or an item of the section's sequence; if one did,
// the piece before the cut would end inside it and fail to parse. So the
// pieces are parsed on several cores and their trees joined into the tree
// the whole file gives.
//
// Each piece is padded with the newlines that precede it in the file (a
// sequence piece gets its key's line first), so every node keeps its line
// and column. Anything the argument above does not cover makes the caller
// parse the whole file instead: document markers and directives (the whole
// file's parse stops at its first document), tabs or unusual line breaks,
// anchors and aliases (an alias may point into another piece, and the
// decoder's alias accounting is per tree), a root that is not a block
// mapping at column 0, and any piece that fails to parse, so every syntax
// error comes from parsing the whole file. Comments may attach to other
// nodes than in the whole file's tree; nothing reads them. FuzzParsePieces
// holds the pieces to the whole file: same tree, same config, same errors.
//
// The fast parser (fastyaml.go) reads the same pieces, in place, and
// decodes each on its goroutine (parseFastConfig); parsePieces is the yaml
// package's way, for a file the fast parser does not read.

// splitMinBytes is the smallest file parsed in pieces: smaller files parse
// in a few milliseconds at most, and the cut would gain little.
const splitMinBytes = 32 << 10

// maxPieces bounds the pieces (and goroutines) of one parse.
const maxPieces = 8

// piece is one part of a file cut for parsing on its own.
type piece struct {
	start, end int // byte range in the file
	line       int // 0-based line of start
	// seqKey is set when the piece starts inside the block sequence of this
	// top-level key, at one of its items; keyLine is that key's line.
	seqKey  string
	keyLine int
}

// cutPieces cuts data into at most parts pieces of similar size at lines
// where a top-level key or an item of a top-level block sequence starts. It
// returns nil when data is smaller than minBytes, when one piece would do,
// or when data has anything the cut cannot be sure about (see above).
func cutPieces(data []byte, parts, minBytes int) []piece {
	parts = min(parts, maxPieces)
	if parts < 2 || len(data) < minBytes || len(data) == 0 {
		return nil
	}
	// UTF-16 (by its byte order mark) and the line breaks other than \n
	// would make byte lines differ from the parser's lines.
	if bytes.HasPrefix(data, []byte{0xfe, 0xff}) || bytes.HasPrefix(data, []byte{0xff, 0xfe}) ||
		bytes.IndexByte(data, '\r') >= 0 || bytes.Contains(data, []byte("\u0085")) ||
		bytes.Contains(data, []byte("\u2028")) || bytes.Contains(data, []byte("\u2029")) {
		return nil
	}
	var cands []piece
	// The top-level key whose lines are being read, when it has no value on
	// its line (so its value may be a block sequence).
	var key string
	keyLine, itemIndent := 0, -1
	line := 0
	for off := 0; off < len(data); line++ {
		end := bytes.IndexByte(data[off:], '\n')
		if end < 0 {
			end = len(data)
		} else {
			end += off
		}
		l := data[off:end]
		switch {
		case len(l) == 0:
		case l[0] == '\t' || l[0] == '%' || bytes.HasPrefix(l, []byte("---")) || bytes.HasPrefix(l, []byte("...")):
			return nil
		case isKeyStart(l[0]):
			if off > 0 {
				cands = append(cands, piece{start: off, line: line})
			}
			key, itemIndent = bareKey(l), -1
			keyLine = line
		case key != "":
			ind := 0
			for ind < len(l) && l[ind] == ' ' {
				ind++
			}
			rest := l[ind:]
			switch {
			case itemIndent < 0 && (len(rest) == 0 || rest[0] == '#'):
				// blank or comment before the value
			case itemIndent < 0 && isItem(rest):
				itemIndent = ind // the first item: the key's cut is before it
			case itemIndent < 0:
				key = "" // the value is not a block sequence
			case ind == itemIndent && isItem(rest):
				cands = append(cands, piece{start: off, line: line, seqKey: key, keyLine: keyLine})
			}
		}
		off = end + 1
	}
	// Pick the candidate nearest each k/parts of the file.
	var cuts []piece
	next := 0
	for k := 1; k < parts; k++ {
		target := k * len(data) / parts
		i := next + sort.Search(len(cands)-next, func(i int) bool { return cands[next+i].start >= target })
		if i > next && (i == len(cands) || target-cands[i-1].start < cands[i].start-target) {
			i--
		}
		if i >= len(cands) {
			break
		}
		cuts = append(cuts, cands[i])
		next = i + 1
	}
	if len(cuts) == 0 {
		return nil
	}
	pieces := make([]piece, 0, len(cuts)+1)
	pieces = append(pieces, piece{start: 0})
	for _, c := range cuts {
		pieces[len(pieces)-1].end = c.start
		pieces = append(pieces, c)
	}
	pieces[len(pieces)-1].end = len(data)
	return pieces
}

// isKeyStart reports whether a line starting with c at column 0 starts a
// top-level key. Quoted and explicit keys are not cut at; they stay in the
// piece before.
func isKeyStart(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_'
}

// isItem reports whether rest (a line without its indentation) starts a
// block sequence item.
func isItem(rest []byte) bool {
	return len(rest) > 0 && rest[0] == '-' && (len(rest) == 1 || rest[1] == ' ')
}

// bareKey returns the key of a line that is only `key:`, maybe with spaces
// and a comment after it, and "" for any other line: only such a key's
// value can be a block sequence worth cutting.
func bareKey(l []byte) string {
	i := 0
	for i < len(l) && (isKeyStart(l[i]) || l[i] == '-' || l[i] == '.') {
		i++
	}
	if i == 0 || i >= len(l) || l[i] != ':' {
		return ""
	}
	rest := bytes.TrimLeft(l[i+1:], " ")
	if len(rest) > 0 && (rest[0] != '#' || len(rest) == len(l)-i-1) {
		return "" // a value, or a '#' that is not a comment (no space before it)
	}
	return string(l[:i])
}

// text is the piece as a document of its own: padded to its place in the
// file, with its sequence's key first when it continues one.
func (p piece) text(data []byte) []byte {
	if p.start == 0 {
		return data[:p.end]
	}
	n := p.line + p.end - p.start
	if p.seqKey != "" {
		n += len(p.seqKey) + 1
	}
	b := make([]byte, 0, n)
	if p.seqKey != "" {
		b = appendNewlines(b, p.keyLine)
		b = append(append(b, p.seqKey...), ':')
		b = appendNewlines(b, p.line-p.keyLine)
	} else {
		b = appendNewlines(b, p.line)
	}
	return append(b, data[p.start:p.end]...)
}

func appendNewlines(b []byte, n int) []byte {
	for range n {
		b = append(b, '\n')
	}
	return b
}

// parsePieces parses data in pieces on several goroutines when cutPieces
// cuts it. It returns the tree of the whole file, as yaml.Unmarshal would
// give it, and the root mapping of each piece (which shares its nodes with
// the tree); ok is false when data was not cut or the pieces cannot be
// trusted to make the whole file's tree, and the caller parses it whole.
// each, when not nil, is called on the piece's goroutine with each piece's
// root mapping once it parsed into a plain tree, so that work on a piece
// (decoding it) runs on the core that parsed it.
func parsePieces(data []byte, parts, minBytes int, each func(i int, m *yaml.Node)) (root *yaml.Node, maps []*yaml.Node, pieces []piece, ok bool) {
	pieces = cutPieces(data, parts, minBytes)
	if pieces == nil {
		return nil, nil, nil, false
	}
	docs := make([]yaml.Node, len(pieces))
	maps = make([]*yaml.Node, len(pieces))
	parse := func(i int) {
		d := &docs[i]
		if yaml.Unmarshal(pieces[i].text(data), d) != nil || len(d.Content) != 1 || !plainTree(d) {
			return
		}
		// A block mapping at column 0, as the cut assumes.
		m := d.Content[0]
		if m.Kind != yaml.MappingNode || m.Style != 0 || m.Column != 1 || len(m.Content) < 2 {
			return
		}
		maps[i] = m
		if each != nil {
			each(i, m)
		}
	}
	var wg sync.WaitGroup
	for i := 1; i < len(pieces); i++ {
		wg.Go(func() { parse(i) })
	}
	parse(0)
	wg.Wait()
	for _, m := range maps {
		if m == nil {
			return nil, nil, nil, false
		}
	}

	// The tree of the whole file: the first piece's document and root
	// mapping, copied so the pieces keep their own content, joined with
	// the other pieces' keys; a piece that continues a sequence appends its
	// items to a copy of that sequence's node.
	doc := docs[0]
	top := *maps[0]
	top.Content = append([]*yaml.Node(nil), top.Content...)
	doc.Content = []*yaml.Node{&top}
	for i := 1; i < len(maps); i++ {
		content := maps[i].Content
		if p := pieces[i]; p.seqKey != "" {
			last := len(top.Content) - 2
			k, prev, cont := top.Content[last], top.Content[last+1], content[1]
			if content[0].Value != p.seqKey || k.Value != p.seqKey || k.Line != p.keyLine+1 ||
				prev.Kind != yaml.SequenceNode || cont.Kind != yaml.SequenceNode ||
				prev.Style != 0 || cont.Style != 0 || prev.Column != cont.Column {
				return nil, nil, nil, false
			}
			seq := *prev
			seq.Content = append(append(make([]*yaml.Node, 0, len(prev.Content)+len(cont.Content)), prev.Content...), cont.Content...)
			top.Content[last+1] = &seq
			content = content[2:]
		}
		top.Content = append(top.Content, content...)
	}
	return &doc, maps, pieces, true
}

// plainTree reports whether a piece's tree is a document whose nodes carry
// no anchor or alias (see the package comment on cutting above).
func plainTree(n *yaml.Node) bool {
	if n.Anchor != "" || n.Kind == yaml.AliasNode {
		return false
	}
	for _, c := range n.Content {
		if !plainTree(c) {
			return false
		}
	}
	return true
}
