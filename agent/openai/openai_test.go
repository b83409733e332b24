package openai

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"parley/agent"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// secret is conversation text that must never appear in an error.
const secret = "my secret question about the refund of order 4711"

// fake is an OpenAI-compatible server. handle serves attempt n (from 1).
type fake struct {
	*httptest.Server
	mu     sync.Mutex
	n      int
	bodies []map[string]any
	auth   []string
}

func newFake(t *testing.T, handle func(w http.ResponseWriter, r *http.Request, n int)) *fake {
	t.Helper()
	f := &fake{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/chat/completions" {
			http.Error(w, "unexpected "+r.Method+" "+r.URL.Path, http.StatusTeapot)
			return
		}
		var body map[string]any
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		f.n++
		n := f.n
		f.bodies = append(f.bodies, body)
		f.auth = append(f.auth, r.Header.Get("Authorization"))
		f.mu.Unlock()
		handle(w, r, n)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fake) requests() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n
}

func (f *fake) body(i int) map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.bodies[i]
}

// engine returns an engine talking to f, with fast retries.
func (f *fake) engine(t *testing.T, cfg Config) *Engine {
	t.Helper()
	cfg.BaseURL = f.URL + "/v1"
	cfg.HTTPClient = f.Client()
	if cfg.Model == "" {
		cfg.Model = "test-model"
	}
	if cfg.APIKey == "" {
		cfg.APIKey = "sk-test"
	}
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.backoff = time.Millisecond
	return e
}

// SSE helpers: the wire format of OpenAI streaming.

func sse(w http.ResponseWriter, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	fmt.Fprintf(w, "data: %s\n\n", data)
	w.(http.Flusher).Flush()
}

func done(w http.ResponseWriter) {
	io.WriteString(w, "data: [DONE]\n\n")
	w.(http.Flusher).Flush()
}

func startStream(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	w.(http.Flusher).Flush()
}

func chunk(delta map[string]any, finish any) map[string]any {
	return map[string]any{
		"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "test-model",
		"choices": []any{map[string]any{"index": 0, "delta": delta, "finish_reason": finish}},
	}
}

func content(s string) map[string]any { return chunk(map[string]any{"content": s}, nil) }

func usageChunk(prompt, completion int) map[string]any {
	return map[string]any{
		"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "test-model",
		"choices": []any{},
		"usage":   map[string]any{"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
	}
}

// streamText serves a complete reply made of parts.
func streamText(w http.ResponseWriter, parts ...string) {
	startStream(w)
	sse(w, chunk(map[string]any{"role": "assistant", "content": ""}, nil))
	for _, p := range parts {
		sse(w, content(p))
	}
	sse(w, chunk(map[string]any{}, "stop"))
	done(w)
}

func apiError(w http.ResponseWriter, status int, typ, code string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	// Like some servers, echo the conversation in the message.
	json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{
		"message": "bad things happened to: " + secret, "type": typ, "code": code,
	}})
}

func question() *agent.Request {
	return &agent.Request{
		Instructions: "You are a helpful shop assistant.",
		History:      []agent.Message{{Role: "user", Text: secret}},
	}
}

// respond runs Respond and collects the deltas.
func respond(ctx context.Context, e *Engine, req *agent.Request) ([]string, agent.Usage, error) {
	var deltas []string
	usage, err := e.Respond(ctx, req, func(d string) error {
		deltas = append(deltas, d)
		return nil
	})
	return deltas, usage, err
}

func checkAgentError(t *testing.T, err error, code string, retryable bool) {
	t.Helper()
	var ae *agent.Error
	if !errors.As(err, &ae) {
		t.Fatalf("err = %v (%T), want *agent.Error %s", err, err, code)
	}
	if ae.Code != code || ae.Retryable != retryable {
		t.Errorf("error %q: code %s retryable %v, want %s %v", err, ae.Code, ae.Retryable, code, retryable)
	}
	if strings.Contains(err.Error(), "secret") || strings.Contains(ae.Message, "secret") {
		t.Errorf("error contains conversation text: %q", err)
	}
}

