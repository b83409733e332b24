package recording

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

const good = `{"parley_recording":1,"name":"t","agent":"assistant","audio_format":"audio/pcm"}
{"send":{"type":"session.update","session":{"type":"realtime"}}}
{"dt":20,"audio":"AAABAA=="}

{"expect":{"reply_contains":"parley"}}
{"await":"response.done","dt":500,"send":{"type":"response.create"}}
`

func TestRead(t *testing.T) {
	rec, err := Read(strings.NewReader(good), "good.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	if rec.Header.Agent != "assistant" || len(rec.Events) != 4 || rec.Lines[3] != 6 {
		t.Fatalf("%+v %v", rec.Header, rec.Lines)
	}
	if string(rec.Events[1].Audio) != "\x00\x00\x01\x00" || rec.Duration() != 520 {
		t.Errorf("audio %q, duration %v", rec.Events[1].Audio, rec.Duration())
	}
}

func TestReadErrors(t *testing.T) {
	head := `{"parley_recording":1,"audio_format":"audio/pcm"}` + "\n"
	tests := []struct {
		name, in, want string
		line           int
	}{
		{"empty", "", "empty", 0},
		{"not a header", `{"send":{"type":"x"}}`, `needs "parley_recording": 1`, 1},
		{"not JSON", "hello", "not a JSON object", 1},
		{"future version", `{"parley_recording":2}` + "\n" + `{"send":{"type":"x"}}`, "unsupported recording version 2", 1},
		{"unknown header key", `{"parley_recording":1,"agnet":"x"}`, `unknown field "agnet"`, 1},
		{"bad audio format", `{"parley_recording":1,"audio_format":"audio/mp3"}`, "audio_format", 1},
		{"no events", head, "no events", 1},
		{"truncated line", head + `{"send":{"type":"response.cre`, "event:", 2},
		{"two kinds", head + `{"send":{"type":"response.create"},"audio":"AAA="}`, "exactly one", 2},
		{"none", head + `{"dt":5}`, "exactly one", 2},
		{"send without type", head + `{"send":{"x":1}}`, `no "type"`, 2},
		{"append as send", head + `{"send":{"type":"input_audio_buffer.append","audio":""}}`, "audio", 2},
		{"odd pcm", head + `{"audio":"AAAA"}`, "even count", 2},
		{"bad base64", head + `{"audio":"***"}`, "event:", 2},
		{"audio without format", `{"parley_recording":1}` + "\n" + `{"audio":"AAA="}`, "audio_format", 2},
		{"negative dt", head + `{"dt":-1,"send":{"type":"response.create"}}`, `"dt"`, 2},
		{"bad await", head + `{"await":"session.created","send":{"type":"response.create"}}`, `"await"`, 2},
		{"empty expect", head + `{"expect":{}}`, "empty", 2},
		{"unknown event key", head + `{"sned":{"type":"x"}}`, `unknown field "sned"`, 2},
		{"two values", head + `{"send":{"type":"x"}} {}`, "more than one", 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Read(strings.NewReader(tc.in), "s.jsonl")
			var re *Error
			if !errors.As(err, &re) {
				t.Fatalf("err %v, want a *recording.Error", err)
			}
			if !strings.Contains(err.Error(), tc.want) || re.Line != tc.line || !strings.HasPrefix(err.Error(), "s.jsonl") {
				t.Errorf("err %q (line %d), want %q on line %d", err, re.Line, tc.want, tc.line)
			}
		})
	}
	long := head + `{"send":{"type":"x","pad":"` + strings.Repeat("a", MaxLine) + `"}}`
	if _, err := Read(strings.NewReader(long), "l"); err == nil || !strings.Contains(err.Error(), "longer than") {
		t.Errorf("long line: %v", err)
	}
}

func TestWriteRead(t *testing.T) {
	var b bytes.Buffer
	w, err := NewWriter(&b, Header{Name: "round trip", AudioFormat: AudioOpus})
	if err != nil {
		t.Fatal(err)
	}
	evs := []Event{
		{Send: []byte(`{"type":"session.update","session":{"type":"realtime"}}`)},
		{Delay: 20, Audio: []byte{1, 2, 3}},
		{Expect: &Expect{TranscriptContains: "hello"}},
		{Await: AwaitResponseDone, Delay: 1500, Send: []byte(`{"type":"response.create"}`)},
	}
	for _, ev := range evs {
		if err := w.Event(ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	rec, err := Read(&b, "")
	if err != nil {
		t.Fatal(err)
	}
	if rec.Header.Format != Version || len(rec.Events) != 4 || rec.Events[3].Await != AwaitResponseDone ||
		!bytes.Equal(rec.Events[1].Audio, []byte{1, 2, 3}) || rec.Events[2].Expect.TranscriptContains != "hello" {
		t.Errorf("round trip: %+v", rec)
	}
}

// FuzzRead: any input is a recording or an *Error, never a panic.
func FuzzRead(f *testing.F) {
	f.Add(good)
	f.Add(`{"parley_recording":1}` + "\n" + `{"send":{"type":"response.create"}}`)
	f.Add(`{"parley_recording":1,"audio_format":"audio/opus"}` + "\n" + `{"dt":1e308,"audio":"AA=="}`)
	f.Fuzz(func(t *testing.T, in string) {
		rec, err := Read(strings.NewReader(in), "f")
		if err != nil {
			var re *Error
			if !errors.As(err, &re) {
				t.Fatalf("error %v is not a *recording.Error", err)
			}
			return
		}
		if len(rec.Events) == 0 || len(rec.Lines) != len(rec.Events) {
			t.Fatalf("a recording without events: %+v", rec)
		}
	})
}
