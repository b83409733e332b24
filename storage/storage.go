// Package storage defines Parley's persisted records and the Store that
// keeps them. Backends live in sub-packages: storage/sqlite (the embedded
// default) and storage/postgres. Both pass the same conformance suite in
// storage/storagetest.
package storage

import (
	"context"
	"errors"
	"time"
)

// ErrNotFound is returned when a record does not exist (or belongs to
// another tenant: callers cannot tell the difference, on purpose).
var ErrNotFound = errors.New("storage: not found")

// ErrConflict is returned when a record with the same id already exists.
var ErrConflict = errors.New("storage: conflict")

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
	TurnCount  int
	ExpiresAt  time.Time
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
	Seq            int    // 1-based position in the conversation
	Role           string // RoleUser or RoleAssistant
	// Text is the transcript; empty when the retention policy keeps
	// metadata only (TextStored is then false).
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
	// EndConversation records the end of a conversation; it is idempotent.
	EndConversation(ctx context.Context, tenantID, id string, endedAt time.Time) error
	// AppendTurn inserts t and increments the conversation's turn count in
	// one transaction.
	AppendTurn(ctx context.Context, t *Turn) error
	GetConversation(ctx context.Context, tenantID, id string) (*Conversation, error)
	// ListTurns returns a conversation's turns in Seq order.
	ListTurns(ctx context.Context, tenantID, conversationID string) ([]Turn, error)

	// DeleteExpired deletes at most limit expired rows (turns first, then
	// conversations whose own expiry passed, with their remaining turns)
	// and returns how many rows it deleted. Rows with expires_at > now are
	// never touched.
	DeleteExpired(ctx context.Context, now time.Time, limit int) (int, error)

	CreateAPIKey(ctx context.Context, k *APIKey) error
	// APIKeysByPrefix returns the keys whose Prefix matches.
	APIKeysByPrefix(ctx context.Context, prefix string) ([]APIKey, error)
	CountAPIKeys(ctx context.Context, tenantID string) (int, error)
	TouchAPIKey(ctx context.Context, id string, at time.Time) error
}
