package manage

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"parley/privacy"
	"parley/storage"
	"parley/storage/seal"
)

// This file holds the privacy routes: the tenant's privacy policy, its
// conversations (metadata and transcripts), their export and deletion
// (the data rights of the business's end users), and its usage.

// DefaultPolicy is the privacy policy of a tenant that never set one when
// Options.DefaultPolicy is nil: config.Default's retention.* and
// privacy.* (transcripts 90 days, metadata 365, no audio logging, every
// redaction on, no training opt-in).
func DefaultPolicy(tenantID string) storage.Policy {
	return storage.Policy{TenantID: tenantID, TranscriptDays: 90, MetadataDays: 365, AudioDays: 30,
		Redact: storage.Redaction{Emails: true, Phones: true, Cards: true, IBANs: true}}
}

// Limits of the privacy routes.
const (
	// MaxUsageDays is the longest span GET …/usage answers for.
	MaxUsageDays = 400
	// DefaultUsageDays is its span without ?from=.
	DefaultUsageDays = 30
	// ConfirmDeleteAll is the ?confirm= value DELETE …/conversations
	// requires.
	ConfirmDeleteAll = "delete-all"

	maxEndUserLen = 256 // bytes, as the gateway accepts
	// exportWriteTimeout bounds each write of an export to the client (a
	// reader that stops reading does not hold the export forever); the
	// export as a whole has no deadline.
	exportWriteTimeout = time.Minute
)

var (
	errNoKeyring = &apiErr{status: http.StatusServiceUnavailable, code: "keyring_unavailable",
		msg: "encryption at rest is not configured on this server (no master key): sealed data cannot be read or written"}
	errNoPrivacy = &apiErr{status: http.StatusServiceUnavailable, code: "privacy_unavailable",
		msg: "this server's storage does not support the privacy routes"}
)

// backend returns the conversation and privacy store, or 503.
func (c *call) backend() (storage.Backend, error) {
	if c.a.o.Privacy == nil {
		return nil, errNoPrivacy
	}
	return c.a.o.Privacy, nil
}

// keyring returns the keyring, or 503.
func (c *call) keyring() (Keyring, error) {
	if c.a.o.Keyring == nil {
		return nil, errNoKeyring
	}
	return c.a.o.Keyring, nil
}

// Privacy policy.

type redactionView struct {
	Emails bool `json:"emails"`
	Phones bool `json:"phones"`
	Cards  bool `json:"cards"`
	IBANs  bool `json:"ibans"`
}

// policyView is a tenant's privacy policy; Default is true (and UpdatedAt
// null) while the tenant has the installation's defaults.
type policyView struct {
	TranscriptDays int           `json:"transcript_days"`
	MetadataDays   int           `json:"metadata_days"`
	AudioLogging   bool          `json:"audio_logging"`
	AudioDays      int           `json:"audio_days"`
	Redact         redactionView `json:"redact"`
	TrainingOptIn  bool          `json:"training_opt_in"`
	UpdatedAt      *time.Time    `json:"updated_at"`
	Default        bool          `json:"default"`
}

func viewPolicy(p *storage.Policy, isDefault bool) policyView {
	return policyView{TranscriptDays: p.TranscriptDays, MetadataDays: p.MetadataDays, AudioLogging: p.AudioLogging,
		AudioDays: p.AudioDays, TrainingOptIn: p.TrainingOptIn, UpdatedAt: tp(p.UpdatedAt), Default: isDefault,
		Redact: redactionView{Emails: p.Redact.Emails, Phones: p.Redact.Phones, Cards: p.Redact.Cards, IBANs: p.Redact.IBANs}}
}

