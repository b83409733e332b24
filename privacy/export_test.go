package privacy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"parley/privacy"
	"parley/storage"
	"parley/storage/seal"
	"parley/storage/sqlite"
)

// The tests run on the real SQLite backend and a real keyring: what is
// exported is what parleyd stores.

// t0 is when the test conversations started: a day ago, so that the
// tenants' data keys (created now, on the first Seal) are younger than
// every row.
var t0 = time.Now().UTC().Add(-24 * time.Hour).Truncate(time.Millisecond)

type env struct {
	st  *sqlite.Store
	kr  *seal.Keyring
	now time.Time
}

func newEnv(t *testing.T) *env {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "parley.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	mk, err := seal.NewMasterKey("test")
	if err != nil {
		t.Fatal(err)
	}
	kr, err := seal.NewKeyring(st, []seal.MasterKey{mk}, seal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return &env{st: st, kr: kr, now: time.Now().UTC()}
}

func (e *env) tenant(t *testing.T, id string) {
	t.Helper()
	if err := e.st.CreateTenant(t.Context(), &storage.Tenant{ID: id, Name: "Tenant " + id, Plan: storage.PlanTeam, CreatedAt: t0.Add(-time.Hour)}, ""); err != nil {
		t.Fatalf("CreateTenant(%s): %v", id, err)
	}
}

func (e *env) pseudonym(t *testing.T, tenant, endUser string) string {
	t.Helper()
	p, err := e.kr.Pseudonym(t.Context(), tenant, endUser)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func (e *env) seal(t *testing.T, tenant string, plaintext, aad []byte) []byte {
	t.Helper()
	s, err := e.kr.Seal(t.Context(), tenant, plaintext, aad)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// conv describes a conversation to store.
type conv struct {
	tenant, id string
	endUser    string   // raw identifier, pseudonymised when stored
	texts      []string // one turn each, user and assistant alternating; "" is a metadata-only turn
	audio      map[int][]byte
	usage      bool // store a usage event with its end
	started    time.Time
	expires    time.Time
}

// write stores c (conversation, turns, audio, end, usage) in one batch,
// sealing the texts and audio with the keyring as the session writer does.
func (e *env) write(t *testing.T, c conv) *storage.Conversation {
	t.Helper()
	ws := e.writes(t, c)
	errs, err := e.st.WriteBatch(t.Context(), ws)
	if err != nil {
		t.Fatalf("WriteBatch: %v", err)
	}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("WriteBatch %s write %d: %v", c.id, i, err)
		}
	}
	return ws[0].Create
}

func (e *env) writes(t *testing.T, c conv) []storage.Write {
	t.Helper()
	if c.started.IsZero() {
		c.started = t0
	}
	if c.expires.IsZero() {
		c.expires = e.now.Add(365 * 24 * time.Hour)
	}
	sc := &storage.Conversation{
		ID: c.id, TenantID: c.tenant, AgentID: "assistant", Channel: "websocket", Language: "en-US",
		StartedAt: c.started, EndUser: e.pseudonym(t, c.tenant, c.endUser), ExpiresAt: c.expires,
	}
	ws := []storage.Write{{Create: sc}}
	at := c.started
	for i, text := range c.texts {
		role := storage.RoleUser
		if i%2 == 1 {
			role = storage.RoleAssistant
		}
		item := fmt.Sprintf("item-%s-%d", c.id, i+1)
		tr := &storage.Turn{
			ID: item, ConversationID: c.id, TenantID: c.tenant, Seq: i + 1, Role: role,
			Sentiment: 0.5, Status: storage.TurnCompleted,
			StartedAt: at, EndedAt: at.Add(time.Second), ExpiresAt: c.expires,
		}
		if text != "" {
			tr.TextStored = true
			tr.TextSealed = e.seal(t, c.tenant, []byte(text), seal.TurnAAD(c.tenant, c.id, item))
		}
		ws = append(ws, storage.Write{Turn: tr})
		if a, ok := c.audio[i]; ok {
			ws = append(ws, storage.Write{Audio: &storage.TurnAudio{
				TenantID: c.tenant, ConversationID: c.id, TurnID: item, Format: "audio/ogg",
				Sealed: e.seal(t, c.tenant, a, seal.AudioAAD(c.tenant, c.id, item)), DurationMS: 1200,
				CreatedAt: at, ExpiresAt: c.expires,
			}})
		}
		at = at.Add(2 * time.Second)
	}
	ws = append(ws, storage.Write{End: &storage.EndWrite{TenantID: c.tenant, ID: c.id, At: at, Language: "en-US", Sentiment: 0.5}})
	if c.usage {
		ws = append(ws, storage.Write{Usage: &storage.UsageEvent{
			ID: "use-" + c.id, TenantID: c.tenant, ConversationID: c.id, Channel: "websocket", Language: "en-US",
			At: at, DurationMS: at.Sub(c.started).Milliseconds(), ExpiresAt: e.now.Add(storage.UsageRetention),
		}})
	}
	return ws
}

// The export document, decoded strictly: a field the format does not
// define fails the test.
type exportDoc struct {
	Format        string            `json:"format"`
	TenantID      string            `json:"tenant_id"`
	ExportedAt    time.Time         `json:"exported_at"`
	Scope         map[string]string `json:"scope"`
	Conversations []exportConv      `json:"conversations"`
	UsageDays     *[]exportDay      `json:"usage_days"`
}

type exportConv struct {
	ID         string        `json:"id"`
	AgentID    string        `json:"agent_id"`
	Channel    string        `json:"channel"`
	Language   string        `json:"language"`
	Sentiment  float64       `json:"sentiment"`
	EndUser    string        `json:"end_user"`
	StartedAt  *time.Time    `json:"started_at"`
	EndedAt    *time.Time    `json:"ended_at"`
	DurationMS int64         `json:"duration_ms"`
	TurnCount  int           `json:"turn_count"`
	ExpiresAt  *time.Time    `json:"expires_at"`
	Turns      []exportTurn  `json:"turns"`
	Audio      []exportAudio `json:"audio"`
}

type exportTurn struct {
	ID         string     `json:"id"`
	Seq        int        `json:"seq"`
	Role       string     `json:"role"`
	Status     string     `json:"status"`
	Text       *string    `json:"text"`
	Unreadable bool       `json:"unreadable"`
	Sentiment  float64    `json:"sentiment"`
	StartedAt  *time.Time `json:"started_at"`
	EndedAt    *time.Time `json:"ended_at"`
	ExpiresAt  *time.Time `json:"expires_at"`
}

type exportAudio struct {
	TurnID     string     `json:"turn_id"`
	Format     string     `json:"format"`
	DurationMS int64      `json:"duration_ms"`
	Data       []byte     `json:"data"`
	Unreadable bool       `json:"unreadable"`
	ExpiresAt  *time.Time `json:"expires_at"`
}

type exportDay struct {
	Day           string `json:"day"`
	Channel       string `json:"channel"`
	Language      string `json:"language"`
	Conversations int    `json:"conversations"`
	DurationMS    int64  `json:"duration_ms"`
}

func decodeExport(t *testing.T, data []byte) exportDoc {
	t.Helper()
	if !json.Valid(data) {
		t.Fatalf("export is not valid JSON:\n%s", data)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var doc exportDoc
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("decoding the export: %v\n%s", err, data)
	}
	if dec.More() {
		t.Fatalf("more than one JSON value in the export")
	}
	return doc
}

func (e *env) export(t *testing.T, tenant string, f storage.ConversationFilter) (exportDoc, privacy.ExportStats, []byte) {
	t.Helper()
	var buf bytes.Buffer
	stats, err := privacy.Export(t.Context(), &buf, e.st, e.kr, tenant, f, e.now)
	if err != nil {
		t.Fatalf("Export(%s, %+v): %v", tenant, f, err)
	}
	return decodeExport(t, buf.Bytes()), stats, buf.Bytes()
}

func ids(cs []exportConv) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.ID)
	}
	return out
}

