package storagetest

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"parley/storage"
)

// RunPrivacy runs the storage.Privacy suite, with the Privacy parts of
// Store (turn audio and usage writes in WriteBatch, what DeleteExpired
// deletes on a Backend). open must return a fresh backend with every
// migration applied (its only tenant is storage.DefaultTenant, and it has
// no conversation, agent or data key) and arrange for it to be closed when
// the test ends. RunPrivacy calls open once per subtest, and the subtests
// run in parallel.
func RunPrivacy(t *testing.T, open func(t *testing.T) storage.Backend) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s storage.Backend)
	}{
		{"DataKeys", testDataKeys},
		{"DataKeyList", testDataKeyList},
		{"DataKeyRewrap", testDataKeyRewrap},
		{"Policy", testPolicy},
		{"PolicyInvalid", testPolicyInvalid},
		{"PolicyShortensRetention", testPolicyShortens},
		{"PolicyLengthensRetention", testPolicyLengthens},
		{"PolicyAudioLoggingOff", testPolicyAudioOff},
		{"TurnAudio", testTurnAudio},
		{"UsageEvents", testUsageEvents},
		{"ListConversations", testListConversations},
		{"DeleteConversations", testDeleteConversations},
		{"DeleteExpiredAudioAndUsage", testDeleteExpiredAudioUsage},
		{"PurgeTenant", testPurgeTenant},
		{"TrainingTenants", testTrainingTenants},
		{"HasData", testHasData},
		{"LegacyPlaintextFresh", testLegacyFresh},
		{"OWASP_API1_BrokenObjectLevelAuthorization", testPrivacyBOLA},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, open(t))
		})
	}
}

const day = 24 * time.Hour

// Fixtures.

func dataKey(tenant, master string) *storage.DataKey {
	return &storage.DataKey{
		TenantID: tenant, MasterKeyID: master,
		// Wrapped keys are binary: a NUL, 0xff, a lone continuation byte.
		Wrapped:   append([]byte{0x00, 0xff, 0x80}, []byte("wrapped:"+tenant+":"+master)...),
		CreatedAt: t0,
	}
}

func policy(tenant string, transcript, metadata int) *storage.Policy {
	return &storage.Policy{
		TenantID: tenant, TranscriptDays: transcript, MetadataDays: metadata,
		AudioLogging: true, AudioDays: 7,
		Redact:    storage.Redaction{Emails: true, Cards: true},
		UpdatedAt: t0,
	}
}

func audio(tr *storage.Turn, created, expires time.Time) *storage.TurnAudio {
	return &storage.TurnAudio{
		TenantID: tr.TenantID, ConversationID: tr.ConversationID, TurnID: tr.ID,
		Format: "audio/ogg", Sealed: sealed("opus frames of " + tr.ID), DurationMS: 1830,
		CreatedAt: created, ExpiresAt: expires,
	}
}

func usage(id string, c *storage.Conversation, at time.Time, durationMS int64) *storage.UsageEvent {
	return &storage.UsageEvent{
		ID: id, TenantID: c.TenantID, ConversationID: c.ID, Channel: c.Channel, Language: c.Language,
		At: at, DurationMS: durationMS, ExpiresAt: at.Add(storage.UsageRetention),
	}
}

// conv creates a conversation of tenant with n turns (item-1..item-n, text
// stored) expiring at expires, and returns it with its turns.
func conv(t *testing.T, s storage.Store, tenant, id, endUser string, n int, expires time.Time) (*storage.Conversation, []*storage.Turn) {
	t.Helper()
	c := conversation(tenant, id, expires)
	c.EndUser = endUser
	mustCreate(t, s, c)
	var turns []*storage.Turn
	for i := 1; i <= n; i++ {
		tr := turn(c, fmt.Sprint("item-", i), i, expires)
		mustAppend(t, s, tr)
		turns = append(turns, tr)
	}
	c.TurnCount = n
	return c, turns
}

