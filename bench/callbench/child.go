package main

// The server side: this binary re-executed with "-serve". The child builds
// a gateway.Server with a WebRTC edge on 127.0.0.1, prints "ADDR host:port"
// once it listens, and serves until its stdin reaches EOF (the harness
// closed it, or died).

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"parley/agent"
	"parley/gateway"
	"parley/rtc"
	"parley/storage/seal"
	"parley/storage/sqlite"
	"parley/stt"
	"parley/tts"
)

func isChild(args []string) bool {
	return len(args) > 0 && (args[0] == "-serve" || strings.HasPrefix(args[0], "-serve="))
}

// agentID is the child's one agent.
const agentID = "bench"

func childMain(args []string) int {
	fs := flag.NewFlagSet("callbench -serve", flag.ContinueOnError)
	fs.Bool("serve", false, "serve (the harness's child)")
	dir := fs.String("dir", "", "temp directory for the SQLite file, removed on exit")
	ttsChunk := fs.Duration("tts-chunk", 50*time.Millisecond, "synthesizer chunk")
	ttsLead := fs.Duration("tts-lead", 200*time.Millisecond, "synthesizer lead over real time")
	ttsAudio := fs.String("tts-audio", "speech", "what the synthesizer says: speech (the fixtures) or tone")
	fixtures := fs.String("fixtures", "testdata/audio", "the spoken fixtures (for -tts-audio speech)")
	speak := fs.Duration("speak", time.Minute, "audio length of the agent's answer")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "callbench child: -dir is required")
		return 2
	}
	defer os.RemoveAll(*dir)
	stop := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		close(stop)
	}()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	fail := func(err error) int {
		fmt.Fprintf(os.Stderr, "callbench child: %v\n", err)
		return 1
	}

	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(*dir, "parley.db"))
	if err != nil {
		return fail(err)
	}
	defer st.Close()
	auth, _, err := gateway.BootstrapKeys(ctx, st, benchKey)
	if err != nil {
		return fail(err)
	}
	// Warnings only: a recognizer falling behind, a full playback queue,
	// pion's complaints.
	log := zerolog.New(os.Stderr).Level(zerolog.WarnLevel).With().Timestamp().Logger()
	edge, err := rtc.NewEdge(rtc.Config{UDPAddr: "127.0.0.1:0", IncludeLoopback: true, Logger: log})
	if err != nil {
		return fail(err)
	}
	rec := &discardRecognizer{}
	var speech []int16
	if *ttsAudio == "speech" {
		sc, err := loadScript(*fixtures, 0)
		if err != nil {
			return fail(err)
		}
		speech = sc.pcm24
	}
	syn := newSynth(speech, *ttsChunk, *ttsLead)
	mk, err := seal.NewMasterKey("bench")
	if err != nil {
		return fail(err)
	}
	kr, err := seal.NewKeyring(st, []seal.MasterKey{mk}, seal.Options{})
	if err != nil {
		return fail(err)
	}
	gw, err := gateway.New(gateway.Options{
		Sealer: kr,
		Agents: map[string]*agent.Agent{agentID: {
			ID: agentID, Name: "Bench", Instructions: "You are a benchmark agent.",
			Responder: longAgent{sentences: sentencesFor(*speak)},
		}},
		Store: st, Auth: auth, Logger: log,
		Recognizer: rec, Synthesizer: syn,
		RTC: edge, MaxSessions: 20000, MaxCalls: 10000, MaxCallsPerKey: 10000,
	})
	if err != nil {
		return fail(err)
	}

	mux := http.NewServeMux()
	mux.Handle("/", gw.Handler())
	mux.HandleFunc("GET /debug/bench", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("gc") == "1" {
			runtime.GC()
			runtime.GC()
			debug.FreeOSMemory() // RSS then counts live memory, not what earlier sessions left
		}
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(ChildStats{
			Sessions: gw.ActiveSessions(), Goroutines: runtime.NumGoroutine(),
			HeapInuse: m.HeapInuse, StackInuse: m.StackInuse, NumGC: m.NumGC, TotalAlloc: m.TotalAlloc,
			STTSamples: rec.samples.Load(), STTStreams: rec.streams.Load(), TTSSamples: syn.samples.Load(),
		})
	})
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fail(err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	fmt.Printf("ADDR %s\n", ln.Addr())

	select {
	case <-stop:
	case <-sigs:
	}
	// No drain: the harness is done with us. The edge's socket goes with
	// the process.
	return 0
}

// ChildStats is what GET /debug/bench reports (with ?gc=1 after two GCs and
// returning free memory to the OS).
type ChildStats struct {
	Sessions   int    `json:"sessions"` // live sessions, calls included
	Goroutines int    `json:"goroutines"`
	HeapInuse  uint64 `json:"heap_inuse"`
	StackInuse uint64 `json:"stack_inuse"`
	NumGC      uint32 `json:"num_gc"`
	TotalAlloc uint64 `json:"total_alloc"`
	STTSamples int64  `json:"stt_samples"` // 16 kHz samples the recognizer was given
	STTStreams int64  `json:"stt_streams"` // utterances
	TTSSamples int64  `json:"tts_samples"` // 24 kHz samples synthesized
}

// discardRecognizer is a real stt.Recognizer that hears nothing: it counts
// the samples it is given and returns "". Everything before it (decode,
// resampling, VAD, turn detection, the hand-off to its goroutine) is the
// gateway's real listening path.
type discardRecognizer struct {
	samples, streams atomic.Int64
}

func (*discardRecognizer) SampleRate() int { return gateway.PipelineRate }

