package pocketsphinx

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"parley/stt"
)

// A voice and speed for espeak-ng.
type voice struct {
	name string
	wpm  int
}

var (
	male   = voice{"en-us", 140}
	female = voice{"en-us+f2", 150}
)

// Sentences and the key words pocketsphinx must get for each: picked
// among sentences it recognized exactly with this voice in 5 of 5 runs
// (with and without sox's random dither), so the test is not borderline.
var keyTests = []struct {
	v    voice
	text string
	keys []string
}{
	{male, "what are your opening hours", []string{"opening", "hours"}},
	{male, "please cancel my order", []string{"cancel", "order"}},
	{male, "i would like to speak to a manager", []string{"speak", "manager"}},
	{female, "where is the nearest train station", []string{"nearest", "train", "station"}},
	{female, "how much does it cost", []string{"how", "much", "cost"}},
	{female, "i want to cancel my subscription", []string{"cancel", "subscription"}},
	{female, "what is your phone number", []string{"phone", "number"}},
	{female, "can i change my delivery address", []string{"change", "delivery", "address"}},
}

// The word error rate corpus: 8 sentences, each spoken by both voices.
// Customer-service phrases; not all are recognized well by both voices.
var werSentences = []string{
	"what are your opening hours",
	"can you tell me the price of a ticket",
	"please cancel my order",
	"where is the nearest train station",
	"i would like to speak to a manager",
	"how much does it cost",
	"i need help with my account",
	"thank you very much",
}

func newTestRecognizer(t testing.TB, cfg Config) *Recognizer {
	t.Helper()
	requireTools(t)
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func TestRecognizeKeyWords(t *testing.T) {
	r := newTestRecognizer(t, Config{})
	for _, tc := range keyTests {
		got := recognize(t, r, synth(t, tc.v.name, tc.v.wpm, tc.text))
		words := strings.Fields(got)
		for _, k := range tc.keys {
			if !contains(words, k) {
				t.Errorf("%s@%d %q: transcript %q lacks %q", tc.v.name, tc.v.wpm, tc.text, got, k)
			}
		}
	}
}

func contains(words []string, w string) bool {
	for _, x := range words {
		if x == w {
			return true
		}
	}
	return false
}

// TestWordErrorRate measures WER over 8 sentences x 2 voices, with and
// without CMN priming, and the CPU real-time factor of each.
func TestWordErrorRate(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: decodes 32 utterances")
	}
	requireTools(t)
	for _, c := range []struct {
		name    string
		priming time.Duration
		limit   float64
	}{
		{"primed", 0, 0.30},
		{"unprimed", -1, 1e9}, // measured for comparison only
	} {
		r := newTestRecognizer(t, Config{Priming: c.priming, MaxDecoders: 1})
		if err := r.Warm(context.Background(), 1); err != nil {
			t.Fatal(err)
		}
		type utt struct {
			v    voice
			text string
			pcm  []int16
		}
		var utts []utt
		for _, v := range []voice{male, female} {
			for _, s := range werSentences {
				utts = append(utts, utt{v, s, synth(t, v.name, v.wpm, s)})
			}
		}
		var edits, words int
		var audio time.Duration
		cpu0 := cpuTime()
		for _, u := range utts {
			audio += time.Duration(len(u.pcm)+2*paddingSamples) * time.Second / 16000
			hyp := recognize(t, r, u.pcm)
			ref := strings.Fields(u.text)
			e := stt.WordEdits(ref, strings.Fields(hyp))
			edits += e
			words += len(ref)
			if e > 0 {
				t.Logf("%s %s@%d: %d edits: %q -> %q", c.name, u.v.name, u.v.wpm, e, u.text, hyp)
			}
		}
		cpu := cpuTime() - cpu0
		wer := float64(edits) / float64(words)
		t.Logf("%s: WER %.3f (%d edits / %d words), CPU real-time factor %.3f (%.2fs CPU for %.2fs audio)",
			c.name, wer, edits, words, cpu.Seconds()/audio.Seconds(), cpu.Seconds(), audio.Seconds())
		if wer > c.limit {
			t.Errorf("%s: WER %.3f above %.2f", c.name, wer, c.limit)
		}
	}
}

