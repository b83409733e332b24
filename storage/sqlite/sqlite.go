// Package sqlite is Parley's embedded storage backend: one SQLite file, no
// server to run, pure Go (modernc.org/sqlite). It is the default for a
// single node; several nodes share state through storage/postgres instead.
package sqlite

import (
	"context"
	"crypto/subtle"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"parley/storage"
	"parley/storage/internal/check"
	"parley/storage/internal/migrate"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// busyTimeout is how long a connection waits for a lock another process
// holds (say `parley purge` while parleyd runs) before failing with
// SQLITE_BUSY. Inside one process writers never wait on SQLite's lock: they
// queue for the single write connection instead (see Store).
const busyTimeout = 5 * time.Second

// Store is a storage.Backend (conversations, accounts and privacy) kept in
// one SQLite file.
//
// SQLite allows one writer at a time. Rather than let writers collide and
// fail with SQLITE_BUSY, the Store keeps two pools on the file: w holds a
// single connection that every write goes through (database/sql queues the
// writers in Go and honours their contexts), and r holds several read-only
// connections that WAL mode lets read while the writer writes.
type Store struct {
	w  *sql.DB     // the one write connection; transactions BEGIN IMMEDIATE
	r  *sql.DB     // read-only connections (PRAGMA query_only)
	st *writeStmts // prepared on w
}

var _ storage.Store = (*Store)(nil)

// Open opens (creating if needed, with its parent directory) the database
// file at path and brings its schema up to date. path is a filesystem path,
// not a URI: it must not start with "file:" or contain '?', and ":memory:"
// is refused because the Store's two pools would see two different
// databases. Call Close when done.
func Open(ctx context.Context, path string) (*Store, error) {
	switch {
	case path == "":
		return nil, errors.New("sqlite: empty database path")
	case path == ":memory:":
		return nil, errors.New("sqlite: in-memory databases are not supported; use a file path")
	case strings.HasPrefix(path, "file:") || strings.Contains(path, "?"):
		return nil, fmt.Errorf("sqlite: %q: want a plain file path (no file: prefix, no '?')", path)
	}

	// Transcripts live in this file: keep it private to the service user.
	// SQLite gives the -wal and -shm files the same permissions.
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("sqlite: create directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}

	ms, err := migrate.Load(migrationFS, "migrations")
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}

	// journal_mode=WAL is stored in the file, so setting it on the write
	// connection is enough; the other pragmas are per connection, hence in
	// both DSNs so every pooled connection gets them.
	w, err := sql.Open("sqlite", dsn(path, url.Values{
		"_pragma": writerPragmas,
		"_txlock": {"immediate"}, // BEGIN IMMEDIATE: take the write lock up front
	}))
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	if err := connectWriter(ctx, w); err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	if err := applyMigrations(ctx, w, ms); err != nil {
		w.Close()
		return nil, err
	}

	r, err := sql.Open("sqlite", dsn(path, url.Values{"_pragma": {"query_only(1)"}}))
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	readers := max(4, runtime.GOMAXPROCS(0))
	r.SetMaxOpenConns(readers)
	r.SetMaxIdleConns(readers)
	r.SetConnMaxIdleTime(5 * time.Minute)
	if err := r.PingContext(ctx); err != nil {
		r.Close()
		w.Close()
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	st, err := prepareWrites(ctx, w)
	if err != nil {
		r.Close()
		w.Close()
		return nil, err
	}
	return &Store{w: w, r: r, st: st}, nil
}

// writerPragmas are the write connection's own pragmas, on top of dsn's.
//
// The sweeper is the heaviest writer: every turn it deletes rewrites a page
// of each index of turns, and when many conversations ran at once those
// pages are scattered. A 64 MiB page cache (SQLite's default is 2 MiB; it
// grows only as used) keeps them between batches instead of reading them
// back, and checkpointing the WAL every 10,000 pages (40 MiB at the 4 KiB
// page size) instead of every 1,000 copies a page rewritten by several
// batches once, with one fsync instead of one per batch. With the turns
// index migration 0005 drops, they more than double DeleteExpired's
// throughput when many conversations ran at once, and add a third when
// few did (BenchmarkDeleteExpired).
//
// secure_delete overwrites deleted content with zeros, in b-tree and free
// pages alike: an erased end user's rows (sealed text, pseudonym) are not
// left in the file's free space (cmd/parleyd TestEndUserErasure).
var writerPragmas = []string{"journal_mode(WAL)", "cache_size(-65536)", "wal_autocheckpoint(10000)", "secure_delete(1)"}

// dsn builds a modernc.org/sqlite data source name for path: the pragmas
// every connection needs, plus extra driver parameters. The driver runs
// each _pragma on every new connection.
func dsn(path string, extra url.Values) string {
	q := url.Values{"_pragma": {
		fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()),
		"foreign_keys(1)",
		"synchronous(NORMAL)",
	}}
	for k, vs := range extra {
		q[k] = append(q[k], vs...)
	}
	return path + "?" + q.Encode()
}

// connectWriter opens the write connection, which switches a new file to
// WAL mode. That switch needs an exclusive lock that SQLite does not wait
// for (busy_timeout is not consulted on that path), so when several
// processes open a new file at once all but one may get SQLITE_BUSY. Retry
// those for up to busyTimeout; once the file is in WAL mode, the pragma
// takes no such lock and connecting no longer fails this way.
func connectWriter(ctx context.Context, w *sql.DB) error {
	deadline := time.Now().Add(busyTimeout)
	delay := time.Millisecond
	for {
		err := w.PingContext(ctx)
		if err == nil || !isBusy(err) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
		delay = min(2*delay, 100*time.Millisecond)
	}
}

func isBusy(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_BUSY
}

// applyMigrations applies those of ms (Open passes all the embedded ones;
// upgrade tests pass a prefix) not yet recorded in schema_migrations, each
// in its own transaction. The write pool begins transactions with BEGIN
// IMMEDIATE, which takes SQLite's write lock at once, so two processes
// opening the same file never apply one twice.
func applyMigrations(ctx context.Context, db *sql.DB, ms []migrate.Migration) error {
	const create = `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER NOT NULL PRIMARY KEY,
		name       TEXT    NOT NULL,
		applied_at INTEGER NOT NULL
	) STRICT`
	if _, err := db.ExecContext(ctx, create); err != nil {
		return fmt.Errorf("sqlite: create schema_migrations: %w", err)
	}
	for _, m := range ms {
		if err := applyMigration(ctx, db, m); err != nil {
			return fmt.Errorf("sqlite: migration %s: %w", m.Name, err)
		}
	}
	return nil
}

func applyMigration(ctx context.Context, db *sql.DB, m migrate.Migration) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() // no-op after Commit

	var applied int
	err = tx.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE version = ?`, m.Version).Scan(&applied)
	if err != nil || applied > 0 {
		return err
	}
	if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
		m.Version, m.Name, time.Now().UnixMilli())
	if err != nil {
		return err
	}
	return tx.Commit()
}

// Ping implements storage.Store. It uses a read connection, so a long
// write in progress does not make the store look unreachable.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	return s.r.QueryRowContext(ctx, `SELECT 1`).Scan(&one)
}

// Close implements storage.Store.
func (s *Store) Close() error {
	return errors.Join(s.st.close(), s.r.Close(), s.w.Close())
}

// The write statements, prepared once on the write connection (see
// writeStmts). modernc.org/sqlite keeps the compiled statement of a
// prepared single-statement query, so executing one costs no
// sqlite3_prepare_v2.
const (
	sqlCreateConversation = `INSERT INTO conversations
		(id, tenant_id, agent_id, channel, language, started_at, ended_at, duration_ms, turn_count,
		 end_user, sentiment, expires_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	// Only the first end sets ended_at (the WHERE ended_at IS NULL), which
	// makes EndConversation idempotent; the language and sentiment of a
	// batched end (EndWrite) come with it, when set ("" and 0 keep the
	// stored ones).
	sqlEndConversation = `UPDATE conversations
		SET ended_at = ?1, duration_ms = max(0, ?1 - started_at),
			language = CASE WHEN ?4 <> '' THEN ?4 ELSE language END,
			sentiment = CASE WHEN ?5 <> 0 THEN ?5 ELSE sentiment END
		WHERE tenant_id = ?2 AND id = ?3 AND ended_at IS NULL`
	sqlConversationExists = `SELECT count(*) FROM conversations WHERE tenant_id = ? AND id = ?`
	// Bumping turn_count also proves the conversation belongs to the
	// turn's tenant.
	sqlBumpTurnCount = `UPDATE conversations SET turn_count = turn_count + 1
		WHERE tenant_id = ? AND id = ? RETURNING turn_count`
	// The plaintext column text is left NULL: only rows written before
	// migration 0005 have one (see LegacyPlaintext).
	sqlInsertTurn = `INSERT INTO turns
		(conversation_id, id, tenant_id, seq, role, text_sealed, text_stored, sentiment, status,
		 started_at, ended_at, first_token_ms, total_ms, engine_ms,
		 end_of_turn_ms, first_partial_ms, final_transcript_ms, first_audio_ms,
		 first_audio_sent_ms, expires_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	// A turn stored without text keeps its NULL (text_stored is false). A
	// legacy turn's plaintext goes too: the sealed text replaces it.
	sqlTruncateTurnText = `UPDATE turns SET text_sealed = CASE WHEN text_stored THEN ?1 ELSE NULL END, text = NULL
		WHERE tenant_id = ?2 AND conversation_id = ?3 AND id = ?4`
	// The audio of a turn, only into a conversation of its tenant.
	sqlInsertAudio = `INSERT INTO turn_audio
		(conversation_id, turn_id, tenant_id, format, sealed, duration_ms, created_at, expires_at)
		SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8
		WHERE EXISTS (SELECT 1 FROM conversations WHERE tenant_id = ?3 AND id = ?1)`
	sqlInsertUsage = `INSERT INTO usage_events
		(id, tenant_id, conversation_id, channel, language, at, duration_ms, expires_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`
	sqlAddUsageDay = `INSERT INTO usage_days (tenant_id, day, channel, language, conversations, duration_ms)
		VALUES (?, ?, ?, ?, 1, ?)
		ON CONFLICT (tenant_id, day, channel, language) DO UPDATE
		SET conversations = conversations + 1, duration_ms = duration_ms + excluded.duration_ms`
	sqlSavepoint  = `SAVEPOINT parley_write`
	sqlRelease    = `RELEASE parley_write`
	sqlRollbackTo = `ROLLBACK TO parley_write`

	sqlInsertEphemeralKey = `INSERT INTO ephemeral_keys
		(id, tenant_id, key_id, agent_id, prefix, hash, session, created_at, expires_at, used_at, end_user, origin)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	// Run inside ConsumeEphemeralKey's write transaction. The last column
	// is true when the key's tenant is disabled.
	sqlSelectEphemeralKey = `SELECT k.id, k.tenant_id, k.key_id, k.agent_id, k.prefix, k.hash, k.session,
		k.created_at, k.expires_at, k.used_at, k.end_user, k.origin, NOT (` + tenantActive + `)
		FROM ephemeral_keys k WHERE k.prefix = ?`
	sqlUseEphemeralKey = `UPDATE ephemeral_keys SET used_at = ? WHERE id = ? AND used_at IS NULL`
)

// writeStmts holds the write statements. The Store's set is prepared on
// the write pool, whose single connection never expires, so database/sql
// prepares each statement once; Tx.StmtContext then reuses that prepared
// statement inside a transaction (bound, below).
type writeStmts struct {
	createConversation, endConversation, conversationExists *sql.Stmt
	bumpTurnCount, insertTurn, truncateTurnText             *sql.Stmt
	insertAudio, insertUsage, addUsageDay                   *sql.Stmt
	savepoint, release, rollbackTo                          *sql.Stmt
	insertEphemeralKey, selectEphemeralKey, useEphemeralKey *sql.Stmt
}

func (st *writeStmts) each() []struct {
	p     **sql.Stmt
	query string
} {
	return []struct {
		p     **sql.Stmt
		query string
	}{
		{&st.createConversation, sqlCreateConversation},
		{&st.endConversation, sqlEndConversation},
		{&st.conversationExists, sqlConversationExists},
		{&st.bumpTurnCount, sqlBumpTurnCount},
		{&st.insertTurn, sqlInsertTurn},
		{&st.truncateTurnText, sqlTruncateTurnText},
		{&st.insertAudio, sqlInsertAudio},
		{&st.insertUsage, sqlInsertUsage},
		{&st.addUsageDay, sqlAddUsageDay},
		{&st.savepoint, sqlSavepoint},
		{&st.release, sqlRelease},
		{&st.rollbackTo, sqlRollbackTo},
		{&st.insertEphemeralKey, sqlInsertEphemeralKey},
		{&st.selectEphemeralKey, sqlSelectEphemeralKey},
		{&st.useEphemeralKey, sqlUseEphemeralKey},
	}
}

// prepareWrites prepares the write statements on db.
func prepareWrites(ctx context.Context, db *sql.DB) (*writeStmts, error) {
	st := &writeStmts{}
	for _, e := range st.each() {
		stmt, err := db.PrepareContext(ctx, e.query)
		if err != nil {
			st.close()
			return nil, fmt.Errorf("sqlite: prepare: %w", err)
		}
		*e.p = stmt
	}
	return st, nil
}

func (st *writeStmts) close() error {
	var errs []error
	for _, e := range st.each() {
		if *e.p != nil {
			errs = append(errs, (*e.p).Close())
		}
	}
	return errors.Join(errs...)
}

// bound returns the statements bound to tx; database/sql closes them when
// tx ends.
func (st *writeStmts) bound(ctx context.Context, tx *sql.Tx) *writeStmts {
	b := &writeStmts{}
	src := st.each()
	for i, e := range b.each() {
		*e.p = tx.StmtContext(ctx, *src[i].p)
	}
	return b
}

// CreateConversation implements storage.Store.
func (s *Store) CreateConversation(ctx context.Context, c *storage.Conversation) error {
	if err := check.Conversation(c); err != nil {
		return err
	}
	return createConversation(ctx, s.st, c)
}

func createConversation(ctx context.Context, st *writeStmts, c *storage.Conversation) error {
	_, err := st.createConversation.ExecContext(ctx,
		c.ID, c.TenantID, c.AgentID, c.Channel, c.Language, unixMS(c.StartedAt), nullMS(c.EndedAt),
		c.DurationMS, c.TurnCount, c.EndUser, c.Sentiment, unixMS(c.ExpiresAt))
	return mapErr(err)
}

// EndConversation implements storage.Store.
func (s *Store) EndConversation(ctx context.Context, tenantID, id string, endedAt time.Time) error {
	if err := check.End(endedAt); err != nil {
		return err
	}
	ended, err := endConversation(ctx, s.st, &storage.EndWrite{TenantID: tenantID, ID: id, At: endedAt})
	if err != nil || ended {
		return err
	}
	// Nothing updated: either already ended (fine) or not there. A read
	// connection can tell: this call's own write, if any, is committed.
	return s.mustExist(ctx, sqlConversationExists, tenantID, id)
}

// endConversation reports whether it ended the conversation; false means
// it was already ended or does not exist.
func endConversation(ctx context.Context, st *writeStmts, e *storage.EndWrite) (bool, error) {
	res, err := st.endConversation.ExecContext(ctx, unixMS(e.At), e.TenantID, e.ID, e.Language, e.Sentiment)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n > 0, err
}

// mustExist runs a count(*) query on a read connection and returns
// storage.ErrNotFound when it counts nothing.
func (s *Store) mustExist(ctx context.Context, query string, args ...any) error {
	return mustCount(s.r.QueryRowContext(ctx, query, args...))
}

func mustCount(row *sql.Row) error {
	var n int
	if err := row.Scan(&n); err != nil {
		return err
	}
	if n == 0 {
		return storage.ErrNotFound
	}
	return nil
}

// AppendTurn implements storage.Store: one write transaction bumps the
// conversation's turn_count and inserts the turn.
func (s *Store) AppendTurn(ctx context.Context, t *storage.Turn) error {
	if err := check.Turn(t); err != nil {
		return err
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() // no-op after Commit

	st := &writeStmts{
		bumpTurnCount: tx.StmtContext(ctx, s.st.bumpTurnCount),
		insertTurn:    tx.StmtContext(ctx, s.st.insertTurn),
	}
	seq, err := appendTurn(ctx, st, t)
	if err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	t.Seq = seq
	return nil
}

// appendTurn runs AppendTurn's statements (st must be bound to a
// transaction) and returns the turn's seq; it does not write it to t.
func appendTurn(ctx context.Context, st *writeStmts, t *storage.Turn) (int, error) {
	var count int
	err := st.bumpTurnCount.QueryRowContext(ctx, t.TenantID, t.ConversationID).Scan(&count)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, storage.ErrNotFound
	}
	if err != nil {
		return 0, err
	}
	seq := t.Seq
	if seq == 0 {
		seq = count
	}
	var text []byte // NULL unless the text may be kept
	if t.TextStored {
		text = blob(t.TextSealed)
	}
	l := &t.Latency
	_, err = st.insertTurn.ExecContext(ctx,
		t.ConversationID, t.ID, t.TenantID, seq, t.Role, text, t.TextStored, t.Sentiment, t.Status,
		unixMS(t.StartedAt), unixMS(t.EndedAt), l.FirstTokenMS, l.TotalMS, l.EngineMS,
		l.EndOfTurnMS, l.FirstPartialMS, l.FinalTranscriptMS, l.FirstAudioMS,
		l.FirstAudioSentMS, unixMS(t.ExpiresAt))
	if err != nil {
		return 0, mapErr(err)
	}
	return seq, nil
}

// TruncateTurnText implements storage.Store.
func (s *Store) TruncateTurnText(ctx context.Context, tenantID, conversationID, itemID string, sealed []byte) error {
	return truncateTurnText(ctx, s.st, tenantID, conversationID, itemID, sealed)
}

func truncateTurnText(ctx context.Context, st *writeStmts, tenantID, conversationID, itemID string, sealed []byte) error {
	res, err := st.truncateTurnText.ExecContext(ctx, blob(sealed), tenantID, conversationID, itemID)
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err == nil && n == 0 {
		err = storage.ErrNotFound
	}
	return err
}

// WriteBatch implements storage.Store: one BEGIN IMMEDIATE transaction
// (one commit, instead of one per write) on the write connection, each
// valid write under a savepoint that is rolled back if the write fails.
// A failing statement whose savepoint cannot be rolled back (SQLite
// rolled the whole transaction back, e.g. on an I/O error), or a done
// ctx, fails the batch.
func (s *Store) WriteBatch(ctx context.Context, ws []storage.Write) ([]error, error) {
	errs := make([]error, len(ws))
	if len(ws) == 0 {
		return errs, nil
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback() // no-op after Commit

	st := s.st.bound(ctx, tx)
	seqs := make([]int, len(ws))
	for i := range ws {
		w := &ws[i]
		if errs[i] = check.Write(w); errs[i] != nil {
			continue
		}
		if _, err := st.savepoint.ExecContext(ctx); err != nil {
			return nil, err
		}
		var err error
		switch {
		case w.Create != nil:
			err = createConversation(ctx, st, w.Create)
		case w.Turn != nil:
			seqs[i], err = appendTurn(ctx, st, w.Turn)
		case w.End != nil:
			var ended bool
			ended, err = endConversation(ctx, st, w.End)
			if err == nil && !ended {
				// Inside the transaction: the conversation may have been
				// created earlier in this batch.
				err = mustCount(st.conversationExists.QueryRowContext(ctx, w.End.TenantID, w.End.ID))
			}
		case w.Truncate != nil:
			t := w.Truncate
			err = truncateTurnText(ctx, st, t.TenantID, t.ConversationID, t.ItemID, t.TextSealed)
		case w.Audio != nil:
			err = insertAudio(ctx, st, w.Audio)
		case w.Usage != nil:
			err = insertUsage(ctx, st, w.Usage)
		}
		if err != nil {
			if cerr := ctx.Err(); cerr != nil {
				return nil, cerr
			}
			if _, rerr := st.rollbackTo.ExecContext(ctx); rerr != nil {
				return nil, fmt.Errorf("sqlite: write %d failed (%w) and could not be rolled back: %w", i, err, rerr)
			}
			errs[i] = err
		}
		if _, err := st.release.ExecContext(ctx); err != nil {
			return nil, err
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	for i, w := range ws {
		if w.Turn != nil && errs[i] == nil {
			w.Turn.Seq = seqs[i]
		}
	}
	return errs, nil
}

// GetConversation implements storage.Store.
func (s *Store) GetConversation(ctx context.Context, tenantID, id string) (*storage.Conversation, error) {
	return get(ctx, s.r, scanConversation, `SELECT `+conversationCols+`
		FROM conversations WHERE tenant_id = ? AND id = ?`, tenantID, id)
}

const conversationCols = `id, tenant_id, agent_id, channel, language,
	started_at, ended_at, duration_ms, turn_count, end_user, sentiment, expires_at`

func scanConversation(sc scanner) (*storage.Conversation, error) {
	var (
		c                storage.Conversation
		started, expires int64
		ended            sql.NullInt64
	)
	err := sc.Scan(&c.ID, &c.TenantID, &c.AgentID, &c.Channel, &c.Language,
		&started, &ended, &c.DurationMS, &c.TurnCount, &c.EndUser, &c.Sentiment, &expires)
	if err != nil {
		return nil, err
	}
	c.StartedAt, c.EndedAt, c.ExpiresAt = fromMS(started), fromNullMS(ended), fromMS(expires)
	return &c, nil
}

// ListTurns implements storage.Store.
func (s *Store) ListTurns(ctx context.Context, tenantID, conversationID string) ([]storage.Turn, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT conversation_id, id, tenant_id, seq, role, text_sealed,
		text_stored, sentiment, status, started_at, ended_at, first_token_ms, total_ms, engine_ms,
		end_of_turn_ms, first_partial_ms, final_transcript_ms, first_audio_ms,
		first_audio_sent_ms, expires_at
		FROM turns WHERE tenant_id = ? AND conversation_id = ? ORDER BY seq`,
		tenantID, conversationID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	turns := []storage.Turn{}
	for rows.Next() {
		var (
			t                       storage.Turn
			started, ended, expires int64
		)
		l := &t.Latency
		err := rows.Scan(&t.ConversationID, &t.ID, &t.TenantID, &t.Seq, &t.Role, &t.TextSealed,
			&t.TextStored, &t.Sentiment, &t.Status, &started, &ended, &l.FirstTokenMS, &l.TotalMS, &l.EngineMS,
			&l.EndOfTurnMS, &l.FirstPartialMS, &l.FinalTranscriptMS, &l.FirstAudioMS,
			&l.FirstAudioSentMS, &expires)
		if err != nil {
			return nil, err
		}
		// Empty (and a legacy turn's, whose plaintext is not sealed yet
		// and never handed out as if it were) reads as nil.
		t.TextSealed = noBlob(t.TextSealed)
		t.StartedAt, t.EndedAt, t.ExpiresAt = fromMS(started), fromMS(ended), fromMS(expires)
		turns = append(turns, t)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(turns) == 0 {
		// No turns yet, or no such conversation for this tenant?
		err := s.mustExist(ctx, `SELECT count(*) FROM conversations WHERE tenant_id = ? AND id = ?`,
			tenantID, conversationID)
		if err != nil {
			return nil, err
		}
	}
	return turns, nil
}

// expiring lists the DELETE of each table DeleteExpired sweeps, in order:
// each takes the oldest expired rows, at most the number given, through
// the table's expires_at index. Deleting a conversation deletes its
// remaining turns and audio (ON DELETE CASCADE), which SQLite does not
// count in RowsAffected.
var expiring = func() []string {
	var qs []string
	for _, table := range []string{"turns", "conversations", "ephemeral_keys", "turn_audio", "usage_events",
		"user_sessions", "invitations", "idempotency_records", "api_calls", "audit_log"} {
		qs = append(qs, `DELETE FROM `+table+` WHERE rowid IN (
			SELECT rowid FROM `+table+` WHERE expires_at <= ? ORDER BY expires_at LIMIT ?)`)
	}
	return qs
}()

// DeleteExpired implements storage.Store. Each DELETE is its own atomic
// statement on the single write connection.
func (s *Store) DeleteExpired(ctx context.Context, now time.Time, limit int) (int, error) {
	if err := check.Limit(limit); err != nil {
		return 0, err
	}
	cutoff := unixMS(now)
	deleted := 0
	for _, q := range expiring {
		res, err := s.w.ExecContext(ctx, q, cutoff, limit-deleted)
		if err != nil {
			return deleted, err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return deleted, err
		}
		deleted += int(n)
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
	_, err := s.w.ExecContext(ctx, `INSERT INTO api_keys
		(id, tenant_id, prefix, hash, created_at, last_used_at) VALUES (?, ?, ?, ?, ?, ?)`,
		k.ID, k.TenantID, k.Prefix, k.Hash, unixMS(k.CreatedAt), nullMS(k.LastUsedAt))
	return mapErr(err)
}

// APIKeysByPrefix implements storage.Store: the keys the realtime API may
// accept (see storage.Store).
func (s *Store) APIKeysByPrefix(ctx context.Context, prefix string) ([]storage.APIKey, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT k.id, k.tenant_id, k.prefix, k.hash, k.created_at, k.last_used_at
		FROM api_keys k
		WHERE k.prefix = ? AND k.kind = 'secret' AND k.revoked_at IS NULL
			AND EXISTS (SELECT 1 FROM json_each(k.scopes) WHERE value = 'realtime')
			AND `+tenantActive+`
		ORDER BY k.created_at, k.id`, prefix)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	keys := []storage.APIKey{}
	for rows.Next() {
		var (
			k        storage.APIKey
			created  int64
			lastUsed sql.NullInt64
		)
		if err := rows.Scan(&k.ID, &k.TenantID, &k.Prefix, &k.Hash, &created, &lastUsed); err != nil {
			return nil, err
		}
		k.CreatedAt, k.LastUsedAt = fromMS(created), fromNullMS(lastUsed)
		keys = append(keys, k)
	}
	return keys, rows.Err()
}

// CountAPIKeys implements storage.Store: the tenant's secret keys that are
// not revoked.
func (s *Store) CountAPIKeys(ctx context.Context, tenantID string) (int, error) {
	var n int
	err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM api_keys
		WHERE tenant_id = ? AND kind = 'secret' AND revoked_at IS NULL`, tenantID).Scan(&n)
	return n, err
}

// TouchAPIKey implements storage.Store.
func (s *Store) TouchAPIKey(ctx context.Context, id string, at time.Time) error {
	if at.IsZero() {
		return fmt.Errorf("%w: TouchAPIKey at is zero", storage.ErrInvalid)
	}
	ts := unixMS(at)
	res, err := s.w.ExecContext(ctx, `UPDATE api_keys SET last_used_at = ?
		WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?)`, ts, id, ts)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n > 0 {
		return err
	}
	// Nothing updated: a later use is already recorded, or no such key.
	return s.mustExist(ctx, `SELECT count(*) FROM api_keys WHERE id = ?`, id)
}

// CreateEphemeralKey implements storage.Store.
func (s *Store) CreateEphemeralKey(ctx context.Context, k *storage.EphemeralKey) error {
	if err := k.Validate(); err != nil {
		return err
	}
	session := k.Session
	if session == nil {
		session = []byte{} // the column is NOT NULL; nil would bind NULL
	}
	_, err := s.st.insertEphemeralKey.ExecContext(ctx,
		k.ID, k.TenantID, k.KeyID, k.AgentID, k.Prefix, k.Hash, session,
		unixMS(k.CreatedAt), unixMS(k.ExpiresAt), nullMS(k.UsedAt), k.EndUser, k.Origin)
	return mapErr(err)
}

// ConsumeEphemeralKey implements storage.Store: one BEGIN IMMEDIATE
// transaction on the write connection reads the key, checks it and marks
// it used, so no other writer, in this process or another, can consume it
// in between.
func (s *Store) ConsumeEphemeralKey(ctx context.Context, prefix string, hash []byte, at time.Time) (*storage.EphemeralKey, error) {
	if at.IsZero() {
		return nil, fmt.Errorf("%w: ConsumeEphemeralKey at is zero", storage.ErrInvalid)
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback() // no-op after Commit

	var (
		k                storage.EphemeralKey
		created, expires int64
		used             sql.NullInt64
		disabled         bool
	)
	err = tx.StmtContext(ctx, s.st.selectEphemeralKey).QueryRowContext(ctx, prefix).Scan(
		&k.ID, &k.TenantID, &k.KeyID, &k.AgentID, &k.Prefix, &k.Hash, &k.Session,
		&created, &expires, &used, &k.EndUser, &k.Origin, &disabled)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, storage.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	usedAt := unixMS(at)
	switch {
	case subtle.ConstantTimeCompare(k.Hash, hash) != 1 || disabled:
		return nil, storage.ErrNotFound
	case expires <= usedAt:
		return nil, storage.ErrExpired
	case used.Valid:
		return nil, storage.ErrUsed
	}
	res, err := tx.StmtContext(ctx, s.st.useEphemeralKey).ExecContext(ctx, usedAt, k.ID)
	if err != nil {
		return nil, err
	}
	if n, err := res.RowsAffected(); err != nil {
		return nil, err
	} else if n == 0 {
		return nil, storage.ErrUsed // cannot happen under the write lock; kept as a guard
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	k.CreatedAt, k.ExpiresAt, k.UsedAt = fromMS(created), fromMS(expires), fromMS(usedAt)
	return &k, nil
}

// mapErr turns SQLite constraint violations into storage errors, keeping
// the driver's message for logs: uniqueness into ErrConflict, a foreign
// key to a missing row (a tenant, a user) into ErrNotFound, a CHECK into
// ErrInvalid. It passes other errors through.
func mapErr(err error) error {
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() {
		case sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY, sqlite3.SQLITE_CONSTRAINT_UNIQUE:
			return fmt.Errorf("%w: %w", storage.ErrConflict, err)
		case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
			return fmt.Errorf("%w: %w", storage.ErrNotFound, err)
		case sqlite3.SQLITE_CONSTRAINT_CHECK:
			return fmt.Errorf("%w: %w", storage.ErrInvalid, err)
		}
	}
	return err
}

// Times are stored as INTEGER unix milliseconds, which sort like the times
// they stand for and read back in UTC. A zero time.Time becomes NULL where
// the column allows it.

func unixMS(t time.Time) int64 { return t.UnixMilli() }

func nullMS(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixMilli(), Valid: true}
}

func fromMS(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

func fromNullMS(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return fromMS(v.Int64)
}
