package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"sync"
	"time"

	"parley/bench/internal/procstat"
	"parley/recording"
	"parley/replay"
)

// noisyPercent is how much of a core other processes may use before a
// step waits for quiet (and after which the report flags the step).
const noisyPercent = 10.0

// Report is a run's outcome.
type Report struct {
	Command   string        `json:"command"`
	Started   time.Time     `json:"started"`
	Elapsed   time.Duration `json:"elapsed_ns"`
	Config    Config        `json:"config"`
	Env       Env           `json:"env"`
	Recording RecordingInfo `json:"recording"`
	// PerSlot is how many times each of a step's sessions slots replays
	// the recording.
	PerSlot int     `json:"recordings_per_slot"`
	Steps   []*Step `json:"steps"`
	// Knee is the first step that missed a criterion (0: none did); Best
	// the largest step that met all three before it (0: none).
	Knee      int  `json:"knee"`
	Best      int  `json:"best"`
	TargetMet bool `json:"target_met"`
	// Profiled is the step whose profiles are shown: the knee, or the last
	// step run when there was none.
	Profiled      int         `json:"profiled_step"`
	ChildProfile  *ProfileTop `json:"child_profile,omitempty"`
	ClientProfile *ProfileTop `json:"client_profile,omitempty"`
}

// Env describes the machine.
type Env struct {
	CPUs       int    `json:"cpus"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	GoVersion  string `json:"go_version"`
	NoFile     uint64 `json:"nofile_soft"`
}

// RecordingInfo describes the replayed recording.
type RecordingInfo struct {
	Path     string        `json:"path"`
	Name     string        `json:"name"`
	Format   string        `json:"audio_format"`
	Duration time.Duration `json:"duration_ns"` // at real-time pacing
	Audio    int           `json:"audio_events"`
}

// Step is one concurrency step's figures.
type Step struct {
	Sessions int `json:"sessions"` // at once
	Played   int `json:"played"`   // sessions played in all
	Failed   int `json:"failed"`
	Peak     int `json:"peak"`
	// Errors counts failures by kind (replay's kinds); ErrorSamples keeps
	// a few messages per kind.
	Errors       map[string]int      `json:"errors"`
	ErrorSamples map[string][]string `json:"error_samples,omitempty"`
	Elapsed      time.Duration       `json:"elapsed_ns"`

	TurnToAudio     replay.Stat `json:"turn_to_audio"` // client-measured, µs
	Connect         replay.Stat `json:"connect"`
	ReplyFirstAudio replay.Stat `json:"reply_first_audio"`
	ReplyDone       replay.Stat `json:"reply_done"`
	// Gateway is the gateway's own figure for the same interval: speech
	// end to the first audio written, minus the silence wait and the
	// engines (parley_voice_gateway_added_seconds; bucketed, so p50/p99
	// are bucket upper bounds and the mean is exact).
	Gateway Histogram `json:"gateway_own"`
	// GatewayErrors are the error events the gateway sent, by code.
	GatewayErrors map[string]float64 `json:"gateway_errors,omitempty"`
	SlowClients   float64            `json:"slow_clients"`

	// RealTime is each whole session's time from session.created to its
	// close (Duration less Connect, which counts from the dial), over the
	// recording's length.
	RealTime Ratios `json:"real_time"`
	// ListenLag is how much later than the step's earliest the answers'
	// first audio came, counted from the start of the spoken turn
	// (reply_first_audio less its minimum): a listening path, client or
	// gateway, that falls behind the audio shows here even when the answer
	// still comes before the recording ends.
	ListenLag    LagStat `json:"listen_lag"`
	RealTimeHeld bool    `json:"real_time_held"`
	// Attempts is how many times the step was measured (a noisy machine
	// measures it again; the quietest attempt is kept).
	Attempts int `json:"attempts"`

	// Resources while all the step's sessions ran (Window long).
	Window      time.Duration `json:"window_ns"`
	ChildCores  float64       `json:"child_cores"`
	ClientCores float64       `json:"client_cores"`
	IRQCores    float64       `json:"irq_cores"`   // interrupt + softirq time of the machine (loopback TCP)
	OtherCores  float64       `json:"other_cores"` // other processes
	// Busy is the machine's busy share over the window (all CPUs, 0-1);
	// PeakBusy the largest over any second of it.
	Busy           float64 `json:"busy"`
	PeakBusy       float64 `json:"peak_busy"`
	ChildRSSIdle   uint64  `json:"child_rss_idle"`
	ChildRSSPeak   uint64  `json:"child_rss_peak"`
	ChildGCPerSec  float64 `json:"child_gc_per_sec"`
	ChildAllocRate float64 `json:"child_alloc_bytes_per_sec"`
	Goroutines     int     `json:"child_goroutines"` // mid-window
	LiveSessions   int     `json:"child_sessions"`   // mid-window, as the gateway counts them

	OK      bool     `json:"ok"`
	Reasons []string `json:"reasons,omitempty"` // why not OK

	childProf, clientProf []byte
}

// Ratios are percentiles of a ratio.
type Ratios struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50"`
	P99   float64 `json:"p99"`
	Max   float64 `json:"max"`
}