// policyPut replaces the policy: every field is required but updated_at
// and default, which are accepted (a GET's answer can be sent back
// changed) and ignored.
type policyPut struct {
	TranscriptDays int           `json:"transcript_days"`
	MetadataDays   int           `json:"metadata_days"`
	AudioLogging   bool          `json:"audio_logging"`
	AudioDays      int           `json:"audio_days"`
	Redact         redactionView `json:"redact"`
	TrainingOptIn  bool          `json:"training_opt_in"`
	UpdatedAt      *time.Time    `json:"updated_at,omitempty"`
	Default        *bool         `json:"default,omitempty"`
}

var policyRequired = []string{"transcript_days", "metadata_days", "audio_logging", "audio_days",
	"redact", "redact.emails", "redact.phones", "redact.cards", "redact.ibans", "training_opt_in"}

// policyNames turns the Go field names of Policy.Validate's messages into
// the API's.
var policyNames = strings.NewReplacer("Policy.TranscriptDays", "transcript_days", "Policy.MetadataDays", "metadata_days",
	"Policy.AudioDays", "audio_days")

// policy returns the tenant's policy and whether it is the installation's
// default.
func (c *call) policy(b storage.Backend) (*storage.Policy, bool, error) {
	p, err := b.GetPolicy(c.ctx(), c.tenant.ID)
	if errors.Is(err, storage.ErrNotFound) {
		d := c.a.o.DefaultPolicy(c.tenant.ID)
		d.TenantID, d.UpdatedAt = c.tenant.ID, time.Time{}
		return &d, true, nil
	}
	if err != nil {
		return nil, false, err
	}
	return p, false, nil
}

func (c *call) getPrivacy() (any, error) {
	b, err := c.backend()
	if err != nil {
		return nil, err
	}
	p, isDefault, err := c.policy(b)
	if err != nil {
		return nil, err
	}
	return viewPolicy(p, isDefault), nil
}

// putPrivacy replaces the tenant's policy; storage re-derives the expiry
// of what is stored from it (shortening applies to stored data at once).
// The audit entry notes a change of the training opt-in in its target.
func (c *call) putPrivacy() (any, error) {
	b, err := c.backend()
	if err != nil {
		return nil, err
	}
	var req policyPut
	if err := decodeJSON(c.body, &req); err != nil {
		return nil, err
	}
	if err := requireFields(c.body, policyRequired...); err != nil {
		return nil, err
	}
	p := &storage.Policy{TenantID: c.tenant.ID, TranscriptDays: req.TranscriptDays, MetadataDays: req.MetadataDays,
		AudioLogging: req.AudioLogging, AudioDays: req.AudioDays, TrainingOptIn: req.TrainingOptIn,
		UpdatedAt: c.now.UTC().Truncate(time.Millisecond), // as stored
		Redact:    storage.Redaction{Emails: req.Redact.Emails, Phones: req.Redact.Phones, Cards: req.Redact.Cards, IBANs: req.Redact.IBANs}}
	if err := p.Validate(); err != nil {
		if !errors.Is(err, storage.ErrInvalid) {
			return nil, err
		}
		msg := strings.TrimPrefix(err.Error(), storage.ErrInvalid.Error()+": ")
		return nil, invalid(paramOf(msg), policyNames.Replace(msg))
	}
	prev, _, err := c.policy(b)
	if err != nil {
		return nil, err
	}
	if err := b.PutPolicy(c.ctx(), p, c.now.UTC()); err != nil {
		return nil, storageErr(err, "tenant")
	}
	target := c.tenant.ID
	if prev.TrainingOptIn != p.TrainingOptIn {
		target = map[bool]string{true: "training_opt_in:on", false: "training_opt_in:off"}[p.TrainingOptIn]
	}
	c.audit(c.tenant.ID, "privacy.update", "policy", target)
	return viewPolicy(p, false), nil
}

