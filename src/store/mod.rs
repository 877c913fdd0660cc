//! Persistence. The only module that speaks SQL. Every query is written once, in SQL that
//! SQLite and PostgreSQL both accept (`$n` placeholders, TEXT and BIGINT columns); the
//! exceptions are the code redemption (PostgreSQL's `codes::redeem_pg`, SQLite's group
//! statements in `redemption_batch`, with `?` placeholders), the row lock in
//! `Store::user_still_exists`, and what only one of them needs (SQLite's pragmas,
//! PostgreSQL's NOTIFY).

mod access;
mod auth_requests;
mod client_cache;
mod client_notifications;
mod client_secrets;
mod clients;
mod codes;
mod consents;
mod erasure;
mod email_changes;
mod events;
mod grant_review;
mod grants;
mod keys;
mod login_events;
mod redemption_batch;
mod second_factors;
mod sessions;
mod throttle;
mod upstream_identities;
mod user_sessions;
mod users;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};

pub use access::{AccessRecord, ReleaseSubject};
pub use auth_requests::StoredAuthRequest;
pub use client_secrets::{ClientSecret, NewClientSecret};
pub use clients::ScopeDecision;
pub use codes::{CodeRedemption, NewCode};
pub use consents::StoredLink;
pub use erasure::{Erasure, ErasureOutcome};
pub use email_changes::{EmailChange, EmailChangeApplied, NewEmailChange};
pub use events::{AuditEntry, DataAccess};
pub use grant_review::{ScopeCount, UserGrant};
pub use grants::{NewGrant, NewRefresh, RefreshOutcome, StoredGrant, StoredRefresh};
pub use keys::StoredKey;
pub use login_events::{AccountEventRow, Cursor, IpTable, LoginEvent, LoginEventFilter, NewAccountEvent, NewLoginEvent, StoredIp, StoredOrigin};
pub use second_factors::TotpFactor;
pub use sessions::SessionStore;
pub use throttle::{Settlement, ThrottleState};
pub use upstream_identities::{NewUpstreamUser, UpstreamIdentity};
pub use user_sessions::{SessionMark, UserSession};
pub use users::{Credentials, NewUser, normalise_email};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("already exists")]
    Conflict,
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// A grouped statement failed (store/redemption_batch.rs): every caller gets its message.
    #[error("database: {0}")]
    Batch(String),
}

/// Turns a unique-constraint violation into [`StoreError::Conflict`], once, here.
fn on_conflict(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict,
        _ => StoreError::Database(e),
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    /// SQLite only: taken by the hot writes (code redemption) so that they queue
    /// here rather than in SQLite's busy handler, which sleeps 1, 2, 5, 10… ms between
    /// retries while another connection holds the write lock.
    sqlite_writes: Option<Arc<tokio::sync::Mutex<()>>>,
    /// Shared by every clone of this store.
    client_cache: Option<Arc<client_cache::ClientCache>>,
    /// PostgreSQL only: keeps the client cache in step with other processes' writes.
    client_listener: Option<Arc<client_notifications::Listener>>,
    /// SQLite only: code redemptions, run in groups under the write turn.
    redemptions: Option<Arc<redemption_batch::RedemptionBatcher>>,
    /// The data-access lines of this minute known to be stored (`Store::record_data_access`).
    known_lines: Arc<std::sync::Mutex<events::KnownLines>>,
}

/// A pooled PostgreSQL connection idle this long is pinged before it is used again. Under
/// load every connection is taken again within milliseconds; a server restart or fail-over
/// takes longer than this, so the connections it cut are found dead before a request uses
/// them.
const PING_AFTER_IDLE: Duration = Duration::from_secs(1);

/// Set on every SQLite connection. WAL lets readers proceed while one writer commits; NORMAL
/// sync is durable across application crashes, which is what WAL needs.
const SQLITE_PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON;";

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

