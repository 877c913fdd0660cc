//! Append-only logs: the admin audit log and the data-access events users see.

use std::collections::HashSet;
use std::sync::PoisonError;

use sqlx::Row;

use super::{Result, Store};
use crate::clock::Timestamp;
use crate::model::{ClientId, UserId};

#[derive(Clone, Debug)]
pub struct AuditEntry {
    pub at: Timestamp,
    /// Who acted: `user:<id>` for an admin in the web UI, `cli` for the operator's command line.
    pub actor: String,
    pub ip: Option<String>,
    pub action: String,
    pub target: String,
    /// What changed, as JSON.
    pub details: String,
}

#[derive(Clone, Debug)]
pub struct DataAccess {
    pub at: Timestamp,
    pub user_id: UserId,
    pub client_id: ClientId,
    pub endpoint: String,
    /// The claims released, space-separated.
    pub claims: String,
}

/// Seconds in which repeated identical releases are one data-access line.
pub const DATA_ACCESS_WINDOW: Timestamp = 60;

/// The data-access lines of the current minute that this process knows are stored. Lines
/// are deleted only with their user (erasure), who then has no more releases, so a line
/// known here is in the database. Bounded: past the bound, the database answers as before.
#[derive(Debug, Default)]
pub(super) struct KnownLines {
    minute: Timestamp,
    ids: HashSet<String>,
}

/// A few hundred kB at most: one line per user, client, endpoint and claim set in a minute.
const KNOWN_LINES_MAX: usize = 4096;

impl KnownLines {
    fn contains(&self, minute: Timestamp, id: &str) -> bool {
        self.minute == minute && self.ids.contains(id)
    }

    fn remember(&mut self, minute: Timestamp, id: String) {
        if self.minute != minute {
            self.minute = minute;
            self.ids.clear();
        }
        if self.ids.len() < KNOWN_LINES_MAX {
            self.ids.insert(id);
        }
    }
}

impl Store {
    pub async fn append_audit(&self, entry: &AuditEntry) -> Result<()> {
        sqlx::query("INSERT INTO audit_log (id, at, actor, ip, action, target, details) VALUES ($1, $2, $3, $4, $5, $6, $7)")
            .bind(uuid::Uuid::new_v4().to_string())
            .bind(entry.at)
            .bind(&entry.actor)
            .bind(entry.ip.clone())
            .bind(&entry.action)
            .bind(&entry.target)
            .bind(&entry.details)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn audit_entries(&self, limit: i64) -> Result<Vec<AuditEntry>> {
        let rows = sqlx::query("SELECT at, actor, ip, action, target, details FROM audit_log ORDER BY at DESC, id LIMIT $1")
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(AuditEntry {
                    at: r.try_get("at")?,
                    actor: r.try_get("actor")?,
                    ip: r.try_get("ip")?,
                    action: r.try_get("action")?,
                    target: r.try_get("target")?,
                    details: r.try_get("details")?,
                })
            })
            .collect()
    }

    /// Records a release, once per minute (the activity page's resolution) for the same user,
    /// client, endpoint and claims: the first release of that minute is written, later ones
    /// find its line and write nothing. A resource endpoint under load thus reads here instead
    /// of writing on every request (on SQLite every commit serialises and makes the other
    /// connections drop their page caches), and, for a line this process has seen stored in
    /// this minute, not even reads ([`KnownLines`]). The line's id is derived from what it
    /// says, so concurrent first releases write it once.
    pub async fn record_data_access(&self, event: &DataAccess) -> Result<()> {
        let minute = event.at.div_euclid(DATA_ACCESS_WINDOW);
        let id = format!(
            "w-{}",
            crate::crypto::token_hash(&format!("{}\n{}\n{}\n{}\n{minute}", event.user_id, event.client_id, event.endpoint, event.claims))
        );
        if self.known_lines.lock().unwrap_or_else(PoisonError::into_inner).contains(minute, &id) {
            return Ok(());
        }
        let seen = sqlx::query("SELECT 1 AS one FROM data_access_events WHERE id = $1").bind(&id).fetch_optional(&self.pool).await?;
        if seen.is_none() {
            // Nothing for an account erased meanwhile: the line would outlive the erasure.
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO data_access_events (id, at, user_id, client_id, endpoint, claims) SELECT $1, $2, $3, $4, $5, $6 WHERE {}
                 ON CONFLICT (id) DO NOTHING",
                self.user_still_exists(3)
            )))
            .bind(&id)
            .bind(event.at)
            .bind(event.user_id.as_str())
            .bind(event.client_id.as_str())
            .bind(&event.endpoint)
            .bind(&event.claims)
            .execute(&self.pool)
            .await?;
        }
        self.known_lines.lock().unwrap_or_else(PoisonError::into_inner).remember(minute, id);
        Ok(())
    }

    pub async fn data_access_of_user(&self, user: &UserId, limit: i64) -> Result<Vec<DataAccess>> {
        let rows = sqlx::query(
            "SELECT at, user_id, client_id, endpoint, claims FROM data_access_events WHERE user_id = $1 ORDER BY at DESC, id LIMIT $2",
        )
        .bind(user.as_str())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(DataAccess {
                    at: r.try_get("at")?,
                    user_id: UserId(r.try_get("user_id")?),
                    client_id: ClientId(r.try_get("client_id")?),
                    endpoint: r.try_get("endpoint")?,
                    claims: r.try_get("claims")?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_lines_are_of_one_minute_and_bounded() {
        let mut known = KnownLines::default();
        known.remember(7, "a".into());
        assert!(known.contains(7, "a"));
        assert!(!known.contains(8, "a"), "a line is known only in its minute");
        known.remember(8, "b".into());
        assert!(!known.contains(7, "a") && known.contains(8, "b"), "a new minute forgets the last one");
        for i in 0..KNOWN_LINES_MAX + 10 {
            known.remember(8, format!("line {i}"));
        }
        assert_eq!(known.ids.len(), KNOWN_LINES_MAX);
        assert!(!known.contains(8, &format!("line {}", KNOWN_LINES_MAX + 5)), "past the bound, the database answers");
    }
}
