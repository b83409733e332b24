package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"parley/recording"
	"parley/replay"
)

// sloFlags collects -slo flags.
type sloFlags []replay.SLO

func (s *sloFlags) String() string { return "" }
func (s *sloFlags) Set(v string) error {
	slo, err := replay.ParseSLO(v)
	if err != nil {
		return err
	}
	*s = append(*s, slo)
	return nil
}

// errSLO is returned when the run finished but missed its thresholds (or,
// without thresholds, when a session failed): exit 1, report written.
var errSLO = errors.New("the run did not meet its thresholds")

func replayCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	gw := fs.String("url", envOr("PARLEY_URL", "http://localhost:8080"), "gateway base URL")
	key := fs.String("key", os.Getenv("PARLEY_API_KEY"), "API key (default $PARLEY_API_KEY)")
	agent := fs.String("agent", "", "agent to talk to (default: each recording's)")
	conc := fs.Int("c", 1, "sessions at once")
	ramp := fs.Duration("ramp", 0, "spread the sessions' starts over this long")
	count := fs.Int("n", 0, "stop after this many sessions (default: each recording once, unless -d)")
	dur := fs.Duration("d", 0, "run this long, cutting the sessions still running")
	speed := fs.Float64("speed", 1, "play this many times faster than recorded")
	seed := fs.Uint64("seed", 1, "seed of the recordings' mix")
	timeout := fs.Duration("timeout", 30*time.Second, "longest wait for the gateway (connection, awaited event, last answer)")
	jsonOut := fs.String("json", "", "write the summary as JSON to FILE")
	csvOut := fs.String("csv", "", "write one row per answer as CSV to FILE")
	htmlOut := fs.String("html", "", "write an HTML report with latency plots to FILE")
	progress := fs.String("progress", "auto", "progress bar on stderr: auto (when a terminal), on, off")
	insecure := fs.Bool("insecure", false, "accept any TLS certificate (development)")
	transport := fs.String("transport", "websocket", "websocket, or webrtc (calls: Opus recordings on the microphone track)")
	var slos sloFlags
	fs.Var(&slos, "slo", "threshold, repeatable: p99(turn_to_audio)<1500ms, max(connect)<2s, errors<1%")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return err
		}
		return usageError(err.Error())
	}
	switch {
	case fs.NArg() == 0:
		return usageError("name at least one recording (a .jsonl file or a directory of them)")
	case *conc < 1 || *conc > 100000:
		return usageError("-c must be between 1 and 100000")
	case *count < 0 || *dur < 0 || *ramp < 0:
		return usageError("-n, -d and -ramp cannot be negative")
	case *speed <= 0 || *speed > 1000:
		return usageError("-speed must be above 0 and at most 1000")
	case *timeout <= 0:
		return usageError("-timeout must be positive")
	case *key == "":
		return usageError("no key: pass -key or set PARLEY_API_KEY")
	case !slices.Contains([]string{"auto", "on", "off"}, *progress):
		return usageError("-progress must be auto, on or off")
	case *transport != replay.TransportWebSocket && *transport != replay.TransportWebRTC:
		return usageError("-transport must be websocket or webrtc")
	}
	recs, err := readRecordings(fs.Args())
	if err != nil {
		return err
	}
	opts := replay.Options{URL: *gw, Key: *key, Agent: *agent, Speed: *speed, Timeout: *timeout, Transport: *transport}
	if *insecure {
		opts.HTTPClient = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	}
	load := &replay.Load{Recordings: recs, Session: opts, Concurrency: *conc, Ramp: *ramp, Count: *count, Duration: *dur, Seed: *seed}
	show := *progress == "on"
	if f, ok := stderr.(*os.File); ok && *progress == "auto" {
		show = term.IsTerminal(int(f.Fd()))
	}
	if show {
		total := int64(*count)
		if total == 0 && *dur == 0 {
			total = int64(len(recs))
		}
		if total == 0 {
			total = -1 // a duration: a spinner with counts
		}
		bar := progressbar.NewOptions64(total, progressbar.OptionSetWriter(stderr), progressbar.OptionSetDescription("sessions"),
			progressbar.OptionShowCount(), progressbar.OptionShowElapsedTimeOnFinish(), progressbar.OptionClearOnFinish(),
			progressbar.OptionThrottle(100*time.Millisecond))
		load.Progress = func(done, failed int) {
			_ = bar.Set(done)
			bar.Describe(fmt.Sprintf("sessions (%d failed)", failed))
		}
		defer func() { _ = bar.Finish() }()
	}
	fmt.Fprintf(stderr, "replaying %d recording(s) against %s: %d at once\n", len(recs), *gw, *conc)
	rep := load.Run(ctx)

	// The report is written whatever happened.
	werr := rep.WriteText(stdout)
	if *jsonOut != "" {
		werr = errors.Join(werr, writeFile(*jsonOut, rep.WriteJSON))
	}
	if *csvOut != "" {
		werr = errors.Join(werr, writeFile(*csvOut, rep.WriteCSV))
	}
	if *htmlOut != "" {
		werr = errors.Join(werr, writeFile(*htmlOut, rep.WriteHTML))
	}
	if werr != nil {
		return werr
	}
	var missed []string
	for _, s := range slos {
		if m := rep.Check(s); m != "" {
			missed = append(missed, m)
		}
	}
	if len(slos) == 0 && rep.Failed > 0 {
		missed = append(missed, fmt.Sprintf("%d of %d sessions failed", rep.Failed, rep.Sessions))
	}
	if len(missed) > 0 {
		fmt.Fprintf(stderr, "SLO missed:\n  %s\n", strings.Join(missed, "\n  "))
		return errSLO
	}
	if len(slos) > 0 {
		fmt.Fprintf(stderr, "all %d SLOs met\n", len(slos))
	}
	return nil
}

// readRecordings reads the named files, and the *.jsonl files of named
// directories, stopping at the first bad one (the error names its file and
// line).
func readRecordings(args []string) ([]*recording.Recording, error) {
	var paths []string
	for _, a := range args {
		st, err := os.Stat(a)
		if err != nil {
			return nil, err
		}
		if !st.IsDir() {
			paths = append(paths, a)
			continue
		}
		m, err := filepath.Glob(filepath.Join(a, "*.jsonl"))
		if err != nil {
			return nil, err
		}
		if len(m) == 0 {
			return nil, fmt.Errorf("%s: no *.jsonl recordings in the directory", a)
		}
		slices.Sort(m)
		paths = append(paths, m...)
	}
	recs := make([]*recording.Recording, 0, len(paths))
	for _, p := range paths {
		rec, err := recording.ReadFile(p)
		if err != nil {
			return nil, err
		}
		recs = append(recs, rec)
	}
	return recs, nil
}

// writeFile writes through a temporary file, so a failed write leaves no
// half a report.
func writeFile(path string, write func(io.Writer) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".parley-report-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := errors.Join(write(tmp), tmp.Close()); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return os.Rename(tmp.Name(), path)
}
