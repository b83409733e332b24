package espeak

import (
	"context"
	"errors"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"parley/tts"
)

// TestMain checks that no test leaves a goroutine behind, except the
// library's worker, which lives as long as the process.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction(WorkerTopFunction))
}

const sentence = "The quick brown fox jumps over the lazy dog, and then it runs back into the forest."

// longText is a paragraph of about a minute of speech.
var longText = strings.Repeat("This is a longer paragraph that keeps the synthesizer busy for a while. ", 12)

func newEngine(t testing.TB, cfg Config) *Engine {
	t.Helper()
	e, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return e
}

// result is what one Synthesize call produced.
type result struct {
	pcm        []int16
	chunks     int
	maxChunk   int
	firstChunk time.Duration // from the call to the first emit
	total      time.Duration // from the call to the return
	err        error
}

func synth(e *Engine, ctx context.Context, req tts.Request) result {
	var r result
	start := time.Now()
	r.err = e.Synthesize(ctx, req, func(pcm []int16) error {
		if r.chunks == 0 {
			r.firstChunk = time.Since(start)
		}
		r.chunks++
		r.maxChunk = max(r.maxChunk, len(pcm))
		r.pcm = append(r.pcm, pcm...)
		return nil
	})
	r.total = time.Since(start)
	return r
}

func rms(pcm []int16) float64 {
	var sum float64
	for _, s := range pcm {
		sum += float64(s) * float64(s)
	}
	return math.Sqrt(sum / float64(max(len(pcm), 1)))
}

func seconds(e *Engine, n int) float64 { return float64(n) / float64(e.SampleRate()) }

func TestSynthesizeSentence(t *testing.T) {
	e := newEngine(t, Config{})
	if e.SampleRate() != 22050 {
		t.Fatalf("SampleRate = %d, want 22050", e.SampleRate())
	}
	r := synth(e, context.Background(), tts.Request{Text: sentence})
	if r.err != nil {
		t.Fatal(r.err)
	}
	words := len(strings.Fields(sentence))
	dur := seconds(e, len(r.pcm))
	// 16 words at 175 wpm is about 5.5 s; allow for pauses and rounding.
	if perWord := dur / float64(words); perWord < 0.2 || perWord > 0.6 {
		t.Errorf("%.2f s for %d words (%.2f s/word): implausible", dur, words, perWord)
	}
	if v := rms(r.pcm); v < 500 {
		t.Errorf("RMS %.0f: silent", v)
	}
	if r.chunks < 10 || r.maxChunk > 2*1081 {
		t.Errorf("%d chunks, largest %d samples: want many short buffers", r.chunks, r.maxChunk)
	}
	t.Logf("%.2f s of audio in %d chunks (largest %d samples); first chunk after %v, done after %v (RTF %.4f)",
		dur, r.chunks, r.maxChunk, r.firstChunk, r.total, r.total.Seconds()/dur)
}

func TestChunksStreamBeforeEnd(t *testing.T) {
	e := newEngine(t, Config{})
	synth(e, context.Background(), tts.Request{Text: "Warm up."})
	r := synth(e, context.Background(), tts.Request{Text: longText})
	if r.err != nil {
		t.Fatal(r.err)
	}
	dur := seconds(e, len(r.pcm))
	t.Logf("first chunk after %v of %v for %.1f s of audio (%d chunks)", r.firstChunk, r.total, dur, r.chunks)
	if dur < 30 {
		t.Fatalf("only %.1f s of audio", dur)
	}
	if r.firstChunk > r.total/4 {
		t.Errorf("first chunk after %v of %v: audio is not streamed", r.firstChunk, r.total)
	}
	if r.firstChunk > 50*time.Millisecond {
		t.Errorf("first chunk after %v", r.firstChunk)
	}
}

