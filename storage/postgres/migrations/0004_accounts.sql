-- Multi-tenancy: tenants, users, memberships, invitations, sign-in
-- sessions, keys with kinds and scopes, tenant-managed agents and settings,
-- the API call and audit logs, idempotency records. Id columns compare
-- bytewise (COLLATE "C"), as in SQLite, so both backends order list ties
-- alike whatever the database's collation. The Store writes times
-- truncated to milliseconds, like the other tables; NULL where a time is
-- "not set".
--
-- Upgrading keeps every row: each tenant id already in use gets a tenant
-- row ('default' named "Default"), created at its earliest record, and
-- every existing key becomes an owner key (secret, scopes realtime and
-- management) of its tenant. Nodes still running the previous version keep
-- working during a rolling upgrade: their INSERTs name only the old
-- columns, which get the same defaults. ADD COLUMN with a constant default
-- does not rewrite the table.

CREATE TABLE tenants (
    id          text COLLATE "C" NOT NULL PRIMARY KEY,
    name        text        NOT NULL,
    plan        text        NOT NULL CHECK (plan <> ''),
    created_at  timestamptz NOT NULL,
    disabled_at timestamptz,            -- NULL while active
    purge_after timestamptz             -- NULL unless deleted
);

CREATE INDEX tenants_purge_after_idx ON tenants (purge_after) WHERE purge_after IS NOT NULL;

INSERT INTO tenants (id, name, plan, created_at)
SELECT tenant_id, CASE tenant_id WHEN 'default' THEN 'Default' ELSE tenant_id END, 'enterprise', min(t)
FROM (
    SELECT 'default' AS tenant_id, date_trunc('milliseconds', now()) AS t
    UNION ALL SELECT tenant_id, created_at FROM api_keys
    UNION ALL SELECT tenant_id, started_at FROM conversations
    UNION ALL SELECT tenant_id, created_at FROM ephemeral_keys
) AS used
WHERE tenant_id <> ''
GROUP BY tenant_id;

-- email is stored normalized (trimmed, lower-cased) by the Store.
CREATE TABLE users (
    id                  text COLLATE "C" NOT NULL PRIMARY KEY,
    email               text        NOT NULL UNIQUE,
    name                text        NOT NULL,
    company             text        NOT NULL,
    password_hash       bytea       NOT NULL,   -- empty without a password
    created_at          timestamptz NOT NULL,
    password_changed_at timestamptz
);

CREATE TABLE memberships (
    tenant_id  text COLLATE "C" NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id    text COLLATE "C" NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role       text        NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'viewer')),
    created_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, user_id)
);

CREATE INDEX memberships_list_idx ON memberships (tenant_id, created_at, user_id);
CREATE INDEX memberships_user_idx ON memberships (user_id);

CREATE TABLE invitations (
    id          text COLLATE "C" NOT NULL PRIMARY KEY,
    tenant_id   text COLLATE "C" NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    email       text        NOT NULL,
    role        text        NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'viewer')),
    prefix      text        NOT NULL UNIQUE,
    hash        bytea       NOT NULL,
    invited_by  text        NOT NULL,
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    accepted_at timestamptz              -- NULL while pending
);

CREATE INDEX invitations_list_idx ON invitations (tenant_id, created_at, id);
CREATE INDEX invitations_expires_at_idx ON invitations (expires_at);

CREATE TABLE user_sessions (
    id           text COLLATE "C" NOT NULL PRIMARY KEY,
    user_id      text COLLATE "C" NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    prefix       text        NOT NULL UNIQUE,
    hash         bytea       NOT NULL,
    created_at   timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    last_seen_at timestamptz,
    revoked_at   timestamptz
);

CREATE INDEX user_sessions_list_idx ON user_sessions (user_id, created_at, id);
CREATE INDEX user_sessions_expires_at_idx ON user_sessions (expires_at);

-- Keys: the api_keys table grows kinds, scopes and restrictions. Existing
-- rows become owner keys. Prefixes become unique (version 1 generated one
-- key per database, with a 53-bit random prefix).
ALTER TABLE api_keys
    ADD COLUMN kind       text   NOT NULL DEFAULT 'secret' CHECK (kind IN ('secret', 'publishable')),
    ADD COLUMN name       text   NOT NULL DEFAULT '',
    ADD COLUMN scopes     text[] NOT NULL DEFAULT '{realtime,management}',
    ADD COLUMN agent_ids  text[] NOT NULL DEFAULT '{}',
    ADD COLUMN origins    text[] NOT NULL DEFAULT '{}',
    ADD COLUMN created_by text   NOT NULL DEFAULT '',
    ADD COLUMN revoked_at timestamptz;

ALTER TABLE api_keys ALTER COLUMN id TYPE text COLLATE "C";

DROP INDEX api_keys_prefix_idx;
CREATE UNIQUE INDEX api_keys_prefix_key ON api_keys (prefix);
CREATE INDEX api_keys_list_idx ON api_keys (tenant_id, created_at, id);

CREATE TABLE agents (
    tenant_id    text COLLATE "C" NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id           text COLLATE "C" NOT NULL,
    name         text        NOT NULL,
    instructions text        NOT NULL,
    greeting     text        NOT NULL,
    engine       text        NOT NULL,
    voice        text        NOT NULL,
    language     text        NOT NULL,
    settings     bytea       NOT NULL,  -- JSON, opaque (kept byte for byte); empty when none
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

CREATE INDEX agents_list_idx ON agents (tenant_id, created_at, id);

CREATE TABLE tenant_settings (
    tenant_id  text COLLATE "C" NOT NULL PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    settings   bytea       NOT NULL,    -- JSON, opaque (kept byte for byte); empty when none
    updated_at timestamptz NOT NULL
);

-- The API call log: endpoint (route pattern), time, status, key; never
-- bodies. No foreign keys: it is written after the fact, in batches.
CREATE TABLE api_calls (
    id         text COLLATE "C" NOT NULL PRIMARY KEY,
    tenant_id  text COLLATE "C" NOT NULL,
    key_id     text        NOT NULL,
    user_id    text COLLATE "C" NOT NULL,
    method     text        NOT NULL,
    route      text        NOT NULL,
    status     integer     NOT NULL,
    at         timestamptz NOT NULL,
    expires_at timestamptz NOT NULL
);

CREATE INDEX api_calls_list_idx ON api_calls (tenant_id, at, id);
CREATE INDEX api_calls_expires_at_idx ON api_calls (expires_at);

CREATE TABLE audit_log (
    id          text COLLATE "C" NOT NULL PRIMARY KEY,
    tenant_id   text COLLATE "C" NOT NULL,
    actor_kind  text        NOT NULL CHECK (actor_kind IN ('user', 'key', 'system')),
    actor_id    text        NOT NULL,
    action      text        NOT NULL,
    target_kind text        NOT NULL,
    target_id   text        NOT NULL,
    at          timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL
);

CREATE INDEX audit_log_list_idx ON audit_log (tenant_id, at, id);
CREATE INDEX audit_log_expires_at_idx ON audit_log (expires_at);

CREATE TABLE idempotency_records (
    tenant_id    text COLLATE "C" NOT NULL,
    idem_key     text        NOT NULL,
    request_hash bytea       NOT NULL,
    status       integer     NOT NULL,
    body         bytea       NOT NULL,
    created_at   timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, idem_key)
);

CREATE INDEX idempotency_records_expires_at_idx ON idempotency_records (expires_at);
