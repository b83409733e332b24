package media

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

func TestTurnConfigValidation(t *testing.T) {
	good := TurnDefaultConfig()
	if _, err := NewTurnDetector(good); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	bad := []func(c *TurnConfig){
		func(c *TurnConfig) { c.Threshold = -0.1 },
		func(c *TurnConfig) { c.Threshold = 1.5 },
		func(c *TurnConfig) { c.Threshold = math.NaN() },
		func(c *TurnConfig) { c.PrefixPaddingMS = -1 },
		func(c *TurnConfig) { c.SilenceDurationMS = -1 },
		func(c *TurnConfig) { c.IdleTimeoutMS = -5 },
		func(c *TurnConfig) { c.SampleRate = 100 },
		func(c *TurnConfig) { c.MinSpeechMS = 200; c.OnsetWindowMS = 100 },
		func(c *TurnConfig) { c.ReleaseThreshold = 0.9 },
		func(c *TurnConfig) { c.MaxReadLagMS = -1 },
	}
	for i, mod := range bad {
		c := good
		mod(&c)
		if _, err := NewTurnDetector(c); err == nil {
			t.Errorf("case %d: %+v accepted", i, c)
		}
	}
	// Zero tuning fields take defaults; an unsupported VAD rate still makes
	// a detector that works on pushed probabilities.
	td, err := NewTurnDetector(TurnConfig{Threshold: 0.5, SampleRate: 11025})
	if err != nil || td.VAD() != nil || td.Config().MinSpeechMS != 80 || td.Config().OnsetWindowMS != 150 {
		t.Fatalf("11025 Hz: %v, %+v", err, td.Config())
	}
}

// turnPushProbs pushes 10 ms frames (16 kHz) with the given probabilities;
// each frame's samples hold its index so audio can be traced. It returns the
// events by frame index.
func turnPushProbs(td *TurnDetector, probs []float64, firstFrame int) map[int]TurnEvent {
	evs := map[int]TurnEvent{}
	frame := make([]int16, 160)
	for i, p := range probs {
		for j := range frame {
			frame[j] = int16(firstFrame + i)
		}
		if ev := td.Push(frame, p); ev.Type != TurnNone {
			evs[firstFrame+i] = ev
		}
	}
	return evs
}

// turnProbs builds a probability sequence from runs of (value, frames).
func turnProbs(runs ...float64) []float64 {
	var out []float64
	for i := 0; i+1 < len(runs); i += 2 {
		for k := 0; k < int(runs[i+1]); k++ {
			out = append(out, runs[i])
		}
	}
	return out
}

