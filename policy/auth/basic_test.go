package auth

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// hashOf is a cheap (cost 4) bcrypt hash of pw.
func hashOf(t testing.TB, pw string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

func basicReq(user, pass string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "http://app.test/", nil)
	r.SetBasicAuth(user, pass)
	return r
}

// countCompares wraps b's bcrypt with a counter.
func countCompares(b *Basic) *atomic.Int64 {
	var n atomic.Int64
	inner := b.compare
	b.compare = func(h, p []byte) error {
		n.Add(1)
		return inner(h, p)
	}
	return &n
}

func TestLoadBasicErrors(t *testing.T) {
	good := hashOf(t, "pw")
	cost15, err := bcrypt.GenerateFromPassword([]byte("x"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	copy(cost15[4:6], "15") // only the cost field is read at load
	for _, tc := range []struct {
		name, content, want string
	}{
		{"empty", "", `no users`},
		{"comments only", "# just a comment\n\n   \n", `no users`},
		{"no colon", "alice:" + good + "\nbob\n", `line 2: missing ":" between user and hash`},
		{"empty user", "\n:" + good, `line 2: empty user name`},
		{"empty hash", "carol:\n", `line 1: user "carol": empty hash`},
		{"md5", "# users\ndave:$apr1$abcdefgh$0123456789012345678901\n", `line 2: user "dave": unsupported hash scheme (only bcrypt $2a$, $2b$ and $2y$; make one with htpasswd -B)`},
		{"sha1", "erin:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=", `line 1: user "erin": unsupported hash scheme (only bcrypt $2a$, $2b$ and $2y$; make one with htpasswd -B)`},
		{"crypt", "frank:rl0P6yU2f3vHo", `line 1: user "frank": unsupported hash scheme (only bcrypt $2a$, $2b$ and $2y$; make one with htpasswd -B)`},
		{"truncated bcrypt", "gina:" + good[:50], `line 1: user "gina": malformed bcrypt hash`},
		{"bad alphabet", "hal:" + good[:59] + "!", `line 1: user "hal": malformed bcrypt hash`},
		{"three fields", "ivy:" + good + ":extra", `line 1: user "ivy": malformed bcrypt hash`},
		{"cost too high", "jon:" + string(cost15), `line 1: user "jon": bcrypt cost 15 above the maximum 14`},
		{"duplicate", "kim:" + good + "\n# x\nkim:" + good, `line 3: duplicate user "kim" (first on line 1)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := writeFile(t, "htpasswd", []byte(tc.content))
			_, err := LoadBasic(p, "")
			want := fmt.Sprintf("htpasswd %q: %s", p, tc.want)
			if err == nil || err.Error() != want {
				t.Fatalf("error\n got %v\nwant %s", err, want)
			}
		})
	}
}

func TestLoadBasicUnreadable(t *testing.T) {
	p := filepath.Join(t.TempDir(), "missing")
	_, err := LoadBasic(p, "")
	if err == nil || !strings.HasPrefix(err.Error(), fmt.Sprintf("htpasswd %q: open ", p)) {
		t.Fatalf("got %v", err)
	}
	big := writeFile(t, "big", bytes.Repeat([]byte("#"), maxHtpasswdBytes+1))
	_, err = LoadBasic(big, "")
	if want := fmt.Sprintf("htpasswd %q: larger than 4 MiB", big); err == nil || err.Error() != want {
		t.Fatalf("got %v, want %s", err, want)
	}
}

func TestBasicCheck(t *testing.T) {
	// $2y$ (PHP) and $2b$ hashes are the same algorithm as $2a$.
	y := "$2y$" + hashOf(t, "pw-bob")[4:]
	content := "# team\r\nalice:" + hashOf(t, "pw-alice") + "\r\n\n  bob:" + y + "  \n"
	b, err := LoadBasic(writeFile(t, "htpasswd", []byte(content)), "")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		r    *http.Request
		user string
		ok   bool
	}{
		{basicReq("alice", "pw-alice"), "alice", true},
		{basicReq("bob", "pw-bob"), "bob", true},
		{basicReq("alice", "pw-bob"), "", false},
		{basicReq("alice", ""), "", false},
		{basicReq("mallory", "pw-alice"), "", false},
		{basicReq("", ""), "", false},
		{httptest.NewRequest(http.MethodGet, "/", nil), "", false},
	} {
		user, ok := b.Check(tc.r)
		if user != tc.user || ok != tc.ok {
			u, p, _ := tc.r.BasicAuth()
			t.Errorf("Check(%q, %q) = %q, %v; want %q, %v", u, p, user, ok, tc.user, tc.ok)
		}
	}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("Authorization", "Bearer abc")
	if _, ok := b.Check(r); ok {
		t.Error("a bearer token passed basic auth")
	}
}

func TestBasicCacheCountsBcrypt(t *testing.T) {
	b, err := LoadBasic(writeFile(t, "htpasswd", []byte("alice:"+hashOf(t, "pw"))), "")
	if err != nil {
		t.Fatal(err)
	}
	n := countCompares(b)
	for i := range 3 {
		if u, ok := b.Check(basicReq("alice", "pw")); !ok || u != "alice" {
			t.Fatalf("check %d: %q %v", i, u, ok)
		}
	}
	if got := n.Load(); got != 1 {
		t.Fatalf("3 good checks ran bcrypt %d times, want 1 (cached)", got)
	}
	for range 2 {
		b.Check(basicReq("alice", "wrong"))
	}
	if got := n.Load(); got != 3 {
		t.Fatalf("2 failed checks: bcrypt count %d, want 3 (failures are not cached)", got)
	}
	// An unknown user costs a bcrypt run too: no user enumeration by timing.
	b.Check(basicReq("nobody", "pw"))
	if got := n.Load(); got != 4 {
		t.Fatalf("unknown user: bcrypt count %d, want 4", got)
	}
	// The cache is keyed by user and password, not user alone.
	b.Check(basicReq("alice", "pw2"))
	if got := n.Load(); got != 5 {
		t.Fatalf("other password: bcrypt count %d, want 5", got)
	}
}

func TestBasicCacheBounded(t *testing.T) {
	b, err := LoadBasic(writeFile(t, "htpasswd", []byte("alice:"+hashOf(t, "pw"))), "")
	if err != nil {
		t.Fatal(err)
	}
	// Accept any password, so filling the cache costs no bcrypt.
	var n atomic.Int64
	b.compare = func(_, _ []byte) error { n.Add(1); return nil }
	for i := range basicCacheSize + 10 {
		b.Check(basicReq("alice", fmt.Sprint(i)))
	}
	b.mu.Lock()
	size, ring := len(b.cache), len(b.ring)
	b.mu.Unlock()
	if size != basicCacheSize || ring != basicCacheSize {
		t.Fatalf("cache holds %d (ring %d), want %d", size, ring, basicCacheSize)
	}
	before := n.Load()
	b.Check(basicReq("alice", "0")) // the oldest: evicted
	b.Check(basicReq("alice", fmt.Sprint(basicCacheSize+9)))
	if got := n.Load() - before; got != 1 {
		t.Fatalf("bcrypt ran %d times for an evicted and a cached entry, want 1", got)
	}
	for k := range b.cache {
		if bytes.Contains(k[:], []byte("alice")) {
			t.Fatal("cache key contains the user name in clear")
		}
	}
}

func TestBasicChallenge(t *testing.T) {
	p := writeFile(t, "htpasswd", []byte("a:"+hashOf(t, "x")))
	for realm, want := range map[string]string{
		"":                `Basic realm="meridian", charset="UTF-8"`,
		"Staff only":      `Basic realm="Staff only", charset="UTF-8"`,
		`a "b" \c` + "\n": `Basic realm="a \"b\" \\c", charset="UTF-8"`,
	} {
		b, err := LoadBasic(p, realm)
		if err != nil {
			t.Fatal(err)
		}
		h := http.Header{}
		b.Challenge(h)
		if got := h.Get("WWW-Authenticate"); got != want {
			t.Errorf("realm %q: got %s, want %s", realm, got, want)
		}
	}
}

func TestBasicFingerprint(t *testing.T) {
	line := "a:" + hashOf(t, "x") + "\n"
	p := writeFile(t, "htpasswd", []byte(line))
	b1, err := LoadBasic(p, "r1")
	if err != nil {
		t.Fatal(err)
	}
	b2, err := LoadBasic(p, "r2")
	if err != nil {
		t.Fatal(err)
	}
	if b1.Fingerprint() != b2.Fingerprint() {
		t.Error("same file, different fingerprints")
	}
	if err := os.WriteFile(p, []byte(line+"# edited\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b3, err := LoadBasic(p, "r1")
	if err != nil {
		t.Fatal(err)
	}
	if b3.Fingerprint() == b1.Fingerprint() {
		t.Error("edited file, same fingerprint")
	}
}
