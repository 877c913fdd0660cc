-- Pending email address changes (issue 4). Never edit an applied migration.
--
-- One row per user at most: a new request replaces the older one. `token_hash` is the
-- SHA-256 of the random token mailed to the new address (256 bits of entropy, so a fast
-- hash suffices); the token itself is never stored. `new_email` is the address as typed.
-- A row is used once (`used_at`) and deleted when it expires (24 h after the request).
CREATE TABLE email_changes (
    token_hash  TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL UNIQUE,
    new_email   TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT
);
CREATE INDEX email_changes_expires ON email_changes (expires_at);
