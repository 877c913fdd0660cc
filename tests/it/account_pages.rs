//! The self-service pages `/account/apps` (connected apps, withdrawal) and
//! `/account/activity` (data-access events), through HTTP as a browser would use them.

use serde_json::Value;
use sluis::clock::Clock as _;
use sluis::model::Client;
use sluis::web::templates::utc_minute;

use crate::support::*;

const ADA: &str = "ada@example.com";
const BOB: &str = "bob@example.com";

/// Signs `email` in through `client` in `browser` (consenting if asked) and exchanges the code.
async fn sign_in_through(app: &TestApp, browser: &Browser, client: &Client, secret: &str, email: &str, scope: &str) -> Value {
    let (verifier, challenge) = pkce();
    let callback = browser.sign_in_and_consent(&app.authorize_url(client, scope, &challenge, &[]), email, PASSWORD).await;
    let code = query_param(&callback, "code").expect("code in callback");
    app.exchange(client, secret, &code, &verifier).await
}

/// Follows redirects within Sluis from `start`; returns the first URL outside it (the
/// client's callback), or the page where the redirects stop.
async fn follow(browser: &Browser, start: &str) -> Result<url::Url, (u16, String)> {
    let mut response = browser.get(start).await;
    for _ in 0..10 {
        match location(&response) {
            Some(next) if !next.starts_with(&browser.base) && !next.starts_with('/') => return Ok(url::Url::parse(&next).unwrap()),
            Some(next) => response = browser.get(&next).await,
            None => return Err((response.status().as_u16(), response.text().await.unwrap())),
        }
    }
    panic!("too many redirects from {start}");
}

async fn page(browser: &Browser, path: &str) -> String {
    let response = browser.get(path).await;
    assert_eq!(response.status(), 200, "{path}");
    let csp = response.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
    response.text().await.unwrap()
}

/// The page's text without tags, whitespace collapsed, as a person reads it.
fn text(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The `<li class="app…" data-client=…>` block of `client` on the apps page, if listed.
fn app_entry<'a>(html: &'a str, client: &Client) -> Option<&'a str> {
    let marker = format!("data-client=\"{}\"", client.id);
    let at = html.find(&marker)?;
    let start = html[..at].rfind("<li")?;
    let rest = &html[start..];
    // A withdrawn app is one line; an active one spans lines up to its indented `</li>`.
    let first_line = &rest[..rest.find('\n').unwrap_or(rest.len())];
    let end = if first_line.contains("</li>") { first_line.len() } else { rest.find("\n  </li>")? };
    Some(&rest[..end])
}

async fn userinfo(app: &TestApp, tokens: &Value) -> reqwest::Response {
    app.http().get(app.url("/userinfo")).bearer_auth(tokens["access_token"].as_str().unwrap()).send().await.unwrap()
}

#[tokio::test]
async fn pages_need_a_signed_in_user() {
    let app = TestApp::start().await;
    let (client, _) = app.client().await;
    let browser = app.browser();
    for path in ["/account", "/account/apps", "/account/activity"] {
        let response = browser.get(path).await;
        assert_eq!(response.status(), 303, "{path}");
        assert_eq!(location(&response).as_deref(), Some("/login"), "{path}");
    }
    let response = browser.http.post(app.url("/account/apps/withdraw")).form(&[("client_id", client.id.as_str())]).send().await.unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response).as_deref(), Some("/login"));
}

