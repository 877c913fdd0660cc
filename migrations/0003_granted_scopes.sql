-- One row per scope a user granted to a client (the consent, exploded), so admins can count
-- and filter grants per client, scope and user with plain indexes.
CREATE TABLE granted_scopes (
    user_id     TEXT NOT NULL,
    client_id   TEXT NOT NULL,
    scope       TEXT NOT NULL,
    granted_at  BIGINT NOT NULL,
    PRIMARY KEY (user_id, client_id, scope)
);
CREATE INDEX granted_scopes_client_scope ON granted_scopes (client_id, scope, granted_at);
CREATE INDEX granted_scopes_scope ON granted_scopes (scope, granted_at);
