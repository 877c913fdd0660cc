//! Requests whose client goes away: hyper drops the handler's future wherever it is waiting,
//! so the store must stay correct when a transaction is abandoned at any await point.

use std::future::Future;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use sluis::store::{AuditEntry, Store};

fn audit(at: i64) -> AuditEntry {
    AuditEntry { at, actor: "cli".into(), ip: None, action: "test".into(), target: format!("entry {at}"), details: "{}".into() }
}

/// Each round abandons a key rotation (a transaction) after 0 to 7 polls, 0 to 55 µs apart:
/// some before its BEGIN is answered, some inside it, some at its commit; then writes one
/// audit entry outside any transaction, which another connection must see at once. A
/// connection left inside the abandoned transaction would keep that entry to itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_after_an_abandoned_transaction_are_visible_to_everyone() {
    let dir = tempfile::tempdir().unwrap();
    let url = crate::support::database_url(dir.path()).await;
    let store = Store::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    let observer = Store::connect(&url).await.unwrap();
    let mut abandoned = 0;
    for round in 0..600i64 {
        let kid = format!("key-{round}");
        let mut rotation = Box::pin(store.add_signing_key(&kid, "RS256", "sealed", "{}", round));
        let mut finished = false;
        // Polled by hand with a waker that does nothing: the runtime's other threads drive
        // the sockets, and the short sleeps let the database answer between polls.
        for _ in 0..round % 8 {
            if let Poll::Ready(result) = rotation.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
                result.unwrap();
                finished = true;
                break;
            }
            std::thread::sleep(Duration::from_micros(5 * (round as u64 / 8 % 12)));
        }
        abandoned += usize::from(!finished);
        drop(rotation);

        store.append_audit(&audit(round)).await.unwrap_or_else(|e| panic!("round {round}: {e}"));
        let newest = observer.audit_entries(1).await.unwrap();
        assert_eq!(newest.first().map(|e| e.at), Some(round), "round {round}: the audit entry written after an abandoned transaction is not visible");
    }
    // Both kinds happened: rotations abandoned at many points, and rotations that finished.
    assert!((200..550).contains(&abandoned), "{abandoned} of 600 rotations were abandoned");
}

/// Connections the database server cut while they sat in the pool (a restart, a fail-over, an
/// administrator ending them) are found dead and replaced before a request uses them: no
/// statement fails for them. On SQLite nothing can cut them; the statements run all the same.
#[tokio::test]
async fn connections_the_server_cut_while_idle_are_replaced_before_use() {
    let dir = tempfile::tempdir().unwrap();
    let url = crate::support::database_url(dir.path()).await;
    let store = Store::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    let all_at_once = || futures_util::future::join_all((0..24).map(|_| store.ping()));
    // The pool opens as many connections as it may.
    for result in all_at_once().await {
        result.unwrap();
    }
    if url.starts_with("postgres") {
        let mut admin = <sqlx::AnyConnection as sqlx::Connection>::connect(&url).await.unwrap();
        let cut = sqlx::query("SELECT COUNT(pg_terminate_backend(pid)) AS n FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
            .fetch_one(&mut admin)
            .await
            .unwrap();
        let cut: i64 = sqlx::Row::get(&cut, "n");
        assert!(cut >= 2, "only {cut} of the pool's connections were cut");
        // A restart takes at least this long; the pool's connections stay idle meanwhile.
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    for (i, result) in all_at_once().await.into_iter().enumerate() {
        result.unwrap_or_else(|e| panic!("statement {i} after the connections were cut: {e}"));
    }
    for i in 0..24 {
        store.ping().await.unwrap_or_else(|e| panic!("statement {i} in turn after the connections were cut: {e}"));
    }
}
