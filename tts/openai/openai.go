// Package openai is the text-to-speech engine for OpenAI's speech endpoint
// (POST {BaseURL}/audio/speech) and the many servers that copy it, through
// github.com/sashabaranov/go-openai.
//
// It asks for response_format "pcm": raw 16-bit little-endian mono PCM at
// 24 kHz, which OpenAI sends as it generates it. The body is read
// incrementally and handed to emit in chunks of 20 to 40 ms as it arrives,
// so playback can start long before the text is fully spoken. Endpoints
// that answer "pcm" with a WAV stream (some proxies do) are accepted when
// the WAV holds 24 kHz mono 16-bit PCM; other formats are an error.
package openai

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	goopenai "github.com/sashabaranov/go-openai"

	"parley/tts"
)

// Defaults.
const (
	DefaultBaseURL       = "https://api.openai.com/v1"
	DefaultModel         = string(goopenai.TTSModelGPT4oMini) // "gpt-4o-mini-tts"
	DefaultVoice         = string(goopenai.VoiceAlloy)        // "alloy"
	DefaultTimeout       = 30 * time.Second
	DefaultMaxConcurrent = 8
)

// SampleRate is the rate of OpenAI's "pcm" response format.
const SampleRate = 24000

// Speed bounds of the endpoint; Request.Speed is clamped to them.
const (
	MinSpeed = 0.25
	MaxSpeed = 4.0
)

const (
	bytesPerMilli = SampleRate * 2 / 1000
	// minChunkBytes is the least audio emitted at once (20 ms), except
	// for the tail of the stream.
	minChunkBytes = 20 * bytesPerMilli
	// maxChunkBytes is the most audio emitted at once (40 ms).
	maxChunkBytes = 40 * bytesPerMilli
	// readBufferBytes holds what one Read returns plus an unemitted
	// remainder (< minChunkBytes), and a WAV header if one comes first.
	readBufferBytes = 16 << 10
)

// Config configures the engine.
type Config struct {
	// BaseURL is the API root, e.g. "https://api.openai.com/v1" (the
	// default) or "http://localhost:8880/v1"; "/audio/speech" is appended.
	BaseURL string
	// APIKey is sent as a bearer token. Required for api.openai.com,
	// optional elsewhere (local servers often need none).
	APIKey string
	// Model defaults to "gpt-4o-mini-tts".
	Model string
	// Voice is the default voice (default "alloy"); Request.Voice
	// overrides it. Names are passed through: compatible servers have
	// their own.
	Voice string
	// Timeout bounds each wait on the endpoint: for the response headers,
	// then for each read of the streamed body. It is an inactivity bound,
	// so long texts are not cut off; the caller's ctx bounds the whole
	// synthesis. Default 30 s. Expiry is a *tts.Error coded
	// tts.CodeTimeout.
	Timeout time.Duration
	// HTTPClient is the client requests go through (default: a client on
	// http.DefaultTransport). Leave its Timeout zero: it would cut off
	// streams longer than it; use Timeout above.
	HTTPClient *http.Client
	// MaxConcurrent bounds requests in flight; Synthesize waits for a slot
	// until its ctx ends. Default 8.
	MaxConcurrent int
}

// Engine synthesizes speech through an OpenAI-compatible endpoint; it
// implements tts.Synthesizer and is safe for concurrent use.
type Engine struct {
	client  *goopenai.Client
	model   string
	voice   string
	timeout time.Duration
	slots   chan struct{}
}

var _ tts.Synthesizer = (*Engine)(nil)

