use sqlx::Row;

use super::{Result, Store};
use crate::clock::Timestamp;

pub struct StoredAuthRequest {
    pub payload: String,
    pub created_at: Timestamp,
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
        let row = sqlx::query("SELECT payload, created_at FROM authorization_requests WHERE id = $1 AND expires_at > $2")
            .bind(id)
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(row) => Ok(Some(StoredAuthRequest {
                payload: row.try_get("payload")?,
                created_at: row.try_get("created_at")?,
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