// mustWrite runs a batch whose writes must all succeed.
func mustWrite(t *testing.T, s storage.Store, ws ...storage.Write) {
	t.Helper()
	for i, err := range mustBatch(t, s, ws) {
		if err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
}

func mustAudio(t *testing.T, s storage.Backend, tenant, convID string) []storage.TurnAudio {
	t.Helper()
	got, err := s.ListTurnAudio(t.Context(), tenant, convID)
	ok(t, "ListTurnAudio("+tenant+", "+convID+")", err)
	return got
}

func turnIDs(turns []storage.Turn) []string {
	out := []string{}
	for _, tr := range turns {
		out = append(out, tr.ID)
	}
	return out
}

func audioIDs(as []storage.TurnAudio) []string {
	out := []string{}
	for _, a := range as {
		out = append(out, a.TurnID)
	}
	return out
}

// sweep calls DeleteExpired(now) with batches of limit until one comes back
// short and returns what each call deleted.
func sweep(t *testing.T, s storage.Store, now time.Time, limit int) []int {
	t.Helper()
	var got []int
	for range 1000 {
		n, err := s.DeleteExpired(t.Context(), now, limit)
		ok(t, "DeleteExpired", err)
		got = append(got, n)
		if n < limit {
			return got
		}
	}
	t.Fatalf("DeleteExpired never came back short: %v...", got[:10])
	return nil
}

func sum(ns []int) int {
	total := 0
	for _, n := range ns {
		total += n
	}
	return total
}

// allConversations lists a tenant's conversations matching f, with pages
// of limit, checking the paging rules of the accounts lists: a next cursor
// only after a full page, and no empty last page.
func allConversations(t *testing.T, s storage.Backend, tenant string, f storage.ConversationFilter, limit int) []storage.Conversation {
	t.Helper()
	var out []storage.Conversation
	after := ""
	for pages := 1; ; pages++ {
		page, next, err := s.ListConversations(t.Context(), tenant, f, after, limit)
		ok(t, "ListConversations", err)
		out = append(out, page...)
		if next == "" {
			return out
		}
		if len(page) != limit || pages > 1000 {
			t.Fatalf("ListConversations(%s, %+v, limit %d): page %d has %d rows and a next cursor", tenant, f, limit, pages, len(page))
		}
		after = next
	}
}

func conversationIDs(cs []storage.Conversation) []string {
	out := []string{}
	for _, c := range cs {
		out = append(out, c.ID)
	}
	return out
}

// Data keys.

func testDataKeys(t *testing.T, s storage.Backend) {
	ctx := t.Context()
	mustTenant(t, s, newTenant("t1"), "")
	mustTenant(t, s, newTenant("t2"), "")

	_, err := s.GetDataKey(ctx, "t1")
	wantErr(t, "GetDataKey(none yet)", err, storage.ErrNotFound)

	k := dataKey("t1", "master-1")
	k.CreatedAt = t0.Add(123 * time.Microsecond) // below the millisecond
	ok(t, "CreateDataKey", s.CreateDataKey(ctx, k))
	got, err := s.GetDataKey(ctx, "t1")
	ok(t, "GetDataKey", err)
	same(t, "data key", got, *k)

	// Another node won the race: the first key stays.
	wantErr(t, "CreateDataKey(again)", s.CreateDataKey(ctx, dataKey("t1", "master-2")), storage.ErrConflict)
	got, _ = s.GetDataKey(ctx, "t1")
	same(t, "data key after a conflicting create", got, *k)

	// The rules of accounts.go: a record in a tenant that does not exist
	// is ErrNotFound.
	wantErr(t, "CreateDataKey(missing tenant)", s.CreateDataKey(ctx, dataKey("t-ghost", "master-1")), storage.ErrNotFound)

	for name, mutate := range map[string]func(k *storage.DataKey){
		"DataKey.TenantID":    func(k *storage.DataKey) { k.TenantID = "" },
		"DataKey.MasterKeyID": func(k *storage.DataKey) { k.MasterKeyID = "" },
		"DataKey.Wrapped":     func(k *storage.DataKey) { k.Wrapped = nil },
		"DataKey.CreatedAt":   func(k *storage.DataKey) { k.CreatedAt = time.Time{} },
	} {
		bad := dataKey("t2", "master-1")
		mutate(bad)
		err := s.CreateDataKey(ctx, bad)
		if !errors.Is(err, storage.ErrInvalid) || !strings.Contains(err.Error(), name) {
			t.Errorf("CreateDataKey without %s: error = %v, want ErrInvalid naming it", name, err)
		}
	}
	_, err = s.GetDataKey(ctx, "t2")
	wantErr(t, "GetDataKey(t2 after refused creates)", err, storage.ErrNotFound)

	// Crypto-shredding.
	ok(t, "CreateDataKey(t2)", s.CreateDataKey(ctx, dataKey("t2", "master-1")))
	ok(t, "DeleteDataKey", s.DeleteDataKey(ctx, "t1"))
	_, err = s.GetDataKey(ctx, "t1")
	wantErr(t, "GetDataKey(shredded)", err, storage.ErrNotFound)
	wantErr(t, "DeleteDataKey(again)", s.DeleteDataKey(ctx, "t1"), storage.ErrNotFound)
	wantErr(t, "DeleteDataKey(never had one)", s.DeleteDataKey(ctx, storage.DefaultTenant), storage.ErrNotFound)
	got, err = s.GetDataKey(ctx, "t2")
	ok(t, "GetDataKey(t2 after t1's was shredded)", err)
	same(t, "t2's data key", got, *dataKey("t2", "master-1"))
}

func testDataKeyList(t *testing.T, s storage.Backend) {
	ctx := t.Context()
	// Tenant ids not in creation order; one disabled (its key is still
	// rewrapped by a master key rotation).
	tenants := []string{"t-e", "t-a", "t-d", "t-b", "t-c", "t-f", "t-g"}
	for _, tn := range tenants {
		mustTenant(t, s, newTenant(tn), "")
		ok(t, "CreateDataKey", s.CreateDataKey(ctx, dataKey(tn, "master-1")))
	}
	mustTenant(t, s, newTenant("t-0-no-key"), "")
	ok(t, "DisableTenant", s.DisableTenant(ctx, "t-d", t0, time.Time{}))
	want := slices.Clone(tenants)
	slices.Sort(want)

	for _, limit := range []int{1, 2, 3, 6, 7, 10, storage.MaxListLimit + 1} {
		var got []string
		after, pages := "", 0
		for {
			page, next, err := s.ListDataKeys(ctx, after, limit)
			ok(t, fmt.Sprintf("ListDataKeys(limit %d) page %d", limit, pages), err)
			pages++
			for _, k := range page {
				got = append(got, k.TenantID)
				same(t, "listed data key", &k, *dataKey(k.TenantID, "master-1"))
			}
			if next == "" {
				break
			}
			if len(page) != limit || pages > len(want) {
				t.Fatalf("ListDataKeys(limit %d): page %d has %d keys and a next cursor", limit, pages, len(page))
			}
			after = next
		}
		wantPages := max(1, (len(want)+limit-1)/limit)
		if !slices.Equal(got, want) || pages != wantPages {
			t.Errorf("ListDataKeys(limit %d) = %v in %d pages, want %v in %d", limit, got, pages, want, wantPages)
		}
	}
	for _, limit := range []int{0, -1} {
		_, _, err := s.ListDataKeys(ctx, "", limit)
		wantErr(t, fmt.Sprintf("ListDataKeys(limit %d)", limit), err, storage.ErrInvalid)
	}
}

func testDataKeyRewrap(t *testing.T, s storage.Backend) {
	ctx := t.Context()
	mustTenant(t, s, newTenant("t1"), "")
	mustTenant(t, s, newTenant("t2"), "")
	for _, tn := range []string{"t1", "t2"} {
		ok(t, "CreateDataKey", s.CreateDataKey(ctx, dataKey(tn, "master-1")))
	}

	next := dataKey("t1", "master-2")
	ok(t, "RewrapDataKey", s.RewrapDataKey(ctx, next, "master-1"))
	got, err := s.GetDataKey(ctx, "t1")
	ok(t, "GetDataKey", err)
	same(t, "rewrapped key", got, *next)

	// Another node already rewrapped it: the compare-and-swap fails and
	// changes nothing.
	stale := dataKey("t1", "master-3")
	wantErr(t, "RewrapDataKey(old master id no longer matches)", s.RewrapDataKey(ctx, stale, "master-1"), storage.ErrConflict)
	got, _ = s.GetDataKey(ctx, "t1")
	same(t, "key after a lost rewrap race", got, *next)

	wantErr(t, "RewrapDataKey(tenant without key)", s.RewrapDataKey(ctx, dataKey(storage.DefaultTenant, "master-2"), "master-1"), storage.ErrNotFound)
	wantErr(t, "RewrapDataKey(missing tenant)", s.RewrapDataKey(ctx, dataKey("t-ghost", "master-2"), "master-1"), storage.ErrNotFound)

	// Rotating back to a master id used before is a rewrap like any other.
	back := dataKey("t1", "master-1")
	back.Wrapped = append(back.Wrapped, 0x01)
	ok(t, "RewrapDataKey(back)", s.RewrapDataKey(ctx, back, "master-2"))
	got, _ = s.GetDataKey(ctx, "t1")
	same(t, "key rewrapped back", got, *back)

	invalid := dataKey("t1", "")
	err = s.RewrapDataKey(ctx, invalid, "master-1")
	wantErr(t, "RewrapDataKey(no MasterKeyID)", err, storage.ErrInvalid)
	invalid = dataKey("t1", "master-9")
	invalid.Wrapped = nil
	wantErr(t, "RewrapDataKey(no Wrapped)", s.RewrapDataKey(ctx, invalid, "master-1"), storage.ErrInvalid)
	got, _ = s.GetDataKey(ctx, "t1")
	same(t, "key after refused rewraps", got, *back)

	// The other tenant's key was never touched.
	got, _ = s.GetDataKey(ctx, "t2")
	same(t, "t2's key", got, *dataKey("t2", "master-1"))
}

// Policies.

func testPolicy(t *testing.T, s storage.Backend) {
	ctx := t.Context()
	mustTenant(t, s, newTenant("t1"), "")
	mustTenant(t, s, newTenant("t2"), "")

	_, err := s.GetPolicy(ctx, "t1")
	wantErr(t, "GetPolicy(never set)", err, storage.ErrNotFound)
	wantErr(t, "PutPolicy(missing tenant)", s.PutPolicy(ctx, policy("t-ghost", 30, 90), t0), storage.ErrNotFound)
	_, err = s.GetPolicy(ctx, "t-ghost")
	wantErr(t, "GetPolicy(missing tenant)", err, storage.ErrNotFound)

	p := policy("t1", 30, 90)
	p.UpdatedAt = t0.Add(456 * time.Microsecond)
	ok(t, "PutPolicy", s.PutPolicy(ctx, p, t0))
	got, err := s.GetPolicy(ctx, "t1")
	ok(t, "GetPolicy", err)
	same(t, "policy", got, *p)

	// Every field round-trips, each set apart from the others, and the
	// limits are accepted.
	for i, q := range []*storage.Policy{
		{TenantID: "t1", TranscriptDays: 0, MetadataDays: 1, AudioDays: 1, UpdatedAt: t0.Add(time.Hour)},
		{TenantID: "t1", TranscriptDays: storage.MaxRetentionDays, MetadataDays: storage.MaxRetentionDays,
			AudioLogging: true, AudioDays: storage.MaxRetentionDays, TrainingOptIn: true, UpdatedAt: t0.Add(2 * time.Hour)},
		{TenantID: "t1", TranscriptDays: 7, MetadataDays: 8, AudioDays: 9, Redact: storage.Redaction{Emails: true}, UpdatedAt: t0.Add(3 * time.Hour)},
		{TenantID: "t1", TranscriptDays: 7, MetadataDays: 8, AudioDays: 9, Redact: storage.Redaction{Phones: true}, UpdatedAt: t0.Add(3 * time.Hour)},
		{TenantID: "t1", TranscriptDays: 7, MetadataDays: 8, AudioDays: 9, Redact: storage.Redaction{Cards: true}, UpdatedAt: t0.Add(3 * time.Hour)},
		{TenantID: "t1", TranscriptDays: 7, MetadataDays: 8, AudioDays: 9, Redact: storage.Redaction{IBANs: true}, UpdatedAt: t0.Add(3 * time.Hour)},
		{TenantID: "t1", TranscriptDays: 7, MetadataDays: 8, AudioLogging: true, AudioDays: 9, UpdatedAt: t0.Add(3 * time.Hour)},
	} {
		ok(t, fmt.Sprint("PutPolicy ", i), s.PutPolicy(ctx, q, t0))
		got, err := s.GetPolicy(ctx, "t1")
		ok(t, "GetPolicy", err)
		same(t, fmt.Sprint("policy ", i), got, *q)
	}

	// The other tenant still has none.
	_, err = s.GetPolicy(ctx, "t2")
	wantErr(t, "GetPolicy(t2)", err, storage.ErrNotFound)
}

func testPolicyInvalid(t *testing.T, s storage.Backend) {
	ctx := t.Context()
	mustTenant(t, s, newTenant("t1"), "")
	cases := []struct {
		name, field string
		mutate      func(p *storage.Policy)
	}{
		{"no tenant", "Policy.TenantID", func(p *storage.Policy) { p.TenantID = "" }},
		{"no UpdatedAt", "Policy.UpdatedAt", func(p *storage.Policy) { p.UpdatedAt = time.Time{} }},
		{"negative transcript days", "Policy.TranscriptDays", func(p *storage.Policy) { p.TranscriptDays = -1 }},
		{"transcript days too long", "Policy.TranscriptDays", func(p *storage.Policy) {
			p.TranscriptDays, p.MetadataDays = storage.MaxRetentionDays+1, storage.MaxRetentionDays+1
		}},
		{"no metadata days", "Policy.MetadataDays", func(p *storage.Policy) { p.TranscriptDays, p.MetadataDays = 0, 0 }},
		{"metadata days too long", "Policy.MetadataDays", func(p *storage.Policy) { p.MetadataDays = storage.MaxRetentionDays + 1 }},
		{"metadata shorter than transcripts", "Policy.MetadataDays", func(p *storage.Policy) { p.TranscriptDays, p.MetadataDays = 30, 29 }},
		{"no audio days", "Policy.AudioDays", func(p *storage.Policy) { p.AudioDays = 0 }},
		{"audio days too long", "Policy.AudioDays", func(p *storage.Policy) { p.AudioDays = storage.MaxRetentionDays + 1 }},
	}
	for _, tc := range cases {
		p := policy("t1", 30, 90)
		tc.mutate(p)
		err := s.PutPolicy(ctx, p, t0)
		if !errors.Is(err, storage.ErrInvalid) || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("PutPolicy(%s): error = %v, want ErrInvalid naming %s", tc.name, err, tc.field)
		}
	}
	_, err := s.GetPolicy(ctx, "t1")
	wantErr(t, "GetPolicy after refused puts", err, storage.ErrNotFound)
}