// LagStat is a lag's percentiles.
type LagStat struct {
	Count int64         `json:"count"`
	P50   time.Duration `json:"p50_ns"`
	P99   time.Duration `json:"p99_ns"`
	Max   time.Duration `json:"max_ns"`
}

// ChildMSPerSession is the child's CPU per session (ms per second).
func (s *Step) ChildMSPerSession() float64 { return 1000 * s.ChildCores / float64(s.Sessions) }

// ClientMSPerSession is the clients' CPU per session (ms per second).
func (s *Step) ClientMSPerSession() float64 { return 1000 * s.ClientCores / float64(s.Sessions) }

// RSSPerSession is the child's RSS growth per session (bytes).
func (s *Step) RSSPerSession() float64 {
	if s.ChildRSSPeak < s.ChildRSSIdle {
		return 0
	}
	return float64(s.ChildRSSPeak-s.ChildRSSIdle) / float64(s.Sessions)
}

// Run executes the benchmark described by cfg, writing progress to logw.
// It returns the report so far even when it fails part-way.
func Run(ctx context.Context, cfg Config, logw io.Writer) (*Report, error) {
	begin := time.Now()
	var logMu sync.Mutex
	progress := func(format string, args ...any) {
		logMu.Lock()
		defer logMu.Unlock()
		fmt.Fprintf(logw, "[%6.1fs] %s\n", time.Since(begin).Seconds(), fmt.Sprintf(format, args...))
	}
	rep := &Report{Started: begin.UTC(), Config: cfg, Env: Env{CPUs: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0), GoVersion: runtime.Version()}}
	defer func() { rep.Elapsed = time.Since(begin) }()

	rec, err := recording.ReadFile(cfg.Recording)
	if err != nil {
		return rep, err
	}
	recDur := time.Duration(rec.Duration() * float64(time.Millisecond))
	rep.Recording = RecordingInfo{Path: cfg.Recording, Name: rec.Header.Name, Format: rec.Header.AudioFormat, Duration: recDur}
	for _, ev := range rec.Events {
		if ev.Audio != nil {
			rep.Recording.Audio++
		}
	}
	if recDur < time.Second || rep.Recording.Audio == 0 {
		return rep, fmt.Errorf("%s: want a voice recording of at least a second (it has %d audio events over %v)", cfg.Recording, rep.Recording.Audio, recDur)
	}
	rep.PerSlot = max(1, int(math.Ceil(float64(cfg.StepDuration)/float64(recDur))))
	if cfg.Ramp == 0 {
		cfg.Ramp = recDur
		rep.Config.Ramp = recDur
	}

	if cfg.Engines == enginesOffline {
		if miss := offlineMissing(); miss != "" {
			return rep, fmt.Errorf("the offline engines need %s (make deps)", miss)
		}
		root, err := repoRoot()
		if err != nil {
			return rep, err
		}
		if cfg.ParleydConfig == "" {
			cfg.ParleydConfig = filepath.Join(root, "configs", "parley.yaml")
		}
		if cfg.ParleydConfig, err = filepath.Abs(cfg.ParleydConfig); err != nil {
			return rep, err
		}
		rep.Config.ParleydConfig = cfg.ParleydConfig
		if cfg.Parleyd == "" {
			dir, err := os.MkdirTemp("", "replaybench-bin-*")
			if err != nil {
				return rep, err
			}
			defer os.RemoveAll(dir)
			progress("building parleyd (go build ./cmd/parleyd)")
			if cfg.Parleyd, err = buildParleyd(ctx, root, dir); err != nil {
				return rep, err
			}
		}
	}

	soft, _ := procstat.RaiseNofile()
	rep.Env.NoFile = soft
	if need := uint64(slices.Max(cfg.Steps) + 256); soft < need {
		return rep, fmt.Errorf("RLIMIT_NOFILE soft limit %d is below the %d descriptors the largest step needs", soft, need)
	}
	progress("%d CPUs, GOMAXPROCS=%d, %s; %s (%q, %s, %d audio events) replayed %d times per session slot",
		rep.Env.CPUs, rep.Env.GOMAXPROCS, rep.Env.GoVersion, cfg.Recording, rec.Header.Name, recDur, rep.Recording.Audio, rep.PerSlot)

	for _, n := range cfg.Steps {
		if err := ctx.Err(); err != nil {
			rep.finish(progress)
			return rep, err
		}
		if cfg.QuietWait > 0 {
			if other, ok := waitQuiet(ctx, 0); !ok && ctx.Err() == nil {
				progress("%d sessions: other processes use %.0f%% of a core; waiting up to %s for quiet", n, other, cfg.QuietWait)
				if other, ok = waitQuiet(ctx, cfg.QuietWait); !ok && ctx.Err() == nil {
					progress("%d sessions: other processes still use %.0f%% of a core; measuring anyway", n, other)
				}
			}
		}
		var st *Step
		for attempt := 0; attempt <= cfg.NoisyRetries; attempt++ {
			if attempt > 0 {
				progress("%d sessions: other processes used %.0f%% of a core during the window; measuring again (%d/%d)",
					n, 100*st.OtherCores, attempt, cfg.NoisyRetries)
				if cfg.QuietWait > 0 {
					waitQuiet(ctx, cfg.QuietWait)
				}
			}
			s, err := runStep(ctx, &cfg, rec, recDur, rep.PerSlot, n, logw, progress)
			if err != nil {
				if s != nil {
					rep.Steps = append(rep.Steps, s)
				}
				rep.finish(progress)
				return rep, err
			}
			if st == nil || s.OtherCores < st.OtherCores {
				st = s // keep the quietest attempt
			}
			st.Attempts = attempt + 1
			if s.OtherCores*100 <= noisyPercent || ctx.Err() != nil {
				break
			}
		}
		if err := ctx.Err(); err != nil {
			rep.finish(progress) // interrupted: the step is not a measurement
			return rep, err
		}
		rep.Steps = append(rep.Steps, st)
		progress("%d sessions: %d played, %d failed; turn_to_audio p50 %s p99 %s ms; real time p99 %.3f; child %.2f cores, clients %.2f cores: %s",
			n, st.Played, st.Failed, msStr(st.TurnToAudio.P50), msStr(st.TurnToAudio.P99), st.RealTime.P99, st.ChildCores, st.ClientCores, verdict(st))
		if !st.OK && rep.Knee == 0 {
			rep.Knee = n
			if !cfg.KeepGoing {
				break
			}
		}
		if st.OK && rep.Knee == 0 {
			rep.Best = n
		}
	}
	rep.finish(progress)
	return rep, nil
}