// requireFields answers 400 missing_parameter for the first of fields
// (dotted paths into nested objects) that body lacks or holds as null.
func requireFields(body []byte, fields ...string) *apiErr {
	var root map[string]json.RawMessage
	if err := json.Unmarshal(body, &root); err != nil {
		return badParam("invalid_json", "", "the body must be a JSON object")
	}
	for _, f := range fields {
		m := root
		parts := strings.Split(f, ".")
		for i, p := range parts {
			raw, ok := m[p]
			if !ok || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
				return missing(f)
			}
			if i < len(parts)-1 {
				m = nil
				if err := json.Unmarshal(raw, &m); err != nil {
					return badParam("invalid_type", strings.Join(parts[:i+1], "."), strings.Join(parts[:i+1], ".")+" must be an object")
				}
			}
		}
	}
	return nil
}

// Conversations.

type conversationView struct {
	ID       string `json:"id"`
	AgentID  string `json:"agent_id"`
	Channel  string `json:"channel"`
	Language string `json:"language"`
	// EndUser is the pseudonym of the end user (never the identifier the
	// business gave), null when none was given.
	EndUser    *string    `json:"end_user"`
	Sentiment  float64    `json:"sentiment"`
	StartedAt  time.Time  `json:"started_at"`
	EndedAt    *time.Time `json:"ended_at"`
	DurationMS int64      `json:"duration_ms"`
	TurnCount  int        `json:"turn_count"`
	ExpiresAt  time.Time  `json:"expires_at"`
}

func viewConversation(c *storage.Conversation) conversationView {
	v := conversationView{ID: c.ID, AgentID: c.AgentID, Channel: c.Channel, Language: c.Language, Sentiment: c.Sentiment,
		StartedAt: c.StartedAt.UTC(), EndedAt: tp(c.EndedAt), DurationMS: c.DurationMS, TurnCount: c.TurnCount,
		ExpiresAt: c.ExpiresAt.UTC()}
	if c.EndUser != "" {
		eu := c.EndUser
		v.EndUser = &eu
	}
	return v
}

type latencyView struct {
	FirstTokenMS      int64 `json:"first_token_ms"`
	TotalMS           int64 `json:"total_ms"`
	EngineMS          int64 `json:"engine_ms"`
	EndOfTurnMS       int64 `json:"end_of_turn_ms"`
	FirstPartialMS    int64 `json:"first_partial_ms"`
	FinalTranscriptMS int64 `json:"final_transcript_ms"`
	FirstAudioMS      int64 `json:"first_audio_ms"`
	FirstAudioSentMS  int64 `json:"first_audio_sent_ms"`
}

// turnView is a turn with its text opened: null when only metadata is
// kept (or the text, written before sealing existed, is not sealed yet),
// null with unreadable true when the tenant's data key was shredded.
type turnView struct {
	ID         string      `json:"id"`
	Seq        int         `json:"seq"`
	Role       string      `json:"role"`
	Status     string      `json:"status"`
	Text       *string     `json:"text"`
	Unreadable bool        `json:"unreadable"`
	Sentiment  float64     `json:"sentiment"`
	StartedAt  time.Time   `json:"started_at"`
	EndedAt    *time.Time  `json:"ended_at"`
	Latency    latencyView `json:"latency"`
	ExpiresAt  time.Time   `json:"expires_at"`
}

type conversationDetail struct {
	conversationView
	Turns []turnView `json:"turns"`
}

// pseudonym checks an end-user identifier the business gave (a query
// parameter or a path segment) as the gateway does when it records one,
// and returns its pseudonym, the only form storage knows.
func (c *call) pseudonym(param, raw string) (string, error) {
	switch {
	case raw == "":
		return "", missing(param)
	case len(raw) > maxEndUserLen || !utf8.ValidString(raw):
		return "", invalid(param, param+" must be valid UTF-8 of at most 256 bytes")
	case strings.IndexFunc(raw, unicode.IsControl) >= 0:
		return "", invalid(param, param+" must not contain control characters")
	}
	kr, err := c.keyring()
	if err != nil {
		return "", err
	}
	return kr.Pseudonym(c.ctx(), c.tenant.ID, raw)
}

