//! PostgreSQL: every process' client cache follows every other process' writes through
//! LISTEN/NOTIFY (issue 6).
//!
//! A write to clients, their scopes or their secrets is followed by a NOTIFY on [`CHANNEL`]
//! (`Store::clients_changed`). Each process listens on a connection of its own and empties
//! its cache on every notification. PostgreSQL keeps no notifications for a listener that is
//! not connected, so the cache is used only while the listener is: it is distrusted when the
//! connection fails and trusted again, empty, once a new LISTEN has been answered. A listener
//! whose connection dies without a word (no reset from the network) goes on being trusted
//! until the kernel notices; entries are reread after a minute in any case.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio::task::AbortHandle;

use super::client_cache::ClientCache;

/// Notifications are per database, so servers of different databases on one PostgreSQL
/// server do not disturb each other.
pub(super) const CHANNEL: &str = "sluis_clients_changed";

/// The statement that tells every listener (this process' too) that clients changed.
pub(super) const NOTIFY: &str = "NOTIFY sluis_clients_changed";

/// The wait before connecting again after a failure, doubled after each up to the longest.
const FIRST_PAUSE: Duration = Duration::from_millis(100);
const LONGEST_PAUSE: Duration = Duration::from_secs(30);

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
    /// Listens for changes on the database at `url` and keeps `cache` in step with them.
    pub fn start(url: &str, cache: Arc<ClientCache>) -> Self {
        let task = tokio::spawn(listen(url.to_string(), cache));
        Self { task: task.abort_handle() }
    }
}

async fn listen(url: String, cache: Arc<ClientCache>) {
    let mut pause = FIRST_PAUSE;
    loop {
        match connect(&url).await {
            Ok(mut listener) => {
                cache.trust();
                pause = FIRST_PAUSE;
                let lost = loop {
                    match listener.try_recv().await {
                        Ok(Some(_)) => cache.changed(),
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

async fn connect(url: &str) -> sqlx::Result<PgListener> {
    let mut listener = PgListener::connect(url).await?;
    // Reconnecting is ours to do (above): only then do we know when listening resumed.
    listener.eager_reconnect(false);
    listener.listen(CHANNEL).await?;
    Ok(listener)
}