// cpuTime is the process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func TestPoolReuse(t *testing.T) {
	r := newTestRecognizer(t, Config{MaxDecoders: 2})
	pcm := synth(t, male.name, male.wpm, "please cancel my order")
	first := recognize(t, r, pcm)
	if first != "please cancel my order" {
		t.Errorf("first transcript %q", first)
	}
	for i := range 6 {
		// Abandon an utterance half way through now and then: the
		// decoder must come back clean.
		if i%2 == 1 {
			s, err := r.NewStream(context.Background(), stt.StreamConfig{})
			if err != nil {
				t.Fatal(err)
			}
			s.Write(pcm[:len(pcm)/2])
			s.Close()
		}
		// The same audio gives the same transcript on a reused decoder:
		// no state carries over between utterances.
		if got := recognize(t, r, pcm); got != first {
			t.Errorf("utterance %d: %q, first was %q", i, got, first)
		}
	}
	st := r.Stats()
	if st.Created != 1 || st.Live != 1 || st.Idle != 1 || st.InUse != 0 {
		t.Errorf("sequential use: stats %+v, want one decoder created and idle", st)
	}

	// Concurrent utterances: at most MaxDecoders decoders, all correct.
	var wg sync.WaitGroup
	for range 6 {
		wg.Go(func() {
			if got := recognize(t, r, pcm); got != first {
				t.Errorf("concurrent: %q, want %q", got, first)
			}
		})
	}
	wg.Wait()
	if st := r.Stats(); st.Created > 2 || st.Live > 2 || st.InUse != 0 {
		t.Errorf("concurrent use: stats %+v, want at most 2 decoders", st)
	}
}

