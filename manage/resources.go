package manage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"parley/agent"
	"parley/storage"
	"parley/storage/seal"
)

// Agents.

var agentIDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

type agentCreate struct {
	ID           string          `json:"id"`
	Name         string          `json:"name,omitempty"`
	Instructions string          `json:"instructions,omitempty"`
	Greeting     string          `json:"greeting,omitempty"`
	Engine       string          `json:"engine,omitempty"` // kb (the default; the only engine tenant agents run on)
	Voice        string          `json:"voice,omitempty"`
	Language     string          `json:"language,omitempty"`
	Settings     json.RawMessage `json:"settings,omitempty"`
}

type agentPatch struct {
	Name         *string         `json:"name,omitempty"`
	Instructions *string         `json:"instructions,omitempty"`
	Greeting     *string         `json:"greeting,omitempty"`
	Engine       *string         `json:"engine,omitempty"`
	Voice        *string         `json:"voice,omitempty"`
	Language     *string         `json:"language,omitempty"`
	Settings     json.RawMessage `json:"settings,omitempty"`
}

var agentReadOnly = []string{"tenant_id", "created_at", "updated_at"}

// checkAgent validates a with its plaintext settings document.
func checkAgent(a *storage.Agent, settings []byte) error {
	switch {
	case !agentIDPattern.MatchString(a.ID):
		return invalid("id", "id must be 1-64 lowercase letters, digits, '-' or '_', starting with a letter or digit")
	case a.Engine == storage.EngineOpenAI:
		return invalid("engine", "tenant agents run on the kb engine in this version (the openai engine needs per-tenant provider credentials, not yet supported)")
	case a.Engine != storage.EngineKB:
		return invalid("engine", "engine must be kb")
	}
	for _, f := range []struct {
		param, v string
		max      int
	}{{"name", a.Name, 200}, {"instructions", a.Instructions, 32 << 10}, {"greeting", a.Greeting, 2000},
		{"voice", a.Voice, 64}, {"language", a.Language, 35}} {
		if err := checkText(f.param, f.v, false, f.max); err != nil {
			return err
		}
	}
	if len(settings) > 0 && !isObject(settings) {
		return invalid("settings", "settings must be a JSON object")
	}
	if _, err := agent.ParseSettings(settings); err != nil {
		var se *agent.SettingsError
		if errors.As(err, &se) {
			return invalid(se.Field, se.Field+" "+se.Message)
		}
		return invalid("settings", err.Error())
	}
	return nil
}

// sealSettings stores settings in a sealed under the tenant's data key
// (the document holds the agent's knowledge documents): a.Settings, the
// plaintext column of rows written before sealing existed, is cleared.
// Empty settings are stored as nothing.
func (c *call) sealSettings(a *storage.Agent, settings []byte) error {
	a.Settings, a.SettingsSealed = nil, nil
	if len(settings) == 0 {
		return nil
	}
	kr := c.a.o.Keyring
	if kr == nil {
		return errNoKeyring
	}
	sealed, err := kr.Seal(c.ctx(), a.TenantID, settings, seal.AgentAAD(a.TenantID, a.ID))
	if err != nil {
		return err
	}
	a.SettingsSealed = sealed
	return nil
}

// AgentSettings returns the plaintext settings document of a stored
// agent: SettingsSealed opened with kr, or the plaintext Settings of a row
// written before sealing existed (nil when the agent has none).
func AgentSettings(ctx context.Context, kr Keyring, a *storage.Agent) ([]byte, error) {
	if len(a.SettingsSealed) == 0 {
		return a.Settings, nil
	}
	if kr == nil {
		return nil, errors.New("manage: the agent's settings are sealed and there is no keyring")
	}
	return kr.Open(ctx, a.TenantID, a.SettingsSealed, seal.AgentAAD(a.TenantID, a.ID))
}

