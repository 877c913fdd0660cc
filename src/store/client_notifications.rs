//! PostgreSQL: every process' client cache follows every other process' writes through
//! LISTEN/NOTIFY (issue 6).
//!
//! A write to clients, their scopes or their secrets is followed by a NOTIFY on [`CHANNEL`]
//! (`Store::clients_changed`). Each process listens on a connection of its own and empties
//! its cache on every notification. PostgreSQL keeps no notifications for a listener that is
//! not connected, so the cache is used only while the listener is: it is distrusted when the
//! connection fails and trusted again, empty, once a notification sent through the pool after
//! the new LISTEN has come back to it. That proof also keeps the cache unused behind a pooler
//! that does not pass notifications on (PgBouncer in transaction mode). A listener whose
//! connection dies without a word (no reset from the network) goes on being trusted until the
//! kernel notices; entries are reread after a minute in any case.

use std::sync::Arc;
use std::time::Duration;

use sqlx::Executor;
use sqlx::postgres::PgListener;
use tokio::task::AbortHandle;

use super::client_cache::ClientCache;

/// Notifications are per database, so servers of different databases on one PostgreSQL
/// server do not disturb each other.
const CHANNEL: &str = "sluis_clients_changed";

/// The statement that tells every listener (this process' too) that clients changed: a
/// notification without payload (a probe has one, and changes nothing).
const NOTIFY: &str = "NOTIFY sluis_clients_changed";

/// The wait before connecting again after a failure, doubled after each up to the longest.
const FIRST_PAUSE: Duration = Duration::from_millis(100);
const LONGEST_PAUSE: Duration = Duration::from_secs(30);

/// How long a new listener waits for its own probe to come back before giving up on it.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// The listening task; it stops when the last store clone drops this.
#[derive(Debug)]
pub(super) struct Listener {
    task: AbortHandle,
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Listener {
    /// Listens for changes on the database at `url` (whose pool is `pool`) and keeps
    /// `cache` in step with them.
    pub fn start(url: &str, pool: sqlx::AnyPool, cache: Arc<ClientCache>) -> Self {
        let task = tokio::spawn(listen(url.to_string(), pool, cache));
        Self { task: task.abort_handle() }
    }

    /// Tells every process on the database (this one too) that clients changed; called
    /// after each committed write (`Store::clients_changed`). In a task of its own, so that
    /// the others hear of it even if the request is dropped now; awaited, so that a CLI
    /// command does not exit first.
    pub async fn announce(&self, pool: &sqlx::AnyPool) {
        let pool = pool.clone();
        let notify = tokio::spawn(async move { pool.execute(NOTIFY).await.map(drop).map_err(|e| e.to_string()) });
        if let Err(e) = notify.await.map_err(|e| e.to_string()).and_then(|notified| notified) {
            tracing::error!(error = %e, "could not tell other processes that a client changed");
        }
    }
}

async fn listen(url: String, pool: sqlx::AnyPool, cache: Arc<ClientCache>) {
    let mut pause = FIRST_PAUSE;
    loop {
        match connect(&url, &pool).await {
            Ok(mut listener) => {
                cache.trust();
                pause = FIRST_PAUSE;
                let lost = loop {
                    match listener.try_recv().await {
                        // A change carries no payload; another process' probe does.
                        Ok(Some(notification)) if notification.payload().is_empty() => cache.changed(),
                        Ok(Some(_)) => {}
                        Ok(None) => break "the connection was closed".to_string(),
                        Err(e) => break e.to_string(),
                    }
                };
                cache.distrust();
                tracing::warn!(error = %lost, "stopped listening for client changes; clients are read from the database until listening again");
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for client changes; clients are read from the database until listening");
            }
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(LONGEST_PAUSE);
    }
}

/// A listener on [`CHANNEL`] that has heard a probe sent through `pool` after it listened.
async fn connect(url: &str, pool: &sqlx::AnyPool) -> Result<PgListener, String> {
    let mut listener = PgListener::connect(url).await.map_err(|e| e.to_string())?;
    // Reconnecting is ours to do (above): only then do we know when listening resumed.
    listener.eager_reconnect(false);
    listener.listen(CHANNEL).await.map_err(|e| e.to_string())?;
    let probe = crate::crypto::random_id();
    // The probe is hex: nothing to quote.
    pool.execute(sqlx::AssertSqlSafe(format!("{NOTIFY}, '{probe}'"))).await.map_err(|e| e.to_string())?;
    let heard = tokio::time::timeout(PROBE_TIMEOUT, async {
        loop {
            match listener.try_recv().await {
                Ok(Some(notification)) if notification.payload() == probe => return Ok(()),
                Ok(Some(_)) => continue,
                Ok(None) => return Err("the connection was closed".to_string()),
                Err(e) => return Err(e.to_string()),
            }
        }
    });
    match heard.await {
        Ok(outcome) => outcome.map(|()| listener),
        Err(_) => Err(format!("a notification sent after LISTEN did not arrive within {PROBE_TIMEOUT:?} (a pooler in transaction mode?)")),
    }
}
