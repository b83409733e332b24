package realtime

import (
	"bytes"
	"encoding/json"
	"strconv"
)

// Output modalities.
const (
	ModalityText  = "text"
	ModalityAudio = "audio"
)

// Audio format types. audio/opus is Parley's extension: one Opus packet per
// input_audio_buffer.append, 48 kHz clock.
const (
	FormatPCM  = "audio/pcm"
	FormatPCMU = "audio/pcmu"
	FormatPCMA = "audio/pcma"
	FormatOpus = "audio/opus"
)

// MaxTokens is an output-token limit: a positive number or "inf" (0).
type MaxTokens int

// MarshalJSON writes "inf" for 0.
func (m MaxTokens) MarshalJSON() ([]byte, error) {
	if m <= 0 {
		return []byte(`"inf"`), nil
	}
	return strconv.AppendInt(nil, int64(m), 10), nil
}

// UnmarshalJSON accepts an integer in 1..4096 or "inf".
func (m *MaxTokens) UnmarshalJSON(b []byte) error {
	if string(b) == `"inf"` {
		*m = 0
		return nil
	}
	n, err := strconv.Atoi(string(b))
	if err != nil || n < 1 || n > 4096 {
		return errInvalidMaxTokens
	}
	*m = MaxTokens(n)
	return nil
}

type valueError string

func (e valueError) Error() string { return string(e) }

const errInvalidMaxTokens = valueError(`must be an integer from 1 to 4096 or "inf"`)

// AudioFormat is a session audio format.
type AudioFormat struct {
	Type string `json:"type"`
	Rate int    `json:"rate,omitempty"`
}

// TurnDetection configures server-side end-of-turn detection.
type TurnDetection struct {
	Type              string  `json:"type"` // "server_vad"
	Threshold         float64 `json:"threshold"`
	PrefixPaddingMS   int     `json:"prefix_padding_ms"`
	SilenceDurationMS int     `json:"silence_duration_ms"`
	CreateResponse    bool    `json:"create_response"`
	InterruptResponse bool    `json:"interrupt_response"`
	IdleTimeoutMS     *int    `json:"idle_timeout_ms"`
}

// DefaultTurnDetection is server_vad with the API's defaults.
func DefaultTurnDetection() *TurnDetection {
	return &TurnDetection{Type: "server_vad", Threshold: 0.5, PrefixPaddingMS: 300,
		SilenceDurationMS: 500, CreateResponse: true, InterruptResponse: true}
}

// Transcription configures input transcription.
type Transcription struct {
	Model    string `json:"model,omitempty"`
	Language string `json:"language,omitempty"`
	Prompt   string `json:"prompt,omitempty"`
}

// AudioInput is session.audio.input.
type AudioInput struct {
	Format         AudioFormat     `json:"format"`
	Transcription  *Transcription  `json:"transcription"`
	NoiseReduction json.RawMessage `json:"noise_reduction"`
	TurnDetection  *TurnDetection  `json:"turn_detection"`
}

// AudioOutput is session.audio.output.
type AudioOutput struct {
	Format AudioFormat `json:"format"`
	Voice  string      `json:"voice"`
	Speed  float64     `json:"speed"`
}

// SessionAudio is session.audio.
type SessionAudio struct {
	Input  AudioInput  `json:"input"`
	Output AudioOutput `json:"output"`
}

// Session is the server's view of a realtime session, sent in
// session.created and session.updated.
type Session struct {
	Type             string          `json:"type"`
	Object           string          `json:"object"`
	ID               string          `json:"id"`
	Model            string          `json:"model"`
	OutputModalities []string        `json:"output_modalities"`
	Instructions     string          `json:"instructions"`
	Tools            json.RawMessage `json:"tools"`
	ToolChoice       json.RawMessage `json:"tool_choice"`
	MaxOutputTokens  MaxTokens       `json:"max_output_tokens"`
	Audio            SessionAudio    `json:"audio"`
	Tracing          json.RawMessage `json:"tracing"`
	Truncation       json.RawMessage `json:"truncation"`
	Prompt           json.RawMessage `json:"prompt"`
	Include          json.RawMessage `json:"include"`
	ExpiresAt        int64           `json:"expires_at"`
}

