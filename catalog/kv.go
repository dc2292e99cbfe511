package catalog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/hashicorp/consul/api"
	"go.uber.org/zap"
)

// KVScheme prefixes a config reference that lives in Consul KV.
const KVScheme = "consul://"

// ErrKeyNotFound is returned (wrapped) when the config key does not exist.
var ErrKeyNotFound = errors.New("key not found")

// KVRef is a parsed "consul://<key>" config reference.
type KVRef struct {
	Address string // Consul HTTP address: the explicit flag, else CONSUL_HTTP_ADDR, else 127.0.0.1:8500
	Key     string // KV key, without a leading "/"
}

// ParseKVRef parses a -config value. ok is false (and err nil) when ref is
// not a consul:// reference, i.e. a plain file path. Everything after
// "consul://" is the key (Consul keys contain "/", so there is no host part);
// the agent address is addr when non-empty, else $CONSUL_HTTP_ADDR, else
// 127.0.0.1:8500.
func ParseKVRef(ref, addr string) (r KVRef, ok bool, err error) {
	if !strings.HasPrefix(ref, KVScheme) {
		return KVRef{}, false, nil
	}
	key := strings.TrimLeft(strings.TrimPrefix(ref, KVScheme), "/")
	switch {
	case key == "":
		return KVRef{}, true, fmt.Errorf("config reference %q: empty Consul KV key", ref)
	case strings.HasSuffix(key, "/"):
		return KVRef{}, true, fmt.Errorf("config reference %q: %q is a folder, not a key", ref, key)
	case strings.IndexFunc(key, func(c rune) bool { return unicode.IsControl(c) || unicode.IsSpace(c) }) >= 0:
		return KVRef{}, true, fmt.Errorf("config reference %q: Consul KV key contains whitespace or control characters", ref)
	case strings.ContainsAny(key, "?#"):
		return KVRef{}, true, fmt.Errorf("config reference %q: Consul KV key contains '?' or '#'", ref)
	}
	if addr == "" {
		addr = os.Getenv(EnvAddr)
	}
	if addr == "" {
		addr = "127.0.0.1:8500"
	}
	return KVRef{Address: addr, Key: key}, true, nil
}

// KVOptions configures a KVSource. Zero values take the defaults of
// WatcherOptions' fields of the same names.
type KVOptions struct {
	Logger      *zap.Logger
	MinInterval time.Duration
	WaitTime    time.Duration
	Timeout     time.Duration
	BackoffBase time.Duration
	BackoffMax  time.Duration
	Stale       bool
	Datacenter  string
}

// KVSource reads Meridian's YAML config from one Consul KV key and watches it
// with a blocking query. Errors never replace the value: the caller keeps its
// last good config. Get and Run may be used from different goroutines.
type KVSource struct {
	kv   *api.KV
	key  string
	opts KVOptions
	pace pacing
	log  *zap.Logger

	mu    sync.Mutex
	have  bool
	last  []byte // the last value delivered (by Get or to onChange)
	index uint64
}

// NewKVSource returns a source for key.
func NewKVSource(client *api.Client, key string, opts KVOptions) *KVSource {
	log := opts.Logger
	if log == nil {
		log = zap.NewNop()
	}
	return &KVSource{
		kv:   client.KV(),
		key:  strings.TrimLeft(key, "/"),
		opts: opts,
		pace: newPacing(opts.MinInterval, opts.WaitTime, opts.Timeout, opts.BackoffBase, opts.BackoffMax),
		log:  log.Named("consul_kv").With(zap.String("key", strings.TrimLeft(key, "/"))),
	}
}

// Get reads the key once, without blocking, for the initial load. A missing
// key is an error wrapping ErrKeyNotFound. The value read becomes the
// baseline: Run delivers only values that differ from it.
func (k *KVSource) Get(ctx context.Context) ([]byte, error) {
	v, idx, err := k.read(ctx, 0)
	if err != nil {
		return nil, err
	}
	k.mu.Lock()
	k.have, k.last, k.index = true, v, idx
	k.mu.Unlock()
	return bytes.Clone(v), nil
}

// Run watches the key until ctx ends and returns nil then. onChange gets a
// copy of each new value, called from Run's goroutine, only when the bytes
// differ from the last value delivered (or read by Get). Errors, including
// a deleted key, keep the last value: they are logged once per outage, and
// once on recovery, and retried with backoff.
func (k *KVSource) Run(ctx context.Context, onChange func([]byte)) error {
	k.mu.Lock()
	index := k.index
	k.mu.Unlock()
	var (
		failures int
		next     time.Time
		outageAt time.Time
	)
	for {
		if !sleepUntil(ctx, next) {
			return nil
		}
		start := time.Now()
		v, got, err := k.read(ctx, index)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			failures++
			delay := k.pace.backoff(failures)
			next = time.Now().Add(delay)
			if failures == 1 {
				outageAt = time.Now()
				k.log.Warn("reading the config from Consul KV failed; keeping the last config and retrying",
					zap.String("error", describeError(err)), zap.Duration("retry_in", delay.Round(time.Millisecond)))
			} else {
				k.log.Debug("reading the config from Consul KV failed again",
					zap.String("error", describeError(err)), zap.Int("failures", failures))
			}
			if errors.Is(err, ErrKeyNotFound) {
				// Block on the key's index so its creation wakes us.
				index = max(got, 1)
			}
			continue
		}
		if failures > 0 {
			k.log.Info("Consul KV is answering again", zap.Duration("outage", time.Since(outageAt).Round(time.Millisecond)))
		}
		failures = 0
		next = start.Add(k.pace.minInterval)
		var maybeNew bool
		index, maybeNew = nextIndex(index, got)
		if !maybeNew {
			continue
		}
		k.mu.Lock()
		fresh := !k.have || !bytes.Equal(k.last, v)
		if fresh {
			k.have, k.last = true, v
		}
		k.index = index
		k.mu.Unlock()
		if fresh {
			onChange(bytes.Clone(v))
		}
	}
}

// read performs one (blocking when index > 0) GET of the key. On
// ErrKeyNotFound the returned index is still Consul's, so a caller can block
// until the key appears.
func (k *KVSource) read(ctx context.Context, index uint64) ([]byte, uint64, error) {
	timeout := k.pace.requestTimeout(index)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	q := &api.QueryOptions{
		Datacenter: k.opts.Datacenter,
		WaitIndex:  index,
		WaitTime:   k.pace.waitTime,
		AllowStale: k.opts.Stale,
	}
	pair, meta, err := k.kv.Get(k.key, q.WithContext(ctx))
	if err != nil {
		if ctx.Err() == context.DeadlineExceeded {
			return nil, 0, fmt.Errorf("consul kv %q: no answer within %s: %w", k.key, timeout, err)
		}
		return nil, 0, fmt.Errorf("consul kv %q: %w", k.key, err)
	}
	if pair == nil {
		var idx uint64
		if meta != nil {
			idx = meta.LastIndex
		}
		return nil, idx, fmt.Errorf("consul kv %q: %w", k.key, ErrKeyNotFound)
	}
	idx := pair.ModifyIndex
	if meta != nil && meta.LastIndex > 0 {
		idx = meta.LastIndex
	}
	if pair.Value == nil {
		return []byte{}, idx, nil
	}
	return pair.Value, idx, nil
}
