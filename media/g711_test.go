package media

import (
	"math"
	"testing"
)

func TestG711KnownVectors(t *testing.T) {
	tests := []struct {
		name   string
		law    string
		linear int16
		code   byte
		back   int16 // decode(code)
	}{
		{"mu silence", "mu", 0, 0xFF, 0},
		{"mu +1", "mu", 1, 0xFF, 0},
		{"mu -1 negative zero", "mu", -1, 0x7F, 0},
		{"mu small positive", "mu", 8, 0xFE, 8},
		{"mu small negative", "mu", -8, 0x7E, -8},
		{"mu max", "mu", math.MaxInt16, 0x80, 32124},
		{"mu min", "mu", math.MinInt16, 0x00, -32124},
		{"mu clip edge", "mu", 32635, 0x80, 32124},
		{"mu 1000", "mu", 1000, 0xCE, 988},
		{"a silence", "a", 0, 0xD5, 8},
		{"a -1", "a", -1, 0x55, -8},
		{"a 8", "a", 8, 0xD5, 8},
		{"a 16", "a", 16, 0xD4, 24},
		{"a max", "a", math.MaxInt16, 0xAA, 32256},
		{"a min", "a", math.MinInt16, 0x2A, -32256},
		{"a 1000", "a", 1000, 0xFA, 1008},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var code []byte
			var back []int16
			if tc.law == "mu" {
				code = MuLawEncode(nil, []int16{tc.linear})
				back = MuLawDecode(nil, []byte{tc.code})
			} else {
				code = ALawEncode(nil, []int16{tc.linear})
				back = ALawDecode(nil, []byte{tc.code})
			}
			if code[0] != tc.code {
				t.Errorf("encode(%d) = %#02x, want %#02x", tc.linear, code[0], tc.code)
			}
			if back[0] != tc.back {
				t.Errorf("decode(%#02x) = %d, want %d", tc.code, back[0], tc.back)
			}
		})
	}
}

// Every code decodes to a value that encodes back to the same code, except
// µ-law's "negative zero" 0x7F, which decodes to 0 and so re-encodes as 0xFF.
func TestG711DecodeEncodeIdentity(t *testing.T) {
	codes := make([]byte, 256)
	for i := range codes {
		codes[i] = byte(i)
	}
	tests := []struct {
		name   string
		decode func([]int16, []byte) []int16
		encode func([]byte, []int16) []byte
		except map[byte]byte
	}{
		{"mu-law", MuLawDecode, MuLawEncode, map[byte]byte{0x7F: 0xFF}},
		{"A-law", ALawDecode, ALawEncode, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			lin := tc.decode(nil, codes)
			again := tc.encode(nil, lin)
			for i, c := range again {
				want := byte(i)
				if w, ok := tc.except[want]; ok {
					want = w
				}
				if c != want {
					t.Errorf("code %#02x -> %d -> %#02x, want %#02x", i, lin[i], c, want)
				}
			}
			// Decoded values are distinct apart from the exception and
			// symmetric: code c and c^0x80 are negatives of each other.
			for i := range 128 {
				if lin[i] != -lin[i|0x80] {
					t.Errorf("decode(%#02x)=%d is not -decode(%#02x)=%d", i, lin[i], i|0x80, lin[i|0x80])
				}
			}
		})
	}
}

// Exhaustive over all 65536 inputs: the round trip error is at most half a
// quantization step of the segment the value landed in.
func TestG711RoundTripErrorBound(t *testing.T) {
	all := make([]int16, 65536)
	for i := range all {
		all[i] = int16(i - 32768)
	}
	tests := []struct {
		name     string
		encode   func([]byte, []int16) []byte
		decode   func([]int16, []byte) []int16
		halfStep func(code byte) int
		clip     int // inputs with |x| above this may also lose the overload
	}{
		{"mu-law", MuLawEncode, MuLawDecode, func(c byte) int {
			e := int((^c & 0x70) >> 4)
			return 4 << e
		}, g711MuLawClip},
		{"A-law", ALawEncode, ALawDecode, func(c byte) int {
			s := int(((c ^ 0x55) & 0x70) >> 4)
			if s == 0 {
				return 8
			}
			return 4 << s
		}, 1 << 15},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			codes := tc.encode(nil, all)
			back := tc.decode(nil, codes)
			maxErr := 0
			for i, x := range all {
				err := int(back[i]) - int(x)
				if err < 0 {
					err = -err
				}
				maxErr = max(maxErr, err)
				bound := tc.halfStep(codes[i])
				if ax := abs16(x); ax > tc.clip {
					bound += ax - tc.clip
				}
				if err > bound {
					t.Fatalf("x=%d code=%#02x back=%d: error %d > bound %d", x, codes[i], back[i], err, bound)
				}
			}
			t.Logf("max abs round-trip error %d", maxErr)
			// Relative error on speech-level signals stays around 3%:
			// the point of companding.
			for _, x := range []int16{300, 1000, 5000, 20000, -777, -12345} {
				y := tc.decode(nil, tc.encode(nil, []int16{x}))[0]
				if rel := math.Abs(float64(y)-float64(x)) / math.Abs(float64(x)); rel > 0.035 {
					t.Errorf("x=%d -> %d: relative error %.3f", x, y, rel)
				}
			}
		})
	}
}

func abs16(x int16) int {
	if x < 0 {
		return -int(x)
	}
	return int(x)
}

func TestG711ReusesBuffer(t *testing.T) {
	pcm := make([]int16, 160)
	for i := range pcm {
		pcm[i] = int16(8000 * math.Sin(float64(i)/5))
	}
	codes := make([]byte, 0, 160)
	out := make([]int16, 0, 160)
	allocs := testing.AllocsPerRun(100, func() {
		codes = MuLawEncode(codes, pcm)
		out = MuLawDecode(out, codes)
		codes = ALawEncode(codes, pcm)
		out = ALawDecode(out, codes)
	})
	if allocs != 0 {
		t.Errorf("allocs per frame = %v, want 0", allocs)
	}
	if len(out) != 160 || len(codes) != 160 {
		t.Fatalf("lengths %d %d", len(out), len(codes))
	}
	// dst[:0] semantics: a longer dst is truncated, not appended to.
	long := make([]int16, 500)
	if got := MuLawDecode(long, []byte{0xFF, 0x80}); len(got) != 2 || &got[0] != &long[0] {
		t.Errorf("MuLawDecode did not write to dst[:0]: len %d", len(got))
	}
	if got := ALawEncode(nil, nil); len(got) != 0 {
		t.Errorf("empty input gave %d codes", len(got))
	}
}

func BenchmarkMuLawEncode20ms8k(b *testing.B) {
	pcm := make([]int16, 160)
	for i := range pcm {
		pcm[i] = int16(8000 * math.Sin(float64(i)/5))
	}
	dst := make([]byte, 0, 160)
	b.ReportAllocs()
	for b.Loop() {
		dst = MuLawEncode(dst, pcm)
	}
}

func BenchmarkMuLawDecode20ms8k(b *testing.B) {
	src := make([]byte, 160)
	for i := range src {
		src[i] = byte(i * 7)
	}
	dst := make([]int16, 0, 160)
	b.ReportAllocs()
	for b.Loop() {
		dst = MuLawDecode(dst, src)
	}
}
