-- Upstream (social) identities (issue 5). Never edit an applied migration.

-- Who a person is at an upstream provider: the provider's id from the configuration and the
-- `sub` it asserts, which is stable and never reassigned (OpenID Connect Core §2). Never keyed
-- by email: addresses change hands, and two providers may assert the same one.
CREATE TABLE upstream_identities (
    provider_id   TEXT NOT NULL,
    subject       TEXT NOT NULL,
    user_id       TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    last_used_at  BIGINT NOT NULL,
    PRIMARY KEY (provider_id, subject)
);
CREATE INDEX upstream_identities_user ON upstream_identities (user_id);
