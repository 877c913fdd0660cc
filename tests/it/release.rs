//! The release rule end to end, in process (DESIGN §4, issue 3): what a client receives
//! depends on its status, on the admin's verification of each sensitive scope, on the user's
//! consent and on the client-user link; the user API answers only for linked users; a
//! suspended client is cut off at once; subjects are pairwise; releases and admin actions
//! are logged.

use serde_json::{Value, json};
use sluis::admin::{self, Actor};
use sluis::clock::{Clock, Timestamp};
use sluis::model::{Client, ClientStatus};

use crate::support::*;

const EMAIL: &str = "ada@example.com";
const OTHER_EMAIL: &str = "grace@example.com";

/// The one body the user API gives for every user it must not reveal.
fn not_found_body() -> Value {
    json!({"error": "not_found", "error_description": "no such user at this client"})
}

fn access(tokens: &Value) -> &str {
    tokens["access_token"].as_str().unwrap()
}

/// Signs `email` in to `client` in a fresh browser (login and consent) and exchanges the code.
async fn sign_in(app: &TestApp, client: &Client, secret: &str, email: &str, scope: &str) -> Value {
    let (code, verifier) = app.code_for(client, email, scope).await;
    app.exchange(client, secret, &code, &verifier).await
}

async fn userinfo(app: &TestApp, token: &str) -> reqwest::Response {
    app.http().get(app.url("/userinfo")).bearer_auth(token).send().await.unwrap()
}

