-- Multi-tenancy: tenants, users, memberships, invitations, sign-in
-- sessions, keys with kinds and scopes, tenant-managed agents and settings,
-- the API call and audit logs, idempotency records. Times are INTEGER unix
-- milliseconds UTC, like the other tables; NULL where a time is "not set".
--
-- Upgrading keeps every row: each tenant id already in use gets a tenant
-- row ('default' named "Default"), created at its earliest record, and
-- every existing key becomes an owner key (secret, scopes realtime and
-- management) of its tenant. Nodes still running the previous version keep
-- working during a rolling upgrade: their INSERTs name only the old
-- columns, which get the same defaults.

CREATE TABLE tenants (
    id          TEXT    NOT NULL PRIMARY KEY,
    name        TEXT    NOT NULL,
    plan        TEXT    NOT NULL CHECK (plan <> ''),
    created_at  INTEGER NOT NULL,
    disabled_at INTEGER,             -- NULL while active
    purge_after INTEGER              -- NULL unless deleted
) STRICT;

CREATE INDEX tenants_purge_after_idx ON tenants (purge_after) WHERE purge_after IS NOT NULL;

INSERT INTO tenants (id, name, plan, created_at)
SELECT tenant_id, CASE tenant_id WHEN 'default' THEN 'Default' ELSE tenant_id END, 'enterprise', min(t)
FROM (
    SELECT 'default' AS tenant_id, CAST(unixepoch('subsec') * 1000 AS INTEGER) AS t
    UNION ALL SELECT tenant_id, created_at FROM api_keys
    UNION ALL SELECT tenant_id, started_at FROM conversations
    UNION ALL SELECT tenant_id, created_at FROM ephemeral_keys
)
WHERE tenant_id <> ''
GROUP BY tenant_id;

-- email is stored normalized (trimmed, lower-cased) by the Store.
CREATE TABLE users (
    id                  TEXT    NOT NULL PRIMARY KEY,
    email               TEXT    NOT NULL UNIQUE,
    name                TEXT    NOT NULL,
    company             TEXT    NOT NULL,
    password_hash       BLOB    NOT NULL,   -- empty without a password
    created_at          INTEGER NOT NULL,
    password_changed_at INTEGER
) STRICT;

CREATE TABLE memberships (
    tenant_id  TEXT    NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id    TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role       TEXT    NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'viewer')),
    created_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, user_id)
) STRICT;

CREATE INDEX memberships_list_idx ON memberships (tenant_id, created_at, user_id);
CREATE INDEX memberships_user_idx ON memberships (user_id);

CREATE TABLE invitations (
    id          TEXT    NOT NULL PRIMARY KEY,
    tenant_id   TEXT    NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    email       TEXT    NOT NULL,
    role        TEXT    NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'viewer')),
    prefix      TEXT    NOT NULL UNIQUE,
    hash        BLOB    NOT NULL,
    invited_by  TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    accepted_at INTEGER               -- NULL while pending
) STRICT;

CREATE INDEX invitations_list_idx ON invitations (tenant_id, created_at, id);
CREATE INDEX invitations_expires_at_idx ON invitations (expires_at);

CREATE TABLE user_sessions (
    id           TEXT    NOT NULL PRIMARY KEY,
    user_id      TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    prefix       TEXT    NOT NULL UNIQUE,
    hash         BLOB    NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    last_seen_at INTEGER,
    revoked_at   INTEGER
) STRICT;

CREATE INDEX user_sessions_list_idx ON user_sessions (user_id, created_at, id);
CREATE INDEX user_sessions_expires_at_idx ON user_sessions (expires_at);

-- Keys: the api_keys table grows kinds, scopes and restrictions. The list
-- columns hold JSON arrays of strings. Existing rows become owner keys.
-- Prefixes become unique (version 1 generated one key per database, with
-- a 53-bit random prefix).
ALTER TABLE api_keys ADD COLUMN kind TEXT NOT NULL DEFAULT 'secret' CHECK (kind IN ('secret', 'publishable'));
ALTER TABLE api_keys ADD COLUMN name TEXT NOT NULL DEFAULT '';
ALTER TABLE api_keys ADD COLUMN scopes TEXT NOT NULL DEFAULT '["realtime","management"]' CHECK (json_valid(scopes));
ALTER TABLE api_keys ADD COLUMN agent_ids TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(agent_ids));
ALTER TABLE api_keys ADD COLUMN origins TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(origins));
ALTER TABLE api_keys ADD COLUMN created_by TEXT NOT NULL DEFAULT '';
ALTER TABLE api_keys ADD COLUMN revoked_at INTEGER;

DROP INDEX api_keys_prefix_idx;
CREATE UNIQUE INDEX api_keys_prefix_key ON api_keys (prefix);
CREATE INDEX api_keys_list_idx ON api_keys (tenant_id, created_at, id);

CREATE TABLE agents (
    tenant_id    TEXT    NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id           TEXT    NOT NULL,
    name         TEXT    NOT NULL,
    instructions TEXT    NOT NULL,
    greeting     TEXT    NOT NULL,
    engine       TEXT    NOT NULL,
    voice        TEXT    NOT NULL,
    language     TEXT    NOT NULL,
    settings     BLOB    NOT NULL,   -- JSON, opaque; empty when none
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id)
) STRICT;

CREATE INDEX agents_list_idx ON agents (tenant_id, created_at, id);

CREATE TABLE tenant_settings (
    tenant_id  TEXT    NOT NULL PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    settings   BLOB    NOT NULL,     -- JSON, opaque; empty when none
    updated_at INTEGER NOT NULL
) STRICT;

-- The API call log: endpoint (route pattern), time, status, key; never
-- bodies. No foreign keys: it is written after the fact, in batches.
CREATE TABLE api_calls (
    id         TEXT    NOT NULL PRIMARY KEY,
    tenant_id  TEXT    NOT NULL,
    key_id     TEXT    NOT NULL,
    user_id    TEXT    NOT NULL,
    method     TEXT    NOT NULL,
    route      TEXT    NOT NULL,
    status     INTEGER NOT NULL,
    at         INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT;

CREATE INDEX api_calls_list_idx ON api_calls (tenant_id, at, id);
CREATE INDEX api_calls_expires_at_idx ON api_calls (expires_at);

CREATE TABLE audit_log (
    id          TEXT    NOT NULL PRIMARY KEY,
    tenant_id   TEXT    NOT NULL,
    actor_kind  TEXT    NOT NULL CHECK (actor_kind IN ('user', 'key', 'system')),
    actor_id    TEXT    NOT NULL,
    action      TEXT    NOT NULL,
    target_kind TEXT    NOT NULL,
    target_id   TEXT    NOT NULL,
    at          INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
) STRICT;

CREATE INDEX audit_log_list_idx ON audit_log (tenant_id, at, id);
CREATE INDEX audit_log_expires_at_idx ON audit_log (expires_at);

CREATE TABLE idempotency_records (
    tenant_id    TEXT    NOT NULL,
    idem_key     TEXT    NOT NULL,
    request_hash BLOB    NOT NULL,
    status       INTEGER NOT NULL,
    body         BLOB    NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, idem_key)
) STRICT;

CREATE INDEX idempotency_records_expires_at_idx ON idempotency_records (expires_at);