func TestExportScopes(t *testing.T) {
	e := newEnv(t)
	e.tenant(t, "acme")
	e.tenant(t, "globex")
	voice := []byte("OggS\x00\x02 not really audio \xff\x00")
	e.write(t, conv{tenant: "acme", id: "c1", endUser: "alice@example.com", texts: []string{"Hello, I'm Alice.", "Hi Alice, how can I help?"},
		audio: map[int][]byte{0: voice}, usage: true})
	e.write(t, conv{tenant: "acme", id: "c2", endUser: "alice@example.com", texts: []string{"Me again.", "Welcome back."}, usage: true,
		started: t0.Add(-24 * time.Hour)})
	e.write(t, conv{tenant: "acme", id: "c3", endUser: "bob", texts: []string{"Bob here.", ""}, usage: true})
	e.write(t, conv{tenant: "globex", id: "g1", endUser: "alice@example.com", texts: []string{"Globex secret", "Globex answer"}, usage: true})
	alice := e.pseudonym(t, "acme", "alice@example.com")

	t.Run("tenant", func(t *testing.T) {
		doc, stats, raw := e.export(t, "acme", storage.ConversationFilter{})
		if doc.Format != "parley.export.v1" || doc.TenantID != "acme" || len(doc.Scope) != 0 || !doc.ExportedAt.Equal(e.now.Truncate(time.Millisecond)) {
			t.Errorf("header: format %q tenant %q scope %v exported_at %v", doc.Format, doc.TenantID, doc.Scope, doc.ExportedAt)
		}
		if got := ids(doc.Conversations); !slices.Equal(got, []string{"c1", "c2", "c3"}) {
			t.Fatalf("conversations %v, want c1 c2 c3", got)
		}
		if stats != (privacy.ExportStats{Conversations: 3, Turns: 6, Audio: 1}) {
			t.Errorf("stats %+v", stats)
		}
		if bytes.Contains(raw, []byte("Globex")) || bytes.Contains(raw, []byte("g1")) {
			t.Errorf("another tenant's data in the export:\n%s", raw)
		}
		c1 := doc.Conversations[0]
		if c1.EndUser != alice || c1.AgentID != "assistant" || c1.Channel != "websocket" || c1.Language != "en-US" ||
			c1.TurnCount != 2 || c1.DurationMS != 4000 || c1.StartedAt == nil || !c1.StartedAt.Equal(t0) || c1.EndedAt == nil || c1.ExpiresAt == nil {
			t.Errorf("c1 metadata %+v", c1)
		}
		if strings.Contains(string(raw), "alice@example.com") {
			t.Error("the raw end-user identifier is in the export (only its pseudonym is stored)")
		}
		if len(c1.Turns) != 2 || *c1.Turns[0].Text != "Hello, I'm Alice." || *c1.Turns[1].Text != "Hi Alice, how can I help?" ||
			c1.Turns[0].Role != storage.RoleUser || c1.Turns[1].Role != storage.RoleAssistant || c1.Turns[0].Seq != 1 ||
			c1.Turns[0].ID != "item-c1-1" || c1.Turns[0].Status != storage.TurnCompleted || c1.Turns[0].Sentiment != 0.5 {
			t.Errorf("c1 turns %+v", c1.Turns)
		}
		if len(c1.Audio) != 1 || c1.Audio[0].TurnID != "item-c1-1" || c1.Audio[0].Format != "audio/ogg" ||
			!bytes.Equal(c1.Audio[0].Data, voice) || c1.Audio[0].DurationMS != 1200 || c1.Audio[0].Unreadable {
			t.Errorf("c1 audio %+v", c1.Audio)
		}
		if doc.UsageDays == nil {
			t.Fatal("no usage_days in a whole-tenant export")
		}
		total := 0
		for _, d := range *doc.UsageDays {
			if _, err := time.Parse(time.DateOnly, d.Day); err != nil || d.Channel != "websocket" || d.Language != "en-US" {
				t.Errorf("usage day %+v", d)
			}
			total += d.Conversations
		}
		if total != 3 || len(*doc.UsageDays) != 2 {
			t.Errorf("usage days %+v: want 3 conversations over 2 days", *doc.UsageDays)
		}
	})

	t.Run("conversation", func(t *testing.T) {
		doc, stats, raw := e.export(t, "acme", storage.ConversationFilter{ID: "c2"})
		if got := ids(doc.Conversations); !slices.Equal(got, []string{"c2"}) {
			t.Fatalf("conversations %v, want c2", got)
		}
		if doc.Scope["conversation_id"] != "c2" || len(doc.Scope) != 1 {
			t.Errorf("scope %v", doc.Scope)
		}
		if doc.UsageDays != nil || bytes.Contains(raw, []byte("usage_days")) {
			t.Error("usage_days in a conversation export")
		}
		if stats != (privacy.ExportStats{Conversations: 1, Turns: 2}) {
			t.Errorf("stats %+v", stats)
		}
		// Another tenant's conversation id exports nothing.
		doc, stats, _ = e.export(t, "acme", storage.ConversationFilter{ID: "g1"})
		if len(doc.Conversations) != 0 || stats != (privacy.ExportStats{}) {
			t.Errorf("acme export of globex's g1: %v %+v", ids(doc.Conversations), stats)
		}
	})

	t.Run("end user", func(t *testing.T) {
		doc, stats, _ := e.export(t, "acme", storage.ConversationFilter{EndUser: alice})
		if got := ids(doc.Conversations); !slices.Equal(got, []string{"c1", "c2"}) {
			t.Fatalf("conversations %v, want c1 c2", got)
		}
		if doc.Scope["end_user"] != alice || len(doc.Scope) != 1 || doc.UsageDays != nil {
			t.Errorf("scope %v, usage days %v", doc.Scope, doc.UsageDays)
		}
		if stats != (privacy.ExportStats{Conversations: 2, Turns: 4, Audio: 1}) {
			t.Errorf("stats %+v", stats)
		}
		// The same person at globex has another pseudonym: not matched.
		doc, _, _ = e.export(t, "globex", storage.ConversationFilter{EndUser: alice})
		if len(doc.Conversations) != 0 {
			t.Errorf("acme's pseudonym matched at globex: %v", ids(doc.Conversations))
		}
	})

	t.Run("empty tenant", func(t *testing.T) {
		e.tenant(t, "initech")
		doc, _, raw := e.export(t, "initech", storage.ConversationFilter{})
		if doc.Conversations == nil || len(doc.Conversations) != 0 || doc.UsageDays == nil || len(*doc.UsageDays) != 0 {
			t.Errorf("empty tenant export %s", raw)
		}
	})
}

