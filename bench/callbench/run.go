package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"

	"parley/bench/internal/childio"
	"parley/bench/internal/procstat"
	"parley/rtc/rtctest"
)

// Run executes the benchmark described by cfg, writing progress to logw.
// It returns the report so far even when it fails part-way.
//
// Each transport gets its own child with its N sessions, all opened first
// (the memory figures are taken then, per child); the listening and then
// the speaking windows are measured in rounds that alternate between the
// transports (the order rotates each round), so that a noisy moment of the
// machine or the phase in which the sessions' timers happen to fall does
// not favour one transport. Each figure is the median of its rounds.
func Run(ctx context.Context, cfg Config, logw io.Writer) (*Report, error) {
	begin := time.Now()
	var logMu sync.Mutex
	progress := func(format string, args ...any) {
		logMu.Lock()
		defer logMu.Unlock()
		fmt.Fprintf(logw, "[%6.1fs] %s\n", time.Since(begin).Seconds(), fmt.Sprintf(format, args...))
	}
	rep := &Report{Started: begin.UTC(), Config: cfg, Env: currentEnv()}
	defer func() { rep.Elapsed = time.Since(begin).Seconds() }()

	soft, hard := procstat.RaiseNofile()
	rep.Env.NoFileSoft, rep.Env.NoFileHard = soft, hard
	progress("RLIMIT_NOFILE soft=%d hard=%d; %d CPUs, GOMAXPROCS=%d, %s", soft, hard, runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version())
	// Per session: a UDP socket (caller) or a TCP connection (WebSocket),
	// the signaling connections, pion's and the runtime's own; three
	// groups of sessions are open at once.
	if need := uint64(3*4*cfg.Calls + 512); soft < need {
		return rep, fmt.Errorf("RLIMIT_NOFILE soft limit %d is below the %d descriptors this run needs", soft, need)
	}
	if cfg.Profile != "" {
		if err := os.MkdirAll(cfg.Profile, 0o755); err != nil {
			return rep, err
		}
	}
	sc, err := loadScript(cfg.Fixtures, cfg.Gap)
	if err != nil {
		return rep, err
	}
	rep.Script = ScriptInfo{Fixtures: sc.names, Seconds: sc.duration().Seconds(), SpeechSeconds: sc.speech.Seconds(), GapMS: cfg.Gap.Milliseconds()}
	progress("script: %d spoken fixtures, %.1fs of speech, %.1fs looped with %s of silence after each", len(sc.names), sc.speech.Seconds(), sc.duration().Seconds(), cfg.Gap)
	api, err := clientAPI(&childio.PrefixWriter{W: logw, Prefix: "[pion client] "})
	if err != nil {
		return rep, err
	}

	var groups []*group
	defer func() {
		// However the run ends: hang up, stop the children, keep the errors.
		for _, g := range groups {
			closeClients(g.cs)
		}
		for _, g := range groups {
			g.ch.stop()
			g.res.Errors = int(g.errs.n.Load())
			g.res.ErrorSamples = g.errs.list()
			g.res.Listen = summarize(g.listen)
			if len(g.speak) > 0 {
				p := summarize(g.speak)
				g.res.Speak = &p
			}
		}
		rep.evaluate()
	}()
	for _, t := range []transport{tWebRTC, tWSPCM, tWSOpus} {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		g := &group{t: t, errs: &errorLog{}, res: &TransportResult{Transport: t, Description: t.describe()}}
		rep.Transports = append(rep.Transports, g.res)
		err := g.open(ctx, &cfg, sc, api, rep, logw, progress)
		if g.ch != nil {
			groups = append(groups, g)
		}
		if err != nil {
			return rep, fmt.Errorf("%s: %w", t, err)
		}
	}

	per := cfg.Window / time.Duration(cfg.Rounds)
	retries := 0
	// measureRound runs a round, and once more (after waiting for the
	// machine to go quiet) when other processes used the CPU during it,
	// within a budget of cfg.NoisyRetries per run; the quieter attempt
	// counts.
	measureRound := func(g *group, phase string, r int, round func() (Window, error)) (Window, error) {
		w, err := round()
		if err != nil || w.OtherCPUPercent <= noisyPercent || retries >= cfg.NoisyRetries {
			return w, err
		}
		retries++
		progress("%s: %s round %d: other processes used %.0f%% of a core; measuring it again (retry %d of %d per run)",
			g.t, phase, r+1, w.OtherCPUPercent, retries, cfg.NoisyRetries)
		waitQuiet(ctx, cfg.QuietWait, groups)
		w2, err := round()
		w2.Attempts = 2
		if err != nil || w2.OtherCPUPercent < w.OtherCPUPercent {
			return w2, err
		}
		w.Attempts = 2
		return w, nil
	}
	progress("listening: %d rounds of %s per transport (after %s warm-up each), transports alternating", cfg.Rounds, per, cfg.Warmup)
	for r := range cfg.Rounds {
		for k := range groups {
			g := groups[(k+r)%len(groups)]
			w, err := measureRound(g, "listening", r, func() (Window, error) { return g.listenRound(ctx, &cfg, sc, r, per) })
			g.listen = append(g.listen, w)
			if err != nil {
				return rep, fmt.Errorf("%s: listening: %w", g.t, err)
			}
			progress("%s: listening round %d: %.3f ms CPU/s per session, %.1f turns/min, recognizer %.2f s/s; client CPU %.0f%%, other %.0f%%",
				g.t, r+1, w.CPUPerSessionMS, w.TurnsPerMin, w.RecognizerRatio, w.ClientCPUPercent, w.OtherCPUPercent)
		}
	}
	var speakers []*group
	for _, g := range groups {
		if g.t != tWSOpus { // its answers are the same audio/pcm deltas as ws-pcm's
			speakers = append(speakers, g)
		}
	}
	progress("speaking: %d rounds of %s per transport (after %s warm-up each), transports alternating", cfg.Rounds, per, cfg.Warmup)
	for r := range cfg.Rounds {
		for k := range speakers {
			g := speakers[(k+r)%len(speakers)]
			w, err := measureRound(g, "speaking", r, func() (Window, error) { return g.speakRound(ctx, &cfg, r, per) })
			g.speak = append(g.speak, w)
			if err != nil {
				return rep, fmt.Errorf("%s: speaking: %w", g.t, err)
			}
			progress("%s: speaking round %d: %.3f ms CPU/s per session, agent audio %.3f s/s; client CPU %.0f%%, other %.0f%%",
				g.t, r+1, w.CPUPerSessionMS, w.AudioRatio, w.ClientCPUPercent, w.OtherCPUPercent)
		}
	}
	rep.Retries = retries

	for _, g := range groups {
		closeClients(g.cs)
	}
	for _, g := range groups {
		if left, err := g.ch.waitSessions(ctx, 0, 15*time.Second); err != nil {
			return rep, err
		} else if left != 0 {
			progress("%s: %d sessions still open 15s after the clients closed", g.t, left)
		}
		if err := g.ch.alive(); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// settle is how long the harness lets things settle between steps.
func (c *Config) settle() time.Duration {
	if c.Smoke {
		return 200 * time.Millisecond
	}
	return time.Second
}

// group is one transport: its child and its N sessions.
type group struct {
	t      transport
	ch     *child
	cs     []client
	errs   *errorLog
	res    *TransportResult
	listen []Window
	speak  []Window
	frames int // script frames streamed per session so far: the next round goes on from there
}

// open starts the group's child, warms it up (the call-setup phase for
// WebRTC), opens the N sessions and measures their memory and idle CPU.
func (g *group) open(ctx context.Context, cfg *Config, sc *script, api *webrtc.API, rep *Report, logw io.Writer, progress func(string, ...any)) error {
	t := g.t
	// The agent's answer outlasts any speaking round.
	speakLen := cfg.Warmup + cfg.Window + 3*cfg.settle() + 10*time.Second
	ch, err := startChild(ctx, cfg, string(t), speakLen, logw)
	if err != nil {
		return err
	}
	g.ch = ch
	progress("%s: gateway child pid %d at %s", t, ch.pid, ch.addr)
	dial := func(ctx context.Context, i int) (client, error) {
		if t == tWebRTC {
			return dialRTC(ctx, ch.base(), api, i, g.errs)
		}
		return dialWS(ctx, ch.addr, t, i, g.errs)
	}

	// Call setup doubles as the WebRTC child's warm-up; the others warm up
	// with a few sessions, so that one-time initialisation (pools, pion's
	// and libopus's tables, SQLite's caches) is not counted per session.
	if t == tWebRTC && cfg.Setup > 0 {
		progress("%s: call setup: %d sequential calls", t, cfg.Setup)
		s, err := setupPhase(ctx, cfg, ch, api)
		rep.Setup = s
		if err != nil {
			return err
		}
		progress("%s: call setup: offer posted -> answer p50 %s p99 %s max %s; server histogram mean %s",
			t, fmtMS(s.Answer.P50), fmtMS(s.Answer.P99), fmtMS(s.Answer.Max), fmtMS(s.ServerMean))
	} else {
		cs, err := openClients(ctx, cfg, 2, dial)
		if err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
		err = allSilence(ctx, sc, cs, 25)
		closeClients(cs)
		if err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
	}
	if left, err := ch.waitSessions(ctx, 0, 15*time.Second); err != nil {
		return err
	} else if left != 0 {
		progress("%s: %d sessions still open 15s after the warm-up", t, left)
	}
	if !sleepCtx(ctx, cfg.settle()) {
		return ctx.Err()
	}

	// Memory: N sessions, each sends 200 ms of silence (so its listening
	// path exists: a call's track reader and decoder, a session's input
	// decoder and turn detector), then nothing.
	s0, err := ch.stats(ctx, true)
	if err != nil {
		return err
	}
	rss0, err := ch.rss()
	if err != nil {
		return err
	}
	opened := time.Now()
	g.cs, err = openClients(ctx, cfg, cfg.Calls, dial)
	if err != nil {
		return err
	}
	progress("%s: %d sessions open in %s", t, len(g.cs), time.Since(opened).Round(time.Millisecond))
	if err := allSilence(ctx, sc, g.cs, 10); err != nil {
		return err
	}
	if !sleepCtx(ctx, cfg.settle()) {
		return ctx.Err()
	}
	if n, err := ch.waitSessions(ctx, cfg.Calls, 5*time.Second); err != nil {
		return err
	} else if n != cfg.Calls {
		return fmt.Errorf("the child has %d sessions, want %d", n, cfg.Calls)
	}
	idle := measure(ctx, cfg, ch, g.cs, "idle", cfg.Idle, string(t)+"-cpu-idle.pprof")
	s1, err := ch.stats(ctx, true)
	if err != nil {
		return err
	}
	rss1, err := ch.rss()
	if err != nil {
		return err
	}
	if cfg.Profile != "" {
		file := filepath.Join(cfg.Profile, string(t)+"-heap-idle.pprof")
		if err := ch.saveProfile(ctx, "/debug/pprof/heap", file); err != nil {
			progress("%s: heap profile: %v", t, err)
		}
	}
	n := float64(cfg.Calls)
	g.res.Memory = MemoryResult{
		Sessions: cfg.Calls, RSSBefore: rss0, RSSAfter: rss1,
		RSSKiB:        (float64(rss1) - float64(rss0)) / n / 1024,
		HeapStackKiB:  (float64(s1.HeapInuse+s1.StackInuse) - float64(s0.HeapInuse+s0.StackInuse)) / n / 1024,
		GoroutinesPer: float64(s1.Goroutines-s0.Goroutines) / n,
		IdleCPUMS:     idle.CPUPerSessionMS,
	}
	progress("%s: %d idle sessions: %.1f KiB RSS, %.1f KiB heap+stack, %.1f goroutines per session; idle CPU %.3f ms/s per session",
		t, cfg.Calls, g.res.Memory.RSSKiB, g.res.Memory.HeapStackKiB, g.res.Memory.GoroutinesPer, g.res.Memory.IdleCPUMS)
	return ch.alive()
}

// listenRound has every session stream the script (each from its own
// offset, so turns are spread; starting within one frame of each other)
// for the warm-up and then a measured window of d.
func (g *group) listenRound(ctx context.Context, cfg *Config, sc *script, r int, d time.Duration) (Window, error) {
	sctx, stopStreams := context.WithCancel(ctx)
	var wg sync.WaitGroup
	start := time.Now()
	n := len(g.cs)
	for i, c := range g.cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if !sleepUntil(sctx, start.Add(time.Duration(i)*frame/time.Duration(n))) {
				return
			}
			// Streams end with the round (the limit is a safety net).
			if err := c.stream(sctx, sc, (i*len(sc.opus)/n+g.frames)%len(sc.opus), cfg.Warmup+d+5*time.Second); err != nil {
				g.errs.add("%s: streaming: %v", g.t, err)
			}
		}()
	}
	defer func() {
		stopStreams()
		wg.Wait()
		g.frames += int((cfg.Warmup + d) / frame)
	}()
	if !sleepCtx(ctx, cfg.Warmup) {
		return Window{}, ctx.Err()
	}
	w := measure(ctx, cfg, g.ch, g.cs, "listen", d, g.profile("listen", r))
	if err := g.ch.alive(); err != nil {
		return w, err
	}
	return w, ctx.Err()
}

