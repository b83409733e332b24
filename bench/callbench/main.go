// Command callbench measures what a WebRTC call costs the Parley gateway
// against a WebSocket voice session, server side only:
//
//   - listening CPU per session: N WebRTC calls streaming the spoken
//     fixtures' Opus packets on their microphone track in real time, against
//     N WebSocket sessions appending the same audio as audio/pcm (24 kHz,
//     20 ms per append: what most clients send) and as audio/opus (one
//     packet per append);
//   - speaking CPU per session: the agent talks continuously, WebRTC (Opus
//     encode, paced RTP over SRTP) against WebSocket (pcm16 base64 deltas);
//   - memory per idle call and per idle WebSocket voice session (RSS);
//   - call setup: offer posted to answer received, sequential calls.
//
// The gateway runs in a child process (this binary re-executed with the
// hidden -serve flag) whose CPU (utime+stime of /proc/PID/stat) and RSS
// (VmRSS of /proc/PID/status) the harness reads; the clients (pion callers,
// WebSocket clients) run in the harness. Each transport gets a fresh child.
// The child's recognizer discards the audio (it counts samples and returns
// ""), so the figures are the transport and the listening path (decode,
// resampling, VAD, turn detection), not a speech recognizer; turn detection
// is server_vad with create_response false, so no agent runs while
// listening.
//
//	go run ./bench/callbench                      # full run (~3 minutes)
//	go run ./bench/callbench -calls 20 -seconds 5 -setup 50
//	go run ./bench/callbench -profile /tmp/callprof  # CPU profiles of the child per window
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// benchKey is the secret API key the gateway child accepts.
const benchKey = "sk_callbench_0123456789abcdefghij"

// Targets the report checks.
const (
	targetListenRatio = 1.3                   // WebRTC / WebSocket listening CPU per session
	targetSetupP99    = 50 * time.Millisecond // call setup p99 on loopback
)

// Config is everything a run needs.
type Config struct {
	Calls    int           `json:"calls"`     // concurrent sessions per transport
	Window   time.Duration `json:"window_ns"` // measured per transport and phase (listening, speaking)
	Rounds   int           `json:"rounds"`    // Window is measured in this many rounds, transports alternating
	Warmup   time.Duration `json:"warmup_ns"` // before each round
	Setup    int           `json:"setup_calls"`
	Idle     time.Duration `json:"idle_window_ns"` // idle CPU window with the idle sessions
	Fixtures string        `json:"fixtures"`
	Gap      time.Duration `json:"gap_ns"` // silence between two fixtures
	// The child's synthesizer: a tone in chunks of TTSChunk, paced in real
	// time TTSLead ahead of playback.
	TTSChunk time.Duration `json:"tts_chunk_ns"`
	TTSLead  time.Duration `json:"tts_lead_ns"`
	TTSAudio string        `json:"tts_audio"` // speech (the fixtures) or tone
	DialConc int           `json:"dial_concurrency"`
	// A round during which other processes used more than 10% of a core
	// is measured again, after waiting up to QuietWait for quiet, at most
	// NoisyRetries times per run.
	NoisyRetries int           `json:"noisy_retries"`
	QuietWait    time.Duration `json:"quiet_wait_ns"`
	Profile      string        `json:"profile_dir,omitempty"`
	Smoke        bool          `json:"-"` // the test: short settle times
}

func defaultConfig() Config {
	return Config{
		Calls:    50,
		Window:   20 * time.Second,
		Rounds:   4,
		Warmup:   time.Second,
		Setup:    200,
		Idle:     2 * time.Second,
		Fixtures: "testdata/audio",
		Gap:      time.Second,
		TTSChunk: 50 * time.Millisecond,
		TTSLead:  200 * time.Millisecond,
		TTSAudio: "speech",
		DialConc: 8,

		NoisyRetries: 2,
		QuietWait:    3 * time.Second,
	}
}

func main() {
	if isChild(os.Args[1:]) {
		os.Exit(childMain(os.Args[1:]))
	}
	os.Exit(harnessMain(os.Args[1:], os.Stdout, os.Stderr))
}

func harnessMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("callbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	def := defaultConfig()
	calls := fs.Int("calls", def.Calls, "concurrent sessions per transport (WebRTC calls, WebSocket sessions)")
	seconds := fs.Float64("seconds", def.Window.Seconds(), "measured seconds per transport for listening, and again for speaking (split into -rounds)")
	rounds := fs.Int("rounds", def.Rounds, "rounds each -seconds is split into, alternating between the transports (figures are the median round)")
	warmup := fs.Duration("warmup", def.Warmup, "discarded time before each measured round")
	setup := fs.Int("setup", def.Setup, "sequential calls for the call-setup latency (0 skips it)")
	idle := fs.Duration("idle", def.Idle, "window measuring the CPU of the idle sessions (memory phase)")
	fixtures := fs.String("fixtures", def.Fixtures, "directory of the spoken fixtures (fixtures.tsv, NAME.opus)")
	gap := fs.Duration("gap", def.Gap, "silence between two fixtures in the looped audio")
	ttsChunk := fs.Duration("tts-chunk", def.TTSChunk, "the child synthesizer's chunk (paced in real time)")
	ttsLead := fs.Duration("tts-lead", def.TTSLead, "how far ahead of real time the child synthesizer runs")
	ttsAudio := fs.String("tts-audio", def.TTSAudio, "what the child synthesizer says: speech (the fixtures, looped) or tone (300 Hz, far cheaper to encode as Opus)")
	dialConc := fs.Int("dial-concurrency", def.DialConc, "parallel connects when opening the N sessions")
	noisyRetries := fs.Int("noisy-retries", def.NoisyRetries, "rounds per run that may be measured again when other processes used the CPU during them")
	quietWait := fs.Duration("quiet-wait", def.QuietWait, "before measuring a noisy round again, wait up to this long for other processes to go quiet")
	profile := fs.String("profile", "", "save CPU profiles of the child during each measured window (and a heap profile with the idle sessions) in this directory")
	jsonOut := fs.String("json", "", "also write the results as JSON to this file")
	smoke := fs.Bool("smoke", false, "short settle times (the smoke test)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: callbench [flags]\n\nMeasures the server-side CPU and memory of WebRTC calls against WebSocket voice sessions, and call setup latency.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "callbench: unexpected arguments %q\n", fs.Args())
		return 2
	}
	cfg := Config{
		Calls: *calls, Window: time.Duration(*seconds * float64(time.Second)), Rounds: *rounds, Warmup: *warmup, Setup: *setup,
		Idle: *idle, Fixtures: *fixtures, Gap: *gap, TTSChunk: *ttsChunk, TTSLead: *ttsLead, TTSAudio: *ttsAudio,
		DialConc: *dialConc, NoisyRetries: *noisyRetries, QuietWait: *quietWait, Profile: *profile, Smoke: *smoke,
	}
	if err := cfg.validate(); err != nil {
		fmt.Fprintf(stderr, "callbench: %v\n", err)
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := Run(ctx, cfg, stderr)
	if rep != nil {
		rep.Command = reproduce(args)
		rep.Print(stdout)
		if *jsonOut != "" {
			if werr := rep.WriteJSON(*jsonOut); werr != nil {
				fmt.Fprintf(stderr, "callbench: %v\n", werr)
				return 1
			}
			fmt.Fprintf(stderr, "callbench: results written to %s\n", *jsonOut)
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "callbench: %v\n", err)
		return 1
	}
	return 0
}

func (c *Config) validate() error {
	switch {
	case c.Calls < 1 || c.Calls > 2000:
		return errors.New("-calls must be in [1, 2000]")
	case c.Window < 100*time.Millisecond || c.Window > 10*time.Minute:
		return errors.New("-seconds must be in [0.1, 600]")
	case c.Rounds < 1 || c.Rounds > 100 || c.Window/time.Duration(max(c.Rounds, 1)) < 100*time.Millisecond:
		return errors.New("-rounds must be in [1, 100], with rounds of at least 100 ms")
	case c.Warmup < 0 || c.Warmup > time.Minute:
		return errors.New("-warmup must be in [0, 1m]")
	case c.Setup < 0 || c.Setup > 100000:
		return errors.New("-setup must be in [0, 100000]")
	case c.Idle < 100*time.Millisecond || c.Idle > time.Minute:
		return errors.New("-idle must be in [100ms, 1m]")
	case c.Gap < 600*time.Millisecond || c.Gap > 10*time.Second:
		return errors.New("-gap must be in [600ms, 10s] (turn detection waits 500 ms of silence)")
	case c.TTSChunk < 10*time.Millisecond || c.TTSChunk > time.Second:
		return errors.New("-tts-chunk must be in [10ms, 1s]")
	case c.TTSLead < 0 || c.TTSLead > 10*time.Second:
		return errors.New("-tts-lead must be in [0, 10s]")
	case c.TTSAudio != "speech" && c.TTSAudio != "tone":
		return fmt.Errorf("-tts-audio %q: want speech or tone", c.TTSAudio)
	case c.DialConc < 1 || c.DialConc > 64:
		return errors.New("-dial-concurrency must be in [1, 64]")
	case c.NoisyRetries < 0 || c.NoisyRetries > 100:
		return errors.New("-noisy-retries must be in [0, 100]")
	case c.QuietWait < 0 || c.QuietWait > time.Minute:
		return errors.New("-quiet-wait must be in [0, 1m]")
	case c.Fixtures == "":
		return errors.New("-fixtures is required")
	}
	return nil
}

// reproduce is the command line of this run.
func reproduce(args []string) string {
	if len(args) == 0 {
		return "go run ./bench/callbench"
	}
	q := make([]string, len(args))
	for i, a := range args {
		if strings.ContainsAny(a, " \t'\"$") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		q[i] = a
	}
	return "go run ./bench/callbench " + strings.Join(q, " ")
}
