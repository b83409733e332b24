// Package openai is the speech-to-text engine for OpenAI-compatible
// transcription endpoints (POST {BaseURL}/audio/transcriptions: OpenAI
// itself, or self-hosted servers that speak the same API), through
// github.com/sashabaranov/go-openai.
//
// The endpoint takes whole files, so a Stream buffers the utterance's PCM
// in memory (bounded by Config.MaxAudio), and Final wraps it in a WAV
// header and uploads it; nothing touches the disk. Partial results are
// not available. Config.MaxConcurrent bounds requests in flight (Final
// waits for a slot); streams themselves only cost their buffer.
package openai

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	goopenai "github.com/sashabaranov/go-openai"

	"parley/stt"
)

// Defaults.
const (
	DefaultBaseURL       = "https://api.openai.com/v1"
	DefaultModel         = goopenai.Whisper1 // understood by most compatible servers too
	DefaultTimeout       = 30 * time.Second
	DefaultSampleRate    = 16000
	DefaultMaxConcurrent = 8
	DefaultMaxAudio      = 5 * time.Minute
	// MaxUploadBytes is OpenAI's limit on an uploaded file (25 MB).
	MaxUploadBytes = 25 << 20
)

// minAudio is the shortest upload: OpenAI rejects files under 0.1 s, so
// shorter utterances are padded with silence.
const minAudio = 100 * time.Millisecond

// Config configures the engine. Zero fields take the defaults above.
type Config struct {
	// BaseURL is the API root, e.g. "https://api.openai.com/v1" or
	// "http://localhost:8000/v1"; "/audio/transcriptions" is appended.
	BaseURL string
	// APIKey is sent as a Bearer token. Required for api.openai.com,
	// optional for other endpoints.
	APIKey string
	// Model is the transcription model (default "whisper-1"; e.g.
	// "gpt-4o-mini-transcribe" on OpenAI).
	Model string
	// Language is the default language (ISO 639-1 such as "en", or a BCP
	// 47 tag such as "en-US" whose primary subtag is sent); "" lets the
	// model detect it. StreamConfig.Language overrides it.
	Language string
	// Timeout bounds one transcription request (default 30s).
	Timeout time.Duration
	// HTTPClient sends the requests (default: a client with its own
	// transport, whose idle connections Close shuts).
	HTTPClient *http.Client
	// SampleRate is the PCM rate Stream.Write expects (default 16000,
	// 8000..48000).
	SampleRate int
	// MaxConcurrent bounds transcription requests in flight (default 8).
	MaxConcurrent int
	// MaxAudio bounds one utterance (default 5 minutes); Write beyond it
	// fails with stt.CodeAudioTooLong. The WAV it makes must fit in
	// MaxUploadBytes.
	MaxAudio time.Duration
}

// Recognizer transcribes utterances through an OpenAI-compatible endpoint;
// it implements stt.Recognizer and is safe for concurrent use.
type Recognizer struct {
	cfg        Config
	client     *goopenai.Client
	ownClient  *http.Client // non-nil when we made the client (Close shuts its connections)
	maxSamples int
	minSamples int
	slots      chan struct{} // one token per request in flight

	ctx    context.Context // canceled by Close: aborts requests in flight
	cancel context.CancelFunc
	wg     sync.WaitGroup // requests in flight
	mu     sync.Mutex
	closed bool
}

var _ stt.Recognizer = (*Recognizer)(nil)

