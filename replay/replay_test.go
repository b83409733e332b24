package replay

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/coder/websocket"

	"parley/recording"
)

// fakeGateway answers like a gateway: session.created, an answer per
// response.create, and a spoken turn after every 10 audio chunks. delay
// holds each answer back; closeAfter closes the session after that many
// answers (0: never).
type fakeGateway struct {
	reply      string
	delay      time.Duration
	closeAfter int
}

func (f *fakeGateway) serve(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer sk_good" {
			http.Error(w, `{"error":{"code":"invalid_api_key"}}`, http.StatusUnauthorized)
			return
		}
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		ctx := r.Context()
		send := func(v string) { _ = c.Write(ctx, websocket.MessageText, []byte(v)) }
		answer := func(spoken bool) {
			time.Sleep(f.delay)
			send(`{"type":"response.created","response":{"id":"r"}}`)
			if spoken {
				send(`{"type":"response.output_audio.delta","delta":"AAAA"}`)
				send(`{"type":"response.output_audio_transcript.delta","delta":"` + f.reply + `"}`)
			} else {
				send(`{"type":"response.output_text.delta","delta":"` + f.reply + `"}`)
			}
			send(`{"type":"response.done","response":{"status":"completed"}}`)
		}
		send(`{"type":"session.created","session":{}}`)
		appends, answers := 0, 0
		for {
			_, b, err := c.Read(ctx)
			if err != nil {
				return
			}
			var ev struct{ Type string }
			_ = json.Unmarshal(b, &ev)
			switch ev.Type {
			case "response.create":
				answer(false)
				answers++
			case "input_audio_buffer.append":
				if appends++; appends%10 == 0 {
					send(`{"type":"input_audio_buffer.speech_stopped"}`)
					send(`{"type":"conversation.item.input_audio_transcription.delta","delta":"what"}`)
					send(`{"type":"conversation.item.input_audio_transcription.completed","transcript":"what is parley"}`)
					answer(true)
					answers++
				}
			}
			if f.closeAfter > 0 && answers >= f.closeAfter {
				_ = c.Close(websocket.StatusGoingAway, "server shutting down")
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func mustRead(t *testing.T, s string) *recording.Recording {
	t.Helper()
	rec, err := recording.Read(strings.NewReader(s), "t.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

const textRec = `{"parley_recording":1,"agent":"assistant"}
{"expect":{"reply_contains":"parley"}}
{"send":{"type":"conversation.item.create","item":{"type":"message","role":"user","content":[{"type":"input_text","text":"What is Parley?"}]}}}
{"send":{"type":"response.create"}}
{"expect":{"reply_contains":"nothing like this"}}
{"await":"response.done","dt":10,"send":{"type":"response.create"}}
`

func voiceRec() string {
	var b strings.Builder
	b.WriteString(`{"parley_recording":1,"agent":"assistant","audio_format":"audio/pcm"}` + "\n")
	b.WriteString(`{"expect":{"transcript_contains":"parley","reply_contains":"parley"}}` + "\n")
	for range 10 {
		b.WriteString(`{"dt":5,"audio":"AAAAAA=="}` + "\n")
	}
	return b.String()
}

func TestPlayText(t *testing.T) {
	srv := (&fakeGateway{reply: "Parley is a gateway.", delay: 20 * time.Millisecond}).serve(t)
	res, err := Play(context.Background(), mustRead(t, textRec), Options{URL: srv.URL, Key: "sk_good"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Turns) != 2 || res.Connect <= 0 {
		t.Fatalf("turns %d, connect %v: %+v", len(res.Turns), res.Connect, res.Failures)
	}
	// The first expectation holds; the second names its line.
	if len(res.Failures) != 1 || res.Failures[0].Kind != KindExpectation || !strings.Contains(res.Failures[0].Message, "t.jsonl:5") {
		t.Errorf("failures %+v, want one expectation failure at t.jsonl:5", res.Failures)
	}
	if d := res.Turns[0].Times[MReplyFirstToken]; d < 20*time.Millisecond || d > time.Second {
		t.Errorf("first token %v, want about the fake's 20 ms", d)
	}
}

func TestPlayVoice(t *testing.T) {
	srv := (&fakeGateway{reply: "Parley is a gateway."}).serve(t)
	res, err := Play(context.Background(), mustRead(t, voiceRec()), Options{URL: srv.URL, Key: "sk_good"})
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK() || len(res.Turns) != 1 || !res.Turns[0].Spoken {
		t.Fatalf("%+v %+v", res.Failures, res.Turns)
	}
	for _, m := range []string{MTranscriptFirst, MTranscriptFinal, MReplyFirstToken, MReplyFirstAudio, MTurnToAudio, MReplyDone} {
		if _, ok := res.Turns[0].Times[m]; !ok {
			t.Errorf("%s not measured", m)
		}
	}
	// The audio took 10 × 5 ms: the turn's start is before its end.
	if res.Turns[0].Times[MReplyFirstAudio] < 40*time.Millisecond {
		t.Errorf("reply_first_audio %v, want at least the 45 ms of audio", res.Turns[0].Times[MReplyFirstAudio])
	}
}

func TestPlayFailures(t *testing.T) {
	good := (&fakeGateway{reply: "Parley"}).serve(t)
	slow := (&fakeGateway{reply: "Parley", delay: 2 * time.Second}).serve(t)
	closing := (&fakeGateway{reply: "Parley", closeAfter: 1}).serve(t)
	dead := httptest.NewServer(nil)
	dead.Close()
	tests := []struct {
		name, url, key, kind string
		timeout              time.Duration
	}{
		{"refused key", good.URL, "sk_bad", KindAuth, 0},
		{"unreachable", dead.URL, "sk_good", KindUnreachable, 0},
		{"timeout", slow.URL, "sk_good", KindTimeout, 300 * time.Millisecond},
		{"closed early", closing.URL, "sk_good", KindClosed, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Play(context.Background(), mustRead(t, textRec), Options{URL: tc.url, Key: tc.key, Timeout: tc.timeout})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Failures) == 0 || res.Failures[0].Kind != tc.kind {
				t.Errorf("failures %+v, want %s first", res.Failures, tc.kind)
			}
		})
	}
	if _, err := Play(context.Background(), mustRead(t, `{"parley_recording":1}`+"\n"+`{"send":{"type":"response.create"}}`),
		Options{URL: good.URL, Key: "sk_good"}); err == nil || !strings.Contains(err.Error(), "no agent") {
		t.Errorf("a recording without an agent: %v", err)
	}
}

func TestLoad(t *testing.T) {
	srv := (&fakeGateway{reply: "Parley is a gateway.", delay: 5 * time.Millisecond}).serve(t)
	recs := []*recording.Recording{mustRead(t, voiceRec()), mustRead(t, strings.Replace(textRec, "nothing like this", "gateway", 1))}
	var progress int
	l := &Load{Recordings: recs, Session: Options{URL: srv.URL, Key: "sk_good"}, Concurrency: 8, Ramp: 50 * time.Millisecond,
		Count: 40, Seed: 7, Progress: func(done, _ int) { progress = done }}
	rep := l.Run(context.Background())
	if rep.Sessions != 40 || rep.Failed != 0 || progress != 40 || rep.Peak < 2 {
		t.Fatalf("sessions %d failed %d progress %d peak %d: %v", rep.Sessions, rep.Failed, progress, rep.Peak, rep.Samples)
	}
	st := rep.Stats()
	if st[MConnect].Count != 40 || st[MReplyDone].Count < 40 || st[MTurnToAudio].Count == 0 {
		t.Errorf("stats %+v", st)
	}
	var text, js, csvOut bytes.Buffer
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	if err := rep.WriteCSV(&csvOut); err != nil {
		t.Fatal(err)
	}
	var html bytes.Buffer
	if err := rep.WriteHTML(&html); err != nil {
		t.Fatal(err)
	}
	if h := html.String(); !strings.Contains(h, "40 sessions") || strings.Count(h, "<svg") < 5 || strings.Contains(h, "<script") {
		t.Errorf("HTML report: %d plots:\n%s", strings.Count(h, "<svg"), clip(h, 2000))
	}
	if !strings.Contains(text.String(), "40 sessions") || !json.Valid(js.Bytes()) || strings.Count(csvOut.String(), "\n") < 41 {
		t.Errorf("reports:\n%s\n%s\n%s", text.String(), js.String(), csvOut.String())
	}
	// The same seed picks the same mix.
	mix := func() []string {
		rep := (&Load{Recordings: recs, Session: Options{URL: srv.URL, Key: "sk_good"}, Count: 10, Seed: 7}).Run(context.Background())
		var out []string
		for _, r := range rep.Results {
			out = append(out, strings.Split(r.Recording, "/")[0]+string(rune('0'+len(r.Turns))))
		}
		return out
	}
	if a, b := mix(), mix(); strings.Join(a, ",") != strings.Join(b, ",") {
		t.Errorf("seeded mixes differ: %v vs %v", a, b)
	}
}

func TestLoadDuration(t *testing.T) {
	srv := (&fakeGateway{reply: "Parley", delay: 50 * time.Millisecond}).serve(t)
	start := time.Now()
	rep := (&Load{Recordings: []*recording.Recording{mustRead(t, textRec)}, Session: Options{URL: srv.URL, Key: "sk_good"},
		Concurrency: 4, Duration: 300 * time.Millisecond}).Run(context.Background())
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("a 300 ms run took %v", el)
	}
	if rep.Sessions == 0 || rep.Errors[KindCancelled] != 0 {
		t.Errorf("sessions %d, errors %v: sessions cut by the duration are not errors", rep.Sessions, rep.Errors)
	}
}

func TestSLO(t *testing.T) {
	rep := &Report{Sessions: 100, Failed: 2, Hist: map[string]*hdrhistogram.Histogram{}}
	for _, m := range Metrics {
		rep.Hist[m] = newHist()
	}
	for i := int64(1); i <= 100; i++ {
		_ = rep.Hist[MTurnToAudio].RecordValue(i * 10000) // 10 ms … 1 s
	}
	tests := []struct {
		slo, parseErr string
		fails         bool
	}{
		{"p99(turn_to_audio)<1500ms", "", false},
		{"p50(turn_to_audio)<400ms", "", true},
		{"max(turn_to_audio) < 2s", "", false},
		{"p90(connect)<1s", "", true}, // nothing measured cannot pass
		{"errors<5%", "", false},
		{"errors<1%", "", true},
		{"p95(turn_to_audio)<1s", "not p50", false},
		{"p99(latency)<1s", "not a metric", false},
		{"p99(turn_to_audio)<fast", "not a duration", false},
		{"errors<lots", "percentage", false},
		{"p99(turn_to_audio)", "want STAT", false},
	}
	for _, tc := range tests {
		slo, err := ParseSLO(tc.slo)
		if tc.parseErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.parseErr) {
				t.Errorf("%q: err %v, want %q", tc.slo, err, tc.parseErr)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%q: %v", tc.slo, err)
		}
		if got := rep.Check(slo); (got != "") != tc.fails {
			t.Errorf("%q: check %q, want failing %v", tc.slo, got, tc.fails)
		}
	}
}
