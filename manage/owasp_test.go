package manage

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"parley/storage"
)

// validBody is a body each write route accepts, so that a refusal is not
// a validation error.
func validBody(rt Route) any {
	switch rt.OperationID {
	case "updateTenant":
		return map[string]any{"name": "Taken Over"}
	case "updateMember":
		return map[string]any{"role": "viewer"}
	case "createInvitation":
		return map[string]any{"email": "mallory@evil.example", "role": "admin"}
	case "createAgent":
		return map[string]any{"id": "planted"}
	case "updateAgent":
		return map[string]any{"name": "Planted"}
	case "createKey":
		return map[string]any{"kind": "secret", "scopes": []string{"management"}}
	case "putSettings":
		return map[string]any{"settings": map[string]any{"x": 1}}
	case "putPrivacy":
		return validPolicy()
	}
	return nil
}

// fill puts ids into a route pattern.
func fill(pattern string, ids map[string]string) string {
	for k, v := range ids {
		pattern = strings.ReplaceAll(pattern, "{"+k+"}", v)
	}
	return pattern
}

// TestAPI1_BrokenObjectLevelAuthorization: every tenant-scoped route, with
// another tenant's ids, as a user (of every role, the owner included) and
// as a key, is 404 not_found and shows nothing of that tenant.
func TestAPI1_BrokenObjectLevelAuthorization(t *testing.T) {
	w := newWorld(t)
	bIDs := map[string]string{"tenant_id": w.B.ID, "user_id": w.bobU.ID, "agent_id": "bravo-agent", "key_id": w.bKey.ID, "invitation_id": w.bInvitation,
		"conversation_id": w.bConv.ID, "end_user_id": "bob-customer"}
	// A's own tenant with B's object ids: the object lookups are scoped too.
	mixed := map[string]string{"tenant_id": w.A.ID, "user_id": w.bobU.ID, "agent_id": "bravo-agent", "key_id": w.bKey.ID, "invitation_id": w.bInvitation,
		"conversation_id": w.bConv.ID, "end_user_id": "bob-customer"}
	callers := map[string]string{"owner of A": w.ownerTok, "viewer of A": w.viewTok, "management key of A": w.mgmtKey, "read_only key of A": w.roKey}
	n := 0
	for _, rt := range w.api.Routes() {
		if rt.Auth != AuthTenant {
			continue
		}
		for who, cred := range callers {
			r := w.do(rt.Method, fill(rt.Pattern, bIDs), cred, validBody(rt))
			if r.code != 404 || r.errCode() != "not_found" {
				t.Errorf("%s %s as %s on tenant B: %d %s", rt.Method, rt.Pattern, who, r.code, r.raw)
			}
			if strings.Contains(r.raw, "Bravo") || strings.Contains(r.raw, w.B.ID) {
				t.Errorf("%s %s as %s leaks tenant B: %s", rt.Method, rt.Pattern, who, r.raw)
			}
			n++
			if !strings.Contains(rt.Pattern, "{tenant_id}/") || strings.Count(rt.Pattern, "{") < 2 {
				continue
			}
			if who != "owner of A" && who != "management key of A" {
				continue
			}
			r = w.do(rt.Method, fill(rt.Pattern, mixed), cred, validBody(rt))
			switch {
			case rt.OperationID == "deleteEndUserData":
				// An end user is the business's identifier, not an object:
				// in A, B's end user has no data (zero counts, no error).
				if r.code != 200 || !strings.Contains(r.raw, `"conversations":0`) {
					t.Errorf("%s %s as %s with B's end user: %d %s", rt.Method, rt.Pattern, who, r.code, r.raw)
				}
			case r.code != 404:
				t.Errorf("%s %s as %s with B's object id: %d %s", rt.Method, rt.Pattern, who, r.code, r.raw)
			}
			if strings.Contains(r.raw, "Bravo") || strings.Contains(r.raw, w.bConv.EndUser) {
				t.Errorf("%s %s as %s with B's object id leaks tenant B: %s", rt.Method, rt.Pattern, who, r.raw)
			}
			n++
		}
	}
	if n < 80 {
		t.Fatalf("only %d cross-tenant requests", n)
	}
	// Tenant B is untouched.
	tb, err := w.store.GetTenant(context.Background(), w.B.ID)
	if err != nil || tb.Name != "Bravo Secret Corp" || !tb.Active() {
		t.Fatalf("tenant B changed: %+v %v", tb, err)
	}
	if k, _ := w.store.GetKey(context.Background(), w.B.ID, w.bKey.ID); !k.RevokedAt.IsZero() {
		t.Fatal("B's key was revoked")
	}
	if _, err := w.store.GetAgent(context.Background(), w.B.ID, "bravo-agent"); err != nil {
		t.Fatal("B's agent was deleted")
	}
	if _, err := w.store.GetAgent(context.Background(), w.B.ID, "planted"); err == nil {
		t.Fatal("an agent was planted in B")
	}
	// B's conversation in A's export, conversation list and deletion
	// scopes: nothing of it.
	base := "/v1/tenants/" + w.A.ID
	for _, cred := range []string{w.ownerTok, w.mgmtKey} {
		w.want(w.do("GET", base+"/export?conversation_id="+w.bConv.ID, cred, nil), 404, "not_found")
		r := w.do("GET", base+"/export?end_user=bob-customer", cred, nil)
		w.want(r, 200, "")
		if strings.Contains(r.raw, "Bravo") || strings.Contains(r.raw, w.bConv.ID) || strings.Contains(r.raw, w.B.ID) {
			t.Errorf("A's export of B's end user leaks B: %s", r.raw)
		}
		r = w.do("GET", base+"/conversations?end_user=bob-customer", cred, nil)
		w.want(r, 200, "")
		if len(r.data()) != 0 {
			t.Errorf("A lists B's end user's conversations: %s", r.raw)
		}
	}
	// Another tenant's pseudonym of the same end user differs.
	pa, _ := w.kr.Pseudonym(context.Background(), w.A.ID, "bob-customer")
	if pa == w.bConv.EndUser {
		t.Error("the pseudonym of an end user is the same in two tenants")
	}
	// B's conversation is untouched.
	if turns, err := w.store.ListTurns(context.Background(), w.B.ID, w.bConv.ID); err != nil || len(turns) != 2 {
		t.Fatalf("B's conversation changed: %d turns, %v", len(turns), err)
	}
	// An invitation of B accepted by someone else's account: 404.
	w.want(w.do("POST", "/v1/invitations/accept", w.ownerTok, map[string]any{"token": "pi_" + strings.Repeat("a", 43)}), 404, "invitation_not_found")
}

