// Package storagetest is the conformance suite every storage.Store backend
// must pass. A backend's test calls Run with a function that opens a fresh,
// empty store; the same cases then run against SQLite and PostgreSQL.
package storagetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"parley/storage"
)

// Run runs the suite. open must return a fresh, empty store and arrange for
// it to be closed when the test ends (t.Cleanup). Run calls open once per
// subtest, and the subtests run in parallel.
func Run(t *testing.T, open func(t *testing.T) storage.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s storage.Store)
	}{
		{"Ping", testPing},
		{"ConversationRoundTrip", testConversationRoundTrip},
		{"Conflicts", testConflicts},
		{"NotFound", testNotFound},
		{"TenantIsolation", testTenantIsolation},
		{"AppendTurn", testAppendTurn},
		{"LatencyRoundTrip", testLatencyRoundTrip},
		{"MetadataOnlyTurns", testMetadataOnlyTurns},
		{"EndConversation", testEndConversation},
		{"DeleteExpired", testDeleteExpired},
		{"ExpiredConversationTakesItsTurns", testExpiredConversationTakesItsTurns},
		{"ConcurrentAppendTurn", testConcurrentAppendTurn},
		{"APIKeys", testAPIKeys},
		{"Invalid", testInvalid},
		{"TruncateTurnText", testTruncateTurnText},
		{"WriteBatchMixed", testWriteBatchMixed},
		{"WriteBatchOrder", testWriteBatchOrder},
		{"WriteBatchInvalid", testWriteBatchInvalid},
		{"WriteBatchEndLanguageSentiment", testWriteBatchEndLanguageSentiment},
		{"WriteBatchEmpty", testWriteBatchEmpty},
		{"WriteBatchCancelled", testWriteBatchCancelled},
		{"WriteBatchConcurrent", testWriteBatchConcurrent},
		{"EphemeralKeys", testEphemeralKeys},
		{"EphemeralKeyExpiry", testEphemeralKeyExpiry},
		{"EphemeralKeyConflicts", testEphemeralKeyConflicts},
		{"EphemeralKeyInvalid", testEphemeralKeyInvalid},
		{"EphemeralKeyConcurrentConsume", testEphemeralKeyConcurrentConsume},
		{"EphemeralKeyDeleteExpired", testEphemeralKeyDeleteExpired},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, open(t))
		})
	}
}

// t0 has nanoseconds and a non-UTC zone on purpose: stores must keep
// milliseconds and hand times back in UTC.
var t0 = time.Date(2026, 3, 14, 15, 9, 26, 535_897_932, time.FixedZone("UTC+1", 3600))

// ms is what a store must return for t: truncated to the millisecond, UTC.
func ms(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.Truncate(time.Millisecond).UTC()
}

func conversation(tenant, id string, expires time.Time) *storage.Conversation {
	return &storage.Conversation{
		ID:        id,
		TenantID:  tenant,
		AgentID:   "agent-1",
		Channel:   "websocket",
		Language:  "fr-CA",
		StartedAt: t0,
		ExpiresAt: expires,
	}
}

func turn(c *storage.Conversation, id string, seq int, expires time.Time) *storage.Turn {
	return &storage.Turn{
		ID:             id,
		ConversationID: c.ID,
		TenantID:       c.TenantID,
		Seq:            seq,
		Role:           storage.RoleAssistant,
		TextSealed:     sealed("Bonjour " + id),
		TextStored:     true,
		Sentiment:      0.25,
		Status:         storage.TurnCompleted,
		StartedAt:      t0.Add(time.Duration(seq) * time.Second),
		EndedAt:        t0.Add(time.Duration(seq)*time.Second + 750*time.Millisecond + 123),
		Latency:        storage.Latency{FirstTokenMS: 210, TotalMS: 980, EngineMS: 640},
		ExpiresAt:      expires,
	}
}

// sealed stands for the ciphertext of text: opaque bytes, with a NUL, an
// 0xff and a lone continuation byte so that a store keeping them as text
// (or trimming them) shows.
func sealed(text string) []byte {
	return append([]byte("sealed:\x00\xff"+text), 0x80, 0x00)
}

func mustCreate(t *testing.T, s storage.Store, c *storage.Conversation) {
	t.Helper()
	if err := s.CreateConversation(t.Context(), c); err != nil {
		t.Fatalf("CreateConversation(%s): %v", c.ID, err)
	}
}

func mustAppend(t *testing.T, s storage.Store, tr *storage.Turn) {
	t.Helper()
	if err := s.AppendTurn(t.Context(), tr); err != nil {
		t.Fatalf("AppendTurn(%s/%s): %v", tr.ConversationID, tr.ID, err)
	}
}

func mustGet(t *testing.T, s storage.Store, tenant, id string) *storage.Conversation {
	t.Helper()
	c, err := s.GetConversation(t.Context(), tenant, id)
	if err != nil {
		t.Fatalf("GetConversation(%s, %s): %v", tenant, id, err)
	}
	return c
}

func mustList(t *testing.T, s storage.Store, tenant, id string) []storage.Turn {
	t.Helper()
	turns, err := s.ListTurns(t.Context(), tenant, id)
	if err != nil {
		t.Fatalf("ListTurns(%s, %s): %v", tenant, id, err)
	}
	return turns
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: error = %v, want %v", what, err, want)
	}
}

// checkTime reports a time that is not want at millisecond precision in
// UTC (zero stays zero).
func checkTime(t *testing.T, field string, got, want time.Time) {
	t.Helper()
	w := ms(want)
	if !got.Equal(w) || got.IsZero() != w.IsZero() {
		t.Errorf("%s = %v, want %v", field, got, w)
	}
	if !got.IsZero() && got.Location() != time.UTC {
		t.Errorf("%s location = %v, want UTC", field, got.Location())
	}
}

func checkConversation(t *testing.T, got, want *storage.Conversation) {
	t.Helper()
	if got.ID != want.ID || got.TenantID != want.TenantID || got.AgentID != want.AgentID ||
		got.Channel != want.Channel || got.Language != want.Language ||
		got.DurationMS != want.DurationMS || got.TurnCount != want.TurnCount ||
		got.EndUser != want.EndUser || got.Sentiment != want.Sentiment {
		t.Errorf("conversation = %+v\nwant %+v", got, want)
	}
	checkTime(t, "StartedAt", got.StartedAt, want.StartedAt)
	checkTime(t, "EndedAt", got.EndedAt, want.EndedAt)
	checkTime(t, "ExpiresAt", got.ExpiresAt, want.ExpiresAt)
}

func checkTurn(t *testing.T, got, want *storage.Turn) {
	t.Helper()
	wantText := want.TextSealed
	if !want.TextStored {
		wantText = nil
	}
	if got.ID != want.ID || got.ConversationID != want.ConversationID || got.TenantID != want.TenantID ||
		got.Seq != want.Seq || got.Role != want.Role || !bytes.Equal(got.TextSealed, wantText) ||
		got.TextStored != want.TextStored || got.Sentiment != want.Sentiment ||
		got.Status != want.Status || got.Latency != want.Latency {
		t.Errorf("turn = %+v\nwant %+v", got, want)
	}
	checkTime(t, "StartedAt", got.StartedAt, want.StartedAt)
	checkTime(t, "EndedAt", got.EndedAt, want.EndedAt)
	checkTime(t, "ExpiresAt", got.ExpiresAt, want.ExpiresAt)
}

