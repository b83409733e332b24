package manage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"parley/privacy"
	"parley/storage"
)

// auditLog returns the tenant's audit entries, oldest first.
func (e *env) auditLog(tenantID string) []storage.AuditEntry {
	e.t.Helper()
	es, _, err := e.store.ListAudit(context.Background(), tenantID, "", storage.MaxListLimit)
	if err != nil {
		e.t.Fatal(err)
	}
	return es
}

// auditWatch finds the audit entries written since it last looked
// (entries of one millisecond have no order, so "the latest" would not do).
type auditWatch struct {
	e      *env
	tenant string
	seen   map[string]bool
}

// watchAudit starts watching a tenant's audit log.
func (e *env) watchAudit(tenantID string) *auditWatch {
	a := &auditWatch{e: e, tenant: tenantID, seen: map[string]bool{}}
	for _, en := range e.auditLog(tenantID) {
		a.seen[en.ID] = true
	}
	return a
}

// next returns the one entry with action written since the last look,
// failing unless there is exactly one.
func (a *auditWatch) next(action string) storage.AuditEntry {
	a.e.t.Helper()
	var found []storage.AuditEntry
	for _, en := range a.e.auditLog(a.tenant) {
		if a.seen[en.ID] {
			continue
		}
		a.seen[en.ID] = true
		if en.Action == action {
			found = append(found, en)
		}
	}
	if len(found) != 1 {
		a.e.t.Fatalf("%d new audit entries %s: %+v", len(found), action, found)
	}
	return found[0]
}

