package catalog

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"

	"github.com/meridian-lb/meridian/catalog/consultest"
	"github.com/meridian-lb/meridian/config"
)

func TestParseKVRef(t *testing.T) {
	t.Setenv(EnvAddr, "consul.internal:8500")
	tests := []struct {
		name    string
		ref     string
		addr    string
		ok      bool
		want    KVRef
		wantErr bool
	}{
		{name: "file path", ref: "/etc/meridian.yaml"},
		{name: "relative file", ref: "meridian.yaml"},
		{name: "key with env address", ref: "consul://meridian/config", ok: true, want: KVRef{Address: "consul.internal:8500", Key: "meridian/config"}},
		{name: "explicit address wins", ref: "consul://meridian/config", addr: "10.0.0.9:8501", ok: true, want: KVRef{Address: "10.0.0.9:8501", Key: "meridian/config"}},
		{name: "leading slashes dropped", ref: "consul:///meridian/config", ok: true, want: KVRef{Address: "consul.internal:8500", Key: "meridian/config"}},
		{name: "empty key", ref: "consul://", ok: true, wantErr: true},
		{name: "only slashes", ref: "consul:///", ok: true, wantErr: true},
		{name: "folder", ref: "consul://meridian/", ok: true, wantErr: true},
		{name: "whitespace", ref: "consul://meridian config", ok: true, wantErr: true},
		{name: "control", ref: "consul://a\x00b", ok: true, wantErr: true},
		{name: "query", ref: "consul://a?b", ok: true, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok, err := ParseKVRef(tc.ref, tc.addr)
			if ok != tc.ok || (err != nil) != tc.wantErr {
				t.Fatalf("ParseKVRef(%q) = %+v, %v, %v", tc.ref, got, ok, err)
			}
			if err == nil && got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
	t.Run("default address", func(t *testing.T) {
		t.Setenv(EnvAddr, "")
		got, _, err := ParseKVRef("consul://k", "")
		if err != nil || got.Address != "127.0.0.1:8500" {
			t.Errorf("got %+v, %v", got, err)
		}
	})
}

func FuzzParseKVRef(f *testing.F) {
	for _, s := range []string{"consul://meridian/config", "consul://", "consul:///a/b/", "/etc/x.yaml", "consul://a b", "consul://\x7f", "consul://ü/ключ"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ref string) {
		r, ok, err := ParseKVRef(ref, "127.0.0.1:8500")
		if !ok {
			if err != nil || r != (KVRef{}) {
				t.Fatalf("non-consul ref %q returned %+v, %v", ref, r, err)
			}
			return
		}
		if err != nil {
			return
		}
		if r.Key == "" || strings.HasPrefix(r.Key, "/") || strings.HasSuffix(r.Key, "/") || r.Address != "127.0.0.1:8500" {
			t.Fatalf("ParseKVRef(%q) = %+v", ref, r)
		}
		if !strings.HasSuffix(ref, r.Key) {
			t.Fatalf("key %q is not the tail of %q", r.Key, ref)
		}
	})
}

func kvOptions() KVOptions {
	return KVOptions{
		MinInterval: 10 * time.Millisecond,
		WaitTime:    300 * time.Millisecond,
		Timeout:     time.Second,
		BackoffBase: 20 * time.Millisecond,
		BackoffMax:  200 * time.Millisecond,
	}
}

func TestKVSource(t *testing.T) {
	const key = "meridian/config"
	srv := consultest.New(t, consultest.Options{})
	srv.PutKV(key, []byte("v: 1\n"))
	logger, logs := observed()
	opts := kvOptions()
	opts.Logger = logger
	src := NewKVSource(testClient(t, srv, nil), "/"+key, opts)

	got, err := src.Get(context.Background())
	if err != nil || string(got) != "v: 1\n" {
		t.Fatalf("Get = %q, %v", got, err)
	}
	changes := make(chan string, 10)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, func(b []byte) { changes <- string(b) }) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	expect := func(want string) {
		t.Helper()
		select {
		case got := <-changes:
			if got != want {
				t.Fatalf("delivered %q, want %q", got, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no delivery of %q", want)
		}
	}
	expectNone := func(calls int) {
		t.Helper()
		waitFor(t, "more KV queries", func() bool { return srv.Calls("/v1/kv/") >= calls })
		select {
		case got := <-changes:
			t.Fatalf("unexpected delivery %q", got)
		default:
		}
	}

	t.Run("same bytes are not delivered", func(t *testing.T) {
		n := srv.Calls("/v1/kv/")
		srv.PutKV(key, []byte("v: 1\n"))
		expectNone(n + 3)
	})
	t.Run("new bytes are delivered", func(t *testing.T) {
		srv.PutKV(key, []byte("v: 2\n"))
		expect("v: 2\n")
	})
	t.Run("errors keep the last value", func(t *testing.T) {
		srv.Fail(consultest.Fault{Code: 500, Path: "/v1/kv/"})
		waitFor(t, "the outage warning", func() bool {
			return countLogs(logs, zapcore.WarnLevel, "reading the config from Consul KV failed") == 1
		})
		expectNone(srv.Calls("/v1/kv/") + 3)
		srv.ClearFaults()
		waitFor(t, "the recovery line", func() bool { return countLogs(logs, zapcore.InfoLevel, "Consul KV is answering again") == 1 })
		if n := countLogs(logs, zapcore.WarnLevel, "reading the config from Consul KV failed"); n != 1 {
			t.Errorf("%d warnings for one outage", n)
		}
	})
	t.Run("deleted key keeps the last value, recreation is delivered", func(t *testing.T) {
		srv.DeleteKV(key)
		waitFor(t, "the missing-key warning", func() bool {
			return countLogs(logs, zapcore.WarnLevel, "reading the config from Consul KV failed") == 2
		})
		expectNone(srv.Calls("/v1/kv/") + 2)
		srv.PutKV(key, []byte("v: 3\n"))
		expect("v: 3\n")
	})
}

func TestKVSourceRunWithoutGetAndMissingKey(t *testing.T) {
	srv := consultest.New(t, consultest.Options{})
	src := NewKVSource(testClient(t, srv, nil), "cfg", kvOptions())
	if _, err := src.Get(context.Background()); !errors.Is(err, ErrKeyNotFound) {
		t.Fatalf("Get of a missing key: %v", err)
	}
	changes := make(chan string, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, func(b []byte) { changes <- string(b) }) }()
	defer func() {
		cancel()
		<-done
	}()
	srv.PutKV("cfg", []byte("first"))
	select {
	case got := <-changes:
		if got != "first" {
			t.Fatalf("got %q", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the key's creation was not delivered")
	}
}

func TestKVSourceTokenNotInErrors(t *testing.T) {
	const token = "kv-token-0a9b8c-SECRET"
	srv := consultest.New(t, consultest.Options{Token: token})
	srv.Fail(consultest.Fault{Code: 403, EchoToken: true})
	tokenFile := writeFile(t, "token", []byte(token))
	src := NewKVSource(testClient(t, srv, func(c *config.Consul) { c.TokenFile = tokenFile }), "cfg", kvOptions())
	_, err := src.Get(context.Background())
	if err == nil {
		t.Fatal("no error")
	}
	if strings.Contains(err.Error(), token) || !strings.Contains(err.Error(), "[redacted]") {
		t.Errorf("error %q: want the echoed token redacted", err)
	}
}