// New validates cfg and returns a Recognizer. Errors name the offending
// field.
func New(cfg Config) (*Recognizer, error) {
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBaseURL
	}
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	if cfg.Model == "" {
		cfg.Model = DefaultModel
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.SampleRate == 0 {
		cfg.SampleRate = DefaultSampleRate
	}
	if cfg.MaxConcurrent == 0 {
		cfg.MaxConcurrent = DefaultMaxConcurrent
	}
	if cfg.MaxAudio == 0 {
		cfg.MaxAudio = DefaultMaxAudio
	}

	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("openai stt: BaseURL %q is not an absolute http(s) URL", cfg.BaseURL)
	}
	if u.User != nil {
		return nil, errors.New("openai stt: BaseURL must not carry credentials; use APIKey")
	}
	if cfg.APIKey == "" && strings.EqualFold(u.Hostname(), "api.openai.com") {
		return nil, errors.New("openai stt: APIKey is required for api.openai.com")
	}
	if strings.ContainsAny(cfg.APIKey, " \t\r\n") {
		return nil, errors.New("openai stt: APIKey contains white space")
	}
	if strings.TrimSpace(cfg.Model) != cfg.Model || strings.ContainsAny(cfg.Model, "\r\n") {
		return nil, fmt.Errorf("openai stt: Model %q has surrounding white space or line breaks", cfg.Model)
	}
	if cfg.Language != "" {
		if _, err := isoLanguage(cfg.Language); err != nil {
			return nil, fmt.Errorf("openai stt: Language: %w", err)
		}
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("openai stt: Timeout %v is negative", cfg.Timeout)
	}
	if cfg.SampleRate < 8000 || cfg.SampleRate > 48000 {
		return nil, fmt.Errorf("openai stt: SampleRate %d outside 8000..48000", cfg.SampleRate)
	}
	if cfg.MaxConcurrent < 0 {
		return nil, fmt.Errorf("openai stt: MaxConcurrent %d is negative", cfg.MaxConcurrent)
	}
	if cfg.MaxAudio < 0 {
		return nil, fmt.Errorf("openai stt: MaxAudio %v is negative", cfg.MaxAudio)
	}
	maxSamples := int(cfg.MaxAudio.Seconds() * float64(cfg.SampleRate))
	if wavHeaderSize+2*maxSamples > MaxUploadBytes {
		return nil, fmt.Errorf("openai stt: MaxAudio %v at %d Hz makes a %d-byte WAV, over the %d-byte upload limit",
			cfg.MaxAudio, cfg.SampleRate, wavHeaderSize+2*maxSamples, MaxUploadBytes)
	}

	r := &Recognizer{
		cfg:        cfg,
		maxSamples: maxSamples,
		minSamples: int(minAudio.Seconds() * float64(cfg.SampleRate)),
		slots:      make(chan struct{}, cfg.MaxConcurrent),
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
		r.ownClient = hc
	}
	oc := goopenai.DefaultConfig(cfg.APIKey)
	oc.BaseURL = cfg.BaseURL
	oc.HTTPClient = hc
	r.client = goopenai.NewClientWithConfig(oc)
	r.ctx, r.cancel = context.WithCancel(context.Background())
	return r, nil
}

// SampleRate is Config.SampleRate.
func (r *Recognizer) SampleRate() int { return r.cfg.SampleRate }

// Config returns the effective configuration (defaults filled in).
func (r *Recognizer) Config() Config { return r.cfg }

// NewStream starts buffering one utterance. It does not wait: the
// request slot is taken in Final. cfg.Language overrides
// Config.Language; cfg.Prompt is sent as the prompt.
func (r *Recognizer) NewStream(ctx context.Context, cfg stt.StreamConfig) (stt.Stream, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r.mu.Lock()
	closed := r.closed
	r.mu.Unlock()
	if closed {
		return nil, errClosedRecognizer
	}
	lang := r.cfg.Language
	if cfg.Language != "" {
		lang = cfg.Language
	}
	if lang != "" {
		iso, err := isoLanguage(lang)
		if err != nil {
			return nil, &stt.Error{Code: stt.CodeUnsupportedLanguage, Message: "language tag not understood", Err: err}
		}
		lang = iso
	}
	s := &stream{r: r, lang: lang, prompt: cfg.Prompt}
	s.buf = make([]byte, wavHeaderSize, wavHeaderSize+2*r.cfg.SampleRate) // room for 1 s
	return s, nil
}

var errClosedRecognizer = &stt.Error{Code: stt.CodeClosed, Message: "openai recognizer closed"}

// Close cancels requests in flight, waits for them to return, and shuts
// idle connections of the client New made. Later NewStream and Final
// calls fail with stt.CodeClosed. Idempotent; returns nil.
func (r *Recognizer) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.mu.Unlock()
	r.cancel()
	r.wg.Wait()
	if r.ownClient != nil {
		r.ownClient.CloseIdleConnections()
	}
	return nil
}

// begin registers a request in flight unless the Recognizer is closed.
func (r *Recognizer) begin() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	r.wg.Add(1)
	return true
}

