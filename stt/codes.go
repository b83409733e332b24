package stt

import (
	"context"
	"errors"
)

// Error codes the engines use in Error.Code. The gateway forwards them in
// conversation.item.input_audio_transcription.failed events, so they are
// part of the protocol surface: add new ones, never rename.
const (
	// CodeBusy: every recognition slot stayed taken until ctx ended.
	CodeBusy = "stt_busy"
	// CodeClosed: the Recognizer or Stream was closed, or Write came after Final.
	CodeClosed = "stt_closed"
	// CodeUnsupportedLanguage: the engine cannot recognize the requested language.
	CodeUnsupportedLanguage = "stt_unsupported_language"
	// CodeAudioTooLong: the utterance exceeded the engine's audio bound.
	CodeAudioTooLong = "stt_audio_too_long"
	// CodeBadAudio: the audio could not be used (wrong format, empty where required).
	CodeBadAudio = "stt_bad_audio"
	// CodeAuth: the remote engine rejected the credentials (HTTP 401/403).
	CodeAuth = "stt_auth"
	// CodeRateLimited: the remote engine throttled the request (HTTP 429).
	CodeRateLimited = "stt_rate_limited"
	// CodeUnavailable: the engine failed (HTTP 5xx), could not be reached,
	// or could not be initialized.
	CodeUnavailable = "stt_unavailable"
	// CodeTimeout: the deadline passed before a transcript arrived.
	CodeTimeout = "stt_timeout"
	// CodeCanceled: the caller canceled the request.
	CodeCanceled = "stt_canceled"
	// CodeBadRequest: the remote engine rejected the request (other HTTP 4xx).
	CodeBadRequest = "stt_bad_request"
	// CodeError: any other engine failure.
	CodeError = "stt_error"
)

// ContextError wraps a context error (context.Canceled or
// context.DeadlineExceeded, possibly wrapped) in an *Error coded
// CodeCanceled or CodeTimeout. errors.Is(result, ctxErr) still holds.
// Other errors are wrapped with CodeError; nil stays nil.
func ContextError(err error, message string) error {
	if err == nil {
		return nil
	}
	code := CodeError
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		code = CodeTimeout
	case errors.Is(err, context.Canceled):
		code = CodeCanceled
	}
	return &Error{Code: code, Message: message, Err: err}
}