// TestAPI2_BrokenAuthentication: missing, garbage, expired, revoked
// credentials are 401; guessing passwords is throttled (429).
func TestAPI2_BrokenAuthentication(t *testing.T) {
	w := newWorld(t, func(o *Options) {
		o.Limits.SignInPerEmail = Rate{PerSecond: 1.0 / 60, Burst: 3}
		o.Limits.SignInPerIP = Rate{PerSecond: 1.0 / 60, Burst: 5}
	})
	path := "/v1/tenants/" + w.A.ID + "/agents"
	expired := w.session(w.owner.ID, w.now.Add(-time.Minute))
	revoked := w.session(w.owner.ID, w.now.Add(time.Hour))
	w.want(w.do("POST", "/v1/auth/logout", revoked, nil), 200, "")
	revokedKey, revokedKeyVal := w.key(w.A.ID, storage.KeySecret, storage.ScopeManagement)
	w.want(w.do("DELETE", "/v1/tenants/"+w.A.ID+"/keys/"+revokedKey.ID, w.ownerTok, nil), 200, "")
	tampered := w.ownerTok[:len(w.ownerTok)-1] + map[bool]string{true: "b", false: "a"}[strings.HasSuffix(w.ownerTok, "a")]
	cases := []struct {
		name, auth, code string
	}{
		{"no credentials", "", "missing_credentials"},
		{"garbage", "Bearer garbage", "invalid_token"},
		{"basic scheme", "Basic b3duZXI6cGFzcw==", "invalid_token"},
		{"empty bearer", "Bearer ", "invalid_token"},
		{"unknown session", "Bearer ps_" + strings.Repeat("x", 43), "invalid_token"},
		{"tampered session (same prefix)", "Bearer " + tampered, "invalid_token"},
		{"expired session", "Bearer " + expired, "session_expired"},
		{"signed-out session", "Bearer " + revoked, "invalid_token"},
		{"unknown key", "Bearer sk_" + strings.Repeat("x", 43), "invalid_api_key"},
		{"revoked key", "Bearer " + revokedKeyVal, "invalid_api_key"},
		{"ephemeral key", "Bearer ek_" + strings.Repeat("x", 43), "invalid_token"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := w.do("GET", path, "", nil, "Authorization", c.auth)
			want(t, r, 401, c.code)
			if r.hdr.Get("WWW-Authenticate") == "" {
				t.Error("no WWW-Authenticate")
			}
		})
	}
	t.Run("cookie with a key is not a key", func(t *testing.T) {
		want(t, w.do("GET", path, "", nil, "Cookie", SessionCookie+"="+w.mgmtKey), 401, "invalid_token")
	})
	t.Run("brute force per email", func(t *testing.T) {
		for i := range 3 {
			want(t, w.do("POST", "/v1/auth/login", "", map[string]any{"email": "owner@a.example", "password": "guess number " + string(rune('a'+i))}), 401, "invalid_credentials")
		}
		r := w.do("POST", "/v1/auth/login", "", map[string]any{"email": "owner@a.example", "password": testPassword}, "RemoteAddr", "198.51.100.7:1")
		want(t, r, 429, "rate_limit_exceeded")
		if ra := r.hdr.Get("Retry-After"); ra == "" || ra == "0" {
			t.Fatalf("Retry-After %q", ra)
		}
	})
	t.Run("brute force per IP", func(t *testing.T) {
		ip := "203.0.113.9:4000"
		for i := range 5 {
			want(t, w.do("POST", "/v1/auth/login", "", map[string]any{"email": "spray" + string(rune('a'+i)) + "@x.example", "password": "Winter2026!!"}, "RemoteAddr", ip), 401, "")
		}
		want(t, w.do("POST", "/v1/auth/login", "", map[string]any{"email": "sprayz@x.example", "password": "Winter2026!!"}, "RemoteAddr", ip), 429, "rate_limit_exceeded")
		want(t, w.do("POST", "/v1/auth/register", "", map[string]any{"name": "n", "email": "new@x.example", "company": "c", "password": testPassword}, "RemoteAddr", ip), 429, "rate_limit_exceeded")
	})
	t.Run("same answer for unknown email and wrong password", func(t *testing.T) {
		a := w.do("POST", "/v1/auth/login", "", map[string]any{"email": "viewer@a.example", "password": "wrong password"}, "RemoteAddr", "192.0.2.50:1")
		b := w.do("POST", "/v1/auth/login", "", map[string]any{"email": "ghost@a.example", "password": "wrong password"}, "RemoteAddr", "192.0.2.51:1")
		if a.code != b.code || a.raw != b.raw {
			t.Fatalf("answers differ:\n%s\n%s", a.raw, b.raw)
		}
	})
}