// TestExportMetadataOnlyTurn: a turn stored without text exports "text":
// null, and is not marked unreadable.
func TestExportMetadataOnlyTurn(t *testing.T) {
	e := newEnv(t)
	e.tenant(t, "acme")
	e.write(t, conv{tenant: "acme", id: "c1", texts: []string{"kept", ""}})
	_, _, raw := e.export(t, "acme", storage.ConversationFilter{})
	var doc struct {
		Conversations []struct {
			Turns []map[string]any `json:"turns"`
		} `json:"conversations"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	turns := doc.Conversations[0].Turns
	if turns[0]["text"] != "kept" {
		t.Errorf("stored text: %v", turns[0])
	}
	text, present := turns[1]["text"]
	if !present || text != nil {
		t.Errorf("metadata-only turn: text %v (present %v), want null", text, present)
	}
	if _, marked := turns[1]["unreadable"]; marked {
		t.Errorf("metadata-only turn marked unreadable: %v", turns[1])
	}
}

// TestExportShredded: once the tenant's key is shredded its texts and
// audio export as null with "unreadable": true, and the export succeeds;
// that stays true after the tenant got a new data key. A value that does
// not open for another reason fails the export.
func TestExportShredded(t *testing.T) {
	e := newEnv(t)
	e.tenant(t, "acme")
	e.tenant(t, "globex")
	e.write(t, conv{tenant: "acme", id: "c1", texts: []string{"secret question", "", "secret answer"}, audio: map[int][]byte{0: []byte("voice")}})
	e.write(t, conv{tenant: "globex", id: "g1", texts: []string{"globex text"}})
	if err := e.kr.Shred(t.Context(), "acme"); err != nil {
		t.Fatal(err)
	}
	check := func(t *testing.T, doc exportDoc, raw []byte) {
		t.Helper()
		c1 := doc.Conversations[0]
		for i, tr := range c1.Turns {
			if tr.Text != nil || tr.Unreadable != (i != 1) {
				t.Errorf("turn %d: text %v unreadable %v", i+1, tr.Text, tr.Unreadable)
			}
		}
		if len(c1.Audio) != 1 || c1.Audio[0].Data != nil || !c1.Audio[0].Unreadable {
			t.Errorf("audio %+v", c1.Audio)
		}
		if bytes.Contains(raw, []byte("secret")) {
			t.Error("shredded text in the export")
		}
	}
	doc, stats, raw := e.export(t, "acme", storage.ConversationFilter{})
	check(t, doc, raw)
	if stats != (privacy.ExportStats{Conversations: 1, Turns: 3, Audio: 1}) {
		t.Errorf("stats %+v", stats)
	}
	// Another tenant is untouched.
	if doc, _, _ := e.export(t, "globex", storage.ConversationFilter{}); *doc.Conversations[0].Turns[0].Text != "globex text" {
		t.Errorf("globex after acme's shred: %+v", doc.Conversations[0].Turns[0])
	}

	// The tenant goes on: its next conversation gets a new data key. The
	// old rows name the shredded key: still unreadable, not an error.
	e.write(t, conv{tenant: "acme", id: "c2", texts: []string{"new text"}, started: time.Now().UTC().Add(time.Minute)})
	doc, _, raw = e.export(t, "acme", storage.ConversationFilter{})
	check(t, doc, raw)
	if c2 := doc.Conversations[1]; c2.Turns[0].Text == nil || *c2.Turns[0].Text != "new text" {
		t.Errorf("text sealed under the new key: %+v", c2.Turns[0])
	}

	// A value sealed under the current key for another row is corrupt: the
	// export fails with seal.ErrCorrupt.
	bad := e.writes(t, conv{tenant: "acme", id: "c3", texts: []string{"x"}, started: time.Now().UTC().Add(2 * time.Minute)})
	bad[1].Turn.TextSealed = e.seal(t, "acme", []byte("moved"), seal.TurnAAD("acme", "c2", "item-c2-1")) // another row's
	if _, err := e.st.WriteBatch(t.Context(), bad); err != nil {
		t.Fatal(err)
	}
	_, err := privacy.Export(t.Context(), io.Discard, e.st, e.kr, "acme", storage.ConversationFilter{}, e.now)
	if !errors.Is(err, seal.ErrCorrupt) {
		t.Errorf("export with a corrupt turn: %v, want seal.ErrCorrupt", err)
	}
}

// countingBackend records how much of the export was written when each
// page of conversations was read.
type countingBackend struct {
	storage.Backend
	w             *countingWriter
	writtenAtList []int64
}

func (b *countingBackend) ListConversations(ctx context.Context, tenantID string, f storage.ConversationFilter, after string, limit int) ([]storage.Conversation, string, error) {
	b.writtenAtList = append(b.writtenAtList, b.w.n)
	return b.Backend.ListConversations(ctx, tenantID, f, after, limit)
}

type countingWriter struct {
	n, writes, maxWrite int64
	maxHeap             uint64
	sampleEvery         int64
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	w.writes++
	w.maxWrite = max(w.maxWrite, int64(len(p)))
	if w.sampleEvery > 0 && w.writes%w.sampleEvery == 0 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		w.maxHeap = max(w.maxHeap, ms.HeapAlloc)
	}
	return len(p), nil
}

// TestExportStreams: a tenant with 2,000 conversations is exported page
// by page, the output written as it goes, in bounded writes, and the live
// heap stays well below the size of the document.
func TestExportStreams(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 2,000 conversations")
	}
	e := newEnv(t)
	e.tenant(t, "big")
	const n = 2000
	text := strings.Repeat("All work and no play makes Jack a dull boy. ", 25) // ~1 KB
	var ws []storage.Write
	for i := range n {
		ws = append(ws, e.writes(t, conv{tenant: "big", id: fmt.Sprintf("c%05d", i), texts: []string{text, text}})...)
		if len(ws) >= 500 || i == n-1 {
			errs, err := e.st.WriteBatch(t.Context(), ws)
			if err != nil {
				t.Fatal(err)
			}
			for _, err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			ws = ws[:0]
		}
	}

	w := &countingWriter{sampleEvery: 8}
	b := &countingBackend{Backend: e.st, w: w}
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	stats, err := privacy.Export(t.Context(), w, b, e.kr, "big", storage.ConversationFilter{}, e.now)
	if err != nil {
		t.Fatal(err)
	}
	if stats.Conversations != n || stats.Turns != 2*n {
		t.Fatalf("stats %+v", stats)
	}
	t.Logf("%d bytes in %d writes (largest %d), %d pages, heap %d → max %d",
		w.n, w.writes, w.maxWrite, len(b.writtenAtList), before.HeapAlloc, w.maxHeap)
	if w.n < 4<<20 {
		t.Fatalf("export is only %d bytes", w.n)
	}
	// Paged: at least n/1000 pages (1000 is storage.MaxListLimit), and the
	// last page was read after much of the document had been written.
	pages := len(b.writtenAtList)
	if pages < n/storage.MaxListLimit+1 {
		t.Errorf("%d pages for %d conversations", pages, n)
	}
	if last := b.writtenAtList[pages-1]; last < w.n/2 {
		t.Errorf("only %d of %d bytes were written when the last page was read", last, w.n)
	}
	// Written as it goes, in bounded pieces.
	if w.maxWrite > 256<<10 || w.writes < w.n/(256<<10) {
		t.Errorf("%d writes, the largest %d bytes: not streamed", w.writes, w.maxWrite)
	}
	// Loosely: the live heap never held anything like the whole document.
	if w.maxHeap > before.HeapAlloc && w.maxHeap-before.HeapAlloc > uint64(w.n)/2 {
		t.Errorf("live heap grew by %d bytes for a %d-byte export", w.maxHeap-before.HeapAlloc, w.n)
	}
}

// TestExportWriteError: an error of w aborts the export and is returned.
func TestExportWriteError(t *testing.T) {
	e := newEnv(t)
	e.tenant(t, "acme")
	for i := range 50 {
		e.write(t, conv{tenant: "acme", id: fmt.Sprint("c", i), texts: []string{strings.Repeat("x", 4096)}})
	}
	boom := errors.New("client went away")
	_, err := privacy.Export(t.Context(), failingWriter{boom}, e.st, e.kr, "acme", storage.ConversationFilter{}, e.now)
	if !errors.Is(err, boom) {
		t.Errorf("Export = %v, want the writer's error", err)
	}
}

type failingWriter struct{ err error }

func (w failingWriter) Write([]byte) (int, error) { return 0, w.err }

// trainingLine is a line of the training export, decoded strictly: no
// field beyond these (no end user, no timestamp) may appear.
type trainingLine struct {
	Tenant       string `json:"tenant"`
	Conversation string `json:"conversation"`
	AgentID      string `json:"agent_id"`
	Language     string `json:"language"`
	Day          string `json:"day"`
	Turns        []struct {
		Role string `json:"role"`
		Text string `json:"text"`
	} `json:"turns"`
}

func (e *env) training(t *testing.T) ([]trainingLine, privacy.TrainingStats, string) {
	t.Helper()
	var buf bytes.Buffer
	stats, err := privacy.ExportTraining(t.Context(), &buf, e.st, e.kr, e.now)
	if err != nil {
		t.Fatalf("ExportTraining: %v", err)
	}
	var lines []trainingLine
	for line := range strings.Lines(buf.String()) {
		dec := json.NewDecoder(strings.NewReader(line))
		dec.DisallowUnknownFields()
		var l trainingLine
		if err := dec.Decode(&l); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		lines = append(lines, l)
	}
	return lines, stats, buf.String()
}

var (
	emailRE = regexp.MustCompile(`[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}`)
	// Seven or more digits, possibly separated by spaces, dots, dashes
	// or parentheses: a phone number.
	phoneRE = regexp.MustCompile(`\+?\d(?:[\s().-]*\d){6,}`)
)

func TestExportTraining(t *testing.T) {
	e := newEnv(t)
	policy := func(tenant string, optIn bool) {
		t.Helper()
		p := &storage.Policy{TenantID: tenant, TranscriptDays: 90, MetadataDays: 365, AudioDays: 30,
			TrainingOptIn: optIn, UpdatedAt: e.now}
		if err := e.st.PutPolicy(t.Context(), p, e.now); err != nil {
			t.Fatalf("PutPolicy(%s): %v", tenant, err)
		}
	}
	const (
		optedIn  = "tenant-optin-7f3a"
		never    = "tenant-never-91bc"
		revoked  = "tenant-revoked-c2d4"
		disabled = "tenant-disabled-5e6f"
	)
	pii := []string{
		"Hi, I'm Jane, write to jane.doe+orders@example.com please.",
		"Sure. Can I call you on +1 (415) 555-0134?",
		"Or my office: 020 7946 0958, or mobile 06 12 34 56 78.",
		"Noted, Jane.",
	}
	for _, tenant := range []string{optedIn, never, revoked, disabled} {
		e.tenant(t, tenant)
		e.write(t, conv{tenant: tenant, id: "conv-" + tenant + "-1", endUser: "enduser-" + tenant, texts: pii})
		e.write(t, conv{tenant: tenant, id: "conv-" + tenant + "-2", endUser: "enduser-" + tenant, texts: []string{"Metadata", ""}})
		// Metadata only: skipped.
		e.write(t, conv{tenant: tenant, id: "conv-" + tenant + "-3", texts: []string{"", ""}})
		// Expired, not swept yet: skipped.
		e.write(t, conv{tenant: tenant, id: "conv-" + tenant + "-4", texts: []string{"expired"},
			started: t0.Add(-400 * 24 * time.Hour), expires: e.now.Add(-time.Hour)})
	}
	policy(optedIn, true)
	policy(never, false)
	policy(revoked, true)
	policy(disabled, true)
	if err := e.st.DisableTenant(t.Context(), disabled, e.now, time.Time{}); err != nil {
		t.Fatal(err)
	}

	check := func(t *testing.T, want []string) {
		t.Helper()
		lines, stats, out := e.training(t)
		if len(lines) != 2*len(want) || stats != (privacy.TrainingStats{Tenants: len(want), Conversations: 2 * len(want), Turns: 5 * len(want)}) {
			t.Fatalf("%d lines, stats %+v; want 2 conversations of each of %v", len(lines), stats, want)
		}
		tenantOf := map[string]string{} // pseudonym → tenant
		convs := map[string]bool{}
		var texts strings.Builder
		for _, tenant := range want {
			tenantOf[e.pseudonym(t, tenant, "\x00training-tenant")] = tenant
		}
		for _, l := range lines {
			if _, ok := tenantOf[l.Tenant]; !ok {
				t.Errorf("line of tenant %q: not one of the opted-in tenants %v", l.Tenant, want)
			}
			if convs[l.Conversation] || l.Conversation == "" || l.Conversation == l.Tenant {
				t.Errorf("conversation pseudonym %q repeated or empty", l.Conversation)
			}
			convs[l.Conversation] = true
			if l.AgentID != "assistant" || l.Language != "en-US" || l.Day != t0.Format(time.DateOnly) {
				t.Errorf("line %+v", l)
			}
			for _, tr := range l.Turns {
				texts.WriteString(tr.Text + "\n")
				if tr.Text == "" || (tr.Role != storage.RoleUser && tr.Role != storage.RoleAssistant) {
					t.Errorf("turn %+v", tr)
				}
				if m := emailRE.FindString(tr.Text); m != "" {
					t.Errorf("email %q in the training export: %q", m, tr.Text)
				}
				if m := phoneRE.FindString(tr.Text); m != "" {
					t.Errorf("phone number %q in the training export: %q", m, tr.Text)
				}
			}
		}
		if len(tenantOf) != len(want) {
			t.Errorf("tenant pseudonyms collide: %v", tenantOf)
		}
		// Nothing that names the source: tenant ids, conversation ids,
		// turn ids, end-user identifiers and their pseudonyms.
		for _, tenant := range []string{optedIn, never, revoked, disabled} {
			for _, s := range []string{tenant, "conv-" + tenant, "item-conv-" + tenant, "enduser-" + tenant, e.pseudonym(t, tenant, "enduser-"+tenant)} {
				if strings.Contains(out, s) {
					t.Errorf("%q is in the training export", s)
				}
			}
		}
		for _, s := range []string{"jane.doe", "example.com", "415", "555", "0134", "7946", "0958", "12 34 56", "expired"} {
			if strings.Contains(texts.String(), s) {
				t.Errorf("%q is in the training export's text", s)
			}
		}
		if !strings.Contains(texts.String(), "Noted, Jane.") {
			t.Errorf("text without personal data is missing:\n%s", texts.String())
		}
	}
	t.Run("opted in", func(t *testing.T) { check(t, []string{optedIn, revoked}) })

	// Revocation applies to the next export.
	policy(revoked, false)
	t.Run("after revocation", func(t *testing.T) { check(t, []string{optedIn}) })

	// The pseudonyms are stable from one export to the next.
	a, _, _ := e.training(t)
	b, _, _ := e.training(t)
	if len(a) != len(b) || a[0].Tenant != b[0].Tenant || a[0].Conversation != b[0].Conversation {
		t.Errorf("pseudonyms differ between two exports")
	}
}
