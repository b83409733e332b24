package gateway

import (
	"context"
	"errors"
	"fmt"
	"time"

	"parley/access"
	"parley/storage"
)

// AccountAuth authenticates every tenant's stored keys (secret and
// publishable) through an access.KeyCache: one database read per key per
// minute, revocations effective within the cache's poll interval.
type AccountAuth struct {
	Keys *access.KeyCache
}

// Authenticate implements Authenticator.
func (a *AccountAuth) Authenticate(ctx context.Context, key string) (Principal, error) {
	k, err := a.Keys.Lookup(ctx, key)
	if errors.Is(err, access.ErrUnknownKey) {
		return Principal{}, ErrUnauthenticated
	}
	if err != nil {
		return Principal{}, fmt.Errorf("looking up key: %w", err)
	}
	return Principal{TenantID: k.TenantID, KeyID: k.ID, Kind: k.Kind, Scopes: k.Scopes, AgentIDs: k.AgentIDs, Origins: k.Origins}, nil
}

// operatorKeyName labels the key that PARLEY_API_KEY provides.
const operatorKeyName = "PARLEY_API_KEY"

// BootstrapAccounts prepares the default tenant at start-up: the tenant
// row exists, and its owner key is the operator's PARLEY_API_KEY (stored
// hashed; an earlier PARLEY_API_KEY that changed is revoked), or, when
// none is set and the tenant has no key yet, a generated key returned so
// the caller can print it once.
func BootstrapAccounts(ctx context.Context, acc storage.Accounts, envKey string, now time.Time) (generated string, err error) {
	now = now.UTC()
	if _, err := acc.GetTenant(ctx, storage.DefaultTenant); errors.Is(err, storage.ErrNotFound) {
		t := &storage.Tenant{ID: storage.DefaultTenant, Name: "Default", Plan: storage.PlanEnterprise, CreatedAt: now}
		if err := acc.CreateTenant(ctx, t, ""); err != nil && !errors.Is(err, storage.ErrConflict) {
			return "", fmt.Errorf("creating the default tenant: %w", err)
		}
	} else if err != nil {
		return "", fmt.Errorf("reading the default tenant: %w", err)
	}
	var keys []storage.Key
	for after := ""; ; {
		page, next, err := acc.ListKeys(ctx, storage.DefaultTenant, after, storage.MaxListLimit)
		if err != nil {
			return "", fmt.Errorf("listing keys: %w", err)
		}
		keys = append(keys, page...)
		if next == "" {
			break
		}
		after = next
	}
	if envKey != "" {
		h := HashKey(envKey)
		present := false
		for _, k := range keys {
			switch {
			case k.Prefix == envKey[:KeyPrefixLen] && string(k.Hash) == string(h) && k.RevokedAt.IsZero():
				present = true
			case k.Name == operatorKeyName && k.RevokedAt.IsZero():
				if err := acc.RevokeKey(ctx, storage.DefaultTenant, k.ID, now); err != nil {
					return "", fmt.Errorf("revoking the previous PARLEY_API_KEY: %w", err)
				}
			}
		}
		if present {
			return "", nil
		}
		err := acc.CreateKey(ctx, &storage.Key{ID: "key_" + randomID(16), TenantID: storage.DefaultTenant, Kind: storage.KeySecret,
			Name: operatorKeyName, Prefix: envKey[:KeyPrefixLen], Hash: h, Scopes: storage.OwnerKeyScopes(), CreatedAt: now})
		if errors.Is(err, storage.ErrConflict) {
			return "", fmt.Errorf("PARLEY_API_KEY shares its first %d characters with another stored key; choose another", KeyPrefixLen)
		}
		if err != nil {
			return "", fmt.Errorf("storing PARLEY_API_KEY's hash: %w", err)
		}
		return "", nil
	}
	for _, k := range keys {
		if k.RevokedAt.IsZero() && k.Kind == storage.KeySecret {
			return "", nil
		}
	}
	key := NewSecretKey()
	err = acc.CreateKey(ctx, &storage.Key{ID: "key_" + randomID(16), TenantID: storage.DefaultTenant, Kind: storage.KeySecret,
		Name: "generated at first start", Prefix: key[:KeyPrefixLen], Hash: HashKey(key), Scopes: storage.OwnerKeyScopes(), CreatedAt: now})
	if err != nil {
		return "", fmt.Errorf("storing the generated API key: %w", err)
	}
	return key, nil
}