// viewAgent is a's view with its settings opened.
func (c *call) viewAgent(a *storage.Agent) (agentView, error) {
	if len(a.SettingsSealed) > 0 && c.a.o.Keyring == nil {
		return agentView{}, errNoKeyring
	}
	settings, err := AgentSettings(c.ctx(), c.a.o.Keyring, a)
	if err != nil {
		return agentView{}, err
	}
	return viewAgent(a, settings), nil
}

func (c *call) createAgent() (any, error) {
	var req agentCreate
	if err := decodeJSON(c.body, &req, agentReadOnly...); err != nil {
		return nil, err
	}
	if req.ID == "" {
		return nil, missing("id")
	}
	if req.Engine == "" {
		req.Engine = storage.EngineKB
	}
	a := &storage.Agent{ID: req.ID, TenantID: c.tenant.ID, Name: req.Name, Instructions: req.Instructions,
		Greeting: req.Greeting, Engine: req.Engine, Voice: req.Voice, Language: req.Language,
		CreatedAt: c.now.UTC(), UpdatedAt: c.now.UTC()}
	settings := compact(req.Settings)
	if err := checkAgent(a, settings); err != nil {
		return nil, err
	}
	if err := c.sealSettings(a, settings); err != nil {
		return nil, err
	}
	if err := c.a.o.Accounts.CreateAgent(c.ctx(), a); err != nil {
		if errors.Is(err, storage.ErrConflict) {
			return nil, &apiErr{status: 409, code: "agent_exists", param: "id", msg: "the tenant has an agent with this id"}
		}
		return nil, storageErr(err, "agent")
	}
	c.audit(c.tenant.ID, "agent.create", "agent", a.ID)
	return viewAgent(a, settings), nil
}

func compact(raw json.RawMessage) []byte {
	t := strings.TrimSpace(string(raw))
	if t == "" || t == "null" {
		return nil
	}
	return []byte(t)
}

func (c *call) listAgents() (any, error) {
	after, limit, err := c.page()
	if err != nil {
		return nil, err
	}
	as, next, err := c.a.o.Accounts.ListAgents(c.ctx(), c.tenant.ID, after, limit)
	if err != nil {
		return nil, err
	}
	return listOfErr(as, next, c.viewAgent)
}

func (c *call) getAgent() (any, error) {
	a, err := c.a.o.Accounts.GetAgent(c.ctx(), c.tenant.ID, c.r.PathValue("agent_id"))
	if err != nil {
		return nil, storageErr(err, "agent")
	}
	return c.viewAgent(a)
}

func (c *call) updateAgent() (any, error) {
	var req agentPatch
	if err := decodeJSON(c.body, &req, append([]string{"id"}, agentReadOnly...)...); err != nil {
		return nil, err
	}
	ctx := c.ctx()
	a, err := c.a.o.Accounts.GetAgent(ctx, c.tenant.ID, c.r.PathValue("agent_id"))
	if err != nil {
		return nil, storageErr(err, "agent")
	}
	set := func(dst *string, v *string) {
		if v != nil {
			*dst = *v
		}
	}
	set(&a.Name, req.Name)
	set(&a.Instructions, req.Instructions)
	set(&a.Greeting, req.Greeting)
	set(&a.Engine, req.Engine)
	set(&a.Voice, req.Voice)
	set(&a.Language, req.Language)
	var settings []byte
	if req.Settings != nil {
		settings = compact(req.Settings)
	} else {
		// Kept as they are, sealed anew: a legacy plaintext row is sealed
		// by its first update.
		if len(a.SettingsSealed) > 0 && c.a.o.Keyring == nil {
			return nil, errNoKeyring
		}
		if settings, err = AgentSettings(ctx, c.a.o.Keyring, a); err != nil {
			return nil, err
		}
	}
	a.UpdatedAt = c.now.UTC()
	if err := checkAgent(a, settings); err != nil {
		return nil, err
	}
	if err := c.sealSettings(a, settings); err != nil {
		return nil, err
	}
	if err := c.a.o.Accounts.UpdateAgent(ctx, a); err != nil {
		return nil, storageErr(err, "agent")
	}
	c.audit(c.tenant.ID, "agent.update", "agent", a.ID)
	return viewAgent(a, settings), nil
}