// TestTurnEdges checks the state machine on scripted probabilities.
func TestTurnEdges(t *testing.T) {
	tests := []struct {
		name   string
		probs  []float64
		events map[int]TurnEvent
	}{
		{
			name:   "short bursts never start (7 frames < 80 ms)",
			probs:  turnProbs(0, 50, 0.9, 7, 0, 30, 0.9, 5, 0, 30, 0.9, 3, 0.2, 3, 0.9, 3, 0, 50),
			events: map[int]TurnEvent{},
		},
		{
			name: "speech starts after 80 ms voiced and stops after 500 ms silence",
			// Onset at frame 50 (500 ms), confirmed at frame 57; last voiced
			// frame 149; silence from frame 150 (1500 ms) for 50 frames.
			probs: turnProbs(0.1, 50, 0.9, 100, 0.05, 60),
			events: map[int]TurnEvent{
				57:  {Type: TurnSpeechStarted, AudioStartMS: 200, SpeechStartMS: 500},
				199: {Type: TurnSpeechStopped, AudioEndMS: 2000, SpeechEndMS: 1500},
			},
		},
		{
			name:  "gaps shorter than the silence duration do not end the turn",
			probs: turnProbs(0, 20, 0.8, 20, 0, 40, 0.8, 20, 0.1, 49, 0.8, 10, 0, 50),
			events: map[int]TurnEvent{
				27:  {Type: TurnSpeechStarted, AudioStartMS: 0, SpeechStartMS: 200},
				208: {Type: TurnSpeechStopped, AudioEndMS: 2090, SpeechEndMS: 1590},
			},
		},
		{
			name: "frames between release and threshold neither start nor end silence",
			// 0.4 is between release (0.35) and threshold (0.5): the run of
			// 0.4 after speech does not start the silence timer.
			probs: turnProbs(0, 40, 0.7, 10, 0.4, 80, 0.1, 50),
			events: map[int]TurnEvent{
				47:  {Type: TurnSpeechStarted, AudioStartMS: 100, SpeechStartMS: 400},
				179: {Type: TurnSpeechStopped, AudioEndMS: 1800, SpeechEndMS: 1300},
			},
		},
		{
			name: "voiced frames scattered in the onset window count together",
			// 3+3+2 voiced frames within 150 ms.
			probs: turnProbs(0, 40, 0.9, 3, 0, 2, 0.9, 3, 0, 2, 0.9, 2, 0, 60),
			events: map[int]TurnEvent{
				51:  {Type: TurnSpeechStarted, AudioStartMS: 100, SpeechStartMS: 400},
				101: {Type: TurnSpeechStopped, AudioEndMS: 1020, SpeechEndMS: 520},
			},
		},
		{
			name:  "onset backtracks over weaker frames just before",
			probs: turnProbs(0, 40, 0.4, 6, 0.1, 3, 0.9, 10, 0, 60),
			events: map[int]TurnEvent{
				56:  {Type: TurnSpeechStarted, AudioStartMS: 100, SpeechStartMS: 400},
				108: {Type: TurnSpeechStopped, AudioEndMS: 1090, SpeechEndMS: 590},
			},
		},
		{
			name:  "prefix is clamped at the start of the stream",
			probs: turnProbs(0.9, 8, 0, 60),
			events: map[int]TurnEvent{
				7:  {Type: TurnSpeechStarted, AudioStartMS: 0, SpeechStartMS: 0},
				57: {Type: TurnSpeechStopped, AudioEndMS: 580, SpeechEndMS: 80},
			},
		},
		{
			name:  "NaN and out-of-range probabilities are clamped",
			probs: append(turnProbs(math.NaN(), 10, -3, 10, 7, 8), turnProbs(math.NaN(), 50)...),
			events: map[int]TurnEvent{
				27: {Type: TurnSpeechStarted, AudioStartMS: 0, SpeechStartMS: 200},
				77: {Type: TurnSpeechStopped, AudioEndMS: 780, SpeechEndMS: 280},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			td, err := NewTurnDetector(TurnDefaultConfig())
			if err != nil {
				t.Fatal(err)
			}
			got := turnPushProbs(td, tc.probs, 0)
			if len(got) != len(tc.events) {
				t.Fatalf("events %+v, want %+v", got, tc.events)
			}
			for f, want := range tc.events {
				if got[f] != want {
					t.Errorf("frame %d: %+v, want %+v (all: %+v)", f, got[f], want, got)
				}
			}
		})
	}
}

