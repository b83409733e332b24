// Command gatewaybench measures what the Parley gateway adds to a realtime
// text turn, and what an idle session costs in memory, against a raw
// coder/websocket echo server measured in the same run under the same load.
//
// Both servers run as child processes (this binary re-executed with the
// hidden -serve flag) so that their memory is measured apart from the load
// generator's. The gateway child uses a zero-latency fake agent, so any time
// between response.create and the first response.output_text.delta is the
// gateway's own.
//
//	go run ./bench/gatewaybench                 # full run (~2-3 minutes)
//	go run ./bench/gatewaybench -quick          # smoke run
//	go run ./bench/gatewaybench -json out.json -profile /tmp/prof
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// benchKey is the fixed API key the gateway child accepts (32 characters).
const benchKey = "sk_bench_0123456789abcdefghijklm"

// Target values the report checks.
const (
	targetRatioSessions = 1000
	targetRatio         = 1.5
	targetIdleSessions  = 10000
	targetIdleKiB       = 24.0
)

// Config is everything a harness run needs.
type Config struct {
	Levels    []int         `json:"levels"`
	Duration  time.Duration `json:"duration_ns"` // measured per level
	Ramp      time.Duration `json:"ramp_ns"`     // connections opened over this
	Warmup    time.Duration `json:"warmup_ns"`   // discarded after the ramp
	ThinkMin  time.Duration `json:"think_min_ns"`
	ThinkMax  time.Duration `json:"think_max_ns"`
	Idle      int           `json:"idle"`       // idle connections for the memory test (0: skip)
	IdleTurns int           `json:"idle_turns"` // turns each idle connection runs before going idle
	DialConc  int           `json:"dial_concurrency"`
	Store     string        `json:"store"` // sqlite or mem
	Seed      uint64        `json:"seed"`
	Quick     bool          `json:"quick"`
	Profile   string        `json:"profile_dir,omitempty"` // where to save pprof profiles of the gateway child
	TurnLimit time.Duration `json:"turn_timeout_ns"`
	QuietWait time.Duration `json:"quiet_wait_ns"` // per run, for other processes to go quiet
	// NoisyRetries is how many times a run whose window saw other
	// processes use the CPU is measured again (the quietest is kept).
	NoisyRetries int `json:"noisy_retries"`
}

func defaultConfig() Config {
	return Config{
		Levels:    []int{1, 100, 1000},
		Duration:  8 * time.Second,
		Ramp:      2 * time.Second,
		Warmup:    1 * time.Second,
		ThinkMin:  500 * time.Millisecond,
		ThinkMax:  1500 * time.Millisecond,
		Idle:      10000,
		DialConc:  200,
		Store:     "sqlite",
		Seed:      1,
		TurnLimit: 10 * time.Second,
		QuietWait: 10 * time.Second,

		NoisyRetries: 1,
	}
}

// quickConfig is the smoke-run configuration (-quick, and the test).
func quickConfig() Config {
	c := defaultConfig()
	c.Quick = true
	c.Levels = []int{1, 10}
	c.Duration = 1500 * time.Millisecond
	c.Ramp = 300 * time.Millisecond
	c.Warmup = 300 * time.Millisecond
	c.ThinkMin = 100 * time.Millisecond
	c.ThinkMax = 300 * time.Millisecond
	c.Idle = 500
	c.DialConc = 50
	c.QuietWait = 0
	c.NoisyRetries = 0
	return c
}

func main() {
	if isChild(os.Args[1:]) {
		os.Exit(childMain(os.Args[1:]))
	}
	os.Exit(harnessMain(os.Args[1:], os.Stdout, os.Stderr))
}

func harnessMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("gatewaybench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	def := defaultConfig()
	levels := fs.String("levels", "1,100,1000", "concurrent sessions per latency level, comma separated")
	duration := fs.Duration("duration", def.Duration, "measured time per level (after ramp-up and warm-up)")
	ramp := fs.Duration("ramp", def.Ramp, "connections of a level are opened gradually over this time")
	warmup := fs.Duration("warmup", def.Warmup, "time after the ramp-up whose turns are discarded")
	think := fs.String("think", "500ms-1500ms", "uniform random pause between a session's turns, MIN-MAX")
	idle := fs.Int("idle", def.Idle, "idle connections for the memory test (0 skips it)")
	idleTurnsF := fs.Int("idle-turns", 0, "turns each connection of the idle-memory test runs before it goes idle (0: none, sessions only get session.created)")
	dialConc := fs.Int("dial-concurrency", def.DialConc, "parallel dials in the idle-memory test")
	store := fs.String("store", def.Store, "gateway storage: sqlite (real, in a temp dir) or mem")
	seed := fs.Uint64("seed", def.Seed, "seed of the pacing RNG")
	jsonOut := fs.String("json", "", "also write the results as JSON to this file")
	profile := fs.String("profile", "", "save pprof profiles of the gateway child (CPU at the largest level, heap with idle sessions) in this directory")
	quietWait := fs.Duration("quiet-wait", def.QuietWait, "before each run, wait up to this long for other processes to stop using the CPU (0: don't)")
	noisyRetries := fs.Int("noisy-retries", def.NoisyRetries, "measure a run again, up to this many times, when other processes used the CPU during its window")
	quick := fs.Bool("quick", false, "smoke run: levels 1,10, 1.5s per level, 500 idle connections (other flags still apply when given)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: gatewaybench [flags]\n\nMeasures gateway-added latency and idle-session memory against a raw WebSocket echo server.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "gatewaybench: unexpected arguments %q\n", fs.Args())
		return 2
	}

	cfg := def
	if *quick {
		cfg = quickConfig()
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	if set["levels"] || !*quick {
		if cfg.Levels, err = parseLevels(*levels); err != nil {
			fmt.Fprintf(stderr, "gatewaybench: -levels: %v\n", err)
			return 2
		}
	}
	if set["think"] || !*quick {
		if cfg.ThinkMin, cfg.ThinkMax, err = parseRange(*think); err != nil {
			fmt.Fprintf(stderr, "gatewaybench: -think: %v\n", err)
			return 2
		}
	}
	pick := func(name string, dst *time.Duration, v time.Duration) {
		if set[name] || !*quick {
			*dst = v
		}
	}
	pick("duration", &cfg.Duration, *duration)
	pick("ramp", &cfg.Ramp, *ramp)
	pick("warmup", &cfg.Warmup, *warmup)
	if set["idle"] || !*quick {
		cfg.Idle = *idle
	}
	cfg.IdleTurns = *idleTurnsF
	if set["noisy-retries"] || !*quick {
		cfg.NoisyRetries = *noisyRetries
	}
	if set["quiet-wait"] || !*quick {
		cfg.QuietWait = *quietWait
	}
	if set["dial-concurrency"] || !*quick {
		cfg.DialConc = *dialConc
	}
	cfg.Store, cfg.Seed, cfg.Profile = *store, *seed, *profile
	if err := cfg.validate(); err != nil {
		fmt.Fprintf(stderr, "gatewaybench: %v\n", err)
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := Run(ctx, cfg, stderr)
	if rep != nil {
		rep.Print(stdout)
		if *jsonOut != "" {
			if werr := rep.WriteJSON(*jsonOut); werr != nil {
				fmt.Fprintf(stderr, "gatewaybench: %v\n", werr)
				return 1
			}
			fmt.Fprintf(stderr, "gatewaybench: results written to %s\n", *jsonOut)
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "gatewaybench: %v\n", err)
		return 1
	}
	return 0
}

func (c *Config) validate() error {
	switch {
	case len(c.Levels) == 0:
		return errors.New("no levels")
	case c.Duration <= 0 || c.Duration > 10*time.Minute:
		return errors.New("-duration must be in (0, 10m]")
	case c.Ramp < 0 || c.Ramp > time.Minute || c.Warmup < 0 || c.Warmup > time.Minute:
		return errors.New("-ramp and -warmup must be in [0, 1m]")
	case c.ThinkMin <= 0 || c.ThinkMax < c.ThinkMin || c.ThinkMax > time.Minute:
		return errors.New("-think must be MIN-MAX with 0 < MIN <= MAX <= 1m")
	case c.Idle < 0 || c.Idle > 18000:
		return errors.New("-idle must be in [0, 18000] (RLIMIT_NOFILE is 20000 per process)")
	case c.IdleTurns < 0 || c.IdleTurns > 100:
		return errors.New("-idle-turns must be in [0, 100]")
	case c.NoisyRetries < 0 || c.NoisyRetries > 5:
		return errors.New("-noisy-retries must be in [0, 5]")
	case c.QuietWait < 0 || c.QuietWait > 10*time.Minute:
		return errors.New("-quiet-wait must be in [0, 10m]")
	case c.DialConc < 1 || c.DialConc > 1000:
		return errors.New("-dial-concurrency must be in [1, 1000]")
	case c.Store != "sqlite" && c.Store != "mem":
		return fmt.Errorf("-store %q: want sqlite or mem", c.Store)
	}
	for _, n := range c.Levels {
		if n < 1 || n > 18000 {
			return fmt.Errorf("level %d: must be in [1, 18000]", n)
		}
	}
	return nil
}

func parseLevels(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, errors.New("empty")
	}
	return out, nil
}

func parseRange(s string) (lo, hi time.Duration, err error) {
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return 0, 0, fmt.Errorf("%q: want MIN-MAX, e.g. 500ms-1500ms", s)
	}
	if lo, err = time.ParseDuration(strings.TrimSpace(a)); err != nil {
		return 0, 0, err
	}
	if hi, err = time.ParseDuration(strings.TrimSpace(b)); err != nil {
		return 0, 0, err
	}
	return lo, hi, nil
}
