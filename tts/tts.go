// Package tts defines text-to-speech: a Synthesizer streams the audio of a
// text as 16-bit mono PCM chunks, in memory. Engines live in sub-packages
// (tts/espeak offline, tts/openai for OpenAI-compatible endpoints).
package tts

import (
	"context"
	"errors"
)

// Synthesizer is safe for concurrent use; engines bound how many
// syntheses run at once.
type Synthesizer interface {
	// SampleRate is the rate (Hz) of the PCM it produces.
	SampleRate() int
	// Synthesize speaks req.Text, calling emit with each chunk of PCM in
	// order. The chunk is only valid during the call (engines reuse
	// buffers). It returns when the text is spoken, when emit returns an
	// error (returned as is), or promptly when ctx ends (ctx.Err()).
	Synthesize(ctx context.Context, req Request, emit func(pcm []int16) error) error
}

// Request is one piece of text to speak (typically a sentence).
type Request struct {
	Text     string
	Voice    string  // engine-specific voice name, "" for the default
	Speed    float64 // 1.0 is normal; 0 means 1.0
	Language string  // "" for the engine default
}

// Error is an engine failure with a stable code. Message must not contain
// the text being spoken.
type Error struct {
	Code    string // e.g. "tts_unavailable", "tts_timeout", "tts_bad_voice"
	Message string
	Err     error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Code + ": " + e.Message + ": " + e.Err.Error()
	}
	return e.Code + ": " + e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// Code returns err's code if it is an *Error, else fallback.
func Code(err error, fallback string) string {
	var te *Error
	if errors.As(err, &te) {
		return te.Code
	}
	return fallback
}
