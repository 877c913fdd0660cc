//! Retention of the login history (docs/privacy.md): sign-in attempts and account events
//! older than `retention.login_days` are deleted; IP addresses older than
//! `retention.ip_days` are cut to their network (IPv4 /24, IPv6 /48) in the attempts, the
//! account events and the session index. Runs in `sluis serve` (hourly) and as `sluis purge`.

use serde::Serialize;

use crate::clock::Timestamp;
use crate::config::Config;
use crate::store::{IpTable, Store, StoreError};

const DAY: i64 = 24 * 3600;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PurgeReport {
    pub login_events_deleted: u64,
    pub account_events_deleted: u64,
    pub ips_truncated: u64,
    pub sessions_forgotten: u64,
    pub throttle_counters_forgotten: u64,
}

pub async fn purge(store: &Store, config: &Config, now: Timestamp) -> Result<PurgeReport, StoreError> {
    let mut report = PurgeReport::default();
    let (login_events, account_events) = store.delete_events_before(now - i64::from(config.retention.login_days) * DAY).await?;
    report.login_events_deleted = login_events;
    report.account_events_deleted = account_events;
    let ip_cutoff = now - i64::from(config.retention.ip_days) * DAY;
    for table in IpTable::ALL {
        loop {
            let batch = store.ips_to_truncate(table, ip_cutoff).await?;
            if batch.is_empty() {
                break;
            }
            report.ips_truncated += batch.len() as u64;
            // One update per resulting network, not per row.
            let mut groups: std::collections::BTreeMap<Option<String>, Vec<String>> = Default::default();
            for row in batch {
                let truncated = super::ip::parse(&row.ip).map(|a| super::ip::truncate(&a).to_string());
                groups.entry(truncated).or_default().push(row.row_id);
            }
            for (ip, rows) in groups {
                let key = ip.as_deref().and_then(super::ip::parse).map(|a| super::ip::key(&a));
                store.set_truncated_ip(table, &rows, ip.as_deref(), key.as_deref(), ip_cutoff).await?;
            }
        }
    }
    report.sessions_forgotten = store.purge_user_sessions(now, i64::from(config.session_ttl)).await?;
    let stale = now - i64::from(config.login_window_seconds.max(config.login_lock_seconds)) - super::throttle::MAX_DELAY;
    report.throttle_counters_forgotten = store.purge_throttle(stale, now).await?;
    Ok(report)
}
