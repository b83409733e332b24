package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"parley/storage"
	"parley/storage/internal/migrate"
	"parley/storage/storagetest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// openTemp opens a store in a fresh directory (one level deeper than
// t.TempDir, so Open has to create it) and closes it when the test ends.
func openTemp(t testing.TB) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "data", "parley.db")
	s, err := Open(context.Background(), path)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s, path
}

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Store {
		s, _ := openTemp(t)
		return s
	})
}

func TestAccounts(t *testing.T) {
	storagetest.RunAccounts(t, func(t *testing.T) storage.Backend {
		s, _ := openTemp(t)
		return s
	})
}

func TestPrivacy(t *testing.T) {
	storagetest.RunPrivacy(t, func(t *testing.T) storage.Backend {
		s, _ := openTemp(t)
		return s
	})
}

// TestUpgradeFrom1 builds a file the way version 1 left it (migration 1
// only, rows written with its SQL) and opens it with the current code.
func TestUpgradeFrom1(t *testing.T) {
	storagetest.RunUpgradeFrom1(t, legacyV1)
}

// TestUpgradeToAccounts upgrades a version 1 file with an API key to the
// accounts schema.
func TestUpgradeToAccounts(t *testing.T) {
	storagetest.RunUpgradeToAccounts(t, legacyV1)
}

// legacyDB returns a fresh file at schema version, with the connection
// settings of Open's write pool, and its path.
func legacyDB(t *testing.T, version int) (*sql.DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "parley.db")
	ms, err := migrate.Load(migrationFS, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", dsn(path, url.Values{
		"_pragma": writerPragmas,
		"_txlock": {"immediate"},
	}))
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	if err := applyMigrations(t.Context(), db, ms[:version]); err != nil {
		t.Fatalf("apply migrations 1-%d: %v", version, err)
	}
	return db, path
}

// legacyV1 returns a fresh file at schema version 1.
func legacyV1(t *testing.T) storagetest.Legacy {
	db, path := legacyDB(t, 1)
	return storagetest.Legacy{
		Write: func(t *testing.T, c *storage.Conversation, turns []*storage.Turn) {
			t.Helper()
			writeV1(t, db, c, turns)
		},
		WriteAPIKey: func(t *testing.T, k *storage.APIKey) {
			t.Helper()
			_, err := db.ExecContext(t.Context(), `INSERT INTO api_keys
				(id, tenant_id, prefix, hash, created_at, last_used_at) VALUES (?, ?, ?, ?, ?, ?)`,
				k.ID, k.TenantID, k.Prefix, k.Hash, unixMS(k.CreatedAt), nullMS(k.LastUsedAt))
			if err != nil {
				t.Fatalf("v1 insert API key %s: %v", k.ID, err)
			}
		},
		Open: func(t *testing.T) storage.Backend {
			s, err := Open(t.Context(), path)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			t.Cleanup(func() { s.Close() })
			assertMigrations(t, s.r)
			return s
		},
	}
}

// writeV1 inserts c and turns with the statements of version 1, which
// know nothing of the voice latency columns.
func writeV1(t *testing.T, db *sql.DB, c *storage.Conversation, turns []*storage.Turn) {
	t.Helper()
	ctx := t.Context()
	_, err := db.ExecContext(ctx, `INSERT INTO conversations
		(id, tenant_id, agent_id, channel, language, started_at, ended_at, duration_ms, turn_count, expires_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		c.ID, c.TenantID, c.AgentID, c.Channel, c.Language, unixMS(c.StartedAt), nullMS(c.EndedAt),
		c.DurationMS, c.TurnCount, unixMS(c.ExpiresAt))
	if err != nil {
		t.Fatalf("v1 insert conversation %s: %v", c.ID, err)
	}
	for _, tr := range turns {
		var text any // version 1 kept the transcript in clear
		if tr.TextStored {
			text = string(tr.TextSealed)
		}
		_, err := db.ExecContext(ctx, `INSERT INTO turns
			(conversation_id, id, tenant_id, seq, role, text, text_stored, status,
			 started_at, ended_at, first_token_ms, total_ms, engine_ms, expires_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			tr.ConversationID, tr.ID, tr.TenantID, tr.Seq, tr.Role, text, tr.TextStored, tr.Status,
			unixMS(tr.StartedAt), unixMS(tr.EndedAt), tr.Latency.FirstTokenMS, tr.Latency.TotalMS,
			tr.Latency.EngineMS, unixMS(tr.ExpiresAt))
		if err != nil {
			t.Fatalf("v1 insert turn %s: %v", tr.ID, err)
		}
	}
}

