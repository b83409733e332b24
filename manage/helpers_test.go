package manage

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"parley/access"
	"parley/storage"
	"parley/storage/seal"
	"parley/storage/sqlite"
)

// testPassword's argon2id hash is computed once per test binary: users
// made by fixtures share it (a hash costs ~25 ms).
const testPassword = "correct horse battery"

var testHash = sync.OnceValue(func() []byte {
	h, err := access.HashPassword(testPassword)
	if err != nil {
		panic(err)
	}
	return []byte(h)
})

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type env struct {
	t     *testing.T
	api   *API
	h     http.Handler
	store *sqlite.Store
	kr    *seal.Keyring // a real keyring over store
	keys  *access.KeyCache
	logs  *syncBuf
	now   time.Time
	// secrets are every token and key the fixtures made: none may appear
	// in the logs.
	secrets []string
}

func generous() Limits {
	r := Rate{PerSecond: 1000, Burst: 1000}
	return Limits{PerIP: r, PerPrincipal: r, SignInPerIP: r, SignInPerEmail: r}
}

func newEnv(t *testing.T, tweak ...func(*Options)) *env {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "parley.db"))
	if err != nil {
		t.Fatal(err)
	}
	mk, err := seal.NewMasterKey("test")
	if err != nil {
		t.Fatal(err)
	}
	// No cache: a shred is seen at once.
	kr, err := seal.NewKeyring(st, []seal.MasterKey{mk}, seal.Options{CacheTTL: -1})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, store: st, kr: kr, keys: access.NewKeyCache(st), logs: &syncBuf{}, now: time.Now(), secrets: []string{testPassword}}
	o := Options{Accounts: st, Privacy: st, Keyring: kr, Keys: e.keys, Logger: zerolog.New(e.logs), Limits: generous()}
	for _, f := range tweak {
		f(&o)
	}
	a, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	e.api, e.h = a, a.Handler()
	t.Cleanup(func() {
		_ = a.Close()
		for _, s := range e.secrets {
			if strings.Contains(e.logs.String(), s) {
				t.Errorf("a secret (%s…) is in the logs", s[:prefixLen])
			}
		}
		_ = st.Close()
	})
	return e
}

type resp struct {
	code int
	hdr  http.Header
	raw  string
	body map[string]any
}

func (r *resp) errCode() string {
	e, _ := r.body["error"].(map[string]any)
	s, _ := e["code"].(string)
	return s
}

func (r *resp) errParam() string {
	e, _ := r.body["error"].(map[string]any)
	s, _ := e["param"].(string)
	return s
}

func (r *resp) str(k string) string { s, _ := r.body[k].(string); return s }

func (r *resp) data() []any { d, _ := r.body["data"].([]any); return d }