// retentionFixture is a tenant's stored rows, as a session writer would
// have written them under a 30/90 day policy with audio kept 30 days, and
// another tenant's rows, which no policy of t1 may touch.
type retentionFixture struct {
	c, other *storage.Conversation
	text     []*storage.Turn // text stored
	meta     *storage.Turn   // metadata only
	audio    []*storage.TurnAudio
}

func newRetentionFixture(t *testing.T, s storage.Backend) *retentionFixture {
	t.Helper()
	for _, tn := range []string{"t1", "t2"} {
		mustTenant(t, s, newTenant(tn), "")
	}
	f := &retentionFixture{}
	f.c = conversation("t1", "conv-1", t0.Add(90*day))
	mustCreate(t, s, f.c)
	for i := 1; i <= 2; i++ {
		tr := turn(f.c, fmt.Sprint("item-", i), i, t0.Add(time.Duration(i)*time.Second).Add(30*day))
		mustAppend(t, s, tr)
		f.text = append(f.text, tr)
		a := audio(tr, tr.StartedAt.Add(time.Second), tr.StartedAt.Add(time.Second).Add(30*day))
		f.audio = append(f.audio, a)
		mustWrite(t, s, storage.Write{Audio: a})
	}
	f.meta = turn(f.c, "item-3", 3, t0.Add(3*time.Second).Add(90*day))
	f.meta.TextSealed, f.meta.TextStored = nil, false
	mustAppend(t, s, f.meta)
	f.c.TurnCount = 3

	f.other, _ = conv(t, s, "t2", "conv-other", "", 1, t0.Add(30*day))
	return f
}

// check compares the expiries the store holds with the fixture's.
func (f *retentionFixture) check(t *testing.T, s storage.Backend) {
	t.Helper()
	checkConversation(t, mustGet(t, s, "t1", f.c.ID), f.c)
	got := mustList(t, s, "t1", f.c.ID)
	want := append(slices.Clone(f.text), f.meta)
	if len(got) != len(want) {
		t.Fatalf("ListTurns = %v, want %d turns", turnIDs(got), len(want))
	}
	for i := range want {
		checkTurn(t, &got[i], want[i])
	}
	gotAudio := mustAudio(t, s, "t1", f.c.ID)
	if len(gotAudio) != len(f.audio) {
		t.Fatalf("ListTurnAudio = %v, want %d", audioIDs(gotAudio), len(f.audio))
	}
	for i := range f.audio {
		same(t, "audio", &gotAudio[i], *f.audio[i])
	}
	// The other tenant's rows keep their expiry.
	other := mustGet(t, s, "t2", f.other.ID)
	checkTime(t, "the other tenant's conversation ExpiresAt", other.ExpiresAt, f.other.ExpiresAt)
	for _, tr := range mustList(t, s, "t2", f.other.ID) {
		checkTime(t, "the other tenant's turn ExpiresAt", tr.ExpiresAt, f.other.ExpiresAt)
	}
}

func testPolicyShortens(t *testing.T, s storage.Backend) {
	ctx := t.Context()
	f := newRetentionFixture(t, s)
	f.check(t, s)

	// Transcripts 7 days, metadata 14, audio 3.
	p := policy("t1", 7, 14)
	p.AudioDays = 3
	now := t0.Add(day)
	ok(t, "PutPolicy", s.PutPolicy(ctx, p, now))
	f.c.ExpiresAt = f.c.StartedAt.Add(14 * day)
	for _, tr := range f.text {
		tr.ExpiresAt = tr.StartedAt.Add(7 * day)
	}
	f.meta.ExpiresAt = f.meta.StartedAt.Add(14 * day)
	for _, a := range f.audio {
		a.ExpiresAt = a.CreatedAt.Add(3 * day)
	}
	f.check(t, s)

	// Between the new expiries and the old ones: what the policy now
	// refuses to keep is deleted.
	deleted := sweep(t, s, t0.Add(8*day), 100)
	if n := sum(deleted); n != 4 {
		t.Errorf("DeleteExpired at day 8 deleted %v, want 4 rows (2 turns with text, 2 audio)", deleted)
	}
	if got := turnIDs(mustList(t, s, "t1", f.c.ID)); !slices.Equal(got, []string{"item-3"}) {
		t.Errorf("turns left at day 8 = %v, want the metadata-only item-3", got)
	}
	if got := mustAudio(t, s, "t1", f.c.ID); len(got) != 0 {
		t.Errorf("audio left at day 8 = %v", audioIDs(got))
	}
	// Day 15: the conversation goes, with the metadata-only turn.
	if n := sum(sweep(t, s, t0.Add(15*day), 100)); n != 2 {
		t.Errorf("DeleteExpired at day 15 deleted %d rows, want 2", n)
	}
	_, err := s.GetConversation(ctx, "t1", f.c.ID)
	wantErr(t, "GetConversation after the sweep", err, storage.ErrNotFound)
	// The other tenant's conversation (30 days) is still there.
	mustGet(t, s, "t2", f.other.ID)
	if n := len(mustList(t, s, "t2", f.other.ID)); n != 1 {
		t.Errorf("the other tenant has %d turns left, want 1", n)
	}
}

func testPolicyLengthens(t *testing.T, s storage.Backend) {
	ctx := t.Context()
	f := newRetentionFixture(t, s)

	p := policy("t1", 60, 180)
	p.AudioDays = 45
	ok(t, "PutPolicy", s.PutPolicy(ctx, p, t0.Add(day)))
	f.c.ExpiresAt = f.c.StartedAt.Add(180 * day)
	for _, tr := range f.text {
		tr.ExpiresAt = tr.StartedAt.Add(60 * day)
	}
	f.meta.ExpiresAt = f.meta.StartedAt.Add(180 * day)
	for _, a := range f.audio {
		a.ExpiresAt = a.CreatedAt.Add(45 * day)
	}
	f.check(t, s)

	// Past the old expiries, before the new ones: t1 keeps everything;
	// only the other tenant's rows (30 days) go.
	if n := sum(sweep(t, s, t0.Add(31*day), 100)); n != 2 {
		t.Errorf("DeleteExpired at day 31 deleted %d rows, want 2 (the other tenant's turn and conversation)", n)
	}
	if n := len(mustList(t, s, "t1", f.c.ID)); n != 3 {
		t.Errorf("t1 has %d turns at day 31, want 3", n)
	}
	if n := len(mustAudio(t, s, "t1", f.c.ID)); n != 2 {
		t.Errorf("t1 has %d audio at day 31, want 2", n)
	}
	_, err := s.GetConversation(ctx, "t2", f.other.ID)
	wantErr(t, "the other tenant's conversation at day 31", err, storage.ErrNotFound)
}

func testPolicyAudioOff(t *testing.T, s storage.Backend) {
	ctx := t.Context()
	f := newRetentionFixture(t, s)

	// Audio logging off: the audio already logged expires now; transcripts
	// and metadata keep the same days (re-derived, so the same instants).
	p := policy("t1", 30, 90)
	p.AudioLogging = false
	now := t0.Add(day + 250*time.Millisecond)
	ok(t, "PutPolicy", s.PutPolicy(ctx, p, now))
	for _, a := range f.audio {
		a.ExpiresAt = now
	}
	f.check(t, s)

	if n := sum(sweep(t, s, now, 100)); n != 2 {
		t.Errorf("DeleteExpired(now) deleted %d rows, want 2 (the audio)", n)
	}
	if got := mustAudio(t, s, "t1", f.c.ID); len(got) != 0 {
		t.Errorf("audio left after logging was turned off: %v", audioIDs(got))
	}
	if n := len(mustList(t, s, "t1", f.c.ID)); n != 3 {
		t.Errorf("t1 has %d turns, want 3: turning audio off deletes audio only", n)
	}
}

// Audio and usage.