func TestStreamDeltasAndUsage(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
		startStream(w)
		sse(w, chunk(map[string]any{"role": "assistant", "content": ""}, nil))
		for _, p := range []string{"Hel", "lo", ", wor", "ld — ünïcode!"} {
			sse(w, content(p))
		}
		sse(w, chunk(map[string]any{}, "stop"))
		sse(w, usageChunk(42, 7))
		done(w)
	})
	deltas, usage, err := respond(context.Background(), f.engine(t, Config{}), question())
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(deltas, "|"); got != "Hel|lo|, wor|ld — ünïcode!" {
		t.Errorf("deltas = %q", got)
	}
	if usage != (agent.Usage{InputTokens: 42, OutputTokens: 7}) {
		t.Errorf("usage = %+v, want the provider's 42/7", usage)
	}
	body := f.body(0)
	if body["stream"] != true {
		t.Errorf("stream = %v", body["stream"])
	}
	if so, _ := body["stream_options"].(map[string]any); so["include_usage"] != true {
		t.Errorf("stream_options = %v", body["stream_options"])
	}
	if f.auth[0] != "Bearer sk-test" {
		t.Errorf("Authorization = %q", f.auth[0])
	}
}

func TestUsageEstimatedWithoutUsageChunk(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
		streamText(w, "12345678", "abcd") // 12 characters: 3 tokens
	})
	_, usage, err := respond(context.Background(), f.engine(t, Config{}), question())
	if err != nil {
		t.Fatal(err)
	}
	if usage.OutputTokens != 3 || usage.InputTokens <= 0 {
		t.Errorf("usage = %+v, want estimated output 3 and some input", usage)
	}
}

func TestRequestBody(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) { streamText(w, "ok") })
	zero := float32(0)
	e := f.engine(t, Config{APIKey: "sk-other", Temperature: &zero, MaxOutputTokens: 300})
	req := &agent.Request{
		Instructions: "Be brief.",
		History: []agent.Message{
			{Role: "assistant", Text: "Hello! How can I help?"},
			{Role: "user", Text: "How much is shipping?"},
			{Role: "assistant", Text: ""}, // skipped
			{Role: "user", Text: "And refunds?"},
		},
		Passages: []agent.Passage{
			{Source: "shipping.md", Text: "# Shipping\n\nShipping is free over 40 euros.", Score: 3},
			{Source: "policies/refunds.md", Text: "Refunds within 30 days.", Score: 2},
		},
		MaxOutputTokens: 120,
	}
	if _, _, err := respond(context.Background(), e, req); err != nil {
		t.Fatal(err)
	}
	body := f.body(0)
	msgs, _ := body["messages"].([]any)
	if len(msgs) != 4 {
		t.Fatalf("messages = %v", msgs)
	}
	roles := []string{"system", "assistant", "user", "user"}
	texts := []string{"", "Hello! How can I help?", "How much is shipping?", "And refunds?"}
	for i, m := range msgs {
		mm := m.(map[string]any)
		if mm["role"] != roles[i] || (i > 0 && mm["content"] != texts[i]) {
			t.Errorf("message %d = %v", i, mm)
		}
	}
	sys := msgs[0].(map[string]any)["content"].(string)
	for _, want := range []string{
		"Be brief.",
		"don't know",
		"[1] Source: shipping.md\n# Shipping\n\nShipping is free over 40 euros.",
		"[2] Source: policies/refunds.md\nRefunds within 30 days.",
	} {
		if !strings.Contains(sys, want) {
			t.Errorf("system message lacks %q:\n%s", want, sys)
		}
	}
	if !strings.HasPrefix(sys, "Be brief.") {
		t.Errorf("system message does not start with the instructions:\n%s", sys)
	}
	if body["max_tokens"] != float64(120) || body["max_completion_tokens"] != nil {
		t.Errorf("max_tokens = %v, max_completion_tokens = %v; want the request's 120 as max_tokens", body["max_tokens"], body["max_completion_tokens"])
	}
	if temp, ok := body["temperature"].(float64); !ok || temp > 1e-30 {
		t.Errorf("temperature = %v, want (almost) zero and present", body["temperature"])
	}
	if body["model"] != "test-model" || f.auth[0] != "Bearer sk-other" {
		t.Errorf("model %v auth %q", body["model"], f.auth[0])
	}
}

func TestRequestBodyDefaults(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) { streamText(w, "ok") })
	// No instructions and no passages: no system message; the config's
	// limit applies; a reasoning model gets max_completion_tokens.
	e := f.engine(t, Config{Model: "o3-mini", MaxOutputTokens: 200})
	req := &agent.Request{History: []agent.Message{{Role: "user", Text: "Hi"}}}
	if _, _, err := respond(context.Background(), e, req); err != nil {
		t.Fatal(err)
	}
	body := f.body(0)
	msgs := body["messages"].([]any)
	if len(msgs) != 1 || msgs[0].(map[string]any)["role"] != "user" {
		t.Errorf("messages = %v", msgs)
	}
	if body["max_completion_tokens"] != float64(200) || body["max_tokens"] != nil || body["temperature"] != nil {
		t.Errorf("body = %v", body)
	}
}

