package gateway

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"parley/media"
	"parley/realtime"
	"parley/storage"
	"parley/stt"
	"parley/tts"
)

func loadFixture(t *testing.T, name string) []int16 {
	t.Helper()
	f, err := os.Open("../testdata/audio/" + name + ".wav")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pcm, rate, err := media.DecodeWAV(f)
	if err != nil || rate != 24000 {
		t.Fatalf("fixture %s: rate %d err %v", name, rate, err)
	}
	return pcm
}

// sendPCM appends 24 kHz PCM in 20 ms chunks (faster than real time, within
// the gateway's allowance).
func (c *client) sendPCM(pcm []int16) {
	c.t.Helper()
	var b []byte
	for i := 0; i < len(pcm); i += 480 {
		end := min(i+480, len(pcm))
		b = media.PCM16LEToBytes(b[:0], pcm[i:end])
		ev, _ := json.Marshal(map[string]string{"type": "input_audio_buffer.append", "audio": base64.StdEncoding.EncodeToString(b)})
		c.send(string(ev))
	}
}

func silence(ms int) []int16 { return make([]int16, ms*24) }

func voiceHarness(t *testing.T, rec *fakeRecognizer, syn *toneSynth, deltas []string) *harness {
	return newHarness(t, &scriptAgent{deltas: deltas}, func(o *Options) {
		o.Recognizer = rec
		o.Synthesizer = syn
	})
}

func TestVoiceTurnEndToEnd(t *testing.T) {
	rec := &fakeRecognizer{text: "what is parley"}
	h := voiceHarness(t, rec, &toneSynth{}, []string{"Parley is a gateway. ", "It speaks ", "the realtime protocol."})
	c := h.mustDial()
	c.send(`{"type":"session.update","session":{"output_modalities":["audio"]}}`)
	c.until(realtime.TypeSessionUpdated)
	c.sendPCM(loadFixture(t, "what_is_parley"))

	evs := c.until(realtime.TypeResponseDone)
	seen := map[string]int{}
	var order []string
	var audioBytes int
	var transcript string
	for _, ev := range evs {
		typ := ev["type"].(string)
		if seen[typ] == 0 {
			order = append(order, typ)
		}
		seen[typ]++
		switch typ {
		case realtime.TypeOutputAudioDelta:
			b, err := base64.StdEncoding.DecodeString(ev["delta"].(string))
			if err != nil {
				t.Fatal(err)
			}
			audioBytes += len(b)
		case realtime.TypeTranscriptionCompleted:
			transcript = ev["transcript"].(string)
		case realtime.TypeError:
			t.Fatalf("error event %v", ev)
		}
	}
	want := []string{"input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped", "input_audio_buffer.committed",
		"conversation.item.added", "conversation.item.input_audio_transcription.completed", "conversation.item.done",
		"response.created", "response.output_item.added", "response.content_part.added",
		"response.output_audio_transcript.delta", "response.output_audio.delta", "response.output_audio.done",
		"response.output_audio_transcript.done", "response.content_part.done", "response.output_item.done", "response.done"}
	idx := 0
	for _, typ := range order {
		if idx < len(want) && typ == want[idx] {
			idx++
		}
	}
	if idx != len(want) {
		t.Fatalf("event order\n got %v\nwant (in order) %v", order, want)
	}
	if seen[realtime.TypeSpeechStarted] != 1 || seen[realtime.TypeSpeechStopped] != 1 {
		t.Fatalf("speech edges %v", seen)
	}
	if transcript != "what is parley" {
		t.Fatalf("transcript %q", transcript)
	}
	// "Parley is a gateway. It speaks the realtime protocol." = 53 chars =
	// 530 ms of audio at 24 kHz, 16-bit.
	if audioBytes < 500*48 || audioBytes > 600*48 {
		t.Fatalf("audio bytes %d", audioBytes)
	}
	final := evs[len(evs)-1]["response"].(map[string]any)
	out := final["output"].([]any)[0].(map[string]any)["content"].([]any)[0].(map[string]any)
	if final["status"] != "completed" || out["type"] != "output_audio" || out["transcript"] != "Parley is a gateway. It speaks the realtime protocol." {
		t.Fatalf("final %v", final)
	}
	voice := final["metadata"].(map[string]any)["parley"].(map[string]any)["voice"].(map[string]any)
	stages := voice["from_speech_end_ms"].(map[string]any)
	// first_audio_sent is stamped by the writer; with engines this fast the
	// whole answer can be queued before the first frame reaches the socket,
	// so it may still be 0 when response.done is built.
	for _, k := range []string{"end_of_turn", "final_transcript", "first_token", "first_audio"} {
		if v, ok := stages[k].(float64); !ok || v <= 0 {
			t.Fatalf("voice latency %s = %v (%v)", k, stages[k], voice)
		}
	}
	if sent := stages["first_audio_sent"].(float64); sent != 0 && sent < stages["end_of_turn"].(float64) {
		t.Fatalf("timeline out of order: %v", stages)
	}
	// The gateway's own share is observed for the answer even when
	// response.done was built before the first audio reached the socket:
	// it is observed at the write (the client has read it by now).
	deadline := time.Now().Add(2 * time.Second)
	for testHistCount(t, h.gw, "parley_voice_gateway_added_seconds") != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("parley_voice_gateway_added_seconds count %d, want 1 (one spoken answer)",
				testHistCount(t, h.gw, "parley_voice_gateway_added_seconds"))
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The recognizer heard the utterance with its prefix padding, not the
	// whole second of silence after it.
	rec.mu.Lock()
	heard := rec.samples[0]
	rec.mu.Unlock()
	if heard < PipelineRate || heard > 4*PipelineRate {
		t.Fatalf("recognizer got %d samples", heard)
	}
	c.conn.CloseNow()
	waitNoSessions(t, h.gw)
	_ = h.gw.Close()
	_, turns, _ := h.store.onlyConversation()
	if len(turns) != 2 || opened(t, turns[0]) != "what is parley" || turns[0].Role != storage.RoleUser ||
		opened(t, turns[1]) != "Parley is a gateway. It speaks the realtime protocol." {
		t.Fatalf("turns %+v", turns)
	}
	if l := turns[1].Latency; l.EndOfTurnMS <= 0 || l.FinalTranscriptMS < l.EndOfTurnMS || l.FirstAudioMS <= 0 {
		t.Fatalf("stored voice latency %+v", l)
	}
}

