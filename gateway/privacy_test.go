package gateway

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"parley/realtime"
	"parley/storage"
	"parley/storage/seal"
)

// TestTurnsRedactedAndSealed: what the recorder hands to storage is the
// tenant-policy redaction of the text, sealed for its own row, with its
// sentiment; the conversation ends with its language, its mean sentiment
// and a usage event.
func TestTurnsRedactedAndSealed(t *testing.T) {
	tests := []struct {
		name   string
		redact storage.Redaction
		want   string
	}{
		{"all kinds", storage.Redaction{Emails: true, Phones: true, Cards: true, IBANs: true},
			"I am happy, write to [email] or pay with [card] please, it is great"},
		{"emails only", storage.Redaction{Emails: true},
			"I am happy, write to [email] or pay with 4111 1111 1111 1111 please, it is great"},
		{"none", storage.Redaction{},
			"I am happy, write to jane.doe@example.com or pay with 4111 1111 1111 1111 please, it is great"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, &scriptAgent{deltas: []string{"Thank you!"}}, func(o *Options) {
				o.Policy = func(_ context.Context, tenantID string) (storage.Policy, error) {
					return storage.Policy{TenantID: tenantID, TranscriptDays: 10, MetadataDays: 20, AudioDays: 1, Redact: tc.redact}, nil
				}
			})
			c := h.mustDial()
			c.send(`{"type":"conversation.item.create","item":{"type":"message","role":"user","content":[{"type":"input_text",` +
				`"text":"I am happy, write to jane.doe@example.com or pay with 4111 1111 1111 1111 please, it is great"}]}}`)
			c.send(`{"type":"response.create"}`)
			c.until(realtime.TypeResponseDone)
			_ = c.conn.Close(websocket.StatusNormalClosure, "")
			waitNoSessions(t, h.gw)
			_ = h.gw.Close()
			conv, turns, _ := h.store.onlyConversation()
			if len(turns) != 2 {
				t.Fatalf("turns %+v", turns)
			}
			if got := opened(t, turns[0]); got != tc.want {
				t.Errorf("stored %q, want %q", got, tc.want)
			}
			if turns[0].Sentiment <= 0 || turns[0].ExpiresAt.Sub(turns[0].StartedAt) != 10*24*time.Hour {
				t.Errorf("turn sentiment %v, expiry %v", turns[0].Sentiment, turns[0].ExpiresAt.Sub(turns[0].StartedAt))
			}
			if conv.ExpiresAt.Sub(conv.StartedAt) != 20*24*time.Hour {
				t.Errorf("conversation expiry %v", conv.ExpiresAt.Sub(conv.StartedAt))
			}
			us := h.store.usageEvents()
			if len(us) != 1 || us[0].ConversationID != conv.ID || us[0].Channel != "websocket" || us[0].Language != "en" ||
				us[0].ExpiresAt.Sub(us[0].At) != storage.UsageRetention {
				t.Errorf("usage events %+v", us)
			}
		})
	}
}

// TestEndUserPseudonymised: an end user named by the business (end_user
// on the WebSocket URL with a secret key, or in client_secrets for an
// ephemeral key) is stored as its pseudonym only; a bad one is refused
// before the session starts.
func TestEndUserPseudonymised(t *testing.T) {
	h := newHarness(t, &scriptAgent{deltas: []string{"ok"}}, nil)
	c, _, err := h.dial("?model=assistant&end_user=user-42", nil)
	if err != nil {
		t.Fatal(err)
	}
	c.send(userHello)
	c.until(realtime.TypeItemDone)
	_ = c.conn.Close(websocket.StatusNormalClosure, "")

	key := h.mustMint(`{"session":{"model":"assistant","instructions":"Jane Doe's order 4711 is late."},"end_user":"user-43"}`)
	for _, k := range h.store.ephemeral {
		if !strings.HasPrefix(string(k.Session), fakeSealPrefix+k.TenantID+"|"+string(seal.SessionAAD(k.TenantID, k.ID))+"|") {
			t.Fatalf("the minted session is not stored sealed for its key: %q", k.Session)
		}
	}
	c2, _, err := h.dialEphemeral(key)
	if err != nil {
		t.Fatal(err)
	}
	c2.send(userHello)
	c2.until(realtime.TypeItemDone)
	_ = c2.conn.Close(websocket.StatusNormalClosure, "")
	waitNoSessions(t, h.gw)
	_ = h.gw.Close()
	got := map[string]bool{}
	for _, conv := range h.store.conversations() {
		got[conv.EndUser] = true
	}
	p42, _ := fakeSealer{}.Pseudonym(context.Background(), storage.DefaultTenant, "user-42")
	p43, _ := fakeSealer{}.Pseudonym(context.Background(), storage.DefaultTenant, "user-43")
	if !got[p42] || !got[p43] {
		t.Fatalf("end users stored %v, want the two pseudonyms", got)
	}
	for eu := range got {
		if strings.Contains(eu, "user-4") {
			t.Fatalf("the raw end-user id is stored: %q", eu)
		}
	}

	h2 := newHarness(t, &scriptAgent{}, nil)
	for _, q := range []string{"?model=assistant&end_user=" + strings.Repeat("x", 257), "?model=assistant&end_user=a%0Ab"} {
		_, resp, err := h2.dial(q, nil)
		if err == nil || resp == nil || resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: %v %v", q[:40], resp, err)
		}
	}
	if status, body := h2.mint(testKey, "application/json", `{"end_user":"`+strings.Repeat("y", 300)+`"}`); status != http.StatusBadRequest {
		t.Errorf("mint with a long end_user: %d %v", status, body)
	}
}

