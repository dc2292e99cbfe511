package compress

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"

	"golang.org/x/net/http/httpguts"
)

// MaxMinSize bounds Spec.MinSize, and so the body a response may hold back
// while its length is unknown. A threshold above it buys nothing: a body
// that long always compresses with profit.
const MaxMinSize = 64 << 10

// Spec is a compression policy in plain values.
type Spec struct {
	// Encodings are the content codings offered, "zstd", "br" and "gzip",
	// in the server's order of preference, which breaks ties between
	// codings the client weighs equally.
	Encodings []string
	// MinSize is the smallest body compressed, in bytes (0 to MaxMinSize).
	MinSize int64
	// Types are the media types compressed: exact ("application/json"),
	// a whole top-level type ("text/*"), or "*/*". Parameters of the
	// response's Content-Type (charset) are ignored when matching.
	Types []string
}

// Policy is a compiled compression policy. It is immutable and safe for
// concurrent use; its encoder and buffer pools are its only state.
type Policy struct {
	codings  []*coding  // in preference order
	offered  []codingID // the same, for the negotiation
	minSize  int
	types    []string // exact media types, lower case
	prefixes []string // "text/" for "text/*", lower case
	anyType  bool     // "*/*"
	bufs     sync.Pool
}

// New compiles s. It fails on an empty, unknown or repeated encoding, a
// MinSize out of range, and an empty or malformed type list.
func New(s Spec) (*Policy, error) {
	if len(s.Encodings) == 0 {
		return nil, errors.New("compress: no encodings")
	}
	p := &Policy{minSize: int(s.MinSize)}
	for _, e := range s.Encodings {
		id, ok := parseCoding(e)
		if !ok {
			return nil, fmt.Errorf("compress: unknown encoding %q (zstd, br or gzip)", e)
		}
		if slices.Contains(p.offered, id) {
			return nil, fmt.Errorf("compress: encoding %q listed twice", e)
		}
		p.offered = append(p.offered, id)
		p.codings = append(p.codings, newCoding(id))
	}
	if s.MinSize < 0 || s.MinSize > MaxMinSize {
		return nil, fmt.Errorf("compress: min size %d out of range 0 to %d", s.MinSize, MaxMinSize)
	}
	if len(s.Types) == 0 {
		return nil, errors.New("compress: no media types")
	}
	for _, t := range s.Types {
		t = strings.ToLower(strings.TrimSpace(t))
		typ, sub, ok := strings.Cut(t, "/")
		switch {
		case !ok || !httpguts.ValidHeaderFieldName(typ) || !httpguts.ValidHeaderFieldName(sub) || (typ == "*" && sub != "*"):
			return nil, fmt.Errorf("compress: bad media type %q (type/subtype, type/* or */*, without parameters)", t)
		case typ == "*":
			p.anyType = true
		case sub == "*":
			p.prefixes = append(p.prefixes, typ+"/")
		default:
			p.types = append(p.types, t)
		}
	}
	if p.minSize > 0 {
		size := p.minSize
		p.bufs.New = func() any {
			b := make([]byte, 0, size)
			return &b
		}
	}
	return p, nil
}

// Wrap returns the writer the handler for r should write its response to,
// and a finish func to call exactly once when the handler has returned: it
// sends a body still held back, closes the encoder (writing the coding's
// trailer) and returns it to the pool, and reports the encoder's error.
//
// The choice of coding is made here, from r's Accept-Encoding; whether to
// use it is made when the response header is written (see the package
// doc). A HEAD request, a request with Cache-Control: no-transform, or one
// accepting no coding the policy offers (or without Accept-Encoding) still
// gets a writer, which compresses nothing but adds "Vary: Accept-Encoding"
// to responses of a compressible type, since another client would get them
// compressed. Only an Upgrade (WebSocket) or CONNECT request, whose response
// is never compressed, gets w itself and a no-op finish.
func (p *Policy) Wrap(w http.ResponseWriter, r *http.Request) (http.ResponseWriter, func() error) {
	if r.Method == http.MethodConnect || r.Header.Get("Upgrade") != "" {
		return w, noop
	}
	cw := &writer{rw: w, p: p}
	// The request's no-transform (RFC 9111 5.2.1.6) asks the same of the
	// response as the response's own; Caddy honours it too.
	if r.Method != http.MethodHead && !hasToken(r.Header["Cache-Control"], "no-transform") {
		if vals := r.Header["Accept-Encoding"]; len(vals) > 0 {
			a := parseAcceptEncoding(vals)
			if i := a.choose(p.offered); i >= 0 {
				cw.c = p.codings[i]
			}
		}
	}
	return cw, cw.finish
}

func noop() error { return nil }

// typeOK reports whether the media type of the Content-Type value ct is
// one the policy compresses. No Content-Type is not.
func (p *Policy) typeOK(ct string) bool {
	mt, _, _ := strings.Cut(ct, ";")
	mt = strings.Trim(mt, " \t")
	typ, sub, ok := strings.Cut(mt, "/")
	if !ok || typ == "" || sub == "" {
		return false
	}
	if p.anyType {
		return true
	}
	for _, t := range p.types {
		if strings.EqualFold(mt, t) {
			return true
		}
	}
	for _, pre := range p.prefixes {
		if len(mt) > len(pre) && strings.EqualFold(mt[:len(pre)], pre) {
			return true
		}
	}
	return false
}

// getBuf returns an empty buffer of capacity MinSize.
func (p *Policy) getBuf() *[]byte { return p.bufs.Get().(*[]byte) }

func (p *Policy) putBuf(b *[]byte) {
	*b = (*b)[:0]
	p.bufs.Put(b)
}
