package policy

import (
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/meridian-lb/meridian/config"
)

func parseRoute(t *testing.T, y string) *config.Route {
	t.Helper()
	cfg, err := config.Parse("t.yaml", []byte("listen: {http: 127.0.0.1:0}\npools: {p: {endpoints: [127.0.0.1:1]}}\nservices: {s: {pools: [p]}}\nroutes:\n"+y))
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Routes[0]
}

func TestNoPolicyIsNil(t *testing.T) {
	p, err := Compile("routes[0]", parseRoute(t, "  - {name: r, service: s, add_headers: {X-A: b}}\n"), Env{})
	if p != nil || err != nil {
		t.Fatalf("a route without policies compiled to %v, %v; want nil, nil", p, err)
	}
	if p.Steps() != nil || p.MaxBody() != 0 || p.Redirects() || p.Compresses() {
		t.Error("a nil *Route must read as no policy")
	}
}

func TestStepsInOrder(t *testing.T) {
	r := parseRoute(t, `  - name: r
    service: s
    compress: {}
    max_body: 1KiB
    rewrite: {query: {add: {a: b}}}
    cors: {origins: ["https://a.example"]}
    rate_limit: {requests: 5}
    deny: [192.0.2.0/24]
`)
	p, err := Compile("routes[0]", r, Env{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range p.Steps() {
		got = append(got, d.Step)
	}
	if want := "access rate_limit cors rewrite max_body compress"; strings.Join(got, " ") != want {
		t.Errorf("steps %q, want %q", strings.Join(got, " "), want)
	}
}

// TestRateStateCarriesOver: an unchanged rate limit keeps its buckets
// across a recompile; a changed one starts afresh.
func TestRateStateCarriesOver(t *testing.T) {
	y := "  - {name: r, service: s, rate_limit: {requests: 5, per: 1m, key: \"header:X-K\"}}\n"
	old, err := Compile("routes[0]", parseRoute(t, y), Env{})
	if err != nil {
		t.Fatal(err)
	}
	same, _ := Compile("routes[0]", parseRoute(t, y), Env{Previous: old})
	if same.rate.lim != old.rate.lim {
		t.Error("an unchanged rate limit got new buckets")
	}
	for _, changed := range []string{
		strings.Replace(y, "requests: 5", "requests: 6", 1),
		strings.Replace(y, "X-K", "X-Other", 1),
		strings.Replace(y, "per: 1m", "per: 1s", 1),
	} {
		p, _ := Compile("routes[0]", parseRoute(t, changed), Env{Previous: old})
		if p.rate.lim == old.rate.lim {
			t.Errorf("%s: kept the old buckets", strings.TrimSpace(changed))
		}
	}
}

// TestFingerprintFollowsFiles: a policy file's content is part of the
// route's fingerprint, so a rotated htpasswd makes a new table version.
func TestFingerprintFollowsFiles(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "htpasswd")
	write := func(user string) {
		h, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
		if err := os.WriteFile(f, []byte(user+":"+string(h)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	y := "  - {name: r, service: s, basic_auth: {htpasswd: \"" + f + "\"}}\n"
	write("alice")
	a, err := Compile("routes[0]", parseRoute(t, y), Env{})
	if err != nil {
		t.Fatal(err)
	}
	a2, _ := Compile("routes[0]", parseRoute(t, y), Env{})
	if a.Fingerprint() != a2.Fingerprint() {
		t.Error("the same file gave two fingerprints")
	}
	write("bob")
	b, _ := Compile("routes[0]", parseRoute(t, y), Env{})
	if a.Fingerprint() == b.Fingerprint() {
		t.Error("a changed htpasswd kept its fingerprint")
	}
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Compile("routes[0]", parseRoute(t, y), Env{}); err == nil {
		t.Error("an empty htpasswd compiled")
	}
}

// TestJWKSURLWithoutKeySets: validation checks a JWKS URL without
// fetching; a route compiled that way refuses every request rather than
// letting it through unchecked.
func TestJWKSURLWithoutKeySets(t *testing.T) {
	p, err := Compile("routes[0]", parseRoute(t, "  - {name: r, service: s, jwt: {jwks: \"https://keys.example/jwks.json\"}}\n"), Env{})
	if err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Authorization", "Bearer x.y.z")
	if o := p.Before(&Exchange{W: w, R: r}); o.Code != 401 || w.Code != 401 {
		t.Fatalf("outcome %+v, answer %d; want 401", o, w.Code)
	}
}

func TestHostOnly(t *testing.T) {
	for in, want := range map[string]string{"a.example:8080": "a.example", "a.example": "a.example", "[::1]:443": "[::1]", "[::1]": "[::1]"} {
		if got := hostOnly(in); got != want {
			t.Errorf("hostOnly(%q) = %q, want %q", in, got, want)
		}
	}
}