func TestAuthErrorNotRetried(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
		apiError(w, http.StatusUnauthorized, "invalid_request_error", "invalid_api_key")
	})
	_, _, err := respond(context.Background(), f.engine(t, Config{Retries: 3}), question())
	checkAgentError(t, err, CodeAuth, false)
	if f.requests() != 1 {
		t.Errorf("%d requests, want 1 (no retry)", f.requests())
	}
	var pe *ProviderError
	if !errors.As(err, &pe) || pe.Status != 401 || pe.Code != "invalid_api_key" || pe.Type != "invalid_request_error" {
		t.Errorf("provider error = %+v", pe)
	}
}

func TestStatusCodes(t *testing.T) {
	tests := []struct {
		status    int
		json      bool
		code      string
		retryable bool
		requests  int // with Retries: 1
	}{
		{http.StatusForbidden, true, CodeAuth, false, 1},
		{http.StatusBadRequest, true, CodeBadRequest, false, 1},
		{http.StatusNotFound, true, CodeBadRequest, false, 1}, // unknown model
		{http.StatusUnprocessableEntity, false, CodeBadRequest, false, 1},
		{http.StatusRequestTimeout, false, CodeTimeout, true, 2},
		{http.StatusBadGateway, false, CodeUnavailable, true, 2},
		{http.StatusServiceUnavailable, true, CodeUnavailable, true, 2},
		{http.StatusConflict, true, CodeError, false, 1},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.status), func(t *testing.T) {
			f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
				if tt.json {
					apiError(w, tt.status, "some_error", "some_code")
					return
				}
				// Not an OpenAI error body (vLLM, proxies), echoing the request.
				http.Error(w, `{"detail":[{"input":"`+secret+`"}]}`, tt.status)
			})
			_, _, err := respond(context.Background(), f.engine(t, Config{Retries: 1}), question())
			checkAgentError(t, err, tt.code, tt.retryable)
			if f.requests() != tt.requests {
				t.Errorf("%d requests, want %d", f.requests(), tt.requests)
			}
			if !strings.Contains(err.Error(), fmt.Sprintf("HTTP %d", tt.status)) {
				t.Errorf("error %q does not name the status", err)
			}
		})
	}
}

func TestServerErrorThenSuccess(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if n == 1 {
			apiError(w, http.StatusInternalServerError, "server_error", "")
			return
		}
		streamText(w, "second ", "time")
	})
	deltas, _, err := respond(context.Background(), f.engine(t, Config{Retries: 1}), question())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(deltas, "") != "second time" || f.requests() != 2 {
		t.Errorf("deltas %q after %d requests", deltas, f.requests())
	}
}

func TestRateLimitedAfterRetries(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
		apiError(w, http.StatusTooManyRequests, "requests", "rate_limit_exceeded")
	})
	_, _, err := respond(context.Background(), f.engine(t, Config{Retries: 2}), question())
	checkAgentError(t, err, CodeRateLimited, true)
	if f.requests() != 3 {
		t.Errorf("%d requests, want 3 (1 + 2 retries)", f.requests())
	}
}

func TestNoRetriesByDefault(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
		apiError(w, http.StatusServiceUnavailable, "server_error", "")
	})
	_, _, err := respond(context.Background(), f.engine(t, Config{}), question())
	checkAgentError(t, err, CodeUnavailable, true)
	if f.requests() != 1 {
		t.Errorf("%d requests, want 1", f.requests())
	}
}

// slow waits d or until the client goes away.
func slow(r *http.Request, d time.Duration) {
	select {
	case <-r.Context().Done():
	case <-time.After(d):
	}
}