func testTurnAudio(t *testing.T, s storage.Backend) {
	ctx := t.Context()
	mustTenant(t, s, newTenant("t1"), "")
	mustTenant(t, s, newTenant("t2"), "")
	c := conversation("t1", "conv-1", t0.Add(time.Hour))
	mustCreate(t, s, c)
	// Turn ids in no order: audio lists by Seq.
	var turns []*storage.Turn
	for i, id := range []string{"item-z", "item-a", "item-m"} {
		tr := turn(c, id, i+1, t0.Add(time.Hour))
		mustAppend(t, s, tr)
		turns = append(turns, tr)
	}
	if got := mustAudio(t, s, "t1", c.ID); len(got) != 0 {
		t.Errorf("ListTurnAudio(no audio yet) = %v", audioIDs(got))
	}

	as := make([]*storage.TurnAudio, len(turns))
	for i, tr := range turns {
		as[i] = audio(tr, tr.EndedAt, t0.Add(time.Hour))
	}
	as[1].Format, as[1].DurationMS = "audio/wav", 0
	dup := audio(turns[2], t0, t0.Add(2*time.Hour))
	dup.Sealed = sealed("another take")
	missing := audio(turns[0], t0, t0.Add(time.Hour))
	missing.ConversationID = "nope"
	otherTenant := audio(turns[0], t0, t0.Add(time.Hour))
	otherTenant.TenantID = "t2"
	noFormat := audio(turns[0], t0, t0.Add(time.Hour))
	noFormat.Format = ""
	noExpiry := audio(turns[0], t0, time.Time{})
	ws := []storage.Write{
		{Audio: as[2]}, {Audio: as[0]}, {Audio: as[1]},
		{Audio: dup},
		{Audio: missing},
		{Audio: otherTenant},
		{Audio: noFormat},
		{Audio: noExpiry},
		{Audio: as[0], Usage: usage("u-1", c, t0, 1)}, // two fields set
	}
	wantBatchErrs(t, mustBatch(t, s, ws), []error{nil, nil, nil, storage.ErrConflict, storage.ErrNotFound,
		storage.ErrNotFound, storage.ErrInvalid, storage.ErrInvalid, storage.ErrInvalid})

	got := mustAudio(t, s, "t1", c.ID)
	if len(got) != 3 {
		t.Fatalf("ListTurnAudio = %v, want 3", audioIDs(got))
	}
	for i := range as {
		same(t, "audio "+as[i].TurnID, &got[i], *as[i]) // Seq order; the duplicate changed nothing
	}
	_, err := s.ListTurnAudio(ctx, "t1", "nope")
	wantErr(t, "ListTurnAudio(missing conversation)", err, storage.ErrNotFound)
	_, err = s.ListTurnAudio(ctx, "t2", c.ID)
	wantErr(t, "ListTurnAudio(other tenant)", err, storage.ErrNotFound)

	// The same turn id in another conversation may have its own audio.
	c2 := conversation("t1", "conv-2", t0.Add(time.Hour))
	z := turn(c2, "item-z", 1, t0.Add(time.Hour))
	mustWrite(t, s, storage.Write{Create: c2}, storage.Write{Turn: z}, storage.Write{Audio: audio(z, t0, t0.Add(time.Hour))})
	if got := audioIDs(mustAudio(t, s, "t1", c2.ID)); !slices.Equal(got, []string{"item-z"}) {
		t.Errorf("ListTurnAudio(conv-2) = %v", got)
	}

	// WriteEach (the test doubles' WriteBatch) refuses what only a
	// Backend can store.
	errs, err := storage.WriteEach(ctx, s, []storage.Write{{Audio: as[0]}, {Usage: usage("u-9", c, t0, 1)}})
	ok(t, "WriteEach", err)
	wantBatchErrs(t, errs, []error{storage.ErrInvalid, storage.ErrInvalid})
}

func testUsageEvents(t *testing.T, s storage.Backend) {
	ctx := t.Context()
	mustTenant(t, s, newTenant("t1"), "")
	mustTenant(t, s, newTenant("t2"), "")
	c1 := conversation("t1", "conv-1", t0.Add(time.Hour))
	c2 := conversation("t1", "conv-2", t0.Add(time.Hour))
	c2.Channel, c2.Language = "webrtc", "en-US"
	c3 := conversation("t2", "conv-3", t0.Add(time.Hour))
	for _, c := range []*storage.Conversation{c1, c2, c3} {
		mustCreate(t, s, c)
	}

	// t0 is 14:09 UTC on 2026-03-14; +01:00 10 hours later is already the
	// 15th there but still the 14th in UTC: days are UTC days.
	day14 := time.Date(2026, 3, 14, 0, 0, 0, 0, time.UTC)
	day15, day16 := day14.Add(day), day14.Add(2*day)
	late := time.Date(2026, 3, 15, 0, 30, 0, 0, time.FixedZone("UTC+1", 3600))
	noLanguage := usage("u-5", c1, day15.Add(time.Hour), 40)
	noLanguage.Language = ""
	negative := usage("u-8", c1, t0, -1)
	noAt := usage("u-9", c1, time.Time{}, 1)
	noAt.ExpiresAt = t0
	ws := []storage.Write{
		{Usage: usage("u-1", c1, t0, 1000)},
		{Usage: usage("u-2", c1, late, 500)},
		{Usage: usage("u-3", c2, t0, 7000)},
		{Usage: usage("u-4", c1, day15, 250)}, // midnight exactly: the 15th
		{Usage: noLanguage},
		{Usage: usage("u-6", c1, day16, 1)},
		{Usage: usage("u-1", c1, t0, 999999)}, // duplicate: not counted twice
		{Usage: usage("u-7", c3, t0, 123)},    // the other tenant
		{Usage: negative},
		{Usage: noAt},
	}
	wantBatchErrs(t, mustBatch(t, s, ws), []error{nil, nil, nil, nil, nil, nil, storage.ErrConflict, nil,
		storage.ErrInvalid, storage.ErrInvalid})
	// The same duplicate in a batch of its own.
	wantBatchErrs(t, mustBatch(t, s, []storage.Write{{Usage: usage("u-3", c2, t0, 1)}}), []error{storage.ErrConflict})

	want := []storage.UsageDay{
		{TenantID: "t1", Day: day14, Channel: "websocket", Language: "fr-CA", Conversations: 2, DurationMS: 1500},
		{TenantID: "t1", Day: day14, Channel: "webrtc", Language: "en-US", Conversations: 1, DurationMS: 7000},
		{TenantID: "t1", Day: day15, Channel: "websocket", Language: "", Conversations: 1, DurationMS: 40},
		{TenantID: "t1", Day: day15, Channel: "websocket", Language: "fr-CA", Conversations: 1, DurationMS: 250},
	}
	// (Day, Channel, Language) order: "webrtc" < "websocket".
	want[0], want[1] = want[1], want[0]
	check := func(what string, from, to time.Time, want []storage.UsageDay) {
		t.Helper()
		got, err := s.ListUsageDays(ctx, "t1", from, to)
		ok(t, what, err)
		if len(got) != len(want) {
			t.Errorf("%s = %+v\nwant %+v", what, got, want)
			return
		}
		for i := range want {
			same(t, what, &got[i], want[i])
		}
	}
	check("ListUsageDays(14th-16th)", day14, day16, want)
	check("ListUsageDays(14th only)", day14, day15, want[:2])
	check("ListUsageDays(from mid-14th)", day14.Add(time.Hour), day16, want[2:]) // from <= Day
	check("ListUsageDays(all)", day14.Add(-365*day), day16.Add(day), append(slices.Clone(want),
		storage.UsageDay{TenantID: "t1", Day: day16, Channel: "websocket", Language: "fr-CA", Conversations: 1, DurationMS: 1}))
	check("ListUsageDays(empty range)", day15, day15, nil)
	check("ListUsageDays(before anything)", day14.Add(-30*day), day14, nil)

	got, err := s.ListUsageDays(ctx, "t2", day14, day16)
	ok(t, "ListUsageDays(t2)", err)
	if len(got) != 1 || got[0].Conversations != 1 || got[0].DurationMS != 123 {
		t.Errorf("ListUsageDays(t2) = %+v", got)
	}
	got, err = s.ListUsageDays(ctx, "t-ghost", day14, day16)
	if err != nil && !errors.Is(err, storage.ErrNotFound) || len(got) != 0 {
		t.Errorf("ListUsageDays(missing tenant) = %+v, %v; want nothing", got, err)
	}

	// Rollups hold no conversation: deleting the conversations keeps them.
	if _, err := s.DeleteConversations(ctx, "t1", storage.ConversationFilter{}); err != nil {
		t.Fatalf("DeleteConversations: %v", err)
	}
	check("ListUsageDays after deleting the conversations", day14, day16, want)
}

// Listing and deleting conversations.