// speakRound has every session ask for the long answer (spread over one
// synthesizer chunk), measures a window of d after the warm-up, and
// cancels the answers.
func (g *group) speakRound(ctx context.Context, cfg *Config, r int, d time.Duration) (Window, error) {
	start := time.Now()
	for i, c := range g.cs {
		sleepUntil(ctx, start.Add(time.Duration(i)*cfg.TTSChunk/time.Duration(len(g.cs))))
		if err := c.speak(); err != nil {
			return Window{}, fmt.Errorf("response.create: %w", err)
		}
	}
	if !sleepCtx(ctx, cfg.Warmup) {
		return Window{}, ctx.Err()
	}
	w := measure(ctx, cfg, g.ch, g.cs, "speak", d, g.profile("speak", r))
	// Stop the answers: the next round starts new ones.
	for _, c := range g.cs {
		if err := c.cancel(); err != nil {
			g.errs.add("%s: response.cancel: %v", g.t, err)
		}
	}
	if !sleepCtx(ctx, cfg.settle()) {
		return w, ctx.Err()
	}
	return w, g.ch.alive()
}

// profile names the CPU profile file of a window (written only with
// -profile).
func (g *group) profile(phase string, round int) string {
	return fmt.Sprintf("%s-cpu-%s-%d.pprof", g.t, phase, round+1)
}

