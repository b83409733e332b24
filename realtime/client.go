package realtime

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
)

// Client event types.
const (
	TypeSessionUpdate     = "session.update"
	TypeItemCreate        = "conversation.item.create"
	TypeItemDelete        = "conversation.item.delete"
	TypeItemRetrieve      = "conversation.item.retrieve"
	TypeItemTruncate      = "conversation.item.truncate"
	TypeResponseCreate    = "response.create"
	TypeResponseCancel    = "response.cancel"
	TypeAudioAppend       = "input_audio_buffer.append"
	TypeAudioCommit       = "input_audio_buffer.commit"
	TypeAudioClear        = "input_audio_buffer.clear"
	TypeOutputAudioClear  = "output_audio_buffer.clear"
	TypeTranscriptSession = "transcription_session.update"
)

// ClientEvent is a decoded client event. Only the fields of its Type are set.
type ClientEvent struct {
	Type    string
	EventID string

	Session *SessionUpdate // session.update

	Item           *Item   // conversation.item.create
	PreviousItemID *string // conversation.item.create

	ItemID       string // conversation.item.delete/retrieve/truncate
	ContentIndex int    // conversation.item.truncate
	AudioEndMS   int    // conversation.item.truncate

	Response   *ResponseParams // response.create (nil: defaults)
	ResponseID string          // response.cancel (optional)

	Audio string // input_audio_buffer.append (base64)
}

// ResponseParams is the `response` of response.create.
type ResponseParams struct {
	Conversation     *string           `json:"conversation"` // "auto" or "none"
	Metadata         map[string]string `json:"metadata"`
	OutputModalities []string          `json:"output_modalities"`
	Instructions     *string           `json:"instructions"`
	MaxOutputTokens  *MaxTokens        `json:"max_output_tokens"`
	Input            []json.RawMessage `json:"input"`
	Tools            json.RawMessage   `json:"tools"`
	ToolChoice       json.RawMessage   `json:"tool_choice"`
	Audio            json.RawMessage   `json:"audio"`
	Prompt           json.RawMessage   `json:"prompt"`
}

// wireEvent is every top-level field any client event may carry; Decode
// checks which ones belong to the event's type.
type wireEvent struct {
	Type           *string         `json:"type"`
	EventID        *string         `json:"event_id"`
	Session        json.RawMessage `json:"session"`
	Item           json.RawMessage `json:"item"`
	PreviousItemID *string         `json:"previous_item_id"`
	ItemID         *string         `json:"item_id"`
	ContentIndex   *int            `json:"content_index"`
	AudioEndMS     *int            `json:"audio_end_ms"`
	Response       json.RawMessage `json:"response"`
	ResponseID     *string         `json:"response_id"`
	Audio          *string         `json:"audio"`
}

// Decode parses one client event. Every failure is an *Error naming the
// offending parameter, with EventID set when the event carried one.
func Decode(data []byte) (*ClientEvent, *Error) {
	var w wireEvent
	err := strictUnmarshal(data, &w)
	eventID := ""
	if w.EventID != nil {
		eventID = *w.EventID
	}
	if err != nil {
		return nil, fieldError(err, "").WithEventID(eventID)
	}
	ev, e := decodeWire(&w)
	if e != nil {
		return nil, e.WithEventID(eventID)
	}
	ev.EventID = eventID
	return ev, nil
}

// fields a given event type may carry, besides type and event_id.
const (
	fSession = 1 << iota
	fItem
	fPrevious
	fItemID
	fContentIndex
	fAudioEnd
	fResponse
	fResponseID
	fAudio
)

var allowed = map[string]int{
	TypeSessionUpdate:    fSession,
	TypeItemCreate:       fItem | fPrevious,
	TypeItemDelete:       fItemID,
	TypeItemRetrieve:     fItemID,
	TypeItemTruncate:     fItemID | fContentIndex | fAudioEnd,
	TypeResponseCreate:   fResponse,
	TypeResponseCancel:   fResponseID,
	TypeAudioAppend:      fAudio,
	TypeAudioCommit:      0,
	TypeAudioClear:       0,
	TypeOutputAudioClear: 0,
}

