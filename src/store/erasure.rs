//! Erasing an account (GDPR art. 17) in one transaction: the user, every row keyed by them,
//! the clients they registered with everything keyed by those clients, and their traces in
//! other records made anonymous. The rules (who may, what the page says) are in
//! `account::deletion`.
//!
//! A new table with a user column must be added to [`BY_USER`] (or, for a client column, to
//! [`BY_CLIENT`]): `tests/it/account_deletion.rs` scans every table for the erased user's
//! id and email and fails on any row left behind.

use sqlx::Row;

use super::{Result, Store, normalise_email};
use crate::clock::Timestamp;
use crate::model::UserId;

/// Rows of the user, deleted in this order (`$1` is the user id). Codes first, once the
/// links are locked: a code being redeemed right now is locked until its grant is committed
/// (PostgreSQL), so the deletion waits for it and then finds the grant; a redemption that
/// comes later finds no code. Refresh tokens and browser sessions are found through the
/// rows that name the user, so they go before those.
const BY_USER: &[&str] = &[
    // The user's links to apps are locked first (a no-op update): withdrawing an app takes
    // its link first and then the rest, and on PostgreSQL the two must not wait for each
    // other the other way round.
    "UPDATE client_user_links SET user_id = user_id WHERE user_id = $1",
    "DELETE FROM authorization_codes WHERE user_id = $1",
    "DELETE FROM refresh_tokens WHERE grant_id IN (SELECT id FROM grants WHERE user_id = $1)",
    "DELETE FROM grants WHERE user_id = $1",
    "DELETE FROM consents WHERE user_id = $1",
    "DELETE FROM granted_scopes WHERE user_id = $1",
    "DELETE FROM client_user_links WHERE user_id = $1",
    "DELETE FROM totp_factors WHERE user_id = $1",
    "DELETE FROM recovery_codes WHERE user_id = $1",
    "DELETE FROM login_events WHERE user_id = $1",
    "DELETE FROM account_events WHERE user_id = $1",
    "DELETE FROM data_access_events WHERE user_id = $1",
    "DELETE FROM email_changes WHERE user_id = $1",
    "DELETE FROM upstream_identities WHERE user_id = $1",
    // Browser sessions: the ones the index knows, and any other record holding the id (a
    // sign-in waiting for its second factor, a session not seen since it signed in).
    "DELETE FROM sessions WHERE id IN (SELECT record_id FROM user_sessions WHERE user_id = $1) OR data LIKE '%' || $1 || '%'",
    "DELETE FROM user_sessions WHERE user_id = $1",
];

/// Rows of a client the user registered (`$1` is the client id): its secrets, scope
/// decisions, and every user's codes, tokens, consents and links with it. Other users'
/// sign-in and data-access records stay theirs (the app shows as "a removed app"). Codes
/// first, as for the user.
const BY_CLIENT: &[&str] = &[
    // Its users' links first, as for the user (a user withdrawing the app at that moment).
    "UPDATE client_user_links SET client_id = client_id WHERE client_id = $1",
    "DELETE FROM authorization_codes WHERE client_id = $1",
    "DELETE FROM refresh_tokens WHERE client_id = $1",
    "DELETE FROM grants WHERE client_id = $1",
    "DELETE FROM consents WHERE client_id = $1",
    "DELETE FROM granted_scopes WHERE client_id = $1",
    "DELETE FROM client_user_links WHERE client_id = $1",
    "DELETE FROM client_secrets WHERE client_id = $1",
    "DELETE FROM client_scopes WHERE client_id = $1",
    // The pending requests are JSON written by serde_json (compact); client ids are hex.
    "DELETE FROM authorization_requests WHERE payload LIKE '%\"client_id\":\"' || $1 || '\"%'",
    "DELETE FROM clients WHERE id = $1",
];

/// What to erase, and the pseudonym the user's entries in the audit log get instead.
pub struct Erasure<'a> {
    pub user: &'a UserId,
    pub email: &'a str,
    /// Random, recorded nowhere else: the audit entries of one erased user stay linked to
    /// each other, not to the person.
    pub pseudonym: &'a str,
    /// The account's failed-attempt counters (`login::throttle` names them).
    pub throttle_keys: &'a [String],
    pub now: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ErasureOutcome {
    /// Erased; the clients deleted with the account, by name.
    Erased { clients: Vec<String> },
    /// Refused: the user is the only administrator.
    LastAdmin,
    /// No such user (already erased, e.g. by a second click).
    NotFound,
}

/// A `LIKE` pattern matching `text` anywhere, case-insensitively once both sides are
/// lower-cased (`\` escapes; `_` is common in email addresses).
fn contains_pattern(text: &str) -> String {
    let escaped = text.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
    format!("%{escaped}%")
}

impl Store {
    /// Number of administrators.
    pub async fn admin_count(&self) -> Result<i64> {
        Ok(sqlx::query("SELECT COUNT(*) AS n FROM users WHERE is_admin = 1").fetch_one(&self.pool).await?.try_get("n")?)
    }

