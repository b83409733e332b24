package media

import (
	"fmt"
	"math"
	"slices"
	"sync"
)

// Resampler design. For rates from and to with g = gcd(from, to), the
// converter upsamples by L = to/g, low-pass filters at the "prototype" rate
// L*from and keeps every M-th sample, M = from/g. Only the kept samples are
// computed, and of the prototype filter only the taps that meet non-zero
// (non-stuffed) input samples: output k uses phase p = (k*M + c) mod L of
// the filter, K taps long, over the K most recent input samples. c, the
// filter's centre, aligns output k with input time k/to exactly, so the
// output has no delay: the latency shows up instead as samples held back
// until the input that follows them has arrived (about K/2 input samples).
//
// The prototype is a Kaiser-windowed sinc with its transition band from
// 0.40 to 0.50 of the lower of the two rates (so 0 to 6.4 kHz is kept flat
// when converting to or from 16 kHz) and a design stopband attenuation of
// resampleAttenuationDB; every phase is normalized to unity DC gain.
const (
	resampleAttenuationDB = 70.0
	resamplePassEdge      = 0.40 // of the lower rate
	resampleStopEdge      = 0.50 // of the lower rate: nothing aliases below its Nyquist
	resampleMinRate       = 1000
	resampleMaxRate       = 384000
	resampleMaxCoefs      = 1 << 21 // table size guard (8 MiB of float32)
)

// resampleFilter is the read-only polyphase table for one ratio, shared by
// every Resampler of that ratio.
type resampleFilter struct {
	l, m  int       // up and down factors (coprime)
	taps  int       // K, taps per phase
	shift int       // c: prototype-rate offset of output 0 (the filter centre)
	coef  []float32 // phase p is coef[p*taps : (p+1)*taps], oldest input first
	adv   []int32   // adv[p]: input samples to advance after an output in phase p
	nextP []int32   // nextP[p]: phase of the following output
}

var resampleFilters struct {
	sync.Mutex
	m map[[2]int]*resampleFilter
}

