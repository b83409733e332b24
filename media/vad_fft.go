package media

import "math"

// vadFFT is a real-input FFT of a fixed power-of-two size n, computed as a
// complex FFT of size n/2 (even samples in the real part, odd samples in the
// imaginary part) followed by the usual split step. Twiddles and the
// bit-reversal permutation are computed once; transforms reuse the object's
// buffers and allocate nothing. It is not safe for concurrent use.
type vadFFT struct {
	n    int       // real transform size
	m    int       // complex transform size, n/2
	rev  []int32   // bit-reversal permutation of 0..m-1
	twc  []float64 // per-stage twiddles of the complex FFT (see complexInPlace)
	tws  []float64
	cosN []float64 // cos(2πk/n), k <= m: twiddles of the split step
	sinN []float64 // sin(2πk/n)
	re   []float64 // complex work buffer (real parts)
	im   []float64 // complex work buffer (imaginary parts)
}

// newVADFFT prepares a real FFT of size n, a power of two >= 8.
func newVADFFT(n int) *vadFFT {
	if n < 8 || n&(n-1) != 0 {
		panic("media: vadFFT size must be a power of two >= 8")
	}
	m := n / 2
	f := &vadFFT{
		n: n, m: m,
		rev:  make([]int32, m),
		twc:  make([]float64, max(m-4, 0)),
		tws:  make([]float64, max(m-4, 0)),
		cosN: make([]float64, m+1),
		sinN: make([]float64, m+1),
		re:   make([]float64, m),
		im:   make([]float64, m),
	}
	bits := 0
	for 1<<bits < m {
		bits++
	}
	for i := 0; i < m; i++ {
		r := 0
		for b := 0; b < bits; b++ {
			if i&(1<<b) != 0 {
				r |= 1 << (bits - 1 - b)
			}
		}
		f.rev[i] = int32(r)
	}
	for size := 8; size <= m; size <<= 1 {
		half := size / 2
		for j := 0; j < half; j++ {
			a := 2 * math.Pi * float64(j) / float64(size)
			f.twc[half-4+j], f.tws[half-4+j] = math.Cos(a), math.Sin(a)
		}
	}
	for k := 0; k <= m; k++ {
		a := 2 * math.Pi * float64(k) / float64(n)
		f.cosN[k], f.sinN[k] = math.Cos(a), math.Sin(a)
	}
	return f
}

// power computes |X[k]|² of the real input x (len n) for k in [0, len(dst)),
// len(dst) <= n/2+1, where X[k] = Σ x[j]·e^(−2πijk/n).
func (f *vadFFT) power(x []float64, dst []float64) {
	m := f.m
	re, im := f.re[:m], f.im[:m]
	x = x[:2*m]
	// Pack even/odd samples into one complex sequence, bit-reversed.
	for i, r := range f.rev {
		re[r] = x[2*i]
		im[r] = x[2*i+1]
	}
	f.complexInPlace(re, im)
	// Split: X[k] = E[k] + W^k·O[k], with E and O the transforms of the even
	// and odd samples recovered from Z[k] and conj(Z[m−k]).
	dst = dst[:min(len(dst), m+1)]
	cosN, sinN := f.cosN[:m+1], f.sinN[:m+1]
	for k := range dst {
		var zr, zi, cr, ci float64
		if k == 0 || k == m {
			zr, zi = re[0], im[0]
			cr, ci = re[0], -im[0]
		} else {
			zr, zi = re[k], im[k]
			cr, ci = re[m-k], -im[m-k]
		}
		er, ei := 0.5*(zr+cr), 0.5*(zi+ci)  // E[k]
		or, oi := 0.5*(zi-ci), -0.5*(zr-cr) // O[k] = (Z − conj)/(2i)
		c, s := cosN[k], sinN[k]            // W^k = c − i·s
		xr := er + c*or + s*oi
		xi := ei + c*oi - s*or
		dst[k] = xr*xr + xi*xi
	}
}

// complexInPlace runs an iterative radix-2 decimation-in-time FFT over
// bit-reversed input.
func (f *vadFFT) complexInPlace(re, im []float64) {
	m := len(re)
	im = im[:m]
	// Stage of size 2: twiddle 1.
	for i := 0; i+1 < m; i += 2 {
		ar, ai := re[i], im[i]
		br, bi := re[i+1], im[i+1]
		re[i], im[i] = ar+br, ai+bi
		re[i+1], im[i+1] = ar-br, ai-bi
	}
	// Stage of size 4: twiddles 1 and −i.
	for i := 0; i+3 < m; i += 4 {
		ar, ai := re[i], im[i]
		br, bi := re[i+2], im[i+2]
		re[i], im[i] = ar+br, ai+bi
		re[i+2], im[i+2] = ar-br, ai-bi
		ar, ai = re[i+1], im[i+1]
		br, bi = im[i+3], -re[i+3] // (−i)·b
		re[i+1], im[i+1] = ar+br, ai+bi
		re[i+3], im[i+3] = ar-br, ai-bi
	}
	// Later stages. Twiddles for the stage of size s are stored
	// contiguously at tw[s/2−4 : s−4] (j < s/2), so the inner loop walks
	// them sequentially.
	tc, ts := f.twc, f.tws
	for size := 8; size <= m; size <<= 1 {
		half := size >> 1
		wc := tc[half-4 : size-4]
		ws := ts[half-4 : size-4]
		for start := 0; start < m; start += size {
			ar := re[start : start+half]
			ai := im[start : start+half]
			br := re[start+half : start+size]
			bi := im[start+half : start+size]
			br = br[:len(ar)]
			bi = bi[:len(ar)]
			ai = ai[:len(ar)]
			wc := wc[:len(ar)]
			ws := ws[:len(ar)]
			for j := range ar {
				c, s := wc[j], ws[j]
				xr, xi := br[j], bi[j]
				tr := c*xr + s*xi
				ti := c*xi - s*xr
				yr, yi := ar[j], ai[j]
				br[j] = yr - tr
				bi[j] = yi - ti
				ar[j] = yr + tr
				ai[j] = yi + ti
			}
		}
	}
}
