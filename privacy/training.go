package privacy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"parley/privacy/redact"
	"parley/storage"
	"parley/storage/seal"
)

// TrainingStats counts what a training export wrote: Tenants is how many
// tenants contributed at least one conversation.
type TrainingStats struct {
	Tenants, Conversations, Turns int
}

// Pseudonym labels of the training export. Pseudonyms are keyed by each
// tenant's data key (Opener.Pseudonym): stable from one export to the
// next, unlinkable to the ids without the key, and gone with it when the
// tenant is shredded. The labels start with a control character, which
// no end-user identifier may contain (the gateway and the management API
// refuse them), so a training pseudonym never equals an end user's.
const (
	trainingTenantLabel       = "\x00training-tenant"
	trainingConversationLabel = "\x00training-conversation:"
)

// ExportTraining writes the training export of the model improvement
// program to w as JSON Lines, one conversation per line:
//
//	{"tenant":"<pseudonym>","conversation":"<pseudonym>","agent_id":"...",
//	 "language":"en-US","day":"2026-11-29",
//	 "turns":[{"role":"user","text":"..."},...]}
//
// Only the tenants storage.Privacy.TrainingTenants lists are read (active
// and opted in): it is asked at every export, so a revocation (or a
// disabled tenant) applies to the next one. Every text is unsealed and
// then redacted with every kind privacy/redact knows, whatever the
// tenant's own redaction settings, so no email address, phone number,
// card number or IBAN leaves. Tenant and conversation ids are replaced by
// pseudonyms; there is no end user, and no time finer than the day the
// conversation started. Turns without text (metadata only, or unreadable
// because the tenant's key was shredded) are left out, and conversations
// left without any turn are skipped; so are conversations and turns
// already expired at now (the sweeper has not deleted them yet).
//
// Errors other than a shredded key abort the export; w then holds the
// lines written so far (whole lines, or a prefix of the buffered output).
func ExportTraining(ctx context.Context, w io.Writer, b storage.Backend, kr Opener, now time.Time) (TrainingStats, error) {
	var stats TrainingStats
	tenants, err := b.TrainingTenants(ctx)
	if err != nil {
		return stats, fmt.Errorf("privacy: training tenants: %w", err)
	}
	bw := bufio.NewWriterSize(w, bufferSize)
	red := redact.All()
	for _, tenantID := range tenants {
		op := tenantOpener{kr: kr, tenantID: tenantID}
		tenantPseudonym := ""
		n := 0
		for conv, err := range conversations(ctx, b, tenantID, storage.ConversationFilter{}) {
			if err != nil {
				return stats, err
			}
			if !conv.ExpiresAt.After(now) {
				continue
			}
			turns, err := trainingTurns(ctx, b, op, red, conv, now)
			if err != nil {
				return stats, err
			}
			if len(turns) == 0 {
				continue
			}
			if tenantPseudonym == "" {
				tenantPseudonym, err = kr.Pseudonym(ctx, tenantID, trainingTenantLabel)
				if err != nil {
					return stats, fmt.Errorf("privacy: tenant pseudonym: %w", err)
				}
			}
			convPseudonym, err := kr.Pseudonym(ctx, tenantID, trainingConversationLabel+conv.ID)
			if err != nil {
				return stats, fmt.Errorf("privacy: conversation pseudonym: %w", err)
			}
			line := trainingLine{
				Tenant: tenantPseudonym, Conversation: convPseudonym, AgentID: conv.AgentID,
				Language: conv.Language, Day: conv.StartedAt.UTC().Format(time.DateOnly), Turns: turns,
			}
			if err := writeJSON(bw, line); err != nil {
				return stats, err
			}
			if err := bw.WriteByte('\n'); err != nil {
				return stats, err
			}
			n++
			stats.Conversations++
			stats.Turns += len(turns)
		}
		if n > 0 {
			stats.Tenants++
		}
	}
	if err := bw.Flush(); err != nil {
		return stats, fmt.Errorf("privacy: training export: %w", err)
	}
	return stats, nil
}

// trainingTurns returns the redacted text turns of c.
func trainingTurns(ctx context.Context, b storage.Backend, op tenantOpener, red redact.Kinds, c *storage.Conversation, now time.Time) ([]trainingTurn, error) {
	turns, err := b.ListTurns(ctx, c.TenantID, c.ID)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil // deleted since it was listed
	}
	if err != nil {
		return nil, fmt.Errorf("privacy: turns of %s (tenant %s): %w", c.ID, c.TenantID, err)
	}
	var out []trainingTurn
	for i := range turns {
		t := &turns[i]
		if !t.TextStored || len(t.TextSealed) == 0 || !t.ExpiresAt.After(now) {
			continue
		}
		text, unreadable, err := op.open(ctx, t.TextSealed, seal.TurnAAD(c.TenantID, c.ID, t.ID))
		if unreadable {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("privacy: text of turn %s of %s (tenant %s): %w", t.ID, c.ID, c.TenantID, err)
		}
		s := red.Redact(string(text))
		if s == "" {
			continue
		}
		out = append(out, trainingTurn{Role: t.Role, Text: s})
	}
	return out, nil
}

type trainingLine struct {
	Tenant       string         `json:"tenant"`
	Conversation string         `json:"conversation"`
	AgentID      string         `json:"agent_id"`
	Language     string         `json:"language"`
	Day          string         `json:"day"`
	Turns        []trainingTurn `json:"turns"`
}

type trainingTurn struct {
	Role string `json:"role"`
	Text string `json:"text"`
}
