// Package seal encrypts Parley's personal data at rest: transcript text,
// logged audio and agent settings are sealed with AES-256-GCM under a
// per-tenant data key. A data key is stored only wrapped (AES-256-GCM) by
// a master key that comes from the environment or a key file, never from
// the database; deleting a tenant's data key crypto-shreds everything
// sealed under it, in the database and in its backups alike, once no copy
// of that wrapped key can be unwrapped any more (after a master key
// rotation for backups).
//
// Formats:
//
//	sealed value:     0x02 | key id (8 bytes) | nonce (12 random bytes) | AES-256-GCM(data key, nonce, plaintext, aad) with its 16-byte tag
//	wrapped data key: 0x01 | nonce (12 random bytes) | AES-256-GCM(master key, nonce, data key, wrap AAD) with its tag
//
// The key id is derived from the data key (HKDF, not reversible): a value
// sealed under a data key that is no longer the tenant's (shredded, and a
// new one made since; or sealed by a node still caching the old key) is
// recognised as such and opens to ErrShredded, not ErrCorrupt, on every
// node and whatever the clocks say.
//
// The wrap AAD binds the wrapped key to its tenant and to the master key
// id, so a wrapped key copied to another tenant's row, or relabelled with
// another master key id, does not unwrap. The AAD of a sealed value
// (TurnAAD, AudioAAD, AgentAAD) binds it to its row.
//
// A Keyring caches each tenant's unwrapped key as a ready cipher.AEAD for
// Options.CacheTTL, so sealing a turn costs one AES-GCM pass and a random
// nonce. It starts no goroutine.
package seal

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"
	"sync"
	"time"

	"parley/storage"
)

const (
	version     = 1 // of wrapped data keys
	version2    = 2 // of sealed values (which name their data key)
	keyIDSize   = 8
	nonceSize   = 12
	tagSize     = 16
	overhead    = 1 + keyIDSize + nonceSize + tagSize // of a sealed value
	wrappedSize = 1 + nonceSize + tagSize + KeySize   // of a wrapped data key
	keyIDInfo   = "parley data key id v1"

	// DefaultCacheTTL is how long an unwrapped data key is cached when
	// Options.CacheTTL is zero.
	DefaultCacheTTL = time.Minute

	pseudonymInfo = "parley pseudonym v1"
	rotatePage    = 500
	sweepEvery    = 256 // cache installs between sweeps of expired entries
	maxRotateErrs = 10  // errors Rotate reports one by one
)

var (
	// ErrNoMasterKey: no master key is configured.
	ErrNoMasterKey = errors.New("seal: no master key")
	// ErrShredded: the tenant has no data key when opening a sealed
	// value: it was crypto-shredded, or the tenant never sealed anything.
	ErrShredded = errors.New("seal: tenant has no data key (crypto-shredded, or it never sealed data)")
	// ErrUnknownMasterKey: a data key is wrapped by a master key that is
	// not loaded; the error names that master key's id.
	ErrUnknownMasterKey = errors.New("seal: data key is wrapped by a master key that is not loaded")
	// ErrCorrupt: a sealed value or wrapped key does not authenticate
	// (tampered, truncated, moved to another row, sealed for another
	// tenant) or has an unknown version.
	ErrCorrupt = errors.New("seal: sealed data does not authenticate")
)

// KeyStore is the part of storage.Privacy the keyring needs
// (storage.Backend satisfies it).
type KeyStore interface {
	CreateDataKey(ctx context.Context, k *storage.DataKey) error
	GetDataKey(ctx context.Context, tenantID string) (*storage.DataKey, error)
	ListDataKeys(ctx context.Context, after string, limit int) ([]storage.DataKey, string, error)
	RewrapDataKey(ctx context.Context, k *storage.DataKey, oldMasterKeyID string) error
	DeleteDataKey(ctx context.Context, tenantID string) error
}

