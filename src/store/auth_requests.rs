use sqlx::Row;

use super::{Result, Store};
use crate::clock::Timestamp;

pub struct StoredAuthRequest {
    pub payload: String,
    pub created_at: Timestamp,
    /// The user signed in on the login page for this request ([`Store::mark_login_done`]).
    pub login_done: bool,
}

impl Store {
    pub async fn put_auth_request(&self, id: &str, payload: &str, now: Timestamp, ttl: i64) -> Result<()> {
        sqlx::query("INSERT INTO authorization_requests (id, payload, created_at, expires_at) VALUES ($1, $2, $3, $4)")
            .bind(id)
            .bind(payload)
            .bind(now)
            .bind(now + ttl)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn auth_request(&self, id: &str, now: Timestamp) -> Result<Option<StoredAuthRequest>> {
        let row = sqlx::query("SELECT payload, created_at, login_done FROM authorization_requests WHERE id = $1 AND expires_at > $2")
            .bind(id)
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(row) => Ok(Some(StoredAuthRequest {
                payload: row.try_get("payload")?,
                created_at: row.try_get("created_at")?,
                login_done: row.try_get::<i64, _>("login_done")? != 0,
            })),
            None => Ok(None),
        }
    }

    pub async fn update_auth_request(&self, id: &str, payload: &str) -> Result<()> {
        sqlx::query("UPDATE authorization_requests SET payload = $2 WHERE id = $1")
            .bind(id)
            .bind(payload)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Notes that the user signed in for this request: one statement, which no concurrent
    /// change of the payload (consent) can undo.
    pub async fn mark_login_done(&self, id: &str) -> Result<()> {
        sqlx::query("UPDATE authorization_requests SET login_done = 1 WHERE id = $1").bind(id).execute(&self.pool).await?;
        Ok(())
    }

    pub async fn delete_auth_request(&self, id: &str) -> Result<()> {
        sqlx::query("DELETE FROM authorization_requests WHERE id = $1").bind(id).execute(&self.pool).await?;
        Ok(())
    }

    /// Removes expired pending requests, codes, revoked-token markers, sessions and email
    /// changes.
    pub async fn purge_expired(&self, now: Timestamp) -> Result<()> {
        for sql in [
            "DELETE FROM authorization_requests WHERE expires_at <= $1",
            "DELETE FROM authorization_codes WHERE expires_at <= $1 - 86400",
            "DELETE FROM revoked_access_tokens WHERE expires_at <= $1",
            "DELETE FROM sessions WHERE expires_at <= $1",
            "DELETE FROM refresh_tokens WHERE expires_at <= $1",
            "DELETE FROM email_changes WHERE expires_at <= $1",
        ] {
            sqlx::query(sql).bind(now).execute(&self.pool).await?;
        }
        Ok(())
    }
}
