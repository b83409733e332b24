package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/jackc/pgx/v5"

	"parley/storage"
	"parley/storage/backends"
)

const testAPIKey = "sk_e2e_0123456789abcdefghijkl"

// testMasterKey is the master key every in-process parleyd of the tests
// runs with (32 zero-free bytes, base64), so no test writes a key file.
const testMasterKey = "test-mk:MDEyMzQ1Njc4OWFiY2RlZmdoaWprbG1ub3BxcnN0dXY="

// backend is a storage URL for an end-to-end run: SQLite always, and
// PostgreSQL (in a fresh schema) when PARLEY_TEST_POSTGRES_URL is set.
type backend struct {
	name string
	url  func(t *testing.T) string
}

func backendsUnderTest(t *testing.T) []backend {
	bs := []backend{{"sqlite", func(t *testing.T) string { return filepath.Join(t.TempDir(), "parley.db") }}}
	pg := os.Getenv("PARLEY_TEST_POSTGRES_URL")
	if pg == "" {
		t.Log("PARLEY_TEST_POSTGRES_URL not set: end-to-end PostgreSQL runs SKIPPED")
		return bs
	}
	return append(bs, backend{"postgres", func(t *testing.T) string { return freshSchema(t, pg) }})
}

func freshSchema(t *testing.T, base string) string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("postgres: %v", err)
	}
	defer conn.Close(ctx)
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "e2e_" + hex.EncodeToString(b[:])
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), base)
		if err == nil {
			_, _ = c.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
			c.Close(context.Background())
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

type running struct {
	m      *Main
	cancel context.CancelFunc
	code   chan int
	stderr *syncBuffer
	base   string // ws://127.0.0.1:PORT
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// start runs the real parleyd in-process on 127.0.0.1:0.
func start(t *testing.T, configPath string, env ...string) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	m := NewMain()
	r := &running{m: m, cancel: cancel, code: make(chan int, 1), stderr: &syncBuffer{}}
	environ := append([]string{"PARLEY_HTTP_ADDR=127.0.0.1:0", "PARLEY_API_KEY=" + testAPIKey, "PARLEY_LOG_FORMAT=json",
		"PARLEY_MASTER_KEY=" + testMasterKey,
		"PARLEY_WEBRTC_UDP_ADDRESS=127.0.0.1:0", "PARLEY_WEBRTC_INCLUDE_LOOPBACK=true"}, env...)
	go func() { r.code <- m.Main(ctx, []string{"-config", configPath}, environ, io.Discard, r.stderr) }()
	select {
	case <-m.Ready:
	case code := <-r.code:
		t.Fatalf("parleyd exited %d before listening: %s", code, r.stderr)
	case <-time.After(20 * time.Second):
		t.Fatalf("parleyd did not start: %s", r.stderr)
	}
	r.base = "ws://" + m.Addr.String()
	t.Cleanup(func() { r.stop(t) })
	return r
}

func (r *running) stop(t *testing.T) int {
	t.Helper()
	r.cancel()
	select {
	case code := <-r.code:
		r.code <- code
		return code
	case <-time.After(30 * time.Second):
		t.Fatal("parleyd did not stop")
	}
	return -1
}

type wsClient struct {
	t    *testing.T
	conn *websocket.Conn
}

func dialRT(t *testing.T, base, model string) *wsClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, base+"/v1/realtime?model="+model, &websocket.DialOptions{
		HTTPHeader: http.Header{"Authorization": {"Bearer " + testAPIKey}}})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = conn.CloseNow() })
	return &wsClient{t: t, conn: conn}
}

func (c *wsClient) send(v any) {
	c.t.Helper()
	b, _ := json.Marshal(v)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.conn.Write(ctx, websocket.MessageText, b); err != nil {
		c.t.Fatal(err)
	}
}

func (c *wsClient) next() map[string]any {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	_, b, err := c.conn.Read(ctx)
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	var ev map[string]any
	if err := json.Unmarshal(b, &ev); err != nil {
		c.t.Fatal(err)
	}
	return ev
}

func (c *wsClient) until(typ string) []map[string]any {
	c.t.Helper()
	var evs []map[string]any
	for {
		ev := c.next()
		evs = append(evs, ev)
		if ev["type"] == typ {
			return evs
		}
	}
}

