package postgres

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"

	"parley/storage"
	"parley/storage/internal/migrate"
	"parley/storage/internal/pgtest"
	"parley/storage/storagetest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// open opens a Store on url and closes it when the test ends (before the
// schema is dropped: cleanups run last-registered first).
func open(t testing.TB, url string) *Store {
	t.Helper()
	s, err := Open(context.Background(), url)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	pgtest.BaseURL(t) // skip once, loudly, rather than in every subtest
	storagetest.Run(t, func(t *testing.T) storage.Store {
		return open(t, pgtest.FreshSchema(t))
	})
}

func TestAccounts(t *testing.T) {
	pgtest.BaseURL(t) // skip once, loudly, rather than in every subtest
	storagetest.RunAccounts(t, func(t *testing.T) storage.Backend {
		return open(t, pgtest.FreshSchema(t))
	})
}

// TestUpgradeFrom1 builds a schema the way version 1 left it (migration 1
// only, rows written with its SQL) and opens it with the current code.
func TestUpgradeFrom1(t *testing.T) {
	storagetest.RunUpgradeFrom1(t, legacyV1)
}

// TestUpgradeToAccounts upgrades a version 1 schema with an API key to
// the accounts schema.
func TestUpgradeToAccounts(t *testing.T) {
	storagetest.RunUpgradeToAccounts(t, legacyV1)
}

// legacyV1 returns a fresh schema at version 1.
func legacyV1(t *testing.T) storagetest.Legacy {
	u := pgtest.FreshSchema(t)
	ms, err := migrate.Load(migrationFS, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := pgx.ParseConfig(u)
	if err != nil {
		t.Fatal(err)
	}
	if err := applyMigrations(t.Context(), cfg, ms[:1]); err != nil {
		t.Fatalf("apply migration 1: %v", err)
	}
	return storagetest.Legacy{
		Write: func(t *testing.T, c *storage.Conversation, turns []*storage.Turn) {
			t.Helper()
			writeV1(t, u, c, turns)
		},
		WriteAPIKey: func(t *testing.T, k *storage.APIKey) {
			t.Helper()
			conn, err := pgx.Connect(t.Context(), u)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(context.Background())
			_, err = conn.Exec(t.Context(), `INSERT INTO api_keys
				(id, tenant_id, prefix, hash, created_at, last_used_at) VALUES ($1, $2, $3, $4, $5, $6)`,
				k.ID, k.TenantID, k.Prefix, k.Hash, ts(k.CreatedAt), nullTS(k.LastUsedAt))
			if err != nil {
				t.Fatalf("v1 insert API key %s: %v", k.ID, err)
			}
		},
		Open: func(t *testing.T) storage.Backend {
			s := open(t, u)
			assertMigrations(t, s)
			return s
		},
	}
}

// writeV1 inserts c and turns with the statements of version 1, which
// know nothing of the voice latency columns.
func writeV1(t *testing.T, url string, c *storage.Conversation, turns []*storage.Turn) {
	t.Helper()
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, `INSERT INTO conversations
		(id, tenant_id, agent_id, channel, language, started_at, ended_at, duration_ms, turn_count, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		c.ID, c.TenantID, c.AgentID, c.Channel, c.Language, ts(c.StartedAt), nullTS(c.EndedAt),
		c.DurationMS, c.TurnCount, ts(c.ExpiresAt))
	if err != nil {
		t.Fatalf("v1 insert conversation %s: %v", c.ID, err)
	}
	for _, tr := range turns {
		var text *string
		if tr.TextStored {
			text = &tr.Text
		}
		_, err := conn.Exec(ctx, `INSERT INTO turns
			(conversation_id, id, tenant_id, seq, role, text, text_stored, status,
			 started_at, ended_at, first_token_ms, total_ms, engine_ms, expires_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
			tr.ConversationID, tr.ID, tr.TenantID, tr.Seq, tr.Role, text, tr.TextStored, tr.Status,
			ts(tr.StartedAt), ts(tr.EndedAt), tr.Latency.FirstTokenMS, tr.Latency.TotalMS,
			tr.Latency.EngineMS, ts(tr.ExpiresAt))
		if err != nil {
			t.Fatalf("v1 insert turn %s: %v", tr.ID, err)
		}
	}
}