func TestSpeedAndWordsPerMinute(t *testing.T) {
	e := newEngine(t, Config{})
	normal := len(synth(e, context.Background(), tts.Request{Text: sentence}).pcm)
	fast := len(synth(e, context.Background(), tts.Request{Text: sentence, Speed: 2}).pcm)
	slow := len(synth(e, context.Background(), tts.Request{Text: sentence, Speed: 0.6}).pcm)
	if !(float64(fast) < 0.75*float64(normal) && float64(slow) > 1.3*float64(normal)) {
		t.Errorf("samples: speed 2 %d, speed 1 %d, speed 0.6 %d", fast, normal, slow)
	}
	e300 := newEngine(t, Config{WordsPerMinute: 300})
	if n := len(synth(e300, context.Background(), tts.Request{Text: sentence}).pcm); float64(n) > 0.75*float64(normal) {
		t.Errorf("300 wpm: %d samples, 175 wpm: %d", n, normal)
	}
	// Clamped, not rejected.
	if r := synth(e, context.Background(), tts.Request{Text: "Hi.", Speed: 100}); r.err != nil || len(r.pcm) == 0 {
		t.Errorf("speed 100: %d samples, %v", len(r.pcm), r.err)
	}
	for _, s := range []float64{-1, math.NaN(), math.Inf(1)} {
		r := synth(e, context.Background(), tts.Request{Text: "Hi.", Speed: s})
		if tts.Code(r.err, "") != tts.CodeBadRequest || r.chunks != 0 {
			t.Errorf("speed %v: %v, %d chunks", s, r.err, r.chunks)
		}
	}
}