// openClients opens n sessions, cfg.DialConc at a time.
func openClients(ctx context.Context, cfg *Config, n int, dial func(context.Context, int) (client, error)) ([]client, error) {
	cs := make([]client, n)
	sem := make(chan struct{}, cfg.DialConc)
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			dctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			c, err := dial(dctx, i)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if firstErr == nil {
					firstErr = fmt.Errorf("session %d: %w", i, err)
				}
				return
			}
			cs[i] = c
		}()
	}
	wg.Wait()
	if firstErr != nil {
		closeClients(cs)
		return nil, firstErr
	}
	return cs, nil
}

func closeClients(cs []client) {
	var wg sync.WaitGroup
	for _, c := range cs {
		if c == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.close()
		}()
	}
	wg.Wait()
}

// allSilence has every client send n frames of silence in real time, at
// once.
func allSilence(ctx context.Context, sc *script, cs []client, n int) error {
	var wg sync.WaitGroup
	errc := make(chan error, len(cs))
	for _, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.silence(ctx, sc, n); err != nil {
				errc <- err
			}
		}()
	}
	wg.Wait()
	close(errc)
	return <-errc // nil when none failed
}

// measure reads the child's CPU (and the rest) over a window of d that
// starts now; with -profile, a CPU profile of the child (file, in the
// profile directory) covers the window.
func measure(ctx context.Context, cfg *Config, ch *child, cs []client, name string, d time.Duration, profile string) (w Window) {
	w = Window{Name: name, Seconds: d.Seconds(), Sessions: len(cs)}
	if cfg.Profile != "" && profile != "" {
		profile = filepath.Join(cfg.Profile, profile)
		profDone := make(chan error, 1)
		go func() {
			secs := max(1, int(d.Round(time.Second)/time.Second))
			profDone <- ch.saveProfile(ctx, "/debug/pprof/profile?seconds="+strconv.Itoa(secs), profile)
		}()
		defer func() {
			if err := <-profDone; err != nil {
				w.ProfileError = err.Error()
			} else {
				w.Profile = profile
			}
		}()
	}
	type snap struct {
		cpu, client, busy time.Duration
		at                time.Time
		st                ChildStats
		events, errors    int64
		speech, audio     int64
	}
	take := func() snap {
		s := snap{client: procstat.SelfCPU(), busy: machineBusy()}
		s.cpu, _ = ch.cpu()
		s.at = time.Now()
		s.st, _ = ch.stats(ctx, false)
		for _, c := range cs {
			k := c.counts()
			s.events += k.events.Load()
			s.errors += k.errors.Load()
			s.speech += k.speechStarted.Load()
			s.audio += int64(c.audio())
		}
		return s
	}
	a := take()
	if !sleepUntil(ctx, a.at.Add(d)) {
		return w
	}
	b := take()
	n := float64(len(cs))
	secs := b.at.Sub(a.at).Seconds()
	w.Seconds = secs
	w.ServerCPUSeconds = (b.cpu - a.cpu).Seconds()
	w.ServerCPUPercent = 100 * w.ServerCPUSeconds / secs
	w.CPUPerSessionMS = perSessionMS(b.cpu-a.cpu, b.at.Sub(a.at), n)
	w.ClientCPUPercent = 100 * (b.client - a.client).Seconds() / secs
	if b.busy > a.busy {
		w.OtherCPUPercent = max(0, 100*(b.busy-a.busy).Seconds()/secs-w.ServerCPUPercent-w.ClientCPUPercent)
	}
	w.Events = b.events - a.events
	w.ErrorEvents = b.errors - a.errors
	w.TurnsPerMin = float64(b.speech-a.speech) / n / secs * 60
	w.RecognizerRatio = float64(b.st.STTSamples-a.st.STTSamples) / 16000 / n / secs
	w.AudioRatio = time.Duration(b.audio-a.audio).Seconds() / n / secs
	w.GCPerSec = float64(b.st.NumGC-a.st.NumGC) / secs
	w.AllocMBPerSec = float64(b.st.TotalAlloc-a.st.TotalAlloc) / secs / (1 << 20)
	return w
}

