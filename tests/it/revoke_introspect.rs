//! Token revocation (RFC 7009) and introspection (RFC 7662).

use serde_json::{Value, json};

use crate::support::*;

const EMAIL: &str = "ada@example.com";

struct Issued {
    client: sluis::model::Client,
    secret: String,
    tokens: Value,
}

impl Issued {
    fn access(&self) -> &str {
        self.tokens["access_token"].as_str().unwrap()
    }
    fn refresh(&self) -> &str {
        self.tokens["refresh_token"].as_str().unwrap()
    }
}

/// A new confidential client with tokens for the (existing) user.
async fn issue(app: &TestApp, scope: &str) -> Issued {
    let (client, secret) = app.client().await;
    let (code, verifier) = app.code_for(&client, EMAIL, scope).await;
    let tokens = app.exchange(&client, &secret, &code, &verifier).await;
    Issued { client, secret, tokens }
}

async fn post(app: &TestApp, path: &str, client: &sluis::model::Client, secret: Option<&str>, form: &[(&str, &str)]) -> reqwest::Response {
    let request = app.http().post(app.url(path));
    let request = match secret {
        Some(secret) => request.basic_auth(client.id.as_str(), Some(secret)).form(form),
        None => {
            let mut form = form.to_vec();
            form.push(("client_id", client.id.as_str()));
            request.form(&form)
        }
    };
    request.send().await.unwrap()
}

async fn revoke(app: &TestApp, client: &sluis::model::Client, secret: Option<&str>, token: &str) -> reqwest::Response {
    post(app, "/revoke", client, secret, &[("token", token)]).await
}

async fn introspect(app: &TestApp, client: &sluis::model::Client, secret: &str, token: &str) -> Value {
    let response = post(app, "/introspect", client, Some(secret), &[("token", token)]).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
    response.json().await.unwrap()
}

async fn userinfo_status(app: &TestApp, access_token: &str) -> u16 {
    app.http().get(app.url("/userinfo")).bearer_auth(access_token).send().await.unwrap().status().as_u16()
}

async fn refresh_status(app: &TestApp, issued: &Issued, token: &str) -> u16 {
    app.token(&issued.client, Some(&issued.secret), &[("grant_type", "refresh_token"), ("refresh_token", token)])
        .await
        .status()
        .as_u16()
}

async fn assert_error(response: reqwest::Response, status: u16, error: &str) {
    assert_eq!(response.status(), status, "expected {error}");
    assert_eq!(response.headers()["cache-control"], "no-store");
    if status == 401 {
        assert!(response.headers().get("www-authenticate").is_some(), "401 without a challenge");
    }
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], error, "{body}");
}

