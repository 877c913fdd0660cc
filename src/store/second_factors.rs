//! Second factors: the TOTP authenticator (secret sealed by the caller) and recovery codes
//! (hashed by the caller). Single use is enforced here, by conditional updates.

use sqlx::Row;

use super::{Result, Store};
use crate::clock::Timestamp;
use crate::model::UserId;

/// A user's TOTP authenticator, confirmed or still being set up.
#[derive(Clone)]
pub struct TotpFactor {
    /// The secret, sealed; only the caller's sealer opens it.
    pub secret_sealed: String,
    pub created_at: Timestamp,
    /// `None` while the user has not yet entered a valid code.
    pub confirmed_at: Option<Timestamp>,
    pub last_step: i64,
}

impl std::fmt::Debug for TotpFactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TotpFactor").field("confirmed_at", &self.confirmed_at).field("last_step", &self.last_step).finish_non_exhaustive()
    }
}

impl Store {
    pub async fn totp_factor(&self, user: &UserId) -> Result<Option<TotpFactor>> {
        let row = sqlx::query("SELECT secret_sealed, created_at, confirmed_at, last_step FROM totp_factors WHERE user_id = $1")
            .bind(user.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(TotpFactor {
                secret_sealed: r.try_get("secret_sealed")?,
                created_at: r.try_get("created_at")?,
                confirmed_at: r.try_get("confirmed_at")?,
                last_step: r.try_get("last_step")?,
            })
        })
        .transpose()
    }

    /// Whether the user has a confirmed second factor (and so must present it to sign in).
    pub async fn has_second_factor(&self, user: &UserId) -> Result<bool> {
        let row = sqlx::query("SELECT 1 AS one FROM totp_factors WHERE user_id = $1 AND confirmed_at IS NOT NULL")
            .bind(user.as_str())
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    /// Starts (or restarts) setting up an authenticator. Returns false, changing nothing, if
    /// the user already has a confirmed one or the account was erased meanwhile.
    pub async fn put_pending_totp(&self, user: &UserId, secret_sealed: &str, now: Timestamp) -> Result<bool> {
        let done = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO totp_factors (user_id, secret_sealed, created_at, last_step) SELECT $1, $2, $3, 0 WHERE {}
             ON CONFLICT (user_id) DO UPDATE SET secret_sealed = excluded.secret_sealed, created_at = excluded.created_at, last_step = 0
             WHERE totp_factors.confirmed_at IS NULL",
            self.user_still_exists(1)
        )))
        .bind(user.as_str())
        .bind(secret_sealed)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Confirms the authenticator being set up, if it is still the one whose code was
    /// checked (`secret_sealed`), consuming that code's time `step`.
    pub async fn confirm_totp(&self, user: &UserId, secret_sealed: &str, step: i64, now: Timestamp) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE totp_factors SET confirmed_at = $3, last_step = $4
             WHERE user_id = $1 AND secret_sealed = $2 AND confirmed_at IS NULL",
        )
        .bind(user.as_str())
        .bind(secret_sealed)
        .bind(now)
        .bind(step)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Consumes the time step of a valid code. RFC 6238 §5.2: a code is accepted once. Only
    /// a step later than the last accepted one passes; of concurrent uses of one code the
    /// database lets exactly one update the row (PostgreSQL re-checks the condition on the
    /// row it waited for; SQLite has one writer at a time).
    pub async fn use_totp_step(&self, user: &UserId, step: i64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE totp_factors SET last_step = $2 WHERE user_id = $1 AND confirmed_at IS NOT NULL AND last_step < $2",
        )
        .bind(user.as_str())
        .bind(step)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Removes the authenticator and the recovery codes: the account is back to a password.
    pub async fn delete_second_factors(&self, user: &UserId) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM totp_factors WHERE user_id = $1").bind(user.as_str()).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1").bind(user.as_str()).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Replaces the user's recovery codes (used or not) with a new set; none are stored for
    /// an account erased meanwhile.
    pub async fn replace_recovery_codes(&self, user: &UserId, hashes: &[String], now: Timestamp) -> Result<()> {
        let mut tx = self.begin().await?;
        // The authenticator's row first, as a lock (the order `delete_second_factors` and
        // erasure take): on PostgreSQL a second replacement at the same moment waits here,
        // and its DELETE then sees this one's codes, instead of leaving both sets valid.
        sqlx::query("UPDATE totp_factors SET last_step = last_step WHERE user_id = $1").bind(user.as_str()).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1").bind(user.as_str()).execute(&mut *tx).await?;
        let insert = format!("INSERT INTO recovery_codes (code_hash, user_id, created_at) SELECT $1, $2, $3 WHERE {}", self.user_still_exists(2));
        for hash in hashes {
            sqlx::query(sqlx::AssertSqlSafe(insert.as_str()))
                .bind(hash)
                .bind(user.as_str())
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Uses a recovery code once: true only for the one caller that marks it used.
    pub async fn use_recovery_code(&self, user: &UserId, hash: &str, now: Timestamp) -> Result<bool> {
        let done = sqlx::query("UPDATE recovery_codes SET used_at = $3 WHERE code_hash = $1 AND user_id = $2 AND used_at IS NULL")
            .bind(hash)
            .bind(user.as_str())
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn recovery_codes_left(&self, user: &UserId) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL")
            .bind(user.as_str())
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("n")?)
    }
}
