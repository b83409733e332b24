package realtime

import (
	"encoding/json"
	"strconv"
)

// Item types and content types.
const (
	ItemMessage            = "message"
	ItemFunctionCall       = "function_call"
	ItemFunctionCallOutput = "function_call_output"

	ContentInputText   = "input_text"
	ContentInputAudio  = "input_audio"
	ContentOutputText  = "output_text"
	ContentOutputAudio = "output_audio"
)

// Item is a conversation item as it travels on the wire.
type Item struct {
	ID      string    `json:"id,omitempty"`
	Object  string    `json:"object,omitempty"`
	Type    string    `json:"type"`
	Status  string    `json:"status,omitempty"`
	Role    string    `json:"role,omitempty"`
	Content []Content `json:"content"` // always present for messages, [] while in progress
}

// Content is one part of a message item.
type Content struct {
	Type       string
	Text       string
	Audio      string
	Transcript string
}

// MarshalJSON writes the fields that belong to the content type, always
// including "text" for text parts (clients read it even when empty).
func (c Content) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, 32+len(c.Text)+len(c.Transcript))
	b = append(b, `{"type":`...)
	b = AppendString(b, c.Type)
	switch c.Type {
	case ContentInputText, ContentOutputText, "text":
		b = append(b, `,"text":`...)
		b = AppendString(b, c.Text)
	case ContentInputAudio, ContentOutputAudio:
		if c.Audio != "" {
			b = append(b, `,"audio":`...)
			b = AppendString(b, c.Audio)
		}
		b = append(b, `,"transcript":`...)
		b = AppendString(b, c.Transcript)
	}
	return append(b, '}'), nil
}

type wireContent struct {
	Type       *string `json:"type"`
	Text       *string `json:"text"`
	Audio      *string `json:"audio"`
	Transcript *string `json:"transcript"`
}

type wireItem struct {
	ID        *string           `json:"id"`
	Object    *string           `json:"object"`
	Type      *string           `json:"type"`
	Status    *string           `json:"status"`
	Role      *string           `json:"role"`
	Content   []json.RawMessage `json:"content"`
	CallID    *string           `json:"call_id"`
	Name      *string           `json:"name"`
	Arguments *string           `json:"arguments"`
	Output    *string           `json:"output"`
}

// MaxItemText bounds the text of one item (the WebSocket read limit bounds
// the whole event too).
const MaxItemText = 256 << 10

