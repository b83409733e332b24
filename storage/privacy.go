package storage

import (
	"context"
	"fmt"
	"time"
)

// This file holds the records and methods of Parley's privacy promises
// (docs/PRIVACY.md): tenant data keys for encryption at rest, per-tenant
// privacy policies, audio logs, usage records, and the data-rights
// operations (list for export, delete by scope, purge a deleted tenant).
// The rules at the top of accounts.go apply here too.

// UsageRetention is how long a usage event is kept; its daily rollup is
// kept for the tenant's life.
const UsageRetention = 365 * 24 * time.Hour

// DataKey is a tenant's data key, wrapped (sealed) by a master key. Only
// the wrapped form is ever stored; storage/seal unwraps it in memory.
type DataKey struct {
	TenantID    string
	MasterKeyID string // which master key wrapped it
	Wrapped     []byte
	CreatedAt   time.Time
}

// Validate reports why k cannot be stored (ErrInvalid naming the field)
// or nil.
func (k *DataKey) Validate() error {
	switch {
	case k.TenantID == "":
		return required("DataKey", "TenantID")
	case k.MasterKeyID == "":
		return required("DataKey", "MasterKeyID")
	case len(k.Wrapped) == 0:
		return required("DataKey", "Wrapped")
	case k.CreatedAt.IsZero():
		return required("DataKey", "CreatedAt")
	}
	return nil
}

// Redaction says which kinds of personal data are replaced by a
// placeholder before a transcript is stored (privacy/redact).
type Redaction struct {
	Emails bool
	Phones bool
	Cards  bool // card numbers that pass the Luhn check
	IBANs  bool // IBANs that pass the mod-97 check
}

// Policy is a tenant's privacy policy. A tenant that never set one has
// the installation's defaults (config `retention.*`, `privacy.*`).
type Policy struct {
	TenantID string
	// TranscriptDays is how long transcript text is kept; 0 keeps
	// metadata only (no text is written).
	TranscriptDays int
	// MetadataDays is how long conversation metadata is kept.
	MetadataDays int
	// AudioLogging turns conversation audio logging on: each turn's audio
	// is sealed and stored, and kept AudioDays.
	AudioLogging bool
	AudioDays    int
	Redact       Redaction
	// TrainingOptIn is the model improvement program: off by default,
	// revocable. Only opted-in tenants appear in training exports.
	TrainingOptIn bool
	UpdatedAt     time.Time
}

// Limits of a Policy's day counts.
const MaxRetentionDays = 3650

// Validate reports why p cannot be stored (ErrInvalid naming the field)
// or nil.
func (p *Policy) Validate() error {
	days := func(field string, d, min int) error {
		if d < min || d > MaxRetentionDays {
			return fmt.Errorf("%w: Policy.%s must be between %d and %d, got %d", ErrInvalid, field, min, MaxRetentionDays, d)
		}
		return nil
	}
	switch {
	case p.TenantID == "":
		return required("Policy", "TenantID")
	case p.UpdatedAt.IsZero():
		return required("Policy", "UpdatedAt")
	}
	if err := days("TranscriptDays", p.TranscriptDays, 0); err != nil {
		return err
	}
	if err := days("MetadataDays", p.MetadataDays, 1); err != nil {
		return err
	}
	if p.MetadataDays < p.TranscriptDays {
		return fmt.Errorf("%w: Policy.MetadataDays (%d) must not be shorter than Policy.TranscriptDays (%d)", ErrInvalid, p.MetadataDays, p.TranscriptDays)
	}
	return days("AudioDays", p.AudioDays, 1)
}

// Retention is the part of p the session writer needs.
func (p *Policy) Retention() Retention {
	return Retention{TranscriptDays: p.TranscriptDays, MetadataDays: p.MetadataDays}
}

// TurnAudio is the logged audio of one turn, sealed under the tenant's
// data key. It exists only for tenants with audio logging on.
type TurnAudio struct {
	TenantID       string
	ConversationID string
	TurnID         string // the turn's item id
	Format         string // media type of the sealed bytes, e.g. "audio/ogg"
	Sealed         []byte
	DurationMS     int64
	CreatedAt      time.Time
	ExpiresAt      time.Time
}

// Validate reports why a cannot be stored (ErrInvalid naming the field)
// or nil.
func (a *TurnAudio) Validate() error {
	switch {
	case a.TenantID == "":
		return required("TurnAudio", "TenantID")
	case a.ConversationID == "":
		return required("TurnAudio", "ConversationID")
	case a.TurnID == "":
		return required("TurnAudio", "TurnID")
	case a.Format == "":
		return required("TurnAudio", "Format")
	case len(a.Sealed) == 0:
		return required("TurnAudio", "Sealed")
	case a.CreatedAt.IsZero():
		return required("TurnAudio", "CreatedAt")
	case a.ExpiresAt.IsZero():
		return required("TurnAudio", "ExpiresAt")
	}
	return nil
}

// UsageEvent is one conversation's usage record, kept UsageRetention.
type UsageEvent struct {
	ID             string
	TenantID       string
	ConversationID string
	Channel        string
	Language       string
	At             time.Time // when the conversation ended
	DurationMS     int64
	ExpiresAt      time.Time
}

// Validate reports why e cannot be stored (ErrInvalid naming the field)
// or nil.
func (e *UsageEvent) Validate() error {
	switch {
	case e.ID == "":
		return required("UsageEvent", "ID")
	case e.TenantID == "":
		return required("UsageEvent", "TenantID")
	case e.At.IsZero():
		return required("UsageEvent", "At")
	case e.ExpiresAt.IsZero():
		return required("UsageEvent", "ExpiresAt")
	case e.DurationMS < 0:
		return fmt.Errorf("%w: UsageEvent.DurationMS is negative", ErrInvalid)
	}
	return nil
}

