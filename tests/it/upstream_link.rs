//! Linking upstream identities to accounts (at sign-in after proving the account, and from
//! the Security page), unlinking, and re-authentication of accounts without a password,
//! against the node `oidc-provider` of `upstream.rs`.

use std::sync::Arc;

use reqwest::cookie::{CookieStore, Jar};
use serde_json::json;
use sluis::clock::Clock;
use sluis::config::Registration;
use sluis::model::User;
use sluis::store::NewEmailChange;

use crate::support::*;
use crate::upstream::{End, app, app_with, authorize, chromium_through_google, drive, id_token_of, idp};

/// A password account whose address is verified (through an applied email change).
async fn verified_user(app: &TestApp, email: &str) -> User {
    let user = app.user(email).await;
    let now = app.clock.now();
    let change = NewEmailChange { token_hash: "test-verify", user_id: &user.id, new_email: email, created_at: now, expires_at: now + 60 };
    assert!(app.state.store.put_email_change(&change, now + 60).await.unwrap());
    app.state.store.apply_email_change("test-verify", &user.id, now).await.unwrap();
    let user = app.state.store.user(&user.id).await.unwrap().unwrap();
    assert!(user.email_verified);
    user
}

async fn providers_of(app: &TestApp, user: &User) -> Vec<String> {
    app.state.store.upstream_identities(&user.id).await.unwrap().into_iter().map(|i| format!("{}/{}", i.provider_id, i.subject)).collect()
}

async fn account_events(app: &TestApp, user: &User) -> Vec<(String, Option<String>)> {
    app.state.store.account_events(&user.id, None, 50).await.unwrap().into_iter().map(|e| (e.kind, e.detail)).collect()
}

/// The page a 303 leads to, within Sluis.
async fn follow(browser: &Browser, response: reqwest::Response) -> (u16, String) {
    let location = location(&response).unwrap_or_else(|| panic!("no redirect: {}", response.status()));
    let page = browser.get(&location).await;
    (page.status().as_u16(), page.text().await.unwrap())
}

#[tokio::test]
async fn chromium_links_google_to_a_password_account_after_proving_it_and_both_ways_give_the_same_sub() {
    use crate::browser::Chromium;
    let app = app(Registration::Open).await;
    let (client, secret) = app.client().await;
    let ada = verified_user(&app, "ada@example.com").await;
    let chromium = Chromium::start().await;

    let (url, verifier) = authorize(&app, &client, &[]);
    chromium_through_google(&chromium, &app, &url, "ada").await;
    // Back at Sluis' sign-in page, which offers linking to the account with the address.
    chromium.wait_for_url(&app.url("/login")).await;
    let offer = chromium.find("#link-offer").await.text().await.unwrap();
    assert!(offer.contains("ada@example.com") && offer.contains("To link Google"), "{offer}");
    assert_eq!(chromium.find("input[name=email]").await.prop("value").await.unwrap().as_deref(), Some("ada@example.com"));
    assert!(providers_of(&app, &ada).await.is_empty(), "nothing linked before the proof");
    chromium.find("input[name=password]").await.send_keys(PASSWORD).await.unwrap();
    chromium.find("form[action='/login'] button[type=submit]").await.click().await.unwrap();
    chromium.wait_for_url(&app.url("/consent")).await;
    chromium.find("button[name=decision][value=allow]").await.click().await.unwrap();
    let callback = chromium.wait_for_url(REDIRECT_URI).await;
    let by_password = id_token_of(&app, &client, &secret, &callback, &verifier).await;
    assert_eq!(by_password["amr"], json!(["pwd"]), "{by_password}");
    assert_eq!(providers_of(&app, &ada).await, ["google/ada"]);
    assert!(account_events(&app, &ada).await.contains(&("upstream_linked".into(), Some("google".into()))));

    // The history says so.
    chromium.client().goto(&app.url("/account/security/history")).await.unwrap();
    let text = chromium.find("main").await.text().await.unwrap();
    assert!(text.contains("You linked Google for signing in"), "{text}");
    chromium.close().await;

    // Through Google now, in another browser: the same account, the same pairwise sub.
    let (url, verifier) = authorize(&app, &client, &[]);
    let callback = drive(&app.browser(), &url, "google", "ada", false).await.client();
    let by_google = id_token_of(&app, &client, &secret, &callback, &verifier).await;
    assert_eq!(by_google["amr"], json!(["fed"]));
    assert_eq!(by_google["sub"], by_password["sub"]);
    // And the password still works, to the same sub.
    let (code, verifier) = app.code_for(&client, "ada@example.com", "openid").await;
    let tokens = app.exchange(&client, &secret, &code, &verifier).await;
    assert_eq!(jwt_claims(tokens["id_token"].as_str().unwrap())["sub"], by_password["sub"]);
}

