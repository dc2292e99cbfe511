package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/meridian-lb/meridian/internal/app"
)

const explainHelp = `Ask a running instance, through its admin API (/api/v1/explain), how it would
handle one HTTP request or one DNS query, and why: the routes tried and the
condition each failed, the split arm, the service's pool order for the client's
region, the endpoint, and each candidate endpoint's health. Nothing is sent to
an upstream and no balancer state changes.

  meridian explain [-admin URL] [-method M] [-H 'Name: v']... [-cookie n=v]... [-client ADDR] HOST [PATH]
  meridian explain [-admin URL] -dns NAME [-type A] [-ecs CIDR] [-client ADDR]

PATH may carry a query (/search?q=x); HOST PATH may also be one URL
(http://www.example.com/search?q=x). Flags may follow the arguments.`

// stringList is a repeatable flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ", ") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

func cmdExplain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("explain", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: meridian explain [flags] HOST [PATH]\n       meridian explain [flags] -dns NAME\n\n%s\n\nFlags:\n", explainHelp)
		fs.PrintDefaults()
	}
	var q app.ExplainQuery
	var headers, cookies stringList
	fs.StringVar(&q.Admin, "admin", "http://127.0.0.1:9090", "the instance's admin API `URL` (listen.admin)")
	tokenFile := fs.String("token-file", "", "`file` holding the admin token (admin.token_file), when the API needs one")
	fs.StringVar(&q.Method, "method", "GET", "the request's `method`")
	fs.Var(&headers, "H", "a request header `'Name: value'` (repeatable)")
	fs.Var(&cookies, "cookie", "a request cookie `name=value` (repeatable)")
	fs.StringVar(&q.Client, "client", "", "the client `address` to explain for (default: this machine's address as the instance sees it)")
	fs.StringVar(&q.QName, "dns", "", "explain a DNS query for `name` instead of an HTTP request")
	fs.StringVar(&q.QType, "type", "A", "the DNS query `type`, with -dns")
	fs.StringVar(&q.ECS, "ecs", "", "the DNS query's EDNS Client Subnet (a `CIDR` or an address), with -dns")
	raw := fs.Bool("json", false, "print the API's JSON answer instead of a summary")
	timeout := fs.Duration("timeout", 10*time.Second, "how long to wait for the admin API")
	// Flags may come after HOST and PATH: parse, take one argument, repeat.
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return parseExit(err)
		}
		if fs.NArg() == 0 {
			break
		}
		pos, args = append(pos, fs.Arg(0)), fs.Args()[1:]
	}
	q.Headers, q.Cookies = headers, cookies
	if err := explainTarget(&q, fs, pos); err != nil {
		fmt.Fprintf(stderr, "meridian explain: %v\n", err)
		fs.Usage()
		return 2
	}
	if *tokenFile != "" {
		tok, err := app.ReadTokenFile(*tokenFile)
		if err != nil {
			fmt.Fprintf(stderr, "meridian explain: %v\n", err)
			return 1
		}
		q.Token = tok
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	answer, err := app.Explain(ctx, http.DefaultClient, q)
	if err != nil {
		fmt.Fprintf(stderr, "meridian explain: %v\n", err)
		return 1
	}
	if *raw {
		_, err = stdout.Write(answer)
	} else {
		err = app.WriteExplanation(stdout, q, answer)
	}
	if err != nil {
		fmt.Fprintf(stderr, "meridian explain: %v\n", err)
		return 1
	}
	return 0
}

// explainTarget reads the positional arguments into q: none for -dns,
// else HOST [PATH] or one URL; and refuses flags of the other form.
func explainTarget(q *app.ExplainQuery, fs *flag.FlagSet, pos []string) error {
	if q.DNS() {
		if len(pos) > 0 {
			return fmt.Errorf("-dns takes no HOST or PATH (got %q)", pos[0])
		}
		for _, f := range []string{"method", "H", "cookie"} {
			if flagSet(fs, f) {
				return fmt.Errorf("-%s is for HTTP requests, not with -dns", f)
			}
		}
		return nil
	}
	for _, f := range []string{"type", "ecs"} {
		if flagSet(fs, f) {
			return fmt.Errorf("-%s is for DNS queries: add -dns NAME", f)
		}
	}
	switch len(pos) {
	case 1:
		if strings.Contains(pos[0], "://") {
			u, err := url.Parse(pos[0])
			if err != nil || u.Host == "" {
				return fmt.Errorf("%q: want a URL such as http://www.example.com/path", pos[0])
			}
			q.Host, q.Path = u.Host, u.RequestURI()
			return nil
		}
		q.Host, q.Path = pos[0], "/"
	case 2:
		q.Host, q.Path = pos[0], pos[1]
	default:
		return fmt.Errorf("want HOST [PATH] (or -dns NAME), got %d arguments", len(pos))
	}
	return nil
}
