package manage

import (
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"

	"parley/access"
	"parley/storage"
)

// listTenants lists the caller's tenants: a user's memberships, or a
// key's own tenant.
func (c *call) listTenants() (any, error) {
	after, limit, err := c.page()
	if err != nil {
		return nil, err
	}
	if c.key != nil {
		t, err := c.a.o.Accounts.GetTenant(c.ctx(), c.key.TenantID)
		if err != nil {
			return nil, err
		}
		ts := []storage.Tenant{}
		if after == "" {
			ts = append(ts, *t)
		}
		return listOf(ts, "", viewTenant), nil
	}
	ts, next, err := c.a.o.Accounts.ListTenants(c.ctx(), c.user.ID, after, limit)
	if err != nil {
		return nil, err
	}
	return listOf(ts, next, viewTenant), nil
}

func (c *call) getTenant() (any, error) { return viewTenant(c.tenant), nil }

// tenantPatch is what a tenant may change about itself: its name. The
// plan is the operator's (billing) and read-only here.
type tenantPatch struct {
	Name *string `json:"name,omitempty"`
}

var tenantReadOnly = []string{"id", "plan", "created_at", "disabled_at", "purge_after"}

func (c *call) updateTenant() (any, error) {
	var req tenantPatch
	if err := decodeJSON(c.body, &req, tenantReadOnly...); err != nil {
		return nil, err
	}
	t := *c.tenant
	if req.Name != nil {
		if err := checkText("name", *req.Name, true, 200); err != nil {
			return nil, err
		}
		t.Name = strings.TrimSpace(*req.Name)
	}
	if err := c.a.o.Accounts.UpdateTenant(c.ctx(), &t); err != nil {
		return nil, storageErr(err, "tenant")
	}
	c.audit(t.ID, "tenant.update", "tenant", t.ID)
	return viewTenant(&t), nil
}

// deleteTenant disables the tenant now and schedules its purge
// storage.TenantPurgeDelay later; its keys stop working at once.
func (c *call) deleteTenant() (any, error) {
	ctx := c.ctx()
	id := c.tenant.ID
	if err := c.a.o.Accounts.DisableTenant(ctx, id, c.now.UTC(), c.now.Add(storage.TenantPurgeDelay).UTC()); err != nil {
		return nil, err
	}
	for after := ""; ; {
		ks, next, err := c.a.o.Accounts.ListKeys(ctx, id, after, storage.MaxListLimit)
		if err != nil {
			break // the revocation feed (KeysRevokedSince) reaches the cache within seconds anyway
		}
		for _, k := range ks {
			c.a.o.Keys.Forget(k.Prefix)
		}
		if next == "" {
			break
		}
		after = next
	}
	c.audit(id, "tenant.delete", "tenant", id)
	t, err := c.a.o.Accounts.GetTenant(ctx, id)
	if err != nil {
		return nil, err
	}
	return viewTenant(t), nil
}

func (c *call) listMembers() (any, error) {
	after, limit, err := c.page()
	if err != nil {
		return nil, err
	}
	ms, next, err := c.a.o.Accounts.ListMembers(c.ctx(), c.tenant.ID, after, limit)
	if err != nil {
		return nil, err
	}
	return listOf(ms, next, viewMember), nil
}

type memberPatch struct {
	Role string `json:"role"`
}

// target returns the path's member of the tenant, 404 if none.
func (c *call) targetMember() (*storage.Membership, error) {
	m, err := c.a.o.Accounts.GetMembership(c.ctx(), c.tenant.ID, c.r.PathValue("user_id"))
	if err != nil {
		return nil, storageErr(err, "member")
	}
	return m, nil
}

// updateMember changes a member's role: the caller must be allowed to
// grant both the member's current role and the new one (an admin can
// neither make an owner nor demote one).
func (c *call) updateMember() (any, error) {
	var req memberPatch
	if err := decodeJSON(c.body, &req, "user_id", "tenant_id", "email", "name", "created_at"); err != nil {
		return nil, err
	}
	if req.Role == "" {
		return nil, missing("role")
	}
	if !access.ValidRole(req.Role) {
		return nil, invalid("role", "role must be owner, admin, member or viewer")
	}
	m, err := c.targetMember()
	if err != nil {
		return nil, err
	}
	if !access.CanGrant(c.role, req.Role) || !access.CanGrant(c.role, m.Role) {
		return nil, forbidden("permission_denied", "your role ("+c.role+") cannot make a "+m.Role+" a "+req.Role)
	}
	if err := c.a.o.Accounts.UpdateMemberRole(c.ctx(), c.tenant.ID, m.UserID, req.Role); err != nil {
		if errors.Is(err, storage.ErrConflict) {
			return nil, conflict("last_owner", "a tenant keeps at least one owner")
		}
		return nil, storageErr(err, "member")
	}
	c.audit(c.tenant.ID, "member.update", "user", m.UserID)
	m.Role = req.Role
	return viewMember(m), nil
}