impl Store {
    /// Connects to `url`, creating a SQLite file if needed. Does not migrate.
    pub async fn connect(url: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let sqlite = url.starts_with("sqlite:");
        let options = AnyConnectOptions::from_str(url)?;
        // One direct connection first, so an unreachable or misconfigured database fails at
        // once with its real reason (refused, unknown database, bad password): the pool would
        // retry until its acquire timeout and then only say "pool timed out".
        sqlx::Connection::close(sqlx::ConnectOptions::connect(&options).await?).await?;
        let pool_options = AnyPoolOptions::new()
            // SQLite has one writer and each connection its own thread and page cache (2 MiB):
            // four cover the readers of a small machine without the memory of more.
            .max_connections(if sqlite { 4 } else { 16 })
            .acquire_timeout(Duration::from_secs(10))
            // sqlx pings every connection on its way back to the pool, so one that is taken
            // again was alive a moment ago; a second ping before each use would add a round trip
            // to every statement (a thread hop on SQLite, a server wake-up on PostgreSQL). A
            // PostgreSQL connection idle long enough to have been dropped by the server (or
            // something between) is pinged before it is used again.
            .test_before_acquire(false)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if sqlite {
                        conn.execute(SQLITE_PRAGMAS).await?;
                    }
                    Ok(())
                })
            });
        let pool_options = match sqlite {
            true => pool_options,
            false => pool_options.before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= PING_AFTER_IDLE {
                        sqlx::Connection::ping(conn).await?;
                    }
                    Ok(true)
                })
            }),
        };
        let pool = pool_options.connect_with(options.clone()).await?;
        // Without its change marker (a read-only directory) the cache could miss another
        // process' change, so there is none: every lookup reads the database.
        let (client_cache, client_listener) = match sqlite {
            true => match client_cache::ClientCache::new(sqlite_file(url)?.as_deref()) {
                Ok(cache) => (Some(Arc::new(cache)), None),
                Err(e) => {
                    tracing::warn!(error = %e, "no client cache: the change marker next to the database cannot be opened");
                    (None, None)
                }
            },
            false => {
                let cache = Arc::new(client_cache::ClientCache::notified());
                let listener = client_notifications::Listener::start(url, pool.clone(), Arc::clone(&cache));
                (Some(cache), Some(Arc::new(listener)))
            }
        };
        let sqlite_writes: Option<Arc<tokio::sync::Mutex<()>>> = sqlite.then(Arc::default);
        let redemptions = match &sqlite_writes {
            Some(turn) => Some(Arc::new(redemption_batch::RedemptionBatcher::start(options, Arc::clone(turn)).map_err(sqlx::Error::Io)?)),
            None => None,
        };
        Ok(Self { pool, sqlite_writes, client_cache, client_listener, redemptions, known_lines: Arc::default() })
    }

    /// Waits for this process' turn to write on SQLite (nothing to wait for on PostgreSQL,
    /// whose row locks let writers proceed together); hold it until the commit.
    async fn write_turn(&self) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        match &self.sqlite_writes {
            Some(turn) => Some(Arc::clone(turn).lock_owned().await),
            None => None,
        }
    }

    /// Opens a transaction in a task of its own, so that it opens whatever the caller does.
    /// sqlx 0.9.0 counts a transaction as open only once the server has answered its BEGIN: a
    /// request dropped in between (its client went away) handed the connection back to the pool
    /// still inside that transaction (launchbadge/sqlx#4393), and the later statements on it
    /// stayed uncommitted, holding their locks, until some other transaction ended it.
    /// Opened here, a dropped caller's transaction is rolled back like any other.
    async fn begin(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
        let pool = self.pool.clone();
        match tokio::spawn(async move { pool.begin().await }).await {
            Ok(tx) => Ok(tx?),
            Err(_) => Err(sqlx::Error::WorkerCrashed.into()),
        }
    }

    /// A condition that the user `$n` names still exists, for a write that names them: on
    /// PostgreSQL it also takes a key-share lock on the user's row until the write commits,
    /// so an erasure in progress (which deleted the row first) is waited for and then finds
    /// nothing to write, and an erasure that comes later waits and then deletes what this
    /// wrote. SQLite runs one writer at a time, so the check alone is enough there.
    fn user_still_exists(&self, n: usize) -> String {
        let lock = if self.sqlite_writes.is_some() { "" } else { " FOR KEY SHARE" };
        format!("EXISTS (SELECT 1 FROM users WHERE id = ${n}{lock})")
    }

    pub async fn migrate(&self) -> Result<()> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

/// The file of a SQLite database URL; `None` for one in memory.
fn sqlite_file(url: &str) -> Result<Option<std::path::PathBuf>> {
    let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)?;
    let file = options.get_filename();
    let in_memory = url.contains(":memory:") || url.contains("mode=memory") || file.to_string_lossy().starts_with("file:");
    Ok((!in_memory).then(|| file.to_path_buf()))
}

/// The `user_id`, `auth_time`, `amr`, `sid` columns that codes and grants share.
fn auth_from_row(row: &sqlx::any::AnyRow) -> Result<crate::model::Authentication> {
    use sqlx::Row;
    let amr: String = row.try_get("amr")?;
    Ok(crate::model::Authentication {
        user_id: crate::model::UserId(row.try_get("user_id")?),
        auth_time: row.try_get("auth_time")?,
        amr: amr.split(' ').filter(|s| !s.is_empty()).map(str::to_string).collect(),
        sid: row.try_get("sid")?,
    })
}

/// `$first, $first+1, …`: `count` numbered placeholders for a statement built for a list.
fn placeholders(first: usize, count: usize) -> String {
    (first..first + count).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

fn flag(b: bool) -> i64 {
    i64::from(b)
}

fn join(items: &[String]) -> String {
    items.join("\n")
}

fn split(s: &str) -> Vec<String> {
    s.split('\n').filter(|x| !x.is_empty()).map(str::to_string).collect()
}
