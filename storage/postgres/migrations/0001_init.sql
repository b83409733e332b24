-- Parley schema, PostgreSQL flavour. Tables are created unqualified, so
-- they land in the first schema of the connection's search_path.
-- The Store writes times truncated to milliseconds, like SQLite's.

CREATE TABLE conversations (
    id          text        NOT NULL PRIMARY KEY,
    tenant_id   text        NOT NULL,
    agent_id    text        NOT NULL,
    channel     text        NOT NULL,
    language    text        NOT NULL,
    started_at  timestamptz NOT NULL,
    ended_at    timestamptz,            -- NULL while the conversation is open
    duration_ms bigint      NOT NULL DEFAULT 0,
    turn_count  integer     NOT NULL DEFAULT 0,
    expires_at  timestamptz NOT NULL
);

CREATE INDEX conversations_tenant_id_idx ON conversations (tenant_id, id);
CREATE INDEX conversations_expires_at_idx ON conversations (expires_at);

-- A turn id is the realtime item id, which clients may choose, so it is
-- unique per conversation rather than globally.
CREATE TABLE turns (
    conversation_id text        NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    id              text        NOT NULL,
    tenant_id       text        NOT NULL,
    seq             integer     NOT NULL,
    role            text        NOT NULL,
    text            text,                 -- NULL when only metadata is kept
    text_stored     boolean     NOT NULL,
    status          text        NOT NULL,
    started_at      timestamptz NOT NULL,
    ended_at        timestamptz NOT NULL,
    first_token_ms  bigint      NOT NULL DEFAULT 0,
    total_ms        bigint      NOT NULL DEFAULT 0,
    engine_ms       bigint      NOT NULL DEFAULT 0,
    expires_at      timestamptz NOT NULL,
    PRIMARY KEY (conversation_id, id),
    UNIQUE (conversation_id, seq),
    CHECK (text_stored OR text IS NULL)
);

CREATE INDEX turns_tenant_id_idx ON turns (tenant_id, conversation_id);
CREATE INDEX turns_expires_at_idx ON turns (expires_at);

CREATE TABLE api_keys (
    id           text        NOT NULL PRIMARY KEY,
    tenant_id    text        NOT NULL,
    prefix       text        NOT NULL,
    hash         bytea       NOT NULL,
    created_at   timestamptz NOT NULL,
    last_used_at timestamptz            -- NULL until first use
);

CREATE INDEX api_keys_tenant_id_idx ON api_keys (tenant_id, id);
CREATE INDEX api_keys_prefix_idx ON api_keys (prefix);