    /// Erases the account in one transaction (see the module comment), and appends the
    /// audit entry `account.delete` (under the pseudonym, without personal data).
    pub async fn erase_user(&self, erasure: &Erasure<'_>) -> Result<ErasureOutcome> {
        let user = erasure.user.as_str();
        let mut tx = self.begin().await?;
        // An administrator's erasure first locks every administrator's row (a no-op update):
        // on PostgreSQL, two of the last administrators erased at the same moment each saw
        // the other in the check below and both went. The second now waits for the first,
        // and its check then sees the first gone. (SQLite lets one writer in at a time.)
        sqlx::query("UPDATE users SET is_admin = 1 WHERE is_admin = 1 AND EXISTS (SELECT 1 FROM users me WHERE me.id = $1 AND me.is_admin = 1)")
            .bind(user)
            .execute(&mut *tx)
            .await?;
        // Then the user row, so the last-admin rule and a concurrent second erasure are
        // decided by this one conditional statement.
        let deleted = sqlx::query(
            "DELETE FROM users WHERE id = $1 AND (is_admin = 0 OR EXISTS (SELECT 1 FROM users o WHERE o.is_admin = 1 AND o.id <> $1))",
        )
        .bind(user)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if deleted == 0 {
            let exists = sqlx::query("SELECT 1 AS one FROM users WHERE id = $1").bind(user).fetch_optional(&mut *tx).await?.is_some();
            return Ok(if exists { ErasureOutcome::LastAdmin } else { ErasureOutcome::NotFound });
        }

        // The user's clients are locked (a no-op update) before their scopes and other rows
        // go: a scope request locks its client first, and the two must not wait for each
        // other the other way round (PostgreSQL).
        sqlx::query("UPDATE clients SET owner_id = owner_id WHERE owner_id = $1").bind(user).execute(&mut *tx).await?;
        let owned = sqlx::query("SELECT id, name FROM clients WHERE owner_id = $1 ORDER BY created_at, id").bind(user).fetch_all(&mut *tx).await?;
        let mut clients = Vec::with_capacity(owned.len());
        for row in &owned {
            let id: String = row.try_get("id")?;
            for sql in BY_CLIENT {
                sqlx::query(*sql).bind(&id).execute(&mut *tx).await?;
            }
            clients.push(row.try_get("name")?);
        }
        for sql in BY_USER {
            sqlx::query(*sql).bind(user).execute(&mut *tx).await?;
        }

        // Records that may hold the address itself: a pending sign-in's `login_hint`, a
        // session that remembers the address typed on the login page.
        let email = contains_pattern(erasure.email);
        for sql in [
            "DELETE FROM authorization_requests WHERE LOWER(payload) LIKE $1 ESCAPE '\\'",
            "DELETE FROM sessions WHERE LOWER(data) LIKE $1 ESCAPE '\\'",
        ] {
            sqlx::query(sql).bind(&email).execute(&mut *tx).await?;
        }
        // Failed-attempt counters of the account, and of the address from before it existed.
        for key in erasure.throttle_keys {
            sqlx::query("DELETE FROM login_throttle WHERE key = $1").bind(key).execute(&mut *tx).await?;
        }

        // The audit log keeps what happened (accountability), not who it was: the id
        // becomes the pseudonym, the address is blanked, and the user's own IP addresses go.
        let id_pattern = format!("%{user}%");
        let stored = erasure.email.trim();
        let norm = normalise_email(erasure.email);
        sqlx::query("UPDATE audit_log SET ip = NULL WHERE actor = $1").bind(format!("user:{user}")).execute(&mut *tx).await?;
        // Admins' decisions on other clients' scopes name the admin the same way, and their
        // notes are free text that may quote the address. ($1 id, $2 pseudonym, $3 and $4
        // the address as stored and normalised, $5 and $6 patterns for the id and address.)
        for sql in [
            "UPDATE audit_log SET
               actor = REPLACE(REPLACE(REPLACE(actor, $1, $2), $3, '[erased]'), $4, '[erased]'),
               target = REPLACE(REPLACE(REPLACE(target, $1, $2), $3, '[erased]'), $4, '[erased]'),
               details = REPLACE(REPLACE(REPLACE(details, $1, $2), $3, '[erased]'), $4, '[erased]')
             WHERE actor LIKE $5 OR target LIKE $5 OR details LIKE $5
                OR LOWER(actor) LIKE $6 ESCAPE '\\' OR LOWER(target) LIKE $6 ESCAPE '\\' OR LOWER(details) LIKE $6 ESCAPE '\\'",
            "UPDATE client_scopes SET
               decided_by = REPLACE(decided_by, $1, $2),
               note = REPLACE(REPLACE(note, $3, '[erased]'), $4, '[erased]'),
               purpose = REPLACE(REPLACE(purpose, $3, '[erased]'), $4, '[erased]')
             WHERE decided_by LIKE $5 OR LOWER(note) LIKE $6 ESCAPE '\\' OR LOWER(purpose) LIKE $6 ESCAPE '\\'",
        ] {
            sqlx::query(sql).bind(user).bind(erasure.pseudonym).bind(stored).bind(&norm).bind(&id_pattern).bind(&email).execute(&mut *tx).await?;
        }

        let actor = format!("user:{}", erasure.pseudonym);
        sqlx::query("INSERT INTO audit_log (id, at, actor, ip, action, target, details) VALUES ($1, $2, $3, NULL, 'account.delete', $3, $4)")
            .bind(uuid::Uuid::new_v4().to_string())
            .bind(erasure.now)
            .bind(&actor)
            .bind(serde_json::json!({"clients_deleted": clients.len()}).to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.clients_changed().await;
        Ok(ErasureOutcome::Erased { clients })
    }
}
