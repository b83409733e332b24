package media

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// resamplePairs are the conversions Parley uses, plus a few more.
var resamplePairs = [][2]int{
	{24000, 16000}, // audio/pcm client audio -> recognizer
	{48000, 16000}, // 48 kHz PCM -> recognizer
	{16000, 24000},
	{22050, 24000}, // espeak-ng -> audio/pcm
	{22050, 48000}, // espeak-ng -> Opus
	{22050, 16000},
	{24000, 48000}, // audio/pcm -> Opus
	{48000, 24000},
	{8000, 16000}, // G.711 -> recognizer
	{8000, 24000}, // G.711 -> audio/pcm
	{16000, 8000},
	{24000, 8000},
	{44100, 16000},
	{16000, 48000},
}

func sineInt16(n, rate int, freq, amp float64) []int16 {
	s := make([]int16, n)
	for i := range s {
		s[i] = int16(math.Round(amp * math.Sin(2*math.Pi*freq*float64(i)/float64(rate))))
	}
	return s
}

func resampleAll(t testing.TB, from, to int, src []int16) []int16 {
	t.Helper()
	r, err := NewResampler(from, to)
	if err != nil {
		t.Fatal(err)
	}
	out := r.Process(nil, src)
	return r.Flush(out)
}

// sineFitSNR fits a*sin + b*cos + dc at freq to x by least squares and
// returns the power of the fit over the power of the residual, in dB.
func sineFitSNR(x []int16, rate int, freq float64) float64 {
	// Normal equations for [sin, cos, 1].
	var a [3][3]float64
	var y [3]float64
	for i, v := range x {
		ph := 2 * math.Pi * freq * float64(i) / float64(rate)
		b := [3]float64{math.Sin(ph), math.Cos(ph), 1}
		for r := range 3 {
			for c := range 3 {
				a[r][c] += b[r] * b[c]
			}
			y[r] += b[r] * float64(v)
		}
	}
	coef := solve3(a, y)
	var sig, res float64
	for i, v := range x {
		ph := 2 * math.Pi * freq * float64(i) / float64(rate)
		fit := coef[0]*math.Sin(ph) + coef[1]*math.Cos(ph)
		sig += fit * fit
		e := float64(v) - fit - coef[2]
		res += e * e
	}
	return 10 * math.Log10(sig/res)
}

func solve3(a [3][3]float64, y [3]float64) [3]float64 {
	// Gaussian elimination with partial pivoting.
	for c := range 3 {
		p := c
		for r := c + 1; r < 3; r++ {
			if math.Abs(a[r][c]) > math.Abs(a[p][c]) {
				p = r
			}
		}
		a[c], a[p] = a[p], a[c]
		y[c], y[p] = y[p], y[c]
		for r := c + 1; r < 3; r++ {
			f := a[r][c] / a[c][c]
			for k := c; k < 3; k++ {
				a[r][k] -= f * a[c][k]
			}
			y[r] -= f * y[c]
		}
	}
	var x [3]float64
	for r := 2; r >= 0; r-- {
		s := y[r]
		for k := r + 1; k < 3; k++ {
			s -= a[r][k] * x[k]
		}
		x[r] = s / a[r][r]
	}
	return x
}

func rmsFloat(x []int16) float64 {
	var s float64
	for _, v := range x {
		s += float64(v) * float64(v)
	}
	return math.Sqrt(s / float64(len(x)))
}

// A tone inside the passband comes out as a clean tone: everything that is
// not the tone (aliases, images, filter error) is > 60 dB down. The test
// allows 40 dB; the design gives about 70, limited by 16-bit rounding.
func TestResamplerPassbandSNR(t *testing.T) {
	for _, p := range resamplePairs {
		from, to := p[0], p[1]
		low := float64(min(from, to))
		for _, frac := range []float64{0.05, 0.2, 0.35} {
			freq := frac * low
			t.Run(fmt.Sprintf("%d-%d/%.0fHz", from, to, freq), func(t *testing.T) {
				src := sineInt16(from, from, freq, 20000) // 1 s
				out := resampleAll(t, from, to, src)
				if want := to; len(out) != want {
					t.Fatalf("1 s in gave %d samples, want %d", len(out), want)
				}
				// Skip the start-up and flush transients.
				mid := out[to/10 : len(out)-to/10]
				snr := sineFitSNR(mid, to, freq)
				if snr < 60 {
					t.Errorf("SNR %.1f dB, want > 60", snr)
				}
				// Passband gain within 0.1 dB.
				gain := 20 * math.Log10(rmsFloat(mid)/rmsFloat(src[from/10:len(src)-from/10]))
				if math.Abs(gain) > 0.1 {
					t.Errorf("passband gain %.3f dB", gain)
				}
				t.Logf("SNR %.1f dB, gain %+.4f dB", snr, gain)
			})
		}
	}
}

