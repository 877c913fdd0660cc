-- Core schema. Portable between SQLite and PostgreSQL: TEXT and BIGINT only,
-- times are UTC unix seconds, flags are 0/1. Never edit an applied migration.

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL,
    email_norm    TEXT NOT NULL UNIQUE,
    email_verified BIGINT NOT NULL DEFAULT 0,
    name          TEXT,
    password_hash TEXT,
    is_admin      BIGINT NOT NULL DEFAULT 0,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);

CREATE TABLE clients (
    id                  TEXT PRIMARY KEY,
    name                TEXT NOT NULL,
    secret_hash         TEXT,
    redirect_uris       TEXT NOT NULL,
    post_logout_redirect_uris TEXT NOT NULL,
    scopes              TEXT NOT NULL,
    grant_types         TEXT NOT NULL,
    signing_alg         TEXT NOT NULL,
    created_at          BIGINT NOT NULL
);

-- Pending authorization requests, kept server-side while the user signs in and consents.
CREATE TABLE authorization_requests (
    id          TEXT PRIMARY KEY,
    payload     TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX authorization_requests_expires ON authorization_requests (expires_at);

-- One grant per successful code exchange: the family refresh tokens rotate in.
-- Revoking it kills its refresh tokens and the access tokens that name it.
CREATE TABLE grants (
    id          TEXT PRIMARY KEY,
    client_id   TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    scope       TEXT NOT NULL,
    auth_time   BIGINT NOT NULL,
    amr         TEXT NOT NULL,
    sid         TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);
CREATE INDEX grants_user_client ON grants (user_id, client_id);
CREATE INDEX grants_sid ON grants (sid);

CREATE TABLE authorization_codes (
    code_hash       TEXT PRIMARY KEY,
    client_id       TEXT NOT NULL,
    user_id         TEXT NOT NULL,
    redirect_uri    TEXT NOT NULL,
    scope           TEXT NOT NULL,
    nonce           TEXT,
    code_challenge  TEXT,
    auth_time       BIGINT NOT NULL,
    amr             TEXT NOT NULL,
    sid             TEXT NOT NULL,
    expires_at      BIGINT NOT NULL,
    used_at         BIGINT,
    grant_id        TEXT
);
CREATE INDEX authorization_codes_expires ON authorization_codes (expires_at);

CREATE TABLE refresh_tokens (
    token_hash  TEXT PRIMARY KEY,
    grant_id    TEXT NOT NULL,
    client_id   TEXT NOT NULL,
    scope       TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT
);
CREATE INDEX refresh_tokens_grant ON refresh_tokens (grant_id);

-- Access tokens are self-contained JWTs; revoked ones are remembered until they expire.
CREATE TABLE revoked_access_tokens (
    jti         TEXT PRIMARY KEY,
    expires_at  BIGINT NOT NULL
);

CREATE TABLE consents (
    user_id     TEXT NOT NULL,
    client_id   TEXT NOT NULL,
    scope       TEXT NOT NULL,
    granted_at  BIGINT NOT NULL,
    PRIMARY KEY (user_id, client_id)
);

-- The first successful authorization of a user at a client creates the link.
CREATE TABLE client_user_links (
    user_id         TEXT NOT NULL,
    client_id       TEXT NOT NULL,
    first_signin_at BIGINT NOT NULL,
    last_signin_at  BIGINT NOT NULL,
    PRIMARY KEY (user_id, client_id)
);

CREATE TABLE signing_keys (
    kid             TEXT PRIMARY KEY,
    alg             TEXT NOT NULL,
    private_sealed  TEXT NOT NULL,
    public_jwk      TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    retired_at      BIGINT
);

CREATE TABLE sessions (
    id          TEXT PRIMARY KEY,
    data        TEXT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX sessions_expires ON sessions (expires_at);
