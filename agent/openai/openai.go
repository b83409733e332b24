// Package openai is the engine that answers with a language model behind an
// OpenAI-compatible chat completions API (OpenAI, Ollama, vLLM, llama.cpp,
// LM Studio, ...), streaming the reply through github.com/sashabaranov/go-openai.
//
// Failures are reported as *agent.Error with these codes:
//
//	provider_auth          HTTP 401 or 403: the API key is missing or wrong
//	provider_rate_limited  HTTP 429
//	provider_unavailable   HTTP 5xx, connection refused or broken
//	provider_timeout       no first token within FirstTokenTimeout, or the
//	                       reply not finished within RequestTimeout
//	provider_bad_request   HTTP 400, 404 or 422 (for example an unknown model)
//	provider_error         anything else
//
// Attempts that fail with a retryable error (rate limited, unavailable,
// timeout) before the first token are retried up to Config.Retries times;
// once text has been streamed nothing is retried. Error messages never contain conversation text: the
// provider's free-text message is left out (only its HTTP status, error
// type and code are kept), because some servers echo the request in it.
package openai

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	goopenai "github.com/sashabaranov/go-openai"

	"parley/agent"
)

// Error codes of the *agent.Error values Respond returns.
const (
	CodeAuth        = "provider_auth"
	CodeRateLimited = "provider_rate_limited"
	CodeUnavailable = "provider_unavailable"
	CodeTimeout     = "provider_timeout"
	CodeBadRequest  = "provider_bad_request"
	CodeError       = "provider_error"
)

// Defaults.
const (
	DefaultBaseURL = "https://api.openai.com/v1"
	DefaultRetries = 1 // a suggestion for callers: Retries 0 means none
)

// Config configures the engine.
type Config struct {
	// BaseURL is the API root, such as https://api.openai.com/v1 or
	// http://localhost:11434/v1 for Ollama; empty means DefaultBaseURL.
	BaseURL string
	// APIKey is sent as a bearer token; empty sends none (local servers).
	APIKey string
	// Model is the model name; required.
	Model string
	// Temperature, between 0 and 2; nil leaves the provider's default.
	Temperature *float32
	// MaxOutputTokens caps the reply when the request does not; 0 leaves
	// the provider's default.
	MaxOutputTokens int
	// RequestTimeout bounds one attempt, from sending the request to the
	// end of the reply; 0 means no limit (the caller's ctx still applies).
	RequestTimeout time.Duration
	// FirstTokenTimeout bounds the wait for the first token (text, or
	// reasoning from models that think first); 0 means no limit.
	FirstTokenTimeout time.Duration
	// Retries is how many times a retryable failure before the first token
	// is retried; 0 means never. parleyd uses DefaultRetries unless the
	// configuration says otherwise.
	Retries int
	// HTTPClient sends the requests; nil means a new http.Client. Its
	// Timeout, if any, must allow for a whole streamed reply.
	HTTPClient *http.Client
}

// Engine is the OpenAI-compatible Responder. It is safe for concurrent use.
type Engine struct {
	client            *goopenai.Client
	model             string
	temperature       *float32
	maxOutputTokens   int
	completionTokens  bool // send max_completion_tokens rather than max_tokens
	requestTimeout    time.Duration
	firstTokenTimeout time.Duration
	retries           int
	backoff           time.Duration // pause before retry n is n*backoff
}

var _ agent.Responder = (*Engine)(nil)

