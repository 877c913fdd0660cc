//! Sign-in attempts and account events: append, page through newest first (keyset on
//! `(at, id)`, so page 1000 costs what page 1 does), stream for export, and the retention
//! purge. Every admin filter has an index (migrations/0005), checked by `login_query_plans`.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Result, Store};
use crate::clock::Timestamp;
use crate::model::{ClientId, UserId};

/// Where a request came from, as stored beside an event or a session.
#[derive(Clone, Debug, Default)]
pub struct StoredOrigin {
    pub ip: Option<String>,
    /// [`crate::login::ip::key`] of `ip` (login events only use it).
    pub ip_key: Option<String>,
    pub user_agent: Option<String>,
    pub device: String,
    pub os: String,
    pub browser: String,
}

#[derive(Clone, Debug)]
pub struct NewLoginEvent {
    pub at: Timestamp,
    pub user_id: Option<UserId>,
    pub client_id: Option<ClientId>,
    pub method: String,
    pub result: String,
    pub reason: Option<String>,
    pub origin: StoredOrigin,
}

#[derive(Clone, Debug)]
pub struct LoginEvent {
    pub id: String,
    pub at: Timestamp,
    pub user_id: Option<UserId>,
    /// The user's current email, when the user is known and still exists.
    pub user_email: Option<String>,
    pub client_id: Option<ClientId>,
    pub method: String,
    pub result: String,
    pub reason: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub device: String,
    pub os: String,
    pub browser: String,
}

#[derive(Clone, Debug)]
pub struct NewAccountEvent {
    pub at: Timestamp,
    pub user_id: UserId,
    pub kind: String,
    pub detail: Option<String>,
    pub origin: StoredOrigin,
}

#[derive(Clone, Debug)]
pub struct AccountEventRow {
    pub id: String,
    pub at: Timestamp,
    pub kind: String,
    pub detail: Option<String>,
    pub ip: Option<String>,
    pub device: String,
    pub os: String,
    pub browser: String,
}

/// Which sign-in attempts to list; every field narrows. `ip_keys` is an inclusive range
/// of [`crate::login::ip::key`]s.
#[derive(Clone, Debug, Default)]
pub struct LoginEventFilter {
    pub user_id: Option<UserId>,
    pub client_id: Option<ClientId>,
    pub ip_keys: Option<(String, String)>,
    pub result: Option<String>,
    /// From this time on (inclusive).
    pub from: Option<Timestamp>,
    /// Before this time (exclusive).
    pub to: Option<Timestamp>,
}

/// A position in a newest-first list: the rows after it are older, by `(at, id)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor {
    pub at: Timestamp,
    pub id: String,
}

enum Bind {
    Text(String),
    Int(i64),
}

/// The WHERE clause (with `$n` placeholders from 1) for `filter` and `before`.
fn login_where(filter: &LoginEventFilter, before: Option<&Cursor>) -> (String, Vec<Bind>) {
    let mut clauses = Vec::new();
    let mut binds = Vec::new();
    let mut push = |clause: &str, values: Vec<Bind>| {
        let mut clause = clause.to_string();
        for (i, value) in values.into_iter().enumerate() {
            clause = clause.replace(&format!("?{i}"), &format!("${}", binds.len() + 1));
            binds.push(value);
        }
        clauses.push(clause);
    };
    if let Some(user) = &filter.user_id {
        push("e.user_id = ?0", vec![Bind::Text(user.to_string())]);
    }
    if let Some(client) = &filter.client_id {
        push("e.client_id = ?0", vec![Bind::Text(client.to_string())]);
    }
    match &filter.ip_keys {
        Some((low, high)) if low == high => push("e.ip_key = ?0", vec![Bind::Text(low.clone())]),
        Some((low, high)) => push("e.ip_key >= ?0 AND e.ip_key <= ?1", vec![Bind::Text(low.clone()), Bind::Text(high.clone())]),
        None => {}
    }
    if let Some(result) = &filter.result {
        push("e.result = ?0", vec![Bind::Text(result.clone())]);
    }
    if let Some(from) = filter.from {
        push("e.at >= ?0", vec![Bind::Int(from)]);
    }
    if let Some(to) = filter.to {
        push("e.at < ?0", vec![Bind::Int(to)]);
    }
    if let Some(cursor) = before {
        // `at <= x AND (at < x OR id < y)` rather than a row-value comparison: both
        // databases turn the first part into an index range.
        push("e.at <= ?0 AND (e.at < ?0 OR e.id < ?1)", vec![Bind::Int(cursor.at), Bind::Text(cursor.id.clone())]);
    }
    let sql = if clauses.is_empty() { String::new() } else { format!("WHERE {}", clauses.join(" AND ")) };
    (sql, binds)
}