// listConversations pages through the tenant's conversations, or one end
// user's (?end_user= is the identifier the business gave; the answer
// shows only its pseudonym).
func (c *call) listConversations() (any, error) {
	b, err := c.backend()
	if err != nil {
		return nil, err
	}
	after, limit, err := c.page()
	if err != nil {
		return nil, err
	}
	var f storage.ConversationFilter
	if q := c.r.URL.Query(); q.Has("end_user") {
		if f.EndUser, err = c.pseudonym("end_user", q.Get("end_user")); err != nil {
			return nil, err
		}
	}
	cs, next, err := b.ListConversations(c.ctx(), c.tenant.ID, f, after, limit)
	if err != nil {
		return nil, err
	}
	return listOf(cs, next, viewConversation), nil
}

// getConversation returns a conversation's metadata and its turns with
// their text opened.
func (c *call) getConversation() (any, error) {
	b, err := c.backend()
	if err != nil {
		return nil, err
	}
	kr, err := c.keyring()
	if err != nil {
		return nil, err
	}
	ctx := c.ctx()
	conv, err := b.GetConversation(ctx, c.tenant.ID, c.r.PathValue("conversation_id"))
	if err != nil {
		return nil, storageErr(err, "conversation")
	}
	turns, err := b.ListTurns(ctx, c.tenant.ID, conv.ID)
	if err != nil {
		return nil, storageErr(err, "conversation")
	}
	out := conversationDetail{conversationView: viewConversation(conv), Turns: make([]turnView, 0, len(turns))}
	for i := range turns {
		t := &turns[i]
		l := t.Latency
		v := turnView{ID: t.ID, Seq: t.Seq, Role: t.Role, Status: t.Status, Sentiment: t.Sentiment,
			StartedAt: t.StartedAt.UTC(), EndedAt: tp(t.EndedAt), ExpiresAt: t.ExpiresAt.UTC(),
			Latency: latencyView{FirstTokenMS: l.FirstTokenMS, TotalMS: l.TotalMS, EngineMS: l.EngineMS, EndOfTurnMS: l.EndOfTurnMS,
				FirstPartialMS: l.FirstPartialMS, FinalTranscriptMS: l.FinalTranscriptMS, FirstAudioMS: l.FirstAudioMS,
				FirstAudioSentMS: l.FirstAudioSentMS}}
		if t.TextStored && len(t.TextSealed) > 0 {
			text, unreadable, err := privacy.OpenSealed(ctx, kr, c.tenant.ID, t.TextSealed, seal.TurnAAD(c.tenant.ID, conv.ID, t.ID))
			if err != nil {
				return nil, fmt.Errorf("opening turn %s of %s: %w", t.ID, conv.ID, err)
			}
			if unreadable {
				v.Unreadable = true
			} else {
				s := string(text)
				v.Text = &s
			}
		}
		out.Turns = append(out.Turns, v)
	}
	return out, nil
}

// Export.

// streamed is the result of a handler that wrote its answer itself.
type streamed struct{}

// exportWriter writes an export to the client: the status and headers go
// out with the first byte, so that an export that fails before writing
// anything can still be answered with an error.
type exportWriter struct {
	c        *call
	filename string
	n        int64
}

func (w *exportWriter) Write(p []byte) (int, error) {
	rc := http.NewResponseController(w.c.w)
	if w.n == 0 {
		h := w.c.w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("Content-Disposition", `attachment; filename="`+w.filename+`"`)
		w.c.status = http.StatusOK
		w.c.w.WriteHeader(http.StatusOK)
	}
	_ = rc.SetWriteDeadline(time.Now().Add(exportWriteTimeout))
	n, err := w.c.w.Write(p)
	w.n += int64(n)
	return n, err
}

