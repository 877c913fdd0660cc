use sqlx::Row;

use super::{Result, Store};
use crate::clock::Timestamp;
use crate::model::{ClientId, UserId};
use crate::privacy::ScopeSet;

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

    /// Every consent the user holds, as (client, scope as stored).
    pub async fn consents_of_user(&self, user: &UserId) -> Result<Vec<(ClientId, String)>> {
        let rows = sqlx::query("SELECT client_id, scope FROM consents WHERE user_id = $1")
            .bind(user.as_str())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok((ClientId(r.try_get("client_id")?), r.try_get("scope")?))).collect()
    }

    /// Stores the user's consent to `scope` for the client, and one `granted_scopes` row per
    /// scope (earlier grants keep their time).
    /// `false` (nothing written) when the user's account was erased meanwhile.
    pub async fn put_consent(&self, user: &UserId, client: &ClientId, scope: &ScopeSet, now: Timestamp) -> Result<bool> {
        let mut tx = self.begin().await?;
        let written = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO consents (user_id, client_id, scope, granted_at) SELECT $1, $2, $3, $4 WHERE {}
             ON CONFLICT (user_id, client_id) DO UPDATE SET scope = excluded.scope, granted_at = excluded.granted_at",
            self.user_still_exists(1)
        )))
        .bind(user.as_str())
        .bind(client.as_str())
        .bind(scope.to_string())
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if written == 0 {
            return Ok(false);
        }
        for name in scope.iter() {
            sqlx::query(
                "INSERT INTO granted_scopes (user_id, client_id, scope, granted_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (user_id, client_id, scope) DO NOTHING",
            )
            .bind(user.as_str())
            .bind(client.as_str())
            .bind(name)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Records a successful authorization: creates the client-user link the first time,
    /// and re-activates it after a withdrawal. `false` (nothing written) when the user's
    /// account was erased meanwhile.
    pub async fn touch_link(&self, user: &UserId, client: &ClientId, sub: &str, scope: &str, now: Timestamp) -> Result<bool> {
        let written = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO client_user_links (user_id, client_id, first_signin_at, last_signin_at, sub, scope) SELECT $1, $2, $3, $3, $4, $5 WHERE {}
             ON CONFLICT (user_id, client_id) DO UPDATE SET last_signin_at = excluded.last_signin_at, sub = excluded.sub,
                 scope = excluded.scope, withdrawn_at = NULL",
            self.user_still_exists(1)
        )))
        .bind(user.as_str())
        .bind(client.as_str())
        .bind(now)
        .bind(sub)
        .bind(scope)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(written > 0)
    }

    pub async fn link(&self, user: &UserId, client: &ClientId) -> Result<Option<StoredLink>> {
        let row = sqlx::query(
            "SELECT user_id, client_id, sub, scope, first_signin_at, last_signin_at, withdrawn_at FROM client_user_links
             WHERE user_id = $1 AND client_id = $2",
        )
        .bind(user.as_str())
        .bind(client.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(link_from_row).transpose()
    }

    /// The user withdraws an app: consent and link end, unredeemed codes are dropped, and every
    /// grant (so every refresh and access token) the client holds for the user is revoked, in
    /// one transaction.
    pub async fn withdraw_link(&self, user: &UserId, client: &ClientId, now: Timestamp) -> Result<bool> {
        let mut tx = self.begin().await?;
        let withdrawn = sqlx::query(
            "UPDATE client_user_links SET withdrawn_at = $3 WHERE user_id = $1 AND client_id = $2 AND withdrawn_at IS NULL",
        )
        .bind(user.as_str())
        .bind(client.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        for table in ["consents", "granted_scopes"] {
            sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table} WHERE user_id = $1 AND client_id = $2")))
                .bind(user.as_str())
                .bind(client.as_str())
                .execute(&mut *tx)
                .await?;
        }
        // A code issued before the withdrawal must not be redeemed after it.
        sqlx::query("DELETE FROM authorization_codes WHERE user_id = $1 AND client_id = $2 AND used_at IS NULL")
            .bind(user.as_str())
            .bind(client.as_str())
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "DELETE FROM refresh_tokens WHERE grant_id IN (SELECT id FROM grants WHERE user_id = $1 AND client_id = $2)",
        )
        .bind(user.as_str())
        .bind(client.as_str())
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE grants SET revoked_at = $3 WHERE user_id = $1 AND client_id = $2 AND revoked_at IS NULL")
            .bind(user.as_str())
            .bind(client.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(withdrawn)
    }

    /// The apps holding a link to the user, newest sign-in first (withdrawn ones included).
    pub async fn links_of_user(&self, user: &UserId) -> Result<Vec<StoredLink>> {
        let rows = sqlx::query(
            "SELECT user_id, client_id, sub, scope, first_signin_at, last_signin_at, withdrawn_at FROM client_user_links
             WHERE user_id = $1 ORDER BY last_signin_at DESC",
        )
        .bind(user.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(link_from_row).collect()
    }
}

/// A client-user link as stored.
#[derive(Clone, Debug)]
pub struct StoredLink {
    pub user_id: UserId,
    pub client_id: ClientId,
    pub sub: Option<String>,
    pub scope: String,
    pub first_signin_at: Timestamp,
    pub last_signin_at: Timestamp,
    pub withdrawn_at: Option<Timestamp>,
}

fn link_from_row(row: &sqlx::any::AnyRow) -> Result<StoredLink> {
    link_from_columns(row, "")
}

/// A link from `row`'s columns named with `prefix` (a query that joins links to other tables
/// aliases them).
pub(super) fn link_from_columns(row: &sqlx::any::AnyRow, prefix: &str) -> Result<StoredLink> {
    let col = |name: &str| format!("{prefix}{name}");
    Ok(StoredLink {
        user_id: UserId(row.try_get(col("user_id").as_str())?),
        client_id: ClientId(row.try_get(col("client_id").as_str())?),
        sub: row.try_get(col("sub").as_str())?,
        scope: row.try_get(col("scope").as_str())?,
        first_signin_at: row.try_get(col("first_signin_at").as_str())?,
        last_signin_at: row.try_get(col("last_signin_at").as_str())?,
        withdrawn_at: row.try_get(col("withdrawn_at").as_str())?,
    })
}