func testPing(t *testing.T, s storage.Store) {
	if err := s.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

func testConversationRoundTrip(t *testing.T, s storage.Store) {
	ended := conversation("t1", "conv-ended", t0.Add(90*24*time.Hour))
	ended.EndedAt = t0.Add(61*time.Second + 250*time.Millisecond + 999)
	ended.DurationMS = 61250
	ended.TurnCount = 7
	ended.Language = ""
	ended.Channel = "webrtc"
	ended.Sentiment = -0.3333333333333333 // a float64, not a float32
	// An end user's pseudonym (an HMAC, base64url).
	withUser := conversation("t1", "conv-user", t0.Add(90*24*time.Hour))
	withUser.EndUser = "eu_Zm9vYmFyYmF6cXV4LV9hYmNkZWZnaGlqa2xtbm9w"

	for _, c := range []*storage.Conversation{
		conversation("t1", "conv-open", t0.Add(90*24*time.Hour)),
		ended,
		withUser,
	} {
		t.Run(c.ID, func(t *testing.T) {
			mustCreate(t, s, c)
			checkConversation(t, mustGet(t, s, c.TenantID, c.ID), c)
		})
	}
}

func testConflicts(t *testing.T, s storage.Store) {
	ctx := t.Context()
	c := conversation("t1", "conv-1", t0.Add(time.Hour))
	mustCreate(t, s, c)
	dup := conversation("t1", "conv-1", t0.Add(2*time.Hour))
	dup.AgentID = "other-agent"
	wantErr(t, "duplicate conversation", s.CreateConversation(ctx, dup), storage.ErrConflict)
	checkConversation(t, mustGet(t, s, "t1", "conv-1"), c) // the first one is untouched

	mustAppend(t, s, turn(c, "item-1", 1, t0.Add(time.Hour)))
	wantErr(t, "duplicate turn id", s.AppendTurn(ctx, turn(c, "item-1", 2, t0.Add(time.Hour))), storage.ErrConflict)
	wantErr(t, "duplicate turn seq", s.AppendTurn(ctx, turn(c, "item-2", 1, t0.Add(time.Hour))), storage.ErrConflict)
	// The failed appends rolled back their turn_count increments.
	if got := mustGet(t, s, "t1", "conv-1").TurnCount; got != 1 {
		t.Errorf("TurnCount after failed appends = %d, want 1", got)
	}

	// Realtime item ids are chosen by clients: the same one may appear in
	// another conversation.
	other := conversation("t1", "conv-2", t0.Add(time.Hour))
	mustCreate(t, s, other)
	mustAppend(t, s, turn(other, "item-1", 1, t0.Add(time.Hour)))

	k := &storage.APIKey{ID: "key-1", TenantID: "t1", Prefix: "pk_1", Hash: []byte{1}, CreatedAt: t0}
	if err := s.CreateAPIKey(ctx, k); err != nil {
		t.Fatalf("CreateAPIKey: %v", err)
	}
	wantErr(t, "duplicate API key", s.CreateAPIKey(ctx, k), storage.ErrConflict)
}

func testNotFound(t *testing.T, s storage.Store) {
	ctx := t.Context()
	_, err := s.GetConversation(ctx, "t1", "nope")
	wantErr(t, "GetConversation", err, storage.ErrNotFound)
	_, err = s.ListTurns(ctx, "t1", "nope")
	wantErr(t, "ListTurns", err, storage.ErrNotFound)
	ghost := conversation("t1", "nope", t0.Add(time.Hour))
	wantErr(t, "AppendTurn", s.AppendTurn(ctx, turn(ghost, "item-1", 1, t0.Add(time.Hour))), storage.ErrNotFound)
	wantErr(t, "EndConversation", s.EndConversation(ctx, "t1", "nope", t0), storage.ErrNotFound)
	wantErr(t, "TouchAPIKey", s.TouchAPIKey(ctx, "nope", t0), storage.ErrNotFound)
	keys, err := s.APIKeysByPrefix(ctx, "pk_nope")
	if err != nil || len(keys) != 0 {
		t.Errorf("APIKeysByPrefix(unknown) = %v, %v; want none, nil", keys, err)
	}
	if n, err := s.CountAPIKeys(ctx, "t1"); err != nil || n != 0 {
		t.Errorf("CountAPIKeys(empty) = %d, %v; want 0, nil", n, err)
	}

	// A conversation without turns lists as empty, not as not found.
	mustCreate(t, s, conversation("t1", "empty", t0.Add(time.Hour)))
	if turns := mustList(t, s, "t1", "empty"); len(turns) != 0 {
		t.Errorf("ListTurns(empty conversation) = %v, want none", turns)
	}
}

func testTenantIsolation(t *testing.T, s storage.Store) {
	ctx := t.Context()
	c := conversation("tenant-a", "conv-a", t0.Add(time.Hour))
	mustCreate(t, s, c)
	mustAppend(t, s, turn(c, "item-1", 1, t0.Add(time.Hour)))

	const other = "tenant-b"
	_, err := s.GetConversation(ctx, other, c.ID)
	wantErr(t, "GetConversation(other tenant)", err, storage.ErrNotFound)
	_, err = s.ListTurns(ctx, other, c.ID)
	wantErr(t, "ListTurns(other tenant)", err, storage.ErrNotFound)
	intruder := turn(c, "item-2", 2, t0.Add(time.Hour))
	intruder.TenantID = other
	wantErr(t, "AppendTurn(other tenant)", s.AppendTurn(ctx, intruder), storage.ErrNotFound)
	wantErr(t, "EndConversation(other tenant)", s.EndConversation(ctx, other, c.ID, t0.Add(time.Minute)), storage.ErrNotFound)

	// Nothing the other tenant tried reached tenant-a's data.
	got := mustGet(t, s, "tenant-a", c.ID)
	if got.TurnCount != 1 || !got.EndedAt.IsZero() {
		t.Errorf("after other tenant's calls: TurnCount=%d EndedAt=%v, want 1 and zero", got.TurnCount, got.EndedAt)
	}
	if turns := mustList(t, s, "tenant-a", c.ID); len(turns) != 1 {
		t.Errorf("ListTurns = %d turns, want 1", len(turns))
	}

	for i, tenant := range []string{"tenant-a", "tenant-a", "tenant-b"} {
		k := &storage.APIKey{ID: fmt.Sprint("key-", i), TenantID: tenant, Prefix: fmt.Sprint("pk_", i), Hash: []byte{byte(i)}, CreatedAt: t0}
		if err := s.CreateAPIKey(ctx, k); err != nil {
			t.Fatalf("CreateAPIKey: %v", err)
		}
	}
	for tenant, want := range map[string]int{"tenant-a": 2, "tenant-b": 1, "tenant-c": 0} {
		if n, err := s.CountAPIKeys(ctx, tenant); err != nil || n != want {
			t.Errorf("CountAPIKeys(%s) = %d, %v; want %d", tenant, n, err, want)
		}
	}
}

func testAppendTurn(t *testing.T, s storage.Store) {
	ctx := t.Context()
	c := conversation("t1", "conv-1", t0.Add(time.Hour))
	mustCreate(t, s, c)

	// Appended out of order: ListTurns still returns Seq order.
	var want []*storage.Turn
	for _, seq := range []int{3, 1, 2} {
		tr := turn(c, fmt.Sprint("item-", seq), seq, t0.Add(time.Hour))
		if seq == 1 {
			tr.Role = storage.RoleUser
			tr.Latency = storage.Latency{}
		}
		if seq == 2 {
			tr.Status = storage.TurnCancelled
		}
		mustAppend(t, s, tr)
		want = append(want, tr)
	}
	want[0], want[1], want[2] = want[1], want[2], want[0]

	// Seq 0 asks the store for the next number.
	auto := turn(c, "item-auto", 0, t0.Add(time.Hour))
	if err := s.AppendTurn(ctx, auto); err != nil {
		t.Fatalf("AppendTurn(Seq 0): %v", err)
	}
	if auto.Seq != 4 {
		t.Errorf("assigned Seq = %d, want 4", auto.Seq)
	}
	want = append(want, auto)

	got := mustList(t, s, "t1", c.ID)
	if len(got) != len(want) {
		t.Fatalf("ListTurns = %d turns, want %d", len(got), len(want))
	}
	for i := range want {
		checkTurn(t, &got[i], want[i])
	}
	if n := mustGet(t, s, "t1", c.ID).TurnCount; n != 4 {
		t.Errorf("TurnCount = %d, want 4", n)
	}
}

// voiceLatency is a Latency with every field set, each to a different
// value so a swapped column shows; FirstAudioSentMS does not fit in 32 bits,
// so a column narrower than 64 bits shows too.
func voiceLatency() storage.Latency {
	return storage.Latency{
		FirstTokenMS:      1210,
		TotalMS:           2980,
		EngineMS:          1640,
		EndOfTurnMS:       320,
		FirstPartialMS:    45,
		FinalTranscriptMS: 510,
		FirstAudioMS:      1480,
		FirstAudioSentMS:  1 << 40,
	}
}

func testLatencyRoundTrip(t *testing.T, s storage.Store) {
	c := conversation("t1", "conv-1", t0.Add(time.Hour))
	mustCreate(t, s, c)

	// A voice exchange: the user's turn has the listening figures only,
	// the assistant's has all of them; then a text turn with none of the
	// voice figures.
	user := turn(c, "item-1", 1, t0.Add(time.Hour))
	user.Role = storage.RoleUser
	user.Latency = storage.Latency{EndOfTurnMS: 320, FirstPartialMS: 45, FinalTranscriptMS: 510}
	assistant := turn(c, "item-2", 2, t0.Add(time.Hour))
	assistant.Latency = voiceLatency()
	text := turn(c, "item-3", 3, t0.Add(time.Hour))
	want := []*storage.Turn{user, assistant, text}
	for _, tr := range want {
		mustAppend(t, s, tr)
	}

	got := mustList(t, s, "t1", c.ID)
	if len(got) != len(want) {
		t.Fatalf("ListTurns = %d turns, want %d", len(got), len(want))
	}
	for i := range want {
		checkTurn(t, &got[i], want[i]) // compares Latency as a whole
	}
}

func testMetadataOnlyTurns(t *testing.T, s storage.Store) {
	c := conversation("t1", "conv-1", t0.Add(time.Hour))
	mustCreate(t, s, c)
	cases := []struct {
		text     string
		stored   bool
		wantText string
	}{
		{"", false, ""},
		{"must not reach the database", false, ""}, // TextStored=false wins
		{"", true, ""},
		{"Bonjour, comment puis-je vous aider ?", true, "Bonjour, comment puis-je vous aider ?"},
	}
	for i, tc := range cases {
		tr := turn(c, fmt.Sprint("item-", i), i+1, t0.Add(time.Hour))
		tr.TextSealed, tr.TextStored = []byte(tc.text), tc.stored
		mustAppend(t, s, tr)
	}
	got := mustList(t, s, "t1", c.ID)
	if len(got) != len(cases) {
		t.Fatalf("ListTurns = %d turns, want %d", len(got), len(cases))
	}
	for i, tc := range cases {
		if string(got[i].TextSealed) != tc.wantText || got[i].TextStored != tc.stored {
			t.Errorf("case %d: TextSealed=%q TextStored=%v, want %q %v", i, got[i].TextSealed, got[i].TextStored, tc.wantText, tc.stored)
		}
	}
}

func testEndConversation(t *testing.T, s storage.Store) {
	ctx := t.Context()
	c := conversation("t1", "conv-1", t0.Add(time.Hour))
	mustCreate(t, s, c)
	end := c.StartedAt.Add(90*time.Second + 500*time.Millisecond + 777)
	if err := s.EndConversation(ctx, "t1", c.ID, end); err != nil {
		t.Fatalf("EndConversation: %v", err)
	}
	// Idempotent: a second call (a retry, or a later disconnect) keeps
	// the first end.
	if err := s.EndConversation(ctx, "t1", c.ID, end.Add(time.Hour)); err != nil {
		t.Fatalf("second EndConversation: %v", err)
	}
	got := mustGet(t, s, "t1", c.ID)
	checkTime(t, "EndedAt", got.EndedAt, end)
	wantDur := ms(end).Sub(ms(c.StartedAt)).Milliseconds()
	if got.DurationMS != wantDur || wantDur != 90500 {
		t.Errorf("DurationMS = %d, want %d (90500)", got.DurationMS, wantDur)
	}

	// A clock that went backwards gives a zero duration, not a negative one.
	back := conversation("t1", "conv-2", t0.Add(time.Hour))
	mustCreate(t, s, back)
	if err := s.EndConversation(ctx, "t1", back.ID, back.StartedAt.Add(-time.Second)); err != nil {
		t.Fatalf("EndConversation: %v", err)
	}
	if d := mustGet(t, s, "t1", back.ID).DurationMS; d != 0 {
		t.Errorf("DurationMS with end before start = %d, want 0", d)
	}
}

func testDeleteExpired(t *testing.T, s storage.Store) {
	ctx := t.Context()
	now := t0

	// Expired: 3 turns and the conversation "old"; 2 turns of "mixed"
	// (one exactly at now); the conversation "edge" (exactly at now).
	// Unexpired: "mixed" itself and 2 of its turns, "new" and its turn,
	// all of them at most 1ms in the future.
	old := conversation("t1", "old", now.Add(-time.Hour))
	mixed := conversation("t1", "mixed", now.Add(time.Hour))
	edge := conversation("t2", "edge", now)
	fresh := conversation("t2", "new", now.Add(time.Millisecond))
	for _, c := range []*storage.Conversation{old, mixed, edge, fresh} {
		mustCreate(t, s, c)
	}
	for i := 1; i <= 3; i++ {
		mustAppend(t, s, turn(old, fmt.Sprint("old-", i), i, now.Add(-time.Hour)))
	}
	for i, exp := range []time.Time{now.Add(-2 * time.Hour), now, now.Add(time.Millisecond), now.Add(time.Hour)} {
		mustAppend(t, s, turn(mixed, fmt.Sprint("mixed-", i+1), i+1, exp))
	}
	mustAppend(t, s, turn(fresh, "new-1", 1, now.Add(time.Millisecond)))

	// Nothing has expired an hour earlier.
	if n, err := s.DeleteExpired(ctx, now.Add(-3*time.Hour), 100); err != nil || n != 0 {
		t.Fatalf("DeleteExpired(before anything expired) = %d, %v; want 0", n, err)
	}

	// 7 expired rows in batches of 3: 3 turns; 2 turns + 1 conversation;
	// 1 conversation; then nothing.
	var got []int
	for range 4 {
		n, err := s.DeleteExpired(ctx, now, 3)
		if err != nil {
			t.Fatalf("DeleteExpired: %v", err)
		}
		got = append(got, n)
	}
	if fmt.Sprint(got) != "[3 3 1 0]" {
		t.Errorf("DeleteExpired batches = %v, want [3 3 1 0]", got)
	}

	for _, c := range []*storage.Conversation{old, edge} {
		_, err := s.GetConversation(ctx, c.TenantID, c.ID)
		wantErr(t, "GetConversation("+c.ID+") after expiry", err, storage.ErrNotFound)
	}
	m := mustGet(t, s, "t1", "mixed")
	if m.TurnCount != 4 {
		t.Errorf("mixed TurnCount = %d, want 4 (not lowered by expiry)", m.TurnCount)
	}
	turns := mustList(t, s, "t1", "mixed")
	if len(turns) != 2 || turns[0].ID != "mixed-3" || turns[1].ID != "mixed-4" {
		t.Errorf("mixed turns after sweep = %v, want mixed-3 and mixed-4", turns)
	}
	if turns := mustList(t, s, "t2", "new"); len(turns) != 1 {
		t.Errorf("new turns after sweep = %d, want 1", len(turns))
	}

	if _, err := s.DeleteExpired(ctx, now, 0); !errors.Is(err, storage.ErrInvalid) {
		t.Errorf("DeleteExpired(limit 0) error = %v, want ErrInvalid", err)
	}
}

func testExpiredConversationTakesItsTurns(t *testing.T, s storage.Store) {
	ctx := t.Context()
	now := t0
	c := conversation("t1", "conv-1", now.Add(-time.Minute))
	mustCreate(t, s, c)
	for i := 1; i <= 3; i++ {
		mustAppend(t, s, turn(c, fmt.Sprint("item-", i), i, now.Add(time.Hour)))
	}
	n, err := s.DeleteExpired(ctx, now, 10)
	if err != nil || n != 1 {
		t.Fatalf("DeleteExpired = %d, %v; want 1 (the conversation; its turns go with it)", n, err)
	}
	_, err = s.ListTurns(ctx, "t1", c.ID)
	wantErr(t, "ListTurns(deleted conversation)", err, storage.ErrNotFound)
	// The turns are really gone, not orphaned: a new conversation with the
	// same id starts empty and can reuse the same seqs.
	mustCreate(t, s, conversation("t1", c.ID, now.Add(time.Hour)))
	if turns := mustList(t, s, "t1", c.ID); len(turns) != 0 {
		t.Errorf("turns of the recreated conversation = %d, want 0", len(turns))
	}
	mustAppend(t, s, turn(c, "item-1", 1, now.Add(time.Hour)))
}

func testConcurrentAppendTurn(t *testing.T, s storage.Store) {
	const (
		workers = 32
		perConv = 10
	)
	var convs []*storage.Conversation
	for i := range workers {
		c := conversation("t1", fmt.Sprint("conv-", i), t0.Add(time.Hour))
		mustCreate(t, s, c)
		convs = append(convs, c)
	}
	shared := conversation("t1", "shared", t0.Add(time.Hour))
	mustCreate(t, s, shared)

	// Each worker appends to its own conversation, and also to a shared
	// one with Seq 0, so the store must hand out seqs under contention.
	errs := make(chan error, workers*perConv*2)
	var wg sync.WaitGroup
	for _, c := range convs {
		wg.Go(func() {
			for seq := 1; seq <= perConv; seq++ {
				if err := s.AppendTurn(t.Context(), turn(c, fmt.Sprint("item-", seq), seq, t0.Add(time.Hour))); err != nil {
					errs <- fmt.Errorf("%s seq %d: %w", c.ID, seq, err)
				}
				id := fmt.Sprintf("%s-item-%d", c.ID, seq)
				if err := s.AppendTurn(t.Context(), turn(shared, id, 0, t0.Add(time.Hour))); err != nil {
					errs <- fmt.Errorf("shared %s: %w", id, err)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	for _, c := range convs {
		if n := mustGet(t, s, "t1", c.ID).TurnCount; n != perConv {
			t.Errorf("%s TurnCount = %d, want %d", c.ID, n, perConv)
		}
		for i, tr := range mustList(t, s, "t1", c.ID) {
			if tr.Seq != i+1 {
				t.Errorf("%s turn %d has Seq %d", c.ID, i, tr.Seq)
			}
		}
	}
	total := workers * perConv
	if n := mustGet(t, s, "t1", shared.ID).TurnCount; n != total {
		t.Errorf("shared TurnCount = %d, want %d", n, total)
	}
	turns := mustList(t, s, "t1", shared.ID)
	if len(turns) != total {
		t.Fatalf("shared turns = %d, want %d", len(turns), total)
	}
	for i, tr := range turns {
		if tr.Seq != i+1 {
			t.Fatalf("shared turn %d has Seq %d: seqs must be 1..%d without gaps", i, tr.Seq, total)
		}
	}
}

func testAPIKeys(t *testing.T, s storage.Store) {
	ctx := t.Context()
	keys := []*storage.APIKey{
		{ID: "key-2", TenantID: "t1", Prefix: "pk_abd", Hash: bytes.Repeat([]byte{0xAB}, 32), CreatedAt: t0.Add(time.Second)},
		{ID: "key-1", TenantID: "t1", Prefix: "pk_abc", Hash: bytes.Repeat([]byte{0x01}, 32), CreatedAt: t0},
		{ID: "key-3", TenantID: "t2", Prefix: "pk_xyz", Hash: []byte{0, 1, 2, 0xFF}, CreatedAt: t0, LastUsedAt: t0.Add(time.Minute)},
	}
	for _, k := range keys {
		if err := s.CreateAPIKey(ctx, k); err != nil {
			t.Fatalf("CreateAPIKey(%s): %v", k.ID, err)
		}
	}
	// Prefixes are unique among all keys, whatever the tenant.
	dup := &storage.APIKey{ID: "key-4", TenantID: "t3", Prefix: "pk_abc", Hash: []byte{4}, CreatedAt: t0}
	wantErr(t, "CreateAPIKey(same prefix)", s.CreateAPIKey(ctx, dup), storage.ErrConflict)

	byPrefix := func(prefix string) storage.APIKey {
		t.Helper()
		got, err := s.APIKeysByPrefix(ctx, prefix)
		if err != nil || len(got) != 1 {
			t.Fatalf("APIKeysByPrefix(%s) = %+v, %v; want one key", prefix, got, err)
		}
		return got[0]
	}
	for _, want := range keys {
		k := byPrefix(want.Prefix)
		if k.ID != want.ID || k.TenantID != want.TenantID || k.Prefix != want.Prefix || !bytes.Equal(k.Hash, want.Hash) {
			t.Errorf("key = %+v, want %+v", k, want)
		}
		checkTime(t, "CreatedAt", k.CreatedAt, want.CreatedAt)
		checkTime(t, "LastUsedAt", k.LastUsedAt, want.LastUsedAt)
	}

	if n, err := s.CountAPIKeys(ctx, "t1"); err != nil || n != 2 {
		t.Errorf("CountAPIKeys(t1) = %d, %v; want 2", n, err)
	}

	// Touch moves LastUsedAt forward only: uses are recorded concurrently
	// and may arrive out of order.
	used := t0.Add(time.Hour + 123*time.Millisecond + 456)
	for _, at := range []time.Time{used, used.Add(-time.Minute)} {
		if err := s.TouchAPIKey(ctx, "key-1", at); err != nil {
			t.Fatalf("TouchAPIKey: %v", err)
		}
	}
	checkTime(t, "LastUsedAt after touch", byPrefix("pk_abc").LastUsedAt, used)
	checkTime(t, "LastUsedAt of the untouched key", byPrefix("pk_abd").LastUsedAt, time.Time{})
}

func testInvalid(t *testing.T, s storage.Store) {
	ctx := t.Context()
	good := conversation("t1", "conv-1", t0.Add(time.Hour))
	mustCreate(t, s, good)

	convCases := map[string]func(c *storage.Conversation){
		"no ID":        func(c *storage.Conversation) { c.ID = "" },
		"no TenantID":  func(c *storage.Conversation) { c.TenantID = "" },
		"no ExpiresAt": func(c *storage.Conversation) { c.ExpiresAt = time.Time{} },
		"Sentiment -2": func(c *storage.Conversation) { c.Sentiment = -2 },
	}
	for name, mutate := range convCases {
		c := conversation("t1", "conv-x", t0.Add(time.Hour))
		mutate(c)
		wantErr(t, "CreateConversation "+name, s.CreateConversation(ctx, c), storage.ErrInvalid)
	}

	turnCases := map[string]func(tr *storage.Turn){
		"no ID":             func(tr *storage.Turn) { tr.ID = "" },
		"no ConversationID": func(tr *storage.Turn) { tr.ConversationID = "" },
		"no TenantID":       func(tr *storage.Turn) { tr.TenantID = "" },
		"no ExpiresAt":      func(tr *storage.Turn) { tr.ExpiresAt = time.Time{} },
		"negative Seq":      func(tr *storage.Turn) { tr.Seq = -1 },
		"Sentiment NaN":     func(tr *storage.Turn) { tr.Sentiment = math.NaN() },
		"Sentiment 1.5":     func(tr *storage.Turn) { tr.Sentiment = 1.5 },
	}
	for name, mutate := range turnCases {
		tr := turn(good, "item-x", 1, t0.Add(time.Hour))
		mutate(tr)
		wantErr(t, "AppendTurn "+name, s.AppendTurn(ctx, tr), storage.ErrInvalid)
	}

	keyCases := map[string]func(k *storage.APIKey){
		"no ID":       func(k *storage.APIKey) { k.ID = "" },
		"no TenantID": func(k *storage.APIKey) { k.TenantID = "" },
		"no Prefix":   func(k *storage.APIKey) { k.Prefix = "" },
		"no Hash":     func(k *storage.APIKey) { k.Hash = nil },
	}
	for name, mutate := range keyCases {
		k := &storage.APIKey{ID: "key-x", TenantID: "t1", Prefix: "pk", Hash: []byte{1}, CreatedAt: t0}
		mutate(k)
		wantErr(t, "CreateAPIKey "+name, s.CreateAPIKey(ctx, k), storage.ErrInvalid)
	}

	wantErr(t, "EndConversation zero time", s.EndConversation(ctx, "t1", good.ID, time.Time{}), storage.ErrInvalid)
	wantErr(t, "TouchAPIKey zero time", s.TouchAPIKey(ctx, "key-x", time.Time{}), storage.ErrInvalid)

	// None of the rejected calls changed anything.
	checkConversation(t, mustGet(t, s, "t1", good.ID), good)
	if n, err := s.CountAPIKeys(ctx, "t1"); err != nil || n != 0 {
		t.Errorf("CountAPIKeys = %d, %v; want 0", n, err)
	}
}

func testTruncateTurnText(t *testing.T, s storage.Store) {
	ctx := t.Context()
	c := conversation("t1", "conv-1", t0.Add(time.Hour))
	mustCreate(t, s, c)
	spoken := turn(c, "item-1", 1, t0.Add(time.Hour))
	spoken.TextSealed = sealed("Bonjour, je peux vous aider avec votre réservation.")
	metaOnly := turn(c, "item-2", 2, t0.Add(time.Hour))
	metaOnly.TextSealed, metaOnly.TextStored = nil, false
	other := turn(c, "item-3", 3, t0.Add(time.Hour))
	for _, tr := range []*storage.Turn{spoken, metaOnly, other} {
		mustAppend(t, s, tr)
	}

	if err := s.TruncateTurnText(ctx, "t1", c.ID, spoken.ID, sealed("Bonjour, je peux")); err != nil {
		t.Fatalf("TruncateTurnText: %v", err)
	}
	// Metadata only stays metadata only, without an error.
	if err := s.TruncateTurnText(ctx, "t1", c.ID, metaOnly.ID, sealed("must not reach the database")); err != nil {
		t.Fatalf("TruncateTurnText(metadata-only turn): %v", err)
	}
	wantErr(t, "TruncateTurnText(missing turn)", s.TruncateTurnText(ctx, "t1", c.ID, "item-9", sealed("x")), storage.ErrNotFound)
	wantErr(t, "TruncateTurnText(missing conversation)", s.TruncateTurnText(ctx, "t1", "nope", spoken.ID, sealed("x")), storage.ErrNotFound)
	wantErr(t, "TruncateTurnText(other tenant)", s.TruncateTurnText(ctx, "t2", c.ID, spoken.ID, sealed("x")), storage.ErrNotFound)

	spoken.TextSealed = sealed("Bonjour, je peux")
	got := mustList(t, s, "t1", c.ID)
	if len(got) != 3 {
		t.Fatalf("ListTurns = %d turns, want 3", len(got))
	}
	for i, want := range []*storage.Turn{spoken, metaOnly, other} {
		checkTurn(t, &got[i], want) // the other fields and turns are untouched
	}

	// Truncating to nothing (the client played none of it) keeps an empty
	// stored text; truncating again replaces it again.
	if err := s.TruncateTurnText(ctx, "t1", c.ID, other.ID, nil); err != nil {
		t.Fatalf("TruncateTurnText(empty): %v", err)
	}
	if got := mustList(t, s, "t1", c.ID)[2]; len(got.TextSealed) != 0 || !got.TextStored {
		t.Errorf("after truncating to empty: TextSealed=%q TextStored=%v, want empty, true", got.TextSealed, got.TextStored)
	}
	if n := mustGet(t, s, "t1", c.ID).TurnCount; n != 3 {
		t.Errorf("TurnCount = %d, want 3 (truncation is no append)", n)
	}
}

// ephemeralKey returns a valid ephemeral key whose prefix is "ek_" and n
// in 9 digits, and whose hash is 32 bytes of fill.
func ephemeralKey(id string, n int, fill byte, expires time.Time) *storage.EphemeralKey {
	return &storage.EphemeralKey{
		ID:        id,
		TenantID:  "t1",
		KeyID:     "key-1",
		AgentID:   "agent-1",
		Prefix:    fmt.Sprintf("ek_%09d", n),
		Hash:      bytes.Repeat([]byte{fill}, 32),
		Session:   []byte(`{"voice":"alloy","instructions":"Réponds en français."}`),
		EndUser:   "eu_0123456789abcdef0123456789abcdef",
		Origin:    "https://shop.example",
		CreatedAt: t0,
		ExpiresAt: expires,
	}
}

func mustCreateEphemeralKey(t *testing.T, s storage.Store, k *storage.EphemeralKey) {
	t.Helper()
	if err := s.CreateEphemeralKey(t.Context(), k); err != nil {
		t.Fatalf("CreateEphemeralKey(%s): %v", k.ID, err)
	}
}

func mustConsume(t *testing.T, s storage.Store, k *storage.EphemeralKey, at time.Time) *storage.EphemeralKey {
	t.Helper()
	got, err := s.ConsumeEphemeralKey(t.Context(), k.Prefix, k.Hash, at)
	if err != nil {
		t.Fatalf("ConsumeEphemeralKey(%s at %v): %v", k.ID, at, err)
	}
	return got
}

// consumeErr consumes k at at and checks the error is want.
func consumeErr(t *testing.T, s storage.Store, what string, prefix string, hash []byte, at time.Time, want error) {
	t.Helper()
	got, err := s.ConsumeEphemeralKey(t.Context(), prefix, hash, at)
	if !errors.Is(err, want) {
		t.Errorf("%s: ConsumeEphemeralKey error = %v, want %v", what, err, want)
	}
	if got != nil {
		t.Errorf("%s: ConsumeEphemeralKey returned a key with an error: %+v", what, got)
	}
}

func checkEphemeralKey(t *testing.T, got, want *storage.EphemeralKey, usedAt time.Time) {
	t.Helper()
	if got.ID != want.ID || got.TenantID != want.TenantID || got.KeyID != want.KeyID ||
		got.AgentID != want.AgentID || got.Prefix != want.Prefix || !bytes.Equal(got.Hash, want.Hash) ||
		!bytes.Equal(got.Session, want.Session) || got.EndUser != want.EndUser || got.Origin != want.Origin {
		t.Errorf("ephemeral key = %+v\nwant %+v", got, want)
	}
	checkTime(t, "CreatedAt", got.CreatedAt, want.CreatedAt)
	checkTime(t, "ExpiresAt", got.ExpiresAt, want.ExpiresAt)
	checkTime(t, "UsedAt", got.UsedAt, usedAt)
}

func testEphemeralKeys(t *testing.T, s storage.Store) {
	k := ephemeralKey("ek_id_1", 1, 0x01, t0.Add(time.Hour))
	mustCreateEphemeralKey(t, s, k)
	bare := ephemeralKey("ek_id_2", 2, 0x02, t0.Add(time.Hour))
	bare.KeyID, bare.Session, bare.CreatedAt, bare.EndUser, bare.Origin = "", nil, time.Time{}, "", ""
	mustCreateEphemeralKey(t, s, bare)

	// What finds no key, and does not use it up either.
	at := t0.Add(time.Minute + 123*time.Millisecond + 456_789)
	wrong := bytes.Repeat([]byte{0x01}, 32)
	wrong[31] = 0x02
	consumeErr(t, s, "wrong hash", k.Prefix, wrong, at, storage.ErrNotFound)
	consumeErr(t, s, "short hash", k.Prefix, k.Hash[:31], at, storage.ErrNotFound)
	consumeErr(t, s, "no hash", k.Prefix, nil, at, storage.ErrNotFound)
	consumeErr(t, s, "another key's hash", k.Prefix, bare.Hash, at, storage.ErrNotFound)
	consumeErr(t, s, "unknown prefix", "ek_999999999", k.Hash, at, storage.ErrNotFound)
	consumeErr(t, s, "empty prefix", "", k.Hash, at, storage.ErrNotFound)
	consumeErr(t, s, "zero time", k.Prefix, k.Hash, time.Time{}, storage.ErrInvalid)

	got := mustConsume(t, s, k, at)
	checkEphemeralKey(t, got, k, at)

	// Usable once: the second use fails, even later, even by the same caller.
	consumeErr(t, s, "second use", k.Prefix, k.Hash, at, storage.ErrUsed)
	consumeErr(t, s, "third use, later", k.Prefix, k.Hash, at.Add(time.Second), storage.ErrUsed)
	// The hash is checked first: a wrong one does not learn the key was used.
	consumeErr(t, s, "wrong hash of a used key", k.Prefix, wrong, at, storage.ErrNotFound)
	// Expiry is checked before use.
	consumeErr(t, s, "used key after expiry", k.Prefix, k.Hash, k.ExpiresAt, storage.ErrExpired)

	// A key with no session, key id, origin or creation time round-trips
	// them empty.
	got = mustConsume(t, s, bare, at)
	if len(got.Session) != 0 || got.KeyID != "" || got.Origin != "" {
		t.Errorf("bare key: Session = %q, KeyID = %q, Origin = %q; want all empty", got.Session, got.KeyID, got.Origin)
	}
	checkEphemeralKey(t, got, bare, at)
}

func testEphemeralKeyExpiry(t *testing.T, s storage.Store) {
	// t0 has sub-millisecond digits: the key expires at t0's millisecond.
	k := ephemeralKey("ek_id_1", 1, 0x01, t0)
	mustCreateEphemeralKey(t, s, k)

	consumeErr(t, s, "at ExpiresAt", k.Prefix, k.Hash, t0, storage.ErrExpired)
	consumeErr(t, s, "after ExpiresAt", k.Prefix, k.Hash, t0.Add(time.Hour), storage.ErrExpired)
	// A failed use of an expired key did not mark it: just before expiry
	// it is still usable (a caller's clock may lag).
	before := t0.Truncate(time.Millisecond).Add(-time.Millisecond)
	checkEphemeralKey(t, mustConsume(t, s, k, before), k, before)
	consumeErr(t, s, "after use and expiry", k.Prefix, k.Hash, t0, storage.ErrExpired)
}

func testEphemeralKeyConflicts(t *testing.T, s storage.Store) {
	ctx := t.Context()
	k := ephemeralKey("ek_id_1", 1, 0x01, t0.Add(time.Hour))
	mustCreateEphemeralKey(t, s, k)

	sameID := ephemeralKey("ek_id_1", 2, 0x02, t0.Add(time.Hour))
	wantErr(t, "CreateEphemeralKey(same ID)", s.CreateEphemeralKey(ctx, sameID), storage.ErrConflict)
	samePrefix := ephemeralKey("ek_id_2", 1, 0x02, t0.Add(time.Hour))
	samePrefix.TenantID = "t2"
	wantErr(t, "CreateEphemeralKey(same Prefix, other tenant)", s.CreateEphemeralKey(ctx, samePrefix), storage.ErrConflict)

	// Neither rejected key exists; the first one is intact.
	consumeErr(t, s, "rejected same-ID key", sameID.Prefix, sameID.Hash, t0, storage.ErrNotFound)
	consumeErr(t, s, "rejected same-prefix key", samePrefix.Prefix, samePrefix.Hash, t0, storage.ErrNotFound)
	checkEphemeralKey(t, mustConsume(t, s, k, t0), k, t0)
}

func testEphemeralKeyInvalid(t *testing.T, s storage.Store) {
	ctx := t.Context()
	cases := map[string]func(k *storage.EphemeralKey){
		"no ID":         func(k *storage.EphemeralKey) { k.ID = "" },
		"no TenantID":   func(k *storage.EphemeralKey) { k.TenantID = "" },
		"no AgentID":    func(k *storage.EphemeralKey) { k.AgentID = "" },
		"no Prefix":     func(k *storage.EphemeralKey) { k.Prefix = "" },
		"no Hash":       func(k *storage.EphemeralKey) { k.Hash = nil },
		"short Hash":    func(k *storage.EphemeralKey) { k.Hash = k.Hash[:31] },
		"long Hash":     func(k *storage.EphemeralKey) { k.Hash = append(k.Hash, 0) },
		"no ExpiresAt":  func(k *storage.EphemeralKey) { k.ExpiresAt = time.Time{} },
		"all of it bad": func(k *storage.EphemeralKey) { *k = storage.EphemeralKey{} },
	}
	for name, mutate := range cases {
		k := ephemeralKey("ek_id_x", 1, 0x01, t0.Add(time.Hour))
		mutate(k)
		wantErr(t, "CreateEphemeralKey "+name, s.CreateEphemeralKey(ctx, k), storage.ErrInvalid)
	}
	// Nothing was stored: the valid key can be created afterwards.
	k := ephemeralKey("ek_id_x", 1, 0x01, t0.Add(time.Hour))
	mustCreateEphemeralKey(t, s, k)
	checkEphemeralKey(t, mustConsume(t, s, k, t0), k, t0)
}

func testEphemeralKeyConcurrentConsume(t *testing.T, s storage.Store) {
	const consumers = 16
	k := ephemeralKey("ek_id_1", 1, 0x01, t0.Add(time.Hour))
	mustCreateEphemeralKey(t, s, k)

	start := make(chan struct{})
	errs := make([]error, consumers)
	keys := make([]*storage.EphemeralKey, consumers)
	var wg sync.WaitGroup
	for i := range consumers {
		wg.Go(func() {
			<-start
			keys[i], errs[i] = s.ConsumeEphemeralKey(t.Context(), k.Prefix, k.Hash, t0.Add(time.Duration(i)*time.Millisecond))
		})
	}
	close(start)
	wg.Wait()

	winner := -1
	for i, err := range errs {
		switch {
		case err == nil:
			if winner >= 0 {
				t.Errorf("consumers %d and %d both consumed the key", winner, i)
			}
			winner = i
		case !errors.Is(err, storage.ErrUsed):
			t.Errorf("consumer %d: error = %v, want nil or ErrUsed", i, err)
		}
	}
	if winner < 0 {
		t.Fatalf("no consumer succeeded: %v", errs)
	}
	at := t0.Add(time.Duration(winner) * time.Millisecond)
	checkEphemeralKey(t, keys[winner], k, at)
	consumeErr(t, s, "after the race", k.Prefix, k.Hash, t0, storage.ErrUsed)
}

func testEphemeralKeyDeleteExpired(t *testing.T, s storage.Store) {
	ctx := t.Context()
	now := t0

	// Expired: a conversation with its one turn, and 4 keys (one at now
	// exactly, one used before it expired). Unexpired: 3 keys (one used),
	// all of them at most 1ms in the future.
	c := conversation("t1", "old", now.Add(-time.Hour))
	mustCreate(t, s, c)
	mustAppend(t, s, turn(c, "item-1", 1, now.Add(-time.Hour)))
	var expired, fresh []*storage.EphemeralKey
	for i, exp := range []time.Time{now.Add(-2 * time.Hour), now.Add(-time.Hour), now.Add(-time.Minute), now} {
		expired = append(expired, ephemeralKey(fmt.Sprint("ek_id_old_", i), 10+i, byte(10+i), exp))
	}
	for i, exp := range []time.Time{now.Add(time.Millisecond), now.Add(time.Minute), now.Add(time.Hour)} {
		fresh = append(fresh, ephemeralKey(fmt.Sprint("ek_id_new_", i), 20+i, byte(20+i), exp))
	}
	for _, k := range append(append([]*storage.EphemeralKey{}, expired...), fresh...) {
		mustCreateEphemeralKey(t, s, k)
	}
	mustConsume(t, s, expired[1], now.Add(-2*time.Hour+time.Second))
	usedAt := now.Add(-time.Second)
	mustConsume(t, s, fresh[1], usedAt)

	if n, err := s.DeleteExpired(ctx, now.Add(-3*time.Hour), 100); err != nil || n != 0 {
		t.Fatalf("DeleteExpired(before anything expired) = %d, %v; want 0", n, err)
	}
	// 6 expired rows in batches of 4: the turn, the conversation and 2
	// keys; 2 keys; then nothing. The keys count within the limit.
	var got []int
	for range 3 {
		n, err := s.DeleteExpired(ctx, now, 4)
		if err != nil {
			t.Fatalf("DeleteExpired: %v", err)
		}
		got = append(got, n)
	}
	if fmt.Sprint(got) != "[4 2 0]" {
		t.Errorf("DeleteExpired batches = %v, want [4 2 0]", got)
	}

	// The expired keys are gone; consuming them at a time before their
	// expiry proves it is deletion, not expiry, that refuses them.
	for _, k := range expired {
		consumeErr(t, s, "deleted key "+k.ID, k.Prefix, k.Hash, now.Add(-3*time.Hour), storage.ErrNotFound)
	}
	// The unexpired keys are kept, used or not.
	consumeErr(t, s, "kept used key", fresh[1].Prefix, fresh[1].Hash, now, storage.ErrUsed)
	for _, k := range []*storage.EphemeralKey{fresh[0], fresh[2]} {
		checkEphemeralKey(t, mustConsume(t, s, k, now), k, now)
	}
}

// mustBatch runs WriteBatch and fails the test on a batch failure or a
// result slice of the wrong length.
func mustBatch(t *testing.T, s storage.Store, ws []storage.Write) []error {
	t.Helper()
	errs, err := s.WriteBatch(t.Context(), ws)
	if err != nil {
		t.Fatalf("WriteBatch: %v", err)
	}
	if len(errs) != len(ws) {
		t.Fatalf("WriteBatch returned %d errors for %d writes", len(errs), len(ws))
	}
	return errs
}

func wantBatchErrs(t *testing.T, errs []error, want []error) {
	t.Helper()
	for i := range want {
		if want[i] == nil && errs[i] != nil || want[i] != nil && !errors.Is(errs[i], want[i]) {
			t.Errorf("write %d: error = %v, want %v", i, errs[i], want[i])
		}
	}
}

func testWriteBatchMixed(t *testing.T, s storage.Store) {
	c := conversation("t1", "conv-1", t0.Add(time.Hour))
	turns := []*storage.Turn{
		turn(c, "item-1", 1, t0.Add(time.Hour)),
		turn(c, "item-2", 2, t0.Add(time.Hour)),
		turn(c, "item-3", 0, t0.Add(time.Hour)), // the store assigns 3
	}
	dup := turn(c, "item-2", 4, t0.Add(time.Hour)) // id already used
	ghost := turn(conversation("t1", "nope", t0.Add(time.Hour)), "item-1", 1, t0.Add(time.Hour))
	end := c.StartedAt.Add(42 * time.Second)
	ws := []storage.Write{
		{Create: c},
		{Turn: turns[0]},
		{Turn: turns[1]},
		{Turn: turns[2]},
		{Turn: dup},
		{Turn: ghost},
		{End: &storage.EndWrite{TenantID: "t1", ID: c.ID, At: end}},
		{Truncate: &storage.TruncateWrite{TenantID: "t1", ConversationID: c.ID, ItemID: "item-3", TextSealed: sealed("Bonj")}},
	}
	errs := mustBatch(t, s, ws)
	wantBatchErrs(t, errs, []error{nil, nil, nil, nil, storage.ErrConflict, storage.ErrNotFound, nil, nil})
	if turns[2].Seq != 3 {
		t.Errorf("assigned Seq = %d, want 3", turns[2].Seq)
	}

	// As if the single methods had been called one by one: the failed
	// writes left no trace (turn_count included), the others all landed.
	c.TurnCount = 3
	c.EndedAt = end
	c.DurationMS = 42000
	checkConversation(t, mustGet(t, s, "t1", c.ID), c)
	turns[2].TextSealed = sealed("Bonj")
	got := mustList(t, s, "t1", c.ID)
	if len(got) != 3 {
		t.Fatalf("ListTurns = %d turns, want 3", len(got))
	}
	for i, want := range turns {
		checkTurn(t, &got[i], want)
	}
	_, err := s.GetConversation(t.Context(), "t1", "nope")
	wantErr(t, "GetConversation(nope)", err, storage.ErrNotFound)

	// The same batch again, as a retry would send it: every write that
	// creates something now conflicts, the rest are idempotent or
	// repeatable, and nothing changes.
	c2 := *c
	c2.EndedAt, c2.DurationMS, c2.TurnCount = time.Time{}, 0, 0
	ws[0].Create = &c2
	ws[6].End.At = end.Add(time.Hour) // a second end keeps the first
	errs = mustBatch(t, s, ws)
	// (item-3 goes again with the Seq 3 written back by the first batch.)
	wantBatchErrs(t, errs, []error{storage.ErrConflict, storage.ErrConflict, storage.ErrConflict, storage.ErrConflict,
		storage.ErrConflict, storage.ErrNotFound, nil, nil})
	checkConversation(t, mustGet(t, s, "t1", c.ID), c)
}

func testWriteBatchOrder(t *testing.T, s storage.Store) {
	c := conversation("t1", "conv-1", t0.Add(time.Hour))
	const n = 40
	ws := []storage.Write{
		// Before the create: the conversation does not exist yet.
		{Turn: turn(c, "early", 1, t0.Add(time.Hour))},
		{End: &storage.EndWrite{TenantID: "t1", ID: c.ID, At: t0.Add(time.Minute)}},
		{Create: c},
	}
	var turns []*storage.Turn
	for i := range n {
		tr := turn(c, fmt.Sprint("item-", i+1), 0, t0.Add(time.Hour)) // seqs assigned in order
		tr.TextSealed = sealed(fmt.Sprint("text ", i+1))
		turns = append(turns, tr)
		ws = append(ws, storage.Write{Turn: tr})
	}
	// Truncations of the same turn apply in order: the last one wins.
	for _, text := range []string{"a", "b", "c"} {
		ws = append(ws, storage.Write{Truncate: &storage.TruncateWrite{TenantID: "t1", ConversationID: c.ID, ItemID: "item-7", TextSealed: sealed(text)}})
	}
	// Two ends: the first wins.
	first, second := c.StartedAt.Add(10*time.Second), c.StartedAt.Add(20*time.Second)
	ws = append(ws,
		storage.Write{End: &storage.EndWrite{TenantID: "t1", ID: c.ID, At: first}},
		storage.Write{End: &storage.EndWrite{TenantID: "t1", ID: c.ID, At: second}},
	)
	errs := mustBatch(t, s, ws)
	want := make([]error, len(ws))
	want[0], want[1] = storage.ErrNotFound, storage.ErrNotFound
	wantBatchErrs(t, errs, want)

	got := mustList(t, s, "t1", c.ID)
	if len(got) != n {
		t.Fatalf("ListTurns = %d turns, want %d", len(got), n)
	}
	turns[6].TextSealed = sealed("c")
	for i, tr := range turns {
		if tr.Seq != i+1 {
			t.Errorf("turn %s: assigned Seq = %d, want %d", tr.ID, tr.Seq, i+1)
		}
		checkTurn(t, &got[i], tr)
	}
	conv := mustGet(t, s, "t1", c.ID)
	checkTime(t, "EndedAt", conv.EndedAt, first)
	if conv.TurnCount != n || conv.DurationMS != 10000 {
		t.Errorf("TurnCount=%d DurationMS=%d, want %d 10000", conv.TurnCount, conv.DurationMS, n)
	}
}

func testWriteBatchEndLanguageSentiment(t *testing.T, s storage.Store) {
	ctx := t.Context()
	// set: the end brings the language detected and the mean sentiment.
	set := conversation("t1", "conv-set", t0.Add(time.Hour))
	set.Language = ""
	// kept: an end without them keeps the language the conversation had.
	kept := conversation("t1", "conv-kept", t0.Add(time.Hour))
	// plain: EndConversation (no language, no sentiment) changes neither.
	plain := conversation("t1", "conv-plain", t0.Add(time.Hour))
	plain.EndUser = "eu_plain"
	for _, c := range []*storage.Conversation{set, kept, plain} {
		mustCreate(t, s, c)
	}
	end := t0.Add(30 * time.Second)
	ws := []storage.Write{
		{End: &storage.EndWrite{TenantID: "t1", ID: set.ID, At: end, Language: "en-US", Sentiment: -0.3333333333333333}},
		// A second end changes nothing: neither the end nor the language
		// nor the sentiment.
		{End: &storage.EndWrite{TenantID: "t1", ID: set.ID, At: end.Add(time.Minute), Language: "de-DE", Sentiment: 0.9}},
		{End: &storage.EndWrite{TenantID: "t1", ID: kept.ID, At: end}},
		// Another tenant cannot end it, nor set its language.
		{End: &storage.EndWrite{TenantID: "t2", ID: kept.ID, At: end, Language: "xx", Sentiment: 1}},
	}
	wantBatchErrs(t, mustBatch(t, s, ws), []error{nil, nil, nil, storage.ErrNotFound})
	if err := s.EndConversation(ctx, "t1", plain.ID, end); err != nil {
		t.Fatalf("EndConversation: %v", err)
	}
	for _, c := range []*storage.Conversation{set, kept, plain} {
		c.EndedAt, c.DurationMS = end, ms(end).Sub(ms(c.StartedAt)).Milliseconds()
	}
	set.Language, set.Sentiment = "en-US", -0.3333333333333333
	for _, c := range []*storage.Conversation{set, kept, plain} {
		checkConversation(t, mustGet(t, s, "t1", c.ID), c)
	}
}

func testWriteBatchInvalid(t *testing.T, s storage.Store) {
	c := conversation("t1", "conv-1", t0.Add(time.Hour))
	noExpiry := turn(c, "item-x", 2, time.Time{})
	badConv := conversation("", "conv-2", t0.Add(time.Hour))
	good := turn(c, "item-1", 1, t0.Add(time.Hour))
	ws := []storage.Write{
		{Create: c},
		{},                            // nothing set
		{Create: badConv, Turn: good}, // two fields set
		{Turn: noExpiry},
		{Create: badConv},
		{End: &storage.EndWrite{TenantID: "t1", ID: c.ID}}, // zero At
		{End: &storage.EndWrite{TenantID: "t1", ID: c.ID, At: t0, Sentiment: math.Inf(1)}},
		{Turn: good},
		{Truncate: &storage.TruncateWrite{TenantID: "t1", ConversationID: c.ID, ItemID: "item-x", TextSealed: sealed("x")}},
	}
	errs := mustBatch(t, s, ws)
	wantBatchErrs(t, errs, []error{nil, storage.ErrInvalid, storage.ErrInvalid, storage.ErrInvalid,
		storage.ErrInvalid, storage.ErrInvalid, storage.ErrInvalid, nil, storage.ErrNotFound})
	c.TurnCount = 1
	checkConversation(t, mustGet(t, s, "t1", c.ID), c) // not ended
	if got := mustList(t, s, "t1", c.ID); len(got) != 1 {
		t.Errorf("ListTurns = %d turns, want 1", len(got))
	}

	// Only invalid writes: nothing to send, every one reported.
	errs = mustBatch(t, s, []storage.Write{{}, {Turn: noExpiry}})
	wantBatchErrs(t, errs, []error{storage.ErrInvalid, storage.ErrInvalid})
}

func testWriteBatchEmpty(t *testing.T, s storage.Store) {
	for _, ws := range [][]storage.Write{nil, {}} {
		errs, err := s.WriteBatch(t.Context(), ws)
		if err != nil || len(errs) != 0 {
			t.Errorf("WriteBatch(%v) = %v, %v; want no errors", ws, errs, err)
		}
	}
}

func testWriteBatchCancelled(t *testing.T, s storage.Store) {
	c := conversation("t1", "conv-1", t0.Add(time.Hour))
	tr := turn(c, "item-1", 0, t0.Add(time.Hour))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	errs, err := s.WriteBatch(ctx, []storage.Write{{Create: c}, {Turn: tr}})
	if !errors.Is(err, context.Canceled) || errs != nil {
		t.Errorf("WriteBatch(cancelled ctx) = %v, %v; want nil, context.Canceled", errs, err)
	}
	if tr.Seq != 0 {
		t.Errorf("Seq written back by a failed batch: %d", tr.Seq)
	}
	_, err = s.GetConversation(t.Context(), "t1", c.ID)
	wantErr(t, "GetConversation after a cancelled batch", err, storage.ErrNotFound)

	// The store is still usable: the cancelled batch left no transaction
	// open behind it.
	wantBatchErrs(t, mustBatch(t, s, []storage.Write{{Create: c}, {Turn: tr}}), []error{nil, nil})
	if tr.Seq != 1 {
		t.Errorf("Seq = %d, want 1", tr.Seq)
	}
}

func testWriteBatchConcurrent(t *testing.T, s storage.Store) {
	const (
		workers = 8
		batches = 5
		perConv = 8
	)
	shared := conversation("t1", "shared", t0.Add(time.Hour))
	mustCreate(t, s, shared)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for b := range batches {
				c := conversation("t1", fmt.Sprintf("conv-%d-%d", w, b), t0.Add(time.Hour))
				ws := []storage.Write{{Create: c}}
				for i := range perConv {
					ws = append(ws,
						storage.Write{Turn: turn(c, fmt.Sprint("item-", i), i+1, t0.Add(time.Hour))},
						storage.Write{Turn: turn(shared, fmt.Sprintf("%s-item-%d", c.ID, i), 0, t0.Add(time.Hour))})
				}
				ws = append(ws, storage.Write{End: &storage.EndWrite{TenantID: "t1", ID: c.ID, At: t0.Add(time.Minute)}})
				errs, err := s.WriteBatch(t.Context(), ws)
				if err != nil {
					t.Errorf("WriteBatch: %v", err)
					return
				}
				for i, err := range errs {
					if err != nil {
						t.Errorf("%s write %d: %v", c.ID, i, err)
					}
				}
			}
		})
	}
	wg.Wait()
	total := workers * batches * perConv
	if n := mustGet(t, s, "t1", shared.ID).TurnCount; n != total {
		t.Errorf("shared TurnCount = %d, want %d", n, total)
	}
	for i, tr := range mustList(t, s, "t1", shared.ID) {
		if tr.Seq != i+1 {
			t.Fatalf("shared turn %d has Seq %d: seqs must be 1..%d without gaps", i, tr.Seq, total)
		}
	}
}

// Legacy is a database on which only migration 1 (0001_init.sql) has been
// applied, as version 1 of Parley left it, for RunUpgradeFrom1 and
// RunUpgradeToAccounts.
type Legacy struct {
	// Write inserts c and turns with the SQL of version 1, the way a node
	// still running it would: raw INSERTs naming only the columns of
	// migration 1, so the voice latency fields (EndOfTurnMS and after),
	// EndUser and the sentiments are not written. A turn's TextSealed is
	// written as version 1's plaintext text column (the suite makes it
	// valid UTF-8 there): it is the plaintext Privacy.LegacyPlaintext
	// finds. c.TurnCount and every turn's Seq are set by the suite and
	// stored as given. Write is called before and after Open.
	Write func(t *testing.T, c *storage.Conversation, turns []*storage.Turn)
	// WriteAPIKey inserts k with the SQL of version 1 (the columns of
	// migration 1 only), before or after Open.
	WriteAPIKey func(t *testing.T, k *storage.APIKey)
	// Open opens a Backend on the database with the current code, which
	// applies the later migrations, and closes it when the test ends.
	Open func(t *testing.T) storage.Backend
}

// legacyTurn is a turn as version 1 wrote it: plaintext text (valid
// UTF-8, in TextSealed for Legacy.Write), no sentiment.
func legacyTurn(c *storage.Conversation, id string, seq int) *storage.Turn {
	tr := turn(c, id, seq, t0.Add(time.Hour))
	tr.TextSealed = []byte("Bonjour " + id + ", ça va ?")
	tr.Sentiment = 0
	return tr
}

// asUpgraded is what ListTurns returns for a turn version 1 wrote, until
// its plaintext is sealed (Privacy.ReplaceLegacy): its text still counts
// as stored, but there is no sealed text to hand out (the plaintext is
// never returned as if it were sealed).
func asUpgraded(tr *storage.Turn) *storage.Turn {
	u := *tr
	u.TextSealed = nil
	return &u
}

// checkLegacyTurns checks, on a Backend, that the plaintext of the turns
// version 1 wrote (before the upgrade and during it) is found by
// LegacyPlaintext, replaced by ReplaceLegacy, and then read back sealed
// and found no more.
func checkLegacyTurns(t *testing.T, s storage.Store, turns []*storage.Turn) {
	t.Helper()
	p, isBackend := s.(storage.Backend)
	if !isBackend {
		return
	}
	ctx := t.Context()
	rows, err := p.LegacyPlaintext(ctx, 1000)
	if err != nil {
		t.Fatalf("LegacyPlaintext: %v", err)
	}
	found := map[string]storage.LegacyRow{}
	for _, r := range rows {
		if r.Kind == storage.LegacyTurn {
			found[r.ConversationID+"/"+r.ID] = r
		}
	}
	if len(found) != len(turns) {
		t.Errorf("LegacyPlaintext found %d turns, want %d: %+v", len(found), len(turns), rows)
	}
	for _, tr := range turns {
		r, ok := found[tr.ConversationID+"/"+tr.ID]
		if !ok {
			t.Errorf("LegacyPlaintext: turn %s/%s not found", tr.ConversationID, tr.ID)
			continue
		}
		if r.TenantID != tr.TenantID || !bytes.Equal(r.Plaintext, tr.TextSealed) {
			t.Errorf("legacy row %+v: want tenant %s, plaintext %q", r, tr.TenantID, tr.TextSealed)
		}
		if err := p.ReplaceLegacy(ctx, r, sealed(string(r.Plaintext))); err != nil {
			t.Errorf("ReplaceLegacy(%s/%s): %v", tr.ConversationID, tr.ID, err)
		}
	}
	rows, err = p.LegacyPlaintext(ctx, 1000)
	if err != nil {
		t.Fatalf("LegacyPlaintext after ReplaceLegacy: %v", err)
	}
	for _, r := range rows {
		if r.Kind == storage.LegacyTurn {
			t.Errorf("LegacyPlaintext after ReplaceLegacy still finds %+v", r)
		}
	}
	for _, tr := range turns {
		for _, got := range mustList(t, s, tr.TenantID, tr.ConversationID) {
			if got.ID == tr.ID {
				want := *tr
				want.TextSealed = sealed(string(tr.TextSealed))
				checkTurn(t, &got, &want)
			}
		}
	}
	// A row already replaced is gone for ReplaceLegacy.
	if len(turns) > 0 {
		tr := turns[0]
		err := p.ReplaceLegacy(ctx, storage.LegacyRow{Kind: storage.LegacyTurn, TenantID: tr.TenantID,
			ConversationID: tr.ConversationID, ID: "item-never"}, sealed("x"))
		wantErr(t, "ReplaceLegacy(missing turn)", err, storage.ErrNotFound)
	}
}

// RunUpgradeFrom1 checks the upgrade from schema version 1: rows written
// before the upgrade, and rows a version 1 node writes during a rolling
// upgrade, read back with zero voice latency and everything else intact,
// the upgraded store round-trips every latency field, and it keeps
// ephemeral keys. legacy must return a fresh database at version 1.
func RunUpgradeFrom1(t *testing.T, legacy func(t *testing.T) Legacy) {
	db := legacy(t)

	// Version 1 rows: the old latency figures are set, the voice ones
	// cannot be.
	v1Turns := func(c *storage.Conversation, n int) []*storage.Turn {
		var turns []*storage.Turn
		for seq := 1; seq <= n; seq++ {
			turns = append(turns, legacyTurn(c, fmt.Sprint("item-", seq), seq))
		}
		turns[0].Role = storage.RoleUser
		turns[0].Latency = storage.Latency{}
		c.TurnCount = n
		return turns
	}
	before := conversation("t1", "before-upgrade", t0.Add(time.Hour))
	beforeTurns := v1Turns(before, 2)
	db.Write(t, before, beforeTurns)

	s := db.Open(t)

	// A version 1 node still writing after the schema moved on.
	during := conversation("t1", "during-upgrade", t0.Add(time.Hour))
	duringTurns := v1Turns(during, 2)
	db.Write(t, during, duringTurns)

	for _, tc := range []struct {
		c     *storage.Conversation
		turns []*storage.Turn
	}{{before, beforeTurns}, {during, duringTurns}} {
		checkConversation(t, mustGet(t, s, "t1", tc.c.ID), tc.c)
		got := mustList(t, s, "t1", tc.c.ID)
		if len(got) != len(tc.turns) {
			t.Fatalf("%s: ListTurns = %d turns, want %d", tc.c.ID, len(got), len(tc.turns))
		}
		for i, want := range tc.turns {
			// want.Latency has zero voice fields: they must read back 0.
			checkTurn(t, &got[i], asUpgraded(want))
		}
	}
	checkLegacyTurns(t, s, append(append([]*storage.Turn{}, beforeTurns...), duringTurns...))

	// The upgraded store appends after the old turns (turn_count carried
	// over) and keeps every latency field.
	next := turn(before, "item-voice", 0, t0.Add(time.Hour))
	next.Latency = voiceLatency()
	mustAppend(t, s, next)
	if next.Seq != 3 {
		t.Errorf("Seq assigned after the upgrade = %d, want 3", next.Seq)
	}
	got := mustList(t, s, "t1", before.ID)
	if len(got) != 3 {
		t.Fatalf("ListTurns after append = %d turns, want 3", len(got))
	}
	checkTurn(t, &got[2], next)
	if n := mustGet(t, s, "t1", before.ID).TurnCount; n != 3 {
		t.Errorf("TurnCount = %d, want 3", n)
	}

	// The later migrations' tables exist: ephemeral keys (migration 3).
	k := ephemeralKey("ek_id_1", 1, 0x01, t0.Add(time.Hour))
	mustCreateEphemeralKey(t, s, k)
	checkEphemeralKey(t, mustConsume(t, s, k, t0), k, t0)
	consumeErr(t, s, "second use after the upgrade", k.Prefix, k.Hash, t0, storage.ErrUsed)
}

// BenchmarkAppendTurn measures AppendTurn on s: "serial" appends to one
// conversation from one goroutine; "parallel" has each of b.RunParallel's
// goroutines append to its own conversation.
func BenchmarkAppendTurn(b *testing.B, s storage.Store) {
	ctx := context.Background()
	expires := time.Now().Add(time.Hour)
	var convIDs atomic.Int64
	newConv := func() (*storage.Conversation, error) {
		c := conversation(storage.DefaultTenant, fmt.Sprint("bench-", convIDs.Add(1)), expires)
		return c, s.CreateConversation(ctx, c)
	}

	b.Run("serial", func(b *testing.B) {
		c, err := newConv()
		if err != nil {
			b.Fatal(err)
		}
		seq := 0
		for b.Loop() {
			seq++
			if err := s.AppendTurn(ctx, turn(c, fmt.Sprint("item-", seq), seq, expires)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			c, err := newConv()
			if err != nil {
				b.Error(err)
				return
			}
			seq := 0
			for pb.Next() {
				seq++
				if err := s.AppendTurn(ctx, turn(c, fmt.Sprint("item-", seq), seq, expires)); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// BenchmarkWriteBatch measures WriteBatch with batches of 32 turns (and
// reports ns/turn): "serial" writes to one conversation from one
// goroutine; "parallel" has each of b.RunParallel's goroutines write to
// its own conversation. One op is one batch.
func BenchmarkWriteBatch(b *testing.B, s storage.Store) {
	const perBatch = 32
	ctx := context.Background()
	expires := time.Now().Add(time.Hour)
	var convIDs atomic.Int64
	newConv := func() (*storage.Conversation, error) {
		c := conversation(storage.DefaultTenant, fmt.Sprint("batch-", convIDs.Add(1)), expires)
		return c, s.CreateConversation(ctx, c)
	}
	run := func(c *storage.Conversation, seq *int) error {
		ws := make([]storage.Write, perBatch)
		for i := range ws {
			*seq++
			ws[i].Turn = turn(c, fmt.Sprint("item-", *seq), *seq, expires)
		}
		errs, err := s.WriteBatch(ctx, ws)
		if err != nil {
			return err
		}
		return errors.Join(errs...)
	}
	report := func(b *testing.B) {
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*perBatch), "ns/turn")
	}

	b.Run("serial", func(b *testing.B) {
		c, err := newConv()
		if err != nil {
			b.Fatal(err)
		}
		seq := 0
		for b.Loop() {
			if err := run(c, &seq); err != nil {
				b.Fatal(err)
			}
		}
		report(b)
	})
	b.Run("parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			c, err := newConv()
			if err != nil {
				b.Error(err)
				return
			}
			seq := 0
			for pb.Next() {
				if err := run(c, &seq); err != nil {
					b.Error(err)
					return
				}
			}
		})
		report(b)
	})
}