// New validates cfg, fills in defaults and returns an Engine. It makes no
// request. Errors name the offending Config field.
func New(cfg Config) (*Engine, error) {
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBaseURL
	}
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		shown := cfg.BaseURL
		if err == nil {
			shown = u.Redacted()
		}
		return nil, fmt.Errorf("openai: Config.BaseURL %q is not an absolute http(s) URL", shown)
	}
	if cfg.APIKey == "" && strings.EqualFold(u.Hostname(), "api.openai.com") {
		return nil, errors.New("openai: Config.APIKey is required for api.openai.com")
	}
	if strings.ContainsAny(cfg.APIKey, "\r\n") {
		return nil, errors.New("openai: Config.APIKey contains a line break")
	}
	if cfg.Model == "" {
		cfg.Model = DefaultModel
	}
	if cfg.Voice == "" {
		cfg.Voice = DefaultVoice
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("openai: Config.Timeout %v is negative", cfg.Timeout)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxConcurrent < 0 {
		return nil, fmt.Errorf("openai: Config.MaxConcurrent %d is negative", cfg.MaxConcurrent)
	}
	if cfg.MaxConcurrent == 0 {
		cfg.MaxConcurrent = DefaultMaxConcurrent
	}
	cc := goopenai.DefaultConfig(cfg.APIKey)
	cc.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	if cfg.HTTPClient != nil {
		cc.HTTPClient = cfg.HTTPClient
	} else {
		cc.HTTPClient = &http.Client{}
	}
	return &Engine{
		client:  goopenai.NewClientWithConfig(cc),
		model:   cfg.Model,
		voice:   cfg.Voice,
		timeout: cfg.Timeout,
		slots:   make(chan struct{}, cfg.MaxConcurrent),
	}, nil
}

// SampleRate is 24000, the rate of the "pcm" response format.
func (e *Engine) SampleRate() int { return SampleRate }

// errStalled is the cause of a request canceled by the inactivity timer.
var errStalled = errors.New("no progress within the timeout")

// Synthesize posts req.Text and streams the audio to emit as it arrives
// (see tts.Synthesizer). Speed is clamped to 0.25..4 and sent only when it
// differs from 1; a negative or non-finite Speed is tts.CodeBadRequest.
// Language is not sent (the endpoint reads the language from the text).
// Text that is empty or only white space produces no request, no audio and
// no error. Failures are *tts.Error values coded tts.CodeAuth (HTTP
// 401/403), tts.CodeRateLimited (429), tts.CodeUnavailable (5xx, endpoint
// unreachable, connection lost mid-stream), tts.CodeTimeout (408, or no
// progress for Config.Timeout), tts.CodeBadRequest (other 4xx) or
// tts.CodeError (an unexpected audio format).
func (e *Engine) Synthesize(ctx context.Context, req tts.Request, emit func(pcm []int16) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	speed, err := speedParam(req.Speed)
	if err != nil {
		return err
	}
	if strings.TrimSpace(req.Text) == "" {
		return nil
	}
	voice := e.voice
	if req.Voice != "" {
		voice = req.Voice
	}
	select {
	case e.slots <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-e.slots }()

	rctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	// The watchdog runs only while waiting on the endpoint, never while
	// emit runs (a consumer pacing playback is not a stalled endpoint).
	watchdog := time.AfterFunc(e.timeout, func() { cancel(errStalled) })
	defer watchdog.Stop()

	resp, err := e.client.CreateSpeech(rctx, goopenai.CreateSpeechRequest{
		Model:          goopenai.SpeechModel(e.model),
		Input:          req.Text,
		Voice:          goopenai.SpeechVoice(voice),
		ResponseFormat: goopenai.SpeechResponseFormatPcm,
		Speed:          speed,
	})
	watchdog.Stop()
	if err != nil {
		return e.failure(ctx, rctx, err, req.Text, "request")
	}
	defer resp.Close()
	return e.stream(ctx, rctx, watchdog, resp, emit, req.Text)
}

// speedParam converts Request.Speed to the request's speed field (0 means
// omitted: the endpoint's default, 1).
func speedParam(s float64) (float64, error) {
	if s < 0 || math.IsNaN(s) || math.IsInf(s, 0) {
		return 0, &tts.Error{Code: tts.CodeBadRequest, Message: "openai: speed must be a positive number"}
	}
	if s == 0 || s == 1 {
		return 0, nil
	}
	return min(max(s, MinSpeed), MaxSpeed), nil
}

