package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"parley/replay"
)

// TestMain lets the test binary serve as the benchmark's child process:
// the harness re-executes os.Executable() with -serve.
func TestMain(m *testing.M) {
	if isChild(os.Args[1:]) {
		os.Exit(childMain(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// TestSmoke runs the whole harness on one tiny step (4 sessions, one
// recording each), child included, and checks that every figure is there.
// make test runs it under -race, where the latency may miss the target:
// the knee is not checked, only that the step was measured.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a gateway process and streams a recording in real time (~6s)")
	}
	t.Cleanup(func() {
		if pids := runningChildren(); len(pids) > 0 {
			t.Errorf("children still running after the harness returned: %v", pids)
		}
	})
	dir := t.TempDir()
	jsonFile, profFile := filepath.Join(dir, "results.json"), filepath.Join(dir, "knee.pprof")
	var stdout bytes.Buffer
	start := time.Now()
	code := harnessMain([]string{"-engines", "fake", "-steps", "4", "-step-duration", "0", "-ramp", "400ms", "-quiet-wait", "0", "-noisy-retries", "0",
		"-recording", "../../testdata/sessions/voice_question.jsonl", "-cpuprofile", profFile, "-json", jsonFile}, &stdout, &syncWriter{t: t})
	t.Logf("harness took %s; report:\n%s", time.Since(start).Round(time.Millisecond), stdout.String())
	if code != 0 {
		t.Fatalf("harness exit code %d", code)
	}
	for _, want := range []string{"| sessions | played | failed |", "| 4 | 4 | 0 |", "child cores", "Target: 500 listening voice sessions",
		"CPU profile of the gateway child at 4 sessions", "Reproduce: go run ./bench/replaybench -engines fake -steps 4"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("report lacks %q", want)
		}
	}
	b, err := os.ReadFile(jsonFile)
	if err != nil {
		t.Fatal(err)
	}
	var rep Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("results JSON: %v", err)
	}
	if len(rep.Steps) != 1 || rep.PerSlot != 1 || rep.Recording.Audio < 100 || rep.Recording.Duration < 4*time.Second {
		t.Fatalf("report %+v", rep)
	}
	s := rep.Steps[0]
	if s.Sessions != 4 || s.Played != 4 || s.Failed != 0 || len(s.Errors) != 0 {
		t.Errorf("sessions: %d at once, %d played, %d failed %v %v", s.Sessions, s.Played, s.Failed, s.Errors, s.ErrorSamples)
	}
	if s.TurnToAudio.Count != 4 || s.TurnToAudio.P50 <= 0 || s.Connect.Count != 4 || s.ReplyFirstAudio.Count != 4 {
		t.Errorf("latency: turn_to_audio %+v, connect %+v, reply_first_audio %+v", s.TurnToAudio, s.Connect, s.ReplyFirstAudio)
	}
	if s.RealTime.Count != 4 || s.RealTime.P50 < 0.99 || s.ListenLag.Count != 4 {
		t.Errorf("real time %+v, lag %+v: each session should take about its recording's length", s.RealTime, s.ListenLag)
	}
	if s.Window <= 0 || s.ChildCores <= 0 || s.ClientCores <= 0 || s.ChildRSSIdle == 0 || s.ChildRSSPeak < s.ChildRSSIdle || s.LiveSessions == 0 {
		t.Errorf("resources: %+v", s)
	}
	if rep.Knee == 0 && rep.Best != 4 || rep.Knee != 0 && rep.Knee != 4 || rep.Profiled != 4 {
		t.Errorf("knee %d, best %d, profiled %d", rep.Knee, rep.Best, rep.Profiled)
	}
	if p := rep.ChildProfile; p == nil || p.Total <= 0 || len(p.Flat) == 0 || len(p.Cum) == 0 || len(p.Kinds) == 0 || p.File != profFile {
		t.Errorf("child profile %+v", p)
	}
	if fi, err := os.Stat(profFile); err != nil || fi.Size() == 0 {
		t.Errorf("child profile file: %v", err)
	}
	if _, err := os.Stat(profFile + ".client"); err != nil {
		t.Errorf("client profile file: %v", err)
	}
}