// New validates cfg and returns an engine. Errors name the offending field.
func New(cfg Config) (*Engine, error) {
	if strings.TrimSpace(cfg.Model) == "" {
		return nil, errors.New("openai: Model is required")
	}
	base := cfg.BaseURL
	if base == "" {
		base = DefaultBaseURL
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("openai: BaseURL must be an absolute http:// or https:// URL")
	}
	if t := cfg.Temperature; t != nil && (*t < 0 || *t > 2 || math.IsNaN(float64(*t))) {
		return nil, fmt.Errorf("openai: Temperature must be between 0 and 2, got %v", *t)
	}
	if cfg.MaxOutputTokens < 0 {
		return nil, fmt.Errorf("openai: MaxOutputTokens must not be negative, got %d", cfg.MaxOutputTokens)
	}
	if cfg.RequestTimeout < 0 {
		return nil, fmt.Errorf("openai: RequestTimeout must not be negative, got %v", cfg.RequestTimeout)
	}
	if cfg.FirstTokenTimeout < 0 {
		return nil, fmt.Errorf("openai: FirstTokenTimeout must not be negative, got %v", cfg.FirstTokenTimeout)
	}
	if cfg.Retries < 0 {
		return nil, fmt.Errorf("openai: Retries must not be negative, got %d", cfg.Retries)
	}

	e := &Engine{
		model:             cfg.Model,
		temperature:       cfg.Temperature,
		maxOutputTokens:   cfg.MaxOutputTokens,
		completionTokens:  useMaxCompletionTokens(u.Hostname(), cfg.Model),
		requestTimeout:    cfg.RequestTimeout,
		firstTokenTimeout: cfg.FirstTokenTimeout,
		retries:           cfg.Retries,
		backoff:           250 * time.Millisecond,
	}

	// Let go-openai's own checks of the model's parameters fail now rather
	// than on every request (reasoning models reject a temperature).
	if err := goopenai.NewReasoningValidator().Validate(e.request(&agent.Request{})); err != nil {
		return nil, fmt.Errorf("openai: Temperature is not supported by model %q: %w", cfg.Model, err)
	}

	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{}
	}
	cc := goopenai.DefaultConfig(cfg.APIKey)
	cc.BaseURL = base
	cc.HTTPClient = hc
	e.client = goopenai.NewClientWithConfig(cc)
	return e, nil
}

// useMaxCompletionTokens reports whether the reply limit must be sent as
// max_completion_tokens: OpenAI's own API deprecated max_tokens, and its
// reasoning models (as go-openai knows them) reject it. Other servers
// (Ollama, llama.cpp, LM Studio) only understand max_tokens.
func useMaxCompletionTokens(host, model string) bool {
	if host == "api.openai.com" {
		return true
	}
	//lint:ignore SA1019 max_tokens is what Ollama and llama.cpp understand; the probe asks go-openai which models refuse it
	probe := goopenai.ChatCompletionRequest{Model: model, MaxTokens: 1}
	return errors.Is(goopenai.NewReasoningValidator().Validate(probe), goopenai.ErrReasoningModelMaxTokensDeprecated)
}

// request builds the chat completion request for req.
func (e *Engine) request(req *agent.Request) goopenai.ChatCompletionRequest {
	var msgs []goopenai.ChatCompletionMessage
	if sys := systemPrompt(req.Instructions, req.Passages); sys != "" {
		msgs = append(msgs, goopenai.ChatCompletionMessage{Role: goopenai.ChatMessageRoleSystem, Content: sys})
	}
	for _, m := range req.History {
		if m.Text == "" {
			continue // some servers reject empty messages
		}
		role := goopenai.ChatMessageRoleUser
		switch m.Role {
		case "assistant":
			role = goopenai.ChatMessageRoleAssistant
		case "system":
			role = goopenai.ChatMessageRoleSystem
		}
		msgs = append(msgs, goopenai.ChatCompletionMessage{Role: role, Content: m.Text})
	}

	cr := goopenai.ChatCompletionRequest{
		Model:         e.model,
		Messages:      msgs,
		Stream:        true,
		StreamOptions: &goopenai.StreamOptions{IncludeUsage: true},
	}
	limit := req.MaxOutputTokens
	if limit <= 0 {
		limit = e.maxOutputTokens
	}
	if limit > 0 {
		if e.completionTokens {
			cr.MaxCompletionTokens = limit
		} else {
			//lint:ignore SA1019 non-OpenAI servers (Ollama, llama.cpp) only understand max_tokens
			cr.MaxTokens = limit
		}
	}
	if t := e.temperature; t != nil {
		cr.Temperature = *t
		if *t == 0 {
			// go-openai omits a zero temperature (the field is
			// omitempty), which would mean the provider's default;
			// the smallest float32 is as good as zero.
			cr.Temperature = math.SmallestNonzeroFloat32
		}
	}
	return cr
}

// systemPrompt is the system message: the agent's instructions, then, when
// passages were retrieved, the grounding block.
func systemPrompt(instructions string, passages []agent.Passage) string {
	instructions = strings.TrimSpace(instructions)
	if len(passages) == 0 {
		return instructions
	}
	var sb strings.Builder
	if instructions != "" {
		sb.WriteString(instructions)
		sb.WriteString("\n\n")
	}
	sb.WriteString("Answer the user's question using the passages below, taken from this agent's documents. " +
		"If they do not contain the answer, say that you don't know; do not make up facts. " +
		"You may name the source document when it helps.\n\nPassages:")
	for i, p := range passages {
		fmt.Fprintf(&sb, "\n\n[%d] Source: %s\n%s", i+1, p.Source, strings.TrimSpace(p.Text))
	}
	return sb.String()
}