// Options tune a Keyring.
type Options struct {
	// CacheTTL is how long an unwrapped data key is cached (default
	// DefaultCacheTTL; negative: not cached, every call reads the store).
	// It bounds how late another node sees a shred.
	CacheTTL time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Keyring seals and opens tenants' data under their data keys. It is safe
// for concurrent use.
type Keyring struct {
	store   KeyStore
	current *master
	masters map[string]*master
	ids     []string // of masters, current first
	ttl     time.Duration
	now     func() time.Time

	cache sync.Map // tenant id → *dataKey

	mu       sync.Mutex // guards the fields below and cache writes
	gen      uint64     // bumped by Forget: a load started before is not cached
	flights  map[flightKey]*flight
	installs int
}

type master struct {
	id   string
	aead cipher.AEAD
}

// dataKey is a tenant's unwrapped data key, ready to use. The raw key is
// not kept.
type dataKey struct {
	id      [keyIDSize]byte // HKDF(data key, keyIDInfo): names the key in what it seals
	aead    cipher.AEAD
	macs    sync.Pool // of HMAC-SHA256 hash.Hash keyed with HKDF(data key, "parley pseudonym v1")
	expires time.Time
}

type flightKey struct {
	tenant string
	create bool
}

// flight is one load of a tenant's data key that concurrent callers wait
// for, so a node never creates two data keys for a tenant.
type flight struct {
	done chan struct{}
	dk   *dataKey
	err  error
}

// NewKeyring returns a keyring over store. masters[0] is the current
// master key (it wraps new data keys); the others only unwrap.
// ErrNoMasterKey when masters is empty.
func NewKeyring(store KeyStore, masters []MasterKey, opt Options) (*Keyring, error) {
	if store == nil {
		return nil, errors.New("seal: NewKeyring needs a KeyStore")
	}
	if len(masters) == 0 {
		return nil, ErrNoMasterKey
	}
	k := &Keyring{
		store:   store,
		masters: make(map[string]*master, len(masters)),
		ttl:     opt.CacheTTL,
		now:     opt.Now,
		flights: map[flightKey]*flight{},
	}
	if k.ttl == 0 {
		k.ttl = DefaultCacheTTL
	}
	if k.now == nil {
		k.now = time.Now
	}
	for i, mk := range masters {
		if err := checkKeyID(mk.ID); err != nil {
			return nil, fmt.Errorf("seal: master key %d: %w", i+1, err)
		}
		if _, dup := k.masters[mk.ID]; dup {
			return nil, fmt.Errorf("seal: master key %d (id %q): the id is used twice", i+1, mk.ID)
		}
		if len(mk.Key) != KeySize {
			return nil, fmt.Errorf("seal: master key %d (id %q) is %d bytes, want %d", i+1, mk.ID, len(mk.Key), KeySize)
		}
		aead, err := newAEAD(mk.Key)
		if err != nil {
			return nil, err
		}
		m := &master{id: mk.ID, aead: aead}
		k.masters[mk.ID] = m
		k.ids = append(k.ids, mk.ID)
		if i == 0 {
			k.current = m
		}
	}
	return k, nil
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	return aead, nil
}

// CurrentMasterKeyID returns the id of the master key that wraps new data
// keys.
func (k *Keyring) CurrentMasterKeyID() string { return k.current.id }

// Seal encrypts plaintext for tenantID, creating the tenant's data key on
// first use. aad binds the result to its row (TurnAAD, AudioAAD,
// AgentAAD): Open needs the same aad. The result is 37 bytes longer than
// plaintext.
func (k *Keyring) Seal(ctx context.Context, tenantID string, plaintext, aad []byte) ([]byte, error) {
	dk, err := k.dataKey(ctx, tenantID, true)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 1+keyIDSize+nonceSize, overhead+len(plaintext))
	out[0] = version2
	copy(out[1:], dk.id[:])
	nonce := out[1+keyIDSize : 1+keyIDSize+nonceSize]
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("seal: nonce: %w", err)
	}
	return dk.aead.Seal(out, nonce, plaintext, aad), nil
}

// Open decrypts what Seal returned for tenantID with the same aad.
// ErrShredded if the tenant has no data key, ErrUnknownMasterKey if its
// data key's master key is not loaded, ErrCorrupt if sealed does not
// authenticate (tampered, truncated, another row's or tenant's).
func (k *Keyring) Open(ctx context.Context, tenantID string, sealed, aad []byte) ([]byte, error) {
	if len(sealed) < overhead {
		return nil, fmt.Errorf("%w: %d bytes is shorter than any sealed value", ErrCorrupt, len(sealed))
	}
	if sealed[0] != version2 {
		return nil, fmt.Errorf("%w: unknown version %d", ErrCorrupt, sealed[0])
	}
	id, sealed := sealed[1:1+keyIDSize], sealed[1+keyIDSize:]
	dk, err := k.dataKey(ctx, tenantID, false)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(id, dk.id[:]) {
		return nil, fmt.Errorf("%w: tenant %q: sealed under a data key that is no longer its own", ErrShredded, tenantID)
	}
	pt, err := dk.aead.Open(nil, sealed[:nonceSize], sealed[nonceSize:], aad)
	if err != nil {
		return nil, ErrCorrupt
	}
	return pt, nil
}

