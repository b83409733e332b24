package media

// Measurement helpers shared by the VAD and turn-detector tests.

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
)

// vadFrameScore is frame-level detection against labels.
type vadFrameScore struct{ tp, fp, fn, tn int }

func (s *vadFrameScore) add(o vadFrameScore) {
	s.tp += o.tp
	s.fp += o.fp
	s.fn += o.fn
	s.tn += o.tn
}

func (s vadFrameScore) precision() float64 { return float64(s.tp) / float64(max(s.tp+s.fp, 1)) }
func (s vadFrameScore) recall() float64    { return float64(s.tp) / float64(max(s.tp+s.fn, 1)) }

// falseAlarm is the fraction of non-speech frames detected as speech.
func (s vadFrameScore) falseAlarm() float64 { return float64(s.fp) / float64(max(s.fp+s.tn, 1)) }

// vadScoreFrames scores the frames of s whose probability (from a fresh
// VAD) is at least th.
func vadScoreFrames(s *vadSignal, th float64) vadFrameScore {
	lab := s.frameLabels()
	var sc vadFrameScore
	for f, p := range s.vadProbs() {
		d := p >= th
		switch {
		case d && lab[f]:
			sc.tp++
		case d:
			sc.fp++
		case lab[f]:
			sc.fn++
		default:
			sc.tn++
		}
	}
	return sc
}

// turnSegment is a detected utterance: the SpeechStarted onset and decision
// time, and the SpeechStopped audio end (or -1 if it never stopped).
type turnSegment struct {
	onsetMS, decidedMS, endMS int64
}

// turnRun pushes s through a TurnDetector in 10 ms frames, with the
// probabilities of a fresh VAD (as Process would compute them; see
// TestTurnProcessMatchesPush), and returns the detected segments.
func turnRun(t testing.TB, s *vadSignal, cfg TurnConfig) []turnSegment {
	t.Helper()
	cfg.SampleRate = s.rate
	td, err := NewTurnDetector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	pcm := s.pcm()
	fs := s.rate / 100
	var segs []turnSegment
	for f, p := range s.vadProbs() {
		switch ev := td.Push(pcm[f*fs:(f+1)*fs], p); ev.Type {
		case TurnSpeechStarted:
			segs = append(segs, turnSegment{onsetMS: ev.SpeechStartMS, decidedMS: td.NowMS(), endMS: -1})
		case TurnSpeechStopped:
			segs[len(segs)-1].endMS = ev.AudioEndMS
		}
	}
	return segs
}

// turnScore is utterance-level detection against ground truth.
type turnScore struct {
	utts        int   // true utterances
	hits        int   // one segment, onset and end within tolerance
	missed      int   // no segment overlaps the utterance
	split       int   // more than one segment overlaps it
	lateOnset   int   // onset error beyond tolerance
	badEnd      int   // stop too early or too late
	falseStarts int   // segments overlapping no utterance
	onsetErrSum int64 // Σ|onset − true onset| over matched utterances, ms
	onsetErrMax int64
	latencySum  int64 // Σ(decision time − true onset), ms
	endErrSum   int64 // Σ(audio end − true end), ms
	endErrMax   int64
	matched     int
}

func (s *turnScore) add(o turnScore) {
	s.utts += o.utts
	s.hits += o.hits
	s.missed += o.missed
	s.split += o.split
	s.lateOnset += o.lateOnset
	s.badEnd += o.badEnd
	s.falseStarts += o.falseStarts
	s.onsetErrSum += o.onsetErrSum
	s.onsetErrMax = max(s.onsetErrMax, o.onsetErrMax)
	s.latencySum += o.latencySum
	s.endErrSum += o.endErrSum
	s.endErrMax = max(s.endErrMax, o.endErrMax)
	s.matched += o.matched
}

func (s turnScore) String() string {
	m := int64(max(s.matched, 1))
	return fmt.Sprintf("utts %3d hits %3d missed %d split %d lateOnset %d badEnd %d falseStarts %d | onset err mean %3d max %3d ms, decision latency mean %3d ms | end err mean %3d max %3d ms",
		s.utts, s.hits, s.missed, s.split, s.lateOnset, s.badEnd, s.falseStarts,
		s.onsetErrSum/m, s.onsetErrMax, s.latencySum/m, s.endErrSum/m, s.endErrMax)
}

