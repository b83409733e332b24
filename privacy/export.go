// Package privacy implements the data-rights operations of Parley's privacy
// promises (docs/PRIVACY.md) on top of storage.Privacy and storage/seal: a
// tenant's (or one end user's, or one conversation's) data exported as one
// portable JSON document, and the training export of the model improvement
// program, which only opted-in tenants ever appear in.
//
// Redaction before storage lives in privacy/redact, the metadata computed
// from a transcript before it is sealed in privacy/textmeta.
package privacy

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"time"

	"parley/storage"
	"parley/storage/seal"
)

// Opener is what the exports need of the keyring (*seal.Keyring satisfies
// it).
type Opener interface {
	Open(ctx context.Context, tenantID string, sealed, aad []byte) ([]byte, error)
	Pseudonym(ctx context.Context, tenantID, endUserID string) (string, error)
}

// ExportFormat names the document Export writes; a later, incompatible
// layout gets a new name.
const ExportFormat = "parley.export.v1"

// pageSize is how many conversations an export reads at a time: only one
// page of metadata, and one conversation's turns and audio, are in memory
// at once, whatever the size of the tenant.
const pageSize = 100

// bufferSize is the write buffer of the exports. What is still buffered
// when an export fails is not written: an export that fails early (say on
// its first page) leaves w untouched, so an HTTP handler can still answer
// with an error status.
const bufferSize = 32 << 10

// ExportStats counts what an export wrote.
type ExportStats struct {
	Conversations, Turns, Audio int
}

// Export writes the data of tenantID that f selects to w, as one JSON
// document (ExportFormat):
//
//	{"format":"parley.export.v1","tenant_id":...,"exported_at":...,
//	 "scope":{"conversation_id":...,"end_user":...},
//	 "conversations":[{"id","agent_id","channel","language","sentiment",
//	   "end_user","started_at","ended_at","duration_ms","turn_count",
//	   "expires_at",
//	   "turns":[{"id","seq","role","status","text","sentiment",
//	     "started_at","ended_at","expires_at"}],
//	   "audio":[{"turn_id","format","duration_ms","data","expires_at"}]}],
//	 "usage_days":[{"day","channel","language","conversations","duration_ms"}]}
//
// The scope holds f's non-empty fields; f.EndUser is a pseudonym (callers
// pseudonymise the identifier the business gave with Opener.Pseudonym
// first). usage_days, the tenant's daily rollups (which hold no
// conversation), are only written for the whole-tenant scope (f zero).
// Times are RFC 3339 in UTC, null when not set (ended_at of an open
// conversation). A turn's text is null when its text is not stored (a
// metadata-only retention policy); audio data is base64.
//
// Sealed text and audio that cannot be opened because the tenant's data
// key was shredded are written as null with "unreadable": true (see
// OpenSealed: that includes data sealed under a key shredded before the
// tenant's current one). Any other
// error (storage, a corrupt sealed value, an unknown master key, w) aborts
// the export: Export returns it, and w holds a prefix of the document (or
// nothing, when the error came before the first bufferSize bytes); the
// caller decides what to tell the client.
//
// The document is written conversation by conversation: conversations are
// read a page at a time and never held all in memory.
func Export(ctx context.Context, w io.Writer, b storage.Backend, kr Opener, tenantID string, f storage.ConversationFilter, now time.Time) (ExportStats, error) {
	var stats ExportStats
	if tenantID == "" {
		return stats, fmt.Errorf("%w: privacy.Export: tenantID is required", storage.ErrInvalid)
	}
	bw := bufio.NewWriterSize(w, bufferSize)
	header := exportHeader{
		Format:     ExportFormat,
		TenantID:   tenantID,
		ExportedAt: now.UTC().Truncate(time.Millisecond),
		Scope:      exportScope{ConversationID: f.ID, EndUser: f.EndUser},
	}
	if err := writeOpen(bw, header, "conversations"); err != nil {
		return stats, err
	}
	op := tenantOpener{kr: kr, tenantID: tenantID}
	first := true
	for conv, err := range conversations(ctx, b, tenantID, f) {
		if err != nil {
			return stats, err
		}
		if !first {
			bw.WriteByte(',')
		}
		first = false
		if err := exportConversation(ctx, bw, b, op, conv, &stats); err != nil {
			return stats, err
		}
		stats.Conversations++
	}
	bw.WriteByte(']')
	if f == (storage.ConversationFilter{}) {
		days, err := b.ListUsageDays(ctx, tenantID, time.Unix(0, 0).UTC(), now.UTC().Add(24*time.Hour))
		if err != nil {
			return stats, fmt.Errorf("privacy: usage days: %w", err)
		}
		out := make([]exportUsageDay, len(days))
		for i, d := range days {
			out[i] = exportUsageDay{Day: d.Day.UTC().Format(time.DateOnly), Channel: d.Channel, Language: d.Language,
				Conversations: d.Conversations, DurationMS: d.DurationMS}
		}
		bw.WriteString(`,"usage_days":`)
		if err := writeJSON(bw, out); err != nil {
			return stats, err
		}
	}
	bw.WriteString("}\n")
	if err := bw.Flush(); err != nil {
		return stats, fmt.Errorf("privacy: export: %w", err)
	}
	return stats, nil
}

