package gateway

import (
	"context"
	"net/http"
	"unicode"
	"unicode/utf8"

	"parley/privacy/redact"
	"parley/storage"
)

// Sealer seals what the gateway stores (transcripts, logged audio) under
// the tenant's data key and pseudonymises end-user identifiers;
// *seal.Keyring is the real one. Storage never sees a transcript in clear.
type Sealer interface {
	Seal(ctx context.Context, tenantID string, plaintext, aad []byte) ([]byte, error)
	Open(ctx context.Context, tenantID string, sealed, aad []byte) ([]byte, error)
	Pseudonym(ctx context.Context, tenantID, endUserID string) (string, error)
}

// DefaultAudioDays is how long logged audio is kept when a policy built
// from Options.Retention turns logging on without saying.
const DefaultAudioDays = 30

// maxEndUserLen bounds an end-user identifier (bytes).
const maxEndUserLen = 256

// maxLoggedAudio bounds the audio logged for one user turn (16 kHz
// samples: 2 minutes). A longer turn keeps its first two minutes.
const maxLoggedAudio = 2 * 60 * PipelineRate

// defaultPolicy is the policy of a tenant when Options.Policy is not set:
// the configured retention, no audio logging, every kind redacted.
func (o *Options) defaultPolicy(tenantID string) storage.Policy {
	return storage.Policy{
		TenantID: tenantID, TranscriptDays: o.Retention.TranscriptDays, MetadataDays: o.Retention.MetadataDays,
		AudioDays: DefaultAudioDays,
		Redact:    storage.Redaction{Emails: true, Phones: true, Cards: true, IBANs: true},
	}
}

// policyFor returns the privacy policy a new session of tenantID runs
// under; it is read once per session.
func (s *Server) policyFor(ctx context.Context, tenantID string) (storage.Policy, *httpError) {
	if s.opts.Policy == nil {
		return s.opts.defaultPolicy(tenantID), nil
	}
	p, err := s.opts.Policy(ctx, tenantID)
	if err != nil {
		s.log.Error().Err(err).Str("tenant_id", tenantID).Msg("loading the tenant's privacy policy failed")
		return storage.Policy{}, &httpError{status: http.StatusServiceUnavailable, typ: "server_error", code: "storage_unavailable",
			msg: "the privacy policy could not be loaded; try again", retryAfter: 1}
	}
	return p, nil
}

// redactKinds maps a policy's redaction settings to the redactor's.
func redactKinds(r storage.Redaction) redact.Kinds {
	return redact.Kinds{Emails: r.Emails, Phones: r.Phones, Cards: r.Cards, IBANs: r.IBANs}
}

// endUser checks an end-user identifier given by the business (the
// end_user field of client_secrets, the end_user query parameter of a
// WebSocket opened with a secret key) and returns its pseudonym: the
// identifier itself is never stored. "" gives "".
func (s *Server) endUser(ctx context.Context, tenantID, raw, param string) (string, *httpError) {
	if raw == "" {
		return "", nil
	}
	if len(raw) > maxEndUserLen || !utf8.ValidString(raw) {
		return "", badRequest("invalid_value", param, param+" must be valid UTF-8 of at most 256 bytes")
	}
	for _, r := range raw {
		if unicode.IsControl(r) {
			return "", badRequest("invalid_value", param, param+" must not contain control characters")
		}
	}
	p, err := s.opts.Sealer.Pseudonym(ctx, tenantID, raw)
	if err != nil {
		s.log.Error().Err(err).Str("tenant_id", tenantID).Msg("pseudonymising an end user failed")
		return "", &httpError{status: http.StatusServiceUnavailable, typ: "server_error", code: "storage_unavailable",
			msg: "the end user could not be recorded; try again", retryAfter: 1}
	}
	return p, nil
}
