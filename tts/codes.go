package tts

// Error codes the engines use in Error.Code. The gateway may forward them
// to clients (in error events), so they are part of the protocol surface:
// add new ones, never rename.
const (
	// CodeBadVoice: the engine has no voice (or language) of that name.
	CodeBadVoice = "tts_bad_voice"
	// CodeBadRequest: the request was rejected: an invalid parameter, or a
	// remote engine answered with an HTTP 4xx other than 401, 403, 408, 429.
	CodeBadRequest = "tts_bad_request"
	// CodeAuth: the remote engine rejected the credentials (HTTP 401/403).
	CodeAuth = "tts_auth"
	// CodeRateLimited: the remote engine throttled the request (HTTP 429).
	CodeRateLimited = "tts_rate_limited"
	// CodeUnavailable: the engine failed (HTTP 5xx), could not be reached,
	// dropped the connection mid-stream, or could not be initialized.
	CodeUnavailable = "tts_unavailable"
	// CodeTimeout: the engine stopped making progress for longer than its
	// configured timeout. (When the caller's ctx ends, engines return
	// ctx.Err() instead, as Synthesizer documents.)
	CodeTimeout = "tts_timeout"
	// CodeError: any other engine failure.
	CodeError = "tts_error"
)
