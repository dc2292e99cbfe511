package auth

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/sync/singleflight"
)

const (
	// maxHtpasswdBytes bounds an htpasswd file: about 50,000 users, far
	// more than a file-based user list should hold, and a bound on what a
	// wrong path (a log file, a disk image) can make a reload read.
	maxHtpasswdBytes = 4 << 20

	// basicCacheSize bounds the cache of verified credentials. Each entry
	// is a 32-byte key and a user name; 1024 covers the distinct users a
	// route sees between reloads while keeping the cache a few tens of KiB.
	basicCacheSize = 1024

	// maxBcryptCost is the highest bcrypt cost accepted. Cost 14 is about
	// one second of CPU per check on a current core; higher makes every
	// wrong password a denial of service (htpasswd -B defaults to 5).
	maxBcryptCost = 14

	// defaultRealm is the realm when none is given, config.DefaultAuthRealm.
	defaultRealm = "meridian"
)

// Basic checks HTTP Basic credentials against the users of one htpasswd
// file. It is safe for concurrent use.
type Basic struct {
	users     map[string][]byte // user → bcrypt hash
	dummy     []byte            // a hash to check unknown users against
	fp        [32]byte
	challenge string

	// compare is bcrypt.CompareHashAndPassword; tests count calls to it.
	compare func(hash, password []byte) error
	macKey  [32]byte // random per Basic: cache keys are useless elsewhere

	flight singleflight.Group

	mu    sync.Mutex
	cache map[[32]byte]string // HMAC(user, password) → user
	ring  [][32]byte          // cache keys in insertion order, for eviction
	next  int                 // ring slot to reuse once full
}

// LoadBasic reads the htpasswd file at path. Lines are "user:hash"; blank
// lines and lines starting with "#" are skipped. Only bcrypt hashes ($2a$,
// $2b$, $2y$, cost at most 14) are accepted. An unreadable or empty file, a
// malformed line, a non-bcrypt hash or a duplicate user is an error naming
// the file and line. realm "" means "meridian".
func LoadBasic(path, realm string) (*Basic, error) {
	data, err := readCapped(path, maxHtpasswdBytes)
	if err != nil {
		return nil, fmt.Errorf("htpasswd %q: %w", path, err)
	}
	users, err := parseHtpasswd(data)
	if err != nil {
		return nil, fmt.Errorf("htpasswd %q: %w", path, err)
	}
	if realm == "" {
		realm = defaultRealm
	}
	b := &Basic{
		users:     users,
		fp:        sha256.Sum256(data),
		challenge: "Basic realm=" + quote(realm) + `, charset="UTF-8"`,
		compare:   bcrypt.CompareHashAndPassword,
		cache:     make(map[[32]byte]string),
		ring:      make([][32]byte, 0, basicCacheSize),
	}
	for _, h := range users {
		b.dummy = h // any one: it only has to cost what a real check costs
		break
	}
	if _, err := rand.Read(b.macKey[:]); err != nil {
		return nil, fmt.Errorf("htpasswd %q: cache key: %w", path, err)
	}
	return b, nil
}

// readCapped reads a whole file of at most max bytes.
func readCapped(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("larger than %s", sizeText(max))
	}
	return data, nil
}

func sizeText(n int64) string {
	if n%(1<<20) == 0 {
		return strconv.FormatInt(n>>20, 10) + " MiB"
	}
	return strconv.FormatInt(n>>10, 10) + " KiB"
}

