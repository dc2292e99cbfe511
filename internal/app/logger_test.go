package app

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/meridian-lb/meridian/config"
)

// TestLoggerNoStackTrace: a rejected config (or any error or warning) is
// logged as its message and fields, one record a line, with no Go stack
// trace in either format; DPanic keeps one and does not panic.
func TestLoggerNoStackTrace(t *testing.T) {
	for _, format := range []string{"json", "console"} {
		t.Run(format, func(t *testing.T) {
			var buf bytes.Buffer
			log, err := buildLogger(config.Log{Level: "debug", Format: format}, zap.NewAtomicLevel(), zapcore.AddSync(&buf), false)
			if err != nil {
				t.Fatal(err)
			}
			log.Named("config").Error("config rejected; the last good table keeps serving",
				zap.Strings("problems", []string{`m.yaml:2: pools.p.balance: unknown balancer "fastest"`}))
			log.Warn("consul registration failed; retrying")
			out := buf.String()
			if lines := strings.Count(out, "\n"); lines != 2 {
				t.Errorf("%d lines for 2 records:\n%s", lines, out)
			}
			for _, bad := range []string{"stacktrace", "goroutine", "internal/app.", "\t/"} {
				if strings.Contains(out, bad) {
					t.Errorf("log has %q (a stack trace):\n%s", bad, out)
				}
			}
			if !strings.Contains(out, `unknown balancer \"fastest\"`) && !strings.Contains(out, `unknown balancer "fastest"`) {
				t.Errorf("log lacks the problem:\n%s", out)
			}
			if format == "json" {
				for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
					var rec map[string]any
					if err := json.Unmarshal([]byte(line), &rec); err != nil {
						t.Errorf("not one JSON object a line: %v: %s", err, line)
					}
				}
			}

			buf.Reset()
			func() {
				defer func() {
					if r := recover(); r != nil {
						t.Errorf("DPanic panicked with log.format %s: %v", format, r)
					}
				}()
				log.DPanic("invariant broken")
			}()
			if !strings.Contains(buf.String(), "internal/app.TestLoggerNoStackTrace") {
				t.Errorf("DPanic lacks its stack trace:\n%s", buf.String())
			}
		})
	}
}

// TestLoggerColour: the console format is coloured only when asked (by
// newLogger, when stderr is a terminal); JSON never is.
func TestLoggerColour(t *testing.T) {
	for _, tt := range []struct {
		format string
		color  bool
		want   bool
	}{
		{"console", false, false},
		{"console", true, true},
		{"json", false, false},
		{"json", true, false},
	} {
		var buf bytes.Buffer
		log, err := buildLogger(config.Log{Level: "info", Format: tt.format}, zap.NewAtomicLevel(), zapcore.AddSync(&buf), tt.color)
		if err != nil {
			t.Fatal(err)
		}
		log.Info("hello")
		log.Error("trouble")
		if got := strings.Contains(buf.String(), "\x1b["); got != tt.want {
			t.Errorf("format %s, color %v: escape codes %v, want %v:\n%q", tt.format, tt.color, got, tt.want, buf.String())
		}
		if tt.format == "console" && !strings.Contains(buf.String(), "ERROR") {
			t.Errorf("console log lacks its level:\n%q", buf.String())
		}
	}
}

// TestIsTerminal: a pipe or a file is not a terminal, so a log piped to a
// file or a collector carries no escape codes. (That a terminal is one is
// tested with a pseudo-terminal in cmd/meridian.)
func TestIsTerminal(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if isTerminal(w) {
		t.Error("a pipe is a terminal")
	}
	f, err := os.Create(t.TempDir() + "/log")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if isTerminal(f) {
		t.Error("a file is a terminal")
	}
	if null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0); err == nil {
		defer null.Close()
		if isTerminal(null) {
			t.Error(os.DevNull + " is a terminal")
		}
	}
}
