-- Ephemeral keys: short-lived client secrets ("ek_...") for WebRTC calls
-- and browser WebSocket sessions, each usable once. Only the SHA-256 of a
-- key is kept; its prefix (unique) finds the row. session is the JSON
-- session settings, opaque to storage (empty when there are none). The
-- Store writes times truncated to milliseconds, like the other tables.

CREATE TABLE ephemeral_keys (
    id         text        NOT NULL PRIMARY KEY,
    tenant_id  text        NOT NULL,
    key_id     text        NOT NULL,    -- the secret key that minted it
    agent_id   text        NOT NULL,
    prefix     text        NOT NULL UNIQUE,
    hash       bytea       NOT NULL,
    session    bytea       NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz             -- NULL until consumed
);

CREATE INDEX ephemeral_keys_expires_at_idx ON ephemeral_keys (expires_at);
