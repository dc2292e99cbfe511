package history

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"

	mdns "github.com/miekg/dns"

	"github.com/meridian-lb/meridian/config"
	"github.com/meridian-lb/meridian/dns"
	"github.com/meridian-lb/meridian/dns/zone"
	"github.com/meridian-lb/meridian/routing"
)

// Report is what changes from one compiled table to another, for
// `meridian diff`: the sections of the canonical text form
// ((*routing.Table).String) that were added, removed or changed, the order
// of the routes, and the DNS answers of the steered records per region.
//
// It is computed from the canonical text section by section: a section is
// a line that starts in the first column ("pool eu ...", "service web ...",
// "route www ...", "zone example.test. ...") and the indented lines under
// it, named by its first two words. So every feature that shows in the
// canonical text shows here, without this package knowing it. Some lines
// are read more closely, to say what changed in an operator's words: the
// key=value pairs of a section's first line, a pool's endpoint lines and a
// route's weighted split arms; every other changed line is shown as it is.
type Report struct {
	Sections []SectionChange `json:"sections,omitempty"`
	// RouteOrder is set when routes both tables have are matched in
	// another order (the first match wins, so order matters).
	RouteOrder *OrderChange `json:"route_order,omitempty"`
	// DNS lists, per steered record and region, the answers that differ.
	DNS []DNSChange `json:"dns,omitempty"`
	// Notes say what the comparison could not see.
	Notes []string `json:"notes,omitempty"`
}

// SectionChange is one section added, removed or changed.
type SectionChange struct {
	Kind   string `json:"kind"` // pool, service, route, zone, pending, ...
	Name   string `json:"name"`
	Change string `json:"change"` // added, removed, changed
	// Details say what changed in the section's attributes, endpoints and
	// split weights.
	Details []string `json:"details,omitempty"`
	// Removed and Added are the section's other lines only in the old or
	// only in the new table (all of its lines for a section added).
	Removed []string `json:"removed,omitempty"`
	Added   []string `json:"added,omitempty"`
}

// OrderChange is the routes' order before and after, of the routes in
// both tables.
type OrderChange struct {
	Old []string `json:"old"`
	New []string `json:"new"`
}

// DNSChange is one steered record's answer for clients of one region
// ("*" when it does not depend on the region) in the old and new table.
type DNSChange struct {
	Record string `json:"record"` // "www.example.test. A"
	Region string `json:"region"`
	Old    string `json:"old"`
	New    string `json:"new"`
}

// Empty reports whether the tables serve the same.
func (r *Report) Empty() bool {
	return len(r.Sections) == 0 && r.RouteOrder == nil && len(r.DNS) == 0
}

// section is one section of the canonical text.
type section struct {
	kind, name string
	head       string
	body       []string
}

func (s *section) key() string { return s.kind + " " + s.name }

// sections splits the canonical text into its sections, in order.
func sections(text string) []*section {
	var out []*section
	seen := map[string]int{}
	for _, line := range strings.Split(text, "\n") {
		if line == "" {
			continue
		}
		if line[0] == ' ' && len(out) > 0 {
			cur := out[len(out)-1]
			cur.body = append(cur.body, line)
			continue
		}
		s := &section{head: strings.TrimSpace(line)}
		s.kind, s.name, _ = strings.Cut(s.head, " ")
		if s.kind == "pending" {
			// "pending <reason>": the whole reason names it.
		} else {
			s.name, _, _ = strings.Cut(s.name, " ")
		}
		if n := seen[s.key()]; n > 0 {
			s.name += "#" + strconv.Itoa(n+1) // never in a valid table; kept apart anyway
		}
		seen[s.key()]++
		out = append(out, s)
	}
	return out
}

