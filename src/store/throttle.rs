//! Failed sign-in counters, shared by every node. The rules are in `login::throttle`; here
//! each change is one statement, so concurrent attempts on several nodes count correctly.
//! Each statement changes one counter: an attempt changes two (the account's and the
//! address's), and on PostgreSQL two statements that each locked both, in different orders,
//! deadlocked under simultaneous sign-ins to one account from one address.

use sqlx::Row;

use super::{Result, Store};
use crate::clock::Timestamp;

/// A counter as one attempt left it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThrottleState {
    /// Failures in the current window, this attempt included when it was counted.
    pub failures: i64,
    pub delay_until: Timestamp,
    pub locked_until: Timestamp,
}

impl Store {
    /// Counts an attempt on `key` in advance (it is a failure until the caller says
    /// otherwise), in one atomic upsert, so parallel attempts each get their own number.
    /// While the key is delayed or locked the attempt is not counted. A window older than
    /// `window` seconds starts over.
    pub async fn throttle_note(&self, key: &str, now: Timestamp, window: i64) -> Result<ThrottleState> {
        let row = sqlx::query(
            "INSERT INTO login_throttle (key, failures, window_start, delay_until, locked_until, updated_at)
             VALUES ($3, 1, $1, 0, 0, $1)
             ON CONFLICT (key) DO UPDATE SET
               failures = CASE
                 WHEN login_throttle.locked_until > $1 OR login_throttle.delay_until > $1 THEN login_throttle.failures
                 WHEN login_throttle.window_start <= $1 - $2 THEN 1
                 ELSE login_throttle.failures + 1 END,
               window_start = CASE
                 WHEN login_throttle.locked_until > $1 OR login_throttle.delay_until > $1 THEN login_throttle.window_start
                 WHEN login_throttle.window_start <= $1 - $2 THEN $1
                 ELSE login_throttle.window_start END,
               updated_at = $1
             RETURNING failures, delay_until, locked_until",
        )
        .bind(now)
        .bind(window)
        .bind(key)
        .fetch_one(&self.pool)
        .await?;
        Ok(ThrottleState { failures: row.try_get("failures")?, delay_until: row.try_get("delay_until")?, locked_until: row.try_get("locked_until")? })
    }

    /// After a failure: no attempt is taken on `key` before `until` (an earlier, longer
    /// delay stays).
    pub async fn throttle_delay(&self, key: &str, until: Timestamp, now: Timestamp) -> Result<()> {
        sqlx::query(
            "UPDATE login_throttle SET delay_until = CASE WHEN delay_until > $2 THEN delay_until ELSE $2 END, updated_at = $3 WHERE key = $1",
        )
        .bind(key)
        .bind(until)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Locks `key` until `until`; the count starts afresh when the lock ends.
    pub async fn throttle_lock(&self, key: &str, until: Timestamp, now: Timestamp) -> Result<()> {
        sqlx::query("UPDATE login_throttle SET locked_until = $2, failures = 0, window_start = $2, delay_until = 0, updated_at = $3 WHERE key = $1")
            .bind(key)
            .bind(until)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Settles an attempt counted in advance that turned out right: the account's owner
    /// signed in, so `key`'s failures are forgotten (not while it is locked).
    pub async fn throttle_forget(&self, key: &str, now: Timestamp) -> Result<()> {
        sqlx::query("UPDATE login_throttle SET failures = 0, delay_until = 0, updated_at = $2 WHERE key = $1 AND locked_until <= $2")
            .bind(key)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Takes back one attempt counted in advance on `key` (it was right, or never checked).
    pub async fn throttle_withdraw(&self, key: &str, now: Timestamp) -> Result<()> {
        sqlx::query("UPDATE login_throttle SET failures = failures - 1, updated_at = $2 WHERE key = $1 AND failures > 0")
            .bind(key)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Drops counters untouched since `before` that hold no lock: they no longer count.
    pub async fn purge_throttle(&self, before: Timestamp, now: Timestamp) -> Result<u64> {
        Ok(sqlx::query("DELETE FROM login_throttle WHERE updated_at < $1 AND locked_until <= $2 AND delay_until <= $2")
            .bind(before)
            .bind(now)
            .execute(&self.pool)
            .await?
            .rows_affected())
    }
}
