package routing

import (
	"errors"
	"fmt"
	"hash"

	"github.com/meridian-lb/meridian/config"
	"github.com/meridian-lb/meridian/internal/tlsfiles"
)

// TLS material named by the config (a pool's upstream CA and client
// certificate, a route's client CA) is read once per table, by Compile
// through package tlsfiles: the proxy's transports, the health engine's
// https probes and the TLS listener's client-certificate policy all use
// what the table holds, so after a file is rotated they change together,
// at the next table, and a file that cannot be used rejects the table (the
// last good one keeps serving) instead of failing requests later. Each
// carries a fingerprint of its settings and file contents, which is part
// of the table's Version: a rotated file makes a new table.

// UpstreamTLS is a pool's compiled tls: block.
type UpstreamTLS = tlsfiles.UpstreamTLS

// ClientCA is a route's client CA file.
type ClientCA = tlsfiles.ClientCA

// compileTLSFiles loads every pool's upstream TLS and every route's client
// CA into t, each file once however many pools or routes name it. It
// returns one config.Problem per problem, at its config path, so that
// Compile's caller gets each with its line.
func compileTLSFiles(cfg *config.Config, t *Table) error {
	var errs []error
	for _, name := range sortedKeys(t.Pools) {
		p := t.Pools[name]
		if p.TLS == nil {
			continue
		}
		ut, kerrs := tlsfiles.LoadUpstream(p.TLS)
		for _, ke := range kerrs {
			errs = append(errs, config.Problem{Path: fmt.Sprintf("pools.%s.tls.%s", name, ke.Key), Msg: ke.Err.Error()})
		}
		p.ClientTLS = ut
	}
	cas := map[string]*ClientCA{}
	t.ClientCAs = make([]*ClientCA, len(t.Routes))
	for i, r := range t.Routes {
		rt := r.Config.TLS
		if rt == nil || rt.ClientAuth != "require" || rt.ClientCA == "" {
			continue
		}
		ca, ok := cas[rt.ClientCA]
		if !ok {
			var err error
			if ca, err = tlsfiles.LoadClientCA(rt.ClientCA); err != nil {
				errs = append(errs, config.Problem{Path: fmt.Sprintf("routes[%d].tls.client_ca", i), Msg: err.Error()})
			}
			cas[rt.ClientCA] = ca
		}
		t.ClientCAs[i] = ca
	}
	return errors.Join(errs...)
}

// hashTLSFiles adds the fingerprints of t's TLS material to a version hash.
func hashTLSFiles(h hash.Hash, t *Table) {
	for _, name := range sortedKeys(t.Pools) {
		if ut := t.Pools[name].ClientTLS; ut != nil {
			fmt.Fprintf(h, "pooltls\x00%s\x00%s\n", name, ut.Fingerprint)
		}
	}
	for i, ca := range t.ClientCAs {
		if ca != nil {
			fmt.Fprintf(h, "clientca\x00%d\x00%s\n", i, ca.Fingerprint)
		}
	}
}

// MatchesHost reports whether the route can take requests for host (a
// normalised name, see NormalizeHost): the TLS listener asks it to decide
// at the handshake whether a name needs a client certificate, with the
// same host rules the router uses.
func (r *Route) MatchesHost(host string) bool { return r.matchHost(host) }
