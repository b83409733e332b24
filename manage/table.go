package manage

import (
	"fmt"
	"net/http"

	"parley/access"
	"parley/privacy"
)

// table is the route table: it registers the handlers and builds the
// OpenAPI document.
func (a *API) table() []Route {
	const (
		get, post, patch, put, del = http.MethodGet, http.MethodPost, http.MethodPatch, http.MethodPut, http.MethodDelete
		tenant                     = "/v1/tenants/{tenant_id}"
	)
	type (
		tenants  = listBody[tenantView]
		members  = listBody[memberView]
		invites  = listBody[invitationView]
		agents   = listBody[agentView]
		keys     = listBody[keyView]
		audits   = listBody[auditView]
		apiCalls = listBody[apiCallView]
		convs    = listBody[conversationView]
	)
	endUserQuery := queryParam{name: "end_user", desc: "the business's identifier of an end user (pseudonymised before use; answers show only pseudonyms)"}
	return []Route{
		{Method: post, Pattern: "/v1/auth/register", OperationID: "register", Tag: "auth", Auth: AuthNone, Status: http.StatusCreated,
			Summary: "Create an account: a user, their company's tenant (they own it) and a sign-in session (token and cookie)",
			request: registerRequest{}, response: registerResponse{}, handle: (*call).register},
		{Method: post, Pattern: "/v1/auth/login", OperationID: "login", Tag: "auth", Auth: AuthNone,
			Summary: "Sign in with email and password: a session token, also set as the cookie",
			request: loginRequest{}, response: loginResponse{}, handle: (*call).login},
		{Method: post, Pattern: "/v1/auth/logout", OperationID: "logout", Tag: "auth", Auth: AuthUser,
			Summary: "Sign out this session", response: revokedView{}, handle: (*call).logout},
		{Method: post, Pattern: "/v1/auth/logout_all", OperationID: "logoutAll", Tag: "auth", Auth: AuthUser,
			Summary: "Sign out every session of the user", response: revokedView{}, handle: (*call).logoutAll},
		{Method: post, Pattern: "/v1/auth/password", OperationID: "changePassword", Tag: "auth", Auth: AuthUser,
			Summary: "Change the password; every other session is signed out",
			request: passwordRequest{}, response: revokedView{}, handle: (*call).changePassword},
		{Method: get, Pattern: "/v1/me", OperationID: "getMe", Tag: "auth", Auth: AuthUser,
			Summary: "The signed-in user and their memberships", response: meView{}, handle: (*call).me},

		{Method: get, Pattern: "/v1/tenants", OperationID: "listTenants", Tag: "tenants", Auth: AuthPrincipal,
			Summary: "The tenants the user is a member of (a key: its own tenant)", response: tenants{}, list: true, handle: (*call).listTenants},
		{Method: get, Pattern: tenant, OperationID: "getTenant", Tag: "tenants", Auth: AuthTenant, Action: access.ActTenantRead,
			Summary: "A tenant", response: tenantView{}, handle: (*call).getTenant},
		{Method: patch, Pattern: tenant, OperationID: "updateTenant", Tag: "tenants", Auth: AuthTenant, Action: access.ActTenantUpdate,
			Summary: "Rename a tenant (the plan is not settable here)", request: tenantPatch{}, response: tenantView{}, handle: (*call).updateTenant},
		{Method: del, Pattern: tenant, OperationID: "deleteTenant", Tag: "tenants", Auth: AuthTenant, Action: access.ActTenantDelete,
			Summary: "Delete a tenant: disabled now (its keys stop working), purged 30 days later", response: tenantView{}, handle: (*call).deleteTenant},

		{Method: get, Pattern: tenant + "/members", OperationID: "listMembers", Tag: "members", Auth: AuthTenant, Action: access.ActMemberRead,
			Summary: "The tenant's members", response: members{}, list: true, handle: (*call).listMembers},
		{Method: patch, Pattern: tenant + "/members/{user_id}", OperationID: "updateMember", Tag: "members", Auth: AuthTenant, Action: access.ActMemberUpdate,
			Summary: "Change a member's role", request: memberPatch{}, response: memberView{}, handle: (*call).updateMember},
		{Method: del, Pattern: tenant + "/members/{user_id}", OperationID: "removeMember", Tag: "members", Auth: AuthTenant, Action: access.ActMemberRemove,
			Summary: "Remove a member", response: deletedView{}, handle: (*call).removeMember},
		{Method: post, Pattern: tenant + "/invitations", OperationID: "createInvitation", Tag: "members", Auth: AuthTenant, Action: access.ActMemberInvite,
			Status: http.StatusCreated, Idempotent: true,
			Summary: "Invite an email address with a role; the token is returned this once", request: invitationRequest{}, response: createdInvitation{},
			handle: (*call).createInvitation},
		{Method: get, Pattern: tenant + "/invitations", OperationID: "listInvitations", Tag: "members", Auth: AuthTenant, Action: access.ActMemberInvite,
			Summary: "The tenant's invitations", response: invites{}, list: true, handle: (*call).listInvitations},
		{Method: del, Pattern: tenant + "/invitations/{invitation_id}", OperationID: "deleteInvitation", Tag: "members", Auth: AuthTenant, Action: access.ActMemberInvite,
			Summary: "Withdraw an invitation", response: deletedView{}, handle: (*call).deleteInvitation},
		{Method: post, Pattern: "/v1/invitations/accept", OperationID: "acceptInvitation", Tag: "members", Auth: AuthUser,
			Summary: "Accept an invitation addressed to the signed-in user's email", request: acceptRequest{}, response: acceptResponse{},
			handle: (*call).acceptInvitation},

		{Method: get, Pattern: tenant + "/agents", OperationID: "listAgents", Tag: "agents", Auth: AuthTenant, Action: access.ActAgentRead,
			Summary: "The tenant's agents", response: agents{}, list: true, handle: (*call).listAgents},
		{Method: post, Pattern: tenant + "/agents", OperationID: "createAgent", Tag: "agents", Auth: AuthTenant, Action: access.ActAgentWrite,
			Status: http.StatusCreated, Idempotent: true,
			Summary: "Create an agent", request: agentCreate{}, response: agentView{}, handle: (*call).createAgent},
		{Method: get, Pattern: tenant + "/agents/{agent_id}", OperationID: "getAgent", Tag: "agents", Auth: AuthTenant, Action: access.ActAgentRead,
			Summary: "An agent", response: agentView{}, handle: (*call).getAgent},
		{Method: patch, Pattern: tenant + "/agents/{agent_id}", OperationID: "updateAgent", Tag: "agents", Auth: AuthTenant, Action: access.ActAgentWrite,
			Summary: "Change an agent (the fields given)", request: agentPatch{}, response: agentView{}, handle: (*call).updateAgent},
		{Method: del, Pattern: tenant + "/agents/{agent_id}", OperationID: "deleteAgent", Tag: "agents", Auth: AuthTenant, Action: access.ActAgentWrite,
			Summary: "Delete an agent", response: deletedView{}, handle: (*call).deleteAgent},

		{Method: get, Pattern: tenant + "/keys", OperationID: "listKeys", Tag: "keys", Auth: AuthTenant, Action: access.ActKeyRead,
			Summary: "The tenant's keys, revoked ones included (never their values)", response: keys{}, list: true, handle: (*call).listKeys},
		{Method: post, Pattern: tenant + "/keys", OperationID: "createKey", Tag: "keys", Auth: AuthTenant, Action: access.ActKeyWrite,
			Status: http.StatusCreated, Idempotent: true,
			Summary: "Create a secret key (scopes) or a publishable key (agents and origins); the value is returned this once",
			request: keyCreate{}, response: createdKey{}, handle: (*call).createKey},
		{Method: del, Pattern: tenant + "/keys/{key_id}", OperationID: "revokeKey", Tag: "keys", Auth: AuthTenant, Action: access.ActKeyWrite,
			Summary: "Revoke a key", response: keyView{}, handle: (*call).revokeKey},

		{Method: get, Pattern: tenant + "/settings", OperationID: "getSettings", Tag: "settings", Auth: AuthTenant, Action: access.ActSettingsRead,
			Summary: "The tenant's settings", response: settingsView{}, handle: (*call).getSettings},
		{Method: put, Pattern: tenant + "/settings", OperationID: "putSettings", Tag: "settings", Auth: AuthTenant, Action: access.ActSettingsWrite,
			Summary: "Replace the tenant's settings", request: settingsPut{}, response: settingsView{}, handle: (*call).putSettings},

		{Method: get, Pattern: tenant + "/audit", OperationID: "listAudit", Tag: "logs", Auth: AuthTenant, Action: access.ActAuditRead,
			Summary: "The tenant's audit log: who changed what, when", response: audits{}, list: true, handle: (*call).listAudit},
		{Method: get, Pattern: tenant + "/api_calls", OperationID: "listAPICalls", Tag: "logs", Auth: AuthTenant, Action: access.ActAuditRead,
			Summary: "The tenant's API call log (method, route, status, caller; never bodies)", response: apiCalls{}, list: true, handle: (*call).listAPICalls},

		{Method: get, Pattern: tenant + "/privacy", OperationID: "getPrivacy", Tag: "privacy", Auth: AuthTenant, Action: access.ActPrivacyRead,
			Summary:  "The tenant's privacy policy: retention, audio logging, redaction, training opt-in (the installation's defaults until set)",
			response: policyView{}, handle: (*call).getPrivacy},
		{Method: put, Pattern: tenant + "/privacy", OperationID: "putPrivacy", Tag: "privacy", Auth: AuthTenant, Action: access.ActPrivacyWrite,
			Summary: "Replace the tenant's privacy policy; the new retention applies to the data already stored",
			request: policyPut{}, response: policyView{}, handle: (*call).putPrivacy},
		{Method: get, Pattern: tenant + "/conversations", OperationID: "listConversations", Tag: "privacy", Auth: AuthTenant, Action: access.ActConversationRd,
			Summary: "The tenant's conversations (metadata), or one end user's", response: convs{}, list: true,
			query: []queryParam{endUserQuery}, handle: (*call).listConversations},
		{Method: get, Pattern: tenant + "/conversations/{conversation_id}", OperationID: "getConversation", Tag: "privacy", Auth: AuthTenant, Action: access.ActConversationRd,
			Summary:  "A conversation with its turns' text (null when only metadata is kept; unreadable once crypto-shredded)",
			response: conversationDetail{}, handle: (*call).getConversation},
		{Method: del, Pattern: tenant + "/conversations/{conversation_id}", OperationID: "deleteConversation", Tag: "privacy", Auth: AuthTenant, Action: access.ActDataDelete,
			Summary: "Delete a conversation with its turns, audio and usage events", response: dataDeleted{}, handle: (*call).deleteConversation},
		{Method: del, Pattern: tenant + "/conversations", OperationID: "deleteAllConversations", Tag: "privacy", Auth: AuthTenant, Action: access.ActDataDelete,
			Summary:  "Delete every conversation of the tenant (daily usage rollups stay); takes ?confirm=" + ConfirmDeleteAll,
			query:    []queryParam{{name: "confirm", desc: "must be " + ConfirmDeleteAll, required: true}},
			response: dataDeleted{}, handle: (*call).deleteAllConversations},
		{Method: del, Pattern: tenant + "/end_users/{end_user_id}", OperationID: "deleteEndUserData", Tag: "privacy", Auth: AuthTenant, Action: access.ActDataDelete,
			Summary:  "Delete every conversation of an end user (the business's identifier in the path); zero counts when there was none",
			response: dataDeleted{}, handle: (*call).deleteEndUser},
		{Method: get, Pattern: tenant + "/export", OperationID: "exportData", Tag: "privacy", Auth: AuthTenant, Action: access.ActDataExport,
			Summary: "Export the tenant's data, one conversation's or one end user's, as one portable JSON document (" + privacy.ExportFormat + "), streamed",
			query: []queryParam{{name: "conversation_id", desc: "export this conversation only"},
				{name: "end_user", desc: "export this end user's conversations only (the business's identifier)"}},
			response: map[string]any{}, download: true, handle: (*call).export},
		{Method: get, Pattern: tenant + "/usage", OperationID: "getUsage", Tag: "privacy", Auth: AuthTenant, Action: access.ActUsageRead,
			Summary:  fmt.Sprintf("The tenant's daily usage (conversations and their duration by channel and language), UTC days from from to to (both included; default the last %d days, at most %d)", DefaultUsageDays, MaxUsageDays),
			query:    []queryParam{{name: "from", desc: "first day, YYYY-MM-DD", format: "date"}, {name: "to", desc: "last day, YYYY-MM-DD (default today)", format: "date"}},
			response: usageView{}, handle: (*call).usage},

		{Method: get, Pattern: "/v1/openapi.json", OperationID: "getOpenAPI", Tag: "meta", Auth: AuthNone,
			Summary: "This API's OpenAPI 3.1 document", response: map[string]any{}, handle: (*call).openAPI},
	}
}