// TestTurnUtteranceAudio: the utterance read back is exactly the audio from
// AudioStartMS to AudioEndMS, whether read in small pieces during the turn
// or all at once, and it begins with the prefix padding.
func TestTurnUtteranceAudio(t *testing.T) {
	td, _ := NewTurnDetector(TurnDefaultConfig())
	probs := turnProbs(0, 100, 0.9, 150, 0, 60, 0.9, 20, 0, 60)
	var streamed []int16
	buf := make([]int16, 97) // odd size: reads straddle frames
	var started, stopped TurnEvent
	var whole []int16
	done := false
	frame := make([]int16, 160)
	for i, p := range probs {
		for j := range frame {
			frame[j] = int16(i) // frame index in every sample
		}
		ev := td.Push(frame, p)
		switch ev.Type {
		case TurnSpeechStarted:
			if started.Type == TurnNone {
				started = ev
			}
		case TurnSpeechStopped:
			if stopped.Type == TurnNone {
				stopped = ev
				var err error
				if whole, err = td.UtteranceAudio(nil); err != nil {
					t.Fatal(err)
				}
			}
		}
		if done {
			continue // only the first utterance is checked
		}
		done = stopped.Type != TurnNone
		for td.UtterancePending() > 0 {
			n, err := td.ReadUtterance(buf)
			if err != nil {
				t.Fatal(err)
			}
			streamed = append(streamed, buf[:n]...)
		}
	}
	if started.AudioStartMS != 700 || started.SpeechStartMS != 1000 || stopped.AudioEndMS != 3000 {
		t.Fatalf("events %+v %+v", started, stopped)
	}
	wantLen := (3000 - 700) * 16
	if len(streamed) != wantLen || len(whole) != wantLen {
		t.Fatalf("streamed %d samples, whole %d, want %d", len(streamed), len(whole), wantLen)
	}
	for i, s := range streamed {
		if want := int16(70 + i/160); s != want || whole[i] != want {
			t.Fatalf("sample %d: streamed %d whole %d, want %d", i, s, whole[i], want)
		}
	}
	// The second utterance replaces the first.
	if !td.UtteranceOpen() {
		t.Fatal("utterance closed")
	}
	a, _ := td.UtteranceAudio(nil)
	if len(a) == 0 || a[0] != int16(310-30) {
		t.Fatalf("second utterance starts with frame %d, want %d", a[0], 310-30)
	}
	// Reset drops it.
	td.Reset()
	if td.UtteranceOpen() || td.UtterancePending() != 0 {
		t.Fatal("utterance survived Reset")
	}
	if n, err := td.ReadUtterance(buf); n != 0 || err != nil {
		t.Fatalf("read after Reset: %d, %v", n, err)
	}
}

// TestTurnReaderOverrun: a reader that falls behind more than MaxReadLagMS
// gets ErrTurnOverrun once, then continues from the oldest buffered audio.
func TestTurnReaderOverrun(t *testing.T) {
	cfg := TurnDefaultConfig()
	cfg.MaxReadLagMS = 200
	td, _ := NewTurnDetector(cfg)
	turnPushProbs(td, turnProbs(0, 50, 0.9, 200), 0) // 2 s of speech, nothing read
	if _, err := td.UtteranceAudio(nil); !errors.Is(err, ErrTurnOverrun) {
		t.Fatalf("UtteranceAudio: %v, want overrun", err)
	}
	buf := make([]int16, 100000)
	if n, err := td.ReadUtterance(buf); n != 0 || !errors.Is(err, ErrTurnOverrun) {
		t.Fatalf("first read: %d, %v", n, err)
	}
	n, err := td.ReadUtterance(buf)
	if err != nil || n != len(td.ring) {
		t.Fatalf("second read: %d, %v; want the whole ring (%d)", n, err, len(td.ring))
	}
	// The last sample read is from the newest frame.
	if buf[n-1] != 249 {
		t.Fatalf("last sample from frame %d, want 249", buf[n-1])
	}
}

// TestTurnLargeFrames: frames of any length, even longer than the ring,
// keep positions and audio consistent.
func TestTurnLargeFrames(t *testing.T) {
	cfg := TurnDefaultConfig()
	cfg.MaxReadLagMS = 100
	td, _ := NewTurnDetector(cfg)
	big := make([]int16, 16000*2) // 2 s, longer than the ring
	for i := range big {
		big[i] = int16(i % 30000)
	}
	td.Push(big, 0)
	if td.NowMS() != 2000 {
		t.Fatalf("NowMS %d", td.NowMS())
	}
	ev := td.Push(big, 0.9) // one 2 s voiced frame starts speech at once
	// The onset is the frame's start, but only the ring's worth (750 ms)
	// of it is still buffered, so the utterance audio starts there.
	if ev.Type != TurnSpeechStarted || ev.SpeechStartMS != 2000 || ev.AudioStartMS != 3250 {
		t.Fatalf("event %+v", ev)
	}
	buf := make([]int16, len(big))
	n, err := td.ReadUtterance(buf)
	if err != nil || n != len(td.ring) {
		t.Fatalf("read %d, %v", n, err)
	}
	for i := 0; i < n; i++ {
		if want := big[len(big)-n+i]; buf[i] != want {
			t.Fatalf("sample %d: %d, want %d", i, buf[i], want)
		}
	}
}

