package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"parley/agent"
	"parley/agent/kb"
	"parley/agent/knowledge"
	"parley/manage"
	"parley/storage"
	"parley/storage/seal"
)

// tenantAgents loads the agents tenants manage through the management API
// for the realtime gateway. A built agent (its knowledge index is the
// costly part) is kept and reused until the stored agent changes; the row
// is re-read at most every ttl, so an edit takes effect within it.
type tenantAgents struct {
	store storage.Accounts
	kr    *seal.Keyring
	ttl   time.Duration
	now   func() time.Time

	mu    sync.Mutex
	cache map[string]*tenantAgent // tenant + "/" + id
}

type tenantAgent struct {
	agent   *agent.Agent
	updated time.Time // the stored row's UpdatedAt it was built from
	checked time.Time
}

// maxTenantAgents bounds the cache (it is dropped whole past it).
const maxTenantAgents = 10000

func newTenantAgents(store storage.Accounts, kr *seal.Keyring) *tenantAgents {
	return &tenantAgents{store: store, kr: kr, ttl: 30 * time.Second, now: time.Now, cache: map[string]*tenantAgent{}}
}

// Get implements gateway.Options.TenantAgent.
func (t *tenantAgents) Get(ctx context.Context, tenantID, id string) (*agent.Agent, error) {
	key := tenantID + "/" + id
	now := t.now()
	t.mu.Lock()
	e := t.cache[key]
	t.mu.Unlock()
	if e != nil && now.Sub(e.checked) < t.ttl {
		return e.agent, nil
	}
	row, err := t.store.GetAgent(ctx, tenantID, id)
	if err != nil {
		if e != nil && err == storage.ErrNotFound {
			t.mu.Lock()
			delete(t.cache, key)
			t.mu.Unlock()
		}
		return nil, err
	}
	if e == nil || !e.updated.Equal(row.UpdatedAt) {
		a, err := t.build(ctx, row)
		if err != nil {
			return nil, err
		}
		e = &tenantAgent{agent: a, updated: row.UpdatedAt}
	}
	e.checked = now
	t.mu.Lock()
	if len(t.cache) >= maxTenantAgents {
		clear(t.cache)
	}
	t.cache[key] = e
	t.mu.Unlock()
	return e.agent, nil
}

// build unseals a stored agent's settings (its knowledge documents) and
// builds it.
func (t *tenantAgents) build(ctx context.Context, row *storage.Agent) (*agent.Agent, error) {
	settings, err := manage.AgentSettings(ctx, t.kr, row)
	if err != nil {
		return nil, fmt.Errorf("agent %s/%s: opening its settings: %w", row.TenantID, row.ID, err)
	}
	return buildTenantAgent(row, settings)
}

// buildTenantAgent turns a stored agent into a runnable one: the offline
// knowledge-base engine over the documents in its settings.
func buildTenantAgent(row *storage.Agent, settings []byte) (*agent.Agent, error) {
	set, err := agent.ParseSettings(settings)
	if err != nil {
		return nil, fmt.Errorf("agent %s/%s: %w", row.TenantID, row.ID, err)
	}
	if row.Engine != storage.EngineKB {
		return nil, fmt.Errorf("agent %s/%s: engine %q is not available for tenant agents", row.TenantID, row.ID, row.Engine)
	}
	a := &agent.Agent{ID: row.ID, Name: row.Name, Instructions: row.Instructions, Greeting: row.Greeting,
		TopK: set.TopK, Voice: row.Voice, Language: row.Language,
		Responder: kb.New(kb.Config{MaxSentences: set.MaxSentences})}
	if len(set.Knowledge) > 0 {
		idx, err := knowledge.New(set.Knowledge)
		if err != nil {
			return nil, fmt.Errorf("agent %s/%s knowledge: %w", row.TenantID, row.ID, err)
		}
		a.Knowledge = idx
		a.SpeechCorpus = idx.Texts()
	}
	return a, nil
}
