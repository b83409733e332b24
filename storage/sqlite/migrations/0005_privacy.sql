-- Privacy: encryption at rest, per-tenant privacy policies, audio logs,
-- usage records. Times are INTEGER unix milliseconds UTC, like the other
-- tables.
--
-- Transcripts and agent settings are sealed (AES-256-GCM under the
-- tenant's data key) before they reach storage: new rows fill
-- turns.text_sealed and agents.settings_sealed. The plaintext columns stay
-- for the rows written before this migration (and by nodes still running
-- the previous version during a rolling upgrade: their INSERTs name only
-- the old columns); Privacy.LegacyPlaintext finds them and
-- Privacy.ReplaceLegacy seals them, clearing the plaintext.

ALTER TABLE turns ADD COLUMN text_sealed BLOB CHECK (text_sealed IS NULL OR text_stored = 1);
ALTER TABLE turns ADD COLUMN sentiment REAL NOT NULL DEFAULT 0;
-- The turns still holding plaintext: what LegacyPlaintext walks.
CREATE INDEX turns_legacy_idx ON turns (conversation_id, id) WHERE text IS NOT NULL;
-- Every index of turns is rewritten for every turn the sweeper deletes,
-- and the conversation-keyed ones at scattered pages when many
-- conversations run at once. This one served no query the others do not:
-- a conversation's turns are found by the primary key or (conversation_id,
-- seq), a tenant's through its conversations.
DROP INDEX turns_tenant_id_idx;

ALTER TABLE conversations ADD COLUMN end_user TEXT NOT NULL DEFAULT '';  -- a pseudonym, '' when none
ALTER TABLE conversations ADD COLUMN sentiment REAL NOT NULL DEFAULT 0;
CREATE INDEX conversations_end_user_idx ON conversations (tenant_id, end_user, id);

ALTER TABLE agents ADD COLUMN settings_sealed BLOB;               -- NULL when none
CREATE INDEX agents_legacy_idx ON agents (tenant_id, id) WHERE length(settings) > 0;

-- A tenant's data key, wrapped by a master key; only the wrapped form is
-- stored. Deleting the row crypto-shreds the tenant's sealed data.
CREATE TABLE data_keys (
    tenant_id     TEXT    NOT NULL PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    master_key_id TEXT    NOT NULL,
    wrapped       BLOB    NOT NULL,
    created_at    INTEGER NOT NULL
) STRICT;

CREATE TABLE privacy_policies (
    tenant_id       TEXT    NOT NULL PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    transcript_days INTEGER NOT NULL,
    metadata_days   INTEGER NOT NULL,
    audio_logging   INTEGER NOT NULL CHECK (audio_logging IN (0, 1)),
    audio_days      INTEGER NOT NULL,
    redact_emails   INTEGER NOT NULL CHECK (redact_emails IN (0, 1)),
    redact_phones   INTEGER NOT NULL CHECK (redact_phones IN (0, 1)),
    redact_cards    INTEGER NOT NULL CHECK (redact_cards IN (0, 1)),
    redact_ibans    INTEGER NOT NULL CHECK (redact_ibans IN (0, 1)),
    training_opt_in INTEGER NOT NULL CHECK (training_opt_in IN (0, 1)),
    updated_at      INTEGER NOT NULL
) STRICT;

-- The sealed audio of a logged turn. It goes with its conversation, not
-- with its turn: it has its own expiry (the policy's audio days).
CREATE TABLE turn_audio (
    conversation_id TEXT    NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    turn_id         TEXT    NOT NULL,
    tenant_id       TEXT    NOT NULL,
    format          TEXT    NOT NULL,
    sealed          BLOB    NOT NULL,
    duration_ms     INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    PRIMARY KEY (conversation_id, turn_id)
) STRICT;

CREATE INDEX turn_audio_expires_at_idx ON turn_audio (expires_at);

-- One row per ended conversation, kept a year; no foreign key: it
-- outlives its conversation.
CREATE TABLE usage_events (
    id              TEXT    NOT NULL PRIMARY KEY,
    tenant_id       TEXT    NOT NULL,
    conversation_id TEXT    NOT NULL,
    channel         TEXT    NOT NULL,
    language        TEXT    NOT NULL,
    at              INTEGER NOT NULL,
    duration_ms     INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL
) STRICT;

CREATE INDEX usage_events_expires_at_idx ON usage_events (expires_at);
CREATE INDEX usage_events_conversation_idx ON usage_events (tenant_id, conversation_id);

-- Daily rollups of the usage events (day is midnight UTC); kept for the
-- tenant's life.
CREATE TABLE usage_days (
    tenant_id     TEXT    NOT NULL,
    day           INTEGER NOT NULL,
    channel       TEXT    NOT NULL,
    language      TEXT    NOT NULL,
    conversations INTEGER NOT NULL,
    duration_ms   INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, day, channel, language)
) STRICT;

-- The end user an ephemeral key was minted for, as a pseudonym ('' when
-- none was named).
ALTER TABLE ephemeral_keys ADD COLUMN end_user TEXT NOT NULL DEFAULT '';