// exportConversation writes one conversation with its turns and audio.
func exportConversation(ctx context.Context, bw *bufio.Writer, b storage.Backend, op tenantOpener, c *storage.Conversation, stats *ExportStats) error {
	meta := exportConversationMeta{
		ID: c.ID, AgentID: c.AgentID, Channel: c.Channel, Language: c.Language, Sentiment: c.Sentiment,
		EndUser: c.EndUser, StartedAt: timePtr(c.StartedAt), EndedAt: timePtr(c.EndedAt),
		DurationMS: c.DurationMS, TurnCount: c.TurnCount, ExpiresAt: timePtr(c.ExpiresAt),
	}
	if err := writeOpen(bw, meta, "turns"); err != nil {
		return err
	}
	turns, err := b.ListTurns(ctx, c.TenantID, c.ID)
	if errors.Is(err, storage.ErrNotFound) {
		turns, err = nil, nil // deleted (or swept) since it was listed
	}
	if err != nil {
		return fmt.Errorf("privacy: turns of %s: %w", c.ID, err)
	}
	for i := range turns {
		t := &turns[i]
		out := exportTurn{
			ID: t.ID, Seq: t.Seq, Role: t.Role, Status: t.Status, Sentiment: t.Sentiment,
			StartedAt: timePtr(t.StartedAt), EndedAt: timePtr(t.EndedAt), ExpiresAt: timePtr(t.ExpiresAt),
		}
		// A turn whose text is stored but not sealed yet (written before
		// sealing existed, until parleyd seals it) has no text to hand out.
		if t.TextStored && len(t.TextSealed) > 0 {
			text, unreadable, err := op.open(ctx, t.TextSealed, seal.TurnAAD(c.TenantID, c.ID, t.ID))
			switch {
			case err != nil:
				return fmt.Errorf("privacy: text of turn %s of %s: %w", t.ID, c.ID, err)
			case unreadable:
				out.Unreadable = true
			default:
				s := string(text)
				out.Text = &s
			}
		}
		if i > 0 {
			bw.WriteByte(',')
		}
		if err := writeJSON(bw, out); err != nil {
			return err
		}
		stats.Turns++
	}
	turns = nil
	bw.WriteString(`],"audio":[`)
	audio, err := b.ListTurnAudio(ctx, c.TenantID, c.ID)
	if errors.Is(err, storage.ErrNotFound) {
		audio, err = nil, nil
	}
	if err != nil {
		return fmt.Errorf("privacy: audio of %s: %w", c.ID, err)
	}
	for i := range audio {
		a := &audio[i]
		out := exportAudio{TurnID: a.TurnID, Format: a.Format, DurationMS: a.DurationMS, ExpiresAt: timePtr(a.ExpiresAt)}
		data, unreadable, err := op.open(ctx, a.Sealed, seal.AudioAAD(c.TenantID, c.ID, a.TurnID))
		switch {
		case err != nil:
			return fmt.Errorf("privacy: audio of turn %s of %s: %w", a.TurnID, c.ID, err)
		case unreadable:
			out.Unreadable = true
		default:
			out.Data = data
		}
		a.Sealed = nil // let it go before the next clip
		if i > 0 {
			bw.WriteByte(',')
		}
		if err := writeJSON(bw, out); err != nil {
			return err
		}
		stats.Audio++
	}
	_, err = bw.WriteString("]}")
	return err
}

type exportHeader struct {
	Format     string      `json:"format"`
	TenantID   string      `json:"tenant_id"`
	ExportedAt time.Time   `json:"exported_at"`
	Scope      exportScope `json:"scope"`
}