func (c *call) deleteAgent() (any, error) {
	id := c.r.PathValue("agent_id")
	if err := c.a.o.Accounts.DeleteAgent(c.ctx(), c.tenant.ID, id); err != nil {
		return nil, storageErr(err, "agent")
	}
	c.audit(c.tenant.ID, "agent.delete", "agent", id)
	return deletedView{ID: id, Deleted: true}, nil
}

// Keys.

type keyCreate struct {
	Kind     string   `json:"kind"` // secret or publishable
	Name     string   `json:"name,omitempty"`
	Scopes   []string `json:"scopes,omitempty"`    // secret keys: realtime, management, read_only
	AgentIDs []string `json:"agent_ids,omitempty"` // publishable keys
	Origins  []string `json:"origins,omitempty"`   // publishable keys
}

var keyReadOnly = []string{"id", "tenant_id", "prefix", "created_by", "created_at", "last_used_at", "revoked_at", "value"}

const maxListItems = 50

// checkOrigin accepts scheme://host[:port] (no path, query or userinfo).
func checkOrigin(o string) bool {
	u, err := url.Parse(o)
	return err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" && u.User == nil &&
		(u.Path == "" || u.Path == "/") && u.RawQuery == "" && u.Fragment == "" && !strings.HasSuffix(o, "/")
}

func (c *call) createKey() (any, error) {
	var req keyCreate
	if err := decodeJSON(c.body, &req, keyReadOnly...); err != nil {
		return nil, err
	}
	if err := checkText("name", req.Name, false, 200); err != nil {
		return nil, err
	}
	k := &storage.Key{ID: newID("key_"), TenantID: c.tenant.ID, Kind: req.Kind, Name: req.Name, CreatedAt: c.now.UTC()}
	if c.user != nil {
		k.CreatedBy = c.user.ID
	}
	prefix := ""
	switch req.Kind {
	case "":
		return nil, missing("kind")
	case storage.KeySecret:
		prefix = secretPrefix
		if len(req.AgentIDs) > 0 {
			return nil, invalid("agent_ids", "agent_ids apply to publishable keys only")
		}
		if len(req.Origins) > 0 {
			return nil, invalid("origins", "origins apply to publishable keys only")
		}
		if len(req.Scopes) == 0 {
			return nil, missing("scopes")
		}
		for _, s := range req.Scopes {
			if s != storage.ScopeRealtime && s != storage.ScopeManagement && s != storage.ScopeReadOnly {
				return nil, invalid("scopes", fmt.Sprintf("unknown scope %q (want realtime, management or read_only)", s))
			}
		}
		k.Scopes = req.Scopes
	case storage.KeyPublishable:
		prefix = publicPrefix
		if len(req.Scopes) > 0 {
			return nil, invalid("scopes", "a publishable key has no scopes (it is realtime only)")
		}
		if len(req.AgentIDs) == 0 {
			return nil, missing("agent_ids")
		}
		if len(req.Origins) == 0 {
			return nil, missing("origins")
		}
		if len(req.AgentIDs) > maxListItems {
			return nil, invalid("agent_ids", fmt.Sprintf("at most %d agents", maxListItems))
		}
		if len(req.Origins) > maxListItems {
			return nil, invalid("origins", fmt.Sprintf("at most %d origins", maxListItems))
		}
		for _, o := range req.Origins {
			if !checkOrigin(o) {
				return nil, invalid("origins", fmt.Sprintf("%q is not an origin (scheme://host[:port])", o))
			}
		}
		for _, id := range req.AgentIDs {
			if _, err := c.a.o.Accounts.GetAgent(c.ctx(), c.tenant.ID, id); err != nil {
				if errors.Is(err, storage.ErrNotFound) {
					return nil, invalid("agent_ids", fmt.Sprintf("no agent %q in this tenant", id))
				}
				return nil, err
			}
		}
		k.AgentIDs, k.Origins = req.AgentIDs, req.Origins
	default:
		return nil, invalid("kind", "kind must be secret or publishable")
	}
	value := newToken(prefix)
	k.Prefix, k.Hash = value[:prefixLen], hashSecret(value)
	if err := k.Validate(); err != nil {
		return nil, storageErr(err, "key")
	}
	if err := c.a.o.Accounts.CreateKey(c.ctx(), k); err != nil {
		return nil, storageErr(err, "key")
	}
	c.audit(c.tenant.ID, "key.create", "key", k.ID)
	c.a.log.Info().Str("tenant_id", k.TenantID).Str("key_id", k.ID).Str("key_prefix", k.Prefix).Msg("key created")
	return createdKey{keyView: viewKey(k), Value: &value}, nil
}

