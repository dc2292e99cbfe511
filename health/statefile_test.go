package health_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/meridian-lb/meridian/health"
)

// writeAtomic replaces path the way editors and config tools do: write a
// temporary file, then rename it over the old one.
func writeAtomic(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestStateFile(t *testing.T) {
	const a, b, c = "127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"
	path := filepath.Join(t.TempDir(), "admin_state")
	if err := os.WriteFile(path, []byte("# maintenance\nweb/127.0.0.1:1 drain\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := newRig(t, health.Options{StateFile: path})
	t.Cleanup(r.stop)
	r.e.Sync([]health.PoolSpec{{Name: "web", Endpoints: []string{a, b, c}}})
	state := func(addr string) health.State { return r.member(t, "web", addr).State() }

	// Read at New, so the first Sync already has it.
	if got := r.status(t, "web", a); got.State != health.StateDraining || got.OverrideSource != "file" {
		t.Fatalf("override from the initial file: %+v", got)
	}

	// An edit (atomic rename) applies; a bad line is skipped and counted.
	writeAtomic(t, path, "web/127.0.0.1:2 down\nthis is not valid\nweb/127.0.0.1:3 reboot\n")
	waitFor(t, "the edited state file", func() bool {
		return state(a) == health.StateUp && state(b) == health.StateForcedDown
	})
	if state(c) != health.StateUp {
		t.Fatalf("a line with an unknown action was applied: %s", state(c))
	}
	if n, _ := metric(t, r.reg, "meridian_health_state_file_errors_total", nil); n != 2 {
		t.Fatalf("state file errors counted: %v, want 2", n)
	}

	// An API override survives file edits that do not mention its member,
	// and the removal of a line only clears what the file had set.
	if err := r.e.Override("web", a, health.ActionDown); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("web/127.0.0.1:3 DRAIN # in place, upper case\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the in-place edit", func() bool {
		return state(b) == health.StateUp && state(c) == health.StateDraining
	})
	if state(a) != health.StateForcedDown {
		t.Fatalf("the file edit cleared an API override: %s", state(a))
	}

	// A pool-wide line; a member's own line wins over it.
	writeAtomic(t, path, "web/* drain\nweb/127.0.0.1:3 enable\n")
	waitFor(t, "the pool-wide drain", func() bool { return state(b) == health.StateDraining })
	if state(c) != health.StateUp {
		t.Fatalf("member line did not win over the pool line: %s", state(c))
	}
	// It also applies to members that appear later.
	r.e.Sync([]health.PoolSpec{{Name: "web", Endpoints: []string{a, b, c, "127.0.0.1:4"}}})
	if got := state("127.0.0.1:4"); got != health.StateDraining {
		t.Fatalf("new member under a pool-wide drain: %s", got)
	}

	// Removing the file clears every override it set.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the removed file", func() bool {
		return state(b) == health.StateUp && state("127.0.0.1:4") == health.StateUp
	})
}