func TestTurnIdleTimeout(t *testing.T) {
	cfg := TurnDefaultConfig()
	cfg.IdleTimeoutMS = 1000
	td, _ := NewTurnDetector(cfg)
	turnPushProbs(td, turnProbs(0, 50), 0)
	td.ArmIdle()
	evs := turnPushProbs(td, turnProbs(0, 150), 50)
	want := TurnEvent{Type: TurnIdleTimeout, AudioStartMS: 500, AudioEndMS: 1500}
	if len(evs) != 1 || evs[149] != want {
		t.Fatalf("events %+v, want %+v at frame 149", evs, want)
	}
	// Speech disarms it.
	td.ArmIdle()
	evs = turnPushProbs(td, turnProbs(0, 50, 0.9, 20, 0, 200), 200)
	for _, ev := range evs {
		if ev.Type == TurnIdleTimeout {
			t.Fatalf("idle timeout after speech: %+v", evs)
		}
	}
	// DisarmIdle, and IdleTimeoutMS 0, keep it quiet.
	td.ArmIdle()
	td.DisarmIdle()
	if evs := turnPushProbs(td, turnProbs(0, 200), 470); len(evs) != 0 {
		t.Fatalf("events after DisarmIdle: %+v", evs)
	}
	td2, _ := NewTurnDetector(TurnDefaultConfig())
	td2.ArmIdle()
	if evs := turnPushProbs(td2, turnProbs(0, 300), 0); len(evs) != 0 {
		t.Fatalf("events with IdleTimeoutMS 0: %+v", evs)
	}
}

func TestTurnAudioClock(t *testing.T) {
	td, _ := NewTurnDetector(TurnDefaultConfig())
	td.SetAudioTimeMS(60000)
	evs := turnPushProbs(td, turnProbs(0, 40, 0.9, 10, 0, 50), 0)
	if ev := evs[47]; ev.SpeechStartMS != 60400 || ev.AudioStartMS != 60100 {
		t.Fatalf("start %+v", ev)
	}
	if ev := evs[99]; ev.AudioEndMS != 61000 {
		t.Fatalf("stop %+v", ev)
	}
	// Reset keeps the clock but not the audio before it: the prefix is
	// clamped at the reset point.
	td.Reset()
	evs = turnPushProbs(td, turnProbs(0.9, 8), 100)
	if ev := evs[107]; ev.Type != TurnSpeechStarted || ev.AudioStartMS != 61000 || ev.SpeechStartMS != 61000 {
		t.Fatalf("after Reset: %+v", evs)
	}
	if td.NowMS() != 61080 {
		t.Fatalf("NowMS %d", td.NowMS())
	}
}

