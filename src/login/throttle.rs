//! Login throttling: failed attempts are counted per account and per client network, in
//! the database so every node sees the same counts. From a third of the lock threshold on,
//! each failure delays the next attempt (1 s, 2 s, 4 s … at most a minute); at the
//! threshold the key is locked for `login_lock_seconds`. Attempts refused by a delay or a
//! lock are never checked, so guessing stops there, and they count no further.
//!
//! Every step that checks a secret (password, TOTP, recovery code, step-up) does the same:
//!
//! ```text
//! match throttle::check_and_note(&store, &policy, subject, ip, now).await? {
//!     Check::Allowed(ticket) => { verify; then ticket.failed(..) and record the failure,
//!                                 or .passed(.., success) / .succeeded(.., success) }
//!     Check::Delayed { .. } | Check::Locked => refuse, record the attempt as throttled / locked
//! }
//! ```
//!
//! Accounts and unknown email addresses are treated alike (an address without an account is
//! counted under its hash), so neither the answers nor their timing tell whether an
//! account exists.

use std::net::IpAddr;

use crate::clock::Timestamp;
use crate::config::Config;
use crate::model::UserId;
use crate::store::{NewLoginEvent, Settlement, Store, StoreError};

/// The longest delay between two attempts before the lock.
pub const MAX_DELAY: i64 = 60;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    pub lock_after: i64,
    pub ip_lock_after: i64,
    pub window: i64,
    pub lock: i64,
}

impl Policy {
    pub fn from_config(config: &Config) -> Self {
        Self {
            lock_after: i64::from(config.login_lock_after),
            ip_lock_after: i64::from(config.login_ip_lock_after),
            window: i64::from(config.login_window_seconds),
            lock: i64::from(config.login_lock_seconds),
        }
    }
}

