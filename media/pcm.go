package media

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
)

// BytesToPCM16LE converts little-endian 16-bit samples (the audio/pcm wire
// format) to []int16. It writes len(b)/2 samples to dst[:0] and returns
// that slice, allocating only when cap(dst) is too small. An odd len(b) is
// an error (and returns dst[:0]): a byte stream cut inside a sample.
func BytesToPCM16LE(dst []int16, b []byte) ([]int16, error) {
	if len(b)%2 != 0 {
		return dst[:0], fmt.Errorf("media: 16-bit PCM of odd length %d bytes", len(b))
	}
	n := len(b) / 2
	dst = slices.Grow(dst[:0], n)[:n]
	for i := range dst {
		dst[i] = int16(binary.LittleEndian.Uint16(b[2*i:]))
	}
	return dst, nil
}

// PCM16LEToBytes converts samples to little-endian bytes. It writes
// 2*len(pcm) bytes to dst[:0] and returns that slice, allocating only when
// cap(dst) is too small.
func PCM16LEToBytes(dst []byte, pcm []int16) []byte {
	n := 2 * len(pcm)
	dst = slices.Grow(dst[:0], n)[:n]
	for i, s := range pcm {
		binary.LittleEndian.PutUint16(dst[2*i:], uint16(s))
	}
	return dst
}

// RMS returns the root mean square of the samples, in sample units
// (0 to 32768); 0 for no samples.
func RMS(pcm []int16) float64 {
	if len(pcm) == 0 {
		return 0
	}
	var sum uint64
	for _, s := range pcm {
		v := int64(s)
		sum += uint64(v * v)
	}
	return math.Sqrt(float64(sum) / float64(len(pcm)))
}

// DBFS returns the RMS level in decibels relative to full scale (32768), so
// a full-scale square wave reads 0 dBFS, a full-scale sine -3.01 dBFS, and
// each halving of amplitude 6.02 dB less. Silence (and no samples) reads
// negative infinity, which compares below any threshold.
func DBFS(pcm []int16) float64 {
	r := RMS(pcm)
	if r == 0 {
		return math.Inf(-1)
	}
	return 20 * math.Log10(r/32768)
}
