-- Parley schema, SQLite flavour. Times are INTEGER unix milliseconds UTC.
-- STRICT tables make SQLite enforce the declared column types.

CREATE TABLE conversations (
    id          TEXT    NOT NULL PRIMARY KEY,
    tenant_id   TEXT    NOT NULL,
    agent_id    TEXT    NOT NULL,
    channel     TEXT    NOT NULL,
    language    TEXT    NOT NULL,
    started_at  INTEGER NOT NULL,
    ended_at    INTEGER,             -- NULL while the conversation is open
    duration_ms INTEGER NOT NULL DEFAULT 0,
    turn_count  INTEGER NOT NULL DEFAULT 0,
    expires_at  INTEGER NOT NULL
) STRICT;

CREATE INDEX conversations_tenant_id_idx ON conversations (tenant_id, id);
CREATE INDEX conversations_expires_at_idx ON conversations (expires_at);

-- A turn id is the realtime item id, which clients may choose, so it is
-- unique per conversation rather than globally.
CREATE TABLE turns (
    conversation_id TEXT    NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    id              TEXT    NOT NULL,
    tenant_id       TEXT    NOT NULL,
    seq             INTEGER NOT NULL,
    role            TEXT    NOT NULL,
    text            TEXT,            -- NULL when only metadata is kept
    text_stored     INTEGER NOT NULL CHECK (text_stored IN (0, 1)),
    status          TEXT    NOT NULL,
    started_at      INTEGER NOT NULL,
    ended_at        INTEGER NOT NULL,
    first_token_ms  INTEGER NOT NULL DEFAULT 0,
    total_ms        INTEGER NOT NULL DEFAULT 0,
    engine_ms       INTEGER NOT NULL DEFAULT 0,
    expires_at      INTEGER NOT NULL,
    PRIMARY KEY (conversation_id, id),
    UNIQUE (conversation_id, seq),
    CHECK (text_stored = 1 OR text IS NULL)
) STRICT;

CREATE INDEX turns_tenant_id_idx ON turns (tenant_id, conversation_id);
CREATE INDEX turns_expires_at_idx ON turns (expires_at);

CREATE TABLE api_keys (
    id           TEXT    NOT NULL PRIMARY KEY,
    tenant_id    TEXT    NOT NULL,
    prefix       TEXT    NOT NULL,
    hash         BLOB    NOT NULL,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER             -- NULL until first use
) STRICT;

CREATE INDEX api_keys_tenant_id_idx ON api_keys (tenant_id, id);
CREATE INDEX api_keys_prefix_idx ON api_keys (prefix);