// transcribe sends one WAV file and returns the text.
func (r *Recognizer) transcribe(ctx context.Context, wav []byte, lang, prompt string) (string, error) {
	// Wait for a request slot.
	select {
	case r.slots <- struct{}{}:
	default:
		select {
		case r.slots <- struct{}{}:
		case <-ctx.Done():
			if r.ctx.Err() != nil || errors.Is(context.Cause(ctx), errStreamClosed) {
				return "", r.mapError(ctx, ctx.Err())
			}
			return "", &stt.Error{Code: stt.CodeBusy,
				Message: fmt.Sprintf("all %d transcription request slots stayed busy", r.cfg.MaxConcurrent),
				Err:     context.Cause(ctx)}
		}
	}
	defer func() { <-r.slots }()

	rctx, cancel := context.WithTimeoutCause(ctx, r.cfg.Timeout, errRequestTimeout)
	defer cancel()
	resp, err := r.client.CreateTranscription(rctx, goopenai.AudioRequest{
		Model:    r.cfg.Model,
		FilePath: "audio.wav", // names the multipart file part; nothing is read from disk
		Reader:   wavReader{bytes.NewReader(wav)},
		Prompt:   prompt,
		Language: lang,
		Format:   goopenai.AudioResponseFormatJSON,
	})
	if err != nil {
		return "", r.mapError(rctx, err)
	}
	return strings.TrimSpace(resp.Text), nil
}

var errRequestTimeout = errors.New("transcription request timed out")

// wavReader gives go-openai the file part's Content-Type (it asks the
// reader; otherwise it guesses from the system MIME table).
type wavReader struct{ *bytes.Reader }

// ContentType is the media type of the upload.
func (wavReader) ContentType() string { return "audio/wav" }

// mapError turns a go-openai / net/http failure into an *stt.Error. It
// keeps the endpoint's error type and message (truncated) but never the
// raw response body.
func (r *Recognizer) mapError(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		cause := context.Cause(ctx)
		switch {
		case r.ctx.Err() != nil:
			return &stt.Error{Code: stt.CodeClosed, Message: "recognizer closed during request", Err: cerr}
		case errors.Is(cause, errRequestTimeout):
			return &stt.Error{Code: stt.CodeTimeout,
				Message: fmt.Sprintf("no transcript within %v", r.cfg.Timeout), Err: context.DeadlineExceeded}
		case errors.Is(cause, errStreamClosed):
			return &stt.Error{Code: stt.CodeCanceled, Message: "stream closed during request", Err: cerr}
		default:
			return stt.ContextError(cause, "transcription request")
		}
	}
	var apiErr *goopenai.APIError
	if errors.As(err, &apiErr) {
		detail := apiErr.Type
		if apiErr.Message != "" {
			detail = strings.TrimSpace(detail + " " + truncate(apiErr.Message, 200))
		}
		return statusError(apiErr.HTTPStatusCode, detail)
	}
	var reqErr *goopenai.RequestError
	if errors.As(err, &reqErr) {
		return statusError(reqErr.HTTPStatusCode, "")
	}
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		return &stt.Error{Code: stt.CodeTimeout, Message: "transcription request timed out", Err: err}
	}
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		return &stt.Error{Code: stt.CodeUnavailable, Message: "transcription endpoint unreachable", Err: urlErr.Err}
	}
	var syntaxErr *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &syntaxErr) || errors.As(err, &typeErr) {
		return &stt.Error{Code: stt.CodeError, Message: "malformed response from transcription endpoint",
			Err: errors.New(typeName(err))}
	}
	return &stt.Error{Code: stt.CodeError, Message: "transcription failed", Err: err}
}

// statusError maps an HTTP status to an *stt.Error.
func statusError(status int, detail string) error {
	code := stt.CodeError
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		code = stt.CodeAuth
	case status == http.StatusTooManyRequests:
		code = stt.CodeRateLimited
	case status == http.StatusRequestTimeout || status == http.StatusGatewayTimeout:
		code = stt.CodeTimeout
	case status >= 500:
		code = stt.CodeUnavailable
	case status >= 400:
		code = stt.CodeBadRequest
	}
	e := &stt.Error{Code: code, Message: fmt.Sprintf("transcription endpoint answered HTTP %d", status)}
	if detail != "" {
		e.Err = errors.New(detail)
	}
	return e
}

// truncate shortens s to at most n bytes on a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// typeName describes a JSON decoding error without quoting the input.
func typeName(err error) string {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		return fmt.Sprintf("json: field %q: %s where %s expected", typeErr.Field, typeErr.Value, typeErr.Type)
	}
	return "json: invalid syntax"
}