func TestCancelMidSentence(t *testing.T) {
	e := newEngine(t, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var canceledAt atomic.Int64
	var afterCancel atomic.Int32
	var chunks int
	errc := make(chan error, 1)
	go func() {
		errc <- e.Synthesize(ctx, tts.Request{Text: longText}, func(pcm []int16) error {
			if canceledAt.Load() != 0 {
				afterCancel.Add(1)
			}
			chunks++
			if chunks == 5 {
				go func() {
					canceledAt.Store(time.Now().UnixNano())
					cancel()
				}()
			}
			time.Sleep(2 * time.Millisecond) // a consumer pacing playback
			return nil
		})
	}()
	var err error
	select {
	case err = <-errc:
	case <-time.After(10 * time.Second):
		t.Fatal("Synthesize did not return")
	}
	took := time.Duration(time.Now().UnixNano() - canceledAt.Load())
	t.Logf("returned %v after cancel, %d chunks", took, chunks)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if took > 100*time.Millisecond {
		t.Errorf("returned %v after cancel", took)
	}
	if afterCancel.Load() > 1 { // at most the emit already running
		t.Errorf("%d emits after cancel", afterCancel.Load())
	}
	// The library is usable afterwards.
	if r := synth(e, context.Background(), tts.Request{Text: "Still here."}); r.err != nil || len(r.pcm) == 0 {
		t.Fatalf("after cancel: %d samples, %v", len(r.pcm), r.err)
	}
}

func TestCanceledBeforeStart(t *testing.T) {
	e := newEngine(t, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := synth(e, ctx, tts.Request{Text: sentence})
	if !errors.Is(r.err, context.Canceled) || r.chunks != 0 {
		t.Fatalf("err %v, %d chunks", r.err, r.chunks)
	}
}

func TestCancelWhileQueued(t *testing.T) {
	e := newEngine(t, Config{})
	// Hold the worker: a consumer that does not read fills the queue
	// (queueChunks buffers) and the worker then waits for it.
	release := make(chan struct{})
	started := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		first := true
		done <- e.Synthesize(context.Background(), tts.Request{Text: longText + longText + longText}, func([]int16) error {
			if first {
				first = false
				close(started)
				<-release
			}
			return nil
		})
	}()
	<-started
	time.Sleep(50 * time.Millisecond) // the worker fills the queue and blocks
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	r := synth(e, ctx, tts.Request{Text: "Waiting in line."})
	if !errors.Is(r.err, context.DeadlineExceeded) || r.chunks != 0 {
		t.Errorf("queued: err %v, %d chunks", r.err, r.chunks)
	}
	if took := time.Since(start); took > 300*time.Millisecond {
		t.Errorf("queued caller returned after %v", took)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestEmitErrorAborts(t *testing.T) {
	e := newEngine(t, Config{})
	stop := errors.New("client gone")
	calls := 0
	err := e.Synthesize(context.Background(), tts.Request{Text: longText}, func([]int16) error {
		calls++
		if calls == 3 {
			return stop
		}
		return nil
	})
	if err != stop {
		t.Fatalf("err = %v, want the emit error as is", err)
	}
	if calls != 3 {
		t.Fatalf("emit called %d times after failing", calls)
	}
	if r := synth(e, context.Background(), tts.Request{Text: "Next one."}); r.err != nil || len(r.pcm) == 0 {
		t.Fatalf("after abort: %d samples, %v", len(r.pcm), r.err)
	}
}

func TestEmitPanicReleasesLibrary(t *testing.T) {
	e := newEngine(t, Config{})
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("panic not propagated")
			}
		}()
		_ = e.Synthesize(context.Background(), tts.Request{Text: longText}, func([]int16) error { panic("boom") })
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if r := synth(e, ctx, tts.Request{Text: "Recovered."}); r.err != nil || len(r.pcm) == 0 {
		t.Fatalf("after panic: %d samples, %v", len(r.pcm), r.err)
	}
}

// TestConcurrent runs syntheses from many goroutines (meaningful under
// -race): each must get exactly its own audio, which a solo run measures.
// (libespeak-ng output varies by a few samples run to run, so lengths are
// compared with a tolerance.)
func TestConcurrent(t *testing.T) {
	e := newEngine(t, Config{})
	texts := []string{"One.", sentence, "A medium length sentence for the test.", longText[:200]}
	want := make([]int, len(texts))
	for i, s := range texts {
		want[i] = len(synth(e, context.Background(), tts.Request{Text: s}).pcm)
	}
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range 6 {
				i := (g + k) % len(texts)
				r := synth(e, context.Background(), tts.Request{Text: texts[i]})
				if r.err != nil {
					errs <- r.err.Error()
					continue
				}
				if d := math.Abs(float64(len(r.pcm) - want[i])); d > 0.02*float64(want[i])+500 {
					errs <- "text " + string(rune('0'+i)) + ": wrong length"
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for msg := range errs {
		t.Error(msg)
	}
}

// TestSlowConsumerDoesNotBlockOthers: a consumer stuck in emit holds no
// library time while its audio fits the queue.
func TestSlowConsumerDoesNotBlockOthers(t *testing.T) {
	e := newEngine(t, Config{})
	release := make(chan struct{})
	started := make(chan struct{})
	done := make(chan result, 1)
	go func() {
		first := true
		var r result
		r.err = e.Synthesize(context.Background(), tts.Request{Text: sentence}, func(pcm []int16) error {
			if first {
				first = false
				close(started)
				<-release
			}
			r.pcm = append(r.pcm, pcm...)
			return nil
		})
		done <- r
	}()
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if r := synth(e, ctx, tts.Request{Text: "Meanwhile, another session speaks."}); r.err != nil || len(r.pcm) == 0 {
		t.Fatalf("second synthesis while the first consumer is stuck: %d samples, %v", len(r.pcm), r.err)
	}
	close(release)
	r := <-done
	if r.err != nil || seconds(e, len(r.pcm)) < 3 {
		t.Fatalf("stuck consumer: %.1f s, %v", seconds(e, len(r.pcm)), r.err)
	}
}

func TestVoices(t *testing.T) {
	_, err := New(Config{Voice: "xx-nope"})
	if tts.Code(err, "") != tts.CodeBadVoice || !strings.Contains(err.Error(), "Config.Voice") {
		t.Fatalf("New with unknown voice: %v", err)
	}
	if _, err := New(Config{WordsPerMinute: 10}); err == nil || !strings.Contains(err.Error(), "WordsPerMinute") {
		t.Fatalf("New with 10 wpm: %v", err)
	}
	e := newEngine(t, Config{Voice: "EN_us"})
	names := e.Voices()
	for _, want := range []string{"en", "en-us", "en-gb", "fr", "de"} {
		if !contains(names, want) {
			t.Errorf("Voices() lacks %q", want)
		}
	}
	t.Logf("%d voice names", len(names))
	for _, v := range []string{"en-us", "en-GB", "fr", "en-us+f3", "de+klatt", "en-us+mr-serious"} {
		if r := synth(e, context.Background(), tts.Request{Text: "Bonjour.", Voice: v}); r.err != nil || rms(r.pcm) < 300 {
			t.Errorf("voice %q: %v, RMS %.0f", v, r.err, rms(r.pcm))
		}
	}
	if r := synth(e, context.Background(), tts.Request{Text: "Hola.", Language: "es"}); r.err != nil || len(r.pcm) == 0 {
		t.Errorf("language es: %v", r.err)
	}
	// Unknown names, MBROLA voices (they would start an mbrola process),
	// paths and oversized names are all tts_bad_voice, before any audio.
	for _, v := range []string{"klingon", "en-uk", "english-mb-en1", "mb-en1", "gmw/en-US", "../../../etc/passwd",
		"en-us+nope", "en-us+", "+f3", strings.Repeat("e", 100), "en\x00us"} {
		r := synth(e, context.Background(), tts.Request{Text: "Secret words.", Voice: v})
		if tts.Code(r.err, "") != tts.CodeBadVoice || r.chunks != 0 {
			t.Errorf("voice %q: %v, %d chunks", v, r.err, r.chunks)
		}
		if r.err != nil && strings.Contains(r.err.Error(), "Secret") {
			t.Errorf("error contains the text: %v", r.err)
		}
	}
	for _, lang := range []string{"de-AT", "en-Latn-US", "pt_PT"} {
		if r := synth(e, context.Background(), tts.Request{Text: "Hallo.", Language: lang}); r.err != nil || len(r.pcm) == 0 {
			t.Errorf("language %s: %v", lang, r.err)
		}
	}
	for _, lang := range []string{"tlh", "tlh-x-klingon", "../en"} {
		if r := synth(e, context.Background(), tts.Request{Text: "x", Language: lang}); tts.Code(r.err, "") != tts.CodeBadVoice {
			t.Errorf("language %s: %v", lang, r.err)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestEmptyText(t *testing.T) {
	e := newEngine(t, Config{})
	for _, s := range []string{"", "   ", "\n\t \n", "\x00"} {
		r := synth(e, context.Background(), tts.Request{Text: s})
		if r.err != nil || r.chunks != 0 {
			t.Errorf("%q: %v, %d chunks", s, r.err, r.chunks)
		}
	}
}

func TestOddText(t *testing.T) {
	e := newEngine(t, Config{})
	for _, s := range []string{"nul\x00inside the text", "bad \xff\xfe utf8", "<speak>not ssml</speak> [[h@'loU]]", "日本語のテキスト", "3.14159 e.g. https://example.com/a?b=c"} {
		if r := synth(e, context.Background(), tts.Request{Text: s}); r.err != nil || len(r.pcm) == 0 {
			t.Errorf("%q: %v, %d samples", s, r.err, len(r.pcm))
		}
	}
}

// BenchmarkSynthesize reports the real-time factor (synthesis time over
// audio duration) and the time to the first chunk for one sentence.
func BenchmarkSynthesize(b *testing.B) {
	e := newEngine(b, Config{})
	ctx := context.Background()
	var audio, first time.Duration
	start := time.Now()
	for b.Loop() {
		r := synth(e, ctx, tts.Request{Text: sentence})
		if r.err != nil {
			b.Fatal(r.err)
		}
		audio += time.Duration(float64(len(r.pcm)) / float64(e.SampleRate()) * float64(time.Second))
		first += r.firstChunk
	}
	elapsed := time.Since(start)
	b.ReportMetric(elapsed.Seconds()/audio.Seconds(), "RTF")
	b.ReportMetric(float64(first.Microseconds())/float64(b.N), "µs-first-chunk")
	b.ReportMetric(audio.Seconds()/float64(b.N), "s-audio/op")
}

// BenchmarkSynthesizeParallel measures throughput when many sessions
// share the one library.
func BenchmarkSynthesizeParallel(b *testing.B) {
	e := newEngine(b, Config{})
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := e.Synthesize(context.Background(), tts.Request{Text: sentence}, func([]int16) error { return nil }); err != nil {
				b.Error(err)
			}
		}
	})
}
