package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/meridian-lb/meridian/config"
	"github.com/meridian-lb/meridian/internal/app"
	"github.com/meridian-lb/meridian/internal/history"
	"github.com/meridian-lb/meridian/routing"
)

const diffHelp = `Show what a candidate config would change, before anything is applied: versus
the config a running instance serves (-against http://HOST:PORT, its admin API,
which must answer /api/v1/config/history), or versus another config file
(-against FILE).

First what changes in what is served, from the two compiled tables: routes
added, removed and changed (split weights as shares), the route order, pools
and their endpoints, services, zones, and the DNS answer of each steered
record for each region the configs name (every endpoint counted as up: no
health check runs here). Then the unified diff of the two files.

The candidate must pass "meridian validate". Exit status as diff(1): 0 when the
two are the same, 1 when they differ (even only in comments: the first part
then says nothing served changes), 2 on trouble.`

func cmdDiff(args []string, stdout, stderr io.Writer) int {
	fs, path := newFlags("diff", diffHelp, stderr)
	if f := fs.Lookup("config"); f != nil {
		f.Usage = "the candidate config `file`"
	}
	against := fs.String("against", "http://127.0.0.1:9090", "the running instance's admin API `URL`, or a config file to compare with")
	tokenFile := fs.String("token-file", "", "`file` holding the admin token (admin.token_file), when the API needs one")
	timeout := fs.Duration("timeout", 10*time.Second, "how long to wait for the admin API")
	if err := fs.Parse(args); err != nil {
		return parseExit(err)
	}
	if !noArgs(fs, stderr) {
		return 2
	}
	fail := func(format string, args ...any) int {
		fmt.Fprintf(stderr, "meridian diff: "+format+"\n", args...)
		return 2
	}
	data, _, err := config.ReadFile(*path)
	if err != nil {
		return fail("%v", err)
	}
	cand, err := app.CheckTable(*path, data)
	if err != nil {
		return problems(stderr, *path, err)
	}

	var (
		oldRaw   []byte
		oldLabel string
		old      *routing.Table
		notes    []string
	)
	if isAdminURL(*against) {
		token := ""
		if *tokenFile != "" {
			if token, err = app.ReadTokenFile(*tokenFile); err != nil {
				return fail("%v", err)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), *timeout)
		live, err := app.FetchConfig(ctx, http.DefaultClient, *against, token)
		cancel()
		if err != nil {
			return fail("%v", err)
		}
		oldRaw, oldLabel = live.Raw, live.Source+"@"+live.Version
		if old, err = app.CompileConfig(live.Source, live.Raw); err != nil {
			// Its files (TLS, GeoIP) may be on the instance's machine
			// only: the text diff still says what changes.
			notes = append(notes, fmt.Sprintf("the running config does not compile on this machine, so only the text diff is shown: %s", firstLine(err)))
		}
	} else {
		if flagSet(fs, "token-file") {
			return fail("-token-file is for -against URL, not a file")
		}
		if oldRaw, _, err = config.ReadFile(*against); err != nil {
			return fail("%v", err)
		}
		if old, err = app.CheckTable(*against, oldRaw); err != nil {
			return problems(stderr, *against, err)
		}
		oldLabel = *against
	}

	text, err := history.Unified(oldLabel, *path, oldRaw, data)
	if err != nil {
		return fail("%v", err)
	}
	var rep *history.Report
	if old != nil {
		rep = history.Compare(old, cand)
	}
	if text == "" && (rep == nil || rep.Empty()) {
		fmt.Fprintf(stdout, "no changes: %s and %s are the same config\n", oldLabel, *path)
		return 0
	}
	ew := &errorWriter{w: stdout}
	ew.printf("%s → %s\n\n", oldLabel, *path)
	if rep != nil {
		ew.printf("What changes in what is served:\n")
		rep.Notes = append(rep.Notes, notes...)
		if err := rep.Write(ew); err != nil {
			return fail("%v", err)
		}
	} else {
		for _, n := range notes {
			ew.printf("note: %s\n", n)
		}
	}
	if text != "" {
		ew.printf("\nText diff:\n%s", text)
	}
	if ew.err != nil {
		return fail("%v", ew.err)
	}
	return 1
}

// isAdminURL reports whether -against names an admin API rather than a
// file: it has an http:// or https:// scheme.
func isAdminURL(s string) bool {
	return strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://")
}

// problems prints a config's problems as validate does and returns 2.
func problems(stderr io.Writer, path string, err error) int {
	fmt.Fprintln(stderr, err)
	var ce *config.Error
	if errors.As(err, &ce) {
		fmt.Fprintf(stderr, "%s: %d problem(s)\n", path, len(ce.Problems))
	}
	return 2
}

func firstLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}

// errorWriter keeps the first write error.
type errorWriter struct {
	w   io.Writer
	err error
}

func (e *errorWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}

func (e *errorWriter) printf(format string, args ...any) {
	fmt.Fprintf(e, format, args...)
}
