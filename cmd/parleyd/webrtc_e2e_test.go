package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	pmedia "github.com/pion/webrtc/v4/pkg/media"

	"parley/media"
)

// mintKey asks parleyd for an ephemeral key, as a customer's server does.
func mintKey(t *testing.T, base, body string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+"/v1/realtime/client_secrets", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+testAPIKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Value string `json:"value"`
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &out) != nil || out.Value == "" {
		t.Fatalf("client_secrets: %d %s", resp.StatusCode, b)
	}
	return out.Value
}

// pionCaller is a WebRTC client written the way OpenAI's guide writes one,
// in Go: a microphone track, the "oai-events" data channel, the offer
// posted to /v1/realtime/calls.
type pionCaller struct {
	t      *testing.T
	pc     *webrtc.PeerConnection
	mic    *webrtc.TrackLocalStaticSample
	dc     *webrtc.DataChannel
	events chan map[string]any
	open   chan struct{}

	mu       sync.Mutex
	received [][]byte // Opus payloads of the agent's track
	trackWG  sync.WaitGroup
	location string
}

func dialCall(t *testing.T, httpBase, key string) *pionCaller {
	t.Helper()
	pc, err := webrtc.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	c := &pionCaller{t: t, pc: pc, events: make(chan map[string]any, 1024), open: make(chan struct{})}
	t.Cleanup(func() { c.hangUp() })
	c.mic, err = webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "mic", "caller")
	if err != nil {
		t.Fatal(err)
	}
	sender, err := pc.AddTrack(c.mic)
	if err != nil {
		t.Fatal(err)
	}
	c.trackWG.Add(1)
	go func() { // RTCP of our sender
		defer c.trackWG.Done()
		buf := make([]byte, 1500)
		for {
			if _, _, err := sender.Read(buf); err != nil {
				return
			}
		}
	}()
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		c.trackWG.Add(1)
		defer c.trackWG.Done()
		for {
			p, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			c.mu.Lock()
			c.received = append(c.received, append([]byte(nil), p.Payload...))
			c.mu.Unlock()
		}
	})
	c.dc, err = pc.CreateDataChannel("oai-events", nil)
	if err != nil {
		t.Fatal(err)
	}
	c.dc.OnOpen(func() { close(c.open) })
	c.dc.OnMessage(func(m webrtc.DataChannelMessage) {
		if !m.IsString {
			t.Errorf("binary data channel message: %q", m.Data)
		}
		var ev map[string]any
		if err := json.Unmarshal(m.Data, &ev); err != nil {
			t.Errorf("data channel message is not JSON: %q", m.Data)
			return
		}
		select {
		case c.events <- ev:
		default:
			t.Error("event buffer full")
		}
	})
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	<-gathered
	req, _ := http.NewRequest(http.MethodPost, httpBase+"/v1/realtime/calls", strings.NewReader(pc.LocalDescription().SDP))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/sdp")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /v1/realtime/calls: %d %s", resp.StatusCode, answer)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/sdp" {
		t.Errorf("answer content type %q", ct)
	}
	c.location = resp.Header.Get("Location")
	if !strings.HasPrefix(c.location, "/v1/realtime/calls/rtc_") {
		t.Errorf("Location %q", c.location)
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: string(answer)}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.open:
	case <-time.After(10 * time.Second):
		t.Fatal("the data channel did not open")
	}
	return c
}

func (c *pionCaller) hangUp() {
	_ = c.pc.Close()
	c.trackWG.Wait()
}

// next returns the next event from the data channel.
func (c *pionCaller) next(d time.Duration) map[string]any {
	c.t.Helper()
	select {
	case ev := <-c.events:
		if os.Getenv("PARLEY_TEST_TRACE") != "" {
			c.t.Log(ev["type"])
		}
		return ev
	case <-time.After(d):
		c.t.Fatal("no event in time")
		return nil
	}
}

