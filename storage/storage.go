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
	"fmt"
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

// ErrExpired is returned when an ephemeral key is consumed at or after its
// ExpiresAt.
var ErrExpired = errors.New("storage: expired")

// ErrUsed is returned when an ephemeral key that was already consumed is
// consumed again.
var ErrUsed = errors.New("storage: already used")

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
	// EndUser is the pseudonym of the end user the conversation was with
	// (seal.Keyring.Pseudonym of the identifier the business gave), ""
	// when none was given. Never the identifier itself.
	EndUser string
	// Sentiment is the mean sentiment of the user's turns in [-1, 1],
	// set when the conversation ends (with Language).
	Sentiment float64
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
	// TextSealed is the transcript, sealed (AES-256-GCM under the
	// tenant's data key, see storage/seal): storage never sees a
	// transcript in clear. Empty when the retention policy keeps metadata
	// only (TextStored is then false); backends never store TextSealed
	// when TextStored is false.
	TextSealed []byte
	TextStored bool
	// Sentiment is the turn's sentiment score in [-1, 1] (0 neutral or
	// unknown), computed before sealing (privacy/textmeta).
	Sentiment float64
	Status    string
	StartedAt time.Time
	EndedAt   time.Time
	Latency   Latency
	ExpiresAt time.Time
}

// Latency holds the latency figures of one turn, in milliseconds. Zero
// means "not reached" (or, for the voice figures, not a voice turn).
//
// FirstTokenMS and TotalMS count from the moment the response was
// requested. The voice figures (EndOfTurnMS through FirstAudioSentMS) all
// count from one instant, the end of the user's speech, so they can be
// compared with each other directly.
type Latency struct {
	FirstTokenMS int64 // agent's first text delta
	TotalMS      int64 // response.done
	EngineMS     int64 // time spent inside engines (agent, later STT/TTS)

	// EndOfTurnMS is when the end of the user's turn was decided
	// (speech_stopped), from the end of their speech.
	EndOfTurnMS int64
	// FirstPartialMS is when the first partial transcript arrived, from
	// the end of the user's speech.
	FirstPartialMS int64
	// FinalTranscriptMS is when the final transcript arrived, from the
	// end of the user's speech.
	FinalTranscriptMS int64
	// FirstAudioMS is when the first synthesized audio of the reply was
	// produced, from the end of the user's speech.
	FirstAudioMS int64
	// FirstAudioSentMS is when the first audio event was written to the
	// client, from the end of the user's speech.
	FirstAudioSentMS int64
}

// APIKey is a stored secret key. Only a hash of the key is kept; Prefix is
// the non-secret start used to find the row.
//
// It is the view of the keys the gateway had before tenancy: an APIKey is a
// Key (see accounts.go) of kind KeySecret with OwnerKeyScopes, and every
// key the Accounts interface creates is in the same table.
type APIKey struct {
	ID         string
	TenantID   string
	Prefix     string
	Hash       []byte // SHA-256 of the whole key
	CreatedAt  time.Time
	LastUsedAt time.Time // zero if never used
}

// EphemeralKeyHashLen is the length of EphemeralKey.Hash (SHA-256).
const EphemeralKeyHashLen = 32

// EphemeralKey is a short-lived client secret ("ek_..."), minted by
// POST /v1/realtime/client_secrets for WebRTC calls and browser WebSocket
// sessions, and bound to an agent and session settings. Only its hash is
// kept; Prefix (the first 12 characters of the key, i.e. "ek_" and 9 more)
// finds the row. It is usable once (Store.ConsumeEphemeralKey).
type EphemeralKey struct {
	ID       string // unique, e.g. "ekid_..."
	TenantID string
	KeyID    string // the secret key (APIKey.ID) that minted it
	AgentID  string
	Prefix   string // unique
	Hash     []byte // SHA-256 of the whole key, EphemeralKeyHashLen bytes
	Session  []byte // JSON session settings, opaque to storage (may be empty)
	// EndUser is the pseudonym of the end user the key was minted for
	// (never the identifier itself); "" when none was named.
	EndUser string
	// Origin is the browser origin (e.g. "https://shop.example") the key
	// is bound to: the page a publishable key minted it from, or the
	// origin a secret key named; "" when unbound.
	Origin    string
	CreatedAt time.Time
	ExpiresAt time.Time // required
	UsedAt    time.Time // zero until consumed
}