// finish judges the run and reads the profiles of the knee (or of the
// last step).
func (rep *Report) finish(progress func(string, ...any)) {
	rep.TargetMet = rep.Best >= targetSessions
	var st *Step
	for _, s := range rep.Steps {
		if s.Sessions == rep.Knee {
			st = s
		}
	}
	if st == nil && len(rep.Steps) > 0 {
		st = rep.Steps[len(rep.Steps)-1]
	}
	if st == nil {
		return
	}
	rep.Profiled = st.Sessions
	for _, p := range []struct {
		raw  []byte
		dst  **ProfileTop
		file string
	}{{st.childProf, &rep.ChildProfile, rep.Config.CPUProfile}, {st.clientProf, &rep.ClientProfile, rep.Config.CPUProfile + ".client"}} {
		if len(p.raw) == 0 {
			continue
		}
		top, err := parseProfile(p.raw, rep.Config.Top)
		if err != nil {
			progress("profile: %v", err)
			continue
		}
		if rep.Config.CPUProfile != "" {
			if err := os.WriteFile(p.file, p.raw, 0o644); err != nil {
				progress("profile: %v", err)
			} else {
				top.File = p.file
			}
		}
		*p.dst = top
	}
}

type sample struct {
	t                 time.Time
	child, self       time.Duration
	busy, irq         time.Duration
	rss               uint64
	childErr, rssErrs error
}

