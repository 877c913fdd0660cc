//! Code redemptions on SQLite, committed in groups (issue 6).
//!
//! SQLite has one writer, and every statement is a hand-off to sqlx's connection thread and
//! back; with both cores signing tokens, each such statement takes a couple of hundred
//! microseconds of wall time, and exchanges queued behind one another for exactly that.
//! One thread here takes every redemption waiting at that moment and runs them as one
//! statement per step (consume the codes; check each consumed code with its exchange's
//! `decide`; store the grants), so the wait is shared by the group instead of paid by each
//! exchange. The statements are [`consume_codes`] and [`insert_grants`], on SQLite only
//! (PostgreSQL redeems each code in one statement of its own, `codes::redeem_pg`).

use std::sync::Arc;

use sqlx::any::AnyConnectOptions;
use sqlx::{AnyConnection, Connection, Executor, Row};
use tokio::sync::{Mutex, mpsc, oneshot};

use super::codes::{NewCode, code_from_row};
use super::grants::{AnyQuery, NewGrant, bind_grant};
use super::{Result, StoreError};
use crate::clock::Timestamp;
use crate::model::GrantId;

/// At most this many redemptions in one statement (15 values each for the grants and their
/// refresh tokens, far below SQLite's limit of 32,766).
const MAX_GROUP: usize = 64;

/// What to store for a consumed code (`None`: its check failed); run by the group itself,
/// between its two statements, so that no statement waits for the exchanges' tasks.
pub(super) type Decide = Box<dyn FnOnce(&NewCode) -> Option<NewGrant> + Send>;

/// The code as it was and whether its grant was stored (true when there was none to
/// store), or `None` if it was unknown or already used.
type Consumed = Option<(NewCode, bool)>;

struct Job {
    code_hash: String,
    grant_id: GrantId,
    now: Timestamp,
    decide: Decide,
    reply: oneshot::Sender<Result<Consumed>>,
}

#[derive(Debug)]
pub(super) struct RedemptionBatcher {
    jobs: mpsc::UnboundedSender<Job>,
}

impl RedemptionBatcher {
    /// Starts the thread that runs the groups; it ends when the last store clone is dropped.
    /// Each group takes `turn`, the process' SQLite write turn, for its statements.
    ///
    /// A thread of its own, not a task: a task woken when its statement is done waits behind
    /// every runnable task (with both cores signing tokens, milliseconds of work) while it
    /// holds the write turn.
    ///
    /// With a connection of its own, not one from the pool: the pool hands out its
    /// connections in turn, and a connection that finds the database changed by another one
    /// drops its whole page cache and reads every page again; this one finds only its own
    /// writes. A pool also pings each connection handed back, a thread hop each time.
    pub fn start(options: AnyConnectOptions, turn: Arc<Mutex<()>>) -> std::io::Result<Self> {
        let (jobs, receiver) = mpsc::unbounded_channel();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        std::thread::Builder::new().name("sluis-redeem".into()).spawn(move || runtime.block_on(run(options, turn, receiver)))?;
        Ok(Self { jobs })
    }