async fn userinfo_claims(app: &TestApp, token: &str) -> Value {
    let response = userinfo(app, token).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// A token the client obtains for itself with client_credentials.
async fn client_token(app: &TestApp, client: &Client, secret: &str) -> String {
    let response = app.token(client, Some(secret), &[("grant_type", "client_credentials")]).await;
    assert_eq!(response.status(), 200);
    let tokens: Value = response.json().await.unwrap();
    access(&tokens).to_string()
}

async fn user_api(app: &TestApp, token: Option<&str>, sub: &str) -> reqwest::Response {
    let mut request = app.http().get(app.url(&format!("/api/users/{sub}")));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

/// The user API's 404, identical whatever the reason.
async fn assert_not_found(response: reqwest::Response, why: &str) {
    assert_eq!(response.status(), 404, "{why}");
    assert_eq!(response.headers()["cache-control"], "no-store", "{why}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, not_found_body(), "{why}");
}

/// RFC 6750 §3.1: status, the error in the challenge and in the body.
async fn assert_bearer_error(response: reqwest::Response, status: u16, error: &str) {
    assert_eq!(response.status(), status, "expected {error}");
    let challenge = response.headers().get("www-authenticate").expect("WWW-Authenticate").to_str().unwrap().to_string();
    assert!(challenge.starts_with("Bearer realm=\""), "{challenge}");
    assert!(challenge.contains(&format!("error=\"{error}\"")), "{challenge}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], error);
}

async fn assert_oauth_error(response: reqwest::Response, status: u16, error: &str) {
    assert_eq!(response.status(), status, "expected {error}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], error, "{body}");
}

/// The claims of a JSON object, without `sub`.
fn claim_names(claims: &Value) -> Vec<&str> {
    claims.as_object().unwrap().keys().map(String::as_str).filter(|k| *k != "sub").collect()
}

async fn unverified_client(app: &TestApp) -> (Client, String) {
    let (client, secret) = app.client_with(|spec| spec.verified = false).await;
    assert_eq!(client.status, ClientStatus::Unverified);
    (client, secret.unwrap())
}

fn admin_actor() -> Actor {
    Actor { name: "user:admin-1".into(), ip: Some("192.0.2.7".into()) }
}

#[tokio::test]
async fn unverified_client_gets_only_openid_until_an_admin_verifies_email() {
    let app = TestApp::start().await;
    let user = app.user(EMAIL).await;
    let (client, secret) = unverified_client(&app).await;

    // Rules 1–2: email is sensitive and not approved, so only openid is granted, and the
    // token response says so (RFC 6749 §3.3).
    let browser = app.browser();
    let (verifier, challenge) = pkce();
    let callback = browser.sign_in_and_consent(&app.authorize_url(&client, "openid email", &challenge, &[]), EMAIL, PASSWORD).await;
    let code = query_param(&callback, "code").expect("a code: the request is granted, narrowed");
    let tokens = app.exchange(&client, &secret, &code, &verifier).await;
    assert_eq!(tokens["scope"], "openid", "{tokens}");
    let id_claims = jwt_claims(tokens["id_token"].as_str().unwrap());
    assert!(id_claims.get("email").is_none(), "email in the ID token: {id_claims}");
    let claims = userinfo_claims(&app, access(&tokens)).await;
    assert!(claims.get("email").is_none() && claims.get("email_verified").is_none(), "email released: {claims}");
    assert_eq!(claims["sub"], id_claims["sub"]);
    assert!(claim_names(&claims).is_empty(), "{claims}");

    // The same request again in the same browser: the granted scope (openid) is already
    // consented, so no consent page, and still no email.
    let (_, challenge) = pkce();
    let again = browser.get(&app.authorize_url(&client, "openid email", &challenge, &[])).await;
    let loc = location(&again).expect("a redirect");
    assert!(loc.starts_with(REDIRECT_URI) && loc.contains("code="), "expected a code without consent: {loc}");

    // An admin approves email and verifies the client.
    let verified = admin::verify_client(&app.state.store, client.id.as_str(), &["email".to_string()], &Actor::cli(), app.clock.now())
        .await
        .unwrap();
    assert_eq!(verified.status, ClientStatus::Verified);
    assert!(verified.approved_scopes.contains("email"));

    // The old token was granted openid only: still no email.
    let claims = userinfo_claims(&app, access(&tokens)).await;
    assert!(claims.get("email").is_none(), "a token granted before verification releases email: {claims}");

    // A new sign-in asks for consent again, because the granted scope grew.
    let (verifier, challenge) = pkce();
    let url = app.authorize_url(&client, "openid email", &challenge, &[]);
    let asked = browser.get(&url).await;
    let loc = location(&asked).expect("a redirect");
    assert!(loc.starts_with("/consent?"), "expected the consent page, got {loc}");
    let callback = browser.sign_in_and_consent(&loc, EMAIL, PASSWORD).await;
    let code = query_param(&callback, "code").expect("code");
    let tokens = app.exchange(&client, &secret, &code, &verifier).await;
    assert_eq!(tokens["scope"], "email openid", "{tokens}");
    let claims = userinfo_claims(&app, access(&tokens)).await;
    assert_eq!(claims["email"], EMAIL, "{claims}");
    assert_eq!(claims["email_verified"], user.email_verified, "{claims}");
    assert_eq!(claims["sub"], id_claims["sub"], "the same sub before and after verification");
}

#[tokio::test]
async fn a_rejected_scope_is_not_released_even_on_existing_tokens() {
    let app = TestApp::start().await;
    app.user(EMAIL).await;
    let (client, secret) = app.client().await;
    let before = sign_in(&app, &client, &secret, EMAIL, "openid email").await;
    assert_eq!(before["scope"], "email openid");
    assert_eq!(userinfo_claims(&app, access(&before)).await["email"], EMAIL);
    let api_token = client_token(&app, &client, &secret).await;
    let sub = jwt_claims(before["id_token"].as_str().unwrap())["sub"].as_str().unwrap().to_string();

    admin::reject_scope(&app.state.store, client.id.as_str(), "email", "no purpose given", &admin_actor(), app.clock.now()).await.unwrap();
    let stored = app.state.store.client(client.id.as_str()).await.unwrap().unwrap();
    assert_eq!(stored.status, ClientStatus::Verified, "rejecting a scope leaves the client verified");
    assert!(!stored.approved_scopes.contains("email"));

    // The rule is applied at release time: the token granted before the rejection no
    // longer releases email, at userinfo or at the user API.
    let claims = userinfo_claims(&app, access(&before)).await;
    assert!(claims.get("email").is_none(), "email released after rejection: {claims}");
    let response = user_api(&app, Some(&api_token), &sub).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, json!({"sub": sub}), "user API after rejection");

    // A new sign-in is granted openid only.
    let after = sign_in(&app, &client, &secret, EMAIL, "openid email").await;
    assert_eq!(after["scope"], "openid", "{after}");
    let claims = userinfo_claims(&app, access(&after)).await;
    assert!(claims.get("email").is_none(), "{claims}");
}

#[tokio::test]
async fn user_api_answers_only_for_users_who_signed_in_to_the_client() {
    let app = TestApp::start().await;
    let user = app.user(EMAIL).await;
    app.user(OTHER_EMAIL).await;
    let (shop, shop_secret) = app.client().await;
    let (forum, forum_secret) = app.client().await;
    let shop_token = client_token(&app, &shop, &shop_secret).await;
    let forum_token = client_token(&app, &forum, &forum_secret).await;
    let sub = app.state.subject(&shop, &user.id);

    // Rule 4: before the first sign-in the user does not exist for this client, and looks
    // exactly like a user that does not exist at all.
    assert_not_found(user_api(&app, Some(&shop_token), &sub).await, "before the first sign-in").await;
    assert_not_found(user_api(&app, Some(&shop_token), "no-such-subject").await, "a nonexistent sub").await;
    assert_not_found(user_api(&app, Some(&shop_token), user.id.as_str()).await, "the internal user id").await;

    let tokens = sign_in(&app, &shop, &shop_secret, EMAIL, "openid email").await;
    assert_eq!(jwt_claims(tokens["id_token"].as_str().unwrap())["sub"], sub.as_str());
    let response = user_api(&app, Some(&shop_token), &sub).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, json!({"sub": sub, "email": EMAIL, "email_verified": user.email_verified}), "exactly the released claims");

    // Another client knows the same user by another sub, and neither can use the other's.
    let forum_tokens = sign_in(&app, &forum, &forum_secret, EMAIL, "openid profile").await;
    let forum_sub = jwt_claims(forum_tokens["id_token"].as_str().unwrap())["sub"].as_str().unwrap().to_string();
    assert_ne!(forum_sub, sub);
    assert_not_found(user_api(&app, Some(&shop_token), &forum_sub).await, "the shop asking for the forum's sub").await;
    assert_not_found(user_api(&app, Some(&forum_token), &sub).await, "the forum asking for the shop's sub").await;
    let body: Value = user_api(&app, Some(&forum_token), &forum_sub).await.json().await.unwrap();
    assert_eq!(body, json!({"sub": forum_sub, "name": "Ada Lovelace", "updated_at": user.updated_at}), "the forum's own claims");

    // The user withdraws the shop: 404, and its tokens for the user stop working at once.
    assert!(app.state.store.withdraw_link(&user.id, &shop.id, app.clock.now()).await.unwrap());
    assert_not_found(user_api(&app, Some(&shop_token), &sub).await, "after withdrawal").await;
    let refresh = tokens["refresh_token"].as_str().expect("a refresh token");
    let response = app.token(&shop, Some(&shop_secret), &[("grant_type", "refresh_token"), ("refresh_token", refresh)]).await;
    assert_oauth_error(response, 400, "invalid_grant").await;
    assert_bearer_error(userinfo(&app, access(&tokens)).await, 401, "invalid_token").await;
    // The forum is not affected.
    assert_eq!(userinfo(&app, access(&forum_tokens)).await.status(), 200);
    assert_eq!(user_api(&app, Some(&forum_token), &forum_sub).await.status(), 200);

    // Signing in again asks for consent again (it was withdrawn) and re-creates the link,
    // with the same sub.
    let browser = app.browser();
    let (verifier, challenge) = pkce();
    let callback = browser.sign_in_and_consent(&app.authorize_url(&shop, "openid email", &challenge, &[]), EMAIL, PASSWORD).await;
    assert!(app.state.store.consent(&user.id, &shop.id).await.unwrap().is_some(), "consent given again");
    let code = query_param(&callback, "code").unwrap();
    let again = app.exchange(&shop, &shop_secret, &code, &verifier).await;
    assert_eq!(jwt_claims(again["id_token"].as_str().unwrap())["sub"], sub.as_str());
    assert_eq!(user_api(&app, Some(&shop_token), &sub).await.status(), 200);
}

#[tokio::test]
async fn after_withdrawal_consent_is_asked_again_before_any_code() {
    let app = TestApp::start().await;
    let user = app.user(EMAIL).await;
    let (client, secret) = app.client().await;
    let browser = app.browser();
    let (verifier, challenge) = pkce();
    let callback = browser.sign_in_and_consent(&app.authorize_url(&client, "openid email", &challenge, &[]), EMAIL, PASSWORD).await;
    let code = query_param(&callback, "code").unwrap();
    app.exchange(&client, &secret, &code, &verifier).await;

    app.state.store.withdraw_link(&user.id, &client.id, app.clock.now()).await.unwrap();
    // Same browser, still signed in: the consent page, not a code.
    let (_, challenge) = pkce();
    let response = browser.get(&app.authorize_url(&client, "openid email", &challenge, &[])).await;
    let loc = location(&response).expect("a redirect");
    assert!(loc.starts_with("/consent?"), "after withdrawal consent is asked again, got {loc}");
    // And with prompt=none the client learns consent is required.
    let response = browser.get(&app.authorize_url(&client, "openid email", &challenge, &[("prompt", "none")])).await;
    let loc = location(&response).expect("a redirect");
    assert!(loc.starts_with(REDIRECT_URI) && loc.contains("error=consent_required"), "{loc}");
}

#[tokio::test]
async fn user_api_takes_only_a_client_credentials_token() {
    let app = TestApp::start().await;
    app.user(EMAIL).await;
    let (client, secret) = app.client().await;
    let tokens = sign_in(&app, &client, &secret, EMAIL, "openid email").await;
    let sub = jwt_claims(tokens["id_token"].as_str().unwrap())["sub"].as_str().unwrap().to_string();

    // A user's token (from the code flow) is not the client acting for itself.
    assert_bearer_error(user_api(&app, Some(access(&tokens)), &sub).await, 403, "insufficient_scope").await;

    // No token: 401 with a bare challenge (RFC 6750 §3.1).
    let response = user_api(&app, None, &sub).await;
    assert_eq!(response.status(), 401);
    let challenge = response.headers()["www-authenticate"].to_str().unwrap().to_string();
    assert!(challenge.starts_with("Bearer realm=\"") && !challenge.contains("error="), "{challenge}");

    // A token that is not ours, or an ID token.
    assert_bearer_error(user_api(&app, Some("garbage"), &sub).await, 401, "invalid_token").await;
    assert_bearer_error(user_api(&app, Some(tokens["id_token"].as_str().unwrap()), &sub).await, 401, "invalid_token").await;

    // The right token works.
    let api_token = client_token(&app, &client, &secret).await;
    assert_eq!(user_api(&app, Some(&api_token), &sub).await.status(), 200);
}

#[tokio::test]
async fn a_suspended_client_is_cut_off_at_once() {
    let app = TestApp::start().await;
    let user = app.user(EMAIL).await;
    let (client, secret) = app.client().await;
    let tokens = sign_in(&app, &client, &secret, EMAIL, "openid email").await;
    let api_token = client_token(&app, &client, &secret).await;
    let sub = app.state.subject(&client, &user.id);
    assert_eq!(userinfo(&app, access(&tokens)).await.status(), 200);
    assert_eq!(user_api(&app, Some(&api_token), &sub).await.status(), 200);
    let events_before = app.state.store.data_access_of_user(&user.id, 100).await.unwrap().len();

    admin::suspend_client(&app.state.store, client.id.as_str(), &Actor::cli(), app.clock.now()).await.unwrap();

    // Its tokens stop working at once.
    assert_bearer_error(userinfo(&app, access(&tokens)).await, 401, "invalid_token").await;
    assert_bearer_error(user_api(&app, Some(&api_token), &sub).await, 401, "invalid_token").await;
    // Its credentials too, for every grant and at introspection.
    let response = app.token(&client, Some(&secret), &[("grant_type", "client_credentials")]).await;
    assert_oauth_error(response, 401, "invalid_client").await;
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let response = app.token(&client, Some(&secret), &[("grant_type", "refresh_token"), ("refresh_token", refresh)]).await;
    assert_oauth_error(response, 401, "invalid_client").await;
    let response = app.http().post(app.url("/introspect")).basic_auth(client.id.as_str(), Some(&secret)).form(&[("token", access(&tokens))]).send().await.unwrap();
    assert_oauth_error(response, 401, "invalid_client").await;

    // It cannot sign anyone in: the error goes back to its (trusted) redirect URI, with
    // state and iss (RFC 9207).
    let (_, challenge) = pkce();
    let response = app.browser().get(&app.authorize_url(&client, "openid email", &challenge, &[])).await;
    let loc = location(&response).expect("a redirect to the client");
    let url = url::Url::parse(&loc).unwrap();
    assert!(loc.starts_with(REDIRECT_URI), "{loc}");
    assert_eq!(query_param(&url, "error").as_deref(), Some("unauthorized_client"), "{loc}");
    assert_eq!(query_param(&url, "state").as_deref(), Some("st"), "{loc}");
    assert_eq!(query_param(&url, "iss").as_deref(), Some(app.base.as_str()), "{loc}");
    assert!(query_param(&url, "code").is_none());

    // Nothing was released after the suspension.
    let events_after = app.state.store.data_access_of_user(&user.id, 100).await.unwrap().len();
    assert_eq!(events_after, events_before, "a refused request recorded a release");
}

#[tokio::test]
async fn subjects_are_pairwise_and_stable() {
    let app = TestApp::start().await;
    let user = app.user(EMAIL).await;
    let (shop, shop_secret) = app.client().await;
    let (forum, forum_secret) = app.client().await;
    let mut subs = Vec::new();
    for (client, secret) in [(&shop, &shop_secret), (&forum, &forum_secret)] {
        let mut seen = Vec::new();
        for _ in 0..2 {
            // A fresh browser each time: a new login, a new session.
            let tokens = sign_in(&app, client, secret, EMAIL, "openid").await;
            let id_sub = jwt_claims(tokens["id_token"].as_str().unwrap())["sub"].as_str().unwrap().to_string();
            let info_sub = userinfo_claims(&app, access(&tokens)).await["sub"].as_str().unwrap().to_string();
            assert_eq!(id_sub, info_sub, "ID token and userinfo agree");
            assert_eq!(jwt_claims(access(&tokens))["sub"], id_sub.as_str(), "access token agrees");
            seen.push(id_sub);
        }
        assert_eq!(seen[0], seen[1], "one client sees one stable sub across sign-ins");
        subs.push(seen[0].clone());
    }
    assert_ne!(subs[0], subs[1], "two clients see different subs for one user");
    for sub in &subs {
        assert_ne!(sub, user.id.as_str(), "the internal user id is not revealed");
        assert!(!sub.contains(user.id.as_str()));
    }
}

#[tokio::test]
async fn every_release_is_recorded_as_a_data_access_event() {
    let app = TestApp::start().await;
    let user = app.user(EMAIL).await;
    let other = app.user(OTHER_EMAIL).await;
    let (client, secret) = app.client().await;
    assert!(app.state.store.data_access_of_user(&user.id, 100).await.unwrap().is_empty());

    let tokens = sign_in(&app, &client, &secret, EMAIL, "openid email profile").await;
    let api_token = client_token(&app, &client, &secret).await;
    let sub = app.state.subject(&client, &user.id);
    // Signing in is not a release to a resource endpoint.
    assert!(app.state.store.data_access_of_user(&user.id, 100).await.unwrap().is_empty());

    app.clock.advance(5);
    let via_userinfo = userinfo_claims(&app, access(&tokens)).await;
    let response = app.http().post(app.url("/userinfo")).bearer_auth(access(&tokens)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let via_api: Value = user_api(&app, Some(&api_token), &sub).await.json().await.unwrap();
    // Refusals release nothing and record nothing.
    assert_not_found(user_api(&app, Some(&api_token), "nobody").await, "unknown sub").await;
    assert_eq!(user_api(&app, Some(access(&tokens)), &sub).await.status(), 403);

    let events = app.state.store.data_access_of_user(&user.id, 100).await.unwrap();
    let mut endpoints: Vec<&str> = events.iter().map(|e| e.endpoint.as_str()).collect();
    endpoints.sort_unstable();
    // The two userinfo calls released the same claims in the same minute: one line.
    assert_eq!(endpoints, ["user_api", "userinfo"], "{events:?}");
    for event in &events {
        assert_eq!(event.client_id, client.id);
        assert_eq!(event.user_id, user.id);
        assert_eq!(event.at, app.clock.now());
        let released = if event.endpoint == "userinfo" { &via_userinfo } else { &via_api };
        let mut recorded: Vec<&str> = event.claims.split(' ').filter(|c| !c.is_empty()).collect();
        recorded.sort_unstable();
        let mut expected = claim_names(released);
        expected.sort_unstable();
        assert_eq!(recorded, expected, "the event names exactly the claims released at {}", event.endpoint);
        assert!(recorded.contains(&"email") && recorded.contains(&"name"), "{recorded:?}");
    }
    assert!(app.state.store.data_access_of_user(&other.id, 100).await.unwrap().is_empty(), "another user's log is untouched");

    // The next minute is a new line; so is a release of other claims within the same minute.
    app.clock.advance(60);
    userinfo_claims(&app, access(&tokens)).await;
    let narrow = sign_in(&app, &client, &secret, EMAIL, "openid email").await;
    userinfo_claims(&app, access(&narrow)).await;
    userinfo_claims(&app, access(&narrow)).await;
    let events = app.state.store.data_access_of_user(&user.id, 100).await.unwrap();
    let mut lines: Vec<(Timestamp, &str)> = events.iter().filter(|e| e.endpoint == "userinfo").map(|e| (e.at, e.claims.as_str())).collect();
    lines.sort_unstable();
    assert_eq!(lines.len(), 3, "{events:?}");
    assert_eq!(lines[1].0, lines[2].0, "two lines in the new minute: {lines:?}");
    assert_ne!(lines[1].1, lines[2].1, "one per set of claims: {lines:?}");
}

#[tokio::test]
async fn every_admin_action_lands_in_the_audit_log() {
    let app = TestApp::start().await;
    let store = &app.state.store;
    let actor = admin_actor();
    let (vouched, _) = app.client().await;
    let (client, _) = unverified_client(&app).await;
    admin::verify_client(store, client.id.as_str(), &["email".to_string()], &actor, app.clock.now()).await.unwrap();
    admin::reject_scope(store, client.id.as_str(), "profile", "a shop needs no profile", &actor, app.clock.now()).await.unwrap();
    admin::suspend_client(store, client.id.as_str(), &actor, app.clock.now()).await.unwrap();

    // Refused actions change nothing and log nothing.
    let scopes = ["phone".to_string()];
    assert!(admin::verify_client(store, client.id.as_str(), &scopes, &actor, app.clock.now()).await.is_err(), "a scope not enabled");
    assert!(admin::verify_client(store, "no-such-client", &[], &actor, app.clock.now()).await.is_err(), "an unknown client");
    assert!(admin::reject_scope(store, client.id.as_str(), "phone", "n", &actor, app.clock.now()).await.is_err());
    assert!(admin::suspend_client(store, "no-such-client", &actor, app.clock.now()).await.is_err());
    assert_eq!(store.client(client.id.as_str()).await.unwrap().unwrap().status, ClientStatus::Suspended);

    let entries = store.audit_entries(100).await.unwrap();
    let find = |action: &str, target: &str| {
        entries
            .iter()
            .find(|e| e.action == action && e.target == target)
            .unwrap_or_else(|| panic!("no {action} for {target} in {entries:?}"))
    };
    let created = find("client.create", vouched.id.as_str());
    assert_eq!(created.actor, "cli");
    let details: Value = serde_json::from_str(&created.details).unwrap();
    assert_eq!(details["status"], "verified");
    let created = find("client.create", client.id.as_str());
    let details: Value = serde_json::from_str(&created.details).unwrap();
    assert_eq!(details["status"], "unverified");

    let verified = find("client.verify", client.id.as_str());
    let rejected = find("client.scope.reject", client.id.as_str());
    let suspended = find("client.suspend", client.id.as_str());
    for entry in [verified, rejected, suspended] {
        assert_eq!(entry.actor, actor.name, "{entry:?}");
        assert_eq!(entry.ip, actor.ip, "{entry:?}");
        assert_eq!(entry.at, app.clock.now());
    }
    let details: Value = serde_json::from_str(&verified.details).unwrap();
    assert_eq!(details["approved"], json!(["email"]));
    let details: Value = serde_json::from_str(&rejected.details).unwrap();
    assert_eq!((details["scope"].as_str(), details["note"].as_str()), (Some("profile"), Some("a shop needs no profile")));
    let details: Value = serde_json::from_str(&suspended.details).unwrap();
    assert_eq!(details["previous"], "verified");
    assert_eq!(entries.len(), 5, "exactly the five successful actions: {entries:?}");
}

#[tokio::test]
async fn a_code_issued_before_withdrawal_is_not_redeemed_after_it() {
    let app = TestApp::start().await;
    let user = app.user(EMAIL).await;
    let (client, secret) = app.client().await;
    let (code, verifier) = app.code_for(&client, EMAIL, "openid email").await;

    // The user withdraws the app while the code is on its way to the client.
    app.state.store.withdraw_link(&user.id, &client.id, app.clock.now()).await.unwrap();
    let response = app
        .token(&client, Some(&secret), &[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", REDIRECT_URI), ("code_verifier", &verifier)])
        .await;
    assert_oauth_error(response, 400, "invalid_grant").await;
}

#[tokio::test]
async fn tokens_issued_after_a_rejection_do_not_claim_the_rejected_scope() {
    let app = TestApp::start().await;
    app.user(EMAIL).await;
    let (client, secret) = app.client().await;
    let tokens = sign_in(&app, &client, &secret, EMAIL, "openid email").await;
    assert_eq!(tokens["scope"], "email openid");
    let (code, verifier) = app.code_for(&client, EMAIL, "openid email").await;

    admin::reject_scope(&app.state.store, client.id.as_str(), "email", "not needed", &admin_actor(), app.clock.now()).await.unwrap();

    // RFC 6749 §3.3: the token response says what is granted, and email no longer is,
    // whether the tokens come from a code issued before the rejection or from a refresh.
    let from_code = app.exchange(&client, &secret, &code, &verifier).await;
    assert_eq!(from_code["scope"], "openid", "code exchanged after the rejection: {from_code}");
    assert_eq!(jwt_claims(access(&from_code))["scope"], "openid");
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let response = app.token(&client, Some(&secret), &[("grant_type", "refresh_token"), ("refresh_token", refresh)]).await;
    assert_eq!(response.status(), 200);
    let refreshed: Value = response.json().await.unwrap();
    assert_eq!(refreshed["scope"], "openid", "refresh after the rejection: {refreshed}");
    assert_eq!(jwt_claims(access(&refreshed))["scope"], "openid");
    assert!(userinfo_claims(&app, access(&refreshed)).await.get("email").is_none());
    // Asking for it explicitly on refresh is not a way around the rejection either.
    let rotated = refreshed["refresh_token"].as_str().unwrap();
    let response = app
        .token(&client, Some(&secret), &[("grant_type", "refresh_token"), ("refresh_token", rotated), ("scope", "openid email")])
        .await;
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    assert!(status == 400 || body["scope"] == "openid", "{status} {body}");
}
