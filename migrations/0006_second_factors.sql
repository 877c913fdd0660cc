-- Second factors (issue 4). Never edit an applied migration.

-- One TOTP authenticator per user. `secret_sealed` is the RFC 6238 key sealed with AES-GCM
-- under the instance secret (purpose "totp secrets"). A row with `confirmed_at` NULL is an
-- enrolment in progress: it protects nothing until the user entered a valid code.
-- `last_step` is the last accepted time step: a code is accepted only for a later step,
-- with a conditional UPDATE, so a code works once even under concurrent use.
CREATE TABLE totp_factors (
    user_id       TEXT PRIMARY KEY,
    secret_sealed TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    confirmed_at  BIGINT,
    last_step     BIGINT NOT NULL DEFAULT 0
);

-- Single-use recovery codes, SHA-256 of (user id, code): the codes are random with 80 bits
-- of entropy, so a fast hash suffices. Regenerating replaces the whole set.
CREATE TABLE recovery_codes (
    code_hash   TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    used_at     BIGINT
);
CREATE INDEX recovery_codes_user ON recovery_codes (user_id);