// Tolerances from the brief: onset within 150 ms, stop within
// silence_duration + 150 ms of the true end.
const (
	turnOnsetTolMS = 150
	turnEndTolMS   = 150
)

// turnScoreSegments matches segments against s's utterances.
func turnScoreSegments(s *vadSignal, segs []turnSegment, silenceMS int) turnScore {
	ms := func(p int) int64 { return int64(p) * 1000 / int64(s.rate) }
	sc := turnScore{utts: len(s.utts)}
	used := make([]bool, len(segs))
	for _, u := range s.utts {
		us, ue := ms(u[0]), ms(u[1])
		var hit []int
		for i, g := range segs {
			end := g.endMS
			if end < 0 {
				end = 1 << 62
			}
			if g.onsetMS < ue && end > us {
				hit = append(hit, i)
				used[i] = true
			}
		}
		switch {
		case len(hit) == 0:
			sc.missed++
			continue
		case len(hit) > 1:
			sc.split++
		}
		g := segs[hit[0]]
		last := segs[hit[len(hit)-1]]
		oe := g.onsetMS - us
		if oe < 0 {
			oe = -oe
		}
		sc.matched++
		sc.onsetErrSum += oe
		sc.onsetErrMax = max(sc.onsetErrMax, oe)
		sc.latencySum += g.decidedMS - us
		okOnset := oe <= turnOnsetTolMS
		if !okOnset {
			sc.lateOnset++
		}
		ee := last.endMS - ue
		okEnd := last.endMS >= 0 && ee >= 0 && ee <= int64(silenceMS+turnEndTolMS)
		if !okEnd {
			sc.badEnd++
		}
		if last.endMS >= 0 {
			sc.endErrSum += ee
			sc.endErrMax = max(sc.endErrMax, ee)
		}
		if okOnset && okEnd && len(hit) == 1 {
			sc.hits++
		}
	}
	for i := range segs {
		if !used[i] {
			sc.falseStarts++
		}
	}
	return sc
}

// vadCondition is a noise condition for a speech scene.
type vadCondition struct {
	name string
	kind int     // vadWhite, vadPink, or -1 for none
	snr  float64 // dB
}

var vadConditions = []vadCondition{
	{"clean", -1, 0},
	{"white 20 dB", vadWhite, 20},
	{"pink 20 dB", vadPink, 20},
	{"white 10 dB", vadWhite, 10},
	{"pink 10 dB", vadPink, 10},
	{"white 5 dB", vadWhite, 5},
	{"pink 5 dB", vadPink, 5},
}

// vadSceneSeeds is how many synthetic scenes (8 utterances each) each
// condition averages over (fewer under the race detector, which slows the
// synthesis and the VAD about tenfold and adds nothing to these
// single-goroutine measurements; see vad_race_test.go).
var vadSceneSeeds uint64 = 4

// vadScenes caches noisy scenes: several tests use the same ones. Callers
// must not modify a returned signal.
var vadScenes sync.Map // vadSceneKey → *vadSignal

type vadSceneKey struct {
	rate int
	seed uint64
	c    vadCondition
}

// vadNoisyScene returns synthetic scene seed under condition c at rate:
// speech at -26 dBFS over a -70 dBFS microphone floor, plus the condition's
// noise.
func vadNoisyScene(rate int, seed uint64, c vadCondition) *vadSignal {
	k := vadSceneKey{rate, seed, c}
	if s, ok := vadScenes.Load(k); ok {
		return s.(*vadSignal)
	}
	s := vadMakeNoisyScene(rate, seed, c)
	vadScenes.Store(k, s)
	return s
}

func vadMakeNoisyScene(rate int, seed uint64, c vadCondition) *vadSignal {
	s := vadSpeechScene(rate, seed, 8)
	rng := rand.New(rand.NewPCG(seed, 99))
	vadAddFloor(s, rng, -70)
	if c.kind >= 0 {
		vadAddNoise(s, rng, c.kind, c.snr)
	}
	return s
}

// vadNoiseOnly is a noise-only test signal that must never start a turn.
type vadNoiseOnly struct {
	name string
	gen  func(rate int) *vadSignal
}