func takeSample(pid int) sample {
	s := sample{t: time.Now()}
	s.child, s.childErr = procstat.ProcCPU(pid)
	s.rss, s.rssErrs = procstat.StatusKB(pid, "VmRSS:")
	s.self = procstat.SelfCPU()
	s.busy, s.irq = procstat.MachineTimes()
	return s
}

// runStep runs one step against a fresh gateway child.
func runStep(ctx context.Context, cfg *Config, rec *recording.Recording, recDur time.Duration, perSlot, n int, logw io.Writer, progress func(string, ...any)) (*Step, error) {
	c, err := startServer(ctx, cfg, logw)
	if err != nil {
		return nil, err
	}
	defer c.stop()
	st := &Step{Sessions: n}
	// Warm up: one session at 8x speed (turn detection counts samples,
	// not wall time) makes the child do its one-time work (the sentiment
	// model, the tenant's data key, SQLite's statements) before the step.
	// parleyd creates recognizers on demand (up to one per core): warm up
	// as many as the step will use at once.
	warmN := 1
	if c.offline {
		warmN = min(n, runtime.NumCPU())
	}
	warm := (&replay.Load{Recordings: []*recording.Recording{rec}, Concurrency: warmN, Count: warmN,
		Session: replay.Options{URL: c.base(), Key: c.key(), Agent: c.agent(), Timeout: cfg.Timeout, Speed: 8, Transport: cfg.Transport}}).Run(ctx)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if warm.Failed > 0 || warm.Sessions != warmN {
		return nil, fmt.Errorf("warm-up: %d of %d sessions failed: %v", warm.Failed, warm.Sessions, warm.Samples)
	}
	if _, err := c.waitIdle(ctx, 5*time.Second); err != nil {
		return nil, err
	}
	if st.ChildRSSIdle, err = procstat.StatusKB(c.pid, "VmRSS:"); err != nil {
		return nil, err
	}
	startStats, err := c.stats(ctx)
	if err != nil {
		return nil, err
	}
	progress("%d sessions: %s %d at %s (RSS %.1f MiB); %d sessions of %s, ramped over %s",
		n, c.name(), c.pid, c.addr, mib(st.ChildRSSIdle), n*perSlot, recDur.Round(10*time.Millisecond), cfg.Ramp)

	// Resources, sampled through the step.
	var (
		samples []sample
		bg      sync.WaitGroup
	)
	sctx, stopSampling := context.WithCancel(ctx)
	defer stopSampling()
	bg.Add(1)
	go func() {
		defer bg.Done()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			samples = append(samples, takeSample(c.pid))
			select {
			case <-tick.C:
			case <-sctx.Done():
				samples = append(samples, takeSample(c.pid))
				return
			}
		}
	}()

	// CPU profiles of the child and of the clients while all sessions
	// run, and the child's runtime figures half-way through.
	begin := time.Now()
	profFrom := begin.Add(cfg.Ramp + 500*time.Millisecond)
	profSecs := max(1, int((time.Duration(perSlot)*recDur-cfg.Ramp-time.Second)/time.Second))
	var mid ChildStats
	bg.Add(3)
	go func() {
		defer bg.Done()
		if c.offline || !sleepCtx(sctx, time.Until(profFrom)) {
			return // parleyd serves no pprof
		}
		b, err := c.profile(ctx, profSecs)
		if err != nil {
			progress("%d sessions: child CPU profile: %v", n, err)
			return
		}
		st.childProf = b
	}()
	go func() {
		defer bg.Done()
		if !sleepCtx(sctx, time.Until(profFrom)) {
			return
		}
		var buf bytes.Buffer
		if err := pprof.StartCPUProfile(&buf); err != nil {
			progress("%d sessions: client CPU profile: %v", n, err)
			return
		}
		sleepCtx(ctx, time.Duration(profSecs)*time.Second)
		pprof.StopCPUProfile()
		st.clientProf = buf.Bytes()
	}()
	go func() {
		defer bg.Done()
		if !sleepCtx(sctx, time.Until(profFrom.Add(time.Duration(profSecs)*time.Second/2))) {
			return
		}
		if s, err := c.stats(ctx); err == nil {
			mid = s
		}
	}()

	load := replay.Load{
		Recordings:  []*recording.Recording{rec},
		Session:     replay.Options{URL: c.base(), Key: c.key(), Agent: c.agent(), Timeout: cfg.Timeout, Transport: cfg.Transport},
		Concurrency: n,
		Ramp:        cfg.Ramp,
		Count:       n * perSlot,
		Seed:        cfg.Seed,
	}
	r := load.Run(ctx)
	end := time.Now()
	endStats, statsErr := c.stats(ctx)
	stopSampling()
	bg.Wait()
	if err := c.alive(); err != nil {
		return st, err
	}
	if statsErr != nil {
		return st, statsErr
	}

	st.Played, st.Failed, st.Peak, st.Errors, st.ErrorSamples, st.Elapsed = r.Sessions, r.Failed, r.Peak, r.Errors, r.Samples, r.Elapsed
	stats := r.Stats()
	st.TurnToAudio, st.Connect = stats[replay.MTurnToAudio], stats[replay.MConnect]
	st.ReplyFirstAudio, st.ReplyDone = stats[replay.MReplyFirstAudio], stats[replay.MReplyDone]
	st.Gateway = endStats.VoiceGateway.Sub(startStats.VoiceGateway)
	st.SlowClients = endStats.SlowClients - startStats.SlowClients
	for code, v := range endStats.Errors {
		if v -= startStats.Errors[code]; v > 0 {
			if st.GatewayErrors == nil {
				st.GatewayErrors = map[string]float64{}
			}
			st.GatewayErrors[code] = v
		}
	}
	st.Goroutines, st.LiveSessions = mid.Goroutines, mid.Sessions

	// Real time: each whole session against the recording.
	var rt []float64
	for _, res := range r.Results {
		if cut(res) || res.Connect <= 0 {
			continue
		}
		rt = append(rt, float64(res.Duration-res.Connect)/float64(recDur))
	}
	st.RealTime = ratios(rt)
	if h := r.Hist[replay.MReplyFirstAudio]; h != nil && h.TotalCount() > 0 {
		us := func(v int64) time.Duration { return time.Duration(v-h.Min()) * time.Microsecond }
		st.ListenLag = LagStat{Count: h.TotalCount(), P50: us(h.ValueAtPercentile(50)), P99: us(h.ValueAtPercentile(99)), Max: us(h.Max())}
	}
	st.RealTimeHeld = st.RealTime.Count > 0 && st.RealTime.P99 <= 1+cfg.RealTimeSlack &&
		st.ListenLag.Count > 0 && st.ListenLag.P99 <= cfg.MaxLag

	// Resources over the window in which all the step's sessions ran.
	from, to := fullWindow(r.Results, n)
	if from.IsZero() || to.Sub(from) < time.Second {
		from, to = begin, end // too short or none: the whole step
	}
	a, b := -1, -1
	for i, s := range samples {
		if a < 0 && !s.t.Before(from) {
			a = i
		}
		if !s.t.After(to) {
			b = i
		}
	}
	if a < 0 || b <= a {
		a, b = 0, len(samples)-1
	}
	if b > a {
		sa, sb := samples[a], samples[b]
		dt := sb.t.Sub(sa.t).Seconds()
		st.Window = sb.t.Sub(sa.t)
		st.ChildCores = (sb.child - sa.child).Seconds() / dt
		st.ClientCores = (sb.self - sa.self).Seconds() / dt
		st.IRQCores = (sb.irq - sa.irq).Seconds() / dt
		st.OtherCores = max(0, (sb.busy-sa.busy).Seconds()/dt-st.ChildCores-st.ClientCores)
		cpus := float64(runtime.NumCPU())
		st.Busy = ((sb.busy + sb.irq) - (sa.busy + sa.irq)).Seconds() / dt / cpus
		for i := a; i <= b; i++ {
			for j := i + 1; j <= b; j++ {
				if d := samples[j].t.Sub(samples[i].t); d >= time.Second {
					busy := ((samples[j].busy + samples[j].irq) - (samples[i].busy + samples[i].irq)).Seconds() / d.Seconds() / cpus
					st.PeakBusy = max(st.PeakBusy, busy)
					break
				}
			}
		}
	}
	for _, s := range samples {
		st.ChildRSSPeak = max(st.ChildRSSPeak, s.rss)
	}
	if secs := end.Sub(begin).Seconds(); secs > 0 {
		st.ChildGCPerSec = float64(endStats.NumGC-startStats.NumGC) / secs
		st.ChildAllocRate = float64(endStats.TotalAlloc-startStats.TotalAlloc) / secs
	}

	st.judge(cfg)
	return st, nil
}

