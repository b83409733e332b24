package manage

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"parley/storage"
)

func TestAuthFlow(t *testing.T) {
	e := newEnv(t)
	r := e.do("POST", "/v1/auth/register", "", map[string]any{"name": "Ada", "email": " Ada@Example.com ", "company": "Analytical", "password": testPassword})
	e.want(r, http.StatusCreated, "")
	tok := r.str("token")
	e.secrets = append(e.secrets, tok)
	if !wellFormed(tok, sessionPrefix) {
		t.Fatalf("token %q is not ps_ + 43 base62", tok[:prefixLen])
	}
	user := r.body["user"].(map[string]any)
	tenant := r.body["tenant"].(map[string]any)
	if user["email"] != "ada@example.com" || tenant["name"] != "Analytical" || tenant["plan"] != storage.PlanFree {
		t.Fatalf("register: %s", r.raw)
	}
	if strings.Contains(r.raw, "argon2") || strings.Contains(r.raw, "password") {
		t.Fatalf("register answer leaks the password hash: %s", r.raw)
	}
	e.want(e.do("POST", "/v1/auth/register", "", map[string]any{"name": "Ada", "email": "ada@example.com", "company": "X", "password": testPassword}),
		http.StatusConflict, "email_taken")

	r = e.do("GET", "/v1/me", tok, nil)
	e.want(r, 200, "")
	ms := r.body["memberships"].([]any)
	if len(ms) != 1 || ms[0].(map[string]any)["role"] != "owner" {
		t.Fatalf("me: %s", r.raw)
	}

	e.want(e.do("POST", "/v1/auth/login", "", map[string]any{"email": "ada@example.com", "password": "wrong password!"}), 401, "invalid_credentials")
	e.want(e.do("POST", "/v1/auth/login", "", map[string]any{"email": "nobody@example.com", "password": "wrong password!"}), 401, "invalid_credentials")
	r = e.do("POST", "/v1/auth/login", "", map[string]any{"email": "ADA@example.com", "password": testPassword})
	e.want(r, 200, "")
	tok2 := r.str("token")
	e.secrets = append(e.secrets, tok2)

	// The password change signs out every other session, not this one.
	r = e.do("POST", "/v1/auth/password", tok2, map[string]any{"current_password": testPassword, "new_password": "a much better passphrase"})
	e.want(r, 200, "")
	if r.body["revoked"].(float64) != 1 {
		t.Fatalf("password change revoked %v sessions, want 1", r.body["revoked"])
	}
	e.want(e.do("GET", "/v1/me", tok, nil), 401, "invalid_token")
	e.want(e.do("GET", "/v1/me", tok2, nil), 200, "")
	e.want(e.do("POST", "/v1/auth/password", tok2, map[string]any{"current_password": "not it at all", "new_password": "another passphrase"}), 400, "incorrect_password")

	e.want(e.do("POST", "/v1/auth/logout", tok2, nil), 200, "")
	e.want(e.do("GET", "/v1/me", tok2, nil), 401, "invalid_token")

	u, err := e.store.GetUserByEmail(context.Background(), "ada@example.com")
	if err != nil {
		t.Fatal(err)
	}
	a, b := e.session(u.ID, e.now.Add(time.Hour)), e.session(u.ID, e.now.Add(time.Hour))
	r = e.do("POST", "/v1/auth/logout_all", a, nil)
	e.want(r, 200, "")
	e.want(e.do("GET", "/v1/me", b, nil), 401, "invalid_token")
}

