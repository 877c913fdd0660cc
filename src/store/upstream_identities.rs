use sqlx::Row;

use super::{Result, Store, StoreError, on_conflict};
use crate::clock::Timestamp;
use crate::model::{User, UserId};

/// A person's identity at an upstream provider, linked to one account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamIdentity {
    pub provider_id: String,
    pub subject: String,
    pub user_id: UserId,
    pub created_at: Timestamp,
    pub last_used_at: Timestamp,
}

/// A new account made from an upstream profile (no password).
pub struct NewUpstreamUser<'a> {
    pub provider_id: &'a str,
    pub subject: &'a str,
    pub email: &'a str,
    pub email_verified: bool,
    pub name: Option<&'a str>,
}


fn user_id(row: Option<sqlx::any::AnyRow>) -> Result<Option<UserId>> {
    Ok(match row {
        Some(row) => Some(UserId(row.try_get("user_id")?)),
        None => None,
    })
}

impl Store {
    /// Links identity `$1`, `$2` to account `$3` at `$4`, only while the account exists: an
    /// erasure in between leaves no link behind.
    fn insert_identity(&self) -> String {
        format!(
            "INSERT INTO upstream_identities (provider_id, subject, user_id, created_at, last_used_at) SELECT $1, $2, $3, $4, $4 WHERE {}",
            self.user_still_exists(3)
        )
    }

    /// The account linked to `(provider, subject)`, noting the use.
    pub async fn use_upstream_identity(&self, provider_id: &str, subject: &str, now: Timestamp) -> Result<Option<UserId>> {
        let row = sqlx::query("UPDATE upstream_identities SET last_used_at = $3 WHERE provider_id = $1 AND subject = $2 RETURNING user_id")
            .bind(provider_id)
            .bind(subject)
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
        user_id(row)
    }

    /// The identities linked to an account, oldest first.
    pub async fn upstream_identities(&self, user: &UserId) -> Result<Vec<UpstreamIdentity>> {
        let rows = sqlx::query("SELECT provider_id, subject, user_id, created_at, last_used_at FROM upstream_identities WHERE user_id = $1 ORDER BY created_at, provider_id")
            .bind(user.as_str())
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(UpstreamIdentity {
                    provider_id: r.try_get("provider_id")?,
                    subject: r.try_get("subject")?,
                    user_id: UserId(r.try_get("user_id")?),
                    created_at: r.try_get("created_at")?,
                    last_used_at: r.try_get("last_used_at")?,
                })
            })
            .collect()
    }

    /// Links an identity to an existing account; `false` (nothing linked) when the account
    /// was erased meanwhile. [`StoreError::Conflict`] when the identity is linked already (to
    /// this account or another).
    pub async fn link_upstream_identity(&self, provider_id: &str, subject: &str, user: &UserId, now: Timestamp) -> Result<bool> {
        let done = sqlx::query(sqlx::AssertSqlSafe(self.insert_identity()))
            .bind(provider_id)
            .bind(subject)
            .bind(user.as_str())
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(on_conflict)?;
        Ok(done.rows_affected() == 1)
    }

    /// The account an identity is linked to, if any (without noting a use).
    pub async fn upstream_identity_owner(&self, provider_id: &str, subject: &str) -> Result<Option<UserId>> {
        let row = sqlx::query("SELECT user_id FROM upstream_identities WHERE provider_id = $1 AND subject = $2")
            .bind(provider_id)
            .bind(subject)
            .fetch_optional(&self.pool)
            .await?;
        user_id(row)
    }

    /// Unlinks the account's identities at `provider_id`, unless that would leave the
    /// account no way to sign in (no password and no other identity), checked in the delete
    /// itself. Whether anything was unlinked.
    pub async fn unlink_upstream_identity(&self, provider_id: &str, user: &UserId) -> Result<bool> {
        let mut tx = self.begin().await?;
        // The user's row first, as a lock (a no-op update): on PostgreSQL two unlinks at the
        // same moment each saw the other identity in the check below, and both went. The
        // second now waits for the first, and its check then sees the first one gone.
        sqlx::query("UPDATE users SET password_hash = password_hash WHERE id = $1").bind(user.as_str()).execute(&mut *tx).await?;
        let done = sqlx::query(
            "DELETE FROM upstream_identities WHERE provider_id = $1 AND user_id = $2
             AND (EXISTS (SELECT 1 FROM users WHERE id = $2 AND password_hash IS NOT NULL)
                  OR EXISTS (SELECT 1 FROM upstream_identities other WHERE other.user_id = $2 AND other.provider_id <> $1))",
        )
        .bind(provider_id)
        .bind(user.as_str())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    /// Creates an account and links the identity to it, in one transaction.
    /// [`StoreError::Conflict`] when the email address or the identity is taken meanwhile.
    pub async fn create_upstream_user(&self, new: &NewUpstreamUser<'_>, now: Timestamp) -> Result<User> {
        let id = UserId(uuid::Uuid::new_v4().to_string());
        let mut tx = self.begin().await?;
        // No password: the account signs in through its provider.
        sqlx::query(super::users::INSERT_USER)
            .bind(id.as_str())
            .bind(new.email.trim())
            .bind(super::normalise_email(new.email))
            .bind(super::flag(new.email_verified))
            .bind(new.name)
            .bind(None::<String>)
            .bind(super::flag(false))
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(on_conflict)?;
        // The account was inserted just before, in this transaction: it exists.
        sqlx::query(sqlx::AssertSqlSafe(self.insert_identity()))
            .bind(new.provider_id)
            .bind(new.subject)
            .bind(id.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(on_conflict)?;
        tx.commit().await?;
        self.user(&id).await?.ok_or_else(|| StoreError::Corrupt("user vanished after insert".into()))
    }
}
