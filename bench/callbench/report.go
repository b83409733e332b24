package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"slices"
	"text/tabwriter"
	"time"
)

// Report is the whole result of a run.
type Report struct {
	Started    time.Time          `json:"started"`
	Elapsed    float64            `json:"elapsed_seconds"`
	Command    string             `json:"command"`
	Env        Env                `json:"env"`
	Config     Config             `json:"config"`
	Script     ScriptInfo         `json:"script"`
	Transports []*TransportResult `json:"transports"`
	Setup      *SetupResult       `json:"call_setup,omitempty"`
	Ratios     Ratios             `json:"ratios"`
	Retries    int                `json:"noisy_retries"` // rounds measured again
	Targets    []Target           `json:"targets"`
}

// ScriptInfo describes the audio the sessions send.
type ScriptInfo struct {
	Fixtures      []string `json:"fixtures"`
	Seconds       float64  `json:"seconds"`
	SpeechSeconds float64  `json:"speech_seconds"`
	GapMS         int64    `json:"gap_ms"`
}

// TransportResult is one transport's figures, from its own child.
type TransportResult struct {
	Transport    transport    `json:"transport"`
	Description  string       `json:"description"`
	Memory       MemoryResult `json:"memory"`
	Listen       Phase        `json:"listen"`
	Speak        *Phase       `json:"speak,omitempty"`
	Errors       int          `json:"errors"`
	ErrorSamples []string     `json:"error_samples,omitempty"`
}

// MemoryResult is the cost of N idle sessions.
type MemoryResult struct {
	Sessions      int     `json:"sessions"`
	RSSBefore     uint64  `json:"rss_before"`
	RSSAfter      uint64  `json:"rss_after"`
	RSSKiB        float64 `json:"rss_kib_per_session"`
	HeapStackKiB  float64 `json:"heap_stack_kib_per_session"`
	GoroutinesPer float64 `json:"goroutines_per_session"`
	IdleCPUMS     float64 `json:"idle_cpu_ms_per_s_per_session"`
}

// Window is one measured window.
type Window struct {
	Name             string  `json:"name"`
	Sessions         int     `json:"sessions"`
	Seconds          float64 `json:"seconds"`
	ServerCPUSeconds float64 `json:"server_cpu_seconds"`
	ServerCPUPercent float64 `json:"server_cpu_percent"` // of one core
	// CPUPerSessionMS is the child's CPU per session: ms per second.
	CPUPerSessionMS  float64 `json:"cpu_ms_per_s_per_session"`
	ClientCPUPercent float64 `json:"client_cpu_percent"`
	OtherCPUPercent  float64 `json:"other_cpu_percent"`
	Events           int64   `json:"events"`
	ErrorEvents      int64   `json:"error_events"`
	TurnsPerMin      float64 `json:"turns_per_min_per_session"`
	// RecognizerRatio: seconds of audio the recognizer was given per
	// second, per session (the speech the turn detector found).
	RecognizerRatio float64 `json:"recognizer_audio_ratio"`
	// AudioRatio: seconds of the agent's audio the client received per
	// second, per session (1 = real time).
	AudioRatio    float64 `json:"agent_audio_ratio"`
	GCPerSec      float64 `json:"gc_per_sec"`
	AllocMBPerSec float64 `json:"alloc_mib_per_sec"`
	Profile       string  `json:"profile,omitempty"`
	ProfileError  string  `json:"profile_error,omitempty"`
	Attempts      int     `json:"attempts,omitempty"` // 2: measured again because the machine was noisy
}

