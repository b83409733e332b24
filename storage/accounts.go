package storage

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// This file holds the records of multi-tenancy (tenants, the people who
// sign in, their memberships and invitations, sign-in sessions, keys,
// tenant-managed agents and settings, the API call and audit logs,
// idempotency records) and the Accounts interface that keeps them. The
// conversation Store is unchanged; a Backend is both.
//
// Rules every Accounts implementation follows (the conformance suite,
// storagetest.RunAccounts, checks them):
//
//   - Every method that reads or writes tenant data takes the tenant id and
//     scopes by it: an id that exists in another tenant is ErrNotFound, as
//     if it did not exist, and never that tenant's data (OWASP API1).
//   - Bad input is ErrInvalid, wrapped with the offending field or
//     parameter named; every record's Validate says what is bad, so test
//     doubles reject the same records as the backends.
//   - A duplicate (id, email, key/session/invitation prefix, agent id
//     within a tenant, a member added twice) is ErrConflict.
//   - Creating a record in a tenant (or for a user) that does not exist is
//     ErrNotFound.
//   - Times are kept at millisecond precision and returned in UTC; a zero
//     time means "not set" where a field allows it. CreatedAt (At for log
//     entries) is required on every record: lists are ordered by it.
//   - Lists take a cursor and a limit and return one page and the cursor
//     of the next one (see Cursor).

// TenantPurgeDelay is how long a deleted tenant's data is kept, disabled,
// before it is purged (the privacy policy: "account data kept for the
// account's life plus 30 days after deletion").
const TenantPurgeDelay = 30 * 24 * time.Hour

// Tenant plans. Plan is free-form (any non-empty string); these are the
// ones Parley knows.
const (
	PlanFree       = "free"
	PlanTeam       = "team"
	PlanEnterprise = "enterprise"
)

// DefaultTenantPlan is the plan migration 0004 gives the default tenant:
// an upgraded installation is its operator's own, and the upgrade must not
// put limits on what it did before.
const DefaultTenantPlan = PlanEnterprise

// Tenant is a customer account: the unit that owns conversations, keys,
// agents and settings.
type Tenant struct {
	ID        string
	Name      string // required
	Plan      string // required, free-form (PlanFree, PlanTeam, ...)
	CreatedAt time.Time
	// DisabledAt is when the tenant was disabled; zero while it is
	// active. The keys of a disabled tenant authenticate nothing
	// (KeysByPrefix, APIKeysByPrefix and ConsumeEphemeralKey skip them)
	// and its invitations cannot be accepted.
	DisabledAt time.Time
	// PurgeAfter is set when the tenant was deleted (disabled at once,
	// purged TenantPurgeDelay later); zero otherwise.
	PurgeAfter time.Time
}

// Active reports whether the tenant is not disabled.
func (t *Tenant) Active() bool { return t.DisabledAt.IsZero() }

// Validate reports why t cannot be stored, as an error wrapping
// ErrInvalid that names the field, or nil.
func (t *Tenant) Validate() error {
	switch {
	case t.ID == "":
		return required("Tenant", "ID")
	case t.Name == "":
		return required("Tenant", "Name")
	case t.Plan == "":
		return required("Tenant", "Plan")
	case t.CreatedAt.IsZero():
		return required("Tenant", "CreatedAt")
	}
	return nil
}

// User is a person who signs in to the management API. Users are not
// tenant data: a user belongs to tenants through memberships.
type User struct {
	ID string
	// Email is unique among users, compared and stored normalized
	// (NormalizeEmail): CreateUser writes the normalized form back.
	Email   string
	Name    string
	Company string
	// PasswordHash is opaque to storage (the gateway hashes with
	// argon2id); empty for a user without a password.
	PasswordHash      []byte
	CreatedAt         time.Time
	PasswordChangedAt time.Time // zero if never set
}

// Validate reports why u cannot be stored (ErrInvalid naming the field)
// or nil. It expects u.Email already normalized, as CreateUser does.
func (u *User) Validate() error {
	switch {
	case u.ID == "":
		return required("User", "ID")
	case u.CreatedAt.IsZero():
		return required("User", "CreatedAt")
	}
	return checkEmail("User.Email", u.Email)
}

// Membership roles (not to be confused with the turn roles RoleUser and
// RoleAssistant). A tenant always keeps at least one owner once it has
// one: removing or demoting its last owner is ErrConflict.
const (
	RoleOwner  = "owner"
	RoleAdmin  = "admin"
	RoleMember = "member"
	RoleViewer = "viewer"
)

