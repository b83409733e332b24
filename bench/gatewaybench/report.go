package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Stats summarises a set of durations (nearest-rank percentiles over the
// sorted samples).
type Stats struct {
	Count int
	P50   time.Duration
	P90   time.Duration
	P99   time.Duration
	Max   time.Duration
	Mean  time.Duration
}

func statsOf(ds []time.Duration) Stats {
	if len(ds) == 0 {
		return Stats{}
	}
	slices.Sort(ds)
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	pct := func(q float64) time.Duration {
		i := int(math.Ceil(q*float64(len(ds)))) - 1
		return ds[min(max(i, 0), len(ds)-1)]
	}
	return Stats{Count: len(ds), P50: pct(0.50), P90: pct(0.90), P99: pct(0.99), Max: ds[len(ds)-1],
		Mean: sum / time.Duration(len(ds))}
}

type statsJSON struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50_us"`
	P90   float64 `json:"p90_us"`
	P99   float64 `json:"p99_us"`
	Max   float64 `json:"max_us"`
	Mean  float64 `json:"mean_us"`
}

func us(d time.Duration) float64 { return math.Round(float64(d)/1e1) / 1e2 }

func (s Stats) MarshalJSON() ([]byte, error) {
	return json.Marshal(statsJSON{s.Count, us(s.P50), us(s.P90), us(s.P99), us(s.Max), us(s.Mean)})
}

func (s *Stats) UnmarshalJSON(b []byte) error {
	var j statsJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	d := func(v float64) time.Duration { return time.Duration(v * 1e3) }
	*s = Stats{j.Count, d(j.P50), d(j.P90), d(j.P99), d(j.Max), d(j.Mean)}
	return nil
}

// LevelPair is one concurrency level: echo and gateway under the same load.
type LevelPair struct {
	Sessions int       `json:"sessions"`
	Echo     *LevelRun `json:"echo"`
	Gateway  *LevelRun `json:"gateway"`
	RatioP99 float64   `json:"ratio_p99_gateway_over_echo"`
}

