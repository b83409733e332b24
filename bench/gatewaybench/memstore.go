package main

import (
	"context"
	"sort"
	"sync"
	"time"

	"parley/storage"
)

// memStore is an in-memory storage.Store for -store mem: the gateway with
// storage taken out of the picture. It keeps every record of the run.
//
// The embedded (nil) Store keeps the benchmark compiling while the Store
// interface grows; a method added there and not implemented here panics
// when the gateway calls it under -store mem (the harness then reports the
// child's exit). Implement new methods here when that happens.
type memStore struct {
	storage.Store

	mu    sync.Mutex
	convs map[string]*storage.Conversation
	turns map[string][]storage.Turn
	keys  []storage.APIKey
}

var _ storage.Store = (*memStore)(nil)

func newMemStore() *memStore {
	return &memStore{convs: map[string]*storage.Conversation{}, turns: map[string][]storage.Turn{}}
}

func (m *memStore) Ping(context.Context) error { return nil }
func (m *memStore) Close() error               { return nil }

func (m *memStore) CreateConversation(_ context.Context, c *storage.Conversation) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.convs[c.ID]; ok {
		return storage.ErrConflict
	}
	cc := *c
	m.convs[c.ID] = &cc
	return nil
}

func (m *memStore) EndConversation(_ context.Context, tenant, id string, at time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.convs[id]
	if !ok || c.TenantID != tenant {
		return storage.ErrNotFound
	}
	if c.EndedAt.IsZero() {
		c.EndedAt = at
		c.DurationMS = at.Sub(c.StartedAt).Milliseconds()
	}
	return nil
}

func (m *memStore) AppendTurn(_ context.Context, t *storage.Turn) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.convs[t.ConversationID]
	if !ok || c.TenantID != t.TenantID {
		return storage.ErrNotFound
	}
	ts := m.turns[t.ConversationID]
	if t.Seq == 0 {
		t.Seq = len(ts) + 1
	}
	for _, x := range ts {
		if x.ID == t.ID || x.Seq == t.Seq {
			return storage.ErrConflict
		}
	}
	c.TurnCount++
	m.turns[t.ConversationID] = append(ts, *t)
	return nil
}

func (m *memStore) GetConversation(_ context.Context, tenant, id string) (*storage.Conversation, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.convs[id]
	if !ok || c.TenantID != tenant {
		return nil, storage.ErrNotFound
	}
	cc := *c
	return &cc, nil
}

func (m *memStore) ListTurns(_ context.Context, tenant, id string) ([]storage.Turn, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.convs[id]
	if !ok || c.TenantID != tenant {
		return nil, storage.ErrNotFound
	}
	ts := append([]storage.Turn(nil), m.turns[id]...)
	sort.Slice(ts, func(i, j int) bool { return ts[i].Seq < ts[j].Seq })
	return ts, nil
}

func (m *memStore) DeleteExpired(context.Context, time.Time, int) (int, error) { return 0, nil }

func (m *memStore) CreateAPIKey(_ context.Context, k *storage.APIKey) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.keys = append(m.keys, *k)
	return nil
}

func (m *memStore) APIKeysByPrefix(_ context.Context, p string) ([]storage.APIKey, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []storage.APIKey
	for _, k := range m.keys {
		if k.Prefix == p {
			out = append(out, k)
		}
	}
	return out, nil
}

func (m *memStore) CountAPIKeys(_ context.Context, tenant string) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, k := range m.keys {
		if k.TenantID == tenant {
			n++
		}
	}
	return n, nil
}

func (m *memStore) TouchAPIKey(_ context.Context, id string, at time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := range m.keys {
		if m.keys[i].ID == id {
			if at.After(m.keys[i].LastUsedAt) {
				m.keys[i].LastUsedAt = at
			}
			return nil
		}
	}
	return storage.ErrNotFound
}

// WriteBatch applies the writes one by one (the in-memory store has no
// transactions to share).
func (s *memStore) WriteBatch(ctx context.Context, ws []storage.Write) ([]error, error) {
	rest := ws[:0:0]
	for _, w := range ws {
		if w.Usage == nil && w.Audio == nil { // usage events and audio are not kept here
			rest = append(rest, w)
		}
	}
	return storage.WriteEach(ctx, s, rest)
}

