package app

import (
	"context"
	"fmt"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"
	"go.uber.org/zap"

	"github.com/meridian-lb/meridian/catalog"
	"github.com/meridian-lb/meridian/config"
	"github.com/meridian-lb/meridian/routing"
)

// catalogView adapts a catalog snapshot to what routing.Compile reads.
type catalogView struct{ snap *catalog.Snapshot }

func (c catalogView) Endpoints(sel config.ConsulSelect) ([]routing.CatalogEndpoint, bool) {
	inst, ready := c.snap.Instances(sel)
	out := make([]routing.CatalogEndpoint, len(inst))
	for i, in := range inst {
		out[i] = routing.CatalogEndpoint{Address: in.Endpoint(), Weight: in.Weight, Region: in.Region}
	}
	return out, ready
}

// consulSelections lists every pool's Consul selection, in pool-name order;
// none for a nil config.
func consulSelections(cfg *config.Config) []config.ConsulSelect {
	var sels []config.ConsulSelect
	if cfg == nil {
		return nil
	}
	for _, name := range sortedNames(cfg.Pools) {
		if p := cfg.Pools[name]; p != nil && p.Consul != nil {
			sels = append(sels, *p.Consul)
		}
	}
	return sels
}

// fleet is how many instances share the fleet's rate limits: the live
// instance list of package fleet (fleet.go), at least 1.
func (a *App) fleet() int { return int(a.fleetSize.Load()) }

// kvSource reads the config from a Consul KV key. Read returns the latest
// value delivered by the blocking-query loop; errors there keep the last
// value, so the last good config keeps serving.
type kvSource struct {
	ref catalog.KVRef
	kv  *catalog.KVSource

	mu   sync.Mutex
	data []byte
}

func newKVSource(ref catalog.KVRef, logger *zap.Logger) (*kvSource, error) {
	client, err := catalog.NewClient(&config.Consul{Address: ref.Address})
	if err != nil {
		return nil, fmt.Errorf("config %s%s: %w", catalog.KVScheme, ref.Key, err)
	}
	s := &kvSource{ref: ref, kv: catalog.NewKVSource(client, ref.Key, catalog.KVOptions{Logger: logger})}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	data, err := s.kv.Get(ctx)
	if err != nil {
		return nil, fmt.Errorf("config %s%s: %w", catalog.KVScheme, ref.Key, err)
	}
	s.data = data
	return s, nil
}

// Read returns the latest value; a KV value is replaced whole, so it has
// no file to tell writes in place by.
func (s *kvSource) Read() ([]byte, os.FileInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.data, nil, nil
}

func (s *kvSource) Name() string { return catalog.KVScheme + s.ref.Key }

// run follows the key until ctx is done, poking on every new value.
func (s *kvSource) run(ctx context.Context, poke func()) error {
	return s.kv.Run(ctx, func(b []byte) {
		s.mu.Lock()
		s.data = b
		s.mu.Unlock()
		poke()
	})
}

// consulClient builds the catalog client from the config's consul section.
func consulClient(cfg *config.Config) (*api.Client, error) {
	if cfg.Consul == nil {
		return nil, nil
	}
	c, err := catalog.NewClient(cfg.Consul)
	if err != nil {
		return nil, fmt.Errorf("consul: %w", err)
	}
	return c, nil
}

func sortedNames[V any](m map[string]V) []string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}
