package seal

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"parley/storage"
)

// fakeStore is an in-memory KeyStore with the storage.Privacy semantics:
// CreateDataKey is ErrConflict when the tenant has a key, GetDataKey and
// DeleteDataKey ErrNotFound when it has none, RewrapDataKey a
// compare-and-swap on the master key id, ListDataKeys pages by tenant id.
type fakeStore struct {
	mu   sync.Mutex
	keys map[string]storage.DataKey

	creates, gets, lists, rewraps, deletes atomic.Int64

	// getHook, when set, runs at the start of GetDataKey (outside mu).
	getHook func(tenantID string)
}

func newFakeStore() *fakeStore { return &fakeStore{keys: map[string]storage.DataKey{}} }

func cloneKey(k storage.DataKey) storage.DataKey {
	k.Wrapped = bytes.Clone(k.Wrapped)
	return k
}

func (s *fakeStore) CreateDataKey(ctx context.Context, k *storage.DataKey) error {
	s.creates.Add(1)
	if err := k.Validate(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.keys[k.TenantID]; ok {
		return fmt.Errorf("%w: tenant %s has a data key", storage.ErrConflict, k.TenantID)
	}
	s.keys[k.TenantID] = cloneKey(*k)
	return nil
}

func (s *fakeStore) GetDataKey(ctx context.Context, tenantID string) (*storage.DataKey, error) {
	s.gets.Add(1)
	if s.getHook != nil {
		s.getHook(tenantID)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.keys[tenantID]
	if !ok {
		return nil, fmt.Errorf("%w: data key of %s", storage.ErrNotFound, tenantID)
	}
	k = cloneKey(k)
	return &k, nil
}

func (s *fakeStore) ListDataKeys(ctx context.Context, after string, limit int) ([]storage.DataKey, string, error) {
	s.lists.Add(1)
	limit, err := storage.PageLimit(limit)
	if err != nil {
		return nil, "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	for id := range s.keys {
		if id > after {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	next := ""
	if len(ids) > limit {
		ids = ids[:limit]
		next = ids[limit-1]
	}
	page := make([]storage.DataKey, len(ids))
	for i, id := range ids {
		page[i] = cloneKey(s.keys[id])
	}
	return page, next, nil
}

func (s *fakeStore) RewrapDataKey(ctx context.Context, k *storage.DataKey, oldMasterKeyID string) error {
	s.rewraps.Add(1)
	if err := k.Validate(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.keys[k.TenantID]
	if !ok {
		return fmt.Errorf("%w: data key of %s", storage.ErrNotFound, k.TenantID)
	}
	if cur.MasterKeyID != oldMasterKeyID {
		return fmt.Errorf("%w: data key of %s is wrapped by %s, not %s", storage.ErrConflict, k.TenantID, cur.MasterKeyID, oldMasterKeyID)
	}
	cur.MasterKeyID = k.MasterKeyID
	cur.Wrapped = bytes.Clone(k.Wrapped)
	s.keys[k.TenantID] = cur
	return nil
}

func (s *fakeStore) DeleteDataKey(ctx context.Context, tenantID string) error {
	s.deletes.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.keys[tenantID]; !ok {
		return fmt.Errorf("%w: data key of %s", storage.ErrNotFound, tenantID)
	}
	delete(s.keys, tenantID)
	return nil
}

// snapshot copies the stored keys (a database backup).
func (s *fakeStore) snapshot() map[string]storage.DataKey {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := make(map[string]storage.DataKey, len(s.keys))
	for id, k := range s.keys {
		m[id] = cloneKey(k)
	}
	return m
}

// restored is a store holding a snapshot (a database restored from a
// backup).
func restored(snap map[string]storage.DataKey) *fakeStore {
	s := newFakeStore()
	for id, k := range snap {
		s.keys[id] = cloneKey(k)
	}
	return s
}

func (s *fakeStore) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.keys)
}

var _ KeyStore = (*fakeStore)(nil)
var _ KeyStore = storage.Backend(nil)