// do sends a request. cred is a bearer token ("" for none); hdr are
// extra header pairs.
func (e *env) do(method, path, cred string, body any, hdr ...string) *resp {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req := httptest.NewRequest(method, path, rd)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if cred != "" {
		req.Header.Set("Authorization", "Bearer "+cred)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "RemoteAddr" {
			req.RemoteAddr = hdr[i+1]
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, req)
	r := &resp{code: w.Code, hdr: w.Header(), raw: w.Body.String()}
	_ = json.Unmarshal(w.Body.Bytes(), &r.body)
	return r
}

func (e *env) want(r *resp, code int, errCode string) {
	e.t.Helper()
	want(e.t, r, code, errCode)
}

// want fails t unless r has the status and error code (any code if "").
func want(t *testing.T, r *resp, code int, errCode string) {
	t.Helper()
	if r.code != code || (errCode != "" && r.errCode() != errCode) {
		t.Fatalf("got %d %s, want %d %s", r.code, strings.TrimSpace(r.raw), code, errCode)
	}
}

// user makes a user (password testPassword) and a session; it returns
// the user and the session token.
func (e *env) user(email string) (*storage.User, string) {
	e.t.Helper()
	u := &storage.User{ID: newID("user_"), Email: email, Name: "N " + email, Company: "C", PasswordHash: testHash(), CreatedAt: e.now.UTC()}
	if err := e.store.CreateUser(context.Background(), u); err != nil {
		e.t.Fatal(err)
	}
	return u, e.session(u.ID, e.now.Add(time.Hour))
}

func (e *env) session(userID string, exp time.Time) string {
	e.t.Helper()
	tok := newToken(sessionPrefix)
	s := &storage.UserSession{ID: newID("uss_"), UserID: userID, Prefix: tok[:prefixLen], Hash: hashSecret(tok),
		CreatedAt: e.now.Add(-2 * time.Hour).UTC(), ExpiresAt: exp.UTC()}
	if err := e.store.CreateUserSession(context.Background(), s); err != nil {
		e.t.Fatal(err)
	}
	e.secrets = append(e.secrets, tok)
	return tok
}

func (e *env) tenant(name, ownerID string) *storage.Tenant {
	e.t.Helper()
	t := &storage.Tenant{ID: newID("ten_"), Name: name, Plan: storage.PlanFree, CreatedAt: e.now.UTC()}
	if err := e.store.CreateTenant(context.Background(), t, ownerID); err != nil {
		e.t.Fatal(err)
	}
	return t
}

func (e *env) member(tenantID, userID, role string) {
	e.t.Helper()
	if err := e.store.AddMember(context.Background(), &storage.Membership{TenantID: tenantID, UserID: userID, Role: role, CreatedAt: e.now.UTC()}); err != nil {
		e.t.Fatal(err)
	}
}

// key stores a key directly and returns it with its value.
func (e *env) key(tenantID, kind string, scopes ...string) (*storage.Key, string) {
	e.t.Helper()
	p := secretPrefix
	k := &storage.Key{ID: newID("key_"), TenantID: tenantID, Kind: kind, Scopes: scopes, CreatedAt: e.now.UTC()}
	if kind == storage.KeyPublishable {
		p = publicPrefix
		k.Scopes, k.AgentIDs, k.Origins = nil, []string{"helper"}, []string{"https://shop.example"}
	}
	v := newToken(p)
	k.Prefix, k.Hash = v[:prefixLen], hashSecret(v)
	if err := e.store.CreateKey(context.Background(), k); err != nil {
		e.t.Fatal(err)
	}
	e.secrets = append(e.secrets, v)
	return k, v
}

func (e *env) agent(tenantID, id string) {
	e.t.Helper()
	a := &storage.Agent{ID: id, TenantID: tenantID, Name: "Agent " + id, Engine: storage.EngineKB, CreatedAt: e.now.UTC(), UpdatedAt: e.now.UTC()}
	if err := e.store.CreateAgent(context.Background(), a); err != nil {
		e.t.Fatal(err)
	}
}

// conv stores a conversation of tenantID, started an hour ago and ended,
// with a user and an assistant turn sealed under the tenant's data key
// (texts[i] is turn i+1's text; "" stores it metadata-only); endUser is
// the business's identifier ("" for none), stored as its pseudonym.
func (e *env) conv(tenantID, id, endUser string, texts ...string) *storage.Conversation {
	e.t.Helper()
	ctx := context.Background()
	start := e.now.Add(-time.Hour).UTC().Truncate(time.Millisecond)
	c := &storage.Conversation{ID: id, TenantID: tenantID, AgentID: "helper", Channel: "websocket", Language: "en",
		StartedAt: start, ExpiresAt: start.Add(365 * 24 * time.Hour)}
	if endUser != "" {
		p, err := e.kr.Pseudonym(ctx, tenantID, endUser)
		if err != nil {
			e.t.Fatal(err)
		}
		c.EndUser = p
	}
	if err := e.store.CreateConversation(ctx, c); err != nil {
		e.t.Fatal(err)
	}
	for i, text := range texts {
		tr := &storage.Turn{ID: fmt.Sprintf("%s-item-%d", id, i+1), ConversationID: id, TenantID: tenantID, Seq: i + 1,
			Role: []string{storage.RoleUser, storage.RoleAssistant}[i%2], Status: storage.TurnCompleted, Sentiment: 0.5,
			StartedAt: start.Add(time.Duration(i) * time.Second), EndedAt: start.Add(time.Duration(i)*time.Second + 500*time.Millisecond),
			Latency: storage.Latency{FirstTokenMS: 120, TotalMS: 480}, ExpiresAt: start.Add(90 * 24 * time.Hour)}
		if text != "" {
			sealed, err := e.kr.Seal(ctx, tenantID, []byte(text), seal.TurnAAD(tenantID, id, tr.ID))
			if err != nil {
				e.t.Fatal(err)
			}
			tr.TextSealed, tr.TextStored = sealed, true
		}
		if err := e.store.AppendTurn(ctx, tr); err != nil {
			e.t.Fatal(err)
		}
	}
	if err := e.store.EndConversation(ctx, tenantID, id, start.Add(90*time.Second)); err != nil {
		e.t.Fatal(err)
	}
	got, err := e.store.GetConversation(ctx, tenantID, id)
	if err != nil {
		e.t.Fatal(err)
	}
	return got
}

// usageEvent stores a usage event (and its daily rollup) of a tenant.
func (e *env) usageEvent(tenantID, convID string, at time.Time, dur time.Duration) {
	e.t.Helper()
	ev := &storage.UsageEvent{ID: newID("use_"), TenantID: tenantID, ConversationID: convID, Channel: "websocket", Language: "en",
		At: at.UTC(), DurationMS: dur.Milliseconds(), ExpiresAt: at.Add(storage.UsageRetention).UTC()}
	errs, err := e.store.WriteBatch(context.Background(), []storage.Write{{Usage: ev}})
	if err == nil {
		err = errs[0]
	}
	if err != nil {
		e.t.Fatal(err)
	}
}

// validPolicy is a privacy policy body PUT …/privacy accepts.
func validPolicy() map[string]any {
	return map[string]any{"transcript_days": 30, "metadata_days": 180, "audio_logging": true, "audio_days": 7,
		"redact": map[string]any{"emails": true, "phones": false, "cards": true, "ibans": true}, "training_opt_in": true}
}

// world is two tenants: A with an owner, an admin, a member, a viewer,
// an agent and keys of every kind; B with an owner, an agent, a key and
// an invitation.
type world struct {
	*env
	A, B                                   *storage.Tenant
	owner, admin, memberU, viewer, bobU    *storage.User
	ownerTok, adminTok, memberTok, viewTok string
	bobTok                                 string
	mgmtKey, roKey, rtKey, pubKey          string
	mgmtKeyRec                             *storage.Key
	bKey                                   *storage.Key
	bKeyVal                                string
	bInvitation                            string
	bConv                                  *storage.Conversation // B's conversation, of end user "bob-customer"
}

func newWorld(t *testing.T, tweak ...func(*Options)) *world {
	w := &world{env: newEnv(t, tweak...)}
	w.owner, w.ownerTok = w.user("owner@a.example")
	w.admin, w.adminTok = w.user("admin@a.example")
	w.memberU, w.memberTok = w.user("member@a.example")
	w.viewer, w.viewTok = w.user("viewer@a.example")
	w.bobU, w.bobTok = w.user("bob@b.example")
	w.A = w.tenant("Alpha Corp", w.owner.ID)
	w.B = w.tenant("Bravo Secret Corp", w.bobU.ID)
	w.member(w.A.ID, w.admin.ID, storage.RoleAdmin)
	w.member(w.A.ID, w.memberU.ID, storage.RoleMember)
	w.member(w.A.ID, w.viewer.ID, storage.RoleViewer)
	w.agent(w.A.ID, "helper")
	w.agent(w.B.ID, "bravo-agent")
	w.mgmtKeyRec, w.mgmtKey = w.key(w.A.ID, storage.KeySecret, storage.ScopeManagement)
	_, w.roKey = w.key(w.A.ID, storage.KeySecret, storage.ScopeReadOnly)
	_, w.rtKey = w.key(w.A.ID, storage.KeySecret, storage.ScopeRealtime)
	_, w.pubKey = w.key(w.A.ID, storage.KeyPublishable)
	w.bKey, w.bKeyVal = w.key(w.B.ID, storage.KeySecret, storage.ScopeManagement)
	r := w.do("POST", "/v1/tenants/"+w.B.ID+"/invitations", w.bobTok, map[string]any{"email": "carol@b.example", "role": "member"})
	w.want(r, 201, "")
	w.bInvitation = r.str("id")
	w.secrets = append(w.secrets, r.str("token"))
	w.bConv = w.conv(w.B.ID, "conv-bravo", "bob-customer", "Bravo secret question", "Bravo secret answer")
	return w
}
