-- The release rule (DESIGN §4): client status, per-scope verification, the client-user
-- link with its pairwise subject, withdrawal, audit and data-access logs.

ALTER TABLE clients ADD COLUMN status TEXT NOT NULL DEFAULT 'unverified';
ALTER TABLE clients ADD COLUMN subject_type TEXT NOT NULL DEFAULT 'pairwise';
ALTER TABLE clients ADD COLUMN owner_id TEXT;

-- Verification state of each scope enabled for a client; no row means `requested`.
CREATE TABLE client_scopes (
    client_id   TEXT NOT NULL,
    scope       TEXT NOT NULL,
    state       TEXT NOT NULL,
    purpose     TEXT,
    note        TEXT,
    decided_by  TEXT,
    decided_at  BIGINT,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (client_id, scope)
);

ALTER TABLE client_user_links ADD COLUMN sub TEXT;
ALTER TABLE client_user_links ADD COLUMN scope TEXT NOT NULL DEFAULT '';
ALTER TABLE client_user_links ADD COLUMN withdrawn_at BIGINT;
CREATE INDEX client_user_links_client_sub ON client_user_links (client_id, sub);
CREATE INDEX client_user_links_client ON client_user_links (client_id, last_signin_at);

CREATE TABLE audit_log (
    id          TEXT PRIMARY KEY,
    at          BIGINT NOT NULL,
    actor       TEXT NOT NULL,
    ip          TEXT,
    action      TEXT NOT NULL,
    target      TEXT NOT NULL,
    details     TEXT NOT NULL
);
CREATE INDEX audit_log_at ON audit_log (at);

CREATE TABLE data_access_events (
    id          TEXT PRIMARY KEY,
    at          BIGINT NOT NULL,
    user_id     TEXT NOT NULL,
    client_id   TEXT NOT NULL,
    endpoint    TEXT NOT NULL,
    claims      TEXT NOT NULL
);
CREATE INDEX data_access_events_user ON data_access_events (user_id, at);