func decodeWire(w *wireEvent) (*ClientEvent, *Error) {
	if w.Type == nil || *w.Type == "" {
		return nil, Invalid(CodeMissingType, "type", "every event needs a string \"type\"")
	}
	typ := *w.Type
	mask, ok := allowed[typ]
	if !ok {
		if typ == TypeTranscriptSession {
			return nil, Invalid(CodeUnsupported, "type", "transcription sessions are not supported")
		}
		return nil, Invalid(CodeUnknownEvent, "type", "unknown client event type %q", truncate(typ, 64))
	}
	present := []struct {
		set  bool
		bit  int
		name string
	}{
		{w.Session != nil, fSession, "session"},
		{w.Item != nil, fItem, "item"},
		{w.PreviousItemID != nil, fPrevious, "previous_item_id"},
		{w.ItemID != nil, fItemID, "item_id"},
		{w.ContentIndex != nil, fContentIndex, "content_index"},
		{w.AudioEndMS != nil, fAudioEnd, "audio_end_ms"},
		{w.Response != nil, fResponse, "response"},
		{w.ResponseID != nil, fResponseID, "response_id"},
		{w.Audio != nil, fAudio, "audio"},
	}
	for _, p := range present {
		if p.set && mask&p.bit == 0 {
			return nil, Invalid(CodeUnknownParameter, p.name, "%s does not take parameter %q", typ, p.name)
		}
	}
	ev := &ClientEvent{Type: typ}
	switch typ {
	case TypeSessionUpdate:
		if w.Session == nil || isNull(w.Session) {
			return nil, Invalid(CodeMissingParameter, "session", "session.update needs a \"session\" object")
		}
		var u SessionUpdate
		if err := strictUnmarshal(w.Session, &u); err != nil {
			return nil, fieldError(err, "session")
		}
		ev.Session = &u
	case TypeItemCreate:
		if w.Item == nil || isNull(w.Item) {
			return nil, Invalid(CodeMissingParameter, "item", "conversation.item.create needs an \"item\" object")
		}
		it, e := decodeItem(w.Item, "item")
		if e != nil {
			return nil, e
		}
		ev.Item = it
		ev.PreviousItemID = w.PreviousItemID
	case TypeItemDelete, TypeItemRetrieve, TypeItemTruncate:
		if w.ItemID == nil || *w.ItemID == "" {
			return nil, Invalid(CodeMissingParameter, "item_id", "%s needs \"item_id\"", typ)
		}
		ev.ItemID = *w.ItemID
		if typ == TypeItemTruncate {
			if w.ContentIndex == nil {
				return nil, Invalid(CodeMissingParameter, "content_index", "conversation.item.truncate needs \"content_index\"")
			}
			if w.AudioEndMS == nil {
				return nil, Invalid(CodeMissingParameter, "audio_end_ms", "conversation.item.truncate needs \"audio_end_ms\"")
			}
			if *w.ContentIndex < 0 {
				return nil, Invalid(CodeInvalidValue, "content_index", "content_index must not be negative")
			}
			if *w.AudioEndMS < 0 {
				return nil, Invalid(CodeInvalidValue, "audio_end_ms", "audio_end_ms must not be negative")
			}
			ev.ContentIndex, ev.AudioEndMS = *w.ContentIndex, *w.AudioEndMS
		}
	case TypeResponseCreate:
		if w.Response != nil && !isNull(w.Response) {
			var p ResponseParams
			if err := strictUnmarshal(w.Response, &p); err != nil {
				return nil, fieldError(err, "response")
			}
			if e := p.validate(); e != nil {
				return nil, e
			}
			ev.Response = &p
		}
	case TypeResponseCancel:
		if w.ResponseID != nil {
			ev.ResponseID = *w.ResponseID
		}
	case TypeAudioAppend:
		if w.Audio == nil {
			return nil, Invalid(CodeMissingParameter, "audio", "input_audio_buffer.append needs base64 \"audio\"")
		}
		ev.Audio = *w.Audio
	}
	return ev, nil
}

