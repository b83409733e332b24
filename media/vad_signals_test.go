package media

// Test signals for the VAD and turn detector: synthetic speech (glottal
// pulses through formant resonators, with syllable-rate amplitude modulation,
// intonation and fricatives), noises (white, pink, brown, clicks, a cough, a
// door knock, mains hum), mixing at a given SNR, ground-truth labels, and
// spoken sentences from espeak-ng when it is installed.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
)

// vadSignal is a test signal with ground truth: samples in [-1, 1] at rate,
// per-sample speech labels, and the utterance intervals [start, end) in
// samples.
type vadSignal struct {
	rate  int
	x     []float64
	label []bool
	utts  [][2]int

	once  sync.Once // computes the caches below on first use
	pcm16 []int16   // x as PCM
	probs []float64 // a fresh VAD's probability for each 10 ms frame
}

func vadNewSignal(rate, n int) *vadSignal {
	return &vadSignal{rate: rate, x: make([]float64, n), label: make([]bool, n)}
}

// pcm converts to int16 with clipping. The signal must not change after
// the first call: the result is cached, and shared.
func (s *vadSignal) pcm() []int16 {
	s.fill()
	return s.pcm16
}

// vadProbs returns the probability a fresh VAD gives each 10 ms frame of the
// signal (cached like pcm), so that tests sweeping turn parameters run the
// VAD once per signal.
func (s *vadSignal) vadProbs() []float64 {
	s.fill()
	return s.probs
}

func (s *vadSignal) fill() {
	s.once.Do(func() {
		s.pcm16 = make([]int16, len(s.x))
		for i, v := range s.x {
			s.pcm16[i] = int16(max(-32768, min(32767, math.Round(v*32768))))
		}
		v, err := NewVAD(s.rate)
		if err != nil {
			panic(err)
		}
		fs := v.FrameSize()
		s.probs = make([]float64, len(s.pcm16)/fs)
		for f := range s.probs {
			s.probs[f] = v.Process(s.pcm16[f*fs : (f+1)*fs])
		}
	})
}

// frameLabels labels each 10 ms frame: speech when at least half its samples
// are labelled speech.
func (s *vadSignal) frameLabels() []bool {
	fs := s.rate / 100
	out := make([]bool, len(s.x)/fs)
	for f := range out {
		c := 0
		for _, l := range s.label[f*fs : (f+1)*fs] {
			if l {
				c++
			}
		}
		out[f] = 2*c >= fs
	}
	return out
}

// speechPower is the mean square of the signal over labelled samples.
func (s *vadSignal) speechPower() float64 {
	var sum float64
	n := 0
	for i, v := range s.x {
		if s.label[i] {
			sum += v * v
			n++
		}
	}
	if n == 0 {
		return 0
	}
	return sum / float64(n)
}

// vadResonator is a Klatt two-pole resonator.
type vadResonator struct{ a, b, c, y1, y2 float64 }

// set tunes the resonator to centre f and bandwidth bw (Hz).
func (r *vadResonator) set(f, bw, rate float64) {
	t := 1 / rate
	r.c = -math.Exp(-2 * math.Pi * bw * t)
	r.b = 2 * math.Exp(-math.Pi*bw*t) * math.Cos(2*math.Pi*f*t)
	r.a = 1 - r.b - r.c
}

func (r *vadResonator) step(x float64) float64 {
	y := r.a*x + r.b*r.y1 + r.c*r.y2
	r.y2, r.y1 = r.y1, y
	return y
}

// vadVowels are formant targets (F1, F2, F3) in Hz.
var vadVowels = [][3]float64{
	{730, 1090, 2440}, // a
	{270, 2290, 3010}, // i
	{300, 870, 2240},  // u
	{530, 1840, 2480}, // e
	{570, 840, 2410},  // o
	{660, 1720, 2410}, // æ
	{490, 1350, 1690}, // ɝ
}

// vadSpeaker sets the voice of synthetic speech.
type vadSpeaker struct {
	f0     float64 // mean pitch, Hz
	formK  float64 // formant scale (1 male, ~1.15 female)
	breath float64 // aspiration noise relative to voicing
}