// cut reports whether the run ended the session part-way.
func cut(res *replay.Result) bool {
	for _, f := range res.Failures {
		if f.Kind == replay.KindCancelled {
			return true
		}
	}
	return false
}

// fullWindow is the span in which at least 90% of n sessions ran at once,
// from when the most ran (all n, after the ramp) to the last moment 90%
// still did.
func fullWindow(results []*replay.Result, n int) (from, to time.Time) {
	type edge struct {
		t time.Time
		d int
	}
	var es []edge
	for _, r := range results {
		es = append(es, edge{r.Start, 1}, edge{r.Start.Add(r.Duration), -1})
	}
	slices.SortFunc(es, func(a, b edge) int { return a.t.Compare(b.t) })
	peak, cur := 0, 0
	for _, e := range es {
		cur += e.d
		peak = max(peak, cur)
	}
	want := min(n, peak)
	floor := int(math.Ceil(0.9 * float64(want)))
	cur = 0
	for _, e := range es {
		prev := cur
		cur += e.d
		if from.IsZero() && cur >= want {
			from = e.t
		}
		if !from.IsZero() && prev >= floor && cur < floor {
			to = e.t // the last such drop wins
		}
	}
	return from, to
}

func ratios(v []float64) Ratios {
	if len(v) == 0 {
		return Ratios{}
	}
	slices.Sort(v)
	at := func(p float64) float64 { return v[min(len(v)-1, int(math.Ceil(p*float64(len(v))))-1)] }
	return Ratios{Count: len(v), P50: at(0.5), P99: at(0.99), Max: v[len(v)-1]}
}

