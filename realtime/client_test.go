package realtime

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name, in, code, param, eventID string
	}{
		{"not json", `{"type":`, CodeInvalidJSON, "", ""},
		{"array", `[1,2]`, CodeInvalidType, "", ""},
		{"trailing", `{"type":"response.create"} {}`, CodeInvalidJSON, "", ""},
		{"empty", ``, CodeInvalidJSON, "", ""},
		{"no type", `{"event_id":"e1"}`, CodeMissingType, "type", "e1"},
		{"type wrong kind", `{"type":5,"event_id":"e2"}`, CodeInvalidType, "type", "e2"},
		{"unknown type", `{"type":"bogus.event","event_id":"e3"}`, CodeUnknownEvent, "type", "e3"},
		{"unknown top-level field", `{"type":"response.create","foo":1}`, CodeUnknownParameter, "foo", ""},
		{"field of another event", `{"type":"response.cancel","item":{}}`, CodeUnknownParameter, "item", ""},
		{"session missing", `{"type":"session.update"}`, CodeMissingParameter, "session", ""},
		{"session null", `{"type":"session.update","session":null}`, CodeMissingParameter, "session", ""},
		{"session wrong type", `{"type":"session.update","session":"x"}`, CodeInvalidType, "session", ""},
		{"session instructions wrong type", `{"type":"session.update","session":{"instructions":5},"event_id":"e4"}`, CodeInvalidType, "session.instructions", "e4"},
		{"session unknown field", `{"type":"session.update","session":{"bogus":true}}`, CodeUnknownParameter, "session.bogus", ""},
		{"max tokens bad", `{"type":"session.update","session":{"max_output_tokens":0}}`, CodeInvalidValue, "session.max_output_tokens", ""},
		{"item missing", `{"type":"conversation.item.create"}`, CodeMissingParameter, "item", ""},
		{"item no type", `{"type":"conversation.item.create","item":{"role":"user"}}`, CodeMissingParameter, "item.type", ""},
		{"item bad type", `{"type":"conversation.item.create","item":{"type":"potato"}}`, CodeInvalidValue, "item.type", ""},
		{"item no role", `{"type":"conversation.item.create","item":{"type":"message","content":[]}}`, CodeMissingParameter, "item.role", ""},
		{"item bad role", `{"type":"conversation.item.create","item":{"type":"message","role":"robot","content":[]}}`, CodeInvalidValue, "item.role", ""},
		{"item no content", `{"type":"conversation.item.create","item":{"type":"message","role":"user","content":[]}}`, CodeMissingParameter, "item.content", ""},
		{"content wrong kind", `{"type":"conversation.item.create","item":{"type":"message","role":"user","content":"hi"}}`, CodeInvalidType, "item.content", ""},
		{"content no text", `{"type":"conversation.item.create","item":{"type":"message","role":"user","content":[{"type":"input_text"}]}}`, CodeMissingParameter, "item.content[0].text", ""},
		{"content text number", `{"type":"conversation.item.create","item":{"type":"message","role":"user","content":[{"type":"input_text","text":1}]}}`, CodeInvalidType, "item.content[0].text", ""},
		{"content wrong type for role", `{"type":"conversation.item.create","item":{"type":"message","role":"user","content":[{"type":"output_text","text":"x"}]}}`, CodeInvalidValue, "item.content[0].type", ""},
		{"audio content", `{"type":"conversation.item.create","item":{"type":"message","role":"user","content":[{"type":"input_audio","audio":"AA=="}]}}`, CodeUnsupported, "item.content[0].type", ""},
		{"function item", `{"type":"conversation.item.create","item":{"type":"function_call_output","call_id":"c","output":"x"}}`, CodeUnsupported, "item.type", ""},
		{"delete no id", `{"type":"conversation.item.delete"}`, CodeMissingParameter, "item_id", ""},
		{"truncate no index", `{"type":"conversation.item.truncate","item_id":"a","audio_end_ms":3}`, CodeMissingParameter, "content_index", ""},
		{"truncate negative", `{"type":"conversation.item.truncate","item_id":"a","content_index":0,"audio_end_ms":-1}`, CodeInvalidValue, "audio_end_ms", ""},
		{"response wrong type", `{"type":"response.create","response":[]}`, CodeInvalidType, "response", ""},
		{"response bad conversation", `{"type":"response.create","response":{"conversation":"maybe"}}`, CodeInvalidValue, "response.conversation", ""},
		{"response bad modality", `{"type":"response.create","response":{"output_modalities":["smell"]}}`, CodeInvalidValue, "response.output_modalities", ""},
		{"response unknown field", `{"type":"response.create","response":{"temperature":0.2}}`, CodeUnknownParameter, "response.temperature", ""},
		{"append no audio", `{"type":"input_audio_buffer.append"}`, CodeMissingParameter, "audio", ""},
		{"cancel id wrong type", `{"type":"response.cancel","response_id":7}`, CodeInvalidType, "response_id", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := Decode([]byte(tt.in))
			if err == nil {
				t.Fatalf("Decode(%s) = %+v, want error %s", tt.in, ev, tt.code)
			}
			if err.Code != tt.code {
				t.Errorf("code = %q, want %q (%v)", err.Code, tt.code, err)
			}
			gotParam := ""
			if err.Param != nil {
				gotParam = *err.Param
			}
			if gotParam != tt.param {
				t.Errorf("param = %q, want %q (%v)", gotParam, tt.param, err)
			}
			gotID := ""
			if err.EventID != nil {
				gotID = *err.EventID
			}
			if gotID != tt.eventID {
				t.Errorf("event_id = %q, want %q", gotID, tt.eventID)
			}
			if err.Type != InvalidRequest || err.Message == "" {
				t.Errorf("bad error shape: %+v", err)
			}
		})
	}
}