// Pseudonym returns a stable pseudonym of an end-user identifier for a
// tenant: "eu_" and 32 lowercase hex digits of an HMAC-SHA256 of
// endUserID under a key derived from the tenant's data key. It is the
// same for (tenant, endUserID) while the data key lives, differs between
// tenants, and cannot be linked to endUserID once the tenant is shredded.
// It creates the tenant's data key if needed. An empty endUserID gives "".
func (k *Keyring) Pseudonym(ctx context.Context, tenantID, endUserID string) (string, error) {
	if endUserID == "" {
		return "", nil
	}
	dk, err := k.dataKey(ctx, tenantID, true)
	if err != nil {
		return "", err
	}
	mac := dk.macs.Get().(hash.Hash)
	mac.Reset()
	io.WriteString(mac, endUserID)
	var sum [sha256.Size]byte
	mac.Sum(sum[:0])
	dk.macs.Put(mac)
	var out [3 + 32]byte
	copy(out[:], "eu_")
	hex.Encode(out[3:], sum[:16])
	return string(out[:]), nil
}

// Shred deletes the tenant's data key, crypto-shredding everything sealed
// under it, and forgets the cached copy. Other nodes stop using their
// cached copy within their CacheTTL. A tenant without a data key is not
// an error.
func (k *Keyring) Shred(ctx context.Context, tenantID string) error {
	k.Forget(tenantID)
	err := k.store.DeleteDataKey(ctx, tenantID)
	k.Forget(tenantID) // a load that raced the delete is not cached
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("seal: shredding the data key of tenant %q: %w", tenantID, err)
	}
	return nil
}

// Forget drops the cached data key of a tenant (e.g. after storage purged
// the tenant); the next use reads the store.
func (k *Keyring) Forget(tenantID string) {
	k.mu.Lock()
	k.gen++
	k.cache.Delete(tenantID)
	k.mu.Unlock()
}

// Rotate rewraps under the current master key every data key wrapped by
// another one, and returns how many it rewrapped. A key another node
// rewrapped (or shredded) meanwhile is skipped. Nodes keep serving during
// a rotation as long as they hold the old and the new master key. A data
// key that cannot be unwrapped (ErrUnknownMasterKey, ErrCorrupt) does not
// stop the rotation: the others are rewrapped and the error, listing the
// failures, is returned with the count.
func (k *Keyring) Rotate(ctx context.Context) (int, error) {
	n, failed := 0, 0
	var errs []error
	fail := func(err error) {
		failed++
		if len(errs) < maxRotateErrs {
			errs = append(errs, err)
		}
	}
	result := func() error {
		if failed > len(errs) {
			errs = append(errs, fmt.Errorf("seal: and %d more data keys were not rewrapped", failed-len(errs)))
		}
		return errors.Join(errs...)
	}
	after := ""
	for {
		if err := ctx.Err(); err != nil {
			fail(err)
			return n, result()
		}
		page, next, err := k.store.ListDataKeys(ctx, after, rotatePage)
		if err != nil {
			fail(fmt.Errorf("seal: listing data keys: %w", err))
			return n, result()
		}
		for i := range page {
			rec := &page[i]
			if rec.MasterKeyID == k.current.id {
				continue
			}
			raw, err := k.unwrap(rec.TenantID, rec)
			if err != nil {
				fail(err)
				continue
			}
			wrapped, err := k.wrap(rec.TenantID, raw)
			clear(raw)
			if err != nil {
				fail(err)
				continue
			}
			err = k.store.RewrapDataKey(ctx, &storage.DataKey{
				TenantID:    rec.TenantID,
				MasterKeyID: k.current.id,
				Wrapped:     wrapped,
				CreatedAt:   rec.CreatedAt,
			}, rec.MasterKeyID)
			switch {
			case err == nil:
				n++
			case errors.Is(err, storage.ErrConflict), errors.Is(err, storage.ErrNotFound):
				// Another node rewrapped it, or it was shredded.
			default:
				fail(fmt.Errorf("seal: rewrapping the data key of tenant %q: %w", rec.TenantID, err))
				if ctx.Err() != nil {
					return n, result()
				}
			}
		}
		if next == "" || len(page) == 0 {
			return n, result()
		}
		after = next
	}
}