// Phase is one transport's rounds of a phase (listening or speaking) and
// their summary: the median round's CPU, the spread, means of the rest.
type Phase struct {
	Rounds           []Window `json:"rounds"`
	Sessions         int      `json:"sessions"`
	Seconds          float64  `json:"seconds"` // measured, all rounds
	CPUPerSessionMS  float64  `json:"cpu_ms_per_s_per_session"`
	MinMS            float64  `json:"min_round_ms"`
	MaxMS            float64  `json:"max_round_ms"`
	ServerCPUPercent float64  `json:"server_cpu_percent"` // median round
	ClientCPUPercent float64  `json:"client_cpu_percent"` // mean
	OtherCPUPercent  float64  `json:"other_cpu_percent"`  // the noisiest round
	ErrorEvents      int64    `json:"error_events"`
	TurnsPerMin      float64  `json:"turns_per_min_per_session"`
	RecognizerRatio  float64  `json:"recognizer_audio_ratio"`
	AudioRatio       float64  `json:"agent_audio_ratio"`
	GCPerSec         float64  `json:"gc_per_sec"`
	AllocMBPerSec    float64  `json:"alloc_mib_per_sec"`
}

func summarize(rounds []Window) Phase {
	p := Phase{Rounds: rounds}
	if len(rounds) == 0 {
		return p
	}
	cpu := make([]float64, 0, len(rounds))
	srv := make([]float64, 0, len(rounds))
	k := float64(len(rounds))
	for _, w := range rounds {
		cpu = append(cpu, w.CPUPerSessionMS)
		srv = append(srv, w.ServerCPUPercent)
		p.Sessions = w.Sessions
		p.Seconds += w.Seconds
		p.ClientCPUPercent += w.ClientCPUPercent / k
		p.OtherCPUPercent = max(p.OtherCPUPercent, w.OtherCPUPercent)
		p.ErrorEvents += w.ErrorEvents
		p.TurnsPerMin += w.TurnsPerMin / k
		p.RecognizerRatio += w.RecognizerRatio / k
		p.AudioRatio += w.AudioRatio / k
		p.GCPerSec += w.GCPerSec / k
		p.AllocMBPerSec += w.AllocMBPerSec / k
	}
	slices.Sort(cpu)
	slices.Sort(srv)
	p.CPUPerSessionMS, p.MinMS, p.MaxMS = median(cpu), cpu[0], cpu[len(cpu)-1]
	p.ServerCPUPercent = median(srv)
	return p
}

// SetupResult is the call-setup latency.
type SetupResult struct {
	Calls        int      `json:"calls"`
	Errors       int      `json:"errors"`
	ErrorSamples []string `json:"error_samples,omitempty"`
	// Answer: offer posted -> answer received (rtctest's Caller.Setup).
	Answer Stats `json:"offer_to_answer"`
	// Open: Dial called -> data channel open (gathering, signaling, ICE,
	// DTLS, SCTP).
	Open Stats `json:"dial_to_open"`
	// The server's parley_webrtc_call_setup_seconds over the same calls
	// (p50 and p99 are bucket upper bounds; -1: above the last bucket).
	ServerCount uint64        `json:"server_count"`
	ServerMean  time.Duration `json:"server_mean_ns"`
	ServerP50   time.Duration `json:"server_p50_le_ns"`
	ServerP99   time.Duration `json:"server_p99_le_ns"`
}

// Ratios are WebRTC's CPU per session over WebSocket's: the ratio of the
// medians, and the range of the ratios of rounds measured side by side
// (round i of one transport against round i of the other).
type Ratios struct {
	ListenPCM       float64    `json:"listen_webrtc_over_ws_pcm"`
	ListenPCMRange  [2]float64 `json:"listen_webrtc_over_ws_pcm_rounds"`
	ListenOpus      float64    `json:"listen_webrtc_over_ws_opus"`
	ListenOpusRange [2]float64 `json:"listen_webrtc_over_ws_opus_rounds"`
	SpeakPCM        float64    `json:"speak_webrtc_over_ws_pcm"`
	SpeakPCMRange   [2]float64 `json:"speak_webrtc_over_ws_pcm_rounds"`
}

// pairRange returns the smallest and largest ratio of paired rounds.
func pairRange(a, b []Window) [2]float64 {
	var out [2]float64
	for i := range min(len(a), len(b)) {
		x := ratio(a[i].CPUPerSessionMS, b[i].CPUPerSessionMS)
		if x <= 0 {
			continue
		}
		if out[0] == 0 || x < out[0] {
			out[0] = x
		}
		out[1] = max(out[1], x)
	}
	return out
}

