package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"sort"
	"strings"
	"sync"
	"time"

	"parley/agent"
	"parley/storage"
	"parley/storage/seal"
)

// memStore is an in-memory storage.Store for gateway tests; the real
// backends are tested by storage/storagetest and end to end in cmd/parleyd.
type memStore struct {
	mu    sync.Mutex
	convs map[string]*storage.Conversation
	turns map[string][]storage.Turn
	keys  []storage.APIKey
	// ephemeral keys by prefix
	ephemeral map[string]*storage.EphemeralKey
	fail      error // Ping fails with it
	// failWrites makes conversation and turn writes fail.
	failWrites error
	audio      []storage.TurnAudio
	usage      []storage.UsageEvent
}

func newMemStore() *memStore {
	return &memStore{convs: map[string]*storage.Conversation{}, turns: map[string][]storage.Turn{},
		ephemeral: map[string]*storage.EphemeralKey{}}
}

func (m *memStore) Ping(context.Context) error { m.mu.Lock(); defer m.mu.Unlock(); return m.fail }
func (m *memStore) Close() error               { return nil }
func (m *memStore) CreateConversation(_ context.Context, c *storage.Conversation) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failWrites != nil {
		return m.failWrites
	}
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
	if m.failWrites != nil {
		return m.failWrites
	}
	c, ok := m.convs[t.ConversationID]
	if !ok || c.TenantID != t.TenantID {
		return storage.ErrNotFound
	}
	c.TurnCount++
	m.turns[t.ConversationID] = append(m.turns[t.ConversationID], *t)
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
func (m *memStore) CountAPIKeys(context.Context, string) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.keys), nil
}
func (m *memStore) TouchAPIKey(context.Context, string, time.Time) error { return nil }

// onlyConversation returns the single stored conversation and its turns.
func (m *memStore) onlyConversation() (*storage.Conversation, []storage.Turn, int) {
	m.mu.Lock()
	n := len(m.convs)
	var c *storage.Conversation
	for _, x := range m.convs {
		cc := *x
		c = &cc
	}
	m.mu.Unlock()
	if c == nil {
		return nil, nil, 0
	}
	ts, _ := m.ListTurns(context.Background(), c.TenantID, c.ID)
	return c, ts, n
}

// scriptAgent is a Responder test fake: it emits its deltas (pausing
// between them when asked), then fails with err if set; with block it waits
// for ctx after the deltas.
type scriptAgent struct {
	deltas []string
	pause  time.Duration
	block  bool
	err    error
	usage  agent.Usage

	mu       sync.Mutex
	requests []*agent.Request
	started  chan struct{} // receives one value per call, if non-nil
	ctxErr   chan error    // receives ctx.Err() when a blocked call ends, if non-nil
}

func (a *scriptAgent) Respond(ctx context.Context, req *agent.Request, emit func(string) error) (agent.Usage, error) {
	a.mu.Lock()
	a.requests = append(a.requests, req)
	a.mu.Unlock()
	if a.started != nil {
		a.started <- struct{}{}
	}
	for _, d := range a.deltas {
		if a.pause > 0 {
			select {
			case <-time.After(a.pause):
			case <-ctx.Done():
				return agent.Usage{}, ctx.Err()
			}
		}
		if err := emit(d); err != nil {
			return agent.Usage{}, err
		}
	}
	if a.block {
		<-ctx.Done()
		if a.ctxErr != nil {
			a.ctxErr <- ctx.Err()
		}
		return agent.Usage{}, ctx.Err()
	}
	return a.usage, a.err
}

func (a *scriptAgent) lastRequest() *agent.Request {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.requests) == 0 {
		return nil
	}
	return a.requests[len(a.requests)-1]
}

// staticRetriever returns fixed passages.
type staticRetriever []agent.Passage

func (s staticRetriever) Search(string, int) []agent.Passage { return s }

func (m *memStore) TruncateTurnText(_ context.Context, tenant, conv, item string, sealed []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	ts := m.turns[conv]
	for i := range ts {
		if ts[i].ID == item && ts[i].TenantID == tenant {
			if ts[i].TextStored {
				ts[i].TextSealed = sealed
			}
			return nil
		}
	}
	return storage.ErrNotFound
}

// WriteBatch applies ws one by one; it keeps Audio and Usage writes (which
// only a Backend stores) in audio and usage.
func (m *memStore) WriteBatch(ctx context.Context, ws []storage.Write) ([]error, error) {
	errs := make([]error, len(ws))
	rest := make([]storage.Write, 0, len(ws))
	idx := make([]int, 0, len(ws))
	m.mu.Lock()
	for i, w := range ws {
		switch {
		case w.Audio != nil && w.Valid():
			m.audio = append(m.audio, *w.Audio)
		case w.Usage != nil && w.Valid():
			m.usage = append(m.usage, *w.Usage)
		default:
			rest, idx = append(rest, w), append(idx, i)
		}
	}
	m.mu.Unlock()
	es, err := storage.WriteEach(ctx, m, rest)
	if err != nil {
		return nil, err
	}
	for i, e := range es {
		errs[idx[i]] = e
	}
	return errs, nil
}

func (m *memStore) loggedAudio() []storage.TurnAudio {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]storage.TurnAudio(nil), m.audio...)
}

func (m *memStore) usageEvents() []storage.UsageEvent {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]storage.UsageEvent(nil), m.usage...)
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
	keys := m.ephemeral
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
	k, ok := m.ephemeral[prefix]
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

// fakeSealer "seals" by framing the plaintext with the tenant and AAD, so
// tests can check both; the real keyring is tested in storage/seal and
// end to end in cmd/parleyd.
type fakeSealer struct{}

const fakeSealPrefix = "sealed|"

func (fakeSealer) Seal(_ context.Context, tenantID string, plaintext, aad []byte) ([]byte, error) {
	return []byte(fakeSealPrefix + tenantID + "|" + string(aad) + "|" + string(plaintext)), nil
}

func (fakeSealer) Open(_ context.Context, tenantID string, sealed, aad []byte) ([]byte, error) {
	prefix := fakeSealPrefix + tenantID + "|" + string(aad) + "|"
	if !strings.HasPrefix(string(sealed), prefix) {
		return nil, errors.New("fakeSealer: not sealed for this tenant and row")
	}
	return sealed[len(prefix):], nil
}

// Pseudonym is a keyed hash of the id, as the keyring's is: the id itself
// never appears in it.
func (fakeSealer) Pseudonym(_ context.Context, tenantID, endUserID string) (string, error) {
	h := sha256.Sum256([]byte(tenantID + "\x00" + endUserID))
	return "eu_" + hex.EncodeToString(h[:16]), nil
}

// opened is a stored turn's text as fakeSealer sealed it ("" if none);
// it fails the test when the text was not sealed for its own row.
func opened(t interface {
	Helper()
	Fatalf(string, ...any)
}, tr storage.Turn) string {
	t.Helper()
	if len(tr.TextSealed) == 0 {
		return ""
	}
	want := fakeSealPrefix + tr.TenantID + "|" + string(seal.TurnAAD(tr.TenantID, tr.ConversationID, tr.ID)) + "|"
	s := string(tr.TextSealed)
	if !strings.HasPrefix(s, want) {
		t.Fatalf("turn %s: text not sealed for its row: %q", tr.ID, s)
	}
	return s[len(want):]
}

func (m *memStore) conversations() []storage.Conversation {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]storage.Conversation, 0, len(m.convs))
	for _, c := range m.convs {
		out = append(out, *c)
	}
	return out
}