// TestAPI3_BrokenObjectPropertyLevelAuthorization: mass assignment of
// read-only properties (plan, created_by, ids) and role escalation are
// refused; unknown fields are named; responses hold no hashes.
func TestAPI3_BrokenObjectPropertyLevelAuthorization(t *testing.T) {
	w := newWorld(t)
	base := "/v1/tenants/" + w.A.ID
	cases := []struct {
		name, method, path, cred string
		body                     string
		status                   int
		code, param              string
	}{
		{"tenant plan", "PATCH", base, w.ownerTok, `{"name":"x","plan":"enterprise"}`, 400, "read_only_parameter", "plan"},
		{"tenant plan only", "PATCH", base, w.ownerTok, `{"plan":"enterprise"}`, 400, "read_only_parameter", "plan"},
		{"tenant disabled_at", "PATCH", base, w.ownerTok, `{"disabled_at":null}`, 400, "read_only_parameter", "disabled_at"},
		{"tenant id", "PATCH", base, w.ownerTok, `{"id":"ten_other"}`, 400, "read_only_parameter", "id"},
		{"key created_by", "POST", base + "/keys", w.adminTok, `{"kind":"secret","scopes":["realtime"],"created_by":"user_x"}`, 400, "read_only_parameter", "created_by"},
		{"key tenant_id", "POST", base + "/keys", w.adminTok, `{"kind":"secret","scopes":["realtime"],"tenant_id":"` + w.B.ID + `"}`, 400, "read_only_parameter", "tenant_id"},
		{"key prefix", "POST", base + "/keys", w.adminTok, `{"kind":"secret","scopes":["realtime"],"prefix":"sk_chosen123"}`, 400, "read_only_parameter", "prefix"},
		{"agent tenant_id", "POST", base + "/agents", w.memberTok, `{"id":"a1","tenant_id":"` + w.B.ID + `"}`, 400, "read_only_parameter", "tenant_id"},
		{"agent id change", "PATCH", base + "/agents/helper", w.memberTok, `{"id":"renamed"}`, 400, "read_only_parameter", "id"},
		{"member email", "PATCH", base + "/members/" + w.viewer.ID, w.adminTok, `{"role":"member","email":"x@y.z"}`, 400, "read_only_parameter", "email"},
		{"invitation accepted_at", "POST", base + "/invitations", w.adminTok, `{"email":"a@b.c","role":"viewer","accepted_at":"2020-01-01T00:00:00Z"}`, 400, "read_only_parameter", "accepted_at"},
		{"unknown field", "PATCH", base, w.ownerTok, `{"nmae":"typo"}`, 400, "unknown_parameter", "nmae"},
		{"register with a role", "POST", "/v1/auth/register", "", `{"name":"n","email":"r@x.example","company":"c","password":"` + testPassword + `","role":"owner"}`, 400, "unknown_parameter", "role"},
		{"register with a plan", "POST", "/v1/auth/register", "", `{"name":"n","email":"r@x.example","company":"c","password":"` + testPassword + `","plan":"enterprise"}`, 400, "unknown_parameter", "plan"},
		{"wrong type", "PATCH", base, w.ownerTok, `{"name":42}`, 400, "invalid_type", "name"},
		{"admin promotes self to owner", "PATCH", base + "/members/" + w.admin.ID, w.adminTok, `{"role":"owner"}`, 403, "permission_denied", ""},
		{"admin promotes viewer to owner", "PATCH", base + "/members/" + w.viewer.ID, w.adminTok, `{"role":"owner"}`, 403, "permission_denied", ""},
		{"admin demotes the owner", "PATCH", base + "/members/" + w.owner.ID, w.adminTok, `{"role":"viewer"}`, 403, "permission_denied", ""},
		{"admin removes the owner", "DELETE", base + "/members/" + w.owner.ID, w.adminTok, ``, 403, "permission_denied", ""},
		{"admin invites an owner", "POST", base + "/invitations", w.adminTok, `{"email":"boss@x.example","role":"owner"}`, 403, "permission_denied", ""},
		{"key invites an owner", "POST", base + "/invitations", w.mgmtKey, `{"email":"boss@x.example","role":"owner"}`, 403, "permission_denied", ""},
		{"bad role", "PATCH", base + "/members/" + w.viewer.ID, w.adminTok, `{"role":"superuser"}`, 400, "invalid_value", "role"},
		{"missing field names it", "POST", base + "/agents", w.memberTok, `{"name":"no id"}`, 400, "missing_parameter", "id"},
		{"weak password names it", "POST", "/v1/auth/register", "", `{"name":"n","email":"w@x.example","company":"c","password":"short"}`, 400, "weak_password", "password"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var body any
			if c.body != "" {
				body = c.body
			}
			r := w.do(c.method, c.path, c.cred, body)
			want(t, r, c.status, c.code)
			if r.errParam() != c.param {
				t.Fatalf("param %q, want %q", r.errParam(), c.param)
			}
		})
	}
	tn, _ := w.store.GetTenant(context.Background(), w.A.ID)
	if tn.Plan != storage.PlanFree || tn.Name != "Alpha Corp" {
		t.Fatalf("tenant changed: %+v", tn)
	}
	if m, _ := w.store.GetMembership(context.Background(), w.A.ID, w.admin.ID); m.Role != storage.RoleAdmin {
		t.Fatalf("admin became %s", m.Role)
	}
	for _, p := range []string{"/v1/me", base + "/members", base + "/keys", base + "/invitations"} {
		r := w.do("GET", p, w.ownerTok, nil)
		for _, leak := range []string{"hash", "argon2", "password"} {
			if strings.Contains(strings.ToLower(r.raw), leak) {
				t.Errorf("GET %s holds %q: %s", p, leak, r.raw)
			}
		}
	}
}