/// Whose account an attempt is on.
#[derive(Clone, Copy, Debug)]
pub enum Subject<'a> {
    User(&'a UserId),
    /// An email address that has no account (as typed; it is normalised and hashed).
    UnknownEmail(&'a str),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Account,
    Ip,
}

fn account_key(subject: Subject<'_>) -> String {
    match subject {
        Subject::User(id) => format!("user:{id}"),
        Subject::UnknownEmail(email) => {
            let norm = crate::store::normalise_email(email);
            format!("email:{}", crate::crypto::token_hash(&norm))
        }
    }
}

/// The counters that belong to an account: its own, and its address's from before the
/// account existed. Erasing the account deletes both.
pub fn account_keys(user: &UserId, email: &str) -> Vec<String> {
    vec![account_key(Subject::User(user)), account_key(Subject::UnknownEmail(email))]
}

/// The delay after the `failures`-th failure: none for the first third of the threshold,
/// then doubling from one second, capped at [`MAX_DELAY`].
pub fn delay_after(failures: i64, lock_after: i64) -> i64 {
    let free = (lock_after / 3).max(1);
    if failures < free {
        return 0;
    }
    let exponent = (failures - free).min(20) as u32;
    (1_i64 << exponent).min(MAX_DELAY)
}

#[derive(Debug)]
pub enum Check {
    /// Check the secret, then report the result on the ticket.
    Allowed(Ticket),
    /// Refused without checking: too soon after the last failures.
    Delayed { retry_after: i64 },
    /// Refused without checking: locked after too many failures.
    Locked,
}

/// An attempt counted in advance as a failure. Report what it turned out to be.
#[must_use = "report the outcome: failed, passed or succeeded"]
#[derive(Debug)]
pub struct Ticket {
    notes: Vec<(String, Kind, i64)>,
    policy: Policy,
}

/// Counts an attempt on `subject` from `ip` before its secret is checked, and says whether
/// it may be checked at all. Counting first, atomically, means that parallel attempts cannot
/// all slip under the threshold.
pub async fn check_and_note(store: &Store, policy: &Policy, subject: Subject<'_>, ip: Option<&str>, now: Timestamp) -> Result<Check, StoreError> {
    let mut keys = vec![(account_key(subject), Kind::Account, policy.lock_after)];
    if let Some(addr) = ip.and_then(super::ip::parse) {
        keys.push((ip_key(&addr), Kind::Ip, policy.ip_lock_after));
    }
    let names: Vec<&str> = keys.iter().map(|(key, _, _)| key.as_str()).collect();
    let states = store.throttle_note(&names, now, policy.window).await?;
    let mut notes = Vec::new();
    let mut refusal: Option<Check> = None;
    for ((key, kind, lock_after), state) in keys.into_iter().zip(states) {
        if state.locked_until > now {
            refusal = Some(Check::Locked);
            continue;
        }
        if state.delay_until > now {
            if !matches!(refusal, Some(Check::Locked)) {
                let retry_after = state.delay_until - now;
                let longer = match refusal {
                    Some(Check::Delayed { retry_after: r }) => r.max(retry_after),
                    _ => retry_after,
                };
                refusal = Some(Check::Delayed { retry_after: longer });
            }
            continue;
        }
        notes.push((key, kind, state.failures));
        if state.failures > lock_after {
            // More attempts in flight at once than the threshold allows.
            refusal = Some(Check::Locked);
        }
    }
    match refusal {
        None => Ok(Check::Allowed(Ticket { notes, policy: *policy })),
        Some(check) => {
            // Refused unchecked: take back what this attempt counted.
            store.throttle_settle(&settlements(&notes, Settlement::Withdraw), now).await?;
            Ok(check)
        }
    }
}

/// Each counter of `notes` with how the attempt settles there: `on_account` on the
/// account's, a withdrawal on the address's.
fn settlements(notes: &[(String, Kind, i64)], on_account: Settlement) -> Vec<(&str, Settlement)> {
    notes.iter().map(|(key, kind, _)| (key.as_str(), if *kind == Kind::Account { on_account } else { Settlement::Withdraw })).collect()
}

fn ip_key(addr: &IpAddr) -> String {
    format!("ip:{}", super::ip::throttle_network(addr))
}

impl Ticket {
    /// The secret was wrong: the count stands; delay or lock as it says.
    pub async fn failed(self, store: &Store, now: Timestamp) -> Result<(), StoreError> {
        for (key, kind, failures) in &self.notes {
            let lock_after = if *kind == Kind::Account { self.policy.lock_after } else { self.policy.ip_lock_after };
            if *failures >= lock_after {
                store.throttle_lock(key, now + self.policy.lock, now).await?;
            } else {
                let delay = delay_after(*failures, lock_after);
                if delay > 0 {
                    store.throttle_delay(key, now + delay, now).await?;
                }
            }
        }
        Ok(())
    }

    /// The secret was right but the sign-in is not complete (a second factor follows): the
    /// attempt is taken back, earlier failures still count; and `success` goes into the
    /// login history. `false`: the account was erased meanwhile, nothing was recorded.
    pub async fn passed(self, store: &Store, now: Timestamp, success: &NewLoginEvent) -> Result<bool, StoreError> {
        store.throttle_settle_recording(&settlements(&self.notes, Settlement::Withdraw), now, success).await
    }

    /// The sign-in is complete: the account's failures are forgotten; the address's count
    /// only loses this attempt (another account's owner signing in from it proves nothing
    /// about the failures there); and `success` goes into the login history. `false`: the
    /// account was erased meanwhile, nothing was recorded.
    pub async fn succeeded(self, store: &Store, now: Timestamp, success: &NewLoginEvent) -> Result<bool, StoreError> {
        store.throttle_settle_recording(&settlements(&self.notes, Settlement::Forget), now, success).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_from_a_third_of_the_threshold() {
        let delays: Vec<i64> = (1..10).map(|f| delay_after(f, 10)).collect();
        assert_eq!(delays, [0, 0, 1, 2, 4, 8, 16, 32, 60]);
        assert_eq!(delay_after(1, 1), 1);
        assert_eq!(delay_after(49, 50), MAX_DELAY);
        assert_eq!(delay_after(15, 50), 0);
    }

    #[test]
    fn unknown_addresses_are_counted_under_a_hash() {
        let key = account_key(Subject::UnknownEmail(" Nobody@Example.com "));
        assert_eq!(key, account_key(Subject::UnknownEmail("nobody@example.com")));
        assert!(key.starts_with("email:") && !key.contains("nobody"));
        assert_eq!(account_key(Subject::User(&UserId("u1".into()))), "user:u1");
    }
}
