-- Login history, account events, login throttling and the per-user session index (issue 4).
-- Never edit an applied migration.
--
-- IP addresses are kept as seen (`ip`) and, for sign-in attempts, as a fixed-width hex key
-- (`ip_key`: "4" + 8 hex digits, or "6" + 32) so that an address prefix is a plain range
-- over an index whatever the database's collation. `ip_truncated` marks addresses already
-- cut to their network by the retention purge (IPv4 /24, IPv6 /48); the partial indexes on
-- it hold only the rows the purge still has to visit.

-- Every sign-in attempt, successful or not.
CREATE TABLE login_events (
    id           TEXT PRIMARY KEY,
    at           BIGINT NOT NULL,
    user_id      TEXT,
    client_id    TEXT,
    -- password, totp, recovery_code, or an upstream provider's name
    method       TEXT NOT NULL,
    -- success or failure
    result       TEXT NOT NULL,
    -- for failures: wrong_password, unknown_account, locked, throttled, wrong_code
    reason       TEXT,
    ip           TEXT,
    ip_key       TEXT,
    ip_truncated BIGINT NOT NULL DEFAULT 0,
    user_agent   TEXT,
    device       TEXT,
    os           TEXT,
    browser      TEXT
);
-- One index per admin filter, each ending in (at, id) for newest-first keyset pages.
CREATE INDEX login_events_at ON login_events (at, id);
CREATE INDEX login_events_user ON login_events (user_id, at, id);
CREATE INDEX login_events_client ON login_events (client_id, at, id);
CREATE INDEX login_events_ip ON login_events (ip_key, at, id);
CREATE INDEX login_events_result ON login_events (result, at, id);
CREATE INDEX login_events_untruncated ON login_events (at) WHERE ip_truncated = 0;

-- Changes to an account: password_changed, session_ended, app_withdrawn, second factors …
CREATE TABLE account_events (
    id           TEXT PRIMARY KEY,
    at           BIGINT NOT NULL,
    user_id      TEXT NOT NULL,
    kind         TEXT NOT NULL,
    detail       TEXT,
    ip           TEXT,
    ip_truncated BIGINT NOT NULL DEFAULT 0,
    user_agent   TEXT,
    device       TEXT,
    os           TEXT,
    browser      TEXT
);
CREATE INDEX account_events_user ON account_events (user_id, at, id);
CREATE INDEX account_events_at ON account_events (at);
CREATE INDEX account_events_untruncated ON account_events (at) WHERE ip_truncated = 0;

-- Failed-attempt counters shared by every node: one row per account (`user:<id>`, or
-- `email:<sha256>` for an address without an account) and per client network (`ip:<addr>`).
CREATE TABLE login_throttle (
    key          TEXT PRIMARY KEY,
    failures     BIGINT NOT NULL,
    window_start BIGINT NOT NULL,
    delay_until  BIGINT NOT NULL DEFAULT 0,
    locked_until BIGINT NOT NULL DEFAULT 0,
    updated_at   BIGINT NOT NULL
);
CREATE INDEX login_throttle_updated ON login_throttle (updated_at);

-- The signed-in browser sessions of each user, by `sid` (the tower-sessions record id
-- rotates; `record_id` is the current one once seen). A session whose row is gone is
-- signed out on its next request.
CREATE TABLE user_sessions (
    sid          TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL,
    record_id    TEXT,
    ip           TEXT,
    ip_truncated BIGINT NOT NULL DEFAULT 0,
    user_agent   TEXT,
    device       TEXT,
    os           TEXT,
    browser      TEXT,
    created_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL
);
CREATE INDEX user_sessions_user ON user_sessions (user_id, last_seen_at);
CREATE INDEX user_sessions_untruncated ON user_sessions (last_seen_at) WHERE ip_truncated = 0;