func TestPrivacyPolicy(t *testing.T) {
	w := newWorld(t, func(o *Options) {
		o.DefaultPolicy = func(tenantID string) storage.Policy {
			p := DefaultPolicy(tenantID)
			p.TranscriptDays = 60
			return p
		}
	})
	base := "/v1/tenants/" + w.A.ID
	ctx := context.Background()

	// The installation's defaults until the tenant sets a policy.
	r := w.do("GET", base+"/privacy", w.viewTok, nil)
	w.want(r, 200, "")
	want := `{"transcript_days":60,"metadata_days":365,"audio_logging":false,"audio_days":30,` +
		`"redact":{"emails":true,"phones":true,"cards":true,"ibans":true},"training_opt_in":false,"updated_at":null,"default":true}`
	if strings.TrimSpace(r.raw) != want {
		t.Fatalf("default policy:\n%s\nwant\n%s", r.raw, want)
	}

	// A conversation stored before the change: shortening the retention
	// applies to it.
	c := w.conv(w.A.ID, "conv-old", "", "Hello")
	audit := w.watchAudit(w.A.ID)
	r = w.do("PUT", base+"/privacy", w.ownerTok, validPolicy())
	w.want(r, 200, "")
	if r.body["default"] != false || r.body["updated_at"] == nil || r.body["training_opt_in"] != true || r.body["transcript_days"] != 30.0 ||
		r.body["redact"].(map[string]any)["phones"] != false || r.body["audio_logging"] != true || r.body["audio_days"] != 7.0 {
		t.Fatalf("put: %s", r.raw)
	}
	p, err := w.store.GetPolicy(ctx, w.A.ID)
	if err != nil || p.TranscriptDays != 30 || p.MetadataDays != 180 || !p.AudioLogging || p.AudioDays != 7 || !p.TrainingOptIn ||
		p.Redact != (storage.Redaction{Emails: true, Cards: true, IBANs: true}) {
		t.Fatalf("stored policy %+v, %v", p, err)
	}
	got, err := w.store.GetConversation(ctx, w.A.ID, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if want := c.StartedAt.Add(180 * 24 * time.Hour); !got.ExpiresAt.Equal(want) {
		t.Fatalf("conversation expires %v after the policy change, want %v", got.ExpiresAt, want)
	}
	r2 := w.do("GET", base+"/privacy", w.viewTok, nil)
	w.want(r2, 200, "")
	if r2.raw != r.raw {
		t.Fatalf("GET after PUT:\n%s\nwant\n%s", r2.raw, r.raw)
	}
	// The training opt-in change is in the audit entry, no content.
	if e := audit.next("privacy.update"); e.TargetKind != "policy" || e.TargetID != "training_opt_in:on" || e.ActorID != w.owner.ID {
		t.Fatalf("audit: %+v", e)
	}

	// A GET's answer, changed, can be sent back (updated_at and default
	// are ignored).
	var round map[string]any
	if err := json.Unmarshal([]byte(r2.raw), &round); err != nil {
		t.Fatal(err)
	}
	round["metadata_days"] = 200
	round["default"] = true
	w.want(w.do("PUT", base+"/privacy", w.ownerTok, round), 200, "")
	if e := audit.next("privacy.update"); e.TargetID != w.A.ID {
		t.Fatalf("audit without an opt-in change: %+v", e)
	}
	round["training_opt_in"] = false
	w.want(w.do("PUT", base+"/privacy", w.ownerTok, round), 200, "")
	if e := audit.next("privacy.update"); e.TargetID != "training_opt_in:off" {
		t.Fatalf("audit of the opt-out: %+v", e)
	}
	if ts, err := w.store.TrainingTenants(ctx); err != nil || len(ts) != 0 {
		t.Fatalf("training tenants after the opt-out: %v %v", ts, err)
	}
	// Tenant B still has the defaults.
	r = w.do("GET", "/v1/tenants/"+w.B.ID+"/privacy", w.bobTok, nil)
	w.want(r, 200, "")
	if r.body["default"] != true {
		t.Fatalf("B's policy: %s", r.raw)
	}
}

func TestPrivacyPolicyBadInput(t *testing.T) {
	w := newWorld(t)
	path := "/v1/tenants/" + w.A.ID + "/privacy"
	with := func(k string, v any) string {
		p := validPolicy()
		if v == nil {
			delete(p, k)
		} else {
			p[k] = v
		}
		b, _ := json.Marshal(p)
		return string(b)
	}
	redact := func(k string, v any) string {
		p := validPolicy()
		r := p["redact"].(map[string]any)
		if v == nil {
			delete(r, k)
		} else {
			r[k] = v
		}
		b, _ := json.Marshal(p)
		return string(b)
	}
	cases := []struct {
		name, body  string
		code, param string
	}{
		{"empty body", ``, "invalid_json", ""},
		{"not an object", `[1]`, "invalid_json", ""},
		{"unknown field", with("retention_days", 30), "unknown_parameter", "retention_days"},
		{"tenant id", with("tenant_id", w.B.ID), "unknown_parameter", "tenant_id"},
		{"unknown redaction", redact("names", true), "unknown_parameter", "names"},
		{"missing transcript_days", with("transcript_days", nil), "missing_parameter", "transcript_days"},
		{"missing metadata_days", with("metadata_days", nil), "missing_parameter", "metadata_days"},
		{"missing audio_logging", with("audio_logging", nil), "missing_parameter", "audio_logging"},
		{"missing audio_days", with("audio_days", nil), "missing_parameter", "audio_days"},
		{"missing redact", with("redact", nil), "missing_parameter", "redact"},
		{"missing redact.cards", redact("cards", nil), "missing_parameter", "redact.cards"},
		{"null training_opt_in", strings.Replace(with("training_opt_in", false), `"training_opt_in":false`, `"training_opt_in":null`, 1), "missing_parameter", "training_opt_in"},
		{"string days", with("transcript_days", "30"), "invalid_type", "transcript_days"},
		{"fractional days", with("metadata_days", 1.5), "invalid_type", "metadata_days"},
		{"redact not an object", with("redact", true), "invalid_type", "redact"},
		{"redaction not a bool", redact("emails", "yes"), "invalid_type", "redact.emails"},
		{"negative transcript_days", with("transcript_days", -1), "invalid_value", "transcript_days"},
		{"transcript_days too long", with("transcript_days", storage.MaxRetentionDays+1), "invalid_value", "transcript_days"},
		{"zero metadata_days", with("metadata_days", 0), "invalid_value", "metadata_days"},
		{"metadata shorter than transcripts", with("metadata_days", 10), "invalid_value", "metadata_days"},
		{"zero audio_days", with("audio_days", 0), "invalid_value", "audio_days"},
		{"audio_days too long", with("audio_days", 4000), "invalid_value", "audio_days"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var body any
			if c.body != "" {
				body = c.body
			}
			r := w.do("PUT", path, w.ownerTok, body)
			want(t, r, 400, c.code)
			if r.errParam() != c.param {
				t.Fatalf("param %q, want %q: %s", r.errParam(), c.param, r.raw)
			}
			if strings.Contains(r.raw, "Policy.") {
				t.Fatalf("the message names Go fields: %s", r.raw)
			}
		})
	}
	if _, err := w.store.GetPolicy(context.Background(), w.A.ID); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("a refused policy was stored: %v", err)
	}
	// Metadata-only (transcript_days 0) is a valid policy.
	w.want(w.do("PUT", path, w.ownerTok, with("transcript_days", 0)), 200, "")
}

// convWorld is a world whose tenant A has three conversations: conv-1 of
// end user "alice@shop.example" (two turns with text), conv-2 of
// "bob-the-customer" (a metadata-only turn and a turn with text), conv-3
// without an end user.
func convWorld(t *testing.T, tweak ...func(*Options)) *world {
	w := newWorld(t, tweak...)
	w.conv(w.A.ID, "conv-1", "alice@shop.example", "Where is my order 4242?", "It ships tomorrow.")
	w.conv(w.A.ID, "conv-2", "bob-the-customer", "", "Noted.")
	w.conv(w.A.ID, "conv-3", "", "Hi")
	return w
}

