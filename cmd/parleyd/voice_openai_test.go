package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"parley/media"
)

// fakeSpeechAPI is an OpenAI-compatible transcription and speech server.
type fakeSpeechAPI struct {
	transcriptions atomic.Int32
	speeches       atomic.Int32
	lastWAV        atomic.Int64 // samples in the last uploaded WAV
}

func (f *fakeSpeechAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/v1/audio/transcriptions":
		f.transcriptions.Add(1)
		file, _, err := r.FormFile("file")
		if err != nil {
			http.Error(w, `{"error":{"message":"no file"}}`, 400)
			return
		}
		pcm, rate, err := media.DecodeWAV(file)
		if err != nil || rate != 16000 {
			http.Error(w, `{"error":{"message":"bad wav"}}`, 400)
			return
		}
		f.lastWAV.Store(int64(len(pcm)))
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"text":"How long are transcripts kept?"}`)
	case "/v1/audio/speech":
		f.speeches.Add(1)
		var req struct {
			Input          string `json:"input"`
			ResponseFormat string `json:"response_format"`
		}
		_ = json.NewDecoder(r.Body).Decode(&req)
		if req.ResponseFormat != "pcm" {
			http.Error(w, `{"error":{"message":"want pcm"}}`, 400)
			return
		}
		w.Header().Set("Content-Type", "audio/pcm")
		// 10 ms of a 300 Hz tone per character, 24 kHz.
		pcm := make([]int16, len(req.Input)*240)
		for i := range pcm {
			pcm[i] = int16(6000 * math.Sin(2*math.Pi*300*float64(i)/24000))
		}
		_, _ = w.Write(media.PCM16LEToBytes(nil, pcm))
	default:
		http.NotFound(w, r)
	}
}

// TestVoiceOpenAIEngines runs the voice flow against fake OpenAI-compatible
// transcription and speech endpoints, with the knowledge-base agent.
func TestVoiceOpenAIEngines(t *testing.T) {
	fake := &fakeSpeechAPI{}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	base, err := os.ReadFile("../../configs/parley.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg := strings.Replace(string(base), "knowledge_dir: knowledge/assistant", "knowledge_dir: "+mustAbs(t, "../../configs/knowledge/assistant"), 1)
	cfg = strings.Replace(cfg, "stt_engine: pocketsphinx", "stt_engine: openai", 1)
	cfg = strings.Replace(cfg, "tts_engine: espeak", "tts_engine: openai", 1)
	cfg = strings.ReplaceAll(cfg, `base_url: "https://api.openai.com/v1"`, fmt.Sprintf("base_url: %q", srv.URL+"/v1"))
	path := filepath.Join(t.TempDir(), "parley.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	r := start(t, path, "PARLEY_STORAGE_URL="+filepath.Join(t.TempDir(), "p.db"), "OPENAI_API_KEY=sk-fake")
	c := dialRT(t, r.base, "assistant")
	c.next()
	c.until("conversation.item.done")
	c.send(map[string]any{"type": "session.update", "session": map[string]any{
		"output_modalities": []string{"audio"},
		"audio":             map[string]any{"output": map[string]any{"format": map[string]any{"type": "audio/pcmu"}}}}})
	c.until("session.updated")
	c.appendPCM(fixturePCM(t, "transcripts_kept"))
	var transcript, answer string
	var ulaw []byte
	for _, ev := range c.until("response.done") {
		switch ev["type"] {
		case "conversation.item.input_audio_transcription.completed":
			transcript = ev["transcript"].(string)
		case "response.output_audio_transcript.done":
			answer = ev["transcript"].(string)
		case "response.output_audio.delta":
			b, _ := base64.StdEncoding.DecodeString(ev["delta"].(string))
			ulaw = append(ulaw, b...)
		case "error", "conversation.item.input_audio_transcription.failed":
			t.Fatalf("%v", ev)
		}
	}
	if transcript != "How long are transcripts kept?" || !strings.Contains(answer, "90") {
		t.Fatalf("transcript %q answer %q", transcript, answer)
	}
	// G.711 µ-law at 8 kHz: as long as the answer's characters say, not silent.
	pcm := media.MuLawDecode(nil, ulaw)
	if want := len(answer) * 80; len(pcm) < want*9/10 || len(pcm) > want*11/10+800 || media.DBFS(pcm) < -30 {
		t.Fatalf("audio: %d samples (want ~%d) at %.1f dBFS", len(pcm), want, media.DBFS(pcm))
	}
	if n := fake.lastWAV.Load(); n < 16000 || n > 16000*4 {
		t.Fatalf("uploaded utterance has %d samples", n)
	}
}

func mustAbs(t *testing.T, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
