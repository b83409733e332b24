package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"parley/storage"
)

// The privacy half of the Store (storage.Privacy): data keys, policies,
// audio logs, usage records and the data-rights operations. Like the
// accounts half, reads go through the read pool and writes through the
// single write connection; the methods that write several tables do it in
// one BEGIN IMMEDIATE transaction.

const dayMS = int64(24 * time.Hour / time.Millisecond)

// pageByID is page for the lists ordered by id alone: the query's last two
// parameters are the cursor's id, compared as "id > ?", and the row limit;
// scan reads a row and returns its id. The cursor is a storage.Cursor
// whose time is the Unix epoch (it carries no time).
func pageByID[T any](ctx context.Context, db *sql.DB, scan func(scanner) (*T, string, error),
	query, after string, limit int, args ...any) ([]T, string, error) {
	limit, err := storage.PageLimit(limit)
	if err != nil {
		return nil, "", err
	}
	cur, err := storage.ParseCursor(after)
	if err != nil {
		return nil, "", err
	}
	rows, err := db.QueryContext(ctx, query, append(args, cur.ID, limit+1)...)
	if err != nil {
		return nil, "", err
	}
	defer rows.Close()
	items := []T{}
	var last string
	for rows.Next() {
		if len(items) == limit { // a row after the page: there is a next one
			return items, storage.Cursor{At: time.UnixMilli(0), ID: last}.String(), nil
		}
		v, id, err := scan(rows)
		if err != nil {
			return nil, "", err
		}
		items = append(items, *v)
		last = id
	}
	return items, "", rows.Err()
}

// Batched writes (WriteBatch runs them under a savepoint).

// insertAudio stores a turn's audio, into a conversation of its tenant
// only: ErrNotFound otherwise, ErrConflict when the turn has audio.
func insertAudio(ctx context.Context, st *writeStmts, a *storage.TurnAudio) error {
	if err := a.Validate(); err != nil {
		return err
	}
	res, err := st.insertAudio.ExecContext(ctx, a.ConversationID, a.TurnID, a.TenantID, a.Format, a.Sealed,
		a.DurationMS, unixMS(a.CreatedAt), unixMS(a.ExpiresAt))
	if err != nil {
		return mapErr(err)
	}
	n, err := res.RowsAffected()
	if err == nil && n == 0 {
		err = storage.ErrNotFound
	}
	return err
}

// insertUsage inserts a usage event and, only if that succeeded, counts it
// in its tenant's rollup of its UTC day.
func insertUsage(ctx context.Context, st *writeStmts, e *storage.UsageEvent) error {
	if err := e.Validate(); err != nil {
		return err
	}
	_, err := st.insertUsage.ExecContext(ctx, e.ID, e.TenantID, e.ConversationID, e.Channel, e.Language,
		unixMS(e.At), e.DurationMS, unixMS(e.ExpiresAt))
	if err != nil {
		return mapErr(err)
	}
	_, err = st.addUsageDay.ExecContext(ctx, e.TenantID, utcDay(e.At), e.Channel, e.Language, e.DurationMS)
	return mapErr(err)
}

// utcDay is midnight UTC of t's day, in unix milliseconds.
func utcDay(t time.Time) int64 {
	u := t.UTC()
	return time.Date(u.Year(), u.Month(), u.Day(), 0, 0, 0, 0, time.UTC).UnixMilli()
}

// Data keys.

const dataKeyCols = `tenant_id, master_key_id, wrapped, created_at`

func scanDataKey(sc scanner) (*storage.DataKey, error) {
	var (
		k       storage.DataKey
		created int64
	)
	if err := sc.Scan(&k.TenantID, &k.MasterKeyID, &k.Wrapped, &created); err != nil {
		return nil, err
	}
	k.CreatedAt = fromMS(created)
	return &k, nil
}

// CreateDataKey implements storage.Privacy. The foreign key on tenants
// makes a key for a tenant that does not exist ErrNotFound.
func (s *Store) CreateDataKey(ctx context.Context, k *storage.DataKey) error {
	if err := k.Validate(); err != nil {
		return err
	}
	_, err := s.w.ExecContext(ctx, `INSERT INTO data_keys (`+dataKeyCols+`) VALUES (?, ?, ?, ?)`,
		k.TenantID, k.MasterKeyID, k.Wrapped, unixMS(k.CreatedAt))
	return mapErr(err)
}