func testListConversations(t *testing.T, s storage.Backend) {
	ctx := t.Context()
	for _, tn := range []string{"t1", "t2"} {
		mustTenant(t, s, newTenant(tn), "")
	}
	// Ids not in creation order; end users eu_1 (3), eu_2 (1), none (3).
	endUsers := map[string]string{"c-g": "eu_1", "c-c": "eu_2", "c-e": "eu_1", "c-a": "", "c-f": "", "c-b": "eu_1", "c-d": ""}
	var created []*storage.Conversation
	for _, id := range []string{"c-g", "c-c", "c-e", "c-a", "c-f", "c-b", "c-d"} {
		c, _ := conv(t, s, "t1", id, endUsers[id], 1, t0.Add(time.Hour))
		created = append(created, c)
	}
	// The other tenant has the same pseudonyms (conversation ids are
	// unique among all tenants).
	for _, id := range []string{"c-h", "c-i"} {
		conv(t, s, "t2", id, "eu_1", 0, t0.Add(time.Hour))
	}

	byID := map[string]*storage.Conversation{}
	for _, c := range created {
		byID[c.ID] = c
	}
	cases := []struct {
		f    storage.ConversationFilter
		want []string
	}{
		{storage.ConversationFilter{}, []string{"c-a", "c-b", "c-c", "c-d", "c-e", "c-f", "c-g"}},
		{storage.ConversationFilter{EndUser: "eu_1"}, []string{"c-b", "c-e", "c-g"}},
		{storage.ConversationFilter{EndUser: "eu_2"}, []string{"c-c"}},
		{storage.ConversationFilter{EndUser: "eu_3"}, nil},
		{storage.ConversationFilter{ID: "c-e"}, []string{"c-e"}},
		{storage.ConversationFilter{ID: "c-h"}, nil}, // t2's
		{storage.ConversationFilter{ID: "nope"}, nil},
	}
	for _, tc := range cases {
		for _, limit := range []int{1, 2, 3, 7, 10, storage.MaxListLimit + 1} {
			got := allConversations(t, s, "t1", tc.f, limit)
			if ids := conversationIDs(got); !slices.Equal(ids, append([]string{}, tc.want...)) {
				t.Errorf("ListConversations(t1, %+v, limit %d) = %v, want %v", tc.f, limit, ids, tc.want)
				continue
			}
			for i := range got {
				checkConversation(t, &got[i], byID[got[i].ID])
			}
		}
	}
	for _, limit := range []int{0, -1} {
		_, _, err := s.ListConversations(ctx, "t1", storage.ConversationFilter{}, "", limit)
		wantErr(t, fmt.Sprintf("ListConversations(limit %d)", limit), err, storage.ErrInvalid)
	}
	// A cursor of t2's list positions t1's and shows nothing of t2.
	_, next, err := s.ListConversations(ctx, "t2", storage.ConversationFilter{}, "", 1)
	ok(t, "ListConversations(t2)", err)
	page, _, err := s.ListConversations(ctx, "t1", storage.ConversationFilter{}, next, 100)
	ok(t, "ListConversations(t1, after t2's cursor)", err)
	for _, c := range page {
		if c.TenantID != "t1" {
			t.Errorf("ListConversations(t1) shows %+v", c)
		}
	}
	if got := conversationIDs(allConversations(t, s, "t-ghost", storage.ConversationFilter{}, 10)); len(got) != 0 {
		t.Errorf("ListConversations(missing tenant) = %v", got)
	}
}

// deletionFixture writes, for tenant, conversations with 2 turns each
// (item-1 with audio), and one usage event each.
func deletionFixture(t *testing.T, s storage.Backend, tenant string, endUsers map[string]string) {
	t.Helper()
	for id, eu := range endUsers {
		c, turns := conv(t, s, tenant, id, eu, 2, t0.Add(time.Hour))
		mustWrite(t, s,
			storage.Write{Audio: audio(turns[0], t0, t0.Add(time.Hour))},
			storage.Write{Usage: usage("usage-"+id, c, t0, 1000)})
	}
}

func testDeleteConversations(t *testing.T, s storage.Backend) {
	ctx := t.Context()
	for _, tn := range []string{"t1", "t2"} {
		mustTenant(t, s, newTenant(tn), "")
	}
	endUsers := map[string]string{"c-1": "eu_1", "c-2": "eu_1", "c-3": "eu_2", "c-4": "", "c-5": ""}
	deletionFixture(t, s, "t1", endUsers)
	other := map[string]string{}
	for id, eu := range endUsers {
		other["t2-"+id] = eu // the same pseudonyms
	}
	deletionFixture(t, s, "t2", other)
	day14 := time.Date(2026, 3, 14, 0, 0, 0, 0, time.UTC)
	rollups := func(tenant string) []storage.UsageDay {
		got, err := s.ListUsageDays(ctx, tenant, day14, day14.Add(day))
		ok(t, "ListUsageDays", err)
		return got
	}
	rollupsBefore := rollups("t1")

	del := func(f storage.ConversationFilter, want storage.Deleted) {
		t.Helper()
		got, err := s.DeleteConversations(ctx, "t1", f)
		ok(t, fmt.Sprintf("DeleteConversations(%+v)", f), err)
		if got != want {
			t.Errorf("DeleteConversations(%+v) = %+v, want %+v", f, got, want)
		}
	}
	gone := func(id string) {
		t.Helper()
		_, err := s.GetConversation(ctx, "t1", id)
		wantErr(t, "GetConversation("+id+")", err, storage.ErrNotFound)
		_, err = s.ListTurns(ctx, "t1", id)
		wantErr(t, "ListTurns("+id+")", err, storage.ErrNotFound)
		_, err = s.ListTurnAudio(ctx, "t1", id)
		wantErr(t, "ListTurnAudio("+id+")", err, storage.ErrNotFound)
	}
	kept := func(id string) {
		t.Helper()
		mustGet(t, s, "t1", id)
		if n := len(mustList(t, s, "t1", id)); n != 2 {
			t.Errorf("%s has %d turns, want 2", id, n)
		}
		if n := len(mustAudio(t, s, "t1", id)); n != 1 {
			t.Errorf("%s has %d audio, want 1", id, n)
		}
	}

	// Ephemeral keys minted for end users: the erased one's go with them.
	keyFor := func(n int, tenant, endUser string) *storage.EphemeralKey {
		k := ephemeralKey(fmt.Sprintf("ek_del_%d", n), 900+n, byte(0x40+n), t0.Add(time.Hour))
		k.TenantID, k.EndUser = tenant, endUser
		mustCreateEphemeralKey(t, s, k)
		return k
	}
	erasedKey, otherUserKey, otherTenantKey := keyFor(1, "t1", "eu_1"), keyFor(2, "t1", "eu_2"), keyFor(3, "t2", "eu_1")

	// The right to erasure of one end user.
	del(storage.ConversationFilter{EndUser: "eu_1"}, storage.Deleted{Conversations: 2, Turns: 4, Audio: 2, UsageEvents: 2})
	consumeErr(t, s, "the erased end user's key", erasedKey.Prefix, erasedKey.Hash, t0, storage.ErrNotFound)
	mustConsume(t, s, otherUserKey, t0)
	mustConsume(t, s, otherTenantKey, t0)
	gone("c-1")
	gone("c-2")
	if got := allConversations(t, s, "t1", storage.ConversationFilter{EndUser: "eu_1"}, 10); len(got) != 0 {
		t.Errorf("ListConversations(eu_1) after deletion = %v", conversationIDs(got))
	}
	for _, id := range []string{"c-3", "c-4", "c-5"} {
		kept(id)
	}
	del(storage.ConversationFilter{EndUser: "eu_1"}, storage.Deleted{}) // nothing left: no error

	// One conversation.
	del(storage.ConversationFilter{ID: "c-3"}, storage.Deleted{Conversations: 1, Turns: 2, Audio: 1, UsageEvents: 1})
	gone("c-3")
	kept("c-4")
	del(storage.ConversationFilter{ID: "c-3"}, storage.Deleted{})
	del(storage.ConversationFilter{ID: "nope"}, storage.Deleted{})

	del(storage.ConversationFilter{EndUser: "eu_none"}, storage.Deleted{})

	// The whole tenant.
	del(storage.ConversationFilter{}, storage.Deleted{Conversations: 2, Turns: 4, Audio: 2, UsageEvents: 2})
	gone("c-4")
	gone("c-5")
	if got := allConversations(t, s, "t1", storage.ConversationFilter{}, 10); len(got) != 0 {
		t.Errorf("ListConversations(t1) after deleting all = %v", conversationIDs(got))
	}
	del(storage.ConversationFilter{}, storage.Deleted{})

	// Rollups stay; the other tenant is untouched, its usage events
	// included (they are deleted with their conversations).
	if got := rollups("t1"); !reflect.DeepEqual(got, rollupsBefore) {
		t.Errorf("rollups after deletion = %+v, want %+v", got, rollupsBefore)
	}
	if got := conversationIDs(allConversations(t, s, "t2", storage.ConversationFilter{}, 10)); len(got) != 5 {
		t.Errorf("t2's conversations = %v, want all 5", got)
	}
	got, err := s.DeleteConversations(ctx, "t2", storage.ConversationFilter{})
	ok(t, "DeleteConversations(t2)", err)
	if want := (storage.Deleted{Conversations: 5, Turns: 10, Audio: 5, UsageEvents: 5}); got != want {
		t.Errorf("DeleteConversations(t2) = %+v, want %+v", got, want)
	}
}