func TestConversations(t *testing.T) {
	w := convWorld(t)
	base := "/v1/tenants/" + w.A.ID
	alice, err := w.kr.Pseudonym(context.Background(), w.A.ID, "alice@shop.example")
	if err != nil {
		t.Fatal(err)
	}

	r := w.do("GET", base+"/conversations", w.memberTok, nil)
	w.want(r, 200, "")
	if len(r.data()) != 3 || r.body["next_cursor"] != nil {
		t.Fatalf("list: %s", r.raw)
	}
	if strings.Contains(r.raw, "alice") || strings.Contains(r.raw, "bob-the") || strings.Contains(r.raw, "order 4242") {
		t.Fatalf("the list shows an identifier or text: %s", r.raw)
	}
	first := r.data()[0].(map[string]any)
	if first["id"] != "conv-1" || first["end_user"] != alice || first["turn_count"] != 2.0 || first["channel"] != "websocket" ||
		first["ended_at"] == nil || first["duration_ms"] != 90000.0 {
		t.Fatalf("conv-1: %v", first)
	}
	if third := r.data()[2].(map[string]any); third["end_user"] != nil {
		t.Fatalf("conv-3 has an end user: %v", third)
	}

	// One end user's, by the identifier the business gave.
	r = w.do("GET", base+"/conversations?end_user="+url.QueryEscape("alice@shop.example"), w.memberTok, nil)
	w.want(r, 200, "")
	if len(r.data()) != 1 || r.data()[0].(map[string]any)["id"] != "conv-1" {
		t.Fatalf("alice's: %s", r.raw)
	}
	r = w.do("GET", base+"/conversations?end_user=nobody", w.memberTok, nil)
	w.want(r, 200, "")
	if len(r.data()) != 0 {
		t.Fatalf("nobody's: %s", r.raw)
	}
	// Pages.
	r = w.do("GET", base+"/conversations?limit=2", w.memberTok, nil)
	if len(r.data()) != 2 || r.body["next_cursor"] == nil {
		t.Fatalf("page 1: %s", r.raw)
	}
	r = w.do("GET", base+"/conversations?limit=2&after="+r.str("next_cursor"), w.memberTok, nil)
	if len(r.data()) != 1 || r.data()[0].(map[string]any)["id"] != "conv-3" || r.body["next_cursor"] != nil {
		t.Fatalf("page 2: %s", r.raw)
	}

	// A conversation with its turns' text.
	r = w.do("GET", base+"/conversations/conv-1", w.memberTok, nil)
	w.want(r, 200, "")
	turns := r.body["turns"].([]any)
	if r.str("id") != "conv-1" || r.str("end_user") != alice || len(turns) != 2 {
		t.Fatalf("conv-1: %s", r.raw)
	}
	t1, t2 := turns[0].(map[string]any), turns[1].(map[string]any)
	if t1["text"] != "Where is my order 4242?" || t1["role"] != "user" || t1["unreadable"] != false || t1["seq"] != 1.0 ||
		t2["text"] != "It ships tomorrow." || t2["role"] != "assistant" || t2["latency"].(map[string]any)["total_ms"] != 480.0 {
		t.Fatalf("conv-1 turns: %s", r.raw)
	}
	// Metadata only: null text, not unreadable.
	r = w.do("GET", base+"/conversations/conv-2", w.memberTok, nil)
	w.want(r, 200, "")
	turns = r.body["turns"].([]any)
	if t1 := turns[0].(map[string]any); t1["text"] != nil || t1["unreadable"] != false || turns[1].(map[string]any)["text"] != "Noted." {
		t.Fatalf("conv-2 turns: %s", r.raw)
	}
	w.want(w.do("GET", base+"/conversations/nope", w.memberTok, nil), 404, "not_found")

	// Crypto-shredded: the text is unreadable, the metadata stays.
	if err := w.store.DeleteDataKey(context.Background(), w.A.ID); err != nil {
		t.Fatal(err)
	}
	r = w.do("GET", base+"/conversations/conv-1", w.memberTok, nil)
	w.want(r, 200, "")
	for _, tr := range r.body["turns"].([]any) {
		if m := tr.(map[string]any); m["text"] != nil || m["unreadable"] != true {
			t.Fatalf("shredded turn: %v", m)
		}
	}
	// ... also once the tenant has a new data key.
	w.want(w.do("GET", base+"/conversations?end_user=someone", w.memberTok, nil), 200, "")
	if _, err := w.store.GetDataKey(context.Background(), w.A.ID); err != nil {
		t.Fatalf("no new data key: %v", err)
	}
	r = w.do("GET", base+"/conversations/conv-1", w.memberTok, nil)
	w.want(r, 200, "")
	if m := r.body["turns"].([]any)[0].(map[string]any); m["unreadable"] != true {
		t.Fatalf("turn sealed under the shredded key: %v", m)
	}
}