#[tokio::test]
async fn revocation_answers_200_for_unknown_tokens() {
    let app = TestApp::start().await;
    let (client, secret) = app.client().await;
    // RFC 7009 §2.2: invalid tokens do not cause an error.
    for token in ["unknown", "a.b.c", "eyJhbGciOiJub25lIn0.e30."] {
        let response = revoke(&app, &client, Some(&secret), token).await;
        assert_eq!(response.status(), 200, "{token}");
    }
    // An unknown token_type_hint is ignored too.
    let response = post(&app, "/revoke", &client, Some(&secret), &[("token", "unknown"), ("token_type_hint", "nonsense")]).await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn revocation_needs_client_authentication_and_a_token() {
    let app = TestApp::start().await;
    let (client, secret) = app.client().await;
    let http = app.http();
    let anonymous = http.post(app.url("/revoke")).form(&[("token", "x")]).send().await.unwrap();
    assert_error(anonymous, 401, "invalid_client").await;
    let wrong = http.post(app.url("/revoke")).basic_auth(client.id.as_str(), Some("wrong")).form(&[("token", "x")]).send().await.unwrap();
    assert_error(wrong, 401, "invalid_client").await;
    let id_only = http.post(app.url("/revoke")).form(&[("token", "x"), ("client_id", client.id.as_str())]).send().await.unwrap();
    assert_error(id_only, 401, "invalid_client").await;
    let missing = post(&app, "/revoke", &client, Some(&secret), &[("token_type_hint", "refresh_token")]).await;
    assert_error(missing, 400, "invalid_request").await;
    let json = http
        .post(app.url("/revoke"))
        .basic_auth(client.id.as_str(), Some(&secret))
        .json(&json!({"token": "x"}))
        .send()
        .await
        .unwrap();
    assert_error(json, 400, "invalid_request").await;
}

#[tokio::test]
async fn revoking_a_refresh_token_ends_the_grant() {
    let app = TestApp::start().await;
    app.user(EMAIL).await;
    let issued = issue(&app, "openid email").await;
    assert_eq!(userinfo_status(&app, issued.access()).await, 200);
    let response = revoke(&app, &issued.client, Some(&issued.secret), issued.refresh()).await;
    assert_eq!(response.status(), 200);
    // RFC 7009 §2.1: revoking a refresh token should also invalidate the access tokens of its grant.
    assert_eq!(refresh_status(&app, &issued, issued.refresh()).await, 400);
    assert_eq!(userinfo_status(&app, issued.access()).await, 401);
    assert_eq!(introspect(&app, &issued.client, &issued.secret, issued.access()).await, json!({"active": false}));
    // Revoking again is still fine.
    assert_eq!(revoke(&app, &issued.client, Some(&issued.secret), issued.refresh()).await.status(), 200);
}

#[tokio::test]
async fn revoking_an_access_token_stops_it_at_userinfo() {
    let app = TestApp::start().await;
    app.user(EMAIL).await;
    let issued = issue(&app, "openid email").await;
    assert_eq!(userinfo_status(&app, issued.access()).await, 200);
    assert_eq!(revoke(&app, &issued.client, Some(&issued.secret), issued.access()).await.status(), 200);
    let response = app.http().get(app.url("/userinfo")).bearer_auth(issued.access()).send().await.unwrap();
    assert_eq!(response.status(), 401);
    let challenge = response.headers()["www-authenticate"].to_str().unwrap();
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    assert_eq!(introspect(&app, &issued.client, &issued.secret, issued.access()).await, json!({"active": false}));
}

#[tokio::test]
async fn another_clients_tokens_are_not_revoked() {
    let app = TestApp::start().await;
    app.user(EMAIL).await;
    let victim = issue(&app, "openid").await;
    let (other, other_secret) = app.client().await;
    assert_eq!(revoke(&app, &other, Some(&other_secret), victim.refresh()).await.status(), 200);
    assert_eq!(revoke(&app, &other, Some(&other_secret), victim.access()).await.status(), 200);
    // RFC 7009 §2.1: the server checks the token was issued to the requesting client.
    assert_eq!(userinfo_status(&app, victim.access()).await, 200);
    assert_eq!(refresh_status(&app, &victim, victim.refresh()).await, 200);
}

#[tokio::test]
async fn public_clients_can_revoke_their_own_tokens() {
    let app = TestApp::start().await;
    app.user(EMAIL).await;
    let client = app.public_client().await;
    let (code, verifier) = app.code_for(&client, EMAIL, "openid").await;
    let response = app
        .token(&client, None, &[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", REDIRECT_URI), ("code_verifier", &verifier)])
        .await;
    let tokens: Value = response.json().await.unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();
    assert_eq!(revoke(&app, &client, None, refresh).await.status(), 200);
    let again = app.token(&client, None, &[("grant_type", "refresh_token"), ("refresh_token", refresh)]).await;
    assert_eq!(again.status(), 400);
    assert_eq!(userinfo_status(&app, tokens["access_token"].as_str().unwrap()).await, 401);
}

#[tokio::test]
async fn introspection_describes_own_access_tokens() {
    let app = TestApp::start().await;
    app.user(EMAIL).await;
    let issued = issue(&app, "openid email").await;
    let answer = introspect(&app, &issued.client, &issued.secret, issued.access()).await;
    assert_eq!(answer["active"], true, "{answer}");
    assert_eq!(answer["scope"], "email openid");
    assert_eq!(answer["client_id"], issued.client.id.as_str());
    let id = jwt_claims(issued.tokens["id_token"].as_str().unwrap());
    assert_eq!(answer["sub"], id["sub"], "introspection must show the client's (pairwise) sub");
    assert_eq!(answer["iss"], app.base.as_str());
    assert_eq!(answer["exp"], jwt_claims(issued.access())["exp"]);
    assert!(answer["exp"].as_i64().unwrap() > 0);
}

#[tokio::test]
async fn introspection_describes_own_refresh_tokens() {
    let app = TestApp::start().await;
    app.user(EMAIL).await;
    let issued = issue(&app, "openid email").await;
    let answer = introspect(&app, &issued.client, &issued.secret, issued.refresh()).await;
    assert_eq!(answer["active"], true, "{answer}");
    assert_eq!(answer["scope"], "email openid");
    assert_eq!(answer["client_id"], issued.client.id.as_str());
    assert_eq!(answer["sub"], jwt_claims(issued.tokens["id_token"].as_str().unwrap())["sub"]);
    assert!(answer["exp"].as_i64().unwrap() > jwt_claims(issued.access())["exp"].as_i64().unwrap());
    // A rotated refresh token is no longer active.
    assert_eq!(refresh_status(&app, &issued, issued.refresh()).await, 200);
    assert_eq!(introspect(&app, &issued.client, &issued.secret, issued.refresh()).await, json!({"active": false}));
}

#[tokio::test]
async fn introspection_of_unknown_revoked_or_foreign_tokens_is_inactive_only() {
    let app = TestApp::start().await;
    app.user(EMAIL).await;
    let mine = issue(&app, "openid").await;
    let theirs = issue(&app, "openid").await;
    let inactive = json!({"active": false});
    // RFC 7662 §2.2: nothing but active=false, so an inactive token reveals nothing.
    for token in ["unknown", "a.b.c", theirs.access(), theirs.refresh(), theirs.tokens["id_token"].as_str().unwrap()] {
        assert_eq!(introspect(&app, &mine.client, &mine.secret, token).await, inactive, "{token}");
    }
    // The foreign tokens were not harmed by being looked at.
    assert_eq!(introspect(&app, &theirs.client, &theirs.secret, theirs.access()).await["active"], true);

    assert_eq!(revoke(&app, &mine.client, Some(&mine.secret), mine.refresh()).await.status(), 200);
    assert_eq!(introspect(&app, &mine.client, &mine.secret, mine.refresh()).await, inactive);
    assert_eq!(introspect(&app, &mine.client, &mine.secret, mine.access()).await, inactive);
}

#[tokio::test]
async fn introspection_of_expired_tokens_is_inactive() {
    let app = TestApp::start().await;
    app.user(EMAIL).await;
    let issued = issue(&app, "openid").await;
    app.clock.advance(i64::from(app.state.config.access_token_ttl) + 1);
    assert_eq!(introspect(&app, &issued.client, &issued.secret, issued.access()).await, json!({"active": false}));
    assert_eq!(introspect(&app, &issued.client, &issued.secret, issued.refresh()).await["active"], true);
    app.clock.advance(i64::from(app.state.config.refresh_token_ttl));
    assert_eq!(introspect(&app, &issued.client, &issued.secret, issued.refresh()).await, json!({"active": false}));
}

#[tokio::test]
async fn introspection_of_client_credentials_tokens() {
    let app = TestApp::start().await;
    let (client, secret) = app.client().await;
    let tokens: Value = app.token(&client, Some(&secret), &[("grant_type", "client_credentials")]).await.json().await.unwrap();
    let answer = introspect(&app, &client, &secret, tokens["access_token"].as_str().unwrap()).await;
    assert_eq!(answer["active"], true, "{answer}");
    assert_eq!(answer["client_id"], client.id.as_str());
    assert_eq!(answer["sub"], client.id.as_str());
}

#[tokio::test]
async fn introspection_refuses_public_and_unauthenticated_clients() {
    let app = TestApp::start().await;
    let (client, secret) = app.client().await;
    let public = app.public_client().await;
    let http = app.http();
    let response = post(&app, "/introspect", &public, None, &[("token", "x")]).await;
    assert_error(response, 401, "invalid_client").await;
    let anonymous = http.post(app.url("/introspect")).form(&[("token", "x")]).send().await.unwrap();
    assert_error(anonymous, 401, "invalid_client").await;
    let wrong = http.post(app.url("/introspect")).basic_auth(client.id.as_str(), Some("wrong")).form(&[("token", "x")]).send().await.unwrap();
    assert_error(wrong, 401, "invalid_client").await;
    let missing = post(&app, "/introspect", &client, Some(&secret), &[("token_type_hint", "access_token")]).await;
    assert_error(missing, 400, "invalid_request").await;
}

#[tokio::test]
async fn revoking_a_client_credentials_token() {
    let app = TestApp::start().await;
    let (client, secret) = app.client().await;
    let tokens: Value = app.token(&client, Some(&secret), &[("grant_type", "client_credentials")]).await.json().await.unwrap();
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(revoke(&app, &client, Some(&secret), access).await.status(), 200);
    assert_eq!(introspect(&app, &client, &secret, access).await, json!({"active": false}));
}