    /// Marks the code used and names `grant_id` in it, and stores the grant `decide` returns
    /// for it; see [`Consumed`].
    pub async fn redeem(&self, code_hash: &str, grant_id: &GrantId, now: Timestamp, decide: Decide) -> Result<Consumed> {
        let (reply, answer) = oneshot::channel();
        let job = Job { code_hash: code_hash.to_string(), grant_id: grant_id.clone(), now, decide, reply };
        self.jobs.send(job).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

fn stopped() -> StoreError {
    StoreError::Batch("the redemption thread has stopped".into())
}

async fn run(options: AnyConnectOptions, turn: Arc<Mutex<()>>, mut jobs: mpsc::UnboundedReceiver<Job>) {
    let mut waiting = Vec::with_capacity(MAX_GROUP);
    // Opened for the first group, and again after a group whose statement failed.
    let mut connection: Option<AnyConnection> = None;
    while jobs.recv_many(&mut waiting, MAX_GROUP).await > 0 {
        let (codes, rest): (Vec<_>, Vec<_>) = waiting.drain(..).map(|job| ((job.code_hash, job.grant_id, job.now), (job.decide, job.reply))).unzip();
        // Held until the grants are stored, so that a concurrent replay of one of these
        // codes (which takes the turn too) comes after its grant, as in a transaction.
        let _turn = turn.lock().await;
        let conn = match connected(&options, &mut connection).await {
            Ok(conn) => conn,
            Err(e) => {
                fail_all(rest.into_iter().map(|(_, reply)| reply), &e);
                continue;
            }
        };
        let consumed = match consume_codes(conn, &codes).await {
            Ok(consumed) => consumed,
            Err(e) => {
                connection = None;
                fail_all(rest.into_iter().map(|(_, reply)| reply), &e);
                continue;
            }
        };
        // Each consumed code with its grant's index in `grants`, if it has one.
        let mut outcomes = Vec::with_capacity(consumed.len());
        let mut grants = Vec::new();
        for ((code, (decide, reply)), (code_hash, _, _)) in consumed.into_iter().zip(rest).zip(codes) {
            let Some(code) = code else {
                let _ = reply.send(Ok(None));
                continue;
            };
            // A caller that went away (its request was dropped) stores nothing. A check that
            // panics fails its exchange (the code stays consumed) and leaves this thread to
            // the others.
            let decided = match reply.is_closed() {
                true => Ok(None),
                false => std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| decide(&code))),
            };
            let Ok(grant) = decided else {
                let _ = reply.send(Err(StoreError::Batch("the code's check failed".into())));
                continue;
            };
            let index = grant.map(|grant| {
                grants.push((grant, code_hash));
                grants.len() - 1
            });
            outcomes.push((code, index, reply));
        }
        let stored = match grants.is_empty() {
            true => Ok(Vec::new()),
            false => insert_grants(conn, &grants).await,
        };
        if stored.is_err() {
            connection = None;
        }
        for (code, index, reply) in outcomes {
            // A failed insert fails the exchanges whose grants it held, not those whose check
            // failed (they learn why from their check).
            let answer = match (index, &stored) {
                (None, _) => Ok(Some((code, true))),
                (Some(i), Ok(stored)) => Ok(Some((code, stored.get(i) == Some(&true)))),
                (Some(_), Err(e)) => Err(StoreError::Batch(e.to_string())),
            };
            let _ = reply.send(answer);
        }
    }
}

async fn connected<'c>(options: &AnyConnectOptions, connection: &'c mut Option<AnyConnection>) -> Result<&'c mut AnyConnection> {
    let conn = match connection.take() {
        Some(conn) => conn,
        None => {
            let mut conn = AnyConnection::connect_with(options).await?;
            conn.execute(super::SQLITE_PRAGMAS).await?;
            conn
        }
    };
    Ok(connection.insert(conn))
}

/// A group's statements are built for its size rounded up to a power of two (1, 2, 4, … 64)
/// and padded with values that match no row: seven texts per statement, each prepared once
/// on the thread's connection and kept, where a text per group size was parsed again for
/// every group.
fn padded(size: usize) -> usize {
    size.next_power_of_two()
}

/// The padding's code hash and grant id: no code hash or grant id is empty.
const MATCHES_NOTHING: &str = "";

/// Marks each `(code hash, grant id, now)` used at `now` and naming that grant, in one
/// statement for all; each code as it was, in order, or `None` if it was unknown or already
/// used (of two redemptions of one code in the same statement, the first wins).
///
/// The placeholders are anonymous (`?`), each value bound where it appears: SQLite finds a
/// numbered one by its name in the list of all the statement's names, when it parses and
/// again when each value is bound, which grew with the square of a group's values.
async fn consume_codes(conn: &mut AnyConnection, codes: &[(String, GrantId, Timestamp)]) -> Result<Vec<Option<NewCode>>> {
    let size = padded(codes.len());
    let whens = vec!["WHEN ? THEN ?"; size].join(" ");
    let mut query = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE authorization_codes SET used_at = CASE code_hash {whens} END, grant_id = CASE code_hash {whens} END
         WHERE code_hash IN ({}) AND used_at IS NULL
         RETURNING code_hash, grant_id, client_id, user_id, redirect_uri, scope, nonce, code_challenge, auth_time, amr, sid, expires_at",
        vec!["?"; size].join(", ")
    )));
    let padding = size - codes.len();
    for (code_hash, _, now) in codes {
        query = query.bind(code_hash).bind(*now);
    }
    for _ in 0..padding {
        query = query.bind(MATCHES_NOTHING).bind(0_i64);
    }
    for (code_hash, grant_id, _) in codes {
        query = query.bind(code_hash).bind(grant_id.as_str());
    }
    for _ in 0..padding {
        query = query.bind(MATCHES_NOTHING).bind(MATCHES_NOTHING);
    }
    for (code_hash, _, _) in codes {
        query = query.bind(code_hash);
    }
    for _ in 0..padding {
        query = query.bind(MATCHES_NOTHING);
    }
    let rows = query.fetch_all(&mut *conn).await?;
    codes
        .iter()
        .map(|(code_hash, grant_id, _)| {
            let mut won = rows.iter().filter(|row| {
                row.try_get::<String, _>("code_hash").is_ok_and(|h| h == *code_hash)
                    && row.try_get::<Option<String>, _>("grant_id").is_ok_and(|g| g.as_deref() == Some(grant_id.as_str()))
            });
            won.next().map(|row| code_from_row(code_hash, row)).transpose()
        })
        .collect()
}

