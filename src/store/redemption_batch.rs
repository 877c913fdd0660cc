//! Code redemptions on SQLite, committed in groups (issue 6).
//!
//! SQLite has one writer, and every statement is a hand-off to sqlx's connection thread and
//! back; with both cores signing tokens, each such statement takes a couple of hundred
//! microseconds of wall time, and exchanges queued behind one another for exactly that.
//! One task here takes every redemption waiting at that moment and runs them as one
//! statement per step (consume the codes; then, once each winner has checked its code, store
//! the grants), so the wait is shared by the group instead of paid by each exchange. The statements are [`consume_codes`] and
//! [`insert_grants`], the same ones PostgreSQL runs for one code inside its transaction.

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

/// A consumed code's winner says what to store (`None`: the check failed) and learns
/// whether it was stored. The group keeps the write turn until every winner has answered, so
/// that a concurrent replay of the same code (which takes the turn too) comes after the
/// grant, as in a transaction.
pub(super) struct Decision {
    grant: oneshot::Sender<Option<NewGrant>>,
    stored: oneshot::Receiver<Result<bool>>,
}

impl Decision {
    /// Stores `grant` (if any) with the group; true if stored, or if there was none.
    pub async fn decide(self, grant: Option<NewGrant>) -> Result<bool> {
        let storing = grant.is_some();
        if self.grant.send(grant).is_err() {
            return Err(stopped());
        }
        match storing {
            true => self.stored.await.map_err(|_| stopped())?,
            false => Ok(true),
        }
    }
}

type Consumed = Option<(NewCode, Decision)>;

struct Job {
    code_hash: String,
    grant_id: GrantId,
    now: Timestamp,
    reply: oneshot::Sender<Result<Consumed>>,
}

#[derive(Debug)]
pub(super) struct RedemptionBatcher {
    jobs: mpsc::UnboundedSender<Job>,
}

impl RedemptionBatcher {
    /// Starts the task that runs the groups; it ends when the last store clone is dropped.
    /// Each group takes `turn`, the process' SQLite write turn, for its statements.
    pub fn start(pool: sqlx::AnyPool, turn: Arc<Mutex<()>>) -> Self {
        let (jobs, receiver) = mpsc::unbounded_channel();
        tokio::spawn(run(pool, turn, receiver));
        Self { jobs }
    }

    /// Marks the code used and names `grant_id` in it; the code as it was with the
    /// [`Decision`] to answer, or `None` if it was unknown or already used.
    pub async fn consume(&self, code_hash: &str, grant_id: &GrantId, now: Timestamp) -> Result<Consumed> {
        let (reply, answer) = oneshot::channel();
        let job = Job { code_hash: code_hash.to_string(), grant_id: grant_id.clone(), now, reply };
        self.jobs.send(job).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

fn stopped() -> StoreError {
    StoreError::Batch("the redemption task has stopped".into())
}

async fn run(pool: sqlx::AnyPool, turn: Arc<Mutex<()>>, mut jobs: mpsc::UnboundedReceiver<Job>) {
    let mut waiting = Vec::with_capacity(MAX_GROUP);
    while jobs.recv_many(&mut waiting, MAX_GROUP).await > 0 {
        let (codes, replies): (Vec<_>, Vec<_>) = waiting.drain(..).map(|job| ((job.code_hash, job.grant_id, job.now), job.reply)).unzip();
        let _turn = turn.lock().await;
        let consumed = match consume_in(&pool, &codes).await {
            Ok(consumed) => consumed,
            Err(e) => {
                fail_all(replies, &e);
                continue;
            }
        };
        let mut winners = Vec::new();
        for ((code, reply), (code_hash, _, _)) in consumed.into_iter().zip(replies).zip(codes) {
            let Some(code) = code else {
                let _ = reply.send(Ok(None));
                continue;
            };
            let (grant, grant_answer) = oneshot::channel();
            let (stored_answer, stored) = oneshot::channel();
            // A caller that went away (its request was dropped) stores nothing.
            if reply.send(Ok(Some((code, Decision { grant, stored })))).is_ok() {
                winners.push((code_hash, grant_answer, stored_answer));
            }
        }
        let (mut grants, mut stored_answers) = (Vec::new(), Vec::new());
        for (code_hash, grant_answer, stored_answer) in winners {
            if let Ok(Some(grant)) = grant_answer.await {
                grants.push((grant, code_hash));
                stored_answers.push(stored_answer);
            }
        }
        if grants.is_empty() {
            continue;
        }
        match store_in(&pool, &grants).await {
            Ok(stored) => {
                for (answer, stored) in stored_answers.into_iter().zip(stored) {
                    let _ = answer.send(Ok(stored));
                }
            }
            Err(e) => fail_all(stored_answers, &e),
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
fn fail_all<T>(replies: Vec<oneshot::Sender<Result<T>>>, error: &StoreError) {
    let message = error.to_string();
    for reply in replies {
        let _ = reply.send(Err(StoreError::Batch(message.clone())));
    }
}
