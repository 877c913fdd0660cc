//! The UserInfo endpoint (OpenID Connect Core §5.3) as a protected resource (RFC 6750).

use serde_json::Value;

use crate::support::*;

const EMAIL: &str = "ada@example.com";

async fn tokens(app: &TestApp, scope: &str) -> (sluis::model::Client, Value) {
    app.user(EMAIL).await;
    let (client, secret) = app.client().await;
    let (code, verifier) = app.code_for(&client, EMAIL, scope).await;
    let tokens = app.exchange(&client, &secret, &code, &verifier).await;
    (client, tokens)
}

fn access(tokens: &Value) -> &str {
    tokens["access_token"].as_str().unwrap()
}

fn challenge(response: &reqwest::Response) -> String {
    response.headers().get("www-authenticate").expect("WWW-Authenticate").to_str().unwrap().to_string()
}

/// RFC 6750 §3.1: an error answer names the error in the challenge (and the body).
async fn assert_bearer_error(response: reqwest::Response, status: u16, error: &str) {
    assert_eq!(response.status(), status, "expected {error}");
    let challenge = challenge(&response);
    assert!(challenge.starts_with("Bearer realm=\""), "{challenge}");
    assert!(challenge.contains(&format!("error=\"{error}\"")), "{challenge}");
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], error);
}

#[tokio::test]
async fn no_token_is_401_with_a_bare_challenge() {
    let app = TestApp::start().await;
    let http = app.http();
    for response in [
        http.get(app.url("/userinfo")).send().await.unwrap(),
        http.post(app.url("/userinfo")).form(&[("x", "y")]).send().await.unwrap(),
    ] {
        assert_eq!(response.status(), 401);
        let challenge = challenge(&response);
        assert!(challenge.starts_with("Bearer realm=\""), "{challenge}");
        // §3.1: no error code when the request carried no authentication at all.
        assert!(!challenge.contains("error="), "{challenge}");
    }
}

#[tokio::test]
async fn malformed_or_forged_tokens_are_invalid_token() {
    let app = TestApp::start().await;
    let (_, tokens) = tokens(&app, "openid email").await;
    let http = app.http();
    let good = access(&tokens);
    let mut parts: Vec<String> = good.split('.').map(str::to_string).collect();
    // Same header and signature, a payload claiming another subject.
    let mut claims = jwt_claims(good);
    claims["sub"] = "someone-else".into();
    use base64::Engine;
    parts[1] = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
    let forged = parts.join(".");
    // alg none (RFC 8725 §2.1).
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"at+jwt"}"#);
    let unsigned = format!("{header}.{}.", parts[1]);
    for token in ["garbage", "a.b.c", forged.as_str(), unsigned.as_str()] {
        let response = http.get(app.url("/userinfo")).bearer_auth(token).send().await.unwrap();
        assert_bearer_error(response, 401, "invalid_token").await;
    }
    // An ID token is signed by us too, but is not an access token (RFC 9068 §2.1 typ).
    let id_token = tokens["id_token"].as_str().unwrap();
    let response = http.get(app.url("/userinfo")).bearer_auth(id_token).send().await.unwrap();
    assert_bearer_error(response, 401, "invalid_token").await;
}

#[tokio::test]
async fn expired_token_is_invalid_token() {
    let app = TestApp::start().await;
    let (_, tokens) = tokens(&app, "openid email").await;
    let http = app.http();
    app.clock.advance(299);
    assert_eq!(http.get(app.url("/userinfo")).bearer_auth(access(&tokens)).send().await.unwrap().status(), 200);
    app.clock.advance(2);
    let response = http.get(app.url("/userinfo")).bearer_auth(access(&tokens)).send().await.unwrap();
    assert_bearer_error(response, 401, "invalid_token").await;
}

#[tokio::test]
async fn get_and_post_with_header_or_form_body_work() {
    let app = TestApp::start().await;
    let (_, tokens) = tokens(&app, "openid email").await;
    let http = app.http();
    let token = access(&tokens);
    let sub = jwt_claims(tokens["id_token"].as_str().unwrap())["sub"].clone();
    for response in [
        http.get(app.url("/userinfo")).bearer_auth(token).send().await.unwrap(),
        http.post(app.url("/userinfo")).bearer_auth(token).send().await.unwrap(),
        // RFC 6750 §2.2: form-encoded body parameter.
        http.post(app.url("/userinfo")).form(&[("access_token", token)]).send().await.unwrap(),
    ] {
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["cache-control"], "no-store");
        assert!(response.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
        let claims: Value = response.json().await.unwrap();
        assert_eq!(claims["sub"], sub);
        assert_eq!(claims["email"], EMAIL);
    }
}

#[tokio::test]
async fn token_in_header_and_body_is_invalid_request() {
    let app = TestApp::start().await;
    let (_, tokens) = tokens(&app, "openid").await;
    let token = access(&tokens);
    // RFC 6750 §2: a client must not use more than one method.
    let response = app.http().post(app.url("/userinfo")).bearer_auth(token).form(&[("access_token", token)]).send().await.unwrap();
    assert_bearer_error(response, 400, "invalid_request").await;
}

