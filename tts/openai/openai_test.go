package openai

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"parley/tts"
)

// checkLeaks verifies, after every other cleanup (servers closed), that
// the test left no goroutine behind.
func checkLeaks(t *testing.T) {
	t.Helper()
	t.Cleanup(func() { goleak.VerifyNone(t) })
}

// tone is n samples of a 440 Hz sine with both signs, as 16-bit PCM.
func tone(n int) []int16 {
	s := make([]int16, n)
	for i := range s {
		s[i] = int16(12000 * math.Sin(2*math.Pi*440*float64(i)/SampleRate))
	}
	s[0], s[1] = math.MinInt16, math.MaxInt16
	return s
}

func le(pcm []int16) []byte {
	b := make([]byte, 2*len(pcm))
	for i, v := range pcm {
		binary.LittleEndian.PutUint16(b[2*i:], uint16(v))
	}
	return b
}

// writePieces writes b in flushed pieces of odd, varying sizes.
func writePieces(w http.ResponseWriter, b []byte) {
	sizes := []int{1, 3, 7, 997, 2, 1501, 5, 4001, 333}
	for i := 0; len(b) > 0; i++ {
		n := min(sizes[i%len(sizes)], len(b))
		if _, err := w.Write(b[:n]); err != nil {
			return
		}
		w.(http.Flusher).Flush()
		b = b[n:]
		time.Sleep(200 * time.Microsecond)
	}
}

// speechRequest is what the fake endpoint received.
type speechRequest struct {
	method, path, auth, contentType string
	body                            map[string]any
}

func decodeRequest(t *testing.T, r *http.Request) speechRequest {
	t.Helper()
	sr := speechRequest{method: r.Method, path: r.URL.Path, auth: r.Header.Get("Authorization"), contentType: r.Header.Get("Content-Type")}
	if err := json.NewDecoder(r.Body).Decode(&sr.body); err != nil {
		t.Errorf("request body: %v", err)
	}
	return sr
}

func newServer(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func newEngine(t *testing.T, cfg Config) *Engine {
	t.Helper()
	e, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return e
}

// collect runs Synthesize and gathers what emit received.
type collected struct {
	pcm    []int16
	sizes  []int
	err    error
	took   time.Duration
	first  time.Duration
	chunks int
}

func collect(e *Engine, ctx context.Context, req tts.Request) collected {
	var c collected
	start := time.Now()
	c.err = e.Synthesize(ctx, req, func(pcm []int16) error {
		if c.chunks == 0 {
			c.first = time.Since(start)
		}
		c.chunks++
		c.sizes = append(c.sizes, len(pcm))
		c.pcm = append(c.pcm, pcm...)
		return nil
	})
	c.took = time.Since(start)
	return c
}

func equalPCM(a, b []int16) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestStreamsPCM(t *testing.T) {
	checkLeaks(t)
	audio := tone(SampleRate) // 1 s
	gotFirst := make(chan struct{})
	var got atomic.Value
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		got.Store(decodeRequest(t, r))
		w.Header().Set("Content-Type", "audio/pcm")
		b := le(audio)
		// 100 ms, then wait until the client has emitted it: the rest is
		// only sent once the first chunk is out, which proves streaming.
		writePieces(w, b[:4800])
		select {
		case <-gotFirst:
		case <-time.After(5 * time.Second):
			t.Error("no chunk emitted before the body ended")
		}
		writePieces(w, b[4800:])
	})
	e := newEngine(t, Config{BaseURL: srv.URL + "/v1/", APIKey: "sk-test", Model: "tts-1", Voice: "echo"})
	if e.SampleRate() != 24000 {
		t.Fatalf("SampleRate %d", e.SampleRate())
	}
	var once sync.Once
	var c collected
	c.err = e.Synthesize(context.Background(), tts.Request{Text: "Hello there, friend.", Voice: "nova", Speed: 1.5, Language: "en"},
		func(pcm []int16) error {
			once.Do(func() { close(gotFirst) })
			c.sizes = append(c.sizes, len(pcm))
			c.pcm = append(c.pcm, pcm...)
			return nil
		})
	if c.err != nil {
		t.Fatal(c.err)
	}
	if !equalPCM(c.pcm, audio) {
		t.Fatalf("got %d samples, want the %d sent, identical", len(c.pcm), len(audio))
	}
	for i, n := range c.sizes {
		if n > 960 || (n < 480 && i != len(c.sizes)-1) {
			t.Errorf("chunk %d has %d samples, want 480..960 (20-40 ms)", i, n)
		}
	}
	req := got.Load().(speechRequest)
	if req.method != http.MethodPost || req.path != "/v1/audio/speech" || req.auth != "Bearer sk-test" || !strings.HasPrefix(req.contentType, "application/json") {
		t.Errorf("request %s %s auth %q content-type %q", req.method, req.path, req.auth, req.contentType)
	}
	want := map[string]any{"model": "tts-1", "voice": "nova", "input": "Hello there, friend.", "response_format": "pcm", "speed": 1.5}
	for k, v := range want {
		if req.body[k] != v {
			t.Errorf("request %s = %v, want %v", k, req.body[k], v)
		}
	}
	t.Logf("%d chunks", len(c.sizes))
}