// Compare reports what changes from table a to table b. The DNS answers
// are computed as if every endpoint were up: tables compiled for a
// comparison have no health checks (see DNSAnswers).
func Compare(a, b *routing.Table) *Report {
	r := &Report{}
	old, cur := sections(a.String()), sections(b.String())
	oldBy := map[string]*section{}
	for _, s := range old {
		oldBy[s.key()] = s
	}
	curBy := map[string]*section{}
	for _, s := range cur {
		curBy[s.key()] = s
	}
	// Kinds in the order the canonical text has them; within a kind,
	// the new table's order, then what was removed in the old order.
	var kinds []string
	for _, s := range append(slices.Clone(cur), old...) {
		if !slices.Contains(kinds, s.kind) {
			kinds = append(kinds, s.kind)
		}
	}
	for _, k := range kinds {
		for _, s := range cur {
			if s.kind != k {
				continue
			}
			if o := oldBy[s.key()]; o == nil {
				r.Sections = append(r.Sections, SectionChange{Kind: s.kind, Name: s.name, Change: "added", Added: append([]string{s.head}, trimAll(s.body)...)})
			} else if c, ok := changed(o, s); ok {
				r.Sections = append(r.Sections, c)
			}
		}
		for _, s := range old {
			if s.kind == k && curBy[s.key()] == nil {
				r.Sections = append(r.Sections, SectionChange{Kind: s.kind, Name: s.name, Change: "removed", Removed: []string{s.head}})
			}
		}
	}
	r.RouteOrder = routeOrder(a, b)
	r.DNS = dnsChanges(a, b)
	return r
}

func trimAll(lines []string) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = strings.TrimSpace(l)
	}
	return out
}

// changed compares one section of both tables.
func changed(o, n *section) (SectionChange, bool) {
	if o.head == n.head && slices.Equal(o.body, n.body) {
		return SectionChange{}, false
	}
	c := SectionChange{Kind: n.kind, Name: n.name, Change: "changed"}
	c.Details = attrChanges(o.head, n.head)
	ob, nb := o.body, n.body
	switch n.kind {
	case "pool":
		var d []string
		d, ob, nb = endpointChanges(ob, nb)
		c.Details = append(c.Details, d...)
	case "route":
		var d []string
		d, ob, nb = splitChanges(ob, nb)
		c.Details = append(c.Details, d...)
	case "service":
		c.Details = serviceWeights(o.head, n.head, c.Details)
	}
	c.Removed, c.Added = lineChanges(ob, nb)
	if len(c.Details) == 0 && len(c.Removed) == 0 && len(c.Added) == 0 {
		c.Details = []string{"the same lines in another order"}
	}
	return c, true
}

// lineChanges are the lines only in a and only in b, as multisets, in
// their order.
func lineChanges(a, b []string) (removed, added []string) {
	count := map[string]int{}
	for _, l := range b {
		count[l]++
	}
	for _, l := range a {
		if count[l] > 0 {
			count[l]--
			continue
		}
		removed = append(removed, strings.TrimSpace(l))
	}
	count = map[string]int{}
	for _, l := range a {
		count[l]++
	}
	for _, l := range b {
		if count[l] > 0 {
			count[l]--
			continue
		}
		added = append(added, strings.TrimSpace(l))
	}
	return removed, added
}

// attr is one key=value pair of a line.
type attr struct{ key, value string }

// attrs reads the key=value pairs of a canonical line (values may be Go
// quoted strings or [bracketed lists]); words without "=" are skipped.
func attrs(line string) []attr {
	var out []attr
	for s := strings.TrimSpace(line); s != ""; s = strings.TrimLeft(s, " ") {
		word := s
		if i := strings.IndexByte(s, ' '); i >= 0 {
			word = s[:i]
		}
		k, v, ok := strings.Cut(word, "=")
		switch {
		case ok && strings.HasPrefix(v, `"`):
			if q, err := strconv.QuotedPrefix(s[len(k)+1:]); err == nil {
				v = q
				word = k + "=" + q
			}
		case ok && strings.HasPrefix(v, "["):
			if j := strings.IndexByte(s, ']'); j > len(k) {
				word = s[:j+1]
				v = word[len(k)+1:]
			}
		}
		if ok && k != "" {
			out = append(out, attr{k, v})
		}
		s = s[len(word):]
	}
	return out
}

// attrChanges says which key=value pairs of a section's first line
// changed, appeared or went away.
func attrChanges(oldLine, newLine string) []string {
	if oldLine == newLine {
		return nil
	}
	oa, na := attrs(oldLine), attrs(newLine)
	get := func(as []attr, k string) (string, bool) {
		for _, a := range as {
			if a.key == k {
				return a.value, true
			}
		}
		return "", false
	}
	var out []string
	for _, a := range na {
		if v, ok := get(oa, a.key); !ok {
			out = append(out, fmt.Sprintf("%s: (none) → %s", a.key, a.value))
		} else if v != a.value {
			out = append(out, fmt.Sprintf("%s: %s → %s", a.key, v, a.value))
		}
	}
	for _, a := range oa {
		if _, ok := get(na, a.key); !ok {
			out = append(out, fmt.Sprintf("%s: %s → (none)", a.key, a.value))
		}
	}
	if len(out) == 0 {
		out = append(out, fmt.Sprintf("%s → %s", oldLine, newLine))
	}
	return out
}