// ValidRole reports whether role is one of the membership roles.
func ValidRole(role string) bool {
	switch role {
	case RoleOwner, RoleAdmin, RoleMember, RoleViewer:
		return true
	}
	return false
}

// Membership is a user's role in a tenant; a user may belong to several
// tenants.
type Membership struct {
	TenantID  string
	UserID    string
	Role      string // RoleOwner, RoleAdmin, RoleMember or RoleViewer
	CreatedAt time.Time

	// Email and Name are the user's, filled by GetMembership and
	// ListMembers; writes ignore them.
	Email, Name string
}

// Validate reports why m cannot be stored (ErrInvalid naming the field)
// or nil.
func (m *Membership) Validate() error {
	switch {
	case m.TenantID == "":
		return required("Membership", "TenantID")
	case m.UserID == "":
		return required("Membership", "UserID")
	case m.CreatedAt.IsZero():
		return required("Membership", "CreatedAt")
	}
	return CheckRole("Membership.Role", m.Role)
}

// Invitation invites an email address into a tenant with a role. The
// token is stored like a key: only its hash, and a unique prefix to find
// the row. It can be accepted once, before ExpiresAt.
type Invitation struct {
	ID        string
	TenantID  string
	Email     string // normalized by CreateInvitation, like User.Email
	Role      string
	Prefix    string // unique
	Hash      []byte // of the whole token
	InvitedBy string // the inviting user's id ("" for the system)
	CreatedAt time.Time
	ExpiresAt time.Time // required
	// AcceptedAt is when AcceptInvitation used it; zero while pending.
	AcceptedAt time.Time
}

// Validate reports why inv cannot be stored (ErrInvalid naming the field)
// or nil. It expects inv.Email already normalized.
func (inv *Invitation) Validate() error {
	switch {
	case inv.ID == "":
		return required("Invitation", "ID")
	case inv.TenantID == "":
		return required("Invitation", "TenantID")
	case inv.Prefix == "":
		return required("Invitation", "Prefix")
	case len(inv.Hash) == 0:
		return required("Invitation", "Hash")
	case inv.CreatedAt.IsZero():
		return required("Invitation", "CreatedAt")
	case inv.ExpiresAt.IsZero():
		return required("Invitation", "ExpiresAt")
	case !inv.AcceptedAt.IsZero():
		return fmt.Errorf("%w: Invitation.AcceptedAt must be zero: invitations are accepted with AcceptInvitation", ErrInvalid)
	}
	if err := checkEmail("Invitation.Email", inv.Email); err != nil {
		return err
	}
	return CheckRole("Invitation.Role", inv.Role)
}

// UserSession is a sign-in to the management API (a cookie or a bearer
// token): only its hash is kept, and a unique prefix to find the row.
type UserSession struct {
	ID         string
	UserID     string
	Prefix     string // unique
	Hash       []byte // of the whole token
	CreatedAt  time.Time
	ExpiresAt  time.Time // required; the sweeper deletes the row then
	LastSeenAt time.Time // zero until TouchUserSession
	RevokedAt  time.Time // zero unless signed out
}

// Validate reports why s cannot be stored (ErrInvalid naming the field)
// or nil.
func (s *UserSession) Validate() error {
	switch {
	case s.ID == "":
		return required("UserSession", "ID")
	case s.UserID == "":
		return required("UserSession", "UserID")
	case s.Prefix == "":
		return required("UserSession", "Prefix")
	case len(s.Hash) == 0:
		return required("UserSession", "Hash")
	case s.CreatedAt.IsZero():
		return required("UserSession", "CreatedAt")
	case s.ExpiresAt.IsZero():
		return required("UserSession", "ExpiresAt")
	}
	return nil
}

// Key kinds.
const (
	// KeySecret is a server-side key ("sk_..."), with scopes.
	KeySecret = "secret"
	// KeyPublishable is a key meant to be seen (the website widget):
	// realtime only, for the listed agents, from the listed origins.
	KeyPublishable = "publishable"
)

// Secret key scopes.
const (
	ScopeRealtime   = "realtime"   // the realtime API (sessions, calls, ephemeral keys)
	ScopeManagement = "management" // the management API, read and write
	ScopeReadOnly   = "read_only"  // the management API, read only
)

