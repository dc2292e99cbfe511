package config

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Problem is one thing wrong with a config file, located by path and line.
type Problem struct {
	File string
	Line int    // 0 when unknown
	Path string // e.g. routes[0].split[1].service; empty for file-level problems
	Msg  string
}

// String formats the problem the way compilers do: file:line: path: msg.
func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		b.WriteString(":" + strconv.Itoa(p.Line))
	}
	b.WriteString(": ")
	if p.Path != "" {
		b.WriteString(p.Path + ": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

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

// Load reads, decodes, defaults and validates the file at path. It returns
// the raw bytes too, so callers can hash exactly what was applied.
func Load(path string) (*Config, []byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read config: %w", err)
	}
	cfg, err := Parse(path, data)
	return cfg, data, err
}

// Parse decodes data strictly (unknown keys, wrong types and bad durations
// are errors), fills defaults and validates. name is used in messages only.
// On failure the error is an *Error listing every problem with its line.
func Parse(name string, data []byte) (*Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, &Error{Problems: []Problem{syntaxProblem(name, err)}}
	}
	if root.Kind == 0 || len(root.Content) == 0 {
		return nil, &Error{Problems: []Problem{{File: name, Msg: "file is empty"}}}
	}
	lines := indexLines(root.Content[0])

	// The tree is parsed once: unknown keys are found by walking it against
	// the schema (Node.Decode has no strict mode), then it is decoded.
	var cfg Config
	var probs []Problem
	unknownKeys(root.Content[0], reflect.TypeOf(cfg), "", func(path string, k *yaml.Node) {
		probs = append(probs, Problem{File: name, Line: k.Line, Path: path, Msg: fmt.Sprintf("unknown key %q", k.Value)})
	})
	if err := root.Content[0].Decode(&cfg); err != nil {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return nil, &Error{Problems: []Problem{syntaxProblem(name, err)}}
		}
		// Type errors leave the rest decoded: validate it too, so one run
		// lists every problem in the file.
		probs = append(probs, decodeProblems(name, te, lines)...)
	}
	cfg.SetDefaults()
	for _, p := range cfg.validate() {
		p.File, p.Line = name, lines.line(p.Path)
		probs = append(probs, p)
	}
	if len(probs) > 0 {
		sort.SliceStable(probs, func(i, j int) bool { return probs[i].Line < probs[j].Line })
		return nil, &Error{Problems: probs}
	}
	return &cfg, nil
}

var lineRE = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

func syntaxProblem(name string, err error) Problem {
	msg := err.Error()
	if m := lineRE.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		return Problem{File: name, Line: n, Msg: m[2]}
	}
	return Problem{File: name, Msg: strings.TrimPrefix(msg, "yaml: ")}
}

var (
	colRE       = regexp.MustCompile(`^col (\d+): (.*)$`)
	unmarshalRE = regexp.MustCompile("^cannot unmarshal !!(\\w+) `(.*)` into (\\S+)$")
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
}

// entry is one key or sequence item: its path, position and scalar value.
type entry struct {
	path, value string
	line, col   int
}

func indexLines(n *yaml.Node) lineIndex {
	li := lineIndex{byPath: map[string]int{}, byLine: map[int][]entry{}}
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
// (a problem with a defaulted key points at the block that lacks it).
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
	return 0
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

// unknownKeys walks n against the type t decodes into and reports every
// mapping key no field of a struct takes. Types with their own
// UnmarshalYAML check their keys themselves.
func unknownKeys(n *yaml.Node, t reflect.Type, path string, report func(path string, key *yaml.Node)) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		return
	}
	join := func(k string) string {
		if path == "" {
			return k
		}
		return path + "." + k
	}
	switch {
	case t.Kind() == reflect.Struct && n.Kind == yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			f, ok := yamlField(t, k.Value)
			if !ok {
				report(join(k.Value), k)
				continue
			}
			unknownKeys(v, f.Type, join(k.Value), report)
		}
	case t.Kind() == reflect.Map && n.Kind == yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			unknownKeys(n.Content[i+1], t.Elem(), join(n.Content[i].Value), report)
		}
	case t.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode:
		for i, c := range n.Content {
			unknownKeys(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i), report)
		}
	}
}

// yamlField finds the field of struct type t whose yaml name is key.
func yamlField(t reflect.Type, key string) (reflect.StructField, bool) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if name, _, _ := strings.Cut(f.Tag.Get("yaml"), ","); name == key && name != "-" {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// hasYAMLField reports whether the struct v points to has a field whose yaml
// name is key.
func hasYAMLField(v any, key string) bool {
	t := reflect.TypeOf(v)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	_, ok := yamlField(t, key)
	return ok
}