// TestOffline runs the second scenario on one step of one session: the
// real parleyd (built for the test) with the offline engines answers, the
// recording's expectations hold, and parleyd's figures come from /metrics.
func TestOffline(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts parleyd and streams a recording in real time (~15s)")
	}
	if miss := offlineMissing(); miss != "" {
		t.Skipf("the offline engines need %s (make deps)", miss)
	}
	t.Cleanup(func() {
		if pids := runningChildren(); len(pids) > 0 {
			t.Errorf("children still running after the harness returned: %v", pids)
		}
	})
	jsonFile := filepath.Join(t.TempDir(), "results.json")
	var stdout bytes.Buffer
	start := time.Now()
	code := harnessMain([]string{"-engines", "offline", "-offline-steps", "1", "-offline-step-duration", "0", "-quiet-wait", "0", "-noisy-retries", "0",
		"-recording", "../../testdata/sessions/voice_question.jsonl", "-json", jsonFile}, &stdout, &syncWriter{t: t})
	t.Logf("harness took %s; report:\n%s", time.Since(start).Round(time.Millisecond), stdout.String())
	if code != 0 {
		t.Fatalf("harness exit code %d", code)
	}
	for _, want := range []string{"offline engines", "| 1 | 1 | 0 |", "Sessions per core", "pocketsphinx"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("report lacks %q", want)
		}
	}
	b, err := os.ReadFile(jsonFile)
	if err != nil {
		t.Fatal(err)
	}
	var rep Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("results JSON: %v", err)
	}
	if rep.Config.Engines != enginesOffline || len(rep.Steps) != 1 {
		t.Fatalf("report %+v", rep)
	}
	s := rep.Steps[0]
	if s.Played != 1 || s.Failed != 0 || s.TurnToAudio.Count != 1 || s.Gateway.Count != 1 || s.ChildCores <= 0 || s.ChildRSSIdle == 0 {
		t.Errorf("step %+v", s)
	}
}

func TestParseMetrics(t *testing.T) {
	s, err := parseMetrics([]byte(`# HELP x
go_goroutines 42
parley_realtime_sessions_active 3
parley_realtime_errors_total{code="a"} 2
parley_realtime_errors_total{code="b",type="x"} 1
parley_voice_gateway_added_seconds_bucket{le="0.001"} 4
parley_voice_gateway_added_seconds_bucket{le="0.01"} 5
parley_voice_gateway_added_seconds_bucket{le="+Inf"} 6
parley_voice_gateway_added_seconds_sum 0.5
parley_voice_gateway_added_seconds_count 6
`))
	if err != nil || s.Goroutines != 42 || s.Sessions != 3 || s.Errors["a"] != 2 || s.Errors["b"] != 1 ||
		s.VoiceGateway.Count != 6 || len(s.VoiceGateway.Bounds) != 2 || s.VoiceGateway.Buckets[1] != 5 || s.VoiceGateway.Sum != 0.5 {
		t.Errorf("%+v %v", s, err)
	}
}

func TestFlags(t *testing.T) {
	for _, args := range [][]string{{"-steps", "200,100"}, {"-steps", "x"}, {"-p99", "0s"}, {"-max-errors", "200"}, {"-transport", "udp"}, {"extra"}, {"-engines", "x"}, {"-offline-steps", "4,2"}, {"-engines", "offline", "-transport", "webrtc"}} {
		var out bytes.Buffer
		if code := harnessMain(args, &out, &out); code != 2 {
			t.Errorf("%q: exit code %d, want 2 (%s)", args, code, out.String())
		}
	}
}

func TestFullWindow(t *testing.T) {
	t0 := time.Unix(1000, 0)
	var rs []*replay.Result
	// 10 slots starting 100 ms apart, each two back-to-back 1 s sessions.
	for i := range 10 {
		s := t0.Add(time.Duration(i) * 100 * time.Millisecond)
		rs = append(rs, &replay.Result{Start: s, Duration: time.Second}, &replay.Result{Start: s.Add(time.Second), Duration: time.Second})
	}
	from, to := fullWindow(rs, 10)
	if want := t0.Add(900 * time.Millisecond); !from.Equal(want) {
		t.Errorf("from %v, want %v", from.Sub(t0), want.Sub(t0))
	}
	// 90% of 10 run until the second slot's last session ends.
	if want := t0.Add(2100 * time.Millisecond); !to.Equal(want) {
		t.Errorf("to %v, want %v", to.Sub(t0), want.Sub(t0))
	}
	if r := ratios([]float64{1, 3, 2, 4}); r.P50 != 2 || r.Max != 4 || r.Count != 4 {
		t.Errorf("ratios %+v", r)
	}
}

// syncWriter sends the harness's progress to the test log.
type syncWriter struct {
	mu sync.Mutex
	t  *testing.T
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