// UsageDay is a daily rollup of usage events: one row per tenant, UTC day,
// channel and language. Rollups carry no conversation and are kept.
type UsageDay struct {
	TenantID      string
	Day           time.Time // midnight UTC
	Channel       string
	Language      string
	Conversations int
	DurationMS    int64
}

// ConversationFilter selects conversations for listing and deletion: by
// ID, by end-user pseudonym, or (both empty) all of a tenant's.
type ConversationFilter struct {
	ID      string
	EndUser string
}

// Deleted counts what a deletion removed.
type Deleted struct {
	Conversations int `json:"conversations"`
	Turns         int `json:"turns"`
	Audio         int `json:"audio"`
	UsageEvents   int `json:"usage_events"`
}

// LegacyPlaintext kinds.
const (
	LegacyTurn  = "turn"  // turns.text written before migration 0005
	LegacyAgent = "agent" // agents.settings written before migration 0005
)

// LegacyRow is plaintext stored before sealing existed: a turn's text or
// an agent's settings. ID is the turn's item id or the agent's id.
type LegacyRow struct {
	Kind           string
	TenantID       string
	ConversationID string // turns only
	ID             string
	Plaintext      []byte
}

// Privacy is implemented by every Backend.
type Privacy interface {
	// CreateDataKey stores a tenant's first data key. ErrConflict if the
	// tenant already has one (another node won the race: read it).
	CreateDataKey(ctx context.Context, k *DataKey) error
	// GetDataKey returns a tenant's data key; ErrNotFound if it has none
	// (never had one, or it was shredded).
	GetDataKey(ctx context.Context, tenantID string) (*DataKey, error)
	// ListDataKeys pages through all data keys by TenantID (the master key
	// rotation walks them).
	ListDataKeys(ctx context.Context, after string, limit int) ([]DataKey, string, error)
	// RewrapDataKey replaces the wrapped key of k.TenantID with k.Wrapped
	// and k.MasterKeyID, only while it is still wrapped by
	// oldMasterKeyID: ErrConflict otherwise (another node rewrapped it),
	// ErrNotFound if the tenant has no key.
	RewrapDataKey(ctx context.Context, k *DataKey, oldMasterKeyID string) error
	// DeleteDataKey deletes a tenant's data key (crypto-shredding: every
	// sealed byte of the tenant becomes unreadable). ErrNotFound if none.
	DeleteDataKey(ctx context.Context, tenantID string) error

	// GetPolicy returns a tenant's privacy policy; ErrNotFound if it never
	// set one.
	GetPolicy(ctx context.Context, tenantID string) (*Policy, error)
	// PutPolicy creates or replaces p.TenantID's policy and, in the same
	// transaction, re-derives the expiry of the tenant's stored rows from
	// it: conversations StartedAt+MetadataDays; turns StartedAt+
	// TranscriptDays when their text is stored, StartedAt+MetadataDays
	// otherwise; audio CreatedAt+AudioDays, or now when AudioLogging is
	// off. So shortening applies to what is stored, and lengthening keeps
	// what is not yet deleted longer. ErrNotFound if the tenant does not
	// exist.
	PutPolicy(ctx context.Context, p *Policy, now time.Time) error
	// TrainingTenants lists the active tenants with TrainingOptIn, by ID.
	TrainingTenants(ctx context.Context) ([]string, error)

	// ListConversations pages through a tenant's conversations matching f,
	// by ID.
	ListConversations(ctx context.Context, tenantID string, f ConversationFilter, after string, limit int) ([]Conversation, string, error)
	// ListTurnAudio returns a conversation's logged audio, by turn Seq.
	// ErrNotFound if the conversation does not exist for tenantID.
	ListTurnAudio(ctx context.Context, tenantID, conversationID string) ([]TurnAudio, error)
	// ListUsageDays returns a tenant's daily rollups with from <= Day <
	// to, by (Day, Channel, Language).
	ListUsageDays(ctx context.Context, tenantID string, from, to time.Time) ([]UsageDay, error)
	// DeleteConversations deletes the tenant's conversations matching f
	// with their turns, audio and usage events, in one transaction, and
	// says what it deleted (zero counts, no error, when nothing matched).
	// Daily rollups stay: they hold no conversation.
	DeleteConversations(ctx context.Context, tenantID string, f ConversationFilter) (Deleted, error)

	// TenantsDueForPurge lists deleted tenants whose PurgeAfter <= now.
	TenantsDueForPurge(ctx context.Context, now time.Time) ([]string, error)
	// PurgeTenant erases a deleted tenant in one transaction: its data key
	// first (its sealed data is unreadable from then on), then every
	// account row of it (keys, ephemeral keys, members, invitations,
	// agents, settings, policy, rollups, API calls, audit entries,
	// idempotency records, the tenant itself); its conversations, turns,
	// audio and usage events get expires_at = now, so the sweeper deletes
	// them in batches. Idempotent: ErrNotFound only if the tenant never
	// existed and has no rows left.
	PurgeTenant(ctx context.Context, tenantID string, now time.Time) error

	// HasData reports whether any conversation, agent or data key is
	// stored (parleyd refuses to start on such a database without a
	// master key).
	HasData(ctx context.Context) (bool, error)
	// LegacyPlaintext returns up to limit rows still holding plaintext
	// written before sealing existed.
	LegacyPlaintext(ctx context.Context, limit int) ([]LegacyRow, error)
	// ReplaceLegacy stores sealed in place of row's plaintext (and clears
	// the plaintext). ErrNotFound if the row is gone.
	ReplaceLegacy(ctx context.Context, row LegacyRow, sealed []byte) error
}
