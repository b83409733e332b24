// Package postgres is Parley's shared storage backend: PostgreSQL through a
// pgx/v5 pool. Any number of gateway nodes may use one database at once:
// migrations run under an advisory lock and the retention sweep claims rows
// with FOR UPDATE SKIP LOCKED.
package postgres

import (
	"context"
	"crypto/subtle"
	"embed"
	"errors"
	"fmt"
	"hash/fnv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"parley/storage"
	"parley/storage/internal/check"
	"parley/storage/internal/migrate"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// Store is a storage.Backend (conversations and accounts) kept in
// PostgreSQL.
type Store struct {
	pool *pgxpool.Pool
}

var _ storage.Store = (*Store)(nil)

// Open connects to the database at url (postgres://user@host/db?...) and
// brings its schema up to date. Query parameters pgx does not know are sent
// as run-time parameters, so ...&search_path=myschema puts Parley's tables
// in myschema (which must exist). pgxpool's pool_* parameters size the pool.
// Call Close when done.
func Open(ctx context.Context, url string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err) // pgx redacts the password
	}
	ms, err := migrate.Load(migrationFS, "migrations")
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if err := applyMigrations(ctx, cfg.ConnConfig.Copy(), ms); err != nil {
		return nil, err
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: %w", err)
	}
	return &Store{pool: pool}, nil
}

// applyMigrations applies those of ms (Open passes all the embedded ones;
// upgrade tests pass a prefix) not yet recorded in schema_migrations. It
// uses a connection of its own and holds a session-level advisory lock
// throughout, so nodes starting together migrate once: the first applies,
// the others wait and then find nothing to do. Closing the connection
// releases the lock even if unlocking fails.
func applyMigrations(ctx context.Context, cfg *pgx.ConnConfig, ms []migrate.Migration) error {
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	defer conn.Close(context.Background())

	// Unqualified tables go to the first existing schema of search_path;
	// the lock is per schema so separate schemas migrate independently.
	var schema *string
	if err := conn.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	if schema == nil {
		return errors.New("postgres: no schema of the search_path exists; create it first")
	}
	key := lockKey(*schema)
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, key); err != nil {
		return fmt.Errorf("postgres: migration lock: %w", err)
	}
	defer conn.Exec(context.Background(), `SELECT pg_advisory_unlock($1)`, key)

	const create = `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    integer     NOT NULL PRIMARY KEY,
		name       text        NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now()
	)`
	if _, err := conn.Exec(ctx, create); err != nil {
		return fmt.Errorf("postgres: create schema_migrations: %w", err)
	}
	for _, m := range ms {
		if err := applyMigration(ctx, conn, m); err != nil {
			return fmt.Errorf("postgres: migration %s: %w", m.Name, err)
		}
	}
	return nil
}