func testDeleteExpiredAudioUsage(t *testing.T, s storage.Backend) {
	now := t0
	mustTenant(t, s, newTenant("t1"), "")
	// live: unexpired, with an expired audio (counted) and a fresh one.
	live, lt := conv(t, s, "t1", "live", "", 2, now.Add(time.Hour))
	// dead: expired; its unexpired turn and audio go with it, uncounted.
	dead := conversation("t1", "dead", now.Add(-time.Hour))
	mustCreate(t, s, dead)
	dt := turn(dead, "item-1", 1, now.Add(time.Hour))
	mustAppend(t, s, dt)
	mustWrite(t, s,
		storage.Write{Audio: audio(lt[0], now.Add(-day), now.Add(-time.Minute))},
		storage.Write{Audio: audio(lt[1], now.Add(-day), now.Add(time.Millisecond))},
		storage.Write{Audio: audio(dt, now.Add(-day), now.Add(time.Hour))},
	)
	uOld := usage("u-old", live, now.Add(-storage.UsageRetention), 1) // expires at now exactly
	uNew := usage("u-new", live, now, 1)
	uNew.ExpiresAt = now.Add(time.Millisecond)
	uDead := usage("u-dead", dead, now, 1)
	uDead.ExpiresAt = now.Add(30 * time.Minute) // outlives its conversation
	mustWrite(t, s, storage.Write{Usage: uOld}, storage.Write{Usage: uNew}, storage.Write{Usage: uDead})

	if n := sum(sweep(t, s, now.Add(-2*time.Hour), 100)); n != 0 {
		t.Errorf("DeleteExpired before anything expired deleted %d rows", n)
	}
	// The conversation dead, live's first audio, u-old; one per call.
	if got := sweep(t, s, now, 1); fmt.Sprint(got) != "[1 1 1 0]" {
		t.Errorf("DeleteExpired(now, 1) batches = %v, want [1 1 1 0]", got)
	}
	if got := audioIDs(mustAudio(t, s, "t1", live.ID)); !slices.Equal(got, []string{"item-2"}) {
		t.Errorf("live's audio = %v, want item-2", got)
	}
	if n := len(mustList(t, s, "t1", live.ID)); n != 2 {
		t.Errorf("live has %d turns, want 2", n)
	}
	_, err := s.ListTurnAudio(t.Context(), "t1", dead.ID)
	wantErr(t, "ListTurnAudio(expired conversation)", err, storage.ErrNotFound)

	// Half an hour later: live's second audio, u-new and u-dead, which
	// were kept until their own expiry.
	if n := sum(sweep(t, s, now.Add(30*time.Minute), 100)); n != 3 {
		t.Errorf("DeleteExpired(now+30m) deleted %d rows, want 3 (an audio, 2 usage events)", n)
	}
	if n := len(mustAudio(t, s, "t1", live.ID)); n != 0 {
		t.Errorf("live has %d audio, want 0", n)
	}
	// The rollups stay.
	got, err := s.ListUsageDays(t.Context(), "t1", now.Add(-2*storage.UsageRetention), now.Add(day))
	ok(t, "ListUsageDays", err)
	total := 0
	for _, d := range got {
		total += d.Conversations
	}
	if total != 3 {
		t.Errorf("rollups count %d conversations after the sweep, want 3", total)
	}
}

// Tenant purge.

func testPurgeTenant(t *testing.T, s storage.Backend) {
	ctx := t.Context()
	const gone, keep = "t-gone", "t-keep"
	purgeAt := t0.Add(storage.TenantPurgeDelay)
	mustUser(t, s, newUser("u-gone"))
	mustUser(t, s, newUser("u-keep"))

	type rows struct {
		key   *storage.Key
		ek    *storage.EphemeralKey
		inv   *storage.Invitation
		agent *storage.Agent
		idem  *storage.IdempotencyRecord
		conv  *storage.Conversation
	}
	all := map[string]*rows{}
	for i, tn := range []string{gone, keep} {
		r := &rows{}
		all[tn] = r
		mustTenant(t, s, newTenant(tn), "u"+tn[1:])
		ok(t, "CreateDataKey", s.CreateDataKey(ctx, dataKey(tn, "master-1")))
		ok(t, "PutPolicy", s.PutPolicy(ctx, policy(tn, 30, 90), t0))
		r.key = newSecretKey("key-"+tn, tn, 10+i, storage.ScopeRealtime)
		ok(t, "CreateKey", s.CreateKey(ctx, r.key))
		r.ek = ephemeralKey("ek-"+tn, 20+i, byte(20+i), purgeAt.Add(time.Hour))
		r.ek.TenantID = tn
		ok(t, "CreateEphemeralKey", s.CreateEphemeralKey(ctx, r.ek))
		r.inv = newInvitation("inv-"+tn, tn, 30+i, storage.RoleMember)
		r.inv.ExpiresAt = purgeAt.Add(time.Hour)
		ok(t, "CreateInvitation", s.CreateInvitation(ctx, r.inv))
		r.agent = newAgent(tn, "agent")
		ok(t, "CreateAgent", s.CreateAgent(ctx, r.agent))
		ok(t, "PutSettings", s.PutSettings(ctx, &storage.Setting{TenantID: tn, Settings: []byte(`{}`), UpdatedAt: t0}))
		ok(t, "AppendAPICalls", s.AppendAPICalls(ctx, []storage.APICall{newAPICall("call-"+tn, tn, t0)}))
		ok(t, "AppendAudit", s.AppendAudit(ctx, newAudit("audit-"+tn, tn, t0)))
		r.idem = newIdempotency(tn, "idem")
		r.idem.ExpiresAt = purgeAt.Add(time.Hour)
		ok(t, "PutIdempotency", s.PutIdempotency(ctx, r.idem))
		// Conversations kept long after the purge date.
		for j := range 3 {
			c, turns := conv(t, s, tn, fmt.Sprint(tn, "-conv-", j), "eu_1", 3, purgeAt.Add(90*day))
			mustWrite(t, s,
				storage.Write{Audio: audio(turns[0], t0, purgeAt.Add(90*day))},
				storage.Write{Usage: usage("usage-"+c.ID, c, t0, 1000)})
			r.conv = c
		}
	}
	// Other tenants that are not due: deleted later, disabled only.
	for _, tn := range []string{"t-later", "t-disabled"} {
		mustTenant(t, s, newTenant(tn), "")
	}

	if got, err := s.TenantsDueForPurge(ctx, purgeAt); err != nil || len(got) != 0 {
		t.Errorf("TenantsDueForPurge(no tenant deleted) = %v, %v", got, err)
	}
	ok(t, "DisableTenant(gone)", s.DisableTenant(ctx, gone, t0, purgeAt))
	ok(t, "DisableTenant(later)", s.DisableTenant(ctx, "t-later", t0.Add(day), purgeAt.Add(day)))
	ok(t, "DisableTenant(disabled)", s.DisableTenant(ctx, "t-disabled", t0, time.Time{}))
	for _, tc := range []struct {
		now  time.Time
		want []string
	}{
		{purgeAt.Add(-time.Millisecond), nil},
		{purgeAt, []string{gone}}, // PurgeAfter <= now
		{purgeAt.Add(day), []string{"t-gone", "t-later"}},
	} {
		got, err := s.TenantsDueForPurge(ctx, tc.now)
		ok(t, "TenantsDueForPurge", err)
		slices.Sort(got)
		if !slices.Equal(got, append([]string{}, tc.want...)) {
			t.Errorf("TenantsDueForPurge(%v) = %v, want %v", tc.now, got, tc.want)
		}
	}
	// A re-enabled tenant's purge is cancelled.
	ok(t, "EnableTenant(later)", s.EnableTenant(ctx, "t-later"))
	if got, err := s.TenantsDueForPurge(ctx, purgeAt.Add(day)); err != nil || !slices.Equal(got, []string{gone}) {
		t.Errorf("TenantsDueForPurge after EnableTenant = %v, %v; want [%s]", got, err, gone)
	}

	now := purgeAt.Add(time.Minute)
	ok(t, "PurgeTenant", s.PurgeTenant(ctx, gone, now))
	// Idempotent: a node that lost the race purges again.
	ok(t, "PurgeTenant(again)", s.PurgeTenant(ctx, gone, now))
	wantErr(t, "PurgeTenant(never existed)", s.PurgeTenant(ctx, "t-never", now), storage.ErrNotFound)

	if got, err := s.TenantsDueForPurge(ctx, now.Add(day)); err != nil || len(got) != 0 {
		t.Errorf("TenantsDueForPurge after the purge = %v, %v", got, err)
	}
	// The data key first, then every account row.
	g := all[gone]
	notFound := func(what string, err error) {
		t.Helper()
		wantErr(t, what+" of the purged tenant", err, storage.ErrNotFound)
	}
	_, err := s.GetDataKey(ctx, gone)
	notFound("GetDataKey", err)
	_, err = s.GetTenant(ctx, gone)
	notFound("GetTenant", err)
	_, err = s.GetPolicy(ctx, gone)
	notFound("GetPolicy", err)
	_, err = s.GetKey(ctx, gone, g.key.ID)
	notFound("GetKey", err)
	_, err = s.GetAgent(ctx, gone, g.agent.ID)
	notFound("GetAgent", err)
	_, err = s.GetSettings(ctx, gone)
	notFound("GetSettings", err)
	_, err = s.GetIdempotency(ctx, gone, g.idem.Key)
	notFound("GetIdempotency", err)
	_, err = s.InvitationByPrefix(ctx, g.inv.Prefix)
	notFound("InvitationByPrefix", err)
	_, err = s.GetMembership(ctx, gone, "u-gone")
	notFound("GetMembership", err)
	consumeErr(t, s, "ephemeral key of the purged tenant", g.ek.Prefix, g.ek.Hash, t0, storage.ErrNotFound)
	if keys, err := s.KeysByPrefix(ctx, g.key.Prefix); err != nil || len(keys) != 0 {
		t.Errorf("KeysByPrefix(purged tenant's key) = %v, %v", keys, err)
	}
	emptyOrNotFound := func(what string, n int, err error) {
		t.Helper()
		if err != nil && !errors.Is(err, storage.ErrNotFound) || n != 0 {
			t.Errorf("%s of the purged tenant: %d rows, %v", what, n, err)
		}
	}
	calls, _, err := s.ListAPICalls(ctx, gone, "", 100)
	emptyOrNotFound("ListAPICalls", len(calls), err)
	audits, _, err := s.ListAudit(ctx, gone, "", 100)
	emptyOrNotFound("ListAudit", len(audits), err)
	members, _, err := s.ListMembers(ctx, gone, "", 100)
	emptyOrNotFound("ListMembers", len(members), err)
	days, err := s.ListUsageDays(ctx, gone, t0.Add(-day), t0.Add(day))
	emptyOrNotFound("ListUsageDays", len(days), err)
	tenants, _, err := s.ListTenants(ctx, "u-gone", "", 100)
	emptyOrNotFound("ListTenants(its owner)", len(tenants), err)
	// Users are not tenant data.
	if _, err := s.GetUser(ctx, "u-gone"); err != nil {
		t.Errorf("GetUser(the purged tenant's owner): %v", err)
	}

	// Its conversations expire now and go in sweeper batches.
	if got := conversationIDs(allConversations(t, s, gone, storage.ConversationFilter{}, 10)); len(got) != 3 {
		t.Errorf("conversations of the purged tenant before the sweep = %v, want 3 (the sweeper deletes them)", got)
	}
	for _, c := range allConversations(t, s, gone, storage.ConversationFilter{}, 10) {
		checkTime(t, "ExpiresAt of a purged tenant's conversation", c.ExpiresAt, now)
	}
	deleted := sweep(t, s, now, 4)
	// 9 turns, 3 conversations, 3 usage events; the audio goes with the
	// turns' conversations (uncounted) or on its own (counted), so 15 or 18.
	if n := sum(deleted); n != 15 && n != 18 {
		t.Errorf("sweep after the purge deleted %v = %d rows, want 15 (+3 audio)", deleted, n)
	}
	if got := conversationIDs(allConversations(t, s, gone, storage.ConversationFilter{}, 10)); len(got) != 0 {
		t.Errorf("conversations of the purged tenant after the sweep = %v", got)
	}
	_, err = s.GetConversation(ctx, gone, g.conv.ID)
	notFound("GetConversation after the sweep", err)
	// Purging a tenant that is gone for good is still no error, or
	// ErrNotFound: it has no rows left.
	if err := s.PurgeTenant(ctx, gone, now); err != nil && !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("PurgeTenant(after the sweep) = %v, want nil or ErrNotFound", err)
	}

	// The other tenant is untouched.
	k := all[keep]
	got, err := s.GetDataKey(ctx, keep)
	ok(t, "GetDataKey(keep)", err)
	same(t, "kept data key", got, *dataKey(keep, "master-1"))
	for what, err := range map[string]error{
		"GetTenant":      func() error { _, err := s.GetTenant(ctx, keep); return err }(),
		"GetPolicy":      func() error { _, err := s.GetPolicy(ctx, keep); return err }(),
		"GetKey":         func() error { _, err := s.GetKey(ctx, keep, k.key.ID); return err }(),
		"GetAgent":       func() error { _, err := s.GetAgent(ctx, keep, k.agent.ID); return err }(),
		"GetSettings":    func() error { _, err := s.GetSettings(ctx, keep); return err }(),
		"GetIdempotency": func() error { _, err := s.GetIdempotency(ctx, keep, k.idem.Key); return err }(),
		"Invitation":     func() error { _, err := s.InvitationByPrefix(ctx, k.inv.Prefix); return err }(),
		"GetMembership":  func() error { _, err := s.GetMembership(ctx, keep, "u-keep"); return err }(),
	} {
		if err != nil {
			t.Errorf("%s of the other tenant after the purge: %v", what, err)
		}
	}
	mustConsume(t, s, k.ek, t0)
	if calls, _, err := s.ListAPICalls(ctx, keep, "", 100); err != nil || len(calls) != 1 {
		t.Errorf("ListAPICalls(keep) = %v, %v", calls, err)
	}
	if n := len(allConversations(t, s, keep, storage.ConversationFilter{}, 10)); n != 3 {
		t.Errorf("the other tenant has %d conversations, want 3", n)
	}
	c := mustGet(t, s, keep, k.conv.ID)
	checkTime(t, "the other tenant's ExpiresAt", c.ExpiresAt, purgeAt.Add(90*day))
	if n := len(mustList(t, s, keep, k.conv.ID)); n != 3 {
		t.Errorf("the other tenant's conversation has %d turns, want 3", n)
	}
	if n := len(mustAudio(t, s, keep, k.conv.ID)); n != 1 {
		t.Errorf("the other tenant's conversation has %d audio, want 1", n)
	}
	if days, err := s.ListUsageDays(ctx, keep, t0.Add(-day), t0.Add(day)); err != nil || len(days) != 1 || days[0].Conversations != 3 {
		t.Errorf("the other tenant's rollups = %+v, %v", days, err)
	}
	// The tenants not due are there, the disabled one still disabled.
	for _, tn := range []string{"t-later", "t-disabled"} {
		if _, err := s.GetTenant(ctx, tn); err != nil {
			t.Errorf("GetTenant(%s): %v", tn, err)
		}
	}
}

