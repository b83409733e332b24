package main

import (
	"context"
	"errors"
	"testing"
	"time"

	"parley/storage"
	"parley/storage/backends"
)

// TestRetentionSweepAtStart: parleyd deletes expired conversations and
// turns when it starts, and keeps the rest.
func TestRetentionSweepAtStart(t *testing.T) {
	for _, b := range backendsUnderTest(t) {
		t.Run(b.name, func(t *testing.T) {
			storageURL := b.url(t)
			ctx := context.Background()
			st, err := backends.Open(ctx, storageURL)
			if err != nil {
				t.Fatal(err)
			}
			now := time.Now().UTC()
			seed := func(id string, convExpiry, turnExpiry time.Time) {
				c := &storage.Conversation{ID: id, TenantID: storage.DefaultTenant, AgentID: "assistant", Channel: "websocket",
					StartedAt: now.Add(-48 * time.Hour), ExpiresAt: convExpiry}
				if err := st.CreateConversation(ctx, c); err != nil {
					t.Fatal(err)
				}
				tr := &storage.Turn{ID: "item_" + id, ConversationID: id, TenantID: storage.DefaultTenant, Seq: 1, Role: "user",
					TextSealed: []byte("old words"), TextStored: true, Status: storage.TurnCompleted, StartedAt: now.Add(-48 * time.Hour),
					EndedAt: now.Add(-48 * time.Hour), ExpiresAt: turnExpiry}
				if err := st.AppendTurn(ctx, tr); err != nil {
					t.Fatal(err)
				}
			}
			seed("conv_expired", now.Add(-time.Hour), now.Add(-time.Hour))
			seed("conv_text_expired", now.Add(24*time.Hour), now.Add(-time.Minute))
			seed("conv_kept", now.Add(24*time.Hour), now.Add(24*time.Hour))
			_ = st.Close()

			r := start(t, "../../configs/parley.yaml", "PARLEY_STORAGE_URL="+storageURL)
			st, err = backends.Open(ctx, storageURL)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			deadline := time.Now().Add(10 * time.Second)
			for {
				_, err := st.GetConversation(ctx, storage.DefaultTenant, "conv_expired")
				if errors.Is(err, storage.ErrNotFound) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("expired conversation survived the start-up sweep: %v", err)
				}
				time.Sleep(20 * time.Millisecond)
			}
			if code := r.stop(t); code != 0 {
				t.Fatalf("exit %d: %s", code, r.stderr)
			}
			if ts, _ := st.ListTurns(ctx, storage.DefaultTenant, "conv_text_expired"); len(ts) != 0 {
				t.Fatalf("expired turn survived: %+v", ts)
			}
			if _, err := st.GetConversation(ctx, storage.DefaultTenant, "conv_text_expired"); err != nil {
				t.Fatalf("conversation metadata deleted with its text: %v", err)
			}
			if ts, _ := st.ListTurns(ctx, storage.DefaultTenant, "conv_kept"); len(ts) != 1 || string(ts[0].TextSealed) != "old words" {
				t.Fatalf("unexpired turn touched: %+v", ts)
			}
		})
	}
}