// cached returns the tenant's cached, unexpired data key or nil.
func (k *Keyring) cached(tenantID string) *dataKey {
	v, ok := k.cache.Load(tenantID)
	if !ok {
		return nil
	}
	dk := v.(*dataKey)
	if !k.now().Before(dk.expires) {
		return nil
	}
	return dk
}

// dataKey returns the tenant's data key: cached, or read from the store
// and unwrapped, or (create) made and stored when the tenant has none.
// Concurrent callers for one tenant share one load.
func (k *Keyring) dataKey(ctx context.Context, tenantID string, create bool) (*dataKey, error) {
	if tenantID == "" {
		return nil, errors.New("seal: tenant id is empty")
	}
	if dk := k.cached(tenantID); dk != nil {
		return dk, nil
	}
	fk := flightKey{tenantID, create}
	for {
		k.mu.Lock()
		if dk := k.cached(tenantID); dk != nil {
			k.mu.Unlock()
			return dk, nil
		}
		if f, ok := k.flights[fk]; ok {
			k.mu.Unlock()
			select {
			case <-f.done:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			if f.err != nil && ctx.Err() == nil &&
				(errors.Is(f.err, context.Canceled) || errors.Is(f.err, context.DeadlineExceeded)) {
				continue // the caller that loaded gave up; we have not
			}
			return f.dk, f.err
		}
		f := &flight{done: make(chan struct{})}
		k.flights[fk] = f
		gen := k.gen
		k.mu.Unlock()
		k.fly(ctx, tenantID, create, fk, f, gen)
		return f.dk, f.err
	}
}

func (k *Keyring) fly(ctx context.Context, tenantID string, create bool, fk flightKey, f *flight, gen uint64) {
	defer func() {
		k.mu.Lock()
		delete(k.flights, fk)
		if f.err == nil && f.dk != nil && gen == k.gen && k.ttl > 0 {
			k.cache.Store(tenantID, f.dk)
			k.installs++
			if k.installs%sweepEvery == 0 {
				now := k.now()
				k.cache.Range(func(key, v any) bool {
					if !now.Before(v.(*dataKey).expires) {
						k.cache.CompareAndDelete(key, v)
					}
					return true
				})
			}
		}
		k.mu.Unlock()
		close(f.done)
	}()
	f.err = errors.New("seal: loading a data key panicked") // replaced unless load panics
	f.dk, f.err = k.load(ctx, tenantID, create)
}

// load reads the tenant's data key from the store and unwraps it, or
// (create) makes one when the tenant has none.
func (k *Keyring) load(ctx context.Context, tenantID string, create bool) (*dataKey, error) {
	rec, err := k.store.GetDataKey(ctx, tenantID)
	if errors.Is(err, storage.ErrNotFound) {
		if !create {
			return nil, fmt.Errorf("%w: tenant %q", ErrShredded, tenantID)
		}
		return k.createKey(ctx, tenantID)
	}
	if err != nil {
		return nil, fmt.Errorf("seal: reading the data key of tenant %q: %w", tenantID, err)
	}
	raw, err := k.unwrap(tenantID, rec)
	if err != nil {
		return nil, err
	}
	return k.newDataKey(raw)
}

func (k *Keyring) createKey(ctx context.Context, tenantID string) (*dataKey, error) {
	raw := make([]byte, KeySize)
	if _, err := rand.Read(raw); err != nil {
		return nil, fmt.Errorf("seal: generating a data key: %w", err)
	}
	wrapped, err := k.wrap(tenantID, raw)
	if err != nil {
		return nil, err
	}
	err = k.store.CreateDataKey(ctx, &storage.DataKey{
		TenantID:    tenantID,
		MasterKeyID: k.current.id,
		Wrapped:     wrapped,
		CreatedAt:   k.now().UTC(),
	})
	if err == nil {
		return k.newDataKey(raw)
	}
	clear(raw)
	if !errors.Is(err, storage.ErrConflict) {
		return nil, fmt.Errorf("seal: storing the data key of tenant %q: %w", tenantID, err)
	}
	// Another node created the tenant's key first: use theirs.
	rec, err := k.store.GetDataKey(ctx, tenantID)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("seal: the data key of tenant %q was created and shredded meanwhile: %w", tenantID, err)
	}
	if err != nil {
		return nil, fmt.Errorf("seal: reading the data key of tenant %q: %w", tenantID, err)
	}
	if raw, err = k.unwrap(tenantID, rec); err != nil {
		return nil, err
	}
	return k.newDataKey(raw)
}