func TestTenantsMembersInvitations(t *testing.T) {
	w := newWorld(t)
	r := w.do("GET", "/v1/tenants", w.ownerTok, nil)
	w.want(r, 200, "")
	if d := r.data(); len(d) != 1 || d[0].(map[string]any)["id"] != w.A.ID {
		t.Fatalf("tenants: %s", r.raw)
	}
	r = w.do("GET", "/v1/tenants", w.mgmtKey, nil)
	w.want(r, 200, "")
	if d := r.data(); len(d) != 1 || d[0].(map[string]any)["id"] != w.A.ID {
		t.Fatalf("tenants of a key: %s", r.raw)
	}
	base := "/v1/tenants/" + w.A.ID
	w.want(w.do("GET", base, w.viewTok, nil), 200, "")
	r = w.do("PATCH", base, w.ownerTok, map[string]any{"name": "Alpha Renamed"})
	w.want(r, 200, "")
	if r.str("name") != "Alpha Renamed" {
		t.Fatalf("rename: %s", r.raw)
	}

	r = w.do("GET", base+"/members", w.viewTok, nil)
	w.want(r, 200, "")
	if len(r.data()) != 4 {
		t.Fatalf("members: %s", r.raw)
	}

	// Invite Dora as a member; she signs in and accepts.
	r = w.do("POST", base+"/invitations", w.adminTok, map[string]any{"email": "Dora@a.example", "role": "member"})
	w.want(r, 201, "")
	invTok, invID := r.str("token"), r.str("id")
	w.secrets = append(w.secrets, invTok)
	r = w.do("GET", base+"/invitations", w.adminTok, nil)
	if len(r.data()) != 1 || strings.Contains(r.raw, invTok) {
		t.Fatalf("invitations list: %s", r.raw)
	}
	_, doraTok := w.user("dora@a.example")
	w.want(w.do("POST", "/v1/invitations/accept", w.bobTok, map[string]any{"token": invTok}), 404, "invitation_not_found") // not Bob's
	r = w.do("POST", "/v1/invitations/accept", doraTok, map[string]any{"token": invTok})
	w.want(r, 200, "")
	if r.str("role") != "member" {
		t.Fatalf("accept: %s", r.raw)
	}
	w.want(w.do("POST", "/v1/invitations/accept", doraTok, map[string]any{"token": invTok}), 409, "invitation_used")
	w.want(w.do("GET", base+"/agents", doraTok, nil), 200, "")

	// Roles: the admin makes the member a viewer, then removes them.
	r = w.do("PATCH", base+"/members/"+w.memberU.ID, w.adminTok, map[string]any{"role": "viewer"})
	w.want(r, 200, "")
	if r.str("role") != "viewer" {
		t.Fatalf("role: %s", r.raw)
	}
	w.want(w.do("DELETE", base+"/members/"+w.memberU.ID, w.adminTok, nil), 200, "")
	w.want(w.do("GET", base, w.memberTok, nil), 404, "not_found")
	// The last owner stays.
	w.want(w.do("PATCH", base+"/members/"+w.owner.ID, w.ownerTok, map[string]any{"role": "admin"}), 409, "last_owner")

	r = w.do("POST", base+"/invitations", w.ownerTok, map[string]any{"email": "eve@a.example", "role": "viewer"})
	w.secrets = append(w.secrets, r.str("token"))
	w.want(w.do("DELETE", base+"/invitations/"+r.str("id"), w.ownerTok, nil), 200, "")
	w.want(w.do("DELETE", base+"/invitations/"+invID, w.ownerTok, nil), 200, "")

	// Deleting disables now, purges later; the tenant's keys stop at once.
	w.want(w.do("GET", base, w.mgmtKey, nil), 200, "")
	r = w.do("DELETE", base, w.ownerTok, nil)
	w.want(r, 200, "")
	if r.body["disabled_at"] == nil || r.body["purge_after"] == nil {
		t.Fatalf("delete: %s", r.raw)
	}
	purge, _ := time.Parse(time.RFC3339, r.str("purge_after"))
	if d := purge.Sub(w.now); d < storage.TenantPurgeDelay-time.Minute || d > storage.TenantPurgeDelay+time.Minute {
		t.Fatalf("purge after %v, want %v", d, storage.TenantPurgeDelay)
	}
	w.want(w.do("GET", base, w.mgmtKey, nil), 401, "invalid_api_key")
	w.want(w.do("PATCH", base, w.ownerTok, map[string]any{"name": "x"}), 409, "tenant_disabled")
	w.want(w.do("GET", base, w.ownerTok, nil), 200, "")
}