func TestConversationsBadInput(t *testing.T) {
	w := convWorld(t)
	base := "/v1/tenants/" + w.A.ID
	cases := []struct {
		name, path, code, param string
	}{
		{"empty end_user", "/conversations?end_user=", "missing_parameter", "end_user"},
		{"control character", "/conversations?end_user=a%01b", "invalid_value", "end_user"},
		{"too long", "/conversations?end_user=" + strings.Repeat("x", 257), "invalid_value", "end_user"},
		{"invalid UTF-8", "/conversations?end_user=%ff", "invalid_value", "end_user"},
		{"zero limit", "/conversations?limit=0", "invalid_value", "limit"},
		{"bad cursor", "/conversations?after=nope", "invalid_value", "after"},
		{"export: both scopes", "/export?conversation_id=conv-1&end_user=alice", "invalid_value", "end_user"},
		{"export: empty conversation", "/export?conversation_id=", "invalid_value", "conversation_id"},
		{"export: empty end user", "/export?end_user=", "missing_parameter", "end_user"},
		{"export: control character", "/export?end_user=%0a", "invalid_value", "end_user"},
		{"delete end user: control character", "/end_users/a%01b", "invalid_value", "end_user_id"},
		{"delete end user: too long", "/end_users/" + strings.Repeat("y", 300), "invalid_value", "end_user_id"},
		{"delete all: no confirmation", "/conversations", "missing_parameter", "confirm"},
		{"delete all: wrong confirmation", "/conversations?confirm=yes", "invalid_value", "confirm"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			method := "GET"
			if strings.HasPrefix(c.name, "delete") {
				method = "DELETE"
			}
			r := w.do(method, base+c.path, w.adminTok, nil)
			want(t, r, 400, c.code)
			if r.errParam() != c.param {
				t.Fatalf("param %q, want %q: %s", r.errParam(), c.param, r.raw)
			}
		})
	}
	r := w.do("GET", base+"/conversations", w.memberTok, nil)
	if len(r.data()) != 3 {
		t.Fatalf("conversations after refused requests: %s", r.raw)
	}
}

// exportDoc is the part of an export document the tests read.
type exportDoc struct {
	Format   string `json:"format"`
	TenantID string `json:"tenant_id"`
	Scope    struct {
		ConversationID string `json:"conversation_id"`
		EndUser        string `json:"end_user"`
	} `json:"scope"`
	Conversations []struct {
		ID      string `json:"id"`
		EndUser string `json:"end_user"`
		Turns   []struct {
			Text       *string `json:"text"`
			Unreadable bool    `json:"unreadable"`
		} `json:"turns"`
	} `json:"conversations"`
	UsageDays []map[string]any `json:"usage_days"`
}

func TestExport(t *testing.T) {
	w := convWorld(t)
	base := "/v1/tenants/" + w.A.ID
	w.usageEvent(w.A.ID, "conv-1", w.now.Add(-time.Hour), 90*time.Second)
	audit := w.watchAudit(w.A.ID)
	parse := func(r *resp) exportDoc {
		t.Helper()
		w.want(r, 200, "")
		var d exportDoc
		if err := json.Unmarshal([]byte(r.raw), &d); err != nil {
			t.Fatalf("export is not JSON: %v\n%s", err, r.raw)
		}
		if d.Format != privacy.ExportFormat || d.TenantID != w.A.ID {
			t.Fatalf("export header: %s", r.raw)
		}
		if ct, cd := r.hdr.Get("Content-Type"), r.hdr.Get("Content-Disposition"); ct != "application/json" ||
			!strings.HasPrefix(cd, `attachment; filename="parley-export-`+w.A.ID) || !strings.HasSuffix(cd, `.json"`) {
			t.Fatalf("headers: %v", r.hdr)
		}
		if strings.Contains(r.raw, "alice@") || strings.Contains(r.raw, "bob-the") {
			t.Fatalf("the export holds an end-user identifier: %s", r.raw)
		}
		return d
	}

	d := parse(w.do("GET", base+"/export", w.adminTok, nil))
	if len(d.Conversations) != 3 || len(d.UsageDays) != 1 || d.Scope.ConversationID != "" || d.Scope.EndUser != "" {
		t.Fatalf("whole tenant: %+v", d)
	}
	if tx := d.Conversations[0].Turns[0].Text; tx == nil || *tx != "Where is my order 4242?" {
		t.Fatalf("conv-1's text: %+v", d.Conversations[0])
	}
	if e := audit.next("data.export"); e.TargetKind != "tenant" || e.TargetID != w.A.ID+" conversations=3 turns=5 audio=0" {
		t.Fatalf("audit: %+v", e)
	}

	d = parse(w.do("GET", base+"/export?conversation_id=conv-2", w.mgmtKey, nil))
	if len(d.Conversations) != 1 || d.Conversations[0].ID != "conv-2" || d.Scope.ConversationID != "conv-2" || d.UsageDays != nil {
		t.Fatalf("one conversation: %+v", d)
	}
	if d.Conversations[0].Turns[0].Text != nil {
		t.Fatalf("metadata-only turn has text: %+v", d.Conversations[0])
	}
	if e := audit.next("data.export"); e.TargetKind != "conversation" || e.TargetID != "conv-2 conversations=1 turns=2 audio=0" || e.ActorKind != storage.ActorKey {
		t.Fatalf("audit: %+v", e)
	}

	alice, _ := w.kr.Pseudonym(context.Background(), w.A.ID, "alice@shop.example")
	d = parse(w.do("GET", base+"/export?end_user="+url.QueryEscape("alice@shop.example"), w.ownerTok, nil))
	if len(d.Conversations) != 1 || d.Conversations[0].ID != "conv-1" || d.Scope.EndUser != alice || d.Conversations[0].EndUser != alice {
		t.Fatalf("one end user: %+v", d)
	}
	if e := audit.next("data.export"); e.TargetKind != "end_user" || e.TargetID != "end_user conversations=1 turns=2 audio=0" || strings.Contains(e.TargetID, alice) {
		t.Fatalf("audit: %+v", e)
	}
	// An end user without data: an empty export, not an error.
	d = parse(w.do("GET", base+"/export?end_user=nobody", w.ownerTok, nil))
	if len(d.Conversations) != 0 {
		t.Fatalf("nobody's export: %+v", d)
	}
	w.want(w.do("GET", base+"/export?conversation_id=nope", w.adminTok, nil), 404, "not_found")

	// Shredded: the export still works, the text is unreadable.
	if err := w.store.DeleteDataKey(context.Background(), w.A.ID); err != nil {
		t.Fatal(err)
	}
	d = parse(w.do("GET", base+"/export?conversation_id=conv-1", w.adminTok, nil))
	if tr := d.Conversations[0].Turns[0]; tr.Text != nil || !tr.Unreadable {
		t.Fatalf("shredded export: %+v", d.Conversations[0])
	}
}

