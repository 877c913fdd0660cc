//! Login throttling through the sign-in page: growing delays, the lock (even for the right
//! password, in the same words as a wrong one), its end, attempts spread over many
//! addresses, the per-address limit, and unknown email addresses answered alike; and the
//! counters' statements themselves under simultaneous attempts and at settlement. The clock
//! is moved instead of sleeping.

use reqwest::redirect::Policy;
use sluis::store::{LoginEvent, LoginEventFilter};

use crate::support::*;

const ADA: &str = "ada@example.com";
const WRONG: &str = "The email address or password is incorrect.";

/// The suite's per-IP request rate limit is off here: these tests are about the lock.
pub async fn app_with(adjust: impl FnOnce(&mut sluis::config::Config)) -> TestApp {
    TestApp::start_with(|c| {
        c.rate_limit_login_per_minute = 0;
        adjust(c);
    })
    .await
}

/// A cookie-keeping browser whose connections come from `ip` (any 127.0.0.0/8 address
/// reaches the server on 127.0.0.1; the server sees `ip` as the peer).
pub fn browser_from(app: &TestApp, ip: &str) -> Browser {
    Browser {
        http: reqwest::Client::builder().cookie_store(true).redirect(Policy::none()).local_address(Some(ip.parse().unwrap())).build().unwrap(),
        base: app.base.clone(),
    }
}

/// The error shown on a sign-in page.
pub fn alert(html: &str) -> Option<String> {
    let start = html.find("role=\"alert\">")? + "role=\"alert\">".len();
    let end = html[start..].find('<')? + start;
    Some(html[start..end].replace("&#39;", "'"))
}

/// Submits the sign-in form; `Ok(location)` when signed in, `Err((status, page))` otherwise.
pub async fn sign_in(browser: &Browser, email: &str, password: &str) -> Result<String, (u16, String)> {
    let page = browser.get("/login").await.text().await.unwrap();
    let response = browser.submit(&page, &[("email", email), ("password", password)]).await;
    match location(&response) {
        Some(to) => Ok(to),
        None => Err((response.status().as_u16(), response.text().await.unwrap())),
    }
}

/// Asserts a refusal with exactly `message`.
#[track_caller]
fn refused(result: Result<String, (u16, String)>, message: &str) -> String {
    let (status, page) = result.expect_err("expected a refusal");
    assert_eq!(status, 200);
    assert_eq!(alert(&page).as_deref(), Some(message), "{page}");
    page
}

pub async fn events(app: &TestApp) -> Vec<LoginEvent> {
    app.state.store.login_events(&LoginEventFilter::default(), None, 1000).await.unwrap()
}

#[tokio::test]
async fn the_account_locks_after_the_configured_failures_even_for_the_right_password() {
    let app = app_with(|_| {}).await;
    let ada = app.user(ADA).await;
    let browser = app.browser();
    for _ in 0..10 {
        refused(sign_in(&browser, ADA, "wrong password").await, WRONG);
        // Past the growing delay, inside the 15-minute window.
        app.clock.advance(61);
    }
    // Locked: the right password gets the wrong-password answer, and is recorded as refused.
    refused(sign_in(&browser, ADA, PASSWORD).await, WRONG);
    let latest = &events(&app).await[0];
    assert_eq!((latest.result.as_str(), latest.reason.as_deref()), ("failure", Some("locked")));
    assert_eq!(latest.user_id.as_ref(), Some(&ada.id));
    let reasons: Vec<_> = events(&app).await.iter().map(|e| e.reason.clone().unwrap_or_default()).collect();
    assert_eq!(reasons.iter().filter(|r| *r == "wrong_password").count(), 10, "{reasons:?}");

    // Still locked just before the lock ends (900 s from the tenth failure) …
    app.clock.advance(900 - 61 - 1);
    refused(sign_in(&browser, ADA, PASSWORD).await, WRONG);
    // … and open after it.
    app.clock.advance(2);
    assert_eq!(sign_in(&browser, ADA, PASSWORD).await, Ok("/account".to_string()));
    assert_eq!(events(&app).await[0].result, "success");
}