// judge checks the step against the three criteria.
func (s *Step) judge(cfg *Config) {
	s.Reasons = nil
	switch {
	case s.TurnToAudio.Count == 0:
		s.Reasons = append(s.Reasons, "no turn_to_audio measured")
	case time.Duration(s.TurnToAudio.P99)*time.Microsecond >= cfg.P99Limit:
		s.Reasons = append(s.Reasons, fmt.Sprintf("p99 turn_to_audio %s ms >= %s", msStr(s.TurnToAudio.P99), cfg.P99Limit))
	}
	if s.Played == 0 {
		s.Reasons = append(s.Reasons, "no session played")
	} else if share := float64(s.Failed) / float64(s.Played); share > cfg.MaxErrors {
		s.Reasons = append(s.Reasons, fmt.Sprintf("%.1f%% of sessions failed (> %.0f%%)", 100*share, 100*cfg.MaxErrors))
	}
	if !s.RealTimeHeld {
		s.Reasons = append(s.Reasons, fmt.Sprintf("real time lost (p99 session %.3fx its recording, p99 listening lag %s)",
			s.RealTime.P99, s.ListenLag.P99.Round(time.Millisecond)))
	}
	s.OK = len(s.Reasons) == 0
}

// waitQuiet waits up to limit for other processes to use less than
// noisyPercent of a core over half a second; it returns their last share.
func waitQuiet(ctx context.Context, limit time.Duration) (float64, bool) {
	const step = 500 * time.Millisecond
	other := 0.0
	for i := 0; i <= int(limit/step); i++ {
		own := procstat.SelfCPU()
		busy, _ := procstat.MachineTimes()
		if !sleepCtx(ctx, step) {
			return other, false
		}
		busy2, _ := procstat.MachineTimes()
		other = max(0, 100*((busy2-busy)-(procstat.SelfCPU()-own)).Seconds()/step.Seconds())
		if other < noisyPercent {
			return other, true
		}
	}
	return other, false
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

func msStr(us int64) string { return fmt.Sprintf("%.2f", float64(us)/1000) }