// OwnerKeyScopes returns the scopes of an owner key: a secret key allowed
// everything. Keys created with CreateAPIKey, and every key of a database
// upgraded from before migration 0004, have them.
func OwnerKeyScopes() []string { return []string{ScopeRealtime, ScopeManagement} }

// Key is a stored API key of a tenant, secret or publishable. Only a hash
// of the key is kept; Prefix (unique) is the non-secret start that finds
// the row. APIKey is the older view of the same rows: an APIKey is a
// secret Key with OwnerKeyScopes.
type Key struct {
	ID       string
	TenantID string
	Kind     string // KeySecret or KeyPublishable
	Name     string // a label, may be empty
	Prefix   string // unique among all keys
	Hash     []byte
	// Scopes are a secret key's (at least one of ScopeRealtime,
	// ScopeManagement, ScopeReadOnly; not both ScopeManagement and
	// ScopeReadOnly); a publishable key has none.
	Scopes []string
	// AgentIDs and Origins restrict a publishable key (at least one of
	// each); a secret key has none.
	AgentIDs   []string
	Origins    []string
	CreatedBy  string // the creating user's id, "" for the system
	CreatedAt  time.Time
	LastUsedAt time.Time // zero if never used
	RevokedAt  time.Time // zero while the key is usable
}

// HasScope reports whether k has scope.
func (k *Key) HasScope(scope string) bool { return slices.Contains(k.Scopes, scope) }

// Validate reports why k cannot be stored (ErrInvalid naming the field)
// or nil.
func (k *Key) Validate() error {
	switch {
	case k.ID == "":
		return required("Key", "ID")
	case k.TenantID == "":
		return required("Key", "TenantID")
	case k.Prefix == "":
		return required("Key", "Prefix")
	case len(k.Hash) == 0:
		return required("Key", "Hash")
	case k.CreatedAt.IsZero():
		return required("Key", "CreatedAt")
	case !k.RevokedAt.IsZero():
		return fmt.Errorf("%w: Key.RevokedAt must be zero: keys are revoked with RevokeKey", ErrInvalid)
	}
	if err := checkList("Key.AgentIDs", k.AgentIDs); err != nil {
		return err
	}
	if err := checkList("Key.Origins", k.Origins); err != nil {
		return err
	}
	switch k.Kind {
	case KeySecret:
		if len(k.Scopes) == 0 {
			return fmt.Errorf("%w: Key.Scopes: a secret key needs at least one scope", ErrInvalid)
		}
		for i, s := range k.Scopes {
			switch s {
			case ScopeRealtime, ScopeManagement, ScopeReadOnly:
			default:
				return fmt.Errorf("%w: Key.Scopes: unknown scope %q (want %s, %s or %s)", ErrInvalid, s, ScopeRealtime, ScopeManagement, ScopeReadOnly)
			}
			if slices.Contains(k.Scopes[:i], s) {
				return fmt.Errorf("%w: Key.Scopes: %q twice", ErrInvalid, s)
			}
		}
		if k.HasScope(ScopeManagement) && k.HasScope(ScopeReadOnly) {
			return fmt.Errorf("%w: Key.Scopes: %s and %s exclude each other", ErrInvalid, ScopeManagement, ScopeReadOnly)
		}
		if len(k.AgentIDs) > 0 || len(k.Origins) > 0 {
			return fmt.Errorf("%w: Key.AgentIDs and Key.Origins apply to publishable keys only", ErrInvalid)
		}
	case KeyPublishable:
		switch {
		case len(k.Scopes) > 0:
			return fmt.Errorf("%w: Key.Scopes: a publishable key has no scopes (it is realtime only)", ErrInvalid)
		case len(k.AgentIDs) == 0:
			return fmt.Errorf("%w: Key.AgentIDs: a publishable key needs at least one agent", ErrInvalid)
		case len(k.Origins) == 0:
			return fmt.Errorf("%w: Key.Origins: a publishable key needs at least one origin", ErrInvalid)
		}
	default:
		return fmt.Errorf("%w: Key.Kind: unknown kind %q (want %s or %s)", ErrInvalid, k.Kind, KeySecret, KeyPublishable)
	}
	return nil
}

// Agent engines.
const (
	EngineKB     = "kb"
	EngineOpenAI = "openai"
)

// agentIDPattern is config's agent id rule, so the configured agents can
// become rows of the default tenant unchanged.
var agentIDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

