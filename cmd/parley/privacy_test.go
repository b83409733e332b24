package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"parley/storage"
	"parley/storage/seal"
	"parley/storage/sqlite"
)

// privacyFixture is a SQLite file with two tenants' conversations, sealed
// under master key mk, which PARLEY_MASTER_KEY holds for the commands.
type privacyFixture struct {
	db string
	mk seal.MasterKey
}

func masterKeyEnv(keys ...seal.MasterKey) string {
	var entries []string
	for _, k := range keys {
		entries = append(entries, k.ID+":"+base64.StdEncoding.EncodeToString(k.Key))
	}
	return strings.Join(entries, ",")
}

func newPrivacyFixture(t *testing.T) *privacyFixture {
	t.Helper()
	dir := t.TempDir()
	f := &privacyFixture{db: filepath.Join(dir, "parley.db")}
	var err error
	if f.mk, err = seal.NewMasterKey("mk-test-1"); err != nil {
		t.Fatal(err)
	}
	// Isolated from the environment of the machine: no config file, the
	// key in PARLEY_MASTER_KEY, a key file that does not exist.
	t.Setenv("PARLEY_MASTER_KEY", masterKeyEnv(f.mk))
	t.Setenv("PARLEY_PRIVACY_MASTER_KEY_FILE", filepath.Join(dir, "absent.key"))
	t.Setenv("PARLEY_STORAGE_URL", f.db)

	ctx := context.Background()
	st, err := sqlite.Open(ctx, f.db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	kr, err := seal.NewKeyring(st, []seal.MasterKey{f.mk}, seal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now().UTC().Add(-time.Hour).Truncate(time.Millisecond)
	expires := start.Add(30 * 24 * time.Hour)
	for _, tenant := range []string{"acme", "globex"} {
		if err := st.CreateTenant(ctx, &storage.Tenant{ID: tenant, Name: tenant, Plan: storage.PlanTeam, CreatedAt: start}, ""); err != nil {
			t.Fatal(err)
		}
	}
	write := func(tenant, id, endUser string, texts ...string) {
		t.Helper()
		pseudonym, err := kr.Pseudonym(ctx, tenant, endUser)
		if err != nil {
			t.Fatal(err)
		}
		ws := []storage.Write{{Create: &storage.Conversation{ID: id, TenantID: tenant, AgentID: "assistant", Channel: "websocket",
			StartedAt: start, EndUser: pseudonym, ExpiresAt: expires}}}
		for i, text := range texts {
			item := id + "-item-" + string(rune('1'+i))
			sealed, err := kr.Seal(ctx, tenant, []byte(text), seal.TurnAAD(tenant, id, item))
			if err != nil {
				t.Fatal(err)
			}
			ws = append(ws, storage.Write{Turn: &storage.Turn{ID: item, ConversationID: id, TenantID: tenant, Seq: i + 1,
				Role: storage.RoleUser, TextSealed: sealed, TextStored: true, Status: storage.TurnCompleted,
				StartedAt: start, EndedAt: start.Add(time.Second), ExpiresAt: expires}})
		}
		audio, err := kr.Seal(ctx, tenant, []byte("voice of "+id), seal.AudioAAD(tenant, id, id+"-item-1"))
		if err != nil {
			t.Fatal(err)
		}
		ws = append(ws,
			storage.Write{Audio: &storage.TurnAudio{TenantID: tenant, ConversationID: id, TurnID: id + "-item-1", Format: "audio/ogg",
				Sealed: audio, DurationMS: 900, CreatedAt: start, ExpiresAt: expires}},
			storage.Write{End: &storage.EndWrite{TenantID: tenant, ID: id, At: start.Add(time.Minute)}},
			storage.Write{Usage: &storage.UsageEvent{ID: "use-" + id, TenantID: tenant, ConversationID: id, Channel: "websocket",
				At: start.Add(time.Minute), DurationMS: 60000, ExpiresAt: expires}})
		errs, err := st.WriteBatch(ctx, ws)
		if err != nil {
			t.Fatal(err)
		}
		for i, err := range errs {
			if err != nil {
				t.Fatalf("%s write %d: %v", id, i, err)
			}
		}
	}
	write("acme", "c-alice-1", "alice@example.com", "I am Alice", "Still Alice")
	write("acme", "c-alice-2", "alice@example.com", "Alice again")
	write("acme", "c-bob-1", "bob-42", "Bob speaking")
	write("globex", "c-globex-1", "alice@example.com", "Globex Alice")
	return f
}

// cli runs parley with args and returns the exit code, stdout and stderr.
func cli(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

// exported decodes an export document into what the tests compare.
type exported struct {
	TenantID      string            `json:"tenant_id"`
	Scope         map[string]string `json:"scope"`
	Conversations []struct {
		ID    string `json:"id"`
		Turns []struct {
			Text       *string `json:"text"`
			Unreadable bool    `json:"unreadable"`
		} `json:"turns"`
		Audio []struct {
			Data []byte `json:"data"`
		} `json:"audio"`
	} `json:"conversations"`
	UsageDays []json.RawMessage `json:"usage_days"`
}

func decodeExported(t *testing.T, data string) exported {
	t.Helper()
	var doc exported
	if err := json.Unmarshal([]byte(data), &doc); err != nil {
		t.Fatalf("export is not JSON: %v\n%s", err, data)
	}
	return doc
}

func (d exported) ids() string {
	var ids []string
	for _, c := range d.Conversations {
		ids = append(ids, c.ID)
	}
	return strings.Join(ids, " ")
}

func TestExportCommand(t *testing.T) {
	f := newPrivacyFixture(t)

	// The whole tenant, to a file.
	out := filepath.Join(t.TempDir(), "exports", "acme.json")
	code, stdout, stderr := cli("export", "-tenant", "acme", "-o", out)
	if code != 0 || stdout != "" {
		t.Fatalf("export -o: %d %q %s", code, stdout, stderr)
	}
	if !strings.Contains(stderr, "3 conversations, 4 turns, 3 audio clips") {
		t.Errorf("counts on stderr: %q", stderr)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(out); fi.Mode().Perm() != 0o600 {
		t.Errorf("export file mode %v, want 0600", fi.Mode().Perm())
	}
	doc := decodeExported(t, string(data))
	if doc.TenantID != "acme" || doc.ids() != "c-alice-1 c-alice-2 c-bob-1" || len(doc.UsageDays) != 1 {
		t.Fatalf("tenant export: %s, %d usage days", doc.ids(), len(doc.UsageDays))
	}
	if c := doc.Conversations[0]; *c.Turns[0].Text != "I am Alice" || *c.Turns[1].Text != "Still Alice" || string(c.Audio[0].Data) != "voice of c-alice-1" {
		t.Errorf("c-alice-1 exported as %+v", c)
	}
	if strings.Contains(string(data), "Globex") {
		t.Error("another tenant's data in the export")
	}
	if entries, _ := os.ReadDir(filepath.Dir(out)); len(entries) != 1 {
		t.Errorf("export directory holds %d files, want only the export", len(entries))
	}

	// One end user, to stdout: the raw identifier is pseudonymised.
	code, stdout, stderr = cli("export", "-tenant", "acme", "-end-user", "alice@example.com")
	if code != 0 {
		t.Fatalf("export -end-user: %d %s", code, stderr)
	}
	doc = decodeExported(t, stdout)
	if doc.ids() != "c-alice-1 c-alice-2" || !strings.HasPrefix(doc.Scope["end_user"], "eu_") || doc.UsageDays != nil {
		t.Errorf("end-user export: %s, scope %v", doc.ids(), doc.Scope)
	}
	if strings.Contains(stdout, "alice@example.com") {
		t.Error("the raw end-user identifier is in the export")
	}

	// One conversation.
	code, stdout, stderr = cli("export", "-tenant", "acme", "-conversation", "c-bob-1")
	if code != 0 {
		t.Fatalf("export -conversation: %d %s", code, stderr)
	}
	if doc = decodeExported(t, stdout); doc.ids() != "c-bob-1" || doc.Scope["conversation_id"] != "c-bob-1" {
		t.Errorf("conversation export: %s, scope %v", doc.ids(), doc.Scope)
	}

	// Not found: another tenant's conversation, an unknown tenant.
	if code, stdout, stderr := cli("export", "-tenant", "acme", "-conversation", "c-globex-1"); code != 1 || stdout != "" || !strings.Contains(stderr, "not found") {
		t.Errorf("export of another tenant's conversation: %d %q %s", code, stdout, stderr)
	}
	if code, _, stderr := cli("export", "-tenant", "nobody"); code != 1 || !strings.Contains(stderr, "tenant nobody: not found") {
		t.Errorf("export of an unknown tenant: %d %s", code, stderr)
	}

	// -storage wins over PARLEY_STORAGE_URL.
	t.Setenv("PARLEY_STORAGE_URL", filepath.Join(t.TempDir(), "other.db"))
	if code, _, stderr := cli("export", "-storage", f.db, "-tenant", "acme", "-conversation", "c-bob-1"); code != 0 {
		t.Errorf("export -storage: %d %s", code, stderr)
	}
}

func TestDeleteCommand(t *testing.T) {
	newPrivacyFixture(t)
	deleted := func(t *testing.T, args ...string) storage.Deleted {
		t.Helper()
		code, stdout, stderr := cli(append([]string{"delete", "-tenant", "acme"}, args...)...)
		if code != 0 {
			t.Fatalf("delete %v: %d %s", args, code, stderr)
		}
		var res struct {
			Deleted *storage.Deleted `json:"deleted"`
		}
		if err := json.Unmarshal([]byte(stdout), &res); err != nil || res.Deleted == nil {
			t.Fatalf("delete printed %q: %v", stdout, err)
		}
		return *res.Deleted
	}
	remaining := func(t *testing.T, tenant string) string {
		t.Helper()
		code, stdout, stderr := cli("export", "-tenant", tenant)
		if code != 0 {
			t.Fatalf("export: %d %s", code, stderr)
		}
		return decodeExported(t, stdout).ids()
	}

	if d := deleted(t, "-conversation", "c-bob-1"); d != (storage.Deleted{Conversations: 1, Turns: 1, Audio: 1, UsageEvents: 1}) {
		t.Errorf("delete -conversation: %+v", d)
	}
	if got := remaining(t, "acme"); got != "c-alice-1 c-alice-2" {
		t.Errorf("after deleting c-bob-1: %s", got)
	}
	// Again: nothing matches, not an error.
	if d := deleted(t, "-conversation", "c-bob-1"); d != (storage.Deleted{}) {
		t.Errorf("second delete: %+v", d)
	}
	// Another tenant's conversation is not reachable from acme.
	if d := deleted(t, "-conversation", "c-globex-1"); d != (storage.Deleted{}) {
		t.Errorf("delete of another tenant's conversation: %+v", d)
	}
	if d := deleted(t, "-end-user", "alice@example.com"); d != (storage.Deleted{Conversations: 2, Turns: 3, Audio: 2, UsageEvents: 2}) {
		t.Errorf("delete -end-user: %+v", d)
	}
	if got := remaining(t, "acme"); got != "" {
		t.Errorf("after deleting alice: %q", got)
	}
	// The same person at globex is another tenant's end user.
	if got := remaining(t, "globex"); got != "c-globex-1" {
		t.Errorf("globex after acme's deletions: %q", got)
	}
	code, stdout, stderr := cli("delete", "-tenant", "globex", "-all", "-yes")
	if code != 0 || !strings.Contains(stdout, `"conversations":1`) {
		t.Fatalf("delete -all: %d %s %s", code, stdout, stderr)
	}
	if got := remaining(t, "globex"); got != "" {
		t.Errorf("after delete -all: %q", got)
	}
	// Deleting by conversation or everything needs no master key.
	t.Setenv("PARLEY_MASTER_KEY", "")
	if d := deleted(t, "-all", "-yes"); d != (storage.Deleted{}) {
		t.Errorf("delete -all without a master key: %+v", d)
	}
}

func TestPrivacyUsageErrors(t *testing.T) {
	newPrivacyFixture(t)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"export without -tenant", []string{"export"}, "-tenant is required"},
		{"export with both scopes", []string{"export", "-tenant", "acme", "-conversation", "c", "-end-user", "u"}, "cannot be used together"},
		{"export with an argument", []string{"export", "-tenant", "acme", "extra"}, `unexpected argument "extra"`},
		{"export with an unknown flag", []string{"export", "-tenant", "acme", "-everything"}, "flag provided but not defined"},
		{"delete without -tenant", []string{"delete", "-all", "-yes"}, "-tenant is required"},
		{"delete without a scope", []string{"delete", "-tenant", "acme"}, "-conversation ID, -end-user ID or -all"},
		{"delete with two scopes", []string{"delete", "-tenant", "acme", "-conversation", "c", "-end-user", "u"}, "only one of"},
		{"export with a newline in the end user", []string{"export", "-tenant", "acme", "-end-user", "alice\n"}, "control characters"},
		{"delete with a long end user", []string{"delete", "-tenant", "acme", "-end-user", strings.Repeat("x", 257)}, "at most 256 bytes"},
		{"delete -all and a conversation", []string{"delete", "-tenant", "acme", "-conversation", "c", "-all", "-yes"}, "only one of"},
		{"delete -all without -yes", []string{"delete", "-tenant", "acme", "-all"}, "add -yes to confirm"},
		{"shred without -tenant", []string{"shred", "-yes"}, "-tenant is required"},
		{"shred without -yes", []string{"shred", "-tenant", "acme"}, "add -yes to confirm"},
		{"export-training with an argument", []string{"export-training", "now"}, "unexpected argument"},
		{"rotate with an argument", []string{"rotate-master-key", "now"}, "unexpected argument"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := cli(tc.args...)
			if code != 2 || stdout != "" || !strings.Contains(stderr, tc.want) {
				t.Errorf("%v: exit %d, stdout %q, stderr %q; want 2 and %q", tc.args, code, stdout, stderr, tc.want)
			}
		})
	}

	// The -all refusal deleted nothing.
	if code, stdout, _ := cli("export", "-tenant", "acme"); code != 0 || decodeExported(t, stdout).ids() != "c-alice-1 c-alice-2 c-bob-1" {
		t.Errorf("acme after the refused deletions: %d %s", code, stdout)
	}

	// No master key configured: every command that needs one refuses.
	t.Setenv("PARLEY_MASTER_KEY", "")
	for _, args := range [][]string{
		{"export", "-tenant", "acme"},
		{"delete", "-tenant", "acme", "-end-user", "alice@example.com"},
		{"export-training"},
		{"rotate-master-key"},
	} {
		code, stdout, stderr := cli(args...)
		if code != 2 || stdout != "" || !strings.Contains(stderr, "no master key configured") || !strings.Contains(stderr, "PARLEY_MASTER_KEY") {
			t.Errorf("%v without a master key: exit %d, stdout %q, stderr %q", args, code, stdout, stderr)
		}
	}
	// A malformed key is an error that does not echo it.
	t.Setenv("PARLEY_MASTER_KEY", "mk:c2VjcmV0LWJ1dC10b28tc2hvcnQ=")
	if code, _, stderr := cli("export", "-tenant", "acme"); code != 1 || strings.Contains(stderr, "c2VjcmV0") || !strings.Contains(stderr, "PARLEY_MASTER_KEY") {
		t.Errorf("malformed key: %d %s", code, stderr)
	}
}

func TestRotateAndShredCommands(t *testing.T) {
	f := newPrivacyFixture(t)
	mk2, err := seal.NewMasterKey("mk-test-2")
	if err != nil {
		t.Fatal(err)
	}

	// The help explains the procedure.
	code, _, stderr := cli("rotate-master-key", "-help")
	if code != 0 || !strings.Contains(stderr, "FIRST in PARLEY_MASTER_KEY") || !strings.Contains(stderr, "Restart the parleyd nodes one at a time") {
		t.Errorf("rotate-master-key -help: %d %s", code, stderr)
	}

	// The new key first, the old one kept: both tenants' keys rewrapped.
	t.Setenv("PARLEY_MASTER_KEY", masterKeyEnv(mk2, f.mk))
	code, stdout, stderr := cli("rotate-master-key")
	if code != 0 || !strings.Contains(stdout, "rewrapped 2 data keys under master key mk-test-2") {
		t.Fatalf("rotate: %d %q %s", code, stdout, stderr)
	}
	if code, stdout, _ := cli("rotate-master-key"); code != 0 || !strings.Contains(stdout, "rewrapped 0 data keys") {
		t.Errorf("second rotation: %d %q", code, stdout)
	}
	// The old key dropped: everything still opens.
	t.Setenv("PARLEY_MASTER_KEY", masterKeyEnv(mk2))
	code, stdout, stderr = cli("export", "-tenant", "acme", "-conversation", "c-bob-1")
	if code != 0 {
		t.Fatalf("export under the new key only: %d %s", code, stderr)
	}
	if doc := decodeExported(t, stdout); *doc.Conversations[0].Turns[0].Text != "Bob speaking" {
		t.Errorf("after rotation: %s", stdout)
	}
	// Only the old key: the rewrapped data keys do not unwrap.
	t.Setenv("PARLEY_MASTER_KEY", masterKeyEnv(f.mk))
	if code, _, stderr := cli("export", "-tenant", "acme"); code != 1 || !strings.Contains(stderr, "mk-test-2") {
		t.Errorf("export with the old key only: %d %s", code, stderr)
	}

	// Shred acme: its text and audio are unreadable, globex's are not.
	t.Setenv("PARLEY_MASTER_KEY", masterKeyEnv(mk2))
	code, stdout, stderr = cli("shred", "-tenant", "acme", "-yes")
	if code != 0 || !strings.Contains(stdout, "shredded the data key of tenant acme") {
		t.Fatalf("shred: %d %q %s", code, stdout, stderr)
	}
	code, stdout, stderr = cli("export", "-tenant", "acme")
	if code != 0 {
		t.Fatalf("export after shred: %d %s", code, stderr)
	}
	doc := decodeExported(t, stdout)
	for _, c := range doc.Conversations {
		for _, tr := range c.Turns {
			if tr.Text != nil || !tr.Unreadable {
				t.Errorf("%s after shred: %+v", c.ID, tr)
			}
		}
		if c.Audio[0].Data != nil {
			t.Errorf("%s audio readable after shred", c.ID)
		}
	}
	if strings.Contains(stdout, "Alice") || strings.Contains(stdout, "Bob speaking") {
		t.Error("shredded text in the export")
	}
	if code, stdout, _ := cli("export", "-tenant", "globex"); code != 0 || !strings.Contains(stdout, "Globex Alice") {
		t.Errorf("globex after acme's shred: %d %s", code, stdout)
	}
	// Again: nothing to shred, not an error; an unknown tenant is.
	if code, stdout, _ := cli("shred", "-tenant", "acme", "-yes"); code != 0 || !strings.Contains(stdout, "nothing to shred") {
		t.Errorf("second shred: %d %q", code, stdout)
	}
	if code, _, stderr := cli("shred", "-tenant", "nobody", "-yes"); code != 1 || !strings.Contains(stderr, "not found") {
		t.Errorf("shred of an unknown tenant: %d %s", code, stderr)
	}
}

func TestExportTrainingCommand(t *testing.T) {
	f := newPrivacyFixture(t)
	st, err := sqlite.Open(context.Background(), f.db)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	err = st.PutPolicy(context.Background(), &storage.Policy{TenantID: "acme", TranscriptDays: 30, MetadataDays: 30, AudioDays: 30,
		TrainingOptIn: true, UpdatedAt: now}, now)
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "training.jsonl")
	code, _, stderr := cli("export-training", "-o", out)
	if code != 0 || !strings.Contains(stderr, "wrote 3 conversations (4 turns) of 1 opted-in tenants") {
		t.Fatalf("export-training: %d %s", code, stderr)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines:\n%s", len(lines), data)
	}
	for _, l := range lines {
		if !json.Valid([]byte(l)) {
			t.Errorf("line is not JSON: %s", l)
		}
	}
	for _, s := range []string{"acme", "globex", "Globex", "c-alice", "c-bob", "alice@example.com"} {
		if strings.Contains(string(data), s) {
			t.Errorf("%q in the training export", s)
		}
	}
}

