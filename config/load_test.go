package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestParseRejectsEmptyDocuments: every way of writing a document with
// nothing in it is an error, not a config that serves nothing.
func TestParseRejectsEmptyDocuments(t *testing.T) {
	for name, text := range map[string]string{
		"empty":           "",
		"newlines":        "\n\n",
		"spaces":          "   \n  \n",
		"comments only":   "# nothing yet\n",
		"document marker": "---",
		"marker, newline": "---\n",
		"null":            "null\n",
		"tilde":           "~",
		"marker and null": "--- ~\n",
		"comment, null":   "# x\n---\nnull\n",
	} {
		t.Run(name, func(t *testing.T) {
			c, err := Parse("m.yaml", []byte(text))
			if err == nil || c != nil {
				t.Fatalf("Parse(%q) = %v, %v; want an error", text, c, err)
			}
			if want := "m.yaml:1: config is empty"; err.Error() != want {
				t.Errorf("Parse(%q) error %q, want %q", text, err, want)
			}
		})
	}
}

// TestServes: a config with no listener besides admin, no route and no zone
// serves nothing and is refused; any one of them is enough.
func TestServes(t *testing.T) {
	const pools = "pools: {p: {endpoints: [127.0.0.1:1]}}\nservices: {s: {pools: [p]}}\n"
	tests := []struct {
		name, text string
		ok         bool
	}{
		{"empty mapping", "{}", false},
		{"admin listener only", "listen: {admin: 127.0.0.1:9999}\n", false},
		{"pools and services only", pools, false},
		{"log settings only", "log: {level: debug}\n", false},
		{"http listener", "listen: {http: 127.0.0.1:0}\n", true},
		{"dns listener", "listen: {dns: 127.0.0.1:0}\n", true},
		{"a route", pools + "routes: [{name: r, service: s}]\n", true},
		{"a zone", "zones: [{origin: example.com., soa: {ns: ns1.example.com., mbox: hostmaster.example.com.}, ns: [ns1.example.com.], records: [{name: ns1, type: A, values: [192.0.2.1]}]}]\n", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("s.yaml", []byte(tt.text))
			if err != nil {
				t.Fatal(err)
			}
			err = c.Serves("s.yaml")
			if tt.ok {
				if err != nil {
					t.Errorf("Serves = %v, want nil", err)
				}
				return
			}
			var ce *Error
			if !errors.As(err, &ce) || !strings.HasPrefix(err.Error(), "s.yaml:1: config defines nothing to serve") {
				t.Errorf("Serves = %v, want an *Error: config defines nothing to serve", err)
			}
		})
	}
}

// TestReadFileSizeCap: a regular file over the cap is refused by its size,
// before any read; one at the cap is read.
func TestReadFileSizeCap(t *testing.T) {
	dir := t.TempDir()
	sparse := func(name string, size int64) string {
		p := filepath.Join(dir, name)
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := f.Truncate(size); err != nil {
			t.Fatal(err)
		}
		return p
	}
	huge := sparse("huge.yaml", 50<<20)
	_, _, err := ReadFile(huge)
	if want := fmt.Sprintf("config file %s is 52428800 bytes, over the 16 MiB limit", huge); err == nil || err.Error() != want {
		t.Errorf("ReadFile(50 MiB) = %v, want %q", err, want)
	}
	if _, _, err := ReadFile(sparse("over.yaml", MaxFileBytes+1)); err == nil || !strings.Contains(err.Error(), "is 16777217 bytes, over the 16 MiB limit") {
		t.Errorf("ReadFile(cap+1) = %v", err)
	}
	data, fi, err := ReadFile(sparse("at.yaml", MaxFileBytes))
	if err != nil || len(data) != MaxFileBytes || fi == nil || fi.Size() != MaxFileBytes {
		t.Errorf("ReadFile(cap) = %d bytes, %v, %v; want the whole file", len(data), fi, err)
	}
	if _, err := Parse("kv", make([]byte, MaxFileBytes+1)); err == nil || err.Error() != "kv: config is 16777217 bytes, over the 16 MiB limit" {
		t.Errorf("Parse(cap+1) = %v", err)
	}
}

// TestReadFileStopsAtTheCap: a file with no size to check first (a FIFO) is
// read through the limit, so a writer sending 50 MiB gets no further than
// the cap and what the pipe buffers.
func TestReadFileStopsAtTheCap(t *testing.T) {
	p := filepath.Join(t.TempDir(), "fifo.yaml")
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	written := make(chan int64, 1)
	go func() {
		f, err := os.OpenFile(p, os.O_WRONLY, 0)
		if err != nil {
			written <- -1
			return
		}
		defer f.Close()
		// The reader closing its end ends the copy with EPIPE.
		n, _ := io.Copy(f, io.LimitReader(zeros{}, 50<<20))
		written <- n
	}()
	_, _, err := ReadFile(p)
	if want := "config file " + p + " is over the 16 MiB limit"; err == nil || err.Error() != want {
		t.Errorf("ReadFile(fifo) = %v, want %q", err, want)
	}
	n := <-written
	if n < 0 || n > MaxFileBytes+1+1<<20 {
		t.Errorf("the writer got %d bytes into the pipe; want the cap and at most the pipe's buffer more", n)
	}
}

// zeros reads as endless zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// TestReadFileIdentity: the FileInfo ReadFile returns is what tells a
// file written in place (same file) from one renamed over the path.
func TestReadFileIdentity(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "m.yaml")
	if err := os.WriteFile(p, []byte("a: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, first, err := ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("a: 2\n"), 0o644); err != nil { // in place
		t.Fatal(err)
	}
	data, inPlace, err := ReadFile(p)
	if err != nil || !bytes.Equal(data, []byte("a: 2\n")) {
		t.Fatalf("ReadFile = %q, %v", data, err)
	}
	if !os.SameFile(first, inPlace) {
		t.Error("a write in place reads as another file")
	}
	tmp := filepath.Join(dir, ".m.yaml.tmp")
	if err := os.WriteFile(tmp, []byte("a: 3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, p); err != nil {
		t.Fatal(err)
	}
	_, renamed, err := ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if os.SameFile(first, renamed) {
		t.Error("a file renamed over the path reads as the same file")
	}
}