// Target is one pass/fail criterion.
type Target struct {
	Name  string  `json:"name"`
	Limit string  `json:"limit"`
	Got   string  `json:"got"`
	Met   bool    `json:"met"`
	Value float64 `json:"value"`
}

// Env describes where the run happened.
type Env struct {
	GoVersion  string `json:"go_version"`
	GOOS       string `json:"goos"`
	GOARCH     string `json:"goarch"`
	NumCPU     int    `json:"num_cpu"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	NoFileSoft uint64 `json:"nofile_soft"`
	NoFileHard uint64 `json:"nofile_hard"`
}

func currentEnv() Env {
	return Env{GoVersion: runtime.Version(), GOOS: runtime.GOOS, GOARCH: runtime.GOARCH,
		NumCPU: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0)}
}

func (r *Report) transport(t transport) *TransportResult {
	for _, x := range r.Transports {
		if x.Transport == t {
			return x
		}
	}
	return nil
}

func ratio(a, b float64) float64 {
	if a <= 0 || b <= 0 {
		return 0
	}
	return a / b
}

// evaluate fills Ratios and Targets from what was measured.
func (r *Report) evaluate() {
	rtc, pcm, opus := r.transport(tWebRTC), r.transport(tWSPCM), r.transport(tWSOpus)
	r.Ratios = Ratios{}
	r.Targets = nil
	if rtc != nil && pcm != nil {
		r.Ratios.ListenPCM = ratio(rtc.Listen.CPUPerSessionMS, pcm.Listen.CPUPerSessionMS)
		r.Ratios.ListenPCMRange = pairRange(rtc.Listen.Rounds, pcm.Listen.Rounds)
		if rtc.Speak != nil && pcm.Speak != nil {
			r.Ratios.SpeakPCM = ratio(rtc.Speak.CPUPerSessionMS, pcm.Speak.CPUPerSessionMS)
			r.Ratios.SpeakPCMRange = pairRange(rtc.Speak.Rounds, pcm.Speak.Rounds)
		}
	}
	if rtc != nil && opus != nil {
		r.Ratios.ListenOpus = ratio(rtc.Listen.CPUPerSessionMS, opus.Listen.CPUPerSessionMS)
		r.Ratios.ListenOpusRange = pairRange(rtc.Listen.Rounds, opus.Listen.Rounds)
	}
	add := func(name string, got float64, limit float64) {
		if got <= 0 {
			return
		}
		r.Targets = append(r.Targets, Target{Name: name, Limit: fmt.Sprintf("<= %.2f", limit), Got: fmt.Sprintf("%.2f", got),
			Value: got, Met: got <= limit})
	}
	add("listening CPU per session, WebRTC / WebSocket audio/pcm", r.Ratios.ListenPCM, targetListenRatio)
	add("listening CPU per session, WebRTC / WebSocket audio/opus", r.Ratios.ListenOpus, targetListenRatio)
	if s := r.Setup; s != nil && s.Answer.Count > 0 {
		r.Targets = append(r.Targets, Target{Name: "call setup p99 (offer posted -> answer, loopback)",
			Limit: "< " + fmtMS(targetSetupP99), Got: fmtMS(s.Answer.P99), Value: float64(s.Answer.P99) / 1e6,
			Met: s.Answer.P99 < targetSetupP99 && s.Errors == 0})
	}
}

// noisyPercent is the CPU (% of one core) other processes may use during a
// window before the report warns.
const noisyPercent = 10

// Print writes the human-readable report.
func (r *Report) Print(w io.Writer) {
	c := r.Config
	fmt.Fprintf(w, "Parley call benchmark: WebRTC calls vs WebSocket voice sessions, %d concurrent sessions per transport, %s measured per transport and phase; %s %s/%s, %d CPUs, %.0fs\n",
		c.Calls, c.Window, r.Env.GoVersion, r.Env.GOOS, r.Env.GOARCH, r.Env.NumCPU, r.Elapsed)
	fmt.Fprintf(w, "  server:  the gateway in a child process of its own per transport (SQLite in a temp dir; WebRTC edge: one UDP mux port on 127.0.0.1);\n")
	fmt.Fprintf(w, "           CPU = utime+stime of /proc/PID/stat, RSS = VmRSS of /proc/PID/status; clients (pion callers, WebSocket clients) run in the harness, not counted\n")
	fmt.Fprintf(w, "  engines: the recognizer DISCARDS the audio (counts samples, returns \"\"): decode, resampling, VAD and turn detection are real, speech recognition is not;\n")
	fmt.Fprintf(w, "           turn_detection server_vad with create_response false (no agent runs while listening);\n")
	what := "the spoken fixtures, looped (24 kHz)"
	if c.TTSAudio == "tone" {
		what = "a 300 Hz tone (far cheaper to encode as Opus than speech)"
	}
	fmt.Fprintf(w, "           synthesizer: %s in %s chunks, paced in real time %s ahead; agent: one long answer, all text at once\n", what, c.TTSChunk, c.TTSLead)
	fmt.Fprintf(w, "  audio:   %d spoken fixtures (%s/*.opus, 20 ms packets, %.1fs of speech), %s of silence after each, %.1fs looped;\n",
		len(r.Script.Fixtures), c.Fixtures, r.Script.SpeechSeconds, c.Gap, r.Script.Seconds)
	fmt.Fprintf(w, "           each session starts at its own offset; WebSocket audio/pcm carries the same packets decoded to 24 kHz\n")
	for _, t := range r.Transports {
		fmt.Fprintf(w, "  %-8s %s\n", t.Transport+":", t.Description)
	}

	noisy := false
	if len(r.Transports) > 0 {
		fmt.Fprintf(w, "\nListening: CPU per session while every session streams the audio in real time (no agent, nothing spoken);\n")
		fmt.Fprintf(w, "  %d rounds of %s per transport after %s warm-up each, transports alternating; CPU/session is the median round\n\n",
			c.Rounds, c.Window/time.Duration(max(c.Rounds, 1)), c.Warmup)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "transport\tsessions\tCPU/session\tµs/20 ms\trounds min-max\tserver CPU\tturns/min\trecognizer audio\terrors\tclient CPU\tother CPU (max)\tGC/s\t")
		for _, t := range r.Transports {
			l := t.Listen
			if len(l.Rounds) == 0 {
				continue
			}
			noisy = noisy || l.OtherCPUPercent > noisyPercent
			fmt.Fprintf(tw, "%s\t%d\t%.3f ms/s\t%.1f\t%.3f-%.3f\t%.1f%%\t%.1f\t%.2f s/s\t%d\t%.0f%%\t%.0f%%\t%.1f\t\n",
				t.Transport, l.Sessions, l.CPUPerSessionMS, 20*l.CPUPerSessionMS, l.MinMS, l.MaxMS,
				l.ServerCPUPercent, l.TurnsPerMin, l.RecognizerRatio, l.ErrorEvents, l.ClientCPUPercent, l.OtherCPUPercent, l.GCPerSec)
		}
		tw.Flush()
		fmt.Fprintf(w, "  ratio WebRTC / WebSocket audio/pcm: %s (rounds %s)    WebRTC / WebSocket audio/opus: %s (rounds %s)\n",
			fmtRatio(r.Ratios.ListenPCM), fmtRange(r.Ratios.ListenPCMRange), fmtRatio(r.Ratios.ListenOpus), fmtRange(r.Ratios.ListenOpusRange))
		fmt.Fprintf(w, "  target: a listening call costs at most %.1fx a listening WebSocket voice session\n", targetListenRatio)
		fmt.Fprintf(w, "  (µs/20 ms: CPU per frame of audio; recognizer audio: speech the turn detector passed on, seconds per second per session)\n")

		var speak []*TransportResult
		for _, t := range r.Transports {
			if t.Speak != nil && len(t.Speak.Rounds) > 0 {
				speak = append(speak, t)
			}
		}
		if len(speak) > 0 {
			fmt.Fprintf(w, "\nSpeaking: CPU per session while the agent talks without pause (sessions send no audio); rounds as above\n")
			fmt.Fprintf(w, "  webrtc: 24 -> 48 kHz, Opus encode, the paced player, RTP over SRTP; ws-pcm: audio/pcm 24 kHz base64 in response.output_audio.delta (one per %s chunk)\n\n", c.TTSChunk)
			tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
			fmt.Fprintln(tw, "transport\tsessions\tCPU/session\tµs/20 ms\trounds min-max\tserver CPU\tagent audio received\terrors\tclient CPU\tother CPU (max)\tGC/s\t")
			for _, t := range speak {
				s := t.Speak
				noisy = noisy || s.OtherCPUPercent > noisyPercent
				fmt.Fprintf(tw, "%s\t%d\t%.3f ms/s\t%.1f\t%.3f-%.3f\t%.1f%%\t%.3f s/s\t%d\t%.0f%%\t%.0f%%\t%.1f\t\n",
					t.Transport, s.Sessions, s.CPUPerSessionMS, 20*s.CPUPerSessionMS, s.MinMS, s.MaxMS,
					s.ServerCPUPercent, s.AudioRatio, s.ErrorEvents, s.ClientCPUPercent, s.OtherCPUPercent, s.GCPerSec)
			}
			tw.Flush()
			fmt.Fprintf(w, "  ratio WebRTC / WebSocket audio/pcm: %s (rounds %s)    (agent audio received: seconds per second per session, 1 = real time)\n",
				fmtRatio(r.Ratios.SpeakPCM), fmtRange(r.Ratios.SpeakPCMRange))
			for _, t := range speak {
				for i, win := range t.Speak.Rounds {
					if win.AudioRatio < 0.95 {
						fmt.Fprintf(w, "  WARNING: %s speaking round %d: the clients received %.2f s of the agent's audio per second: the machine did not keep up (other CPU %.0f%%)\n",
							t.Transport, i+1, win.AudioRatio, win.OtherCPUPercent)
					}
				}
			}
		}

		fmt.Fprintf(w, "\nMemory per idle session (%d sessions, each sent 200 ms of silence, then nothing; warm-up sessions closed before;\n  both readings after two GCs and debug.FreeOSMemory; (after - before) / sessions)\n\n", c.Calls)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "transport\tsessions\tRSS before\tRSS after\tRSS/session\theap+stack/session\tgoroutines/session\tidle CPU/session\t")
		for _, t := range r.Transports {
			m := t.Memory
			if m.Sessions == 0 {
				continue
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%.1f KiB\t%.1f KiB\t%.1f\t%.3f ms/s\t\n", t.Transport, m.Sessions, mib(m.RSSBefore), mib(m.RSSAfter),
				m.RSSKiB, m.HeapStackKiB, m.GoroutinesPer, m.IdleCPUMS)
		}
		tw.Flush()
	}

	if s := r.Setup; s != nil {
		fmt.Fprintf(w, "\nCall setup (%d sequential calls; each: mint an ephemeral key (not timed), gather, post the offer, apply the answer, wait for the data channel, hang up)\n\n", s.Calls)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "measure\tcalls\tp50\tp90\tp99\tmax\tmean\t")
		fmt.Fprintf(tw, "offer posted -> answer (client)\t%d\t%s\t%s\t%s\t%s\t%s\t\n", s.Answer.Count, fmtMS(s.Answer.P50), fmtMS(s.Answer.P90), fmtMS(s.Answer.P99), fmtMS(s.Answer.Max), fmtMS(s.Answer.Mean))
		fmt.Fprintf(tw, "dial -> data channel open (client)\t%d\t%s\t%s\t%s\t%s\t%s\t\n", s.Open.Count, fmtMS(s.Open.P50), fmtMS(s.Open.P90), fmtMS(s.Open.P99), fmtMS(s.Open.Max), fmtMS(s.Open.Mean))
		fmt.Fprintf(tw, "parley_webrtc_call_setup_seconds (server)\t%d\t<= %s\t\t<= %s\t\t%s\t\n", s.ServerCount, fmtLE(s.ServerP50), fmtLE(s.ServerP99), fmtMS(s.ServerMean))
		tw.Flush()
		fmt.Fprintf(w, "  (the server histogram's percentiles are bucket upper bounds)\n")
		for _, e := range s.ErrorSamples {
			fmt.Fprintf(w, "  error: %s\n", e)
		}
	}

	for _, t := range r.Transports {
		for _, e := range t.ErrorSamples {
			fmt.Fprintf(w, "  error: %s: %s\n", t.Transport, e)
		}
		if t.Errors > len(t.ErrorSamples) {
			fmt.Fprintf(w, "  %s: %d errors in all\n", t.Transport, t.Errors)
		}
		for _, p := range []*Phase{&t.Listen, t.Speak} {
			if p == nil {
				continue
			}
			for _, win := range p.Rounds {
				if win.ProfileError != "" {
					fmt.Fprintf(w, "  profile: %s %s failed: %s\n", t.Transport, win.Name, win.ProfileError)
				}
			}
		}
	}
	if c.Profile != "" {
		fmt.Fprintf(w, "  profiles of the child in %s: TRANSPORT-cpu-PHASE-ROUND.pprof (merge the rounds: go tool pprof -top FILES...), TRANSPORT-heap-idle.pprof\n", c.Profile)
	}
	if r.Retries > 0 {
		fmt.Fprintf(w, "  note: %d round(s) were measured twice because other processes used the CPU; the quieter attempt is shown\n", r.Retries)
	}
	if noisy {
		fmt.Fprintf(w, "  WARNING: other processes used more than %d%% of a core during a window; rerun on a quiet machine\n", noisyPercent)
	}

	if len(r.Targets) > 0 {
		fmt.Fprintf(w, "\nTargets\n")
		for _, t := range r.Targets {
			verdict := "MET    "
			if !t.Met {
				verdict = "NOT MET"
			}
			fmt.Fprintf(w, "  %s  %s %s: %s\n", verdict, t.Name, t.Limit, t.Got)
		}
	}
	if r.Command != "" {
		fmt.Fprintf(w, "\nReproduce: %s\n", r.Command)
	}
}

// WriteJSON writes the report to file.
func (r *Report) WriteJSON(file string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(file, append(b, '\n'), 0o644)
}

func fmtRatio(x float64) string {
	if x <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", x)
}

func fmtRange(r [2]float64) string {
	if r[0] <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f-%.2f", r[0], r[1])
}

func fmtMS(d time.Duration) string {
	if d == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f ms", float64(d)/1e6)
}

func fmtLE(d time.Duration) string {
	if d < 0 {
		return "+Inf"
	}
	return fmtMS(d)
}

func mib(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// Stats summarises durations (nearest-rank percentiles).
type Stats struct {
	Count int           `json:"count"`
	P50   time.Duration `json:"p50_ns"`
	P90   time.Duration `json:"p90_ns"`
	P99   time.Duration `json:"p99_ns"`
	Max   time.Duration `json:"max_ns"`
	Mean  time.Duration `json:"mean_ns"`
}

func statsOf(ds []time.Duration) Stats {
	if len(ds) == 0 {
		return Stats{}
	}
	ds = slices.Clone(ds)
	slices.Sort(ds)
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	pct := func(q float64) time.Duration {
		i := int(math.Ceil(q*float64(len(ds)))) - 1
		return ds[min(max(i, 0), len(ds)-1)]
	}
	return Stats{Count: len(ds), P50: pct(0.50), P90: pct(0.90), P99: pct(0.99), Max: ds[len(ds)-1], Mean: sum / time.Duration(len(ds))}
}
