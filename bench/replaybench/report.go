package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"time"

	"parley/replay"
)

func verdict(s *Step) string {
	if s.OK {
		return "ok"
	}
	return strings.Join(s.Reasons, "; ")
}

// Print writes the human report.
func (rep *Report) Print(w io.Writer) {
	cfg := rep.Config
	ri := rep.Recording
	scenario, server := "issue 8's standard scenario", "the gateway child"
	if cfg.Engines == enginesOffline {
		scenario, server = "issue 8's second scenario, offline engines", "parleyd (no pprof: the clients' profile only)"
	}
	fmt.Fprintf(w, "Replay load (%s): %s (%q, %s, %.2f s at real time, %d audio events) over %s, replayed %d times back to back per session slot, starts ramped over %s.\n",
		scenario, ri.Path, ri.Name, ri.Format, ri.Duration.Seconds(), ri.Audio, cfg.Transport, rep.PerSlot, cfg.Ramp)
	if cfg.Engines == enginesOffline {
		fmt.Fprintf(w, "The real parleyd in a child process, fresh per step, with %s: real SQLite storage, sealer, the offline engines (pocketsphinx recognizer, espeak-ng synthesizer, the knowledge-base agent %q); \"child\" below is parleyd.\n", cfg.ParleydConfig, parleydAgent)
	} else {
		fmt.Fprintf(w, "Gateway in a child process, fresh per step: real SQLite storage, sealer, zero-latency engines (fixed transcript, fixed answer, 10 ms of tone per character, all at once).\n")
	}
	fmt.Fprintf(w, "The replay clients run in this process on the same %d CPUs (GOMAXPROCS %d, %s).\n", rep.Env.CPUs, rep.Env.GOMAXPROCS, rep.Env.GoVersion)
	if cfg.Engines == enginesOffline {
		fmt.Fprintf(w, "turn_to_audio: speech_stopped to the first response.output_audio.delta, client-measured (recognition, the agent, synthesis and the gateway). Failures include the recording's expectations (transcript contains \"parley\", reply contains \"Parley\").\n")
	} else {
		fmt.Fprintf(w, "turn_to_audio: speech_stopped to the first response.output_audio.delta, client-measured (with zero-latency engines, all of it the gateway's and the clients' scheduling).\n")
	}
	fmt.Fprintf(w, "gateway's own: parley_voice_gateway_added_seconds (metadata.parley.voice.gateway_ms): mean exact, p50/p99 as histogram bucket bounds.\n")
	fmt.Fprintf(w, "real time: each session's time from session.created to its close, over the recording's length (held: p99 <= %.2f);\n", 1+cfg.RealTimeSlack)
	fmt.Fprintf(w, "  lag: reply_first_audio (start of the spoken turn to the answer's first audio) less the step's minimum (held: p99 <= %s).\n\n", cfg.MaxLag)

	fmt.Fprintf(w, "| sessions | played | failed | errors by kind | turn_to_audio p50 / p90 / p99 / max ms | gateway's own mean / p50 / p99 ms | connect p50 / p90 / p99 / max ms | real time p50 / p99 / max | lag p50 / p99 ms | verdict |\n")
	fmt.Fprintf(w, "|---|---|---|---|---|---|---|---|---|---|\n")
	for _, s := range rep.Steps {
		fmt.Fprintf(w, "| %d | %d | %d | %s | %s | %s | %s | %.3f / %.3f / %.3f | %.0f / %.0f | %s |\n",
			s.Sessions, s.Played, s.Failed, kinds(s.Errors), stat4(s.TurnToAudio), gwOwn(s.Gateway, s.ReplyDone.Count), stat4(s.Connect),
			s.RealTime.P50, s.RealTime.P99, s.RealTime.Max, msf(s.ListenLag.P50), msf(s.ListenLag.P99), verdict(s))
	}
	fmt.Fprintf(w, "\nResources while all of a step's sessions ran (CPU from /proc/PID/stat and getrusage, in cores; RSS from /proc/PID/status):\n\n")
	fmt.Fprintf(w, "| sessions | window | child cores | client cores | irq / other cores | machine busy, peak 1 s | child RSS idle / peak | child CPU per session | client CPU per session | child RSS per session | goroutines per session | child GC/s, alloc |\n")
	fmt.Fprintf(w, "|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, s := range rep.Steps {
		gps := "-"
		if s.LiveSessions > 0 {
			gps = fmt.Sprintf("%.2f", float64(s.Goroutines)/float64(s.LiveSessions))
		}
		fmt.Fprintf(w, "| %d | %.1f s | %.2f | %.2f | %.2f / %.2f | %.0f%%, %.0f%% | %.1f / %.1f MiB | %.2f ms/s | %.2f ms/s | %.1f KiB | %s | %.1f, %.1f MB/s |\n",
			s.Sessions, s.Window.Seconds(), s.ChildCores, s.ClientCores, s.IRQCores, s.OtherCores, 100*s.Busy, 100*s.PeakBusy, mib(s.ChildRSSIdle), mib(s.ChildRSSPeak),
			s.ChildMSPerSession(), s.ClientMSPerSession(), s.RSSPerSession()/1024, gps, s.ChildGCPerSec, s.ChildAllocRate/1e6)
	}
	fmt.Fprintln(w)
	for _, s := range rep.Steps {
		if s.OtherCores*100 > noisyPercent {
			fmt.Fprintf(w, "Note: at %d sessions other processes used %.0f%% of a core during the window; the step may read worse than a quiet machine would give.\n", s.Sessions, s.OtherCores*100)
		}
		if len(s.ErrorSamples) > 0 {
			fmt.Fprintf(w, "Failures at %d sessions:\n", s.Sessions)
			for _, k := range sortedKeys(s.ErrorSamples) {
				for _, m := range s.ErrorSamples[k] {
					fmt.Fprintf(w, "  %s: %s\n", k, m)
				}
			}
		}
		if len(s.GatewayErrors) > 0 || s.SlowClients > 0 {
			fmt.Fprintf(w, "Gateway at %d sessions: error events %v, slow clients closed %.0f\n", s.Sessions, s.GatewayErrors, s.SlowClients)
		}
	}

	switch {
	case rep.Knee > 0:
		var ks *Step
		for _, s := range rep.Steps {
			if s.Sessions == rep.Knee {
				ks = s
			}
		}
		fmt.Fprintf(w, "Knee: %d sessions (%s).\n", rep.Knee, verdict(ks))
	case len(rep.Steps) > 0:
		fmt.Fprintf(w, "Knee: not reached (every step met all three criteria).\n")
	}
	if rep.Best > 0 {
		fmt.Fprintf(w, "Largest step meeting all three (p99 turn_to_audio < %s, failures <= %.0f%%, real time held): %d sessions.\n", cfg.P99Limit, cfg.MaxErrors*100, rep.Best)
	} else if len(rep.Steps) > 0 {
		fmt.Fprintf(w, "No step met all three (p99 turn_to_audio < %s, failures <= %.0f%%, real time held).\n", cfg.P99Limit, cfg.MaxErrors*100)
	}
	if cfg.Engines == enginesOffline {
		rep.printPerCore(w)
	} else {
		rep.printTarget(w)
	}

	if rep.ChildProfile != nil || rep.ClientProfile != nil {
		var ps *Step
		for _, s := range rep.Steps {
			if s.Sessions == rep.Profiled {
				ps = s
			}
		}
		fmt.Fprintln(w)
		if ps != nil {
			fmt.Fprintf(w, "At %d sessions %s used %.2f cores and the replay clients %.2f of the machine's %d (interrupts %.2f, other processes %.2f): the machine was %.0f%% busy on average, %.0f%% in its busiest second.\n",
				ps.Sessions, server, ps.ChildCores, ps.ClientCores, rep.Env.CPUs, ps.IRQCores, ps.OtherCores, 100*ps.Busy, 100*ps.PeakBusy)
		}
		printProfile(w, fmt.Sprintf("gateway child at %d sessions", rep.Profiled), rep.ChildProfile)
		printProfile(w, fmt.Sprintf("replay clients at %d sessions", rep.Profiled), rep.ClientProfile)
	}
	if rep.Command != "" {
		fmt.Fprintf(w, "\nReproduce: %s\n", rep.Command)
	}
}

