//! Code redemptions on SQLite, committed in groups (issue 6).
//!
//! SQLite has one writer, and every statement is a hand-off to sqlx's connection thread and
//! back; with both cores signing tokens, each such statement takes a couple of hundred
//! microseconds of wall time, and exchanges queued behind one another for exactly that.
//! One thread here takes every redemption waiting at that moment and runs them as one
//! statement per step (consume the codes; check each consumed code with its exchange's
//! `decide`; store the grants), so the wait is shared by the group instead of paid by each
//! exchange. The statements are [`consume_codes`] and [`insert_grants`], the same ones
//! PostgreSQL runs for one code.

use std::sync::Arc;

use tokio::sync::{Mutex, mpsc, oneshot};

use super::codes::{NewCode, consume_codes};
use super::grants::{NewGrant, insert_grants};
use super::{Result, StoreError};
use crate::clock::Timestamp;
use crate::model::GrantId;

/// At most this many redemptions in one statement (9 parameters each for the grants, far
/// below SQLite's limit of 32,766).
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
    pub fn start(pool: sqlx::AnyPool, turn: Arc<Mutex<()>>) -> std::io::Result<Self> {
        let (jobs, receiver) = mpsc::unbounded_channel();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        std::thread::Builder::new().name("sluis-redeem".into()).spawn(move || runtime.block_on(run(pool, turn, receiver)))?;
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

async fn run(pool: sqlx::AnyPool, turn: Arc<Mutex<()>>, mut jobs: mpsc::UnboundedReceiver<Job>) {
    let mut waiting = Vec::with_capacity(MAX_GROUP);
    while jobs.recv_many(&mut waiting, MAX_GROUP).await > 0 {
        let (codes, rest): (Vec<_>, Vec<_>) = waiting.drain(..).map(|job| ((job.code_hash, job.grant_id, job.now), (job.decide, job.reply))).unzip();
        // Held until the grants are stored, so that a concurrent replay of one of these
        // codes (which takes the turn too) comes after its grant, as in a transaction.
        let _turn = turn.lock().await;
        let consumed = match consume_in(&pool, &codes).await {
            Ok(consumed) => consumed,
            Err(e) => {
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
            false => store_in(&pool, &grants).await,
        };
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

async fn consume_in(pool: &sqlx::AnyPool, codes: &[(String, GrantId, Timestamp)]) -> Result<Vec<Option<NewCode>>> {
    let mut conn = pool.acquire().await?;
    consume_codes(&mut conn, codes).await
}

async fn store_in(pool: &sqlx::AnyPool, grants: &[(NewGrant, String)]) -> Result<Vec<bool>> {
    let mut conn = pool.acquire().await?;
    insert_grants(&mut conn, grants).await
}

/// A failed statement fails every job of its group, each with the message.
fn fail_all<T>(replies: impl IntoIterator<Item = oneshot::Sender<Result<T>>>, error: &StoreError) {
    let message = error.to_string();
    for reply in replies {
        let _ = reply.send(Err(StoreError::Batch(message.clone())));
    }
}
