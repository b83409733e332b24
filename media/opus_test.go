package media

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// speechLike returns seconds of a voiced-speech-like test signal at rate:
// a glottal-like harmonic series on a gliding 110-180 Hz fundamental, shaped
// by two formant peaks, amplitude-modulated at a syllable rate with short
// pauses, plus a little noise.
func speechLike(rate int, seconds float64) []int16 {
	n := int(float64(rate) * seconds)
	out := make([]int16, n)
	rng := rand.New(rand.NewPCG(7, 7))
	var phase float64
	for i := range out {
		t := float64(i) / float64(rate)
		f0 := 145 + 35*math.Sin(2*math.Pi*0.7*t)
		phase += 2 * math.Pi * f0 / float64(rate)
		var v float64
		for h := 1; h*int(f0) < min(rate/2, 5000); h++ {
			fh := float64(h) * f0
			// Formants near 700 Hz and 1800 Hz on a falling spectrum.
			w := 1/float64(h) + 1.5*math.Exp(-sq((fh-700)/250)) + 0.8*math.Exp(-sq((fh-1800)/300))
			v += w * math.Sin(float64(h)*phase)
		}
		env := math.Max(0, math.Sin(2*math.Pi*2.5*t)) // 5 syllables/s with gaps
		v = 3000*env*v + 100*rng.NormFloat64()
		out[i] = int16(max(-32768, min(32767, v)))
	}
	return out
}

func sq(x float64) float64 { return x * x }

// encodeAll encodes pcm (at enc's rate) in 20 ms frames, dropping a
// partial last frame.
func encodeAll(t testing.TB, enc *OpusEncoder, pcm []int16) [][]byte {
	t.Helper()
	var pkts [][]byte
	fs := enc.FrameSize()
	for i := 0; i+fs <= len(pcm); i += fs {
		p, err := enc.Encode(pcm[i:i+fs], nil)
		if err != nil {
			t.Fatal(err)
		}
		pkts = append(pkts, p)
	}
	return pkts
}

// bestLag returns the lag (got delayed by lag relative to ref) in
// [0, maxLag] maximizing the normalized correlation, and that correlation.
func bestLag(ref, got []int16, maxLag int) (int, float64) {
	best, bestC := 0, -2.0
	for lag := 0; lag <= maxLag; lag++ {
		var xy, xx, yy float64
		for i := 0; i < len(ref) && i+lag < len(got); i++ {
			x, y := float64(ref[i]), float64(got[i+lag])
			xy += x * y
			xx += x * x
			yy += y * y
		}
		if c := xy / math.Sqrt(xx*yy); c > bestC {
			best, bestC = lag, c
		}
	}
	return best, bestC
}

func TestOpusRoundTrip(t *testing.T) {
	tests := []struct{ encRate, decRate int }{
		{48000, 48000},
		{48000, 16000}, // WebRTC audio straight to the recognizer's rate
		{24000, 16000},
		{24000, 24000},
		{16000, 16000},
		{48000, 8000},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("enc%d/dec%d", tc.encRate, tc.decRate), func(t *testing.T) {
			src := speechLike(tc.encRate, 2)
			enc, err := NewOpusEncoder(tc.encRate)
			if err != nil {
				t.Fatal(err)
			}
			pkts := encodeAll(t, enc, src)
			dec, err := NewOpusDecoder(tc.decRate)
			if err != nil {
				t.Fatal(err)
			}
			var out []int16
			var bytes int
			for _, p := range pkts {
				if len(p) == 0 || len(p) > OpusMaxPacketSize {
					t.Fatalf("packet of %d bytes", len(p))
				}
				bytes += len(p)
				before := len(out)
				out, err = dec.Decode(p, out)
				if err != nil {
					t.Fatal(err)
				}
				if got := len(out) - before; got != tc.decRate/50 {
					t.Fatalf("packet decoded to %d samples, want %d", got, tc.decRate/50)
				}
			}
			kbps := float64(bytes*8) / 2 / 1000
			if kbps < 20 || kbps > 40 {
				t.Errorf("bitrate %.1f kbps, want about 32", kbps)
			}
			// Reference: the source at the decoder's rate.
			ref := src
			if tc.decRate != tc.encRate {
				ref = resampleAll(t, tc.encRate, tc.decRate, src)
			}
			ref = ref[:len(out)]
			// Correlate half a second (from 0.1 s, past the start-up).
			lag, c := bestLag(ref[tc.decRate/10:tc.decRate*6/10], out[tc.decRate/10:], tc.decRate/50)
			wantLag := float64(enc.PreSkip()) * float64(tc.decRate) / 48000
			if math.Abs(float64(lag)-wantLag) > float64(tc.decRate)/1000 {
				t.Errorf("decoded audio delayed %d samples, want about %.1f (the pre-skip)", lag, wantLag)
			}
			if c < 0.9 {
				t.Errorf("correlation with the source %.3f, want > 0.9", c)
			}
			e := 20 * math.Log10(rmsFloat(out[lag:])/rmsFloat(ref[:len(out)-lag]))
			if math.Abs(e) > 2 {
				t.Errorf("level changed by %.2f dB", e)
			}
			t.Logf("%d packets, %.1f kbps, lag %d, correlation %.3f, level %+.2f dB", len(pkts), kbps, lag, c, e)
		})
	}
}

