package media

import (
	"math"
	"slices"
	"testing"
)

func TestBytesToPCM16LE(t *testing.T) {
	tests := []struct {
		name    string
		in      []byte
		want    []int16
		wantErr bool
	}{
		{"empty", nil, []int16{}, false},
		{"little endian", []byte{0x01, 0x00, 0x00, 0x01, 0xFF, 0xFF, 0x00, 0x80, 0xFF, 0x7F}, []int16{1, 256, -1, -32768, 32767}, false},
		{"odd length", []byte{1, 2, 3}, nil, true},
		{"one byte", []byte{1}, nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := BytesToPCM16LE(make([]int16, 7), tc.in)
			if tc.wantErr {
				if err == nil {
					t.Fatal("no error")
				}
				if len(got) != 0 {
					t.Errorf("error with %d samples", len(got))
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("= %v, %v; want %v", got, err, tc.want)
			}
			if back := PCM16LEToBytes([]byte("junk"), got); !slices.Equal(back, tc.in) && len(tc.in) > 0 {
				t.Errorf("PCM16LEToBytes = %x, want %x", back, tc.in)
			}
		})
	}
}

func TestPCMConversionNoAllocs(t *testing.T) {
	pcm := sineInt16(480, 24000, 440, 10000)
	b := make([]byte, 0, 960)
	out := make([]int16, 0, 480)
	var level float64
	allocs := testing.AllocsPerRun(100, func() {
		b = PCM16LEToBytes(b, pcm)
		out, _ = BytesToPCM16LE(out, b)
		level = DBFS(out) + RMS(out)
	})
	if allocs != 0 {
		t.Errorf("%v allocs per frame", allocs)
	}
	if !slices.Equal(out, pcm) || level == 0 {
		t.Fatal("round trip")
	}
}

func TestRMSAndDBFS(t *testing.T) {
	square := make([]int16, 1000)
	for i := range square {
		square[i] = 32767
		if i%2 == 1 {
			square[i] = -32768
		}
	}
	tests := []struct {
		name      string
		pcm       []int16
		rms, dbfs float64
		tol       float64
	}{
		{"empty", nil, 0, math.Inf(-1), 0},
		{"silence", make([]int16, 100), 0, math.Inf(-1), 0},
		{"full-scale square", square, 32767.5, 0, 0.001},
		{"full-scale sine", sineInt16(48000, 48000, 1000, 32767), 32767 / math.Sqrt2, -3.0103, 0.01},
		{"half-scale sine", sineInt16(48000, 48000, 1000, 16384), 16384 / math.Sqrt2, -9.0309, 0.01},
		{"constant 1", []int16{1, -1, 1, -1}, 1, -90.309, 0.001},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := RMS(tc.pcm); math.Abs(got-tc.rms) > tc.tol*max(1, tc.rms) {
				t.Errorf("RMS = %v, want %v", got, tc.rms)
			}
			got := DBFS(tc.pcm)
			if math.IsInf(tc.dbfs, -1) {
				if !math.IsInf(got, -1) {
					t.Errorf("DBFS = %v, want -Inf", got)
				}
				return
			}
			if math.Abs(got-tc.dbfs) > tc.tol*10 {
				t.Errorf("DBFS = %.4f, want %.4f", got, tc.dbfs)
			}
		})
	}
}

func BenchmarkBytesToPCM16LE20ms24k(b *testing.B) {
	in := PCM16LEToBytes(nil, sineInt16(480, 24000, 440, 10000))
	out := make([]int16, 0, 480)
	b.ReportAllocs()
	for b.Loop() {
		out, _ = BytesToPCM16LE(out, in)
	}
}
