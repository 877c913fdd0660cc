//! Clients as the protocol endpoints and sign-in pages read them, kept in memory.
//!
//! Authenticating a client is a database read on every token, revocation and introspection
//! request; on SQLite that read is a hand-off to sqlx's connection thread and back, which
//! costs more than an ES256 signature, and on PostgreSQL a round trip to a server that
//! may share the cores (docs/performance.md).
//!
//! Every write to a client, its scopes or its secrets drops all entries, in this process at
//! once and in every other process on the same database:
//! - SQLite: through a [`ChangeMarker`] file next to the database file, which each lookup
//!   reads before trusting an entry (no cache when the marker cannot be created). So a
//!   suspension or a revoked secret counts at once, wherever it was made.
//! - PostgreSQL: through a notification (`store/client_notifications.rs`), which every
//!   process' listener turns into [`ClientCache::changed`] as it arrives. The cache is
//!   trusted only while that listener is connected ([`ClientCache::trust`],
//!   [`ClientCache::distrust`]): notifications sent while it is not are lost, so meanwhile
//!   every lookup reads the database, and it starts empty once the listener is back.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockWriteGuard};
use std::time::{Duration, Instant};

use crate::clock::Timestamp;
use crate::crypto::random_bytes;
use crate::model::Client;

/// Entries are read again after this long in any case: a bound on staleness should a marker
/// ever fail to be written.
const MAX_AGE: Duration = Duration::from_secs(60);

/// Past this many entries the cache starts over, so that it stays small whatever the load.
const MAX_ENTRIES: usize = 10_000;

/// A client's unrevoked secrets; which of them have expired is decided at each use.
#[derive(Clone, Debug)]
pub struct StoredSecret {
    pub hash: String,
    pub expires_at: Option<Timestamp>,
}

#[derive(Clone, Debug)]
pub(super) struct ClientCredentials {
    pub client: Arc<Client>,
    pub secrets: Arc<[StoredSecret]>,
}

impl ClientCredentials {
    /// The hashes of the secrets that authenticate the client at `now`.
    pub fn active_hashes(&self, now: Timestamp) -> Vec<String> {
        self.secrets.iter().filter(|s| s.expires_at.is_none_or(|at| at > now)).map(|s| s.hash.clone()).collect()
    }
}

/// Eight random bytes in a file next to the database, replaced after every committed write
/// to clients by whichever process made it. Reading them is one `pread` from the page cache,
/// far cheaper than the query it saves.
#[derive(Debug)]
struct ChangeMarker {
    file: File,
    /// The value this process last acted on; changed only under the entries' write lock.
    seen: AtomicU64,
}

impl ChangeMarker {
    fn open(path: &Path) -> std::io::Result<Self> {
        let file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)?;
        let marker = Self { file, seen: AtomicU64::new(0) };
        let current = match marker.read() {
            Ok(value) => value,
            Err(_) => marker.replace()?,
        };
        marker.seen.store(current, Ordering::Release);
        Ok(marker)
    }

    fn read(&self) -> std::io::Result<u64> {
        let mut bytes = [0u8; 8];
        self.file.read_exact_at(&mut bytes, 0)?;
        Ok(u64::from_le_bytes(bytes))
    }

    fn replace(&self) -> std::io::Result<u64> {
        let bytes = random_bytes::<8>();
        self.file.write_all_at(&bytes, 0)?;
        Ok(u64::from_le_bytes(bytes))
    }
}

type Entries = HashMap<String, (Instant, ClientCredentials)>;

#[derive(Debug)]
pub(super) struct ClientCache {
    entries: RwLock<Entries>,
    /// Bumped by every forget: a read from the database that began before a write must not
    /// put what it read back afterwards.
    generation: AtomicU64,
    /// SQLite only; `None` for an in-memory database, which no other process can open.
    marker: Option<ChangeMarker>,
    /// Whether entries may be used at all; on PostgreSQL only while the listener is connected.
    trusted: AtomicBool,
}

impl ClientCache {
    /// A cache for the SQLite database `file` (`None`: in memory).
    pub fn new(file: Option<&Path>) -> std::io::Result<Self> {
        let marker = match file {
            Some(file) => {
                let mut name = file.as_os_str().to_owned();
                name.push("-clients-changed");
                Some(ChangeMarker::open(Path::new(&name))?)
            }
            None => None,
        };
        Ok(Self::with(marker, true))
    }

    /// A cache that other processes' changes reach as notifications: unused until
    /// [`ClientCache::trust`].
    pub fn notified() -> Self {
        Self::with(None, false)
    }

    fn with(marker: Option<ChangeMarker>, trusted: bool) -> Self {
        Self { entries: RwLock::default(), generation: AtomicU64::new(0), marker, trusted: AtomicBool::new(trusted) }
    }

    /// From now on every change is notified: start empty and use entries again.
    pub fn trust(&self) {
        let mut entries = self.write();
        self.forget(&mut entries);
        self.trusted.store(true, Ordering::Release);
    }