// GetDataKey implements storage.Privacy.
func (s *Store) GetDataKey(ctx context.Context, tenantID string) (*storage.DataKey, error) {
	if err := storage.CheckParams("GetDataKey", "tenantID", tenantID); err != nil {
		return nil, err
	}
	return get(ctx, s.r, scanDataKey, `SELECT `+dataKeyCols+` FROM data_keys WHERE tenant_id = ?`, tenantID)
}

// ListDataKeys implements storage.Privacy.
func (s *Store) ListDataKeys(ctx context.Context, after string, limit int) ([]storage.DataKey, string, error) {
	return pageByID(ctx, s.r, func(sc scanner) (*storage.DataKey, string, error) {
		k, err := scanDataKey(sc)
		if err != nil {
			return nil, "", err
		}
		return k, k.TenantID, nil
	}, `SELECT `+dataKeyCols+` FROM data_keys WHERE tenant_id > ? ORDER BY tenant_id LIMIT ?`, after, limit)
}

// RewrapDataKey implements storage.Privacy: a compare-and-swap on the
// master key id, in one transaction so that the reason a swap failed
// (another node rewrapped it, or there is no key) is the right one.
// CreatedAt stays the key's.
func (s *Store) RewrapDataKey(ctx context.Context, k *storage.DataKey, oldMasterKeyID string) error {
	err := storage.CheckParams("RewrapDataKey", "DataKey.TenantID", k.TenantID, "DataKey.MasterKeyID", k.MasterKeyID,
		"DataKey.Wrapped", string(k.Wrapped), "oldMasterKeyID", oldMasterKeyID)
	if err != nil {
		return err
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE data_keys SET master_key_id = ?, wrapped = ?
			WHERE tenant_id = ? AND master_key_id = ?`, k.MasterKeyID, k.Wrapped, k.TenantID, oldMasterKeyID)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n > 0 {
			return err
		}
		err = mustCount(tx.QueryRowContext(ctx, `SELECT count(*) FROM data_keys WHERE tenant_id = ?`, k.TenantID))
		if err == nil {
			err = fmt.Errorf("%w: the data key of %s is no longer wrapped by %s", storage.ErrConflict, k.TenantID, oldMasterKeyID)
		}
		return err
	})
}

// DeleteDataKey implements storage.Privacy.
func (s *Store) DeleteDataKey(ctx context.Context, tenantID string) error {
	if err := storage.CheckParams("DeleteDataKey", "tenantID", tenantID); err != nil {
		return err
	}
	return s.exec(ctx, `DELETE FROM data_keys WHERE tenant_id = ?`, tenantID)
}

// Policies.

const policyCols = `tenant_id, transcript_days, metadata_days, audio_logging, audio_days,
	redact_emails, redact_phones, redact_cards, redact_ibans, training_opt_in, updated_at`

// GetPolicy implements storage.Privacy.
func (s *Store) GetPolicy(ctx context.Context, tenantID string) (*storage.Policy, error) {
	if err := storage.CheckParams("GetPolicy", "tenantID", tenantID); err != nil {
		return nil, err
	}
	return get(ctx, s.r, func(sc scanner) (*storage.Policy, error) {
		var (
			p       storage.Policy
			updated int64
		)
		err := sc.Scan(&p.TenantID, &p.TranscriptDays, &p.MetadataDays, &p.AudioLogging, &p.AudioDays,
			&p.Redact.Emails, &p.Redact.Phones, &p.Redact.Cards, &p.Redact.IBANs, &p.TrainingOptIn, &updated)
		if err != nil {
			return nil, err
		}
		p.UpdatedAt = fromMS(updated)
		return &p, nil
	}, `SELECT `+policyCols+` FROM privacy_policies WHERE tenant_id = ?`, tenantID)
}

// PutPolicy implements storage.Privacy: the upsert (whose foreign key on
// tenants makes a missing tenant ErrNotFound) and the new expiries of the
// tenant's conversations, turns and audio, in one transaction.
func (s *Store) PutPolicy(ctx context.Context, p *storage.Policy, now time.Time) error {
	if err := p.Validate(); err != nil {
		return err
	}
	if err := storage.CheckTime("PutPolicy", "now", now); err != nil {
		return err
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO privacy_policies (`+policyCols+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (tenant_id) DO UPDATE SET transcript_days = excluded.transcript_days,
				metadata_days = excluded.metadata_days, audio_logging = excluded.audio_logging,
				audio_days = excluded.audio_days, redact_emails = excluded.redact_emails,
				redact_phones = excluded.redact_phones, redact_cards = excluded.redact_cards,
				redact_ibans = excluded.redact_ibans, training_opt_in = excluded.training_opt_in,
				updated_at = excluded.updated_at`,
			p.TenantID, p.TranscriptDays, p.MetadataDays, p.AudioLogging, p.AudioDays,
			p.Redact.Emails, p.Redact.Phones, p.Redact.Cards, p.Redact.IBANs, p.TrainingOptIn, unixMS(p.UpdatedAt))
		if err != nil {
			return mapErr(err)
		}
		transcript, metadata, audio := int64(p.TranscriptDays)*dayMS, int64(p.MetadataDays)*dayMS, int64(p.AudioDays)*dayMS
		// Each UPDATE skips the rows whose expiry does not change, so a
		// policy change that keeps the days rewrites nothing. turns and
		// turn_audio have no tenant index: their rows are found through
		// their conversations (the primary key's first column).
		for _, q := range []struct {
			expiry, table, where string
			args                 []any
		}{
			{`started_at + ?2`, "conversations", `tenant_id = ?1`, []any{metadata}},
			{`started_at + CASE WHEN text_stored THEN ?2 ELSE ?3 END`, "turns", inConversations,
				[]any{transcript, metadata}},
			{`CASE WHEN ?2 THEN created_at + ?3 ELSE ?4 END`, "turn_audio", inConversations,
				[]any{p.AudioLogging, audio, unixMS(now)}},
		} {
			_, err := tx.ExecContext(ctx, `UPDATE `+q.table+` SET expires_at = `+q.expiry+`
				WHERE `+q.where+` AND expires_at <> `+q.expiry, append([]any{p.TenantID}, q.args...)...)
			if err != nil {
				return err
			}
		}
		return nil
	})
}

// inConversations selects, by tenant id ?1, the rows of a table keyed by
// conversation_id (turns, turn_audio) through the tenant's conversations.
const inConversations = `tenant_id = ?1 AND conversation_id IN (SELECT id FROM conversations WHERE tenant_id = ?1)`

// TrainingTenants implements storage.Privacy.
func (s *Store) TrainingTenants(ctx context.Context) ([]string, error) {
	return s.strings(ctx, `SELECT t.id FROM tenants t JOIN privacy_policies p ON p.tenant_id = t.id
		WHERE t.disabled_at IS NULL AND p.training_opt_in = 1 ORDER BY t.id`)
}

// strings runs a query of one text column on a read connection.
func (s *Store) strings(ctx context.Context, query string, args ...any) ([]string, error) {
	rows, err := s.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	list := []string{}
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		list = append(list, v)
	}
	return list, rows.Err()
}

// Conversations, audio and usage.

// conversationFilter returns the SQL condition (on the columns of
// conversations, unqualified) and arguments of f for tenantID.
func conversationFilter(tenantID string, f storage.ConversationFilter) (string, []any) {
	conds, args := []string{"tenant_id = ?"}, []any{tenantID}
	if f.ID != "" {
		conds, args = append(conds, "id = ?"), append(args, f.ID)
	}
	if f.EndUser != "" {
		conds, args = append(conds, "end_user = ?"), append(args, f.EndUser)
	}
	return strings.Join(conds, " AND "), args
}

// ListConversations implements storage.Privacy.
func (s *Store) ListConversations(ctx context.Context, tenantID string, f storage.ConversationFilter,
	after string, limit int) ([]storage.Conversation, string, error) {
	if err := storage.CheckParams("ListConversations", "tenantID", tenantID); err != nil {
		return nil, "", err
	}
	where, args := conversationFilter(tenantID, f)
	return pageByID(ctx, s.r, func(sc scanner) (*storage.Conversation, string, error) {
		c, err := scanConversation(sc)
		if err != nil {
			return nil, "", err
		}
		return c, c.ID, nil
	}, `SELECT `+conversationCols+` FROM conversations WHERE `+where+` AND id > ? ORDER BY id LIMIT ?`,
		after, limit, args...)
}

// ListTurnAudio implements storage.Privacy. Audio whose turn is gone (or
// was never appended) comes last, by turn id.
func (s *Store) ListTurnAudio(ctx context.Context, tenantID, conversationID string) ([]storage.TurnAudio, error) {
	if err := storage.CheckParams("ListTurnAudio", "tenantID", tenantID, "conversationID", conversationID); err != nil {
		return nil, err
	}
	rows, err := s.r.QueryContext(ctx, `SELECT a.tenant_id, a.conversation_id, a.turn_id, a.format, a.sealed,
			a.duration_ms, a.created_at, a.expires_at
		FROM turn_audio a LEFT JOIN turns t ON t.conversation_id = a.conversation_id AND t.id = a.turn_id
		WHERE a.tenant_id = ? AND a.conversation_id = ?
		ORDER BY t.seq IS NULL, t.seq, a.turn_id`, tenantID, conversationID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	list := []storage.TurnAudio{}
	for rows.Next() {
		var (
			a                storage.TurnAudio
			created, expires int64
		)
		err := rows.Scan(&a.TenantID, &a.ConversationID, &a.TurnID, &a.Format, &a.Sealed, &a.DurationMS,
			&created, &expires)
		if err != nil {
			return nil, err
		}
		a.CreatedAt, a.ExpiresAt = fromMS(created), fromMS(expires)
		list = append(list, a)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(list) == 0 {
		err := s.mustExist(ctx, sqlConversationExists, tenantID, conversationID)
		if err != nil {
			return nil, err
		}
	}
	return list, nil
}

// ListUsageDays implements storage.Privacy.
func (s *Store) ListUsageDays(ctx context.Context, tenantID string, from, to time.Time) ([]storage.UsageDay, error) {
	if err := storage.CheckParams("ListUsageDays", "tenantID", tenantID); err != nil {
		return nil, err
	}
	rows, err := s.r.QueryContext(ctx, `SELECT tenant_id, day, channel, language, conversations, duration_ms
		FROM usage_days WHERE tenant_id = ? AND day >= ? AND day < ?
		ORDER BY day, channel, language`, tenantID, unixMS(from), unixMS(to))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	days := []storage.UsageDay{}
	for rows.Next() {
		var (
			d   storage.UsageDay
			day int64
		)
		if err := rows.Scan(&d.TenantID, &day, &d.Channel, &d.Language, &d.Conversations, &d.DurationMS); err != nil {
			return nil, err
		}
		d.Day = fromMS(day)
		days = append(days, d)
	}
	return days, rows.Err()
}

// DeleteConversations implements storage.Privacy in one transaction: the
// turns, audio and usage events of the matching conversations first (so
// they are counted; the cascade would not count them), then the
// conversations. Usage events are matched through their conversation.
func (s *Store) DeleteConversations(ctx context.Context, tenantID string, f storage.ConversationFilter) (storage.Deleted, error) {
	var d storage.Deleted
	if err := storage.CheckParams("DeleteConversations", "tenantID", tenantID); err != nil {
		return d, err
	}
	where, args := conversationFilter(tenantID, f)
	match := `SELECT id FROM conversations WHERE ` + where
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		for _, q := range []struct {
			n     *int
			query string
			args  []any
		}{
			{&d.Turns, `DELETE FROM turns WHERE conversation_id IN (` + match + `)`, args},
			{&d.Audio, `DELETE FROM turn_audio WHERE conversation_id IN (` + match + `)`, args},
			{&d.UsageEvents, `DELETE FROM usage_events WHERE tenant_id = ? AND conversation_id IN (` + match + `)`,
				append([]any{tenantID}, args...)},
			{&d.Conversations, `DELETE FROM conversations WHERE ` + where, args},
		} {
			res, err := tx.ExecContext(ctx, q.query, q.args...)
			if err != nil {
				return err
			}
			n, err := res.RowsAffected()
			if err != nil {
				return err
			}
			*q.n = int(n)
		}
		if f.EndUser != "" {
			// Keys minted for the end user and not yet expired: they
			// carry the pseudonym (and a sealed session).
			if _, err := tx.ExecContext(ctx, `DELETE FROM ephemeral_keys WHERE tenant_id = ? AND end_user = ?`, tenantID, f.EndUser); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return storage.Deleted{}, err
	}
	if d.Conversations > 0 {
		// secure_delete zeroed the rows in the database pages, but the
		// write-ahead log still holds earlier images of those pages until
		// it is reset: copy it back and truncate it now, so an erasure
		// leaves nothing of the rows in the files. A reader holding an old
		// snapshot can keep the log from being truncated; then the next
		// checkpoint does it (the rows are sealed in any case).
		_, _ = s.w.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`)
	}
	return d, nil
}