func TestFirstTokenTimeout(t *testing.T) {
	t.Run("always slow", func(t *testing.T) {
		f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
			startStream(w)
			sse(w, chunk(map[string]any{"role": "assistant"}, nil)) // not a token
			slow(r, 10*time.Second)
		})
		start := time.Now()
		_, _, err := respond(context.Background(), f.engine(t, Config{FirstTokenTimeout: 100 * time.Millisecond, Retries: 1}), question())
		checkAgentError(t, err, CodeTimeout, true)
		if f.requests() != 2 {
			t.Errorf("%d requests, want 2 (retried once)", f.requests())
		}
		if el := time.Since(start); el > 3*time.Second {
			t.Errorf("took %v", el)
		}
	})
	t.Run("no headers", func(t *testing.T) {
		f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
			slow(r, 10*time.Second)
		})
		_, _, err := respond(context.Background(), f.engine(t, Config{FirstTokenTimeout: 50 * time.Millisecond}), question())
		checkAgentError(t, err, CodeTimeout, true)
	})
	t.Run("slow then fast", func(t *testing.T) {
		f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
			if n == 1 {
				slow(r, 10*time.Second)
				return
			}
			streamText(w, "fast")
		})
		deltas, _, err := respond(context.Background(), f.engine(t, Config{FirstTokenTimeout: 100 * time.Millisecond, Retries: 1}), question())
		if err != nil || strings.Join(deltas, "") != "fast" || f.requests() != 2 {
			t.Errorf("deltas %q err %v after %d requests", deltas, err, f.requests())
		}
	})
	t.Run("zero means no limit", func(t *testing.T) {
		f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
			time.Sleep(200 * time.Millisecond)
			streamText(w, "late")
		})
		deltas, _, err := respond(context.Background(), f.engine(t, Config{}), question())
		if err != nil || strings.Join(deltas, "") != "late" {
			t.Errorf("deltas %q err %v", deltas, err)
		}
	})
	t.Run("reasoning counts as alive", func(t *testing.T) {
		f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
			startStream(w)
			sse(w, chunk(map[string]any{"reasoning_content": "thinking"}, nil))
			time.Sleep(200 * time.Millisecond)
			sse(w, content("answer"))
			done(w)
		})
		deltas, _, err := respond(context.Background(), f.engine(t, Config{FirstTokenTimeout: 100 * time.Millisecond}), question())
		if err != nil || strings.Join(deltas, "") != "answer" {
			t.Errorf("deltas %q err %v", deltas, err)
		}
	})
}

func TestRequestTimeoutAfterFirstToken(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
		startStream(w)
		sse(w, content("partial"))
		slow(r, 10*time.Second)
	})
	deltas, _, err := respond(context.Background(), f.engine(t, Config{RequestTimeout: 150 * time.Millisecond, Retries: 1}), question())
	checkAgentError(t, err, CodeTimeout, true)
	if f.requests() != 1 || strings.Join(deltas, "") != "partial" {
		t.Errorf("deltas %q after %d requests, want no retry", deltas, f.requests())
	}
}

func TestErrorAfterFirstTokenNotRetried(t *testing.T) {
	t.Run("connection broken", func(t *testing.T) {
		f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
			startStream(w)
			sse(w, content("Hel"))
			panic(http.ErrAbortHandler) // drop the connection
		})
		deltas, _, err := respond(context.Background(), f.engine(t, Config{Retries: 3}), question())
		checkAgentError(t, err, CodeUnavailable, true)
		if f.requests() != 1 || strings.Join(deltas, "") != "Hel" {
			t.Errorf("deltas %q after %d requests", deltas, f.requests())
		}
	})
	t.Run("error event", func(t *testing.T) {
		f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
			startStream(w)
			sse(w, content("Hel"))
			sse(w, map[string]any{"error": map[string]any{"message": secret, "type": "server_error", "code": 500}})
		})
		deltas, _, err := respond(context.Background(), f.engine(t, Config{Retries: 3}), question())
		checkAgentError(t, err, CodeUnavailable, true) // llama.cpp style code 500
		if f.requests() != 1 || strings.Join(deltas, "") != "Hel" {
			t.Errorf("deltas %q after %d requests", deltas, f.requests())
		}
	})
}

func TestErrorEventBeforeFirstToken(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
		startStream(w)
		sse(w, map[string]any{"error": map[string]any{"message": secret, "type": "invalid_request_error"}})
	})
	_, _, err := respond(context.Background(), f.engine(t, Config{}), question())
	checkAgentError(t, err, CodeError, false)
	if f.requests() != 1 {
		t.Errorf("%d requests", f.requests())
	}
}

func TestConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	e, err := New(Config{BaseURL: "http://" + addr + "/v1", Model: "m", HTTPClient: &http.Client{Transport: tr}})
	if err != nil {
		t.Fatal(err)
	}
	e.backoff = time.Millisecond
	_, _, err = respond(context.Background(), e, question())
	checkAgentError(t, err, CodeUnavailable, true)
}

func TestDefaultHTTPClient(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) { streamText(w, "ok") })
	e, err := New(Config{BaseURL: f.URL + "/v1", Model: "m"}) // HTTPClient nil
	if err != nil {
		t.Fatal(err)
	}
	deltas, _, err := respond(context.Background(), e, question())
	if err != nil || strings.Join(deltas, "") != "ok" {
		t.Errorf("deltas %q err %v", deltas, err)
	}
	if f.auth[0] != "" {
		t.Errorf("Authorization = %q without an API key", f.auth[0])
	}
	// The default client keeps an idle connection; close it for goleak.
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
}