// ask sends a user message and a response.create; it returns the answer
// text and the response object of response.done.
func (c *wsClient) ask(text string) (string, map[string]any) {
	c.t.Helper()
	c.send(map[string]any{"type": "conversation.item.create", "item": map[string]any{"type": "message", "role": "user",
		"content": []any{map[string]any{"type": "input_text", "text": text}}}})
	c.send(map[string]any{"type": "response.create"})
	var sb strings.Builder
	for _, ev := range c.until("response.done") {
		if ev["type"] == "response.output_text.delta" {
			sb.WriteString(ev["delta"].(string))
		}
		if ev["type"] == "response.done" {
			return sb.String(), ev["response"].(map[string]any)
		}
	}
	return "", nil
}

func TestOfflineConversationStored(t *testing.T) {
	for _, b := range backendsUnderTest(t) {
		t.Run(b.name, func(t *testing.T) {
			storageURL := b.url(t)
			r := start(t, "../../configs/parley.yaml", "PARLEY_STORAGE_URL="+storageURL)
			c := dialRT(t, r.base, "assistant")
			created := c.next()
			if created["type"] != "session.created" {
				t.Fatal(created)
			}
			sessID := created["session"].(map[string]any)["id"].(string)
			c.until("conversation.item.done") // greeting
			answer, resp := c.ask("How long are transcripts kept?")
			if resp["status"] != "completed" || !strings.Contains(answer, "90") || !strings.Contains(answer, "Source") {
				t.Fatalf("answer %q (%v)", answer, resp["status"])
			}
			unknown, _ := c.ask("What is the airspeed velocity of an unladen swallow?")
			if !strings.Contains(strings.ToLower(unknown), "know") {
				t.Fatalf("no honest don't-know: %q", unknown)
			}
			_ = c.conn.Close(websocket.StatusNormalClosure, "")
			if code := r.stop(t); code != 0 {
				t.Fatalf("exit %d: %s", code, r.stderr)
			}
			if strings.Contains(r.stderr.String(), "transcripts kept") || strings.Contains(r.stderr.String(), "swallow") {
				t.Fatal("conversation text leaked into the logs")
			}
			if !strings.Contains(r.stderr.String(), sessID) {
				t.Fatal("logs do not carry the session id")
			}
			convID := "conv_" + strings.TrimPrefix(sessID, "sess_")
			st, err := backends.Open(context.Background(), storageURL)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			conv, err := st.GetConversation(context.Background(), storage.DefaultTenant, convID)
			if err != nil {
				t.Fatal(err)
			}
			if conv.AgentID != "assistant" || conv.TurnCount != 4 || conv.EndedAt.IsZero() || conv.Channel != "websocket" {
				t.Fatalf("conversation %+v", conv)
			}
			turns, err := st.ListTurns(context.Background(), storage.DefaultTenant, convID)
			if err != nil || len(turns) != 4 {
				t.Fatalf("turns %+v %v", turns, err)
			}
			if turnText(t, st, turns[0]) != "How long are transcripts kept?" || turnText(t, st, turns[1]) != answer || turns[1].Role != "assistant" {
				t.Fatalf("turns %+v", turns)
			}
			if got := turns[1].ExpiresAt.Sub(turns[1].StartedAt); got != 90*24*time.Hour {
				t.Fatalf("turn expiry %v", got)
			}
		})
	}
}

// fakeOpenAI is an OpenAI-compatible chat completions server streaming SSE.
type fakeOpenAI struct {
	mode  atomic.Value // "ok", "error500", "slow"
	calls atomic.Int32
	delay time.Duration
}

func (f *fakeOpenAI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/v1/chat/completions" {
		http.NotFound(w, r)
		return
	}
	f.calls.Add(1)
	var req struct {
		Model    string `json:"model"`
		Stream   bool   `json:"stream"`
		Messages []struct {
			Role    string `json:"role"`
			Content string `json:"content"`
		} `json:"messages"`
	}
	_ = json.NewDecoder(r.Body).Decode(&req)
	switch f.mode.Load().(string) {
	case "error500":
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(500)
		_, _ = io.WriteString(w, `{"error":{"message":"upstream exploded","type":"server_error"}}`)
		return
	case "slow":
		select {
		case <-time.After(f.delay):
		case <-r.Context().Done():
			return
		}
	}
	w.Header().Set("Content-Type", "text/event-stream")
	fl := w.(http.Flusher)
	grounded := "no"
	if len(req.Messages) > 0 && strings.Contains(req.Messages[0].Content, "90 days") {
		grounded = "yes"
	}
	for i, d := range []string{"Hello", " from", " the", " fake (grounded=" + grounded + ")"} {
		chunk := fmt.Sprintf(`{"id":"c1","object":"chat.completion.chunk","created":1,"model":%q,"choices":[{"index":0,"delta":{"content":%q},"finish_reason":null}]}`, req.Model, d)
		fmt.Fprintf(w, "data: %s\n\n", chunk)
		fl.Flush()
		if f.mode.Load().(string) == "drip" {
			time.Sleep(time.Duration(i+1) * 150 * time.Millisecond)
		}
	}
	fmt.Fprintf(w, "data: %s\n\n", `{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`)
	fmt.Fprintf(w, "data: %s\n\n", `{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":42,"completion_tokens":5,"total_tokens":47}}`)
	fmt.Fprint(w, "data: [DONE]\n\n")
	fl.Flush()
}