// Target is one pass/fail criterion.
type Target struct {
	Name  string  `json:"name"`
	Limit float64 `json:"limit"`
	Got   float64 `json:"got"`
	Unit  string  `json:"unit"`
	Met   bool    `json:"met"`
	Note  string  `json:"note,omitempty"`
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

// Report is the whole result of a run.
type Report struct {
	Started time.Time    `json:"started"`
	Elapsed float64      `json:"elapsed_seconds"`
	Env     Env          `json:"env"`
	Config  Config       `json:"config"`
	Levels  []LevelPair  `json:"latency"`
	Idle    []IdleResult `json:"idle_memory"`
	Targets []Target     `json:"targets"`
}

func (r *Report) idle(kind string) *IdleResult {
	for i := range r.Idle {
		if r.Idle[i].Server == kind {
			return &r.Idle[i]
		}
	}
	return nil
}

// evaluate fills Targets: the p99 ratio at the largest level (the target
// is stated at 1,000 sessions) and the idle gateway session's RSS.
func (r *Report) evaluate() {
	r.Targets = nil
	if len(r.Levels) > 0 {
		top := r.Levels[0]
		for _, l := range r.Levels {
			if l.Sessions > top.Sessions {
				top = l
			}
		}
		if top.Gateway == nil {
			top.Gateway = &LevelRun{}
		}
		t := Target{Name: fmt.Sprintf("p99(gateway)/p99(echo) at %d sessions", top.Sessions), Limit: targetRatio,
			Got: top.RatioP99, Unit: "x"}
		t.Met = top.RatioP99 > 0 && top.RatioP99 <= targetRatio && top.Gateway.Errors == 0
		if top.Sessions != targetRatioSessions {
			t.Note = fmt.Sprintf("target is stated at %d sessions", targetRatioSessions)
		}
		if top.Gateway.Errors > 0 {
			t.Note = strings.TrimPrefix(t.Note+"; gateway had errors", "; ")
		}
		r.Targets = append(r.Targets, t)
	}
	if g := r.idle("gateway"); g != nil && g.Connections > 0 {
		t := Target{Name: fmt.Sprintf("memory per idle gateway session at %d connections (RSS)", g.Connections),
			Limit: targetIdleKiB, Got: g.RSSKiB, Unit: "KiB"}
		t.Met = g.RSSKiB <= targetIdleKiB && g.DialErrors == 0
		if g.Connections != targetIdleSessions {
			t.Note = fmt.Sprintf("target is stated at %d connections", targetIdleSessions)
		}
		if g.DialErrors > 0 {
			t.Note = strings.TrimPrefix(t.Note+"; some connections failed", "; ")
		}
		r.Targets = append(r.Targets, t)
	}
}

// noisyPercent is the CPU (% of one core) other processes may use during a
// window before the report warns that the machine was not quiet.
const noisyPercent = 10

func fmtDur(d time.Duration) string {
	if d == 0 {
		return "-"
	}
	return fmt.Sprintf("%.3fms", float64(d)/1e6)
}

func mib(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// Print writes the human-readable report.
func (r *Report) Print(w io.Writer) {
	c := r.Config
	fmt.Fprintf(w, "Parley gateway benchmark: zero-latency agent, store=%s, %s %s/%s, %d CPUs, %.0fs\n",
		c.Store, r.Env.GoVersion, r.Env.GOOS, r.Env.GOARCH, r.Env.NumCPU, r.Elapsed)
	if len(r.Levels) > 0 {
		fmt.Fprintf(w, "\nLatency per text turn (ramp-up %s, warm-up %s discarded, %s measured per level, %s-%s random pause between a session's turns)\n",
			c.Ramp, c.Warmup, c.Duration, c.ThinkMin, c.ThinkMax)
		fmt.Fprintf(w, "  gateway: response.create written -> first response.output_text.delta (gateway-added: the agent takes no time)\n")
		fmt.Fprintf(w, "           done = -> response.done; srv = the gateway's own metadata.parley.gateway_ms\n")
		fmt.Fprintf(w, "  echo:    message (%d B) written -> echo received, raw coder/websocket server\n\n", len(echoPayload))
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "sessions\tserver\tturns\tturns/s\terrors\tp50\tp90\tp99\tmax\tdone p50\tdone p99\tsrv p50\tsrv p99\tp99 ratio\t")
		for _, l := range r.Levels {
			for _, lr := range []*LevelRun{l.Echo, l.Gateway} {
				if lr == nil {
					continue
				}
				ratio := ""
				if lr == l.Gateway && l.RatioP99 > 0 {
					ratio = fmt.Sprintf("%.2f", l.RatioP99)
				}
				fmt.Fprintf(tw, "%d\t%s\t%d\t%.0f\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n",
					l.Sessions, lr.Server, lr.Turns, lr.RatePerSec, lr.Errors,
					fmtDur(lr.First.P50), fmtDur(lr.First.P90), fmtDur(lr.First.P99), fmtDur(lr.First.Max),
					fmtDur(lr.Done.P50), fmtDur(lr.Done.P99), fmtDur(lr.ServerGateway.P50), fmtDur(lr.ServerGateway.P99), ratio)
			}
		}
		tw.Flush()
		fmt.Fprintf(w, "\nCost per measured turn over the same windows (server figures from the server process: CPU in %% of one core from getrusage, write/read syscalls from /proc/PID/io, allocations and GCs from runtime.MemStats; other = the rest of the machine, /proc/stat)\n\n")
		noisy := false
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "sessions\tserver\tserver CPU\tCPU/turn\twrites/turn\treads/turn\talloc/turn\tallocs/turn\tGC/s\tclient CPU\tclient CPU/turn\tother CPU\t")
		for _, l := range r.Levels {
			for _, lr := range []*LevelRun{l.Echo, l.Gateway} {
				if lr == nil {
					continue
				}
				fmt.Fprintf(tw, "%d\t%s\t%.1f%%\t%.0fµs\t%.1f\t%.1f\t%.1f KiB\t%.0f\t%.1f\t%.1f%%\t%.0fµs\t%.0f%%\t\n", l.Sessions, lr.Server,
					lr.ServerCPUPercent, lr.ServerCPUPerTurnUS, lr.ServerWritesPerTurn, lr.ServerReadsPerTurn,
					lr.ServerAllocPerTurn/1024, lr.ServerMallocsPerTurn, lr.ServerGCPerSec,
					lr.ClientCPUPercent, lr.ClientCPUPerTurnUS, lr.OtherCPUPercent)
				if lr.OtherCPUPercent > noisyPercent {
					noisy = true
				}
			}
		}
		tw.Flush()
		fmt.Fprintf(w, "  (per-turn figures include the processes' background CPU, which dominates at low turn rates)\n")
		if noisy {
			fmt.Fprintf(w, "  WARNING: other processes used more than %d%% of a core during a measurement window; latencies are noisy, rerun on a quiet machine\n", noisyPercent)
		}
		for _, l := range r.Levels {
			for _, lr := range []*LevelRun{l.Echo, l.Gateway} {
				if lr != nil && lr.Attempts > 1 {
					fmt.Fprintf(w, "  note: %s at %d sessions was measured %d times because other processes used the CPU; the quietest window is shown\n", lr.Server, l.Sessions, lr.Attempts)
				}
				if lr != nil && lr.Connected < lr.Sessions {
					fmt.Fprintf(w, "  note: %s at %d sessions: only %d connected\n", lr.Server, l.Sessions, lr.Connected)
				}
				if lr != nil {
					for _, e := range lr.ErrorSamples {
						fmt.Fprintf(w, "  error: %s at %d sessions: %s\n", lr.Server, l.Sessions, e)
					}
				}
			}
		}
	}
	if len(r.Idle) > 0 {
		used := ""
		if c.IdleTurns > 0 {
			used = fmt.Sprintf(", each after %d turn(s)", c.IdleTurns)
		}
		fmt.Fprintf(w, "\nMemory per idle session (%d connections%s, fresh server process; after two GCs; (after-before)/connections)\n\n", c.Idle, used)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "server\tconnections\tdial errors\tRSS before\tRSS after\tRSS/session\theap+stack/session\theap/session\tstack/session\tgoroutines/session\t")
		for _, i := range r.Idle {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%.1f KiB\t%.1f KiB\t%.1f KiB\t%.1f KiB\t%.2f\t\n",
				i.Server, i.Connections, i.DialErrors, mib(i.Before.RSS), mib(i.After.RSS),
				i.RSSKiB, i.HeapStackKiB, i.HeapKiB, i.StackKiB, i.GoroutinesPer)
		}
		tw.Flush()
		for _, i := range r.Idle {
			for _, e := range i.ErrorSample {
				fmt.Fprintf(w, "  error: %s: %s\n", i.Server, e)
			}
		}
	}
	if len(r.Targets) > 0 {
		fmt.Fprintf(w, "\nTargets\n")
		for _, t := range r.Targets {
			verdict := "MET    "
			if !t.Met {
				verdict = "NOT MET"
			}
			got := fmt.Sprintf("%.2f", t.Got)
			if t.Unit == "KiB" {
				got = fmt.Sprintf("%.1f KiB", t.Got)
				fmt.Fprintf(w, "  %s  %s <= %.0f KiB: %s", verdict, t.Name, t.Limit, got)
			} else {
				fmt.Fprintf(w, "  %s  %s <= %.2f: %s", verdict, t.Name, t.Limit, got)
			}
			if t.Note != "" {
				fmt.Fprintf(w, " (%s)", t.Note)
			}
			fmt.Fprintln(w)
		}
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