// Deleted tenants.

// TenantsDueForPurge implements storage.Privacy.
func (s *Store) TenantsDueForPurge(ctx context.Context, now time.Time) ([]string, error) {
	if err := storage.CheckTime("TenantsDueForPurge", "now", now); err != nil {
		return nil, err
	}
	// Through the partial index of the deleted tenants: the planner
	// would rather walk every tenant in id order than sort the few due.
	return s.strings(ctx, `SELECT id FROM tenants WHERE purge_after IS NOT NULL AND purge_after <= ?
		ORDER BY id`, unixMS(now))
}

// purgeDeletes are PurgeTenant's deletes, in order: the data key first,
// the tenant row last. Every one takes the tenant id.
var purgeDeletes = []string{
	`DELETE FROM data_keys WHERE tenant_id = ?`,
	`DELETE FROM api_keys WHERE tenant_id = ?`,
	`DELETE FROM ephemeral_keys WHERE tenant_id = ?`,
	`DELETE FROM memberships WHERE tenant_id = ?`,
	`DELETE FROM invitations WHERE tenant_id = ?`,
	`DELETE FROM agents WHERE tenant_id = ?`,
	`DELETE FROM tenant_settings WHERE tenant_id = ?`,
	`DELETE FROM privacy_policies WHERE tenant_id = ?`,
	`DELETE FROM usage_days WHERE tenant_id = ?`,
	`DELETE FROM api_calls WHERE tenant_id = ?`,
	`DELETE FROM audit_log WHERE tenant_id = ?`,
	`DELETE FROM idempotency_records WHERE tenant_id = ?`,
	`DELETE FROM tenants WHERE id = ?`,
}