// A tone above the output's Nyquist frequency, which would alias, is
// removed: at least 60 dB down (the test requirement is 40 dB).
func TestResamplerStopbandAttenuation(t *testing.T) {
	for _, p := range resamplePairs {
		from, to := p[0], p[1]
		if to >= from {
			continue
		}
		for _, frac := range []float64{0.52, 0.6, 0.9} { // of the output rate
			freq := frac * float64(to)
			if freq >= float64(from)/2 {
				continue
			}
			t.Run(fmt.Sprintf("%d-%d/%.0fHz", from, to, freq), func(t *testing.T) {
				src := sineInt16(from, from, freq, 30000)
				out := resampleAll(t, from, to, src)
				mid := out[to/10 : len(out)-to/10]
				att := 20 * math.Log10(rmsFloat(src)/max(rmsFloat(mid), 1e-9))
				if att < 60 {
					t.Errorf("attenuation %.1f dB, want > 60", att)
				}
				t.Logf("attenuation %.1f dB", att)
			})
		}
	}
}

// Upsampling must not create images: a tone near the input Nyquist is the
// only thing in the output's upper band.
func TestResamplerImageRejection(t *testing.T) {
	for _, p := range resamplePairs {
		from, to := p[0], p[1]
		if to <= from {
			continue
		}
		freq := 0.38 * float64(from)
		t.Run(fmt.Sprintf("%d-%d", from, to), func(t *testing.T) {
			src := sineInt16(from, from, freq, 20000)
			out := resampleAll(t, from, to, src)
			mid := out[to/10 : len(out)-to/10]
			if snr := sineFitSNR(mid, to, freq); snr < 60 {
				t.Errorf("SNR with images %.1f dB, want > 60", snr)
			}
		})
	}
}

// Chunked processing equals one-shot processing sample for sample, for
// any chunking, including empty and one-sample chunks.
func TestResamplerChunkedEqualsOneShot(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	src := make([]int16, 15000)
	for i := range src {
		src[i] = int16(rng.IntN(40000) - 20000)
	}
	chunkings := []struct {
		name string
		next func() int
	}{
		{"1", func() int { return 1 }},
		{"7", func() int { return 7 }},
		{"20ms@24k", func() int { return 480 }},
		{"random", func() int { return rng.IntN(1500) }},
		{"big", func() int { return 6000 }},
	}
	for _, p := range resamplePairs {
		from, to := p[0], p[1]
		whole := resampleAll(t, from, to, src)
		for _, ch := range chunkings {
			t.Run(fmt.Sprintf("%d-%d/%s", from, to, ch.name), func(t *testing.T) {
				r, err := NewResampler(from, to)
				if err != nil {
					t.Fatal(err)
				}
				var out []int16
				for i := 0; i < len(src); {
					n := min(ch.next(), len(src)-i)
					out = r.Process(out, src[i:i+n])
					i += n
				}
				out = r.Flush(out)
				if !slices.Equal(out, whole) {
					t.Fatalf("chunked output differs: %d vs %d samples, first diff at %d", len(out), len(whole), firstDiff(out, whole))
				}
			})
		}
	}
}

func firstDiff(a, b []int16) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func TestResamplerResetAndLengths(t *testing.T) {
	tests := []struct {
		from, to, in, want int
	}{
		{24000, 16000, 480, 320},
		{48000, 16000, 960, 320},
		{16000, 24000, 320, 480},
		{22050, 24000, 22050, 24000},
		{22050, 24000, 1, 2}, // ceil(24000/22050)
		{8000, 24000, 160, 480},
		{16000, 16000, 333, 333},
		{24000, 16000, 0, 0},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%d-%d/%d", tc.from, tc.to, tc.in), func(t *testing.T) {
			r, err := NewResampler(tc.from, tc.to)
			if err != nil {
				t.Fatal(err)
			}
			src := sineInt16(tc.in, tc.from, 440, 10000)
			first := r.Flush(r.Process(nil, src))
			if len(first) != tc.want {
				t.Errorf("got %d samples, want %d", len(first), tc.want)
			}
			// Flush resets: the same input gives the same output again.
			second := r.Flush(r.Process(nil, src))
			if !slices.Equal(first, second) {
				t.Error("output after Flush differs from the first run")
			}
			r.Process(nil, sineInt16(1000, tc.from, 300, 5000))
			r.Reset()
			if third := r.Flush(r.Process(nil, src)); !slices.Equal(first, third) {
				t.Error("output after Reset differs from the first run")
			}
			if r.FromRate() != tc.from || r.ToRate() != tc.to {
				t.Error("rates")
			}
		})
	}
}

