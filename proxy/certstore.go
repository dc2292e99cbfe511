package proxy

import (
	"fmt"

	"github.com/meridian-lb/meridian/config"
)

// certStore is the TLS listener's certificate files as last read, with the
// keep-last-good rule: a pair whose files changed is loaded again, and one
// that fails to load keeps serving its previous version (a new pair is left
// out) while its error is reported. Files are hashed before they are
// parsed, so an unchanged pair costs two reads. The TLSServer's mutex
// guards it.
type certStore struct {
	pairs map[config.CertPair]*pairState
}

// pairState is one configured pair: what is served, and what was last seen
// on disk.
type pairState struct {
	good    *loadedPair
	seen    [32]byte
	seenErr string
	err     error
}

// update reads the configured pairs whose files changed and returns the
// pairs to serve, the errors of those not served as they are on disk,
// whether what is served changed, and whether a file newly failed.
func (c *certStore) update(pairs []config.CertPair) (served []*loadedPair, errs []error, changed, failed bool) {
	keep := make(map[config.CertPair]*pairState, len(pairs))
	for _, p := range pairs {
		ps := c.pairs[p]
		if ps == nil {
			ps = &pairState{}
		}
		keep[p] = ps
		sum, rerr := pairSum(p)
		switch {
		case rerr != nil:
			if msg := rerr.Error(); msg != ps.seenErr {
				ps.seenErr, ps.seen = msg, [32]byte{}
				ps.err = fmt.Errorf("certificate %s / %s: %w", p.Cert, p.Key, rerr)
				failed = true
			}
		case sum != ps.seen || ps.good == nil && ps.err == nil:
			ps.seen, ps.seenErr = sum, ""
			lp, err := loadPair(p)
			if err != nil {
				ps.err = err
				failed = true
			} else {
				ps.good, ps.err = lp, nil
				changed = true
			}
		}
		if ps.err != nil {
			errs = append(errs, ps.err)
		}
		if ps.good != nil {
			served = append(served, ps.good)
		}
	}
	if len(keep) != len(c.pairs) {
		changed = true
	}
	c.pairs = keep
	return served, errs, changed, failed
}

// statuses reports each configured pair for the admin API: the names and
// expiry of what is served, and why the files on disk are not.
func (c *certStore) statuses(pairs []config.CertPair) []CertStatus {
	out := make([]CertStatus, 0, len(pairs))
	for _, p := range pairs {
		cs := CertStatus{Cert: p.Cert, Key: p.Key}
		if ps := c.pairs[p]; ps != nil {
			if ps.good != nil {
				cs.Names = certNames(ps.good.cert.Leaf)
				cs.NotAfter = ps.good.cert.Leaf.NotAfter
			}
			if ps.err != nil {
				cs.Error = ps.err.Error()
			}
		}
		out = append(out, cs)
	}
	return out
}