func testTrainingTenants(t *testing.T, s storage.Backend) {
	ctx := t.Context()
	if got, err := s.TrainingTenants(ctx); err != nil || len(got) != 0 {
		t.Errorf("TrainingTenants(fresh store) = %v, %v; want none", got, err)
	}
	optIn := func(tn string, in bool) {
		p := policy(tn, 30, 90)
		p.TrainingOptIn = in
		ok(t, "PutPolicy", s.PutPolicy(ctx, p, t0))
	}
	for _, tn := range []string{"t-in-2", "t-in-1", "t-out", "t-no-policy", "t-in-disabled", "t-revoked"} {
		mustTenant(t, s, newTenant(tn), "")
	}
	optIn("t-in-2", true)
	optIn("t-in-1", true)
	optIn("t-out", false)
	optIn("t-in-disabled", true)
	ok(t, "DisableTenant", s.DisableTenant(ctx, "t-in-disabled", t0, time.Time{}))
	optIn("t-revoked", true)
	optIn("t-revoked", false) // revocable

	got, err := s.TrainingTenants(ctx)
	ok(t, "TrainingTenants", err)
	if want := []string{"t-in-1", "t-in-2"}; !slices.Equal(got, want) {
		t.Errorf("TrainingTenants = %v, want %v", got, want)
	}
	ok(t, "EnableTenant", s.EnableTenant(ctx, "t-in-disabled"))
	got, err = s.TrainingTenants(ctx)
	ok(t, "TrainingTenants", err)
	if want := []string{"t-in-1", "t-in-2", "t-in-disabled"}; !slices.Equal(got, want) {
		t.Errorf("TrainingTenants after re-enabling = %v, want %v", got, want)
	}
}

func testHasData(t *testing.T, s storage.Backend) {
	ctx := t.Context()
	has := func(what string, want bool) {
		t.Helper()
		got, err := s.HasData(ctx)
		ok(t, "HasData", err)
		if got != want {
			t.Errorf("HasData(%s) = %v, want %v", what, got, want)
		}
	}
	has("fresh store", false)
	// Accounts without conversations, agents or data keys are no data to
	// lose.
	mustTenant(t, s, newTenant("t1"), "")
	mustUser(t, s, newUser("u1"))
	ok(t, "CreateKey", s.CreateKey(ctx, newSecretKey("key-1", "t1", 1, storage.ScopeRealtime)))
	ok(t, "PutPolicy", s.PutPolicy(ctx, policy("t1", 30, 90), t0))
	has("accounts only", false)

	ok(t, "CreateDataKey", s.CreateDataKey(ctx, dataKey("t1", "master-1")))
	has("a data key", true)
	ok(t, "DeleteDataKey", s.DeleteDataKey(ctx, "t1"))
	has("after shredding", false)

	ok(t, "CreateAgent", s.CreateAgent(ctx, newAgent("t1", "agent")))
	has("an agent", true)
	ok(t, "DeleteAgent", s.DeleteAgent(ctx, "t1", "agent"))
	has("after deleting the agent", false)

	mustCreate(t, s, conversation("t1", "conv-1", t0.Add(time.Hour)))
	has("a conversation", true)
}

func testLegacyFresh(t *testing.T, s storage.Backend) {
	ctx := t.Context()
	rows, err := s.LegacyPlaintext(ctx, 100)
	if err != nil || len(rows) != 0 {
		t.Errorf("LegacyPlaintext(fresh store) = %+v, %v; want none", rows, err)
	}
	// What this version writes is never legacy: sealed text and settings,
	// metadata-only turns, empty truncations.
	mustTenant(t, s, newTenant("t1"), "")
	c, turns := conv(t, s, "t1", "conv-1", "", 2, t0.Add(time.Hour))
	meta := turn(c, "item-3", 3, t0.Add(time.Hour))
	meta.TextSealed, meta.TextStored = nil, false
	mustAppend(t, s, meta)
	ok(t, "TruncateTurnText", s.TruncateTurnText(ctx, "t1", c.ID, turns[1].ID, nil))
	ok(t, "CreateAgent", s.CreateAgent(ctx, newAgent("t1", "agent")))
	bare := newAgent("t1", "bare")
	bare.SettingsSealed = nil
	ok(t, "CreateAgent(no settings)", s.CreateAgent(ctx, bare))
	rows, err = s.LegacyPlaintext(ctx, 100)
	if err != nil || len(rows) != 0 {
		t.Errorf("LegacyPlaintext(new rows only) = %+v, %v; want none", rows, err)
	}

	// ReplaceLegacy of a row that is not legacy (or not there) is
	// ErrNotFound and changes nothing.
	for _, row := range []storage.LegacyRow{
		{Kind: storage.LegacyTurn, TenantID: "t1", ConversationID: c.ID, ID: "item-9", Plaintext: []byte("x")},
		{Kind: storage.LegacyTurn, TenantID: "t1", ConversationID: "nope", ID: "item-1", Plaintext: []byte("x")},
		{Kind: storage.LegacyAgent, TenantID: "t1", ID: "ghost", Plaintext: []byte("{}")},
	} {
		wantErr(t, fmt.Sprintf("ReplaceLegacy(%+v)", row), s.ReplaceLegacy(ctx, row, sealed("x")), storage.ErrNotFound)
	}
}