// perSessionMS is CPU per session in ms per second.
func perSessionMS(cpu, over time.Duration, sessions float64) float64 {
	if over <= 0 || sessions <= 0 {
		return 0
	}
	return float64(cpu) / float64(time.Millisecond) / over.Seconds() / sessions
}

func median(sorted []float64) float64 {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

// setupPhase places cfg.Setup sequential calls and measures each one's
// offer-to-answer time (rtctest's Caller.Setup) and offer-to-data-channel-
// open time; then reads the server's parley_webrtc_call_setup_seconds.
func setupPhase(ctx context.Context, cfg *Config, ch *child, api *webrtc.API) (*SetupResult, error) {
	res := &SetupResult{Calls: cfg.Setup}
	var answer, open []time.Duration
	for i := range cfg.Setup {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		key, err := rtctest.Mint(ctx, ch.base(), benchKey, mintBody(i))
		if err != nil {
			return res, err
		}
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		t0 := time.Now()
		c, err := rtctest.Dial(dctx, ch.base(), key, rtctest.Options{API: api, Client: signalHTTP})
		opened := time.Since(t0)
		cancel()
		if err != nil {
			res.Errors++
			if len(res.ErrorSamples) < 5 {
				res.ErrorSamples = append(res.ErrorSamples, err.Error())
			}
			if res.Errors > max(5, cfg.Setup/10) {
				return res, fmt.Errorf("call setup: %d calls failed, last: %w", res.Errors, err)
			}
			continue
		}
		answer = append(answer, c.Setup)
		open = append(open, opened)
		c.Close()
	}
	res.Answer, res.Open = statsOf(answer), statsOf(open)
	b, err := ch.get(ctx, "/metrics")
	if err != nil {
		return res, err
	}
	h, err := parseHistogram(string(b), "parley_webrtc_call_setup_seconds")
	if err != nil {
		return res, err
	}
	res.ServerCount = h.count
	if h.count > 0 {
		res.ServerMean = time.Duration(h.sum / float64(h.count) * float64(time.Second))
		res.ServerP50 = h.quantile(0.50)
		res.ServerP99 = h.quantile(0.99)
	}
	if len(answer) == 0 {
		return res, errors.New("call setup: no call succeeded")
	}
	return res, nil
}

// histogram is a Prometheus histogram from the text exposition.
type histogram struct {
	les    []float64 // upper bounds, ascending, +Inf last
	counts []uint64  // cumulative
	sum    float64
	count  uint64
}

func parseHistogram(text, name string) (histogram, error) {
	var h histogram
	for _, line := range strings.Split(text, "\n") {
		switch {
		case strings.HasPrefix(line, name+"_bucket{"):
			i := strings.Index(line, `le="`)
			j := strings.LastIndex(line, `"}`)
			if i < 0 || j < i {
				return h, fmt.Errorf("metrics: bad bucket line %q", line)
			}
			le, err := strconv.ParseFloat(line[i+4:j], 64)
			if err != nil {
				return h, fmt.Errorf("metrics: %q: %w", line, err)
			}
			v, err := strconv.ParseFloat(strings.TrimSpace(line[j+2:]), 64)
			if err != nil {
				return h, fmt.Errorf("metrics: %q: %w", line, err)
			}
			h.les = append(h.les, le)
			h.counts = append(h.counts, uint64(v))
		case strings.HasPrefix(line, name+"_sum "):
			h.sum, _ = strconv.ParseFloat(strings.TrimSpace(strings.TrimPrefix(line, name+"_sum ")), 64)
		case strings.HasPrefix(line, name+"_count "):
			v, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimPrefix(line, name+"_count ")), 64)
			h.count = uint64(v)
		}
	}
	if len(h.les) == 0 {
		return h, fmt.Errorf("metrics: no %s", name)
	}
	return h, nil
}

