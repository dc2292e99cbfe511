package routing

import (
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	"github.com/meridian-lb/meridian/config"
)

// The version hash's config share is the config as encoding/json encodes
// it (writeConfigJSON), several megabytes at 10,000 routes: encoding/json
// spends most of its time walking the config by reflection, field by
// field. The encoder here writes the same bytes from plans compiled once
// per type (field offsets, pre-encoded keys), for the kinds a config is
// made of: structs without tags or embedded fields, pointers, slices,
// arrays, maps with string keys, strings, booleans, integers and floats.
// Should the config's types ever hold anything else (a json tag, a
// MarshalJSON or MarshalText method, an interface, a map with other
// keys), configPlan is nil and writeConfigJSON uses encoding/json as
// before: the fast path can only be exact or absent. A string that needs
// escaping is encoded by encoding/json itself.

// jsonWriter is the encoder's output: a buffer flushed to w in chunks,
// and the scratch space of the maps it encodes.
type jsonWriter struct {
	buf  []byte
	w    io.Writer
	err  error
	maps map[reflect.Type]*mapScratch
}

// mapScratch is what encoding a map of one type needs, kept for the next
// map of the type: its iterator, a key, the entries and their values.
type mapScratch struct {
	busy    bool // a map of the type is being encoded (one holds another)
	it      reflect.MapIter
	key     reflect.Value
	entries []mapEntry
	vals    []reflect.Value // addressable values of the map's element type
}

type mapEntry struct {
	key string
	val reflect.Value
}

const jsonFlushAt = 32 << 10

func (w *jsonWriter) flush() {
	if len(w.buf) > 0 && w.err == nil {
		_, w.err = w.w.Write(w.buf)
	}
	w.buf = w.buf[:0]
}

func (w *jsonWriter) fail(err error) {
	if w.err == nil {
		w.err = err
	}
}

// encFn appends the encoding of the value of its type at p.
type encFn func(w *jsonWriter, p unsafe.Pointer)

// encBox holds a type's encoder once built; recursive types reach
// themselves through it.
type encBox struct{ f encFn }

var (
	planOnce   sync.Once
	configPlan encFn // nil: encoding/json encodes the config
)

// configEncoder returns the compiled encoder of config.Config, or nil when
// its types are not all of the kinds it handles.
func configEncoder() encFn {
	planOnce.Do(func() {
		t := reflect.TypeFor[config.Config]()
		if !jsonFast(t, map[reflect.Type]bool{}) {
			return
		}
		configPlan = buildEnc(t, map[reflect.Type]*encBox{}).f
	})
	return configPlan
}

var (
	jsonMarshalerType = reflect.TypeFor[json.Marshaler]()
	textMarshalerType = reflect.TypeFor[encoding.TextMarshaler]()
)

// jsonFast reports whether every type reachable from t is one the plans
// encode exactly as encoding/json does.
func jsonFast(t reflect.Type, seen map[reflect.Type]bool) bool {
	if seen[t] {
		return true
	}
	seen[t] = true
	for _, it := range []reflect.Type{jsonMarshalerType, textMarshalerType} {
		if t.Implements(it) || reflect.PointerTo(t).Implements(it) {
			return false
		}
	}
	switch t.Kind() {
	case reflect.Bool, reflect.String, reflect.Float32, reflect.Float64,
		reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return true
	case reflect.Pointer, reflect.Array:
		return jsonFast(t.Elem(), seen)
	case reflect.Slice:
		// []byte is base64 in encoding/json.
		return t.Elem().Kind() != reflect.Uint8 && jsonFast(t.Elem(), seen)
	case reflect.Map:
		return t.Key().Kind() == reflect.String && jsonFast(t.Key(), seen) && jsonFast(t.Elem(), seen)
	case reflect.Struct:
		for i := range t.NumField() {
			f := t.Field(i)
			if f.Anonymous {
				return false // promotion rules: left to encoding/json
			}
			if !f.IsExported() {
				continue
			}
			if _, tagged := f.Tag.Lookup("json"); tagged || !jsonFast(f.Type, seen) {
				return false
			}
		}
		return true
	}
	return false // interfaces, channels, functions, complex numbers
}