// newDataKey readies raw for use and clears it.
func (k *Keyring) newDataKey(raw []byte) (*dataKey, error) {
	defer clear(raw)
	aead, err := newAEAD(raw)
	if err != nil {
		return nil, err
	}
	pk, err := hkdf.Key(sha256.New, raw, nil, pseudonymInfo, sha256.Size)
	if err != nil {
		return nil, fmt.Errorf("seal: deriving the pseudonym key: %w", err)
	}
	expires := k.now()
	if k.ttl > 0 {
		expires = expires.Add(k.ttl)
	}
	id, err := hkdf.Key(sha256.New, raw, nil, keyIDInfo, keyIDSize)
	if err != nil {
		return nil, fmt.Errorf("seal: deriving the key id: %w", err)
	}
	dk := &dataKey{aead: aead, expires: expires}
	copy(dk.id[:], id)
	dk.macs.New = func() any { return hmac.New(sha256.New, pk) }
	return dk, nil
}

// wrapAAD binds a wrapped data key to its tenant and master key.
func wrapAAD(tenantID, masterKeyID string) []byte {
	return aad("parley data key v1", tenantID, masterKeyID)
}

// wrap seals raw, tenantID's data key, under the current master key.
func (k *Keyring) wrap(tenantID string, raw []byte) ([]byte, error) {
	out := make([]byte, 1+nonceSize, wrappedSize)
	out[0] = version
	nonce := out[1 : 1+nonceSize]
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("seal: nonce: %w", err)
	}
	return k.current.aead.Seal(out, nonce, raw, wrapAAD(tenantID, k.current.id)), nil
}

// Check verifies the loaded master keys against the stored data keys: for
// every master key id that wraps a data key (among the first maxChecked),
// that key must be loaded and must unwrap one of them. It is what a
// process runs before serving, so a wrong key (mistyped, or another
// node's key of the same id) stops it instead of losing what it would
// seal. ErrUnknownMasterKey or ErrCorrupt, naming the master key id.
func (k *Keyring) Check(ctx context.Context) error {
	const maxChecked = 10000
	checked := map[string]bool{}
	after := ""
	for n := 0; n < maxChecked; {
		keys, next, err := k.store.ListDataKeys(ctx, after, 1000)
		if err != nil {
			return err
		}
		for i := range keys {
			rec := &keys[i]
			n++
			if checked[rec.MasterKeyID] {
				continue
			}
			raw, err := k.unwrap(rec.TenantID, rec)
			if err != nil {
				return err
			}
			clear(raw)
			checked[rec.MasterKeyID] = true
		}
		if next == "" {
			return nil
		}
		after = next
	}
	return nil
}

// unwrap returns the raw data key of tenantID stored in rec.
func (k *Keyring) unwrap(tenantID string, rec *storage.DataKey) ([]byte, error) {
	m, ok := k.masters[rec.MasterKeyID]
	if !ok {
		return nil, fmt.Errorf("%w: the data key of tenant %q is wrapped by master key %q (loaded: %s)",
			ErrUnknownMasterKey, tenantID, rec.MasterKeyID, strings.Join(k.ids, ", "))
	}
	w := rec.Wrapped
	if len(w) != wrappedSize || w[0] != version {
		return nil, fmt.Errorf("%w: the wrapped data key of tenant %q is malformed", ErrCorrupt, tenantID)
	}
	raw, err := m.aead.Open(nil, w[1:1+nonceSize], w[1+nonceSize:], wrapAAD(tenantID, m.id))
	if err != nil {
		return nil, fmt.Errorf("%w: the data key of tenant %q does not unwrap with master key %q", ErrCorrupt, tenantID, m.id)
	}
	return raw, nil
}