// purgeExpiries hand the tenant's conversation data to the sweeper; each
// takes the tenant id and now. turns and turn_audio have no tenant index:
// their rows are found through their conversations.
var purgeExpiries = []string{
	`UPDATE conversations SET expires_at = ?2 WHERE tenant_id = ?1`,
	`UPDATE turns SET expires_at = ?2 WHERE ` + inConversations,
	`UPDATE turn_audio SET expires_at = ?2 WHERE ` + inConversations,
	`UPDATE usage_events SET expires_at = ?2 WHERE tenant_id = ?1`,
}

// PurgeTenant implements storage.Privacy in one transaction. It is
// ErrNotFound when none of its statements touched a row: no tenant row,
// no account row, no conversation data left.
func (s *Store) PurgeTenant(ctx context.Context, tenantID string, now time.Time) error {
	if err := storage.CheckParams("PurgeTenant", "tenantID", tenantID); err != nil {
		return err
	}
	if err := storage.CheckTime("PurgeTenant", "now", now); err != nil {
		return err
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		touched := int64(0)
		run := func(query string, args ...any) error {
			res, err := tx.ExecContext(ctx, query, args...)
			if err != nil {
				return err
			}
			n, err := res.RowsAffected()
			touched += n
			return err
		}
		for _, q := range purgeDeletes {
			if err := run(q, tenantID); err != nil {
				return err
			}
		}
		for _, q := range purgeExpiries {
			if err := run(q, tenantID, unixMS(now)); err != nil {
				return err
			}
		}
		if touched == 0 {
			return storage.ErrNotFound
		}
		return nil
	})
}

