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
