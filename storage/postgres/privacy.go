package postgres

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"parley/storage"
)

// The privacy half of the Store (storage.Privacy): data keys, policies,
// audio logs, usage records and the data-rights operations. The methods
// that write several tables do it in one transaction. Turn audio and usage
// events are written by WriteBatch (see sqlInsertAudio, sqlInsertUsage).

// pageByID is page for the lists ordered by an id alone: the query's last
// two parameters are the cursor's id, compared as "id > $n" (bytewise:
// the id columns are COLLATE "C", or the query says so), and the row
// limit; scan reads a row and returns its id. The cursor is a
// storage.Cursor whose time is the Unix epoch (it carries none), as on
// SQLite.
func pageByID[T any](ctx context.Context, s *Store, scan func(scanner) (*T, string, error),
	query, after string, limit int, args ...any) ([]T, string, error) {
	limit, err := storage.PageLimit(limit)
	if err != nil {
		return nil, "", err
	}
	cur, err := storage.ParseCursor(after)
	if err != nil {
		return nil, "", err
	}
	rows, err := s.pool.Query(ctx, query, append(args, cur.ID, limit+1)...)
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

// strs runs a query of one text column.
func (s *Store) strs(ctx context.Context, query string, args ...any) ([]string, error) {
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	list, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if list == nil && err == nil {
		list = []string{}
	}
	return list, err
}

// days is n days as a number of milliseconds, for "t + $n * interval
// '1 millisecond'": days of 24 hours, whatever the session's time zone
// (interval '1 day' follows its daylight saving changes).
func days(n int) int64 { return int64(n) * int64(24*time.Hour/time.Millisecond) }

// Data keys.

const dataKeyCols = `tenant_id, master_key_id, wrapped, created_at`

func scanDataKey(sc scanner) (*storage.DataKey, error) {
	var (
		k       storage.DataKey
		created pgtype.Timestamptz
	)
	if err := sc.Scan(&k.TenantID, &k.MasterKeyID, &k.Wrapped, &created); err != nil {
		return nil, err
	}
	k.CreatedAt = fromTS(created)
	return &k, nil
}

// CreateDataKey implements storage.Privacy. The primary key makes a
// second key ErrConflict (the node that lost the race reads the winner's);
// the foreign key on tenants makes a key for a missing tenant ErrNotFound.
func (s *Store) CreateDataKey(ctx context.Context, k *storage.DataKey) error {
	if err := k.Validate(); err != nil {
		return err
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO data_keys (`+dataKeyCols+`) VALUES ($1, $2, $3, $4)`,
		k.TenantID, k.MasterKeyID, k.Wrapped, ts(k.CreatedAt))
	return mapErr(err)
}

// GetDataKey implements storage.Privacy.
func (s *Store) GetDataKey(ctx context.Context, tenantID string) (*storage.DataKey, error) {
	if err := storage.CheckParams("GetDataKey", "tenantID", tenantID); err != nil {
		return nil, err
	}
	return get(ctx, s, scanDataKey, `SELECT `+dataKeyCols+` FROM data_keys WHERE tenant_id = $1`, tenantID)
}

// ListDataKeys implements storage.Privacy.
func (s *Store) ListDataKeys(ctx context.Context, after string, limit int) ([]storage.DataKey, string, error) {
	return pageByID(ctx, s, func(sc scanner) (*storage.DataKey, string, error) {
		k, err := scanDataKey(sc)
		if err != nil {
			return nil, "", err
		}
		return k, k.TenantID, nil
	}, `SELECT `+dataKeyCols+` FROM data_keys WHERE tenant_id > $1 ORDER BY tenant_id LIMIT $2`, after, limit)
}

// RewrapDataKey implements storage.Privacy: a compare-and-swap on the
// master key id, in one statement. Concurrent rewraps of one key queue on
// its row lock and each re-checks master_key_id against the committed row
// (READ COMMITTED), so of the nodes rewrapping from one master key exactly
// one succeeds; the outer SELECT, which sees the row as it was before the
// UPDATE, tells the others' ErrConflict from a missing key's ErrNotFound.
// CreatedAt stays the key's.
func (s *Store) RewrapDataKey(ctx context.Context, k *storage.DataKey, oldMasterKeyID string) error {
	if err := k.Validate(); err != nil {
		return err
	}
	if err := storage.CheckParams("RewrapDataKey", "oldMasterKeyID", oldMasterKeyID); err != nil {
		return err
	}
	var swapped, exists bool
	err := s.pool.QueryRow(ctx, `WITH u AS (
			UPDATE data_keys SET master_key_id = $1, wrapped = $2
			WHERE tenant_id = $3 AND master_key_id = $4
			RETURNING 1
		)
		SELECT EXISTS (SELECT 1 FROM u), EXISTS (SELECT 1 FROM data_keys WHERE tenant_id = $3)`,
		k.MasterKeyID, k.Wrapped, k.TenantID, oldMasterKeyID).Scan(&swapped, &exists)
	switch {
	case err != nil:
		return err
	case swapped:
		return nil
	case !exists:
		return storage.ErrNotFound
	}
	return fmt.Errorf("%w: the data key of %s is no longer wrapped by %s", storage.ErrConflict, k.TenantID, oldMasterKeyID)
}

// DeleteDataKey implements storage.Privacy.
func (s *Store) DeleteDataKey(ctx context.Context, tenantID string) error {
	if err := storage.CheckParams("DeleteDataKey", "tenantID", tenantID); err != nil {
		return err
	}
	return s.exec(ctx, `DELETE FROM data_keys WHERE tenant_id = $1`, tenantID)
}

// Policies.

const policyCols = `tenant_id, transcript_days, metadata_days, audio_logging, audio_days,
	redact_emails, redact_phones, redact_cards, redact_ibans, training_opt_in, updated_at`

// GetPolicy implements storage.Privacy.
func (s *Store) GetPolicy(ctx context.Context, tenantID string) (*storage.Policy, error) {
	if err := storage.CheckParams("GetPolicy", "tenantID", tenantID); err != nil {
		return nil, err
	}
	return get(ctx, s, func(sc scanner) (*storage.Policy, error) {
		var (
			p       storage.Policy
			updated pgtype.Timestamptz
		)
		err := sc.Scan(&p.TenantID, &p.TranscriptDays, &p.MetadataDays, &p.AudioLogging, &p.AudioDays,
			&p.Redact.Emails, &p.Redact.Phones, &p.Redact.Cards, &p.Redact.IBANs, &p.TrainingOptIn, &updated)
		if err != nil {
			return nil, err
		}
		p.UpdatedAt = fromTS(updated)
		return &p, nil
	}, `SELECT `+policyCols+` FROM privacy_policies WHERE tenant_id = $1`, tenantID)
}

// PutPolicy implements storage.Privacy: the upsert (whose foreign key on
// tenants makes a missing tenant ErrNotFound) and the new expiries of the
// tenant's conversations, turns and audio, in one transaction. Only the
// rows whose expiry changes are written. The tenant's turns are found by
// turns_tenant_id_idx, its conversations by conversations_tenant_id_idx,
// its audio through its conversations (the primary key's first column).
func (s *Store) PutPolicy(ctx context.Context, p *storage.Policy, now time.Time) error {
	if err := p.Validate(); err != nil {
		return err
	}
	if err := storage.CheckTime("PutPolicy", "now", now); err != nil {
		return err
	}
	return mapErr(pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO privacy_policies (`+policyCols+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
			ON CONFLICT (tenant_id) DO UPDATE SET transcript_days = excluded.transcript_days,
				metadata_days = excluded.metadata_days, audio_logging = excluded.audio_logging,
				audio_days = excluded.audio_days, redact_emails = excluded.redact_emails,
				redact_phones = excluded.redact_phones, redact_cards = excluded.redact_cards,
				redact_ibans = excluded.redact_ibans, training_opt_in = excluded.training_opt_in,
				updated_at = excluded.updated_at`,
			p.TenantID, p.TranscriptDays, p.MetadataDays, p.AudioLogging, p.AudioDays,
			p.Redact.Emails, p.Redact.Phones, p.Redact.Cards, p.Redact.IBANs, p.TrainingOptIn, ts(p.UpdatedAt))
		if err != nil {
			return err
		}
		metadata, transcript, audio := days(p.MetadataDays), days(p.TranscriptDays), days(p.AudioDays)
		_, err = tx.Exec(ctx, `UPDATE conversations SET expires_at = started_at + $2::bigint * interval '1 millisecond'
			WHERE tenant_id = $1 AND expires_at <> started_at + $2::bigint * interval '1 millisecond'`,
			p.TenantID, metadata)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE turns t
			SET expires_at = t.started_at + CASE WHEN t.text_stored THEN $2::bigint ELSE $3::bigint END * interval '1 millisecond'
			WHERE t.tenant_id = $1
				AND t.expires_at <> t.started_at + CASE WHEN t.text_stored THEN $2::bigint ELSE $3::bigint END * interval '1 millisecond'`,
			p.TenantID, transcript, metadata)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE turn_audio a
			SET expires_at = CASE WHEN $2::boolean THEN a.created_at + $3::bigint * interval '1 millisecond' ELSE $4::timestamptz END
			FROM conversations c
			WHERE c.tenant_id = $1 AND a.conversation_id = c.id AND a.tenant_id = $1
				AND a.expires_at <> CASE WHEN $2::boolean THEN a.created_at + $3::bigint * interval '1 millisecond' ELSE $4::timestamptz END`,
			p.TenantID, p.AudioLogging, audio, ts(now))
		return err
	}))
}

// TrainingTenants implements storage.Privacy.
func (s *Store) TrainingTenants(ctx context.Context) ([]string, error) {
	return s.strs(ctx, `SELECT t.id FROM tenants t JOIN privacy_policies p ON p.tenant_id = t.id
		WHERE t.disabled_at IS NULL AND p.training_opt_in ORDER BY t.id`)
}

// Conversations, audio and usage.

// conversationFilter returns the SQL condition on the columns of
// conversations (unqualified) for tenantID and f, with its arguments,
// numbered from $1.
func conversationFilter(tenantID string, f storage.ConversationFilter) (string, []any) {
	conds, args := []string{"tenant_id = $1"}, []any{tenantID}
	if f.ID != "" {
		args = append(args, f.ID)
		conds = append(conds, "id = $"+strconv.Itoa(len(args)))
	}
	if f.EndUser != "" {
		args = append(args, f.EndUser)
		conds = append(conds, "end_user = $"+strconv.Itoa(len(args)))
	}
	return strings.Join(conds, " AND "), args
}

// ListConversations implements storage.Privacy, through
// conversations_tenant_id_idx or, for an end user, conversations_end_user_idx
// (both in the bytewise order of the ids).
func (s *Store) ListConversations(ctx context.Context, tenantID string, f storage.ConversationFilter,
	after string, limit int) ([]storage.Conversation, string, error) {
	if err := storage.CheckParams("ListConversations", "tenantID", tenantID); err != nil {
		return nil, "", err
	}
	where, args := conversationFilter(tenantID, f)
	n := len(args)
	return pageByID(ctx, s, func(sc scanner) (*storage.Conversation, string, error) {
		c, err := scanConversation(sc)
		if err != nil {
			return nil, "", err
		}
		return c, c.ID, nil
	}, fmt.Sprintf(`SELECT `+conversationCols+` FROM conversations
		WHERE %s AND id COLLATE "C" > $%d ORDER BY id COLLATE "C" LIMIT $%d`, where, n+1, n+2),
		after, limit, args...)
}

// ListTurnAudio implements storage.Privacy. Audio whose turn is gone (or
// was never appended) comes last, by turn id.
func (s *Store) ListTurnAudio(ctx context.Context, tenantID, conversationID string) ([]storage.TurnAudio, error) {
	if err := storage.CheckParams("ListTurnAudio", "tenantID", tenantID, "conversationID", conversationID); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT a.tenant_id, a.conversation_id, a.turn_id, a.format, a.sealed,
			a.duration_ms, a.created_at, a.expires_at
		FROM turn_audio a LEFT JOIN turns t ON t.conversation_id = a.conversation_id AND t.id = a.turn_id
		WHERE a.tenant_id = $1 AND a.conversation_id = $2
		ORDER BY t.seq NULLS LAST, a.turn_id COLLATE "C"`, tenantID, conversationID)
	if err != nil {
		return nil, err
	}
	list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (storage.TurnAudio, error) {
		var (
			a                storage.TurnAudio
			created, expires pgtype.Timestamptz
		)
		err := row.Scan(&a.TenantID, &a.ConversationID, &a.TurnID, &a.Format, &a.Sealed, &a.DurationMS,
			&created, &expires)
		a.CreatedAt, a.ExpiresAt = fromTS(created), fromTS(expires)
		return a, err
	})
	if err != nil {
		return nil, err
	}
	if len(list) == 0 {
		// No audio, or no such conversation for this tenant?
		err := s.mustExist(ctx, `SELECT EXISTS (SELECT 1 FROM conversations WHERE tenant_id = $1 AND id = $2)`,
			tenantID, conversationID)
		if err != nil {
			return nil, err
		}
		list = []storage.TurnAudio{}
	}
	return list, nil
}

