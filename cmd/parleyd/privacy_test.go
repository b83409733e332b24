package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"parley/media"
	"parley/rtc/rtctest"
	"parley/storage"
	"parley/storage/backends"
)

// TestVoiceWritesNoAudio runs a voice session (audio in, spoken answer out)
// and then a WebRTC call with the working, temp and data directories under
// watch: afterwards no
// file holds any of the audio sent or received (the database holds only
// text and metadata), and no log line holds the transcript or the answer.
func TestVoiceWritesNoAudio(t *testing.T) {
	work, tmp, data := t.TempDir(), t.TempDir(), t.TempDir()
	cfg, err := filepath.Abs("../../configs/parley.yaml")
	if err != nil {
		t.Fatal(err)
	}
	fixture := fixturePCM(t, "add_documents")
	spoken := fixturePackets(t, "add_documents", 1200)
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

	// The same over a WebRTC call: Opus in on the track, Opus out.
	httpBase := "http" + strings.TrimPrefix(r.base, "ws")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	key, err := rtctest.Mint(ctx, httpBase, testAPIKey, `{"session":{"model":"assistant"}}`)
	if err != nil {
		t.Fatal(err)
	}
	call, err := rtctest.Dial(ctx, httpBase, key, rtctest.Options{KeepAudio: true})
	if err != nil {
		t.Fatal(err)
	}
	defer call.Close()
	if err := call.SendPackets(ctx, spoken, 20*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	var callTranscript, callAnswer string
	evs, err := call.Until("response.done", 30*time.Second, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		switch ev["type"] {
		case "conversation.item.input_audio_transcription.completed":
			callTranscript = ev["transcript"].(string)
		case "response.output_audio_transcript.done":
			callAnswer = ev["transcript"].(string)
		}
	}
	for deadline := time.Now().Add(5 * time.Second); call.Packets() < 25 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	heard := call.Audio()
	if callTranscript == "" || callAnswer == "" || len(heard) < 25 {
		t.Fatalf("call turn incomplete: %q %q %d packets", callTranscript, callAnswer, len(heard))
	}
	call.Close()

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
	// The call's Opus packets, as sent and as received (their first 32
	// bytes; packets of speech are larger).
	for _, src := range [][][]byte{spoken[len(spoken)/4 : len(spoken)/2], heard[len(heard)/2:]} {
		n := 0
		for _, p := range src {
			if len(p) >= 48 && n < 5 {
				probes = append(probes, p[:32])
				n++
			}
		}
		if n < 3 {
			t.Fatalf("found only %d Opus probe packets", n)
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
	// Nothing went to the audio log either (logging is off by default).
	st, err := backends.Open(context.Background(), filepath.Join(data, "parley.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	convs, _, err := st.ListConversations(context.Background(), storage.DefaultTenant, storage.ConversationFilter{}, "", 100)
	if err != nil || len(convs) < 2 {
		t.Fatalf("conversations %d: %v", len(convs), err)
	}
	for _, c := range convs {
		if a, err := st.ListTurnAudio(context.Background(), storage.DefaultTenant, c.ID); err != nil || len(a) != 0 {
			t.Errorf("conversation %s: %d logged audio (%v) with logging off", c.ID, len(a), err)
		}
	}
	logs := r.stderr.String()
	for _, secret := range []string{transcript, answer, callTranscript, callAnswer, base64.StdEncoding.EncodeToString(in[len(in)/2 : len(in)/2+48])} {
		if len(secret) > 8 && strings.Contains(logs, secret) {
			t.Errorf("the logs hold conversation content %q", secret[:min(len(secret), 40)])
		}
	}
}