// vadSynthUtterance writes one utterance of nsyl syllables into s starting
// at sample at, with peak level amp, and returns its end sample. Labels mark
// every syllable (consonant and vowel) while its envelope is above -30 dB of
// the syllable peak.
func vadSynthUtterance(s *vadSignal, rng *rand.Rand, sp vadSpeaker, at, nsyl int, amp float64) int {
	rate := float64(s.rate)
	ms := func(v float64) int { return int(v * rate / 1000) }
	var r1, r2, r3, r4 vadResonator
	var glot1, glot2 float64
	var lipPrev float64
	phase, carry := 0.0, 0.0
	glotA := 1 - math.Exp(-2*math.Pi*730/rate) // glottal roll-off corner, same at every rate
	pos := at
	curF := vadVowels[rng.IntN(len(vadVowels))]
	first := pos
	// Highpass/bandpass state for fricatives.
	var fr vadResonator
	for syl := 0; syl < nsyl; syl++ {
		// Optional fricative onset (s, sh, f) ~40% of syllables.
		if rng.Float64() < 0.4 {
			n := ms(40 + rng.Float64()*60)
			fc := math.Min(2500+rng.Float64()*3500, rate*0.42)
			famp := amp * (0.08 + 0.12*rng.Float64())
			fr.set(fc, 1500, rate)
			for i := 0; i < n && pos < len(s.x); i++ {
				env := math.Sin(math.Pi * float64(i) / float64(n))
				y := fr.step(rng.NormFloat64())
				s.x[pos] += famp * env * y * 0.5
				if env > 0.03 {
					s.label[pos] = true
				}
				pos++
			}
		}
		// Vowel nucleus with formant transition, pitch contour and jitter.
		target := vadVowels[rng.IntN(len(vadVowels))]
		n := ms(110 + rng.Float64()*170)
		att, dec := ms(20+rng.Float64()*25), ms(40+rng.Float64()*50)
		sylAmp := amp * (0.55 + 0.45*rng.Float64())
		progress := float64(syl) / float64(max(nsyl-1, 1))
		for i := 0; i < n && pos < len(s.x); i++ {
			if i%32 == 0 { // formant transitions, retuned every 32 samples
				tr := math.Min(float64(i)/float64(ms(60)), 1)
				var f [3]float64
				for k := range f {
					f[k] = sp.formK * (curF[k] + (target[k]-curF[k])*tr)
				}
				r1.set(f[0], 80, rate)
				r2.set(f[1], 100, rate)
				r3.set(math.Min(f[2], rate*0.45), 150, rate)
				r4.set(math.Min(3500*sp.formK, rate*0.45), 250, rate)
			}
			// Declination plus a rise-fall within the syllable.
			f0 := sp.f0 * (1.1 - 0.2*progress) * (1 + 0.08*math.Sin(math.Pi*float64(i)/float64(n)))
			f0 *= 1 + 0.01*rng.NormFloat64()
			// Glottal pulses at fractional sample times (split linearly
			// between two samples, output one sample late) so the pitch
			// period has no sampling jitter at low rates.
			inc := f0 / rate
			phase += inc
			src := carry
			carry = 0
			if phase >= 1 {
				phase -= 1
				frac := phase / inc // the pulse was frac samples ago
				src += frac
				carry = 1 - frac
			}
			// Glottal pulse shaping: two one-pole low-passes (-12 dB/oct).
			glot1 += glotA * (src - glot1)
			glot2 += glotA * (glot1 - glot2)
			e := glot2 + sp.breath*0.003*rng.NormFloat64() // aspiration, ~15-20 dB below voicing
			y := r4.step(r3.step(r2.step(r1.step(e))))
			lip := y - lipPrev // radiation, +6 dB/oct
			lipPrev = y
			var env float64
			switch {
			case i < att:
				env = 0.5 - 0.5*math.Cos(math.Pi*float64(i)/float64(att))
			case i > n-dec:
				env = 0.5 + 0.5*math.Cos(math.Pi*float64(i-(n-dec))/float64(dec))
			default:
				env = 1
			}
			s.x[pos] += sylAmp * env * lip * 8
			if env > 0.03 {
				s.label[pos] = true
			}
			pos++
		}
		curF = target
		// Gap: mostly short closures within words, sometimes a word break.
		switch g := rng.Float64(); {
		case g < 0.5:
			pos += ms(rng.Float64() * 30)
		case g < 0.85:
			pos += ms(40 + rng.Float64()*80)
		default:
			pos += ms(120 + rng.Float64()*120)
		}
	}
	// Utterance bounds are the first and last labelled samples.
	end := min(pos, len(s.x))
	for end > first && !s.label[end-1] {
		end--
	}
	st := first
	for st < end && !s.label[st] {
		st++
	}
	s.utts = append(s.utts, [2]int{st, end})
	return end
}

// vadNormalisePeak scales the speech so that its active RMS is rmsDB dBFS.
func vadSetSpeechLevel(s *vadSignal, rmsDB float64) {
	p := s.speechPower()
	if p == 0 {
		return
	}
	g := math.Pow(10, rmsDB/20) / math.Sqrt(p)
	for i := range s.x {
		s.x[i] *= g
	}
}

