package health

import (
	"strings"
	"testing"
	"time"
)

func TestParseStateLine(t *testing.T) {
	tests := []struct {
		name    string
		line    string
		want    stateEntry
		ok      bool
		wantErr string
	}{
		{name: "blank", line: "   \t"},
		{name: "comment", line: "# web/127.0.0.1:80 drain"},
		{name: "drain", line: "web/127.0.0.1:80 drain", want: stateEntry{"web", "127.0.0.1:80", ActionDrain}, ok: true},
		{name: "down with comment", line: "  web-eu/10.0.0.1:8080\tDOWN  # rack 4", want: stateEntry{"web-eu", "10.0.0.1:8080", ActionDown}, ok: true},
		{name: "enable", line: "web/host.example:443 enable", want: stateEntry{"web", "host.example:443", ActionEnable}, ok: true},
		{name: "ipv6", line: "web/[::1]:80 drain", want: stateEntry{"web", "[::1]:80", ActionDrain}, ok: true},
		{name: "whole pool", line: "web/* down", want: stateEntry{"web", "*", ActionDown}, ok: true},
		{name: "no action", line: "web/127.0.0.1:80", wantErr: "got 1 fields"},
		{name: "extra field", line: "web/127.0.0.1:80 drain now", wantErr: "got 3 fields"},
		{name: "no slash", line: "127.0.0.1:80 drain", wantErr: "want pool/address"},
		{name: "empty pool", line: "/127.0.0.1:80 drain", wantErr: "want pool/address"},
		{name: "no port", line: "web/127.0.0.1 drain", wantErr: "must be host:port"},
		{name: "empty host", line: "web/:80 drain", wantErr: "must be host:port"},
		{name: "unknown action", line: "web/127.0.0.1:80 up", wantErr: `unknown action "up"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok, err := parseStateLine(tc.line)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || ok != tc.ok || got != tc.want {
				t.Fatalf("got %+v, %v, %v; want %+v, %v", got, ok, err, tc.want, tc.ok)
			}
		})
	}
}

func TestParseStateFile(t *testing.T) {
	s, errs := parseStateFile([]byte("web/127.0.0.1:1 drain\nbad\n\nweb/127.0.0.1:1 down\napi/* drain\n"))
	if len(errs) != 1 || !strings.HasPrefix(errs[0].Error(), "line 2: ") {
		t.Fatalf("errors %v, want one for line 2", errs)
	}
	if got := s.lookup("web", "127.0.0.1:1"); got != ActionDown {
		t.Fatalf("later line should win: %q", got)
	}
	if got := s.lookup("api", "10.0.0.1:80"); got != ActionDrain {
		t.Fatalf("pool line: %q", got)
	}
	if got := s.lookup("web", "127.0.0.1:2"); got != "" {
		t.Fatalf("unlisted member: %q", got)
	}
}

func FuzzParseStateLine(f *testing.F) {
	for _, s := range []string{
		"web/127.0.0.1:80 drain",
		"web/[::1]:80 down # comment",
		"web/* enable",
		"# only a comment",
		"",
		"web/127.0.0.1 drain",
		"a/b/c:1 down",
		"web/127.0.0.1:80\u00a0drain",
		"web/[::1:80 drain",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		e, ok, err := parseStateLine(line)
		if err != nil && ok {
			t.Fatalf("ok with an error: %v", err)
		}
		if !ok {
			return
		}
		if e.Pool == "" || e.Address == "" || strings.ContainsAny(e.Pool+e.Address, " \t#") {
			t.Fatalf("bad entry %+v from %q", e, line)
		}
		// What parses formats back to a line that parses the same.
		again, ok2, err := parseStateLine(e.String())
		if err != nil || !ok2 || again != e {
			t.Fatalf("round trip of %q: %+v -> %q -> %+v, %v", line, e, e.String(), again, err)
		}
	})
}

func TestMaxEjectable(t *testing.T) {
	tests := []struct{ n, pct, want int }{
		{0, 50, 0}, {1, 50, 1}, {2, 50, 1}, {3, 50, 1}, {4, 50, 2}, {5, 0, 0}, {5, 100, 5}, {5, 150, 5}, {30, 10, 3},
	}
	for _, tc := range tests {
		if got := maxEjectable(tc.n, tc.pct); got != tc.want {
			t.Errorf("maxEjectable(%d, %d) = %d, want %d", tc.n, tc.pct, got, tc.want)
		}
	}
}

func TestEjectionTime(t *testing.T) {
	base, maxD := 30*time.Second, 300*time.Second
	want := []time.Duration{30 * time.Second, 60 * time.Second, 120 * time.Second, 240 * time.Second, 300 * time.Second, 300 * time.Second}
	for level, w := range want {
		if got := ejectionTime(base, maxD, level); got != w {
			t.Errorf("level %d: %s, want %s", level, got, w)
		}
	}
	if got := ejectionTime(base, maxD, maxEjectionLevel); got != maxD {
		t.Errorf("max level: %s", got)
	}
}
