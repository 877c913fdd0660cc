//! Pending email address changes: one per user, keyed by the hash of the mailed token.
//! Single use and the one-request-a-minute limit are enforced here, by conditional writes.

use sqlx::Row;

use super::{Result, Store, StoreError, normalise_email, on_conflict};
use crate::clock::Timestamp;
use crate::model::UserId;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmailChange {
    pub user_id: UserId,
    pub new_email: String,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub used_at: Option<Timestamp>,
}

pub struct NewEmailChange<'a> {
    pub token_hash: &'a str,
    pub user_id: &'a UserId,
    pub new_email: &'a str,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

/// What applying a change did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EmailChangeApplied {
    /// The user's address is now the new one (verified).
    Changed { old_email: String, new_email: String },
    /// Nothing: the change is not this user's, or no longer pending (used, expired, replaced).
    NotPending,
    /// Nothing: another account has the new address now. The change stays pending.
    Taken,
}

impl Store {
    /// Stores `change`, replacing the user's older one, unless that one was made after
    /// `not_after` (too recent) or the account was erased meanwhile: then nothing changes
    /// and this returns false.
    pub async fn put_email_change(&self, change: &NewEmailChange<'_>, not_after: Timestamp) -> Result<bool> {
        let done = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO email_changes (token_hash, user_id, new_email, created_at, expires_at) SELECT $1, $2, $3, $4, $5 WHERE {}
             ON CONFLICT (user_id) DO UPDATE SET token_hash = excluded.token_hash, new_email = excluded.new_email,
                 created_at = excluded.created_at, expires_at = excluded.expires_at, used_at = NULL
             WHERE email_changes.created_at <= $6",
            self.user_still_exists(2)
        )))
        .bind(change.token_hash)
        .bind(change.user_id.as_str())
        .bind(change.new_email)
        .bind(change.created_at)
        .bind(change.expires_at)
        .bind(not_after)
        .execute(&self.pool)
        .await
        .map_err(on_conflict)?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn email_change(&self, token_hash: &str) -> Result<Option<EmailChange>> {
        let row = sqlx::query("SELECT user_id, new_email, created_at, expires_at, used_at FROM email_changes WHERE token_hash = $1")
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(EmailChange {
                user_id: UserId(r.try_get("user_id")?),
                new_email: r.try_get("new_email")?,
                created_at: r.try_get("created_at")?,
                expires_at: r.try_get("expires_at")?,
                used_at: r.try_get("used_at")?,
            })
        })
        .transpose()
    }

    /// Forgets a change whose link could not be sent (so the user may ask again at once).
    pub async fn delete_email_change(&self, token_hash: &str) -> Result<()> {
        sqlx::query("DELETE FROM email_changes WHERE token_hash = $1").bind(token_hash).execute(&self.pool).await?;
        Ok(())
    }

    /// Whether an account has `email` (compared as sign-in compares it).
    pub async fn email_in_use(&self, email: &str) -> Result<bool> {
        let row = sqlx::query("SELECT 1 AS one FROM users WHERE email_norm = $1").bind(normalise_email(email)).fetch_optional(&self.pool).await?;
        Ok(row.is_some())
    }

    /// In one transaction: marks the change used if it is `user`'s, unused and unexpired at
    /// `now`, and sets the user's address to the new one, verified, `updated_at` = `now`.
    /// Concurrent confirmations serialise on the row, so one at most applies it.
    pub async fn apply_email_change(&self, token_hash: &str, user: &UserId, now: Timestamp) -> Result<EmailChangeApplied> {
        let mut tx = self.begin().await?;
        let claimed = sqlx::query(
            "UPDATE email_changes SET used_at = $3 WHERE token_hash = $1 AND user_id = $2 AND used_at IS NULL AND expires_at > $3
             RETURNING new_email",
        )
        .bind(token_hash)
        .bind(user.as_str())
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(claimed) = claimed else { return Ok(EmailChangeApplied::NotPending) };
        let new_email: String = claimed.try_get("new_email")?;
        let old = sqlx::query("SELECT email FROM users WHERE id = $1").bind(user.as_str()).fetch_optional(&mut *tx).await?;
        let Some(old) = old else { return Ok(EmailChangeApplied::NotPending) };
        let updated = sqlx::query("UPDATE users SET email = $2, email_norm = $3, email_verified = 1, updated_at = $4 WHERE id = $1")
            .bind(user.as_str())
            .bind(&new_email)
            .bind(normalise_email(&new_email))
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(on_conflict);
        match updated {
            // Dropping the transaction rolls it back: the change stays pending.
            Err(StoreError::Conflict) => return Ok(EmailChangeApplied::Taken),
            Err(e) => return Err(e),
            Ok(_) => {}
        }
        tx.commit().await?;
        Ok(EmailChangeApplied::Changed { old_email: old.try_get("email")?, new_email })
    }
}
