//! RP-Initiated Logout 1.0: signing out at the provider, with and without an ID token hint.

use serde_json::Value;
use url::Url;

use crate::support::*;

const EMAIL: &str = "ada@example.com";

/// A browser signed in (and consented) for a new client, with the tokens it got.
struct Session {
    browser: Browser,
    client: sluis::model::Client,
    secret: String,
    tokens: Value,
}

impl Session {
    fn id_token(&self) -> &str {
        self.tokens["id_token"].as_str().unwrap()
    }
}

async fn session(app: &TestApp, email: &str) -> Session {
    let (client, secret) = app.client().await;
    session_for(app, client, secret, email).await
}

async fn session_for(app: &TestApp, client: sluis::model::Client, secret: String, email: &str) -> Session {
    let browser = app.browser();
    let (verifier, challenge) = pkce();
    let callback = browser.sign_in_and_consent(&app.authorize_url(&client, "openid email", &challenge, &[]), email, PASSWORD).await;
    let code = query_param(&callback, "code").unwrap();
    let tokens = app.exchange(&client, &secret, &code, &verifier).await;
    Session { browser, client, secret, tokens }
}

fn logout_url(app: &TestApp, pairs: &[(&str, &str)]) -> String {
    let mut url = Url::parse(&app.url("/logout")).unwrap();
    url.query_pairs_mut().extend_pairs(pairs);
    url.to_string()
}

/// Whether the browser still has a session: an authorization request goes straight
/// back to the client instead of to the login page.
async fn still_signed_in(app: &TestApp, s: &Session) -> bool {
    let (_, challenge) = pkce();
    let response = s.browser.get(&app.authorize_url(&s.client, "openid email", &challenge, &[])).await;
    assert_eq!(response.status(), 303);
    let location = location(&response).unwrap();
    if location.starts_with("/login?") {
        return false;
    }
    assert!(location.starts_with(REDIRECT_URI), "{location}");
    true
}

async fn refresh_status(app: &TestApp, s: &Session) -> u16 {
    let refresh = s.tokens["refresh_token"].as_str().unwrap();
    app.token(&s.client, Some(&s.secret), &[("grant_type", "refresh_token"), ("refresh_token", refresh)]).await.status().as_u16()
}

async fn assert_page(response: reqwest::Response, status: u16) -> String {
    assert_eq!(response.status(), status);
    assert!(location(&response).is_none(), "must not redirect: {:?}", location(&response));
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    response.text().await.unwrap()
}

#[tokio::test]
async fn logout_with_hint_redirects_ends_the_session_and_revokes_its_tokens() {
    let app = TestApp::start().await;
    app.user(EMAIL).await;
    let s = session(&app, EMAIL).await;
    assert!(still_signed_in(&app, &s).await);
    let url = logout_url(&app, &[("id_token_hint", s.id_token()), ("post_logout_redirect_uri", POST_LOGOUT_URI), ("state", "bye-state")]);
    let response = s.browser.get(&url).await;
    assert_eq!(response.status(), 303);
    let target = Url::parse(&location(&response).unwrap()).unwrap();
    assert!(target.as_str().starts_with(POST_LOGOUT_URI), "{target}");
    assert_eq!(query_param(&target, "state").as_deref(), Some("bye-state"));

    assert!(!still_signed_in(&app, &s).await, "the session survived logout");
    assert_eq!(refresh_status(&app, &s).await, 400, "refresh token of the session still works");
    let access = s.tokens["access_token"].as_str().unwrap();
    assert_eq!(app.http().get(app.url("/userinfo")).bearer_auth(access).send().await.unwrap().status(), 401);
}

#[tokio::test]
async fn logout_leaves_other_sessions_alone() {
    let app = TestApp::start().await;
    app.user(EMAIL).await;
    let (client, secret) = app.client().await;
    let leaving = session_for(&app, client.clone(), secret.clone(), EMAIL).await;
    let staying = session_for(&app, client, secret, EMAIL).await;
    let url = logout_url(&app, &[("id_token_hint", leaving.id_token()), ("post_logout_redirect_uri", POST_LOGOUT_URI)]);
    assert_eq!(leaving.browser.get(&url).await.status(), 303);
    assert!(still_signed_in(&app, &staying).await);
    assert_eq!(refresh_status(&app, &staying).await, 200);
}

