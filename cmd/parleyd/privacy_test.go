package main

import (
	"bytes"
	"encoding/base64"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"parley/media"
)

// TestVoiceWritesNoAudio runs a voice session (audio in, spoken answer out)
// with the working, temp and data directories under watch: afterwards no
// file holds any of the audio sent or received (the database holds only
// text and metadata), and no log line holds the transcript or the answer.
func TestVoiceWritesNoAudio(t *testing.T) {
	work, tmp, data := t.TempDir(), t.TempDir(), t.TempDir()
	cfg, err := filepath.Abs("../../configs/parley.yaml")
	if err != nil {
		t.Fatal(err)
	}
	fixture := fixturePCM(t, "add_documents")
	t.Chdir(work)
	t.Setenv("TMPDIR", tmp)

	r := start(t, cfg, "PARLEY_STORAGE_URL="+filepath.Join(data, "parley.db"), "PARLEY_LOG_LEVEL=debug")
	c := dialRT(t, r.base, "assistant")
	c.next()
	c.until("conversation.item.done")
	c.send(map[string]any{"type": "session.update", "session": map[string]any{"output_modalities": []string{"audio"}}})
	c.until("session.updated")
	c.appendPCM(fixture)
	var transcript, answer string
	var sent []byte // audio the gateway sent, raw
	for _, ev := range c.until("response.done") {
		switch ev["type"] {
		case "conversation.item.input_audio_transcription.completed":
			transcript = ev["transcript"].(string)
		case "response.output_audio_transcript.done":
			answer = ev["transcript"].(string)
		case "response.output_audio.delta":
			b, _ := base64.StdEncoding.DecodeString(ev["delta"].(string))
			sent = append(sent, b...)
		}
	}
	if transcript == "" || answer == "" || len(sent) < 48000 {
		t.Fatalf("voice turn incomplete: %q %q %d bytes", transcript, answer, len(sent))
	}
	time.Sleep(100 * time.Millisecond)
	if code := r.stop(t); code != 0 {
		t.Fatalf("exit %d", code)
	}

	// Probes: 64-byte windows of the input audio (as sent, 24 kHz LE) and of
	// the output audio, taken from loud parts.
	in := media.PCM16LEToBytes(nil, fixture)
	var probes [][]byte
	for _, src := range [][]byte{in, sent} {
		n := 0
		for i := len(src) / 4 &^ 1; i+64 < len(src) && n < 5; i += len(src) / 40 &^ 1 {
			w := src[i : i+64]
			if pcm, _ := media.BytesToPCM16LE(nil, w); media.RMS(pcm) > 1000 { // speech, not silence
				probes = append(probes, w)
				n++
			}
		}
		if n < 3 {
			t.Fatalf("found only %d loud probe windows", n)
		}
	}
	for _, dir := range []string{work, tmp, data} {
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if dir != data {
				t.Errorf("parleyd wrote %s during a voice session", p)
			}
			for i, pr := range probes {
				if bytes.Contains(b, pr) {
					t.Errorf("%s holds audio (probe %d)", p, i)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	logs := r.stderr.String()
	for _, secret := range []string{transcript, answer, base64.StdEncoding.EncodeToString(in[len(in)/2 : len(in)/2+48])} {
		if len(secret) > 8 && strings.Contains(logs, secret) {
			t.Errorf("the logs hold conversation content %q", secret[:min(len(secret), 40)])
		}
	}
}