const LOGIN_COLUMNS: &str = "e.id, e.at, e.user_id, u.email AS user_email, e.client_id, e.method, e.result, e.reason, e.ip, e.user_agent, e.device, e.os, e.browser";

fn login_sql(filter: &LoginEventFilter, before: Option<&Cursor>, limit: Option<i64>) -> (String, Vec<Bind>) {
    let (condition, mut binds) = login_where(filter, before);
    let mut sql = format!(
        "SELECT {LOGIN_COLUMNS} FROM login_events e LEFT JOIN users u ON u.id = e.user_id {condition} ORDER BY e.at DESC, e.id DESC"
    );
    if let Some(limit) = limit {
        sql.push_str(&format!(" LIMIT ${}", binds.len() + 1));
        binds.push(Bind::Int(limit));
    }
    (sql, binds)
}

fn bound(sql: String, binds: Vec<Bind>) -> sqlx::query::Query<'static, sqlx::Any, sqlx::any::AnyArguments> {
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for b in binds {
        query = match b {
            Bind::Text(s) => query.bind(s),
            Bind::Int(i) => query.bind(i),
        };
    }
    query
}

fn login_from_row(r: &AnyRow) -> Result<LoginEvent> {
    Ok(LoginEvent {
        id: r.try_get("id")?,
        at: r.try_get("at")?,
        user_id: r.try_get::<Option<String>, _>("user_id")?.map(UserId),
        user_email: r.try_get("user_email")?,
        client_id: r.try_get::<Option<String>, _>("client_id")?.map(ClientId),
        method: r.try_get("method")?,
        result: r.try_get("result")?,
        reason: r.try_get("reason")?,
        ip: r.try_get("ip")?,
        user_agent: r.try_get("user_agent")?,
        device: r.try_get::<Option<String>, _>("device")?.unwrap_or_default(),
        os: r.try_get::<Option<String>, _>("os")?.unwrap_or_default(),
        browser: r.try_get::<Option<String>, _>("browser")?.unwrap_or_default(),
    })
}

/// The tables holding IP addresses that retention truncates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpTable {
    LoginEvents,
    AccountEvents,
    UserSessions,
}

impl IpTable {
    pub const ALL: [IpTable; 3] = [IpTable::LoginEvents, IpTable::AccountEvents, IpTable::UserSessions];

    fn name(self) -> &'static str {
        match self {
            IpTable::LoginEvents => "login_events",
            IpTable::AccountEvents => "account_events",
            IpTable::UserSessions => "user_sessions",
        }
    }

    fn id_column(self) -> &'static str {
        if self == IpTable::UserSessions { "sid" } else { "id" }
    }

    /// When the address was recorded (a session's is refreshed as it is used).
    fn time_column(self) -> &'static str {
        if self == IpTable::UserSessions { "last_seen_at" } else { "at" }
    }
}

/// One stored address the purge must truncate.
#[derive(Clone, Debug)]
pub struct StoredIp {
    pub row_id: String,
    pub ip: String,
}

/// The INSERT of one sign-in attempt, its 14 parameters numbered from `$first` (bound by
/// [`bind_login_event`]); `user_alive` is the condition that the attempt's account (the
/// third parameter) still exists.
pub(super) fn login_event_insert(first: usize, user_alive: &str) -> String {
    let params: Vec<String> = (first..first + 14).map(|n| format!("${n}")).collect();
    format!(
        "INSERT INTO login_events (id, at, user_id, client_id, method, result, reason, ip, ip_key, ip_truncated, user_agent, device, os, browser)
         SELECT {} WHERE {} IS NULL OR {user_alive}",
        params.join(", "),
        params[2]
    )
}

/// Binds the parameters of [`login_event_insert`], in its order.
pub(super) fn bind_login_event<'q>(query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>, e: &NewLoginEvent) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    query
        .bind(event_id())
        .bind(e.at)
        .bind(e.user_id.as_ref().map(|u| u.to_string()))
        .bind(e.client_id.as_ref().map(|c| c.to_string()))
        .bind(e.method.clone())
        .bind(e.result.clone())
        .bind(e.reason.clone())
        .bind(e.origin.ip.clone())
        .bind(e.origin.ip_key.clone())
        // Nothing to truncate without an address.
        .bind(i64::from(e.origin.ip.is_none()))
        .bind(e.origin.user_agent.clone())
        .bind(e.origin.device.clone())
        .bind(e.origin.os.clone())
        .bind(e.origin.browser.clone())
}

/// A new event id: a per-process sequence number, then randomness. Ids only break ties
/// between events of the same second, where they keep the order of recording on a node;
/// the random part keeps them unique across nodes.
fn event_id() -> String {
    static SEQUENCE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = SEQUENCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{:010x}{}", n & 0xff_ffff_ffff, crate::crypto::b64url(&crate::crypto::random_bytes::<6>()))
}

