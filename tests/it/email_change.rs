//! Changing one's email address (issue 4) through HTTP, with a real SMTP server receiving
//! the mail (aiosmtpd, see `mail_support`): the link to the new address, the notice to the
//! old one, the same answer for an address another account has, and every way a link can
//! be refused; the recent-sign-in guard, the rate limit, and a Sluis without mail.

use serde_json::Value;
use sluis::config::Config;

use crate::mail_support::{ReceivedMail, SmtpReceiver};
use crate::support::*;

const ADA: &str = "ada@example.com";
const BOB: &str = "bob@example.com";
const NORA: &str = "nora@example.com";
const FROM: &str = "Sluis <no-reply@sluis.test>";

async fn with_mail(receiver: &SmtpReceiver) -> TestApp {
    let url = receiver.url();
    TestApp::start_with(move |c: &mut Config| {
        c.mail.smtp_url = Some(url);
        c.mail.from = Some(FROM.into());
        // Sessions outlive a link (the session layer dates them by the real clock, the
        // store checks them against the test's), so the tests can move past a link's life.
        c.session_ttl = 7 * 24 * 3600;
    })
    .await
}

async fn signed_in(app: &TestApp, email: &str) -> Browser {
    let browser = app.browser();
    let html = browser.get("/login").await.text().await.unwrap();
    let response = browser.submit(&html, &[("email", email), ("password", PASSWORD)]).await;
    let to = location(&response);
    assert_eq!(to.as_deref(), Some("/account"), "sign-in of {email}: {}", response.text().await.unwrap());
    browser
}

async fn html(browser: &Browser, path: &str) -> (u16, String) {
    let response = browser.get(path).await;
    (response.status().as_u16(), response.text().await.unwrap())
}

/// Asks for `new_email` on the page, as a person would; returns the page shown after.
async fn request_change(browser: &Browser, new_email: &str) -> (u16, String) {
    let (status, page) = html(browser, "/account/email").await;
    assert_eq!(status, 200, "{page}");
    let response = browser.submit(&page, &[("new_email", new_email)]).await;
    match location(&response) {
        Some(next) => html(browser, &next).await,
        None => (response.status().as_u16(), response.text().await.unwrap()),
    }
}

/// The confirmation link in a mail, as a path on Sluis.
fn link(app: &TestApp, mail: &ReceivedMail) -> String {
    let line = mail.body.lines().find(|l| l.contains("/account/email/confirm?token=")).unwrap_or_else(|| panic!("no link in {mail:?}"));
    let url = line.trim();
    assert!(url.starts_with(&app.base), "{url}");
    url[app.base.len()..].to_string()
}

/// Opens the link and presses the button; returns the answer.
async fn confirm(browser: &Browser, path: &str) -> reqwest::Response {
    let (status, page) = html(browser, path).await;
    assert_eq!(status, 200, "{page}");
    browser.submit(&page, &[]).await
}

/// This session's CSRF token, from the account page's sign-out form.
async fn csrf_of(browser: &Browser) -> String {
    form(&html(browser, "/account").await.1).unwrap().1.into_iter().find(|(n, _)| n == "csrf_token").unwrap().1
}

/// POSTs the confirmation of `token`, as the page's button would.
async fn post_confirm(browser: &Browser, token: &str) -> reqwest::Response {
    let csrf = csrf_of(browser).await;
    browser.http.post(format!("{}/account/email/confirm", browser.base)).form(&[("csrf_token", csrf.as_str()), ("token", token)]).send().await.unwrap()
}

fn token_of(path: &str) -> &str {
    path.split("token=").nth(1).unwrap()
}

async fn email_of(app: &TestApp, id: &sluis::model::UserId) -> (String, bool) {
    let user = app.state.store.user(id).await.unwrap().unwrap();
    (user.email, user.email_verified)
}

