package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// Problem is one thing wrong with a config file, located by path and line.
//
// A Problem is also an error, so that compile steps outside this package
// (zones, geo networks, TLS files) can return what they find by config
// path, alone or joined with errors.Join; Config.Locate then gives each its
// file and line, as Parse does for its own.
type Problem struct {
	File   string
	Line   int    // 0 when unknown
	Column int    // 0 when unknown; set for YAML syntax errors, which have no path
	Path   string // e.g. routes[0].split[1].service; empty for file-level problems
	Msg    string

	// plain marks a problem made from an error that is not a Problem: its
	// place in the file is unknown, so Locate gives it no line.
	plain bool
}

// String formats the problem the way compilers do: file:line: path: msg,
// with the column after the line when it is known.
func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		b.WriteString(":" + strconv.Itoa(p.Line))
		if p.Column > 0 {
			b.WriteString(":" + strconv.Itoa(p.Column))
		}
	}
	if b.Len() > 0 {
		b.WriteString(": ")
	}
	if p.Path != "" {
		b.WriteString(p.Path + ": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Error is String: a Problem returned as an error reads the same.
func (p Problem) Error() string { return p.String() }

// Error lists every problem found in a config file. Load and Parse return it
// so that the operator can fix a file in one pass.
type Error struct {
	Problems []Problem
}

func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// MaxFileBytes caps a config file. Parsing holds about eight times the
// file in memory, so the cap bounds what one reload can cost (about
// 128 MiB) whatever lands at the path; a file with 20,000 routes is under
// 3 MiB. ReadFile refuses a larger file without reading it whole, and Parse
// refuses larger data from any source.
const MaxFileBytes = 16 << 20

// Load reads, decodes, defaults and validates the file at path. It returns
// the raw bytes too, so callers can hash exactly what was applied.
func Load(path string) (*Config, []byte, error) {
	data, _, err := ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	cfg, err := Parse(path, data)
	return cfg, data, err
}

// ReadFile reads the config file at path, through a limit: a file over
// MaxFileBytes is an error, and at most one byte more than the limit is
// ever read, so a huge file (a log written to the wrong path) costs no
// memory. It also returns the open file's FileInfo, which identifies what
// was read: os.SameFile on two readings tells a file written in place
// (same file, new content) from one replaced by a rename or a symlink swap.
func ReadFile(path string) ([]byte, os.FileInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read config: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, fmt.Errorf("read config: %w", err)
	}
	size := fi.Size()
	if fi.Mode().IsRegular() && size > MaxFileBytes {
		return nil, nil, fmt.Errorf("config file %s is %d bytes, over the %d MiB limit", path, size, MaxFileBytes>>20)
	}
	var buf bytes.Buffer
	if fi.Mode().IsRegular() {
		buf.Grow(int(size) + bytes.MinRead) // one allocation for a file that does not grow meanwhile
	}
	if _, err := buf.ReadFrom(io.LimitReader(f, MaxFileBytes+1)); err != nil {
		return nil, nil, fmt.Errorf("read config %s: %w", path, err)
	}
	if buf.Len() > MaxFileBytes {
		// It grew past the limit while being read, or is not a regular
		// file and has no size to check first.
		return nil, nil, fmt.Errorf("config file %s is over the %d MiB limit", path, MaxFileBytes>>20)
	}
	return buf.Bytes(), fi, nil
}

// Parse decodes data strictly (unknown keys, wrong types, bad durations and
// unknown names such as a balancer are errors), fills defaults and
// validates. name is used in messages only. On failure the error is an
// *Error listing every problem with its line.
//
// extra are checks that other packages own, run on the decoded config
// after the rules here whatever those found, their problems (see Locate)
// listed with the rest: meridian validate passes the zone compiler's, so
// one run reports every problem. The serving path passes none and compiles
// instead, which finds the same problems.
//
// The Config keeps a copy of data as a string, so that Locate can place
// what compiling it finds; the caller may reuse data.
//
// A reload runs Parse on the whole file, so the path without problems is
// kept lean: the common part of YAML that config files use is read by a
// parser of its own, several times faster than the yaml package and giving
// the same tree (fastyaml.go), a large file is parsed and decoded in pieces
// on every core (see pieces.go), the path→line index is only built when
// there is a problem to locate, and each distinct regular expression is
// compiled once and kept on the Config for routing (see Config.Regexp).
func Parse(name string, data []byte, extra ...func(*Config) error) (*Config, error) {
	return parse(name, data, runtime.GOMAXPROCS(0), splitMinBytes, extra...)
}

// slowParseOnly makes parse use the yaml package's way only: tests compare
// the two ways with it.
var slowParseOnly = false

// parse is Parse cutting data into at most parts pieces when it has at
// least minBytes; tests cut small files with it.
func parse(name string, data []byte, parts, minBytes int, extra ...func(*Config) error) (*Config, error) {
	if len(data) > MaxFileBytes {
		return nil, &Error{Problems: []Problem{{File: name, Msg: fmt.Sprintf("config is %d bytes, over the %d MiB limit", len(data), MaxFileBytes>>20)}}}
	}
	// One copy of the file as a string: the fast parser's values are
	// ranges of it (the decoder copies those it keeps), and Locate reads it.
	text := string(data)
	var cfg Config
	var probs []Problem
	var lines lazyLines
	var fast *Config
	if !slowParseOnly {
		fast, _ = parseFastConfig(text, data, parts, minBytes)
	}
	if fast != nil {
		cfg, lines = *fast, lazyLines{text: text}
	} else {
		// The yaml package's way, which says what is wrong.
		var pd pieceDecoder
		root, maps, pieces, cut := parsePieces(data, parts, minBytes, pd.decode)
		if !cut {
			root = new(yaml.Node)
			if err := yaml.Unmarshal(data, root); err != nil {
				return nil, &Error{Problems: []Problem{syntaxProblem(name, data, err)}}
			}
		}
		// An empty document ("", comments only, "---", "null", "~") is an
		// error, not a config with nothing in it: applied, it would replace a
		// good table with one that serves nothing. (The fast parser reads no
		// such file.)
		if root.Kind == 0 || len(root.Content) == 0 || isNull(root.Content[0]) {
			return nil, &Error{Problems: []Problem{{File: name, Line: 1, Msg: "config is empty"}}}
		}
		doc := root.Content[0]
		lines = lazyLines{root: doc}
		if !cut || !pd.join(&cfg, mapKeys(maps), pieces) {
			// The tree is parsed once: unknown keys are found by walking it
			// against the schema (Node.Decode has no strict mode), then it is
			// decoded.
			w := keyWalker{types: schema{}, report: func(path string, k *yaml.Node) {
				probs = append(probs, Problem{File: name, Line: k.Line, Path: path, Msg: fmt.Sprintf("unknown key %q", k.Value)})
			}}
			w.walk(doc, configType)
			if err := doc.Decode(&cfg); err != nil {
				var te *yaml.TypeError
				if !errors.As(err, &te) {
					return nil, &Error{Problems: []Problem{syntaxProblem(name, data, err)}}
				}
				// Type errors leave the rest decoded: validate it too, so one
				// run lists every problem in the file.
				probs = append(probs, decodeProblems(name, te, lines.get())...)
			}
		}
	}
	cfg.SetDefaults()
	vprobs, regexps := cfg.validate()
	for _, check := range extra {
		if err := check(&cfg); err != nil {
			vprobs = appendProblems(vprobs, err)
		}
	}
	for _, p := range vprobs {
		if p.File == "" {
			p.File, p.Line = name, lines.get().line(p.Path)
		}
		probs = append(probs, p)
	}
	if len(probs) > 0 {
		sortProblems(probs)
		return nil, &Error{Problems: probs}
	}
	cfg.regexps = regexps
	cfg.src = &source{name: name, text: text}
	return &cfg, nil
}

// source is the file a Config was parsed from, kept to locate problems
// found after Parse (see Locate). A config file is at most MaxFileBytes,
// and its Config already holds about as much.
type source struct {
	name string
	text string
}

// Locate returns err as an *Error whose problems carry the file and line
// of the file c was parsed from, sorted by line, or nil when err is nil.
// err is what a compile step found: Problems by config path, an *Error, or
// errors joining them (errors.Join). A Problem is placed at its path's line,
// or at its nearest ancestor in the file when the key was defaulted, or at
// the document's first line when it has no path. Any other error is kept as
// a problem of the whole file, without a line: return Problems to get one.
//
// The index from paths to lines is built from the kept source on each call,
// which costs a parse of the file: Locate is for failures, not the path
// where a table is published. A Config built by hand has no file; its
// problems keep their paths and have no line.
func (c *Config) Locate(err error) error {
	if err == nil {
		return nil
	}
	probs := appendProblems(nil, err)
	if c.src == nil {
		sortProblems(probs)
		return &Error{Problems: probs}
	}
	var li *lineIndex
	for i := range probs {
		p := &probs[i]
		if p.File != "" {
			continue // located already (an *Error from Parse or Serves)
		}
		p.File = c.src.name
		if p.plain {
			continue
		}
		if li == nil {
			if doc := docOf(c.src.text); doc == nil {
				li = &lineIndex{}
			} else {
				idx := indexLines(doc)
				li = &idx
			}
		}
		p.Line = li.line(p.Path)
	}
	sortProblems(probs)
	return &Error{Problems: probs}
}

var configType = reflect.TypeFor[Config]()

// isNull reports a document that is a null scalar: "null", "~", or nothing
// after "---".
func isNull(doc *yaml.Node) bool {
	return doc.Kind == yaml.ScalarNode && doc.ShortTag() == "!!null"
}

// pieceDecoder decodes the root mapping of each piece of a cut file (see
// parsePieces) on the piece's goroutine, into a Config of its own, and then
// joins them: each top-level key's field is taken from the piece that has
// the key, and a sequence continued across pieces is concatenated. That is
// what decoding the whole tree gives, since the decoder handles top-level
// keys and sequence items one by one.
type pieceDecoder struct {
	mu    sync.Mutex
	parts map[int]*Config // by piece; nil for a piece that did not decode
}

// decode walks piece i's mapping for unknown keys and decodes it; it keeps
// the result only when both are clean.
func (pd *pieceDecoder) decode(i int, m *yaml.Node) {
	clean := true
	w := keyWalker{types: schema{}, report: func(string, *yaml.Node) { clean = false }}
	w.walk(m, configType)
	c := new(Config)
	if !clean || m.Decode(c) != nil {
		return
	}
	pd.mu.Lock()
	defer pd.mu.Unlock()
	if pd.parts == nil {
		pd.parts = map[int]*Config{}
	}
	pd.parts[i] = c
}

// mapKeys lists the keys of each mapping.
func mapKeys(maps []*yaml.Node) [][]string {
	keys := make([][]string, len(maps))
	for i, m := range maps {
		for j := 0; j+1 < len(m.Content); j += 2 {
			keys[i] = append(keys[i], m.Content[j].Value)
		}
	}
	return keys
}

// join sets cfg to the pieces' configs joined, keys being each piece's
// top-level keys in order. It reports false, leaving cfg as it was, when
// a piece had an unknown key or failed to decode, or a top-level key
// repeats: the caller then walks and decodes the whole tree in one go, so
// every message is exactly the one a whole decode gives.
func (pd *pieceDecoder) join(cfg *Config, keys [][]string, pieces []piece) bool {
	if len(pd.parts) != len(keys) {
		return false
	}
	types := schema{}
	top := types.info(configType)
	var joined Config
	out := reflect.ValueOf(&joined).Elem()
	seen := map[string]bool{}
	for i, ks := range keys {
		src := reflect.ValueOf(pd.parts[i]).Elem()
		for j, key := range ks {
			f := top.fields[key] // known: the walk found no unknown key
			dst, part := out.Field(f.index), src.Field(f.index)
			if j == 0 && pieces[i].seqKey != "" {
				// The piece continues the sequence the piece before ended
				// with: append its items, into a slice of exactly the
				// length, as the decoder makes it.
				if f.t.Kind() != reflect.Slice || types.info(f.t).custom {
					return false
				}
				n := dst.Len() + part.Len()
				s := reflect.MakeSlice(f.t, n, n)
				reflect.Copy(s, dst)
				reflect.Copy(s.Slice(dst.Len(), n), part)
				dst.Set(s)
				continue
			}
			if seen[key] {
				return false // the decoder reports it: already defined
			}
			seen[key] = true
			dst.Set(part)
		}
	}
	*cfg = joined
	return true
}

// appendProblems appends the problems err holds: a Problem, the problems
// of an *Error, those of each error errors.Join joined; any other error is
// one plain problem (see Problem.plain).
func appendProblems(dst []Problem, err error) []Problem {
	switch e := err.(type) {
	case nil:
		return dst
	case Problem:
		return append(dst, e)
	case *Problem:
		return append(dst, *e)
	case *Error:
		return append(dst, e.Problems...)
	case interface{ Unwrap() []error }:
		for _, inner := range e.Unwrap() {
			dst = appendProblems(dst, inner)
		}
		return dst
	}
	return append(dst, Problem{Msg: err.Error(), plain: true})
}

// sortProblems orders problems by line, keeping the order of each line's.
func sortProblems(probs []Problem) {
	sort.SliceStable(probs, func(i, j int) bool { return probs[i].Line < probs[j].Line })
}

var lineRE = regexp.MustCompile(`(?s)^(?:yaml: )?line (\d+): (.*)$`)

// syntaxProblem turns an error of the yaml parser into a Problem with the
// line and column where data stops being YAML, and the parser's message.
//
// The parser's own line is not that place: for most errors it is the line,
// counted from 0, where the block or flow collection being parsed began
// (go-yaml/yaml#205), and it never gives a column. So the place is found by
// parsing prefixes of data (see findSyntaxError). That costs a few parses of
// the prefix on a failure, never anything on a file that parses.
func syntaxProblem(name string, data []byte, err error) Problem {
	msg, line := err.Error(), 0
	if m := lineRE.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	msg = strings.TrimPrefix(msg, "yaml: ")
	p := Problem{File: name, Line: line, Msg: "yaml: " + msg}
	l, c := findSyntaxError(data, msg, line-1)
	switch {
	case l > 0:
		p.Line, p.Column = l, c
	case p.Line == 0:
		p.Line = 1 // somewhere in the file: its start is the best place known
	}
	return p
}

// syntaxSearchBudget bounds the bytes findSyntaxError parses (the parser
// reads about 10 MB/s): 6 times the file, or 4 MiB for a small one. Locating
// takes 6 to 12 parses of the prefix up to the error, so a file of up to a
// few thousand routes always gets its line and column, and a broken file
// near MaxFileBytes costs the rebuild loop a few parses, not a minute; past
// the budget the line found is kept without a column, or the parser's own
// line is used.
func syntaxSearchBudget(size int) int { return max(4<<20, 6*size) }

// findSyntaxError returns the 1-based line and column where data fails to
// parse with message msg, searching around line from (0-based: the parser's
// own line less one); 0, 0 when it cannot tell, and no column when the
// budget runs out first.
//
// The parser reads a file in one pass and stops at its first error, so a
// prefix of data that holds the offending character fails the same way.
// The line is the first whose prefix fails with msg: for an unclosed
// bracket or quote, whose error comes at the end of the file, that is the
// line that opened it, which is where it is to be fixed. The column is the
// first character of that line whose prefix fails exactly as the line's
// prefix does, position included: a prefix that ends inside a bracket
// fails at its end, often with the same message but another position.
// When that character is the line's end (a bracket or quote left open),
// the first one that fails with msg is taken: the opening one.
func findSyntaxError(data []byte, msg string, from int) (line, col int) {
	budget := syntaxSearchBudget(len(data))
	seen := map[int]string{} // error text by prefix length, "" for none
	parse := func(end int) (string, bool) {
		if e, ok := seen[end]; ok {
			return e, true
		}
		if budget -= end; budget < 0 {
			return "", false
		}
		var n yaml.Node
		e := ""
		if err := yaml.Unmarshal(data[:end], &n); err != nil {
			e = err.Error()
		}
		seen[end] = e
		return e, true
	}
	failsWith := func(end int) (bool, bool) { // fails with msg; within budget
		e, ok := parse(end)
		m := strings.TrimPrefix(e, "yaml: ")
		if sub := lineRE.FindStringSubmatch(m); sub != nil {
			m = sub[2]
		}
		return e != "" && m == msg, ok
	}
	var starts []int // where each line starts
	for off := 0; off < len(data); {
		starts = append(starts, off)
		i := bytes.IndexByte(data[off:], '\n')
		if i < 0 {
			break
		}
		off += i + 1
	}
	if len(starts) == 0 {
		return 0, 0
	}
	lineEnd := func(l int) int {
		if l+1 < len(starts) {
			return starts[l+1]
		}
		return len(data)
	}
	// The line: from the parser's line, grow the step until a prefix
	// fails (or, when it fails already, back until one does not), then
	// halve it. Errors are usually a few lines from the parser's line, and
	// each try parses the whole prefix. (At the end of the file, the
	// parser's line is the last: an unclosed quote is found going back.)
	from = min(max(from, 0), len(starts)-1)
	fails, ok := failsWith(lineEnd(from))
	if !ok {
		return 0, 0
	}
	lo, hi := from, from // the first failing line is in [lo, hi]
	if fails {
		for step := 1; lo > 0; step *= 2 {
			l := max(hi-step, 0)
			f, ok := failsWith(lineEnd(l))
			if !ok {
				return hi + 1, 0
			}
			if !f {
				lo = l + 1
				break
			}
			lo, hi = l, l
		}
	} else {
		hi = -1
		for step := 1; lo+1 < len(starts) && hi < 0; step *= 2 {
			l := min(lo+step, len(starts)-1)
			f, ok := failsWith(lineEnd(l))
			switch {
			case !ok:
				return 0, 0
			case f:
				lo, hi = lo+1, l
			default:
				lo = l
			}
		}
		if hi < 0 {
			return 0, 0
		}
	}
	for lo < hi { // the first failing line is in [lo, hi]
		mid := lo + (hi-lo)/2
		fails, ok := failsWith(lineEnd(mid))
		if !ok {
			return hi + 1, 0
		}
		if fails {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	line = hi + 1
	start, text := starts[hi], data[starts[hi]:lineEnd(hi)]
	whole, _ := parse(start + len(text))
	// The column: the first character whose prefix fails as the line's
	// does (see above); first returns len(text) when none is found.
	first := func(fails func(end int) (bool, bool)) int {
		lo, hi := 0, len(text)
		for lo < hi {
			mid := lo + (hi-lo)/2
			f, ok := fails(start + mid + 1)
			if !ok {
				return len(text)
			}
			if f {
				hi = mid
			} else {
				lo = mid + 1
			}
		}
		return lo
	}
	c := first(func(end int) (bool, bool) { e, ok := parse(end); return e == whole, ok })
	if c >= len(bytes.TrimRight(text, "\r\n")) {
		c = first(failsWith)
	}
	if c >= len(text) {
		return line, 0
	}
	return line, utf8.RuneCount(text[:c+1])
}

var (
	colRE       = regexp.MustCompile(`(?s)^col (\d+): (.*)$`)
	unmarshalRE = regexp.MustCompile("(?s)^cannot unmarshal !!(\\w+) `(.*)` into (\\S+)$")
)

// decodeProblems turns the yaml package's type errors into Problems, with the
// config path at that line when it is known.
func decodeProblems(name string, te *yaml.TypeError, lines lineIndex) []Problem {
	out := make([]Problem, 0, len(te.Errors))
	for _, e := range te.Errors {
		p := Problem{File: name, Msg: e}
		col := 0
		if m := lineRE.FindStringSubmatch(e); m != nil {
			p.Line, _ = strconv.Atoi(m[1])
			p.Msg = m[2]
		}
		if m := colRE.FindStringSubmatch(p.Msg); m != nil {
			col, _ = strconv.Atoi(m[1])
			p.Msg = m[2]
			p.Path = lines.find(p.Line, col, "")
		} else if m := unmarshalRE.FindStringSubmatch(p.Msg); m != nil {
			p.Msg = fmt.Sprintf("cannot use %s %q as %s", m[1], m[2], friendlyType(m[3]))
			p.Path = lines.find(p.Line, 0, m[2])
		}
		out = append(out, p)
	}
	return out
}

func friendlyType(t string) string {
	switch {
	case strings.HasPrefix(t, "map["), strings.HasPrefix(t, "config."):
		return "a mapping"
	case strings.HasPrefix(t, "[]"):
		return "a list"
	case strings.HasPrefix(t, "int"), strings.HasPrefix(t, "uint"):
		return "a whole number"
	case strings.HasPrefix(t, "float"):
		return "a number"
	}
	return t
}

// lineIndex maps config paths (pools.web-eu.endpoints[1]) to source lines,
// and source positions back to paths for the yaml package's errors.
type lineIndex struct {
	byPath map[string]int
	byLine map[int][]entry
	// doc is the line the document starts on, where problems of the whole
	// file (no path, or no ancestor in the file) are placed.
	doc int
}

// entry is one key or sequence item: its path, position and scalar value.
type entry struct {
	path, value string
	line, col   int
}

// lazyLines builds the line index of root on first use. Most parses find
// no problem and never need it, and building it costs a string per node.
// A config the fast parser read has no tree: root is then made from text,
// which that parser reads, so into the tree the yaml package gives.
type lazyLines struct {
	root *yaml.Node
	text string
	li   *lineIndex
}

func (l *lazyLines) get() lineIndex {
	if l.li == nil {
		if l.root == nil {
			if l.root = docOf(l.text); l.root == nil {
				l.root = &yaml.Node{}
			}
		}
		li := indexLines(l.root)
		l.li = &li
	}
	return *l.li
}

// docOf returns the root node of the document text holds, as the yaml
// package parses it (by the fast parser when it reads text), or nil when
// text does not parse.
func docOf(text string) *yaml.Node {
	if t, ok := parseFast(text); ok {
		return t.yamlNode(t.root)
	}
	var root yaml.Node
	if yaml.Unmarshal([]byte(text), &root) != nil || len(root.Content) == 0 {
		return nil
	}
	return root.Content[0]
}

func indexLines(n *yaml.Node) lineIndex {
	li := lineIndex{byPath: map[string]int{}, byLine: map[int][]entry{}, doc: n.Line}
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				p := k.Value
				if path != "" {
					p = path + "." + k.Value
				}
				li.add(entry{path: p, value: v.Value, line: k.Line, col: k.Column}, v)
				walk(v, p)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				p := fmt.Sprintf("%s[%d]", path, i)
				li.add(entry{path: p, value: c.Value, line: c.Line, col: c.Column}, c)
				walk(c, p)
			}
		}
		// Aliases are not followed: their target is indexed under its anchor's
		// path, and following them would let an alias bomb blow up the index.
	}
	walk(n, "")
	return li
}