// TestAPI4_UnrestrictedResourceConsumption: body limit, per-key, per-user
// and per-IP rate limits, pagination capped.
func TestAPI4_UnrestrictedResourceConsumption(t *testing.T) {
	w := newWorld(t, func(o *Options) {
		o.Limits.PerPrincipal = Rate{PerSecond: 0.01, Burst: 5}
		o.Limits.PerIP = Rate{PerSecond: 0.01, Burst: 30}
		o.Limits.MaxPageSize = 2
	})
	base := "/v1/tenants/" + w.A.ID
	t.Run("body limit", func(t *testing.T) {
		big := `{"settings":{"x":"` + strings.Repeat("a", 70<<10) + `"}}`
		want(t, w.do("PUT", base+"/settings", w.adminTok, big, "RemoteAddr", "10.0.0.1:1"), 413, "body_too_large")
	})
	t.Run("pagination capped", func(t *testing.T) {
		w.agent(w.A.ID, "a2")
		w.agent(w.A.ID, "a3")
		r := w.do("GET", base+"/agents?limit=100000", w.viewTok, nil, "RemoteAddr", "10.0.0.2:1")
		want(t, r, 200, "")
		if len(r.data()) != 2 || r.body["next_cursor"] == nil {
			t.Fatalf("page: %s", r.raw)
		}
		r = w.do("GET", base+"/agents?limit=2&after="+r.body["next_cursor"].(string), w.viewTok, nil, "RemoteAddr", "10.0.0.2:1")
		if len(r.data()) != 1 || r.body["next_cursor"] != nil {
			t.Fatalf("second page: %s", r.raw)
		}
		r = w.do("GET", base+"/agents?limit=0", w.viewTok, nil, "RemoteAddr", "10.0.0.2:1")
		want(t, r, 400, "invalid_value")
		if r.errParam() != "limit" {
			t.Fatal(r.raw)
		}
		r = w.do("GET", base+"/agents?after=not-a-cursor", w.viewTok, nil, "RemoteAddr", "10.0.0.2:1")
		want(t, r, 400, "invalid_value")
		if r.errParam() != "after" {
			t.Fatal(r.raw)
		}
	})
	t.Run("per key", func(t *testing.T) {
		var r *resp
		for i := range 6 {
			r = w.do("GET", base+"/agents", w.mgmtKey, nil, "RemoteAddr", "10.0.1."+string(rune('0'+i))+":1")
		}
		want(t, r, 429, "rate_limit_exceeded")
		if r.hdr.Get("Retry-After") == "" || r.body["error"].(map[string]any)["type"] != "rate_limit_error" {
			t.Fatalf("429: %v %s", r.hdr, r.raw)
		}
		// Another principal from the same place is not affected.
		want(t, w.do("GET", base+"/agents", w.roKey, nil, "RemoteAddr", "10.0.1.9:1"), 200, "")
	})
	t.Run("per IP", func(t *testing.T) {
		var r *resp
		for range 31 {
			r = w.do("GET", "/v1/openapi.json", "", nil, "RemoteAddr", "10.0.2.1:1")
		}
		want(t, r, 429, "rate_limit_exceeded")
		want(t, w.do("GET", base+"/agents", w.ownerTok, nil, "RemoteAddr", "10.0.2.1:1"), 429, "rate_limit_exceeded")
	})
}