type exportScope struct {
	ConversationID string `json:"conversation_id,omitempty"`
	EndUser        string `json:"end_user,omitempty"`
}

type exportConversationMeta struct {
	ID         string     `json:"id"`
	AgentID    string     `json:"agent_id"`
	Channel    string     `json:"channel"`
	Language   string     `json:"language"`
	Sentiment  float64    `json:"sentiment"`
	EndUser    string     `json:"end_user"`
	StartedAt  *time.Time `json:"started_at"`
	EndedAt    *time.Time `json:"ended_at"`
	DurationMS int64      `json:"duration_ms"`
	TurnCount  int        `json:"turn_count"`
	ExpiresAt  *time.Time `json:"expires_at"`
}

type exportTurn struct {
	ID         string     `json:"id"`
	Seq        int        `json:"seq"`
	Role       string     `json:"role"`
	Status     string     `json:"status"`
	Text       *string    `json:"text"`
	Unreadable bool       `json:"unreadable,omitempty"`
	Sentiment  float64    `json:"sentiment"`
	StartedAt  *time.Time `json:"started_at"`
	EndedAt    *time.Time `json:"ended_at"`
	ExpiresAt  *time.Time `json:"expires_at"`
}

type exportAudio struct {
	TurnID     string     `json:"turn_id"`
	Format     string     `json:"format"`
	DurationMS int64      `json:"duration_ms"`
	Data       []byte     `json:"data"` // base64; null when unreadable
	Unreadable bool       `json:"unreadable,omitempty"`
	ExpiresAt  *time.Time `json:"expires_at"`
}

type exportUsageDay struct {
	Day           string `json:"day"` // YYYY-MM-DD, UTC
	Channel       string `json:"channel"`
	Language      string `json:"language"`
	Conversations int    `json:"conversations"`
	DurationMS    int64  `json:"duration_ms"`
}

// timePtr is t in UTC, or nil (JSON null) when t is zero.
func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

// writeJSON writes v's JSON encoding (without a newline).
func writeJSON(bw *bufio.Writer, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("privacy: export: %w", err)
	}
	_, err = bw.Write(data)
	return err
}

// writeOpen writes v, a struct encoded as a JSON object, without its
// closing brace, followed by ,"field":[ — so that the list that follows
// can be streamed into the object.
func writeOpen(bw *bufio.Writer, v any, field string) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("privacy: export: %w", err)
	}
	if len(data) < 2 || data[len(data)-1] != '}' {
		return fmt.Errorf("privacy: export: %T is not a JSON object", v)
	}
	bw.Write(data[:len(data)-1])
	if len(data) > 2 {
		bw.WriteByte(',')
	}
	_, err = bw.WriteString(`"` + field + `":[`)
	return err
}

// conversations yields the tenant's conversations matching f, reading
// them a page at a time. After an error it yields nothing more.
func conversations(ctx context.Context, b storage.Backend, tenantID string, f storage.ConversationFilter) iter.Seq2[*storage.Conversation, error] {
	return func(yield func(*storage.Conversation, error) bool) {
		after := ""
		for {
			if err := ctx.Err(); err != nil {
				yield(nil, err)
				return
			}
			page, next, err := b.ListConversations(ctx, tenantID, f, after, pageSize)
			if err != nil {
				yield(nil, fmt.Errorf("privacy: conversations of %s: %w", tenantID, err))
				return
			}
			for i := range page {
				if !yield(&page[i], nil) {
					return
				}
			}
			if next == "" || len(page) == 0 {
				return
			}
			after = next
		}
	}
}

// OpenSealed opens a tenant's sealed value, and tells data that is
// unreadable because its data key was shredded (seal.ErrShredded: the
// tenant has no key, or the value names a key shredded since) from data
// that is broken or cannot be read now (any other error).
func OpenSealed(ctx context.Context, kr Opener, tenantID string, sealed, aad []byte) (plaintext []byte, unreadable bool, err error) {
	plaintext, err = kr.Open(ctx, tenantID, sealed, aad)
	if errors.Is(err, seal.ErrShredded) {
		return nil, true, nil
	}
	return plaintext, false, err
}

// tenantOpener is OpenSealed for one tenant.
type tenantOpener struct {
	kr       Opener
	tenantID string
}

func (o tenantOpener) open(ctx context.Context, sealed, aad []byte) ([]byte, bool, error) {
	return OpenSealed(ctx, o.kr, o.tenantID, sealed, aad)
}