// ceilDate is the first UTC day whose midnight is at or after t (at
// millisecond precision, as stored).
func ceilDate(t time.Time) pgtype.Date {
	d := utcDate(t)
	if d.Time.Before(t.Truncate(time.Millisecond)) {
		d.Time = d.Time.AddDate(0, 0, 1)
	}
	return d
}

// ListUsageDays implements storage.Privacy: from <= Day < to, Day being a
// midnight, is ceilDate(from) <= day < ceilDate(to).
func (s *Store) ListUsageDays(ctx context.Context, tenantID string, from, to time.Time) ([]storage.UsageDay, error) {
	if err := storage.CheckParams("ListUsageDays", "tenantID", tenantID); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT tenant_id, day, channel, language, conversations, duration_ms
		FROM usage_days WHERE tenant_id = $1 AND day >= $2 AND day < $3
		ORDER BY day, channel, language`, tenantID, ceilDate(from), ceilDate(to))
	if err != nil {
		return nil, err
	}
	list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (storage.UsageDay, error) {
		var (
			d   storage.UsageDay
			day pgtype.Date
		)
		err := row.Scan(&d.TenantID, &day, &d.Channel, &d.Language, &d.Conversations, &d.DurationMS)
		d.Day = time.Date(day.Time.Year(), day.Time.Month(), day.Time.Day(), 0, 0, 0, 0, time.UTC)
		return d, err
	})
	if list == nil && err == nil {
		list = []storage.UsageDay{}
	}
	return list, err
}

// DeleteConversations implements storage.Privacy in one transaction: it
// locks the matching conversations, deletes their turns, audio and usage
// events (so they are counted; the cascade would not count them), then the
// conversations. A turn appended meanwhile goes with its conversation by
// cascade.
func (s *Store) DeleteConversations(ctx context.Context, tenantID string, f storage.ConversationFilter) (storage.Deleted, error) {
	var d storage.Deleted
	if err := storage.CheckParams("DeleteConversations", "tenantID", tenantID); err != nil {
		return d, err
	}
	where, args := conversationFilter(tenantID, f)
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if f.EndUser != "" {
			// Keys minted for the end user and not yet expired: they
			// carry the pseudonym (and a sealed session).
			if _, err := tx.Exec(ctx, `DELETE FROM ephemeral_keys WHERE tenant_id = $1 AND end_user = $2`, tenantID, f.EndUser); err != nil {
				return err
			}
		}
		rows, err := tx.Query(ctx, `SELECT id FROM conversations WHERE `+where+` FOR UPDATE`, args...)
		if err != nil {
			return err
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil || len(ids) == 0 {
			return err
		}
		for _, q := range []struct {
			n     *int
			query string
		}{
			{&d.Turns, `DELETE FROM turns WHERE conversation_id = ANY ($2) AND tenant_id = $1`},
			{&d.Audio, `DELETE FROM turn_audio WHERE conversation_id = ANY ($2) AND tenant_id = $1`},
			{&d.UsageEvents, `DELETE FROM usage_events WHERE tenant_id = $1 AND conversation_id = ANY ($2)`},
			{&d.Conversations, `DELETE FROM conversations WHERE id = ANY ($2) AND tenant_id = $1`},
		} {
			tag, err := tx.Exec(ctx, q.query, tenantID, ids)
			if err != nil {
				return err
			}
			*q.n = int(tag.RowsAffected())
		}
		return nil
	})
	if err != nil {
		return storage.Deleted{}, err
	}
	return d, nil
}

// Deleted tenants.

// TenantsDueForPurge implements storage.Privacy.
func (s *Store) TenantsDueForPurge(ctx context.Context, now time.Time) ([]string, error) {
	if err := storage.CheckTime("TenantsDueForPurge", "now", now); err != nil {
		return nil, err
	}
	return s.strs(ctx, `SELECT id FROM tenants WHERE purge_after <= $1 ORDER BY id`, ts(now))
}

// purgeDeletes are PurgeTenant's deletes, in order: the data key first,
// the tenant row last. Every one takes the tenant id.
var purgeDeletes = []string{
	`DELETE FROM data_keys WHERE tenant_id = $1`,
	`DELETE FROM api_keys WHERE tenant_id = $1`,
	`DELETE FROM ephemeral_keys WHERE tenant_id = $1`,
	`DELETE FROM memberships WHERE tenant_id = $1`,
	`DELETE FROM invitations WHERE tenant_id = $1`,
	`DELETE FROM agents WHERE tenant_id = $1`,
	`DELETE FROM tenant_settings WHERE tenant_id = $1`,
	`DELETE FROM privacy_policies WHERE tenant_id = $1`,
	`DELETE FROM usage_days WHERE tenant_id = $1`,
	`DELETE FROM api_calls WHERE tenant_id = $1`,
	`DELETE FROM audit_log WHERE tenant_id = $1`,
	`DELETE FROM idempotency_records WHERE tenant_id = $1`,
	`DELETE FROM tenants WHERE id = $1`,
}

// purgeExpiries hand the tenant's conversation data to the sweeper, which
// deletes it in batches; each takes the tenant id and now. Rows that
// expire sooner keep their expiry.
var purgeExpiries = []string{
	`UPDATE conversations SET expires_at = $2 WHERE tenant_id = $1 AND expires_at > $2`,
	`UPDATE turns SET expires_at = $2 WHERE tenant_id = $1 AND expires_at > $2`,
	`UPDATE turn_audio a SET expires_at = $2 FROM conversations c
		WHERE c.tenant_id = $1 AND a.conversation_id = c.id AND a.tenant_id = $1 AND a.expires_at > $2`,
	`UPDATE usage_events SET expires_at = $2 WHERE tenant_id = $1 AND expires_at > $2`,
}

// PurgeTenant implements storage.Privacy in one transaction. It is
// ErrNotFound when it deleted nothing and the tenant has no conversation
// or usage event left (a tenant that never existed, or whose rows the
// sweeper has deleted since an earlier purge).
func (s *Store) PurgeTenant(ctx context.Context, tenantID string, now time.Time) error {
	if err := storage.CheckParams("PurgeTenant", "tenantID", tenantID); err != nil {
		return err
	}
	if err := storage.CheckTime("PurgeTenant", "now", now); err != nil {
		return err
	}
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		touched := int64(0)
		for _, q := range purgeDeletes {
			tag, err := tx.Exec(ctx, q, tenantID)
			if err != nil {
				return err
			}
			touched += tag.RowsAffected()
		}
		for _, q := range purgeExpiries {
			tag, err := tx.Exec(ctx, q, tenantID, ts(now))
			if err != nil {
				return err
			}
			touched += tag.RowsAffected()
		}
		if touched > 0 {
			return nil
		}
		var left bool
		err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM conversations WHERE tenant_id = $1)
			OR EXISTS (SELECT 1 FROM usage_events WHERE tenant_id = $1)`, tenantID).Scan(&left)
		if err == nil && !left {
			err = storage.ErrNotFound
		}
		return err
	})
}

