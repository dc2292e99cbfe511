package config

import (
	"strings"
	"testing"
)

func TestAccessLogAndTracingDecode(t *testing.T) {
	base := "listen: {http: 127.0.0.1:0}\n"
	tests := []struct {
		name, yaml string
		want       string // a problem; "" when the file loads
		check      func(t *testing.T, c *Config)
	}{
		{"absent is off", "", "", func(t *testing.T, c *Config) {
			if c.HTTP.AccessLog.Enabled() || c.Tracing != nil {
				t.Errorf("access log %+v, tracing %+v", c.HTTP.AccessLog, c.Tracing)
			}
		}},
		{"false is off", "http: {access_log: false}", "", func(t *testing.T, c *Config) {
			if c.HTTP.AccessLog.Enabled() {
				t.Errorf("on: %+v", c.HTTP.AccessLog)
			}
		}},
		{"true is JSON on stderr", "http: {access_log: true}", "", func(t *testing.T, c *Config) {
			a := c.HTTP.AccessLog
			if !a.Enabled() || a.To != AccessLogStderr || a.Format != AccessLogJSON || *a.Sample != 1 || a.Buffer != DefaultAccessLogBuffer {
				t.Errorf("%+v", a)
			}
		}},
		{"a mapping without to is stderr", "http: {access_log: {format: combined}}", "", func(t *testing.T, c *Config) {
			if a := c.HTTP.AccessLog; a.To != AccessLogStderr || a.Format != AccessLogCombined {
				t.Errorf("%+v", a)
			}
		}},
		{"every key", "http: {access_log: {to: /var/log/meridian/access.log, format: json, sample: 0.1, redact_query: [token, sig], buffer: 1MiB}}", "", func(t *testing.T, c *Config) {
			a := c.HTTP.AccessLog
			if a.To != "/var/log/meridian/access.log" || *a.Sample != 0.1 || strings.Join(a.RedactQuery, ",") != "token,sig" || a.Buffer != 1<<20 {
				t.Errorf("%+v", a)
			}
		}},
		{"sample 0 is kept", "http: {access_log: {to: stdout, sample: 0}}", "", func(t *testing.T, c *Config) {
			if s := c.HTTP.AccessLog.Sample; s == nil || *s != 0 {
				t.Errorf("sample %v", s)
			}
		}},
		{"not a bool", "http: {access_log: yes please}", `e.yaml:2: http.access_log: expected true, false or a mapping`, nil},
		{"unknown key", "http: {access_log: {too: stdout}}", `e.yaml:2: http.access_log.too: unknown key "too"`, nil},
		{"unknown format", "http: {access_log: {format: clf}}", `e.yaml:2: http.access_log.format: unknown access log format "clf": want json or combined`, nil},
		{"sample out of range", "http: {access_log: {sample: 1.5}}", `e.yaml:2: http.access_log.sample: is a share between 0 and 1, not 1.5`, nil},
		{"sample NaN", "http: {access_log: {sample: .nan}}", `http.access_log.sample: is a share between 0 and 1, not NaN`, nil},
		{"tiny buffer", "http: {access_log: {buffer: 1KiB}}", `e.yaml:2: http.access_log.buffer: must be between 64KiB and 1GiB, not 1024 bytes`, nil},
		{"empty redaction", "http: {access_log: {redact_query: [token, \"\"]}}", `http.access_log.redact_query[1]: empty parameter name`, nil},
		{"spaces around to", "http: {access_log: {to: \" /tmp/x.log\"}}", `http.access_log.to: " /tmp/x.log" has surrounding spaces`, nil},

		{"tracing defaults", "tracing: {}", "", func(t *testing.T, c *Config) {
			if tr := c.Tracing; tr == nil || *tr.Sample != 1 || tr.ServiceName != DefaultTracingService || tr.OTLP != "" {
				t.Errorf("%+v", tr)
			}
		}},
		{"tracing every key", "tracing: {otlp: \"http://127.0.0.1:4318\", sample: 0.01, service_name: edge-eu}", "", func(t *testing.T, c *Config) {
			if tr := c.Tracing; tr.OTLP != "http://127.0.0.1:4318" || *tr.Sample != 0.01 || tr.ServiceName != "edge-eu" {
				t.Errorf("%+v", tr)
			}
		}},
		{"tracing bad URL", "tracing: {otlp: \"127.0.0.1:4318\"}", `e.yaml:2: tracing.otlp: want an http:// or https:// collector URL`, nil},
		{"tracing grpc URL", "tracing: {otlp: \"grpc://collector:4317\"}", `tracing.otlp: want an http:// or https:// collector URL`, nil},
		{"tracing sample", "tracing: {sample: -0.5}", `e.yaml:2: tracing.sample: is a share between 0 and 1, not -0.5`, nil},
		{"tracing unknown key", "tracing: {endpoint: x}", `e.yaml:2: tracing.endpoint: unknown key "endpoint"`, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse("e.yaml", []byte(base+tc.yaml))
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				tc.check(t, c)
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}

// TestAccessLogByHand: a Config built in code turns the log on by naming a
// destination.
func TestAccessLogByHand(t *testing.T) {
	c := &Config{HTTP: HTTP{AccessLog: AccessLog{To: AccessLogStdout}}}
	c.SetDefaults()
	if a := c.HTTP.AccessLog; !a.Enabled() || a.Format != AccessLogJSON || a.Sample == nil || *a.Sample != 1 {
		t.Errorf("%+v", a)
	}
	var off AccessLog
	if off.Enabled() {
		t.Error("the zero AccessLog is on")
	}
}