// Validate reports why k cannot be stored, as an error wrapping ErrInvalid
// that names the field, or nil. Every Store's CreateEphemeralKey runs it,
// so backends and test doubles reject the same keys.
func (k *EphemeralKey) Validate() error {
	required := func(field string) error {
		return fmt.Errorf("%w: EphemeralKey.%s is required", ErrInvalid, field)
	}
	switch {
	case k.ID == "":
		return required("ID")
	case k.TenantID == "":
		return required("TenantID")
	case k.AgentID == "":
		return required("AgentID")
	case k.Prefix == "":
		return required("Prefix")
	case len(k.Hash) != EphemeralKeyHashLen:
		return fmt.Errorf("%w: EphemeralKey.Hash must be %d bytes, got %d", ErrInvalid, EphemeralKeyHashLen, len(k.Hash))
	case k.ExpiresAt.IsZero():
		return required("ExpiresAt")
	}
	return nil
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
	// TruncateTurnText replaces the sealed text of a stored turn, e.g.
	// with the part of a spoken answer the client reports it played. A
	// turn stored without text (TextStored false) stays without text (no
	// error). ErrNotFound if conversationID has no turn itemID for
	// tenantID.
	TruncateTurnText(ctx context.Context, tenantID, conversationID, itemID string, sealed []byte) error
	// WriteBatch applies ws in order in one transaction and returns one
	// error per write (nil, ErrNotFound, ErrConflict, ErrInvalid, or any
	// other error the single method would have returned for it): each
	// write has the semantics of the single method it stands for, and a
	// write that fails does not undo the others (each runs under a
	// savepoint). The second result is a failure of the whole batch (the
	// context is done, the connection was lost, the commit failed): then
	// nothing was applied and the slice is nil. Turns appended with Seq 0
	// get their assigned Seq written back only when the batch commits.
	WriteBatch(ctx context.Context, ws []Write) ([]error, error)
	GetConversation(ctx context.Context, tenantID, id string) (*Conversation, error)
	// ListTurns returns a conversation's turns in Seq order (ErrNotFound if
	// the conversation does not exist for tenantID).
	ListTurns(ctx context.Context, tenantID, conversationID string) ([]Turn, error)

	// DeleteExpired deletes at most limit expired rows (turns first, then
	// conversations whose own expiry passed, with their remaining turns,
	// then ephemeral keys, used or not; then, on a Backend, turn audio,
	// usage events, user sessions, invitations, accepted or not,
	// idempotency records, API calls and audit entries) and returns how
	// many rows it deleted. Rows with expires_at > now are never touched,
	// except the turns and audio of an expired conversation: they cannot
	// outlive their conversation, and those cascaded rows are not counted. Several nodes may call it at once
	// without double work.
	DeleteExpired(ctx context.Context, now time.Time, limit int) (int, error)

	// CreateAPIKey inserts k as an owner key (a secret Key with
	// OwnerKeyScopes). ErrConflict if k.ID or k.Prefix is taken: prefixes
	// are unique among all keys.
	CreateAPIKey(ctx context.Context, k *APIKey) error
	// APIKeysByPrefix returns the keys whose Prefix matches, of any
	// tenant (it is the authentication lookup), oldest first. On a
	// Backend it returns only the keys the realtime API may accept: not
	// revoked, secret, with ScopeRealtime, of a tenant that is not
	// disabled.
	APIKeysByPrefix(ctx context.Context, prefix string) ([]APIKey, error)
	// CountAPIKeys counts a tenant's keys; on a Backend, its secret keys
	// that are not revoked.
	CountAPIKeys(ctx context.Context, tenantID string) (int, error)
	// TouchAPIKey records a use of the key; LastUsedAt never moves back.
	// ErrNotFound if there is no such key.
	TouchAPIKey(ctx context.Context, id string, at time.Time) error

	// CreateEphemeralKey inserts k. ErrConflict if k.ID or k.Prefix is
	// taken; ErrInvalid (wrapped, naming the field) when k.Validate fails:
	// an empty ID, TenantID, AgentID or Prefix, a Hash that is not 32
	// bytes, or a zero ExpiresAt.
	CreateEphemeralKey(ctx context.Context, k *EphemeralKey) error
	// ConsumeEphemeralKey finds the key by prefix, compares hash with its
	// Hash in constant time (crypto/subtle) and marks it used at at,
	// atomically: of concurrent consumers of one key exactly one succeeds,
	// on any number of nodes. The checks, in order: ErrNotFound when no key
	// has that prefix and hash (or, on a Backend, its tenant is disabled);
	// ErrExpired when ExpiresAt <= at (the key is
	// not marked); ErrUsed when it was consumed before. On success it
	// returns the key with UsedAt set (to at, at millisecond precision in
	// UTC). ErrInvalid when at is zero.
	ConsumeEphemeralKey(ctx context.Context, prefix string, hash []byte, at time.Time) (*EphemeralKey, error)
}