/// Drives an upstream sign-in as `login` to the linking offer; the sign-in page's HTML.
async fn offer(app: &TestApp, browser: &Browser, login: &str) -> String {
    let (status, at, html) = drive(browser, &app.url("/login/upstream/google"), "google", login, false).await.page();
    assert_eq!(status, 200, "{html}");
    assert!(at.ends_with("/login") && html.contains("id=\"link-offer\""), "{at}: {html}");
    html
}

#[tokio::test]
async fn a_wrong_password_another_account_or_an_expired_offer_links_nothing() {
    let app = app(Registration::Open).await;
    let ada = verified_user(&app, "ada@example.com").await;
    let bob = app.user("bob@example.com").await;

    // A wrong password: the sign-in page again, nothing linked.
    let browser = app.browser();
    let html = offer(&app, &browser, "ada").await;
    let response = browser.submit(&html, &[("password", "wrong password")]).await;
    assert_eq!(response.status(), 200);
    let page = response.text().await.unwrap();
    assert!(page.contains("incorrect") && page.contains("id=\"link-offer\""), "{page}");
    assert!(providers_of(&app, &ada).await.is_empty());

    // Signing in to another account drops the offer and links nothing.
    let response = browser.submit(&page, &[("email", "bob@example.com"), ("password", PASSWORD)]).await;
    let (status, account) = follow(&browser, response).await;
    assert_eq!(status, 200);
    assert!(account.contains("You signed in to another account") && account.contains("Google was not linked"), "{account}");
    assert!(providers_of(&app, &ada).await.is_empty() && providers_of(&app, &bob).await.is_empty());
    assert!(!browser.get("/login").await.text().await.unwrap().contains("link-offer"), "the offer is gone");

    // The offer expires.
    let browser = app.browser();
    let html = offer(&app, &browser, "ada").await;
    app.clock.advance(11 * 60);
    let login = browser.get("/login").await.text().await.unwrap();
    assert!(!login.contains("link-offer"), "no longer offered");
    let response = browser.submit(&html, &[("email", "ada@example.com"), ("password", PASSWORD)]).await;
    let (_, account) = follow(&browser, response).await;
    assert!(account.contains("took too long"), "{account}");
    assert!(providers_of(&app, &ada).await.is_empty());

    // "Do not link" drops the offer.
    let browser = app.browser();
    let html = offer(&app, &browser, "ada").await;
    let cancel_at = html.find("action=\"/login/link/cancel\"").expect("cancel form");
    let response = browser.submit(&html[html[..cancel_at].rfind("<form").unwrap()..], &[]).await;
    assert_eq!(location(&response).as_deref(), Some("/login"));
    assert!(!browser.get("/login").await.text().await.unwrap().contains("link-offer"));
    let forged = browser.http.post(app.url("/login/link/cancel")).form(&[("csrf_token", "nope")]).send().await.unwrap();
    assert_eq!(forged.status(), 403);
}

#[tokio::test]
async fn an_unverified_address_on_either_side_offers_no_link() {
    let app = app(Registration::Open).await;
    // Sluis' address unverified, the provider's verified: an explanation only.
    let ada = app.user("ada@example.com").await;
    let (status, _, body) = drive(&app.browser(), &app.url("/login/upstream/google"), "google", "ada", false).await.page();
    assert_eq!(status, 409);
    assert!(body.contains("already exists") && !body.contains("link-offer"), "{body}");
    // The provider's unverified: no more than that nothing was created.
    let (status, _, body) = drive(&app.browser(), &app.url("/login/upstream/google"), "google", "ada-unverified", false).await.page();
    assert_eq!(status, 409);
    assert!(!body.contains("link-offer"), "{body}");
    assert!(providers_of(&app, &ada).await.is_empty());
}