// costStep is the step whose cost per session projects the target: the
// largest that met all three criteria, else the first.
func (rep *Report) costStep() *Step {
	var best *Step
	for _, s := range rep.Steps {
		if s.Window > 0 && (best == nil || s.OK && s.Sessions > best.Sessions && (rep.Knee == 0 || s.Sessions < rep.Knee)) {
			best = s
		}
	}
	return best
}

func printProfile(w io.Writer, what string, p *ProfileTop) {
	if p == nil || p.Total == 0 {
		return
	}
	where := ""
	if p.File != "" {
		where = " (saved to " + p.File + ")"
	}
	fmt.Fprintf(w, "\nCPU profile of the %s%s: %.1f s of CPU over %.0f s (%.2f cores).\n", what, where, p.Total.Seconds(), p.Duration.Seconds(),
		p.Total.Seconds()/max(p.Duration.Seconds(), 1e-9))
	list := func(title string, fs []FuncTime) {
		fmt.Fprintf(w, "  %s\n", title)
		for _, f := range fs {
			fmt.Fprintf(w, "    %5.1f%%  %8.2fs  %s\n", 100*f.Time.Seconds()/p.Total.Seconds(), f.Time.Seconds(), f.Name)
		}
	}
	list("by kind of work (flat):", p.Kinds)
	list("top functions (flat):", p.Flat)
	list("top functions (cumulative):", p.Cum)
}