/// A refresh-token row of padding: token_hash, grant_id, client_id, scope, created_at,
/// expires_at.
fn no_refresh(query: AnyQuery<'_>) -> AnyQuery<'_> {
    query.bind(MATCHES_NOTHING).bind(MATCHES_NOTHING).bind(MATCHES_NOTHING).bind(MATCHES_NOTHING).bind(0_i64).bind(0_i64)
}

/// Inserts each grant issued from its code (given by hash), only while that code still names
/// it (a replay of the code in between unnames it: see `Store::redeem_code`), and its
/// refresh token if it has one and was inserted: two statements sent together, one hop to
/// the connection's thread; whether each grant was stored, in order. Anonymous placeholders
/// as in [`consume_codes`].
async fn insert_grants(conn: &mut AnyConnection, grants: &[(NewGrant, String)]) -> Result<Vec<bool>> {
    let size = padded(grants.len());
    // VALUES columns are named column1, column2, … in SQLite.
    let mut query = sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO grants (id, client_id, user_id, scope, auth_time, amr, sid, created_at)
         SELECT v.column1, v.column2, v.column3, v.column4, v.column5, v.column6, v.column7, v.column8
         FROM (VALUES {}) AS v
         WHERE EXISTS (SELECT 1 FROM authorization_codes c WHERE c.code_hash = v.column9 AND c.grant_id = v.column1)
         RETURNING id;
         INSERT INTO refresh_tokens (token_hash, grant_id, client_id, scope, created_at, expires_at)
         SELECT v.column1, v.column2, v.column3, v.column4, v.column5, v.column6
         FROM (VALUES {}) AS v
         WHERE EXISTS (SELECT 1 FROM grants g WHERE g.id = v.column2)",
        vec!["(?, ?, ?, ?, ?, ?, ?, ?, ?)"; size].join(", "),
        vec!["(?, ?, ?, ?, ?, ?)"; size].join(", ")
    )));
    let padding = size - grants.len();
    for (grant, code_hash) in grants {
        query = bind_grant(query, grant).bind(code_hash);
    }
    for _ in 0..padding {
        let nothing = MATCHES_NOTHING;
        // id, client_id, user_id, scope, auth_time, amr, sid, created_at, the code's hash.
        query = query.bind(nothing).bind(nothing).bind(nothing).bind(nothing).bind(0_i64).bind(nothing).bind(nothing).bind(0_i64).bind(nothing);
    }
    // A grant without a refresh token gets a row of padding here.
    for (grant, _) in grants {
        query = match &grant.refresh {
            Some(refresh) => query
                .bind(&refresh.token_hash)
                .bind(grant.id.as_str())
                .bind(grant.client_id.as_str())
                .bind(&refresh.scope)
                .bind(grant.created_at)
                .bind(refresh.expires_at),
            None => no_refresh(query),
        };
    }
    for _ in 0..padding {
        query = no_refresh(query);
    }
    let inserted: Vec<String> = query.fetch_all(&mut *conn).await?.iter().map(|r| r.try_get("id")).collect::<std::result::Result<_, _>>()?;
    Ok(grants.iter().map(|(grant, _)| inserted.iter().any(|id| id == grant.id.as_str())).collect())
}

/// A failed statement fails every job of its group, each with the message.
fn fail_all<T>(replies: impl IntoIterator<Item = oneshot::Sender<Result<T>>>, error: &StoreError) {
    let message = error.to_string();
    for reply in replies {
        let _ = reply.send(Err(StoreError::Batch(message.clone())));
    }
}
