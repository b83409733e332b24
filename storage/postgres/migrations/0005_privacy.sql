-- Privacy: encryption at rest, per-tenant privacy policies, audio logs,
-- usage records. The Store writes times truncated to milliseconds, like
-- the other tables.
--
-- Transcripts and agent settings are sealed (AES-256-GCM under the
-- tenant's data key) before they reach storage: new rows fill
-- turns.text_sealed and agents.settings_sealed. The plaintext columns stay
-- for the rows written before this migration (and by nodes still running
-- the previous version during a rolling upgrade: their INSERTs name only
-- the old columns, which get the defaults below); Privacy.LegacyPlaintext
-- finds them and Privacy.ReplaceLegacy seals them, clearing the
-- plaintext. ADD COLUMN with a constant default does not rewrite a table.

ALTER TABLE turns
    ADD COLUMN text_sealed bytea,                               -- NULL when only metadata is kept
    ADD COLUMN sentiment   double precision NOT NULL DEFAULT 0;

-- The rule of turns_check (text_stored OR text IS NULL) for the sealed
-- text. Every existing row has text_sealed NULL, so the constraint holds
-- for them: NOT VALID spares a scan of the whole table under this
-- migration's exclusive lock. It is enforced for every row written from
-- now on all the same.
ALTER TABLE turns ADD CONSTRAINT turns_text_sealed_check CHECK (text_stored OR text_sealed IS NULL) NOT VALID;

-- The turns still holding plaintext: what LegacyPlaintext walks (empty
-- once every row is sealed).
CREATE INDEX turns_legacy_idx ON turns (conversation_id, id) WHERE text IS NOT NULL;

ALTER TABLE conversations
    ADD COLUMN end_user  text             NOT NULL DEFAULT '',  -- a pseudonym, '' when none
    ADD COLUMN sentiment double precision NOT NULL DEFAULT 0;

-- ListConversations pages by id compared bytewise (COLLATE "C"), as the
-- other lists and SQLite do, whatever the database's collation: the
-- tenant index is rebuilt in that order (it served only the tenant's
-- scans; lookups by id use the primary key), and the end user index has
-- it too.
DROP INDEX conversations_tenant_id_idx;
CREATE INDEX conversations_tenant_id_idx ON conversations (tenant_id, id COLLATE "C");
CREATE INDEX conversations_end_user_idx ON conversations (tenant_id, end_user, id COLLATE "C");

ALTER TABLE agents ADD COLUMN settings_sealed bytea;           -- NULL when none
-- The agents still holding plaintext settings.
CREATE INDEX agents_legacy_idx ON agents (tenant_id, id) WHERE octet_length(settings) > 0;

-- A tenant's data key, wrapped by a master key; only the wrapped form is
-- stored. Deleting the row crypto-shreds the tenant's sealed data.
CREATE TABLE data_keys (
    tenant_id     text COLLATE "C" NOT NULL PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    master_key_id text        NOT NULL,
    wrapped       bytea       NOT NULL,
    created_at    timestamptz NOT NULL
);

CREATE TABLE privacy_policies (
    tenant_id       text COLLATE "C" NOT NULL PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    transcript_days integer     NOT NULL,
    metadata_days   integer     NOT NULL,
    audio_logging   boolean     NOT NULL,
    audio_days      integer     NOT NULL,
    redact_emails   boolean     NOT NULL,
    redact_phones   boolean     NOT NULL,
    redact_cards    boolean     NOT NULL,
    redact_ibans    boolean     NOT NULL,
    training_opt_in boolean     NOT NULL,
    updated_at      timestamptz NOT NULL
);

-- The sealed audio of a logged turn. It goes with its conversation, not
-- with its turn: it has its own expiry (the policy's audio days). The
-- primary key's first column serves the cascade and the lookups by
-- conversation.
CREATE TABLE turn_audio (
    conversation_id text        NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    turn_id         text        NOT NULL,
    tenant_id       text        NOT NULL,
    format          text        NOT NULL,
    sealed          bytea       NOT NULL,
    duration_ms     bigint      NOT NULL,
    created_at      timestamptz NOT NULL,
    expires_at      timestamptz NOT NULL,
    PRIMARY KEY (conversation_id, turn_id)
);

CREATE INDEX turn_audio_expires_at_idx ON turn_audio (expires_at);

-- One row per ended conversation, kept a year; no foreign key: it
-- outlives its conversation.
CREATE TABLE usage_events (
    id              text COLLATE "C" NOT NULL PRIMARY KEY,
    tenant_id       text        NOT NULL,
    conversation_id text        NOT NULL,
    channel         text        NOT NULL,
    language        text        NOT NULL,
    at              timestamptz NOT NULL,
    duration_ms     bigint      NOT NULL,
    expires_at      timestamptz NOT NULL
);

CREATE INDEX usage_events_expires_at_idx ON usage_events (expires_at);
CREATE INDEX usage_events_conversation_idx ON usage_events (tenant_id, conversation_id);

-- Daily rollups of the usage events (day is the UTC day of the event);
-- kept for the tenant's life. Listed by (day, channel, language),
-- compared bytewise.
CREATE TABLE usage_days (
    tenant_id     text COLLATE "C" NOT NULL,
    day           date        NOT NULL,
    channel       text COLLATE "C" NOT NULL,
    language      text COLLATE "C" NOT NULL,
    conversations bigint      NOT NULL,
    duration_ms   bigint      NOT NULL,
    PRIMARY KEY (tenant_id, day, channel, language)
);

-- The end user an ephemeral key was minted for, as a pseudonym ('' when
-- none was named).
ALTER TABLE ephemeral_keys ADD COLUMN end_user text NOT NULL DEFAULT '';
