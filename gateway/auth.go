package gateway

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"parley/storage"
)

// Principal is who a request acts as. Tenancy will add roles and scopes;
// every handler already scopes its queries by TenantID.
type Principal struct {
	TenantID string
	KeyID    string
	// Kind is storage.KeySecret or storage.KeyPublishable. A secret key
	// has Scopes; a publishable key is bound to AgentIDs and Origins and
	// can only mint ephemeral keys.
	Kind     string
	Scopes   []string
	AgentIDs []string
	Origins  []string
	// Plan is the tenant's plan ("" when unknown): it selects the limits.
	Plan string
}

// hasScope reports whether p is a secret key with scope.
func (p Principal) hasScope(scope string) bool {
	return p.Kind == storage.KeySecret && slices.Contains(p.Scopes, scope)
}

// ownerPrincipal is what the operator's key acts as.
func ownerPrincipal(tenantID, keyID string) Principal {
	return Principal{TenantID: tenantID, KeyID: keyID, Kind: storage.KeySecret, Scopes: storage.OwnerKeyScopes()}
}

// Authenticator resolves a presented secret key to a Principal.
type Authenticator interface {
	Authenticate(ctx context.Context, key string) (Principal, error)
}

// ErrUnauthenticated means the key is missing, malformed or unknown.
var ErrUnauthenticated = errors.New("invalid API key")

// KeyPrefixLen is how many leading characters of a key are stored in clear
// to find its row; the rest is only ever compared through its hash.
const KeyPrefixLen = 12

// NewSecretKey returns a fresh random secret key "sk_" + 43 base62 chars
// (256 bits).
func NewSecretKey() string { return newKey("sk_") }

// newKey returns prefix + 43 random base62 characters (256 bits).
func newKey(prefix string) string {
	const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	var raw [43]byte
	out := make([]byte, 0, len(prefix)+len(raw))
	out = append(out, prefix...)
	for len(out) < cap(out) {
		if _, err := rand.Read(raw[:]); err != nil {
			panic(err) // crypto/rand never fails on Linux
		}
		for _, b := range raw {
			if b < 248 && len(out) < cap(out) { // 248 = 4*62: unbiased
				out = append(out, alphabet[b%62])
			}
		}
	}
	return string(out)
}

// HashKey is the stored form of a key.
func HashKey(key string) []byte {
	h := sha256.Sum256([]byte(key))
	return h[:]
}

// KeyAuth authenticates secret keys against their stored hashes, or against
// one operator-provided key (PARLEY_API_KEY) when set.
type KeyAuth struct {
	store     storage.Store
	fixedHash []byte // hash of PARLEY_API_KEY, when set
	now       func() time.Time

	mu      sync.Mutex
	touched map[string]time.Time // last_used_at writes, at most once a minute per key
}

// BootstrapKeys prepares authentication at start-up. With envKey set, that
// key (and only it) is accepted. Otherwise the stored keys are; when there
// are none, a key is generated, its hash stored, and the key returned so the
// caller can print it once.
func BootstrapKeys(ctx context.Context, store storage.Store, envKey string) (auth *KeyAuth, generated string, err error) {
	auth = &KeyAuth{store: store, now: time.Now, touched: map[string]time.Time{}}
	if envKey != "" {
		auth.fixedHash = HashKey(envKey)
		return auth, "", nil
	}
	n, err := store.CountAPIKeys(ctx, storage.DefaultTenant)
	if err != nil {
		return nil, "", fmt.Errorf("counting API keys: %w", err)
	}
	if n > 0 {
		return auth, "", nil
	}
	key := NewSecretKey()
	err = store.CreateAPIKey(ctx, &storage.APIKey{
		ID: "key_" + randomID(16), TenantID: storage.DefaultTenant,
		Prefix: key[:KeyPrefixLen], Hash: HashKey(key), CreatedAt: time.Now().UTC(),
	})
	if err != nil {
		return nil, "", fmt.Errorf("storing the generated API key: %w", err)
	}
	return auth, key, nil
}

// Authenticate implements Authenticator.
func (a *KeyAuth) Authenticate(ctx context.Context, key string) (Principal, error) {
	if len(key) < 16 || len(key) > 256 {
		return Principal{}, ErrUnauthenticated
	}
	h := HashKey(key)
	if a.fixedHash != nil {
		if subtle.ConstantTimeCompare(h, a.fixedHash) == 1 {
			return ownerPrincipal(storage.DefaultTenant, "env"), nil
		}
		return Principal{}, ErrUnauthenticated
	}
	if !strings.HasPrefix(key, "sk_") {
		return Principal{}, ErrUnauthenticated
	}
	keys, err := a.store.APIKeysByPrefix(ctx, key[:KeyPrefixLen])
	if err != nil {
		return Principal{}, fmt.Errorf("looking up key: %w", err)
	}
	for _, k := range keys {
		if subtle.ConstantTimeCompare(h, k.Hash) == 1 {
			a.touch(ctx, k.ID)
			return ownerPrincipal(k.TenantID, k.ID), nil
		}
	}
	return Principal{}, ErrUnauthenticated
}

func (a *KeyAuth) touch(ctx context.Context, id string) {
	now := a.now()
	a.mu.Lock()
	last := a.touched[id]
	if now.Sub(last) < time.Minute {
		a.mu.Unlock()
		return
	}
	a.touched[id] = now
	a.mu.Unlock()
	_ = a.store.TouchAPIKey(ctx, id, now.UTC()) // best effort: last_used_at is informational
}

// keyFromRequest finds the presented key: Authorization: Bearer, the
// browser subprotocol "openai-insecure-api-key.KEY", or ?api-key= for older
// clients.
func keyFromRequest(authz string, protocols []string, query string) string {
	if k, ok := strings.CutPrefix(authz, "Bearer "); ok {
		return strings.TrimSpace(k)
	}
	for _, p := range protocols {
		if k, ok := strings.CutPrefix(strings.TrimSpace(p), "openai-insecure-api-key."); ok {
			return k
		}
	}
	return query
}
