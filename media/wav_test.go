package media

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// wavChunk builds one RIFF chunk, with the pad byte after odd sizes.
func wavChunk(id string, body []byte) []byte {
	b := append([]byte(id), 0, 0, 0, 0)
	binary.LittleEndian.PutUint32(b[4:], uint32(len(body)))
	b = append(b, body...)
	if len(body)%2 == 1 {
		b = append(b, 0)
	}
	return b
}

func wavFmtBody(tag uint16, channels, rate, bits int) []byte {
	b := make([]byte, 16)
	binary.LittleEndian.PutUint16(b[0:], tag)
	binary.LittleEndian.PutUint16(b[2:], uint16(channels))
	binary.LittleEndian.PutUint32(b[4:], uint32(rate))
	binary.LittleEndian.PutUint32(b[8:], uint32(rate*channels*bits/8))
	binary.LittleEndian.PutUint16(b[12:], uint16(channels*bits/8))
	binary.LittleEndian.PutUint16(b[14:], uint16(bits))
	return b
}

func wavFile(chunks ...[]byte) []byte {
	body := []byte("WAVE")
	for _, c := range chunks {
		body = append(body, c...)
	}
	return append(wavChunk("RIFF", body)[:8], body...)
}

func le16(pcm ...int16) []byte { return PCM16LEToBytes(nil, pcm) }

func TestWAVRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		pcm  []int16
		rate int
	}{
		{"empty", nil, 16000},
		{"one sample", []int16{-32768}, 8000},
		{"speech 24k", speechLike(24000, 0.5), 24000},
		{"extremes", []int16{32767, -32768, 0, 1, -1}, 48000},
		{"long (several write chunks)", sineInt16(20000, 22050, 300, 12000), 22050},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem := AppendWAV([]byte("prefix"), tc.pcm, tc.rate)
			if !bytes.HasPrefix(mem, []byte("prefix")) {
				t.Fatal("AppendWAV did not append")
			}
			mem = mem[len("prefix"):]
			if len(mem) != 44+2*len(tc.pcm) {
				t.Fatalf("file is %d bytes, want %d", len(mem), 44+2*len(tc.pcm))
			}
			var buf bytes.Buffer
			if err := EncodeWAV(&buf, tc.pcm, tc.rate); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(buf.Bytes(), mem) {
				t.Fatal("EncodeWAV and AppendWAV differ")
			}
			pcm, rate, err := DecodeWAV(bytes.NewReader(mem))
			if err != nil {
				t.Fatal(err)
			}
			if rate != tc.rate || !slices.Equal(pcm, tc.pcm) {
				t.Fatalf("round trip: rate %d, %d samples; want %d, %d", rate, len(pcm), tc.rate, len(tc.pcm))
			}
		})
	}
}

