package config

import (
	"encoding"
	"reflect"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"
)

// Decoding the fast parser's tree the way Node.Decode decodes the yaml
// package's.
//
// Node.Decode allocates for every key it reads and every value it makes.
// fastDecoder decodes the compact tree (fastyaml.go) into structs, maps
// with string keys, slices, pointers and strings itself, calls UnmarshalYAML
// where a type has it (as Node.Decode does, with the yaml package's tree of
// that node), and hands every other scalar (numbers, bools) to Node.Decode.
// It reports false, leaving the value half-decoded, for anything it does
// not know or that Node.Decode or the unknown-key walk (keyWalker) would
// report: an unknown key, a duplicate key, a kind that does not fit, an
// error from UnmarshalYAML, a null in a list. The caller then parses and
// decodes the file the yaml package's way, so every message is the one it
// gives. FuzzFastDecode holds it to that way.
//
// Every string it stores is a copy, as the yaml package's are, not a slice
// of the file: a name kept for long (a metric's label, a telemetry key, a
// health member) would otherwise keep the whole file of the reload that
// made it, one file per reload that brings a new name.
type fastDecoder struct {
	t     *ftree
	types map[reflect.Type]*decType
}

// decType is what the decoder knows of one type.
type decType struct {
	t    reflect.Type
	kind reflect.Kind
	// unmarshaler: *t implements yaml.Unmarshaler, so UnmarshalYAML decodes it.
	unmarshaler bool
	// leaf: a scalar of this type is decoded by Node.Decode (numbers,
	// bools, a string type with UnmarshalText).
	leaf bool
	// unsupported: the caller's way must decode it (see fastDecoder).
	unsupported bool
	elem        *decType            // of a pointer, slice or map
	fields      map[string]decField // of a struct, by yaml key
}

type decField struct {
	index int
	t     *decType
}

var (
	textUnmarshalerType     = reflect.TypeFor[encoding.TextUnmarshaler]()
	obsoleteUnmarshalerType = reflect.TypeFor[interface {
		UnmarshalYAML(func(any) error) error
	}]()
)

func (d *fastDecoder) info(t reflect.Type) *decType {
	if ti, ok := d.types[t]; ok {
		return ti
	}
	if d.types == nil {
		d.types = map[reflect.Type]*decType{}
	}
	ti := &decType{t: t, kind: t.Kind()}
	d.types[t] = ti // before the fields: types may refer to themselves
	pt := reflect.PointerTo(t)
	switch {
	case pt.Implements(obsoleteUnmarshalerType):
		ti.unsupported = true
	case pt.Implements(unmarshalerType):
		ti.unmarshaler = true
		return ti
	}
	switch ti.kind {
	case reflect.Pointer, reflect.Slice:
		ti.elem = d.info(t.Elem())
	case reflect.Map:
		kt := t.Key()
		ti.elem = d.info(t.Elem())
		if kt != reflect.TypeFor[string]() || ti.elem.kind == reflect.Interface {
			ti.unsupported = true
		}
	case reflect.Struct:
		ti.fields = map[string]decField{}
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if !f.IsExported() {
				if f.Anonymous {
					ti.unsupported = true
				}
				continue
			}
			tag := f.Tag.Get("yaml")
			if tag == "-" {
				continue
			}
			name, opts, _ := strings.Cut(tag, ",")
			// Untagged fields take their lowercased name in the yaml
			// package but no key in keyWalker; inline fields take their
			// fields' keys: both are left to the caller's way.
			if name == "" || name == "-" || strings.Contains(","+opts+",", ",inline,") {
				ti.unsupported = true
				continue
			}
			if _, dup := ti.fields[name]; dup {
				ti.unsupported = true
			}
			ti.fields[name] = decField{index: i, t: d.info(f.Type)}
		}
	case reflect.String:
		ti.leaf = pt.Implements(textUnmarshalerType)
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		ti.leaf = true
	default:
		ti.unsupported = true // interfaces, arrays, channels...
	}
	return ti
}

// decode decodes node i into out, which must be addressable and zero.
func (d *fastDecoder) decode(i int32, out reflect.Value) bool {
	return d.unmarshal(i, out, d.info(out.Type()))
}

