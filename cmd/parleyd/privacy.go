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
	// A wrong key (mistyped, or another node's generated key) would make
	// everything sealed so far unreadable and lose what this node seals.
	if err := kr.Check(ctx); err != nil {
		return nil, fmt.Errorf("privacy: the master keys do not match the database's data keys: %w", err)
	}
	n, failed, err := sealLegacy(ctx, store, kr)
	if err != nil {
		return nil, fmt.Errorf("privacy: sealing data stored before encryption at rest: %w", err)
	}
	if n > 0 {
		log.Info().Int("rows", n).Msg("sealed plaintext stored before encryption at rest")
	}
	if failed > 0 {
		log.Error().Int("rows", failed).Msg("plaintext stored before encryption at rest could not be sealed; it is retried at the next start")
	}
	return kr, nil
}

// sealLegacy seals the plaintext an installation stored before
// encryption at rest (migration 0005), in batches, and returns how many
// rows it sealed and how many it could not (a row whose tenant's data key
// cannot be made: they are left for the next start, and do not stop this
// one). It is idempotent: a row is sealed and its plaintext cleared in one
// statement.
func sealLegacy(ctx context.Context, store storage.Backend, kr *seal.Keyring) (sealed, failed int, err error) {
	skip := map[string]bool{}
	for {
		rows, err := store.LegacyPlaintext(ctx, 500)
		if err != nil {
			return sealed, failed, err
		}
		progress := false
		for _, row := range rows {
			key := row.Kind + "\x00" + row.TenantID + "\x00" + row.ConversationID + "\x00" + row.ID
			if skip[key] {
				continue
			}
			aad := seal.AgentAAD(row.TenantID, row.ID)
			if row.Kind == storage.LegacyTurn {
				aad = seal.TurnAAD(row.TenantID, row.ConversationID, row.ID)
			}
			b, err := kr.Seal(ctx, row.TenantID, row.Plaintext, aad)
			if err == nil {
				err = store.ReplaceLegacy(ctx, row, b)
			}
			switch {
			case err == nil:
				sealed++
				progress = true
			case errors.Is(err, storage.ErrNotFound): // changed or gone meanwhile
				progress = true
			case ctx.Err() != nil:
				return sealed, failed, ctx.Err()
			default:
				skip[key] = true
				failed++
			}
		}
		if !progress {
			return sealed, failed, nil
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