// vadSpeechScene synthesizes nutt utterances separated by pauses, with
// speakers cycling through a male, a female and a child-like voice.
func vadSpeechScene(rate int, seed uint64, nutt int) *vadSignal {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	speakers := []vadSpeaker{
		{f0: 110, formK: 1, breath: 0.5},
		{f0: 200, formK: 1.15, breath: 1},
		{f0: 150, formK: 1.05, breath: 0.7},
	}
	// Generous length; trimmed at the end.
	s := vadNewSignal(rate, rate*(2+nutt*6))
	pos := rate * 1 // 1 s lead-in
	for u := 0; u < nutt; u++ {
		sp := speakers[u%len(speakers)]
		nsyl := 3 + rng.IntN(10)
		end := vadSynthUtterance(s, rng, sp, pos, nsyl, 0.3)
		pos = end + rate*(1400+rng.IntN(1600))/1000
	}
	s.x = s.x[:pos]
	s.label = s.label[:pos]
	vadSetSpeechLevel(s, -26)
	return s
}

// vadNoise kinds.
const (
	vadWhite = iota
	vadPink
	vadBrown
)

// vadMakeNoise returns n samples of unit-variance noise of the given colour.
func vadMakeNoise(rng *rand.Rand, kind, n int) []float64 {
	out := make([]float64, n)
	var b0, b1, b2, b3, b4, b5, b6, br float64
	for i := range out {
		w := rng.NormFloat64()
		switch kind {
		case vadWhite:
			out[i] = w
		case vadPink: // Paul Kellet's refined filter
			b0 = 0.99886*b0 + w*0.0555179
			b1 = 0.99332*b1 + w*0.0750759
			b2 = 0.96900*b2 + w*0.1538520
			b3 = 0.86650*b3 + w*0.3104856
			b4 = 0.55000*b4 + w*0.5329522
			b5 = -0.7616*b5 - w*0.0168980
			out[i] = b0 + b1 + b2 + b3 + b4 + b5 + b6 + w*0.5362
			b6 = w * 0.115926
		case vadBrown: // leaky integrator
			br = 0.995*br + w
			out[i] = br
		}
	}
	var p float64
	for _, v := range out {
		p += v * v
	}
	g := 1 / math.Sqrt(p/float64(n)+1e-30)
	for i := range out {
		out[i] *= g
	}
	return out
}

// vadAddNoise mixes noise of the given kind so that the speech-to-noise
// power ratio is snrDB (speech power measured over labelled samples).
func vadAddNoise(s *vadSignal, rng *rand.Rand, kind int, snrDB float64) {
	noise := vadMakeNoise(rng, kind, len(s.x))
	g := math.Sqrt(s.speechPower() / math.Pow(10, snrDB/10))
	for i := range s.x {
		s.x[i] += g * noise[i]
	}
}

// vadAddFloor adds white noise at levelDB dBFS RMS (a microphone's floor).
func vadAddFloor(s *vadSignal, rng *rand.Rand, levelDB float64) {
	noise := vadMakeNoise(rng, vadWhite, len(s.x))
	g := math.Pow(10, levelDB/20)
	for i := range s.x {
		s.x[i] += g * noise[i]
	}
}

// vadAddBurst adds a noise burst of colour kind, dur ms long at at ms, with
// peak RMS levelDB dBFS and a fast attack and exponential decay.
func vadAddBurst(s *vadSignal, rng *rand.Rand, kind int, atMS, durMS int, levelDB, attackMS float64) {
	rate := float64(s.rate)
	n := int(float64(durMS) * rate / 1000)
	at := int(float64(atMS) * rate / 1000)
	noise := vadMakeNoise(rng, kind, n)
	g := math.Pow(10, levelDB/20)
	att := attackMS * rate / 1000
	for i := 0; i < n && at+i < len(s.x); i++ {
		fi := float64(i)
		env := math.Exp(-3 * fi / float64(n)) // -26 dB over the burst
		if fi < att {
			env *= fi / att
		}
		s.x[at+i] += g * env * noise[i]
	}
}

// vadAddKnock adds a door knock or thump: a damped low resonance (~120 Hz
// body, 40 ms decay) excited by a short noise burst.
func vadAddKnock(s *vadSignal, rng *rand.Rand, atMS int, levelDB float64) {
	rate := float64(s.rate)
	at := int(float64(atMS) * rate / 1000)
	n := int(0.25 * rate)
	var body, panel vadResonator
	body.set(120, 25, rate)
	panel.set(700, 300, rate)
	g := math.Pow(10, levelDB/20)
	for i := 0; i < n && at+i < len(s.x); i++ {
		var e float64
		if i < int(0.004*rate) {
			e = rng.NormFloat64()
		}
		y := body.step(e)*4 + panel.step(e)
		s.x[at+i] += g * y
	}
}