// stream reads the response body and emits it as PCM chunks.
func (e *Engine) stream(ctx, rctx context.Context, watchdog *time.Timer, resp goopenai.RawResponse, emit func([]int16) error, text string) error {
	if err := checkHeader(resp.Header()); err != nil {
		return err
	}
	buf := make([]byte, readBufferBytes)
	pcm := make([]int16, maxChunkBytes/2)
	pending := 0     // bytes in buf not yet emitted
	sniffed := false // the start of the body was checked for a WAV header
	for {
		watchdog.Reset(e.timeout)
		n, rerr := resp.Read(buf[pending:])
		watchdog.Stop()
		pending += n
		eof := errors.Is(rerr, io.EOF)
		if rerr != nil && !eof {
			return e.failure(ctx, rctx, rerr, text, "audio stream")
		}
		if !sniffed {
			off, err := skipWAVHeader(buf[:pending], eof)
			if errors.Is(err, errNeedMore) {
				if pending == len(buf) {
					return &tts.Error{Code: tts.CodeError, Message: "openai: WAV header too long"}
				}
				continue
			}
			if err != nil {
				return err
			}
			pending = copy(buf, buf[off:pending])
			sniffed = true
		}
		off := 0
		for pending-off >= minChunkBytes || (eof && pending-off >= 2) {
			m := min(pending-off, maxChunkBytes) &^ 1
			s := pcm[:m/2]
			for i := range s {
				s[i] = int16(binary.LittleEndian.Uint16(buf[off+2*i:]))
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := emit(s); err != nil {
				return err
			}
			off += m
		}
		// An odd byte at the very end (a truncated sample) is dropped.
		pending = copy(buf, buf[off:pending])
		if eof {
			return nil
		}
	}
}

// checkHeader rejects responses that are clearly not raw PCM: another
// audio format, JSON or text, or PCM at another rate (a header some
// compatible servers send).
func checkHeader(h http.Header) error {
	if ct := h.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil {
			mt = strings.ToLower(strings.TrimSpace(ct))
		}
		switch {
		case mt == "audio/wav" || mt == "audio/x-wav" || mt == "audio/wave" || mt == "audio/vnd.wave":
			// Checked by skipWAVHeader.
		case mt == "application/json" || strings.HasPrefix(mt, "text/") ||
			mt == "audio/mpeg" || mt == "audio/mp3" || mt == "audio/ogg" || mt == "audio/opus" ||
			mt == "audio/aac" || mt == "audio/flac" || mt == "audio/webm" || mt == "audio/mp4":
			return &tts.Error{Code: tts.CodeError, Message: fmt.Sprintf("openai: endpoint sent %s, not raw PCM", clip(mt, 64))}
		}
	}
	if sr := h.Get("X-Sample-Rate"); sr != "" && strings.TrimSpace(sr) != "24000" {
		return &tts.Error{Code: tts.CodeError, Message: fmt.Sprintf("openai: endpoint sent PCM at %s Hz, want 24000", clip(sr, 16))}
	}
	return nil
}

// errNeedMore: the buffer ends inside a WAV header.
var errNeedMore = errors.New("need more bytes")

// skipWAVHeader returns how many bytes at the start of b are a WAV header
// (0 when b does not start with one). A WAV header is accepted only when
// the audio is 24 kHz mono 16-bit PCM. eof reports that b is the whole body.
func skipWAVHeader(b []byte, eof bool) (int, error) {
	if len(b) < 12 {
		if !eof && (len(b) == 0 || strings.HasPrefix("RIFF", string(b[:min(len(b), 4)]))) {
			return 0, errNeedMore
		}
		return 0, nil
	}
	if string(b[0:4]) != "RIFF" || string(b[8:12]) != "WAVE" {
		return 0, nil
	}
	bad := func(msg string) (int, error) {
		return 0, &tts.Error{Code: tts.CodeError, Message: "openai: endpoint sent WAV " + msg}
	}
	off, haveFmt := 12, false
	for {
		if len(b) < off+8 {
			if eof {
				return bad("without audio data")
			}
			return 0, errNeedMore
		}
		id, size := string(b[off:off+4]), int(binary.LittleEndian.Uint32(b[off+4:]))
		off += 8
		switch id {
		case "fmt ":
			if size < 16 {
				return bad("with a malformed fmt chunk")
			}
			if len(b) < off+16 {
				if eof {
					return bad("with a truncated fmt chunk")
				}
				return 0, errNeedMore
			}
			format := binary.LittleEndian.Uint16(b[off:])
			channels := binary.LittleEndian.Uint16(b[off+2:])
			rate := binary.LittleEndian.Uint32(b[off+4:])
			bits := binary.LittleEndian.Uint16(b[off+14:])
			// 1 is PCM; 0xFFFE (extensible) carries a subformat, PCM
			// in the cases accepted here (16-bit integer mono).
			if (format != 1 && format != 0xFFFE) || channels != 1 || bits != 16 || rate != SampleRate {
				return bad(fmt.Sprintf("audio (format %d, %d channels, %d bits, %d Hz), want 24000 Hz mono 16-bit PCM",
					format, channels, bits, rate))
			}
			haveFmt = true
		case "data":
			if !haveFmt {
				return bad("with data before its fmt chunk")
			}
			// The data chunk runs to the end of the body (streamed WAVs
			// carry a placeholder size).
			return off, nil
		}
		if size > readBufferBytes {
			return bad("with an oversized header chunk")
		}
		off += size + size&1 // chunks are padded to even sizes
	}
}