// unmarshal decodes node i, which is not null, into out, of type ti.
func (d *fastDecoder) unmarshal(i int32, out reflect.Value, ti *decType) bool {
	for ti.kind == reflect.Pointer && !ti.unmarshaler {
		if out.IsNil() {
			out.Set(reflect.New(ti.t.Elem()))
		}
		out, ti = out.Elem(), ti.elem
	}
	switch {
	case ti.unsupported:
		return false
	case ti.unmarshaler:
		return out.Addr().Interface().(yaml.Unmarshaler).UnmarshalYAML(d.t.yamlNode(i)) == nil
	}
	n := &d.t.nodes[i]
	switch n.kind {
	case yaml.ScalarNode:
		switch {
		case ti.leaf:
			return d.t.yamlNode(i).Decode(out.Addr().Interface()) == nil
		case ti.kind == reflect.String:
			out.SetString(strings.Clone(d.t.value(i)))
			return true
		}
	case yaml.MappingNode:
		kids := d.t.children(i)
		if !d.keys(kids) {
			return false
		}
		switch ti.kind {
		case reflect.Struct:
			for j := 0; j < len(kids); j += 2 {
				f, ok := ti.fields[d.t.value(kids[j])]
				if !ok {
					return false // an unknown key
				}
				if v := kids[j+1]; !d.null(v) && !d.unmarshal(v, out.Field(f.index), f.t) {
					return false
				}
			}
			return true
		case reflect.Map:
			if out.IsNil() {
				out.Set(reflect.MakeMapWithSize(ti.t, len(kids)/2))
			}
			for j := 0; j < len(kids); j += 2 {
				e := reflect.New(ti.elem.t).Elem()
				if v := kids[j+1]; !d.null(v) && !d.unmarshal(v, e, ti.elem) {
					return false
				}
				out.SetMapIndex(reflect.ValueOf(strings.Clone(d.t.value(kids[j]))), e)
			}
			return true
		}
	case yaml.SequenceNode:
		if ti.kind != reflect.Slice {
			return false
		}
		kids := d.t.children(i)
		s := reflect.MakeSlice(ti.t, len(kids), len(kids))
		for j, c := range kids {
			// A null item is dropped or kept by the yaml package depending
			// on the item's kind: left to it.
			if d.null(c) || !d.unmarshal(c, s.Index(j), ti.elem) {
				return false
			}
		}
		out.Set(s)
		return true
	}
	return false
}

// null reports a node the yaml package decodes as null: a struct field
// or map value it leaves zero.
func (d *fastDecoder) null(i int32) bool { return d.t.nodes[i].tag == tagNull }

// keys checks a mapping's keys: none null, none repeated (the yaml package
// reports a repeated key; a null key is skipped by it and reported by
// keyWalker). The fast parser's keys are scalars without anchor or tag,
// and a plain "<<" (a merge key) is not read by it.
func (d *fastDecoder) keys(kids []int32) bool {
	for j := 0; j < len(kids); j += 2 {
		if d.null(kids[j]) || d.t.nodes[kids[j]].kind != yaml.ScalarNode {
			return false
		}
	}
	if len(kids) <= 32 {
		for i := 0; i < len(kids); i += 2 {
			for j := i + 2; j < len(kids); j += 2 {
				if d.t.value(kids[i]) == d.t.value(kids[j]) {
					return false
				}
			}
		}
		return true
	}
	seen := make(map[string]struct{}, len(kids)/2)
	for j := 0; j < len(kids); j += 2 {
		k := d.t.value(kids[j])
		if _, dup := seen[k]; dup {
			return false
		}
		seen[k] = struct{}{}
	}
	return true
}

// parseFastConfig parses and decodes data (text is data as a string) with
// the fast parser and decoder: in the pieces cutPieces cuts (see
// pieces.go), each on a goroutine of its own, or whole. It reports false
// when any piece is not theirs to read, or the pieces do not join as the
// whole file's tree would; the caller then parses the yaml package's way.
// The config is decoded only: not defaulted, not validated.
func parseFastConfig(text string, data []byte, parts, minBytes int) (*Config, bool) {
	pieces := cutPieces(data, parts, minBytes)
	if pieces == nil {
		pieces = []piece{{start: 0, end: len(text)}}
	}
	type result struct {
		cfg  *Config
		keys []string
		// The last key's line and value (to join the next piece's
		// sequence to), and the first value's column.
		lastLine  int32
		last      fnode
		firstCol  int32
		firstKind yaml.Kind
	}
	res := make([]result, len(pieces))
	work := func(i int) {
		t, ok := parseFastPiece(text, pieces[i])
		if !ok {
			return
		}
		c := new(Config)
		d := fastDecoder{t: t}
		if !d.decode(t.root, reflect.ValueOf(c).Elem()) {
			return
		}
		kids := t.children(t.root)
		r := result{cfg: c, keys: make([]string, 0, len(kids)/2)}
		for j := 0; j < len(kids); j += 2 {
			r.keys = append(r.keys, t.value(kids[j]))
		}
		r.lastLine, r.last = t.nodes[kids[len(kids)-2]].line, t.nodes[kids[len(kids)-1]]
		r.firstCol, r.firstKind = t.nodes[kids[1]].col, t.nodes[kids[1]].kind
		res[i] = r
	}
	var wg sync.WaitGroup
	for i := 1; i < len(pieces); i++ {
		wg.Go(func() { work(i) })
	}
	work(0)
	wg.Wait()
	var pd pieceDecoder
	keys := make([][]string, len(pieces))
	for i, r := range res {
		if r.cfg == nil {
			return nil, false
		}
		if p := pieces[i]; p.seqKey != "" {
			// As parsePieces checks: the piece before ended with this
			// key's block sequence, at the same column as this one's.
			prev := res[i-1]
			if prev.keys[len(prev.keys)-1] != p.seqKey || prev.lastLine != int32(p.keyLine+1) ||
				prev.last.kind != yaml.SequenceNode || prev.last.style != 0 ||
				r.firstKind != yaml.SequenceNode || prev.last.col != r.firstCol {
				return nil, false
			}
		}
		keys[i] = r.keys
	}
	if len(pieces) == 1 {
		return res[0].cfg, true
	}
	pd.parts = make(map[int]*Config, len(pieces))
	for i, r := range res {
		pd.parts[i] = r.cfg
	}
	var cfg Config
	if !pd.join(&cfg, keys, pieces) {
		return nil, false
	}
	return &cfg, true
}
