package media

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestVADFFTMatchesDFT checks the real FFT's power spectrum against a direct
// DFT for every size the VAD uses.
func TestVADFFTMatchesDFT(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	for _, n := range []int{8, 16, 32, 64, 128, 256, 512, 1024} {
		f := newVADFFT(n)
		x := make([]float64, n)
		for i := range x {
			x[i] = rng.NormFloat64()
		}
		got := make([]float64, n/2+1)
		f.power(x, got)
		for k := 0; k <= n/2; k++ {
			var re, im float64
			for j, v := range x {
				a := -2 * math.Pi * float64(j*k) / float64(n)
				re += v * math.Cos(a)
				im += v * math.Sin(a)
			}
			want := re*re + im*im
			if math.Abs(got[k]-want) > 1e-9*(1+want) {
				t.Fatalf("n=%d bin %d: got %g want %g", n, k, got[k], want)
			}
		}
	}
}

func BenchmarkVADFFT256(b *testing.B) {
	f := newVADFFT(256)
	x := make([]float64, 256)
	for i := range x {
		x[i] = math.Sin(float64(i))
	}
	p := make([]float64, 65)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		f.power(x, p)
	}
}