/// Rows are deleted and truncated in batches, so a large backlog never holds a write lock
/// for long.
const PURGE_BATCH: i64 = 2000;

impl Store {
    /// Records a sign-in attempt; `false` (nothing recorded) when the account it names was
    /// erased meanwhile.
    pub async fn insert_login_event(&self, e: &NewLoginEvent) -> Result<bool> {
        let sql = login_event_insert(1, &self.user_still_exists(3));
        let inserted = bind_login_event(sqlx::query(sqlx::AssertSqlSafe(sql)), e).execute(&self.pool).await?.rows_affected();
        Ok(inserted == 1)
    }

    /// Sign-in attempts matching `filter`, newest first, after `before`, at most `limit`.
    pub async fn login_events(&self, filter: &LoginEventFilter, before: Option<&Cursor>, limit: i64) -> Result<Vec<LoginEvent>> {
        let (sql, binds) = login_sql(filter, before, Some(limit));
        let rows = bound(sql, binds).fetch_all(&self.pool).await?;
        rows.iter().map(login_from_row).collect()
    }

    /// Every attempt matching `filter`, newest first, sent one by one into `sink` as the
    /// database produces them (one query, any size, for exports); stops when the receiver
    /// is dropped.
    pub async fn stream_login_events(&self, filter: &LoginEventFilter, sink: tokio::sync::mpsc::Sender<LoginEvent>) -> Result<()> {
        use futures_util::TryStreamExt;
        let (sql, binds) = login_sql(filter, None, None);
        let query = bound(sql, binds);
        let mut rows = query.fetch(&self.pool);
        while let Some(row) = rows.try_next().await? {
            if sink.send(login_from_row(&row)?).await.is_err() {
                break;
            }
        }
        Ok(())
    }