func TestBargeIn(t *testing.T) {
	rec := &fakeRecognizer{text: "tell me everything"}
	long := strings.Repeat("This is a long sentence about Parley. ", 20)
	h := voiceHarness(t, rec, &toneSynth{realtime: true}, []string{long})
	c := h.mustDial()
	c.send(`{"type":"session.update","session":{"output_modalities":["audio"]}}`)
	c.until(realtime.TypeSessionUpdated)
	speech := loadFixture(t, "what_is_parley")
	c.sendPCM(speech)
	c.until(realtime.TypeOutputAudioDelta)

	// A cough during playback must not interrupt.
	cough := loadFixture(t, "noise_cough")
	c.sendPCM(cough)
	time.Sleep(300 * time.Millisecond)
	// Speech does, at once.
	start := time.Now()
	c.sendPCM(speech)
	var final map[string]any
	var starts []float64
	for final == nil {
		ev := c.next()
		switch ev["type"] {
		case realtime.TypeSpeechStarted:
			starts = append(starts, ev["audio_start_ms"].(float64))
		case realtime.TypeResponseDone:
			final = ev["response"].(map[string]any)
		}
	}
	if final["status"] != "cancelled" || final["status_details"].(map[string]any)["reason"] != "turn_detected" {
		t.Fatalf("barge-in: final %v", final)
	}
	// Exactly one speech start, and it lies in the second spoken question,
	// not in the cough (audio time: speech, then cough, then speech again,
	// whose voice begins 600 ms in; the start includes 300 ms of padding).
	secondSpeech := float64(len(speech)+len(cough))/24 + 600 - 300
	if len(starts) != 1 || starts[0] < secondSpeech-150 {
		t.Fatalf("speech starts %v, want one at about %.0f ms (the cough must not count)", starts, secondSpeech)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("barge-in took %v", d)
	}
	heard := final["output"].([]any)[0].(map[string]any)["content"].([]any)[0].(map[string]any)["transcript"].(string)
	if heard == "" || len(heard) >= len(strings.TrimSpace(long)) || !strings.HasPrefix(strings.TrimSpace(long), heard) {
		t.Fatalf("kept transcript %q", heard)
	}
	c.conn.CloseNow()
	waitNoSessions(t, h.gw)
	_ = h.gw.Close()
	_, turns, _ := h.store.onlyConversation()
	if len(turns) < 2 || turns[1].Status != storage.TurnCancelled || opened(t, turns[1]) != heard {
		t.Fatalf("stored turns %+v (heard %q)", turns, heard)
	}
}

