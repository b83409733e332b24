package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/rs/zerolog"

	"parley/realtime"
)

// mint posts to /v1/realtime/client_secrets and returns the status and the
// decoded body.
func (h *harness) mint(key, contentType, body string) (int, map[string]any) {
	h.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, h.srv.URL+"/v1/realtime/client_secrets", strings.NewReader(body))
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		h.t.Fatalf("status %d, body %q is not JSON", resp.StatusCode, b)
	}
	return resp.StatusCode, m
}

func (h *harness) mustMint(body string) string {
	h.t.Helper()
	code, m := h.mint(testKey, "application/json", body)
	if code != http.StatusOK {
		h.t.Fatalf("mint: %d %v", code, m)
	}
	return m["value"].(string)
}

// dialEphemeral opens a WebSocket the way a browser does, with the key in
// the subprotocol.
func (h *harness) dialEphemeral(key string) (*client, *http.Response, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, resp, err := websocket.Dial(ctx, h.url+"/v1/realtime?model=gpt-realtime", &websocket.DialOptions{
		Subprotocols: []string{"realtime", "openai-insecure-api-key." + key}})
	if err != nil {
		return nil, resp, err
	}
	h.t.Cleanup(func() { _ = conn.CloseNow() })
	return &client{t: h.t, conn: conn}, resp, nil
}

func TestClientSecretMintsOneUseKey(t *testing.T) {
	h := newHarness(t, &scriptAgent{deltas: []string{"Hi."}}, nil)
	code, m := h.mint(testKey, "application/json",
		`{"expires_after":{"anchor":"created_at","seconds":120},"session":{"type":"realtime","model":"assistant","instructions":"Speak like a pirate."}}`)
	if code != http.StatusOK {
		t.Fatalf("mint: %d %v", code, m)
	}
	key := m["value"].(string)
	if !strings.HasPrefix(key, "ek_") || len(key) != 46 {
		t.Fatalf("value %q: want ek_ + 43 characters", key)
	}
	if exp := int64(m["expires_at"].(float64)); exp < time.Now().Unix()+110 || exp > time.Now().Unix()+130 {
		t.Errorf("expires_at %d, want about now+120", exp)
	}
	sess := m["session"].(map[string]any)
	if sess["model"] != "assistant" || sess["instructions"] != "Speak like a pirate." || sess["type"] != "realtime" {
		t.Errorf("session %v", sess)
	}
	// Only the hash is stored.
	h.store.mu.Lock()
	for _, k := range h.store.ephemeral {
		if bytes.Contains(k.Session, []byte(key)) || k.Prefix != key[:KeyPrefixLen] || !bytes.Equal(k.Hash, HashKey(key)) {
			t.Errorf("stored key %+v", k)
		}
	}
	h.store.mu.Unlock()

	c, _, err := h.dialEphemeral(key)
	if err != nil {
		t.Fatalf("dial with the ephemeral key: %v", err)
	}
	ev := c.next()
	if ev["type"] != realtime.TypeSessionCreated {
		t.Fatalf("first event %v", ev)
	}
	if got := ev["session"].(map[string]any)["instructions"]; got != "Speak like a pirate." {
		t.Errorf("session instructions %q: the key's settings were not applied", got)
	}
	// A second use is refused.
	_, resp, err := h.dialEphemeral(key)
	if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("second use: err %v resp %v, want 401", err, resp)
	}
	if b, _ := io.ReadAll(resp.Body); !strings.Contains(string(b), "ephemeral_key_used") {
		t.Errorf("second use body %s", b)
	}
}

func TestEphemeralKeyExpires(t *testing.T) {
	var mu sync.Mutex
	now := time.Now()
	var logs syncBuf
	h := newHarness(t, &scriptAgent{deltas: []string{"Hi."}}, func(o *Options) {
		o.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
		o.Logger = zerolog.New(&logs)
	})
	key := h.mustMint(`{"expires_after":{"anchor":"created_at","seconds":10}}`)
	mu.Lock()
	now = now.Add(11 * time.Second)
	mu.Unlock()
	_, resp, err := h.dialEphemeral(key)
	if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("expired key: err %v resp %v, want 401", err, resp)
	}
	if b, _ := io.ReadAll(resp.Body); !strings.Contains(string(b), "ephemeral_key_expired") {
		t.Errorf("body %s", b)
	}
	// The refusal is logged, without the key.
	if l := logs.String(); !strings.Contains(l, `"code":"ephemeral_key_expired"`) || strings.Contains(l, key[3:]) {
		t.Errorf("logs: %s", l)
	}
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func TestClientSecretBadRequests(t *testing.T) {
	h := newHarness(t, &scriptAgent{deltas: []string{"Hi."}}, nil)
	ek := h.mustMint(`{}`)
	cases := []struct {
		name, key, ctype, body string
		status                 int
		code, param            string
	}{
		{"no key", "", "application/json", `{}`, 401, "missing_api_key", ""},
		{"wrong key", "sk_wrong_0123456789abcdef", "application/json", `{}`, 401, "invalid_api_key", ""},
		{"ephemeral key cannot mint", ek, "application/json", `{}`, 401, "ephemeral_key_not_allowed", ""},
		{"content type", testKey, "text/plain", `{}`, 415, "unsupported_media_type", ""},
		{"not json", testKey, "application/json", `{"session":`, 400, "invalid_json", ""},
		{"two values", testKey, "application/json", `{} {}`, 400, "invalid_json", ""},
		{"unknown field", testKey, "application/json", `{"ttl":5}`, 400, "unknown_parameter", "ttl"},
		{"seconds too short", testKey, "application/json", `{"expires_after":{"anchor":"created_at","seconds":5}}`, 400, "invalid_value", "expires_after.seconds"},
		{"seconds too long", testKey, "application/json", `{"expires_after":{"seconds":7201}}`, 400, "invalid_value", "expires_after.seconds"},
		{"anchor", testKey, "application/json", `{"expires_after":{"anchor":"now","seconds":60}}`, 400, "invalid_value", "expires_after.anchor"},
		{"unknown agent", testKey, "application/json", `{"session":{"model":"nobody"}}`, 404, "model_not_found", "session.model"},
		{"session type", testKey, "application/json", `{"session":{"type":"transcription"}}`, 400, "unsupported", "session.type"},
		{"unknown session field", testKey, "application/json", `{"session":{"voices":"x"}}`, 400, "unknown_parameter", "session.voices"},
		{"bad modality", testKey, "application/json", `{"session":{"output_modalities":["video"]}}`, 400, "invalid_value", "session.output_modalities"},
		{"audio without synthesizer", testKey, "application/json", `{"session":{"output_modalities":["audio"]}}`, 400, "unsupported", "session.output_modalities"},
		{"too large", testKey, "application/json", `{"session":{"instructions":"` + strings.Repeat("a", 70<<10) + `"}}`, 413, "body_too_large", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, m := h.mint(tc.key, tc.ctype, tc.body)
			e, _ := m["error"].(map[string]any)
			if status != tc.status || e == nil || e["code"] != tc.code {
				t.Fatalf("got %d %v, want %d %s", status, m, tc.status, tc.code)
			}
			if tc.param != "" && e["param"] != tc.param {
				t.Errorf("param %v, want %s", e["param"], tc.param)
			}
			if e["message"] == "" {
				t.Error("no message")
			}
		})
	}
}