// TestPrivacyConfigFile: without the environment, the store and the key
// file come from the config file, whose other sections are not checked.
func TestPrivacyConfigFile(t *testing.T) {
	f := newPrivacyFixture(t)
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "master.key")
	if err := os.WriteFile(keyFile, []byte("# keys\n"+masterKeyEnv(f.mk)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "parley.yaml")
	yaml := "storage:\n  url: " + f.db + "\nprivacy:\n  master_key_file: " + keyFile + "\n  audio_logging: true\nagents: []\nvoice:\n  stt_engine: none-here\n"
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"PARLEY_MASTER_KEY", "PARLEY_PRIVACY_MASTER_KEY_FILE", "PARLEY_STORAGE_URL"} {
		t.Setenv(name, "") // restored when the test ends
		os.Unsetenv(name)
	}
	code, stdout, stderr := cli("export", "-config", cfg, "-tenant", "acme", "-conversation", "c-bob-1")
	if code != 0 {
		t.Fatalf("export -config: %d %s", code, stderr)
	}
	if doc := decodeExported(t, stdout); len(doc.Conversations) != 1 || *doc.Conversations[0].Turns[0].Text != "Bob speaking" {
		t.Errorf("export -config: %s", stdout)
	}
	// The environment wins over the file: a key file that does not exist.
	t.Setenv("PARLEY_PRIVACY_MASTER_KEY_FILE", filepath.Join(dir, "absent.key"))
	if code, _, stderr := cli("export", "-config", cfg, "-tenant", "acme"); code != 2 || !strings.Contains(stderr, "absent.key") {
		t.Errorf("export with PARLEY_PRIVACY_MASTER_KEY_FILE: %d %s", code, stderr)
	}
	// A missing config file named with -config is an error.
	if code, _, stderr := cli("export", "-config", filepath.Join(dir, "nope.yaml"), "-tenant", "acme"); code != 1 || !strings.Contains(stderr, "nope.yaml") {
		t.Errorf("missing -config file: %d %s", code, stderr)
	}
}