func TestBoundedConcurrency(t *testing.T) {
	r := newTestRecognizer(t, Config{MaxDecoders: 2})
	ctx := context.Background()
	a, err := r.NewStream(ctx, stt.StreamConfig{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := r.NewStream(ctx, stt.StreamConfig{})
	if err != nil {
		t.Fatal(err)
	}

	// The third waits until its context ends.
	tctx, cancel := context.WithTimeout(ctx, 150*time.Millisecond)
	start := time.Now()
	_, err = r.NewStream(tctx, stt.StreamConfig{})
	cancel()
	if stt.Code(err, "") != stt.CodeBusy || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("third stream: %v, want stt_busy wrapping DeadlineExceeded", err)
	}
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Errorf("third stream failed after %v without waiting", d)
	}

	// An already-canceled context fails at once with ctx.Err().
	cctx, ccancel := context.WithCancel(ctx)
	ccancel()
	if _, err := r.NewStream(cctx, stt.StreamConfig{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled ctx: %v", err)
	}

	// The third gets a decoder as soon as one is released.
	got := make(chan error, 1)
	go func() {
		s, err := r.NewStream(ctx, stt.StreamConfig{})
		if err == nil {
			s.Close()
		}
		got <- err
	}()
	select {
	case err := <-got:
		t.Fatalf("third stream did not wait: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	a.Close()
	select {
	case err := <-got:
		if err != nil {
			t.Fatalf("third stream after release: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("third stream still waiting after a decoder was released")
	}

	// Closing the Recognizer wakes waiters with stt_closed.
	c, err := r.NewStream(ctx, stt.StreamConfig{})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		_, err := r.NewStream(ctx, stt.StreamConfig{})
		got <- err
	}()
	time.Sleep(50 * time.Millisecond)
	r.Close()
	select {
	case err := <-got:
		if stt.Code(err, "") != stt.CodeClosed {
			t.Fatalf("waiter after Close: %v, want stt_closed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("waiter not woken by Close")
	}
	// Open streams still work and free their decoders when they end.
	if st := r.Stats(); st.Live != 2 || st.Idle != 0 {
		t.Errorf("after Close with 2 open streams: %+v", st)
	}
	b.Write(make([]int16, 3200))
	if _, err := b.Final(ctx); err != nil {
		t.Errorf("Final on a stream opened before Close: %v", err)
	}
	c.Close()
	if st := r.Stats(); st.Live != 0 {
		t.Errorf("after all streams ended: %+v, want no live decoders", st)
	}
}

func TestStreamMisuse(t *testing.T) {
	r := newTestRecognizer(t, Config{MaxDecoders: 1})
	ctx := context.Background()
	pcm := synth(t, male.name, male.wpm, "what are your opening hours")

	s, err := r.NewStream(ctx, stt.StreamConfig{Language: "en-GB"})
	if err != nil {
		t.Fatal(err)
	}
	if s.Partial() != "" {
		t.Error("Partial before audio not empty")
	}
	var sawPartial bool
	for i := 0; i < len(pcm); i += 320 {
		if err := s.Write(pcm[i:min(i+320, len(pcm))]); err != nil {
			t.Fatal(err)
		}
		if i%(320*10) == 0 && s.Partial() != "" {
			sawPartial = true
		}
	}
	if !sawPartial {
		t.Error("no partial hypothesis during the utterance")
	}
	final, err := s.Final(ctx)
	if err != nil || !strings.Contains(final, "opening") {
		t.Fatalf("Final = %q, %v", final, err)
	}
	if again, err := s.Final(ctx); again != final || err != nil {
		t.Errorf("second Final = %q, %v", again, err)
	}
	if p := s.Partial(); p != final {
		t.Errorf("Partial after Final = %q, want the final transcript", p)
	}
	if err := s.Write(pcm[:320]); stt.Code(err, "") != stt.CodeClosed {
		t.Errorf("Write after Final: %v, want stt_closed", err)
	}
	// Final released the decoder already: another stream can start
	// before s is closed.
	s2, err := r.NewStream(ctx, stt.StreamConfig{})
	if err != nil {
		t.Fatalf("NewStream after Final, before Close: %v", err)
	}
	// Concurrent and repeated Close.
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if err := s2.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
			s.Close()
		})
	}
	wg.Wait()
	if err := s2.Write(pcm[:320]); stt.Code(err, "") != stt.CodeClosed {
		t.Errorf("Write after Close: %v, want stt_closed", err)
	}
	if _, err := s2.Final(ctx); stt.Code(err, "") != stt.CodeClosed {
		t.Errorf("Final after Close: %v, want stt_closed", err)
	}
	if s2.Partial() != "" {
		t.Error("Partial after Close not empty")
	}

	// Final with a done context: error, stream still closable.
	s3, err := r.NewStream(ctx, stt.StreamConfig{})
	if err != nil {
		t.Fatal(err)
	}
	s3.Write(pcm)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s3.Final(cctx); stt.Code(err, "") != stt.CodeCanceled || !errors.Is(err, context.Canceled) {
		t.Errorf("Final with canceled ctx: %v", err)
	}
	s3.Close()

	// Empty utterance.
	s4, _ := r.NewStream(ctx, stt.StreamConfig{})
	if txt, err := s4.Final(ctx); txt != "" || err != nil {
		t.Errorf("empty utterance: %q, %v", txt, err)
	}
	s4.Close()

	// Unsupported language.
	if _, err := r.NewStream(ctx, stt.StreamConfig{Language: "fr"}); stt.Code(err, "") != stt.CodeUnsupportedLanguage {
		t.Errorf("language fr: %v", err)
	}

	// Recognizer Close is idempotent; NewStream afterwards fails.
	for range 2 {
		if err := r.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}
	if _, err := r.NewStream(ctx, stt.StreamConfig{}); stt.Code(err, "") != stt.CodeClosed {
		t.Errorf("NewStream after Close: %v", err)
	}
	if st := r.Stats(); st.Live != 0 {
		t.Errorf("after Close: %+v", st)
	}
}

func TestMaxAudio(t *testing.T) {
	r := newTestRecognizer(t, Config{MaxDecoders: 1, MaxAudio: time.Second})
	s, err := r.NewStream(context.Background(), stt.StreamConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Write(make([]int16, 16000)); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(make([]int16, 1)); stt.Code(err, "") != stt.CodeAudioTooLong {
		t.Errorf("beyond MaxAudio: %v", err)
	}
}

func TestWarm(t *testing.T) {
	r := newTestRecognizer(t, Config{MaxDecoders: 2})
	if err := r.Warm(context.Background(), 5); err != nil {
		t.Fatal(err)
	}
	if st := r.Stats(); st.Created != 2 || st.Idle != 2 {
		t.Errorf("after Warm: %+v", st)
	}
	if r.SampleRate() != 16000 {
		t.Errorf("SampleRate %d", r.SampleRate())
	}
	cfg := r.Config()
	if cfg.ModelDir != DefaultModelDir || cfg.LM != DefaultLM || cfg.Dict != DefaultDict ||
		cfg.Language != "en-US" || cfg.MaxAudio != DefaultMaxAudio || cfg.Priming != DefaultPriming {
		t.Errorf("defaults: %+v", cfg)
	}
}

func TestNewValidation(t *testing.T) {
	requireTools(t)
	dir := t.TempDir()
	// A model directory with one file replaced by junk: each must be
	// rejected by New, naming the file (pocketsphinx itself would exit).
	junkModel := func(name string, junk []byte) string {
		d := filepath.Join(dir, "am-"+name)
		os.Mkdir(d, 0o755)
		entries, _ := os.ReadDir(DefaultModelDir)
		for _, e := range entries {
			if e.Name() != name {
				os.Symlink(filepath.Join(DefaultModelDir, e.Name()), filepath.Join(d, e.Name()))
			}
		}
		os.WriteFile(filepath.Join(d, name), junk, 0o644)
		return d
	}
	junk := bytes.Repeat([]byte("junk"), 500)
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, nil, 0o644)

	cases := []struct {
		cfg  Config
		want string
	}{
		{Config{ModelDir: filepath.Join(dir, "nope")}, "ModelDir"},
		{Config{ModelDir: DefaultLM}, "not a directory"},
		{Config{LM: filepath.Join(dir, "nope.lm.bin")}, "nope.lm.bin"},
		{Config{LM: empty}, "is empty"},
		{Config{LM: dir}, "not a regular file"},
		{Config{Dict: filepath.Join(dir, "nope.dict")}, "nope.dict"},
		{Config{MaxDecoders: -1}, "MaxDecoders"},
		{Config{MaxAudio: -time.Second}, "MaxAudio"},
		{Config{ModelDir: junkModel("mdef", junk)}, "mdef"},
		{Config{ModelDir: junkModel("means", junk)}, "means"},
		{Config{ModelDir: junkModel("variances", []byte("s3\nversion 1.0\nendhdr\nxxxx"))}, "variances"},
		{Config{ModelDir: junkModel("transition_matrices", junk)}, "transition_matrices"},
		{Config{ModelDir: junkModel("sendump", junk)}, "sendump"},
		{Config{ModelDir: junkModel("noisedict", nil)}, "noisedict"},
	}
	for _, c := range cases {
		_, err := New(c.cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(%+v) = %v, want an error mentioning %q", c.cfg, err, c.want)
		}
	}

	// A language model pocketsphinx cannot read passes validation but
	// fails decoder creation with a clear error (and no output).
	r, err := New(Config{LM: DefaultDict})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	_, err = r.NewStream(context.Background(), stt.StreamConfig{})
	if stt.Code(err, "") != stt.CodeUnavailable || !strings.Contains(err.Error(), "initializing") {
		t.Errorf("unreadable LM: %v", err)
	}
	t.Logf("unreadable LM: %v", err)
	if st := r.Stats(); st.Live != 0 || st.Created != 0 {
		t.Errorf("after failed creation: %+v", st)
	}
	// The slot was released: a failed creation does not leak capacity.
	for range r.Config().MaxDecoders + 1 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := r.NewStream(ctx, stt.StreamConfig{})
		cancel()
		if stt.Code(err, "") == stt.CodeBusy {
			t.Fatal("slot leaked by a failed decoder creation")
		}
	}
}

// TestNoStderr runs decoder creation (successful and failing) and a
// recognition in a child process and checks that nothing reached its
// stderr: pocketsphinx normally logs hundreds of lines there.
func TestNoStderr(t *testing.T) {
	if os.Getenv("PARLEY_PS_STDERR_CHILD") == "1" {
		stderrChild()
		return
	}
	requireTools(t)
	pcm := synth(t, male.name, male.wpm, "please cancel my order")
	var in bytes.Buffer
	binary.Write(&in, binary.LittleEndian, pcm)
	cmd := exec.Command(os.Args[0], "-test.run=^TestNoStderr$", "-test.count=1")
	cmd.Env = append(os.Environ(), "PARLEY_PS_STDERR_CHILD=1")
	cmd.Stdin = &in
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("child: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	if stderr.Len() != 0 {
		t.Errorf("pocketsphinx wrote %d bytes to stderr:\n%.2000s", stderr.Len(), stderr.String())
	}
	out := stdout.String()
	if !strings.Contains(out, "child transcript: please cancel my order") ||
		!strings.Contains(out, "child bad LM error: stt_unavailable") {
		t.Errorf("child output:\n%s", out)
	}
}

func stderrChild() {
	pcm, err := io.ReadAll(os.Stdin)
	if err != nil {
		fmt.Println("child: reading stdin:", err)
		os.Exit(1)
	}
	samples := make([]int16, len(pcm)/2)
	binary.Decode(pcm, binary.LittleEndian, samples)
	ctx := context.Background()
	r, err := New(Config{MaxDecoders: 1})
	if err != nil {
		fmt.Println("child:", err)
		os.Exit(1)
	}
	s, err := r.NewStream(ctx, stt.StreamConfig{})
	if err != nil {
		fmt.Println("child:", err)
		os.Exit(1)
	}
	for i := 0; i < len(samples); i += 320 {
		s.Write(samples[i:min(i+320, len(samples))])
		s.Partial()
	}
	txt, err := s.Final(ctx)
	fmt.Printf("child transcript: %s (%v)\n", txt, err)
	s.Close()
	r.Close()

	bad, _ := New(Config{LM: DefaultDict, MaxDecoders: 1})
	_, err = bad.NewStream(ctx, stt.StreamConfig{})
	fmt.Printf("child bad LM error: %s\n", stt.Code(err, "none"))
	bad.Close()
}

// BenchmarkRecognize reports the CPU real-time factor (seconds of CPU per
// second of audio, "cpu-rtf") and wall-clock real-time factor of
// recognizing a 2.6 s utterance in 20 ms chunks on a warm decoder.
func BenchmarkRecognize(b *testing.B) {
	r := newTestRecognizer(b, Config{MaxDecoders: 1})
	pcm := synth(b, male.name, male.wpm, "where is the nearest train station")
	if err := r.Warm(context.Background(), 1); err != nil {
		b.Fatal(err)
	}
	audio := time.Duration(len(pcm)+2*paddingSamples) * time.Second / 16000
	b.ResetTimer()
	cpu0, wall0 := cpuTime(), time.Now()
	for b.Loop() {
		recognize(b, r, pcm)
	}
	cpu, wall := cpuTime()-cpu0, time.Since(wall0)
	n := float64(b.N) * audio.Seconds()
	b.ReportMetric(cpu.Seconds()/n, "cpu-rtf")
	b.ReportMetric(wall.Seconds()/n, "wall-rtf")
}

// BenchmarkNewDecoder measures decoder creation (model loading).
func BenchmarkNewDecoder(b *testing.B) {
	requireTools(b)
	for b.Loop() {
		d, err := newDecoder(DefaultModelDir, DefaultLM, DefaultDict)
		if err != nil {
			b.Fatal(err)
		}
		d.free()
	}
}

// BenchmarkPartial measures reading the partial hypothesis after 2 s of
// speech (the uncached path: the decoder's backtrace, copied to Go).
func BenchmarkPartial(b *testing.B) {
	r := newTestRecognizer(b, Config{MaxDecoders: 1})
	pcm := synth(b, male.name, male.wpm, "i would like to speak to a manager")
	s, err := r.NewStream(context.Background(), stt.StreamConfig{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	if err := s.Write(pcm[:min(len(pcm), 2*16000)]); err != nil {
		b.Fatal(err)
	}
	st := s.(*stream)
	if st.Partial() == "" {
		b.Fatal("no partial hypothesis after 2 s of speech")
	}
	for b.Loop() {
		st.mu.Lock()
		st.pframes = -1 // force a fresh read
		st.mu.Unlock()
		st.Partial()
	}
}
