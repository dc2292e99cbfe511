package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openPTY opens a pseudo-terminal: the side the test reads (master) and
// the terminal the child writes to (tty).
func openPTY(t *testing.T) (master, tty *os.File) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		master.Close()
		t.Skipf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetInt(int(master.Fd()), unix.TIOCGPTN)
	if err != nil {
		master.Close()
		t.Skipf("ptsname: %v", err)
	}
	tty, err = os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		master.Close()
		t.Skipf("open pts: %v", err)
	}
	t.Cleanup(func() { master.Close(); tty.Close() })
	return master, tty
}

// TestColourOnTerminal: with stderr a terminal the console log is coloured,
// unless NO_COLOR is set (no-color.org). (A pipe never is:
// TestReloadErrorLog.)
func TestColourOnTerminal(t *testing.T) {
	bin := buildMeridian(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "m.yaml")
	if err := os.WriteFile(cfg, []byte(okConfig("console")), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		noColor string
		want    bool
	}{{"", true}, {"1", false}} {
		t.Run("NO_COLOR="+tt.noColor, func(t *testing.T) {
			master, tty := openPTY(t)
			cmd := exec.Command(bin, "run", "-config", cfg, "-watch=false")
			cmd.Env = append(os.Environ(), "NO_COLOR="+tt.noColor)
			cmd.Stderr = tty
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			tty.Close() // the child holds it now
			t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
			started := make(chan string, 1)
			go func() { // reads to the end, so that the child never blocks on a full terminal
				defer close(started)
				sc := bufio.NewScanner(master)
				for sc.Scan() {
					if strings.Contains(sc.Text(), "meridian started") && len(started) == 0 {
						started <- sc.Text()
					}
				}
			}()
			var line string
			select {
			case l, ok := <-started:
				if !ok {
					t.Fatal("the terminal closed before 'meridian started'")
				}
				line = l
			case <-time.After(20 * time.Second):
				t.Fatal("no 'meridian started' on the terminal")
			}
			if got := strings.Contains(line, "\x1b["); got != tt.want {
				t.Errorf("escape codes %v, want %v: %q", got, tt.want, line)
			}
			_ = cmd.Process.Signal(syscall.SIGTERM)
		})
	}
}