// flakyBackend fails ListConversations, or ListTurns after turnsOK calls.
type flakyBackend struct {
	storage.Backend
	failList bool
	turnsOK  atomic.Int32
}

var errDiskOnFire = errors.New("disk on fire")

func (f *flakyBackend) ListConversations(ctx context.Context, tenantID string, fl storage.ConversationFilter, after string, limit int) ([]storage.Conversation, string, error) {
	if f.failList {
		return nil, "", errDiskOnFire
	}
	return f.Backend.ListConversations(ctx, tenantID, fl, after, limit)
}

func (f *flakyBackend) ListTurns(ctx context.Context, tenantID, conversationID string) ([]storage.Turn, error) {
	if f.turnsOK.Add(-1) < 0 {
		return nil, errDiskOnFire
	}
	return f.Backend.ListTurns(ctx, tenantID, conversationID)
}

// TestExportFailure: an export that fails before its first byte is an
// ordinary error answer; one that fails midway breaks the connection, so
// the client never takes a partial document for a whole one.
func TestExportFailure(t *testing.T) {
	flaky := &flakyBackend{}
	flaky.turnsOK.Store(1 << 30)
	w := newWorld(t, func(o *Options) {
		flaky.Backend = o.Privacy
		o.Privacy = flaky
	})
	base := "/v1/tenants/" + w.A.ID
	long := strings.Repeat("All work and no play makes a long transcript. ", 100) // ~4.6 KiB
	for i := range 20 {
		w.conv(w.A.ID, fmt.Sprintf("conv-%02d", i), "", long)
	}

	flaky.failList = true
	r := w.do("GET", base+"/export", w.adminTok, nil)
	w.want(r, 503, "storage_unavailable")
	if r.hdr.Get("Content-Disposition") != "" {
		t.Fatalf("an error answer is an attachment: %v", r.hdr)
	}
	flaky.failList = false

	srv := httptest.NewServer(w.h)
	defer srv.Close()
	get := func() (*http.Response, []byte, error) {
		req, _ := http.NewRequest("GET", srv.URL+base+"/export", nil)
		req.Header.Set("Authorization", "Bearer "+w.adminTok)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, nil, err
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		return res, b, err
	}
	// The whole export works over a real connection...
	res, b, err := get()
	if err != nil || res.StatusCode != 200 || !json.Valid(b) {
		t.Fatalf("export: %v %v (%d bytes)", res, err, len(b))
	}
	// ... and fails midway: more than the export's buffer went out before.
	audit := w.watchAudit(w.A.ID)
	flaky.turnsOK.Store(15)
	res, b, err = get()
	if err == nil {
		t.Fatalf("a failed export ended cleanly: status %d, %d bytes, valid JSON %v", res.StatusCode, len(b), json.Valid(b))
	}
	if res.StatusCode != 200 || len(b) == 0 || json.Valid(b) {
		t.Fatalf("failed export: status %d, %d bytes", res.StatusCode, len(b))
	}
	logs := w.logs.String()
	if !strings.Contains(logs, "export failed after it started") || !strings.Contains(logs, errDiskOnFire.Error()) {
		t.Fatalf("the failure is not logged:\n%s", logs)
	}
	if strings.Contains(logs, "All work and no play") {
		t.Fatal("transcript text is in the logs")
	}
	if e := audit.next("data.export"); !strings.HasSuffix(e.TargetID, " incomplete") {
		t.Fatalf("audit of the failed export: %+v", e)
	}
}