// TestPolicyUnavailableRefusesSession: without its tenant's policy a
// session cannot know what it may store, so it does not start.
func TestPolicyUnavailableRefusesSession(t *testing.T) {
	h := newHarness(t, &scriptAgent{}, func(o *Options) {
		o.Policy = func(context.Context, string) (storage.Policy, error) { return storage.Policy{}, errors.New("db down") }
	})
	_, resp, err := h.dial("?model=assistant", nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("session with no policy: %v %v", resp, err)
	}
}

// TestAudioLogging: with the tenant's audio logging on, the user's turn
// audio goes to storage sealed for its row (as Ogg Opus) with its own
// expiry; with it off, no audio write is ever made.
func TestAudioLogging(t *testing.T) {
	for _, on := range []bool{true, false} {
		h := newHarness(t, &scriptAgent{deltas: []string{"Fine."}}, func(o *Options) {
			o.Recognizer = &fakeRecognizer{text: "what is parley"}
			o.Synthesizer = &toneSynth{}
			o.Policy = func(_ context.Context, tenantID string) (storage.Policy, error) {
				return storage.Policy{TenantID: tenantID, TranscriptDays: 90, MetadataDays: 365, AudioLogging: on, AudioDays: 3}, nil
			}
		})
		c := h.mustDial()
		c.sendPCM(loadFixture(t, "what_is_parley"))
		c.until(realtime.TypeResponseDone)
		_ = c.conn.Close(websocket.StatusNormalClosure, "")
		waitNoSessions(t, h.gw)
		_ = h.gw.Close()
		logged := h.store.loggedAudio()
		if !on {
			if len(logged) != 0 {
				t.Fatalf("audio logging off, yet %d audio writes", len(logged))
			}
			continue
		}
		_, turns, _ := h.store.onlyConversation()
		if len(logged) != 1 || len(turns) == 0 || logged[0].TurnID != turns[0].ID {
			t.Fatalf("logged %d, turns %+v", len(logged), turns)
		}
		a := logged[0]
		prefix := fakeSealPrefix + a.TenantID + "|" + string(seal.AudioAAD(a.TenantID, a.ConversationID, a.TurnID)) + "|"
		if !bytes.HasPrefix(a.Sealed, []byte(prefix+"OggS")) || a.Format != "audio/ogg" || a.DurationMS < 500 ||
			a.ExpiresAt.Sub(a.CreatedAt) != 3*24*time.Hour {
			t.Fatalf("logged audio %s %d ms expiry %v, sealed %q", a.Format, a.DurationMS, a.ExpiresAt.Sub(a.CreatedAt), a.Sealed[:min(len(a.Sealed), 60)])
		}
	}
}

// TestPolicyChangeReachesRunningSessions: a session that started under one
// policy writes its later turns under the stricter of it and the policy in
// force: text no longer kept, audio no longer logged, shorter expiry.
func TestPolicyChangeReachesRunningSessions(t *testing.T) {
	var mu sync.Mutex
	pol := storage.Policy{TranscriptDays: 90, MetadataDays: 365, AudioLogging: true, AudioDays: 30}
	h := newHarness(t, &scriptAgent{deltas: []string{"Fine."}}, func(o *Options) {
		o.Recognizer = &fakeRecognizer{text: "what is parley"}
		o.Synthesizer = &toneSynth{}
		o.Policy = func(_ context.Context, tenantID string) (storage.Policy, error) {
			mu.Lock()
			defer mu.Unlock()
			p := pol
			p.TenantID = tenantID
			return p, nil
		}
	})
	c := h.mustDial()
	mu.Lock()
	pol = storage.Policy{TranscriptDays: 0, MetadataDays: 7, AudioLogging: false, AudioDays: 1}
	mu.Unlock()
	c.sendPCM(loadFixture(t, "what_is_parley"))
	c.until(realtime.TypeResponseDone)
	_ = c.conn.Close(websocket.StatusNormalClosure, "")
	waitNoSessions(t, h.gw)
	_ = h.gw.Close()
	_, turns, _ := h.store.onlyConversation()
	if len(turns) == 0 {
		t.Fatal("no turns stored")
	}
	for _, tr := range turns {
		if tr.TextStored || len(tr.TextSealed) != 0 || tr.ExpiresAt.Sub(tr.StartedAt) > 7*24*time.Hour {
			t.Errorf("turn %s written under the old policy: text %v, kept %v", tr.ID, tr.TextStored, tr.ExpiresAt.Sub(tr.StartedAt))
		}
	}
	if n := len(h.store.loggedAudio()); n != 0 {
		t.Errorf("%d audio logged after logging was turned off", n)
	}
}