// parseHtpasswd parses htpasswd content into user → bcrypt hash. Errors
// name the 1-based line.
func parseHtpasswd(data []byte) (map[string][]byte, error) {
	users := make(map[string][]byte)
	firstLine := make(map[string]int)
	for n := 1; len(data) > 0; n++ {
		var line []byte
		line, data, _ = bytes.Cut(data, []byte{'\n'})
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		user, hash, ok := bytes.Cut(line, []byte{':'})
		switch {
		case !ok:
			return nil, fmt.Errorf("line %d: missing \":\" between user and hash", n)
		case len(user) == 0:
			return nil, fmt.Errorf("line %d: empty user name", n)
		case len(hash) == 0:
			return nil, fmt.Errorf("line %d: user %q: empty hash", n, user)
		}
		if first, dup := firstLine[string(user)]; dup {
			return nil, fmt.Errorf("line %d: duplicate user %q (first on line %d)", n, user, first)
		}
		if err := checkBcrypt(hash); err != nil {
			return nil, fmt.Errorf("line %d: user %q: %w", n, user, err)
		}
		firstLine[string(user)] = n
		users[string(user)] = bytes.Clone(hash)
	}
	if len(users) == 0 {
		return nil, errors.New("no users")
	}
	return users, nil
}

// checkBcrypt validates a modular-crypt bcrypt hash fully at load, so a
// hash that could never match is reported on its line, not discovered as a
// user who can never log in.
func checkBcrypt(h []byte) error {
	if len(h) < 4 || h[0] != '$' || h[1] != '2' || h[3] != '$' || (h[2] != 'a' && h[2] != 'b' && h[2] != 'y') {
		return errors.New("unsupported hash scheme (only bcrypt $2a$, $2b$ and $2y$; make one with htpasswd -B)")
	}
	// "$2b$" cost(2) "$" salt(22) hash(31)
	if len(h) != 60 || h[6] != '$' {
		return errors.New("malformed bcrypt hash")
	}
	for _, c := range h[7:] {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '/') {
			return errors.New("malformed bcrypt hash")
		}
	}
	cost, err := bcrypt.Cost(h)
	if err != nil {
		return errors.New("malformed bcrypt hash")
	}
	if cost > maxBcryptCost {
		return fmt.Errorf("bcrypt cost %d above the maximum %d", cost, maxBcryptCost)
	}
	return nil
}

// Fingerprint is the SHA-256 of the htpasswd file's content. The realm is
// not part of it: it comes from the config, whose changes the caller sees.
func (b *Basic) Fingerprint() [32]byte { return b.fp }

// Check returns the user when r carries Basic credentials matching the
// file. A success is cached; a failure always costs a bcrypt run.
func (b *Basic) Check(r *http.Request) (user string, ok bool) {
	user, pass, ok := r.BasicAuth()
	if !ok {
		return "", false
	}
	key := b.cacheKey(user, pass)
	b.mu.Lock()
	u, hit := b.cache[key]
	b.mu.Unlock()
	if hit {
		return u, true
	}
	hash, known := b.users[user]
	v, _, _ := b.flight.Do(string(key[:]), func() (any, error) {
		if !known {
			_ = b.compare(b.dummy, []byte(pass))
			return false, nil
		}
		if b.compare(hash, []byte(pass)) != nil {
			return false, nil
		}
		b.remember(key, user)
		return true, nil
	})
	if v.(bool) {
		return user, true
	}
	return "", false
}

// cacheKey is HMAC-SHA256(user length, user, password) under the Basic's
// random key: it identifies credentials without keeping the password, and
// cannot be brute-forced without the key.
func (b *Basic) cacheKey(user, pass string) [32]byte {
	m := hmac.New(sha256.New, b.macKey[:])
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(user)))
	m.Write(n[:])
	io.WriteString(m, user)
	io.WriteString(m, pass)
	var k [32]byte
	m.Sum(k[:0])
	return k
}

// remember caches a verified credential, replacing the oldest entry when
// the cache is full.
func (b *Basic) remember(key [32]byte, user string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.cache[key]; ok {
		return
	}
	if len(b.ring) < basicCacheSize {
		b.ring = append(b.ring, key)
	} else {
		delete(b.cache, b.ring[b.next])
		b.ring[b.next] = key
		b.next = (b.next + 1) % basicCacheSize
	}
	b.cache[key] = user
}

// Challenge sets the WWW-Authenticate header of a 401 answer.
func (b *Basic) Challenge(h http.Header) {
	h.Set("WWW-Authenticate", b.challenge)
}