// endpointChanges reads the pools' "endpoint ADDR k=v..." lines: endpoints
// added, removed, and changed (weight, region, source). It returns the
// other lines for a line diff.
func endpointChanges(a, b []string) (details, restA, restB []string) {
	type ep struct{ addr, rest string }
	split := func(lines []string) (eps []ep, rest []string) {
		for _, l := range lines {
			t := strings.TrimSpace(l)
			if after, ok := strings.CutPrefix(t, "endpoint "); ok {
				addr, attrs, _ := strings.Cut(after, " ")
				eps = append(eps, ep{addr, attrs})
				continue
			}
			rest = append(rest, l)
		}
		return eps, rest
	}
	oe, restA := split(a)
	ne, restB := split(b)
	find := func(eps []ep, addr string) (ep, bool) {
		for _, e := range eps {
			if e.addr == addr {
				return e, true
			}
		}
		return ep{}, false
	}
	for _, e := range ne {
		if o, ok := find(oe, e.addr); !ok {
			details = append(details, fmt.Sprintf("endpoint %s added (%s)", e.addr, e.rest))
		} else if o.rest != e.rest {
			for _, c := range attrChanges(o.rest, e.rest) {
				details = append(details, fmt.Sprintf("endpoint %s %s", e.addr, c))
			}
		}
	}
	for _, e := range oe {
		if _, ok := find(ne, e.addr); !ok {
			details = append(details, fmt.Sprintf("endpoint %s removed", e.addr))
		}
	}
	return details, restA, restB
}

// splitChanges reads a route's "split[i] weight=W -> SERVICE" lines and
// says how each service's share of the weighted arms moves. The arm lines
// are not repeated as a line diff when their shares say it all.
func splitChanges(a, b []string) (details, restA, restB []string) {
	read := func(lines []string) (w map[string]int, order []string, total int, rest []string) {
		w = map[string]int{}
		for _, l := range lines {
			t := strings.TrimSpace(l)
			if strings.HasPrefix(t, "split[") && strings.Contains(t, " weight=") {
				_, after, _ := strings.Cut(t, " weight=")
				ws, svc, ok := strings.Cut(after, " -> ")
				n, err := strconv.Atoi(ws)
				if ok && err == nil {
					if _, seen := w[svc]; !seen {
						order = append(order, svc)
					}
					w[svc] += n
					total += n
					continue
				}
			}
			rest = append(rest, l)
		}
		return w, order, total, rest
	}
	ow, oorder, ot, ra := read(a)
	nw, norder, nt, rb := read(b)
	share := func(w map[string]int, svc string, total int) string {
		n, ok := w[svc]
		if !ok || total == 0 {
			return "0%"
		}
		return fmt.Sprintf("%s%% (weight %d)", strconv.FormatFloat(float64(n)*100/float64(total), 'f', -1, 64), n)
	}
	if len(ow) == 0 && len(nw) == 0 {
		return nil, a, b
	}
	var parts []string
	for _, svc := range append(slices.Clone(norder), oorder...) {
		if slices.Contains(parts, svc) {
			continue
		}
		parts = append(parts, svc)
	}
	var moved []string
	for _, svc := range parts {
		o, n := share(ow, svc, ot), share(nw, svc, nt)
		if o != n {
			moved = append(moved, fmt.Sprintf("%s %s → %s", svc, o, n))
		}
	}
	if len(moved) > 0 {
		details = append(details, "split: "+strings.Join(moved, ", "))
	}
	if len(moved) == 0 && (!slices.Equal(oorder, norder)) {
		// Same shares, arms reordered or renumbered: show the lines.
		return details, a, b
	}
	return details, ra, rb
}