// isoLanguage reduces a BCP 47 tag ("en-US", "pt_BR", "EN") to the
// lower-case primary subtag OpenAI expects ("en", "pt").
func isoLanguage(tag string) (string, error) {
	p := tag
	if i := strings.IndexAny(p, "-_"); i >= 0 {
		p = p[:i]
	}
	if len(p) < 2 || len(p) > 3 {
		return "", fmt.Errorf("%q is not a language tag", tag)
	}
	for _, c := range p {
		if c > unicode.MaxASCII || !unicode.IsLetter(c) {
			return "", fmt.Errorf("%q is not a language tag", tag)
		}
	}
	return strings.ToLower(p), nil
}

// stream buffers one utterance as a WAV file under construction: a 44-byte
// header slot followed by little-endian samples.
type stream struct {
	r      *Recognizer
	lang   string
	prompt string

	mu       sync.Mutex
	buf      []byte // header slot + PCM; nil once handed to Final or dropped
	samples  int
	state    int // open, finalizing, finished, closed
	final    string
	cancel   context.CancelCauseFunc // cancels a Final in progress
	finalErr error
}

const (
	stateOpen = iota
	stateFinalizing
	stateFinished
	stateClosed
)

var errStreamClosed = errors.New("stream closed")

// Write appends PCM to the utterance.
func (s *stream) Write(pcm []int16) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch s.state {
	case stateFinalizing, stateFinished:
		return &stt.Error{Code: stt.CodeClosed, Message: "write after Final"}
	case stateClosed:
		return &stt.Error{Code: stt.CodeClosed, Message: "write on closed stream"}
	}
	if s.samples+len(pcm) > s.r.maxSamples {
		return &stt.Error{Code: stt.CodeAudioTooLong,
			Message: fmt.Sprintf("utterance longer than %v", s.r.cfg.MaxAudio)}
	}
	s.buf = appendPCM(s.buf, pcm)
	s.samples += len(pcm)
	return nil
}

// Partial returns "": the endpoint gives no partial results.
func (s *stream) Partial() string { return "" }

// Final uploads the utterance and returns the transcript ("" without
// sending anything if no audio was written). It waits for a request slot
// (stt.CodeBusy if ctx ends first) and gives up after Config.Timeout
// (stt.CodeTimeout). Close from another goroutine aborts it. After a
// successful Final, Final returns the same transcript again; after a
// failed one, the audio is gone and Final returns the same error.
func (s *stream) Final(ctx context.Context) (string, error) {
	s.mu.Lock()
	switch s.state {
	case stateFinished:
		defer s.mu.Unlock()
		return s.final, s.finalErr
	case stateFinalizing:
		s.mu.Unlock()
		return "", &stt.Error{Code: stt.CodeClosed, Message: "Final already in progress"}
	case stateClosed:
		s.mu.Unlock()
		return "", &stt.Error{Code: stt.CodeClosed, Message: "Final on closed stream"}
	}
	if err := ctx.Err(); err != nil {
		s.mu.Unlock()
		return "", stt.ContextError(err, "before transcription request")
	}
	if s.samples == 0 {
		s.state = stateFinished
		s.buf = nil
		s.mu.Unlock()
		return "", nil
	}
	if !s.r.begin() {
		s.mu.Unlock()
		return "", errClosedRecognizer
	}
	defer s.r.wg.Done()
	wav := s.buf
	s.buf = nil
	if pad := s.r.minSamples - s.samples; pad > 0 {
		wav = append(wav, make([]byte, 2*pad)...)
	}
	putWAVHeader(wav, s.r.cfg.SampleRate, len(wav)-wavHeaderSize)
	rctx, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(s.r.ctx, func() { cancel(s.r.ctx.Err()) })
	s.cancel = cancel
	s.state = stateFinalizing
	s.mu.Unlock()

	text, err := s.r.transcribe(rctx, wav, s.lang, s.prompt)
	stop()
	cancel(nil)
	clear(wav) // the audio does not outlive the request

	s.mu.Lock()
	defer s.mu.Unlock()
	s.cancel = nil
	if s.state == stateClosed {
		// Close ran during the request; report the outcome anyway.
		if err == nil {
			return text, nil
		}
		return "", err
	}
	s.state = stateFinished
	s.final, s.finalErr = text, err
	return text, err
}

// Close drops the buffered audio and aborts a Final in progress.
// Idempotent; safe to call concurrently with the other methods.
func (s *stream) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cancel != nil {
		s.cancel(errStreamClosed)
	}
	if s.buf != nil {
		clear(s.buf)
		s.buf = nil
	}
	s.state = stateClosed
	return nil
}
