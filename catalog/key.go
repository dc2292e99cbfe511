package catalog

import (
	"fmt"
	"slices"
	"strings"
	"unicode"

	"github.com/meridian-lb/meridian/config"
)

// Key identifies one Consul query: everything that changes what
// /v1/health/service/<service> returns. Pools whose selections differ only in
// health or meta filters share a Key, and therefore one blocking-query loop,
// because those filters are applied client-side.
//
// Key is comparable so it can index maps; build it with KeyOf so that tag
// order and duplicates never create two loops for one query.
type Key struct {
	Service    string
	Datacenter string // "" means the client's default datacenter
	// Tags is the sorted, de-duplicated tag list joined with ","; a "," or
	// "\" inside a tag is escaped with "\" so the list can be recovered
	// exactly (see TagList).
	Tags string
	Near string
}

// KeyOf returns the query key of a pool's Consul selection.
func KeyOf(sel config.ConsulSelect) Key {
	return Key{
		Service:    sel.Service,
		Datacenter: sel.Datacenter,
		Tags:       encodeTags(sel.Tags),
		Near:       sel.Near,
	}
}

// KeysOf returns the distinct keys of the given selections in a stable order,
// ready for Watcher.Want.
func KeysOf(sels []config.ConsulSelect) []Key {
	seen := make(map[Key]bool, len(sels))
	out := make([]Key, 0, len(sels))
	for _, s := range sels {
		k := KeyOf(s)
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	slices.SortFunc(out, compareKeys)
	return out
}

// TagList returns the tags of the key, in sorted order; Consul requires an
// instance to carry all of them.
func (k Key) TagList() []string { return decodeTags(k.Tags) }

// String renders the key for logs, metrics and readiness messages, e.g.
// "web@dc2[canary,v2]~_agent".
func (k Key) String() string {
	var b strings.Builder
	b.WriteString(k.Service)
	if k.Datacenter != "" {
		b.WriteString("@")
		b.WriteString(k.Datacenter)
	}
	if k.Tags != "" {
		b.WriteString("[")
		b.WriteString(k.Tags)
		b.WriteString("]")
	}
	if k.Near != "" {
		b.WriteString("~")
		b.WriteString(k.Near)
	}
	return b.String()
}

func compareKeys(a, b Key) int {
	if c := strings.Compare(a.Service, b.Service); c != 0 {
		return c
	}
	if c := strings.Compare(a.Datacenter, b.Datacenter); c != 0 {
		return c
	}
	if c := strings.Compare(a.Tags, b.Tags); c != 0 {
		return c
	}
	return strings.Compare(a.Near, b.Near)
}

// encodeTags sorts and de-duplicates tags, drops empty ones and joins them
// with ",", escaping "\" and "," so decodeTags can split them again.
func encodeTags(tags []string) string {
	if len(tags) == 0 {
		return ""
	}
	ts := make([]string, 0, len(tags))
	for _, t := range tags {
		if t != "" {
			ts = append(ts, t)
		}
	}
	slices.Sort(ts)
	ts = slices.Compact(ts)
	var b strings.Builder
	for i, t := range ts {
		if i > 0 {
			b.WriteByte(',')
		}
		for j := 0; j < len(t); j++ {
			if t[j] == ',' || t[j] == '\\' {
				b.WriteByte('\\')
			}
			b.WriteByte(t[j])
		}
	}
	return b.String()
}

// decodeTags splits an encodeTags string. It never fails: a trailing lone
// escape is kept literally, and empty elements are dropped.
func decodeTags(s string) []string {
	if s == "" {
		return nil
	}
	var (
		out []string
		cur strings.Builder
	)
	flush := func() {
		if cur.Len() > 0 {
			out = append(out, cur.String())
		}
		cur.Reset()
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
		case c == ',':
			flush()
		default:
			cur.WriteByte(c)
		}
	}
	flush()
	return out
}

// validKey reports why a key cannot be queried, or nil.
func validKey(k Key) error {
	if k.Service == "" {
		return fmt.Errorf("selection %s: empty service name", k)
	}
	if strings.ContainsAny(k.Service, "/?#") || strings.IndexFunc(k.Service, unicode.IsControl) >= 0 {
		return fmt.Errorf("selection %s: invalid service name %q", k, k.Service)
	}
	return nil
}