func assertMigrations(t *testing.T, s *Store) {
	t.Helper()
	ms, err := migrate.Load(migrationFS, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	rows, err := s.pool.Query(t.Context(), `SELECT version, name FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var v int
		var name string
		if err := rows.Scan(&v, &name); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprint(v, " ", name))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, m := range ms {
		want = append(want, fmt.Sprint(m.Version, " ", m.Name))
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("schema_migrations = %v, want %v", got, want)
	}
}

func TestMigrationsIdempotent(t *testing.T) {
	u := pgtest.FreshSchema(t)
	c := &storage.Conversation{ID: "c1", TenantID: "t1", StartedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)}
	for i := range 3 {
		s, err := Open(t.Context(), u)
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
		assertMigrations(t, s)
		s.Close()
	}
}

// TestConcurrentOpen starts four "nodes" on one fresh schema at once: the
// advisory lock lets one migrate while the others wait, and all succeed.
func TestConcurrentOpen(t *testing.T) {
	u := pgtest.FreshSchema(t)
	stores := make([]*Store, 4)
	errs := make([]error, len(stores))
	var wg sync.WaitGroup
	for i := range stores {
		wg.Go(func() { stores[i], errs[i] = Open(t.Context(), u) })
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
	assertMigrations(t, stores[0])
}

func TestSearchPathIsolation(t *testing.T) {
	a, b := open(t, pgtest.FreshSchema(t)), open(t, pgtest.FreshSchema(t))
	c := &storage.Conversation{ID: "c1", TenantID: "t1", StartedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)}
	if err := a.CreateConversation(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	if _, err := b.GetConversation(t.Context(), "t1", "c1"); err != storage.ErrNotFound {
		t.Errorf("other schema sees the conversation: err = %v", err)
	}
	if err := b.CreateConversation(t.Context(), c); err != nil {
		t.Errorf("same id in another schema: %v", err)
	}
}

func TestOpenMissingSchema(t *testing.T) {
	u := pgtest.WithSearchPath(t, pgtest.BaseURL(t), "parley_no_such_schema")
	s, err := Open(t.Context(), u)
	if err == nil {
		s.Close()
		t.Fatal("Open with a missing search_path schema succeeded")
	}
	if !strings.Contains(err.Error(), "no schema") {
		t.Errorf("error = %v, want it to say the schema is missing", err)
	}
}

// TestDeleteExpiredManyNodes sweeps one database from four Stores at once,
// as four gateway nodes would: every expired row is deleted exactly once
// (the counts add up) and nobody fails.
func TestDeleteExpiredManyNodes(t *testing.T) {
	u := pgtest.FreshSchema(t)
	nodes := []*Store{open(t, u), open(t, u), open(t, u), open(t, u)}
	ctx := t.Context()
	now := time.Now()
	const convs = 150
	for i := range convs {
		c := &storage.Conversation{ID: fmt.Sprint("c", i), TenantID: "t", StartedAt: now, ExpiresAt: now.Add(-time.Minute)}
		if err := nodes[0].CreateConversation(ctx, c); err != nil {
			t.Fatal(err)
		}
		for j := range 2 {
			tr := &storage.Turn{ID: fmt.Sprint("i", j), ConversationID: c.ID, TenantID: "t", ExpiresAt: now.Add(-time.Duration(i+j) * time.Second)}
			if err := nodes[0].AppendTurn(ctx, tr); err != nil {
				t.Fatal(err)
			}
		}
	}

	counts := make([]int, len(nodes))
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, s := range nodes {
		wg.Go(func() {
			for {
				n, err := s.DeleteExpired(ctx, now, 20)
				counts[i] += n
				if err != nil || n == 0 {
					errs[i] = err
					return
				}
			}
		})
	}
	wg.Wait()
	total := 0
	for i := range nodes {
		if errs[i] != nil {
			t.Errorf("node %d: %v", i, errs[i])
		}
		total += counts[i]
	}
	// Cascaded turns are not counted, so the total is between the number
	// of conversations (all turns cascaded) and the number of rows.
	var left int
	if err := nodes[0].pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM turns) + (SELECT count(*) FROM conversations)`).Scan(&left); err != nil {
		t.Fatal(err)
	}
	if left != 0 || total < convs || total > 3*convs {
		t.Errorf("deleted %d (per node %v), %d rows left; want all %d conversations gone", total, counts, left, convs)
	}
	t.Logf("per-node deletions: %v", counts)
}

// TestDeleteExpiredSkipsLockedRows holds a lock on one expired row, as
// another node's sweep would: DeleteExpired takes the other rows at once
// instead of waiting, and the locked row goes in a later sweep.
func TestDeleteExpiredSkipsLockedRows(t *testing.T) {
	s := open(t, pgtest.FreshSchema(t))
	ctx := t.Context()
	now := time.Now()
	for i := range 3 {
		c := &storage.Conversation{ID: fmt.Sprint("c", i), TenantID: "t", StartedAt: now, ExpiresAt: now.Add(-time.Minute)}
		if err := s.CreateConversation(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	other, err := s.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Rollback(context.Background())
	if _, err := other.Exec(ctx, `SELECT 1 FROM conversations WHERE id = 'c1' FOR UPDATE`); err != nil {
		t.Fatal(err)
	}

	quick, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if n, err := s.DeleteExpired(quick, now, 10); err != nil || n != 2 {
		t.Fatalf("DeleteExpired with c1 locked = %d, %v; want 2, nil without waiting", n, err)
	}
	if err := other.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if n, err := s.DeleteExpired(ctx, now, 10); err != nil || n != 1 {
		t.Fatalf("DeleteExpired after unlock = %d, %v; want 1", n, err)
	}
}

// TestTextNotStored looks at the raw row: a metadata-only turn leaves no
// text in the database, whatever Text held.
func TestTextNotStored(t *testing.T) {
	s := open(t, pgtest.FreshSchema(t))
	ctx := t.Context()
	expires := time.Now().Add(time.Hour)
	c := &storage.Conversation{ID: "c1", TenantID: "t", StartedAt: time.Now(), ExpiresAt: expires}
	if err := s.CreateConversation(ctx, c); err != nil {
		t.Fatal(err)
	}
	tr := &storage.Turn{ID: "i1", ConversationID: "c1", TenantID: "t", Text: "secret", TextStored: false, ExpiresAt: expires}
	if err := s.AppendTurn(ctx, tr); err != nil {
		t.Fatal(err)
	}
	var text *string
	if err := s.pool.QueryRow(ctx, `SELECT text FROM turns WHERE id = 'i1'`).Scan(&text); err != nil {
		t.Fatal(err)
	}
	if text != nil {
		t.Errorf("text column = %q, want NULL", *text)
	}
}

func BenchmarkAppendTurn(b *testing.B) {
	storagetest.BenchmarkAppendTurn(b, open(b, pgtest.FreshSchema(b)))
}

func BenchmarkWriteBatch(b *testing.B) {
	storagetest.BenchmarkWriteBatch(b, open(b, pgtest.FreshSchema(b)))
}