// NewSession returns a session with the API's defaults for the given id,
// agent (model) and instructions.
func NewSession(id, model, instructions string, expiresAt int64) Session {
	return Session{
		Type:             "realtime",
		Object:           "realtime.session",
		ID:               id,
		Model:            model,
		OutputModalities: []string{ModalityText},
		Instructions:     instructions,
		Tools:            json.RawMessage(`[]`),
		ToolChoice:       json.RawMessage(`"auto"`),
		Audio: SessionAudio{
			Input: AudioInput{
				Format:        AudioFormat{Type: FormatPCM, Rate: 24000},
				TurnDetection: DefaultTurnDetection(),
			},
			Output: AudioOutput{Format: AudioFormat{Type: FormatPCM, Rate: 24000}, Voice: "alloy", Speed: 1},
		},
		Tracing:    json.RawMessage(`null`),
		Truncation: json.RawMessage(`"auto"`),
		Prompt:     json.RawMessage(`null`),
		Include:    json.RawMessage(`null`),
		ExpiresAt:  expiresAt,
	}
}

// SessionUpdate is the `session` of a session.update event: every field is
// optional; present fields replace the session's.
type SessionUpdate struct {
	Type             *string         `json:"type"`
	Model            *string         `json:"model"`
	OutputModalities []string        `json:"output_modalities"`
	Instructions     *string         `json:"instructions"`
	Tools            json.RawMessage `json:"tools"`
	ToolChoice       json.RawMessage `json:"tool_choice"`
	MaxOutputTokens  *MaxTokens      `json:"max_output_tokens"`
	Audio            *AudioUpdate    `json:"audio"`
	Tracing          json.RawMessage `json:"tracing"`
	Truncation       json.RawMessage `json:"truncation"`
	Prompt           json.RawMessage `json:"prompt"`
	Include          json.RawMessage `json:"include"`
	// ID and Object are accepted (clients echo a session back) but ignored.
	ID        *string         `json:"id"`
	Object    *string         `json:"object"`
	ExpiresAt json.RawMessage `json:"expires_at"`
}

// AudioUpdate is session.update's audio object.
type AudioUpdate struct {
	Input  *AudioInputUpdate  `json:"input"`
	Output *AudioOutputUpdate `json:"output"`
}

// AudioInputUpdate is session.update's audio.input; raw fields distinguish
// an explicit null (turn detection off) from an absent field.
type AudioInputUpdate struct {
	Format         *AudioFormat    `json:"format"`
	Transcription  json.RawMessage `json:"transcription"`
	NoiseReduction json.RawMessage `json:"noise_reduction"`
	TurnDetection  json.RawMessage `json:"turn_detection"`
}

// AudioOutputUpdate is session.update's audio.output.
type AudioOutputUpdate struct {
	Format *AudioFormat `json:"format"`
	Voice  *string      `json:"voice"`
	Speed  *float64     `json:"speed"`
}

// turnDetectionUpdate has pointers so unset fields keep their defaults.
type turnDetectionUpdate struct {
	Type              *string  `json:"type"`
	Threshold         *float64 `json:"threshold"`
	PrefixPaddingMS   *int     `json:"prefix_padding_ms"`
	SilenceDurationMS *int     `json:"silence_duration_ms"`
	CreateResponse    *bool    `json:"create_response"`
	InterruptResponse *bool    `json:"interrupt_response"`
	IdleTimeoutMS     *int     `json:"idle_timeout_ms"`
	Eagerness         *string  `json:"eagerness"`
}

func isNull(raw json.RawMessage) bool { return bytes.Equal(bytes.TrimSpace(raw), []byte("null")) }

