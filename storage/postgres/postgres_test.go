package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
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

func TestPrivacy(t *testing.T) {
	pgtest.BaseURL(t) // skip once, loudly, rather than in every subtest
	storagetest.RunPrivacy(t, func(t *testing.T) storage.Backend {
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
		var text *string // version 1 kept the transcript in clear
		if tr.TextStored {
			s := string(tr.TextSealed)
			text = &s
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

// TestDeleteExpiredFloor checks the sweep's floor (see sweepFloors): a
// batch starts after the previous one, and rows below it, a row another
// node held locked meanwhile or one whose expiry was lowered meanwhile,
// are still deleted before DeleteExpired comes back short.
func TestDeleteExpiredFloor(t *testing.T) {
	s := open(t, pgtest.FreshSchema(t))
	ctx := t.Context()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	c := &storage.Conversation{ID: "c1", TenantID: "t", StartedAt: now, ExpiresAt: now.Add(time.Hour)}
	if err := s.CreateConversation(ctx, c); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 6; i++ {
		tr := &storage.Turn{ID: fmt.Sprint("item-", i), ConversationID: "c1", TenantID: "t",
			ExpiresAt: now.Add(time.Duration(i-7) * time.Second)}
		if err := s.AppendTurn(ctx, tr); err != nil {
			t.Fatal(err)
		}
	}
	// Another node's sweep holds item-2.
	other, err := s.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Rollback(context.Background())
	if _, err := other.Exec(ctx, `SELECT 1 FROM turns WHERE id = 'item-2' FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	var got []int
	sweep := func() {
		t.Helper()
		n, err := s.DeleteExpired(ctx, now, 3)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, n)
	}
	sweep() // item-1, item-3, item-4: the floor is item-4's expiry
	// A turn that expired long before the floor, and item-2 released.
	old := &storage.Turn{ID: "item-7", ConversationID: "c1", TenantID: "t", ExpiresAt: now.Add(-time.Hour)}
	if err := s.AppendTurn(ctx, old); err != nil {
		t.Fatal(err)
	}
	if err := other.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	sweep() // item-5, item-6 from the floor, then item-7 from the start
	sweep() // item-2, from the start
	sweep()
	if fmt.Sprint(got) != "[3 3 1 0]" {
		t.Errorf("DeleteExpired batches = %v, want [3 3 1 0]", got)
	}
	if turns, err := s.ListTurns(ctx, "t", "c1"); err != nil || len(turns) != 0 {
		t.Errorf("turns left = %v, %v; want none", turns, err)
	}
}

// TestSweepPlans checks what the conformance suite cannot see: the
// sweeper's statements claim rows through the expires_at index and delete
// them by ctid, and the statements that touch a whole tenant use an index.
func TestSweepPlans(t *testing.T) {
	s := open(t, pgtest.FreshSchema(t))
	ctx := t.Context()
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background())
	// On empty tables any plan is cheap: make a sequential scan the last
	// resort, so the plan shows whether an index can serve.
	if _, err := tx.Exec(ctx, `SET LOCAL enable_seqscan = off`); err != nil {
		t.Fatal(err)
	}
	plan := func(query string, args ...any) string {
		t.Helper()
		rows, err := tx.Query(ctx, "EXPLAIN "+query, args...)
		if err != nil {
			t.Fatalf("EXPLAIN %s: %v", query, err)
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		return strings.Join(lines, "\n")
	}
	now := ts(time.Now())
	for i, q := range expiring {
		p := plan(q, now, 10, startCursor)
		if !strings.Contains(p, expiringTables[i]+"_expires_at_idx") || !strings.Contains(p, "Tid Scan") {
			t.Errorf("%s\nplan:\n%s\nwant the expires_at index and a TID scan", q, p)
		}
	}
	for _, q := range purgeExpiries {
		if p := plan(q, "t", now); strings.Contains(p, "Seq Scan") {
			t.Errorf("%s\nplan:\n%s\nwant no sequential scan", q, p)
		}
	}
	for _, f := range []storage.ConversationFilter{{}, {EndUser: "eu"}} {
		where, args := conversationFilter("t", f)
		p := plan(`SELECT id FROM conversations WHERE `+where+fmt.Sprintf(` AND id COLLATE "C" > $%d
			ORDER BY id COLLATE "C" LIMIT 10`, len(args)+1), append(args, "")...)
		if strings.Contains(p, "Seq Scan") || strings.Contains(p, "Sort") {
			t.Errorf("ListConversations(%+v) plan:\n%s\nwant an index in id order", f, p)
		}
	}
	if p := plan(`SELECT id FROM turns WHERE text IS NOT NULL ORDER BY conversation_id, id LIMIT 10`); !strings.Contains(p, "turns_legacy_idx") {
		t.Errorf("LegacyPlaintext plan:\n%s\nwant turns_legacy_idx", p)
	}
}

// TestTextNotStored looks at the raw rows: a metadata-only turn leaves no
// text in the database, whatever TextSealed held (truncating it neither),
// a stored turn leaves no plaintext column set, and the schema refuses
// sealed text on a metadata-only turn.
func TestTextNotStored(t *testing.T) {
	s := open(t, pgtest.FreshSchema(t))
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
			text   *string
			sealed []byte
		)
		if err := s.pool.QueryRow(ctx, `SELECT text, text_sealed FROM turns WHERE id = $1`, id).Scan(&text, &sealed); err != nil {
			t.Fatal(err)
		}
		if text != nil {
			t.Errorf("%s: text column = %q, want NULL", id, *text)
		}
		if string(sealed) != want || (want == "") != (sealed == nil) {
			t.Errorf("%s: text_sealed column = %q, want %q", id, sealed, want)
		}
	}
	_, err := s.pool.Exec(ctx, `UPDATE turns SET text_sealed = 'x' WHERE id = 'i1'`)
	if !errors.Is(mapErr(err), storage.ErrInvalid) {
		t.Errorf("sealed text on a metadata-only turn: error = %v, want a CHECK violation", err)
	}
}

func BenchmarkAppendTurn(b *testing.B) {
	storagetest.BenchmarkAppendTurn(b, open(b, pgtest.FreshSchema(b)))
}

func BenchmarkWriteBatch(b *testing.B) {
	storagetest.BenchmarkWriteBatch(b, open(b, pgtest.FreshSchema(b)))
}

// v4 writes rows the way schema version 4 (accounts, before sealing) did,
// as a node still running that version would: plaintext transcripts and
// agent settings, naming only the columns it knew.
type v4 struct{ url string }

func (v v4) exec(t *testing.T, sql string, args ...any) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), v.url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(t.Context(), sql, args...); err != nil {
		t.Fatalf("v4: %v", err)
	}
}

func (v v4) turn(t *testing.T, tr *storage.Turn, text *string) {
	t.Helper()
	l := &tr.Latency
	v.exec(t, `INSERT INTO turns
		(conversation_id, id, tenant_id, seq, role, text, text_stored, status,
		 started_at, ended_at, first_token_ms, total_ms, engine_ms,
		 end_of_turn_ms, first_partial_ms, final_transcript_ms, first_audio_ms,
		 first_audio_sent_ms, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)`,
		tr.ConversationID, tr.ID, tr.TenantID, tr.Seq, tr.Role, text, tr.TextStored, tr.Status,
		ts(tr.StartedAt), ts(tr.EndedAt), l.FirstTokenMS, l.TotalMS, l.EngineMS,
		l.EndOfTurnMS, l.FirstPartialMS, l.FinalTranscriptMS, l.FirstAudioMS, l.FirstAudioSentMS,
		ts(tr.ExpiresAt))
}

func (v v4) agent(t *testing.T, a *storage.Agent) {
	t.Helper()
	v.exec(t, `INSERT INTO agents
		(tenant_id, id, name, instructions, greeting, engine, voice, language, settings, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
		a.TenantID, a.ID, a.Name, a.Instructions, a.Greeting, a.Engine, a.Voice, a.Language, blob(a.Settings),
		ts(a.CreatedAt), ts(a.UpdatedAt))
}

// TestUpgradeFrom4 upgrades a schema at version 4 holding plaintext
// transcripts and plaintext agent settings to version 5: nothing is lost,
// the plaintext is not handed out as sealed, LegacyPlaintext finds it (and
// what a version 4 node writes during a rolling upgrade), ReplaceLegacy
// seals it and clears the plaintext columns, and no plaintext is left.
func TestUpgradeFrom4(t *testing.T) {
	ctx := t.Context()
	u := pgtest.FreshSchema(t)
	ms, err := migrate.Load(migrationFS, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := pgx.ParseConfig(u)
	if err != nil {
		t.Fatal(err)
	}
	if err := applyMigrations(ctx, cfg, ms[:4]); err != nil {
		t.Fatalf("apply migrations 1-4: %v", err)
	}
	old := v4{u}
	t0 := time.Date(2026, 3, 14, 15, 9, 26, 535_000_000, time.UTC)
	exp := t0.Add(24 * time.Hour)
	old.exec(t, `INSERT INTO conversations
		(id, tenant_id, agent_id, channel, language, started_at, ended_at, duration_ms, turn_count, expires_at)
		VALUES ('c1', 'default', 'a1', 'webrtc', 'fr-FR', $1, $2, 30000, 3, $3)`,
		ts(t0), ts(t0.Add(30*time.Second)), ts(exp))
	said := &storage.Turn{ID: "i1", ConversationID: "c1", TenantID: storage.DefaultTenant, Seq: 1, Role: storage.RoleUser,
		TextStored: true, Status: storage.TurnCompleted, StartedAt: t0, EndedAt: t0.Add(time.Second),
		Latency: storage.Latency{FirstTokenMS: 1, TotalMS: 2, EngineMS: 3, EndOfTurnMS: 4, FirstPartialMS: 5,
			FinalTranscriptMS: 6, FirstAudioMS: 7, FirstAudioSentMS: 8}, ExpiresAt: exp}
	// Characters a text-to-bytea cast or a bad escape would mangle.
	saidText := `Bonjour, ça va ? ✓ C:\temp\x00 'quoted' "double"`
	old.turn(t, said, &saidText)
	metaOnly := &storage.Turn{ID: "i2", ConversationID: "c1", TenantID: storage.DefaultTenant, Seq: 2,
		Role: storage.RoleAssistant, Status: storage.TurnCancelled, StartedAt: t0.Add(2 * time.Second),
		EndedAt: t0.Add(3 * time.Second), ExpiresAt: exp}
	old.turn(t, metaOnly, nil)
	settings := []byte(`{"documents":[{"title":"Tarifs","body":"secret \\ \u00e9"}]}`)
	withSettings := &storage.Agent{ID: "a1", TenantID: storage.DefaultTenant, Name: "Support", Instructions: "Be nice",
		Engine: storage.EngineKB, Voice: "alloy", Language: "fr", Settings: settings, CreatedAt: t0, UpdatedAt: t0}
	old.agent(t, withSettings)
	bare := &storage.Agent{ID: "a2", TenantID: storage.DefaultTenant, Name: "Bare", Engine: storage.EngineOpenAI,
		CreatedAt: t0.Add(time.Second), UpdatedAt: t0.Add(time.Second)}
	old.agent(t, bare)

	s := open(t, u)
	assertMigrations(t, s)

	// A version 4 node still running writes a plaintext turn.
	late := &storage.Turn{ID: "i3", ConversationID: "c1", TenantID: storage.DefaultTenant, Seq: 3,
		Role: storage.RoleAssistant, TextStored: true, Status: storage.TurnCompleted, StartedAt: t0.Add(4 * time.Second),
		EndedAt: t0.Add(5 * time.Second), ExpiresAt: exp}
	lateText := "Très bien."
	old.turn(t, late, &lateText)

	// Nothing lost; the plaintext is not read back as sealed text.
	c, err := s.GetConversation(ctx, storage.DefaultTenant, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if c.Channel != "webrtc" || c.Language != "fr-FR" || c.DurationMS != 30000 || c.TurnCount != 3 ||
		c.EndUser != "" || c.Sentiment != 0 || !c.ExpiresAt.Equal(exp) {
		t.Errorf("upgraded conversation = %+v", c)
	}
	turns, err := s.ListTurns(ctx, storage.DefaultTenant, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if len(turns) != 3 {
		t.Fatalf("ListTurns = %d turns, want 3", len(turns))
	}
	for i, want := range []*storage.Turn{said, metaOnly, late} {
		got := turns[i]
		if got.ID != want.ID || got.Seq != want.Seq || got.Role != want.Role || got.TextStored != want.TextStored ||
			got.TextSealed != nil || got.Sentiment != 0 || got.Status != want.Status || got.Latency != want.Latency ||
			!got.StartedAt.Equal(want.StartedAt) || !got.EndedAt.Equal(want.EndedAt) || !got.ExpiresAt.Equal(want.ExpiresAt) {
			t.Errorf("upgraded turn %d = %+v\nwant %+v (no sealed text)", i, got, want)
		}
	}
	a, err := s.GetAgent(ctx, storage.DefaultTenant, "a1")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Settings, settings) || a.SettingsSealed != nil || a.Name != "Support" || a.Instructions != "Be nice" {
		t.Errorf("upgraded agent = %+v", a)
	}
	if has, err := s.HasData(ctx); err != nil || !has {
		t.Errorf("HasData = %v, %v; want true", has, err)
	}

	// LegacyPlaintext finds the two plaintext turns and the settings, not
	// the metadata-only turn nor the agent without settings.
	rows, err := s.LegacyPlaintext(ctx, 100)
	if err != nil {
		t.Fatal(err)
	}
	want := []storage.LegacyRow{
		{Kind: storage.LegacyTurn, TenantID: storage.DefaultTenant, ConversationID: "c1", ID: "i1", Plaintext: []byte(saidText)},
		{Kind: storage.LegacyTurn, TenantID: storage.DefaultTenant, ConversationID: "c1", ID: "i3", Plaintext: []byte(lateText)},
		{Kind: storage.LegacyAgent, TenantID: storage.DefaultTenant, ID: "a1", Plaintext: settings},
	}
	if !slices.EqualFunc(rows, want, legacyEqual) {
		t.Fatalf("LegacyPlaintext = %+q\nwant %+q", rows, want)
	}
	if rows, err := s.LegacyPlaintext(ctx, 1); err != nil || len(rows) != 1 || !legacyEqual(rows[0], want[0]) {
		t.Errorf("LegacyPlaintext(1) = %+q, %v; want the first row", rows, err)
	}
	// The next call starts after the row the last one returned, and looks
	// below it when it finds too few after it: i3, then i1 again (it was
	// not replaced).
	if rows, err := s.LegacyPlaintext(ctx, 2); err != nil || !slices.EqualFunc(rows, []storage.LegacyRow{want[1], want[0]}, legacyEqual) {
		t.Errorf("LegacyPlaintext(2) = %+q, %v; want i3 and i1", rows, err)
	}
	if _, err := s.LegacyPlaintext(ctx, 0); !errors.Is(err, storage.ErrInvalid) {
		t.Errorf("LegacyPlaintext(0) error = %v, want ErrInvalid", err)
	}

	// A stale read does not overwrite newer plaintext.
	for _, r := range rows {
		stale := r
		stale.Plaintext = []byte("Bonjour")
		if err := s.ReplaceLegacy(ctx, stale, []byte("sealed stale")); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("ReplaceLegacy(stale %s) error = %v, want ErrNotFound", r.Kind, err)
		}
	}
	if err := s.ReplaceLegacy(ctx, storage.LegacyRow{Kind: "doc", TenantID: "x", ID: "y"}, []byte("z")); !errors.Is(err, storage.ErrInvalid) {
		t.Errorf("ReplaceLegacy(unknown kind) error = %v, want ErrInvalid", err)
	}
	if err := s.ReplaceLegacy(ctx, rows[0], nil); !errors.Is(err, storage.ErrInvalid) {
		t.Errorf("ReplaceLegacy(nothing sealed) error = %v, want ErrInvalid", err)
	}
	other := rows[0]
	other.TenantID = "another"
	if err := s.ReplaceLegacy(ctx, other, sealedOf(other)); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("ReplaceLegacy(another tenant) error = %v, want ErrNotFound", err)
	}

	for _, r := range rows {
		if err := s.ReplaceLegacy(ctx, r, sealedOf(r)); err != nil {
			t.Errorf("ReplaceLegacy(%s %s): %v", r.Kind, r.ID, err)
		}
		if err := s.ReplaceLegacy(ctx, r, sealedOf(r)); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("ReplaceLegacy(%s %s) again: error = %v, want ErrNotFound", r.Kind, r.ID, err)
		}
	}
	if rows, err := s.LegacyPlaintext(ctx, 100); err != nil || len(rows) != 0 {
		t.Errorf("LegacyPlaintext after ReplaceLegacy = %+v, %v; want none", rows, err)
	}
	turns, err = s.ListTurns(ctx, storage.DefaultTenant, "c1")
	if err != nil {
		t.Fatal(err)
	}
	for i, w := range [][]byte{sealedOf(want[0]), nil, sealedOf(want[1])} {
		if !bytes.Equal(turns[i].TextSealed, w) || turns[i].Latency != []*storage.Turn{said, metaOnly, late}[i].Latency {
			t.Errorf("turn %s after ReplaceLegacy = %+v, want sealed text %q", turns[i].ID, turns[i], w)
		}
	}
	a, err = s.GetAgent(ctx, storage.DefaultTenant, "a1")
	if err != nil {
		t.Fatal(err)
	}
	if a.Settings != nil || !bytes.Equal(a.SettingsSealed, sealedOf(want[2])) {
		t.Errorf("agent after ReplaceLegacy: Settings %q, SettingsSealed %q", a.Settings, a.SettingsSealed)
	}
	// No plaintext is left in the tables.
	var n int
	err = s.pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM turns WHERE text IS NOT NULL)
		+ (SELECT count(*) FROM agents WHERE octet_length(settings) > 0)`).Scan(&n)
	if err != nil || n != 0 {
		t.Errorf("plaintext rows left = %d, %v; want 0", n, err)
	}

	// The upgraded schema works: a sealed turn after the old ones.
	next := &storage.Turn{ID: "i4", ConversationID: "c1", TenantID: storage.DefaultTenant, Role: storage.RoleUser,
		TextSealed: []byte("sealed:4"), TextStored: true, Sentiment: -0.5, StartedAt: t0, EndedAt: t0, ExpiresAt: exp}
	if err := s.AppendTurn(ctx, next); err != nil || next.Seq != 4 {
		t.Errorf("AppendTurn after the upgrade: seq %d, %v; want 4", next.Seq, err)
	}
}

func legacyEqual(a, b storage.LegacyRow) bool {
	return a.Kind == b.Kind && a.TenantID == b.TenantID && a.ConversationID == b.ConversationID && a.ID == b.ID &&
		bytes.Equal(a.Plaintext, b.Plaintext)
}

func sealedOf(r storage.LegacyRow) []byte { return append([]byte("sealed\x00"), r.Plaintext...) }

// TestLegacyPlaintextLoop seals a version 4 schema's plaintext the way
// parleyd does, in small batches until LegacyPlaintext finds nothing, while
// a version 4 node writes a plaintext turn that sorts before the rows
// already walked: it is sealed all the same (the batch after the last
// full one finds nothing after its cursor, and looks below it).
func TestLegacyPlaintextLoop(t *testing.T) {
	ctx := t.Context()
	u := pgtest.FreshSchema(t)
	ms, err := migrate.Load(migrationFS, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := pgx.ParseConfig(u)
	if err != nil {
		t.Fatal(err)
	}
	if err := applyMigrations(ctx, cfg, ms[:4]); err != nil {
		t.Fatalf("apply migrations 1-4: %v", err)
	}
	old := v4{u}
	now := time.Now()
	for _, c := range []string{"c1", "c5"} {
		old.exec(t, `INSERT INTO conversations
			(id, tenant_id, agent_id, channel, language, started_at, duration_ms, turn_count, expires_at)
			VALUES ($1, 'default', 'a1', 'webrtc', 'fr-FR', $2, 0, 0, $3)`, c, ts(now), ts(now.Add(time.Hour)))
	}
	v4Turn := func(conv string, seq int) {
		text := fmt.Sprintf("plaintext %s/%d", conv, seq)
		old.turn(t, &storage.Turn{ID: fmt.Sprintf("item-%02d", seq), ConversationID: conv, TenantID: storage.DefaultTenant,
			Seq: seq, TextStored: true, StartedAt: now, EndedAt: now, ExpiresAt: now.Add(time.Hour)}, &text)
	}
	for seq := 1; seq <= 9; seq++ {
		v4Turn("c5", seq)
	}
	s := open(t, u)
	sealed, calls := 0, 0
	for ; calls < 100; calls++ {
		rows, err := s.LegacyPlaintext(ctx, 3)
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) == 0 {
			break
		}
		if calls == 1 {
			v4Turn("c1", 1) // before every row walked so far
		}
		for _, r := range rows {
			if err := s.ReplaceLegacy(ctx, r, sealedOf(r)); err != nil {
				t.Errorf("ReplaceLegacy(%s/%s): %v", r.ConversationID, r.ID, err)
			}
			sealed++
		}
	}
	var left int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM turns WHERE text IS NOT NULL`).Scan(&left); err != nil {
		t.Fatal(err)
	}
	if left != 0 || sealed != 10 {
		t.Errorf("after %d calls: %d turns sealed, %d plaintext left; want 10 and 0", calls, sealed, left)
	}
}

// TestPrivacyRaces runs the privacy writes that several nodes may make at
// once from four Stores on one database: one data key is created, one
// rewrap from a master key wins and the others see ErrConflict, and usage
// events written concurrently are all counted in their daily rollup.
func TestPrivacyRaces(t *testing.T) {
	u := pgtest.FreshSchema(t)
	nodes := []*Store{open(t, u), open(t, u), open(t, u), open(t, u)}
	ctx := t.Context()
	now := time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC)
	if err := nodes[0].CreateTenant(ctx, &storage.Tenant{ID: "t1", Name: "T1", Plan: storage.PlanFree, CreatedAt: now}, ""); err != nil {
		t.Fatal(err)
	}
	race := func(f func(node int, s *Store) error) []error {
		t.Helper()
		errs := make([]error, 4*len(nodes))
		var wg sync.WaitGroup
		for i := range errs {
			wg.Go(func() { errs[i] = f(i, nodes[i%len(nodes)]) })
		}
		wg.Wait()
		return errs
	}
	count := func(what string, errs []error, want error) int {
		t.Helper()
		won := 0
		for _, err := range errs {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, want):
				t.Errorf("%s: %v, want nil or %v", what, err, want)
			}
		}
		return won
	}

	errs := race(func(i int, s *Store) error {
		return s.CreateDataKey(ctx, &storage.DataKey{TenantID: "t1", MasterKeyID: "m1", Wrapped: []byte{byte(i)}, CreatedAt: now})
	})
	if won := count("CreateDataKey", errs, storage.ErrConflict); won != 1 {
		t.Errorf("CreateDataKey: %d nodes won, want 1", won)
	}
	errs = race(func(i int, s *Store) error {
		return s.RewrapDataKey(ctx, &storage.DataKey{TenantID: "t1", MasterKeyID: "m2", Wrapped: []byte{0xA0, byte(i)}, CreatedAt: now}, "m1")
	})
	if won := count("RewrapDataKey", errs, storage.ErrConflict); won != 1 {
		t.Errorf("RewrapDataKey: %d nodes won, want 1", won)
	}
	k, err := nodes[0].GetDataKey(ctx, "t1")
	if err != nil || k.MasterKeyID != "m2" || len(k.Wrapped) != 2 || k.Wrapped[0] != 0xA0 {
		t.Errorf("data key after the rewrap race = %+v, %v", k, err)
	}

	c := &storage.Conversation{ID: "c1", TenantID: "t1", Channel: "webrtc", Language: "fr", StartedAt: now, ExpiresAt: now.Add(time.Hour)}
	if err := nodes[0].CreateConversation(ctx, c); err != nil {
		t.Fatal(err)
	}
	errs = race(func(i int, s *Store) error {
		var ws []storage.Write
		for j := range 5 {
			ws = append(ws, storage.Write{Usage: &storage.UsageEvent{ID: fmt.Sprintf("u-%d-%d", i, j), TenantID: "t1",
				ConversationID: "c1", Channel: "webrtc", Language: "fr", At: now, DurationMS: 10, ExpiresAt: now.Add(time.Hour)}})
		}
		// And one event every node writes: counted once.
		ws = append(ws, storage.Write{Usage: &storage.UsageEvent{ID: "u-shared", TenantID: "t1",
			ConversationID: "c1", Channel: "webrtc", Language: "fr", At: now, DurationMS: 1000, ExpiresAt: now.Add(time.Hour)}})
		errs, err := s.WriteBatch(ctx, ws)
		if err != nil {
			return err
		}
		for _, e := range errs[:5] {
			if e != nil {
				return e
			}
		}
		return errs[5]
	})
	if won := count("usage", errs, storage.ErrConflict); won != 1 {
		t.Errorf("the shared usage event was stored by %d nodes, want 1", won)
	}
	days, err := nodes[0].ListUsageDays(ctx, "t1", now.Add(-24*time.Hour), now.Add(24*time.Hour))
	if err != nil || len(days) != 1 || days[0].Conversations != len(errs)*5+1 || days[0].DurationMS != int64(len(errs)*50+1000) {
		t.Errorf("rollups = %+v, %v; want one day of %d conversations, %d ms", days, err, len(errs)*5+1, len(errs)*50+1000)
	}
}