// TestAPI5_BrokenFunctionLevelAuthorization: the role table and the key
// scopes decide per route.
func TestAPI5_BrokenFunctionLevelAuthorization(t *testing.T) {
	w := newWorld(t)
	base := "/v1/tenants/" + w.A.ID
	w.conv(w.A.ID, "conv-a", "alice", "Hello", "Hi there")
	key := map[string]any{"kind": "secret", "scopes": []string{"management"}}
	cases := []struct {
		name, method, path, cred string
		body                     any
		status                   int
		code                     string
	}{
		{"viewer creates a key", "POST", base + "/keys", w.viewTok, key, 403, "permission_denied"},
		{"member creates a key", "POST", base + "/keys", w.memberTok, key, 403, "permission_denied"},
		{"member lists keys", "GET", base + "/keys", w.memberTok, nil, 403, "permission_denied"},
		{"member reads the audit log", "GET", base + "/audit", w.memberTok, nil, 403, "permission_denied"},
		{"member reads the API call log", "GET", base + "/api_calls", w.memberTok, nil, 403, "permission_denied"},
		{"viewer writes an agent", "POST", base + "/agents", w.viewTok, map[string]any{"id": "v"}, 403, "permission_denied"},
		{"viewer renames the tenant", "PATCH", base, w.viewTok, map[string]any{"name": "v"}, 403, "permission_denied"},
		{"member invites", "POST", base + "/invitations", w.memberTok, map[string]any{"email": "x@y.z", "role": "viewer"}, 403, "permission_denied"},
		{"member writes settings", "PUT", base + "/settings", w.memberTok, map[string]any{"settings": map[string]any{}}, 403, "permission_denied"},
		{"admin deletes the tenant", "DELETE", base, w.adminTok, nil, 403, "permission_denied"},
		{"admin renames the tenant", "PATCH", base, w.adminTok, map[string]any{"name": "v"}, 403, "permission_denied"},
		{"management key deletes the tenant", "DELETE", base, w.mgmtKey, nil, 403, "insufficient_scope"},
		{"read_only key writes an agent", "POST", base + "/agents", w.roKey, map[string]any{"id": "ro"}, 403, "insufficient_scope"},
		{"read_only key revokes a key", "DELETE", base + "/keys/" + w.mgmtKeyRec.ID, w.roKey, nil, 403, "insufficient_scope"},
		{"realtime-only key reads agents", "GET", base + "/agents", w.rtKey, nil, 403, "insufficient_scope"},
		{"realtime-only key creates a key", "POST", base + "/keys", w.rtKey, key, 403, "insufficient_scope"},
		{"publishable key reads agents", "GET", base + "/agents", w.pubKey, nil, 403, "insufficient_scope"},
		{"publishable key lists tenants", "GET", "/v1/tenants", w.pubKey, nil, 403, "insufficient_scope"},
		{"key on a user route", "GET", "/v1/me", w.mgmtKey, nil, 403, "user_session_required"},
		{"key changes a password", "POST", "/v1/auth/password", w.mgmtKey, map[string]any{"current_password": "x", "new_password": "y"}, 403, "user_session_required"},
		// Allowed, for contrast.
		{"read_only key reads agents", "GET", base + "/agents", w.roKey, nil, 200, ""},
		{"read_only key reads keys", "GET", base + "/keys", w.roKey, nil, 200, ""},
		{"management key writes an agent", "POST", base + "/agents", w.mgmtKey, map[string]any{"id": "by-key"}, 201, ""},
		{"member writes an agent", "POST", base + "/agents", w.memberTok, map[string]any{"id": "by-member"}, 201, ""},
		{"admin reads the audit log", "GET", base + "/audit", w.adminTok, nil, 200, ""},

		// The privacy routes.
		{"viewer lists conversations", "GET", base + "/conversations", w.viewTok, nil, 403, "permission_denied"},
		{"viewer reads a conversation", "GET", base + "/conversations/conv-a", w.viewTok, nil, 403, "permission_denied"},
		{"member exports", "GET", base + "/export", w.memberTok, nil, 403, "permission_denied"},
		{"member exports an end user", "GET", base + "/export?end_user=alice", w.memberTok, nil, 403, "permission_denied"},
		{"member deletes a conversation", "DELETE", base + "/conversations/conv-a", w.memberTok, nil, 403, "permission_denied"},
		{"member deletes an end user's data", "DELETE", base + "/end_users/alice", w.memberTok, nil, 403, "permission_denied"},
		{"member deletes every conversation", "DELETE", base + "/conversations?confirm=delete-all", w.memberTok, nil, 403, "permission_denied"},
		{"viewer writes the privacy policy", "PUT", base + "/privacy", w.viewTok, validPolicy(), 403, "permission_denied"},
		{"admin writes the privacy policy", "PUT", base + "/privacy", w.adminTok, validPolicy(), 403, "permission_denied"},
		{"management key writes the privacy policy", "PUT", base + "/privacy", w.mgmtKey, validPolicy(), 403, "insufficient_scope"},
		{"read_only key deletes a conversation", "DELETE", base + "/conversations/conv-a", w.roKey, nil, 403, "insufficient_scope"},
		{"read_only key deletes an end user's data", "DELETE", base + "/end_users/alice", w.roKey, nil, 403, "insufficient_scope"},
		{"read_only key deletes every conversation", "DELETE", base + "/conversations?confirm=delete-all", w.roKey, nil, 403, "insufficient_scope"},
		{"realtime-only key exports", "GET", base + "/export", w.rtKey, nil, 403, "insufficient_scope"},
		{"realtime-only key lists conversations", "GET", base + "/conversations", w.rtKey, nil, 403, "insufficient_scope"},
		{"publishable key reads a conversation", "GET", base + "/conversations/conv-a", w.pubKey, nil, 403, "insufficient_scope"},
		{"publishable key reads usage", "GET", base + "/usage", w.pubKey, nil, 403, "insufficient_scope"},
		{"viewer reads the privacy policy", "GET", base + "/privacy", w.viewTok, nil, 200, ""},
		{"viewer reads usage", "GET", base + "/usage", w.viewTok, nil, 200, ""},
		{"member lists conversations", "GET", base + "/conversations", w.memberTok, nil, 200, ""},
		{"member reads a conversation", "GET", base + "/conversations/conv-a", w.memberTok, nil, 200, ""},
		{"read_only key exports", "GET", base + "/export", w.roKey, nil, 200, ""},
		{"admin exports", "GET", base + "/export", w.adminTok, nil, 200, ""},
		{"owner writes the privacy policy", "PUT", base + "/privacy", w.ownerTok, validPolicy(), 200, ""},
		{"management key deletes an end user's data", "DELETE", base + "/end_users/nobody", w.mgmtKey, nil, 200, ""},
		{"admin deletes a conversation", "DELETE", base + "/conversations/conv-a", w.adminTok, nil, 200, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { want(t, w.do(c.method, c.path, c.cred, c.body), c.status, c.code) })
	}
	ks, _, _ := w.store.ListKeys(context.Background(), w.A.ID, "", 100)
	if len(ks) != 4 {
		t.Fatalf("%d keys, want the 4 fixtures", len(ks))
	}
}