// export streams the tenant's data (or one conversation's, or one end
// user's) as one JSON document (privacy.Export). An export that fails
// after its first bytes went out aborts the connection, so that the
// client sees a truncated document, never a complete-looking one.
func (c *call) export() (any, error) {
	b, err := c.backend()
	if err != nil {
		return nil, err
	}
	kr, err := c.keyring()
	if err != nil {
		return nil, err
	}
	ctx := c.ctx()
	q := c.r.URL.Query()
	if q.Has("conversation_id") && q.Has("end_user") {
		return nil, invalid("end_user", "give conversation_id or end_user, not both")
	}
	var f storage.ConversationFilter
	kind, target := "tenant", c.tenant.ID
	name := "parley-export-" + c.tenant.ID
	switch {
	case q.Has("conversation_id"):
		id := q.Get("conversation_id")
		if id == "" {
			return nil, invalid("conversation_id", "conversation_id must not be empty")
		}
		if _, err := b.GetConversation(ctx, c.tenant.ID, id); err != nil {
			return nil, storageErr(err, "conversation")
		}
		f.ID, kind, target = id, "conversation", id
		name += "-" + safeFilePart(id)
	case q.Has("end_user"):
		if f.EndUser, err = c.pseudonym("end_user", q.Get("end_user")); err != nil {
			return nil, err
		}
		// The audit log outlives an erasure: it never names the end
		// user, not even by pseudonym.
		kind, target = "end_user", "end_user"
		name += "-" + f.EndUser
	}
	name += "-" + c.now.UTC().Format("20060102T150405Z") + ".json"
	w := &exportWriter{c: c, filename: name}
	stats, err := privacy.Export(ctx, w, b, kr, c.tenant.ID, f, c.now)
	if err != nil && w.n == 0 {
		return nil, err // nothing went out: an ordinary error answer
	}
	counts := fmt.Sprintf("%s conversations=%d turns=%d audio=%d", target, stats.Conversations, stats.Turns, stats.Audio)
	if err != nil {
		ev := c.a.log.Error()
		if ctx.Err() != nil {
			ev = c.a.log.Warn() // the client went away
		}
		ev = ev.Err(err).Str("route", c.route.Pattern).Int64("bytes", w.n)
		c.identify(ev)
		ev.Msg("export failed after it started; connection aborted")
		c.status, c.aborted = http.StatusInternalServerError, true
		counts += " incomplete"
	}
	c.audit(c.tenant.ID, "data.export", kind, counts)
	return streamed{}, nil
}

// safeFilePart keeps s's characters that are safe in a quoted filename.
func safeFilePart(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			return r
		}
		return '_'
	}, s)
}

// Deletion.

// dataDeleted is what a deletion removed.
type dataDeleted struct {
	Deleted storage.Deleted `json:"deleted"`
}

// deleteData deletes the tenant's conversations f selects and writes the
// audit entry (unless nothing matched a conversation id): its target is
// the scope and the counts (an end user is not named, not even by
// pseudonym: the entry outlives the erasure).
func (c *call) deleteData(f storage.ConversationFilter, action, kind, target string) (storage.Deleted, error) {
	b, err := c.backend()
	if err != nil {
		return storage.Deleted{}, err
	}
	d, err := b.DeleteConversations(c.ctx(), c.tenant.ID, f)
	if err != nil {
		return d, err
	}
	if f.EndUser != "" {
		target = "end_user" // nothing findable by the erased identifier stays behind
	}
	if d.Conversations > 0 || f.ID == "" {
		// A request for an end user or the whole tenant is audited even
		// when it found nothing: it is the business's record of an
		// erasure request.
		c.audit(c.tenant.ID, action, kind, fmt.Sprintf("%s conversations=%d turns=%d audio=%d usage_events=%d",
			target, d.Conversations, d.Turns, d.Audio, d.UsageEvents))
	}
	return d, nil
}

func (c *call) deleteConversation() (any, error) {
	id := c.r.PathValue("conversation_id")
	d, err := c.deleteData(storage.ConversationFilter{ID: id}, "conversation.delete", "conversation", id)
	if err != nil {
		return nil, err
	}
	if d.Conversations == 0 {
		return nil, notFound("conversation")
	}
	return dataDeleted{d}, nil
}