// Apply validates u and applies it to s. On error s is unchanged.
func (s *Session) Apply(u *SessionUpdate) *Error {
	next := *s
	if u.Type != nil && *u.Type != "realtime" {
		if *u.Type == "transcription" {
			return Invalid(CodeUnsupported, "session.type", "transcription-only sessions are not supported; use type \"realtime\"")
		}
		return Invalid(CodeInvalidValue, "session.type", "session.type must be \"realtime\", got %q", *u.Type)
	}
	if u.Model != nil && *u.Model != "" && *u.Model != s.Model {
		return Invalid(CodeInvalidValue, "session.model", "the session's agent is fixed at connect time (%q); open a new session to talk to %q", s.Model, *u.Model)
	}
	if u.OutputModalities != nil {
		if err := validModalities(u.OutputModalities, "session.output_modalities"); err != nil {
			return err
		}
		next.OutputModalities = append([]string(nil), u.OutputModalities...)
	}
	if u.Instructions != nil {
		if len(*u.Instructions) > maxInstructions {
			return Invalid(CodeInvalidValue, "session.instructions", "instructions are longer than %d bytes", maxInstructions)
		}
		next.Instructions = *u.Instructions
	}
	if u.Tools != nil {
		if err := validTools(u.Tools, "session.tools"); err != nil {
			return err
		}
		next.Tools = u.Tools
	}
	if u.ToolChoice != nil {
		next.ToolChoice = u.ToolChoice
	}
	if u.MaxOutputTokens != nil {
		next.MaxOutputTokens = *u.MaxOutputTokens
	}
	for _, f := range []struct {
		raw json.RawMessage
		dst *json.RawMessage
	}{{u.Tracing, &next.Tracing}, {u.Truncation, &next.Truncation}, {u.Prompt, &next.Prompt}, {u.Include, &next.Include}} {
		if f.raw != nil {
			*f.dst = f.raw
		}
	}
	if a := u.Audio; a != nil {
		if in := a.Input; in != nil {
			if in.Format != nil {
				if err := validFormat(*in.Format, "session.audio.input.format"); err != nil {
					return err
				}
				next.Audio.Input.Format = normFormat(*in.Format)
			}
			if in.Transcription != nil {
				if isNull(in.Transcription) {
					next.Audio.Input.Transcription = nil
				} else {
					var t Transcription
					if err := strictUnmarshal(in.Transcription, &t); err != nil {
						return fieldError(err, "session.audio.input.transcription")
					}
					next.Audio.Input.Transcription = &t
				}
			}
			if in.NoiseReduction != nil {
				next.Audio.Input.NoiseReduction = in.NoiseReduction
			}
			if in.TurnDetection != nil {
				td, err := applyTurnDetection(next.Audio.Input.TurnDetection, in.TurnDetection)
				if err != nil {
					return err
				}
				next.Audio.Input.TurnDetection = td
			}
		}
		if out := a.Output; out != nil {
			if out.Format != nil {
				if err := validFormat(*out.Format, "session.audio.output.format"); err != nil {
					return err
				}
				next.Audio.Output.Format = normFormat(*out.Format)
			}
			if out.Voice != nil {
				if *out.Voice == "" || len(*out.Voice) > 64 {
					return Invalid(CodeInvalidValue, "session.audio.output.voice", "voice must be a non-empty name of at most 64 bytes")
				}
				next.Audio.Output.Voice = *out.Voice
			}
			if out.Speed != nil {
				if *out.Speed < 0.25 || *out.Speed > 1.5 {
					return Invalid(CodeInvalidValue, "session.audio.output.speed", "speed must be between 0.25 and 1.5")
				}
				next.Audio.Output.Speed = *out.Speed
			}
		}
	}
	*s = next
	return nil
}

const maxInstructions = 64 << 10