func TestDefaultsAndSpeed(t *testing.T) {
	checkLeaks(t)
	var reqs []speechRequest
	var mu sync.Mutex
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		sr := decodeRequest(t, r)
		mu.Lock()
		reqs = append(reqs, sr)
		mu.Unlock()
		_, _ = w.Write(le(tone(100)))
	})
	e := newEngine(t, Config{BaseURL: srv.URL})
	for _, s := range []float64{0, 1, 0.1, 9} {
		if c := collect(e, context.Background(), tts.Request{Text: "Hi.", Speed: s}); c.err != nil || len(c.pcm) != 100 {
			t.Fatalf("speed %v: %d samples, %v", s, len(c.pcm), c.err)
		}
	}
	for i, want := range []any{nil, nil, 0.25, 4.0} {
		if got := reqs[i].body["speed"]; got != want {
			t.Errorf("request %d speed %v, want %v", i, got, want)
		}
	}
	r := reqs[0]
	if r.auth != "" || r.path != "/audio/speech" || r.body["model"] != "gpt-4o-mini-tts" || r.body["voice"] != "alloy" || r.body["response_format"] != "pcm" {
		t.Errorf("defaults: %+v", r)
	}
	for _, s := range []float64{-1, math.NaN(), math.Inf(-1)} {
		if c := collect(e, context.Background(), tts.Request{Text: "Hi.", Speed: s}); tts.Code(c.err, "") != tts.CodeBadRequest {
			t.Errorf("speed %v: %v", s, c.err)
		}
	}
	if len(reqs) != 4 {
		t.Errorf("%d requests, want 4", len(reqs))
	}
}

func TestEmptyTextMakesNoRequest(t *testing.T) {
	checkLeaks(t)
	var n atomic.Int32
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) { n.Add(1) })
	e := newEngine(t, Config{BaseURL: srv.URL})
	for _, s := range []string{"", " \n\t "} {
		if c := collect(e, context.Background(), tts.Request{Text: s}); c.err != nil || c.chunks != 0 {
			t.Errorf("%q: %v, %d chunks", s, c.err, c.chunks)
		}
	}
	if n.Load() != 0 {
		t.Errorf("%d requests", n.Load())
	}
}

func TestHTTPErrors(t *testing.T) {
	checkLeaks(t)
	const secret = "My account number is 1234-5678, please read it back."
	cases := []struct {
		status   int
		ctype    string
		body     string
		code     string
		contains string
	}{
		{401, "application/json", `{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","code":"invalid_api_key"}}`, tts.CodeAuth, "invalid_api_key"},
		{403, "application/json", `{"error":{"message":"Project does not have access","type":"invalid_request_error"}}`, tts.CodeAuth, "does not have access"},
		{429, "application/json", `{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}`, tts.CodeRateLimited, "rate_limit_exceeded"},
		{500, "application/json", `{"error":{"message":"The server had an error","type":"server_error"}}`, tts.CodeUnavailable, "HTTP 500"},
		{503, "text/html", `<html>overloaded, input was ` + secret + `</html>`, tts.CodeUnavailable, "HTTP 503"},
		{502, "text/plain", "bad gateway", tts.CodeUnavailable, "HTTP 502"},
		{408, "text/plain", "", tts.CodeTimeout, "HTTP 408"},
		{404, "application/json", `{"error":{"message":"model not found","type":"invalid_request_error","param":"model"}}`, tts.CodeBadRequest, "param model"},
		{400, "application/json", `{"error":{"message":"Invalid input: '` + secret[:30] + `...' is not allowed","type":"invalid_request_error","param":"input"}}`, tts.CodeBadRequest, "withheld"},
		{422, "application/json", `{"detail":"unprocessable ` + secret + `"}`, tts.CodeBadRequest, "HTTP 422"},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprint(tc.status), func(t *testing.T) {
			srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body)
				w.Header().Set("Content-Type", tc.ctype)
				w.WriteHeader(tc.status)
				_, _ = io.WriteString(w, tc.body)
			})
			e := newEngine(t, Config{BaseURL: srv.URL, APIKey: "k"})
			c := collect(e, context.Background(), tts.Request{Text: secret})
			if got := tts.Code(c.err, ""); got != tc.code {
				t.Fatalf("code %q, want %q (%v)", got, tc.code, c.err)
			}
			msg := c.err.Error()
			if !strings.Contains(msg, tc.contains) {
				t.Errorf("error %q lacks %q", msg, tc.contains)
			}
			if strings.Contains(msg, "account") || strings.Contains(msg, "1234") {
				t.Errorf("error quotes the input: %q", msg)
			}
			var te *tts.Error
			if !errors.As(c.err, &te) || strings.Contains(te.Message, "1234") {
				t.Errorf("not a clean *tts.Error: %#v", c.err)
			}
		})
	}
}