func (p *ResponseParams) validate() *Error {
	if p.Conversation != nil && *p.Conversation != "auto" && *p.Conversation != "none" {
		return Invalid(CodeInvalidValue, "response.conversation", "conversation must be \"auto\" or \"none\"")
	}
	if p.OutputModalities != nil {
		if e := validModalities(p.OutputModalities, "response.output_modalities"); e != nil {
			return e
		}
	}
	if p.Instructions != nil && len(*p.Instructions) > maxInstructions {
		return Invalid(CodeInvalidValue, "response.instructions", "instructions are longer than %d bytes", maxInstructions)
	}
	if len(p.Metadata) > 16 {
		return Invalid(CodeInvalidValue, "response.metadata", "metadata holds at most 16 pairs")
	}
	for k, v := range p.Metadata {
		if len(k) > 64 || len(v) > 512 {
			return Invalid(CodeInvalidValue, "response.metadata", "metadata keys are at most 64 bytes and values at most 512")
		}
	}
	if p.Tools != nil {
		if e := validTools(p.Tools, "response.tools"); e != nil {
			return e
		}
	}
	if p.Audio != nil && !isNull(p.Audio) {
		return Invalid(CodeUnsupported, "response.audio", "audio output is not available in this Parley version")
	}
	return nil
}

// strictUnmarshal decodes data into v, refusing unknown fields and
// trailing data.
func strictUnmarshal(data []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return err
	}
	if d.More() {
		return errTrailing
	}
	return nil
}

var errTrailing = errors.New("trailing data after the JSON value")

// fieldError turns a JSON decoding error into an *Error whose param is the
// dotted path of the offending field, below prefix.
func fieldError(err error, prefix string) *Error {
	join := func(a, b string) string {
		switch {
		case a == "":
			return b
		case b == "":
			return a
		}
		return a + "." + b
	}
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	var ve valueError
	switch {
	case errors.As(err, &te):
		p := join(prefix, te.Field)
		return Invalid(CodeInvalidType, p, "%s must be %s, not %s", orValue(p), jsonKind(te.Type.Kind().String()), te.Value)
	case errors.As(err, &ve):
		// MaxTokens is the only custom decoder; encoding/json does not
		// report the path of a custom decoder's error.
		return Invalid(CodeInvalidValue, join(prefix, "max_output_tokens"), "max_output_tokens %s", string(ve))
	case errors.As(err, &se), errors.Is(err, errTrailing), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return Invalid(CodeInvalidJSON, prefix, "the event is not valid JSON: %s", err.Error())
	}
	msg := err.Error()
	if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		name := strings.Trim(f, `"`)
		return Invalid(CodeUnknownParameter, join(prefix, name), "unknown parameter %q", join(prefix, name))
	}
	if strings.HasPrefix(msg, "json: cannot unmarshal") {
		return Invalid(CodeInvalidType, prefix, "%s has the wrong type: %s", orValue(prefix), strings.TrimPrefix(msg, "json: "))
	}
	return Invalid(CodeInvalidJSON, prefix, "the event is not valid JSON: %s", msg)
}

func orValue(p string) string {
	if p == "" {
		return "the event"
	}
	return p
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "int", "int64", "int32", "uint", "uint64", "float64", "float32":
		return "a number"
	case "bool":
		return "a boolean"
	case "slice", "array":
		return "an array"
	case "map", "struct", "ptr":
		return "an object"
	}
	return "of another type"
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// DecodeSessionUpdate decodes a session object given outside an event (the
// session of POST /v1/realtime/client_secrets or of a call's form), as
// strictly as session.update's; errors name the field below param.
func DecodeSessionUpdate(data []byte, param string) (*SessionUpdate, *Error) {
	var u SessionUpdate
	if err := strictUnmarshal(data, &u); err != nil {
		return nil, fieldError(err, param)
	}
	return &u, nil
}
