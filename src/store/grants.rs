use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::{Result, Store};
use crate::clock::Timestamp;
use crate::model::{Authentication, ClientId, GrantId};

/// A grant and, optionally, the first refresh token of its family.
#[derive(Clone, Debug)]
pub struct NewGrant {
    pub id: GrantId,
    pub client_id: ClientId,
    pub scope: String,
    pub auth: Authentication,
    pub created_at: Timestamp,
    pub refresh: Option<NewRefresh>,
}

#[derive(Clone, Debug)]
pub struct NewRefresh {
    pub token_hash: String,
    pub scope: String,
    pub expires_at: Timestamp,
}

#[derive(Clone, Debug)]
pub struct StoredGrant {
    pub id: GrantId,
    pub client_id: ClientId,
    pub scope: String,
    pub auth: Authentication,
    pub revoked: bool,
}

/// A refresh token with its grant, as read before deciding whether to rotate it.
#[derive(Clone, Debug)]
pub struct StoredRefresh {
    pub grant: StoredGrant,
    pub scope: String,
    pub expires_at: Timestamp,
    pub used_at: Option<Timestamp>,
}

pub enum RefreshOutcome {
    Rotated,
    /// Someone else rotated it first, just now: still accepted (grace window).
    ConcurrentlyRotated,
    /// A rotated token came back after the grace window: the family is revoked.
    Replayed,
}

const GRANT_COLUMNS: &str = "g.id, g.client_id, g.user_id, g.scope, g.auth_time, g.amr, g.sid, g.revoked_at";

fn grant_from_row(row: &AnyRow) -> Result<StoredGrant> {
    Ok(StoredGrant {
        id: GrantId(row.try_get("id")?),
        client_id: ClientId(row.try_get("client_id")?),
        scope: row.try_get("scope")?,
        auth: super::auth_from_row(row)?,
        revoked: row.try_get::<Option<i64>, _>("revoked_at")?.is_some(),
    })
}

/// Binds the grant's columns in the order `id, client_id, user_id, scope, auth_time, amr,
/// sid, created_at`.
pub(super) fn bind_grant<'q>(query: AnyQuery<'q>, grant: &'q NewGrant) -> AnyQuery<'q> {
    query
        .bind(grant.id.as_str())
        .bind(grant.client_id.as_str())
        .bind(grant.auth.user_id.as_str())
        .bind(&grant.scope)
        .bind(grant.auth.auth_time)
        .bind(grant.auth.amr.join(" "))
        .bind(&grant.auth.sid)
        .bind(grant.created_at)
}

pub(super) type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>;

/// A refresh token to insert: its grant, client, the token, and when it was issued.
type NewRefreshRow<'a> = (&'a GrantId, &'a ClientId, &'a NewRefresh, Timestamp);

/// Inserts refresh tokens, in one statement for all (none: nothing to do).
async fn insert_refreshes(conn: &mut AnyConnection, refreshes: &[NewRefreshRow<'_>]) -> Result<()> {
    const PER_TOKEN: usize = 6;
    if refreshes.is_empty() {
        return Ok(());
    }
    let rows: Vec<String> = (0..refreshes.len()).map(|i| format!("({})", super::placeholders(i * PER_TOKEN + 1, PER_TOKEN))).collect();
    let mut query = sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO refresh_tokens (token_hash, grant_id, client_id, scope, created_at, expires_at) VALUES {}",
        rows.join(", ")
    )))
    .persistent(refreshes.len() == 1);
    for (grant, client, refresh, now) in refreshes {
        query = query.bind(&refresh.token_hash).bind(grant.as_str()).bind(client.as_str()).bind(&refresh.scope).bind(*now).bind(refresh.expires_at);
    }
    query.execute(&mut *conn).await?;
    Ok(())
}

/// The grant's refresh tokens first, then the grant: the order every transaction that
/// touches both takes (signing out, withdrawing an app, erasing an account), so that on
/// PostgreSQL two of them never each hold what the other waits for.
pub(super) async fn revoke_grant_in(conn: &mut AnyConnection, grant: &GrantId, now: Timestamp) -> Result<()> {
    sqlx::query("DELETE FROM refresh_tokens WHERE grant_id = $1").bind(grant.as_str()).execute(&mut *conn).await?;
    sqlx::query("UPDATE grants SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
        .bind(grant.as_str())
        .bind(now)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

impl Store {
    pub async fn grant(&self, id: &GrantId) -> Result<Option<StoredGrant>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {GRANT_COLUMNS} FROM grants g WHERE g.id = $1")))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(grant_from_row).transpose()
    }

    pub async fn refresh_token(&self, token_hash: &str) -> Result<Option<StoredRefresh>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {GRANT_COLUMNS}, r.scope AS refresh_scope, r.expires_at, r.used_at
             FROM refresh_tokens r JOIN grants g ON g.id = r.grant_id WHERE r.token_hash = $1"
        )))
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(row) => Ok(Some(StoredRefresh {
                grant: grant_from_row(&row)?,
                scope: row.try_get("refresh_scope")?,
                expires_at: row.try_get("expires_at")?,
                used_at: row.try_get("used_at")?,
            })),
            None => Ok(None),
        }
    }

    /// Rotates `old_hash` to `new`. If it was already rotated, accepts within `grace`
    /// seconds of that (a concurrent refresh) and otherwise revokes the whole family.
    pub async fn rotate_refresh(
        &self,
        old_hash: &str,
        grant: &StoredGrant,
        new: &NewRefresh,
        now: Timestamp,
        grace: i64,
    ) -> Result<RefreshOutcome> {
        let mut tx = self.begin().await?;
        let rotated = sqlx::query("UPDATE refresh_tokens SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL")
            .bind(old_hash)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
        let outcome = if rotated {
            RefreshOutcome::Rotated
        } else {
            let used_at: Option<Option<i64>> = sqlx::query("SELECT used_at FROM refresh_tokens WHERE token_hash = $1")
                .bind(old_hash)
                .fetch_optional(&mut *tx)
                .await?
                .map(|row| row.try_get("used_at"))
                .transpose()?;
            match used_at {
                Some(Some(used_at)) if now - used_at <= grace => RefreshOutcome::ConcurrentlyRotated,
                _ => RefreshOutcome::Replayed,
            }
        };
        match outcome {
            RefreshOutcome::Replayed => revoke_grant_in(&mut tx, &grant.id, now).await?,
            _ => insert_refreshes(&mut tx, &[(&grant.id, &grant.client_id, new, now)]).await?,
        }
        tx.commit().await?;
        Ok(outcome)
    }

    pub async fn revoke_grant(&self, grant: &GrantId, now: Timestamp) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        revoke_grant_in(&mut conn, grant, now).await
    }

    /// Ends every grant issued within a browser session (at logout).
    pub async fn revoke_grants_of_session(&self, sid: &str, now: Timestamp) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM refresh_tokens WHERE grant_id IN (SELECT id FROM grants WHERE sid = $1)")
            .bind(sid)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE grants SET revoked_at = $2 WHERE sid = $1 AND revoked_at IS NULL")
            .bind(sid)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn revoke_access_token(&self, jti: &str, expires_at: Timestamp) -> Result<()> {
        sqlx::query("INSERT INTO revoked_access_tokens (jti, expires_at) VALUES ($1, $2) ON CONFLICT (jti) DO NOTHING")
            .bind(jti)
            .bind(expires_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn is_access_token_revoked(&self, jti: &str) -> Result<bool> {
        let row = sqlx::query("SELECT 1 AS one FROM revoked_access_tokens WHERE jti = $1")
            .bind(jti)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }
}