func TestOpenCreatesPrivateFile(t *testing.T) {
	_, path := openTemp(t)
	for p, want := range map[string]os.FileMode{filepath.Dir(path): 0o700 | os.ModeDir, path: 0o600} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want {
			t.Errorf("%s mode = %v, want %v", p, fi.Mode(), want)
		}
	}
}

func TestOpenRejects(t *testing.T) {
	dir := t.TempDir()
	for _, path := range []string{"", ":memory:", "file:" + dir + "/x.db", dir + "/x.db?mode=ro"} {
		if s, err := Open(t.Context(), path); err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded, want an error", path)
		}
	}
}

// TestPragmas checks that every pooled connection, not just the first,
// got its pragmas from the DSN.
func TestPragmas(t *testing.T) {
	s, _ := openTemp(t)
	ctx := t.Context()
	want := map[string]string{
		"journal_mode": "wal",
		"foreign_keys": "1",
		"synchronous":  "1", // NORMAL
		"busy_timeout": "5000",
	}
	check := func(name string, db *sql.DB, conns int, own map[string]string) {
		var held []*sql.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for i := range conns {
			c, err := db.Conn(ctx) // held, so the next one is a new connection
			if err != nil {
				t.Fatal(err)
			}
			held = append(held, c)
			w := maps.Clone(want)
			maps.Copy(w, own)
			for pragma, v := range w {
				var got string
				if err := c.QueryRowContext(ctx, "PRAGMA "+pragma).Scan(&got); err != nil {
					t.Fatal(err)
				}
				if got != v {
					t.Errorf("%s connection %d: PRAGMA %s = %s, want %s", name, i, pragma, got, v)
				}
			}
		}
	}
	check("write", s.w, 1, map[string]string{"query_only": "0", "cache_size": "-65536", "wal_autocheckpoint": "10000", "secure_delete": "1"})
	check("read", s.r, 4, map[string]string{"query_only": "1", "cache_size": "-2000", "wal_autocheckpoint": "1000"})

	// The read pool really is read-only.
	if _, err := s.r.ExecContext(ctx, `DELETE FROM api_keys`); err == nil {
		t.Error("a write through the read pool succeeded")
	}
}

