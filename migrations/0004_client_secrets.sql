-- Client secrets, several per client so an owner can rotate without downtime: each has a
-- label, an optional expiry and can be revoked. Only the SHA-256 of a secret is stored.
-- `clients.secret_hash` stays as the marker of a confidential client (NULL: public); the
-- secrets that authenticate are the rows here.
CREATE TABLE client_secrets (
    id          TEXT PRIMARY KEY,
    client_id   TEXT NOT NULL,
    label       TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT,
    revoked_at  BIGINT
);
CREATE INDEX client_secrets_client ON client_secrets (client_id);

-- The secret every existing confidential client has keeps working.
INSERT INTO client_secrets (id, client_id, label, secret_hash, created_at)
SELECT 'initial-' || id, id, 'initial', secret_hash, created_at FROM clients WHERE secret_hash IS NOT NULL;

CREATE INDEX clients_owner ON clients (owner_id, created_at);
