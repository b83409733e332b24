-- Ephemeral keys: short-lived client secrets ("ek_...") for WebRTC calls
-- and browser WebSocket sessions, each usable once. Only the SHA-256 of a
-- key is kept; its prefix (unique) finds the row. session is the JSON
-- session settings, opaque to storage (an empty BLOB when there are none).
-- Times are INTEGER unix milliseconds UTC, like the other tables.

CREATE TABLE ephemeral_keys (
    id         TEXT    NOT NULL PRIMARY KEY,
    tenant_id  TEXT    NOT NULL,
    key_id     TEXT    NOT NULL,     -- the secret key that minted it
    agent_id   TEXT    NOT NULL,
    prefix     TEXT    NOT NULL UNIQUE,
    hash       BLOB    NOT NULL,
    session    BLOB    NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER               -- NULL until consumed
) STRICT;

CREATE INDEX ephemeral_keys_expires_at_idx ON ephemeral_keys (expires_at);