func applyTurnDetection(cur *TurnDetection, raw json.RawMessage) (*TurnDetection, *Error) {
	const p = "session.audio.input.turn_detection"
	if isNull(raw) {
		return nil, nil
	}
	var u turnDetectionUpdate
	if err := strictUnmarshal(raw, &u); err != nil {
		return nil, fieldError(err, p)
	}
	td := DefaultTurnDetection()
	if cur != nil {
		c := *cur
		td = &c
	}
	if u.Type == nil {
		return nil, Invalid(CodeMissingParameter, p+".type", "turn_detection.type is required")
	}
	switch *u.Type {
	case "server_vad":
	case "semantic_vad":
		return nil, Invalid(CodeUnsupported, p+".type", "semantic_vad is not supported; use server_vad or null")
	default:
		return nil, Invalid(CodeInvalidValue, p+".type", "turn_detection.type must be \"server_vad\", got %q", *u.Type)
	}
	if u.Eagerness != nil {
		return nil, Invalid(CodeUnknownParameter, p+".eagerness", "eagerness applies to semantic_vad only")
	}
	td.Type = *u.Type
	if u.Threshold != nil {
		if *u.Threshold < 0 || *u.Threshold > 1 {
			return nil, Invalid(CodeInvalidValue, p+".threshold", "threshold must be between 0 and 1")
		}
		td.Threshold = *u.Threshold
	}
	if u.PrefixPaddingMS != nil {
		if *u.PrefixPaddingMS < 0 || *u.PrefixPaddingMS > 5000 {
			return nil, Invalid(CodeInvalidValue, p+".prefix_padding_ms", "prefix_padding_ms must be between 0 and 5000")
		}
		td.PrefixPaddingMS = *u.PrefixPaddingMS
	}
	if u.SilenceDurationMS != nil {
		if *u.SilenceDurationMS < 100 || *u.SilenceDurationMS > 10000 {
			return nil, Invalid(CodeInvalidValue, p+".silence_duration_ms", "silence_duration_ms must be between 100 and 10000")
		}
		td.SilenceDurationMS = *u.SilenceDurationMS
	}
	if u.CreateResponse != nil {
		td.CreateResponse = *u.CreateResponse
	}
	if u.InterruptResponse != nil {
		td.InterruptResponse = *u.InterruptResponse
	}
	if u.IdleTimeoutMS != nil {
		if *u.IdleTimeoutMS < 5000 || *u.IdleTimeoutMS > 30000 {
			return nil, Invalid(CodeInvalidValue, p+".idle_timeout_ms", "idle_timeout_ms must be between 5000 and 30000")
		}
		v := *u.IdleTimeoutMS
		td.IdleTimeoutMS = &v
	}
	return td, nil
}

func validModalities(m []string, param string) *Error {
	if len(m) != 1 {
		return Invalid(CodeInvalidValue, param, "output_modalities must hold exactly one of \"text\" or \"audio\"")
	}
	switch m[0] {
	case ModalityText, ModalityAudio:
		return nil
	}
	return Invalid(CodeInvalidValue, param, "unknown output modality %q", m[0])
}

func validFormat(f AudioFormat, param string) *Error {
	switch f.Type {
	case FormatPCM:
		if f.Rate != 0 && f.Rate != 24000 {
			return Invalid(CodeInvalidValue, param+".rate", "audio/pcm supports rate 24000 only")
		}
	case FormatPCMU, FormatPCMA:
		if f.Rate != 0 && f.Rate != 8000 {
			return Invalid(CodeInvalidValue, param+".rate", "%s is 8000 Hz", f.Type)
		}
	case FormatOpus:
		if f.Rate != 0 && f.Rate != 48000 {
			return Invalid(CodeInvalidValue, param+".rate", "audio/opus uses a 48000 Hz clock")
		}
	case "":
		return Invalid(CodeMissingParameter, param+".type", "format.type is required")
	default:
		return Invalid(CodeInvalidValue, param+".type", "unsupported audio format %q (use audio/pcm, audio/pcmu, audio/pcma or audio/opus)", f.Type)
	}
	return nil
}

func normFormat(f AudioFormat) AudioFormat {
	switch f.Type {
	case FormatPCM:
		f.Rate = 24000
	case FormatOpus:
		f.Rate = 48000
	default:
		f.Rate = 0
	}
	return f
}

// Tool is a function tool definition.
type Tool struct {
	Type        string          `json:"type"`
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Parameters  json.RawMessage `json:"parameters,omitempty"`
}

func validTools(raw json.RawMessage, param string) *Error {
	if isNull(raw) {
		return nil
	}
	var tools []Tool
	if err := strictUnmarshal(raw, &tools); err != nil {
		return fieldError(err, param)
	}
	for i, t := range tools {
		p := param + "[" + strconv.Itoa(i) + "]"
		if t.Type != "function" {
			return Invalid(CodeInvalidValue, p+".type", "tool type must be \"function\"")
		}
		if t.Name == "" {
			return Invalid(CodeMissingParameter, p+".name", "tool name is required")
		}
	}
	return nil
}