// Agent is a tenant-managed agent. IDs are unique per tenant (another
// tenant may use the same one).
type Agent struct {
	ID           string // 1-64 lowercase letters, digits, '-' or '_', like config
	TenantID     string
	Name         string
	Instructions string
	Greeting     string
	Engine       string // EngineKB or EngineOpenAI
	Voice        string
	Language     string
	// Settings is a plaintext JSON document, opaque to storage: only rows
	// written before migration 0005 have one (Privacy.LegacyPlaintext
	// finds them to be sealed). New rows keep their settings, which hold
	// the agent's knowledge documents, in SettingsSealed.
	Settings []byte
	// SettingsSealed is the agent's settings document sealed under the
	// tenant's data key (storage/seal), opaque to storage.
	SettingsSealed []byte
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

// Validate reports why a cannot be stored (ErrInvalid naming the field)
// or nil.
func (a *Agent) Validate() error {
	switch {
	case a.TenantID == "":
		return required("Agent", "TenantID")
	case !agentIDPattern.MatchString(a.ID):
		return fmt.Errorf("%w: Agent.ID %q must be 1-64 lowercase letters, digits, '-' or '_'", ErrInvalid, a.ID)
	case a.Engine != EngineKB && a.Engine != EngineOpenAI:
		return fmt.Errorf("%w: Agent.Engine: unknown engine %q (want %s or %s)", ErrInvalid, a.Engine, EngineKB, EngineOpenAI)
	case a.CreatedAt.IsZero():
		return required("Agent", "CreatedAt")
	case a.UpdatedAt.IsZero():
		return required("Agent", "UpdatedAt")
	}
	return checkJSON("Agent.Settings", a.Settings)
}

// ValidateUpdate is Validate for UpdateAgent, which keeps the stored
// CreatedAt: a.CreatedAt may be zero.
func (a *Agent) ValidateUpdate() error {
	v := *a
	if v.CreatedAt.IsZero() {
		v.CreatedAt = v.UpdatedAt
	}
	return v.Validate()
}

// Setting is a tenant's settings: one JSON document, opaque to storage.
type Setting struct {
	TenantID  string
	Settings  []byte // a JSON document (may be empty)
	UpdatedAt time.Time
}

// Validate reports why s cannot be stored (ErrInvalid naming the field)
// or nil.
func (s *Setting) Validate() error {
	switch {
	case s.TenantID == "":
		return required("Setting", "TenantID")
	case s.UpdatedAt.IsZero():
		return required("Setting", "UpdatedAt")
	}
	return checkJSON("Setting.Settings", s.Settings)
}

// APICall is one entry of the API call log: who called which endpoint,
// when, and the response status. Never bodies. Entries are kept 12 months
// (the caller sets ExpiresAt; the sweeper deletes by it).
type APICall struct {
	ID       string
	TenantID string
	KeyID    string // the key used, "" if none
	UserID   string // the signed-in user, "" if none
	Method   string // GET, POST, ...
	// Route is the route pattern ("/v1/agents/{id}"), never the raw path,
	// which may hold ids or other data.
	Route     string
	Status    int // 100-599
	At        time.Time
	ExpiresAt time.Time
}

// APICallRetention is how long API call log entries are kept (the
// privacy policy: "usage records deleted after 12 months").
const APICallRetention = 365 * 24 * time.Hour

// Validate reports why c cannot be stored (ErrInvalid naming the field)
// or nil.
func (c *APICall) Validate() error {
	switch {
	case c.ID == "":
		return required("APICall", "ID")
	case c.TenantID == "":
		return required("APICall", "TenantID")
	case c.Method == "" || strings.ContainsFunc(c.Method, notUpper):
		return fmt.Errorf("%w: APICall.Method %q must be an upper-case HTTP method", ErrInvalid, c.Method)
	case c.Route == "":
		return required("APICall", "Route")
	case c.Status < 100 || c.Status > 599:
		return fmt.Errorf("%w: APICall.Status %d is not an HTTP status", ErrInvalid, c.Status)
	case c.At.IsZero():
		return required("APICall", "At")
	case c.ExpiresAt.IsZero():
		return required("APICall", "ExpiresAt")
	}
	return nil
}

// Audit actor kinds.
const (
	ActorUser   = "user"
	ActorKey    = "key"
	ActorSystem = "system"
)

// AuditEntry records one change to a tenant's account: who (a user, a key,
// or the system) did what ("key.create") to what. The caller chooses its
// expiry (long: the account's life is the usual choice).
type AuditEntry struct {
	ID         string
	TenantID   string
	ActorKind  string // ActorUser, ActorKey or ActorSystem
	ActorID    string // required unless ActorKind is ActorSystem
	Action     string // e.g. "key.create", "member.remove"
	TargetKind string // e.g. "key"; may be empty
	TargetID   string
	At         time.Time
	ExpiresAt  time.Time
}

// Validate reports why e cannot be stored (ErrInvalid naming the field)
// or nil.
func (e *AuditEntry) Validate() error {
	switch {
	case e.ID == "":
		return required("AuditEntry", "ID")
	case e.TenantID == "":
		return required("AuditEntry", "TenantID")
	case e.ActorKind != ActorUser && e.ActorKind != ActorKey && e.ActorKind != ActorSystem:
		return fmt.Errorf("%w: AuditEntry.ActorKind: unknown kind %q (want %s, %s or %s)", ErrInvalid, e.ActorKind, ActorUser, ActorKey, ActorSystem)
	case e.ActorID == "" && e.ActorKind != ActorSystem:
		return required("AuditEntry", "ActorID")
	case e.Action == "":
		return required("AuditEntry", "Action")
	case e.At.IsZero():
		return required("AuditEntry", "At")
	case e.ExpiresAt.IsZero():
		return required("AuditEntry", "ExpiresAt")
	}
	return nil
}

// IdempotencyRecord is the stored response of a request made with an
// Idempotency-Key, replayed when the same key comes again.
type IdempotencyRecord struct {
	TenantID    string
	Key         string // the client's Idempotency-Key, unique per tenant
	RequestHash []byte // of the request, to tell a replay from a misuse
	Status      int    // 100-599
	Body        []byte // may be empty
	CreatedAt   time.Time
	ExpiresAt   time.Time
}

// Validate reports why r cannot be stored (ErrInvalid naming the field)
// or nil.
func (r *IdempotencyRecord) Validate() error {
	switch {
	case r.TenantID == "":
		return required("IdempotencyRecord", "TenantID")
	case r.Key == "":
		return required("IdempotencyRecord", "Key")
	case len(r.RequestHash) == 0:
		return required("IdempotencyRecord", "RequestHash")
	case r.Status != IdempotencyPending && (r.Status < 100 || r.Status > 599):
		return fmt.Errorf("%w: IdempotencyRecord.Status %d is not an HTTP status (or 0, pending)", ErrInvalid, r.Status)
	case r.CreatedAt.IsZero():
		return required("IdempotencyRecord", "CreatedAt")
	case r.ExpiresAt.IsZero():
		return required("IdempotencyRecord", "ExpiresAt")
	}
	return nil
}

// Accounts keeps the records of multi-tenancy. Every method is safe for
// concurrent use. See the rules at the top of this file; what a method adds
// to them is in its comment.
type Accounts interface {
	// CreateTenant inserts t and, when ownerID is not empty, makes that
	// user its owner (a Membership created at t.CreatedAt), in one
	// transaction: ErrNotFound if the user does not exist, and then no
	// tenant is created either.
	CreateTenant(ctx context.Context, t *Tenant, ownerID string) error
	GetTenant(ctx context.Context, id string) (*Tenant, error)
	// UpdateTenant sets the Name and Plan of tenant t.ID; the other
	// fields are ignored.
	UpdateTenant(ctx context.Context, t *Tenant) error
	// ListTenants lists the tenants userID is a member of (disabled ones
	// included: see Tenant.DisabledAt), by (CreatedAt, ID).
	ListTenants(ctx context.Context, userID, after string, limit int) ([]Tenant, string, error)
	// DisableTenant disables tenant id at at; a non-zero purgeAfter also
	// schedules its purge (that is deleting it: at.Add(TenantPurgeDelay)).
	// Idempotent: the first DisabledAt and the first PurgeAfter are kept.
	DisableTenant(ctx context.Context, id string, at, purgeAfter time.Time) error
	// EnableTenant makes tenant id active again and cancels its purge.
	EnableTenant(ctx context.Context, id string) error

	// CreateUser normalizes u.Email (written back) and inserts u;
	// ErrConflict if the id or the email is taken.
	CreateUser(ctx context.Context, u *User) error
	GetUser(ctx context.Context, id string) (*User, error)
	// GetUserByEmail finds a user by email, normalized first.
	GetUserByEmail(ctx context.Context, email string) (*User, error)
	// UpdateUserPassword replaces the password hash (ErrInvalid when
	// empty) and sets PasswordChangedAt to at. It does not sign the user
	// out: call RevokeUserSessions for that.
	UpdateUserPassword(ctx context.Context, id string, hash []byte, at time.Time) error

	// AddMember inserts m. ErrNotFound if the tenant or the user does not
	// exist; ErrConflict if the user is already a member.
	AddMember(ctx context.Context, m *Membership) error
	GetMembership(ctx context.Context, tenantID, userID string) (*Membership, error)
	// UpdateMemberRole changes a member's role. ErrConflict if that would
	// demote the tenant's last owner; checked and applied atomically, so
	// two owners demoting each other at once cannot leave none.
	UpdateMemberRole(ctx context.Context, tenantID, userID, role string) error
	// RemoveMember removes a member; ErrConflict if it is the tenant's
	// last owner (atomically, like UpdateMemberRole).
	RemoveMember(ctx context.Context, tenantID, userID string) error
	// ListMembers lists a tenant's members by (CreatedAt, UserID).
	ListMembers(ctx context.Context, tenantID, after string, limit int) ([]Membership, string, error)

	// CreateInvitation normalizes inv.Email (written back) and inserts
	// inv. ErrNotFound if the tenant does not exist; ErrConflict if the id
	// or the prefix is taken.
	CreateInvitation(ctx context.Context, inv *Invitation) error
	// InvitationByPrefix returns the invitation with that prefix, of any
	// tenant and in any state (pending, accepted, expired), so that an
	// invitation page can say why a link no longer works. The caller
	// must compare the token's hash with Hash (crypto/subtle) before
	// showing anything.
	InvitationByPrefix(ctx context.Context, prefix string) (*Invitation, error)
	// AcceptInvitation finds the invitation by prefix, compares hash in
	// constant time, marks it accepted at at and makes userID a member of
	// its tenant with its role (created at at), atomically: of concurrent
	// acceptances exactly one succeeds. The checks, in order: ErrNotFound
	// when no invitation has that prefix and hash, or its tenant is
	// disabled; ErrExpired when ExpiresAt <= at; ErrUsed when it was
	// accepted before; ErrNotFound when the user does not exist and
	// ErrConflict when the user is already a member (the invitation then
	// stays pending). Whether the accepting user's email must match the
	// invitation's is the caller's policy. ErrInvalid when at is zero. On
	// success it returns the invitation with AcceptedAt set.
	AcceptInvitation(ctx context.Context, prefix string, hash []byte, userID string, at time.Time) (*Invitation, error)
	// ListInvitations lists a tenant's invitations, pending or not, by
	// (CreatedAt, ID).
	ListInvitations(ctx context.Context, tenantID, after string, limit int) ([]Invitation, string, error)
	// DeleteInvitation deletes (withdraws) an invitation.
	DeleteInvitation(ctx context.Context, tenantID, id string) error

	// CreateUserSession inserts s. ErrNotFound if the user does not
	// exist; ErrConflict if the id or the prefix is taken.
	CreateUserSession(ctx context.Context, s *UserSession) error
	// UserSessionByPrefix is the sign-in lookup: the session with that
	// prefix, unless it was revoked (ErrNotFound). The caller must compare
	// the token's hash with Hash (crypto/subtle) and check ExpiresAt.
	UserSessionByPrefix(ctx context.Context, prefix string) (*UserSession, error)
	// TouchUserSession records a use of a session UserSessionByPrefix
	// found: LastSeenAt never moves back.
	TouchUserSession(ctx context.Context, id string, at time.Time) error
	// RevokeUserSession signs out one session of userID (ErrNotFound if
	// userID has no session id). Idempotent: the first RevokedAt is kept.
	RevokeUserSession(ctx context.Context, userID, id string, at time.Time) error
	// RevokeUserSessions signs userID out everywhere and returns how many
	// sessions it revoked (those not revoked already).
	RevokeUserSessions(ctx context.Context, userID string, at time.Time) (int, error)
	// ListUserSessions lists a user's sessions (revoked ones included) by
	// (CreatedAt, ID).
	ListUserSessions(ctx context.Context, userID, after string, limit int) ([]UserSession, string, error)

	// CreateKey inserts k. ErrNotFound if the tenant does not exist;
	// ErrConflict if the id or the prefix is taken.
	CreateKey(ctx context.Context, k *Key) error
	// KeysByPrefix is the authentication lookup, across tenants: the keys
	// with that prefix that may authenticate, that is not revoked and of
	// a tenant that is not disabled (at most one: prefixes are unique).
	// The caller compares the key's hash with Hash (crypto/subtle) and
	// enforces Kind, Scopes, AgentIDs and Origins.
	KeysByPrefix(ctx context.Context, prefix string) ([]Key, error)
	// KeysRevokedSince returns the keys (of any tenant) revoked at or
	// after since, or whose tenant was disabled at or after since: what
	// a node caching keys must forget. It is how a revocation reaches
	// every node within seconds.
	KeysRevokedSince(ctx context.Context, since time.Time) ([]Key, error)
	GetKey(ctx context.Context, tenantID, id string) (*Key, error)
	// ListKeys lists a tenant's keys (revoked ones included) by
	// (CreatedAt, ID).
	ListKeys(ctx context.Context, tenantID, after string, limit int) ([]Key, string, error)
	// RevokeKey revokes a key at at; idempotent (the first RevokedAt is
	// kept). A revoked key stays listed and authenticates nothing.
	RevokeKey(ctx context.Context, tenantID, id string, at time.Time) error
	// TouchKey records a use of the key: LastUsedAt never moves back.
	TouchKey(ctx context.Context, tenantID, id string, at time.Time) error

	// CreateAgent inserts a. ErrNotFound if the tenant does not exist;
	// ErrConflict if the tenant already has an agent with that id.
	CreateAgent(ctx context.Context, a *Agent) error
	GetAgent(ctx context.Context, tenantID, id string) (*Agent, error)
	// UpdateAgent replaces agent (a.TenantID, a.ID)'s fields but
	// CreatedAt.
	UpdateAgent(ctx context.Context, a *Agent) error
	DeleteAgent(ctx context.Context, tenantID, id string) error
	// ListAgents lists a tenant's agents by (CreatedAt, ID).
	ListAgents(ctx context.Context, tenantID, after string, limit int) ([]Agent, string, error)

	// GetSettings returns a tenant's settings; ErrNotFound if none were
	// ever put (or there is no such tenant).
	GetSettings(ctx context.Context, tenantID string) (*Setting, error)
	// PutSettings creates or replaces a tenant's settings. ErrNotFound if
	// the tenant does not exist.
	PutSettings(ctx context.Context, s *Setting) error

	// AppendAPICalls inserts calls in one transaction: all or none
	// (ErrInvalid naming the index and the field if any is invalid,
	// ErrConflict if an id is taken). The tenants are not checked: the log
	// is written after the fact.
	AppendAPICalls(ctx context.Context, calls []APICall) error
	// ListAPICalls lists a tenant's API calls by (At, ID).
	ListAPICalls(ctx context.Context, tenantID, after string, limit int) ([]APICall, string, error)
	// AppendAudit inserts e; ErrConflict if its id is taken.
	AppendAudit(ctx context.Context, e *AuditEntry) error
	// ListAudit lists a tenant's audit entries by (At, ID).
	ListAudit(ctx context.Context, tenantID, after string, limit int) ([]AuditEntry, string, error)

	// PutIdempotency inserts r; ErrConflict if the tenant already has a
	// record with that key (expired or not, until the sweeper deletes it).
	PutIdempotency(ctx context.Context, r *IdempotencyRecord) error
	GetIdempotency(ctx context.Context, tenantID, key string) (*IdempotencyRecord, error)
	// ReserveIdempotency claims (TenantID, Key) for a request about to
	// run, with Status IdempotencyPending, atomically across nodes: it
	// inserts r, or replaces a record of that key that expired by
	// r.CreatedAt. ErrConflict when a live record (pending or complete)
	// holds the key.
	ReserveIdempotency(ctx context.Context, r *IdempotencyRecord) error
	// CompleteIdempotency stores the response of a reserved request.
	// ErrNotFound unless the tenant holds a pending record with that key.
	CompleteIdempotency(ctx context.Context, tenantID, key string, status int, body []byte) error
	// ReleaseIdempotency drops a pending reservation (the request failed
	// and may be retried with the same key). ErrNotFound unless pending.
	ReleaseIdempotency(ctx context.Context, tenantID, key string) error
}

// IdempotencyPending is the Status of a reserved record whose request is
// still running.
const IdempotencyPending = 0

// Backend is what a real storage backend (storage/sqlite,
// storage/postgres) implements: conversations and accounts in one
// database. Store.DeleteExpired also deletes the expired rows of the
// accounts tables (user sessions, invitations, idempotency records, API
// calls, audit entries).
type Backend interface {
	Store
	Accounts
	Privacy
}

// MaxListLimit is the largest page a List method returns; a larger limit
// is lowered to it.
const MaxListLimit = 1000

// PageLimit checks a List method's limit: ErrInvalid below 1, lowered to
// MaxListLimit above it.
func PageLimit(limit int) (int, error) {
	if limit < 1 {
		return 0, fmt.Errorf("%w: limit must be positive, got %d", ErrInvalid, limit)
	}
	return min(limit, MaxListLimit), nil
}

// Cursor is a position in a list ordered by (time, id): a page starts
// after it. Its string form, the after/next of the List methods, is
// opaque to API clients and the same on every backend: the unpadded
// base64url encoding of "<unix milliseconds>:<id>" of the last row of the
// previous page. The empty string is the start of the list.
type Cursor struct {
	At time.Time
	ID string
}

// String returns c's opaque form ("" for the zero Cursor, the start).
func (c Cursor) String() string {
	if c.ID == "" {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(c.At.UnixMilli(), 10) + ":" + c.ID))
}