#[tokio::test]
async fn quick_failures_are_delayed_more_and_more() {
    let app = app_with(|_| {}).await;
    app.user(ADA).await;
    let browser = app.browser();
    // A third of the threshold is free; then the next attempt waits 1 s, then 2 s.
    for _ in 0..3 {
        refused(sign_in(&browser, ADA, "wrong").await, WRONG);
    }
    refused(sign_in(&browser, ADA, PASSWORD).await, "Too many attempts. Wait 1 second, then try again.");
    assert_eq!(events(&app).await[0].reason.as_deref(), Some("throttled"));
    app.clock.advance(1);
    refused(sign_in(&browser, ADA, "wrong").await, WRONG);
    refused(sign_in(&browser, ADA, PASSWORD).await, "Too many attempts. Wait 2 seconds, then try again.");
    app.clock.advance(2);
    // A refused attempt was not checked and does not count: the right password works.
    assert_eq!(sign_in(&browser, ADA, PASSWORD).await, Ok("/account".to_string()));
    // Success forgets the account's failures: the next mistake costs no delay.
    let other = app.browser();
    refused(sign_in(&other, ADA, "wrong").await, WRONG);
    assert_eq!(sign_in(&other, ADA, PASSWORD).await, Ok("/account".to_string()));
}

#[tokio::test]
async fn guesses_from_many_addresses_still_lock_the_account() {
    let app = app_with(|_| {}).await;
    app.user(ADA).await;
    for i in 0..10 {
        let browser = browser_from(&app, &format!("127.0.0.{}", 10 + i));
        refused(sign_in(&browser, ADA, &format!("guess {i}")).await, WRONG);
        app.clock.advance(61);
    }
    let fresh = browser_from(&app, "127.0.0.99");
    refused(sign_in(&fresh, ADA, PASSWORD).await, WRONG);
    let all = events(&app).await;
    assert_eq!(all[0].reason.as_deref(), Some("locked"));
    assert_eq!(all[0].ip.as_deref(), Some("127.0.0.99"));
    let addresses: std::collections::HashSet<_> = all.iter().filter_map(|e| e.ip.clone()).collect();
    assert_eq!(addresses.len(), 11, "each attempt recorded with its own address: {addresses:?}");
}

#[tokio::test]
async fn one_address_is_locked_after_its_own_limit_across_accounts() {
    let app = app_with(|c| c.login_ip_lock_after = 5).await;
    app.user(ADA).await;
    let guesser = browser_from(&app, "127.0.0.7");
    for i in 0..5 {
        refused(sign_in(&guesser, &format!("user{i}@example.com"), "guess").await, WRONG);
        app.clock.advance(61);
    }
    // That address is locked, for every account …
    refused(sign_in(&guesser, ADA, PASSWORD).await, WRONG);
    assert_eq!(events(&app).await[0].reason.as_deref(), Some("locked"));
    // … while Ada, elsewhere, signs in.
    assert_eq!(sign_in(&browser_from(&app, "127.0.0.8"), ADA, PASSWORD).await, Ok("/account".to_string()));
}

#[tokio::test]
async fn an_unknown_email_gets_the_same_answer_as_a_wrong_password() {
    let app = app_with(|_| {}).await;
    app.user(ADA).await;
    let browser = app.browser();
    let known = refused(sign_in(&browser, ADA, "wrong").await, WRONG);
    let unknown = refused(sign_in(&browser, "nobody@example.com", "wrong").await, WRONG);
    // The same page, apart from the email address it keeps in the form.
    assert_eq!(known.replace(ADA, "EMAIL"), unknown.replace("nobody@example.com", "EMAIL"));
    let latest = &events(&app).await[0];
    assert_eq!((latest.reason.as_deref(), latest.user_id.as_ref()), (Some("unknown_account"), None));

    // An unknown address is throttled and locked exactly like an account.
    let browser = app.browser();
    for _ in 0..3 {
        refused(sign_in(&browser, "ghost@example.com", "wrong").await, WRONG);
    }
    refused(sign_in(&browser, "ghost@example.com", "wrong").await, "Too many attempts. Wait 1 second, then try again.");
    for _ in 3..10 {
        app.clock.advance(61);
        refused(sign_in(&browser, "ghost@example.com", "wrong").await, WRONG);
    }
    app.clock.advance(61);
    refused(sign_in(&browser, "ghost@example.com", "wrong").await, WRONG);
    assert_eq!(events(&app).await[0].reason.as_deref(), Some("locked"));
    // Nothing stored names the unknown address.
    assert!(events(&app).await.iter().all(|e| e.user_email.is_none() || e.user_email.as_deref() == Some(ADA)));
}

