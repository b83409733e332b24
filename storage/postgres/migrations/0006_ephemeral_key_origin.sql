-- The browser origin a publishable key minted an ephemeral key for
-- ('' for keys minted with a secret key): a browser session opened with
-- the key is accepted from that origin. ADD COLUMN with a constant
-- default does not rewrite the table.

ALTER TABLE ephemeral_keys ADD COLUMN origin text NOT NULL DEFAULT '';