// TestTurnProcessMatchesPush: Process (the detector's own VAD) gives the
// same events as Push with a separate fresh VAD's probabilities, which the
// measurement tests use to run the VAD once per signal.
func TestTurnProcessMatchesPush(t *testing.T) {
	s := vadNoisyScene(16000, 3, vadConditions[4])
	cfg := TurnDefaultConfig()
	want := turnRun(t, s, cfg)
	td, _ := NewTurnDetector(cfg)
	pcm := s.pcm()
	var got []turnSegment
	for f := 0; f+160 <= len(pcm); f += 160 {
		switch ev := td.Process(pcm[f : f+160]); ev.Type {
		case TurnSpeechStarted:
			got = append(got, turnSegment{onsetMS: ev.SpeechStartMS, decidedMS: td.NowMS(), endMS: -1})
		case TurnSpeechStopped:
			got[len(got)-1].endMS = ev.AudioEndMS
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) || len(got) != 8 {
		t.Fatalf("Process: %v\nPush:    %v", got, want)
	}
}

// ExampleTurnDetector streams an utterance to a recognizer as it arrives.
// Here the probabilities are scripted; Process computes them with the
// detector's own VAD.
func ExampleTurnDetector() {
	td, _ := NewTurnDetector(TurnDefaultConfig()) // 0.5, 300 ms, 500 ms, 16 kHz
	frame := make([]int16, 160)                   // 10 ms
	buf := make([]int16, 4096)
	streamed := 0
	for i := 0; i < 200; i++ {
		prob := 0.05
		if i >= 50 && i < 120 { // 700 ms of speech from 500 ms
			prob = 0.9
		}
		switch ev := td.Push(frame, prob); ev.Type {
		case TurnSpeechStarted:
			fmt.Printf("speech_started audio_start_ms=%d (onset %d ms, decided at %d ms)\n", ev.AudioStartMS, ev.SpeechStartMS, td.NowMS())
		case TurnSpeechStopped:
			fmt.Printf("speech_stopped audio_end_ms=%d (speech ended %d ms)\n", ev.AudioEndMS, ev.SpeechEndMS)
		}
		for td.UtterancePending() > 0 {
			n, _ := td.ReadUtterance(buf)
			streamed += n // stream.Write(buf[:n]) in the gateway
		}
	}
	fmt.Printf("streamed %d ms of audio\n", streamed/16)
	// Output:
	// speech_started audio_start_ms=200 (onset 500 ms, decided at 580 ms)
	// speech_stopped audio_end_ms=1700 (speech ended 1200 ms)
	// streamed 1500 ms of audio
}

func TestTurnEventTypeString(t *testing.T) {
	for ty, want := range map[TurnEventType]string{TurnNone: "none", TurnSpeechStarted: "speech_started",
		TurnSpeechStopped: "speech_stopped", TurnIdleTimeout: "timeout_triggered", 9: "TurnEventType(9)"} {
		if ty.String() != want {
			t.Errorf("%d: %q, want %q", ty, ty.String(), want)
		}
	}
}

func TestTurnZeroAllocs(t *testing.T) {
	td, _ := NewTurnDetector(TurnDefaultConfig())
	s := vadNoisyScene(16000, 1, vadCondition{"pink 10", vadPink, 10})
	pcm := s.pcm()
	buf := make([]int16, 4096)
	f := 0
	allocs := testing.AllocsPerRun(2000, func() {
		td.Process(pcm[f*160 : f*160+160])
		if td.UtteranceOpen() {
			if _, err := td.ReadUtterance(buf); err != nil {
				t.Fatal(err)
			}
		}
		f = (f + 1) % (len(pcm)/160 - 1)
	})
	if allocs != 0 {
		t.Fatalf("%v allocs per frame, want 0", allocs)
	}
}

// TestTurnDetection measures utterance-level detection with the server_vad
// defaults (threshold 0.5, 300 ms prefix, 500 ms silence) on the synthetic
// scenes: an utterance is a hit when exactly one turn covers it, its onset is
// within 150 ms of the true onset and it stops within silence + 150 ms after
// the true end. Noise-only signals must never start a turn.
func TestTurnDetection(t *testing.T) {
	t.Parallel()
	cfg := TurnDefaultConfig()
	minHits := map[string]float64{ // fraction of utterances, a little under measured
		"clean": 1, "white 20 dB": 0.95, "pink 20 dB": 0.95,
		"white 10 dB": 0.85, "pink 10 dB": 0.80,
		"white 5 dB": 0.45, "pink 5 dB": 0.45,
	}
	rows := [][]string{{"condition", "utterances", "hits", "missed", "split", "late onset", "bad end", "false starts", "onset err mean/max", "decision latency", "end − true end mean/max"}}
	for _, c := range vadConditions {
		var sc turnScore
		for seed := uint64(1); seed <= vadSceneSeeds; seed++ {
			s := vadNoisyScene(16000, seed, c)
			sc.add(turnScoreSegments(s, turnRun(t, s, cfg), cfg.SilenceDurationMS))
		}
		m := int64(max(sc.matched, 1))
		rows = append(rows, []string{c.name, fmt.Sprint(sc.utts), fmt.Sprint(sc.hits), fmt.Sprint(sc.missed), fmt.Sprint(sc.split),
			fmt.Sprint(sc.lateOnset), fmt.Sprint(sc.badEnd), fmt.Sprint(sc.falseStarts),
			fmt.Sprintf("%d/%d ms", sc.onsetErrSum/m, sc.onsetErrMax), fmt.Sprintf("%d ms", sc.latencySum/m),
			fmt.Sprintf("%d/%d ms", sc.endErrSum/m, sc.endErrMax)})
		if float64(sc.hits) < minHits[c.name]*float64(sc.utts) || sc.falseStarts > 0 || sc.missed > 0 {
			t.Errorf("%s: %v", c.name, sc)
		}
	}
	t.Logf("utterance-level detection, server_vad defaults, 16 kHz, %d utterances per condition:\n%s", 8*vadSceneSeeds, vadTable(rows))

	rows = [][]string{{"noise-only signal", "false starts"}}
	for _, n := range vadNoiseSignals {
		segs := turnRun(t, n.make(16000), cfg)
		rows = append(rows, []string{n.name, fmt.Sprint(len(segs))})
		if len(segs) != 0 {
			t.Errorf("%s: %d false starts %+v", n.name, len(segs), segs)
		}
	}
	t.Logf("noise-only signals at threshold 0.5:\n%s", vadTable(rows))
}

// TestTurnThresholdTradeoff shows how the threshold trades false starts on
// noise against missed and late turns in noise: false starts fall as the
// threshold rises, and there are none at 0.5 and above.
func TestTurnThresholdTradeoff(t *testing.T) {
	t.Parallel()
	rows := [][]string{{"threshold", "noise false starts", "frame FA (noise)", "hits clean", "hits 10 dB", "hits 5 dB", "onset err 10 dB", "latency 10 dB"}}
	noises := make([]*vadSignal, len(vadNoiseSignals))
	for i, n := range vadNoiseSignals {
		noises[i] = n.make(16000)
	}
	scenes := map[string][]*vadSignal{}
	for _, c := range vadConditions {
		if c.name != "clean" && c.snr != 10 && c.snr != 5 {
			continue
		}
		key := c.name
		if c.kind >= 0 {
			key = fmt.Sprint(c.snr)
		}
		for seed := uint64(1); seed <= min(vadSceneSeeds, 2); seed++ {
			scenes[key] = append(scenes[key], vadNoisyScene(16000, seed, c))
		}
	}
	prevFalse := math.MaxInt
	for _, th := range []float64{0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8} {
		cfg := TurnDefaultConfig()
		cfg.Threshold = th
		falseStarts := 0
		var fa vadFrameScore
		for _, s := range noises {
			falseStarts += len(turnRun(t, s, cfg))
			fa.add(vadScoreFrames(s, th))
		}
		score := map[string]*turnScore{"clean": {}, "10": {}, "5": {}}
		for key, ss := range scenes {
			for _, s := range ss {
				score[key].add(turnScoreSegments(s, turnRun(t, s, cfg), cfg.SilenceDurationMS))
			}
		}
		hits := func(k string) string { return fmt.Sprintf("%d/%d", score[k].hits, score[k].utts) }
		m := int64(max(score["10"].matched, 1))
		rows = append(rows, []string{fmt.Sprint(th), fmt.Sprint(falseStarts), fmt.Sprintf("%.4f", fa.falseAlarm()),
			hits("clean"), hits("10"), hits("5"), fmt.Sprintf("%d ms", score["10"].onsetErrSum/m), fmt.Sprintf("%d ms", score["10"].latencySum/m)})
		if falseStarts > prevFalse {
			t.Errorf("threshold %v: %d false starts, more than at a lower threshold (%d)", th, falseStarts, prevFalse)
		}
		prevFalse = falseStarts
		if th >= 0.5 && falseStarts != 0 {
			t.Errorf("threshold %v: %d false starts on noise, want 0", th, falseStarts)
		}
		if th <= 0.6 && score["clean"].hits != score["clean"].utts {
			t.Errorf("threshold %v: clean hits %s", th, hits("clean"))
		}
	}
	t.Logf("threshold trade-off (noise: %d signals; speech: %d utterances per condition, white and pink):\n%s", len(noises), 8*min(vadSceneSeeds, 2), vadTable(rows))
}

// TestTurnSpokenSentences runs the turn detector over espeak-ng sentences
// (two voices) in noise.
func TestTurnSpokenSentences(t *testing.T) {
	t.Parallel()
	male := vadEspeak(t, 16000, "en-us", vadSpokenSentences)
	female := vadEspeak(t, 16000, "en-us+f3", vadSpokenSentences)
	cfg := TurnDefaultConfig()
	rows := [][]string{{"condition", "result"}}
	for _, c := range vadConditions {
		var sc turnScore
		for i, pcms := range [][][]int16{male, female} {
			s := vadSpokenScene(16000, pcms, uint64(i+1))
			rng := rand.New(rand.NewPCG(uint64(i), 6))
			vadAddFloor(s, rng, -70)
			if c.kind >= 0 {
				vadAddNoise(s, rng, c.kind, c.snr)
			}
			sc.add(turnScoreSegments(s, turnRun(t, s, cfg), cfg.SilenceDurationMS))
		}
		rows = append(rows, []string{c.name, sc.String()})
		minHits := sc.utts
		if c.snr == 5 {
			minHits = sc.utts - 2
		}
		if sc.hits < minHits || sc.falseStarts > 0 || sc.missed > 0 {
			t.Errorf("%s: %v", c.name, sc)
		}
	}
	t.Logf("espeak-ng sentences, server_vad defaults:\n%s", vadTable(rows))
}

// TestTurnFixtures runs the repository's spoken fixtures (24 kHz, 0.6 s of
// silence before the speech, some with pink noise) and its click and cough
// fixtures through the detector at 24 kHz.
func TestTurnFixtures(t *testing.T) {
	cfg := TurnDefaultConfig()
	cfg.SampleRate = 24000
	for _, name := range []string{"what_is_parley", "transcripts_kept", "add_documents", "privacy_audio", "hello", "long_answer_stop"} {
		pcm := vadFixture(t, name+".wav")
		td, _ := NewTurnDetector(cfg)
		var evs []TurnEvent
		for f := 0; f+240 <= len(pcm); f += 240 {
			if ev := td.Process(pcm[f : f+240]); ev.Type != TurnNone {
				evs = append(evs, ev)
			}
		}
		if len(evs) < 2 || evs[0].Type != TurnSpeechStarted || evs[len(evs)-1].Type != TurnSpeechStopped {
			t.Errorf("%s: events %+v", name, evs)
			continue
		}
		if on := evs[0].SpeechStartMS; on < 550 || on > 750 {
			t.Errorf("%s: onset at %d ms, want about 600", name, on)
		}
		if td.InSpeech() {
			t.Errorf("%s: still in speech at the end", name)
		}
		t.Logf("%s: %+v", name, evs)
	}
	for _, name := range []string{"noise_click", "noise_cough"} {
		pcm := vadFixture(t, name+".wav")
		td, _ := NewTurnDetector(cfg)
		for f := 0; f+240 <= len(pcm); f += 240 {
			if ev := td.Process(pcm[f : f+240]); ev.Type != TurnNone {
				t.Errorf("%s: %+v", name, ev)
			}
		}
	}
}

func BenchmarkTurnDetector(b *testing.B) {
	s := vadNoisyScene(16000, 1, vadCondition{"pink 10", vadPink, 10})
	pcm := s.pcm()
	td, _ := NewTurnDetector(TurnDefaultConfig())
	buf := make([]int16, 4096)
	n := len(pcm) / 160
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		f := i % n
		td.Process(pcm[f*160 : f*160+160])
		if td.UtteranceOpen() {
			td.ReadUtterance(buf)
		}
	}
}

