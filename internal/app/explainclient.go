package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/meridian-lb/meridian/dns"
	"github.com/meridian-lb/meridian/routing"
)

// ExplainQuery is one question `meridian explain` asks a running instance's
// admin API: about an HTTP request, or (QName set) about a DNS query.
type ExplainQuery struct {
	// Admin is the admin API's base URL; a bare host:port means http://.
	Admin string
	// Token is the bearer token; "" for an API without admin.token_file.
	Token string

	// The HTTP form: Host and Path (a request target, query included),
	// Method ("" is GET), Headers as "Name: value", Cookies as "name=value".
	Method, Host, Path string
	Headers, Cookies   []string

	// The DNS form: QName, QType ("" is A) and ECS (a CIDR or address).
	QName, QType, ECS string

	// Client is the client address to explain for; "" lets the server use
	// the caller's.
	Client string
}

// DNS reports whether q asks about a DNS query.
func (q *ExplainQuery) DNS() bool { return q.QName != "" }

// URL is the /api/v1/explain URL that asks q.
func (q *ExplainQuery) URL() (string, error) {
	base := q.Admin
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	u, err := url.Parse(base)
	if err != nil || u.Host == "" || u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("admin URL %q: want http://HOST:PORT", q.Admin)
	}
	v := url.Values{}
	set := func(k, val string) {
		if val != "" {
			v.Set(k, val)
		}
	}
	if q.DNS() {
		set("qname", q.QName)
		set("qtype", q.QType)
		set("ecs", q.ECS)
	} else {
		set("method", q.Method)
		set("host", q.Host)
		path := q.Path
		if path == "" {
			path = "/"
		}
		v.Set("path", path)
		v["header"] = q.Headers
		v["cookie"] = q.Cookies
	}
	set("client", q.Client)
	u.Path = strings.TrimRight(u.Path, "/") + "/api/v1/explain"
	u.RawQuery = v.Encode()
	return u.String(), nil
}

// ReadTokenFile reads a bearer token the way the server reads
// admin.token_file: the content without surrounding whitespace, and an
// empty file is an error, never "no token".
func ReadTokenFile(path string) (string, error) {
	tok, err := loadToken(path)
	if err != nil {
		return "", fmt.Errorf("token file %s", strings.TrimPrefix(err.Error(), "admin.token_file "))
	}
	return tok.value, nil
}

// maxExplainBytes bounds the answer read from the API; an explanation is
// bounded by the server (routing.DefaultExplainRoutes) far below it.
const maxExplainBytes = 16 << 20