func stat4(s replay.Stat) string {
	if s.Count == 0 {
		return "-"
	}
	return fmt.Sprintf("%s / %s / %s / %s", msStr(s.P50), msStr(s.P90), msStr(s.P99), msStr(s.Max))
}

func msf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// gwOwn is the gateway's own figure and how many of the answers it covers.
func gwOwn(h Histogram, turns int64) string {
	if h.Count == 0 {
		return fmt.Sprintf("- (0 of %d answers)", turns)
	}
	b := func(q float64) string {
		v := h.Quantile(q)
		if math.IsInf(v, 1) {
			return fmt.Sprintf("> %g", 1000*h.Bounds[len(h.Bounds)-1])
		}
		return fmt.Sprintf("≤ %g", 1000*v)
	}
	return fmt.Sprintf("%.2f / %s / %s (%d of %d answers)", 1000*h.Mean(), b(0.5), b(0.99), h.Count, turns)
}

func kinds(m map[string]int) string {
	if len(m) == 0 {
		return "-"
	}
	var parts []string
	for _, k := range sortedKeys(m) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func metOr(ok bool) string {
	if ok {
		return "MET"
	}
	return "NOT MET"
}

// WriteJSON writes the report as JSON.
func (rep *Report) WriteJSON(path string) error {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// printTarget judges the standard scenario against issue 8's target.
func (rep *Report) printTarget(w io.Writer) {
	fmt.Fprintf(w, "Target: %d listening voice sessions in real time with p99 gateway-added latency under 10 ms on this machine: %s.\n",
		targetSessions, metOr(rep.TargetMet))
	if s := rep.costStep(); s != nil && !rep.TargetMet {
		child, client := s.ChildMSPerSession(), s.ClientMSPerSession()
		fmt.Fprintf(w, "At the cost per session measured at %d sessions (gateway %.2f ms/s, replay clients %.2f ms/s of CPU), %d sessions would need %.2f cores for the gateway and %.2f for the clients: %.2f of the machine's %d.\n",
			s.Sessions, child, client, targetSessions, child*targetSessions/1000, client*targetSessions/1000, (child+client)*targetSessions/1000, rep.Env.CPUs)
	}
}

// printPerCore gives the offline scenario's capacity: sessions per core of
// parleyd (and of parleyd plus the clients) at the largest step that met
// every criterion, and what the knee step used.
func (rep *Report) printPerCore(w io.Writer) {
	for _, s := range rep.Steps {
		if s.Window <= 0 || s.ChildCores <= 0 || (s.Sessions != rep.Best && s.Sessions != rep.Knee) {
			continue
		}
		what := "largest step meeting all three"
		if s.Sessions == rep.Knee {
			what = "knee"
		}
		fmt.Fprintf(w, "Sessions per core (%s, %d sessions): parleyd used %.2f cores (%.1f ms/s per session): %.1f sessions per parleyd core; with the clients' %.2f cores, %.1f sessions per core of the machine's %d in use.\n",
			what, s.Sessions, s.ChildCores, s.ChildMSPerSession(), float64(s.Sessions)/s.ChildCores, s.ClientCores, float64(s.Sessions)/(s.ChildCores+s.ClientCores), rep.Env.CPUs)
	}
}