/// The first form on `html` whose action is `/account/security` and that has `marker`.
fn security_form<'a>(html: &'a str, marker: &str) -> &'a str {
    let at = html.find(marker).unwrap_or_else(|| panic!("no {marker}: {html}"));
    &html[html[..at].rfind("<form").unwrap()..]
}

#[tokio::test]
async fn the_security_page_links_and_unlinks_providers_but_never_the_last_way_to_sign_in() {
    let app = app(Registration::Open).await;
    // Alice signs up through Google: no password, one identity.
    let alice_browser = app.browser();
    let (status, at, _) = drive(&alice_browser, &app.url("/login/upstream/google"), "google", "alice", false).await.page();
    assert!(status == 200 && at.ends_with("/account"), "{at}");
    let (alice, _) = app.state.store.user_credentials("alice@example.com").await.unwrap().unwrap();
    let security = alice_browser.get("/account/security").await.text().await.unwrap();
    assert!(security.contains("Your only way to sign in") && !security.contains("value=\"unlink\""), "{security}");
    // A forged unlink is refused with words.
    let (_, fields) = form(security_form(&security, "value=\"link\"")).unwrap();
    let token = fields.iter().find(|(n, _)| n == "csrf_token").unwrap().1.clone();
    let response = alice_browser.http.post(app.url("/account/security")).form(&[("csrf_token", token.as_str()), ("action", "unlink"), ("provider", "google")]).send().await.unwrap();
    let page = response.text().await.unwrap();
    assert!(page.contains("is the only way you sign in"), "{page}");
    assert_eq!(providers_of(&app, &alice).await, ["google/alice"]);

    // Bob, with a password, links Google as carol.
    let bob = app.user("bob@example.com").await;
    let browser = app.signed_in("bob@example.com").await;
    let security = browser.get("/account/security").await.text().await.unwrap();
    assert!(security.contains("No provider is linked") && security.contains("Link Google"), "{security}");
    let response = browser.submit(security_form(&security, "value=\"google\""), &[]).await;
    let to_provider = location(&response).expect("to the provider");
    assert!(to_provider.starts_with(&idp().base), "{to_provider}");
    let (status, at, page) = drive(&browser, &to_provider, "google", "carol", false).await.page();
    assert!(status == 200 && at.ends_with("/account/security"), "{at}");
    assert!(page.contains("Google is linked to your account"), "{page}");
    assert_eq!(providers_of(&app, &bob).await, ["google/carol"]);
    assert!(page.contains("data-provider=\"google\"") && page.contains("value=\"unlink\""), "{page}");

    // Linking Alice's Google identity to Bob: refused, readable.
    let security = browser.get("/account/security").await.text().await.unwrap();
    let response = browser.submit(security_form(&security, "value=\"work\""), &[]).await;
    let to_work = location(&response).unwrap_or_else(|| panic!("{}", security_form(&security, "value=\"work\"")));
    let (status, _, page) = drive(&browser, &to_work, "work", "alice", false).await.page();
    assert!(status == 200, "{page}");
    assert_eq!(providers_of(&app, &bob).await.len(), 2, "work linked as alice: another provider, not linked elsewhere");
    let response = browser.http.post(app.url("/account/security")).form(&[("csrf_token", csrf_of(&page).as_str()), ("action", "link"), ("provider", "google")]).send().await.unwrap();
    let (status, _, page) = drive(&browser, &location(&response).unwrap(), "google", "alice", false).await.page();
    assert_eq!(status, 409, "{page}");
    assert!(page.contains("linked to another account here"), "{page}");

    // Unlink (with a password it is never the last way).
    let security = browser.get("/account/security").await.text().await.unwrap();
    let response = browser.submit(security_form(&security, "value=\"unlink\""), &[]).await;
    let page = response.text().await.unwrap();
    assert!(page.contains("is unlinked"), "{page}");
    assert_eq!(providers_of(&app, &bob).await.len(), 1);
    let events = account_events(&app, &bob).await;
    assert!(events.contains(&("upstream_linked".into(), Some("google".into()))) && events.contains(&("upstream_unlinked".into(), Some("google".into()))), "{events:?}");
    let history = browser.get("/account/security/history").await.text().await.unwrap();
    assert!(history.contains("You unlinked Google"), "{history}");

    // Bad inputs: an unknown provider, a forged token, and no recent sign-in.
    let token = csrf_of(&browser.get("/account/security").await.text().await.unwrap());
    let unknown = browser.http.post(app.url("/account/security")).form(&[("csrf_token", token.as_str()), ("action", "link"), ("provider", "nope")]).send().await.unwrap();
    assert_eq!(unknown.status(), 400);
    let forged = browser.http.post(app.url("/account/security")).form(&[("csrf_token", "forged"), ("action", "unlink"), ("provider", "work")]).send().await.unwrap();
    assert_eq!(forged.status(), 403);
    app.clock.advance(3600);
    let stale = browser.http.post(app.url("/account/security")).form(&[("csrf_token", token.as_str()), ("action", "link"), ("provider", "google")]).send().await.unwrap();
    assert_eq!(location(&stale).as_deref(), Some("/login/reauth?next=%2Faccount%2Fsecurity"));
}