// IsStart reports whether c is the start of a list.
func (c Cursor) IsStart() bool { return c.ID == "" }

// ParseCursor parses an after argument: "" is the start (the zero
// Cursor); anything that is not a cursor String made is ErrInvalid.
func ParseCursor(s string) (Cursor, error) {
	if s == "" {
		return Cursor{}, nil
	}
	bad := fmt.Errorf("%w: after is not a cursor this store returned", ErrInvalid)
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return Cursor{}, bad
	}
	msText, id, ok := strings.Cut(string(raw), ":")
	if !ok || id == "" {
		return Cursor{}, bad
	}
	ms, err := strconv.ParseInt(msText, 10, 64)
	if err != nil || ms == math.MinInt64 {
		return Cursor{}, bad
	}
	return Cursor{At: time.UnixMilli(ms).UTC(), ID: id}, nil
}

// NormalizeEmail is the stored form of an email address: trimmed and
// lower-cased.
func NormalizeEmail(email string) string { return strings.ToLower(strings.TrimSpace(email)) }

func required(record, field string) error {
	return fmt.Errorf("%w: %s.%s is required", ErrInvalid, record, field)
}

// checkEmail accepts local@domain with both parts non-empty, no spaces or
// control characters, at most 254 bytes.
func checkEmail(field, email string) error {
	at := strings.LastIndexByte(email, '@')
	switch {
	case email == "":
		return fmt.Errorf("%w: %s is required", ErrInvalid, field)
	case len(email) > 254 || at <= 0 || at == len(email)-1 ||
		strings.ContainsFunc(email, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }):
		return fmt.Errorf("%w: %s %q is not an email address", ErrInvalid, field, email)
	}
	return nil
}