// buildEnc compiles t's encoder; t passed jsonFast.
func buildEnc(t reflect.Type, boxes map[reflect.Type]*encBox) *encBox {
	if b := boxes[t]; b != nil {
		return b
	}
	b := &encBox{}
	boxes[t] = b
	switch t.Kind() {
	case reflect.Bool:
		b.f = func(w *jsonWriter, p unsafe.Pointer) {
			if *(*bool)(p) {
				w.buf = append(w.buf, "true"...)
			} else {
				w.buf = append(w.buf, "false"...)
			}
		}
	case reflect.Int:
		b.f = func(w *jsonWriter, p unsafe.Pointer) { w.buf = strconv.AppendInt(w.buf, int64(*(*int)(p)), 10) }
	case reflect.Int8:
		b.f = func(w *jsonWriter, p unsafe.Pointer) { w.buf = strconv.AppendInt(w.buf, int64(*(*int8)(p)), 10) }
	case reflect.Int16:
		b.f = func(w *jsonWriter, p unsafe.Pointer) { w.buf = strconv.AppendInt(w.buf, int64(*(*int16)(p)), 10) }
	case reflect.Int32:
		b.f = func(w *jsonWriter, p unsafe.Pointer) { w.buf = strconv.AppendInt(w.buf, int64(*(*int32)(p)), 10) }
	case reflect.Int64:
		b.f = func(w *jsonWriter, p unsafe.Pointer) { w.buf = strconv.AppendInt(w.buf, *(*int64)(p), 10) }
	case reflect.Uint:
		b.f = func(w *jsonWriter, p unsafe.Pointer) { w.buf = strconv.AppendUint(w.buf, uint64(*(*uint)(p)), 10) }
	case reflect.Uint8:
		b.f = func(w *jsonWriter, p unsafe.Pointer) { w.buf = strconv.AppendUint(w.buf, uint64(*(*uint8)(p)), 10) }
	case reflect.Uint16:
		b.f = func(w *jsonWriter, p unsafe.Pointer) { w.buf = strconv.AppendUint(w.buf, uint64(*(*uint16)(p)), 10) }
	case reflect.Uint32:
		b.f = func(w *jsonWriter, p unsafe.Pointer) { w.buf = strconv.AppendUint(w.buf, uint64(*(*uint32)(p)), 10) }
	case reflect.Uint64:
		b.f = func(w *jsonWriter, p unsafe.Pointer) { w.buf = strconv.AppendUint(w.buf, *(*uint64)(p), 10) }
	case reflect.Uintptr:
		b.f = func(w *jsonWriter, p unsafe.Pointer) { w.buf = strconv.AppendUint(w.buf, uint64(*(*uintptr)(p)), 10) }
	case reflect.Float32:
		b.f = func(w *jsonWriter, p unsafe.Pointer) { w.appendFloat(float64(*(*float32)(p)), 32) }
	case reflect.Float64:
		b.f = func(w *jsonWriter, p unsafe.Pointer) { w.appendFloat(*(*float64)(p), 64) }
	case reflect.String:
		b.f = func(w *jsonWriter, p unsafe.Pointer) { w.appendString(*(*string)(p)) }
	case reflect.Pointer:
		elem := buildEnc(t.Elem(), boxes)
		b.f = func(w *jsonWriter, p unsafe.Pointer) {
			q := *(*unsafe.Pointer)(p)
			if q == nil {
				w.buf = append(w.buf, "null"...)
				return
			}
			elem.f(w, q)
		}
	case reflect.Array:
		elem, size, n := buildEnc(t.Elem(), boxes), t.Elem().Size(), t.Len()
		b.f = func(w *jsonWriter, p unsafe.Pointer) {
			w.buf = append(w.buf, '[')
			for i := range n {
				if i > 0 {
					w.buf = append(w.buf, ',')
				}
				elem.f(w, unsafe.Add(p, uintptr(i)*size))
			}
			w.buf = append(w.buf, ']')
		}
	case reflect.Slice:
		elem, size := buildEnc(t.Elem(), boxes), t.Elem().Size()
		b.f = func(w *jsonWriter, p unsafe.Pointer) {
			s := (*sliceHeader)(p)
			if s.data == nil {
				w.buf = append(w.buf, "null"...)
				return
			}
			w.buf = append(w.buf, '[')
			for i := range s.len {
				if i > 0 {
					w.buf = append(w.buf, ',')
				}
				elem.f(w, unsafe.Add(s.data, uintptr(i)*size))
				if len(w.buf) >= jsonFlushAt {
					w.flush()
				}
			}
			w.buf = append(w.buf, ']')
		}
	case reflect.Map:
		b.f = mapEnc(t, buildEnc(t.Elem(), boxes))
	case reflect.Struct:
		// The kinds most fields are (strings, nil pointers and slices,
		// booleans, integers) are written in the loop; the others call
		// their encoder.
		const (
			fOther = iota
			fString
			fNilable // pointer, slice or map: null when nil, else its encoder
			fBool
			fInt
		)
		type field struct {
			key  []byte // `"Name":`, with the comma before it for all but the first
			off  uintptr
			kind uint8
			enc  *encBox
		}
		var fields []field
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			key := appendJSONString(nil, f.Name)
			if len(fields) > 0 {
				key = append([]byte{','}, key...)
			}
			fd := field{key: append(key, ':'), off: f.Offset, enc: buildEnc(f.Type, boxes)}
			switch f.Type.Kind() {
			case reflect.String:
				fd.kind = fString
			case reflect.Pointer, reflect.Slice, reflect.Map:
				fd.kind = fNilable // a nil map and a nil slice are a nil pointer's word
			case reflect.Bool:
				fd.kind = fBool
			case reflect.Int64:
				fd.kind = fInt
			case reflect.Int:
				if strconv.IntSize == 64 {
					fd.kind = fInt
				}
			}
			fields = append(fields, fd)
		}
		b.f = func(w *jsonWriter, p unsafe.Pointer) {
			w.buf = append(w.buf, '{')
			for i := range fields {
				f := &fields[i]
				w.buf = append(w.buf, f.key...)
				q := unsafe.Add(p, f.off)
				switch f.kind {
				case fString:
					w.buf = appendJSONString(w.buf, *(*string)(q))
				case fNilable:
					if *(*unsafe.Pointer)(q) == nil {
						w.buf = append(w.buf, "null"...)
					} else {
						f.enc.f(w, q)
					}
				case fBool:
					if *(*bool)(q) {
						w.buf = append(w.buf, "true"...)
					} else {
						w.buf = append(w.buf, "false"...)
					}
				case fInt:
					w.buf = strconv.AppendInt(w.buf, *(*int64)(q), 10)
				default:
					f.enc.f(w, q)
				}
			}
			w.buf = append(w.buf, '}')
		}
	default:
		panic(fmt.Sprintf("routing: no JSON plan for %v", t)) // jsonFast let it through: a bug here
	}
	return b
}

