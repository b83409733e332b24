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

	"parley/tts"
)

// TestMain lets the test binary serve as the benchmark's child process:
// the harness re-executes os.Executable() with -serve.
func TestMain(m *testing.M) {
	if isChild(os.Args[1:]) {
		os.Exit(childMain(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// TestSmoke runs the whole harness on a tiny configuration (3 sessions per
// transport, two rounds of 0.5 s per phase, 3 setup calls), children included, and checks
// that every figure is there and plausible. make test runs it under -race.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts gateway processes and streams audio for ~15s")
	}
	t.Cleanup(func() {
		if pids := runningChildren(); len(pids) > 0 {
			t.Errorf("children still running after the harness returned: %v", pids)
		}
	})
	jsonFile := filepath.Join(t.TempDir(), "results.json")
	var stdout bytes.Buffer
	start := time.Now()
	code := harnessMain([]string{"-smoke", "-calls", "3", "-seconds", "1", "-rounds", "2", "-warmup", "300ms", "-idle", "300ms", "-setup", "3", "-noisy-retries", "0",
		"-fixtures", "../../testdata/audio", "-json", jsonFile}, &stdout, &syncWriter{t: t})
	t.Logf("harness took %s; report:\n%s", time.Since(start).Round(time.Millisecond), stdout.String())
	if code != 0 {
		t.Fatalf("harness exit code %d", code)
	}
	for _, want := range []string{"Listening: CPU per session", "Speaking: CPU per session", "Memory per idle session",
		"Call setup", "Targets", "ratio WebRTC / WebSocket audio/pcm", "Reproduce: go run ./bench/callbench -smoke"} {
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
	if len(rep.Transports) != 3 {
		t.Fatalf("transports %+v, want webrtc, ws-pcm, ws-opus", rep.Transports)
	}
	for _, tr := range rep.Transports {
		if tr.Errors != 0 {
			t.Errorf("%s: %d errors: %v", tr.Transport, tr.Errors, tr.ErrorSamples)
		}
		m := tr.Memory
		if m.Sessions != 3 || m.RSSBefore == 0 || m.RSSAfter == 0 || m.GoroutinesPer <= 0 {
			t.Errorf("%s: memory %+v", tr.Transport, m)
		}
		// CPU is read in 10 ms clock ticks: the tiny windows may round a
		// round down to 0, but not a whole transport.
		cpu := 0.0
		l := tr.Listen
		if l.Sessions != 3 || len(l.Rounds) != 2 || l.Seconds <= 0 || l.TurnsPerMin < 0 {
			t.Errorf("%s: listening %+v", tr.Transport, l)
		}
		var events int64
		for _, w := range l.Rounds {
			cpu += w.ServerCPUSeconds
			events += w.Events
		}
		if events == 0 || l.RecognizerRatio <= 0 {
			t.Errorf("%s: listening: %d events, recognizer ratio %.2f: the turn detector heard nothing", tr.Transport, events, l.RecognizerRatio)
		}
		if (tr.Speak != nil) != (tr.Transport != tWSOpus) {
			t.Errorf("%s: speaking %+v", tr.Transport, tr.Speak)
		}
		if s := tr.Speak; s != nil {
			for _, w := range s.Rounds {
				cpu += w.ServerCPUSeconds
			}
			if len(s.Rounds) != 2 || s.AudioRatio < 0.5 || s.AudioRatio > 1.5 {
				t.Errorf("%s: speaking %+v (the agent's audio should arrive in real time)", tr.Transport, s)
			}
		}
		if cpu <= 0 {
			t.Errorf("%s: no server CPU measured", tr.Transport)
		}
	}
	s := rep.Setup
	if s == nil || s.Errors != 0 || s.Answer.Count != 3 || s.Answer.P50 <= 0 || s.Open.P50 < s.Answer.P50 || s.ServerCount < 3 {
		t.Errorf("call setup %+v", s)
	}
	if len(rep.Targets) < 1 || !strings.Contains(rep.Targets[len(rep.Targets)-1].Name, "call setup") {
		t.Errorf("targets %+v, want the call setup's at least (the ratios need CPU above 0 in both)", rep.Targets)
	}
}

func TestScript(t *testing.T) {
	sc, err := loadScript("../../testdata/audio", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(sc.names) < 5 || len(sc.opus) != len(sc.pcmEvents) || len(sc.opus) != len(sc.opusEvents) {
		t.Fatalf("script: %d fixtures, %d packets, %d pcm events, %d opus events", len(sc.names), len(sc.opus), len(sc.pcmEvents), len(sc.opusEvents))
	}
	if sc.speech <= 0 || sc.duration() != sc.speech+time.Duration(len(sc.names))*time.Second {
		t.Fatalf("speech %s of %s", sc.speech, sc.duration())
	}
	var ev struct{ Type, Audio string }
	if err := json.Unmarshal(sc.pcmEvents[0], &ev); err != nil || ev.Type != "input_audio_buffer.append" || len(ev.Audio) != 1280 {
		t.Fatalf("pcm event %+v %v (want 960 bytes of audio: 1280 base64 characters)", ev, err)
	}
}

func TestWireParsing(t *testing.T) {
	if got := eventType([]byte(`{"type":"response.output_audio.delta","event_id":"e1"}`)); got != "response.output_audio.delta" {
		t.Errorf("fast path: %q", got)
	}
	if got := eventType([]byte(`{"event_id":"e1","type":"response.done"}`)); got != "response.done" {
		t.Errorf("slow path: %q", got)
	}
	// 6 bytes -> "AAAAAAAA"; 4 bytes -> "AAAAAA=="
	if got := deltaSamples([]byte(`{"type":"response.output_audio.delta","delta":"AAAAAAAA","item_id":"x"}`)); got != 3 {
		t.Errorf("deltaSamples = %d, want 3", got)
	}
	if got := deltaSamples([]byte(`{"type":"response.output_audio.delta","delta":"AAAAAA=="}`)); got != 2 {
		t.Errorf("deltaSamples with padding = %d, want 2", got)
	}
	text := "# HELP x\nx_bucket{le=\"0.005\"} 2\nx_bucket{le=\"0.01\"} 9\nx_bucket{le=\"+Inf\"} 10\nx_sum 0.07\nx_count 10\n"
	h, err := parseHistogram(text, "x")
	if err != nil || h.count != 10 || h.quantile(0.5) != 10*time.Millisecond || h.quantile(0.99) != -1 || h.quantile(0.1) != 5*time.Millisecond {
		t.Fatalf("histogram %+v %v: p50 %s p99 %s", h, err, h.quantile(0.5), h.quantile(0.99))
	}
}

func TestFlags(t *testing.T) {
	var out, errw bytes.Buffer
	for _, args := range [][]string{{"-calls", "0"}, {"-seconds", "0"}, {"-gap", "100ms"}, {"-tts-chunk", "1ms"}, {"extra"}} {
		errw.Reset()
		if code := harnessMain(args, &out, &errw); code != 2 {
			t.Errorf("%v: exit %d, want 2 (%s)", args, code, errw.String())
		}
	}
}

func TestToneSynthPace(t *testing.T) {
	syn := newSynth(nil, 50*time.Millisecond, 100*time.Millisecond)
	var got int
	start := time.Now()
	// Two sentences of 10 characters (650 ms each) on one voice: one clock,
	// 100 ms ahead, so about 1.2 s for 1.3 s of audio.
	for range 2 {
		if err := syn.Synthesize(t.Context(), tts.Request{Voice: "callbench-1", Text: "0123456789"}, func(pcm []int16) error { got += len(pcm); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	took := time.Since(start)
	if got != 2*13*1200 {
		t.Fatalf("%d samples, want %d", got, 2*13*1200)
	}
	if took < 1100*time.Millisecond || took > 1500*time.Millisecond {
		t.Fatalf("1.3 s of audio 100 ms ahead took %s, want about 1.15 s", took)
	}
}

// syncWriter sends the harness's progress lines to the test log.
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