// testPrivacyBOLA is testBOLA for storage.Privacy: acting as tenant A,
// every tenant-scoped method is called with the ids of tenant B's objects
// and must answer ErrNotFound (or nothing), exactly as for ids that do not
// exist, without reading or changing B's data. A method added to
// storage.Privacy fails this test until it is given a case here, or a
// reason why it has no object of another tenant to reach.
func testPrivacyBOLA(t *testing.T, s storage.Backend) {
	ctx := t.Context()
	const A, B = "tenant-a", "tenant-b"
	for _, tn := range []string{A, B} {
		mustTenant(t, s, newTenant(tn), "")
		ok(t, "CreateDataKey", s.CreateDataKey(ctx, dataKey(tn, "master-1")))
		ok(t, "PutPolicy", s.PutPolicy(ctx, policy(tn, 30, 90), t0))
		ok(t, "CreateAgent", s.CreateAgent(ctx, newAgent(tn, "agent-"+tn[len(tn)-1:])))
	}
	// Both tenants use the pseudonyms eu_1 and eu_2.
	convA, _ := conv(t, s, A, "conv-a", "eu_1", 1, t0.Add(time.Hour))
	convB, turnsB := conv(t, s, B, "conv-b", "eu_1", 2, t0.Add(90*day))
	sharedA, _ := conv(t, s, A, "conv-a2", "eu_2", 1, t0.Add(time.Hour))
	sharedB, _ := conv(t, s, B, "conv-b2", "eu_2", 1, t0.Add(90*day))
	audioB := audio(turnsB[0], t0, t0.Add(90*day))
	mustWrite(t, s, storage.Write{Audio: audioB}, storage.Write{Usage: usage("usage-b", convB, t0, 4242)})
	mustWrite(t, s, storage.Write{Usage: usage("usage-a", convA, t0, 1)})
	agentB, err := s.GetAgent(ctx, B, "agent-b")
	ok(t, "GetAgent(B)", err)
	keyB, err := s.GetDataKey(ctx, B)
	ok(t, "GetDataKey(B)", err)
	day14 := time.Date(2026, 3, 14, 0, 0, 0, 0, time.UTC)

	intruder := audio(turnsB[1], t0, t0.Add(time.Hour))
	intruder.TenantID = A
	cases := []struct {
		method string
		call   func() error
	}{
		{"ListTurnAudio", func() error { _, err := s.ListTurnAudio(ctx, A, convB.ID); return err }},
		{"ReplaceLegacy", func() error {
			return s.ReplaceLegacy(ctx, storage.LegacyRow{Kind: storage.LegacyTurn, TenantID: A, ConversationID: convB.ID,
				ID: turnsB[0].ID, Plaintext: []byte("Bonjour")}, sealed("overwritten"))
		}},
		{"ReplaceLegacy", func() error {
			return s.ReplaceLegacy(ctx, storage.LegacyRow{Kind: storage.LegacyAgent, TenantID: A, ID: agentB.ID,
				Plaintext: []byte("{}")}, sealed("overwritten"))
		}},
		{"WriteBatch(Audio)", func() error {
			errs, err := s.WriteBatch(ctx, []storage.Write{{Audio: intruder}})
			return errors.Join(append(errs, err)...)
		}},
	}
	covered := map[string]string{}
	for _, tc := range cases {
		covered[tc.method] = "case"
		wantErr(t, tc.method+"(tenant A, an id of tenant B)", tc.call(), storage.ErrNotFound)
	}

	// Lists and deletions as A never reach B's rows.
	for _, f := range []storage.ConversationFilter{{ID: convB.ID}, {EndUser: "eu_1"}, {EndUser: "eu_2"}, {}} {
		for _, c := range allConversations(t, s, A, f, 10) {
			if c.TenantID != A || c.ID == convB.ID {
				t.Errorf("ListConversations(A, %+v) shows %+v", f, c)
			}
		}
	}
	covered["ListConversations"] = "list"
	days, err := s.ListUsageDays(ctx, A, day14, day14.Add(day))
	ok(t, "ListUsageDays(A)", err)
	if len(days) != 1 || days[0].TenantID != A || days[0].DurationMS != 1 {
		t.Errorf("ListUsageDays(A) = %+v: want A's one rollup", days)
	}
	covered["ListUsageDays"] = "list"

	if got, err := s.DeleteConversations(ctx, A, storage.ConversationFilter{ID: convB.ID}); err != nil || got != (storage.Deleted{}) {
		t.Errorf("DeleteConversations(A, B's id) = %+v, %v; want nothing deleted", got, err)
	}
	if got, err := s.DeleteConversations(ctx, A, storage.ConversationFilter{EndUser: "eu_2"}); err != nil || got.Conversations != 1 {
		t.Errorf("DeleteConversations(A, eu_2) = %+v, %v; want A's one", got, err)
	}
	if got, err := s.DeleteConversations(ctx, A, storage.ConversationFilter{EndUser: "eu_1"}); err != nil || got.Conversations != 1 {
		t.Errorf("DeleteConversations(A, eu_1) = %+v, %v; want A's one", got, err)
	}
	covered["DeleteConversations"] = "case"
	_, err = s.GetConversation(ctx, A, sharedA.ID)
	wantErr(t, "A's eu_2 conversation after its deletion", err, storage.ErrNotFound)

	// A's policy re-derives A's rows only.
	short := policy(A, 1, 1)
	short.AudioLogging = false
	ok(t, "PutPolicy(A)", s.PutPolicy(ctx, short, t0.Add(time.Hour)))
	covered["PutPolicy"] = "case"
	// A's purge touches none of B's rows.
	ok(t, "DisableTenant(A)", s.DisableTenant(ctx, A, t0, t0))
	ok(t, "PurgeTenant(A)", s.PurgeTenant(ctx, A, t0.Add(time.Hour)))
	covered["PurgeTenant"] = "case"
	sweep(t, s, t0.Add(2*time.Hour), 100)

	// B's data is as it was.
	for _, c := range []*storage.Conversation{convB, sharedB} {
		checkConversation(t, mustGet(t, s, B, c.ID), c)
	}
	gotTurns := mustList(t, s, B, convB.ID)
	if len(gotTurns) != 2 {
		t.Fatalf("B's turns = %v", turnIDs(gotTurns))
	}
	for i := range turnsB {
		checkTurn(t, &gotTurns[i], turnsB[i])
	}
	gotAudio := mustAudio(t, s, B, convB.ID)
	if len(gotAudio) != 1 {
		t.Fatalf("B's audio = %v", audioIDs(gotAudio))
	}
	same(t, "B's audio", &gotAudio[0], *audioB)
	gotAgent, err := s.GetAgent(ctx, B, agentB.ID)
	ok(t, "GetAgent(B)", err)
	same(t, "B's agent", gotAgent, *agentB)
	gotKey, err := s.GetDataKey(ctx, B)
	ok(t, "GetDataKey(B)", err)
	same(t, "B's data key", gotKey, *keyB)
	gotPolicy, err := s.GetPolicy(ctx, B)
	ok(t, "GetPolicy(B)", err)
	same(t, "B's policy", gotPolicy, *policy(B, 30, 90))
	days, err = s.ListUsageDays(ctx, B, day14, day14.Add(day))
	ok(t, "ListUsageDays(B)", err)
	if len(days) != 1 || days[0].DurationMS != 4242 {
		t.Errorf("B's rollups = %+v", days)
	}
	// The methods with no object of another tenant to reach, and why.
	for _, m := range []string{"CreateDataKey", "GetDataKey", "RewrapDataKey", "DeleteDataKey", "GetPolicy"} {
		covered[m] = "addressed by the tenant id alone: the caller passes its own (B's key and policy are checked intact)"
	}
	covered["ListDataKeys"] = "the master key rotation's walk over every tenant; never answers a tenant's caller"
	for _, m := range []string{"TenantsDueForPurge", "TrainingTenants", "HasData", "LegacyPlaintext"} {
		covered[m] = "an installation-wide job's query; never answers a tenant's caller"
	}
	privacy := reflect.TypeFor[storage.Privacy]()
	for i := range privacy.NumMethod() {
		if name := privacy.Method(i).Name; covered[name] == "" {
			t.Errorf("Privacy.%s is not covered by the OWASP API1 test: add a case, or a reason it reaches no other tenant's object", name)
		}
	}
}