func applyMigration(ctx context.Context, conn *pgx.Conn, m migrate.Migration) error {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.Background()) // no-op after Commit

	var applied bool
	err = tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = $1)`, m.Version).Scan(&applied)
	if err != nil || applied {
		return err
	}
	if _, err := tx.Exec(ctx, m.SQL); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, m.Version, m.Name); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// lockKey is the advisory lock id for migrating schema.
func lockKey(schema string) int64 {
	h := fnv.New64a()
	h.Write([]byte("parley/migrations/" + schema))
	return int64(h.Sum64())
}

// Ping implements storage.Store.
func (s *Store) Ping(ctx context.Context) error {
	return s.pool.Ping(ctx)
}

// Close implements storage.Store. It waits for connections in use to be
// returned to the pool.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// The write statements. pgx prepares each statement the first time a
// connection runs it and keeps it in that connection's statement cache
// (QueryExecModeCacheStatement, the default), so they are parsed and
// planned once per connection.
const (
	sqlCreateConversation = `INSERT INTO conversations
		(id, tenant_id, agent_id, channel, language, started_at, ended_at, duration_ms, turn_count, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`
	// Only the first end sets ended_at (the WHERE ended_at IS NULL), which
	// makes EndConversation idempotent. The result is false when there is
	// no such conversation: the outer SELECT sees the row as it was before
	// the UPDATE, so an already ended conversation counts as existing.
	sqlEndConversation = `WITH u AS (
			UPDATE conversations
			SET ended_at = $1::timestamptz,
			    duration_ms = GREATEST(0, (EXTRACT(EPOCH FROM $1::timestamptz - started_at) * 1000)::bigint)
			WHERE tenant_id = $2 AND id = $3 AND ended_at IS NULL
			RETURNING 1
		)
		SELECT EXISTS (SELECT 1 FROM u)
			OR EXISTS (SELECT 1 FROM conversations WHERE tenant_id = $2 AND id = $3)`
	// One statement, hence atomic: the CTE bumps turn_count (row-locking
	// the conversation, so concurrent appends get distinct seqs) and only
	// if the conversation exists for the tenant does the INSERT get a row
	// to insert. A duplicate id or seq fails the whole statement,
	// increment included.
	sqlAppendTurn = `WITH c AS (
			UPDATE conversations SET turn_count = turn_count + 1
			WHERE tenant_id = $1 AND id = $2
			RETURNING turn_count
		)
		INSERT INTO turns
			(conversation_id, id, tenant_id, seq, role, text, text_stored, status,
			 started_at, ended_at, first_token_ms, total_ms, engine_ms,
			 end_of_turn_ms, first_partial_ms, final_transcript_ms, first_audio_ms,
			 first_audio_sent_ms, expires_at)
		SELECT $2, $3, $1, CASE WHEN $4::integer = 0 THEN c.turn_count ELSE $4::integer END,
			$5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19
		FROM c
		RETURNING seq`
	// A turn stored without text keeps its NULL (text_stored is false).
	sqlTruncateTurnText = `UPDATE turns SET text = CASE WHEN text_stored THEN $1::text ELSE NULL END
		WHERE tenant_id = $2 AND conversation_id = $3 AND id = $4`
)

func conversationArgs(c *storage.Conversation) []any {
	return []any{c.ID, c.TenantID, c.AgentID, c.Channel, c.Language, ts(c.StartedAt), nullTS(c.EndedAt),
		c.DurationMS, c.TurnCount, ts(c.ExpiresAt)}
}

func turnArgs(t *storage.Turn) []any {
	var text *string // NULL unless the text may be kept
	if t.TextStored {
		text = &t.Text
	}
	l := &t.Latency
	return []any{t.TenantID, t.ConversationID, t.ID, t.Seq, t.Role, text, t.TextStored, t.Status,
		ts(t.StartedAt), ts(t.EndedAt), l.FirstTokenMS, l.TotalMS, l.EngineMS,
		l.EndOfTurnMS, l.FirstPartialMS, l.FinalTranscriptMS, l.FirstAudioMS,
		l.FirstAudioSentMS, ts(t.ExpiresAt)}
}

// The results of the write statements, shared by the single methods and
// WriteBatch.

func appendTurnResult(seq int, err error) (int, error) {
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, storage.ErrNotFound
	}
	return seq, mapErr(err)
}

func endConversationResult(found bool, err error) error {
	if err == nil && !found {
		err = storage.ErrNotFound
	}
	return err
}

func truncateResult(tag pgconn.CommandTag, err error) error {
	if err == nil && tag.RowsAffected() == 0 {
		err = storage.ErrNotFound
	}
	return err
}

// CreateConversation implements storage.Store.
func (s *Store) CreateConversation(ctx context.Context, c *storage.Conversation) error {
	if err := check.Conversation(c); err != nil {
		return err
	}
	_, err := s.pool.Exec(ctx, sqlCreateConversation, conversationArgs(c)...)
	return mapErr(err)
}

// EndConversation implements storage.Store.
func (s *Store) EndConversation(ctx context.Context, tenantID, id string, endedAt time.Time) error {
	if err := check.End(endedAt); err != nil {
		return err
	}
	var found bool
	err := s.pool.QueryRow(ctx, sqlEndConversation, ts(endedAt), tenantID, id).Scan(&found)
	return endConversationResult(found, err)
}

// mustExist runs an EXISTS query and returns storage.ErrNotFound when it is
// false.
func (s *Store) mustExist(ctx context.Context, query string, args ...any) error {
	var ok bool
	if err := s.pool.QueryRow(ctx, query, args...).Scan(&ok); err != nil {
		return err
	}
	if !ok {
		return storage.ErrNotFound
	}
	return nil
}

// AppendTurn implements storage.Store. It is one statement, hence one
// transaction and one round trip (see sqlAppendTurn).
func (s *Store) AppendTurn(ctx context.Context, t *storage.Turn) error {
	if err := check.Turn(t); err != nil {
		return err
	}
	var seq int
	err := s.pool.QueryRow(ctx, sqlAppendTurn, turnArgs(t)...).Scan(&seq)
	if seq, err = appendTurnResult(seq, err); err != nil {
		return err
	}
	t.Seq = seq
	return nil
}

// TruncateTurnText implements storage.Store.
func (s *Store) TruncateTurnText(ctx context.Context, tenantID, conversationID, itemID, text string) error {
	return truncateResult(s.pool.Exec(ctx, sqlTruncateTurnText, text, tenantID, conversationID, itemID))
}

// GetConversation implements storage.Store.
func (s *Store) GetConversation(ctx context.Context, tenantID, id string) (*storage.Conversation, error) {
	var (
		c                       storage.Conversation
		started, ended, expires pgtype.Timestamptz
	)
	err := s.pool.QueryRow(ctx, `SELECT id, tenant_id, agent_id, channel, language,
		started_at, ended_at, duration_ms, turn_count, expires_at
		FROM conversations WHERE tenant_id = $1 AND id = $2`, tenantID, id).Scan(
		&c.ID, &c.TenantID, &c.AgentID, &c.Channel, &c.Language,
		&started, &ended, &c.DurationMS, &c.TurnCount, &expires)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, storage.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	c.StartedAt, c.EndedAt, c.ExpiresAt = fromTS(started), fromTS(ended), fromTS(expires)
	return &c, nil
}

// ListTurns implements storage.Store.
func (s *Store) ListTurns(ctx context.Context, tenantID, conversationID string) ([]storage.Turn, error) {
	rows, err := s.pool.Query(ctx, `SELECT conversation_id, id, tenant_id, seq, role, text,
		text_stored, status, started_at, ended_at, first_token_ms, total_ms, engine_ms,
		end_of_turn_ms, first_partial_ms, final_transcript_ms, first_audio_ms,
		first_audio_sent_ms, expires_at
		FROM turns WHERE tenant_id = $1 AND conversation_id = $2 ORDER BY seq`,
		tenantID, conversationID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	turns := []storage.Turn{}
	for rows.Next() {
		var (
			t                       storage.Turn
			text                    pgtype.Text
			started, ended, expires pgtype.Timestamptz
		)
		l := &t.Latency
		err := rows.Scan(&t.ConversationID, &t.ID, &t.TenantID, &t.Seq, &t.Role, &text,
			&t.TextStored, &t.Status, &started, &ended, &l.FirstTokenMS, &l.TotalMS, &l.EngineMS,
			&l.EndOfTurnMS, &l.FirstPartialMS, &l.FinalTranscriptMS, &l.FirstAudioMS,
			&l.FirstAudioSentMS, &expires)
		if err != nil {
			return nil, err
		}
		t.Text = text.String
		t.StartedAt, t.EndedAt, t.ExpiresAt = fromTS(started), fromTS(ended), fromTS(expires)
		turns = append(turns, t)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(turns) == 0 {
		// No turns yet, or no such conversation for this tenant?
		err := s.mustExist(ctx, `SELECT EXISTS (SELECT 1 FROM conversations WHERE tenant_id = $1 AND id = $2)`,
			tenantID, conversationID)
		if err != nil {
			return nil, err
		}
	}
	return turns, nil
}

// expiring lists the DELETE of each table DeleteExpired sweeps, in order:
// each claims the oldest expired rows, at most the number given, with FOR
// UPDATE SKIP LOCKED. Deleting a conversation deletes its remaining turns
// (ON DELETE CASCADE), which PostgreSQL does not count in the command tag.
var expiring = func() []string {
	var qs []string
	for _, t := range []struct{ table, key string }{
		{"turns", "conversation_id, id"},
		{"conversations", "id"},
		{"ephemeral_keys", "id"},
		{"user_sessions", "id"},
		{"invitations", "id"},
		{"idempotency_records", "tenant_id, idem_key"},
		{"api_calls", "id"},
		{"audit_log", "id"},
	} {
		qs = append(qs, `DELETE FROM `+t.table+` WHERE (`+t.key+`) IN (
			SELECT `+t.key+` FROM `+t.table+`
			WHERE expires_at <= $1 ORDER BY expires_at LIMIT $2
			FOR UPDATE SKIP LOCKED)`)
	}
	return qs
}()

// DeleteExpired implements storage.Store. Each DELETE claims its batch with
// FOR UPDATE SKIP LOCKED, so nodes sweeping at the same moment take
// different rows instead of waiting for (or double counting) each other.
func (s *Store) DeleteExpired(ctx context.Context, now time.Time, limit int) (int, error) {
	if err := check.Limit(limit); err != nil {
		return 0, err
	}
	cutoff := ts(now)
	deleted := 0
	for _, q := range expiring {
		tag, err := s.pool.Exec(ctx, q, cutoff, limit-deleted)
		if err != nil {
			return deleted, err
		}
		deleted += int(tag.RowsAffected())
		if deleted >= limit {
			break
		}
	}
	return deleted, nil
}

// CreateAPIKey implements storage.Store. The columns it leaves out get
// their defaults (migration 0004): a secret key with the owner scopes.
func (s *Store) CreateAPIKey(ctx context.Context, k *storage.APIKey) error {
	if err := check.APIKey(k); err != nil {
		return err
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO api_keys
		(id, tenant_id, prefix, hash, created_at, last_used_at) VALUES ($1, $2, $3, $4, $5, $6)`,
		k.ID, k.TenantID, k.Prefix, k.Hash, ts(k.CreatedAt), nullTS(k.LastUsedAt))
	return mapErr(err)
}

