package openai

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"parley/stt"
)

// leakCheck verifies, after every other cleanup of t has run, that no
// goroutine leaked. Call it first in a test.
func leakCheck(t *testing.T) {
	t.Helper()
	t.Cleanup(func() { goleak.VerifyNone(t) })
}

// upload is what the fake endpoint received in one request.
type upload struct {
	auth, model, language, prompt, format string
	filename, contentType                 string
	sampleRate                            int
	samples                               []int16
	wavErr                                error
}

// fake is an OpenAI-compatible /v1/audio/transcriptions endpoint.
type fake struct {
	srv      *httptest.Server
	requests atomic.Int32
	mu       sync.Mutex
	uploads  []upload
	// handle answers a request after it was parsed (default: 200 with
	// {"text": " hello world "}).
	handle func(w http.ResponseWriter, r *http.Request)
}

func newFake(t *testing.T) *fake {
	t.Helper()
	f := &fake{}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/audio/transcriptions", func(w http.ResponseWriter, r *http.Request) {
		f.requests.Add(1)
		if err := r.ParseMultipartForm(32 << 20); err != nil {
			http.Error(w, `{"error":{"message":"bad multipart","type":"invalid_request_error"}}`, http.StatusBadRequest)
			return
		}
		u := upload{
			auth:     r.Header.Get("Authorization"),
			model:    r.FormValue("model"),
			language: r.FormValue("language"),
			prompt:   r.FormValue("prompt"),
			format:   r.FormValue("response_format"),
		}
		if file, hdr, err := r.FormFile("file"); err != nil {
			u.wavErr = err
		} else {
			u.filename, u.contentType = hdr.Filename, hdr.Header.Get("Content-Type")
			data, _ := io.ReadAll(file)
			file.Close()
			u.samples, u.sampleRate, u.wavErr = parseWAV(data)
		}
		f.mu.Lock()
		f.uploads = append(f.uploads, u)
		f.mu.Unlock()
		if f.handle != nil {
			f.handle(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"text":" hello world "}`)
	})
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fake) last(t *testing.T) upload {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.uploads) == 0 {
		t.Fatal("no upload received")
	}
	return f.uploads[len(f.uploads)-1]
}

// parseWAV strictly checks the canonical 44-byte header this package
// writes and returns the samples.
func parseWAV(b []byte) ([]int16, int, error) {
	le := binary.LittleEndian
	switch {
	case len(b) < 44:
		return nil, 0, errors.New("shorter than a WAV header")
	case string(b[0:4]) != "RIFF" || string(b[8:12]) != "WAVE":
		return nil, 0, errors.New("not RIFF/WAVE")
	case int(le.Uint32(b[4:8])) != len(b)-8:
		return nil, 0, fmt.Errorf("RIFF size %d, file has %d bytes after it", le.Uint32(b[4:8]), len(b)-8)
	case string(b[12:16]) != "fmt " || le.Uint32(b[16:20]) != 16:
		return nil, 0, errors.New("bad fmt chunk")
	case le.Uint16(b[20:22]) != 1 || le.Uint16(b[22:24]) != 1 || le.Uint16(b[34:36]) != 16:
		return nil, 0, errors.New("not 16-bit mono PCM")
	case le.Uint32(b[28:32]) != 2*le.Uint32(b[24:28]) || le.Uint16(b[32:34]) != 2:
		return nil, 0, errors.New("inconsistent byte rate or block align")
	case string(b[36:40]) != "data" || int(le.Uint32(b[40:44])) != len(b)-44:
		return nil, 0, errors.New("bad data chunk size")
	}
	pcm := make([]int16, (len(b)-44)/2)
	for i := range pcm {
		pcm[i] = int16(le.Uint16(b[44+2*i:]))
	}
	return pcm, int(le.Uint32(b[24:28])), nil
}

func newRecognizer(t *testing.T, f *fake, cfg Config) *Recognizer {
	t.Helper()
	if cfg.BaseURL == "" {
		cfg.BaseURL = f.srv.URL + "/v1"
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// tone is n samples of a 440 Hz sine at rate.
func tone(n, rate int) []int16 {
	pcm := make([]int16, n)
	for i := range pcm {
		pcm[i] = int16(8000 * math.Sin(2*math.Pi*440*float64(i)/float64(rate)))
	}
	return pcm
}

// feed writes pcm in 20 ms chunks.
func feed(t *testing.T, s stt.Stream, pcm []int16, rate int) {
	t.Helper()
	chunk := rate / 50
	for i := 0; i < len(pcm); i += chunk {
		if err := s.Write(pcm[i:min(i+chunk, len(pcm))]); err != nil {
			t.Fatal(err)
		}
	}
}

func TestTranscribe(t *testing.T) {
	leakCheck(t)
	f := newFake(t)
	r := newRecognizer(t, f, Config{APIKey: "sk-test", Model: "gpt-4o-mini-transcribe", Language: "de"})
	ctx := context.Background()

	s, err := r.NewStream(ctx, stt.StreamConfig{Language: "en-US", Prompt: "opening hours"})
	if err != nil {
		t.Fatal(err)
	}
	pcm := tone(16000*3/2+7, 16000) // 1.5 s and a few samples: not a whole chunk
	feed(t, s, pcm, 16000)
	if s.Partial() != "" {
		t.Error("Partial not empty")
	}
	text, err := s.Final(ctx)
	if err != nil || text != "hello world" {
		t.Fatalf("Final = %q, %v", text, err)
	}
	u := f.last(t)
	if u.wavErr != nil {
		t.Fatalf("uploaded file is not a valid WAV: %v", u.wavErr)
	}
	if len(u.samples) != len(pcm) || u.sampleRate != 16000 {
		t.Errorf("uploaded %d samples at %d Hz, want %d at 16000", len(u.samples), u.sampleRate, len(pcm))
	}
	for i := range pcm {
		if u.samples[i] != pcm[i] {
			t.Fatalf("sample %d = %d, want %d", i, u.samples[i], pcm[i])
		}
	}
	if u.model != "gpt-4o-mini-transcribe" || u.language != "en" || u.prompt != "opening hours" ||
		u.auth != "Bearer sk-test" || u.format != "json" {
		t.Errorf("fields: %+v", u)
	}
	if u.filename != "audio.wav" || u.contentType != "audio/wav" {
		t.Errorf("file part: name %q, content type %q", u.filename, u.contentType)
	}

	// Final again: same result, no new request.
	if again, err := s.Final(ctx); again != text || err != nil || f.requests.Load() != 1 {
		t.Errorf("second Final = %q, %v after %d requests", again, err, f.requests.Load())
	}
	if err := s.Write(pcm[:10]); stt.Code(err, "") != stt.CodeClosed {
		t.Errorf("Write after Final: %v", err)
	}
	s.Close()
	s.Close()

	// The recognizer's default language applies when the stream has none.
	s2, _ := r.NewStream(ctx, stt.StreamConfig{})
	feed(t, s2, pcm[:1600], 16000)
	if _, err := s2.Final(ctx); err != nil {
		t.Fatal(err)
	}
	if u := f.last(t); u.language != "de" || u.prompt != "" {
		t.Errorf("defaults: language %q prompt %q", u.language, u.prompt)
	}
	s2.Close()
}

func TestShortAndEmptyAudio(t *testing.T) {
	leakCheck(t)
	f := newFake(t)
	r := newRecognizer(t, f, Config{SampleRate: 24000})
	ctx := context.Background()

	// Empty: no request at all.
	s, _ := r.NewStream(ctx, stt.StreamConfig{})
	if text, err := s.Final(ctx); text != "" || err != nil {
		t.Errorf("empty Final = %q, %v", text, err)
	}
	s.Close()
	if n := f.requests.Load(); n != 0 {
		t.Errorf("%d requests for an empty utterance", n)
	}

	// Shorter than 100 ms: padded with silence to 100 ms.
	s, _ = r.NewStream(ctx, stt.StreamConfig{})
	pcm := tone(100, 24000)
	s.Write(pcm)
	if _, err := s.Final(ctx); err != nil {
		t.Fatal(err)
	}
	s.Close()
	u := f.last(t)
	if u.wavErr != nil || u.sampleRate != 24000 || len(u.samples) != 2400 {
		t.Fatalf("short upload: %d samples at %d Hz (%v), want 2400 at 24000", len(u.samples), u.sampleRate, u.wavErr)
	}
	for i, v := range u.samples {
		want := int16(0)
		if i < len(pcm) {
			want = pcm[i]
		}
		if v != want {
			t.Fatalf("sample %d = %d, want %d", i, v, want)
		}
	}
}

func TestErrorMapping(t *testing.T) {
	leakCheck(t)
	f := newFake(t)
	var status atomic.Int32
	var body atomic.Value
	f.handle = func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(int(status.Load()))
		io.WriteString(w, body.Load().(string))
	}
	r := newRecognizer(t, f, Config{APIKey: "k"})
	apiErr := `{"error":{"message":"something about the request","type":"some_error"}}`
	cases := []struct {
		status int
		body   string
		code   string
	}{
		{401, apiErr, stt.CodeAuth},
		{403, apiErr, stt.CodeAuth},
		{429, apiErr, stt.CodeRateLimited},
		{500, apiErr, stt.CodeUnavailable},
		{502, "<html>Bad Gateway SECRET-BODY</html>", stt.CodeUnavailable},
		{503, "", stt.CodeUnavailable},
		{504, apiErr, stt.CodeTimeout},
		{408, apiErr, stt.CodeTimeout},
		{400, apiErr, stt.CodeBadRequest},
		{404, "not found SECRET-BODY", stt.CodeBadRequest},
		{413, apiErr, stt.CodeBadRequest},
		{422, apiErr, stt.CodeBadRequest},
		{200, `{"text": 42}`, stt.CodeError},
		{200, `not json SECRET-BODY`, stt.CodeError},
	}
	for _, c := range cases {
		status.Store(int32(c.status))
		body.Store(c.body)
		s, _ := r.NewStream(context.Background(), stt.StreamConfig{})
		s.Write(tone(3200, 16000))
		_, err := s.Final(context.Background())
		s.Close()
		if got := stt.Code(err, "not an stt.Error"); got != c.code {
			t.Errorf("HTTP %d %q: code %q (%v), want %q", c.status, c.body, got, err, c.code)
			continue
		}
		msg := err.Error()
		if strings.Contains(msg, "SECRET-BODY") {
			t.Errorf("HTTP %d: error quotes the response body: %s", c.status, msg)
		}
		if c.status != 200 && !strings.Contains(msg, fmt.Sprint(c.status)) {
			t.Errorf("HTTP %d: error does not name the status: %s", c.status, msg)
		}
		if c.body == apiErr && !strings.Contains(msg, "something about the request") {
			t.Errorf("HTTP %d: error drops the API error message: %s", c.status, msg)
		}
	}

	// A failed Final is final: the audio is gone, the error repeats.
	status.Store(500)
	body.Store(apiErr)
	s, _ := r.NewStream(context.Background(), stt.StreamConfig{})
	s.Write(tone(3200, 16000))
	_, err1 := s.Final(context.Background())
	n := f.requests.Load()
	_, err2 := s.Final(context.Background())
	if err1 == nil || err2 != err1 || f.requests.Load() != n {
		t.Errorf("second Final after failure: %v (first %v), %d requests", err2, err1, f.requests.Load()-n)
	}
	s.Close()
}

func TestUnreachable(t *testing.T) {
	leakCheck(t)
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there now
	r, err := New(Config{BaseURL: url + "/v1"})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	s, _ := r.NewStream(context.Background(), stt.StreamConfig{})
	s.Write(tone(3200, 16000))
	if _, err := s.Final(context.Background()); stt.Code(err, "") != stt.CodeUnavailable {
		t.Errorf("connection refused: %v, want stt_unavailable", err)
	}
}

// hang makes the fake endpoint wait until the client gives up (or until
// release is closed, then answer normally).
func hang(f *fake, release <-chan struct{}) {
	f.handle = func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
			io.WriteString(w, `{"text":"late"}`)
		}
	}
}

func TestTimeoutAndCancel(t *testing.T) {
	leakCheck(t)
	f := newFake(t)
	release := make(chan struct{})
	defer close(release)
	hang(f, release)
	r := newRecognizer(t, f, Config{Timeout: 150 * time.Millisecond})
	ctx := context.Background()
	start := func() stt.Stream {
		s, err := r.NewStream(ctx, stt.StreamConfig{})
		if err != nil {
			t.Fatal(err)
		}
		s.Write(tone(3200, 16000))
		return s
	}

	// Config.Timeout.
	s := start()
	t0 := time.Now()
	_, err := s.Final(ctx)
	if stt.Code(err, "") != stt.CodeTimeout || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Timeout: %v, want stt_timeout", err)
	}
	if d := time.Since(t0); d > 5*time.Second {
		t.Errorf("Timeout took %v", d)
	}
	s.Close()

	// Caller cancels during the request.
	s = start()
	cctx, cancel := context.WithCancel(ctx)
	time.AfterFunc(30*time.Millisecond, cancel)
	_, err = s.Final(cctx)
	if stt.Code(err, "") != stt.CodeCanceled || !errors.Is(err, context.Canceled) {
		t.Errorf("cancel: %v, want stt_canceled", err)
	}
	s.Close()

	// Caller's deadline shorter than Timeout.
	s = start()
	dctx, dcancel := context.WithTimeout(ctx, 30*time.Millisecond)
	_, err = s.Final(dctx)
	dcancel()
	if stt.Code(err, "") != stt.CodeTimeout || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("caller deadline: %v, want stt_timeout", err)
	}
	s.Close()

	// Already-canceled context: no request.
	s = start()
	n := f.requests.Load()
	cctx, cancel = context.WithCancel(ctx)
	cancel()
	if _, err := s.Final(cctx); !errors.Is(err, context.Canceled) || f.requests.Load() != n {
		t.Errorf("canceled ctx: %v", err)
	}
	if _, err := r.NewStream(cctx, stt.StreamConfig{}); !errors.Is(err, context.Canceled) {
		t.Errorf("NewStream with canceled ctx: %v", err)
	}
	s.Close()

	// Close from another goroutine aborts Final.
	s = start()
	time.AfterFunc(30*time.Millisecond, func() { s.Close() })
	if _, err := s.Final(ctx); stt.Code(err, "") != stt.CodeCanceled {
		t.Errorf("Close during Final: %v, want stt_canceled", err)
	}
	if _, err := s.Final(ctx); stt.Code(err, "") != stt.CodeClosed {
		t.Errorf("Final after Close: %v, want stt_closed", err)
	}
}

func TestMaxConcurrent(t *testing.T) {
	leakCheck(t)
	f := newFake(t)
	release := make(chan struct{})
	hang(f, release)
	r := newRecognizer(t, f, Config{MaxConcurrent: 1})
	ctx := context.Background()

	first, _ := r.NewStream(ctx, stt.StreamConfig{})
	first.Write(tone(3200, 16000))
	done := make(chan error, 1)
	go func() {
		_, err := first.Final(ctx)
		done <- err
	}()
	for f.requests.Load() == 0 {
		time.Sleep(5 * time.Millisecond)
	}

	// Streams are not limited; requests are.
	second, err := r.NewStream(ctx, stt.StreamConfig{})
	if err != nil {
		t.Fatal(err)
	}
	second.Write(tone(3200, 16000))
	tctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	_, err = second.Final(tctx)
	cancel()
	if stt.Code(err, "") != stt.CodeBusy || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("second request: %v, want stt_busy", err)
	}
	if n := f.requests.Load(); n != 1 {
		t.Errorf("%d requests reached the endpoint, want 1", n)
	}
	second.Close()

	close(release)
	if err := <-done; err != nil {
		t.Errorf("first request: %v", err)
	}
	first.Close()
	third, _ := r.NewStream(ctx, stt.StreamConfig{})
	third.Write(tone(3200, 16000))
	if text, err := third.Final(ctx); err != nil || text != "late" {
		t.Errorf("after release: %q, %v", text, err)
	}
	third.Close()
}

func TestRecognizerClose(t *testing.T) {
	leakCheck(t)
	f := newFake(t)
	release := make(chan struct{})
	defer close(release)
	hang(f, release)
	r := newRecognizer(t, f, Config{})
	ctx := context.Background()
	s, _ := r.NewStream(ctx, stt.StreamConfig{})
	s.Write(tone(3200, 16000))
	done := make(chan error, 1)
	go func() {
		_, err := s.Final(ctx)
		done <- err
	}()
	for f.requests.Load() == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	if err := r.Close(); err != nil { // cancels the request and waits for it
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if stt.Code(err, "") != stt.CodeClosed {
			t.Errorf("Final during Close: %v, want stt_closed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end the request")
	}
	s.Close()
	if err := r.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := r.NewStream(ctx, stt.StreamConfig{}); stt.Code(err, "") != stt.CodeClosed {
		t.Errorf("NewStream after Close: %v", err)
	}
}

func TestStreamLimits(t *testing.T) {
	leakCheck(t)
	f := newFake(t)
	r := newRecognizer(t, f, Config{MaxAudio: time.Second, SampleRate: 8000})
	ctx := context.Background()
	s, _ := r.NewStream(ctx, stt.StreamConfig{})
	if err := s.Write(make([]int16, 8000)); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(make([]int16, 1)); stt.Code(err, "") != stt.CodeAudioTooLong {
		t.Errorf("past MaxAudio: %v", err)
	}
	s.Close()
	if err := s.Write(make([]int16, 1)); stt.Code(err, "") != stt.CodeClosed {
		t.Errorf("Write after Close: %v", err)
	}
	if _, err := r.NewStream(ctx, stt.StreamConfig{Language: "english!"}); stt.Code(err, "") != stt.CodeUnsupportedLanguage {
		t.Errorf("bad language: %v", err)
	}
	s, err := r.NewStream(ctx, stt.StreamConfig{Language: "pt_BR"})
	if err != nil {
		t.Fatal(err)
	}
	s.Write(make([]int16, 800))
	s.Final(ctx)
	if u := f.last(t); u.language != "pt" {
		t.Errorf("pt_BR sent as %q", u.language)
	}
	s.Close()
}

func TestConcurrentStreams(t *testing.T) {
	leakCheck(t)
	f := newFake(t)
	r := newRecognizer(t, f, Config{MaxConcurrent: 3})
	var wg sync.WaitGroup
	for i := range 12 {
		wg.Go(func() {
			s, err := r.NewStream(context.Background(), stt.StreamConfig{})
			if err != nil {
				t.Error(err)
				return
			}
			defer s.Close()
			pcm := tone(1600*(i+1), 16000)
			feed(t, s, pcm, 16000)
			if text, err := s.Final(context.Background()); err != nil || text != "hello world" {
				t.Errorf("stream %d: %q, %v", i, text, err)
			}
		})
	}
	wg.Wait()
	f.mu.Lock()
	defer f.mu.Unlock()
	seen := map[int]bool{}
	for _, u := range f.uploads {
		if u.wavErr != nil {
			t.Errorf("bad WAV: %v", u.wavErr)
		}
		seen[len(u.samples)] = true
	}
	for i := range 12 {
		if !seen[1600*(i+1)] {
			t.Errorf("no upload with %d samples", 1600*(i+1))
		}
	}
}

func TestNewValidation(t *testing.T) {
	leakCheck(t)
	cases := []struct {
		cfg  Config
		want string
	}{
		{Config{}, "APIKey"}, // default BaseURL is api.openai.com
		{Config{BaseURL: "https://API.openai.com/v1/"}, "APIKey"},
		{Config{BaseURL: "localhost:8000"}, "BaseURL"},
		{Config{BaseURL: "ftp://example.com/v1"}, "BaseURL"},
		{Config{BaseURL: "http://user:pw@example.com/v1"}, "BaseURL"},
		{Config{BaseURL: "http://%zz"}, "BaseURL"},
		{Config{BaseURL: "http://x", APIKey: "a b"}, "APIKey"},
		{Config{BaseURL: "http://x", Model: " whisper-1"}, "Model"},
		{Config{BaseURL: "http://x", Language: "english"}, "Language"},
		{Config{BaseURL: "http://x", Timeout: -time.Second}, "Timeout"},
		{Config{BaseURL: "http://x", SampleRate: 4000}, "SampleRate"},
		{Config{BaseURL: "http://x", SampleRate: 96000}, "SampleRate"},
		{Config{BaseURL: "http://x", MaxConcurrent: -1}, "MaxConcurrent"},
		{Config{BaseURL: "http://x", MaxAudio: -time.Second}, "MaxAudio"},
		{Config{BaseURL: "http://x", SampleRate: 48000}, "MaxAudio"}, // 5 min at 48 kHz > 25 MB
	}
	for _, c := range cases {
		r, err := New(c.cfg)
		if err == nil {
			r.Close()
			t.Errorf("New(%+v) succeeded, want an error naming %s", c.cfg, c.want)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(%+v) = %v, want it to name %s", c.cfg, err, c.want)
		}
	}
	r, err := New(Config{APIKey: "k"})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cfg := r.Config()
	if cfg.BaseURL != DefaultBaseURL || cfg.Model != "whisper-1" || cfg.Timeout != DefaultTimeout ||
		cfg.SampleRate != 16000 || cfg.MaxConcurrent != DefaultMaxConcurrent || cfg.MaxAudio != DefaultMaxAudio {
		t.Errorf("defaults: %+v", cfg)
	}
	if r.SampleRate() != 16000 {
		t.Errorf("SampleRate() = %d", r.SampleRate())
	}
	// A local endpoint needs no key; a custom client is used as given.
	hc := &http.Client{}
	r2, err := New(Config{BaseURL: "http://127.0.0.1:9/v1", HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	r2.Close()
}

func TestWAVHeader(t *testing.T) {
	b := make([]byte, wavHeaderSize)
	b = appendPCM(b, []int16{0, 1, -1, 32767, -32768})
	putWAVHeader(b, 22050, len(b)-wavHeaderSize)
	pcm, rate, err := parseWAV(b)
	if err != nil || rate != 22050 || len(pcm) != 5 || pcm[2] != -1 || pcm[3] != 32767 || pcm[4] != -32768 {
		t.Errorf("round trip: %v %d %v", pcm, rate, err)
	}
}

func TestIsoLanguage(t *testing.T) {
	for in, want := range map[string]string{"en": "en", "EN-us": "en", "pt_BR": "pt", "yue": "yue", "zh-Hant-TW": "zh"} {
		if got, err := isoLanguage(in); got != want || err != nil {
			t.Errorf("isoLanguage(%q) = %q, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "e", "engl", "e1", "-en", "日本"} {
		if _, err := isoLanguage(bad); err == nil {
			t.Errorf("isoLanguage(%q) accepted", bad)
		}
	}
}
