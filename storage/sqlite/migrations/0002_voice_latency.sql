-- Voice latency figures of a turn, in milliseconds from the end of the
-- user's speech; 0 means not reached, or not a voice turn (every row written
-- before this migration reads back 0).

ALTER TABLE turns ADD COLUMN end_of_turn_ms       INTEGER NOT NULL DEFAULT 0;
ALTER TABLE turns ADD COLUMN first_partial_ms     INTEGER NOT NULL DEFAULT 0;
ALTER TABLE turns ADD COLUMN final_transcript_ms  INTEGER NOT NULL DEFAULT 0;
ALTER TABLE turns ADD COLUMN first_audio_ms       INTEGER NOT NULL DEFAULT 0;
ALTER TABLE turns ADD COLUMN first_audio_sent_ms  INTEGER NOT NULL DEFAULT 0;