// Data at rest.

// HasData implements storage.Privacy.
func (s *Store) HasData(ctx context.Context) (bool, error) {
	var has bool
	err := s.r.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM conversations)
		OR EXISTS (SELECT 1 FROM agents) OR EXISTS (SELECT 1 FROM data_keys)`).Scan(&has)
	return has, err
}

// LegacyPlaintext implements storage.Privacy: turns first, then agents,
// each through its partial index of the rows still holding plaintext.
// limit is checked like a List method's (storage.PageLimit).
func (s *Store) LegacyPlaintext(ctx context.Context, limit int) ([]storage.LegacyRow, error) {
	limit, err := storage.PageLimit(limit)
	if err != nil {
		return nil, err
	}
	list := []storage.LegacyRow{}
	for _, q := range []struct{ kind, query string }{
		{storage.LegacyTurn, `SELECT tenant_id, conversation_id, id, CAST(text AS BLOB) FROM turns
			WHERE text IS NOT NULL ORDER BY conversation_id, id LIMIT ?`},
		{storage.LegacyAgent, `SELECT tenant_id, '', id, settings FROM agents
			WHERE length(settings) > 0 ORDER BY tenant_id, id LIMIT ?`},
	} {
		if len(list) == limit {
			break
		}
		rows, err := s.r.QueryContext(ctx, q.query, limit-len(list))
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			r := storage.LegacyRow{Kind: q.kind}
			if err := rows.Scan(&r.TenantID, &r.ConversationID, &r.ID, &r.Plaintext); err != nil {
				rows.Close()
				return nil, err
			}
			if r.Plaintext == nil {
				r.Plaintext = []byte{} // an empty legacy text is still a row to seal
			}
			list = append(list, r)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, err
		}
	}
	return list, nil
}

// ReplaceLegacy implements storage.Privacy. It is a compare-and-swap on
// the plaintext: a row whose plaintext is no longer row.Plaintext (gone,
// sealed already, or rewritten by a node still running the previous
// version since LegacyPlaintext read it) is ErrNotFound, so a stale read
// never overwrites newer text; LegacyPlaintext finds the new plaintext.
func (s *Store) ReplaceLegacy(ctx context.Context, row storage.LegacyRow, sealed []byte) error {
	if len(sealed) == 0 {
		return fmt.Errorf("%w: ReplaceLegacy: sealed is empty", storage.ErrInvalid)
	}
	switch row.Kind {
	case storage.LegacyTurn:
		err := storage.CheckParams("ReplaceLegacy", "LegacyRow.TenantID", row.TenantID,
			"LegacyRow.ConversationID", row.ConversationID, "LegacyRow.ID", row.ID)
		if err != nil {
			return err
		}
		return s.exec(ctx, `UPDATE turns SET text_sealed = ?, text = NULL
			WHERE tenant_id = ? AND conversation_id = ? AND id = ? AND text IS NOT NULL AND text = ?`,
			sealed, row.TenantID, row.ConversationID, row.ID, string(row.Plaintext))
	case storage.LegacyAgent:
		err := storage.CheckParams("ReplaceLegacy", "LegacyRow.TenantID", row.TenantID, "LegacyRow.ID", row.ID)
		if err != nil {
			return err
		}
		return s.exec(ctx, `UPDATE agents SET settings_sealed = ?, settings = x''
			WHERE tenant_id = ? AND id = ? AND length(settings) > 0 AND settings = ?`,
			sealed, row.TenantID, row.ID, blob(row.Plaintext))
	}
	return fmt.Errorf("%w: ReplaceLegacy: unknown LegacyRow.Kind %q (want %s or %s)",
		storage.ErrInvalid, row.Kind, storage.LegacyTurn, storage.LegacyAgent)
}