    /// Changes may go unnoticed from now on: read the database until [`ClientCache::trust`].
    pub fn distrust(&self) {
        let mut entries = self.write();
        self.trusted.store(false, Ordering::Release);
        self.forget(&mut entries);
    }

    pub fn get(&self, id: &str) -> Option<ClientCredentials> {
        if !self.trusted.load(Ordering::Acquire) {
            return None;
        }
        if let Some(marker) = &self.marker {
            // Unreadable counts as changed: nothing is trusted until it reads again.
            let current = marker.read().ok();
            if current != Some(marker.seen.load(Ordering::Acquire)) {
                let mut entries = self.write();
                if let Some(current) = current {
                    marker.seen.store(current, Ordering::Release);
                }
                self.forget(&mut entries);
                return None;
            }
        }
        let entries = self.entries.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        let (loaded_at, credentials) = entries.get(id)?;
        (loaded_at.elapsed() < MAX_AGE).then(|| credentials.clone())
    }

    /// Taken before reading from the database; handed to [`ClientCache::put`].
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub fn put(&self, id: &str, read_at: u64, credentials: ClientCredentials) {
        let mut entries = self.write();
        if self.generation.load(Ordering::Acquire) != read_at || !self.trusted.load(Ordering::Acquire) {
            return;
        }
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(id.to_string(), (Instant::now(), credentials));
    }

    /// Called after every committed write to clients, client scopes or client secrets, in
    /// this process or (on PostgreSQL, as notified) in another. Writes are rare (admin and
    /// owner actions), so all entries go rather than tracking which changed.
    pub fn changed(&self) {
        let mut entries = self.write();
        if let Some(marker) = &self.marker {
            match marker.replace() {
                Ok(value) => marker.seen.store(value, Ordering::Release),
                // Other processes keep their entries until the marker is writable again;
                // this one forgets in any case.
                Err(e) => tracing::error!(error = %e, "could not tell other processes that a client changed"),
            }
        }
        self.forget(&mut entries);
    }

    fn write(&self) -> RwLockWriteGuard<'_, Entries> {
        self.entries.write().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn forget(&self, entries: &mut Entries) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ClientId, ClientStatus, GrantType, SigningAlg};
    use crate::privacy::ScopeSet;

    fn credentials(name: &str) -> ClientCredentials {
        let client = Client {
            id: ClientId("c1".into()),
            name: name.into(),
            secret_hash: Some("h".into()),
            redirect_uris: vec![],
            post_logout_redirect_uris: vec![],
            scopes: ScopeSet::default(),
            approved_scopes: ScopeSet::default(),
            status: ClientStatus::Verified,
            public_subject: false,
            grant_types: vec![GrantType::ClientCredentials],
            signing_alg: SigningAlg::ES256,
            created_at: 0,
        };
        ClientCredentials { client: Arc::new(client), secrets: Arc::new([]) }
    }

    fn cached_name(cache: &ClientCache) -> Option<String> {
        cache.get("c1").map(|c| c.client.name.clone())
    }

    #[test]
    fn a_notified_cache_holds_nothing_until_trusted() {
        let cache = ClientCache::notified();
        cache.put("c1", cache.generation(), credentials("before"));
        assert_eq!(cached_name(&cache), None, "not listening yet: every lookup reads the database");
        cache.trust();
        cache.put("c1", cache.generation(), credentials("listening"));
        assert_eq!(cached_name(&cache).as_deref(), Some("listening"));
    }

    #[test]
    fn distrust_empties_the_cache_and_refuses_entries_until_trusted_again() {
        let cache = ClientCache::notified();
        cache.trust();
        cache.put("c1", cache.generation(), credentials("old"));
        cache.distrust();
        assert_eq!(cached_name(&cache), None);
        cache.put("c1", cache.generation(), credentials("read while cut off"));
        assert_eq!(cached_name(&cache), None, "a notification may be lost meanwhile");
        cache.trust();
        assert_eq!(cached_name(&cache), None, "listening again starts empty");
    }

    #[test]
    fn a_read_that_began_before_a_change_or_a_reconnection_is_not_kept() {
        let cache = ClientCache::notified();
        cache.trust();
        let read_at = cache.generation();
        cache.changed();
        cache.put("c1", read_at, credentials("stale"));
        assert_eq!(cached_name(&cache), None, "read before a notified change");

        let read_at = cache.generation();
        cache.distrust();
        cache.trust();
        cache.put("c1", read_at, credentials("stale"));
        assert_eq!(cached_name(&cache), None, "read before the listener was cut off and back");
    }

    #[test]
    fn a_sqlite_cache_in_memory_is_trusted_from_the_start() {
        let cache = ClientCache::new(None).unwrap();
        cache.put("c1", cache.generation(), credentials("kept"));
        assert_eq!(cached_name(&cache).as_deref(), Some("kept"));
        cache.changed();
        assert_eq!(cached_name(&cache), None);
    }
}