// The data keys of the keyring (seal.KeyStore), one per tenant.
var memStoreDataKeys sync.Map // tenant -> storage.DataKey (one memStore per process)

func (s *memStore) CreateDataKey(_ context.Context, k *storage.DataKey) error {
	if _, loaded := memStoreDataKeys.LoadOrStore(k.TenantID, *k); loaded {
		return storage.ErrConflict
	}
	return nil
}

func (s *memStore) GetDataKey(_ context.Context, tenantID string) (*storage.DataKey, error) {
	v, ok := memStoreDataKeys.Load(tenantID)
	if !ok {
		return nil, storage.ErrNotFound
	}
	k := v.(storage.DataKey)
	return &k, nil
}

func (s *memStore) ListDataKeys(context.Context, string, int) ([]storage.DataKey, string, error) {
	return nil, "", nil
}

func (s *memStore) RewrapDataKey(context.Context, *storage.DataKey, string) error {
	return storage.ErrNotFound
}

func (s *memStore) DeleteDataKey(_ context.Context, tenantID string) error {
	memStoreDataKeys.Delete(tenantID)
	return nil
}

// memStoreEphemeralKeys holds the ephemeral keys of every memStore: a
// map[string]*storage.EphemeralKey by prefix per store, which the store's
// mu guards. It lives outside the struct so that ephemeral keys could be
// added by appending to this file only; the keys of a store live as long
// as the process.
var memStoreEphemeralKeys sync.Map // *memStore -> map[string]*storage.EphemeralKey

// ephemeralKeys returns m's ephemeral keys by prefix; m.mu must be held.
func (m *memStore) ephemeralKeys() map[string]*storage.EphemeralKey {
	if v, ok := memStoreEphemeralKeys.Load(m); ok {
		return v.(map[string]*storage.EphemeralKey)
	}
	keys := map[string]*storage.EphemeralKey{}
	memStoreEphemeralKeys.Store(m, keys)
	return keys
}

// memStoreEphemeralCopy returns a copy of k sharing no memory with it.
func memStoreEphemeralCopy(k *storage.EphemeralKey) *storage.EphemeralKey {
	c := *k
	c.Hash = append([]byte(nil), k.Hash...)
	c.Session = append([]byte(nil), k.Session...)
	return &c
}

// CreateEphemeralKey stores a copy of k with its times at millisecond
// precision in UTC, as the real backends do.
func (m *memStore) CreateEphemeralKey(_ context.Context, k *storage.EphemeralKey) error {
	if err := k.Validate(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	keys := m.ephemeralKeys()
	if _, taken := keys[k.Prefix]; taken {
		return storage.ErrConflict
	}
	for _, x := range keys {
		if x.ID == k.ID {
			return storage.ErrConflict
		}
	}
	c := memStoreEphemeralCopy(k)
	for _, t := range []*time.Time{&c.CreatedAt, &c.ExpiresAt, &c.UsedAt} {
		*t = t.Truncate(time.Millisecond).UTC()
	}
	keys[k.Prefix] = c
	return nil
}

// ConsumeEphemeralKey has the semantics of the real backends (checks in
// the order hash, expiry, use; one winner under the mutex), except that
// the hash comparison need not be constant-time in a test double.
func (m *memStore) ConsumeEphemeralKey(_ context.Context, prefix string, hash []byte, at time.Time) (*storage.EphemeralKey, error) {
	if at.IsZero() {
		return nil, storage.ErrInvalid
	}
	at = at.Truncate(time.Millisecond).UTC()
	m.mu.Lock()
	defer m.mu.Unlock()
	k, ok := m.ephemeralKeys()[prefix]
	switch {
	case !ok || string(k.Hash) != string(hash):
		return nil, storage.ErrNotFound
	case !k.ExpiresAt.After(at):
		return nil, storage.ErrExpired
	case !k.UsedAt.IsZero():
		return nil, storage.ErrUsed
	}
	k.UsedAt = at
	return memStoreEphemeralCopy(k), nil
}
