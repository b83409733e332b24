package manage

import (
	"encoding/json"
	"time"

	"parley/storage"
)

// The JSON views of the records. They are the response schemas of the
// OpenAPI document too: a field without omitempty is required there.

func tp(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

type userView struct {
	ID        string    `json:"id"`
	Email     string    `json:"email"`
	Name      string    `json:"name"`
	Company   string    `json:"company"`
	CreatedAt time.Time `json:"created_at"`
}

func viewUser(u *storage.User) userView {
	return userView{ID: u.ID, Email: u.Email, Name: u.Name, Company: u.Company, CreatedAt: u.CreatedAt.UTC()}
}

type tenantView struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Plan       string     `json:"plan"`
	CreatedAt  time.Time  `json:"created_at"`
	DisabledAt *time.Time `json:"disabled_at"`
	PurgeAfter *time.Time `json:"purge_after"`
}

func viewTenant(t *storage.Tenant) tenantView {
	return tenantView{ID: t.ID, Name: t.Name, Plan: t.Plan, CreatedAt: t.CreatedAt.UTC(),
		DisabledAt: tp(t.DisabledAt), PurgeAfter: tp(t.PurgeAfter)}
}

type memberView struct {
	TenantID  string    `json:"tenant_id"`
	UserID    string    `json:"user_id"`
	Email     string    `json:"email"`
	Name      string    `json:"name"`
	Role      string    `json:"role"`
	CreatedAt time.Time `json:"created_at"`
}

func viewMember(m *storage.Membership) memberView {
	return memberView{TenantID: m.TenantID, UserID: m.UserID, Email: m.Email, Name: m.Name, Role: m.Role, CreatedAt: m.CreatedAt.UTC()}
}

type invitationView struct {
	ID         string     `json:"id"`
	TenantID   string     `json:"tenant_id"`
	Email      string     `json:"email"`
	Role       string     `json:"role"`
	InvitedBy  string     `json:"invited_by"`
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  time.Time  `json:"expires_at"`
	AcceptedAt *time.Time `json:"accepted_at"`
}

func viewInvitation(inv *storage.Invitation) invitationView {
	return invitationView{ID: inv.ID, TenantID: inv.TenantID, Email: inv.Email, Role: inv.Role, InvitedBy: inv.InvitedBy,
		CreatedAt: inv.CreatedAt.UTC(), ExpiresAt: inv.ExpiresAt.UTC(), AcceptedAt: tp(inv.AcceptedAt)}
}

// createdInvitation is an invitation as created: with its token, shown
// this once.
type createdInvitation struct {
	invitationView
	Token *string `json:"token"`
}

type keyView struct {
	ID         string     `json:"id"`
	TenantID   string     `json:"tenant_id"`
	Kind       string     `json:"kind"`
	Name       string     `json:"name"`
	Prefix     string     `json:"prefix"`
	Scopes     []string   `json:"scopes"`
	AgentIDs   []string   `json:"agent_ids"`
	Origins    []string   `json:"origins"`
	CreatedBy  string     `json:"created_by"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
	RevokedAt  *time.Time `json:"revoked_at"`
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func viewKey(k *storage.Key) keyView {
	return keyView{ID: k.ID, TenantID: k.TenantID, Kind: k.Kind, Name: k.Name, Prefix: k.Prefix,
		Scopes: nonNil(k.Scopes), AgentIDs: nonNil(k.AgentIDs), Origins: nonNil(k.Origins), CreatedBy: k.CreatedBy,
		CreatedAt: k.CreatedAt.UTC(), LastUsedAt: tp(k.LastUsedAt), RevokedAt: tp(k.RevokedAt)}
}

// createdKey is a key as created: with its value, shown this once.
type createdKey struct {
	keyView
	Value *string `json:"value"`
}

type agentView struct {
	ID           string          `json:"id"`
	TenantID     string          `json:"tenant_id"`
	Name         string          `json:"name"`
	Instructions string          `json:"instructions"`
	Greeting     string          `json:"greeting"`
	Engine       string          `json:"engine"`
	Voice        string          `json:"voice"`
	Language     string          `json:"language"`
	Settings     json.RawMessage `json:"settings"`
	CreatedAt    time.Time       `json:"created_at"`
	UpdatedAt    time.Time       `json:"updated_at"`
}

func jsonObject(b []byte) json.RawMessage {
	if len(b) == 0 {
		return json.RawMessage("{}")
	}
	return json.RawMessage(b)
}

// viewAgent is a's view with its plaintext settings (see AgentSettings).
func viewAgent(a *storage.Agent, settings []byte) agentView {
	return agentView{ID: a.ID, TenantID: a.TenantID, Name: a.Name, Instructions: a.Instructions, Greeting: a.Greeting,
		Engine: a.Engine, Voice: a.Voice, Language: a.Language, Settings: jsonObject(settings),
		CreatedAt: a.CreatedAt.UTC(), UpdatedAt: a.UpdatedAt.UTC()}
}

type settingsView struct {
	TenantID  string          `json:"tenant_id"`
	Settings  json.RawMessage `json:"settings"`
	UpdatedAt *time.Time      `json:"updated_at"`
}

type auditView struct {
	ID         string    `json:"id"`
	ActorKind  string    `json:"actor_kind"`
	ActorID    string    `json:"actor_id"`
	Action     string    `json:"action"`
	TargetKind string    `json:"target_kind"`
	TargetID   string    `json:"target_id"`
	At         time.Time `json:"at"`
}

func viewAudit(e *storage.AuditEntry) auditView {
	return auditView{ID: e.ID, ActorKind: e.ActorKind, ActorID: e.ActorID, Action: e.Action,
		TargetKind: e.TargetKind, TargetID: e.TargetID, At: e.At.UTC()}
}

type apiCallView struct {
	ID     string    `json:"id"`
	KeyID  string    `json:"key_id"`
	UserID string    `json:"user_id"`
	Method string    `json:"method"`
	Route  string    `json:"route"`
	Status int       `json:"status"`
	At     time.Time `json:"at"`
}

func viewAPICall(c *storage.APICall) apiCallView {
	return apiCallView{ID: c.ID, KeyID: c.KeyID, UserID: c.UserID, Method: c.Method, Route: c.Route, Status: c.Status, At: c.At.UTC()}
}

type deletedView struct {
	ID      string `json:"id"`
	Deleted bool   `json:"deleted"`
}