// vadAddHum adds mains hum at f Hz (fundamental plus 2nd, 3rd and 5th
// harmonics) at levelDB dBFS RMS over the whole signal.
func vadAddHum(s *vadSignal, f, levelDB float64) {
	g := math.Pow(10, levelDB/20) * math.Sqrt(2) / math.Sqrt(1+0.25+0.09+0.01)
	for i := range s.x {
		t := float64(i) / float64(s.rate)
		w := 2 * math.Pi * f * t
		s.x[i] += g * (math.Sin(w) + 0.5*math.Sin(2*w+0.3) + 0.3*math.Sin(3*w+1) + 0.1*math.Sin(5*w+2))
	}
}

// vadReadWAV reads a 16-bit PCM mono WAV file.
func vadReadWAV(path string) ([]int16, int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, 0, err
	}
	if len(data) < 12 || string(data[:4]) != "RIFF" || string(data[8:12]) != "WAVE" {
		return nil, 0, errors.New("not a RIFF WAVE file")
	}
	var rate, channels, bits int
	p := 12
	for p+8 <= len(data) {
		id := string(data[p : p+4])
		size := int(binary.LittleEndian.Uint32(data[p+4 : p+8]))
		body := data[p+8 : min(p+8+size, len(data))]
		switch id {
		case "fmt ":
			if len(body) < 16 {
				return nil, 0, errors.New("short fmt chunk")
			}
			channels = int(binary.LittleEndian.Uint16(body[2:4]))
			rate = int(binary.LittleEndian.Uint32(body[4:8]))
			bits = int(binary.LittleEndian.Uint16(body[14:16]))
		case "data":
			if channels != 1 || bits != 16 {
				return nil, 0, errors.New("want 16-bit mono")
			}
			out := make([]int16, len(body)/2)
			if err := binary.Read(bytes.NewReader(body[:2*len(out)]), binary.LittleEndian, out); err != nil {
				return nil, 0, err
			}
			return out, rate, nil
		}
		p += 8 + size + size&1
	}
	return nil, 0, errors.New("no data chunk")
}

// vadEspeak speaks each sentence with espeak-ng, converts it to rate with
// sox and returns the PCM of each. It skips the test when either tool is
// missing.
func vadEspeak(t testing.TB, rate int, voice string, sentences []string) [][]int16 {
	t.Helper()
	for _, tool := range []string{"espeak-ng", "sox"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed: skipping spoken-sentence test", tool)
		}
	}
	dir := t.TempDir()
	var out [][]int16
	for i, text := range sentences {
		raw := filepath.Join(dir, "raw.wav")
		conv := filepath.Join(dir, "conv.wav")
		if b, err := exec.Command("espeak-ng", "-v", voice, "-w", raw, text).CombinedOutput(); err != nil {
			t.Fatalf("espeak-ng sentence %d: %v: %s", i, err, b)
		}
		if b, err := exec.Command("sox", raw, "-r", strconv.Itoa(rate), "-c", "1", "-b", "16", conv).CombinedOutput(); err != nil {
			t.Fatalf("sox: %v: %s", err, b)
		}
		pcm, r, err := vadReadWAV(conv)
		if err != nil || r != rate {
			t.Fatalf("reading converted sentence: rate %d, %v", r, err)
		}
		out = append(out, pcm)
	}
	return out
}

// vadSpokenScene lays out spoken sentences with pauses and labels them from
// the clean signal: a 10 ms frame is speech when its energy is within 35 dB
// of the loudest frame of its sentence. Utterance bounds are the first and
// last speech frames of each sentence.
func vadSpokenScene(rate int, sentences [][]int16, seed uint64) *vadSignal {
	rng := rand.New(rand.NewPCG(seed, 7))
	total := rate
	for _, p := range sentences {
		total += len(p) + rate*2
	}
	s := vadNewSignal(rate, total)
	pos := rate
	fs := rate / 100
	for _, p := range sentences {
		var peak float64
		nf := len(p) / fs
		en := make([]float64, nf)
		for f := 0; f < nf; f++ {
			var e float64
			for _, v := range p[f*fs : (f+1)*fs] {
				x := float64(v) / 32768
				e += x * x
			}
			en[f] = e / float64(fs)
			peak = max(peak, en[f])
		}
		first, last := -1, -1
		for f, e := range en {
			if e > peak*math.Pow(10, -3.5) {
				if first < 0 {
					first = f
				}
				last = f
				for i := pos + f*fs; i < pos+(f+1)*fs; i++ {
					s.label[i] = true
				}
			}
		}
		for i, v := range p {
			s.x[pos+i] = float64(v) / 32768
		}
		if first >= 0 {
			s.utts = append(s.utts, [2]int{pos + first*fs, pos + (last+1)*fs})
		}
		pos += len(p) + rate*(1500+rng.IntN(1000))/1000
	}
	s.x = s.x[:pos]
	s.label = s.label[:pos]
	vadSetSpeechLevel(s, -26)
	return s
}