#[tokio::test]
async fn the_address_changes_through_the_mailed_link_and_apps_see_it_verified() {
    let smtp = SmtpReceiver::start().await;
    let app = with_mail(&smtp).await;
    let ada = app.user(ADA).await;
    let (shop, secret) = app.client().await;
    app.code_for(&shop, ADA, "openid email").await;
    let browser = signed_in(&app, ADA).await;

    let (_, account) = html(&browser, "/account").await;
    assert!(account.contains("href=\"/account/email\""), "{account}");
    let (status, page) = request_change(&browser, NORA).await;
    assert_eq!(status, 200);
    assert!(page.contains("Check your inbox at nora@example.com"), "{page}");

    let to_new = smtp.wait_for(NORA, 1).await;
    assert_eq!(to_new.len(), 1);
    let mail = &to_new[0];
    assert!(mail.subject.starts_with("Confirm your new email address"), "{mail:?}");
    assert_eq!(mail.from, FROM);
    assert_eq!(mail.header("Auto-Submitted"), Some("auto-generated"));
    assert!(mail.header("Content-Type").unwrap().starts_with("text/plain"), "{mail:?}");
    let path = link(&app, mail);
    // The old address is told, with a hint of the new one only, and gets no link.
    let notice = &smtp.wait_for(ADA, 1).await[0];
    assert!(notice.body.contains("n***@example.com"), "{notice:?}");
    assert!(!notice.body.contains(NORA) && !notice.body.contains("token="), "{notice:?}");

    // Opening the link changes nothing until the button is pressed.
    let response = browser.get(&path).await;
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert!(response.text().await.unwrap().contains(NORA));
    assert_eq!(email_of(&app, &ada.id).await.0, ADA);
    let response = confirm(&browser, &path).await;
    assert_eq!(location(&response).as_deref(), Some("/account"));
    let (_, account) = html(&browser, "/account").await;
    assert!(account.contains("Your email address is now nora@example.com."), "{account}");
    assert!(account.contains(&format!("<strong id=\"account-email\">{NORA}</strong>")), "{account}");
    assert_eq!(email_of(&app, &ada.id).await, (NORA.to_string(), true));

    // The history says so, with the address it came from.
    let (_, history) = html(&browser, "/account/security/history").await;
    let line = history.lines().find(|l| l.contains("Your email address was changed")).unwrap_or_else(|| panic!("{history}"));
    assert!(history.contains("127.0.0.1"), "{line}");
    assert!(!history.contains(ADA), "the old address is not kept in the history");

    // The new address signs in; the app receives it, verified, in the ID token and userinfo.
    let (code, verifier) = app.code_for(&shop, NORA, "openid email").await;
    let tokens = app.exchange(&shop, &secret, &code, &verifier).await;
    // (Sluis releases scope claims at userinfo only; the ID token names the same user.)
    let claims = jwt_claims(tokens["id_token"].as_str().unwrap());
    assert!(claims.get("email").is_none_or(|e| e == NORA), "{claims}");
    let userinfo: Value = app.http().get(app.url("/userinfo")).bearer_auth(tokens["access_token"].as_str().unwrap()).send().await.unwrap().json().await.unwrap();
    assert_eq!((userinfo["email"].as_str(), userinfo["email_verified"].as_bool()), (Some(NORA), Some(true)), "{userinfo}");
    // The old one no longer does.
    let other = app.browser();
    let login = other.get("/login").await.text().await.unwrap();
    let response = other.submit(&login, &[("email", ADA), ("password", PASSWORD)]).await;
    assert_eq!(response.status(), 200, "the old address is no account any more");

    // The link works once.
    let response = post_confirm(&browser, token_of(&path)).await;
    assert_eq!(response.status(), 400);
    assert!(response.text().await.unwrap().contains("This link was already used"));
    let (status, page) = html(&browser, &path).await;
    assert_eq!(status, 400);
    assert!(page.contains("This link was already used"), "{page}");
}

#[tokio::test]
async fn an_address_another_account_has_gets_the_same_answer_and_its_owner_is_told() {
    let smtp = SmtpReceiver::start().await;
    let app = with_mail(&smtp).await;
    let ada = app.user(ADA).await;
    app.user(BOB).await;
    let browser = signed_in(&app, ADA).await;

    let (status, taken) = request_change(&browser, "Bob@Example.com").await;
    assert_eq!(status, 200);
    app.clock.advance(61);
    let (_, free) = request_change(&browser, NORA).await;
    // The pages differ only in the address typed.
    assert_eq!(taken.replace("Bob@Example.com", "X"), free.replace(NORA, "X"));

    let to_bob = smtp.wait_for(BOB, 1).await;
    assert!(to_bob[0].subject.contains("already has"), "{:?}", to_bob[0]);
    assert!(to_bob[0].body.contains("An account already uses this address"), "{:?}", to_bob[0]);
    assert!(!to_bob[0].body.contains("token="), "no link to the owner of the taken address");
    // Ada's address was told both times, the same way.
    let notices = smtp.wait_for(ADA, 2).await;
    assert!(notices[0].body.contains("B***@Example.com"), "{:?}", notices[0]);
    assert_eq!(notices[0].subject, notices[1].subject);
    assert_eq!(email_of(&app, &ada.id).await.0, ADA);
}