// TestAPI8_SecurityMisconfiguration: no CORS on management routes, the
// session cookie's attributes, the CSRF defence for cookie requests,
// no-store and nosniff on every answer, errors in the one shape.
func TestAPI8_SecurityMisconfiguration(t *testing.T) {
	w := newWorld(t, func(o *Options) { o.SecureCookies = true })
	base := "/v1/tenants/" + w.A.ID
	t.Run("no CORS", func(t *testing.T) {
		for _, r := range []*resp{
			w.do("OPTIONS", base+"/keys", "", nil, "Origin", "https://evil.example", "Access-Control-Request-Method", "POST"),
			w.do("GET", base+"/keys", w.ownerTok, nil, "Origin", "https://evil.example"),
			w.do("POST", "/v1/auth/login", "", map[string]any{"email": "a@b.c", "password": "x"}, "Origin", "https://evil.example"),
		} {
			for h := range r.hdr {
				if strings.HasPrefix(strings.ToLower(h), "access-control-") {
					t.Fatalf("CORS header %s: %v", h, r.hdr)
				}
			}
		}
		r := w.do("OPTIONS", base+"/keys", "", nil, "Origin", "https://evil.example")
		want(t, r, 405, "method_not_allowed")
	})
	t.Run("cookie attributes", func(t *testing.T) {
		r := w.do("POST", "/v1/auth/login", "", map[string]any{"email": "viewer@a.example", "password": testPassword})
		want(t, r, 200, "")
		w.secrets = append(w.secrets, r.str("token"))
		sc := r.hdr.Get("Set-Cookie")
		for _, want := range []string{SessionCookie + "=" + r.str("token"), "Path=/v1", "HttpOnly", "Secure", "SameSite=Lax", "Max-Age=43200"} {
			if !strings.Contains(sc, want) {
				t.Errorf("Set-Cookie %q lacks %q", sc, want)
			}
		}
		r = w.do("POST", "/v1/auth/logout", r.str("token"), nil)
		if sc := r.hdr.Get("Set-Cookie"); !strings.Contains(sc, "Max-Age=0") {
			t.Errorf("logout does not clear the cookie: %q", sc)
		}
	})
	t.Run("CSRF", func(t *testing.T) {
		cookie := SessionCookie + "=" + w.memberTok
		agent := func(id string) map[string]any { return map[string]any{"id": id} }
		want(t, w.do("GET", base+"/agents", "", nil, "Cookie", cookie), 200, "")
		want(t, w.do("POST", base+"/agents", "", agent("c1"), "Cookie", cookie), 403, "csrf_failed")
		want(t, w.do("POST", base+"/agents", "", agent("c2"), "Cookie", cookie, CSRFHeader, "1", "Origin", "https://evil.example"), 403, "csrf_failed")
		want(t, w.do("POST", base+"/agents", "", agent("c3"), "Cookie", cookie, CSRFHeader, "1"), 201, "")
		want(t, w.do("POST", base+"/agents", "", agent("c4"), "Cookie", cookie, "Origin", "http://example.com"), 201, "") // httptest's host
		want(t, w.do("POST", base+"/agents", w.memberTok, agent("c5")), 201, "")                                          // bearer: no CSRF needed
		want(t, w.do("POST", "/v1/auth/login", "", map[string]any{"email": "a@b.c", "password": "x"}, "Origin", "https://evil.example"), 403, "csrf_failed")
	})
	t.Run("headers and error shape", func(t *testing.T) {
		for _, r := range []*resp{
			w.do("GET", base+"/keys", w.ownerTok, nil),
			w.do("GET", base+"/keys", "", nil),
			w.do("GET", "/v1/nope", "", nil),
			w.do("POST", base+"/agents", w.memberTok, "not json"),
		} {
			if r.hdr.Get("Cache-Control") != "no-store" || r.hdr.Get("X-Content-Type-Options") != "nosniff" || r.hdr.Get("Content-Type") != "application/json" {
				t.Errorf("headers %v", r.hdr)
			}
			if r.code >= 400 {
				var e errorBody
				if err := json.Unmarshal([]byte(r.raw), &e); err != nil || e.Error.Code == "" || e.Error.Type == "" || e.Error.Message == "" {
					t.Errorf("error shape: %s", r.raw)
				}
			}
		}
		r := w.do("POST", base+"/agents", w.memberTok, `{"id":"x"}`, "Content-Type", "text/plain")
		want(t, r, 415, "unsupported_media_type")
	})
}

