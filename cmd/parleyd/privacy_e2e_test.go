package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"parley/media"
	"parley/storage"
	"parley/storage/backends"
	"parley/storage/seal"
)

// keyring opens what the test parleyd sealed (it runs with testMasterKey).
func keyring(t *testing.T, st storage.Backend, spec string) *seal.Keyring {
	t.Helper()
	masters, err := seal.ParseMasterKeys(spec)
	if err != nil {
		t.Fatal(err)
	}
	kr, err := seal.NewKeyring(st, masters, seal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

// turnText is a stored turn's text, unsealed ("" when none is stored).
func turnText(t *testing.T, st storage.Backend, tr storage.Turn) string {
	t.Helper()
	if !tr.TextStored {
		return ""
	}
	b, err := keyring(t, st, testMasterKey).Open(context.Background(), tr.TenantID, tr.TextSealed, seal.TurnAAD(tr.TenantID, tr.ConversationID, tr.ID))
	if err != nil {
		t.Fatalf("opening turn %s: %v", tr.ID, err)
	}
	return string(b)
}

// dialAs opens a session for an end user (the end_user parameter a
// business's backend passes with its secret key).
func dialAs(t *testing.T, base, endUser string) *wsClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, base+"/v1/realtime?model=assistant&end_user="+url.QueryEscape(endUser), &websocket.DialOptions{
		HTTPHeader: http.Header{"Authorization": {"Bearer " + testAPIKey}}})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = conn.CloseNow() })
	c := &wsClient{t: t, conn: conn}
	c.until("conversation.item.done") // greeting
	return c
}

// ownedTenant is a tenant set up the way a business does it: an owner
// registers, creates an agent with its knowledge (stored sealed) and a
// secret key with the realtime scope.
type ownedTenant struct {
	id, token, key string
}

