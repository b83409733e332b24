package main

import (
	"encoding/base64"
	"os"
	"strings"
	"testing"

	"parley/media"
)

func fixturePCM(t *testing.T, name string) []int16 {
	t.Helper()
	f, err := os.Open("../../testdata/audio/" + name + ".wav")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pcm, rate, err := media.DecodeWAV(f)
	if err != nil || rate != 24000 {
		t.Fatalf("%s: %v (rate %d)", name, err, rate)
	}
	return pcm
}

func (c *wsClient) appendPCM(pcm []int16) {
	var b []byte
	for i := 0; i < len(pcm); i += 480 {
		b = media.PCM16LEToBytes(b[:0], pcm[i:min(i+480, len(pcm))])
		c.send(map[string]any{"type": "input_audio_buffer.append", "audio": base64.StdEncoding.EncodeToString(b)})
	}
}

// TestVoiceOffline: a spoken question through the offline engines
// (pocketsphinx, the knowledge base, espeak-ng) over a real WebSocket.
func TestVoiceOffline(t *testing.T) {
	r := start(t, "../../configs/parley.yaml", "PARLEY_STORAGE_URL="+t.TempDir()+"/p.db")
	c := dialRT(t, r.base, "assistant")
	c.next()
	c.until("conversation.item.done") // greeting
	c.send(map[string]any{"type": "session.update", "session": map[string]any{"output_modalities": []string{"audio"}}})
	c.until("session.updated")
	c.appendPCM(fixturePCM(t, "transcripts_kept"))
	evs := c.until("response.done")
	var transcript, answer string
	var audio []int16
	seen := map[string]bool{}
	for _, ev := range evs {
		typ := ev["type"].(string)
		seen[typ] = true
		if os.Getenv("PARLEY_TEST_TRACE") != "" {
			t.Log(typ, ev["response"])
		}
		switch typ {
		case "conversation.item.input_audio_transcription.completed":
			transcript = ev["transcript"].(string)
		case "response.output_audio_transcript.done":
			answer = ev["transcript"].(string)
		case "response.output_audio.delta":
			b, err := base64.StdEncoding.DecodeString(ev["delta"].(string))
			if err != nil {
				t.Fatal(err)
			}
			chunk, err := media.BytesToPCM16LE(nil, b)
			if err != nil {
				t.Fatal(err)
			}
			audio = append(audio, chunk...)
		case "error", "conversation.item.input_audio_transcription.failed":
			t.Fatalf("%s: %v", typ, ev)
		}
	}
	t.Logf("transcript %q; answer %q; %d ms of audio", transcript, answer, len(audio)/24)
	for _, typ := range []string{"input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped", "input_audio_buffer.committed"} {
		if !seen[typ] {
			t.Fatalf("no %s", typ)
		}
	}
	// The recognizer's language model is adapted to the agent's documents,
	// so the question's key words come through and the knowledge base
	// answers it.
	if !strings.Contains(strings.ToLower(transcript), "transcripts") || !strings.Contains(answer, "90 days") {
		t.Fatalf("transcript %q, answer %q", transcript, answer)
	}
	if len(audio) < 24000 || media.DBFS(audio) < -40 {
		t.Fatalf("audio: %d samples at %.1f dBFS", len(audio), media.DBFS(audio))
	}
}
