package access

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"sync"
	"time"

	"parley/storage"
)

// ErrUnknownKey means a presented key is malformed, unknown, revoked or of
// a disabled tenant (callers cannot tell which, on purpose).
var ErrUnknownKey = errors.New("access: unknown key")

// KeyPrefixLen is how many leading characters of a key find its row.
const KeyPrefixLen = 12

// KeyCache authenticates presented keys (sk_…, pk_…) against their stored
// hashes with a cache: a key's row is read from the database at most once
// per TTL, and unknown prefixes are remembered briefly too, so a flood of
// guesses does not reach the database. Revocations reach the cache within
// Poll: Run reads the revocation feed (storage.Accounts.KeysRevokedSince)
// and forgets what it names; a revocation made through this node is
// forgotten at once (Forget).
type KeyCache struct {
	store      storage.Accounts
	TTL        time.Duration // a known key's row (60s)
	NegTTL     time.Duration // an unknown prefix (5s)
	Poll       time.Duration // revocation feed interval (2s)
	TouchEvery time.Duration // last_used_at writes per key (1m)
	now        func() time.Time

	mu      sync.Mutex
	entries map[string]*cacheEntry // by prefix
	touched map[string]time.Time
	touches chan keyTouch
	lookups int64 // database lookups, for tests and metrics
}

type cacheEntry struct {
	key     *storage.Key // nil: no usable key has this prefix
	fetched time.Time
}

// NewKeyCache returns a cache over store with the default intervals.
func NewKeyCache(store storage.Accounts) *KeyCache {
	return &KeyCache{store: store, TTL: time.Minute, NegTTL: 5 * time.Second, Poll: 2 * time.Second,
		TouchEvery: time.Minute, now: time.Now, entries: map[string]*cacheEntry{}, touched: map[string]time.Time{},
		touches: make(chan keyTouch, 1024)}
}

// maxCacheEntries bounds the cache; past it, expired entries are dropped
// (and, if none, everything: the cache refills from the database).
const maxCacheEntries = 100000

// Lookup returns the stored key that presented is, or ErrUnknownKey. The
// hash is compared in constant time; the caller enforces kind, scopes,
// agents and origins.
func (c *KeyCache) Lookup(ctx context.Context, presented string) (*storage.Key, error) {
	if len(presented) < 16 || len(presented) > 256 { // PARLEY_API_KEY may be as short as 16
		return nil, ErrUnknownKey
	}
	prefix := presented[:KeyPrefixLen]
	now := c.now()
	c.mu.Lock()
	e := c.entries[prefix]
	c.mu.Unlock()
	if e == nil || now.Sub(e.fetched) >= c.ttlOf(e) {
		keys, err := c.store.KeysByPrefix(ctx, prefix)
		if err != nil {
			return nil, err
		}
		e = &cacheEntry{fetched: now}
		if len(keys) > 0 {
			e.key = &keys[0]
		}
		c.mu.Lock()
		c.lookups++
		if len(c.entries) >= maxCacheEntries {
			c.pruneLocked(now)
		}
		c.entries[prefix] = e
		c.mu.Unlock()
	}
	h := sha256.Sum256([]byte(presented))
	if e.key == nil || subtle.ConstantTimeCompare(h[:], e.key.Hash) != 1 {
		return nil, ErrUnknownKey
	}
	c.touch(e.key, now)
	return e.key, nil
}

func (c *KeyCache) ttlOf(e *cacheEntry) time.Duration {
	if e.key == nil {
		return c.NegTTL
	}
	return c.TTL
}

func (c *KeyCache) pruneLocked(now time.Time) {
	for p, e := range c.entries {
		if now.Sub(e.fetched) >= c.ttlOf(e) {
			delete(c.entries, p)
		}
	}
	if len(c.entries) >= maxCacheEntries {
		clear(c.entries)
	}
}

// touch queues a last_used_at write at most once per TouchEvery per key;
// Run writes them off the request's path (dropped when Run is not
// running or is behind: last_used_at is informational).
func (c *KeyCache) touch(k *storage.Key, now time.Time) {
	c.mu.Lock()
	if now.Sub(c.touched[k.ID]) < c.TouchEvery {
		c.mu.Unlock()
		return
	}
	c.touched[k.ID] = now
	if len(c.touched) > maxCacheEntries {
		clear(c.touched)
	}
	c.mu.Unlock()
	select {
	case c.touches <- keyTouch{tenantID: k.TenantID, id: k.ID, at: now.UTC()}:
	default:
	}
}

type keyTouch struct {
	tenantID, id string
	at           time.Time
}

// Forget drops a key from the cache at once (a revocation through this
// node).
func (c *KeyCache) Forget(prefix string) {
	c.mu.Lock()
	delete(c.entries, prefix)
	c.mu.Unlock()
}

// Lookups returns how many times the database was asked for a key.
func (c *KeyCache) Lookups() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lookups
}

// Run follows the revocation feed every Poll until ctx is done, and
// writes the queued last_used_at updates. Each poll asks for revocations
// since the previous poll minus a margin (so clock skew between nodes
// does not hide one). It runs in the caller's goroutine.
func (c *KeyCache) Run(ctx context.Context) error {
	const margin = 30 * time.Second
	t := time.NewTicker(c.Poll)
	defer t.Stop()
	since := c.now().Add(-margin)
	for {
		select {
		case <-ctx.Done():
			return nil
		case tc := <-c.touches:
			_ = c.store.TouchKey(ctx, tc.tenantID, tc.id, tc.at)
			continue
		case <-t.C:
		}
		start := c.now()
		keys, err := c.store.KeysRevokedSince(ctx, since.UTC())
		if err != nil {
			continue // retried at the next tick, from the same point
		}
		c.mu.Lock()
		for _, k := range keys {
			delete(c.entries, k.Prefix)
		}
		c.mu.Unlock()
		since = start.Add(-margin)
	}
}