/// A browser with its cookie jar, so a test can drop the provider's session and keep Sluis'.
fn jar_browser(app: &TestApp, jar: Arc<Jar>) -> Browser {
    let http = reqwest::Client::builder().cookie_provider(jar).redirect(reqwest::redirect::Policy::none()).build().unwrap();
    Browser { http, base: app.base.clone() }
}

/// A new jar holding only Sluis' session cookie from `jar` (the provider, on the same host,
/// forgets the browser).
fn sluis_cookies(app: &TestApp, jar: &Jar) -> Arc<Jar> {
    let url = url::Url::parse(&app.base).unwrap();
    let fresh = Arc::new(Jar::default());
    if let Some(cookies) = jar.cookies(&url) {
        for pair in cookies.to_str().unwrap().split("; ").filter(|p| p.starts_with("sluis_session=")) {
            fresh.add_cookie_str(pair, &url);
        }
    }
    fresh
}

fn csrf_of(html: &str) -> String {
    let marker = "name=\"csrf_token\" value=\"";
    let at = html.find(marker).expect("csrf token") + marker.len();
    html[at..at + html[at..].find('"').unwrap()].to_string()
}

#[tokio::test]
async fn an_account_without_a_password_confirms_through_its_provider_with_prompt_login() {
    let app = app_with(Registration::Open, |c| c.reauth_max_age = 60).await;
    let jar = Arc::new(Jar::default());
    let browser = jar_browser(&app, jar.clone());
    drive(&browser, &app.url("/login/upstream/google"), "google", "alice", false).await.page();
    let (alice, _) = app.state.store.user_credentials("alice@example.com").await.unwrap().unwrap();
    app.clock.advance(120);

    // A sensitive action asks to confirm; without a password, through Google.
    let token = csrf_of(&browser.get("/account/security").await.text().await.unwrap());
    let response = browser.http.post(app.url("/account/security")).form(&[("csrf_token", token.as_str()), ("action", "start")]).send().await.unwrap();
    let reauth = location(&response).expect("to re-authenticate");
    let html = browser.get(&reauth).await.text().await.unwrap();
    assert!(html.contains("Continue with Google") && !html.contains("type=\"password\"") && !html.contains("Work account"), "{html}");
    // Only a linked provider.
    let other = browser.http.post(app.url("/login/reauth")).form(&[("csrf_token", csrf_of(&html).as_str()), ("next", "/account/security"), ("provider", "work")]).send().await.unwrap();
    let other = other.text().await.unwrap();
    assert!(other.contains("Choose one of the ways you sign in"), "{other}");

    // Another Google account than the linked one is refused. (A browser without the
    // provider's session: oidc-provider would first ask to sign alice out.)
    let browser = jar_browser(&app, sluis_cookies(&app, &jar));
    let response = browser.submit(&html, &[]).await;
    let (status, _, page) = drive(&browser, &location(&response).unwrap(), "google", "carol", false).await.page();
    assert_eq!(status, 403, "{page}");
    assert!(page.contains("not linked to your account"), "{page}");

    // The linked one: the provider is asked to sign in again, then back to the page.
    let browser = jar_browser(&app, sluis_cookies(&app, &jar));
    let html = browser.get(&reauth).await.text().await.unwrap();
    let response = browser.submit(&html, &[]).await;
    let to_provider = location(&response).unwrap();
    let query = url::Url::parse(&to_provider).unwrap();
    assert_eq!(query_param(&query, "prompt").as_deref(), Some("login"));
    assert_eq!(query_param(&query, "max_age").as_deref(), Some("0"));
    let (status, at, _) = drive(&browser, &to_provider, "google", "alice", false).await.page();
    assert!(status == 200 && at.ends_with("/account/security"), "{at}");
    let token = csrf_of(&browser.get("/account/security").await.text().await.unwrap());
    let response = browser.http.post(app.url("/account/security")).form(&[("csrf_token", token.as_str()), ("action", "start")]).send().await.unwrap();
    assert_eq!(location(&response).as_deref(), Some("/account/security"), "recent now");
    assert!(app.state.store.totp_factor(&alice.id).await.unwrap().is_some(), "the setup started");
    let reasons: Vec<_> = crate::upstream::attempts(&app).await.into_iter().filter(|(m, _, _)| m == "upstream:google").map(|(_, r, reason)| (r, reason)).collect();
    assert!(reasons.contains(&("failure".into(), Some("wrong_account".into()))), "{reasons:?}");
}