func resampleGCD(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// resampleBesselI0 is the zeroth-order modified Bessel function of the
// first kind, by its power series.
func resampleBesselI0(x float64) float64 {
	sum, term := 1.0, 1.0
	q := x * x / 4
	for k := 1; k < 200; k++ {
		term *= q / float64(k*k)
		sum += term
		if term < sum*1e-17 {
			break
		}
	}
	return sum
}

// resampleDesign returns the (cached) filter for converting from -> to.
func resampleDesign(from, to int) (*resampleFilter, error) {
	g := resampleGCD(from, to)
	l, m := to/g, from/g
	key := [2]int{l, m}
	resampleFilters.Lock()
	defer resampleFilters.Unlock()
	if f := resampleFilters.m[key]; f != nil {
		return f, nil
	}

	low := float64(min(from, to))
	proto := float64(l) * float64(from) // prototype sample rate
	fc := (resamplePassEdge + resampleStopEdge) / 2 * low / proto
	dw := 2 * math.Pi * (resampleStopEdge - resamplePassEdge) * low / proto
	// Kaiser's estimates of the length and shape for the attenuation.
	n := int(math.Ceil((resampleAttenuationDB-8)/(2.285*dw))) + 1
	beta := 0.1102 * (resampleAttenuationDB - 8.7)
	k := (n + l - 1) / l
	if k < 2 {
		k = 2
	}
	if k*l > resampleMaxCoefs {
		return nil, fmt.Errorf("media: resampling %d Hz to %d Hz needs a %d-tap filter (ratio %d/%d); limit is %d",
			from, to, k*l, l, m, resampleMaxCoefs)
	}
	// Odd length so the centre falls on a prototype sample; the unused last
	// tap (when k*l is even) stays zero.
	n = k * l
	if n%2 == 0 {
		n--
	}
	c := (n - 1) / 2
	h := make([]float64, k*l)
	i0b := resampleBesselI0(beta)
	for i := range n {
		x := float64(i - c)
		var s float64
		if i == c {
			s = 2 * fc
		} else {
			s = math.Sin(2*math.Pi*fc*x) / (math.Pi * x)
		}
		r := x / float64(c)
		w := resampleBesselI0(beta*math.Sqrt(max(0, 1-r*r))) / i0b
		h[i] = s * w
	}

	f := &resampleFilter{
		l: l, m: m, taps: k, shift: c,
		coef:  make([]float32, k*l),
		adv:   make([]int32, l),
		nextP: make([]int32, l),
	}
	for p := range l {
		// Output in phase p is sum over j of h[p+j*l] * x[newest-j]; store
		// the taps oldest-input-first so the inner loop runs forward.
		var sum float64
		for j := range k {
			sum += h[p+j*l]
		}
		row := f.coef[p*k : (p+1)*k]
		for j := range k {
			row[k-1-j] = float32(h[p+j*l] / sum)
		}
		f.adv[p] = int32((p + m) / l)
		f.nextP[p] = int32((p + m) % l)
	}
	if resampleFilters.m == nil {
		resampleFilters.m = make(map[[2]int]*resampleFilter)
	}
	resampleFilters.m[key] = f
	return f, nil
}

// Resampler converts a stream of 16-bit mono PCM from one sample rate to
// another. It keeps its filter history between calls, so audio can be fed
// in chunks of any size (including chunks that are not a whole number of
// output samples) and the output is identical, sample for sample, to
// converting the whole stream at once.
//
// The output is time-aligned with the input (output sample k is the signal
// at time k/toHz), with a latency of about half the filter length: the most
// recent few input samples are held until enough later input arrives, or
// until Flush. Quality: passband flat to 0.4 of the lower rate, stopband
// from its Nyquist frequency (0.5 of the lower rate) with about 70 dB of
// attenuation.
//
// A Resampler is not safe for concurrent use.
type Resampler struct {
	from, to int
	f        *resampleFilter // nil when from == to
	buf      []float32       // input history (buf[0] is the oldest kept sample)
	next     int             // index in buf of the newest sample the next output needs
	phase    int             // filter phase of the next output
	nin      int64           // input samples since creation or Reset
	nout     int64           // output samples since creation or Reset
}

// NewResampler returns a Resampler from fromHz to toHz. Rates from 1 kHz
// to 384 kHz are accepted as long as the reduced ratio's filter table stays
// within bounds, which every pair of the usual rates (8000, 11025, 12000,
// 16000, 22050, 24000, 32000, 44100, 48000, 96000) does; equal rates pass
// audio through unchanged. Resamplers of one ratio share their filter
// table, so creating one per session is cheap after the first.
func NewResampler(fromHz, toHz int) (*Resampler, error) {
	for _, hz := range []int{fromHz, toHz} {
		if hz < resampleMinRate || hz > resampleMaxRate {
			return nil, fmt.Errorf("media: resampler rate %d Hz out of range [%d, %d]", hz, resampleMinRate, resampleMaxRate)
		}
	}
	r := &Resampler{from: fromHz, to: toHz}
	if fromHz != toHz {
		f, err := resampleDesign(fromHz, toHz)
		if err != nil {
			return nil, err
		}
		r.f = f
		// Room for the history plus 20 ms of 48 kHz input: typical frames
		// never grow it.
		r.buf = make([]float32, 0, f.taps+1024)
	}
	r.Reset()
	return r, nil
}

// FromRate returns the input sample rate in Hz.
func (r *Resampler) FromRate() int { return r.from }

// ToRate returns the output sample rate in Hz.
func (r *Resampler) ToRate() int { return r.to }

// Reset discards the history, as if the Resampler were new. Use it between
// unrelated streams (e.g. utterances) to reuse the Resampler.
func (r *Resampler) Reset() {
	r.nin, r.nout = 0, 0
	if r.f == nil {
		return
	}
	// The signal before the first sample is silence: K-1 zeros of history.
	k := r.f.taps
	r.buf = r.buf[:k-1]
	clear(r.buf)
	r.next = k - 1 + r.f.shift/r.f.l
	r.phase = r.f.shift % r.f.l
}

// Process converts src and appends the output to dst, returning the
// extended slice. It produces about len(src)*toHz/fromHz samples (a few
// more or fewer, as the filter's look-ahead fills and empties). Once its
// internal buffer has grown to the largest chunk size it allocates nothing,
// apart from growing dst when dst lacks capacity.
func (r *Resampler) Process(dst, src []int16) []int16 {
	r.nin += int64(len(src))
	if r.f == nil {
		r.nout += int64(len(src))
		return append(dst, src...)
	}
	n := len(r.buf)
	r.buf = slices.Grow(r.buf, len(src))[:n+len(src)]
	in := r.buf[n:]
	for i, s := range src {
		in[i] = float32(s)
	}
	return r.run(dst, math.MaxInt64)
}

// Flush appends the output still held back for look-ahead (treating the
// input as followed by silence), so that the total output since creation or
// Reset is ceil(inputSamples*toHz/fromHz) samples, and then Resets.
func (r *Resampler) Flush(dst []int16) []int16 {
	if r.f == nil {
		r.Reset()
		return dst
	}
	l, m := int64(r.f.l), int64(r.f.m)
	target := (r.nin*l + m - 1) / m
	pad := r.f.taps + r.f.m/r.f.l + 1
	for r.nout < target {
		n := len(r.buf)
		r.buf = slices.Grow(r.buf, pad)[:n+pad]
		clear(r.buf[n:])
		dst = r.run(dst, target)
	}
	r.Reset()
	return dst
}

// run computes every output whose input window is available (at most
// limit outputs in total since Reset), appends them to dst and drops the
// history no later output needs.
func (r *Resampler) run(dst []int16, limit int64) []int16 {
	f := r.f
	k := f.taps
	buf := r.buf
	next, phase := r.next, r.phase
	nout := r.nout
	for next < len(buf) && nout < limit {
		w := buf[next+1-k : next+1]
		c := f.coef[phase*k : phase*k+k]
		dst = append(dst, resampleToInt16(resampleDot(c, w)))
		nout++
		next += int(f.adv[phase])
		phase = int(f.nextP[phase])
	}
	r.nout = nout
	r.phase = phase
	// Keep from the first sample the next output's window needs.
	if drop := min(next-(k-1), len(buf)); drop > 0 {
		n := copy(buf, buf[drop:])
		r.buf = buf[:n]
		next -= drop
	}
	r.next = next
	return dst
}

// resampleDot is the inner product of c and w (len(w) >= len(c)), with
// eight accumulators so the additions pipeline. The loop conditions check
// both lengths, which lets the compiler drop the bounds checks.
func resampleDot(c, w []float32) float32 {
	var s0, s1, s2, s3, s4, s5, s6, s7 float32
	for len(c) >= 8 && len(w) >= 8 {
		s0 += c[0] * w[0]
		s1 += c[1] * w[1]
		s2 += c[2] * w[2]
		s3 += c[3] * w[3]
		s4 += c[4] * w[4]
		s5 += c[5] * w[5]
		s6 += c[6] * w[6]
		s7 += c[7] * w[7]
		c, w = c[8:], w[8:]
	}
	for len(c) >= 1 && len(w) >= 1 {
		s0 += c[0] * w[0]
		c, w = c[1:], w[1:]
	}
	return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))
}

// resampleToInt16 rounds to the nearest integer and saturates.
func resampleToInt16(v float32) int16 {
	if v >= 32767 {
		return 32767
	}
	if v <= -32768 {
		return -32768
	}
	if v < 0 {
		return int16(v - 0.5)
	}
	return int16(v + 0.5)
}