func TestDeleteData(t *testing.T) {
	w := convWorld(t)
	base := "/v1/tenants/" + w.A.ID
	ctx := context.Background()
	w.usageEvent(w.A.ID, "conv-1", w.now.Add(-time.Hour), 90*time.Second)
	audit := w.watchAudit(w.A.ID)
	deleted := func(r *resp) storage.Deleted {
		t.Helper()
		w.want(r, 200, "")
		var d dataDeleted
		if err := json.Unmarshal([]byte(r.raw), &d); err != nil {
			t.Fatal(err)
		}
		return d.Deleted
	}

	// One conversation, with its turns and usage event.
	if d := deleted(w.do("DELETE", base+"/conversations/conv-1", w.adminTok, nil)); d != (storage.Deleted{Conversations: 1, Turns: 2, UsageEvents: 1}) {
		t.Fatalf("deleted %+v", d)
	}
	w.want(w.do("GET", base+"/conversations/conv-1", w.memberTok, nil), 404, "not_found")
	w.want(w.do("DELETE", base+"/conversations/conv-1", w.adminTok, nil), 404, "not_found")
	if e := audit.next("conversation.delete"); e.TargetKind != "conversation" ||
		e.TargetID != "conv-1 conversations=1 turns=2 audio=0 usage_events=1" || e.ActorID != w.admin.ID {
		t.Fatalf("audit: %+v", e)
	}
	// The daily rollup stays.
	if days, err := w.store.ListUsageDays(ctx, w.A.ID, w.now.Add(-48*time.Hour), w.now.Add(48*time.Hour)); err != nil || len(days) != 1 {
		t.Fatalf("rollups: %+v %v", days, err)
	}

	// One end user's, by the business's identifier; again: zero counts.
	bob, _ := w.kr.Pseudonym(ctx, w.A.ID, "bob-the-customer")
	if d := deleted(w.do("DELETE", base+"/end_users/bob-the-customer", w.mgmtKey, nil)); d != (storage.Deleted{Conversations: 1, Turns: 2}) {
		t.Fatalf("deleted %+v", d)
	}
	if e := audit.next("end_user.delete"); e.TargetKind != "end_user" || e.TargetID != "end_user conversations=1 turns=2 audio=0 usage_events=0" || strings.Contains(e.TargetID, bob) ||
		e.ActorKind != storage.ActorKey {
		t.Fatalf("audit: %+v", e)
	}
	if d := deleted(w.do("DELETE", base+"/end_users/bob-the-customer", w.adminTok, nil)); d != (storage.Deleted{}) {
		t.Fatalf("deleted again %+v", d)
	}
	// Audited all the same: the business's record of the erasure request.
	if e := audit.next("end_user.delete"); e.TargetID != "end_user conversations=0 turns=0 audio=0 usage_events=0" {
		t.Fatalf("audit: %+v", e)
	}
	r := w.do("GET", base+"/conversations", w.memberTok, nil)
	if len(r.data()) != 1 || r.data()[0].(map[string]any)["id"] != "conv-3" {
		t.Fatalf("left: %s", r.raw)
	}

	// Everything, with the confirmation.
	w.conv(w.A.ID, "conv-4", "carol", "Bye")
	if d := deleted(w.do("DELETE", base+"/conversations?confirm="+ConfirmDeleteAll, w.ownerTok, nil)); d != (storage.Deleted{Conversations: 2, Turns: 2}) {
		t.Fatalf("deleted all %+v", d)
	}
	if e := audit.next("conversation.delete_all"); e.TargetKind != "tenant" || e.TargetID != w.A.ID+" conversations=2 turns=2 audio=0 usage_events=0" {
		t.Fatalf("audit: %+v", e)
	}
	if r := w.do("GET", base+"/conversations", w.memberTok, nil); len(r.data()) != 0 {
		t.Fatalf("left: %s", r.raw)
	}
	// Tenant B's conversation is untouched.
	if _, err := w.store.GetConversation(ctx, w.B.ID, w.bConv.ID); err != nil {
		t.Fatalf("B's conversation: %v", err)
	}
	// The audit log never names an end user but by pseudonym.
	for _, e := range w.auditLog(w.A.ID) {
		if strings.Contains(e.TargetID, "bob-the") || strings.Contains(e.TargetID, "alice") || strings.Contains(e.TargetID, "carol") {
			t.Fatalf("audit entry names an end user: %+v", e)
		}
	}

	// A deleted tenant's data can still be deleted (not its policy changed).
	w.conv(w.A.ID, "conv-5", "dave", "Hello")
	w.want(w.do("DELETE", base, w.ownerTok, nil), 200, "")
	if d := deleted(w.do("DELETE", base+"/end_users/dave", w.ownerTok, nil)); d.Conversations != 1 {
		t.Fatalf("deleted tenant: %+v", d)
	}
	w.want(w.do("PUT", base+"/privacy", w.ownerTok, validPolicy()), 409, "tenant_disabled")
}

