package history

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meridian-lb/meridian/config"
)

func mkEntry(v, text string) Entry {
	return Entry{Version: v, Time: time.Unix(1700000000, 0), Source: "/etc/meridian.yaml", Raw: []byte(text)}
}

func versions(h *History) string {
	var vs []string
	for _, s := range h.List() {
		vs = append(vs, s.Version)
	}
	return strings.Join(vs, " ")
}

func TestHistoryKeepsTheLastN(t *testing.T) {
	h := New(3)
	for i := 1; i <= 5; i++ {
		h.Add(mkEntry(fmt.Sprintf("v%d", i), fmt.Sprintf("n: %d\n", i)))
	}
	if got := versions(h); got != "v5 v4 v3" {
		t.Fatalf("List = %q, want the three newest, newest first", got)
	}
	l := h.List()
	if l[0].Seq != 5 || l[0].Previous != "v4" || l[2].Previous != "" || l[0].Bytes != 5 || len(l[0].SHA256) != 64 {
		t.Errorf("summaries: %+v", l)
	}
	if _, ok := h.Get("v2"); ok {
		t.Error("v2 was dropped but Get finds it")
	}
	e, ok := h.Get("v4")
	if !ok || string(e.Raw) != "n: 4\n" || e.Source != "/etc/meridian.yaml" {
		t.Errorf("Get(v4) = %+v, %v", e, ok)
	}
	h.SetLimit(1)
	if got := versions(h); got != "v5" {
		t.Errorf("after SetLimit(1): %q", got)
	}
	h.SetLimit(0) // the default
	for i := range config.DefaultConfigHistory + 5 {
		h.Add(mkEntry(fmt.Sprint(i), "x"))
	}
	if h.Len() != config.DefaultConfigHistory {
		t.Errorf("default limit: %d entries", h.Len())
	}
}

// TestHistoryByteCap: past the byte cap the oldest go, but the newest (the
// live config) stays even when it alone is over it.
func TestHistoryByteCap(t *testing.T) {
	h := New(10)
	h.SetMaxBytes(10)
	h.Add(mkEntry("a", "1234"))
	h.Add(mkEntry("b", "1234"))
	if got := versions(h); got != "b a" {
		t.Fatalf("%q", got)
	}
	h.Add(mkEntry("c", "1234"))
	if got := versions(h); got != "c b" {
		t.Errorf("over 10 bytes: %q, want the oldest dropped", got)
	}
	h.Add(mkEntry("big", strings.Repeat("x", 50)))
	if got := versions(h); got != "big" {
		t.Errorf("one entry over the cap: %q, want it kept alone", got)
	}
	h.Add(Entry{Version: "huge", Raw: make([]byte, MaxEntryBytes+1)})
	if l := h.List(); l[0].Version != "huge" || !l[0].RawOmitted || l[0].Bytes != 0 {
		t.Errorf("an entry over MaxEntryBytes: %+v", l[0])
	}
}

func TestHistoryGetNewestAndAliases(t *testing.T) {
	h := New(10)
	h.Add(mkEntry("v1", "a: 1\n"))
	h.Add(mkEntry("v2", "a: 2\n"))
	h.Add(mkEntry("v1", "a: 1 # again\n")) // a rollback, or a comment
	e, ok := h.Get("v1")
	if !ok || string(e.Raw) != "a: 1 # again\n" || e.Seq != 3 {
		t.Errorf("Get(v1) = %q seq %d, want the newest v1", e.Raw, e.Seq)
	}
	// A catalog change rebuilt the live config's table as v1b.
	h.Alias("v1b")
	h.Alias("v1b")
	h.Alias("v1") // its own version: nothing
	e, ok = h.Get("v1b")
	if !ok || e.Seq != 3 || len(e.Aliases) != 1 {
		t.Errorf("Get(v1b) = %+v", e)
	}
	if l := h.List(); len(l[0].Aliases) != 1 || l[0].Aliases[0] != "v1b" {
		t.Errorf("summary aliases %v", l[0].Aliases)
	}
	for i := range 2 * maxAliases {
		h.Alias(fmt.Sprint("x", i))
	}
	if e, _ := h.Latest(); len(e.Aliases) != maxAliases || e.Aliases[maxAliases-1] != fmt.Sprint("x", 2*maxAliases-1) {
		t.Errorf("aliases not bounded to the newest: %d", len(e.Aliases))
	}
	if _, ok := h.Get(""); ok {
		t.Error(`Get("") found something`)
	}
}

func TestHistoryDiff(t *testing.T) {
	h := New(10)
	if _, err := h.Diff("", ""); !errors.Is(err, ErrUnknownVersion) {
		t.Errorf("empty history: %v", err)
	}
	h.Add(mkEntry("v1", "a: 1\nb: 2\nc: 3\n"))
	h.Add(mkEntry("v2", "a: 1\nb: 20\nc: 3\n"))
	h.Add(mkEntry("v3", "a: 1\nb: 20\nc: 3\n"))

	d, err := h.Diff("", "v2") // against the one before
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"--- /etc/meridian.yaml@v1\n", "+++ /etc/meridian.yaml@v2\n", "-b: 2\n", "+b: 20\n", " a: 1\n"} {
		if !strings.Contains(d, want) {
			t.Errorf("diff lacks %q:\n%s", want, d)
		}
	}
	if d, err := h.Diff("v2", ""); err != nil || d != "" {
		t.Errorf("same bytes: %q, %v", d, err)
	}
	d, err = h.Diff("", "v1") // the oldest: against nothing
	if err != nil || !strings.Contains(d, "--- /dev/null") || !strings.Contains(d, "+c: 3") {
		t.Errorf("oldest: %v\n%s", err, d)
	}
	if _, err := h.Diff("nope", "v1"); !errors.Is(err, ErrUnknownVersion) || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("unknown from: %v", err)
	}
	if _, err := h.Diff("", "nope"); !errors.Is(err, ErrUnknownVersion) {
		t.Errorf("unknown to: %v", err)
	}
}

// TestHistoryConcurrent is for the race detector: the publish path adds
// while the admin API lists and diffs.
func TestHistoryConcurrent(t *testing.T) {
	h := New(5)
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range 200 {
			h.Add(mkEntry(fmt.Sprint(i), fmt.Sprintf("n: %d\n", i)))
			h.Alias(fmt.Sprint("a", i))
		}
	})
	for range 2 {
		wg.Go(func() {
			for range 200 {
				for _, s := range h.List() {
					h.Get(s.Version)
					_, _ = h.Diff("", s.Version)
				}
			}
		})
	}
	wg.Wait()
}

func TestUnifiedLargeInput(t *testing.T) {
	// Two large configs that differ on every line still diff at once:
	// the search depth is bounded.
	var a, b strings.Builder
	for i := range 100000 {
		fmt.Fprintf(&a, "line %d a\n", i)
		fmt.Fprintf(&b, "line %d b\n", i)
	}
	start := time.Now()
	d, err := Unified("a", "b", []byte(a.String()), []byte(b.String()))
	if err != nil || !strings.Contains(d, "-line 99999 a") || !strings.Contains(d, "+line 99999 b") {
		t.Fatalf("%v", err)
	}
	if el := time.Since(start); el > 20*time.Second {
		t.Errorf("took %v", el)
	}
}