func (li lineIndex) add(e entry, value *yaml.Node) {
	li.byPath[e.path] = e.line
	li.byLine[e.line] = append(li.byLine[e.line], e)
	if value.Line != e.line || value.Column != e.col {
		v := e
		v.line, v.col = value.Line, value.Column
		li.byLine[v.line] = append(li.byLine[v.line], v)
	}
}

// line finds the line of path, or of its nearest ancestor that is in the file
// (a problem with a defaulted key points at the block that lacks it), or
// the document's first line.
func (li lineIndex) line(path string) int {
	for path != "" {
		if l, ok := li.byPath[path]; ok {
			return l
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return li.doc
}

// find returns the path of the entry at line that matches: by column when
// col > 0, else by scalar value; "" when nothing matches.
func (li lineIndex) find(line, col int, value string) string {
	for _, e := range li.byLine[line] {
		if col > 0 && e.col == col || col == 0 && value != "" && e.value == value {
			return e.path
		}
	}
	return ""
}

var unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()

// schema caches, for one Parse call, what the unknown-key walk needs to know
// about each type it meets: a config has thousands of routes of the same few
// types, and asking reflect for a struct's tags at every key was a sizeable
// share of a reload. It lives for one call, so no state outlives Parse.
type schema map[reflect.Type]*typeInfo

// typeInfo is what the walk needs about one type (pointers removed).
type typeInfo struct {
	t reflect.Type
	// custom is true when the type has its own UnmarshalYAML, which checks
	// its keys itself.
	custom bool
	// fields maps a struct's yaml key names to their fields (yamlFields).
	fields map[string]structField
}

// structField is one field of a struct, by its place and type.
type structField struct {
	index int
	t     reflect.Type
}

func (s schema) info(t reflect.Type) *typeInfo {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if ti, ok := s[t]; ok {
		return ti
	}
	ti := &typeInfo{t: t, custom: reflect.PointerTo(t).Implements(unmarshalerType)}
	if t.Kind() == reflect.Struct && !ti.custom {
		ti.fields = yamlFields(t)
	}
	s[t] = ti
	return ti
}

// keyWalker walks a tree against the type it decodes into and reports every
// mapping key no field of a struct takes. Types with their own UnmarshalYAML
// check their keys themselves. The path of a node is kept as a stack of
// segments and only turned into a string for a report, since almost every
// key is known.
type keyWalker struct {
	types  schema
	report func(path string, key *yaml.Node)
	segs   []pathSeg
}

// pathSeg is one step of a path: a mapping key when isKey is set, else a
// sequence index.
type pathSeg struct {
	key   string
	index int
	isKey bool
}

// path renders the segments the way Problem paths are written:
// pools.web-eu.endpoints[1].weight.
func (w *keyWalker) path() string {
	s := ""
	for _, g := range w.segs {
		switch {
		case !g.isKey:
			s += "[" + strconv.Itoa(g.index) + "]"
		case s == "":
			s = g.key
		default:
			s += "." + g.key
		}
	}
	return s
}

func (w *keyWalker) walk(n *yaml.Node, t reflect.Type) {
	ti := w.types.info(t)
	if ti.custom {
		return
	}
	switch {
	case ti.t.Kind() == reflect.Struct && n.Kind == yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			w.segs = append(w.segs, pathSeg{key: k.Value, isKey: true})
			if f, ok := ti.fields[k.Value]; ok {
				w.walk(v, f.t)
			} else {
				w.report(w.path(), k)
			}
			w.segs = w.segs[:len(w.segs)-1]
		}
	case ti.t.Kind() == reflect.Map && n.Kind == yaml.MappingNode:
		elem := ti.t.Elem()
		for i := 0; i+1 < len(n.Content); i += 2 {
			w.segs = append(w.segs, pathSeg{key: n.Content[i].Value, isKey: true})
			w.walk(n.Content[i+1], elem)
			w.segs = w.segs[:len(w.segs)-1]
		}
	case ti.t.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode:
		elem := ti.t.Elem()
		for i, c := range n.Content {
			w.segs = append(w.segs, pathSeg{index: i})
			w.walk(c, elem)
			w.segs = w.segs[:len(w.segs)-1]
		}
	}
}

// yamlFields maps the yaml key names of struct type t to its fields. The
// first field with a name wins; unexported fields and "-" take no key, as
// in the yaml package.
func yamlFields(t reflect.Type) map[string]structField {
	fields := make(map[string]structField, t.NumField())
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if _, dup := fields[name]; !dup && name != "-" {
			fields[name] = structField{index: i, t: f.Type}
		}
	}
	return fields
}