func (c *pionCaller) until(typ string, d time.Duration) []map[string]any {
	c.t.Helper()
	deadline := time.Now().Add(d)
	var evs []map[string]any
	for {
		ev := c.next(time.Until(deadline))
		evs = append(evs, ev)
		if ev["type"] == "error" {
			c.t.Fatalf("error event: %v", ev)
		}
		if ev["type"] == typ {
			return evs
		}
	}
}

func (c *pionCaller) send(v any) {
	c.t.Helper()
	b, _ := json.Marshal(v)
	if err := c.dc.SendText(string(b)); err != nil {
		c.t.Fatal(err)
	}
}

// speak sends an Ogg Opus fixture on the microphone track in real time,
// then a second of silence.
func (c *pionCaller) speak(name string) {
	c.t.Helper()
	f, err := os.Open("../../testdata/audio/" + name + ".opus")
	if err != nil {
		c.t.Fatal(err)
	}
	defer f.Close()
	rd, err := media.NewOggOpusReader(f)
	if err != nil {
		c.t.Fatal(err)
	}
	enc, err := media.NewOpusEncoder(48000)
	if err != nil {
		c.t.Fatal(err)
	}
	silence, err := enc.Encode(make([]int16, 960), nil)
	if err != nil {
		c.t.Fatal(err)
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for n := 0; ; n++ {
		pkt, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			c.t.Fatal(err)
		}
		<-tick.C
		if err := c.mic.WriteSample(pmedia.Sample{Data: pkt, Duration: 20 * time.Millisecond}); err != nil {
			c.t.Fatal(err)
		}
	}
	for i := 0; i < 60; i++ {
		<-tick.C
		if err := c.mic.WriteSample(pmedia.Sample{Data: silence, Duration: 20 * time.Millisecond}); err != nil {
			c.t.Fatal(err)
		}
	}
}

// TestWebRTCCallOffline: a pion client calls the agent through the
// offline engines: its spoken question comes back as a transcript, the
// agent's answer as text on the data channel and as Opus on the track.
func TestWebRTCCallOffline(t *testing.T) {
	dir := t.TempDir()
	r := start(t, "../../configs/parley.yaml", "PARLEY_STORAGE_URL="+dir+"/p.db")
	httpBase := "http" + strings.TrimPrefix(r.base, "ws")
	key := mintKey(t, httpBase, `{"session":{"type":"realtime","model":"assistant"}}`)
	c := dialCall(t, httpBase, key)

	if ev := c.next(5 * time.Second); ev["type"] != "session.created" {
		t.Fatalf("first event %v", ev)
	}
	go c.speak("transcripts_kept")
	evs := c.until("output_audio_buffer.stopped", 60*time.Second)
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
	for _, typ := range []string{"input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped",
		"input_audio_buffer.committed", "response.created", "output_audio_buffer.started", "response.done"} {
		if !seen[typ] {
			t.Errorf("no %s", typ)
		}
	}
	if !strings.Contains(strings.ToLower(transcript), "transcripts") || !strings.Contains(answer, "90 days") {
		t.Fatalf("transcript %q, answer %q", transcript, answer)
	}

	// The agent's audio: decodable Opus, about as long as what was said.
	c.mu.Lock()
	packets := c.received
	c.mu.Unlock()
	dec, err := media.NewOpusDecoder(48000)
	if err != nil {
		t.Fatal(err)
	}
	var pcm []int16
	for _, p := range packets {
		if pcm, err = dec.Decode(p, pcm); err != nil {
			t.Fatalf("undecodable packet: %v", err)
		}
	}
	if len(packets) < 50 || media.DBFS(pcm) < -40 {
		t.Fatalf("agent audio: %d packets, %.1f dBFS", len(packets), media.DBFS(pcm))
	}
	t.Logf("agent audio: %d packets (%.1f s), %.1f dBFS", len(packets), float64(len(packets))/50, media.DBFS(pcm))

	// Hanging up ends the call; the conversation is stored as a webrtc one.
	c.hangUp()
	deadline := time.Now().Add(15 * time.Second)
	for r.m.Gateway.ActiveSessions() > 0 {
		if time.Now().After(deadline) {
			t.Fatal("the call did not end after the client hung up")
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = context.Background()
}
