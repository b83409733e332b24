package pocketsphinx

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"parley/stt"
)

// requireTools skips the test, loudly, when the model files or the audio
// tools are missing. They are installed by `make deps` (and in CI).
func requireTools(t testing.TB) {
	t.Helper()
	var missing []string
	for _, p := range []string{DefaultModelDir + "/mdef", DefaultLM, DefaultDict} {
		if _, err := os.Stat(p); err != nil {
			missing = append(missing, p)
		}
	}
	for _, tool := range []string{"espeak-ng", "sox"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) > 0 {
		t.Skipf("!!! SKIPPING pocketsphinx test: missing %v (run `make deps` to install "+
			"pocketsphinx-en-us, espeak-ng and sox) !!!", missing)
	}
}

// synthCache memoizes synthesized utterances across tests in this process.
var synthCache sync.Map // key string -> []int16

// synth speaks text with espeak-ng (voice, words per minute) and converts
// it with sox to 16 kHz mono 16-bit PCM, without dither so that the audio,
// hence the transcript, is the same on every run (sox dithers with fresh
// random noise by default, and that alone flips words of borderline
// sentences). The WAV files live in a temporary directory that is removed
// before synth returns.
func synth(t testing.TB, voice string, wpm int, text string) []int16 {
	t.Helper()
	return synthSox(t, voice, wpm, text, "-D")
}

// synthSox is synth with a choice of sox global options ("-D": no dither;
// "": sox's default random dither).
func synthSox(t testing.TB, voice string, wpm int, text, soxOpt string) []int16 {
	t.Helper()
	key := fmt.Sprintf("%s|%d|%s|%s", voice, wpm, text, soxOpt)
	if soxOpt == "" {
		key = "" // random dither: never cached
	}
	if v, ok := synthCache.Load(key); ok && key != "" {
		return v.([]int16)
	}
	dir, err := os.MkdirTemp("", "parley-ps-test")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	raw, conv := filepath.Join(dir, "x.wav"), filepath.Join(dir, "y.wav")
	if out, err := exec.Command("espeak-ng", "-v", voice, "-s", fmt.Sprint(wpm), "-w", raw, text).CombinedOutput(); err != nil {
		t.Fatalf("espeak-ng: %v: %s", err, out)
	}
	args := []string{raw, "-r", "16000", "-c", "1", "-b", "16", conv}
	if soxOpt != "" {
		args = append([]string{soxOpt}, args...)
	}
	if out, err := exec.Command("sox", args...).CombinedOutput(); err != nil {
		t.Fatalf("sox: %v: %s", err, out)
	}
	data, err := os.ReadFile(conv)
	if err != nil {
		t.Fatal(err)
	}
	pcm, rate, err := readWAV(data)
	if err != nil {
		t.Fatalf("reading sox output: %v", err)
	}
	if rate != 16000 {
		t.Fatalf("sox produced %d Hz", rate)
	}
	if key != "" {
		synthCache.Store(key, pcm)
	}
	return pcm
}

// readWAV parses a RIFF/WAVE file holding 16-bit little-endian PCM and
// returns the first channel's samples and the sample rate.
func readWAV(b []byte) ([]int16, int, error) {
	if len(b) < 12 || string(b[0:4]) != "RIFF" || string(b[8:12]) != "WAVE" {
		return nil, 0, errors.New("not a RIFF/WAVE file")
	}
	var (
		rate, channels, bits int
		haveFmt              bool
	)
	for p := 12; p+8 <= len(b); {
		id, size := string(b[p:p+4]), int(binary.LittleEndian.Uint32(b[p+4:p+8]))
		body := b[p+8:]
		if size > len(body) {
			// sox may leave 0xFFFFFFFF-ish sizes when streaming; clamp.
			size = len(body)
		}
		body = body[:size]
		switch id {
		case "fmt ":
			if size < 16 {
				return nil, 0, errors.New("short fmt chunk")
			}
			format := binary.LittleEndian.Uint16(body[0:2])
			channels = int(binary.LittleEndian.Uint16(body[2:4]))
			rate = int(binary.LittleEndian.Uint32(body[4:8]))
			bits = int(binary.LittleEndian.Uint16(body[14:16]))
			if (format != 1 && format != 0xFFFE) || bits != 16 || channels < 1 {
				return nil, 0, fmt.Errorf("unsupported WAV format %d, %d bits, %d channels", format, bits, channels)
			}
			haveFmt = true
		case "data":
			if !haveFmt {
				return nil, 0, errors.New("data chunk before fmt chunk")
			}
			frame := 2 * channels
			pcm := make([]int16, size/frame)
			for i := range pcm {
				pcm[i] = int16(binary.LittleEndian.Uint16(body[i*frame:]))
			}
			return pcm, rate, nil
		}
		p += 8 + size + size&1 // chunks are padded to even sizes
	}
	return nil, 0, errors.New("no data chunk")
}

// paddingSamples is the silence recognize puts around speech (300 ms).
const paddingSamples = 16000 * 3 / 10

// recognize runs one utterance through r in 20 ms chunks, with 300 ms of
// silence on both sides (as a VAD-cut turn would have).
func recognize(t testing.TB, r *Recognizer, pcm []int16) string {
	t.Helper()
	ctx := context.Background()
	s, err := r.NewStream(ctx, stt.StreamConfig{Language: "en"})
	if err != nil {
		t.Fatalf("NewStream: %v", err)
	}
	defer s.Close()
	const chunk = 16000 / 50
	silence := make([]int16, paddingSamples)
	audio := append(append(append([]int16{}, silence...), pcm...), silence...)
	for i := 0; i < len(audio); i += chunk {
		if err := s.Write(audio[i:min(i+chunk, len(audio))]); err != nil {
			t.Fatalf("Write: %v", err)
		}
	}
	text, err := s.Final(ctx)
	if err != nil {
		t.Fatalf("Final: %v", err)
	}
	return text
}