// Write is one write of a batch (see Store.WriteBatch); exactly one field
// is set, else the write fails with ErrInvalid.
//
// Audio and Usage exist only in batches, and only a Backend (which also
// implements Privacy) applies them; WriteEach answers ErrInvalid for them.
type Write struct {
	Create   *Conversation  // CreateConversation
	Turn     *Turn          // AppendTurn
	End      *EndWrite      // EndConversation
	Truncate *TruncateWrite // TruncateTurnText
	// Audio stores a logged turn's sealed audio (only for tenants with
	// audio logging on). ErrNotFound if the conversation does not exist
	// for its tenant; ErrConflict if that turn already has audio.
	Audio *TurnAudio
	// Usage inserts a usage event and adds it to its tenant's daily
	// rollup (UsageDay) in the same savepoint. ErrConflict if its ID is
	// taken (and then the rollup is not counted twice).
	Usage *UsageEvent
}

// EndWrite is an EndConversation in a batch. Language and Sentiment, when
// set, are stored on the conversation with its end (a second end changes
// nothing, like EndConversation).
type EndWrite struct {
	TenantID, ID string
	At           time.Time
	Language     string
	Sentiment    float64
}

// TruncateWrite is a TruncateTurnText in a batch.
type TruncateWrite struct {
	TenantID, ConversationID, ItemID string
	TextSealed                       []byte
}

// WriteEach applies ws one by one with the single methods of s. It has
// WriteBatch's per-write results but not its atomicity: when ctx is done
// midway it returns ctx's error with the earlier writes applied. It is
// meant for in-memory test doubles, which can implement WriteBatch with
// it; the real backends do not use it.
func WriteEach(ctx context.Context, s Store, ws []Write) ([]error, error) {
	errs := make([]error, len(ws))
	for i, w := range ws {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		switch {
		case !w.Valid():
			errs[i] = ErrInvalidWrite
		case w.Create != nil:
			errs[i] = s.CreateConversation(ctx, w.Create)
		case w.Turn != nil:
			errs[i] = s.AppendTurn(ctx, w.Turn)
		case w.End != nil:
			errs[i] = s.EndConversation(ctx, w.End.TenantID, w.End.ID, w.End.At)
		case w.Truncate != nil:
			t := w.Truncate
			errs[i] = s.TruncateTurnText(ctx, t.TenantID, t.ConversationID, t.ItemID, t.TextSealed)
		case w.Audio != nil, w.Usage != nil:
			errs[i] = fmt.Errorf("%w: Audio and Usage writes need a Backend's WriteBatch", ErrInvalid)
		}
	}
	return errs, nil
}

// ErrInvalidWrite is the error of a Write with no field, or more than one,
// set. It wraps ErrInvalid.
var ErrInvalidWrite = fmt.Errorf("%w: a Write must set exactly one of Create, Turn, End, Truncate, Audio, Usage", ErrInvalid)

// Valid reports whether exactly one field of w is set.
func (w *Write) Valid() bool {
	n := 0
	for _, set := range []bool{w.Create != nil, w.Turn != nil, w.End != nil, w.Truncate != nil, w.Audio != nil, w.Usage != nil} {
		if set {
			n++
		}
	}
	return n == 1
}
