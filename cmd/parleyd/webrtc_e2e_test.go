package main

import (
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"parley/media"
	"parley/rtc/rtctest"
)

// fixturePackets returns the Opus packets of a spoken Ogg Opus fixture
// followed by silenceMS of silence.
func fixturePackets(t testing.TB, name string, silenceMS int) [][]byte {
	t.Helper()
	f, err := os.Open("../../testdata/audio/" + name + ".opus")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rd, err := media.NewOggOpusReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var packets [][]byte
	for {
		p, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		packets = append(packets, append([]byte(nil), p...))
	}
	enc, err := media.NewOpusEncoder(48000)
	if err != nil {
		t.Fatal(err)
	}
	silence, err := enc.Encode(make([]int16, 960), nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < silenceMS/20; i++ {
		packets = append(packets, silence)
	}
	return packets
}

// TestWebRTCCallOffline: a pion client calls the agent through the
// offline engines, as OpenAI's WebRTC guide has browsers do: its spoken
// question comes back as a transcript, the agent's answer as text on the
// data channel and as Opus on the track, and output_audio_buffer.clear
// cuts the playback off.
func TestWebRTCCallOffline(t *testing.T) {
	dir := t.TempDir()
	r := start(t, "../../configs/parley.yaml", "PARLEY_STORAGE_URL="+dir+"/p.db")
	httpBase := "http" + strings.TrimPrefix(r.base, "ws")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	key, err := rtctest.Mint(ctx, httpBase, testAPIKey, `{"session":{"type":"realtime","model":"assistant"}}`)
	if err != nil {
		t.Fatal(err)
	}
	c, err := rtctest.Dial(ctx, httpBase, key, rtctest.Options{KeepAudio: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !strings.HasPrefix(c.Location, "/v1/realtime/calls/rtc_") {
		t.Errorf("Location %q", c.Location)
	}
	ev, err := c.Next(5 * time.Second)
	if err != nil || ev["type"] != "session.created" {
		t.Fatalf("first event %v %v", ev, err)
	}
	convID := "conv_" + strings.TrimPrefix(ev["session"].(map[string]any)["id"].(string), "sess_")

	t0 := time.Now()
	spoke := make(chan error, 1)
	go func() { spoke <- c.SendPackets(ctx, fixturePackets(t, "transcripts_kept", 1200), 20*time.Millisecond) }()
	defer func() {
		if err := <-spoke; err != nil {
			t.Errorf("speaking: %v", err)
		}
	}()
	evs, err := c.Until("response.done", 60*time.Second, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("response.done %v after the call started", time.Since(t0))
	var transcript, answer string
	seen := map[string]bool{}
	for _, ev := range evs {
		typ := ev["type"].(string)
		seen[typ] = true
		switch typ {
		case "conversation.item.input_audio_transcription.completed":
			transcript = ev["transcript"].(string)
		case "response.output_audio_transcript.done":
			answer = ev["transcript"].(string)
		case "response.output_audio.delta":
			t.Error("audio deltas do not belong on the data channel: audio rides the track")
		case "response.done":
			if st := ev["response"].(map[string]any)["status"]; st != "completed" {
				t.Errorf("response status %v", st)
			}
		}
	}
	t.Logf("transcript %q; answer %q", transcript, answer)
	if !seen["output_audio_buffer.started"] { // playback runs on its own clock
		if _, err := c.Until("output_audio_buffer.started", 5*time.Second, false); err != nil {
			t.Fatal(err)
		}
		seen["output_audio_buffer.started"] = true
	}
	for _, typ := range []string{"input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped",
		"input_audio_buffer.committed", "response.created", "output_audio_buffer.started", "response.done"} {
		if !seen[typ] {
			t.Errorf("no %s", typ)
		}
	}
	if !strings.Contains(strings.ToLower(transcript), "transcripts") || !strings.Contains(answer, "90 days") {
		t.Fatalf("transcript %q, answer %q", transcript, answer)
	}

	// The agent's audio plays out on the track in real time (the response
	// is done once synthesized). Let a second of it arrive, then cut it
	// off as a client does on barge-in: playback stops within a frame and
	// the spoken item keeps only what was played.
	deadline := time.Now().Add(10 * time.Second)
	for c.Packets() < 50 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d audio packets arrived", c.Packets())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := c.Send(map[string]any{"type": "output_audio_buffer.clear"}); err != nil {
		t.Fatal(err)
	}
	evs, err = c.Until("output_audio_buffer.cleared", 5*time.Second, false)
	if err != nil {
		t.Fatal(err)
	}
	atClear := c.Packets()
	var truncated map[string]any
	for _, ev := range evs {
		if ev["type"] == "conversation.item.truncated" {
			truncated = ev
		}
	}
	if truncated == nil {
		if evs, err = c.Until("conversation.item.truncated", 5*time.Second, false); err != nil {
			t.Fatal(err)
		}
		truncated = evs[len(evs)-1]
	}
	if ms := truncated["audio_end_ms"].(float64); ms < 1000 || ms > 4000 {
		t.Errorf("truncated at %v ms, want about the second or two played", ms)
	}
	time.Sleep(300 * time.Millisecond)
	if n := c.Packets(); n > atClear+3 {
		t.Errorf("%d packets arrived after output_audio_buffer.cleared", n-atClear)
	}

	// The agent's audio is decodable Opus with speech in it.
	dec, err := media.NewOpusDecoder(48000)
	if err != nil {
		t.Fatal(err)
	}
	var pcm []int16
	for _, p := range c.Audio() {
		if pcm, err = dec.Decode(p, pcm); err != nil {
			t.Fatalf("undecodable packet: %v", err)
		}
	}
	if media.DBFS(pcm) < -40 {
		t.Fatalf("agent audio at %.1f dBFS", media.DBFS(pcm))
	}
	t.Logf("agent audio: %d packets, %.1f dBFS", len(c.Audio()), media.DBFS(pcm))
	if bad := c.BadEvents(); len(bad) > 0 {
		t.Errorf("data channel messages that are not JSON text: %q", bad)
	}

	// Hanging up ends the call.
	c.Close()
	deadline = time.Now().Add(15 * time.Second)
	for r.m.Gateway.ActiveSessions() > 0 {
		if time.Now().After(deadline) {
			t.Fatal("the call did not end after the client hung up")
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Stored: a webrtc conversation whose spoken answer keeps what was
	// played.
	for {
		conv, err := r.m.Store.GetConversation(ctx, "default", convID)
		if err == nil && !conv.EndedAt.IsZero() {
			if conv.Channel != "webrtc" {
				t.Errorf("channel %q", conv.Channel)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("conversation %s not stored and ended: %v", convID, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	turns, err := r.m.Store.ListTurns(ctx, "default", convID)
	if err != nil || len(turns) != 2 { // question, answer (the greeting is not a turn)
		t.Fatalf("turns %+v %v", turns, err)
	}
	if q, a := turnText(t, r.m.Store, turns[0]), turnText(t, r.m.Store, turns[1]); q != transcript || a == "" || len(a) >= len(answer) || !strings.HasPrefix(answer, a[:len(a)/2]) {
		t.Errorf("stored question %q, answer %q (spoken in full: %q)", q, a, answer)
	}
}