func TestOpusPacketSamples(t *testing.T) {
	tests := []struct {
		name   string
		packet []byte
		rate   int
		want   int
		bad    bool
	}{
		{"CELT FB 20ms", []byte{31 << 3, 1}, 48000, 960, false},
		{"CELT FB 20ms at 16k", []byte{31 << 3}, 16000, 320, false},
		{"CELT NB 2.5ms at 8k", []byte{16 << 3}, 8000, 20, false},
		{"SILK WB 20ms at 12k", []byte{9 << 3}, 12000, 240, false},
		{"SILK NB 60ms code 1", []byte{3<<3 | 1}, 48000, 5760, false},
		{"Hybrid 10ms two frames", []byte{12<<3 | 2, 0}, 24000, 480, false},
		{"code 3 six 20ms frames", []byte{31<<3 | 3, 6}, 48000, 5760, false},
		{"code 3 seven 20ms frames", []byte{31<<3 | 3, 7}, 48000, 0, true},
		{"code 3 zero frames", []byte{31<<3 | 3, 0}, 48000, 0, true},
		{"code 3 no count", []byte{31<<3 | 3}, 48000, 0, true},
		{"empty", nil, 48000, 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := OpusPacketSamples(tc.packet, tc.rate)
			if tc.bad {
				if !errors.Is(err, ErrBadOpusPacket) {
					t.Fatalf("err = %v, want ErrBadOpusPacket", err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("= %d, %v; want %d", got, err, tc.want)
			}
		})
	}
	if _, err := OpusPacketSamples([]byte{0}, 44100); err == nil || errors.Is(err, ErrBadOpusPacket) {
		t.Errorf("rate 44100: err = %v", err)
	}
}

func TestOpusDecodeBadPackets(t *testing.T) {
	enc, _ := NewOpusEncoder(48000)
	good := encodeAll(t, enc, speechLike(48000, 0.1))
	tests := []struct {
		name   string
		packet []byte
	}{
		{"nil", nil},
		{"empty", []byte{}},
		{"oversize", make([]byte, OpusMaxPacketSize+1)},
		{"code 3 without count", []byte{0xFB}},
		{"code 3 zero frames", []byte{0xFB, 0x00}},
		{"over 120 ms", []byte{3<<3 | 3, 3, 1, 2, 3}},
		{"code 1 odd payload", []byte{31<<3 | 1, 1, 2, 3}},
		{"code 2 length past end", []byte{31<<3 | 2, 250, 1, 2}},
		{"code 3 padding past end", []byte{31<<3 | 3, 0x41, 200, 1}},
		{"code 3 vbr lengths past end", []byte{31<<3 | 3, 0x83, 250, 250, 1}},
	}
	dec, err := NewOpusDecoder(16000)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dst := []int16{1, 2, 3}
			out, err := dec.Decode(tc.packet, dst)
			if !errors.Is(err, ErrBadOpusPacket) {
				t.Fatalf("err = %v, want ErrBadOpusPacket", err)
			}
			if len(out) != 3 {
				t.Errorf("dst changed length to %d", len(out))
			}
			t.Log(err)
			// The decoder still works.
			if out, err := dec.Decode(good[1], nil); err != nil || len(out) != 320 {
				t.Fatalf("decode after error: %d samples, %v", len(out), err)
			}
		})
	}
}