// APIKeysByPrefix implements storage.Store: the keys the realtime API may
// accept (see storage.Store).
func (s *Store) APIKeysByPrefix(ctx context.Context, prefix string) ([]storage.APIKey, error) {
	rows, err := s.pool.Query(ctx, `SELECT k.id, k.tenant_id, k.prefix, k.hash, k.created_at, k.last_used_at
		FROM api_keys k
		WHERE k.prefix = $1 AND k.kind = 'secret' AND k.revoked_at IS NULL AND 'realtime' = ANY (k.scopes)
			AND `+tenantActive+`
		ORDER BY k.created_at, k.id`, prefix)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	keys := []storage.APIKey{}
	for rows.Next() {
		var (
			k                 storage.APIKey
			created, lastUsed pgtype.Timestamptz
		)
		if err := rows.Scan(&k.ID, &k.TenantID, &k.Prefix, &k.Hash, &created, &lastUsed); err != nil {
			return nil, err
		}
		k.CreatedAt, k.LastUsedAt = fromTS(created), fromTS(lastUsed)
		keys = append(keys, k)
	}
	return keys, rows.Err()
}

// CountAPIKeys implements storage.Store: the tenant's secret keys that are
// not revoked.
func (s *Store) CountAPIKeys(ctx context.Context, tenantID string) (int, error) {
	var n int
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM api_keys
		WHERE tenant_id = $1 AND kind = 'secret' AND revoked_at IS NULL`, tenantID).Scan(&n)
	return n, err
}

// TouchAPIKey implements storage.Store.
func (s *Store) TouchAPIKey(ctx context.Context, id string, at time.Time) error {
	if at.IsZero() {
		return fmt.Errorf("%w: TouchAPIKey at is zero", storage.ErrInvalid)
	}
	tag, err := s.pool.Exec(ctx, `UPDATE api_keys SET last_used_at = $1::timestamptz
		WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $1)`, ts(at), id)
	if err != nil {
		return err
	}
	if tag.RowsAffected() > 0 {
		return nil
	}
	// Nothing updated: a later use is already recorded, or no such key.
	return s.mustExist(ctx, `SELECT EXISTS (SELECT 1 FROM api_keys WHERE id = $1)`, id)
}

// CreateEphemeralKey implements storage.Store.
func (s *Store) CreateEphemeralKey(ctx context.Context, k *storage.EphemeralKey) error {
	if err := k.Validate(); err != nil {
		return err
	}
	session := k.Session
	if session == nil {
		session = []byte{} // the column is NOT NULL; pgx sends a nil slice as NULL
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO ephemeral_keys
		(id, tenant_id, key_id, agent_id, prefix, hash, session, created_at, expires_at, used_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		k.ID, k.TenantID, k.KeyID, k.AgentID, k.Prefix, k.Hash, session,
		ts(k.CreatedAt), ts(k.ExpiresAt), nullTS(k.UsedAt))
	return mapErr(err)
}

// ConsumeEphemeralKey implements storage.Store. It reads the key and checks
// it, then marks it used with an UPDATE conditional on used_at still being
// NULL. Under READ COMMITTED, concurrent UPDATEs of the row (from any node)
// queue on its row lock and each re-checks the condition against the
// committed row, so exactly one of them updates it; the others affect no
// row and get ErrUsed. No lock is held across round trips.
func (s *Store) ConsumeEphemeralKey(ctx context.Context, prefix string, hash []byte, at time.Time) (*storage.EphemeralKey, error) {
	if at.IsZero() {
		return nil, fmt.Errorf("%w: ConsumeEphemeralKey at is zero", storage.ErrInvalid)
	}
	var (
		k                      storage.EphemeralKey
		created, expires, used pgtype.Timestamptz
		disabled               bool
	)
	err := s.pool.QueryRow(ctx, `SELECT k.id, k.tenant_id, k.key_id, k.agent_id, k.prefix, k.hash, k.session,
		k.created_at, k.expires_at, k.used_at, NOT (`+tenantActive+`)
		FROM ephemeral_keys k WHERE k.prefix = $1`, prefix).Scan(
		&k.ID, &k.TenantID, &k.KeyID, &k.AgentID, &k.Prefix, &k.Hash, &k.Session,
		&created, &expires, &used, &disabled)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, storage.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	usedAt := ts(at)
	switch {
	case subtle.ConstantTimeCompare(k.Hash, hash) != 1 || disabled:
		return nil, storage.ErrNotFound
	case !expires.Time.After(usedAt.Time):
		return nil, storage.ErrExpired
	case used.Valid:
		return nil, storage.ErrUsed
	}
	tag, err := s.pool.Exec(ctx, `UPDATE ephemeral_keys SET used_at = $1
		WHERE id = $2 AND used_at IS NULL`, usedAt, k.ID)
	if err != nil {
		return nil, err
	}
	if tag.RowsAffected() == 0 {
		// Another consumer won the race since the SELECT (or the sweeper
		// deleted the key, which it only does once the key has expired).
		return nil, storage.ErrUsed
	}
	k.CreatedAt, k.ExpiresAt, k.UsedAt = fromTS(created), fromTS(expires), fromTS(usedAt)
	return &k, nil
}

// mapErr turns constraint violations into storage errors, keeping the
// server's message for logs: uniqueness into ErrConflict, a foreign key to
// a missing row (a tenant, a user) into ErrNotFound, a CHECK into
// ErrInvalid. It passes other errors through.
func mapErr(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "23505": // unique_violation
			return fmt.Errorf("%w: %w", storage.ErrConflict, err)
		case "23503": // foreign_key_violation
			return fmt.Errorf("%w: %w", storage.ErrNotFound, err)
		case "23514": // check_violation
			return fmt.Errorf("%w: %w", storage.ErrInvalid, err)
		}
	}
	return err
}

// Times are written truncated to the millisecond, so both backends return
// the same values, and read back in UTC. A zero time.Time becomes NULL
// where the column allows it.

func ts(t time.Time) pgtype.Timestamptz {
	return pgtype.Timestamptz{Time: t.Truncate(time.Millisecond), Valid: true}
}

func nullTS(t time.Time) pgtype.Timestamptz {
	if t.IsZero() {
		return pgtype.Timestamptz{}
	}
	return ts(t)
}

func fromTS(v pgtype.Timestamptz) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return v.Time.UTC()
}
