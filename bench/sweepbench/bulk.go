package main

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"time"

	"github.com/jackc/pgx/v5"
	_ "modernc.org/sqlite" // the driver storage/sqlite uses, registered as "sqlite"

	"parley/storage"
)

// The bulk loaders write the rows the Store would for the same Create and
// Turn writes (a Create carrying its final TurnCount, see loader),
// straight into the tables, naming the columns of the schema (migrations
// 0001, 0002 and 0005; the others keep their defaults). Loading is setup,
// not what is measured, and this is an order of magnitude faster than the
// Store API; the verification reads every kept row back through the
// Store, and -load api loads through it instead.

// split returns the conversations and the turns of ws.
func split(ws []storage.Write) (convs []*storage.Conversation, turns []*storage.Turn) {
	for _, w := range ws {
		switch {
		case w.Create != nil:
			convs = append(convs, w.Create)
		case w.Turn != nil:
			turns = append(turns, w.Turn)
		}
	}
	return convs, turns
}

// bulkSQLite loads through a connection of its own to the file of an
// open store, one transaction per batch.
func bulkSQLite(path string) loader {
	return func(ctx context.Context, batches <-chan []storage.Write) error {
		q := url.Values{"_pragma": {"busy_timeout(10000)", "foreign_keys(1)", "synchronous(NORMAL)"}, "_txlock": {"immediate"}}
		db, err := sql.Open("sqlite", path+"?"+q.Encode())
		if err != nil {
			return err
		}
		defer db.Close()
		db.SetMaxOpenConns(1)
		ms := func(t time.Time) int64 { return t.UnixMilli() }
		for ws := range batches {
			convs, turns := split(ws)
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				return err
			}
			err = func() error {
				insConv, err := tx.PrepareContext(ctx, `INSERT INTO conversations
					(id, tenant_id, agent_id, channel, language, started_at, turn_count, expires_at)
					VALUES (?, ?, ?, ?, ?, ?, ?, ?)`)
				if err != nil {
					return err
				}
				for _, c := range convs {
					if _, err := insConv.ExecContext(ctx, c.ID, c.TenantID, c.AgentID, c.Channel, c.Language,
						ms(c.StartedAt), c.TurnCount, ms(c.ExpiresAt)); err != nil {
						return err
					}
				}
				insTurn, err := tx.PrepareContext(ctx, `INSERT INTO turns
					(conversation_id, id, tenant_id, seq, role, text_sealed, text_stored, sentiment, status,
					 started_at, ended_at, first_token_ms, total_ms, engine_ms, end_of_turn_ms, expires_at)
					VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
				if err != nil {
					return err
				}
				for _, t := range turns {
					if _, err := insTurn.ExecContext(ctx, t.ConversationID, t.ID, t.TenantID, t.Seq, t.Role, t.TextSealed,
						t.Sentiment, t.Status, ms(t.StartedAt), ms(t.EndedAt), t.Latency.FirstTokenMS, t.Latency.TotalMS,
						t.Latency.EngineMS, t.Latency.EndOfTurnMS, ms(t.ExpiresAt)); err != nil {
						return err
					}
				}
				return nil
			}()
			if err != nil {
				tx.Rollback()
				return err
			}
			if err := tx.Commit(); err != nil {
				return err
			}
		}
		return nil
	}
}

// bulkPostgres loads with COPY, one transaction per batch.
func bulkPostgres(url string) loader {
	return func(ctx context.Context, batches <-chan []storage.Write) error {
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			return err
		}
		defer conn.Close(context.Background())
		for ws := range batches {
			convs, turns := split(ws)
			var convRows, turnRows [][]any
			for _, c := range convs {
				convRows = append(convRows, []any{c.ID, c.TenantID, c.AgentID, c.Channel, c.Language, c.StartedAt, c.TurnCount, c.ExpiresAt})
			}
			for _, t := range turns {
				turnRows = append(turnRows, []any{t.ConversationID, t.ID, t.TenantID, t.Seq, t.Role, t.TextSealed, true, t.Sentiment,
					t.Status, t.StartedAt, t.EndedAt, t.Latency.FirstTokenMS, t.Latency.TotalMS, t.Latency.EngineMS,
					t.Latency.EndOfTurnMS, t.ExpiresAt})
			}
			err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
				if len(convRows) > 0 {
					if _, err := tx.CopyFrom(ctx, pgx.Identifier{"conversations"},
						[]string{"id", "tenant_id", "agent_id", "channel", "language", "started_at", "turn_count", "expires_at"},
						pgx.CopyFromRows(convRows)); err != nil {
						return fmt.Errorf("copy conversations: %w", err)
					}
				}
				if len(turnRows) > 0 {
					if _, err := tx.CopyFrom(ctx, pgx.Identifier{"turns"},
						[]string{"conversation_id", "id", "tenant_id", "seq", "role", "text_sealed", "text_stored", "sentiment",
							"status", "started_at", "ended_at", "first_token_ms", "total_ms", "engine_ms", "end_of_turn_ms", "expires_at"},
						pgx.CopyFromRows(turnRows)); err != nil {
						return fmt.Errorf("copy turns: %w", err)
					}
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	}
}