// failure turns an error from the request or the body into what
// Synthesize returns: ctx.Err() when the caller's ctx ended, else a
// *tts.Error whose text never includes the spoken input.
func (e *Engine) failure(ctx, rctx context.Context, err error, text, during string) error {
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	if errors.Is(context.Cause(rctx), errStalled) {
		return &tts.Error{Code: tts.CodeTimeout, Message: fmt.Sprintf("openai: %s: no progress for %v", during, e.timeout)}
	}
	status := 0
	var reqErr *goopenai.RequestError
	var apiErr *goopenai.APIError
	if errors.As(err, &reqErr) {
		status = reqErr.HTTPStatusCode
	}
	hasAPI := errors.As(err, &apiErr)
	if status == 0 && hasAPI {
		status = apiErr.HTTPStatusCode
	}
	if status != 0 {
		summary := fmt.Sprintf("HTTP %d", status)
		if hasAPI {
			summary += describe(apiErr, text)
		}
		return &tts.Error{Code: codeForStatus(status), Message: "openai: " + during + " rejected",
			Err: &upstreamError{summary: summary, err: err}}
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return &tts.Error{Code: tts.CodeTimeout, Message: "openai: " + during + " timed out", Err: err}
	}
	return &tts.Error{Code: tts.CodeUnavailable, Message: "openai: " + during + " failed", Err: err}
}

// codeForStatus maps an HTTP error status to a tts error code.
func codeForStatus(status int) string {
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return tts.CodeAuth
	case status == http.StatusTooManyRequests:
		return tts.CodeRateLimited
	case status == http.StatusRequestTimeout:
		return tts.CodeTimeout
	case status >= 500:
		return tts.CodeUnavailable
	case status >= 400:
		return tts.CodeBadRequest
	}
	return tts.CodeError
}

// describe summarizes an API error body (type, code, param, message),
// withholding the message when it quotes the input.
func describe(a *goopenai.APIError, text string) string {
	var parts []string
	if a.Type != "" {
		parts = append(parts, "type "+clip(a.Type, 64))
	}
	if a.Code != nil {
		parts = append(parts, "code "+clip(fmt.Sprint(a.Code), 64))
	}
	if a.Param != nil && *a.Param != "" {
		parts = append(parts, "param "+clip(*a.Param, 64))
	}
	if a.Message != "" {
		if quotes(a.Message, text) {
			parts = append(parts, "message withheld (it quotes the input)")
		} else {
			parts = append(parts, "message "+clip(a.Message, 300))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

// quotes reports whether msg contains any 16-byte stretch of text (all of
// text when shorter), that is, whether an upstream message echoes the
// input.
func quotes(msg, text string) bool {
	text = strings.TrimSpace(text)
	if text == "" {
		return false
	}
	w := min(len(text), 16)
	for i := 0; i+w <= len(text); i++ {
		if strings.Contains(msg, text[i:i+w]) {
			return true
		}
	}
	return false
}

// upstreamError is an HTTP error response. Its text is a redacted
// summary (status, and the API error's type, code, param and message),
// never go-openai's error text, which includes the raw response body;
// Unwrap gives the go-openai error (*goopenai.APIError or
// *goopenai.RequestError) to callers that want the details and accept
// that they may quote the input.
type upstreamError struct {
	summary string
	err     error
}

func (u *upstreamError) Error() string { return u.summary }
func (u *upstreamError) Unwrap() error { return u.err }

// clip shortens s to at most n bytes, on a rune boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
