package media

import (
	"math/bits"
	"slices"
)

// G.711 (ITU-T Recommendation G.711) companding of 16-bit linear PCM to
// 8-bit µ-law (North America, Japan; audio/pcmu) and A-law (Europe and the
// rest; audio/pcma).
//
// The codecs work on 16-bit samples: µ-law's 14-bit and A-law's 13-bit
// linear ranges are scaled up by 4 and 8 respectively, as in the widely used
// reference implementations (Sun's g711.c, ITU-T G.191). Decoding returns
// the centre of each quantization interval, so a round trip is off by at
// most half a step: 4·2^e for µ-law and A-law segment e (A-law segment 0
// likewise 8), plus clipping of µ-law inputs beyond ±32635.

const (
	g711MuLawBias = 0x84  // 132: µ-law bias, at 16-bit scale (33 << 2)
	g711MuLawClip = 32635 // largest magnitude µ-law encodes without overload
)

// g711MuLawTable and g711ALawTable map a code to its linear 16-bit value.
var (
	g711MuLawTable = g711MakeTable(g711MuLawDecodeSample)
	g711ALawTable  = g711MakeTable(g711ALawDecodeSample)
)

func g711MakeTable(f func(byte) int16) *[256]int16 {
	var t [256]int16
	for i := range t {
		t[i] = f(byte(i))
	}
	return &t
}

// g711MuLawDecodeSample expands one µ-law code (used to build the table).
func g711MuLawDecodeSample(c byte) int16 {
	u := ^c
	t := (int32(u&0x0F) << 3) + g711MuLawBias
	t <<= (u & 0x70) >> 4
	if u&0x80 != 0 {
		return int16(g711MuLawBias - t)
	}
	return int16(t - g711MuLawBias)
}

// g711ALawDecodeSample expands one A-law code (used to build the table).
func g711ALawDecodeSample(c byte) int16 {
	a := c ^ 0x55
	t := int32(a&0x0F) << 4
	switch seg := (a & 0x70) >> 4; seg {
	case 0:
		t += 8
	case 1:
		t += 0x108
	default:
		t = (t + 0x108) << (seg - 1)
	}
	if a&0x80 != 0 {
		return int16(t)
	}
	return int16(-t)
}

// g711MuLawEncodeSample compresses one 16-bit sample to µ-law.
func g711MuLawEncodeSample(x int16) byte {
	v := int32(x)
	var sign byte
	if v < 0 {
		v = -v
		sign = 0x80
	}
	if v > g711MuLawClip {
		v = g711MuLawClip
	}
	v += g711MuLawBias // 132 <= v <= 32767
	exp := bits.Len32(uint32(v)>>7) - 1
	mant := byte(v>>(exp+3)) & 0x0F
	return ^(sign | byte(exp<<4) | mant)
}

// g711ALawEncodeSample compresses one 16-bit sample to A-law.
func g711ALawEncodeSample(x int16) byte {
	v := int32(x) >> 3 // 13-bit
	mask := byte(0xD5)
	if v < 0 {
		mask = 0x55
		v = -v - 1
	}
	// 0 <= v <= 4095. Segment 0 covers [0,32), segment s >= 1 [16<<s, 32<<s).
	var seg, shift uint
	seg, shift = 0, 1
	if v >= 32 {
		seg = uint(bits.Len32(uint32(v))) - 5
		shift = seg
		if shift < 1 {
			shift = 1
		}
	}
	return (byte(seg<<4) | byte(v>>shift)&0x0F) ^ mask
}

// MuLawDecode expands µ-law codes to 16-bit linear PCM. It writes
// len(src) samples to dst[:0] and returns that slice: dst is reused when
// its capacity suffices, so decoding into the same buffer every frame
// allocates nothing. 0xFF and 0x7F decode to 0.
func MuLawDecode(dst []int16, src []byte) []int16 {
	dst = slices.Grow(dst[:0], len(src))[:len(src)]
	t := g711MuLawTable
	for i, c := range src {
		dst[i] = t[c]
	}
	return dst
}

// MuLawEncode compresses 16-bit linear PCM to µ-law. It writes len(src)
// codes to dst[:0] and returns that slice (no allocation when cap(dst) >=
// len(src)). Silence (0) encodes as 0xFF; magnitudes above 32635 clip.
func MuLawEncode(dst []byte, src []int16) []byte {
	dst = slices.Grow(dst[:0], len(src))[:len(src)]
	for i, x := range src {
		dst[i] = g711MuLawEncodeSample(x)
	}
	return dst
}

// ALawDecode expands A-law codes to 16-bit linear PCM. It writes len(src)
// samples to dst[:0] and returns that slice (no allocation when cap(dst) >=
// len(src)). A-law has no zero: 0xD5 and 0x55 decode to +8 and -8.
func ALawDecode(dst []int16, src []byte) []int16 {
	dst = slices.Grow(dst[:0], len(src))[:len(src)]
	t := g711ALawTable
	for i, c := range src {
		dst[i] = t[c]
	}
	return dst
}

// ALawEncode compresses 16-bit linear PCM to A-law. It writes len(src)
// codes to dst[:0] and returns that slice (no allocation when cap(dst) >=
// len(src)). Silence (0) encodes as 0xD5.
func ALawEncode(dst []byte, src []int16) []byte {
	dst = slices.Grow(dst[:0], len(src))[:len(src)]
	for i, x := range src {
		dst[i] = g711ALawEncodeSample(x)
	}
	return dst
}