func TestMigrationsIdempotent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "parley.db")
	c := &storage.Conversation{ID: "c1", TenantID: "t1", StartedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)}
	for i := range 3 {
		s, err := Open(t.Context(), path)
		if err != nil {
			t.Fatalf("Open #%d: %v", i+1, err)
		}
		if i == 0 {
			if err := s.CreateConversation(t.Context(), c); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.GetConversation(t.Context(), "t1", "c1"); err != nil {
			t.Errorf("Open #%d: data lost: %v", i+1, err)
		}
		assertMigrations(t, s.r)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func assertMigrations(t *testing.T, db *sql.DB) {
	t.Helper()
	ms, err := migrate.Load(migrationFS, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	rows, err := db.QueryContext(t.Context(), `SELECT version, name FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var v int
		var name string
		if err := rows.Scan(&v, &name); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprint(v, " ", name))
	}
	var want []string
	for _, m := range ms {
		want = append(want, fmt.Sprint(m.Version, " ", m.Name))
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("schema_migrations = %v, want %v", got, want)
	}
}

// TestConcurrentOpen opens one fresh file from several goroutines at once,
// as several processes starting together would: all succeed, migrations
// are applied once.
func TestConcurrentOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "parley.db")
	stores := make([]*Store, 4)
	errs := make([]error, len(stores))
	var wg sync.WaitGroup
	for i := range stores {
		wg.Go(func() { stores[i], errs[i] = Open(t.Context(), path) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Open #%d: %v", i, err)
			continue
		}
		defer stores[i].Close()
	}
	if t.Failed() {
		return
	}
	assertMigrations(t, stores[0].r)
}

// TestTwoStoresOneFile runs concurrent writers through two Stores on one
// file, as parleyd and `parley purge` would from two processes: SQLite's
// own lock (BEGIN IMMEDIATE + busy_timeout) must keep them from failing.
func TestTwoStoresOneFile(t *testing.T) {
	a, path := openTemp(t)
	b, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	ctx := t.Context()
	expires := time.Now().Add(time.Hour)
	var wg sync.WaitGroup
	errs := make(chan error, 16*20)
	for w := range 16 {
		s := []*Store{a, b}[w%2]
		wg.Go(func() {
			c := &storage.Conversation{ID: fmt.Sprint("c", w), TenantID: "t", StartedAt: time.Now(), ExpiresAt: expires}
			if err := s.CreateConversation(ctx, c); err != nil {
				errs <- err
				return
			}
			for i := range 20 {
				tr := &storage.Turn{ID: fmt.Sprint("i", i), ConversationID: c.ID, TenantID: "t", ExpiresAt: expires}
				if err := s.AppendTurn(ctx, tr); err != nil {
					errs <- err
				}
				if _, err := s.DeleteExpired(ctx, time.Now(), 10); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	var n int
	if err := a.r.QueryRowContext(ctx, `SELECT count(*) FROM turns`).Scan(&n); err != nil || n != 16*20 {
		t.Errorf("turns = %d, %v; want %d", n, err, 16*20)
	}
}

// TestTextNotStored looks at the raw row: a metadata-only turn leaves no
// text in the database file, whatever TextSealed held, and a stored turn
// leaves no plaintext column set.
func TestTextNotStored(t *testing.T) {
	s, _ := openTemp(t)
	ctx := t.Context()
	expires := time.Now().Add(time.Hour)
	c := &storage.Conversation{ID: "c1", TenantID: "t", StartedAt: time.Now(), ExpiresAt: expires}
	if err := s.CreateConversation(ctx, c); err != nil {
		t.Fatal(err)
	}
	tr := &storage.Turn{ID: "i1", ConversationID: "c1", TenantID: "t", TextSealed: []byte("secret"), TextStored: false, ExpiresAt: expires}
	if err := s.AppendTurn(ctx, tr); err != nil {
		t.Fatal(err)
	}
	stored := &storage.Turn{ID: "i2", ConversationID: "c1", TenantID: "t", TextSealed: []byte("sealed"), TextStored: true, ExpiresAt: expires}
	if err := s.AppendTurn(ctx, stored); err != nil {
		t.Fatal(err)
	}
	if err := s.TruncateTurnText(ctx, "t", "c1", "i1", []byte("secret too")); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]string{"i1": "", "i2": "sealed"} {
		var (
			text   sql.NullString
			sealed []byte
		)
		if err := s.r.QueryRowContext(ctx, `SELECT text, text_sealed FROM turns WHERE id = ?`, id).Scan(&text, &sealed); err != nil {
			t.Fatal(err)
		}
		if text.Valid {
			t.Errorf("%s: text column = %q, want NULL", id, text.String)
		}
		if string(sealed) != want || (want == "") != (sealed == nil) {
			t.Errorf("%s: text_sealed column = %q, want %q", id, sealed, want)
		}
	}
}

func BenchmarkAppendTurn(b *testing.B) {
	s, _ := openTemp(b)
	storagetest.BenchmarkAppendTurn(b, s)
}

func BenchmarkWriteBatch(b *testing.B) {
	s, _ := openTemp(b)
	storagetest.BenchmarkWriteBatch(b, s)
}