func TestOpusDecodeLost(t *testing.T) {
	enc, _ := NewOpusEncoder(48000)
	pkts := encodeAll(t, enc, speechLike(48000, 0.5))
	dec, _ := NewOpusDecoder(16000)
	// Concealment before any packet is silence.
	out, err := dec.DecodeLost(nil, 320)
	if err != nil || len(out) != 320 {
		t.Fatalf("DecodeLost: %d, %v", len(out), err)
	}
	for _, v := range out {
		if v != 0 {
			t.Fatal("concealment before any audio is not silence")
		}
	}
	out = out[:0]
	for _, p := range pkts[:20] {
		if out, err = dec.Decode(p, out); err != nil {
			t.Fatal(err)
		}
	}
	before := len(out)
	out, err = dec.DecodeLost(out, 320)
	if err != nil || len(out) != before+320 {
		t.Fatalf("DecodeLost: %d, %v", len(out)-before, err)
	}
	if RMS(out[before:]) == 0 {
		t.Error("concealment after speech is silent; want extrapolated audio")
	}
	// Decoding resumes after a loss.
	if out, err = dec.Decode(pkts[21], out); err != nil || len(out) != before+640 {
		t.Fatalf("decode after loss: %v", err)
	}
	for _, n := range []int{0, -40, 41, 2000, 1} {
		if _, err := dec.DecodeLost(nil, n); err == nil {
			t.Errorf("DecodeLost(%d) succeeded", n)
		}
	}
	if got, err := dec.DecodeLost(nil, 40); err != nil || len(got) != 40 {
		t.Errorf("DecodeLost(2.5 ms): %d, %v", len(got), err)
	}
}

func TestOpusConstructorsAndEncodeErrors(t *testing.T) {
	for _, r := range []int{0, 11025, 22050, 44100, 96000} {
		if _, err := NewOpusDecoder(r); err == nil {
			t.Errorf("NewOpusDecoder(%d) succeeded", r)
		}
		if _, err := NewOpusEncoder(r); err == nil {
			t.Errorf("NewOpusEncoder(%d) succeeded", r)
		}
	}
	enc, err := NewOpusEncoder(24000)
	if err != nil {
		t.Fatal(err)
	}
	if enc.SampleRate() != 24000 || enc.FrameSize() != 480 {
		t.Fatal("rate/frame size")
	}
	for _, n := range []int{0, 1, 479, 481, 720 * 4} {
		if _, err := enc.Encode(make([]int16, n), nil); err == nil {
			t.Errorf("Encode(%d samples) succeeded", n)
		}
	}
	for _, n := range []int{60, 120, 240, 480, 960, 1440} { // 2.5 to 60 ms
		p, err := enc.Encode(make([]int16, n), make([]byte, 0, 2000))
		if err != nil || len(p) == 0 {
			t.Errorf("Encode(%d samples): %d bytes, %v", n, len(p), err)
		}
	}
	if err := enc.SetBitrate(10); err == nil {
		t.Error("SetBitrate(10) succeeded")
	}
	if err := enc.SetBitrate(64000); err != nil {
		t.Error(err)
	}
	if err := enc.SetComplexity(11); err == nil {
		t.Error("SetComplexity(11) succeeded")
	}
	if err := enc.SetComplexity(5); err != nil {
		t.Error(err)
	}
	if c, err := enc.enc.Complexity(); err != nil || c != 5 {
		t.Errorf("complexity %d, %v", c, err)
	}
	if b, err := enc.enc.Bitrate(); err != nil || b != 64000 {
		t.Errorf("bitrate %d, %v", b, err)
	}
	dec, _ := NewOpusDecoder(12000)
	if dec.SampleRate() != 12000 {
		t.Error("decoder rate")
	}
}

