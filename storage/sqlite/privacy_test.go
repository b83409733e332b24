package sqlite

import (
	"bytes"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"parley/storage"
)

// v4 writes rows the way version 0004 of the schema (accounts, before
// sealing) did: plaintext transcripts and agent settings.
type v4 struct{ db *sql.DB }

func (v v4) turn(t *testing.T, tr *storage.Turn, text any) {
	t.Helper()
	l := &tr.Latency
	_, err := v.db.ExecContext(t.Context(), `INSERT INTO turns
		(conversation_id, id, tenant_id, seq, role, text, text_stored, status,
		 started_at, ended_at, first_token_ms, total_ms, engine_ms,
		 end_of_turn_ms, first_partial_ms, final_transcript_ms, first_audio_ms,
		 first_audio_sent_ms, expires_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		tr.ConversationID, tr.ID, tr.TenantID, tr.Seq, tr.Role, text, tr.TextStored, tr.Status,
		unixMS(tr.StartedAt), unixMS(tr.EndedAt), l.FirstTokenMS, l.TotalMS, l.EngineMS,
		l.EndOfTurnMS, l.FirstPartialMS, l.FinalTranscriptMS, l.FirstAudioMS, l.FirstAudioSentMS,
		unixMS(tr.ExpiresAt))
	if err != nil {
		t.Fatalf("v4 insert turn %s: %v", tr.ID, err)
	}
}

func (v v4) agent(t *testing.T, a *storage.Agent) {
	t.Helper()
	_, err := v.db.ExecContext(t.Context(), `INSERT INTO agents
		(tenant_id, id, name, instructions, greeting, engine, voice, language, settings, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		a.TenantID, a.ID, a.Name, a.Instructions, a.Greeting, a.Engine, a.Voice, a.Language, blob(a.Settings),
		unixMS(a.CreatedAt), unixMS(a.UpdatedAt))
	if err != nil {
		t.Fatalf("v4 insert agent %s: %v", a.ID, err)
	}
}

// TestUpgradeFrom4 upgrades a database at schema version 4 holding a
// plaintext transcript and plaintext agent settings: nothing is lost, the
// plaintext is not handed out as sealed, LegacyPlaintext finds it (and
// what a version 4 node writes during a rolling upgrade), ReplaceLegacy
// seals it and clears the plaintext columns.
func TestUpgradeFrom4(t *testing.T) {
	ctx := t.Context()
	db, path := legacyDB(t, 4)
	old := v4{db}
	t0 := time.Date(2026, 3, 14, 15, 9, 26, 535_000_000, time.UTC)
	exp := t0.Add(24 * time.Hour)

	_, err := db.ExecContext(ctx, `INSERT INTO conversations
		(id, tenant_id, agent_id, channel, language, started_at, ended_at, duration_ms, turn_count, expires_at)
		VALUES ('c1', 'default', 'a1', 'webrtc', 'fr-FR', ?, ?, 30000, 3, ?)`,
		unixMS(t0), unixMS(t0.Add(30*time.Second)), unixMS(exp))
	if err != nil {
		t.Fatal(err)
	}
	said := &storage.Turn{ID: "i1", ConversationID: "c1", TenantID: storage.DefaultTenant, Seq: 1, Role: storage.RoleUser,
		TextStored: true, Status: storage.TurnCompleted, StartedAt: t0, EndedAt: t0.Add(time.Second),
		Latency: storage.Latency{FirstTokenMS: 1, TotalMS: 2, EngineMS: 3, EndOfTurnMS: 4, FirstPartialMS: 5,
			FinalTranscriptMS: 6, FirstAudioMS: 7, FirstAudioSentMS: 8}, ExpiresAt: exp}
	old.turn(t, said, "Bonjour, ça va ? ✓")
	metaOnly := &storage.Turn{ID: "i2", ConversationID: "c1", TenantID: storage.DefaultTenant, Seq: 2,
		Role: storage.RoleAssistant, Status: storage.TurnCancelled, StartedAt: t0.Add(2 * time.Second),
		EndedAt: t0.Add(3 * time.Second), ExpiresAt: exp}
	old.turn(t, metaOnly, nil)
	settings := []byte(`{"documents":[{"title":"Tarifs","body":"secret"}]}`)
	withSettings := &storage.Agent{ID: "a1", TenantID: storage.DefaultTenant, Name: "Support", Instructions: "Be nice",
		Engine: storage.EngineKB, Voice: "alloy", Language: "fr", Settings: settings, CreatedAt: t0, UpdatedAt: t0}
	old.agent(t, withSettings)
	bare := &storage.Agent{ID: "a2", TenantID: storage.DefaultTenant, Name: "Bare", Engine: storage.EngineOpenAI,
		CreatedAt: t0.Add(time.Second), UpdatedAt: t0.Add(time.Second)}
	old.agent(t, bare)

	s, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	assertMigrations(t, s.r)

	// A version 4 node still running writes a plaintext turn.
	late := &storage.Turn{ID: "i3", ConversationID: "c1", TenantID: storage.DefaultTenant, Seq: 3,
		Role: storage.RoleAssistant, TextStored: true, Status: storage.TurnCompleted, StartedAt: t0.Add(4 * time.Second),
		EndedAt: t0.Add(5 * time.Second), ExpiresAt: exp}
	old.turn(t, late, "Très bien.")

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
		{Kind: storage.LegacyTurn, TenantID: storage.DefaultTenant, ConversationID: "c1", ID: "i1", Plaintext: []byte("Bonjour, ça va ? ✓")},
		{Kind: storage.LegacyTurn, TenantID: storage.DefaultTenant, ConversationID: "c1", ID: "i3", Plaintext: []byte("Très bien.")},
		{Kind: storage.LegacyAgent, TenantID: storage.DefaultTenant, ID: "a1", Plaintext: settings},
	}
	if !slices.EqualFunc(rows, want, legacyEqual) {
		t.Fatalf("LegacyPlaintext = %+q\nwant %+q", rows, want)
	}
	if rows, err := s.LegacyPlaintext(ctx, 1); err != nil || len(rows) != 1 {
		t.Errorf("LegacyPlaintext(1) = %d rows, %v; want 1", len(rows), err)
	}
	if _, err := s.LegacyPlaintext(ctx, 0); !errors.Is(err, storage.ErrInvalid) {
		t.Errorf("LegacyPlaintext(0) error = %v, want ErrInvalid", err)
	}

	// A stale read does not overwrite newer plaintext.
	stale := rows[0]
	stale.Plaintext = []byte("Bonjour")
	if err := s.ReplaceLegacy(ctx, stale, []byte("sealed stale")); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("ReplaceLegacy(stale plaintext) error = %v, want ErrNotFound", err)
	}
	if err := s.ReplaceLegacy(ctx, storage.LegacyRow{Kind: "doc", TenantID: "x", ID: "y"}, []byte("z")); !errors.Is(err, storage.ErrInvalid) {
		t.Errorf("ReplaceLegacy(unknown kind) error = %v, want ErrInvalid", err)
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
	// No plaintext is left in the file's columns.
	var n int
	err = s.r.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM turns WHERE text IS NOT NULL)
		+ (SELECT count(*) FROM agents WHERE length(settings) > 0)`).Scan(&n)
	if err != nil || n != 0 {
		t.Errorf("plaintext rows left = %d, %v; want 0", n, err)
	}
}

func legacyEqual(a, b storage.LegacyRow) bool {
	return a.Kind == b.Kind && a.TenantID == b.TenantID && a.ConversationID == b.ConversationID && a.ID == b.ID &&
		bytes.Equal(a.Plaintext, b.Plaintext)
}

func sealedOf(r storage.LegacyRow) []byte { return append([]byte("sealed\x00"), r.Plaintext...) }

// TestPrivacySchema checks what the conformance suite cannot see: the
// sweeper's and the purge's statements use their indexes.
func TestPrivacySchema(t *testing.T) {
	s, _ := openTemp(t)
	ctx := t.Context()
	plan := func(query string, args ...any) string {
		rows, err := s.r.QueryContext(ctx, "EXPLAIN QUERY PLAN "+query, args...)
		if err != nil {
			t.Fatalf("%s: %v", query, err)
		}
		defer rows.Close()
		var out string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			out += detail + "\n"
		}
		return out
	}
	for _, q := range expiring {
		// EXPLAIN QUERY PLAN of a DELETE describes its subquery.
		p := plan(q, 0, 10)
		if !bytes.Contains([]byte(p), []byte("expires_at_idx")) {
			t.Errorf("%s\nplan:\n%s\nwant a search through the expires_at index", q, p)
		}
	}
	for _, q := range purgeExpiries {
		p := plan(q, "t", 0)
		if bytes.Contains([]byte(p), []byte("SCAN")) {
			t.Errorf("%s\nplan:\n%s\nwant no full scan", q, p)
		}
	}
	if p := plan(`SELECT tenant_id, conversation_id, id FROM turns WHERE text IS NOT NULL ORDER BY conversation_id, id LIMIT 10`); !bytes.Contains([]byte(p), []byte("turns_legacy_idx")) {
		t.Errorf("LegacyPlaintext plan:\n%s\nwant turns_legacy_idx", p)
	}
}

// BenchmarkDeleteExpired measures the sweeper's throughput on turns:
// 200,000 expired turns of 2,000 conversations (which do not expire
// themselves), deleted by DeleteExpired in batches of the sweeper's size
// (config storage.sweep_batch) until a batch comes back short, as
// Sweeper.SweepOnce does. It reports rows/s.
//
// Turns are inserted in the order they expire, as in production (they
// expire a fixed time after they started). The layouts differ in how many
// conversations ran at once: "sequential" has one at a time (each
// conversation's turns expire together), "concurrent" has all 2,000 at
// once (each batch takes a turn or a few of every conversation, so the
// pages of the conversation-keyed indexes it rewrites are scattered: the
// worst case).
//
//	go test -run '^$' -bench DeleteExpired -benchtime 1x ./storage/sqlite/
func BenchmarkDeleteExpired(b *testing.B) {
	const conversations, perConversation = 2000, 100
	for _, layout := range []string{"sequential", "concurrent"} {
		for _, batch := range []int{1000, 5000, 10000} {
			b.Run(fmt.Sprintf("%s/batch=%d", layout, batch), func(b *testing.B) {
				ctx := b.Context()
				var deleted int64
				var took time.Duration
				for b.Loop() {
					b.StopTimer()
					s, _ := openTemp(b)
					fillExpired(b, s, conversations, perConversation, layout == "concurrent")
					b.StartTimer()
					start := time.Now()
					total := 0
					for {
						n, err := s.DeleteExpired(ctx, time.UnixMilli(1_000_000), batch)
						if err != nil {
							b.Fatal(err)
						}
						total += n
						if n < batch {
							break
						}
					}
					took += time.Since(start)
					if total != conversations*perConversation {
						b.Fatalf("deleted %d rows, want %d", total, conversations*perConversation)
					}
					deleted += int64(total)
				}
				b.ReportMetric(float64(deleted)/took.Seconds(), "rows/s")
			})
		}
	}
}

// fillExpired inserts conversations (expiring far in the future) with
// perConversation turns each, all expired at 1,000,000 ms and inserted in
// the order they expire, in one transaction. Turns carry the sealed text
// of a short sentence. Conversation ids are random-looking (their order
// is not the order they started in), like the gateway's.
func fillExpired(b *testing.B, s *Store, conversations, perConversation int, concurrent bool) {
	b.Helper()
	ctx := b.Context()
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer tx.Rollback()
	conv, err := tx.PrepareContext(ctx, sqlCreateConversation)
	if err != nil {
		b.Fatal(err)
	}
	defer conv.Close()
	turn, err := tx.PrepareContext(ctx, sqlInsertTurn)
	if err != nil {
		b.Fatal(err)
	}
	defer turn.Close()
	id := func(c int) string { return fmt.Sprintf("conv_%08x", uint32(c)*2654435761) }
	for c := range conversations {
		_, err := conv.ExecContext(ctx, id(c), "tenant", "agent", "websocket", "en", 0, nil, 0, perConversation,
			"", 0.0, int64(1)<<50)
		if err != nil {
			b.Fatal(err)
		}
	}
	text := bytes.Repeat([]byte{0xA5}, 120)
	expires := int64(0)
	add := func(c, i int) {
		expires++
		_, err := turn.ExecContext(ctx, id(c), fmt.Sprintf("item_%020d", i), "tenant", i+1, "user", text, true,
			0.5, "completed", expires, expires, 1, 2, 3, 4, 5, 6, 7, 8, expires)
		if err != nil {
			b.Fatal(err)
		}
	}
	if concurrent {
		for i := range perConversation {
			for c := range conversations {
				add(c, i)
			}
		}
	} else {
		for c := range conversations {
			for i := range perConversation {
				add(c, i)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
}
