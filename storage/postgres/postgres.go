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
	"sync"
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

// Store is a storage.Backend (conversations, accounts and privacy) kept
// in PostgreSQL.
type Store struct {
	pool   *pgxpool.Pool
	floors sweepFloors   // see DeleteExpired
	legacy legacyCursors // see LegacyPlaintext
	// syncSweep makes DeleteExpired commit synchronously, as the server
	// is set to (BenchmarkDeleteExpired compares).
	syncSweep bool
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
		(id, tenant_id, agent_id, channel, language, started_at, ended_at, duration_ms, turn_count,
		 end_user, sentiment, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`
	// Only the first end sets ended_at (the WHERE ended_at IS NULL), which
	// makes EndConversation idempotent; the language and sentiment of a
	// batched end (EndWrite) come with it, when set ('' and 0 keep the
	// stored ones). The result is false when there is no such
	// conversation: the outer SELECT sees the row as it was before the
	// UPDATE, so an already ended conversation counts as existing.
	sqlEndConversation = `WITH u AS (
			UPDATE conversations
			SET ended_at = $1::timestamptz,
			    duration_ms = GREATEST(0, (EXTRACT(EPOCH FROM $1::timestamptz - started_at) * 1000)::bigint),
			    language = CASE WHEN $4::text <> '' THEN $4::text ELSE language END,
			    sentiment = CASE WHEN $5::double precision <> 0 THEN $5::double precision ELSE sentiment END
			WHERE tenant_id = $2 AND id = $3 AND ended_at IS NULL
			RETURNING 1
		)
		SELECT EXISTS (SELECT 1 FROM u)
			OR EXISTS (SELECT 1 FROM conversations WHERE tenant_id = $2 AND id = $3)`
	// One statement, hence atomic: the CTE bumps turn_count (row-locking
	// the conversation, so concurrent appends get distinct seqs) and only
	// if the conversation exists for the tenant does the INSERT get a row
	// to insert. A duplicate id or seq fails the whole statement,
	// increment included. The plaintext column text is left NULL: only
	// rows written before migration 0005 have one (see LegacyPlaintext).
	sqlAppendTurn = `WITH c AS (
			UPDATE conversations SET turn_count = turn_count + 1
			WHERE tenant_id = $1 AND id = $2
			RETURNING turn_count
		)
		INSERT INTO turns
			(conversation_id, id, tenant_id, seq, role, text_sealed, text_stored, sentiment, status,
			 started_at, ended_at, first_token_ms, total_ms, engine_ms,
			 end_of_turn_ms, first_partial_ms, final_transcript_ms, first_audio_ms,
			 first_audio_sent_ms, expires_at)
		SELECT $2, $3, $1, CASE WHEN $4::integer = 0 THEN c.turn_count ELSE $4::integer END,
			$5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20
		FROM c
		RETURNING seq`
	// A turn stored without text keeps its NULL (text_stored is false). A
	// legacy turn's plaintext goes too: the sealed text replaces it.
	sqlTruncateTurnText = `UPDATE turns
		SET text_sealed = CASE WHEN text_stored THEN $1::bytea ELSE NULL END, text = NULL
		WHERE tenant_id = $2 AND conversation_id = $3 AND id = $4`
	// The audio of a turn, only into a conversation of its tenant. The
	// result tells a missing conversation (found false: ErrNotFound) from
	// a turn that has audio already (inserted false: ErrConflict) without
	// failing the statement, so a duplicate costs a batch no savepoint.
	sqlInsertAudio = `WITH c AS (
			SELECT 1 FROM conversations WHERE tenant_id = $3 AND id = $1
		), ins AS (
			INSERT INTO turn_audio
				(conversation_id, turn_id, tenant_id, format, sealed, duration_ms, created_at, expires_at)
			SELECT $1, $2, $3, $4, $5, $6, $7, $8 FROM c
			ON CONFLICT (conversation_id, turn_id) DO NOTHING
			RETURNING 1
		)
		SELECT EXISTS (SELECT 1 FROM c), EXISTS (SELECT 1 FROM ins)`
	// A usage event and, only if it was inserted (its id was free), its
	// count in the tenant's rollup of its UTC day ($9). One statement:
	// both or neither. The result is false when the id was taken.
	sqlInsertUsage = `WITH ins AS (
			INSERT INTO usage_events (id, tenant_id, conversation_id, channel, language, at, duration_ms, expires_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
			ON CONFLICT (id) DO NOTHING
			RETURNING tenant_id
		), day AS (
			INSERT INTO usage_days AS d (tenant_id, day, channel, language, conversations, duration_ms)
			SELECT $2, $9, $4, $5, 1, $7 FROM ins
			ON CONFLICT (tenant_id, day, channel, language) DO UPDATE
			SET conversations = d.conversations + 1, duration_ms = d.duration_ms + excluded.duration_ms
		)
		SELECT EXISTS (SELECT 1 FROM ins)`
)

func conversationArgs(c *storage.Conversation) []any {
	return []any{c.ID, c.TenantID, c.AgentID, c.Channel, c.Language, ts(c.StartedAt), nullTS(c.EndedAt),
		c.DurationMS, c.TurnCount, c.EndUser, c.Sentiment, ts(c.ExpiresAt)}
}

func turnArgs(t *storage.Turn) []any {
	var text []byte // NULL unless the text may be kept
	if t.TextStored {
		text = blob(t.TextSealed)
	}
	l := &t.Latency
	return []any{t.TenantID, t.ConversationID, t.ID, t.Seq, t.Role, text, t.TextStored, t.Sentiment, t.Status,
		ts(t.StartedAt), ts(t.EndedAt), l.FirstTokenMS, l.TotalMS, l.EngineMS,
		l.EndOfTurnMS, l.FirstPartialMS, l.FinalTranscriptMS, l.FirstAudioMS,
		l.FirstAudioSentMS, ts(t.ExpiresAt)}
}

func endArgs(e *storage.EndWrite) []any {
	return []any{ts(e.At), e.TenantID, e.ID, e.Language, e.Sentiment}
}

// truncateArgs passes an empty (not NULL) sealed text: a stored text
// truncated to nothing stays stored.
func truncateArgs(t *storage.TruncateWrite) []any {
	return []any{blob(t.TextSealed), t.TenantID, t.ConversationID, t.ItemID}
}

func audioArgs(a *storage.TurnAudio) []any {
	return []any{a.ConversationID, a.TurnID, a.TenantID, a.Format, a.Sealed, a.DurationMS,
		ts(a.CreatedAt), ts(a.ExpiresAt)}
}

func usageArgs(e *storage.UsageEvent) []any {
	return []any{e.ID, e.TenantID, e.ConversationID, e.Channel, e.Language, ts(e.At), e.DurationMS,
		ts(e.ExpiresAt), utcDate(e.At)}
}

// utcDate is the UTC day of t (at millisecond precision, as stored).
func utcDate(t time.Time) pgtype.Date {
	u := t.Truncate(time.Millisecond).UTC()
	return pgtype.Date{Time: time.Date(u.Year(), u.Month(), u.Day(), 0, 0, 0, 0, time.UTC), Valid: true}
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

func audioResult(found, inserted bool, err error) error {
	switch {
	case err != nil:
		return mapErr(err) // the conversation was deleted meanwhile: a foreign key error, ErrNotFound
	case !found:
		return storage.ErrNotFound
	case !inserted:
		return fmt.Errorf("%w: the turn already has audio", storage.ErrConflict)
	}
	return nil
}

func usageResult(inserted bool, err error) error {
	if err == nil && !inserted {
		return fmt.Errorf("%w: usage event id taken", storage.ErrConflict)
	}
	return mapErr(err)
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
	err := s.pool.QueryRow(ctx, sqlEndConversation,
		endArgs(&storage.EndWrite{TenantID: tenantID, ID: id, At: endedAt})...).Scan(&found)
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
func (s *Store) TruncateTurnText(ctx context.Context, tenantID, conversationID, itemID string, sealed []byte) error {
	return truncateResult(s.pool.Exec(ctx, sqlTruncateTurnText, truncateArgs(&storage.TruncateWrite{
		TenantID: tenantID, ConversationID: conversationID, ItemID: itemID, TextSealed: sealed})...))
}

const conversationCols = `id, tenant_id, agent_id, channel, language,
	started_at, ended_at, duration_ms, turn_count, end_user, sentiment, expires_at`

func scanConversation(sc scanner) (*storage.Conversation, error) {
	var (
		c                       storage.Conversation
		started, ended, expires pgtype.Timestamptz
	)
	err := sc.Scan(&c.ID, &c.TenantID, &c.AgentID, &c.Channel, &c.Language,
		&started, &ended, &c.DurationMS, &c.TurnCount, &c.EndUser, &c.Sentiment, &expires)
	if err != nil {
		return nil, err
	}
	c.StartedAt, c.EndedAt, c.ExpiresAt = fromTS(started), fromTS(ended), fromTS(expires)
	return &c, nil
}

// GetConversation implements storage.Store.
func (s *Store) GetConversation(ctx context.Context, tenantID, id string) (*storage.Conversation, error) {
	return get(ctx, s, scanConversation, `SELECT `+conversationCols+`
		FROM conversations WHERE tenant_id = $1 AND id = $2`, tenantID, id)
}

// ListTurns implements storage.Store.
func (s *Store) ListTurns(ctx context.Context, tenantID, conversationID string) ([]storage.Turn, error) {
	rows, err := s.pool.Query(ctx, `SELECT conversation_id, id, tenant_id, seq, role, text_sealed,
		text_stored, sentiment, status, started_at, ended_at, first_token_ms, total_ms, engine_ms,
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
			started, ended, expires pgtype.Timestamptz
		)
		l := &t.Latency
		err := rows.Scan(&t.ConversationID, &t.ID, &t.TenantID, &t.Seq, &t.Role, &t.TextSealed,
			&t.TextStored, &t.Sentiment, &t.Status, &started, &ended, &l.FirstTokenMS, &l.TotalMS, &l.EngineMS,
			&l.EndOfTurnMS, &l.FirstPartialMS, &l.FinalTranscriptMS, &l.FirstAudioMS,
			&l.FirstAudioSentMS, &expires)
		if err != nil {
			return nil, err
		}
		// A legacy turn's plaintext (column text) is never handed out as
		// sealed text: it reads back without text until it is sealed.
		t.TextSealed = noBlob(t.TextSealed)
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

// expiringTables are the tables DeleteExpired sweeps, in order.
var expiringTables = [...]string{"turns", "conversations", "ephemeral_keys", "turn_audio", "usage_events",
	"user_sessions", "invitations", "idempotency_records", "api_calls", "audit_log"}

// expiring holds the DELETE of each of expiringTables. It claims the
// oldest expired rows at or after a floor ($3), at most the number given,
// through the table's expires_at index, locking them FOR UPDATE SKIP
// LOCKED, and deletes them by ctid: the claimed physical rows, fetched
// straight from the heap (a TID scan), where a delete by key would look
// every row up again in the primary key (several times the work; see
// BenchmarkDeleteExpired). The ctids are stable: the rows are locked until
// the statement's transaction ends. It returns how many rows it deleted
// and the latest expiry among them. Deleting a conversation deletes its
// remaining turns and audio (ON DELETE CASCADE, through the primary keys'
// first column), which are not counted.
var expiring = func() (qs [len(expiringTables)]string) {
	for i, table := range expiringTables {
		qs[i] = `WITH d AS (
			DELETE FROM ` + table + ` WHERE ctid = ANY (ARRAY(
				SELECT ctid FROM ` + table + `
				WHERE expires_at <= $1 AND expires_at >= $3 ORDER BY expires_at LIMIT $2
				FOR UPDATE SKIP LOCKED))
			RETURNING expires_at
		)
		SELECT count(*), max(expires_at) FROM d`
	}
	return qs
}()

// sweepFloors remembers, for each of expiringTables, where the expired
// rows this Store has not deleted yet start: the latest expiry of its last
// full batch. A sweep deletes from the oldest expiry up, and the index
// entries of the rows it deleted stay until VACUUM removes them: starting
// every batch at the oldest expiry would step over all of them again, a
// cost that grows with every batch of a large sweep (quadratic in its
// size). The floor is only where to look first: a batch that comes back
// short from a floor looks again from the start, so a row below the floor
// (one another node skipped and released, or whose expiry was lowered
// meanwhile) is still found before DeleteExpired says that nothing is
// left.
type sweepFloors struct {
	mu sync.Mutex
	at [len(expiringTables)]pgtype.Timestamptz // zero (not Valid): the start
}

// get returns the floor of table i, and whether it is above the start.
func (f *sweepFloors) get(i int) (pgtype.Timestamptz, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.at[i].Valid {
		return startCursor, false
	}
	return f.at[i], true
}

// set records a full batch of table i ending at last, or a short one
// (last invalid), which resets the floor.
func (f *sweepFloors) set(i int, last pgtype.Timestamptz) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.at[i] = last
}

// DeleteExpired implements storage.Store. Each DELETE claims its batch with
// FOR UPDATE SKIP LOCKED, so nodes sweeping at the same moment take
// different rows instead of waiting for (or double counting) each other,
// and commits on its own: a batch holds its locks for one statement.
func (s *Store) DeleteExpired(ctx context.Context, now time.Time, limit int) (int, error) {
	if err := check.Limit(limit); err != nil {
		return 0, err
	}
	cutoff := ts(now)
	deleted := 0
	for i, q := range expiring {
		want := limit - deleted
		floor, above := s.floors.get(i)
		n, last, err := s.deleteBatch(ctx, q, cutoff, want, floor)
		if err == nil && n < want && above {
			// Nothing left from the floor: look below it.
			var m int
			m, last, err = s.deleteBatch(ctx, q, cutoff, want-n, startCursor)
			n += m
		}
		deleted += n
		if err != nil {
			return deleted, err
		}
		if n < want {
			last = pgtype.Timestamptz{}
		}
		s.floors.set(i, last)
		if deleted >= limit {
			break
		}
	}
	return deleted, nil
}

// deleteBatch runs one DELETE of expiring in a transaction of its own
// with synchronous_commit off, in one round trip, and returns what the
// DELETE does. The commit does not wait for its WAL to reach the disk
// (or a synchronous standby), which at the sweeper's batch sizes is much
// of a batch's time. A server crash can lose the last few hundred
// milliseconds of sweeps, and nothing else: those rows are still expired,
// and the next sweep deletes them again. Every other write keeps the
// server's setting.
func (s *Store) deleteBatch(ctx context.Context, query string, cutoff pgtype.Timestamptz, limit int,
	floor pgtype.Timestamptz) (n int, last pgtype.Timestamptz, err error) {
	if s.syncSweep {
		err = s.pool.QueryRow(ctx, query, cutoff, limit, floor).Scan(&n, &last)
		return n, last, err
	}
	var b pgx.Batch
	b.Queue("BEGIN")
	b.Queue("SET LOCAL synchronous_commit = off")
	b.Queue(query, cutoff, limit, floor)
	b.Queue("COMMIT")
	// pgxpool destroys a connection released inside a transaction, so a
	// batch cut short (ctx done, an error) cannot leak its transaction.
	br := s.pool.SendBatch(ctx, &b)
	defer br.Close()
	for i := range 4 {
		if i == 2 {
			err = br.QueryRow().Scan(&n, &last)
		} else {
			_, err = br.Exec()
		}
		if err != nil {
			return 0, pgtype.Timestamptz{}, err
		}
	}
	return n, last, br.Close()
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
		(id, tenant_id, key_id, agent_id, prefix, hash, session, created_at, expires_at, used_at, end_user, origin)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
		k.ID, k.TenantID, k.KeyID, k.AgentID, k.Prefix, k.Hash, session,
		ts(k.CreatedAt), ts(k.ExpiresAt), nullTS(k.UsedAt), k.EndUser, k.Origin)
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
		k.created_at, k.expires_at, k.used_at, k.end_user, k.origin, NOT (`+tenantActive+`)
		FROM ephemeral_keys k WHERE k.prefix = $1`, prefix).Scan(
		&k.ID, &k.TenantID, &k.KeyID, &k.AgentID, &k.Prefix, &k.Hash, &k.Session,
		&created, &expires, &used, &k.EndUser, &k.Origin, &disabled)
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