// quantile returns the upper bound of the bucket holding quantile q (an
// upper estimate; -1 when it falls in the +Inf bucket).
func (h histogram) quantile(q float64) time.Duration {
	want := q * float64(h.count)
	for i, c := range h.counts {
		if float64(c) >= want {
			if h.les[i] > 1e300 {
				return -1
			}
			return time.Duration(h.les[i] * float64(time.Second))
		}
	}
	return -1
}

// waitQuiet waits, at most limit, until the rest of the machine (all but
// the harness and its children) has used less than noisyPercent of a core
// for half a second.
func waitQuiet(ctx context.Context, limit time.Duration, groups []*group) {
	const step = 500 * time.Millisecond
	ours := func() time.Duration {
		d := procstat.SelfCPU()
		for _, g := range groups {
			c, _ := g.ch.cpu()
			d += c
		}
		return d
	}
	for i := 0; i <= int(limit/step); i++ {
		own, busy := ours(), machineBusy()
		if !sleepCtx(ctx, step) {
			return
		}
		other := 100 * ((machineBusy() - busy) - (ours() - own)).Seconds() / step.Seconds()
		if other < noisyPercent {
			return
		}
	}
}

// sleepUntil sleeps until t; false if ctx ended first.
func sleepUntil(ctx context.Context, t time.Time) bool { return sleepCtx(ctx, time.Until(t)) }