    /// Records a change to an account; nothing when the account was erased meanwhile (an
    /// event written after the erasure would outlive it, with its address and device).
    pub async fn insert_account_event(&self, e: &NewAccountEvent) -> Result<()> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO account_events (id, at, user_id, kind, detail, ip, ip_truncated, user_agent, device, os, browser)
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11 WHERE {}",
            self.user_still_exists(3)
        )))
        .bind(event_id())
        .bind(e.at)
        .bind(e.user_id.as_str())
        .bind(&e.kind)
        .bind(e.detail.clone())
        .bind(e.origin.ip.clone())
        .bind(i64::from(e.origin.ip.is_none()))
        .bind(e.origin.user_agent.clone())
        .bind(&e.origin.device)
        .bind(&e.origin.os)
        .bind(&e.origin.browser)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A user's account events, newest first, after `before`, at most `limit`.
    pub async fn account_events(&self, user: &UserId, before: Option<&Cursor>, limit: i64) -> Result<Vec<AccountEventRow>> {
        let (at, id) = match before {
            Some(c) => (c.at, c.id.clone()),
            // Past every row: `at <= max` and `at < max` hold for all.
            None => (i64::MAX, String::new()),
        };
        let rows = sqlx::query(
            "SELECT id, at, kind, detail, ip, device, os, browser FROM account_events
             WHERE user_id = $1 AND at <= $2 AND (at < $2 OR id < $3) ORDER BY at DESC, id DESC LIMIT $4",
        )
        .bind(user.as_str())
        .bind(at)
        .bind(id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AccountEventRow {
                    id: r.try_get("id")?,
                    at: r.try_get("at")?,
                    kind: r.try_get("kind")?,
                    detail: r.try_get("detail")?,
                    ip: r.try_get("ip")?,
                    device: r.try_get::<Option<String>, _>("device")?.unwrap_or_default(),
                    os: r.try_get::<Option<String>, _>("os")?.unwrap_or_default(),
                    browser: r.try_get::<Option<String>, _>("browser")?.unwrap_or_default(),
                })
            })
            .collect()
    }

    /// Deletes sign-in attempts and account events older than `cutoff`; returns how many of
    /// each.
    pub async fn delete_events_before(&self, cutoff: Timestamp) -> Result<(u64, u64)> {
        let mut counts = [0u64; 2];
        for (i, table) in ["login_events", "account_events"].into_iter().enumerate() {
            loop {
                // A bounded batch: `DELETE … LIMIT` is not portable, a subquery with LIMIT is.
                let deleted = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DELETE FROM {table} WHERE id IN (SELECT id FROM {table} WHERE at < $1 LIMIT $2)"
                )))
                .bind(cutoff)
                .bind(PURGE_BATCH)
                .execute(&self.pool)
                .await?
                .rows_affected();
                counts[i] += deleted;
                if deleted < PURGE_BATCH as u64 {
                    break;
                }
            }
        }
        Ok((counts[0], counts[1]))
    }

    /// Up to one batch of addresses in `table`, recorded before `cutoff`, not yet truncated.
    pub async fn ips_to_truncate(&self, table: IpTable, cutoff: Timestamp) -> Result<Vec<StoredIp>> {
        let (name, id, time) = (table.name(), table.id_column(), table.time_column());
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {id} AS row_id, ip FROM {name} WHERE ip_truncated = 0 AND {time} < $1 LIMIT $2"
        )))
        .bind(cutoff)
        .bind(PURGE_BATCH)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(StoredIp { row_id: r.try_get("row_id")?, ip: r.try_get::<Option<String>, _>("ip")?.unwrap_or_default() })
            })
            .collect()
    }

    /// Replaces the address of the rows `row_ids` of `table` by `ip` (with its key, for
    /// login events) and marks them truncated. `None` removes an address that could not be
    /// read. A row no longer due (its session was used again since `ips_to_truncate` read
    /// it, with a fresh address) is left as it is.
    pub async fn set_truncated_ip(&self, table: IpTable, row_ids: &[String], ip: Option<&str>, ip_key: Option<&str>, cutoff: Timestamp) -> Result<()> {
        let (name, id, time) = (table.name(), table.id_column(), table.time_column());
        let login = table == IpTable::LoginEvents;
        // Numbered placeholders must all be used: the ids follow the two or three values.
        let (key_update, at_cutoff) = if login { (", ip_key = $2", "$3") } else { ("", "$2") };
        let first = if login { 4 } else { 3 };
        for chunk in row_ids.chunks(500) {
            let sql = format!(
                "UPDATE {name} SET ip = $1{key_update}, ip_truncated = 1 WHERE ip_truncated = 0 AND {time} < {at_cutoff} AND {id} IN ({})",
                super::placeholders(first, chunk.len())
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(ip.map(str::to_string));
            if login {
                query = query.bind(ip_key.map(str::to_string));
            }
            query = query.bind(cutoff);
            for row in chunk {
                query = query.bind(row.clone());
            }
            query.execute(&self.pool).await?;
        }
        Ok(())
    }

    /// The database's plan for the admin log's queries, one per filter, so a test can show
    /// they use indexes (see `grant_query_plans`).
    pub async fn login_query_plans(&self) -> Result<Vec<(&'static str, String)>> {
        let mut conn = self.pool.acquire().await?;
        let sqlite = conn.backend_name().eq_ignore_ascii_case("sqlite");
        let prefix = if sqlite { "EXPLAIN QUERY PLAN " } else { "EXPLAIN " };
        if !sqlite {
            sqlx::query("SET enable_seqscan = off").execute(&mut *conn).await?;
        }
        let cursor = Cursor { at: 2_000_000_000, id: "zzzz".into() };
        let filters = [
            ("all", LoginEventFilter::default()),
            ("user", LoginEventFilter { user_id: Some(UserId("u".into())), ..Default::default() }),
            ("client", LoginEventFilter { client_id: Some(ClientId("c".into())), ..Default::default() }),
            ("ip", LoginEventFilter { ip_keys: Some(("4cb007105".into(), "4cb007105".into())), ..Default::default() }),
            ("ip prefix", LoginEventFilter { ip_keys: Some(("4cb007100".into(), "4cb0071ff".into())), ..Default::default() }),
            ("result", LoginEventFilter { result: Some("failure".into()), ..Default::default() }),
            ("time range", LoginEventFilter { from: Some(1), to: Some(2_000_000_000), ..Default::default() }),
        ];
        let mut plans = Vec::new();
        for (name, filter) in filters {
            let (sql, binds) = login_sql(&filter, Some(&cursor), Some(51));
            let rows = bound(format!("{prefix}{sql}"), binds).fetch_all(&mut *conn).await?;
            let text: Vec<String> = rows.iter().map(|r| r.try_get::<String, _>(if sqlite { 3 } else { 0 }).unwrap_or_default()).collect();
            plans.push((name, text.join("\n")));
        }
        if !sqlite {
            sqlx::query("RESET enable_seqscan").execute(&mut *conn).await?;
        }
        Ok(plans)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_in_order() {
        let filter = LoginEventFilter {
            user_id: Some(UserId("u".into())),
            ip_keys: Some(("a".into(), "b".into())),
            to: Some(5),
            ..Default::default()
        };
        let (sql, binds) = login_sql(&filter, Some(&Cursor { at: 4, id: "x".into() }), Some(10));
        assert!(sql.contains("e.user_id = $1 AND e.ip_key >= $2 AND e.ip_key <= $3 AND e.at < $4 AND e.at <= $5 AND (e.at < $5 OR e.id < $6)"), "{sql}");
        assert!(sql.ends_with("LIMIT $7"), "{sql}");
        assert_eq!(binds.len(), 7);
    }
}
