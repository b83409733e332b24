// Package storage defines Parley's persisted records and the Store that
// keeps them. Backends live in sub-packages: storage/sqlite (the embedded
// default) and storage/postgres. Both pass the same conformance suite in
// storage/storagetest.
//
// Every backend stores times with millisecond precision and returns them in
// UTC; a zero time.Time means "not set" where a field allows it. ExpiresAt
// is required on every conversation and turn (ErrInvalid when zero): it is
// what the retention Sweeper deletes by.
package storage

import (
	"context"
	"errors"
	"time"
)

// ErrNotFound is returned when a record does not exist (or belongs to
// another tenant: callers cannot tell the difference, on purpose).
var ErrNotFound = errors.New("storage: not found")

// ErrConflict is returned when a record with the same id already exists
// (or, for turns, when the conversation already has a turn with that Seq).
var ErrConflict = errors.New("storage: conflict")

// ErrInvalid is returned (wrapped, with the offending field named) when a
// record cannot be stored as given, e.g. an empty ID or a zero ExpiresAt.
var ErrInvalid = errors.New("storage: invalid record")

// DefaultTenant is the tenant every record belongs to until multi-tenancy
// arrives; every query is already scoped by tenant.
const DefaultTenant = "default"

// Conversation is the metadata of one realtime session with an agent.
type Conversation struct {
	ID        string
	TenantID  string
	AgentID   string
	Channel   string // "websocket", "webrtc"
	Language  string // BCP 47 tag, "" when unknown
	StartedAt time.Time
	EndedAt   time.Time // zero while the conversation is open
	// DurationMS is EndedAt-StartedAt, kept so reports need no arithmetic.
	DurationMS int64
	// TurnCount is how many turns were appended; it is not lowered when
	// the sweeper deletes expired turns.
	TurnCount int
	ExpiresAt time.Time
}

// Turn roles.
const (
	RoleUser      = "user"
	RoleAssistant = "assistant"
)

// Turn statuses.
const (
	TurnCompleted = "completed"
	TurnCancelled = "cancelled"
	TurnFailed    = "failed"
)

// Turn is one message of a conversation: what the user said or typed, or
// what the agent answered.
type Turn struct {
	ID             string // the realtime item id
	ConversationID string
	TenantID       string
	// Seq is the 1-based position in the conversation, unique within it.
	// AppendTurn assigns the next number (and writes it back) when Seq is 0.
	Seq  int
	Role string // RoleUser or RoleAssistant
	// Text is the transcript; empty when the retention policy keeps
	// metadata only (TextStored is then false). Backends never store Text
	// when TextStored is false.
	Text       string
	TextStored bool
	Status     string
	StartedAt  time.Time
	EndedAt    time.Time
	Latency    Latency
	ExpiresAt  time.Time
}

// Latency holds the figures of one assistant turn, in milliseconds from the
// moment the response was requested. Zero means "not reached".
type Latency struct {
	FirstTokenMS int64 // agent's first text delta
	TotalMS      int64 // response.done
	EngineMS     int64 // time spent inside engines (agent, later STT/TTS)
}

// APIKey is a stored secret key. Only a hash of the key is kept; Prefix is
// the non-secret start used to find the row.
type APIKey struct {
	ID         string
	TenantID   string
	Prefix     string
	Hash       []byte // SHA-256 of the whole key
	CreatedAt  time.Time
	LastUsedAt time.Time // zero if never used
}

// Store is the persistence boundary. Every method is safe for concurrent use.
type Store interface {
	// Ping reports whether the backend is reachable.
	Ping(ctx context.Context) error
	Close() error

	// CreateConversation inserts c (ID, TenantID set by the caller).
	CreateConversation(ctx context.Context, c *Conversation) error
	// EndConversation records the end of a conversation and its duration;
	// it is idempotent (a second call keeps the first end). ErrNotFound if
	// the conversation does not exist for tenantID.
	EndConversation(ctx context.Context, tenantID, id string, endedAt time.Time) error
	// AppendTurn inserts t and increments the conversation's turn count in
	// one transaction. ErrNotFound if the conversation does not exist for
	// t.TenantID; ErrConflict if t.ID or t.Seq is already used in it.
	AppendTurn(ctx context.Context, t *Turn) error
	GetConversation(ctx context.Context, tenantID, id string) (*Conversation, error)
	// ListTurns returns a conversation's turns in Seq order (ErrNotFound if
	// the conversation does not exist for tenantID).
	ListTurns(ctx context.Context, tenantID, conversationID string) ([]Turn, error)

	// DeleteExpired deletes at most limit expired rows (turns first, then
	// conversations whose own expiry passed, with their remaining turns)
	// and returns how many rows it deleted. Rows with expires_at > now are
	// never touched, except the turns of an expired conversation: a turn
	// cannot outlive its conversation, and those cascaded turns are not
	// counted. Several nodes may call it at once without double work.
	DeleteExpired(ctx context.Context, now time.Time, limit int) (int, error)

	CreateAPIKey(ctx context.Context, k *APIKey) error
	// APIKeysByPrefix returns the keys whose Prefix matches, of any
	// tenant (it is the authentication lookup), oldest first.
	APIKeysByPrefix(ctx context.Context, prefix string) ([]APIKey, error)
	CountAPIKeys(ctx context.Context, tenantID string) (int, error)
	// TouchAPIKey records a use of the key; LastUsedAt never moves back.
	// ErrNotFound if there is no such key.
	TouchAPIKey(ctx context.Context, id string, at time.Time) error
}
