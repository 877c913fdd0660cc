//! Failed sign-in counters, shared by every node. The rules are in `login::throttle`; here
//! each change is one statement, so concurrent attempts on several nodes count correctly.

use sqlx::Row;

use super::{Result, Store, StoreError};
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
    /// Counts an attempt on each of `keys` in advance (it is a failure until the caller says
    /// otherwise), in one atomic upsert, so parallel attempts each get their own number.
    /// While a key is delayed or locked the attempt is not counted there. A window older
    /// than `window` seconds starts over. The states are in the order of `keys`.
    pub async fn throttle_note(&self, keys: &[&str], now: Timestamp, window: i64) -> Result<Vec<ThrottleState>> {
        let rows: Vec<String> = (0..keys.len()).map(|i| format!("(${}, 1, $1, 0, 0, $1)", i + 3)).collect();
        let mut query = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO login_throttle (key, failures, window_start, delay_until, locked_until, updated_at)
             VALUES {}
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
             RETURNING key, failures, delay_until, locked_until",
            rows.join(", ")
        )))
        .bind(now)
        .bind(window);
        for key in keys {
            query = query.bind(*key);
        }
        let rows = query.fetch_all(&self.pool).await?;
        keys.iter()
            .map(|key| {
                let row = rows
                    .iter()
                    .find(|r| r.try_get::<String, _>("key").is_ok_and(|k| k == *key))
                    .ok_or_else(|| StoreError::Corrupt(format!("no throttle state returned for {key}")))?;
                Ok(ThrottleState { failures: row.try_get("failures")?, delay_until: row.try_get("delay_until")?, locked_until: row.try_get("locked_until")? })
            })
            .collect()
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

    /// Settles attempts counted in advance that turned out right, in one statement: on each
    /// of `reset` the failures are forgotten (the account's owner signed in; not while it is
    /// locked), on each of `withdraw` only this attempt is taken back.
    pub async fn throttle_settle(&self, reset: &[&str], withdraw: &[&str], now: Timestamp) -> Result<()> {
        if reset.is_empty() && withdraw.is_empty() {
            return Ok(());
        }
        // `key IN (NULL)` matches nothing, for an empty list.
        let list = |from: usize, n: usize| if n == 0 { "NULL".to_string() } else { super::placeholders(from, n) };
        let (resets, withdraws) = (list(2, reset.len()), list(2 + reset.len(), withdraw.len()));
        let mut query = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE login_throttle SET
               failures = CASE WHEN key IN ({resets}) THEN 0 ELSE failures - 1 END,
               delay_until = CASE WHEN key IN ({resets}) THEN 0 ELSE delay_until END,
               updated_at = $1
             WHERE (key IN ({resets}) AND locked_until <= $1) OR (key IN ({withdraws}) AND failures > 0)"
        )))
        .bind(now);
        for key in reset.iter().chain(withdraw) {
            query = query.bind(*key);
        }
        query.execute(&self.pool).await?;
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