func openAIConfig(t *testing.T, baseURL string) string {
	t.Helper()
	kdir, err := filepath.Abs("../../configs/knowledge/assistant")
	if err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`
shutdown:
  drain_timeout: 10s
agents:
  - id: llm
    engine: openai
    knowledge_dir: %s
    instructions: You are a test agent.
    openai:
      base_url: %s
      model: fake-model
      api_key_env: FAKE_OPENAI_KEY
      first_token_timeout: 500ms
      request_timeout: 10s
      retries: 1
`, kdir, baseURL)
	p := filepath.Join(t.TempDir(), "parley.yaml")
	if err := os.WriteFile(p, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestOpenAIEngineEndToEnd(t *testing.T) {
	fake := &fakeOpenAI{delay: 2 * time.Second}
	fake.mode.Store("ok")
	upstream := httptest.NewServer(fake)
	defer upstream.Close()
	for _, b := range backendsUnderTest(t) {
		t.Run(b.name, func(t *testing.T) {
			storageURL := b.url(t)
			r := start(t, openAIConfig(t, upstream.URL+"/v1"), "PARLEY_STORAGE_URL="+storageURL)
			c := dialRT(t, r.base, "llm")
			sessID := c.next()["session"].(map[string]any)["id"].(string)

			fake.mode.Store("ok")
			answer, resp := c.ask("How long are transcripts kept?")
			if answer != "Hello from the fake (grounded=yes)" || resp["status"] != "completed" {
				t.Fatalf("answer %q %v", answer, resp)
			}
			if u := resp["usage"].(map[string]any); u["input_tokens"] != 42.0 || u["output_tokens"] != 5.0 {
				t.Fatalf("usage %v", u)
			}

			fake.mode.Store("error500")
			before := fake.calls.Load()
			c.send(map[string]any{"type": "response.create"})
			evs := c.until("response.done")
			var code string
			for _, ev := range evs {
				if ev["type"] == "error" {
					code = ev["error"].(map[string]any)["code"].(string)
				}
			}
			if code != "provider_unavailable" || evs[len(evs)-1]["response"].(map[string]any)["status"] != "failed" {
				t.Fatalf("events %v", evs)
			}
			if n := fake.calls.Load() - before; n != 2 {
				t.Fatalf("upstream calls for a 500: %d, want 2 (one retry)", n)
			}

			fake.mode.Store("slow")
			c.send(map[string]any{"type": "response.create"})
			evs = c.until("response.done")
			if final := evs[len(evs)-1]["response"].(map[string]any); final["status"] != "failed" ||
				final["status_details"].(map[string]any)["error"].(map[string]any)["code"] != "provider_timeout" {
				t.Fatalf("slow first token: %v", final)
			}

			// Cancellation while the provider streams slowly.
			fake.mode.Store("drip")
			c.send(map[string]any{"type": "response.create"})
			c.until("response.output_text.delta")
			c.send(map[string]any{"type": "response.cancel"})
			evs = c.until("response.done")
			if final := evs[len(evs)-1]["response"].(map[string]any); final["status"] != "cancelled" {
				t.Fatalf("cancel: %v", final)
			}
			_ = c.conn.Close(websocket.StatusNormalClosure, "")
			if code := r.stop(t); code != 0 {
				t.Fatalf("exit %d", code)
			}
			st, err := backends.Open(context.Background(), storageURL)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			convID := "conv_" + strings.TrimPrefix(sessID, "sess_")
			turns, err := st.ListTurns(context.Background(), storage.DefaultTenant, convID)
			if err != nil {
				t.Fatal(err)
			}
			// user, assistant (completed), assistant (cancelled, partial)
			if len(turns) != 3 || turnText(t, st, turns[1]) != answer || turns[2].Status != storage.TurnCancelled || turnText(t, st, turns[2]) == "" {
				t.Fatalf("turns %+v", turns)
			}
		})
	}
}

func TestConfigErrorsStopStartup(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	_ = os.WriteFile(bad, []byte("http:\n  adress: ':1'\n"), 0o644)
	for _, tt := range []struct {
		args []string
		env  []string
		want string
	}{
		{[]string{"-config", bad}, nil, `unknown key "adress" in http`},
		{[]string{"-config", "../../configs/parley.yaml"}, []string{"PARLEY_HTTP_ADDR=nonsense"}, "http.addr"},
		{[]string{"-config", filepath.Join(dir, "missing.yaml")}, nil, "no such file"},
		{[]string{"-bogus"}, nil, "flag provided but not defined"},
	} {
		var stderr bytes.Buffer
		code := NewMain().Main(context.Background(), tt.args, tt.env, io.Discard, &stderr)
		if code != 2 || !strings.Contains(stderr.String(), tt.want) {
			t.Errorf("%v: exit %d, stderr %q, want 2 and %q", tt.args, code, stderr.String(), tt.want)
		}
	}
}

// TestSIGTERMDrains runs the built binary, sends SIGTERM while a turn is in
// flight, and checks the turn finishes, is stored, and the exit code is 0.
func TestSIGTERMDrains(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "parleyd")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	fake := &fakeOpenAI{}
	fake.mode.Store("drip")
	upstream := httptest.NewServer(fake)
	defer upstream.Close()
	dbPath := filepath.Join(t.TempDir(), "p.db")
	cmd := exec.Command(bin, "-config", openAIConfig(t, upstream.URL+"/v1"))
	cmd.Env = append(os.Environ(), "PARLEY_HTTP_ADDR=127.0.0.1:0", "PARLEY_API_KEY="+testAPIKey, "PARLEY_MASTER_KEY="+testMasterKey, "PARLEY_STORAGE_URL="+dbPath, "PARLEY_LOG_FORMAT=json")
	stdout, _ := cmd.StdoutPipe()
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill() }()
	addr := make(chan string, 1)
	go func() {
		buf := make([]byte, 4096)
		var all []byte
		for {
			n, err := stdout.Read(buf)
			all = append(all, buf[:n]...)
			if i := bytes.Index(all, []byte("listening on http://localhost:")); i >= 0 {
				rest := all[i+len("listening on http://localhost:"):]
				if j := bytes.IndexByte(rest, '\n'); j > 0 {
					addr <- "ws://127.0.0.1:" + string(rest[:j])
					_, _ = io.Copy(io.Discard, stdout)
					return
				}
			}
			if err != nil {
				close(addr)
				return
			}
		}
	}()
	var base string
	select {
	case base = <-addr:
	case <-time.After(20 * time.Second):
		t.Fatalf("no banner: %s", stderr.String())
	}
	c := dialRT(t, base, "llm")
	sessID := c.next()["session"].(map[string]any)["id"].(string)
	c.send(map[string]any{"type": "conversation.item.create", "item": map[string]any{"type": "message", "role": "user",
		"content": []any{map[string]any{"type": "input_text", "text": "hello"}}}})
	c.send(map[string]any{"type": "response.create"})
	c.until("response.output_text.delta")
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	evs := c.until("response.done")
	if final := evs[len(evs)-1]["response"].(map[string]any); final["status"] != "completed" {
		t.Fatalf("turn in flight ended %v", final["status"])
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, _, err := c.conn.Read(ctx); websocket.CloseStatus(err) != websocket.StatusGoingAway {
		t.Fatalf("close: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit: %v\n%s", err, stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("parleyd did not exit after SIGTERM")
	}
	st, err := backends.Open(context.Background(), dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	turns, err := st.ListTurns(context.Background(), storage.DefaultTenant, "conv_"+strings.TrimPrefix(sessID, "sess_"))
	if err != nil || len(turns) != 2 || turnText(t, st, turns[1]) != "Hello from the fake (grounded=no)" || turns[1].Status != storage.TurnCompleted {
		t.Fatalf("turns %+v %v", turns, err)
	}
}
