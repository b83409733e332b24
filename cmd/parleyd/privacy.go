package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"parley/config"
	"parley/storage"
	"parley/storage/seal"
)

// openKeyring loads the master keys and builds the keyring that seals
// every tenant's data. Without a key it refuses a database that holds data
// (it could not be read, and new data would not be sealed); on an empty
// database it creates privacy.master_key_file when generate_master_key is
// on (the embedded default), and says so.
func openKeyring(ctx context.Context, cfg *config.Config, store storage.Backend, log zerolog.Logger) (*seal.Keyring, error) {
	path := cfg.Privacy.MasterKeyFile // relative to the working directory, like storage.url
	masters, err := seal.LoadMasterKeys(cfg.Privacy.MasterKey, path)
	if err != nil {
		return nil, fmt.Errorf("privacy: %w", err)
	}
	if len(masters) == 0 {
		has, err := store.HasData(ctx)
		if err != nil {
			return nil, fmt.Errorf("storage: %w", err)
		}
		switch {
		case has:
			return nil, fmt.Errorf("privacy: the database holds data but no master key is configured: set PARLEY_MASTER_KEY or privacy.master_key_file to the key it was sealed with (a new key cannot read it)")
		case !cfg.Privacy.GenerateMasterKey || path == "":
			return nil, fmt.Errorf("privacy: no master key: set PARLEY_MASTER_KEY (\"id:base64 of 32 bytes\") or privacy.master_key_file")
		}
		if masters, err = seal.WriteNewKeyFile(path); err != nil {
			return nil, fmt.Errorf("privacy: creating the master key file: %w", err)
		}
		log.Warn().Str("file", path).Msg("created a new master key file: keep it safe and out of the database's backups (without it the data cannot be read); in production set PARLEY_MASTER_KEY or privacy.master_key_file and privacy.generate_master_key: false")
	}
	kr, err := seal.NewKeyring(store, masters, seal.Options{})
	if err != nil {
		return nil, fmt.Errorf("privacy: %w", err)
	}
	n, err := sealLegacy(ctx, store, kr)
	if err != nil {
		return nil, fmt.Errorf("privacy: sealing data stored before encryption at rest: %w", err)
	}
	if n > 0 {
		log.Info().Int("rows", n).Msg("sealed plaintext stored before encryption at rest")
	}
	return kr, nil
}

// sealLegacy seals the plaintext an installation stored before
// encryption at rest (migration 0005), in batches, and returns how many
// rows it sealed. It is idempotent: a row is sealed and its plaintext
// cleared in one statement.
func sealLegacy(ctx context.Context, store storage.Backend, kr *seal.Keyring) (int, error) {
	total := 0
	for {
		rows, err := store.LegacyPlaintext(ctx, 500)
		if err != nil || len(rows) == 0 {
			return total, err
		}
		for _, row := range rows {
			aad := seal.AgentAAD(row.TenantID, row.ID)
			if row.Kind == storage.LegacyTurn {
				aad = seal.TurnAAD(row.TenantID, row.ConversationID, row.ID)
			}
			sealed, err := kr.Seal(ctx, row.TenantID, row.Plaintext, aad)
			if err != nil {
				return total, err
			}
			if err := store.ReplaceLegacy(ctx, row, sealed); err != nil && !errors.Is(err, storage.ErrNotFound) {
				return total, err
			}
			total++
		}
	}
}

// defaultPolicy is the policy of a tenant that never set its own.
func defaultPolicy(cfg *config.Config) func(tenantID string) storage.Policy {
	p := cfg.Privacy
	return func(tenantID string) storage.Policy {
		return storage.Policy{
			TenantID: tenantID, TranscriptDays: cfg.Retention.TranscriptDays, MetadataDays: cfg.Retention.MetadataDays,
			AudioLogging: p.AudioLogging, AudioDays: p.AudioDays,
			Redact: storage.Redaction{Emails: p.RedactEmails, Phones: p.RedactPhones, Cards: p.RedactCards, IBANs: p.RedactIBANs},
		}
	}
}

// policies caches tenants' privacy policies for the gateway, which reads
// one per session: a change through the management API applies to
// sessions started ttl later at most.
type policies struct {
	store    storage.Privacy
	defaults func(string) storage.Policy
	ttl      time.Duration
	now      func() time.Time

	mu    sync.Mutex
	cache map[string]cachedPolicy
}

type cachedPolicy struct {
	p       storage.Policy
	checked time.Time
}

// maxCachedPolicies bounds the cache (it is dropped whole past it).
const maxCachedPolicies = 10000

func newPolicies(store storage.Privacy, defaults func(string) storage.Policy) *policies {
	return &policies{store: store, defaults: defaults, ttl: 10 * time.Second, now: time.Now, cache: map[string]cachedPolicy{}}
}

// Get implements gateway.Options.Policy.
func (c *policies) Get(ctx context.Context, tenantID string) (storage.Policy, error) {
	now := c.now()
	c.mu.Lock()
	e, ok := c.cache[tenantID]
	c.mu.Unlock()
	if ok && now.Sub(e.checked) < c.ttl {
		return e.p, nil
	}
	p, err := c.store.GetPolicy(ctx, tenantID)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		d := c.defaults(tenantID)
		p = &d
	case err != nil:
		return storage.Policy{}, err
	}
	c.mu.Lock()
	if len(c.cache) >= maxCachedPolicies {
		clear(c.cache)
	}
	c.cache[tenantID] = cachedPolicy{p: *p, checked: now}
	c.mu.Unlock()
	return *p, nil
}
