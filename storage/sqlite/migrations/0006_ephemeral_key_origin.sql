-- The browser origin a publishable key minted an ephemeral key for
-- ('' for keys minted with a secret key): a browser session opened with
-- the key is accepted from that origin.

ALTER TABLE ephemeral_keys ADD COLUMN origin TEXT NOT NULL DEFAULT '';