// The file is what other tools read: sox agrees on rate, channels and
// length, when it is installed.
func TestWAVReadBySox(t *testing.T) {
	soxi, err := exec.LookPath("soxi")
	if err != nil {
		t.Skip("soxi (sox) not on PATH; make deps installs it")
	}
	path := filepath.Join(t.TempDir(), "a.wav")
	if err := os.WriteFile(path, AppendWAV(nil, speechLike(16000, 1.5), 16000), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(soxi, "-r", path).Output()
	if err != nil || strings.TrimSpace(string(out)) != "16000" {
		t.Fatalf("soxi -r: %q %v", out, err)
	}
	out, err = exec.Command(soxi, "-s", path).Output()
	if err != nil || strings.TrimSpace(string(out)) != "24000" {
		t.Fatalf("soxi -s: %q %v", out, err)
	}
}

func TestDecodeWAVFixtures(t *testing.T) {
	paths, _ := filepath.Glob("../testdata/audio/*.wav")
	if len(paths) == 0 {
		t.Skip("no fixtures in testdata/audio")
	}
	for _, p := range paths {
		t.Run(filepath.Base(p), func(t *testing.T) {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			pcm, rate, err := DecodeWAV(bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			if rate != 24000 || len(pcm) < 24000/2 {
				t.Errorf("rate %d, %d samples", rate, len(pcm))
			}
		})
	}
}

func TestDecodeWAVVariants(t *testing.T) {
	fmtMono := wavChunk("fmt ", wavFmtBody(1, 1, 16000, 16))
	ext := append(wavFmtBody(0xFFFE, 1, 16000, 16), 22, 0, 16, 0, 4, 0, 0, 0)
	ext = append(ext, wavPCMSubformat[:]...)
	extFloat := slices.Clone(ext)
	extFloat[24] = 3
	tests := []struct {
		name string
		file []byte
		want []int16
		rate int
	}{
		{"plain", wavFile(fmtMono, wavChunk("data", le16(1, 2, 3))), []int16{1, 2, 3}, 16000},
		{"LIST odd size before fmt", wavFile(wavChunk("LIST", []byte("INFOx")), fmtMono, wavChunk("data", le16(5))), []int16{5}, 16000},
		{"fact and JUNK between fmt and data", wavFile(fmtMono, wavChunk("fact", []byte{3, 0, 0, 0}),
			wavChunk("JUNK", make([]byte, 27)), wavChunk("data", le16(-7, 7))), []int16{-7, 7}, 16000},
		{"fmt with extra bytes (18)", wavFile(wavChunk("fmt ", append(wavFmtBody(1, 1, 8000, 16), 0, 0)),
			wavChunk("data", le16(9))), []int16{9}, 8000},
		{"extensible PCM", wavFile(wavChunk("fmt ", ext), wavChunk("data", le16(4, 4))), []int16{4, 4}, 16000},
		{"stereo downmix", wavFile(wavChunk("fmt ", wavFmtBody(1, 2, 44100, 16)),
			wavChunk("data", le16(100, 200, -100, -300, 32767, 32767, -32768, -32768))), []int16{150, -200, 32767, -32768}, 44100},
		{"odd data size drops partial sample", wavFile(fmtMono, wavChunk("data", append(le16(1, 2), 0x7F))), []int16{1, 2}, 16000},
		{"trailing chunk after data ignored", wavFile(fmtMono, wavChunk("data", le16(3)), wavChunk("LIST", []byte("xyz"))), []int16{3}, 16000},
		{"data size unknown (0xFFFFFFFF)", func() []byte {
			f := wavFile(fmtMono, wavChunk("data", le16(1, 2, 3, 4)))
			binary.LittleEndian.PutUint32(f[len(f)-12:], 0xFFFFFFFF)
			return f
		}(), []int16{1, 2, 3, 4}, 16000},
		{"zero-length data", wavFile(fmtMono, wavChunk("data", nil)), []int16{}, 16000},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pcm, rate, err := DecodeWAV(bytes.NewReader(tc.file))
			if err != nil {
				t.Fatal(err)
			}
			if rate != tc.rate || !slices.Equal(pcm, tc.want) {
				t.Fatalf("got %v at %d Hz, want %v at %d", pcm, rate, tc.want, tc.rate)
			}
		})
	}
	t.Run("extensible float refused", func(t *testing.T) {
		_, _, err := DecodeWAV(bytes.NewReader(wavFile(wavChunk("fmt ", extFloat), wavChunk("data", le16(1)))))
		if err == nil || !strings.Contains(err.Error(), "IEEE float") {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestDecodeWAVErrors(t *testing.T) {
	fmtMono := wavChunk("fmt ", wavFmtBody(1, 1, 16000, 16))
	good := wavFile(fmtMono, wavChunk("data", le16(1, 2, 3, 4, 5)))
	huge := slices.Clone(good)
	binary.LittleEndian.PutUint32(huge[40:], 0x7FFFFFF0) // 2 GiB declared, 10 bytes present
	bigButUnder := slices.Clone(good)
	binary.LittleEndian.PutUint32(bigButUnder[40:], 500_000_000)
	tests := []struct {
		name    string
		file    []byte
		wantErr string
		eof     bool // error wraps io.ErrUnexpectedEOF
	}{
		{"empty", nil, "header", true},
		{"not RIFF", []byte("ID3\x03 some mp3 data"), "not a WAV file", false},
		{"RIFF but AVI", append([]byte("RIFF\x00\x00\x00\x00AVI "), fmtMono...), "not a WAV file", false},
		{"RIFX", []byte("RIFX\x00\x00\x00\x00WAVE"), "big-endian", false},
		{"RF64", []byte("RF64\xff\xff\xff\xffWAVE"), "RF64", false},
		{"no data chunk", wavFile(fmtMono), "no data chunk", false},
		{"data before fmt", wavFile(wavChunk("data", le16(1)), fmtMono), "before fmt", false},
		{"float", wavFile(wavChunk("fmt ", wavFmtBody(3, 1, 16000, 32)), wavChunk("data", make([]byte, 8))), "IEEE float (format 0x0003), 32-bit, 1 channel(s), 16000 Hz", false},
		{"8-bit PCM", wavFile(wavChunk("fmt ", wavFmtBody(1, 1, 8000, 8)), wavChunk("data", make([]byte, 8))), "PCM (format 0x0001), 8-bit", false},
		{"24-bit PCM", wavFile(wavChunk("fmt ", wavFmtBody(1, 2, 48000, 24)), wavChunk("data", make([]byte, 12))), "24-bit, 2 channel(s)", false},
		{"mu-law", wavFile(wavChunk("fmt ", wavFmtBody(7, 1, 8000, 8)), wavChunk("data", make([]byte, 8))), "µ-law", false},
		{"6 channels", wavFile(wavChunk("fmt ", wavFmtBody(1, 6, 48000, 16)), wavChunk("data", make([]byte, 24))), "6 channel(s)", false},
		{"0 channels", wavFile(wavChunk("fmt ", wavFmtBody(1, 0, 48000, 16)), wavChunk("data", nil)), "0 channel(s)", false},
		{"unknown format", wavFile(wavChunk("fmt ", wavFmtBody(0x1234, 1, 8000, 16)), wavChunk("data", nil)), "unknown (format 0x1234)", false},
		{"zero rate", wavFile(wavChunk("fmt ", wavFmtBody(1, 1, 0, 16)), wavChunk("data", nil)), "sample rate 0", false},
		{"short fmt", wavFile(wavChunk("fmt ", make([]byte, 14)), wavChunk("data", nil)), "fmt chunk of 14 bytes", false},
		{"truncated data", good[:len(good)-3], "declares 10 bytes, only 7 present", true},
		{"truncated header", good[:30], "fmt chunk", true},
		{"truncated in LIST", wavFile(fmtMono, []byte("LIST\xff\xff\x00\x00abc")), `truncated in "LIST" chunk`, true},
		{"huge declared size", huge, "exceeds the 1073741824-byte limit", false},
		{"large declared size, little data", bigButUnder, "declares 500000000 bytes, only 10 present", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := DecodeWAV(bytes.NewReader(tc.file))
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
			}
			if tc.eof != errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("errors.Is(err, io.ErrUnexpectedEOF) = %v, want %v (%v)", !tc.eof, tc.eof, err)
			}
			t.Log(err)
		})
	}
}

// A declared size far beyond the data must not allocate for the declared
// size: memory follows what is actually read.
func TestDecodeWAVLargeDeclaredSizeAllocation(t *testing.T) {
	f := wavFile(wavChunk("fmt ", wavFmtBody(1, 1, 16000, 16)), wavChunk("data", le16(1, 2)))
	binary.LittleEndian.PutUint32(f[40:], 0xFFFFFFFF)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if _, _, err := DecodeWAV(bytes.NewReader(f)); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
		t.Errorf("decoding a 4-byte data chunk declared unbounded allocated %d bytes", n)
	}
}