// deleteEndUser deletes every conversation of one end user (the path
// holds the identifier the business gave). An end user without data is
// no error: the counts are zero.
func (c *call) deleteEndUser() (any, error) {
	if _, err := c.backend(); err != nil {
		return nil, err
	}
	p, err := c.pseudonym("end_user_id", c.r.PathValue("end_user_id"))
	if err != nil {
		return nil, err
	}
	d, err := c.deleteData(storage.ConversationFilter{EndUser: p}, "end_user.delete", "end_user", p)
	if err != nil {
		return nil, err
	}
	return dataDeleted{d}, nil
}

// deleteAllConversations deletes every conversation of the tenant; it
// takes ?confirm=delete-all.
func (c *call) deleteAllConversations() (any, error) {
	q := c.r.URL.Query()
	switch {
	case !q.Has("confirm"):
		return nil, badParam("missing_parameter", "confirm", "deleting every conversation of the tenant takes ?confirm="+ConfirmDeleteAll)
	case q.Get("confirm") != ConfirmDeleteAll:
		return nil, invalid("confirm", "confirm must be "+ConfirmDeleteAll)
	}
	d, err := c.deleteData(storage.ConversationFilter{}, "conversation.delete_all", "tenant", c.tenant.ID)
	if err != nil {
		return nil, err
	}
	return dataDeleted{d}, nil
}

// Usage.

type usageDayView struct {
	Day           string `json:"day"` // YYYY-MM-DD, UTC
	Channel       string `json:"channel"`
	Language      string `json:"language"`
	Conversations int    `json:"conversations"`
	DurationMS    int64  `json:"duration_ms"`
}

type usageTotal struct {
	Conversations int   `json:"conversations"`
	DurationMS    int64 `json:"duration_ms"`
}

// usageView is the tenant's daily rollups from From to To, both included.
type usageView struct {
	From  string         `json:"from"`
	To    string         `json:"to"`
	Total usageTotal     `json:"total"`
	Data  []usageDayView `json:"data"`
}

// usage answers the tenant's daily usage rollups between ?from= and ?to=
// (UTC days, both included; default the last 30 days up to today).
func (c *call) usage() (any, error) {
	b, err := c.backend()
	if err != nil {
		return nil, err
	}
	q := c.r.URL.Query()
	y, m, d := c.now.UTC().Date()
	to := time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
	day := func(param string) (time.Time, error) {
		t, err := time.Parse(time.DateOnly, q.Get(param))
		if err != nil {
			return time.Time{}, invalid(param, param+" must be a date, YYYY-MM-DD")
		}
		return t, nil
	}
	if q.Has("to") {
		if to, err = day("to"); err != nil {
			return nil, err
		}
	}
	from := to.AddDate(0, 0, -(DefaultUsageDays - 1))
	if q.Has("from") {
		if from, err = day("from"); err != nil {
			return nil, err
		}
	}
	if to.Before(from) {
		return nil, invalid("to", "to must not be before from")
	}
	if span := int(to.Sub(from).Hours()/24) + 1; span > MaxUsageDays {
		return nil, invalid("from", fmt.Sprintf("from and to span at most %d days, got %d", MaxUsageDays, span))
	}
	days, err := b.ListUsageDays(c.ctx(), c.tenant.ID, from, to.AddDate(0, 0, 1))
	if err != nil {
		return nil, err
	}
	out := usageView{From: from.Format(time.DateOnly), To: to.Format(time.DateOnly), Data: make([]usageDayView, 0, len(days))}
	for _, u := range days {
		out.Data = append(out.Data, usageDayView{Day: u.Day.UTC().Format(time.DateOnly), Channel: u.Channel, Language: u.Language,
			Conversations: u.Conversations, DurationMS: u.DurationMS})
		out.Total.Conversations += u.Conversations
		out.Total.DurationMS += u.DurationMS
	}
	return out, nil
}