#[tokio::test]
async fn apps_lists_the_client_with_what_the_release_rule_allows() {
    let app = TestApp::start().await;
    app.user(ADA).await;
    let (shop, shop_secret) = app.client().await;
    // An unverified client asked for email: the rule lets it receive only who you are.
    let (unverified, unverified_secret) = app
        .client_with(|s| {
            s.name = "New Startup".into();
            s.verified = false;
        })
        .await;
    let browser = app.browser();
    let first = app.clock.now();
    sign_in_through(&app, &browser, &shop, &shop_secret, ADA, "openid email").await;
    app.clock.advance(3600);
    sign_in_through(&app, &browser, &unverified, unverified_secret.as_deref().unwrap(), ADA, "openid email").await;
    // (Less than the session's life: the session layer dates sessions by the real clock.)
    app.clock.advance(7200);
    sign_in_through(&app, &browser, &shop, &shop_secret, ADA, "openid email").await;

    let html = page(&browser, "/account/apps").await;
    assert!(html.contains("href=\"/account\"") && html.contains("href=\"/account/activity\""), "links to the other pages");
    let entry = app_entry(&html, &shop).expect("the shop is listed");
    let words = text(entry);
    assert!(words.contains("Example Shop"), "{words}");
    assert!(words.contains("Your email address"), "{words}");
    assert!(words.contains("Know that it is you"), "{words}");
    assert!(!words.contains("Your name and basic profile"), "profile was never asked for: {words}");
    assert!(words.contains(&format!("First sign-in {}", utc_minute(first))), "{words}");
    assert!(words.contains(&format!("last sign-in {}", utc_minute(app.clock.now()))), "{words}");
    assert!(entry.contains("action=\"/account/apps/withdraw\""), "a Withdraw form: {entry}");
    assert!(entry.contains(&format!("name=\"client_id\" value=\"{}\"", shop.id)), "{entry}");
    assert!(entry.contains("name=\"csrf_token\""), "{entry}");

    let words = text(app_entry(&html, &unverified).expect("the unverified client is listed"));
    assert!(words.contains("Know that it is you"), "{words}");
    assert!(!words.contains("Your email address"), "no admin approved email for it: {words}");
    // Most recent sign-in first.
    assert!(html.find("Example Shop").unwrap() < html.find("New Startup").unwrap());

    // The account page links to both pages.
    let account = page(&browser, "/account").await;
    assert!(account.contains("href=\"/account/apps\"") && account.contains("href=\"/account/activity\""), "{account}");
}

#[tokio::test]
async fn withdraw_without_the_csrf_token_is_refused() {
    let app = TestApp::start().await;
    app.user(ADA).await;
    let (client, secret) = app.client().await;
    let browser = app.browser();
    let tokens = sign_in_through(&app, &browser, &client, &secret, ADA, "openid email").await;
    let html = page(&browser, "/account/apps").await;

    let missing = browser.http.post(app.url("/account/apps/withdraw")).form(&[("client_id", client.id.as_str())]).send().await.unwrap();
    assert_eq!(missing.status(), 403);
    let wrong = browser.submit(&html, &[("csrf_token", "not-the-token")]).await;
    assert_eq!(wrong.status(), 403);

    // Nothing was withdrawn.
    assert_eq!(userinfo(&app, &tokens).await.status(), 200);
    let html = page(&browser, "/account/apps").await;
    assert!(app_entry(&html, &client).unwrap().contains("Withdraw"), "still active");
}

