// Package stt defines speech-to-text: a Recognizer turns one utterance of
// 16-bit mono PCM into text, in memory. Engines live in sub-packages
// (stt/pocketsphinx offline, stt/openai for OpenAI-compatible endpoints).
package stt

import (
	"context"
	"errors"
)

// Recognizer creates recognition streams. It is safe for concurrent use;
// engines bound how many streams run at once (NewStream waits for a slot
// until ctx ends).
type Recognizer interface {
	// SampleRate is the PCM rate (Hz) that Stream.Write expects.
	SampleRate() int
	// NewStream starts recognizing one utterance.
	NewStream(ctx context.Context, cfg StreamConfig) (Stream, error)
}

// StreamConfig carries per-utterance hints.
type StreamConfig struct {
	Language string // BCP 47 or ISO 639-1, "" for the engine default
	Prompt   string // vocabulary hint, where the engine supports one
	// Corpus is text typical of the conversation (an agent's documents).
	// Engines that can adapt their language model to it do; others ignore
	// it. The same slice should be passed for every stream of an agent.
	Corpus []string
}

// Stream recognizes one utterance. Its methods are called from one
// goroutine at a time.
type Stream interface {
	// Write pushes PCM samples at SampleRate. It does not retain pcm.
	Write(pcm []int16) error
	// Partial returns the current hypothesis ("" when the engine has none
	// or does not produce partial results).
	Partial() string
	// Final ends the utterance and returns the final transcript.
	Final(ctx context.Context) (string, error)
	// Close releases the stream (and cancels it if Final was not called).
	// It is safe to call more than once.
	Close() error
}

// Error is an engine failure with a stable code the gateway forwards in a
// conversation.item.input_audio_transcription.failed event. Message must
// not contain transcript text.
type Error struct {
	Code    string // e.g. "stt_unavailable", "stt_timeout", "stt_bad_audio"
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
	var se *Error
	if errors.As(err, &se) {
		return se.Code
	}
	return fallback
}