func TestDecodeValid(t *testing.T) {
	ev, err := Decode([]byte(`{"type":"conversation.item.create","event_id":"ev_1","previous_item_id":null,
		"item":{"type":"message","role":"user","content":[{"type":"input_text","text":"Hello "},{"type":"input_text","text":"there"}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	if ev.Type != TypeItemCreate || ev.EventID != "ev_1" || ev.Item.Text() != "Hello there" || ev.Item.Role != "user" {
		t.Fatalf("bad event %+v", ev)
	}
	ev, err = Decode([]byte(`{"type":"response.create","response":{"instructions":"be brief","max_output_tokens":"inf","metadata":{"k":"v"},"conversation":"none","output_modalities":["text"]}}`))
	if err != nil {
		t.Fatal(err)
	}
	if *ev.Response.Instructions != "be brief" || *ev.Response.Conversation != "none" || ev.Response.Metadata["k"] != "v" {
		t.Fatalf("bad response params %+v", ev.Response)
	}
	ev, err = Decode([]byte(`{"type":"session.update","session":{"type":"realtime","instructions":"x","audio":{"input":{"turn_detection":null,"format":{"type":"audio/pcmu"}}}}}`))
	if err != nil {
		t.Fatal(err)
	}
	s := NewSession("sess_1", "assistant", "", 0)
	if e := s.Apply(ev.Session); e != nil {
		t.Fatal(e)
	}
	if s.Audio.Input.TurnDetection != nil || s.Audio.Input.Format.Type != FormatPCMU || s.Instructions != "x" {
		t.Fatalf("apply: %+v", s)
	}
}

func TestSessionApplyErrors(t *testing.T) {
	tests := []struct{ name, session, code, param string }{
		{"type", `{"type":"conversation"}`, CodeInvalidValue, "session.type"},
		{"model change", `{"model":"other"}`, CodeInvalidValue, "session.model"},
		{"two modalities", `{"output_modalities":["text","audio"]}`, CodeInvalidValue, "session.output_modalities"},
		{"pcm rate", `{"audio":{"input":{"format":{"type":"audio/pcm","rate":16000}}}}`, CodeInvalidValue, "session.audio.input.format.rate"},
		{"format", `{"audio":{"output":{"format":{"type":"audio/mp3"}}}}`, CodeInvalidValue, "session.audio.output.format.type"},
		{"threshold", `{"audio":{"input":{"turn_detection":{"type":"server_vad","threshold":2}}}}`, CodeInvalidValue, "session.audio.input.turn_detection.threshold"},
		{"semantic", `{"audio":{"input":{"turn_detection":{"type":"semantic_vad"}}}}`, CodeUnsupported, "session.audio.input.turn_detection.type"},
		{"td field", `{"audio":{"input":{"turn_detection":{"type":"server_vad","nope":1}}}}`, CodeUnknownParameter, "session.audio.input.turn_detection.nope"},
		{"speed", `{"audio":{"output":{"speed":3}}}`, CodeInvalidValue, "session.audio.output.speed"},
		{"tools", `{"tools":[{"type":"web_search"}]}`, CodeInvalidValue, "session.tools[0].type"},
		{"tool name", `{"tools":[{"type":"function"}]}`, CodeMissingParameter, "session.tools[0].name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, derr := Decode([]byte(`{"type":"session.update","session":` + tt.session + `}`))
			if derr != nil {
				t.Fatalf("decode: %v", derr)
			}
			s := NewSession("sess_1", "assistant", "orig", 0)
			before, _ := json.Marshal(s)
			err := s.Apply(ev.Session)
			if err == nil || err.Code != tt.code || err.Param == nil || *err.Param != tt.param {
				t.Fatalf("Apply = %v, want %s at %s", err, tt.code, tt.param)
			}
			after, _ := json.Marshal(s)
			if string(before) != string(after) {
				t.Fatal("failed update changed the session")
			}
		})
	}
}

func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{"", "plain", "quote\" back\\slash", "ctl\x00\x01\x1f\n\r\t", "<a href='x'>&amp;</a>",
		"ünïcødé ✓ 😀", "bad\xffutf8\xc3", "line\u2028sep\u2029"} {
		want, _ := json.Marshal(s)
		if got := AppendString(nil, s); string(got) != string(want) {
			t.Errorf("AppendString(%q) = %s, want %s", s, got, want)
		}
	}
}

func TestAppendTextDeltaIsValidJSON(t *testing.T) {
	b := AppendTextDelta(nil, "event_x", 35, "resp_1", "item_1", 0, 0, "Hi \"you\"\n")
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m["type"] != TypeOutputTextDelta || m["delta"] != "Hi \"you\"\n" || m["output_index"] != 0.0 || m["event_id"] != "event_xz" {
		t.Fatalf("bad delta %v", m)
	}
	buf := make([]byte, 0, 256)
	if n := testing.AllocsPerRun(100, func() {
		buf = AppendTextDelta(buf[:0], "event_x", 123456, "resp_1", "item_1", 0, 0, "some words ")
	}); n != 0 {
		t.Fatalf("AppendTextDelta allocates %v times", n)
	}
}

func TestContentMarshal(t *testing.T) {
	b, _ := json.Marshal(Content{Type: ContentOutputText})
	if string(b) != `{"type":"output_text","text":""}` {
		t.Fatal(string(b))
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"type":"session.update","session":{"instructions":"x","audio":{"input":{"turn_detection":{"type":"server_vad"}}}}}`,
		`{"type":"conversation.item.create","item":{"type":"message","role":"user","content":[{"type":"input_text","text":"hi"}]}}`,
		`{"type":"response.create","response":{"conversation":"none","input":[{"type":"item_reference","id":"a"}]}}`,
		`{"type":"response.cancel"}`, `{"type":"conversation.item.truncate","item_id":"a","content_index":0,"audio_end_ms":1}`,
		`{`, `null`, `{"type":null}`, strings.Repeat(`[`, 100),
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ev, err := Decode(data)
		if (ev == nil) == (err == nil) {
			t.Fatalf("exactly one of event and error must be set: %v %v", ev, err)
		}
		if err != nil {
			if err.Code == "" || err.Message == "" || err.Type != InvalidRequest {
				t.Fatalf("bad error %+v", err)
			}
			if _, jerr := json.Marshal(&ErrorEvent{Type: TypeError, EventID: "x", Error: err}); jerr != nil {
				t.Fatal(jerr)
			}
			return
		}
		if ev.Type == "" {
			t.Fatal("event without type")
		}
		if ev.Session != nil {
			s := NewSession("s", "m", "", 0)
			_ = s.Apply(ev.Session)
			if _, jerr := json.Marshal(&s); jerr != nil {
				t.Fatalf("session no longer marshals: %v", jerr)
			}
		}
		if ev.Response != nil {
			for i, in := range ev.Response.Input {
				_, _, _ = DecodeInputItem(in, "response.input["+string(rune('0'+i%10))+"]")
			}
		}
	})
}