func TestManualCommitAndBadAudio(t *testing.T) {
	rec := &fakeRecognizer{text: "hello"}
	h := voiceHarness(t, rec, &toneSynth{}, []string{"Hi!"})
	c := h.mustDial()
	c.send(`{"type":"session.update","session":{"audio":{"input":{"turn_detection":null}}}}`)
	c.until(realtime.TypeSessionUpdated)

	c.send(`{"type":"input_audio_buffer.commit","event_id":"empty"}`)
	if ev := c.next(); ev["error"].(map[string]any)["code"] != "input_audio_buffer_commit_empty" {
		t.Fatal(ev)
	}
	for _, tt := range []struct{ in, code string }{
		{`{"type":"input_audio_buffer.append","audio":"not base64!!"}`, realtime.CodeInvalidValue},
		{`{"type":"input_audio_buffer.append","audio":"AA=="}`, realtime.CodeInvalidValue}, // 1 byte: half a sample
		{`{"type":"input_audio_buffer.append","audio":""}`, realtime.CodeInvalidValue},
	} {
		c.send(tt.in)
		if ev := c.next(); ev["type"] != "error" || ev["error"].(map[string]any)["code"] != tt.code {
			t.Fatalf("%s: %v", tt.in, ev)
		}
	}
	c.sendPCM(loadFixture(t, "hello"))
	c.send(`{"type":"input_audio_buffer.commit"}`)
	c.send(`{"type":"response.create"}`) // waits for the transcript
	evs := c.until(realtime.TypeResponseDone)
	var types []string
	for _, ev := range evs {
		types = append(types, ev["type"].(string))
	}
	joined := strings.Join(types, ",")
	if !strings.Contains(joined, "input_audio_buffer.committed") || strings.Contains(joined, "speech_started") ||
		strings.Index(joined, "transcription.completed") > strings.Index(joined, "response.created") {
		t.Fatalf("manual flow %v", types)
	}
	c.send(`{"type":"input_audio_buffer.clear"}`)
	if ev := c.next(); ev["type"] != realtime.TypeAudioCleared {
		t.Fatal(ev)
	}
	// Opus declared, garbage sent.
	c.send(`{"type":"session.update","session":{"audio":{"input":{"format":{"type":"audio/opus"}}}}}`)
	c.until(realtime.TypeSessionUpdated)
	c.send(`{"type":"input_audio_buffer.append","audio":"` + base64.StdEncoding.EncodeToString([]byte{0x03, 0x00}) /* code 3 with zero frames: not Opus */ + `"}`)
	if ev := c.next(); ev["error"].(map[string]any)["code"] != "invalid_opus_packet" {
		t.Fatal(ev)
	}
}

func TestVoiceRefusedWithoutEngines(t *testing.T) {
	h := newHarness(t, &scriptAgent{deltas: []string{"x"}}, nil)
	c := h.mustDial()
	c.send(`{"type":"input_audio_buffer.append","audio":"AAAA"}`)
	if ev := c.next(); ev["error"].(map[string]any)["code"] != realtime.CodeUnsupported {
		t.Fatal(ev)
	}
	c.send(`{"type":"session.update","session":{"output_modalities":["audio"]}}`)
	if ev := c.next(); ev["error"].(map[string]any)["code"] != realtime.CodeUnsupported {
		t.Fatal(ev)
	}
}