/// Throttle limits no test of concurrent attempts reaches: more attempts are in flight than
/// the lock allows, and these tests are about the counters' updates.
const UNLIMITED: sluis::login::throttle::Policy = sluis::login::throttle::Policy { lock_after: 1_000_000, ip_lock_after: 1_000_000, window: 900, lock: 60 };

/// A password sign-in's success from `ip`, as the login history stores it.
fn password_success(user: &sluis::model::UserId, ip: &str, now: i64) -> sluis::store::NewLoginEvent {
    use sluis::login::events::{Attempt, Method, Origin, Outcome, login_event};
    let origin = Origin { ip: Some(ip.to_string()), user_agent: None };
    login_event(&Attempt { user: Some(user), client: None, method: Method::Password, outcome: Outcome::Success }, &origin, now)
}

/// Sign-ins to one account from one address at the same moment (a shared office, a
/// password manager's retries) update the same two counters, the account's and the
/// address's. On PostgreSQL, statements that locked both counters in different orders
/// deadlocked, and such a sign-in got an error page. Here the throttle's own steps run
/// without the password hash in between, so thousands of them meet in a second or two.
#[tokio::test]
async fn simultaneous_attempts_on_one_account_from_one_address_all_count() {
    use sluis::login::throttle::{self, Check, Policy, Subject};
    let app = app_with(|_| {}).await;
    let ada = app.user(ADA).await;
    let policy = UNLIMITED;
    let now = app.state.now();
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..16 {
        let (store, user) = (app.state.store.clone(), ada.id.clone());
        tasks.spawn(async move {
            let success = password_success(&user, "127.0.0.5", now);
            let mut outcomes = Vec::new();
            for attempt in 0..150 {
                let outcome = match throttle::check_and_note(&store, &policy, Subject::User(&user), Some("127.0.0.5"), now).await {
                    // Every third attempt a wrong password, the others right.
                    Ok(Check::Allowed(ticket)) if (worker + attempt) % 3 == 0 => ticket.failed(&store, now).await.map(|()| "failed"),
                    Ok(Check::Allowed(ticket)) => ticket.succeeded(&store, now, &success).await.map(|recorded| if recorded { "succeeded" } else { "not recorded" }),
                    Ok(refused) => Ok(if matches!(refused, Check::Locked) { "locked" } else { "delayed" }),
                    Err(e) => Err(e),
                };
                outcomes.push(outcome.map_err(|e| e.to_string()));
            }
            outcomes
        });
    }
    let outcomes: Vec<_> = tasks.join_all().await.into_iter().flatten().collect();
    let errors: Vec<_> = outcomes.iter().filter_map(|o| o.as_ref().err()).collect();
    assert!(errors.is_empty(), "{} of {} attempts failed, e.g. {:?}", errors.len(), outcomes.len(), errors.first());
    assert!(outcomes.iter().all(|o| matches!(o, Ok("failed" | "succeeded"))), "none refused under these limits");

    // No update was lost: the address's count holds exactly the wrong passwords (each right
    // one took its own attempt back). One attempt more is over a limit of that many, and
    // within a limit of one more.
    let wrong = outcomes.iter().filter(|o| matches!(o, Ok("failed"))).count() as i64;
    assert_eq!(wrong, 800);
    // Each success went into the history with its settlement (one statement on PostgreSQL).
    let filter = sluis::store::LoginEventFilter { user_id: Some(ada.id.clone()), result: Some("success".into()), ..Default::default() };
    assert_eq!(app.state.store.login_events(&filter, None, 10_000).await.unwrap().len(), 1600);
    let with_limit = |ip_lock_after| Policy { ip_lock_after, ..policy };
    let attempt = |policy: Policy| {
        let (store, user) = (app.state.store.clone(), ada.id.clone());
        async move { throttle::check_and_note(&store, &policy, Subject::User(&user), Some("127.0.0.5"), now).await.unwrap() }
    };
    assert!(matches!(attempt(with_limit(wrong)).await, Check::Locked));
    let success = password_success(&ada.id, "127.0.0.5", now);
    match attempt(with_limit(wrong + 1)).await {
        Check::Allowed(ticket) => assert!(ticket.passed(&app.state.store, now, &success).await.unwrap()),
        other => panic!("{other:?}"),
    }
}