// vadNoiseCache caches noise-only signals by name and rate.
var vadNoiseCache sync.Map

// make returns the signal at rate (cached; callers must not modify it).
func (n vadNoiseOnly) make(rate int) *vadSignal {
	k := fmt.Sprint(n.name, rate)
	if s, ok := vadNoiseCache.Load(k); ok {
		return s.(*vadSignal)
	}
	s := n.gen(rate)
	vadNoiseCache.Store(k, s)
	return s
}

// vadNoiseSignals are the noise-only signals: clicks, coughs, knocks, hum,
// and steady noise, each over a quiet floor.
var vadNoiseSignals = []vadNoiseOnly{
	{"clicks 10-50 ms", func(rate int) *vadSignal {
		s := vadNewSignal(rate, rate*8)
		rng := rand.New(rand.NewPCG(11, 1))
		vadAddFloor(s, rng, -60)
		for i, d := range []int{10, 20, 30, 40, 50, 50, 30} {
			vadAddBurst(s, rng, vadWhite, 600+i*1000, d, -6, 0.3)
		}
		return s
	}},
	{"typing clicks (10 ms, every 120 ms)", func(rate int) *vadSignal {
		s := vadNewSignal(rate, rate*5)
		rng := rand.New(rand.NewPCG(12, 1))
		vadAddFloor(s, rng, -60)
		for at := 500; at < 4500; at += 100 + rng.IntN(60) {
			vadAddBurst(s, rng, vadWhite, at, 10, -15, 0.3)
		}
		return s
	}},
	{"coughs 150 ms (brown, pink)", func(rate int) *vadSignal {
		s := vadNewSignal(rate, rate*8)
		rng := rand.New(rand.NewPCG(13, 1))
		vadAddFloor(s, rng, -60)
		for i := 0; i < 6; i++ {
			kind := []int{vadBrown, vadPink, vadWhite}[i%3]
			vadAddBurst(s, rng, kind, 700+i*1200, 150, -12, 8)
		}
		return s
	}},
	{"door knocks", func(rate int) *vadSignal {
		s := vadNewSignal(rate, rate*6)
		rng := rand.New(rand.NewPCG(14, 1))
		vadAddFloor(s, rng, -60)
		for _, at := range []int{800, 1050, 1300, 3000, 3250, 4500} {
			vadAddKnock(s, rng, at, -10)
		}
		return s
	}},
	{"hum 50 Hz", func(rate int) *vadSignal {
		s := vadNewSignal(rate, rate*6)
		vadAddFloor(s, rand.New(rand.NewPCG(15, 1)), -60)
		vadAddHum(s, 50, -30)
		return s
	}},
	{"hum 60 Hz", func(rate int) *vadSignal {
		s := vadNewSignal(rate, rate*6)
		vadAddFloor(s, rand.New(rand.NewPCG(16, 1)), -60)
		vadAddHum(s, 60, -30)
		return s
	}},
	{"white noise -30 dBFS", func(rate int) *vadSignal {
		s := vadNewSignal(rate, rate*6)
		vadAddFloor(s, rand.New(rand.NewPCG(17, 1)), -30)
		return s
	}},
	{"pink noise, coughs and clicks", func(rate int) *vadSignal {
		s := vadNewSignal(rate, rate*8)
		rng := rand.New(rand.NewPCG(18, 1))
		noise := vadMakeNoise(rng, vadPink, len(s.x))
		for i := range s.x {
			s.x[i] = 0.01 * noise[i]
		}
		for i := 0; i < 5; i++ {
			vadAddBurst(s, rng, vadBrown, 1000+i*1300, 150, -12, 8)
			vadAddBurst(s, rng, vadWhite, 1600+i*1300, 30, -10, 0.3)
		}
		return s
	}},
}

// vadTable formats rows of cells as an aligned text table.
func vadTable(rows [][]string) string {
	w := make([]int, len(rows[0]))
	for _, r := range rows {
		for i, c := range r {
			w[i] = max(w[i], len([]rune(c)))
		}
	}
	var b strings.Builder
	for _, r := range rows {
		for i, c := range r {
			b.WriteString(c)
			if i < len(r)-1 {
				b.WriteString(strings.Repeat(" ", w[i]-len([]rune(c))+2))
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}
