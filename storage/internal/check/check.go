// Package check validates records before a backend stores them, so both
// backends reject the same inputs with the same storage.ErrInvalid errors.
package check

import (
	"fmt"
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
	return nil
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

// Write checks one write of a batch the way the single method it stands
// for checks its arguments.
func Write(w *storage.Write) error {
	switch {
	case !w.Valid():
		return storage.ErrInvalidWrite
	case w.Create != nil:
		return Conversation(w.Create)
	case w.Turn != nil:
		return Turn(w.Turn)
	case w.End != nil:
		return End(w.End.At)
	}
	return nil // Truncate: nothing to check, a missing turn is ErrNotFound
}
