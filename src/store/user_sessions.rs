//! The index of signed-in browser sessions per user (`/account/sessions`). tower-sessions
//! keeps the session itself (table `sessions`); a row here says the sign-in `sid` is still
//! valid, and ending a session deletes both.

use sqlx::Row;

use super::login_events::StoredOrigin;
use super::{Result, Store};
use crate::clock::Timestamp;
use crate::model::UserId;

#[derive(Clone, Debug)]
pub struct UserSession {
    pub sid: String,
    pub ip: Option<String>,
    pub device: String,
    pub os: String,
    pub browser: String,
    pub created_at: Timestamp,
    pub last_seen_at: Timestamp,
}

/// What the session check needs on every request.
#[derive(Clone, Debug)]
pub struct SessionMark {
    pub last_seen_at: Timestamp,
    pub record_id: Option<String>,
}

const COLUMNS: &str = "us.sid, us.ip, us.device, us.os, us.browser, us.created_at, us.last_seen_at";

fn from_row(r: &sqlx::any::AnyRow) -> Result<UserSession> {
    Ok(UserSession {
        sid: r.try_get("sid")?,
        ip: r.try_get("ip")?,
        device: r.try_get::<Option<String>, _>("device")?.unwrap_or_default(),
        os: r.try_get::<Option<String>, _>("os")?.unwrap_or_default(),
        browser: r.try_get::<Option<String>, _>("browser")?.unwrap_or_default(),
        created_at: r.try_get("created_at")?,
        last_seen_at: r.try_get("last_seen_at")?,
    })
}

impl Store {
    /// Indexes a new sign-in; `false` when the user's account was erased meanwhile (the
    /// session must then be ended, not indexed).
    pub async fn insert_user_session(&self, sid: &str, user: &UserId, origin: &StoredOrigin, now: Timestamp) -> Result<bool> {
        let inserted = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO user_sessions (sid, user_id, ip, ip_truncated, user_agent, device, os, browser, created_at, last_seen_at)
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $9 WHERE {} ON CONFLICT (sid) DO NOTHING",
            self.user_still_exists(2)
        )))
        .bind(sid)
        .bind(user.as_str())
        .bind(origin.ip.clone())
        .bind(i64::from(origin.ip.is_none()))
        .bind(origin.user_agent.clone())
        .bind(&origin.device)
        .bind(&origin.os)
        .bind(&origin.browser)
        .bind(now)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(inserted == 1 || self.user_session_mark(sid).await?.is_some())
    }

    pub async fn user_session_mark(&self, sid: &str) -> Result<Option<SessionMark>> {
        let row = sqlx::query("SELECT last_seen_at, record_id FROM user_sessions WHERE sid = $1").bind(sid).fetch_optional(&self.pool).await?;
        row.map(|r| Ok(SessionMark { last_seen_at: r.try_get("last_seen_at")?, record_id: r.try_get("record_id")? })).transpose()
    }

    /// The session was used now, from `ip`, under the tower-sessions record `record_id`.
    pub async fn touch_user_session(&self, sid: &str, now: Timestamp, record_id: Option<&str>, ip: Option<&str>) -> Result<()> {
        sqlx::query(
            "UPDATE user_sessions SET last_seen_at = $2, record_id = COALESCE($3, record_id),
               ip = COALESCE($4, ip), ip_truncated = CASE WHEN $4 IS NULL THEN ip_truncated ELSE 0 END
             WHERE sid = $1",
        )
        .bind(sid)
        .bind(now)
        .bind(record_id.map(str::to_string))
        .bind(ip.map(str::to_string))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn delete_user_session(&self, sid: &str) -> Result<()> {
        sqlx::query("DELETE FROM user_sessions WHERE sid = $1").bind(sid).execute(&self.pool).await?;
        Ok(())
    }

    /// The user's sessions that may still be alive, most recently used first: the
    /// tower-sessions record has not expired, or (not seen since sign-in) was used within
    /// `ttl` seconds.
    pub async fn user_sessions(&self, user: &UserId, now: Timestamp, ttl: i64) -> Result<Vec<UserSession>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM user_sessions us LEFT JOIN sessions s ON s.id = us.record_id
             WHERE us.user_id = $1 AND (s.expires_at > $2 OR (us.record_id IS NULL AND us.last_seen_at > $3))
             ORDER BY us.last_seen_at DESC, us.sid"
        )))
        .bind(user.as_str())
        .bind(now)
        .bind(now - ttl)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// Ends `user`'s session `sid`: deletes its row and its tower-sessions record in one
    /// transaction. `None` if the user has no such session.
    pub async fn end_user_session(&self, user: &UserId, sid: &str) -> Result<Option<UserSession>> {
        let mut tx = self.begin().await?;
        // Writes only, the browser session first as everywhere else: on SQLite a transaction
        // that reads first and then writes fails (SQLITE_BUSY) if another connection wrote
        // in between.
        sqlx::query("DELETE FROM sessions WHERE id = (SELECT record_id FROM user_sessions WHERE sid = $1 AND user_id = $2)")
            .bind(sid)
            .bind(user.as_str())
            .execute(&mut *tx)
            .await?;
        let row = sqlx::query("DELETE FROM user_sessions WHERE sid = $1 AND user_id = $2 RETURNING sid, ip, device, os, browser, created_at, last_seen_at")
            .bind(sid)
            .bind(user.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let session = from_row(&row)?;
        tx.commit().await?;
        Ok(Some(session))
    }

    /// Ends every session of `user` (their rows and browser sessions, in one transaction);
    /// returns their `sid`s, so the refresh tokens issued in them can be revoked.
    pub async fn end_all_user_sessions(&self, user: &UserId) -> Result<Vec<String>> {
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM sessions WHERE id IN (SELECT record_id FROM user_sessions WHERE user_id = $1)").bind(user.as_str()).execute(&mut *tx).await?;
        // The sids of the rows deleted, not of an earlier read: a session recorded in between
        // is ended with the others, and its tokens revoked with theirs.
        let rows = sqlx::query("DELETE FROM user_sessions WHERE user_id = $1 RETURNING sid").bind(user.as_str()).fetch_all(&mut *tx).await?;
        let sids = rows.iter().map(|r| r.try_get("sid")).collect::<std::result::Result<Vec<String>, _>>()?;
        tx.commit().await?;
        Ok(sids)
    }

    /// Forgets sessions that ended without a sign-out: their record is gone or expired
    /// and, if it was never seen, they were not used for `ttl` seconds.
    pub async fn purge_user_sessions(&self, now: Timestamp, ttl: i64) -> Result<u64> {
        Ok(sqlx::query(
            "DELETE FROM user_sessions WHERE last_seen_at < $2
               AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.id = user_sessions.record_id AND s.expires_at > $1)",
        )
        .bind(now)
        .bind(now - ttl)
        .execute(&self.pool)
        .await?
        .rows_affected())
    }
}
