//! Failed sign-in counters, shared by every node. The rules are in `login::throttle`; here
//! each change is one statement, so concurrent attempts on several nodes count correctly.
//! An attempt changes two counters (the account's and the address's). A statement that
//! changes both takes their rows in key order: on PostgreSQL two statements that each locked
//! both, in different orders, deadlocked under simultaneous sign-ins to one account from one
//! address.

use sqlx::Row;

use super::login_events::{bind_login_event, login_event_insert};
use super::{NewLoginEvent, Result, Store, placeholders};
use crate::clock::Timestamp;

/// How an attempt counted in advance ends on one counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settlement {
    Forget,
    Withdraw,
}

/// `keys` sorted bytewise, which is the order of PostgreSQL's `COLLATE "C"`.
fn in_key_order<'a>(keys: &[&'a str]) -> Vec<&'a str> {
    let mut ordered = keys.to_vec();
    ordered.sort_unstable();
    ordered.dedup();
    ordered
}

/// The settlement of counters: `settled` selects (on PostgreSQL: locks, in key order) their
/// rows, `update` settles them. `$1` is the time, `$2…` the keys, bound by [`Self::bind`].
struct SettlementSql<'a> {
    settled: String,
    update: String,
    keys: Vec<&'a str>,
}

impl<'a> SettlementSql<'a> {
    /// `also`: a further condition on the rows to settle.
    fn new(counters: &[(&'a str, Settlement)], lock: bool, also: &str) -> Self {
        // `$2…`: the keys to forget, then those to withdraw from. The order of the binds does
        // not matter: the rows are locked in the order of `settled`.
        let (forget, withdraw): (Vec<_>, Vec<_>) = counters.iter().partition(|(_, settlement)| *settlement == Settlement::Forget);
        let all = placeholders(2, counters.len());
        let forget_list = if forget.is_empty() { "NULL".to_string() } else { placeholders(2, forget.len()) };
        // On PostgreSQL the counters are locked in key order first (see `throttle_note`);
        // SQLite runs one writer at a time.
        let lock = if lock { r#" ORDER BY key COLLATE "C" FOR UPDATE"# } else { "" };
        Self {
            settled: format!("SELECT key FROM login_throttle WHERE key IN ({all}){also}{lock}"),
            update: format!(
                "UPDATE login_throttle SET
                   failures = CASE WHEN key IN ({forget_list}) THEN 0 ELSE failures - 1 END,
                   delay_until = CASE WHEN key IN ({forget_list}) THEN 0 ELSE delay_until END,
                   updated_at = $1
                 WHERE key IN (SELECT key FROM settled)
                   AND CASE WHEN key IN ({forget_list}) THEN locked_until <= $1 ELSE failures > 0 END"
            ),
            keys: forget.into_iter().chain(withdraw).map(|(key, _)| key).collect(),
        }
    }

    fn bind<'q>(&self, mut query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>
    where
        'a: 'q,
    {
        for key in &self.keys {
            query = query.bind(*key);
        }
        query
    }
}

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
    /// While a key is delayed or locked the attempt is not counted there. A window older than
    /// `window` seconds starts over. The states come back in the order of `keys`.
    pub async fn throttle_note(&self, keys: &[&str], now: Timestamp, window: i64) -> Result<Vec<ThrottleState>> {
        // The rows are taken in key order, as in `throttle_settle`: two statements that each
        // hold one counter while waiting for the other would deadlock on PostgreSQL.
        let ordered = in_key_order(keys);
        let values: Vec<String> = (0..ordered.len()).map(|i| format!("(${}, 1, $1, 0, 0, $1)", i + 3)).collect();
        let sql = format!(
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
            values.join(", ")
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now).bind(window);
        for key in &ordered {
            query = query.bind(*key);
        }
        let rows = query.fetch_all(&self.pool).await?;
        let mut states = Vec::with_capacity(keys.len());
        for key in keys {
            let row = rows.iter().find(|row| row.try_get::<String, _>("key").is_ok_and(|k| k == *key)).ok_or(sqlx::Error::RowNotFound)?;
            states.push(ThrottleState { failures: row.try_get("failures")?, delay_until: row.try_get("delay_until")?, locked_until: row.try_get("locked_until")? });
        }
        Ok(states)
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

    /// Settles an attempt counted in advance on each counter, in one statement:
    /// - [`Settlement::Forget`]: the account's owner signed in, so the failures are forgotten
    ///   (not while the counter is locked);
    /// - [`Settlement::Withdraw`]: the attempt is taken back (it was right, or never checked).
    pub async fn throttle_settle(&self, counters: &[(&str, Settlement)], now: Timestamp) -> Result<()> {
        if counters.is_empty() {
            return Ok(());
        }
        let settlement = SettlementSql::new(counters, self.sqlite_writes.is_none(), "");
        let sql = format!("WITH settled AS MATERIALIZED ({}) {}", settlement.settled, settlement.update);
        settlement.bind(sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now)).execute(&self.pool).await?;
        Ok(())
    }

    /// [`Store::throttle_settle`], then [`Store::insert_login_event`] of the attempt's
    /// outcome; on PostgreSQL one statement, a round trip fewer per sign-in. `false`: the
    /// account was erased meanwhile and nothing was recorded (the counters are settled all
    /// the same).
    pub async fn throttle_settle_recording(&self, counters: &[(&str, Settlement)], now: Timestamp, event: &NewLoginEvent) -> Result<bool> {
        if self.sqlite_writes.is_some() || counters.is_empty() {
            // SQLite runs in this process: a second statement costs no round trip.
            self.throttle_settle(counters, now).await?;
            return self.insert_login_event(event).await;
        }
        // The account's row is share-locked (`owner`) before the counters: an erasure deletes
        // the account and then its counters, so the other order could deadlock with it. The
        // counters' scan waits for `owner` through the condition that reads it.
        let first_event_param = 2 + counters.len();
        let user_param = first_event_param + 2;
        let settlement = SettlementSql::new(counters, true, " AND (SELECT alive FROM owner) IS NOT NULL");
        let sql = format!(
            "WITH owner AS MATERIALIZED (SELECT {} AS alive),
                  settled AS MATERIALIZED ({}),
                  settle AS ({} RETURNING key),
                  recorded AS ({} RETURNING id)
             SELECT COUNT(*) AS recorded FROM recorded",
            self.user_still_exists(user_param),
            settlement.settled,
            settlement.update,
            login_event_insert(first_event_param, "(SELECT alive FROM owner)"),
        );
        let query = settlement.bind(sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now));
        let recorded: i64 = bind_login_event(query, event).fetch_one(&self.pool).await?.try_get("recorded")?;
        Ok(recorded == 1)
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