func newOwnedTenant(t *testing.T, r *running) ownedTenant {
	t.Helper()
	base := "http" + strings.TrimPrefix(r.base, "ws")
	code, body := postJSON(t, base+"/v1/auth/register", "", "",
		`{"name":"Ada","email":"ada-`+strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-"))+`@shop.example","company":"Shop","password":"correct horse battery"}`)
	if code != 201 {
		t.Fatalf("register: %d %s", code, body)
	}
	var reg struct {
		Token  string `json:"token"`
		Tenant struct {
			ID string `json:"id"`
		} `json:"tenant"`
	}
	if err := json.Unmarshal([]byte(body), &reg); err != nil {
		t.Fatal(err)
	}
	code, body = postJSON(t, base+"/v1/tenants/"+reg.Tenant.ID+"/agents", reg.Token, "", `{"id":"assistant","name":"Shop assistant","engine":"kb",
		"settings":{"knowledge":{"parley.md":"# Parley\n\nParley is the shop's voice and chat assistant gateway."}}}`)
	if code != 201 {
		t.Fatalf("create agent: %d %s", code, body)
	}
	code, body = postJSON(t, base+"/v1/tenants/"+reg.Tenant.ID+"/keys", reg.Token, "", `{"kind":"secret","scopes":["realtime"]}`)
	var key struct {
		Value string `json:"value"`
	}
	if code != 201 || json.Unmarshal([]byte(body), &key) != nil {
		t.Fatalf("create key: %d %s", code, body)
	}
	return ownedTenant{id: reg.Tenant.ID, token: reg.Token, key: key.Value}
}

// dial opens a session of the tenant's agent.
func (o ownedTenant) dial(t *testing.T, r *running) *wsClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, r.base+"/v1/realtime?model=assistant", &websocket.DialOptions{
		HTTPHeader: http.Header{"Authorization": {"Bearer " + o.key}}})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = conn.CloseNow() })
	return &wsClient{t: t, conn: conn}
}

// apiCall calls the management API with the owner key.
func apiCall(t *testing.T, r *running, method, path, body string) (int, []byte) {
	t.Helper()
	return apiCallAs(t, r, testAPIKey, method, path, body)
}

// apiCallAs calls the management API with a key or sign-in token.
func apiCallAs(t *testing.T, r *running, token, method, path, body string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, "http"+strings.TrimPrefix(r.base, "ws")+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// dump is everything a backup of the database would hold: the SQLite
// files, or pg_dump of the PostgreSQL schema.
func dump(t *testing.T, storageURL string) []byte {
	t.Helper()
	if !strings.HasPrefix(storageURL, "postgres") {
		var all []byte
		for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
			b, err := os.ReadFile(storageURL + suffix)
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				t.Fatal(err)
			}
			all = append(all, b...)
		}
		if len(all) == 0 {
			t.Fatal("no database file")
		}
		return all
	}
	u, err := url.Parse(storageURL)
	if err != nil {
		t.Fatal(err)
	}
	schema := u.Query().Get("search_path")
	q := u.Query()
	q.Del("search_path")
	u.RawQuery = q.Encode()
	out, err := exec.Command("pg_dump", "--no-owner", "-n", schema, "-d", u.String()).Output()
	if err != nil {
		t.Fatalf("pg_dump: %v", err)
	}
	if !bytes.Contains(out, []byte("CREATE TABLE "+schema+".turns")) {
		t.Fatalf("pg_dump output lacks the turns table: %.300s", out)
	}
	return out
}

// TestDatabaseHoldsNoPlaintext: after a conversation with personal data in
// it, a dump of the database (the SQLite files; pg_dump on PostgreSQL)
// holds none of its text, neither the question, the answer, the email or
// phone number, nor the end user's identifier; what was stored opens with
// the keyring, redacted, and carries its metadata (pseudonymous end user,
// language, sentiment, a usage event and its daily rollup).
func TestDatabaseHoldsNoPlaintext(t *testing.T) {
	for _, b := range backendsUnderTest(t) {
		t.Run(b.name, func(t *testing.T) {
			storageURL := b.url(t)
			r := start(t, "../../configs/parley.yaml", "PARLEY_STORAGE_URL="+storageURL)
			c := dialAs(t, r.base, "customer-4711@shop.example")
			question := "I love this, thanks! My email is alice.liddell@example.org and my phone is +44 20 7946 0958. How long are transcripts kept?"
			answer, resp := c.ask(question)
			if resp["status"] != "completed" || !strings.Contains(answer, "90") {
				t.Fatalf("answer %q", answer)
			}
			_ = c.conn.Close(websocket.StatusNormalClosure, "")
			waitEnded(t, r.m.Store, 1)
			if code := r.stop(t); code != 0 {
				t.Fatalf("exit %d", code)
			}

			d := dump(t, storageURL)
			for _, secret := range []string{"How long are transcripts kept", "alice.liddell", "example.org", "7946", answer[:min(len(answer), 40)],
				"customer-4711", "I love this"} {
				if bytes.Contains(d, []byte(secret)) {
					t.Errorf("the database dump holds %q in clear", secret)
				}
			}

			st, err := backends.Open(context.Background(), storageURL)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			ctx := context.Background()
			kr := keyring(t, st, testMasterKey)
			pseudo, err := kr.Pseudonym(ctx, storage.DefaultTenant, "customer-4711@shop.example")
			if err != nil {
				t.Fatal(err)
			}
			convs, _, err := st.ListConversations(ctx, storage.DefaultTenant, storage.ConversationFilter{EndUser: pseudo}, "", 10)
			if err != nil || len(convs) != 1 {
				t.Fatalf("conversations of the end user: %+v %v", convs, err)
			}
			conv := convs[0]
			if conv.Language != "en" || conv.Sentiment <= 0 || conv.DurationMS <= 0 {
				t.Errorf("conversation metadata %+v: want language en, a positive sentiment, a duration", conv)
			}
			turns, err := st.ListTurns(ctx, storage.DefaultTenant, conv.ID)
			if err != nil || len(turns) != 2 {
				t.Fatalf("turns %+v %v", turns, err)
			}
			q := turnText(t, st, turns[0])
			if strings.Contains(q, "alice.liddell") || strings.Contains(q, "7946") || !strings.Contains(q, "[email]") || !strings.Contains(q, "[phone]") ||
				!strings.Contains(q, "How long are transcripts kept?") {
				t.Errorf("stored question %q: want the email and phone redacted, the rest kept", q)
			}
			if a := turnText(t, st, turns[1]); a != answer {
				t.Errorf("stored answer %q, want %q", a, answer)
			}
			days, err := st.ListUsageDays(ctx, storage.DefaultTenant, time.Now().AddDate(0, 0, -2), time.Now().AddDate(0, 0, 2))
			if err != nil || len(days) != 1 || days[0].Conversations != 1 || days[0].Language != "en" || days[0].Channel != "websocket" {
				t.Errorf("usage rollup %+v %v", days, err)
			}
		})
	}
}

// waitEnded waits until n conversations of the default tenant are ended
// in storage (the recorder writes off the session).
func waitEnded(t *testing.T, st storage.Backend, n int) []storage.Conversation {
	t.Helper()
	return waitEndedIn(t, st, storage.DefaultTenant, n)
}

func waitEndedIn(t *testing.T, st storage.Backend, tenantID string, n int) []storage.Conversation {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		convs, _, err := st.ListConversations(context.Background(), tenantID, storage.ConversationFilter{}, "", 100)
		ended := 0
		for _, c := range convs {
			if !c.EndedAt.IsZero() {
				ended++
			}
		}
		if err == nil && ended >= n {
			return convs
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d conversations ended, want %d (%v)", ended, n, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestAudioLoggingSealed: with conversation audio logging on, each user
// turn's audio is stored with it, sealed (no Ogg page in the database),
// and opens to the Ogg Opus recording of the turn; it expires with its own
// retention.
func TestAudioLoggingSealed(t *testing.T) {
	dbPath := filepath.Join(t.TempDir(), "p.db")
	r := start(t, "../../configs/parley.yaml", "PARLEY_STORAGE_URL="+dbPath,
		"PARLEY_PRIVACY_AUDIO_LOGGING=true", "PARLEY_PRIVACY_AUDIO_DAYS=7")
	c := dialRT(t, r.base, "assistant")
	c.next()
	c.until("conversation.item.done")
	c.appendPCM(fixturePCM(t, "add_documents"))
	c.until("response.done")
	_ = c.conn.Close(websocket.StatusNormalClosure, "")
	waitEnded(t, r.m.Store, 1)
	if code := r.stop(t); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if d := dump(t, dbPath); bytes.Contains(d, []byte("OggS")) || bytes.Contains(d, []byte("OpusHead")) {
		t.Fatal("the database holds audio in clear")
	}
	st, err := backends.Open(context.Background(), dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	convs := waitEnded(t, st, 1)
	audio, err := st.ListTurnAudio(ctx, storage.DefaultTenant, convs[0].ID)
	if err != nil || len(audio) != 1 {
		t.Fatalf("logged audio %+v %v", audio, err)
	}
	a := audio[0]
	if a.Format != "audio/ogg" || a.DurationMS < 1000 || a.ExpiresAt.Sub(a.CreatedAt) != 7*24*time.Hour {
		t.Errorf("logged audio %s %d ms, expires after %v", a.Format, a.DurationMS, a.ExpiresAt.Sub(a.CreatedAt))
	}
	ogg, err := keyring(t, st, testMasterKey).Open(ctx, a.TenantID, a.Sealed, seal.AudioAAD(a.TenantID, a.ConversationID, a.TurnID))
	if err != nil {
		t.Fatal(err)
	}
	rd, err := media.NewOggOpusReader(bytes.NewReader(ogg))
	if err != nil {
		t.Fatal(err)
	}
	packets := 0
	for {
		if _, err := rd.Next(); err != nil {
			break
		}
		packets++
	}
	if want := int(a.DurationMS / 20); packets < want-2 || packets > want+2 {
		t.Errorf("%d Opus packets for %d ms", packets, a.DurationMS)
	}
	// The audio expires with its own retention, before the transcript.
	sw := &storage.Sweeper{Store: st, Now: func() time.Time { return time.Now().Add(8 * 24 * time.Hour) }}
	if _, err := sw.SweepOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if audio, _ := st.ListTurnAudio(ctx, storage.DefaultTenant, convs[0].ID); len(audio) != 0 {
		t.Errorf("audio survived its retention: %d", len(audio))
	}
	if turns, _ := st.ListTurns(ctx, storage.DefaultTenant, convs[0].ID); len(turns) != 2 {
		t.Errorf("the transcript went with the audio: %d turns", len(turns))
	}
}

// TestRetentionLifecycle drives time forward (the sweeper's injectable
// clock) over stored conversations: shortening a tenant's transcript
// retention through the management API applies to turns already stored;
// past each retention, nothing expired remains (turns, then conversations
// and usage events), while the daily usage rollup stays. A deleted tenant
// is purged 30 days later: its data key first.
func TestRetentionLifecycle(t *testing.T) {
	for _, b := range backendsUnderTest(t) {
		t.Run(b.name, func(t *testing.T) {
			storageURL := b.url(t)
			r := start(t, "../../configs/parley.yaml", "PARLEY_STORAGE_URL="+storageURL)
			tenant := newOwnedTenant(t, r)
			for i := 0; i < 2; i++ {
				c := tenant.dial(t, r)
				if a, _ := c.ask("What is Parley?"); !strings.Contains(a, "shop's voice and chat assistant") {
					t.Fatalf("the tenant's agent answered %q, not from its (sealed) knowledge", a)
				}
				_ = c.conn.Close(websocket.StatusNormalClosure, "")
			}
			waitEndedIn(t, r.m.Store, tenant.id, 2)
			status, body := apiCallAs(t, r, tenant.token, http.MethodPut, "/v1/tenants/"+tenant.id+"/privacy", `{"transcript_days":7,"metadata_days":30,
				"audio_logging":false,"audio_days":30,"redact":{"emails":true,"phones":true,"cards":true,"ibans":true},"training_opt_in":false}`)
			if status != http.StatusOK {
				t.Fatalf("PUT privacy: %d %s", status, body)
			}
			if code := r.stop(t); code != 0 {
				t.Fatalf("exit %d", code)
			}
			st, err := backends.Open(context.Background(), storageURL)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			ctx := context.Background()
			now := time.Now()
			sweepAt := func(after time.Duration) {
				t.Helper()
				sw := &storage.Sweeper{Store: st, Purger: st, Now: func() time.Time { return now.Add(after) }}
				if _, err := sw.SweepOnce(ctx); err != nil {
					t.Fatal(err)
				}
			}
			count := func() (convs, turns int) {
				cs, _, err := st.ListConversations(ctx, tenant.id, storage.ConversationFilter{}, "", 100)
				if err != nil {
					t.Fatal(err)
				}
				for _, c := range cs {
					ts, _ := st.ListTurns(ctx, tenant.id, c.ID)
					turns += len(ts)
				}
				return len(cs), turns
			}
			if c, tr := count(); c != 2 || tr != 4 {
				t.Fatalf("stored %d conversations, %d turns", c, tr)
			}
			sweepAt(6 * 24 * time.Hour)
			if c, tr := count(); c != 2 || tr != 4 {
				t.Fatalf("day 6: %d conversations, %d turns: deleted before their time", c, tr)
			}
			sweepAt(8 * 24 * time.Hour) // the new 7-day transcript retention, applied to stored turns
			if c, tr := count(); c != 2 || tr != 0 {
				t.Fatalf("day 8: %d conversations, %d turns; want the metadata only", c, tr)
			}
			sweepAt(31 * 24 * time.Hour)
			if c, _ := count(); c != 0 {
				t.Fatalf("day 31: %d conversations survived their 30-day retention", c)
			}
			sweepAt(366 * 24 * time.Hour)
			days, err := st.ListUsageDays(ctx, tenant.id, now.AddDate(0, 0, -2), now.AddDate(0, 0, 2))
			if err != nil || len(days) != 1 || days[0].Conversations != 2 {
				t.Errorf("usage rollup after the events expired: %+v %v", days, err)
			}

			// Tenant deletion: disabled now, purged 30 days later.
			if _, err := st.GetDataKey(ctx, tenant.id); err != nil {
				t.Fatalf("data key: %v", err)
			}
			if err := st.DisableTenant(ctx, tenant.id, now, now.Add(storage.TenantPurgeDelay)); err != nil {
				t.Fatal(err)
			}
			sweepAt(29 * 24 * time.Hour)
			if _, err := st.GetTenant(ctx, tenant.id); err != nil {
				t.Fatalf("tenant purged before 30 days: %v", err)
			}
			sweepAt(31 * 24 * time.Hour)
			if _, err := st.GetDataKey(ctx, tenant.id); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("data key after the purge: %v", err)
			}
			if _, err := st.GetTenant(ctx, tenant.id); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("tenant after the purge: %v", err)
			}
		})
	}
}

// TestEndUserErasure: deleting an end user through the management API
// removes every conversation linked to their identifier and nothing else;
// afterwards an export by that identifier is empty and the database file
// holds nothing of theirs.
func TestEndUserErasure(t *testing.T) {
	dbPath := filepath.Join(t.TempDir(), "p.db")
	r := start(t, "../../configs/parley.yaml", "PARLEY_STORAGE_URL="+dbPath)
	for _, u := range []string{"alice", "alice", "bob"} {
		c := dialAs(t, r.base, u)
		c.ask("What is Parley? asked by " + u)
		_ = c.conn.Close(websocket.StatusNormalClosure, "")
	}
	waitEnded(t, r.m.Store, 3)
	ctx := context.Background()
	alice, err := r.m.Keyring.Pseudonym(ctx, storage.DefaultTenant, "alice")
	if err != nil {
		t.Fatal(err)
	}
	status, body := apiCall(t, r, http.MethodDelete, "/v1/tenants/default/end_users/alice", "")
	if status != http.StatusOK {
		t.Fatalf("DELETE end user: %d %s", status, body)
	}
	var del struct{ Deleted storage.Deleted }
	if err := json.Unmarshal(body, &del); err != nil || del.Deleted.Conversations != 2 || del.Deleted.Turns != 4 {
		t.Fatalf("deleted %s (%v)", body, err)
	}
	status, body = apiCall(t, r, http.MethodGet, "/v1/tenants/default/export?end_user=alice", "")
	var exp struct {
		Conversations []json.RawMessage `json:"conversations"`
	}
	if status != http.StatusOK || json.Unmarshal(body, &exp) != nil || len(exp.Conversations) != 0 {
		t.Fatalf("export after erasure: %d %s", status, body)
	}
	status, body = apiCall(t, r, http.MethodGet, "/v1/tenants/default/export?end_user=bob", "")
	if status != http.StatusOK || json.Unmarshal(body, &exp) != nil || len(exp.Conversations) != 1 ||
		!bytes.Contains(body, []byte("asked by bob")) {
		t.Fatalf("bob's export: %d %s", status, body)
	}
	// While parleyd runs (the write-ahead log is live), and after it stopped.
	if d := dump(t, dbPath); bytes.Contains(d, []byte(alice)) {
		t.Error("the database files of the running server still hold the erased end user's pseudonym")
	}
	if code := r.stop(t); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if d := dump(t, dbPath); bytes.Contains(d, []byte(alice)) {
		t.Error("the database file still holds the erased end user's pseudonym")
	}
}

// TestMasterKeyRequired: parleyd refuses to start on a database that holds
// data when no master key is configured, and a wrong key cannot read it.
// On an empty database it creates the key file (mode 0600) and starts.
func TestMasterKeyRequired(t *testing.T) {
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "p.db")
	keyFile := filepath.Join(dir, "keys", "master.key")
	r := start(t, "../../configs/parley.yaml", "PARLEY_STORAGE_URL="+dbPath, "PARLEY_MASTER_KEY=", "PARLEY_PRIVACY_MASTER_KEY_FILE="+keyFile)
	fi, err := os.Stat(keyFile)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi, err)
	}
	c := dialRT(t, r.base, "assistant")
	c.until("conversation.item.done")
	c.ask("What is Parley?")
	_ = c.conn.Close(websocket.StatusNormalClosure, "")
	waitEnded(t, r.m.Store, 1)
	r.stop(t)

	if err := os.Rename(keyFile, keyFile+".elsewhere"); err != nil {
		t.Fatal(err)
	}
	m := NewMain()
	var stderr syncBuffer
	code := m.Main(context.Background(), []string{"-config", "../../configs/parley.yaml"}, []string{
		"PARLEY_HTTP_ADDR=127.0.0.1:0", "PARLEY_API_KEY=" + testAPIKey, "PARLEY_LOG_FORMAT=json", "PARLEY_WEBRTC_UDP_ADDRESS=",
		"PARLEY_STORAGE_URL=" + dbPath, "PARLEY_PRIVACY_MASTER_KEY_FILE=" + keyFile}, io.Discard, &stderr)
	if code == 0 || !strings.Contains(stderr.String(), "no master key is configured") {
		t.Fatalf("started on sealed data without its key: exit %d: %s", code, stderr.String())
	}
	if _, err := os.Stat(keyFile); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("a new key file was generated over existing data")
	}

	// Another key under the same id (a node that generated its own): refused.
	impostor, err := os.ReadFile(keyFile + ".elsewhere")
	if err != nil {
		t.Fatal(err)
	}
	id := strings.SplitN(strings.TrimSpace(string(impostor[bytes.LastIndex(impostor, []byte("\nmk-"))+1:])), ":", 2)[0]
	other, err := seal.NewMasterKey(id)
	if err != nil {
		t.Fatal(err)
	}
	stderr = syncBuffer{}
	code = NewMain().Main(context.Background(), []string{"-config", "../../configs/parley.yaml"}, []string{
		"PARLEY_HTTP_ADDR=127.0.0.1:0", "PARLEY_API_KEY=" + testAPIKey, "PARLEY_LOG_FORMAT=json", "PARLEY_WEBRTC_UDP_ADDRESS=",
		"PARLEY_STORAGE_URL=" + dbPath, "PARLEY_MASTER_KEY=" + id + ":" + encodeKey(other.Key)}, io.Discard, &stderr)
	if code == 0 || !strings.Contains(stderr.String(), "do not match") || !strings.Contains(stderr.String(), id) {
		t.Fatalf("started with another key of the same id: exit %d: %s", code, stderr.String())
	}
}

// TestMasterKeyRotation rotates the master key without downtime: nodes run
// with the new key first and the old one second, the data keys are
// rewrapped while parleyd serves, and afterwards the new key alone reads
// everything, old and new, while the old key alone reads nothing. A
// backup taken before a tenant was shredded and the key rotated cannot be
// read with the remaining key (crypto-shredding reaches backups).
func TestMasterKeyRotation(t *testing.T) {
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "p.db")
	newKey, err := seal.NewMasterKey("mk-new")
	if err != nil {
		t.Fatal(err)
	}
	newSpec := newKey.ID + ":" + encodeKey(newKey.Key)
	session := func(r *running, text string) {
		c := dialRT(t, r.base, "assistant")
		c.until("conversation.item.done")
		c.ask(text)
		_ = c.conn.Close(websocket.StatusNormalClosure, "")
	}
	r := start(t, "../../configs/parley.yaml", "PARLEY_STORAGE_URL="+dbPath)
	session(r, "What is Parley? before the rotation")
	waitEnded(t, r.m.Store, 1)
	r.stop(t)
	backup, err := os.ReadFile(dbPath)
	if err != nil {
		t.Fatal(err)
	}

	r = start(t, "../../configs/parley.yaml", "PARLEY_STORAGE_URL="+dbPath, "PARLEY_MASTER_KEY="+newSpec+","+testMasterKey)
	n, err := r.m.Keyring.Rotate(context.Background())
	if err != nil || n != 1 {
		t.Fatalf("rotated %d data keys: %v", n, err)
	}
	session(r, "What is Parley? during the rotation")
	waitEnded(t, r.m.Store, 2)
	r.stop(t)

	r = start(t, "../../configs/parley.yaml", "PARLEY_STORAGE_URL="+dbPath, "PARLEY_MASTER_KEY="+newSpec)
	session(r, "What is Parley? after the rotation")
	convs := waitEnded(t, r.m.Store, 3)
	ctx := context.Background()
	for _, c := range convs {
		turns, err := r.m.Store.ListTurns(ctx, storage.DefaultTenant, c.ID)
		if err != nil || len(turns) != 2 {
			t.Fatal(turns, err)
		}
		if _, err := r.m.Keyring.Open(ctx, storage.DefaultTenant, turns[0].TextSealed, seal.TurnAAD(storage.DefaultTenant, c.ID, turns[0].ID)); err != nil {
			t.Errorf("conversation %s unreadable with the new key: %v", c.ID, err)
		}
	}
	old := keyring(t, r.m.Store, testMasterKey)
	turns, _ := r.m.Store.ListTurns(ctx, storage.DefaultTenant, convs[0].ID)
	if _, err := old.Open(ctx, storage.DefaultTenant, turns[0].TextSealed, seal.TurnAAD(storage.DefaultTenant, convs[0].ID, turns[0].ID)); err == nil {
		t.Error("the retired master key still reads the data")
	}
	r.stop(t)

	// The backup from before the rotation, with only the new key.
	bpath := filepath.Join(dir, "backup.db")
	if err := os.WriteFile(bpath, backup, 0o600); err != nil {
		t.Fatal(err)
	}
	bst, err := backends.Open(ctx, bpath)
	if err != nil {
		t.Fatal(err)
	}
	defer bst.Close()
	bconvs, _, _ := bst.ListConversations(ctx, storage.DefaultTenant, storage.ConversationFilter{}, "", 10)
	bturns, _ := bst.ListTurns(ctx, storage.DefaultTenant, bconvs[0].ID)
	if _, err := keyring(t, bst, newSpec).Open(ctx, storage.DefaultTenant, bturns[0].TextSealed,
		seal.TurnAAD(storage.DefaultTenant, bconvs[0].ID, bturns[0].ID)); !errors.Is(err, seal.ErrUnknownMasterKey) {
		t.Errorf("backup opened with the new key alone: %v", err)
	}
}

func encodeKey(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// TestPublishableKeyCannotNameEndUser: a publishable key is public, so it
// may not file conversations under an end user (the business's backend
// names end users, with a secret key).
func TestPublishableKeyCannotNameEndUser(t *testing.T) {
	r := start(t, "../../configs/parley.yaml", "PARLEY_STORAGE_URL="+t.TempDir()+"/p.db")
	pk, _ := storeKey(t, r, storage.KeyPublishable, nil, []string{"assistant"}, []string{"https://shop.example"})
	base := "http" + strings.TrimPrefix(r.base, "ws")
	code, body := postJSON(t, base+"/v1/realtime/client_secrets", pk, "https://shop.example", `{"session":{"model":"assistant"},"end_user":"alice"}`)
	if code != http.StatusBadRequest || !strings.Contains(body, "end_user") {
		t.Fatalf("publishable key naming an end user: %d %s", code, body)
	}
	if code, body = postJSON(t, base+"/v1/realtime/client_secrets", pk, "https://shop.example", `{"session":{"model":"assistant"}}`); code != http.StatusOK {
		t.Fatalf("publishable key without an end user: %d %s", code, body)
	}
}
