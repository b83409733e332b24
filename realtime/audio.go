package realtime

import "strconv"

// Server event types of the audio path.
const (
	TypeAudioCommitted             = "input_audio_buffer.committed"
	TypeAudioCleared               = "input_audio_buffer.cleared"
	TypeSpeechStarted              = "input_audio_buffer.speech_started"
	TypeSpeechStopped              = "input_audio_buffer.speech_stopped"
	TypeAudioTimeoutTriggered      = "input_audio_buffer.timeout_triggered"
	TypeTranscriptionDelta         = "conversation.item.input_audio_transcription.delta"
	TypeTranscriptionCompleted     = "conversation.item.input_audio_transcription.completed"
	TypeTranscriptionFailed        = "conversation.item.input_audio_transcription.failed"
	TypeOutputAudioDelta           = "response.output_audio.delta"
	TypeOutputAudioDone            = "response.output_audio.done"
	TypeOutputAudioTranscriptDelta = "response.output_audio_transcript.delta"
	TypeOutputAudioTranscriptDone  = "response.output_audio_transcript.done"
	TypeItemTruncated              = "conversation.item.truncated"
)

// AudioCommittedEvent is input_audio_buffer.committed.
type AudioCommittedEvent struct {
	Type           string  `json:"type"`
	EventID        string  `json:"event_id"`
	PreviousItemID *string `json:"previous_item_id"`
	ItemID         string  `json:"item_id"`
}

// AudioClearedEvent is input_audio_buffer.cleared.
type AudioClearedEvent struct {
	Type    string `json:"type"`
	EventID string `json:"event_id"`
}

// SpeechEvent is input_audio_buffer.speech_started (AudioStartMS) or
// speech_stopped (AudioEndMS), or timeout_triggered (both).
type SpeechEvent struct {
	Type         string `json:"type"`
	EventID      string `json:"event_id"`
	AudioStartMS *int64 `json:"audio_start_ms,omitempty"`
	AudioEndMS   *int64 `json:"audio_end_ms,omitempty"`
	ItemID       string `json:"item_id"`
}

// TranscriptionEvent is conversation.item.input_audio_transcription.delta
// (Delta), .completed (Transcript) or .failed (Error).
type TranscriptionEvent struct {
	Type         string  `json:"type"`
	EventID      string  `json:"event_id"`
	ItemID       string  `json:"item_id"`
	ContentIndex int     `json:"content_index"`
	Delta        *string `json:"delta,omitempty"`
	Transcript   *string `json:"transcript,omitempty"`
	Error        *Error  `json:"error,omitempty"`
}

// AudioDoneEvent is response.output_audio.done.
type AudioDoneEvent struct {
	Type         string `json:"type"`
	EventID      string `json:"event_id"`
	ResponseID   string `json:"response_id"`
	ItemID       string `json:"item_id"`
	OutputIndex  int    `json:"output_index"`
	ContentIndex int    `json:"content_index"`
}

// TranscriptDeltaEvent is response.output_audio_transcript.delta.
type TranscriptDeltaEvent struct {
	Type         string `json:"type"`
	EventID      string `json:"event_id"`
	ResponseID   string `json:"response_id"`
	ItemID       string `json:"item_id"`
	OutputIndex  int    `json:"output_index"`
	ContentIndex int    `json:"content_index"`
	Delta        string `json:"delta"`
}

// TranscriptDoneEvent is response.output_audio_transcript.done.
type TranscriptDoneEvent struct {
	Type         string `json:"type"`
	EventID      string `json:"event_id"`
	ResponseID   string `json:"response_id"`
	ItemID       string `json:"item_id"`
	OutputIndex  int    `json:"output_index"`
	ContentIndex int    `json:"content_index"`
	Transcript   string `json:"transcript"`
}

// ItemTruncatedEvent is conversation.item.truncated.
type ItemTruncatedEvent struct {
	Type         string `json:"type"`
	EventID      string `json:"event_id"`
	ItemID       string `json:"item_id"`
	ContentIndex int    `json:"content_index"`
	AudioEndMS   int    `json:"audio_end_ms"`
}

// AppendAudioDelta appends a response.output_audio.delta event whose delta
// is b64 (already base64) without allocating: it is the per-frame hot path.
func AppendAudioDelta(b []byte, idPrefix string, idSeq uint64, responseID, itemID string, outputIndex, contentIndex int, b64 []byte) []byte {
	b = append(b, `{"type":"response.output_audio.delta","event_id":`...)
	b = AppendEventID(b, idPrefix, idSeq)
	b = append(b, `,"response_id":`...)
	b = AppendString(b, responseID)
	b = append(b, `,"item_id":`...)
	b = AppendString(b, itemID)
	b = append(b, `,"output_index":`...)
	b = strconv.AppendInt(b, int64(outputIndex), 10)
	b = append(b, `,"content_index":`...)
	b = strconv.AppendInt(b, int64(contentIndex), 10)
	b = append(b, `,"delta":"`...)
	b = append(b, b64...) // the base64 alphabet needs no JSON escaping
	return append(b, '"', '}')
}

// Output audio buffer events of WebRTC calls, where the server plays the
// audio out on the call's track.
const (
	TypeOutputAudioStarted = "output_audio_buffer.started"
	TypeOutputAudioStopped = "output_audio_buffer.stopped"
	TypeOutputAudioCleared = "output_audio_buffer.cleared"
)

// OutputAudioBufferEvent is output_audio_buffer.started, .stopped or
// .cleared.
type OutputAudioBufferEvent struct {
	Type       string `json:"type"`
	EventID    string `json:"event_id"`
	ResponseID string `json:"response_id"`
}