// DC passes at exactly unity gain (every phase is normalized), and the
// output is aligned with the input: an impulse at input time t comes out
// centred at output time t.
func TestResamplerDCAndAlignment(t *testing.T) {
	for _, p := range resamplePairs {
		from, to := p[0], p[1]
		t.Run(fmt.Sprintf("%d-%d", from, to), func(t *testing.T) {
			dc := make([]int16, from/2)
			for i := range dc {
				dc[i] = 10000
			}
			out := resampleAll(t, from, to, dc)
			for i := to / 20; i < len(out)-to/20; i++ {
				if out[i] != 10000 {
					t.Fatalf("DC out[%d] = %d", i, out[i])
				}
			}
			// A smooth bump (a Hann pulse, band-limited well below both
			// Nyquists) centred at input time 0.25 s.
			bump := make([]int16, from/2)
			width := float64(from) / 200 // 5 ms half-width
			for i := range bump {
				x := (float64(i) - float64(from)/4) / width
				if math.Abs(x) < 1 {
					bump[i] = int16(20000 * (0.5 + 0.5*math.Cos(math.Pi*x)))
				}
			}
			out = resampleAll(t, from, to, bump)
			var num, den float64
			for i, v := range out {
				num += float64(i) * float64(v)
				den += float64(v)
			}
			centre := num / den / float64(to)
			if math.Abs(centre-0.25) > 0.25/float64(to) {
				t.Errorf("pulse centre at %.6f s, want 0.25 (off by %.2f output samples)", centre, (centre-0.25)*float64(to))
			}
		})
	}
}

func TestNewResamplerErrors(t *testing.T) {
	tests := []struct{ from, to int }{
		{0, 16000}, {16000, -1}, {16000, 10_000_000}, {999, 16000},
		{383_999, 384_000}, // coprime: a 384000-phase filter
	}
	for _, tc := range tests {
		if _, err := NewResampler(tc.from, tc.to); err == nil {
			t.Errorf("NewResampler(%d, %d) succeeded", tc.from, tc.to)
		} else {
			t.Logf("%v", err)
		}
	}
}

func TestNewResamplerCommonRates(t *testing.T) {
	rates := []int{8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 96000}
	for _, from := range rates {
		for _, to := range rates {
			r, err := NewResampler(from, to)
			if err != nil {
				t.Errorf("NewResampler(%d, %d): %v", from, to, err)
				continue
			}
			// 0.2 s in, 0.2 s out.
			if out := r.Flush(r.Process(nil, make([]int16, from/5))); len(out) != to/5 {
				t.Errorf("%d -> %d: 0.2 s gave %d samples", from, to, len(out))
			}
		}
	}
}

func TestResamplerNoAllocs(t *testing.T) {
	for _, p := range [][2]int{{24000, 16000}, {48000, 16000}, {22050, 24000}, {16000, 24000}} {
		r, err := NewResampler(p[0], p[1])
		if err != nil {
			t.Fatal(err)
		}
		in := sineInt16(p[0]/50, p[0], 440, 10000)
		out := make([]int16, 0, p[1]/50+8)
		allocs := testing.AllocsPerRun(200, func() {
			out = r.Process(out[:0], in)
		})
		if allocs != 0 {
			t.Errorf("%d->%d: %v allocs per 20 ms frame", p[0], p[1], allocs)
		}
	}
}

func benchmarkResampler(b *testing.B, from, to int) {
	r, err := NewResampler(from, to)
	if err != nil {
		b.Fatal(err)
	}
	in := sineInt16(from/50, from, 440, 10000) // 20 ms
	out := make([]int16, 0, to/50+8)
	b.ReportAllocs()
	b.SetBytes(int64(2 * len(in)))
	for b.Loop() {
		out = r.Process(out[:0], in)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/frame")
}

func BenchmarkResample20ms24kTo16k(b *testing.B) { benchmarkResampler(b, 24000, 16000) }
func BenchmarkResample20ms48kTo16k(b *testing.B) { benchmarkResampler(b, 48000, 16000) }
func BenchmarkResample20ms22kTo24k(b *testing.B) { benchmarkResampler(b, 22050, 24000) }
func BenchmarkResample20ms16kTo24k(b *testing.B) { benchmarkResampler(b, 16000, 24000) }
func BenchmarkResample20ms8kTo16k(b *testing.B)  { benchmarkResampler(b, 8000, 16000) }