// removeMember removes a member: it takes member.remove and the power to
// grant the member's role (an admin cannot remove an owner).
func (c *call) removeMember() (any, error) {
	m, err := c.targetMember()
	if err != nil {
		return nil, err
	}
	if !access.CanGrant(c.role, m.Role) {
		return nil, forbidden("permission_denied", "your role ("+c.role+") cannot remove a "+m.Role)
	}
	if err := c.a.o.Accounts.RemoveMember(c.ctx(), c.tenant.ID, m.UserID); err != nil {
		if errors.Is(err, storage.ErrConflict) {
			return nil, conflict("last_owner", "a tenant keeps at least one owner")
		}
		return nil, storageErr(err, "member")
	}
	c.audit(c.tenant.ID, "member.remove", "user", m.UserID)
	return deletedView{ID: m.UserID, Deleted: true}, nil
}

type invitationRequest struct {
	Email string `json:"email"`
	Role  string `json:"role"`
}

func (c *call) createInvitation() (any, error) {
	var req invitationRequest
	if err := decodeJSON(c.body, &req, "id", "tenant_id", "invited_by", "token", "created_at", "expires_at", "accepted_at"); err != nil {
		return nil, err
	}
	email := storage.NormalizeEmail(req.Email)
	if err := checkEmail("email", email); err != nil {
		return nil, err
	}
	if req.Role == "" {
		return nil, missing("role")
	}
	if !access.ValidRole(req.Role) {
		return nil, invalid("role", "role must be owner, admin, member or viewer")
	}
	if !access.CanGrant(c.role, req.Role) {
		return nil, forbidden("permission_denied", "your role ("+c.role+") cannot invite a "+req.Role)
	}
	tok := newToken(invitePrefix)
	inv := &storage.Invitation{ID: newID("inv_"), TenantID: c.tenant.ID, Email: email, Role: req.Role,
		Prefix: tok[:prefixLen], Hash: hashSecret(tok), CreatedAt: c.now.UTC(), ExpiresAt: c.now.Add(InvitationTTL).UTC()}
	if c.user != nil {
		inv.InvitedBy = c.user.ID
	}
	if err := c.a.o.Accounts.CreateInvitation(c.ctx(), inv); err != nil {
		return nil, storageErr(err, "invitation")
	}
	c.audit(c.tenant.ID, "invitation.create", "invitation", inv.ID)
	return createdInvitation{invitationView: viewInvitation(inv), Token: &tok}, nil
}

func (c *call) listInvitations() (any, error) {
	after, limit, err := c.page()
	if err != nil {
		return nil, err
	}
	is, next, err := c.a.o.Accounts.ListInvitations(c.ctx(), c.tenant.ID, after, limit)
	if err != nil {
		return nil, err
	}
	return listOf(is, next, viewInvitation), nil
}

func (c *call) deleteInvitation() (any, error) {
	id := c.r.PathValue("invitation_id")
	if err := c.a.o.Accounts.DeleteInvitation(c.ctx(), c.tenant.ID, id); err != nil {
		return nil, storageErr(err, "invitation")
	}
	c.audit(c.tenant.ID, "invitation.delete", "invitation", id)
	return deletedView{ID: id, Deleted: true}, nil
}

type acceptRequest struct {
	Token string `json:"token"`
}

type acceptResponse struct {
	Tenant tenantView `json:"tenant"`
	Role   string     `json:"role"`
}

// acceptInvitation makes the signed-in user a member of the invitation's
// tenant. The invitation must be addressed to the user's email; any
// mismatch, unknown token or disabled tenant is the same 404.
func (c *call) acceptInvitation() (any, error) {
	var req acceptRequest
	if err := decodeJSON(c.body, &req); err != nil {
		return nil, err
	}
	if req.Token == "" {
		return nil, missing("token")
	}
	none := &apiErr{status: http.StatusNotFound, code: "invitation_not_found", param: "token",
		msg: "no pending invitation for your email has this token"}
	if !wellFormed(req.Token, invitePrefix) {
		return nil, none
	}
	ctx := c.ctx()
	hash := hashSecret(req.Token)
	inv, err := c.a.o.Accounts.InvitationByPrefix(ctx, req.Token[:prefixLen])
	if errors.Is(err, storage.ErrNotFound) {
		return nil, none
	} else if err != nil {
		return nil, err
	}
	if subtle.ConstantTimeCompare(hash, inv.Hash) != 1 || inv.Email != c.user.Email {
		return nil, none
	}
	inv, err = c.a.o.Accounts.AcceptInvitation(ctx, inv.Prefix, hash, c.user.ID, c.now.UTC())
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return nil, none
	case errors.Is(err, storage.ErrExpired):
		return nil, &apiErr{status: http.StatusGone, code: "invitation_expired", param: "token", msg: "the invitation has expired; ask for a new one"}
	case errors.Is(err, storage.ErrUsed):
		return nil, conflict("invitation_used", "the invitation was accepted already")
	case errors.Is(err, storage.ErrConflict):
		return nil, conflict("already_member", "you are a member of this tenant already")
	case err != nil:
		return nil, err
	}
	t, err := c.a.o.Accounts.GetTenant(ctx, inv.TenantID)
	if err != nil {
		return nil, err
	}
	c.logTenant = t.ID
	c.audit(t.ID, "invitation.accept", "invitation", inv.ID)
	return acceptResponse{Tenant: viewTenant(t), Role: inv.Role}, nil
}