#[tokio::test]
async fn links_are_refused_when_expired_replaced_forged_foreign_or_without_the_form_token() {
    let smtp = SmtpReceiver::start().await;
    let app = with_mail(&smtp).await;
    let ada = app.user(ADA).await;
    app.user(BOB).await;
    let browser = signed_in(&app, ADA).await;

    request_change(&browser, NORA).await;
    let first = link(&app, &smtp.wait_for(NORA, 1).await[0]);

    // Past 24 hours: expired, on the page and on the button.
    app.clock.advance(24 * 3600 + 1);
    let (status, expired) = html(&browser, &first).await;
    assert_eq!(status, 400);
    assert!(expired.contains("This link has expired"), "{expired}");
    let response = post_confirm(&browser, token_of(&first)).await;
    assert_eq!(response.status(), 400);
    assert_eq!(email_of(&app, &ada.id).await.0, ADA);

    // A new request (after signing in again: the change needs a recent sign-in) replaces
    // the old one: its link no longer works, expired or not.
    let browser = signed_in(&app, ADA).await;
    request_change(&browser, NORA).await;
    let second = link(&app, &smtp.wait_for(NORA, 2).await[1]);
    let (status, replaced) = html(&browser, &first).await;
    assert_eq!(status, 400);
    assert!(replaced.contains("This link is not valid"), "{replaced}");

    // Forged and missing tokens.
    for path in ["/account/email/confirm?token=garbage", "/account/email/confirm?token=", "/account/email/confirm"] {
        let (status, page) = html(&browser, path).await;
        assert_eq!(status, 400, "{path}");
        assert!(page.contains("This link is not valid"), "{path}: {page}");
    }
    let long = format!("/account/email/confirm?token={}", "a".repeat(5000));
    assert_eq!(html(&browser, &long).await.0, 400);

    // Bob has the link (say, forwarded): it is not his change.
    let bob = signed_in(&app, BOB).await;
    let (status, foreign) = html(&bob, &second).await;
    assert_eq!(status, 403);
    assert!(foreign.contains("This link belongs to another account"), "{foreign}");
    assert!(!foreign.contains(NORA), "nothing about Ada's change shows");
    let token = token_of(&second);
    assert_eq!(post_confirm(&bob, token).await.status(), 403);

    // Without the form's CSRF token nothing happens, even with the right link.
    let response = browser.http.post(app.url("/account/email/confirm")).form(&[("token", token)]).send().await.unwrap();
    assert_eq!(response.status(), 403);
    let response = browser.http.post(app.url("/account/email/confirm")).form(&[("token", token), ("csrf_token", "forged")]).send().await.unwrap();
    assert_eq!(response.status(), 403);
    assert_eq!(email_of(&app, &ada.id).await.0, ADA);
    assert_eq!(email_of(&app, &app.state.store.user_credentials(BOB).await.unwrap().unwrap().0.id).await.0, BOB);

    // The real thing still works, once.
    assert_eq!(location(&confirm(&browser, &second).await).as_deref(), Some("/account"));
    assert_eq!(email_of(&app, &ada.id).await.0, NORA);
    assert_eq!(post_confirm(&browser, token).await.status(), 400);
}

#[tokio::test]
async fn an_address_taken_before_the_link_is_opened_is_refused_readably() {
    let smtp = SmtpReceiver::start().await;
    let app = with_mail(&smtp).await;
    let ada = app.user(ADA).await;
    let browser = signed_in(&app, ADA).await;
    request_change(&browser, NORA).await;
    let path = link(&app, &smtp.wait_for(NORA, 1).await[0]);
    // Meanwhile the operator creates an account with that address.
    app.user("Nora@example.com").await;
    let response = confirm(&browser, &path).await;
    assert_eq!(response.status(), 409);
    assert!(response.text().await.unwrap().contains("Another account now uses this email address"));
    assert_eq!(email_of(&app, &ada.id).await.0, ADA);
}

#[tokio::test]
async fn a_link_opened_signed_out_asks_to_sign_in_and_comes_back() {
    let smtp = SmtpReceiver::start().await;
    let app = with_mail(&smtp).await;
    let ada = app.user(ADA).await;
    request_change(&signed_in(&app, ADA).await, NORA).await;
    let path = link(&app, &smtp.wait_for(NORA, 1).await[0]);

    // Another browser (the phone the mail was read on).
    let phone = app.browser();
    let response = phone.get(&path).await;
    assert_eq!(location(&response).as_deref(), Some("/login"));
    let login = phone.get("/login").await.text().await.unwrap();
    let response = phone.submit(&login, &[("email", ADA), ("password", PASSWORD)]).await;
    assert_eq!(location(&response).as_deref(), Some(path.as_str()));
    assert_eq!(location(&confirm(&phone, &path).await).as_deref(), Some("/account"));
    assert_eq!(email_of(&app, &ada.id).await, (NORA.to_string(), true));
    // Only once: the next sign-in goes to the account page as usual.
    let response = phone.submit(&phone.get("/login").await.text().await.unwrap(), &[("email", NORA), ("password", PASSWORD)]).await;
    assert_eq!(location(&response).as_deref(), Some("/account"));
}