func TestUsage(t *testing.T) {
	w := newWorld(t)
	base := "/v1/tenants/" + w.A.ID
	today := time.Date(w.now.Year(), w.now.Month(), w.now.Day(), 12, 0, 0, 0, time.UTC)
	if today.After(w.now) {
		today = today.AddDate(0, 0, -1) // keep every event in the past
	}
	day := func(n int) string { return today.AddDate(0, 0, n).Format(time.DateOnly) }
	w.usageEvent(w.A.ID, "c1", today, 60*time.Second)
	w.usageEvent(w.A.ID, "c2", today, 30*time.Second)
	w.usageEvent(w.A.ID, "c3", today.AddDate(0, 0, -1), 10*time.Second)
	w.usageEvent(w.A.ID, "c4", today.AddDate(0, 0, -40), 5*time.Second)
	w.usageEvent(w.B.ID, "b1", today, time.Hour)

	r := w.do("GET", base+"/usage", w.viewTok, nil)
	w.want(r, 200, "")
	total := r.body["total"].(map[string]any)
	if len(r.data()) != 2 || total["conversations"] != 3.0 || total["duration_ms"] != 100000.0 || r.str("to") != time.Now().UTC().Format(time.DateOnly) {
		t.Fatalf("default span: %s", r.raw)
	}
	if from, _ := time.Parse(time.DateOnly, r.str("from")); r.str("to") != from.AddDate(0, 0, DefaultUsageDays-1).Format(time.DateOnly) {
		t.Fatalf("default span is not %d days: %s", DefaultUsageDays, r.raw)
	}
	d0 := r.data()[0].(map[string]any)
	if d0["day"] != day(-1) || d0["conversations"] != 1.0 || d0["channel"] != "websocket" || d0["language"] != "en" {
		t.Fatalf("first day: %s", r.raw)
	}
	r = w.do("GET", base+"/usage?from="+day(-40)+"&to="+day(0), w.viewTok, nil)
	w.want(r, 200, "")
	if len(r.data()) != 3 || r.str("from") != day(-40) {
		t.Fatalf("explicit span: %s", r.raw)
	}
	r = w.do("GET", base+"/usage?to="+day(-40), w.viewTok, nil)
	w.want(r, 200, "")
	if len(r.data()) != 1 || r.str("from") != day(-69) {
		t.Fatalf("to only: %s", r.raw)
	}
	r = w.do("GET", base+"/usage?from="+day(-399)+"&to="+day(0), w.viewTok, nil)
	w.want(r, 200, "")

	for _, c := range []struct{ name, query, param string }{
		{"bad from", "from=2026-13-01", "from"},
		{"bad to", "to=yesterday", "to"},
		{"timestamp", "from=" + url.QueryEscape(today.Format(time.RFC3339)), "from"},
		{"empty from", "from=", "from"},
		{"to before from", "from=" + day(0) + "&to=" + day(-1), "to"},
		{"span too long", "from=" + day(-400) + "&to=" + day(0), "from"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := w.do("GET", base+"/usage?"+c.query, w.viewTok, nil)
			want(t, r, 400, "invalid_value")
			if r.errParam() != c.param {
				t.Fatalf("param %q, want %q: %s", r.errParam(), c.param, r.raw)
			}
		})
	}
}