#[tokio::test]
async fn a_reauthentication_with_a_second_factor_asks_for_the_code_too() {
    let app = app_with(Registration::Open, |c| c.reauth_max_age = 60).await;
    let browser = app.browser();
    drive(&browser, &app.url("/login/upstream/google"), "google", "carol", false).await.page();
    let (carol, _) = app.state.store.user_credentials("carol@example.com").await.unwrap().unwrap();
    let totp = [9u8; 20];
    let sealed = app.state.secrets.totp_sealer.seal(&totp);
    let now = app.clock.now();
    assert!(app.state.store.put_pending_totp(&carol.id, &sealed, now).await.unwrap());
    assert!(app.state.store.confirm_totp(&carol.id, &sealed, 0, now).await.unwrap());
    app.clock.advance(120);

    let html = browser.get("/login/reauth?next=/account/security").await.text().await.unwrap();
    let response = browser.submit(&html, &[]).await;
    let End::Page { url, body, .. } = drive(&browser, &location(&response).unwrap(), "google", "carol", false).await else { panic!("no page") };
    assert!(url.ends_with("/login/second-factor"), "{url}: {body}");
    let code = totp_rs::Builder::new().with_secret(totp.to_vec()).build().unwrap().generate(u64::try_from(app.clock.now()).unwrap()).to_string();
    let response = browser.submit(&body, &[("code", &code)]).await;
    assert_eq!(location(&response).as_deref(), Some("/account/security"));
    let token = csrf_of(&browser.get("/account/security").await.text().await.unwrap());
    let response = browser.http.post(app.url("/account/security")).form(&[("csrf_token", token.as_str()), ("action", "regenerate")]).send().await.unwrap();
    assert_eq!(response.status(), 200, "recent with the second factor: new codes shown: {}", response.text().await.unwrap());
}

/// An account without a password, signed in through two providers, unlinks both at the
/// same moment (two tabs): one unlink must be refused, or the account could never sign in
/// again. On PostgreSQL each unlink's check saw the other identity still there.
#[tokio::test]
async fn unlinking_both_identities_at_once_keeps_one() {
    for _ in 0..5 {
        let app = TestApp::start().await;
        let (store, now) = (&app.state.store, app.clock.now());
        let new = sluis::store::NewUpstreamUser { provider_id: "google", subject: "g-1", email: "ada@example.com", email_verified: true, name: None };
        let ada = store.create_upstream_user(&new, now).await.unwrap();
        store.link_upstream_identity("github", "gh-1", &ada.id, now).await.unwrap();
        let (google, github) = tokio::join!(store.unlink_upstream_identity("google", &ada.id), store.unlink_upstream_identity("github", &ada.id));
        let unlinked = [google.unwrap(), github.unwrap()];
        assert_eq!(unlinked.iter().filter(|u| **u).count(), 1, "{unlinked:?}");
        assert_eq!(store.upstream_identities(&ada.id).await.unwrap().len(), 1);
    }
}