// serviceWeights adds each pool's share to a weighted service's changed
// weights ("weights: [90 10] → [75 25]" alone says little).
func serviceWeights(oldHead, newHead string, details []string) []string {
	shares := func(line string) map[string]string {
		var pools []string
		var weights []int
		for _, a := range attrs(line) {
			switch a.key {
			case "pools":
				pools = strings.Split(a.value, ",")
			}
		}
		if i := strings.Index(line, " weights=["); i >= 0 {
			ws, _, _ := strings.Cut(line[i+len(" weights=["):], "]")
			for _, f := range strings.Fields(ws) {
				n, _ := strconv.Atoi(f)
				weights = append(weights, n)
			}
		}
		if len(weights) != len(pools) {
			return nil
		}
		total := 0
		for _, w := range weights {
			total += w
		}
		out := map[string]string{}
		for i, p := range pools {
			if total > 0 {
				out[p] = strconv.FormatFloat(float64(weights[i])*100/float64(total), 'f', -1, 64) + "%"
			}
		}
		return out
	}
	o, n := shares(oldHead), shares(newHead)
	if o == nil || n == nil || !strings.Contains(oldHead+newHead, "policy="+string(config.PolicyWeighted)) {
		return details
	}
	names := map[string]bool{}
	for p := range o {
		names[p] = true
	}
	for p := range n {
		names[p] = true
	}
	var moved []string
	for _, p := range slices.Sorted(maps.Keys(names)) {
		ov, nv := o[p], n[p]
		if ov == "" {
			ov = "0%"
		}
		if nv == "" {
			nv = "0%"
		}
		if ov != nv {
			moved = append(moved, fmt.Sprintf("%s %s → %s", p, ov, nv))
		}
	}
	if len(moved) > 0 {
		details = append(details, "shares: "+strings.Join(moved, ", "))
	}
	return details
}

// routeOrder reports the routes both tables have when they are in another
// order.
func routeOrder(a, b *routing.Table) *OrderChange {
	in := func(t *routing.Table) map[string]bool {
		m := map[string]bool{}
		for _, r := range t.Routes {
			m[r.Name] = true
		}
		return m
	}
	ina, inb := in(a), in(b)
	var oa, ob []string
	for _, r := range a.Routes {
		if inb[r.Name] {
			oa = append(oa, r.Name)
		}
	}
	for _, r := range b.Routes {
		if ina[r.Name] {
			ob = append(ob, r.Name)
		}
	}
	if slices.Equal(oa, ob) {
		return nil
	}
	return &OrderChange{Old: oa, New: ob}
}

// DNSAnswers says, for every steered record of t and every region (the
// regions t knows, dns.Regions, and more), what clients placed in the
// region are answered: the record's key ("www.example.test. A") to region
// ("*" when the answer does not depend on it) to a description such as
// "pool eu: 192.0.2.1 192.0.2.2".
//
// The pool is chosen by the DNS server's own steering code
// (dns.RegionAnswers, which places the client in the region directly),
// with t's health as it is: nil for a table compiled only to compare,
// where every endpoint counts as up. The answer lists every address of
// that pool the record can give, sorted, rather than the rotated subset
// one query gets. A weighted service answers from a pool drawn by weight,
// so its description lists each pool with its share instead.
func DNSAnswers(t *routing.Table, regions []string) map[string]map[string]string {
	out := map[string]map[string]string{}
	for _, z := range t.Zones {
		for _, v := range dns.RegionAnswers(t, z, regions) {
			s := steeredByName(z, v.Name, v.Type)
			key := v.Name + " " + v.Type
			m := map[string]string{}
			out[key] = m
			svc := t.Services[v.Service]
			if svc != nil && svc.Policy == config.PolicyWeighted && s != nil {
				m["*"] = weightedAnswer(svc, s)
				continue
			}
			for _, ra := range v.Regions {
				m[ra.Region] = describe(s, ra)
			}
		}
	}
	return out
}

func steeredByName(z *zone.Zone, name, typ string) *zone.Steered {
	for _, s := range z.Steered {
		if s.Name == name && mdns.TypeToString[s.Type] == typ {
			return s
		}
	}
	return nil
}

// targets lists the addresses of pool in record s, sorted.
func targets(s *zone.Steered, pool string) []string {
	var out []string
	if s == nil {
		return nil
	}
	for _, t := range s.Targets[pool] {
		out = append(out, t.IP.String())
	}
	slices.Sort(out)
	return out
}

func describe(s *zone.Steered, ra dns.RegionAnswer) string {
	outcome, _, _ := strings.Cut(ra.Outcome, ":")
	addrs := targets(s, ra.Pool)
	if len(addrs) == 0 {
		addrs = slices.Sorted(slices.Values(ra.Answer))
	}
	var b strings.Builder
	switch {
	case ra.Pool != "" && outcome == "available":
		fmt.Fprintf(&b, "pool %s:", ra.Pool)
	case ra.Pool != "":
		fmt.Fprintf(&b, "%s, pool %s:", outcome, ra.Pool)
	case outcome != "":
		b.WriteString(outcome)
	default:
		b.WriteString("no answer")
	}
	for _, a := range addrs {
		b.WriteString(" " + a)
	}
	return b.String()
}