// A client that played only part of an answer says so with
// conversation.item.truncate: the transcript, the model's context and the
// stored turn keep only what was heard.
func TestTruncateSpokenItem(t *testing.T) {
	rec := &fakeRecognizer{text: "what is parley"}
	// 3 sentences of 20 characters: 200 ms of tone each.
	h := voiceHarness(t, rec, &toneSynth{}, []string{"First sentence here. ", "Second sentence now. ", "Third sentence ends."})
	c := h.mustDial()
	c.send(`{"type":"session.update","session":{"output_modalities":["audio"]}}`)
	c.until(realtime.TypeSessionUpdated)
	c.sendPCM(loadFixture(t, "what_is_parley"))
	evs := c.until(realtime.TypeResponseDone)
	final := evs[len(evs)-1]["response"].(map[string]any)
	itemID := final["output"].([]any)[0].(map[string]any)["id"].(string)

	c.send(`{"type":"conversation.item.truncate","item_id":"` + itemID + `","content_index":0,"audio_end_ms":99999,"event_id":"far"}`)
	if ev := c.next(); ev["error"].(map[string]any)["param"] != "audio_end_ms" {
		t.Fatal(ev)
	}
	c.send(`{"type":"conversation.item.truncate","item_id":"` + itemID + `","content_index":0,"audio_end_ms":560}`)
	ev := c.next()
	if ev["type"] != realtime.TypeItemTruncated || ev["audio_end_ms"] != 560.0 {
		t.Fatal(ev)
	}
	c.send(`{"type":"conversation.item.retrieve","item_id":"` + itemID + `"}`)
	got := c.next()["item"].(map[string]any)["content"].([]any)[0].(map[string]any)["transcript"]
	if got != "First sentence here. Second sentence now. Third" {
		t.Fatalf("truncated transcript %q", got)
	}
	c.conn.CloseNow()
	waitNoSessions(t, h.gw)
	_ = h.gw.Close()
	_, turns, _ := h.store.onlyConversation()
	if len(turns) != 2 || opened(t, turns[1]) != "First sentence here. Second sentence now. Third" {
		t.Fatalf("stored %+v", turns)
	}
}

// idle_timeout_ms: silence after an answer triggers
// input_audio_buffer.timeout_triggered.
func TestIdleTimeoutTriggered(t *testing.T) {
	rec := &fakeRecognizer{text: "hello"}
	h := voiceHarness(t, rec, &toneSynth{}, []string{"Hi."})
	c := h.mustDial()
	c.send(`{"type":"session.update","session":{"audio":{"input":{"turn_detection":{"type":"server_vad","idle_timeout_ms":5000}}}}}`)
	c.until(realtime.TypeSessionUpdated)
	c.sendPCM(loadFixture(t, "hello"))
	c.until(realtime.TypeResponseDone)
	c.sendPCM(silence(6000))
	ev := c.until(realtime.TypeAudioTimeoutTriggered)
	last := ev[len(ev)-1]
	if last["audio_end_ms"].(float64)-last["audio_start_ms"].(float64) < 5000 {
		t.Fatalf("timeout %v", last)
	}
}

// Engines that fail or hang cost the turn, never the session, and leave no
// half-written user turn.
func TestRecognizerFailureAndHang(t *testing.T) {
	for _, tt := range []struct {
		name string
		rec  *fakeRecognizer
		code string
	}{
		{"fails", &fakeRecognizer{fail: &stt.Error{Code: "stt_unavailable", Message: "down"}}, "stt_unavailable"},
		{"hangs", &fakeRecognizer{hang: true}, "stt_timeout"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, &scriptAgent{deltas: []string{"x"}}, func(o *Options) {
				o.Recognizer, o.Synthesizer = tt.rec, &toneSynth{}
				o.EngineTimeout = 300 * time.Millisecond
			})
			c := h.mustDial()
			c.sendPCM(loadFixture(t, "hello"))
			evs := c.until(realtime.TypeTranscriptionFailed)
			failed := evs[len(evs)-1]["error"].(map[string]any)
			if failed["code"] != tt.code {
				t.Fatalf("failed %v", failed)
			}
			for _, ev := range evs {
				if ev["type"] == realtime.TypeResponseCreated {
					t.Fatal("a response started without a transcript")
				}
			}
			// The session goes on: a text turn still works.
			c.send(userHello)
			c.send(`{"type":"response.create"}`)
			c.until(realtime.TypeResponseDone)
			c.conn.CloseNow()
			waitNoSessions(t, h.gw)
			_ = h.gw.Close()
			_, turns, _ := h.store.onlyConversation()
			for _, tr := range turns {
				if tr.Role == storage.RoleUser && opened(t, tr) != "Hello there" {
					t.Fatalf("half-written user turn stored: %+v", tr)
				}
			}
		})
	}
}