// Explain asks the admin API q.Admin and returns its JSON answer. An answer
// other than 200 is an error with the API's message.
func Explain(ctx context.Context, hc *http.Client, q ExplainQuery) ([]byte, error) {
	u, err := q.URL()
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("explain request: %w", err)
	}
	if q.Token != "" {
		req.Header.Set("Authorization", "Bearer "+q.Token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("admin API: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxExplainBytes))
	if err != nil {
		return nil, fmt.Errorf("admin API %s: reading the answer: %w", q.Admin, err)
	}
	switch resp.StatusCode {
	case http.StatusOK:
		return body, nil
	case http.StatusUnauthorized:
		return nil, fmt.Errorf("admin API %s: unauthorized: pass the admin token with -token-file", q.Admin)
	case http.StatusNotFound:
		return nil, fmt.Errorf("admin API %s: no /api/v1/explain here (is this a Meridian admin address?)", q.Admin)
	}
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		return nil, fmt.Errorf("admin API %s: %s: %s", q.Admin, resp.Status, e.Error)
	}
	return nil, fmt.Errorf("admin API %s: %s: %s", q.Admin, resp.Status, strings.TrimSpace(string(body)))
}

// WriteExplanation writes a readable summary of raw, the answer Explain
// returned for q.
func WriteExplanation(w io.Writer, q ExplainQuery, raw []byte) error {
	if q.DNS() {
		var ex dns.ExplainResult
		if err := json.Unmarshal(raw, &ex); err != nil {
			return fmt.Errorf("reading the DNS explanation: %w", err)
		}
		writeDNSExplanation(w, &ex)
		return nil
	}
	var ex routing.HTTPExplanation
	if err := json.Unmarshal(raw, &ex); err != nil {
		return fmt.Errorf("reading the HTTP explanation: %w", err)
	}
	writeHTTPExplanation(w, &ex)
	return nil
}

func writeHTTPExplanation(w io.Writer, ex *routing.HTTPExplanation) {
	target := ex.Path
	if ex.Query != "" {
		target += "?" + ex.Query
	}
	client := ex.Client
	if client == "" {
		client = "an unknown client"
	}
	fmt.Fprintf(w, "%s %s%s from %s (table %s)\n", ex.Method, ex.Host, target, client, short(ex.TableVersion))
	if ex.Status != 0 {
		fmt.Fprintf(w, "=> %d: %s\n", ex.Status, ex.Outcome)
	} else {
		fmt.Fprintf(w, "=> %s\n", ex.Outcome)
	}
	if len(ex.Routes) > 0 {
		fmt.Fprintln(w, "\nroutes, in order:")
		width := 0
		for _, tr := range ex.Routes {
			width = max(width, len(tr.Name))
		}
		for _, tr := range ex.Routes {
			if tr.Matched {
				fmt.Fprintf(w, "  #%-3d %-*s  matched\n", tr.Index, width, tr.Name)
				continue
			}
			for i, m := range tr.Failed {
				if i == 0 {
					fmt.Fprintf(w, "  #%-3d %-*s  no: %s\n", tr.Index, width, tr.Name, m)
				} else {
					fmt.Fprintf(w, "%*s%s\n", 13+width, "", m) // under the first reason
				}
			}
		}
		if ex.RoutesOmitted > 0 {
			fmt.Fprintf(w, "  (%d more routes tried, not listed)\n", ex.RoutesOmitted)
		}
	}
	if len(ex.Policies) > 0 {
		fmt.Fprintf(w, "\npolicies of route %s, in order (any may answer itself):\n", ex.Route)
		for _, p := range ex.Policies {
			fmt.Fprintf(w, "  %-13s %s\n", p.Step, p.Detail)
		}
	}
	if sp := ex.Split; sp != nil {
		fmt.Fprintf(w, "\nsplit of route %s:\n", ex.Route)
		for _, ru := range sp.Rules {
			if ru.Matched {
				fmt.Fprintf(w, "  rule split[%d] -> %s: matched\n", ru.Entry, ru.Service)
				continue
			}
			var why []string
			for _, m := range ru.Failed {
				why = append(why, m.String())
			}
			fmt.Fprintf(w, "  rule split[%d] -> %s: no: %s\n", ru.Entry, ru.Service, strings.Join(why, "; "))
		}
		var ws []string
		for _, a := range sp.Weights {
			ws = append(ws, fmt.Sprintf("split[%d] %s %d (%g%%, [%d, %d))", a.Entry, a.Service, a.Weight, a.Percent, a.From, a.To))
		}
		if len(ws) > 0 {
			fmt.Fprintf(w, "  weights: %s\n", strings.Join(ws, ", "))
		}
		fmt.Fprintf(w, "  => %s: %s\n", orDash(sp.Service), sp.Reason)
	}
	if s := ex.Service; s != nil {
		fmt.Fprintf(w, "\nservice %s (%s): %s\n", s.Name, s.Policy, s.Reason)
		for _, p := range s.Pools {
			writePool(w, &p)
		}
	}
	if m := ex.Mirror; m != nil {
		next := "no"
		if m.Sampled {
			next = "yes"
		}
		fmt.Fprintf(w, "\nmirror: %g%% to service %s; the next request is mirrored: %s\n", m.Percent, m.Service, next)
	}
	if len(ex.Notes) > 0 {
		fmt.Fprintln(w, "\nnotes:")
		for _, n := range ex.Notes {
			fmt.Fprintf(w, "  %s\n", n)
		}
	}
}

func writePool(w io.Writer, p *routing.PoolExplanation) {
	region := ""
	if p.Region != "" {
		region = "region " + p.Region + ", "
	}
	failOpen := ""
	if p.FailOpen {
		failOpen = ", fails open"
	}
	fmt.Fprintf(w, "  pool %s (%s%s%s): %s\n", p.Name, region, p.Balance, failOpen, p.Result)
	if pk := p.Pick; pk != nil {
		fmt.Fprintf(w, "    pick: %s\n", pk.Reason)
		if len(pk.Chances) > 1 {
			var cs []string
			for _, c := range pk.Chances {
				cs = append(cs, fmt.Sprintf("%s %g%%", c.Endpoint, c.Percent))
			}
			fmt.Fprintf(w, "    chances: %s\n", strings.Join(cs, ", "))
		}
	}
	width := 0
	for _, e := range p.Endpoints {
		width = max(width, len(e.Address))
	}
	for _, e := range p.Endpoints {
		mark := " "
		if p.Pick != nil && e.Address == p.Pick.Endpoint {
			mark = "*"
		}
		avail := "available"
		if !e.Available {
			avail = "unavailable"
		}
		line := fmt.Sprintf("   %s %-*s  %-11s %-12s in flight %d", mark, width, e.Address, e.State, avail, e.InFlight)
		if e.Reason != "" {
			line += "  " + e.Reason
		}
		fmt.Fprintln(w, line)
	}
}

func writeDNSExplanation(w io.Writer, ex *dns.ExplainResult) {
	from := ex.Client
	if ex.ECS != "" {
		from += ", ECS " + ex.ECS
	}
	fmt.Fprintf(w, "%s %s from %s\n", ex.QName, ex.QType, from)
	aa := ""
	if ex.Authoritative {
		aa = ", authoritative"
	}
	zone := ""
	if ex.Zone != "" {
		zone = fmt.Sprintf(", zone %s serial %d", ex.Zone, ex.Serial)
	}
	fmt.Fprintf(w, "=> %s%s%s\n", ex.Rcode, aa, zone)
	if l := ex.Location; l != nil {
		fmt.Fprintf(w, "\nlocation: %s (from %s) is in region %s (%s, /%d", l.Address, l.From, orDash(l.Region), l.Source, l.Prefix)
		if l.Country != "" || l.Continent != "" {
			fmt.Fprintf(w, ", country %s, continent %s", orDash(l.Country), orDash(l.Continent))
		}
		fmt.Fprintln(w, ")")
	}
	if ex.Scope != nil {
		fmt.Fprintf(w, "ECS scope: /%d\n", *ex.Scope)
	}
	for _, sec := range []struct {
		name string
		rrs  []string
	}{{"answer", ex.Answer}, {"authority", ex.Authority}, {"additional", ex.Additional}} {
		if len(sec.rrs) == 0 {
			continue
		}
		fmt.Fprintf(w, "\n%s:\n", sec.name)
		for _, rr := range sec.rrs {
			fmt.Fprintf(w, "  %s\n", rr)
		}
	}
	for _, s := range ex.Steered {
		region := ""
		if s.Region != "" {
			region = ", region " + s.Region
		}
		fmt.Fprintf(w, "\nsteered %s %s: service %s (%s%s): %s\n", s.Name, s.Type, s.Service, s.Policy, region, s.Outcome)
		for _, p := range s.Pools {
			used := ""
			if p.Used {
				used = " (used)"
			}
			fmt.Fprintf(w, "  pool %s%s: available [%s], unavailable [%s]\n", p.Name, used, strings.Join(p.Available, " "), strings.Join(p.Unavailable, " "))
		}
	}
	if len(ex.Notes) > 0 {
		fmt.Fprintln(w, "\nnotes:")
		for _, n := range ex.Notes {
			fmt.Fprintf(w, "  %s\n", n)
		}
	}
}

func short(version string) string {
	if len(version) > 12 {
		return version[:12]
	}
	return orDash(version)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