#[tokio::test]
async fn token_in_the_query_string_is_not_accepted() {
    let app = TestApp::start().await;
    let (_, tokens) = tokens(&app, "openid").await;
    // RFC 9700 §2.5: never in the URI, where it ends up in logs.
    let response = app.http().get(app.url(&format!("/userinfo?access_token={}", access(&tokens)))).send().await.unwrap();
    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn wrong_authorization_scheme_is_refused() {
    let app = TestApp::start().await;
    let (_, tokens) = tokens(&app, "openid").await;
    let response = app
        .http()
        .get(app.url("/userinfo"))
        .header("authorization", format!("Basic {}", access(&tokens)))
        .send()
        .await
        .unwrap();
    assert!(matches!(response.status().as_u16(), 400 | 401), "{}", response.status());
    assert!(challenge(&response).starts_with("Bearer"));
}

#[tokio::test]
async fn client_credentials_token_is_invalid_token() {
    let app = TestApp::start().await;
    let (client, secret) = app.client().await;
    let tokens: Value = app.token(&client, Some(&secret), &[("grant_type", "client_credentials")]).await.json().await.unwrap();
    let response = app.http().get(app.url("/userinfo")).bearer_auth(access(&tokens)).send().await.unwrap();
    assert_bearer_error(response, 401, "invalid_token").await;
}

#[tokio::test]
async fn token_without_openid_scope_is_insufficient_scope() {
    let app = TestApp::start().await;
    // Plain OAuth 2.0: the client asked for email but not openid.
    let (_, tokens) = tokens(&app, "email").await;
    assert!(tokens.get("id_token").is_none(), "{tokens}");
    let response = app.http().get(app.url("/userinfo")).bearer_auth(access(&tokens)).send().await.unwrap();
    assert_bearer_error(response, 403, "insufficient_scope").await;
}

#[tokio::test]
async fn released_claims_follow_the_scope() {
    let app = TestApp::start().await;
    let (_, email_only) = tokens(&app, "openid email").await;
    let claims: Value = app.http().get(app.url("/userinfo")).bearer_auth(access(&email_only)).send().await.unwrap().json().await.unwrap();
    assert_eq!(claims["email"], EMAIL);
    assert!(claims.get("email_verified").is_some());
    assert!(claims.get("name").is_none(), "name released without profile: {claims}");

    let (client, secret) = app.client().await;
    let (code, verifier) = app.code_for(&client, EMAIL, "openid profile").await;
    let profile_only = app.exchange(&client, &secret, &code, &verifier).await;
    let claims: Value = app.http().get(app.url("/userinfo")).bearer_auth(access(&profile_only)).send().await.unwrap().json().await.unwrap();
    assert_eq!(claims["name"], "Ada Lovelace");
    assert!(claims.get("email").is_none(), "email released without the email scope: {claims}");

    let (code, verifier) = app.code_for(&client, EMAIL, "openid").await;
    let bare = app.exchange(&client, &secret, &code, &verifier).await;
    let claims: Value = app.http().get(app.url("/userinfo")).bearer_auth(access(&bare)).send().await.unwrap().json().await.unwrap();
    let keys: Vec<&String> = claims.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["sub"], "{claims}");
}

#[tokio::test]
async fn scopes_the_client_may_not_have_are_not_released() {
    let app = TestApp::start().await;
    app.user(EMAIL).await;
    let (client, secret) = app.client_with(|s| s.scopes = vec!["openid".into(), "profile".into()]).await;
    let secret = secret.unwrap();
    let (code, verifier) = app.code_for(&client, EMAIL, "openid email profile").await;
    let tokens = app.exchange(&client, &secret, &code, &verifier).await;
    assert_eq!(tokens["scope"], "openid profile");
    let claims: Value = app.http().get(app.url("/userinfo")).bearer_auth(access(&tokens)).send().await.unwrap().json().await.unwrap();
    assert!(claims.get("email").is_none(), "{claims}");
    assert_eq!(claims["name"], "Ada Lovelace");
}

#[tokio::test]
async fn odd_authorization_headers_are_client_errors() {
    let app = TestApp::start().await;
    let http = app.http();
    let giant = format!("Bearer {}", "a".repeat(20_000));
    for value in [&b"Bearer"[..], b"Bearer ", b"bearer x.y.z", b"Bearer \xff\xfe", giant.as_bytes()] {
        let response = http
            .get(app.url("/userinfo"))
            .header("authorization", reqwest::header::HeaderValue::from_bytes(value).unwrap())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        assert!(status == 400 || status == 401, "{:?}: {status}", String::from_utf8_lossy(&value[..value.len().min(20)]));
        assert!(challenge(&response).starts_with("Bearer realm="));
    }
    // A form body that cannot be read.
    let response = http
        .post(app.url("/userinfo"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("access_token=%FF")
        .send()
        .await
        .unwrap();
    assert_bearer_error(response, 400, "invalid_request").await;
}
