package config

import (
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// A parser for the YAML that config files are made of.
//
// The yaml package reads about 10 MB/s: most of a large reload went to
// scanning tokens, making events and allocating the tree's nodes. Config
// files use a small part of YAML: block mappings and sequences, single-line
// flow mappings and sequences, plain and quoted scalars on one line,
// comments. fastParser parses exactly that part into a compact tree that
// holds what yaml.Unmarshal's tree holds (every node's kind, style, tag,
// value, line and column; comments are not kept, nothing reads them), at
// several times the speed: its nodes hold no pointers (values are ranges of
// the text, children ranges of one index array), so making them and
// collecting them costs little; the decoder copies the strings it keeps. fastDecoder (fastdecode.go) decodes that
// tree; yamlNode builds the yaml package's tree of any of its nodes.
//
// Anything outside that part, or that it cannot be sure about, makes it
// give up rather than guess, and the caller parses with the yaml package:
// tabs and control characters, anything but ASCII outside comments,
// anchors, aliases, tags, block scalars, multi-line scalars and flow
// collections, empty sequence items, a scalar on the line after its key,
// uncommon escapes in double quotes, trailing commas, document markers and
// directives, a root that is not a block mapping at column 1, indentation
// that does not line up, and every syntax error: so each error message
// still comes from the yaml package. FuzzFastYAML holds it to
// yaml.Unmarshal on every input it accepts.

// fnode is a node of the compact tree.
type fnode struct {
	kind  yaml.Kind
	style yaml.Style
	tag   uint8 // index in fastTags
	esc   bool  // the value is escaped[off], not a range of the text
	// For a scalar, its value: text[off:off+n] (or escaped[off]); for a
	// collection, its children: kids[off:off+n] (keys and values in turn).
	off, n    int32
	line, col int32 // 1-based, as in yaml.Node
}

// fastTags are the tags a node of the compact tree can have.
var fastTags = [...]string{"", "!!str", "!!null", "!!bool", "!!int", "!!float", "!!timestamp", "!!map", "!!seq"}

const (
	tagNone uint8 = iota
	tagStr
	tagNull
)

func tagIndex(tag string) (uint8, bool) {
	for i, t := range fastTags {
		if t == tag {
			return uint8(i), true
		}
	}
	return 0, false
}

// ftree is a parsed piece: its nodes, the text their values are ranges
// of, and the root mapping.
type ftree struct {
	text    string
	nodes   []fnode
	kids    []int32
	escaped []string
	root    int32
}

func (t *ftree) value(i int32) string {
	n := &t.nodes[i]
	if n.esc {
		return t.escaped[n.off]
	}
	return t.text[n.off : n.off+n.n]
}

func (t *ftree) children(i int32) []int32 {
	n := &t.nodes[i]
	return t.kids[n.off : n.off+n.n]
}

// yamlNode returns the yaml package's tree of node i: for a type's own
// UnmarshalYAML, for Node.Decode, and for tests.
func (t *ftree) yamlNode(i int32) *yaml.Node {
	n := &t.nodes[i]
	y := &yaml.Node{Kind: n.kind, Style: n.style, Tag: fastTags[n.tag], Line: int(n.line), Column: int(n.col)}
	if n.kind == yaml.ScalarNode {
		y.Value = strings.Clone(t.value(i)) // UnmarshalYAML may keep it (see fastDecoder)
		return y
	}
	kids := t.children(i)
	if len(kids) > 0 {
		y.Content = make([]*yaml.Node, len(kids))
		for j, k := range kids {
			y.Content[j] = t.yamlNode(k)
		}
	}
	return y
}

// document returns the yaml package's document node of the tree: the root
// mapping in a document placed where it is.
func (t *ftree) document() *yaml.Node {
	m := t.yamlNode(t.root)
	return &yaml.Node{Kind: yaml.DocumentNode, Line: m.Line, Column: m.Column, Content: []*yaml.Node{m}}
}

// fastParser parses s[pos:end] (see parseFast and parseFastPiece).
type fastParser struct {
	s     string
	end   int // where the text ends for this parser: a line start or len(s)
	pos   int
	line  int // 0-based line of pos
	ls    int // offset of the start of pos's line
	depth int

	t     ftree
	stack []int32 // children of the collections being parsed
}

// maxFastDepth bounds nesting; deeper files are the yaml package's.
const maxFastDepth = 64

// maxFastKey is the longest key: the yaml package refuses a simple key of
// more than 1024 characters.
const maxFastKey = 1000

// parseFast parses the whole of s, or reports false.
func parseFast(s string) (*ftree, bool) {
	return parseFastPiece(s, piece{start: 0, end: len(s)})
}

// parseFastPiece parses piece p of s into the tree that parsing its text
// (piece.text) with the yaml package gives, or reports false. The piece is
// read in place: its nodes keep their lines and columns without padding,
// and a piece that continues a sequence gets its key as the first key of
// its mapping, at the key's line, as the padded text has it.
func parseFastPiece(s string, p piece) (*ftree, bool) {
	if !fastChars(s[p.start:p.end]) {
		return nil, false
	}
	fp := fastParser{s: s, end: p.end, pos: p.start, line: p.line, ls: p.start}
	// A config has a node every 8 bytes or so.
	fp.t = ftree{text: s, nodes: make([]fnode, 0, (p.end-p.start)/7+16), kids: make([]int32, 0, (p.end-p.start)/7+16)}
	ind, ok := fp.nextContent()
	if !ok || ind < 0 {
		return nil, false
	}
	var m int32
	var next int
	if p.seqKey == "" {
		if ind != 0 {
			return nil, false
		}
		m, next, ok = fp.blockMapping(0)
	} else {
		// The piece's sequence, under its key as the padded text has it.
		if !fp.isItem(fp.pos) {
			return nil, false
		}
		m = fp.node(yaml.MappingNode, 0, "!!map", p.keyLine, 0)
		k := fp.scalarNode(0, p.seqKey, p.keyLine, 0)
		var seq int32
		seq, next, ok = fp.blockSeq(ind)
		if !ok || k < 0 {
			return nil, false
		}
		base := len(fp.stack)
		fp.stack = append(fp.stack, k, seq)
		switch {
		case next < 0:
			fp.setContent(m, base)
		case next == 0 && !fp.isItem(fp.pos):
			next, ok = fp.mappingEntries(m, base, 0)
		default:
			ok = false
		}
	}
	if !ok || next >= 0 {
		return nil, false
	}
	fp.t.root = m
	return &fp.t, true
}

// fastChars reports whether text has no byte the parser must leave to the
// yaml package: control characters but the newline (tabs, carriage
// returns), and DEL. Other bytes outside ASCII are refused where they are
// met, except in comments.
func fastChars(text string) bool {
	for i := 0; i < len(text); i++ {
		if c := text[i]; c < 0x20 && c != '\n' || c == 0x7f {
			return false
		}
	}
	return true
}

func (p *fastParser) node(kind yaml.Kind, style yaml.Style, tag string, line, col int) int32 {
	ti, _ := tagIndex(tag)
	p.t.nodes = append(p.t.nodes, fnode{kind: kind, style: style, tag: ti, line: int32(line + 1), col: int32(col + 1)})
	return int32(len(p.t.nodes) - 1)
}

// scalar makes a scalar node of the text from start to end, at pos's line.
func (p *fastParser) scalar(style yaml.Style, start, end int) int32 {
	return p.scalarAt(style, start, end, "", p.line, start-p.ls)
}

// scalarNode makes a scalar node of value, which is not in the text.
func (p *fastParser) scalarNode(style yaml.Style, value string, line, col int) int32 {
	return p.scalarAt(style, -1, 0, value, line, col)
}

// scalarAt makes a scalar node whose value is text[start:end], or value
// when start < 0; a plain one gets the tag the yaml package resolves for
// its value. It returns -1 for a tag the tree has no place for.
func (p *fastParser) scalarAt(style yaml.Style, start, end int, value string, line, col int) int32 {
	n := fnode{kind: yaml.ScalarNode, style: style, tag: tagStr, line: int32(line + 1), col: int32(col + 1)}
	if start >= 0 {
		n.off, n.n = int32(start), int32(end-start)
		value = p.s[start:end]
	} else {
		n.esc, n.off = true, int32(len(p.t.escaped))
		p.t.escaped = append(p.t.escaped, value)
	}
	if style == 0 && (value == "" || resolves(value[0])) {
		ti, ok := tagIndex((&yaml.Node{Kind: yaml.ScalarNode, Value: value}).ShortTag())
		if !ok {
			return -1
		}
		n.tag = ti
	}
	p.t.nodes = append(p.t.nodes, n)
	return int32(len(p.t.nodes) - 1)
}

// resolves reports whether the yaml package looks further at a plain
// scalar starting with c to resolve its tag (a number, a bool, a null, a
// merge key); any other is a string.
func resolves(c byte) bool {
	switch c {
	case '+', '-', '.', '~', '<', 'y', 'Y', 'n', 'N', 't', 'T', 'f', 'F', 'o', 'O':
		return true
	}
	return '0' <= c && c <= '9'
}

// setContent gives collection c the children stacked from base.
func (p *fastParser) setContent(c int32, base int) {
	kids := p.stack[base:]
	p.t.nodes[c].off, p.t.nodes[c].n = int32(len(p.t.kids)), int32(len(kids))
	p.t.kids = append(p.t.kids, kids...)
	p.stack = p.stack[:base]
}

func (p *fastParser) col() int { return p.pos - p.ls }

// blankz reports a space, a line break or the end at i.
func (p *fastParser) blankz(i int) bool {
	return i >= p.end || p.s[i] == ' ' || p.s[i] == '\n'
}

// isItem reports a block sequence entry ("- ") at i.
func (p *fastParser) isItem(i int) bool {
	return i < p.end && p.s[i] == '-' && p.blankz(i+1)
}

// skipComment returns where the comment starting at i ends (its line
// break or the end), or false when it holds what the yaml package reads
// otherwise: invalid UTF-8, a character it does not allow, a line break
// other than \n.
func (p *fastParser) skipComment(i int) (int, bool) {
	for i < p.end {
		c := p.s[i]
		if c == '\n' {
			return i, true
		}
		if c < utf8.RuneSelf {
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(p.s[i:p.end])
		if r == utf8.RuneError || r < 0xA0 || r == 0x2028 || r == 0x2029 ||
			r > 0xD7FF && r < 0xE000 || r > 0xFFFD && r < 0x10000 || r == 0xFEFF {
			return 0, false
		}
		i += n
	}
	return i, true
}

// endLine checks that nothing but spaces and a comment is left on the
// line, and moves to the start of the next one.
func (p *fastParser) endLine() bool {
	i := p.pos
	for i < p.end && p.s[i] == ' ' {
		i++
	}
	if i < p.end && p.s[i] == '#' {
		if i == p.pos {
			return false // a comment must follow a space
		}
		var ok bool
		if i, ok = p.skipComment(i); !ok {
			return false
		}
	}
	if i < p.end {
		if p.s[i] != '\n' {
			return false
		}
		i++
		p.line++
		p.ls = i
	}
	p.pos = i
	return true
}

// nextContent moves from the start of a line to the first character of
// the next line that has more than spaces and a comment, and returns its
// indentation, or -1 at the end.
func (p *fastParser) nextContent() (int, bool) {
	for p.pos < p.end {
		i := p.pos
		for i < p.end && p.s[i] == ' ' {
			i++
		}
		if i < p.end && p.s[i] == '#' {
			var ok bool
			if i, ok = p.skipComment(i); !ok {
				return 0, false
			}
		}
		if i == p.end {
			p.pos = i
			return -1, true
		}
		if p.s[i] == '\n' {
			i++
			p.pos, p.line, p.ls = i, p.line+1, i
			continue
		}
		p.pos = i
		ind := i - p.ls
		if ind == 0 && i+3 <= p.end && (p.s[i:i+3] == "---" || p.s[i:i+3] == "...") {
			return 0, false // document markers are the yaml package's
		}
		return ind, true
	}
	return -1, true
}

// blockMapping parses a block mapping whose first key is at pos, in
// column ind. It returns the indentation of the next line with content
// after it (-1 at the end), where it leaves pos.
func (p *fastParser) blockMapping(ind int) (int32, int, bool) {
	if p.depth++; p.depth > maxFastDepth {
		return 0, 0, false
	}
	defer func() { p.depth-- }()
	m := p.node(yaml.MappingNode, 0, "!!map", p.line, ind)
	next, ok := p.mappingEntries(m, len(p.stack), ind)
	return m, next, ok
}

// mappingEntries parses the entries of block mapping m at column ind from
// pos, after the children stacked from base, and sets its content.
func (p *fastParser) mappingEntries(m int32, base, ind int) (int, bool) {
	for {
		k, ok := p.key()
		if !ok {
			return 0, false
		}
		v, next, ok := p.blockValue(ind)
		if !ok {
			return 0, false
		}
		p.stack = append(p.stack, k, v)
		if next < ind {
			p.setContent(m, base)
			return next, true
		}
		if next > ind || p.isItem(p.pos) {
			return 0, false
		}
	}
}

// key parses a block mapping key at pos: a scalar on its line followed by
// ':' and a space or the line's end. It leaves pos after the ':'.
func (p *fastParser) key() (int32, bool) {
	start := p.pos
	var k int32
	switch c := p.s[p.pos]; {
	case c == '"' || c == '\'':
		var ok bool
		if k, ok = p.quoted(); !ok {
			return 0, false
		}
		for p.pos < p.end && p.s[p.pos] == ' ' {
			p.pos++
		}
	case p.plainStart(p.pos):
		end, stop, ok := p.scanPlain(p.pos, false)
		if !ok {
			return 0, false
		}
		if k = p.scalar(0, p.pos, end); k < 0 {
			return 0, false
		}
		p.pos = stop
	default:
		return 0, false
	}
	if p.pos >= p.end || p.s[p.pos] != ':' || !p.blankz(p.pos+1) || p.pos-start > maxFastKey {
		return 0, false
	}
	p.pos++
	return k, true
}

// blockValue parses the value of a block mapping key whose ':' ends just
// before pos, the key being in column ind.
func (p *fastParser) blockValue(ind int) (int32, int, bool) {
	line, col := p.line, p.col() // the value's place when it is empty: after the ':'
	i := p.pos
	for i < p.end && p.s[i] == ' ' {
		i++
	}
	if i < p.end && p.s[i] != '\n' && p.s[i] != '#' {
		// On the key's line.
		p.pos = i
		v, ok := p.inline()
		if !ok || !p.endLine() {
			return 0, 0, false
		}
		next, ok := p.nextContent()
		return v, next, ok
	}
	// On the lines after the key, or empty.
	if !p.endLine() {
		return 0, 0, false
	}
	next, ok := p.nextContent()
	switch {
	case !ok:
		return 0, 0, false
	case next > ind && p.isItem(p.pos):
		return p.blockSeq(next)
	case next > ind:
		return p.blockMapping(next)
	case next == ind && p.isItem(p.pos):
		return p.blockSeq(ind) // a sequence at the key's indentation
	}
	// Nothing: a null, placed after the ':' as the yaml package places it.
	v := p.scalarNode(0, "", line, col)
	return v, next, v >= 0
}

// blockSeq parses a block sequence whose first '-' is at pos, in column
// ind. Each item is on its entry's line: a scalar, a flow collection, or
// a block mapping whose first key is there.
func (p *fastParser) blockSeq(ind int) (int32, int, bool) {
	if p.depth++; p.depth > maxFastDepth {
		return 0, 0, false
	}
	defer func() { p.depth-- }()
	seq := p.node(yaml.SequenceNode, 0, "!!seq", p.line, ind)
	base := len(p.stack)
	for {
		if !p.isItem(p.pos) {
			return 0, 0, false
		}
		i := p.pos + 1
		for i < p.end && p.s[i] == ' ' {
			i++
		}
		if i >= p.end || p.s[i] == '\n' || p.s[i] == '#' || p.isItem(i) {
			return 0, 0, false // the item starts on a later line, or is a sequence
		}
		p.pos = i
		var v int32
		var next int
		var ok bool
		if p.startsKey() {
			v, next, ok = p.blockMapping(p.col())
		} else if v, ok = p.inline(); ok && p.endLine() {
			next, ok = p.nextContent()
		} else {
			ok = false
		}
		if !ok {
			return 0, 0, false
		}
		p.stack = append(p.stack, v)
		if next < ind || next == ind && !p.isItem(p.pos) {
			p.setContent(seq, base)
			return seq, next, true
		}
		if next > ind {
			return 0, 0, false
		}
	}
}

// startsKey reports whether the line at pos starts with a mapping key: a
// scalar followed by ':' and a space or the line's end.
func (p *fastParser) startsKey() bool {
	i := p.pos
	switch c := p.s[i]; {
	case c == '"' || c == '\'':
		j, _, ok := p.scanQuoted(i)
		if !ok {
			return false
		}
		for j < p.end && p.s[j] == ' ' {
			j++
		}
		i = j
	case p.plainStart(i):
		_, stop, ok := p.scanPlain(i, false)
		if !ok {
			return false
		}
		i = stop
	default:
		return false
	}
	return i < p.end && p.s[i] == ':' && p.blankz(i+1)
}

// inline parses a value that ends on its line: a scalar or a flow
// collection.
func (p *fastParser) inline() (int32, bool) {
	switch c := p.s[p.pos]; {
	case c == '{' || c == '[':
		return p.flow()
	case c == '"' || c == '\'':
		return p.quoted()
	case p.plainStart(p.pos):
		end, _, ok := p.scanPlain(p.pos, false)
		if !ok {
			return 0, false
		}
		v := p.scalar(0, p.pos, end)
		p.pos = end // before the spaces that may precede a comment
		return v, v >= 0
	}
	return 0, false
}

// plainStart reports whether a plain scalar this parser reads starts at i.
// The yaml package allows more; those are left to it.
func (p *fastParser) plainStart(i int) bool {
	c := p.s[i]
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	case c == '_' || c == '.' || c == '/' || c == '~' || c == '^' || c == '$' || c == '(' || c == '+' || c == '\\' || c == ';' || c == '=':
		return true
	case c == '-':
		if i+1 >= p.end {
			return false
		}
		d := p.s[i+1]
		return 'a' <= d && d <= 'z' || 'A' <= d && d <= 'Z' || '0' <= d && d <= '9' || d == '.'
	}
	return false
}

func isFlowIndicator(c byte) bool {
	return c == ',' || c == '[' || c == ']' || c == '{' || c == '}'
}

// scanPlain scans a plain scalar starting at i, on its line: in the block
// context it ends before ": ", " #" or the line's end, in the flow context
// also before a flow indicator. It returns the end of its value (trailing
// spaces dropped) and where scanning stopped.
func (p *fastParser) scanPlain(i int, flow bool) (end, stop int, ok bool) {
	j := i
	for j < p.end {
		c := p.s[j]
		switch {
		case c == ' ':
			k := j
			for k < p.end && p.s[k] == ' ' {
				k++
			}
			if k == p.end || p.s[k] == '\n' || p.s[k] == '#' ||
				p.s[k] == ':' && p.blankz(k+1) || flow && (isFlowIndicator(p.s[k]) || p.s[k] == '?') {
				return j, k, true
			}
			j = k
			continue
		case c == '\n':
			return j, j, true
		case c == ':':
			if p.blankz(j + 1) {
				return j, j, true
			}
			if flow && isFlowIndicator(p.s[j+1]) {
				return 0, 0, false
			}
		case flow && isFlowIndicator(c):
			return j, j, true
		case flow && c == '?':
			return 0, 0, false
		case c < 0x21 || c > 0x7e:
			return 0, 0, false
		}
		j++
	}
	return j, j, true
}

// scanQuoted scans a quoted scalar starting at i (at its quote), on its
// line. It returns where it ends (after the closing quote) and whether
// its value needs unescaping.
func (p *fastParser) scanQuoted(i int) (end int, escaped, ok bool) {
	q := p.s[i]
	j := i + 1
	for j < p.end {
		c := p.s[j]
		switch {
		case c == q:
			if q == '\'' && j+1 < p.end && p.s[j+1] == '\'' {
				escaped = true
				j += 2
				continue
			}
			return j + 1, escaped, true
		case c == '\\' && q == '"':
			if j+1 >= p.end || unescape(p.s[j+1]) < 0 {
				return 0, false, false
			}
			escaped = true
			j += 2
			continue
		case c < 0x20 || c > 0x7e:
			return 0, false, false // a line break, or what the line's columns would not count as bytes
		}
		j++
	}
	return 0, false, false
}

// unescape returns the byte a double-quoted escape stands for, or -1 for
// the escapes left to the yaml package.
func unescape(c byte) int {
	switch c {
	case '0':
		return 0
	case 'a':
		return '\a'
	case 'b':
		return '\b'
	case 't':
		return '\t'
	case 'n':
		return '\n'
	case 'v':
		return '\v'
	case 'f':
		return '\f'
	case 'r':
		return '\r'
	case 'e':
		return 0x1b
	case ' ', '"', '/', '\\':
		return int(c)
	}
	return -1
}

// quoted parses a quoted scalar at pos.
func (p *fastParser) quoted() (int32, bool) {
	start := p.pos
	end, escaped, ok := p.scanQuoted(start)
	if !ok {
		return 0, false
	}
	raw := p.s[start+1 : end-1]
	style := yaml.DoubleQuotedStyle
	if p.s[start] == '\'' {
		style = yaml.SingleQuotedStyle
	}
	var n int32
	if escaped {
		b := make([]byte, 0, len(raw))
		for i := 0; i < len(raw); i++ {
			c := raw[i]
			switch {
			case style == yaml.SingleQuotedStyle && c == '\'':
				i++ // '' is one quote
			case style == yaml.DoubleQuotedStyle && c == '\\':
				i++
				c = byte(unescape(raw[i]))
			}
			b = append(b, c)
		}
		n = p.scalarNode(style, string(b), p.line, start-p.ls)
	} else {
		n = p.scalarAt(style, start+1, end-1, "", p.line, start-p.ls)
	}
	p.pos = end
	return n, true
}

// skipSpaces skips the spaces at pos, on its line.
func (p *fastParser) skipSpaces() {
	for p.pos < p.end && p.s[p.pos] == ' ' {
		p.pos++
	}
}

// flow parses a flow collection at pos that ends on its line.
func (p *fastParser) flow() (int32, bool) {
	if p.depth++; p.depth > maxFastDepth {
		return 0, false
	}
	defer func() { p.depth-- }()
	open := p.s[p.pos]
	isMap := open == '{'
	closer := byte(']')
	var n int32
	if isMap {
		closer = '}'
		n = p.node(yaml.MappingNode, yaml.FlowStyle, "!!map", p.line, p.col())
	} else {
		n = p.node(yaml.SequenceNode, yaml.FlowStyle, "!!seq", p.line, p.col())
	}
	p.pos++
	p.skipSpaces()
	if p.pos < p.end && p.s[p.pos] == closer {
		p.pos++
		return n, true
	}
	base := len(p.stack)
	for {
		if p.pos >= p.end {
			return 0, false
		}
		if isMap {
			k, ok := p.flowScalar()
			if !ok {
				return 0, false
			}
			p.skipSpaces()
			if p.pos >= p.end || p.s[p.pos] != ':' || !p.blankz(p.pos+1) {
				return 0, false
			}
			p.pos++
			p.skipSpaces()
			p.stack = append(p.stack, k)
		}
		if p.pos >= p.end {
			return 0, false
		}
		var v int32
		var ok bool
		switch c := p.s[p.pos]; c {
		case '{', '[':
			v, ok = p.flow()
		default:
			v, ok = p.flowScalar()
		}
		if !ok {
			return 0, false
		}
		p.stack = append(p.stack, v)
		p.skipSpaces()
		if p.pos >= p.end {
			return 0, false
		}
		switch p.s[p.pos] {
		case closer:
			p.pos++
			p.setContent(n, base)
			return n, true
		case ',':
			p.pos++
			p.skipSpaces()
			if p.pos < p.end && p.s[p.pos] == closer {
				return 0, false // a trailing comma is the yaml package's
			}
		default:
			return 0, false
		}
	}
}

// flowScalar parses a scalar inside a flow collection.
func (p *fastParser) flowScalar() (int32, bool) {
	c := p.s[p.pos]
	if c == '"' || c == '\'' {
		return p.quoted()
	}
	if !p.plainStart(p.pos) {
		return 0, false
	}
	end, stop, ok := p.scanPlain(p.pos, true)
	if !ok || stop < p.end && (p.s[stop] == '\n' || p.s[stop] == '#') {
		return 0, false
	}
	v := p.scalar(0, p.pos, end)
	p.pos = end
	return v, v >= 0
}
