package access

import "sort"

// Roles of a person in a tenant, from most to least powerful.
const (
	RoleOwner  = "owner"
	RoleAdmin  = "admin"
	RoleMember = "member"
	RoleViewer = "viewer"
)

// Roles lists the roles from most to least powerful.
var Roles = []string{RoleOwner, RoleAdmin, RoleMember, RoleViewer}

// ValidRole reports whether r is a role.
func ValidRole(r string) bool { return rank(r) > 0 }

func rank(r string) int {
	switch r {
	case RoleOwner:
		return 4
	case RoleAdmin:
		return 3
	case RoleMember:
		return 2
	case RoleViewer:
		return 1
	}
	return 0
}

// AtLeast reports whether role r has at least the power of min.
func AtLeast(r, min string) bool { return rank(r) >= rank(min) && rank(r) > 0 }

// Actions a person can take in a tenant. The management API names the
// action of every route; Permissions says which roles may take it.
const (
	ActTenantRead     = "tenant.read"
	ActTenantUpdate   = "tenant.update"
	ActTenantDelete   = "tenant.delete"
	ActMemberRead     = "member.read"
	ActMemberInvite   = "member.invite"
	ActMemberUpdate   = "member.update"
	ActMemberRemove   = "member.remove"
	ActAgentRead      = "agent.read"
	ActAgentWrite     = "agent.write"
	ActKeyRead        = "key.read"
	ActKeyWrite       = "key.write"
	ActSettingsRead   = "settings.read"
	ActSettingsWrite  = "settings.write"
	ActAuditRead      = "audit.read"
	ActConversationRd = "conversation.read"
	// The privacy policy (retention, audio logging, redaction, the
	// training opt-in): reading it is harmless, changing it is the
	// business's legal decision, so the owner's.
	ActPrivacyRead  = "privacy.read"
	ActPrivacyWrite = "privacy.write"
	// Data rights: exporting or deleting end users' conversation data.
	ActDataExport = "data.export"
	ActDataDelete = "data.delete"
	// Usage rollups (counts and durations per day, no conversation).
	ActUsageRead = "usage.read"
)

// Permissions is the role table: the least powerful role allowed to take
// each action. It is the one source of truth (README's table is checked
// against it by a test).
var Permissions = map[string]string{
	ActTenantRead:     RoleViewer,
	ActTenantUpdate:   RoleOwner,
	ActTenantDelete:   RoleOwner,
	ActMemberRead:     RoleViewer,
	ActMemberInvite:   RoleAdmin,
	ActMemberUpdate:   RoleAdmin,
	ActMemberRemove:   RoleAdmin,
	ActAgentRead:      RoleViewer,
	ActAgentWrite:     RoleMember,
	ActKeyRead:        RoleAdmin,
	ActKeyWrite:       RoleAdmin,
	ActSettingsRead:   RoleViewer,
	ActSettingsWrite:  RoleAdmin,
	ActAuditRead:      RoleAdmin,
	ActConversationRd: RoleMember,
	ActPrivacyRead:    RoleViewer,
	ActPrivacyWrite:   RoleOwner,
	ActDataExport:     RoleAdmin,
	ActDataDelete:     RoleAdmin,
	ActUsageRead:      RoleViewer,
}

// Can reports whether role may take action. An unknown action or role is
// refused.
func Can(role, action string) bool {
	min, ok := Permissions[action]
	return ok && AtLeast(role, min)
}

// CanGrant reports whether a person with role may give someone role
// target (invite or change a member to it): owners grant any role, admins
// any role below owner, others none.
func CanGrant(role, target string) bool {
	switch {
	case !ValidRole(target):
		return false
	case role == RoleOwner:
		return true
	case role == RoleAdmin:
		return target != RoleOwner
	}
	return false
}

// Actions returns every action, sorted.
func Actions() []string {
	out := make([]string, 0, len(Permissions))
	for a := range Permissions {
		out = append(out, a)
	}
	sort.Strings(out)
	return out
}