// BenchmarkTurnPush is the detector alone, without the VAD.
func BenchmarkTurnPush(b *testing.B) {
	td, _ := NewTurnDetector(TurnDefaultConfig())
	frame := make([]int16, 160)
	probs := turnProbs(0, 100, 0.9, 200, 0.1, 100)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		td.Push(frame, probs[i%len(probs)])
	}
}

// FuzzTurnDetector feeds arbitrary PCM and probabilities in arbitrary frame
// sizes: Push, Process and the readers must never panic, events must come
// in order (started, then stopped), and reads never exceed the buffer.
func FuzzTurnDetector(f *testing.F) {
	f.Add([]byte{0xff, 0x7f, 0x00, 0x80, 1, 2, 3}, uint16(160), uint8(0), uint16(0))
	f.Add(make([]byte, 5000), uint16(7), uint8(3), uint16(300))
	f.Fuzz(func(t *testing.T, data []byte, chunk uint16, mode uint8, prefix uint16) {
		cfg := TurnDefaultConfig()
		cfg.PrefixPaddingMS = int(prefix) % 2000
		cfg.SilenceDurationMS = int(mode) * 7 % 1000
		cfg.IdleTimeoutMS = int(mode) % 3 * 100
		cfg.MaxReadLagMS = 50 + int(prefix)%500
		cfg.SampleRate = []int{16000, 8000, 24000, 11025}[mode%4]
		td, err := NewTurnDetector(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if len(data) > 1<<16 {
			data = data[:1<<16]
		}
		pcm := make([]int16, len(data)/2)
		for i := range pcm {
			pcm[i] = int16(uint16(data[2*i]) | uint16(data[2*i+1])<<8)
		}
		c := int(chunk)%700 + 1
		buf := make([]int16, 64)
		inSpeech := false
		td.ArmIdle()
		for rep := 0; rep < 4; rep++ {
			for p := 0; p < len(pcm); p += c {
				fr := pcm[p:min(p+c, len(pcm))]
				var ev TurnEvent
				if mode&4 != 0 {
					ev = td.Process(fr)
				} else {
					// Probabilities from the data, including out-of-range ones.
					pr := float64(fr[0]) / 16384
					if fr[0] == math.MinInt16 {
						pr = math.NaN()
					}
					ev = td.Push(fr, pr)
				}
				switch ev.Type {
				case TurnSpeechStarted:
					if inSpeech {
						t.Fatal("started twice")
					}
					inSpeech = true
					if ev.AudioStartMS > ev.SpeechStartMS {
						t.Fatalf("bad start %+v", ev)
					}
				case TurnSpeechStopped:
					if !inSpeech {
						t.Fatal("stopped without start")
					}
					inSpeech = false
				}
				if n, err := td.ReadUtterance(buf); n > len(buf) || (err != nil && !errors.Is(err, ErrTurnOverrun)) {
					t.Fatalf("read %d, %v", n, err)
				}
				if td.UtterancePending() < 0 {
					t.Fatal("negative pending")
				}
			}
			if _, err := td.UtteranceAudio(nil); err != nil && !errors.Is(err, ErrTurnOverrun) {
				t.Fatal(err)
			}
			if rep == 2 {
				td.Reset()
				inSpeech = false
			}
		}
	})
}