func TestWrongFormat(t *testing.T) {
	checkLeaks(t)
	cases := map[string]func(http.ResponseWriter){
		"json 200": func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"ok":true}`)
		},
		"mp3": func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "audio/mpeg")
			_, _ = w.Write([]byte("ID3\x03\x00"))
		},
		"16 kHz pcm": func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "audio/pcm")
			w.Header().Set("X-Sample-Rate", "16000")
			_, _ = w.Write(le(tone(100)))
		},
		"16 kHz wav": func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "audio/wav")
			_, _ = w.Write(wav(tone(100), 16000, 1, false))
		},
		"stereo wav as octet-stream": func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/octet-stream")
			_, _ = w.Write(wav(tone(100), 24000, 2, false))
		},
		"wav without data": func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "audio/wav")
			_, _ = w.Write(wav(nil, 24000, 1, false)[:36])
		},
	}
	for name, h := range cases {
		t.Run(name, func(t *testing.T) {
			srv := newServer(t, func(w http.ResponseWriter, r *http.Request) { h(w) })
			e := newEngine(t, Config{BaseURL: srv.URL})
			c := collect(e, context.Background(), tts.Request{Text: "Hello."})
			if tts.Code(c.err, "") != tts.CodeError || c.chunks != 0 {
				t.Fatalf("%v, %d chunks", c.err, c.chunks)
			}
			t.Log(c.err)
		})
	}
}

// wav builds a WAV stream (with a LIST chunk before data, and a streaming
// placeholder data size when streaming).
func wav(pcm []int16, rate, channels int, streaming bool) []byte {
	var b []byte
	u32 := func(v uint32) { b = binary.LittleEndian.AppendUint32(b, v) }
	u16 := func(v uint16) { b = binary.LittleEndian.AppendUint16(b, v) }
	b = append(b, "RIFF"...)
	u32(0xFFFFFFFF)
	b = append(b, "WAVEfmt "...)
	u32(16)
	u16(1)
	u16(uint16(channels))
	u32(uint32(rate))
	u32(uint32(rate * 2 * channels))
	u16(uint16(2 * channels))
	u16(16)
	b = append(b, "LIST"...)
	u32(5)
	b = append(b, "INFOx\x00"...) // 5 bytes and a pad byte
	b = append(b, "data"...)
	if streaming {
		u32(0xFFFFFFFF)
	} else {
		u32(uint32(2 * len(pcm)))
	}
	return append(b, le(pcm)...)
}

func TestWAVResponse(t *testing.T) {
	checkLeaks(t)
	audio := tone(12345)
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "audio/wav")
		writePieces(w, wav(audio, 24000, 1, true))
	})
	e := newEngine(t, Config{BaseURL: srv.URL})
	c := collect(e, context.Background(), tts.Request{Text: "Hello."})
	if c.err != nil || !equalPCM(c.pcm, audio) {
		t.Fatalf("%v: %d samples, want %d identical", c.err, len(c.pcm), len(audio))
	}
}

func TestOddTotalAndTinyBodies(t *testing.T) {
	checkLeaks(t)
	for _, n := range []int{0, 1, 2, 3, 5, 959, 961, 1919, 1921} {
		body := le(tone(2 + n/2))[:n]
		srv := newServer(t, func(w http.ResponseWriter, r *http.Request) { writePieces(w, body) })
		e := newEngine(t, Config{BaseURL: srv.URL})
		c := collect(e, context.Background(), tts.Request{Text: "Hi."})
		if c.err != nil || len(c.pcm) != n/2 {
			t.Errorf("%d bytes: %d samples, %v", n, len(c.pcm), c.err)
		}
		srv.Close()
	}
}

func TestConnectionRefused(t *testing.T) {
	checkLeaks(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	e := newEngine(t, Config{BaseURL: "http://" + addr + "/v1"})
	c := collect(e, context.Background(), tts.Request{Text: "Hello."})
	if tts.Code(c.err, "") != tts.CodeUnavailable {
		t.Fatalf("%v", c.err)
	}
	t.Log(c.err)
}

func TestDroppedMidStream(t *testing.T) {
	checkLeaks(t)
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "96000") // promise 1 s
		_, _ = w.Write(le(tone(2400)))            // send 100 ms, then hang up
		w.(http.Flusher).Flush()
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			_ = conn.Close()
		}
	})
	e := newEngine(t, Config{BaseURL: srv.URL})
	c := collect(e, context.Background(), tts.Request{Text: "Hello."})
	if tts.Code(c.err, "") != tts.CodeUnavailable || len(c.pcm) == 0 {
		t.Fatalf("%v after %d samples", c.err, len(c.pcm))
	}
	t.Log(c.err)
}

func TestTimeoutBeforeHeaders(t *testing.T) {
	checkLeaks(t)
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		// Read the body: only then does the server watch the connection
		// and end r.Context() when the client hangs up.
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	})
	e := newEngine(t, Config{BaseURL: srv.URL, Timeout: 100 * time.Millisecond})
	c := collect(e, context.Background(), tts.Request{Text: "Hello."})
	if tts.Code(c.err, "") != tts.CodeTimeout || c.took > time.Second {
		t.Fatalf("%v after %v", c.err, c.took)
	}
	t.Logf("%v after %v", c.err, c.took)
}

func TestTimeoutMidStream(t *testing.T) {
	checkLeaks(t)
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		writePieces(w, le(tone(2400)))
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	})
	e := newEngine(t, Config{BaseURL: srv.URL, Timeout: 150 * time.Millisecond})
	c := collect(e, context.Background(), tts.Request{Text: "Hello."})
	if tts.Code(c.err, "") != tts.CodeTimeout || len(c.pcm) < 2400-480 || c.took > time.Second {
		t.Fatalf("%v after %v and %d samples", c.err, c.took, len(c.pcm))
	}
}

// TestSlowConsumerIsNotATimeout: the inactivity timer does not run while
// emit does (a consumer pacing playback is not a stalled endpoint).
func TestSlowConsumerIsNotATimeout(t *testing.T) {
	checkLeaks(t)
	audio := tone(4 * 960)
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(le(audio)) })
	e := newEngine(t, Config{BaseURL: srv.URL, Timeout: 200 * time.Millisecond})
	var got []int16
	err := e.Synthesize(context.Background(), tts.Request{Text: "Hello."}, func(pcm []int16) error {
		time.Sleep(300 * time.Millisecond) // longer than Timeout
		got = append(got, pcm...)
		return nil
	})
	if err != nil || !equalPCM(got, audio) {
		t.Fatalf("%v, %d samples", err, len(got))
	}
}

func TestCancelMidStream(t *testing.T) {
	checkLeaks(t)
	disconnected := make(chan struct{})
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		writePieces(w, le(tone(4800)))
		select {
		case <-r.Context().Done():
			close(disconnected)
		case <-time.After(5 * time.Second):
		}
	})
	e := newEngine(t, Config{BaseURL: srv.URL})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var canceledAt time.Time
	var mu sync.Mutex
	chunks := 0
	errc := make(chan error, 1)
	go func() {
		errc <- e.Synthesize(ctx, tts.Request{Text: "Hello."}, func(pcm []int16) error {
			mu.Lock()
			defer mu.Unlock()
			chunks++
			if chunks == 2 {
				go func() {
					mu.Lock()
					canceledAt = time.Now()
					mu.Unlock()
					cancel()
				}()
			}
			return nil
		})
	}()
	var err error
	select {
	case err = <-errc:
	case <-time.After(3 * time.Second):
		t.Fatal("Synthesize did not return after cancel")
	}
	mu.Lock()
	took := time.Since(canceledAt)
	mu.Unlock()
	if !errors.Is(err, context.Canceled) || took > 100*time.Millisecond {
		t.Fatalf("%v, %v after cancel", err, took)
	}
	select {
	case <-disconnected:
	case <-time.After(2 * time.Second):
		t.Fatal("the request was not torn down")
	}
	t.Logf("returned %v after cancel", took)
}

func TestEmitErrorStops(t *testing.T) {
	checkLeaks(t)
	disconnected := make(chan struct{})
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		writePieces(w, le(tone(4800)))
		select {
		case <-r.Context().Done():
			close(disconnected)
		case <-time.After(5 * time.Second):
		}
	})
	e := newEngine(t, Config{BaseURL: srv.URL})
	stop := errors.New("client went away")
	calls := 0
	err := e.Synthesize(context.Background(), tts.Request{Text: "Hello."}, func([]int16) error {
		calls++
		return stop
	})
	if err != stop || calls != 1 {
		t.Fatalf("err %v after %d calls, want the emit error as is after 1", err, calls)
	}
	select {
	case <-disconnected:
	case <-time.After(2 * time.Second):
		t.Fatal("the request was not torn down")
	}
}

func TestMaxConcurrent(t *testing.T) {
	checkLeaks(t)
	var inFlight, peak atomic.Int32
	release := make(chan struct{})
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		<-release
		_, _ = w.Write(le(tone(480)))
	})
	e := newEngine(t, Config{BaseURL: srv.URL, MaxConcurrent: 2})
	var wg sync.WaitGroup
	errs := make(chan error, 5)
	for range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- collect(e, context.Background(), tts.Request{Text: "Hello."}).err
		}()
	}
	// A caller that cannot get a slot gives up when its ctx ends.
	time.Sleep(100 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	c := collect(e, ctx, tts.Request{Text: "Hello."})
	cancel()
	if !errors.Is(c.err, context.DeadlineExceeded) {
		t.Errorf("waiting caller: %v", c.err)
	}
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if p := peak.Load(); p != 2 {
		t.Errorf("peak %d requests in flight, want 2", p)
	}
}

func TestNewValidation(t *testing.T) {
	cases := []struct {
		cfg   Config
		field string
	}{
		{Config{}, "APIKey"},
		{Config{BaseURL: "https://API.openai.com/v1"}, "APIKey"},
		{Config{BaseURL: "ftp://example.com"}, "BaseURL"},
		{Config{BaseURL: "localhost:8000"}, "BaseURL"},
		{Config{BaseURL: "http://"}, "BaseURL"},
		{Config{BaseURL: "http://x", APIKey: "a\nb"}, "APIKey"},
		{Config{BaseURL: "http://x", Timeout: -time.Second}, "Timeout"},
		{Config{BaseURL: "http://x", MaxConcurrent: -1}, "MaxConcurrent"},
	}
	for _, tc := range cases {
		_, err := New(tc.cfg)
		if err == nil || !strings.Contains(err.Error(), "Config."+tc.field) {
			t.Errorf("%+v: %v, want an error naming Config.%s", tc.cfg, err, tc.field)
		}
	}
	_, err := New(Config{BaseURL: "https://user:hunter2@tts.example/v1", MaxConcurrent: -1})
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("%v", err)
	}
	if _, err := New(Config{APIKey: "sk-x"}); err != nil {
		t.Errorf("OpenAI with a key: %v", err)
	}
	if _, err := New(Config{BaseURL: "http://localhost:8880/v1"}); err != nil {
		t.Errorf("local server without a key: %v", err)
	}
}

func TestCanceledBeforeStart(t *testing.T) {
	checkLeaks(t)
	var n atomic.Int32
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) { n.Add(1) })
	e := newEngine(t, Config{BaseURL: srv.URL})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if c := collect(e, ctx, tts.Request{Text: "Hello."}); !errors.Is(c.err, context.Canceled) || n.Load() != 0 {
		t.Fatalf("%v, %d requests", c.err, n.Load())
	}
}

func TestSkipWAVHeader(t *testing.T) {
	full := wav(tone(10), 24000, 1, false)
	hdr := len(full) - 20
	for i := 0; i <= len(full); i++ {
		off, err := skipWAVHeader(full[:i], false)
		switch {
		case i < hdr && !errors.Is(err, errNeedMore):
			t.Fatalf("%d bytes: %d, %v; want errNeedMore", i, off, err)
		case i >= hdr && (err != nil || off != hdr):
			t.Fatalf("%d bytes: %d, %v; want %d", i, off, err, hdr)
		}
	}
	if off, err := skipWAVHeader([]byte("RI"), true); off != 0 || err != nil {
		t.Errorf("short raw body: %d %v", off, err)
	}
	if off, err := skipWAVHeader(le(tone(100)), false); off != 0 || err != nil {
		t.Errorf("raw PCM: %d %v", off, err)
	}
}
