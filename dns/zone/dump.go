package zone

import (
	"fmt"
	"io"
	"slices"
	"strings"

	mdns "github.com/miekg/dns"
)

// Dump writes the zone as canonical text, for routing.Table.String: the SOA,
// transfer settings, then every name in canonical order with its records,
// steered records (with their pools' addresses) and glue.
func (z *Zone) Dump(w io.Writer) {
	fmt.Fprintf(w, "zone %s negative_ttl=%d degraded_ttl=%d\n", z.Name, z.NegativeTTL, z.DegradedTTL)
	fmt.Fprintf(w, "  soa %s\n", rrText(&z.soa))
	for _, p := range z.TransferAllow {
		fmt.Fprintf(w, "  transfer allow %s\n", p)
	}
	for _, a := range z.Notify {
		fmt.Fprintf(w, "  transfer notify %s\n", a)
	}
	if z.Keys != nil {
		fmt.Fprintf(w, "  dnssec keys %s\n", z.Keys)
	}
	names := make([]string, 0, len(z.Nodes))
	for name := range z.Nodes {
		names = append(names, name)
	}
	slices.SortFunc(names, compareNames)
	for _, name := range names {
		n := z.Nodes[name]
		switch {
		case n.Cut:
			fmt.Fprintf(w, "  cut %s\n", name)
		case n.Wildcard:
			fmt.Fprintf(w, "  wildcard %s\n", name)
		case n.Empty():
			fmt.Fprintf(w, "  empty %s\n", name)
		}
		for _, set := range n.Sets {
			for _, rr := range set.RRs {
				fmt.Fprintf(w, "  rr %s\n", rrText(rr))
			}
		}
		for _, s := range n.Steered {
			s.dump(w)
		}
		for _, rr := range n.Glue {
			fmt.Fprintf(w, "    glue %s\n", rrText(rr))
		}
	}
}

func (s *Steered) dump(w io.Writer) {
	pools := make([]string, 0, len(s.Pools))
	for _, p := range s.Pools {
		addrs := make([]string, 0, len(s.Targets[p]))
		for _, t := range s.Targets[p] {
			addrs = append(addrs, strings.Join(t.Addresses(), "+"))
		}
		pools = append(pools, fmt.Sprintf("%s[%s]", p, strings.Join(addrs, " ")))
	}
	fmt.Fprintf(w, "  steered %s %s service=%s ttl=%d degraded_ttl=%d max_answers=%d on_all_down=%s pools=%s\n",
		s.Name, mdns.TypeToString[s.Type], s.Service, s.TTL, s.DegradedTTL, s.MaxAnswers, s.OnAllDown, strings.Join(pools, ","))
	for _, rr := range s.Fallback {
		fmt.Fprintf(w, "    fallback %s\n", rrText(rr))
	}
}

// rrText is an RR's zone-file text with tabs turned into spaces, for dumps.
func rrText(rr mdns.RR) string { return strings.ReplaceAll(rr.String(), "\t", " ") }