// Respond streams the model's reply to req through emit. See the package
// documentation for errors and retries. When the provider reports usage in
// its stream it is returned; otherwise usage is estimated at about four
// characters per token.
func (e *Engine) Respond(ctx context.Context, req *agent.Request, emit func(delta string) error) (agent.Usage, error) {
	cr := e.request(req)
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			t := time.NewTimer(time.Duration(attempt) * e.backoff)
			select {
			case <-ctx.Done():
				t.Stop()
				return agent.Usage{InputTokens: estimateInput(cr)}, ctx.Err()
			case <-t.C:
			}
		}
		usage, started, err := e.attempt(ctx, cr, emit)
		if err == nil {
			return usage, nil
		}
		if ctx.Err() != nil {
			return usage, ctx.Err()
		}
		var ae *agent.Error
		if started || attempt >= e.retries || !errors.As(err, &ae) || !ae.Retryable {
			return usage, err
		}
	}
}

var (
	errFirstTokenTimeout = errors.New("first token timeout")
	errRequestTimeout    = errors.New("request timeout")
)

// attempt makes one request and streams its reply. started reports whether
// any text reached emit (after which the caller must not retry).
func (e *Engine) attempt(ctx context.Context, cr goopenai.ChatCompletionRequest, emit func(string) error) (usage agent.Usage, started bool, err error) {
	actx := ctx
	if e.requestTimeout > 0 {
		var cancel context.CancelFunc
		actx, cancel = context.WithTimeoutCause(ctx, e.requestTimeout, errRequestTimeout)
		defer cancel()
	}
	actx, cancelFirst := context.WithCancelCause(actx)
	defer cancelFirst(nil)
	var firstToken *time.Timer
	if e.firstTokenTimeout > 0 {
		firstToken = time.AfterFunc(e.firstTokenTimeout, func() { cancelFirst(errFirstTokenTimeout) })
		defer firstToken.Stop()
	}
	waiting := firstToken != nil // for the first token, with a clock running
	// arrived stops the first-token clock and reports whether it had not
	// run out yet.
	arrived := func() bool {
		if !waiting {
			return true
		}
		waiting = false
		return firstToken.Stop()
	}

	var (
		outRunes int
		reported *goopenai.Usage
	)
	result := func() agent.Usage {
		if reported != nil && (reported.PromptTokens > 0 || reported.CompletionTokens > 0) {
			return agent.Usage{InputTokens: reported.PromptTokens, OutputTokens: reported.CompletionTokens}
		}
		return agent.Usage{InputTokens: estimateInput(cr), OutputTokens: (outRunes + 3) / 4}
	}

	stream, err := e.client.CreateChatCompletionStream(actx, cr)
	if err != nil {
		return result(), false, e.failure(ctx, actx, err)
	}
	defer stream.Close()
	for {
		chunk, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return result(), started, nil
		}
		if err != nil {
			return result(), started, e.failure(ctx, actx, err)
		}
		if chunk.Usage != nil {
			reported = chunk.Usage
		}
		for _, choice := range chunk.Choices {
			if choice.Index != 0 {
				continue
			}
			if choice.Delta.ReasoningContent != "" && !arrived() {
				return result(), started, e.failure(ctx, actx, context.Cause(actx))
			}
			text := choice.Delta.Content
			if text == "" {
				continue
			}
			if !arrived() {
				// The deadline passed just as the token came.
				return result(), started, e.failure(ctx, actx, context.Cause(actx))
			}
			started = true
			outRunes += utf8.RuneCountInString(text)
			if err := emit(text); err != nil {
				return result(), started, err
			}
		}
	}
}

