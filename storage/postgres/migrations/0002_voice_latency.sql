-- Voice latency figures of a turn, in milliseconds from the end of the
-- user's speech; 0 means not reached, or not a voice turn (every row written
-- before this migration reads back 0). ADD COLUMN with a constant default
-- does not rewrite the table (PostgreSQL 11+).

ALTER TABLE turns
    ADD COLUMN end_of_turn_ms      bigint NOT NULL DEFAULT 0,
    ADD COLUMN first_partial_ms    bigint NOT NULL DEFAULT 0,
    ADD COLUMN final_transcript_ms bigint NOT NULL DEFAULT 0,
    ADD COLUMN first_audio_ms      bigint NOT NULL DEFAULT 0,
    ADD COLUMN first_audio_sent_ms bigint NOT NULL DEFAULT 0;