#[tokio::test]
async fn an_expired_id_token_hint_is_still_accepted() {
    let app = TestApp::start().await;
    app.user(EMAIL).await;
    let s = session(&app, EMAIL).await;
    // RP-Initiated Logout §2: the hint may have expired; what matters is that we issued it.
    app.clock.advance(i64::from(app.state.config.id_token_ttl) + 60);
    let url = logout_url(&app, &[("id_token_hint", s.id_token()), ("post_logout_redirect_uri", POST_LOGOUT_URI)]);
    let response = s.browser.get(&url).await;
    assert_eq!(response.status(), 303);
    assert!(location(&response).unwrap().starts_with(POST_LOGOUT_URI));
}

#[tokio::test]
async fn unregistered_post_logout_redirect_uri_is_refused_without_redirect() {
    let app = TestApp::start().await;
    app.user(EMAIL).await;
    let s = session(&app, EMAIL).await;
    for bad in ["https://evil.example/bye", "http://127.0.0.1:9/bye/", "http://127.0.0.1:9/byex", REDIRECT_URI] {
        let url = logout_url(&app, &[("id_token_hint", s.id_token()), ("post_logout_redirect_uri", bad), ("state", "x")]);
        assert_page(s.browser.get(&url).await, 400).await;
        let url = logout_url(&app, &[("client_id", s.client.id.as_str()), ("post_logout_redirect_uri", bad)]);
        assert_page(s.browser.get(&url).await, 400).await;
    }
    assert!(still_signed_in(&app, &s).await, "a refused logout request signed the user out");
}

#[tokio::test]
async fn post_logout_redirect_uri_needs_a_hint_or_client_id() {
    let app = TestApp::start().await;
    app.user(EMAIL).await;
    let s = session(&app, EMAIL).await;
    let url = logout_url(&app, &[("post_logout_redirect_uri", POST_LOGOUT_URI)]);
    assert_page(s.browser.get(&url).await, 400).await;
    // The same for someone not signed in.
    assert_page(app.browser().get(&url).await, 400).await;
}

#[tokio::test]
async fn forged_or_mismatched_id_token_hint_is_refused() {
    let app = TestApp::start().await;
    app.user(EMAIL).await;
    let s = session(&app, EMAIL).await;
    let parts: Vec<&str> = s.id_token().split('.').collect();
    let mut claims = jwt_claims(s.id_token());
    claims["aud"] = "another-client".into();
    use base64::Engine;
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
    let forged = format!("{}.{payload}.{}", parts[0], parts[2]);
    for hint in [forged.as_str(), "not-a-jwt", "a.b.c"] {
        let url = logout_url(&app, &[("id_token_hint", hint), ("post_logout_redirect_uri", POST_LOGOUT_URI)]);
        assert_page(s.browser.get(&url).await, 400).await;
    }
    // A genuine hint, but client_id names another client.
    let (other, _) = app.client().await;
    let url = logout_url(&app, &[("id_token_hint", s.id_token()), ("client_id", other.id.as_str()), ("post_logout_redirect_uri", POST_LOGOUT_URI)]);
    assert_page(s.browser.get(&url).await, 400).await;
    assert!(still_signed_in(&app, &s).await);
}

