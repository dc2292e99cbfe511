package configtest

import (
	"fmt"
	"strings"
)

// Big returns a config with n routes over n/10 pools and services (maglev
// pools of two endpoints with an HTTP check; routes matching a host, a path
// prefix and a header regex), the shape of a large edge: the reload budget
// is stated for 2,000 routes. head is written first (listeners, log); tag
// goes into every route's path, so two tags give two different tables.
func Big(n, tag int, head string) string {
	var b strings.Builder
	b.WriteString(head)
	b.WriteString("checks: {ready: {type: http, path: /healthz, interval: 2s, timeout: 1s}}\npools:\n")
	for i := range n / 10 {
		fmt.Fprintf(&b, "  p%d: {endpoints: [127.0.0.1:%d, 127.0.0.1:%d], check: ready, balance: maglev}\n", i, 10000+2*i, 10001+2*i)
	}
	b.WriteString("services:\n")
	for i := range n / 10 {
		fmt.Fprintf(&b, "  s%d: {pools: [p%d]}\n", i, i)
	}
	b.WriteString("routes:\n")
	for i := range n {
		fmt.Fprintf(&b, "  - {name: r%d, match: {host: h%d.example.com, path_prefix: /api/%d/%d, headers: {X-T: {regex: \"^t[0-9]+$\"}}}, service: s%d}\n", i, i%50, i, tag, i%(n/10))
	}
	return b.String()
}