// decodeItem validates a client-supplied item. Parley takes message items
// with text content; audio and function items come with later features and
// are refused with a clear error rather than silently ignored.
func decodeItem(raw json.RawMessage, param string) (*Item, *Error) {
	var w wireItem
	if err := strictUnmarshal(raw, &w); err != nil {
		return nil, fieldError(err, param)
	}
	it := &Item{Object: "realtime.item"}
	if w.ID != nil {
		if len(*w.ID) == 0 || len(*w.ID) > 64 {
			return nil, Invalid(CodeInvalidValue, param+".id", "item id must be 1 to 64 characters")
		}
		it.ID = *w.ID
	}
	if w.Type == nil {
		return nil, Invalid(CodeMissingParameter, param+".type", "item.type is required")
	}
	it.Type = *w.Type
	switch it.Type {
	case ItemMessage:
	case ItemFunctionCall, ItemFunctionCallOutput:
		return nil, Invalid(CodeUnsupported, param+".type", "%s items are not supported by this Parley version", it.Type)
	case "item_reference":
		return nil, Invalid(CodeUnsupported, param+".type", "item_reference is only valid in response.input")
	default:
		return nil, Invalid(CodeInvalidValue, param+".type", "unknown item type %q", truncate(it.Type, 64))
	}
	for _, f := range []struct {
		set  bool
		name string
	}{{w.CallID != nil, "call_id"}, {w.Name != nil, "name"}, {w.Arguments != nil, "arguments"}, {w.Output != nil, "output"}} {
		if f.set {
			return nil, Invalid(CodeUnknownParameter, param+"."+f.name, "message items do not take %q", f.name)
		}
	}
	if w.Role == nil {
		return nil, Invalid(CodeMissingParameter, param+".role", "message items need a role")
	}
	it.Role = *w.Role
	var want string
	switch it.Role {
	case "user", "system":
		want = ContentInputText
	case "assistant":
		want = ContentOutputText
	default:
		return nil, Invalid(CodeInvalidValue, param+".role", "role must be \"user\", \"assistant\" or \"system\"")
	}
	if w.Status != nil && *w.Status != "completed" && *w.Status != "incomplete" && *w.Status != "in_progress" {
		return nil, Invalid(CodeInvalidValue, param+".status", "unknown item status %q", truncate(*w.Status, 32))
	}
	it.Status = "completed"
	if len(w.Content) == 0 {
		return nil, Invalid(CodeMissingParameter, param+".content", "message items need at least one content part")
	}
	if len(w.Content) > 32 {
		return nil, Invalid(CodeInvalidValue, param+".content", "a message holds at most 32 content parts")
	}
	total := 0
	for i, rc := range w.Content {
		cp := param + ".content[" + strconv.Itoa(i) + "]"
		var c wireContent
		if err := strictUnmarshal(rc, &c); err != nil {
			return nil, fieldError(err, cp)
		}
		if c.Type == nil {
			return nil, Invalid(CodeMissingParameter, cp+".type", "content type is required")
		}
		typ := *c.Type
		if typ == "text" && it.Role == "assistant" {
			typ = ContentOutputText // older clients send "text" for assistant parts
		}
		switch typ {
		case want:
		case ContentInputAudio, ContentOutputAudio:
			return nil, Invalid(CodeUnsupported, cp+".type", "audio content is not supported by this Parley version")
		default:
			return nil, Invalid(CodeInvalidValue, cp+".type", "a %s message takes %q content, not %q", it.Role, want, truncate(typ, 32))
		}
		if c.Audio != nil || c.Transcript != nil {
			return nil, Invalid(CodeUnknownParameter, cp, "text content takes only \"type\" and \"text\"")
		}
		if c.Text == nil {
			return nil, Invalid(CodeMissingParameter, cp+".text", "text content needs \"text\"")
		}
		total += len(*c.Text)
		if total > MaxItemText {
			return nil, Invalid(CodeInvalidValue, cp+".text", "the item's text is longer than %d bytes", MaxItemText)
		}
		it.Content = append(it.Content, Content{Type: typ, Text: *c.Text})
	}
	return it, nil
}

// Text returns the concatenated text of a message item's parts: the text
// of text parts, the transcript of audio parts.
func (it *Item) Text() string {
	if len(it.Content) == 1 {
		return it.Content[0].text()
	}
	n := 0
	for _, c := range it.Content {
		n += len(c.text())
	}
	b := make([]byte, 0, n)
	for _, c := range it.Content {
		b = append(b, c.text()...)
	}
	return string(b)
}

func (c *Content) text() string {
	if c.Type == ContentInputAudio || c.Type == ContentOutputAudio {
		return c.Transcript
	}
	return c.Text
}

// DecodeInputItem validates one entry of response.input: an inline message
// item or {"type":"item_reference","id":...}. It returns the item, or the
// referenced id.
func DecodeInputItem(raw json.RawMessage, param string) (*Item, string, *Error) {
	var ref struct {
		Type *string `json:"type"`
		ID   *string `json:"id"`
	}
	if err := json.Unmarshal(raw, &ref); err == nil && ref.Type != nil && *ref.Type == "item_reference" {
		if err := strictUnmarshal(raw, &ref); err != nil {
			return nil, "", fieldError(err, param)
		}
		if ref.ID == nil || *ref.ID == "" {
			return nil, "", Invalid(CodeMissingParameter, param+".id", "item_reference needs \"id\"")
		}
		return nil, *ref.ID, nil
	}
	it, e := decodeItem(raw, param)
	return it, "", e
}