#[tokio::test]
async fn withdraw_revokes_the_tokens_and_the_next_sign_in_asks_for_consent() {
    let app = TestApp::start().await;
    app.user(ADA).await;
    let (client, secret) = app.client().await;
    let browser = app.browser();
    let tokens = sign_in_through(&app, &browser, &client, &secret, ADA, "openid email").await;
    let refresh = tokens["refresh_token"].as_str().expect("a refresh token").to_string();
    assert_eq!(userinfo(&app, &tokens).await.status(), 200);
    // Before withdrawal, consent is remembered: authorization goes straight back to the client.
    let (_, challenge) = pkce();
    let callback = follow(&browser, &app.authorize_url(&client, "openid email", &challenge, &[])).await.expect("no consent page");
    assert!(query_param(&callback, "code").is_some());

    let html = page(&browser, "/account/apps").await;
    let withdrawn = browser.submit(&html, &[]).await;
    assert_eq!(withdrawn.status(), 303);
    assert_eq!(location(&withdrawn).as_deref(), Some("/account/apps"));

    // The page confirms it (once) and lists the app as withdrawn, without a Withdraw form.
    let html = page(&browser, "/account/apps").await;
    assert!(text(&html).contains("Example Shop was withdrawn"), "{html}");
    let entry = app_entry(&html, &client).expect("still listed, as withdrawn");
    assert!(entry.contains("class=\"app withdrawn\""), "{entry}");
    assert!(text(entry).contains(&format!("withdrawn on {}", utc_minute(app.clock.now()))), "{entry}");
    assert!(!html.contains("name=\"client_id\""), "no Withdraw form left: {html}");
    assert!(!text(&page(&browser, "/account/apps").await).contains("was withdrawn"), "the confirmation shows once");

    // The refresh token and the access token from before stop working at once.
    let response = app.token(&client, Some(&secret), &[("grant_type", "refresh_token"), ("refresh_token", &refresh)]).await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");
    let response = userinfo(&app, &tokens).await;
    assert_eq!(response.status(), 401);
    assert!(response.headers()["www-authenticate"].to_str().unwrap().contains("invalid_token"));

    // Withdrawing again is harmless and says so.
    let again = browser
        .http
        .post(app.url("/account/apps/withdraw"))
        .form(&[("client_id", client.id.as_str()), ("csrf_token", sluis_csrf(&page(&browser, "/account").await).as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 303);
    assert!(text(&page(&browser, "/account/apps").await).contains("Example Shop was already withdrawn"));

    // A new authorization for that client shows the consent page again.
    let (verifier, challenge) = pkce();
    let authorize = app.authorize_url(&client, "openid email", &challenge, &[]);
    let (status, consent) = follow(&browser, &authorize).await.expect_err("the consent page, not the client");
    assert_eq!(status, 200);
    assert!(consent.contains("name=\"decision\"") && consent.contains("data-scope=\"email\""), "{consent}");
    // Allowing it connects the app again.
    let callback = browser.sign_in_and_consent(&authorize, ADA, PASSWORD).await;
    let code = query_param(&callback, "code").expect("code");
    let tokens = app.exchange(&client, &secret, &code, &verifier).await;
    assert_eq!(userinfo(&app, &tokens).await.status(), 200);
    let html = page(&browser, "/account/apps").await;
    assert!(!app_entry(&html, &client).unwrap().contains("withdrawn"), "active again: {html}");
}

/// The CSRF token in a page's first form.
fn sluis_csrf(html: &str) -> String {
    let (_, fields) = form(html).expect("a form");
    fields.into_iter().find(|(n, _)| n == "csrf_token").expect("csrf_token field").1
}

#[tokio::test]
async fn activity_lists_releases_in_plain_words_newest_first() {
    let app = TestApp::start().await;
    app.user(ADA).await;
    let (shop, shop_secret) = app.client().await;
    let (game, game_secret) = app.client_with(|s| s.name = "Puzzle Game".into()).await;
    let browser = app.browser();

    let html = page(&browser_signed_in(&app, ADA).await, "/account/activity").await;
    assert!(text(&html).contains("No app has received data about you yet"), "{html}");

    let shop_tokens = sign_in_through(&app, &browser, &shop, &shop_secret, ADA, "openid email").await;
    let game_tokens = sign_in_through(&app, &browser, &game, game_secret.as_deref().unwrap(), ADA, "openid").await;
    assert_eq!(userinfo(&app, &shop_tokens).await.status(), 200);
    let shop_at = app.clock.now();
    app.clock.advance(120);
    assert_eq!(userinfo(&app, &game_tokens).await.status(), 200);
    let game_at = app.clock.now();

    let html = page(&browser, "/account/activity").await;
    assert!(html.contains("href=\"/account\"") && html.contains("href=\"/account/apps\""), "links to the other pages");
    let words = text(&html);
    let shop_line = format!("Example Shop read your email address on {} (userinfo)", utc_minute(shop_at));
    let game_line = format!("Puzzle Game checked that it is you on {} (userinfo)", utc_minute(game_at));
    let shop_pos = words.find(&shop_line).unwrap_or_else(|| panic!("{shop_line:?} in {words}"));
    let game_pos = words.find(&game_line).unwrap_or_else(|| panic!("{game_line:?} in {words}"));
    assert!(game_pos < shop_pos, "newest first: {words}");
    assert!(html.contains("datetime=\""), "machine-readable times");
}

/// A browser signed in to Sluis directly, without any client.
async fn browser_signed_in(app: &TestApp, email: &str) -> Browser {
    let browser = app.browser();
    let html = browser.get("/login").await.text().await.unwrap();
    let response = browser.submit(&html, &[("email", email), ("password", PASSWORD)]).await;
    assert_eq!(location(&response).as_deref(), Some("/account"));
    browser
}

#[tokio::test]
async fn each_user_sees_only_their_own_apps_and_events() {
    let app = TestApp::start().await;
    app.user(ADA).await;
    app.user(BOB).await;
    let (shop, shop_secret) = app.client().await;
    let (game, game_secret) = app.client_with(|s| s.name = "Puzzle Game".into()).await;
    let ada = app.browser();
    let bob = app.browser();
    let ada_tokens = sign_in_through(&app, &ada, &shop, &shop_secret, ADA, "openid email").await;
    let bob_tokens = sign_in_through(&app, &bob, &game, game_secret.as_deref().unwrap(), BOB, "openid email").await;
    assert_eq!(userinfo(&app, &ada_tokens).await.status(), 200);
    assert_eq!(userinfo(&app, &bob_tokens).await.status(), 200);

    let ada_apps = page(&ada, "/account/apps").await;
    assert!(app_entry(&ada_apps, &shop).is_some());
    assert!(app_entry(&ada_apps, &game).is_none() && !ada_apps.contains("Puzzle Game"), "{ada_apps}");
    let bob_apps = page(&bob, "/account/apps").await;
    assert!(app_entry(&bob_apps, &game).is_some());
    assert!(app_entry(&bob_apps, &shop).is_none() && !bob_apps.contains("Example Shop"), "{bob_apps}");

    let ada_activity = text(&page(&ada, "/account/activity").await);
    assert!(ada_activity.contains("Example Shop read your email address"), "{ada_activity}");
    assert!(!ada_activity.contains("Puzzle Game"), "{ada_activity}");
    let bob_activity = text(&page(&bob, "/account/activity").await);
    assert!(bob_activity.contains("Puzzle Game read your email address"), "{bob_activity}");
    assert!(!bob_activity.contains("Example Shop"), "{bob_activity}");

    // Ada cannot withdraw Bob's app: her form names a client she is not connected to.
    let response = ada
        .http
        .post(app.url("/account/apps/withdraw"))
        .form(&[("client_id", game.id.as_str()), ("csrf_token", sluis_csrf(&ada_apps).as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    assert!(text(&page(&ada, "/account/apps").await).contains("That app is not connected to your account"));
    assert_eq!(userinfo(&app, &bob_tokens).await.status(), 200, "Bob's app still works");
    assert!(app_entry(&page(&bob, "/account/apps").await, &game).unwrap().contains("Withdraw"));
}

#[tokio::test]
async fn a_suspended_app_is_listed_as_receiving_nothing() {
    let app = TestApp::start().await;
    app.user(ADA).await;
    let (client, secret) = app.client().await;
    let browser = app.browser();
    sign_in_through(&app, &browser, &client, &secret, ADA, "openid email").await;
    sluis::admin::suspend_client(&app.state.store, client.id.as_str(), &sluis::admin::Actor::cli(), app.clock.now()).await.unwrap();
    let html = page(&browser, "/account/apps").await;
    let words = text(app_entry(&html, &client).expect("still listed"));
    assert!(words.contains("Nothing at the moment"), "{words}");
    assert!(words.contains("suspended"), "{words}");
    assert!(!words.contains("Your email address"), "{words}");
}