func TestOpusNoAllocs(t *testing.T) {
	enc, _ := NewOpusEncoder(48000)
	src := speechLike(48000, 1)
	pkts := encodeAll(t, enc, src)
	dec, _ := NewOpusDecoder(16000)
	pcm := make([]int16, 0, 960)
	pkt := make([]byte, 0, OpusMaxPacketSize)
	i := 0
	allocs := testing.AllocsPerRun(100, func() {
		var err error
		pcm, err = dec.Decode(pkts[i%len(pkts)], pcm[:0])
		if err != nil {
			t.Fatal(err)
		}
		pkt, err = enc.Encode(src[960*(i%40):960*(i%40+1)], pkt)
		if err != nil {
			t.Fatal(err)
		}
		i++
	})
	if allocs != 0 {
		t.Errorf("%v allocs per packet, want 0", allocs)
	}
}

// FuzzOpusDecode feeds arbitrary bytes to the decoder: it must return
// samples or an error, never panic or crash, and agree with
// OpusPacketSamples on the length.
func FuzzOpusDecode(f *testing.F) {
	enc, _ := NewOpusEncoder(48000)
	for _, p := range encodeAll(f, enc, speechLike(48000, 0.2))[:5] {
		f.Add(p)
	}
	f.Add([]byte{})
	f.Add([]byte{0xFB, 0x03, 1, 2, 3})
	f.Add([]byte{0x0B, 0xFF, 0xFF})
	decs := make([]*OpusDecoder, 0, 2)
	for _, r := range []int{16000, 48000} {
		d, err := NewOpusDecoder(r)
		if err != nil {
			f.Fatal(err)
		}
		decs = append(decs, d)
	}
	f.Fuzz(func(t *testing.T, packet []byte) {
		for _, d := range decs {
			out, err := d.Decode(packet, nil)
			if err != nil {
				if !errors.Is(err, ErrBadOpusPacket) {
					t.Fatalf("error not wrapping ErrBadOpusPacket: %v", err)
				}
				continue
			}
			want, err := OpusPacketSamples(packet, d.SampleRate())
			if err != nil || len(out) != want {
				t.Fatalf("decoded %d samples; OpusPacketSamples = %d, %v", len(out), want, err)
			}
			if _, err := d.DecodeLost(nil, d.SampleRate()/50); err != nil {
				t.Fatal(err)
			}
		}
	})
}

func benchmarkOpusDecode(b *testing.B, rate int) {
	enc, _ := NewOpusEncoder(48000)
	pkts := encodeAll(b, enc, speechLike(48000, 1))
	dec, err := NewOpusDecoder(rate)
	if err != nil {
		b.Fatal(err)
	}
	pcm := make([]int16, 0, rate/50)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		pcm, err = dec.Decode(pkts[i%len(pkts)], pcm[:0])
		if err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/packet")
}

func BenchmarkOpusDecode20msTo16k(b *testing.B) { benchmarkOpusDecode(b, 16000) }
func BenchmarkOpusDecode20msTo48k(b *testing.B) { benchmarkOpusDecode(b, 48000) }

func benchmarkOpusEncode(b *testing.B, rate int) {
	enc, err := NewOpusEncoder(rate)
	if err != nil {
		b.Fatal(err)
	}
	src := speechLike(rate, 1)
	fs := enc.FrameSize()
	pkt := make([]byte, 0, OpusMaxPacketSize)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		off := fs * (i % 50)
		pkt, err = enc.Encode(src[off:off+fs], pkt)
		if err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/packet")
}

func BenchmarkOpusEncode20ms48k(b *testing.B) { benchmarkOpusEncode(b, 48000) }
func BenchmarkOpusEncode20ms24k(b *testing.B) { benchmarkOpusEncode(b, 24000) }