// failure turns an error of an attempt into what Respond returns:
// ctx.Err() when the caller cancelled, a timeout when one of the attempt's
// clocks ran out, and otherwise the classified provider failure.
func (e *Engine) failure(ctx, actx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	switch context.Cause(actx) {
	case errFirstTokenTimeout:
		return &agent.Error{
			Code:      CodeTimeout,
			Message:   fmt.Sprintf("the model sent nothing within the first-token timeout of %v", e.firstTokenTimeout),
			Retryable: true,
			Err:       errFirstTokenTimeout,
		}
	case errRequestTimeout:
		return &agent.Error{
			Code:      CodeTimeout,
			Message:   fmt.Sprintf("the reply did not finish within the request timeout of %v", e.requestTimeout),
			Retryable: true,
			Err:       errRequestTimeout,
		}
	}
	return classify(err)
}

// classify maps a go-openai or transport error to an *agent.Error.
func classify(err error) *agent.Error {
	var (
		reqErr *goopenai.RequestError
		apiErr *goopenai.APIError
		netErr net.Error
	)
	switch {
	case errors.As(err, &reqErr):
		// The body did not parse as an OpenAI error (vLLM, proxies):
		// keep the status only.
		return statusError(reqErr.HTTPStatusCode, &ProviderError{Status: reqErr.HTTPStatusCode})
	case errors.As(err, &apiErr):
		status := apiErr.HTTPStatusCode
		if status == 0 {
			// An error event inside a 200 stream; llama.cpp puts an
			// HTTP-like status in its code.
			if c, ok := apiErr.Code.(int); ok && c >= 400 && c <= 599 {
				status = c
			}
		}
		code := ""
		if apiErr.Code != nil {
			code = fmt.Sprint(apiErr.Code)
		}
		return statusError(status, &ProviderError{Status: status, Type: apiErr.Type, Code: code})
	case errors.As(err, &netErr) && netErr.Timeout():
		return &agent.Error{Code: CodeTimeout, Message: "the connection to the provider timed out", Retryable: true, Err: err}
	case isConnectionError(err):
		return &agent.Error{Code: CodeUnavailable, Message: "could not reach the provider or the connection broke", Retryable: true, Err: err}
	case errors.Is(err, goopenai.ErrChatCompletionInvalidModel):
		return &agent.Error{Code: CodeBadRequest, Message: "the model does not support chat completions", Err: err}
	}
	return &agent.Error{Code: CodeError, Message: "the provider's reply could not be used", Err: err}
}

func isConnectionError(err error) bool {
	var (
		urlErr *url.Error
		opErr  *net.OpError
	)
	return errors.As(err, &urlErr) || errors.As(err, &opErr) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE)
}

// statusError maps an HTTP status to an *agent.Error.
func statusError(status int, detail *ProviderError) *agent.Error {
	ae := &agent.Error{Err: detail}
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		ae.Code, ae.Message = CodeAuth, "the provider rejected the API key"
	case status == http.StatusTooManyRequests:
		ae.Code, ae.Message, ae.Retryable = CodeRateLimited, "the provider is rate limiting requests", true
	case status == http.StatusRequestTimeout:
		ae.Code, ae.Message, ae.Retryable = CodeTimeout, "the provider timed out", true
	case status >= 500:
		ae.Code, ae.Message, ae.Retryable = CodeUnavailable, "the provider is unavailable", true
	case status == http.StatusBadRequest || status == http.StatusNotFound || status == http.StatusUnprocessableEntity:
		ae.Code, ae.Message = CodeBadRequest, "the provider rejected the request; check the model name and settings"
	default:
		ae.Code, ae.Message = CodeError, "the provider failed"
	}
	return ae
}

// ProviderError is what Respond keeps of an error the provider returned:
// its HTTP status (0 for an error inside the stream) and, when it sent an
// OpenAI-style error, its type and code. The free-text message is dropped,
// as it may quote the request.
type ProviderError struct {
	Status int
	Type   string
	Code   string
}

func (p *ProviderError) Error() string {
	var parts []string
	if p.Status != 0 {
		parts = append(parts, fmt.Sprintf("HTTP %d", p.Status))
	} else {
		parts = append(parts, "error in stream")
	}
	if p.Type != "" {
		parts = append(parts, "type "+p.Type)
	}
	if p.Code != "" {
		parts = append(parts, "code "+p.Code)
	}
	return strings.Join(parts, ", ")
}

// estimateInput estimates the prompt's tokens: about four characters per
// token plus a few per message for the chat format.
func estimateInput(cr goopenai.ChatCompletionRequest) int {
	n := 0
	for _, m := range cr.Messages {
		n += (utf8.RuneCountInString(m.Content)+3)/4 + 4
	}
	return n
}