func (r *discardRecognizer) NewStream(context.Context, stt.StreamConfig) (stt.Stream, error) {
	r.streams.Add(1)
	return &discardStream{r: r}, nil
}

type discardStream struct{ r *discardRecognizer }

func (s *discardStream) Write(pcm []int16) error             { s.r.samples.Add(int64(len(pcm))); return nil }
func (*discardStream) Partial() string                       { return "" }
func (*discardStream) Final(context.Context) (string, error) { return "", nil }
func (*discardStream) Close() error                          { return nil }

// synthRate is the synthesizer's rate (the WebSocket output rate: no
// resampling for audio/pcm; 24 -> 48 kHz before Opus for a call).
const synthRate = 24000

// msPerChar is how much audio the synthesizer makes per character of text
// (about 15 characters a second, as speech goes).
const msPerChar = 65

// pacedSynth is a streaming synthesizer: every sentence becomes
// msPerChar of audio per character, emitted in chunks of chunk, paced in
// real time lead ahead of it, as a streaming TTS engine feeding a jitter
// buffer would. The audio loops over src: the spoken fixtures decoded to
// 24 kHz ("speech": Opus costs what it costs on speech) or one chunk of a
// 300 Hz tone ("tone": much cheaper to encode).
//
// The pace is kept per voice across sentences: the harness gives each
// session its own voice ("callbench-N"), so a session's sentences follow
// each other on one clock (audio due at start + position - lead), without
// gaps and without the lead growing from sentence to sentence. Emitting
// exactly in real time, with no lead, would let a call's player find its
// queue empty between chunks and restart a talkspurt every chunk; emitting
// instantly would queue a whole answer at once (the call's player holds at
// most 60 s) and turn the WebSocket side into one burst.
type pacedSynth struct {
	src     []int16
	chunk   int // samples per chunk
	dur     time.Duration
	lead    time.Duration
	samples atomic.Int64

	mu     sync.Mutex
	clocks map[string]*synthClock
}

type synthClock struct {
	start time.Time
	pos   time.Duration // audio emitted since start
	off   int           // position in src
}

// newSynth returns a synthesizer of the tone (speech nil) or of speech
// (24 kHz PCM).
func newSynth(speech []int16, chunk, lead time.Duration) *pacedSynth {
	n := max(int(chunk.Seconds()*synthRate), 1)
	src := speech
	if len(src) == 0 {
		const freq = 300
		period := synthRate / freq // 80 samples
		n = max(n/period, 1) * period
		src = make([]int16, n)
		for i := range src {
			src[i] = int16(6000 * math.Sin(2*math.Pi*freq*float64(i)/synthRate))
		}
	}
	return &pacedSynth{src: src, chunk: n, dur: time.Duration(n) * time.Second / synthRate, lead: lead, clocks: map[string]*synthClock{}}
}

func (*pacedSynth) SampleRate() int { return synthRate }

// clock returns the voice's clock, restarted when its audio is not ahead
// of now any more (a new answer, or the first).
func (t *pacedSynth) clock(voice string, now time.Time) *synthClock {
	t.mu.Lock()
	defer t.mu.Unlock()
	c := t.clocks[voice]
	if !strings.HasPrefix(voice, "callbench-") || c == nil {
		c = &synthClock{start: now}
		if strings.HasPrefix(voice, "callbench-") {
			t.clocks[voice] = c
		}
	}
	if now.After(c.start.Add(c.pos)) {
		c.start, c.pos = now, 0
	}
	return c
}

func (t *pacedSynth) Synthesize(ctx context.Context, req tts.Request, emit func([]int16) error) error {
	total := time.Duration(len(req.Text)) * msPerChar * time.Millisecond
	c := t.clock(req.Voice, time.Now())
	buf := make([]int16, t.chunk)
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for done := time.Duration(0); done < total; done += t.dur {
		due, off := t.next(c)
		if wait := time.Until(due); wait > 0 {
			if timer == nil {
				timer = time.NewTimer(wait)
			} else {
				timer.Reset(wait)
			}
			select {
			case <-timer.C:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		for i := range buf {
			buf[i] = t.src[(off+i)%len(t.src)]
		}
		if err := emit(buf); err != nil {
			return err
		}
		t.advance(c)
		t.samples.Add(int64(len(buf)))
	}
	return nil
}

// next is when c's next chunk is due, and where it starts in src.
func (t *pacedSynth) next(c *synthClock) (time.Time, int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return c.start.Add(c.pos - t.lead), c.off
}

func (t *pacedSynth) advance(c *synthClock) {
	t.mu.Lock()
	c.pos += t.dur
	c.off = (c.off + t.chunk) % len(t.src)
	t.mu.Unlock()
}

// longAgent answers at once with sentences sentences: a long answer for the
// synthesizer to speak.
type longAgent struct{ sentences int }

// sentenceText is one sentence of the answer (its number is appended).
const sentenceText = "This long answer keeps the benchmark agent talking for a while, sentence "

// sentencesFor returns how many sentences last at least d.
func sentencesFor(d time.Duration) int {
	per := time.Duration(len(sentenceText)+len("100. ")) * msPerChar * time.Millisecond
	return int(d/per) + 2
}

func (a longAgent) Respond(ctx context.Context, req *agent.Request, emit func(string) error) (agent.Usage, error) {
	for i := range a.sentences {
		if err := emit(sentenceText + strconv.Itoa(i+1) + ". "); err != nil {
			return agent.Usage{}, err
		}
	}
	return agent.Usage{InputTokens: 10, OutputTokens: a.sentences * 16}, nil
}
