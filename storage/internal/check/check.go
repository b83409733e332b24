// Package check validates records before a backend stores them, so both
// backends reject the same inputs with the same storage.ErrInvalid errors.
package check

import (
	"fmt"
	"math"
	"time"

	"parley/storage"
)

func invalid(record, field string) error {
	return fmt.Errorf("%w: %s.%s is required", storage.ErrInvalid, record, field)
}

// Conversation checks the fields a conversation row cannot do without.
func Conversation(c *storage.Conversation) error {
	switch {
	case c.ID == "":
		return invalid("Conversation", "ID")
	case c.TenantID == "":
		return invalid("Conversation", "TenantID")
	case c.ExpiresAt.IsZero():
		return invalid("Conversation", "ExpiresAt")
	}
	return Sentiment("Conversation.Sentiment", c.Sentiment)
}

// Sentiment checks a sentiment score: in [-1, 1] (so not NaN, which not
// every database keeps).
func Sentiment(field string, v float64) error {
	if math.IsNaN(v) || v < -1 || v > 1 {
		return fmt.Errorf("%w: %s must be between -1 and 1, got %v", storage.ErrInvalid, field, v)
	}
	return nil
}

// Turn checks the fields a turn row cannot do without.
func Turn(t *storage.Turn) error {
	switch {
	case t.ID == "":
		return invalid("Turn", "ID")
	case t.ConversationID == "":
		return invalid("Turn", "ConversationID")
	case t.TenantID == "":
		return invalid("Turn", "TenantID")
	case t.ExpiresAt.IsZero():
		return invalid("Turn", "ExpiresAt")
	case t.Seq < 0:
		return fmt.Errorf("%w: Turn.Seq is negative", storage.ErrInvalid)
	}
	return Sentiment("Turn.Sentiment", t.Sentiment)
}

// APIKey checks the fields an API key row cannot do without.
func APIKey(k *storage.APIKey) error {
	switch {
	case k.ID == "":
		return invalid("APIKey", "ID")
	case k.TenantID == "":
		return invalid("APIKey", "TenantID")
	case k.Prefix == "":
		return invalid("APIKey", "Prefix")
	case len(k.Hash) == 0:
		return invalid("APIKey", "Hash")
	}
	return nil
}

// Limit checks a DeleteExpired batch size.
func Limit(limit int) error {
	if limit <= 0 {
		return fmt.Errorf("%w: DeleteExpired limit must be positive, got %d", storage.ErrInvalid, limit)
	}
	return nil
}

// End checks an EndConversation end time.
func End(at time.Time) error {
	if at.IsZero() {
		return fmt.Errorf("%w: EndConversation endedAt is zero", storage.ErrInvalid)
	}
	return nil
}

// EndWrite checks an end in a batch: its time, and the sentiment it
// brings.
func EndWrite(e *storage.EndWrite) error {
	if err := End(e.At); err != nil {
		return err
	}
	return Sentiment("EndWrite.Sentiment", e.Sentiment)
}

// Write checks one write of a batch the way the single method it stands
// for checks its arguments; Audio and Usage writes with their record's
// Validate.
func Write(w *storage.Write) error {
	switch {
	case !w.Valid():
		return storage.ErrInvalidWrite
	case w.Create != nil:
		return Conversation(w.Create)
	case w.Turn != nil:
		return Turn(w.Turn)
	case w.End != nil:
		return EndWrite(w.End)
	case w.Audio != nil:
		return w.Audio.Validate()
	case w.Usage != nil:
		return w.Usage.Validate()
	}
	return nil // Truncate: nothing to check, a missing turn is ErrNotFound
}