func TestAudioFasterThanRealTime(t *testing.T) {
	h := voiceHarness(t, &fakeRecognizer{text: "x"}, &toneSynth{}, []string{"x"})
	c := h.mustDial()
	// 120 s of audio in 2 s appends, as fast as the client can: past the
	// 30 s burst allowance plus 10x the (short) elapsed time.
	b := media.PCM16LEToBytes(nil, silence(2000))
	ev, _ := json.Marshal(map[string]string{"type": "input_audio_buffer.append", "audio": base64.StdEncoding.EncodeToString(b)})
	for i := 0; i < 60; i++ {
		c.send(string(ev))
	}
	var got map[string]any
	for got == nil {
		ev := c.next()
		if ev["type"] == "error" {
			got = ev["error"].(map[string]any)
		}
	}
	if got["code"] != "audio_too_fast" {
		t.Fatal(got)
	}
	c.send(`{"type":"conversation.item.retrieve","item_id":"nope"}`)
	for {
		ev := c.next()
		if e, ok := ev["error"].(map[string]any); ok && e["code"] == realtime.CodeItemNotFound {
			break // the session still answers
		}
	}
}

func TestSynthesizerFailure(t *testing.T) {
	syn := &toneSynth{fail: &tts.Error{Code: "tts_unavailable", Message: "down"}}
	h := voiceHarness(t, &fakeRecognizer{text: "hello"}, syn, []string{"Hi there. ", "More."})
	c := h.mustDial()
	c.send(`{"type":"session.update","session":{"output_modalities":["audio"]}}`)
	c.until(realtime.TypeSessionUpdated)
	c.send(userHello)
	c.send(`{"type":"response.create"}`)
	evs := c.until(realtime.TypeResponseDone)
	final := evs[len(evs)-1]["response"].(map[string]any)
	if final["status"] != "failed" || final["status_details"].(map[string]any)["error"].(map[string]any)["code"] != "tts_unavailable" {
		t.Fatalf("final %v", final)
	}
	c.send(`{"type":"session.update","session":{"output_modalities":["text"]}}`)
	c.until(realtime.TypeSessionUpdated)
	c.send(`{"type":"response.create"}`)
	if evs := c.until(realtime.TypeResponseDone); evs[len(evs)-1]["response"].(map[string]any)["status"] != "completed" {
		t.Fatal("session unusable after a synthesizer failure")
	}
}

func TestOversizeAppend(t *testing.T) {
	h := newHarness(t, &scriptAgent{deltas: []string{"x"}}, func(o *Options) {
		o.Recognizer, o.Synthesizer, o.ReadLimit = &fakeRecognizer{text: "x"}, &toneSynth{}, 4<<20
	})
	c := h.mustDial()
	c.conn.SetReadLimit(4 << 20)
	b := media.PCM16LEToBytes(nil, silence(16_000)) // 16 s in one append
	c.send(`{"type":"input_audio_buffer.append","event_id":"big","audio":"` + base64.StdEncoding.EncodeToString(b) + `"}`)
	ev := c.next()
	if e := ev["error"].(map[string]any); e["code"] != "audio_append_too_large" || e["event_id"] != "big" {
		t.Fatal(ev)
	}
	c.sendPCM(silence(100)) // the session goes on
	c.send(`{"type":"input_audio_buffer.clear"}`)
	if ev := c.next(); ev["type"] != realtime.TypeAudioCleared {
		t.Fatal(ev)
	}
}