// CheckRole returns ErrInvalid naming field unless role is a membership
// role.
func CheckRole(field, role string) error {
	if !ValidRole(role) {
		return fmt.Errorf("%w: %s: unknown role %q (want %s, %s, %s or %s)", ErrInvalid, field, role, RoleOwner, RoleAdmin, RoleMember, RoleViewer)
	}
	return nil
}

// checkList rejects empty and repeated entries.
func checkList(field string, list []string) error {
	for i, s := range list {
		if strings.TrimSpace(s) == "" {
			return fmt.Errorf("%w: %s[%d] is empty", ErrInvalid, field, i)
		}
		if slices.Contains(list[:i], s) {
			return fmt.Errorf("%w: %s: %q twice", ErrInvalid, field, s)
		}
	}
	return nil
}

func checkJSON(field string, doc []byte) error {
	if len(doc) > 0 && !json.Valid(doc) {
		return fmt.Errorf("%w: %s is not valid JSON", ErrInvalid, field)
	}
	return nil
}

func notUpper(r rune) bool { return r < 'A' || r > 'Z' }

// CheckParams returns ErrInvalid naming the first empty parameter of
// pairs (name, value, name, value...), or nil. The backends run it on
// the ids a method takes, so test doubles can reject the same calls.
func CheckParams(method string, pairs ...string) error {
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i+1] == "" {
			return fmt.Errorf("%w: %s: %s is required", ErrInvalid, method, pairs[i])
		}
	}
	return nil
}

// CheckTime returns ErrInvalid naming the parameter when at is zero.
func CheckTime(method, name string, at time.Time) error {
	if at.IsZero() {
		return fmt.Errorf("%w: %s: %s is zero", ErrInvalid, method, name)
	}
	return nil
}