func TestAgentsKeysSettingsLogs(t *testing.T) {
	w := newWorld(t)
	base := "/v1/tenants/" + w.A.ID
	r := w.do("POST", base+"/agents", w.memberTok, map[string]any{"id": "sales", "name": "Sales", "instructions": "Sell.",
		"engine": "kb", "voice": "alloy", "language": "en", "settings": map[string]any{"top_k": 3,
			"knowledge": map[string]any{"pricing.md": "# Pricing\n\nThe team plan costs 20 euros a month."}}})
	w.want(r, 201, "")
	w.want(w.do("POST", base+"/agents", w.memberTok, map[string]any{"id": "y", "engine": "openai"}), 400, "invalid_value")
	r = w.do("POST", base+"/agents", w.memberTok, map[string]any{"id": "y", "settings": map[string]any{"temperature": 0.2}})
	w.want(r, 400, "invalid_value")
	if r.body["error"].(map[string]any)["param"] != "settings.temperature" {
		t.Fatalf("unknown setting: %s", r.raw)
	}
	w.want(w.do("POST", base+"/agents", w.memberTok, map[string]any{"id": "y", "settings": map[string]any{"top_k": 99}}), 400, "invalid_value")
	w.want(w.do("POST", base+"/agents", w.memberTok, map[string]any{"id": "sales"}), 409, "agent_exists")
	w.want(w.do("POST", base+"/agents", w.memberTok, map[string]any{"id": "Bad Id"}), 400, "invalid_value")
	w.want(w.do("POST", base+"/agents", w.memberTok, map[string]any{"id": "x", "engine": "gpt"}), 400, "invalid_value")
	w.want(w.do("POST", base+"/agents", w.memberTok, map[string]any{"id": "x", "settings": []int{1}}), 400, "invalid_value")
	r = w.do("GET", base+"/agents", w.viewTok, nil)
	w.want(r, 200, "")
	if len(r.data()) != 2 {
		t.Fatalf("agents: %s", r.raw)
	}
	r = w.do("PATCH", base+"/agents/sales", w.memberTok, map[string]any{"greeting": "Hi!", "settings": map[string]any{"top_k": 2}})
	w.want(r, 200, "")
	if r.str("greeting") != "Hi!" || r.str("instructions") != "Sell." || r.body["settings"].(map[string]any)["top_k"] != 2.0 {
		t.Fatalf("patch agent: %s", r.raw)
	}
	w.want(w.do("GET", base+"/agents/sales", w.viewTok, nil), 200, "")
	w.want(w.do("DELETE", base+"/agents/sales", w.memberTok, nil), 200, "")
	w.want(w.do("GET", base+"/agents/sales", w.viewTok, nil), 404, "not_found")

	// A secret key: shown once, works, is listed without its value, revoked.
	r = w.do("POST", base+"/keys", w.adminTok, map[string]any{"kind": "secret", "name": "ci", "scopes": []string{"management"}})
	w.want(r, 201, "")
	val := r.str("value")
	w.secrets = append(w.secrets, val)
	if !wellFormed(val, secretPrefix) || r.str("prefix") != val[:prefixLen] || r.str("created_by") != w.admin.ID {
		t.Fatalf("key: %s", r.raw)
	}
	keyID := r.str("id")
	w.want(w.do("GET", base+"/agents", val, nil), 200, "")
	r = w.do("GET", base+"/keys", w.adminTok, nil)
	w.want(r, 200, "")
	if strings.Contains(r.raw, val) || strings.Contains(r.raw, `"hash"`) {
		t.Fatalf("key list leaks: %s", r.raw)
	}
	r = w.do("POST", base+"/keys", w.mgmtKey, map[string]any{"kind": "publishable", "agent_ids": []string{"helper"}, "origins": []string{"https://shop.example"}})
	w.want(r, 201, "")
	w.secrets = append(w.secrets, r.str("value"))
	if !wellFormed(r.str("value"), publicPrefix) {
		t.Fatalf("publishable: %s", r.raw)
	}
	w.want(w.do("POST", base+"/keys", w.adminTok, map[string]any{"kind": "publishable", "agent_ids": []string{"bravo-agent"}, "origins": []string{"https://x.example"}}),
		400, "invalid_value")
	w.want(w.do("POST", base+"/keys", w.adminTok, map[string]any{"kind": "publishable", "agent_ids": []string{"helper"}, "origins": []string{"https://x.example/path"}}),
		400, "invalid_value")
	r = w.do("POST", base+"/keys", w.adminTok, map[string]any{"kind": "secret", "scopes": []string{"management", "read_only"}})
	w.want(r, 400, "invalid_value")
	if r.errParam() != "scopes" {
		t.Fatalf("param %q, want scopes", r.errParam())
	}
	r = w.do("DELETE", base+"/keys/"+keyID, w.adminTok, nil)
	w.want(r, 200, "")
	if r.body["revoked_at"] == nil {
		t.Fatalf("revoke: %s", r.raw)
	}
	w.want(w.do("GET", base+"/agents", val, nil), 401, "invalid_api_key")

	// Settings.
	r = w.do("GET", base+"/settings", w.viewTok, nil)
	w.want(r, 200, "")
	if len(r.body["settings"].(map[string]any)) != 0 {
		t.Fatalf("settings: %s", r.raw)
	}
	w.want(w.do("PUT", base+"/settings", w.adminTok, map[string]any{"settings": map[string]any{"retention_days": 30}}), 200, "")
	r = w.do("GET", base+"/settings", w.viewTok, nil)
	if r.body["settings"].(map[string]any)["retention_days"] != 30.0 || r.body["updated_at"] == nil {
		t.Fatalf("settings: %s", r.raw)
	}
	w.want(w.do("PUT", base+"/settings", w.adminTok, map[string]any{"settings": "x"}), 400, "invalid_value")

	// The audit log has who did what.
	r = w.do("GET", base+"/audit?limit=100", w.adminTok, nil)
	w.want(r, 200, "")
	actions := map[string]bool{}
	for _, d := range r.data() {
		m := d.(map[string]any)
		actions[m["action"].(string)] = true
		if m["actor_id"] == "" {
			t.Fatalf("audit entry without actor: %v", m)
		}
	}
	for _, a := range []string{"agent.create", "agent.update", "agent.delete", "key.create", "key.revoke", "settings.update"} {
		if !actions[a] {
			t.Errorf("audit log lacks %s: %v", a, actions)
		}
	}
	entries, _, err := w.store.ListAudit(context.Background(), w.A.ID, "", 1)
	if err != nil {
		t.Fatal(err)
	}
	if d := entries[0].ExpiresAt.Sub(entries[0].At); d != AuditRetention {
		t.Fatalf("audit retention %v, want %v", d, AuditRetention)
	}

	// The API call log: written by the API's goroutine, flushed by Close.
	if err := w.api.Close(); err != nil {
		t.Fatal(err)
	}
	calls, _, err := w.store.ListAPICalls(context.Background(), w.A.ID, "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	var sawKey, sawPattern bool
	for _, c := range calls {
		if strings.Contains(c.Route, w.A.ID) {
			t.Fatalf("API call log holds a raw path: %+v", c)
		}
		if c.Route == "/v1/tenants/{tenant_id}/agents/{agent_id}" {
			sawPattern = true
		}
		if c.KeyID == w.mgmtKeyRec.ID {
			sawKey = true
		}
		if d := c.ExpiresAt.Sub(c.At); d != storage.APICallRetention {
			t.Fatalf("API call retention %v", d)
		}
	}
	if !sawKey || !sawPattern {
		t.Fatalf("API call log: key %v, pattern %v in %d entries", sawKey, sawPattern, len(calls))
	}
	if len(calls) < 20 {
		t.Fatalf("only %d API calls logged", len(calls))
	}
	// GET /v1/tenants/{tenant_id}/api_calls reads it (a fresh API over the same store).
	api2, err := New(Options{Accounts: w.store, Keys: w.keys, Limits: generous()})
	if err != nil {
		t.Fatal(err)
	}
	defer api2.Close()
	w.h = api2.Handler()
	r = w.do("GET", base+"/api_calls?limit=5", w.adminTok, nil)
	w.want(r, 200, "")
	if len(r.data()) != 5 || r.body["next_cursor"] == nil {
		t.Fatalf("api_calls: %s", r.raw)
	}
}

func TestIdempotencyKey(t *testing.T) {
	w := newWorld(t)
	base := "/v1/tenants/" + w.A.ID
	body := map[string]any{"id": "once", "name": "Once"}
	r1 := w.do("POST", base+"/agents", w.memberTok, body, "Idempotency-Key", "k-1")
	w.want(r1, 201, "")
	r2 := w.do("POST", base+"/agents", w.memberTok, body, "Idempotency-Key", "k-1")
	w.want(r2, 201, "")
	if r2.raw != r1.raw || r2.hdr.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replay differs:\n%s\n%s", r1.raw, r2.raw)
	}
	w.want(w.do("POST", base+"/agents", w.memberTok, map[string]any{"id": "other"}, "Idempotency-Key", "k-1"), 422, "idempotency_key_reused")

	// A created key's value is never stored for replay.
	kb := map[string]any{"kind": "secret", "scopes": []string{"realtime"}}
	r1 = w.do("POST", base+"/keys", w.adminTok, kb, "Idempotency-Key", "k-2")
	w.want(r1, 201, "")
	w.secrets = append(w.secrets, r1.str("value"))
	r2 = w.do("POST", base+"/keys", w.adminTok, kb, "Idempotency-Key", "k-2")
	w.want(r2, 201, "")
	if r2.body["value"] != nil || r2.str("id") != r1.str("id") {
		t.Fatalf("key replay: %s", r2.raw)
	}
	rec, err := w.store.GetIdempotency(context.Background(), w.A.ID, "k-2")
	if err != nil || strings.Contains(string(rec.Body), r1.str("value")) {
		t.Fatalf("idempotency record holds the key (err %v)", err)
	}

	// Another node is running a request with this key (its reservation
	// is pending): this one does not run it again.
	r1 = w.do("POST", base+"/agents", w.memberTok, map[string]any{"id": "fails", "engine": "nope"}, "Idempotency-Key", "k-3")
	w.want(r1, 400, "invalid_value")                                                                                    // a failed request releases its key...
	w.want(w.do("POST", base+"/agents", w.memberTok, map[string]any{"id": "fails"}, "Idempotency-Key", "k-3"), 201, "") // ...for a retry
	pending := &storage.IdempotencyRecord{TenantID: w.A.ID, Key: "k-4", RequestHash: []byte("elsewhere"), Status: storage.IdempotencyPending,
		CreatedAt: time.Now().UTC(), ExpiresAt: time.Now().Add(time.Hour).UTC()}
	if err := w.store.ReserveIdempotency(context.Background(), pending); err != nil {
		t.Fatal(err)
	}
	w.want(w.do("POST", base+"/agents", w.memberTok, map[string]any{"id": "twice"}, "Idempotency-Key", "k-4"), 422, "idempotency_key_reused")
	pending.Key = "k-5"
	kind, actor := storage.ActorUser, w.memberU.ID
	pending.RequestHash = hashParts("POST", "/v1/tenants/{tenant_id}/agents", kind, actor, `{"id":"twice"}`)
	if err := w.store.ReserveIdempotency(context.Background(), pending); err != nil {
		t.Fatal(err)
	}
	w.want(w.do("POST", base+"/agents", w.memberTok, map[string]any{"id": "twice"}, "Idempotency-Key", "k-5"), 409, "idempotency_key_in_progress")
}