/// An account erased while its owner signs in, over and over, from several tasks. On
/// PostgreSQL a successful sign-in settles its throttle counters and writes its history row
/// in one statement, which takes the account's row before the counters, as the erasure does
/// (the other order deadlocked with it). Every attempt either lands before the erasure or
/// finds the account gone; no history of the erased account remains.
#[tokio::test]
async fn erasing_an_account_while_its_owner_signs_in_leaves_no_error_and_no_history() {
    use sluis::login::throttle::{self, Check, Subject};
    use sluis::store::{Erasure, ErasureOutcome};
    let app = app_with(|_| {}).await;
    let ada = app.user(ADA).await;
    let now = app.state.now();
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..8 {
        let (store, user) = (app.state.store.clone(), ada.id.clone());
        tasks.spawn(async move {
            let ip = format!("127.0.1.{worker}");
            let success = password_success(&user, &ip, now);
            let mut outcomes = Vec::new();
            for _ in 0..120 {
                let outcome = match throttle::check_and_note(&store, &UNLIMITED, Subject::User(&user), Some(&ip), now).await {
                    Ok(Check::Allowed(ticket)) => ticket.succeeded(&store, now, &success).await.map_err(|e| e.to_string()),
                    Ok(refused) => Err(format!("refused: {refused:?}")),
                    Err(e) => Err(e.to_string()),
                };
                outcomes.push(outcome);
            }
            outcomes
        });
    }
    // Let the sign-ins get going, then erase the account in their midst.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let keys = throttle::account_keys(&ada.id, ADA);
    let erased = app.state.store.erase_user(&Erasure { user: &ada.id, email: ADA, pseudonym: "pseudonym", throttle_keys: &keys, now }).await;
    assert!(matches!(erased, Ok(ErasureOutcome::Erased { .. })), "{erased:?}");
    let outcomes: Vec<_> = tasks.join_all().await.into_iter().flatten().collect();
    let errors: Vec<_> = outcomes.iter().filter_map(|o| o.as_ref().err()).collect();
    assert!(errors.is_empty(), "{} of {} attempts failed, e.g. {:?}", errors.len(), outcomes.len(), errors.first());
    let history = LoginEventFilter { user_id: Some(ada.id.clone()), ..Default::default() };
    assert!(app.state.store.login_events(&history, None, 10).await.unwrap().is_empty(), "history of the erased account remains");
}

#[tokio::test]
async fn one_settlement_forgets_the_account_withdraws_from_the_address_and_leaves_locks_alone() {
    use sluis::store::Settlement::{Forget, Withdraw};
    let app = app_with(|_| {}).await;
    let (store, now) = (&app.state.store, app.state.now());
    let (account, address) = ("user:settle-test", "ip:127.0.0.9");
    let failures = |states: Vec<sluis::store::ThrottleState>| states.iter().map(|s| s.failures).collect::<Vec<_>>();

    // Three attempts counted on both counters, then a sign-in that succeeded: the account's
    // failures are forgotten, the address only loses that one attempt.
    for expected in 1..=3 {
        assert_eq!(failures(store.throttle_note(&[account, address], now, 900).await.unwrap()), [expected, expected]);
    }
    store.throttle_settle(&[(account, Forget), (address, Withdraw)], now).await.unwrap();
    assert_eq!(failures(store.throttle_note(&[account, address], now, 900).await.unwrap()), [1, 3], "states come back in the order asked");

    // A withdrawal never counts below zero.
    let fresh = "ip:127.0.0.10";
    store.throttle_note(&[fresh], now, 900).await.unwrap();
    store.throttle_settle(&[(fresh, Withdraw)], now).await.unwrap();
    store.throttle_settle(&[(fresh, Withdraw)], now).await.unwrap();
    assert_eq!(failures(store.throttle_note(&[fresh], now, 900).await.unwrap()), [1]);

    // A lock set meanwhile (by another attempt's failure) outlives a success's settlement.
    store.throttle_lock(account, now + 60, now).await.unwrap();
    store.throttle_settle(&[(account, Forget)], now).await.unwrap();
    let state = store.throttle_note(&[account], now, 900).await.unwrap()[0];
    assert_eq!(state.locked_until, now + 60);
}