// Data at rest.

// HasData implements storage.Privacy.
func (s *Store) HasData(ctx context.Context) (bool, error) {
	var has bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM conversations)
		OR EXISTS (SELECT 1 FROM agents) OR EXISTS (SELECT 1 FROM data_keys)`).Scan(&has)
	return has, err
}

// legacyKinds are what LegacyPlaintext walks, in order: each through its
// partial index of the rows still holding plaintext (turns_legacy_idx,
// agents_legacy_idx), by the index's key.
var legacyKinds = [...]struct{ kind, cols, from, key string }{
	{storage.LegacyTurn, `tenant_id, conversation_id, id, text`, `turns WHERE text IS NOT NULL`, `conversation_id, id`},
	{storage.LegacyAgent, `tenant_id, '', id, settings`, `agents WHERE octet_length(settings) > 0`, `tenant_id, id`},
}

// legacyCursors remember, for each of legacyKinds, the key of the last row
// LegacyPlaintext returned, so that the next call starts after it: the
// caller replaces the rows it got (the index entries of a replaced row stay
// until VACUUM), and starting every call at the first key would step over
// all of them again, a cost growing with every batch of a large upgrade.
// A call that finds too few rows after the cursor looks again from the
// start, so that a row below it (written meanwhile by a node still running
// the previous version, or not replaced) is still found before
// LegacyPlaintext returns nothing.
type legacyCursors struct {
	mu  sync.Mutex
	key [len(legacyKinds)]*[2]string // nil: the start
}

func (c *legacyCursors) get(i int) *[2]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.key[i]
}

func (c *legacyCursors) set(i int, key *[2]string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.key[i] = key
}

// LegacyPlaintext implements storage.Privacy: turns first, then agents
// (see legacyKinds and legacyCursors). limit is checked like a List
// method's (storage.PageLimit).
func (s *Store) LegacyPlaintext(ctx context.Context, limit int) ([]storage.LegacyRow, error) {
	limit, err := storage.PageLimit(limit)
	if err != nil {
		return nil, err
	}
	list := []storage.LegacyRow{}
	for i, k := range legacyKinds {
		want := limit - len(list)
		if want == 0 {
			break
		}
		query := func(cond string, n int, args ...any) ([]storage.LegacyRow, error) {
			rows, err := s.pool.Query(ctx, `SELECT `+k.cols+` FROM `+k.from+cond+` ORDER BY `+k.key+
				fmt.Sprintf(` LIMIT $%d`, len(args)+1), append(args, n)...)
			if err != nil {
				return nil, err
			}
			return pgx.CollectRows(rows, func(row pgx.CollectableRow) (storage.LegacyRow, error) {
				r := storage.LegacyRow{Kind: k.kind}
				err := row.Scan(&r.TenantID, &r.ConversationID, &r.ID, &r.Plaintext)
				if r.Plaintext == nil {
					r.Plaintext = []byte{} // an empty legacy text is still a row to seal
				}
				return r, err
			})
		}
		cur := s.legacy.get(i)
		var found []storage.LegacyRow
		if cur == nil {
			found, err = query(``, want)
		} else {
			found, err = query(` AND (`+k.key+`) > ($1, $2)`, want, cur[0], cur[1])
			if err == nil && len(found) < want {
				var below []storage.LegacyRow
				below, err = query(` AND (`+k.key+`) <= ($1, $2)`, want-len(found), cur[0], cur[1])
				found = append(found, below...)
			}
		}
		if err != nil {
			return nil, err
		}
		cur = nil // short: nothing else is left, start over next time
		if len(found) == want {
			last := found[len(found)-1]
			if k.kind == storage.LegacyTurn {
				cur = &[2]string{last.ConversationID, last.ID}
			} else {
				cur = &[2]string{last.TenantID, last.ID}
			}
		}
		s.legacy.set(i, cur)
		list = append(list, found...)
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
		if !utf8.Valid(row.Plaintext) || bytes.IndexByte(row.Plaintext, 0) >= 0 {
			return storage.ErrNotFound // no text column holds it
		}
		return s.exec(ctx, `UPDATE turns SET text_sealed = $1, text = NULL
			WHERE tenant_id = $2 AND conversation_id = $3 AND id = $4 AND text = $5::text`,
			sealed, row.TenantID, row.ConversationID, row.ID, string(row.Plaintext))
	case storage.LegacyAgent:
		err := storage.CheckParams("ReplaceLegacy", "LegacyRow.TenantID", row.TenantID, "LegacyRow.ID", row.ID)
		if err != nil {
			return err
		}
		return s.exec(ctx, `UPDATE agents SET settings_sealed = $1, settings = ''::bytea
			WHERE tenant_id = $2 AND id = $3 AND octet_length(settings) > 0 AND settings = $4`,
			sealed, row.TenantID, row.ID, blob(row.Plaintext))
	}
	return fmt.Errorf("%w: ReplaceLegacy: unknown LegacyRow.Kind %q (want %s or %s)",
		storage.ErrInvalid, row.Kind, storage.LegacyTurn, storage.LegacyAgent)
}