func (c *call) listKeys() (any, error) {
	after, limit, err := c.page()
	if err != nil {
		return nil, err
	}
	ks, next, err := c.a.o.Accounts.ListKeys(c.ctx(), c.tenant.ID, after, limit)
	if err != nil {
		return nil, err
	}
	return listOf(ks, next, viewKey), nil
}

// revokeKey revokes a key; this node forgets it at once, others within
// the KeyCache poll interval.
func (c *call) revokeKey() (any, error) {
	ctx := c.ctx()
	k, err := c.a.o.Accounts.GetKey(ctx, c.tenant.ID, c.r.PathValue("key_id"))
	if err != nil {
		return nil, storageErr(err, "key")
	}
	if err := c.a.o.Accounts.RevokeKey(ctx, c.tenant.ID, k.ID, c.now.UTC()); err != nil {
		return nil, storageErr(err, "key")
	}
	c.a.o.Keys.Forget(k.Prefix)
	c.audit(c.tenant.ID, "key.revoke", "key", k.ID)
	if k, err = c.a.o.Accounts.GetKey(ctx, c.tenant.ID, k.ID); err != nil {
		return nil, err
	}
	return viewKey(k), nil
}

// Settings.

type settingsPut struct {
	Settings json.RawMessage `json:"settings"`
}

func (c *call) getSettings() (any, error) {
	s, err := c.a.o.Accounts.GetSettings(c.ctx(), c.tenant.ID)
	if errors.Is(err, storage.ErrNotFound) {
		return settingsView{TenantID: c.tenant.ID, Settings: json.RawMessage("{}")}, nil
	} else if err != nil {
		return nil, err
	}
	return settingsView{TenantID: c.tenant.ID, Settings: jsonObject(s.Settings), UpdatedAt: tp(s.UpdatedAt)}, nil
}

func (c *call) putSettings() (any, error) {
	var req settingsPut
	if err := decodeJSON(c.body, &req, "tenant_id", "updated_at"); err != nil {
		return nil, err
	}
	if req.Settings == nil {
		return nil, missing("settings")
	}
	if !isObject(req.Settings) {
		return nil, invalid("settings", "settings must be a JSON object")
	}
	s := &storage.Setting{TenantID: c.tenant.ID, Settings: compact(req.Settings), UpdatedAt: c.now.UTC()}
	if err := c.a.o.Accounts.PutSettings(c.ctx(), s); err != nil {
		return nil, storageErr(err, "settings")
	}
	c.audit(c.tenant.ID, "settings.update", "settings", c.tenant.ID)
	return settingsView{TenantID: c.tenant.ID, Settings: jsonObject(s.Settings), UpdatedAt: tp(s.UpdatedAt)}, nil
}

// Logs.

func (c *call) listAudit() (any, error) {
	after, limit, err := c.page()
	if err != nil {
		return nil, err
	}
	es, next, err := c.a.o.Accounts.ListAudit(c.ctx(), c.tenant.ID, after, limit)
	if err != nil {
		return nil, err
	}
	return listOf(es, next, viewAudit), nil
}

func (c *call) listAPICalls() (any, error) {
	after, limit, err := c.page()
	if err != nil {
		return nil, err
	}
	cs, next, err := c.a.o.Accounts.ListAPICalls(c.ctx(), c.tenant.ID, after, limit)
	if err != nil {
		return nil, err
	}
	return listOf(cs, next, viewAPICall), nil
}