// sliceHeader is a slice's layout.
type sliceHeader struct {
	data     unsafe.Pointer
	len, cap int
}

// mapEnc encodes a map with string keys as encoding/json does: keys
// sorted, a nil map as null.
func mapEnc(t reflect.Type, elem *encBox) encFn {
	pt := reflect.PointerTo(t)
	return func(w *jsonWriter, p unsafe.Pointer) {
		if *(*unsafe.Pointer)(p) == nil {
			w.buf = append(w.buf, "null"...)
			return
		}
		m := reflect.NewAt(pt.Elem(), p).Elem()
		n := m.Len()
		if n == 0 {
			w.buf = append(w.buf, "{}"...)
			return
		}
		sc := w.maps[t]
		if sc == nil || sc.busy {
			sc = &mapScratch{key: reflect.New(t.Key()).Elem()}
			if w.maps == nil {
				w.maps = map[reflect.Type]*mapScratch{}
			}
			if w.maps[t] == nil {
				w.maps[t] = sc
			}
		}
		sc.busy = true
		defer func() { sc.busy = false }()
		// The values are copied out of the map (they are not addressable
		// there) into values of their own, kept for the next map.
		for len(sc.vals) < n {
			sc.vals = append(sc.vals, reflect.New(t.Elem()).Elem())
		}
		entries := sc.entries[:0]
		sc.it.Reset(m)
		for i := 0; sc.it.Next(); i++ {
			sc.key.SetIterKey(&sc.it)
			v := sc.vals[i]
			v.SetIterValue(&sc.it)
			entries = append(entries, mapEntry{sc.key.String(), v})
		}
		sc.it.Reset(reflect.Value{}) // holds no map between calls
		if len(entries) > 1 {
			slices.SortFunc(entries, func(a, b mapEntry) int { return strings.Compare(a.key, b.key) })
		}
		w.buf = append(w.buf, '{')
		for i := range entries {
			if i > 0 {
				w.buf = append(w.buf, ',')
			}
			w.appendString(entries[i].key)
			w.buf = append(w.buf, ':')
			elem.f(w, entries[i].val.Addr().UnsafePointer())
		}
		w.buf = append(w.buf, '}')
		clear(entries) // the keys and values are the map's
		sc.entries = entries[:0]
	}
}

// appendString appends s as encoding/json does (HTML escaped).
func (w *jsonWriter) appendString(s string) { w.buf = appendJSONString(w.buf, s) }

// appendJSONString appends s quoted. A string of printable ASCII that
// needs no escape (the usual case) is copied; any other is left to
// encoding/json, whose escapes (HTML characters, control characters,
// U+2028, invalid UTF-8) are then exactly its own.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always encodes
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// errUnsupportedFloat is the error for a float encoding/json refuses.
var errUnsupportedFloat = errors.New("json: unsupported value: NaN or infinite float")

// appendFloat appends f as encoding/json's floatEncoder does: the
// shortest representation, in exponent form below 1e-6 and from 1e21 on,
// with a two-digit negative exponent shortened (1e-07 → 1e-7). NaN and
// infinities are an error, as there.
func (w *jsonWriter) appendFloat(f float64, bits int) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		w.fail(errUnsupportedFloat)
		w.buf = append(w.buf, "null"...)
		return
	}
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 {
		if bits == 64 && (abs < 1e-6 || abs >= 1e21) || bits == 32 && (float32(abs) < 1e-6 || float32(abs) >= 1e21) {
			format = 'e'
		}
	}
	b := strconv.AppendFloat(w.buf, f, format, -1, bits)
	if format == 'e' {
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	w.buf = b
}

// writeConfigFast writes what json.NewEncoder(out).Encode(cfg) writes,
// with enc, configEncoder's plan.
func writeConfigFast(out io.Writer, enc encFn, cfg *config.Config) error {
	w := &jsonWriter{buf: make([]byte, 0, jsonFlushAt+4<<10), w: out}
	enc(w, unsafe.Pointer(cfg))
	w.buf = append(w.buf, '\n')
	w.flush()
	return w.err
}