func TestAgentSettingsSealed(t *testing.T) {
	w := newWorld(t)
	base := "/v1/tenants/" + w.A.ID
	ctx := context.Background()
	doc := "The team plan costs 20 euros a month."
	r := w.do("POST", base+"/agents", w.memberTok, map[string]any{"id": "sales", "settings": map[string]any{"top_k": 3, "knowledge": map[string]any{"pricing.md": doc}}})
	w.want(r, 201, "")
	if r.body["settings"].(map[string]any)["knowledge"].(map[string]any)["pricing.md"] != doc {
		t.Fatalf("create: %s", r.raw)
	}
	row, err := w.store.GetAgent(ctx, w.A.ID, "sales")
	if err != nil {
		t.Fatal(err)
	}
	if len(row.Settings) != 0 || len(row.SettingsSealed) == 0 || strings.Contains(string(row.SettingsSealed), "euros") {
		t.Fatalf("stored settings: plaintext %q, sealed %d bytes", row.Settings, len(row.SettingsSealed))
	}
	plain, err := AgentSettings(ctx, w.kr, row)
	if err != nil || !strings.Contains(string(plain), doc) {
		t.Fatalf("AgentSettings: %s %v", plain, err)
	}
	r = w.do("GET", base+"/agents/sales", w.viewTok, nil)
	w.want(r, 200, "")
	if r.body["settings"].(map[string]any)["top_k"] != 3.0 {
		t.Fatalf("get: %s", r.raw)
	}
	// The response a create stores for its Idempotency-Key holds the
	// knowledge too: it is sealed as well, and still replays.
	body := map[string]any{"id": "support", "settings": map[string]any{"knowledge": map[string]any{"faq.md": doc}}}
	r1 := w.do("POST", base+"/agents", w.memberTok, body, "Idempotency-Key", "k-sealed")
	w.want(r1, 201, "")
	rec, err := w.store.GetIdempotency(ctx, w.A.ID, "k-sealed")
	if err != nil || strings.Contains(string(rec.Body), "euros") || len(rec.Body) == 0 {
		t.Fatalf("stored idempotency body %q (%v): want it sealed", rec.Body, err)
	}
	if r2 := w.do("POST", base+"/agents", w.memberTok, body, "Idempotency-Key", "k-sealed"); r2.raw != r1.raw || r2.hdr.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replay %q, want %q", r2.raw, r1.raw)
	}
	// An update that leaves the settings keeps them (sealed anew).
	r = w.do("PATCH", base+"/agents/sales", w.memberTok, map[string]any{"name": "Sales"})
	w.want(r, 200, "")
	if r.body["settings"].(map[string]any)["top_k"] != 3.0 {
		t.Fatalf("patch: %s", r.raw)
	}
	// Sealed under the agent: another agent's row does not open it.
	other := *row
	other.ID = "other"
	if _, err := AgentSettings(ctx, w.kr, &other); err == nil {
		t.Fatal("settings sealed for one agent open as another's")
	}

	// A row written before sealing existed is read, and sealed by its
	// first update.
	legacy := &storage.Agent{ID: "legacy", TenantID: w.A.ID, Name: "Old", Engine: storage.EngineKB,
		Settings: []byte(`{"top_k":4}`), CreatedAt: w.now.UTC(), UpdatedAt: w.now.UTC()}
	if err := w.store.CreateAgent(ctx, legacy); err != nil {
		t.Fatal(err)
	}
	if plain, err := AgentSettings(ctx, nil, legacy); err != nil || string(plain) != `{"top_k":4}` {
		t.Fatalf("legacy AgentSettings: %s %v", plain, err)
	}
	r = w.do("GET", base+"/agents", w.viewTok, nil)
	w.want(r, 200, "")
	found := false
	for _, a := range r.data() {
		if m := a.(map[string]any); m["id"] == "legacy" {
			found = m["settings"].(map[string]any)["top_k"] == 4.0
		}
	}
	if !found {
		t.Fatalf("legacy agent in the list: %s", r.raw)
	}
	w.want(w.do("PATCH", base+"/agents/legacy", w.memberTok, map[string]any{"greeting": "Hi"}), 200, "")
	row, _ = w.store.GetAgent(ctx, w.A.ID, "legacy")
	if len(row.Settings) != 0 || len(row.SettingsSealed) == 0 {
		t.Fatalf("legacy row after update: plaintext %q, sealed %d bytes", row.Settings, len(row.SettingsSealed))
	}
	if plain, err := AgentSettings(ctx, w.kr, row); err != nil || string(plain) != `{"top_k":4}` {
		t.Fatalf("legacy settings sealed: %s %v", plain, err)
	}
	// Clearing the settings stores nothing.
	w.want(w.do("PATCH", base+"/agents/legacy", w.memberTok, map[string]any{"settings": nil}), 200, "")
	w.want(w.do("PATCH", base+"/agents/legacy", w.memberTok, map[string]any{"settings": map[string]any{}}), 200, "")
	row, _ = w.store.GetAgent(ctx, w.A.ID, "legacy")
	if len(row.Settings) != 0 {
		t.Fatalf("cleared: %q", row.Settings)
	}
}

// TestNoKeyring: a server without a keyring (no master key) refuses what
// needs one with 503 and serves the rest.
func TestNoKeyring(t *testing.T) {
	w := newWorld(t, func(o *Options) { o.Keyring = nil })
	base := "/v1/tenants/" + w.A.ID
	w.want(w.do("POST", base+"/agents", w.memberTok, map[string]any{"id": "kb", "settings": map[string]any{"top_k": 2}}), 503, "keyring_unavailable")
	w.want(w.do("POST", base+"/agents", w.memberTok, map[string]any{"id": "plain"}), 201, "")
	w.want(w.do("GET", base+"/conversations/x", w.memberTok, nil), 503, "keyring_unavailable")
	w.want(w.do("GET", base+"/export", w.adminTok, nil), 503, "keyring_unavailable")
	w.want(w.do("DELETE", base+"/end_users/x", w.adminTok, nil), 503, "keyring_unavailable")
	w.want(w.do("GET", base+"/conversations", w.memberTok, nil), 200, "")
	w.want(w.do("GET", base+"/privacy", w.viewTok, nil), 200, "")
	w.want(w.do("GET", base+"/usage", w.viewTok, nil), 200, "")
	if !strings.Contains(w.logs.String(), "no keyring") {
		t.Fatal("a missing keyring is not logged")
	}
}