#[tokio::test]
async fn without_a_hint_a_signed_in_user_confirms_with_a_csrf_protected_form() {
    let app = TestApp::start().await;
    app.user(EMAIL).await;
    let s = session(&app, EMAIL).await;
    let url = logout_url(&app, &[("client_id", s.client.id.as_str()), ("post_logout_redirect_uri", POST_LOGOUT_URI), ("state", "s1")]);
    let html = assert_page(s.browser.get(&url).await, 200).await;
    // A stray link alone does not sign anyone out.
    assert!(still_signed_in(&app, &s).await);
    let (action, fields) = form(&html).expect("a confirmation form");
    assert_eq!(action, "/logout");
    assert!(html.contains("method=\"post\""));
    let token = fields.iter().find(|(n, _)| n == "csrf_token").map(|(_, v)| v.clone()).expect("csrf_token field");
    assert!(token.len() >= 32, "{token}");
    assert!(html.contains(&s.client.name), "the page should name the application");

    let confirmed = s.browser.submit(&html, &[("confirm", "yes")]).await;
    assert_eq!(confirmed.status(), 303);
    let target = Url::parse(&location(&confirmed).unwrap()).unwrap();
    assert!(target.as_str().starts_with(POST_LOGOUT_URI), "{target}");
    assert_eq!(query_param(&target, "state").as_deref(), Some("s1"));
    assert!(!still_signed_in(&app, &s).await);
    assert_eq!(refresh_status(&app, &s).await, 400);
}

#[tokio::test]
async fn confirmation_without_csrf_token_is_forbidden() {
    let app = TestApp::start().await;
    app.user(EMAIL).await;
    let s = session(&app, EMAIL).await;
    // Make the session hold a CSRF token, so the refusal is about the missing one.
    let html = assert_page(s.browser.get(&app.url("/logout")).await, 200).await;
    assert!(form(&html).is_some());
    for forged in [vec![("confirm", "yes")], vec![("confirm", "yes"), ("csrf_token", "guess")]] {
        let response = s.browser.http.post(app.url("/logout")).form(&forged).send().await.unwrap();
        assert_page(response, 403).await;
    }
    assert!(still_signed_in(&app, &s).await, "a forged logout signed the user out");
}

#[tokio::test]
async fn hint_for_another_user_asks_for_confirmation() {
    let app = TestApp::start().await;
    app.user(EMAIL).await;
    app.user("grace@example.com").await;
    let (client, secret) = app.client().await;
    let ada = session_for(&app, client.clone(), secret.clone(), EMAIL).await;
    let grace = session_for(&app, client, secret, "grace@example.com").await;
    // Grace's ID token sent through Ada's browser: not Ada's session, so Ada is asked.
    let url = logout_url(&app, &[("id_token_hint", grace.id_token()), ("post_logout_redirect_uri", POST_LOGOUT_URI)]);
    let html = assert_page(ada.browser.get(&url).await, 200).await;
    assert!(html.contains("name=\"csrf_token\""));
    assert!(still_signed_in(&app, &ada).await);
}

#[tokio::test]
async fn logout_when_not_signed_in_just_redirects() {
    let app = TestApp::start().await;
    app.user(EMAIL).await;
    let s = session(&app, EMAIL).await;
    let stranger = app.browser();
    let url = logout_url(&app, &[("id_token_hint", s.id_token()), ("post_logout_redirect_uri", POST_LOGOUT_URI), ("state", "z")]);
    let response = stranger.get(&url).await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response).unwrap(), format!("{POST_LOGOUT_URI}?state=z"));
    // Someone else's browser cannot end Ada's session.
    assert!(still_signed_in(&app, &s).await);
    let html = assert_page(stranger.get("/logout").await, 200).await;
    assert!(html.contains("signed out"), "{html}");
}

#[tokio::test]
async fn malformed_logout_requests_are_pages_not_server_errors() {
    let app = TestApp::start().await;
    let http = app.http();
    for query in ["state=%FF", "state=a&state=b", "client_id=unknown&post_logout_redirect_uri=https%3A%2F%2Fevil.example%2F"] {
        let response = http.get(app.url(&format!("/logout?{query}"))).send().await.unwrap();
        assert_page(response, 400).await;
    }
    let giant = format!("/logout?id_token_hint={}", "a".repeat(9000));
    assert_page(http.get(app.url(&giant)).send().await.unwrap(), 400).await;
}
