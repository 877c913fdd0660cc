use sqlx::Row;

use super::{Result, Store};
use crate::clock::Timestamp;
use crate::model::{ClientId, UserId};

impl Store {
    /// The scopes the user consented to for this client, as stored.
    pub async fn consent(&self, user: &UserId, client: &ClientId) -> Result<Option<String>> {
        let row = sqlx::query("SELECT scope FROM consents WHERE user_id = $1 AND client_id = $2")
            .bind(user.as_str())
            .bind(client.as_str())
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get("scope")).transpose()?)
    }

    pub async fn put_consent(&self, user: &UserId, client: &ClientId, scope: &str, now: Timestamp) -> Result<()> {
        sqlx::query(
            "INSERT INTO consents (user_id, client_id, scope, granted_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (user_id, client_id) DO UPDATE SET scope = excluded.scope, granted_at = excluded.granted_at",
        )
        .bind(user.as_str())
        .bind(client.as_str())
        .bind(scope)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records a successful authorization: creates the client-user link the first time.
    pub async fn touch_link(&self, user: &UserId, client: &ClientId, now: Timestamp) -> Result<()> {
        sqlx::query(
            "INSERT INTO client_user_links (user_id, client_id, first_signin_at, last_signin_at) VALUES ($1, $2, $3, $3)
             ON CONFLICT (user_id, client_id) DO UPDATE SET last_signin_at = excluded.last_signin_at",
        )
        .bind(user.as_str())
        .bind(client.as_str())
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