// TestViewerCreatingAKeyIsRefusedAndLoggedWithoutTheKey: the refusal is
// logged at info with ids, route pattern and code, never the presented
// token (nor any key).
func TestViewerCreatingAKeyIsRefusedAndLoggedWithoutTheKey(t *testing.T) {
	w := newWorld(t)
	r := w.do("POST", "/v1/tenants/"+w.A.ID+"/keys", w.viewTok, map[string]any{"kind": "secret", "scopes": []string{"management"}})
	w.want(r, 403, "permission_denied")
	// And a realtime-only key trying the same.
	w.want(w.do("POST", "/v1/tenants/"+w.A.ID+"/keys", w.rtKey, map[string]any{"kind": "secret", "scopes": []string{"management"}}), 403, "insufficient_scope")
	logs := w.logs.String()
	var found, foundKey bool
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if m["message"] != "request refused" {
			continue
		}
		if m["level"] != "info" || m["route"] != "/v1/tenants/{tenant_id}/keys" || m["status"] != 403.0 {
			continue
		}
		if m["code"] == "permission_denied" && m["user_id"] == w.viewer.ID && m["tenant_id"] == w.A.ID {
			found = true
		}
		if m["code"] == "insufficient_scope" && m["key_id"] != nil && m["key_prefix"] == w.rtKey[:prefixLen] {
			foundKey = true
		}
	}
	if !found || !foundKey {
		t.Fatalf("refusals not logged (viewer %v, key %v):\n%s", found, foundKey, logs)
	}
	for _, s := range []string{w.viewTok, w.rtKey, w.viewTok[prefixLen:], w.rtKey[prefixLen:]} {
		if strings.Contains(logs, s) {
			t.Fatal("the presented secret is in the logs")
		}
	}
	// No key was made.
	ks, _, _ := w.store.ListKeys(context.Background(), w.A.ID, "", 100)
	if len(ks) != 4 {
		t.Fatalf("%d keys", len(ks))
	}
	_ = http.StatusOK
}