#[tokio::test]
async fn the_change_needs_a_recent_sign_in() {
    let smtp = SmtpReceiver::start().await;
    let app = with_mail(&smtp).await;
    app.user(ADA).await;
    let browser = signed_in(&app, ADA).await;
    let (_, page) = html(&browser, "/account/email").await;
    app.clock.advance(i64::from(Config::default().reauth_max_age) + 1);

    let response = browser.get("/account/email").await;
    assert_eq!(location(&response).as_deref(), Some("/login/reauth?next=%2Faccount%2Femail"));
    let response = browser.submit(&page, &[("new_email", NORA)]).await;
    assert_eq!(location(&response).as_deref(), Some("/login/reauth?next=%2Faccount%2Femail"));
    assert!(smtp.messages().is_empty(), "nothing was sent");

    // Signed out altogether: the sign-in page.
    let response = app.browser().get("/account/email").await;
    assert_eq!(location(&response).as_deref(), Some("/login"));
}

#[tokio::test]
async fn one_request_a_minute_and_bad_addresses_are_refused_readably() {
    let smtp = SmtpReceiver::start().await;
    let app = with_mail(&smtp).await;
    app.user(ADA).await;
    let browser = signed_in(&app, ADA).await;

    for (typed, message) in [
        ("", "Enter one email address"),
        ("nora", "Enter one email address"),
        ("Nora <nora@example.com>", "Enter one email address"),
        ("nora@example.com\r\nBcc: eve@example.com", "Enter one email address"),
        ("ADA@example.com", "That is already your email address."),
    ] {
        let (status, page) = request_change(&browser, typed).await;
        assert_eq!(status, 200, "{typed:?}");
        assert!(page.contains(message), "{typed:?}: {page}");
    }
    let long = format!("{}@example.com", "a".repeat(250));
    assert!(request_change(&browser, &long).await.1.contains("Enter one email address"));
    assert!(smtp.messages().is_empty());

    request_change(&browser, NORA).await;
    let (status, page) = request_change(&browser, "nora2@example.com").await;
    assert_eq!(status, 200);
    assert!(page.contains("less than a minute ago"), "{page}");
    app.clock.advance(59);
    assert!(request_change(&browser, "nora2@example.com").await.1.contains("less than a minute ago"));
    app.clock.advance(1);
    assert!(request_change(&browser, "nora2@example.com").await.1.contains("Check your inbox"));
    smtp.wait_for(ADA, 2).await;
    assert_eq!(smtp.messages().len(), 4, "two requests, two mails each");
}

#[tokio::test]
async fn a_relay_that_does_not_answer_gives_a_readable_message_and_nothing_pending() {
    let port = free_port();
    let app = TestApp::start_with(move |c: &mut Config| {
        c.mail.smtp_url = Some(format!("smtp://127.0.0.1:{port}"));
        c.mail.from = Some(FROM.into());
    })
    .await;
    app.user(ADA).await;
    let browser = signed_in(&app, ADA).await;
    for _ in 0..2 {
        let (status, page) = request_change(&browser, NORA).await;
        assert_eq!(status, 200);
        assert!(page.contains("could not be sent just now"), "{page}");
    }
}

#[tokio::test]
async fn without_mail_set_up_the_page_says_so_and_refuses() {
    let app = TestApp::start().await;
    let ada = app.user(ADA).await;
    let browser = signed_in(&app, ADA).await;
    let (status, page) = html(&browser, "/account/email").await;
    assert_eq!(status, 200);
    assert!(page.contains("needs outgoing mail, which the operator of this service has not set up"), "{page}");
    assert!(!page.contains("name=\"new_email\""), "no form to fill in vain");

    let csrf = csrf_of(&browser).await;
    let response = browser.http.post(app.url("/account/email")).form(&[("csrf_token", csrf.as_str()), ("new_email", NORA)]).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.text().await.unwrap().contains("needs outgoing mail"));
    assert_eq!(email_of(&app, &ada.id).await.0, ADA);
    // And without the form token, refused before anything else.
    let response = browser.http.post(app.url("/account/email")).form(&[("new_email", NORA)]).send().await.unwrap();
    assert_eq!(response.status(), 403);
}