func TestEncodeWAVErrors(t *testing.T) {
	if err := EncodeWAV(io.Discard, []int16{1}, 0); err == nil {
		t.Error("rate 0 accepted")
	}
	werr := errors.New("disk full")
	if err := EncodeWAV(failWriter{werr}, []int16{1}, 8000); !errors.Is(err, werr) {
		t.Errorf("write error: %v", err)
	}
	defer func() {
		if recover() == nil {
			t.Error("AppendWAV with rate -1 did not panic")
		}
	}()
	AppendWAV(nil, nil, -1)
}

type failWriter struct{ err error }

func (w failWriter) Write([]byte) (int, error) { return 0, w.err }

// FuzzDecodeWAV: arbitrary input gives samples or an error, never a panic;
// memory stays proportional to the input; and whatever decodes re-encodes
// and decodes to the same samples.
func FuzzDecodeWAV(f *testing.F) {
	fmtMono := wavChunk("fmt ", wavFmtBody(1, 1, 16000, 16))
	f.Add(AppendWAV(nil, []int16{1, -1, 300}, 16000))
	f.Add(wavFile(wavChunk("LIST", []byte("INFOx")), fmtMono, wavChunk("data", le16(5, 6))))
	f.Add(wavFile(wavChunk("fmt ", wavFmtBody(1, 2, 44100, 16)), wavChunk("data", le16(1, 2, 3, 4))))
	f.Add(wavFile(fmtMono))
	f.Add([]byte("RIFF\xff\xff\xff\xffWAVEdata\xff\xff\xff\xff"))
	f.Fuzz(func(t *testing.T, b []byte) {
		pcm, rate, err := DecodeWAV(bytes.NewReader(b))
		if err != nil {
			if pcm != nil || rate != 0 {
				t.Fatal("error with results")
			}
			return
		}
		if rate <= 0 || len(pcm) > len(b)/2 {
			t.Fatalf("rate %d, %d samples from %d bytes", rate, len(pcm), len(b))
		}
		again, rate2, err := DecodeWAV(bytes.NewReader(AppendWAV(nil, pcm, rate)))
		if err != nil || rate2 != rate || !slices.Equal(again, pcm) {
			t.Fatalf("re-encode round trip: %v", err)
		}
	})
}
