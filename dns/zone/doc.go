// Package zone compiles the DNS zones of a config into the structures the
// DNS server answers from: every owner name in a map, static RRsets built
// once as miekg/dns records, steered records bound to their service's
// endpoints with one pre-built record per address, wildcards indexed by
// their parent, and delegation points marked. Answering then does map
// lookups and appends and never parses.
//
// A zone with a dnssec: block is compiled with its keys (package
// dns/dnssec reads them from key_dir, or generates the first one there:
// the one thing compiling writes), their DNSKEY, CDS and CDNSKEY RRsets at
// the apex, and what online signing needs prepared: each RRset's content
// key for the signature cache, each name's types for NSEC bitmaps, and
// the names in canonical order. Each NS, MX and SRV set also points to the
// static addresses of its in-zone targets, for the additional section.
//
// It is also the only code that reads record text: a zone's problems (a bad
// value, a CNAME beside other data, two steered records of one type at a
// name, a service that does not exist) are found by compiling it, each
// reported by its config path (zones[0].records[3].values[1]), so that
// config.Config.Locate gives it the line it has in the file. Compile runs
// in routing.Compile on every reload; Check runs it beside the config's
// own rules for meridian validate.
//
// Dependencies: config, and miekg/dns, which outside package dns and its
// children only the health DNS probe imports (a move to another DNS
// library is a change here and in dns). Steered records see the services
// they name through Services, which routing implements, so routing can hold
// the compiled zones in its Table without this package importing routing.
//
// Concurrency: a compiled Zone is read by any number of goroutines. Only
// the serial (SetSerial, atomic) and the per-record rotation counters
// (Steered.Next, atomic) change after Compile returns.
package zone
