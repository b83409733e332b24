package realtime

import (
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// Server event types.
const (
	TypeError             = "error"
	TypeSessionCreated    = "session.created"
	TypeSessionUpdated    = "session.updated"
	TypeItemAdded         = "conversation.item.added"
	TypeItemDone          = "conversation.item.done"
	TypeItemDeleted       = "conversation.item.deleted"
	TypeItemRetrieved     = "conversation.item.retrieved"
	TypeResponseCreated   = "response.created"
	TypeResponseDone      = "response.done"
	TypeOutputItemAdded   = "response.output_item.added"
	TypeOutputItemDone    = "response.output_item.done"
	TypeContentPartAdded  = "response.content_part.added"
	TypeContentPartDone   = "response.content_part.done"
	TypeOutputTextDelta   = "response.output_text.delta"
	TypeOutputTextDone    = "response.output_text.done"
	TypeRateLimitsUpdated = "rate_limits.updated"
)

// Response statuses.
const (
	StatusInProgress = "in_progress"
	StatusCompleted  = "completed"
	StatusCancelled  = "cancelled"
	StatusFailed     = "failed"
	StatusIncomplete = "incomplete"
)

// ErrorEvent is an `error` server event.
type ErrorEvent struct {
	Type    string `json:"type"`
	EventID string `json:"event_id"`
	Error   *Error `json:"error"`
}

// SessionEvent is session.created or session.updated.
type SessionEvent struct {
	Type    string   `json:"type"`
	EventID string   `json:"event_id"`
	Session *Session `json:"session"`
}

// ItemEvent is conversation.item.added, .done or .retrieved.
type ItemEvent struct {
	Type           string  `json:"type"`
	EventID        string  `json:"event_id"`
	PreviousItemID *string `json:"previous_item_id,omitempty"`
	Item           *Item   `json:"item"`
}

// ItemDeletedEvent is conversation.item.deleted.
type ItemDeletedEvent struct {
	Type    string `json:"type"`
	EventID string `json:"event_id"`
	ItemID  string `json:"item_id"`
}

// ResponseEvent is response.created or response.done.
type ResponseEvent struct {
	Type     string    `json:"type"`
	EventID  string    `json:"event_id"`
	Response *Response `json:"response"`
}

// OutputItemEvent is response.output_item.added or .done.
type OutputItemEvent struct {
	Type        string `json:"type"`
	EventID     string `json:"event_id"`
	ResponseID  string `json:"response_id"`
	OutputIndex int    `json:"output_index"`
	Item        *Item  `json:"item"`
}

// ContentPartEvent is response.content_part.added or .done.
type ContentPartEvent struct {
	Type         string  `json:"type"`
	EventID      string  `json:"event_id"`
	ResponseID   string  `json:"response_id"`
	ItemID       string  `json:"item_id"`
	OutputIndex  int     `json:"output_index"`
	ContentIndex int     `json:"content_index"`
	Part         Content `json:"part"`
}

// TextDoneEvent is response.output_text.done.
type TextDoneEvent struct {
	Type         string `json:"type"`
	EventID      string `json:"event_id"`
	ResponseID   string `json:"response_id"`
	ItemID       string `json:"item_id"`
	OutputIndex  int    `json:"output_index"`
	ContentIndex int    `json:"content_index"`
	Text         string `json:"text"`
}

// Response is the realtime.response object.
type Response struct {
	ID               string          `json:"id"`
	Object           string          `json:"object"`
	Status           string          `json:"status"`
	StatusDetails    *StatusDetails  `json:"status_details"`
	Output           []*Item         `json:"output"`
	ConversationID   string          `json:"conversation_id,omitempty"`
	OutputModalities []string        `json:"output_modalities"`
	MaxOutputTokens  MaxTokens       `json:"max_output_tokens"`
	Usage            *Usage          `json:"usage"`
	Metadata         json.RawMessage `json:"metadata"`
}

// StatusDetails explains a response's final status.
type StatusDetails struct {
	Type   string `json:"type"`
	Reason string `json:"reason,omitempty"`
	Error  *Error `json:"error,omitempty"`
}

// Usage is a response's token usage.
type Usage struct {
	TotalTokens        int                `json:"total_tokens"`
	InputTokens        int                `json:"input_tokens"`
	OutputTokens       int                `json:"output_tokens"`
	InputTokenDetails  InputTokenDetails  `json:"input_token_details"`
	OutputTokenDetails OutputTokenDetails `json:"output_token_details"`
}

// InputTokenDetails splits input tokens.
type InputTokenDetails struct {
	TextTokens   int `json:"text_tokens"`
	AudioTokens  int `json:"audio_tokens"`
	CachedTokens int `json:"cached_tokens"`
}

// OutputTokenDetails splits output tokens.
type OutputTokenDetails struct {
	TextTokens  int `json:"text_tokens"`
	AudioTokens int `json:"audio_tokens"`
}

// AppendEventID appends the JSON string prefix+base36(seq): server event ids
// are built without allocating.
func AppendEventID(b []byte, prefix string, seq uint64) []byte {
	b = append(b, '"')
	b = append(b, prefix...)
	b = strconv.AppendUint(b, seq, 36)
	return append(b, '"')
}

// AppendTextDelta appends a response.output_text.delta event to b without
// allocating: it is the per-token hot path. The event id is
// idPrefix+base36(idSeq); idPrefix must need no JSON escaping.
func AppendTextDelta(b []byte, idPrefix string, idSeq uint64, responseID, itemID string, outputIndex, contentIndex int, delta string) []byte {
	b = append(b, `{"type":"response.output_text.delta","event_id":`...)
	b = AppendEventID(b, idPrefix, idSeq)
	b = append(b, `,"response_id":`...)
	b = AppendString(b, responseID)
	b = append(b, `,"item_id":`...)
	b = AppendString(b, itemID)
	b = append(b, `,"output_index":`...)
	b = strconv.AppendInt(b, int64(outputIndex), 10)
	b = append(b, `,"content_index":`...)
	b = strconv.AppendInt(b, int64(contentIndex), 10)
	b = append(b, `,"delta":`...)
	b = AppendString(b, delta)
	return append(b, '}')
}

const hexDigits = "0123456789abcdef"

// AppendString appends s as a JSON string, escaping as encoding/json does
// (including <, >, & and U+2028/U+2029) and replacing invalid UTF-8 with
// U+FFFD.
func AppendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