func weightedAnswer(svc *routing.Service, s *zone.Steered) string {
	total := 0
	for _, w := range svc.Weights {
		total += w
	}
	var parts []string
	for i, p := range svc.Pools {
		w := 0
		if i < len(svc.Weights) {
			w = svc.Weights[i]
		}
		share := "0%"
		if total > 0 {
			share = strconv.FormatFloat(float64(w)*100/float64(total), 'f', -1, 64) + "%"
		}
		addrs := strings.Join(targets(s, p.Name), " ")
		if addrs == "" {
			addrs = "no address"
		}
		parts = append(parts, fmt.Sprintf("pool %s %s: %s", p.Name, share, addrs))
	}
	return "weighted: " + strings.Join(parts, "; ")
}

// dnsChanges compares the answers per steered record and region. The
// regions are those either table knows; a record whose answer does not
// depend on the region in one table and does in the other is compared
// region by region.
func dnsChanges(a, b *routing.Table) []DNSChange {
	var regions []string
	for _, r := range append(dns.Regions(a), dns.Regions(b)...) {
		if !slices.Contains(regions, r) {
			regions = append(regions, r)
		}
	}
	slices.Sort(regions)
	oa, na := DNSAnswers(a, regions), DNSAnswers(b, regions)
	var keys []string
	for k := range oa {
		keys = append(keys, k)
	}
	for k := range na {
		if _, ok := oa[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	const none = "(no such record)"
	var out []DNSChange
	for _, k := range keys {
		om, nm := oa[k], na[k]
		perRegion := !anyRegion(om) || !anyRegion(nm)
		look := func(m map[string]string, region string) string {
			if m == nil {
				return none
			}
			if v, ok := m[region]; ok {
				return v
			}
			return m["*"]
		}
		if !perRegion {
			if o, n := look(om, "*"), look(nm, "*"); o != n {
				out = append(out, DNSChange{Record: k, Region: "*", Old: o, New: n})
			}
			continue
		}
		for _, region := range regions {
			if o, n := look(om, region), look(nm, region); o != n {
				out = append(out, DNSChange{Record: k, Region: region, Old: o, New: n})
			}
		}
	}
	return out
}

// anyRegion reports whether m, a record's answers by region, has one
// answer for every region (or no record at all).
func anyRegion(m map[string]string) bool {
	_, star := m["*"]
	return m == nil || len(m) == 1 && star
}

// Write prints the report for an operator: each change with what it
// means, then the DNS answers that move.
func (r *Report) Write(w io.Writer) error {
	ew := &errWriter{w: w}
	if r.Empty() {
		ew.printf("no change to what is served\n")
	}
	kind := ""
	for _, c := range r.Sections {
		if c.Kind != kind {
			kind = c.Kind
			ew.printf("%s:\n", plural(kind))
		}
		mark := map[string]string{"added": "+", "removed": "-", "changed": "~"}[c.Change]
		ew.printf("  %s %s %s (%s)\n", mark, c.Kind, c.Name, c.Change)
		for _, d := range c.Details {
			ew.printf("      %s\n", d)
		}
		for _, l := range c.Removed {
			ew.printf("      - %s\n", l)
		}
		for _, l := range c.Added {
			ew.printf("      + %s\n", l)
		}
	}
	if o := r.RouteOrder; o != nil {
		ew.printf("route order (the first match wins):\n      %s → %s\n", strings.Join(o.Old, ", "), strings.Join(o.New, ", "))
	}
	if len(r.DNS) > 0 {
		ew.printf("DNS answers per region (every endpoint counted as up):\n")
		for _, d := range r.DNS {
			ew.printf("  %s  region %s:\n      - %s\n      + %s\n", d.Record, d.Region, d.Old, d.New)
		}
	}
	for _, n := range r.Notes {
		ew.printf("note: %s\n", n)
	}
	return ew.err
}

func plural(kind string) string {
	switch kind {
	case "pending":
		return "pending"
	case "service":
		return "services"
	}
	return kind + "s"
}

type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) printf(format string, args ...any) {
	if e.err == nil {
		_, e.err = fmt.Fprintf(e.w, format, args...)
	}
}