func TestEmitErrorReturned(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) { streamText(w, "a", "b", "c") })
	errStop := errors.New("client went away")
	calls := 0
	_, err := f.engine(t, Config{Retries: 3}).Respond(context.Background(), question(), func(string) error {
		calls++
		if calls == 2 {
			return errStop
		}
		return nil
	})
	if err != errStop || calls != 2 || f.requests() != 1 {
		t.Errorf("err %v after %d calls and %d requests", err, calls, f.requests())
	}
}

func TestCancelMidStream(t *testing.T) {
	handlerDone := make(chan struct{})
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
		defer close(handlerDone)
		startStream(w)
		sse(w, content("first"))
		slow(r, 30*time.Second) // returns when the client hangs up
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start := time.Now()
	deltas := 0
	_, err := f.engine(t, Config{}).Respond(ctx, question(), func(string) error {
		deltas++
		go func() {
			time.Sleep(20 * time.Millisecond)
			cancel()
		}()
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("cancel took %v", el)
	}
	if deltas != 1 || f.requests() != 1 {
		t.Errorf("%d deltas, %d requests", deltas, f.requests())
	}
	select {
	case <-handlerDone: // the stream was closed: the server saw the client leave
	case <-time.After(2 * time.Second):
		t.Error("the server still streams after cancel")
	}
}

func TestCancelDuringBackoff(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
		apiError(w, http.StatusServiceUnavailable, "server_error", "")
	})
	e := f.engine(t, Config{Retries: 1})
	e.backoff = time.Hour
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, _, err := respond(ctx, e, question())
	if !errors.Is(err, context.DeadlineExceeded) || f.requests() != 1 {
		t.Errorf("err %v after %d requests", err, f.requests())
	}
}

func TestConcurrentResponds(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) { streamText(w, "a", "b") })
	e := f.engine(t, Config{})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			deltas, _, err := respond(context.Background(), e, question())
			if err != nil || strings.Join(deltas, "") != "ab" {
				t.Errorf("deltas %q err %v", deltas, err)
			}
		})
	}
	wg.Wait()
}

func TestNewValidation(t *testing.T) {
	neg := float32(-0.1)
	hot := float32(2.5)
	one := float32(0.7)
	tests := []struct {
		name  string
		cfg   Config
		field string // named in the error; "" means valid
	}{
		{"ok", Config{Model: "m"}, ""},
		{"ok local", Config{Model: "llama3", BaseURL: "http://localhost:11434/v1"}, ""},
		{"no model", Config{}, "Model"},
		{"blank model", Config{Model: "  "}, "Model"},
		{"ftp", Config{Model: "m", BaseURL: "ftp://example.com"}, "BaseURL"},
		{"no scheme", Config{Model: "m", BaseURL: "localhost:8080"}, "BaseURL"},
		{"no host", Config{Model: "m", BaseURL: "http:///v1"}, "BaseURL"},
		{"garbage", Config{Model: "m", BaseURL: "http://[::1"}, "BaseURL"},
		{"negative temperature", Config{Model: "m", Temperature: &neg}, "Temperature"},
		{"hot temperature", Config{Model: "m", Temperature: &hot}, "Temperature"},
		{"reasoning model temperature", Config{Model: "o3-mini", Temperature: &one}, "Temperature"},
		{"negative max tokens", Config{Model: "m", MaxOutputTokens: -1}, "MaxOutputTokens"},
		{"negative request timeout", Config{Model: "m", RequestTimeout: -time.Second}, "RequestTimeout"},
		{"negative first token timeout", Config{Model: "m", FirstTokenTimeout: -time.Second}, "FirstTokenTimeout"},
		{"negative retries", Config{Model: "m", Retries: -1}, "Retries"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := New(tt.cfg)
			if tt.field == "" {
				if err != nil || e == nil {
					t.Errorf("New = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.field) {
				t.Errorf("New error = %v, want one naming %s", err, tt.field)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	e, err := New(Config{Model: "gpt-4o-mini"})
	if err != nil {
		t.Fatal(err)
	}
	if e.retries != 0 || e.requestTimeout != 0 || e.firstTokenTimeout != 0 {
		t.Errorf("defaults: %+v", e)
	}
	if !e.completionTokens {
		t.Error("api.openai.com should get max_completion_tokens")
	}
	for model, want := range map[string]bool{"llama3.1": false, "qwen2.5:7b": false, "o1-mini": true, "gpt-5-mini": true} {
		if got := useMaxCompletionTokens("localhost", model); got != want {
			t.Errorf("useMaxCompletionTokens(localhost, %s) = %v", model, got)
		}
	}
}