// TestAPI7_ServerSideRequestForgery: the management API accepts URLs in
// one place, a publishable key's origins, and only as origins (scheme,
// host, port: no path, no credentials) that are compared, never fetched:
// creating such a key makes no request to the URL.
func TestAPI7_ServerSideRequestForgery(t *testing.T) {
	var hits atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer target.Close()
	w := newWorld(t)
	base := "/v1/tenants/" + w.A.ID
	w.want(w.do("POST", base+"/agents", w.memberTok, map[string]any{"id": "bot"}), 201, "")
	for _, bad := range []string{target.URL + "/path", "http://user:pw@169.254.169.254", "file:///etc/passwd", "gopher://127.0.0.1:25", "169.254.169.254"} {
		w.want(w.do("POST", base+"/keys", w.adminTok, map[string]any{"kind": "publishable", "agent_ids": []string{"bot"}, "origins": []string{bad}}),
			400, "invalid_value")
	}
	w.want(w.do("POST", base+"/keys", w.adminTok, map[string]any{"kind": "publishable", "agent_ids": []string{"bot"}, "origins": []string{target.URL}}), 201, "")
	time.Sleep(50 * time.Millisecond)
	if n := hits.Load(); n != 0 {
		t.Fatalf("the server fetched a URL it was given %d times", n)
	}
}
