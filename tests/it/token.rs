//! The token endpoint (RFC 6749 §3.2, §4.1.3, §4.4, §5, §6; RFC 7636 §4.6; RFC 9700 §4.14;
//! OpenID Connect Core §3.1.3): client authentication, every grant, and their errors.

use serde_json::Value;
use tokio::task::JoinSet;

use crate::support::*;
use sluis::clock::Clock;

const EMAIL: &str = "ada@example.com";

/// Asserts an RFC 6749 §5.2 error: status, `error`, and no caching.
async fn assert_error(response: reqwest::Response, status: u16, error: &str) -> Value {
    assert_eq!(response.status(), status, "expected {error}");
    assert_eq!(response.headers()["cache-control"], "no-store", "{error}");
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
    let challenge = response.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_string());
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], error, "{body}");
    if error == "invalid_client" {
        // RFC 6749 §5.2: a 401 carries a challenge for the scheme the client may use.
        let challenge = challenge.expect("WWW-Authenticate on invalid_client");
        assert!(challenge.starts_with("Basic"), "{challenge}");
    }
    body
}

async fn post_raw(app: &TestApp, content_type: &str, body: String, basic: Option<(&str, &str)>) -> reqwest::Response {
    let mut request = app.http().post(app.url("/token")).header("content-type", content_type).body(body);
    if let Some((id, secret)) = basic {
        request = request.basic_auth(id, Some(secret));
    }
    request.send().await.unwrap()
}

fn code_form<'a>(code: &'a str, verifier: &'a str) -> Vec<(&'static str, &'a str)> {
    vec![("grant_type", "authorization_code"), ("code", code), ("redirect_uri", REDIRECT_URI), ("code_verifier", verifier)]
}

async fn refresh(app: &TestApp, client: &sluis::model::Client, secret: &str, token: &str) -> reqwest::Response {
    app.token(client, Some(secret), &[("grant_type", "refresh_token"), ("refresh_token", token)]).await
}

async fn userinfo_status(app: &TestApp, access_token: &str) -> u16 {
    app.http().get(app.url("/userinfo")).bearer_auth(access_token).send().await.unwrap().status().as_u16()
}

fn str_of<'a>(v: &'a Value, field: &str) -> &'a str {
    v[field].as_str().unwrap_or_else(|| panic!("no {field} in {v}"))
}

#[tokio::test]
async fn missing_or_wrong_client_authentication_is_invalid_client() {
    let app = TestApp::start().await;
    let (client, secret) = app.client().await;
    let public = app.public_client().await;
    let http = app.http();
    let id = client.id.as_str();
    let grant = ("grant_type", "client_credentials");

    // No authentication at all.
    let none = http.post(app.url("/token")).form(&[grant]).send().await.unwrap();
    assert_error(none, 401, "invalid_client").await;
    // A confidential client presenting only its id.
    let id_only = http.post(app.url("/token")).form(&[grant, ("client_id", id)]).send().await.unwrap();
    assert_error(id_only, 401, "invalid_client").await;
    // Wrong secret, by either method.
    let wrong_basic = http.post(app.url("/token")).basic_auth(id, Some("wrong")).form(&[grant]).send().await.unwrap();
    assert_error(wrong_basic, 401, "invalid_client").await;
    let wrong_post = http.post(app.url("/token")).form(&[grant, ("client_id", id), ("client_secret", "wrong")]).send().await.unwrap();
    assert_error(wrong_post, 401, "invalid_client").await;
    // Another client's secret.
    let (_, other_secret) = app.client().await;
    let swapped = http.post(app.url("/token")).basic_auth(id, Some(&other_secret)).form(&[grant]).send().await.unwrap();
    assert_error(swapped, 401, "invalid_client").await;
    // Unknown client.
    let unknown = http.post(app.url("/token")).basic_auth("nobody", Some(&secret)).form(&[grant]).send().await.unwrap();
    assert_error(unknown, 401, "invalid_client").await;
    // A public client cannot authenticate with a secret it does not have.
    let public_secret = http.post(app.url("/token")).basic_auth(public.id.as_str(), Some("anything")).form(&[grant]).send().await.unwrap();
    assert_error(public_secret, 401, "invalid_client").await;
    // A malformed Authorization header.
    let garbage = http.post(app.url("/token")).header("authorization", "Basic !!!").form(&[grant]).send().await.unwrap();
    assert_error(garbage, 401, "invalid_client").await;
    let bearer = http.post(app.url("/token")).bearer_auth(&secret).form(&[grant]).send().await.unwrap();
    assert_error(bearer, 401, "invalid_client").await;
}

#[tokio::test]
async fn client_secret_post_and_basic_both_work_but_not_together() {
    let app = TestApp::start().await;
    let (client, secret) = app.client().await;
    let http = app.http();
    let id = client.id.as_str();
    let grant = ("grant_type", "client_credentials");
    let post = http.post(app.url("/token")).form(&[grant, ("client_id", id), ("client_secret", &secret)]).send().await.unwrap();
    assert_eq!(post.status(), 200);
    let basic = http.post(app.url("/token")).basic_auth(id, Some(&secret)).form(&[grant]).send().await.unwrap();
    assert_eq!(basic.status(), 200);
    // RFC 6749 §2.3: one method per request.
    let both = http
        .post(app.url("/token"))
        .basic_auth(id, Some(&secret))
        .form(&[grant, ("client_id", id), ("client_secret", &secret)])
        .send()
        .await
        .unwrap();
    assert_error(both, 400, "invalid_request").await;
    // A body client_id that contradicts the Basic credentials.
    let (other, _) = app.client().await;
    let mismatch = http.post(app.url("/token")).basic_auth(id, Some(&secret)).form(&[grant, ("client_id", other.id.as_str())]).send().await.unwrap();
    assert_error(mismatch, 400, "invalid_request").await;
}

#[tokio::test]
async fn malformed_bodies_are_invalid_request() {
    let app = TestApp::start().await;
    let (client, secret) = app.client().await;
    let basic = Some((client.id.as_str(), secret.as_str()));
    let json = post_raw(&app, "application/json", r#"{"grant_type":"client_credentials"}"#.into(), basic).await;
    assert_error(json, 400, "invalid_request").await;
    let text = post_raw(&app, "text/plain", "grant_type=client_credentials".into(), basic).await;
    assert_error(text, 400, "invalid_request").await;
    let repeated = post_raw(&app, "application/x-www-form-urlencoded", "grant_type=client_credentials&grant_type=client_credentials".into(), basic).await;
    assert_error(repeated, 400, "invalid_request").await;
    let bad_utf8 = post_raw(&app, "application/x-www-form-urlencoded", "grant_type=client_credentials&scope=%FF".into(), basic).await;
    assert_error(bad_utf8, 400, "invalid_request").await;
    let giant = post_raw(&app, "application/x-www-form-urlencoded", format!("grant_type=client_credentials&scope={}", "a".repeat(9000)), basic).await;
    assert_error(giant, 400, "invalid_request").await;
}

#[tokio::test]
async fn grant_type_errors() {
    let app = TestApp::start().await;
    let (client, secret) = app.client().await;
    let missing = app.token(&client, Some(&secret), &[("scope", "")]).await;
    assert_error(missing, 400, "invalid_request").await;
    for unknown in ["password", "implicit", "urn:ietf:params:oauth:grant-type:device_code", "AUTHORIZATION_CODE"] {
        let response = app.token(&client, Some(&secret), &[("grant_type", unknown)]).await;
        assert_error(response, 400, "unsupported_grant_type").await;
    }
    let (limited, limited_secret) =
        app.client_with(|s| s.grant_types = vec!["authorization_code".into(), "refresh_token".into()]).await;
    let response = app.token(&limited, limited_secret.as_deref(), &[("grant_type", "client_credentials")]).await;
    assert_error(response, 400, "unauthorized_client").await;
}

#[tokio::test]
async fn code_exchange_returns_tokens_without_caching() {
    let app = TestApp::start().await;
    app.user(EMAIL).await;
    let (client, secret) = app.client().await;
    let (code, verifier) = app.code_for(&client, EMAIL, "openid email").await;
    let response = app.token(&client, Some(&secret), &code_form(&code, &verifier)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert_eq!(response.headers()["pragma"], "no-cache");
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
    let tokens: Value = response.json().await.unwrap();
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 300);
    assert_eq!(tokens["scope"], "email openid");
    for field in ["access_token", "refresh_token", "id_token"] {
        assert!(!str_of(&tokens, field).is_empty(), "{field}");
    }
    let header = jsonwebtoken::decode_header(str_of(&tokens, "access_token")).unwrap();
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
}

#[tokio::test]
async fn code_missing_or_unknown_is_refused() {
    let app = TestApp::start().await;
    let (client, secret) = app.client().await;
    let (verifier, _) = pkce();
    let no_code = app.token(&client, Some(&secret), &[("grant_type", "authorization_code"), ("redirect_uri", REDIRECT_URI)]).await;
    assert_error(no_code, 400, "invalid_request").await;
    let unknown = app.token(&client, Some(&secret), &code_form("not-a-code-we-issued", &verifier)).await;
    assert_error(unknown, 400, "invalid_grant").await;
}

#[tokio::test]
async fn code_of_another_client_is_invalid_grant() {
    let app = TestApp::start().await;
    app.user(EMAIL).await;
    let (client, _) = app.client().await;
    let (thief, thief_secret) = app.client().await;
    let (code, verifier) = app.code_for(&client, EMAIL, "openid").await;
    let response = app.token(&thief, Some(&thief_secret), &code_form(&code, &verifier)).await;
    assert_error(response, 400, "invalid_grant").await;
}

#[tokio::test]
async fn code_with_wrong_redirect_uri_is_invalid_grant() {
    let app = TestApp::start().await;
    app.user(EMAIL).await;
    let (client, secret) = app.client_with(|s| s.redirect_uris.push("https://app.example/other".into())).await;
    let secret = secret.unwrap();
    let (code, verifier) = app.code_for(&client, EMAIL, "openid").await;
    // Registered, but not the one the code was issued for (RFC 6749 §4.1.3).
    let form = [("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", "https://app.example/other"), ("code_verifier", &verifier)];
    assert_error(app.token(&client, Some(&secret), &form).await, 400, "invalid_grant").await;
    let (code, verifier) = app.code_for(&client, EMAIL, "openid").await;
    let missing = [("grant_type", "authorization_code"), ("code", code.as_str()), ("code_verifier", &verifier)];
    assert_error(app.token(&client, Some(&secret), &missing).await, 400, "invalid_request").await;
}

#[tokio::test]
async fn code_with_wrong_or_missing_verifier_is_invalid_grant() {
    let app = TestApp::start().await;
    app.user(EMAIL).await;
    let (client, secret) = app.client().await;
    let (code, _) = app.code_for(&client, EMAIL, "openid").await;
    let (other_verifier, _) = pkce();
    assert_error(app.token(&client, Some(&secret), &code_form(&code, &other_verifier)).await, 400, "invalid_grant").await;

    let (code, _) = app.code_for(&client, EMAIL, "openid").await;
    let no_verifier = [("grant_type", "authorization_code"), ("code", code.as_str()), ("redirect_uri", REDIRECT_URI)];
    assert_error(app.token(&client, Some(&secret), &no_verifier).await, 400, "invalid_grant").await;

    // A verifier that breaks RFC 7636 §4.1 grammar is a malformed request.
    let (code, _) = app.code_for(&client, EMAIL, "openid").await;
    assert_error(app.token(&client, Some(&secret), &code_form(&code, "short")).await, 400, "invalid_request").await;
}

#[tokio::test]
async fn a_failed_verifier_check_burns_the_code() {
    let app = TestApp::start().await;
    app.user(EMAIL).await;
    let (client, secret) = app.client().await;
    let (code, verifier) = app.code_for(&client, EMAIL, "openid").await;
    let (guess, _) = pkce();
    assert_error(app.token(&client, Some(&secret), &code_form(&code, &guess)).await, 400, "invalid_grant").await;
    // An attacker gets one guess; the right verifier afterwards does not help.
    assert_error(app.token(&client, Some(&secret), &code_form(&code, &verifier)).await, 400, "invalid_grant").await;
}

#[tokio::test]
async fn expired_code_is_invalid_grant() {
    let app = TestApp::start().await;
    app.user(EMAIL).await;
    let (client, secret) = app.client().await;
    let (code, verifier) = app.code_for(&client, EMAIL, "openid").await;
    app.clock.advance(61);
    assert_error(app.token(&client, Some(&secret), &code_form(&code, &verifier)).await, 400, "invalid_grant").await;
}

#[tokio::test]
async fn code_just_before_expiry_still_works() {
    let app = TestApp::start().await;
    app.user(EMAIL).await;
    let (client, secret) = app.client().await;
    let (code, verifier) = app.code_for(&client, EMAIL, "openid").await;
    app.clock.advance(59);
    app.exchange(&client, &secret, &code, &verifier).await;
}

#[tokio::test]
async fn code_reuse_revokes_the_tokens_of_the_first_exchange() {
    let app = TestApp::start().await;
    app.user(EMAIL).await;
    let (client, secret) = app.client().await;
    let (code, verifier) = app.code_for(&client, EMAIL, "openid email").await;
    let first = app.exchange(&client, &secret, &code, &verifier).await;
    let access = str_of(&first, "access_token");
    assert_eq!(userinfo_status(&app, access).await, 200);

    // RFC 6749 §4.1.2: a second use is refused, and what the first issued is revoked.
    let second = app.token(&client, Some(&secret), &code_form(&code, &verifier)).await;
    assert_error(second, 400, "invalid_grant").await;
    let refreshed = refresh(&app, &client, &secret, str_of(&first, "refresh_token")).await;
    assert_error(refreshed, 400, "invalid_grant").await;
    let response = app.http().get(app.url("/userinfo")).bearer_auth(access).send().await.unwrap();
    assert_eq!(response.status(), 401);
    let challenge = response.headers()["www-authenticate"].to_str().unwrap();
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
}

#[tokio::test]
async fn concurrent_redemption_of_one_code_succeeds_exactly_once() {
    let app = TestApp::start().await;
    app.user(EMAIL).await;
    let (client, secret) = app.client().await;
    let (code, verifier) = app.code_for(&client, EMAIL, "openid").await;
    let mut tasks = JoinSet::new();
    for _ in 0..8 {
        let request = app
            .http()
            .post(app.url("/token"))
            .basic_auth(client.id.as_str(), Some(&secret))
            .form(&code_form(&code, &verifier));
        tasks.spawn(async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap();
            (status, body)
        });
    }
    let results = tasks.join_all().await;
    let ok = results.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!(ok, 1, "{results:?}");
    for (status, body) in results.iter().filter(|(s, _)| *s != 200) {
        assert_eq!(*status, 400, "{body}");
        assert_eq!(body["error"], "invalid_grant", "{body}");
    }
}

/// Many codes exchanged at once (on SQLite they are redeemed in groups, one statement per
/// step for the group): each exchange gets its own tokens, from its own grant, with its
/// refresh token, and a code used twice still fails only its replay.
#[tokio::test]
async fn many_codes_exchanged_at_once_each_get_their_own_grant() {
    let app = TestApp::start().await;
    app.user(EMAIL).await;
    let (client, secret) = app.client().await;
    let mut codes = Vec::new();
    for _ in 0..12 {
        codes.push(app.code_for(&client, EMAIL, "openid offline_access").await);
    }
    codes.push(codes[0].clone());
    let mut tasks = JoinSet::new();
    for (code, verifier) in codes {
        let request = app.http().post(app.url("/token")).basic_auth(client.id.as_str(), Some(&secret)).form(&code_form(&code, &verifier));
        tasks.spawn(async move {
            let response = request.send().await.unwrap();
            (response.status().as_u16(), response.json::<Value>().await.unwrap())
        });
    }
    let results = tasks.join_all().await;
    let failed: Vec<_> = results.iter().filter(|(status, _)| *status != 200).collect();
    assert_eq!(failed.len(), 1, "only one of the two uses of the first code fails: {failed:?}");
    assert_eq!(failed[0].1["error"], "invalid_grant");
    let issued: Vec<&Value> = results.iter().filter(|(status, _)| *status == 200).map(|(_, body)| body).collect();
    let grants: std::collections::HashSet<String> = issued.iter().map(|body| jwt_claims(str_of(body, "access_token"))["gid"].as_str().unwrap().to_string()).collect();
    assert_eq!(grants.len(), 12, "one grant per code");
    // Nothing else was stored (SQLite's group statements are padded with rows that must
    // match nothing): the twelve grants, and the refresh tokens of all but the replayed one.
    sqlx::any::install_default_drivers();
    let db = sqlx::AnyPool::connect(&app.state.config.database_url()).await.unwrap();
    for (table, rows) in [("grants", 12), ("refresh_tokens", 11)] {
        let count: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}"))).fetch_one(&db).await.unwrap();
        assert_eq!(count, rows, "{table}");
    }
    // The replay revoked the grant of the first code's winning exchange (its access and
    // refresh tokens); every other exchange's tokens work, refresh token included.
    let mut working = 0;
    for body in &issued {
        let userinfo = userinfo_status(&app, str_of(body, "access_token")).await;
        let refreshed = refresh(&app, &client, &secret, str_of(body, "refresh_token")).await.status().as_u16();
        assert_eq!(userinfo == 200, refreshed == 200, "access and refresh token of one grant agree: {userinfo} {refreshed}");
        working += usize::from(userinfo == 200);
    }
    assert_eq!(working, 11, "all but the replayed code's tokens work");
}

/// On SQLite a redemption's two steps are separate statements (store/redemption_batch.rs): another process that
/// replays the code between them must leave no live grant behind. On PostgreSQL they are one
/// transaction whose row lock makes such a replay wait for its end (the test above), so there
/// is nothing to interleave and this test has nothing to check.
#[tokio::test(flavor = "multi_thread")]
async fn a_replay_by_another_process_between_the_statements_leaves_no_grant() {
    use sluis::model::{Authentication, GrantId};
    use sluis::store::{CodeRedemption, NewCode, NewGrant, Store};
    let app = TestApp::start().await;
    let url = app.state.config.database_url();
    if !url.starts_with("sqlite:") {
        return;
    }
    let (client, _) = app.client().await;
    let now = app.clock.now();
    let user = app.user("replayed@example.com").await;
    let auth = Authentication { user_id: user.id.clone(), auth_time: now, amr: vec!["pwd".into()], sid: "s1".into() };
    let code = NewCode {
        code_hash: "replayed-code".into(),
        client_id: client.id.clone(),
        redirect_uri: "https://app.example/cb".into(),
        scope: "openid".into(),
        nonce: None,
        code_challenge: None,
        auth: auth.clone(),
        expires_at: now + 60,
    };
    assert!(app.state.store.insert_code(&code).await.unwrap());
    let first = GrantId("first-grant".into());

    let outcome = app
        .state
        .store
        .redeem_code(&code.code_hash, &first, now, {
            let first = first.clone();
            move |stored| {
                // The other process, on its own connection, between the two statements.
                let replay = std::thread::spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                    runtime.block_on(async {
                        let other = Store::connect(&url).await.unwrap();
                        let outcome = other.redeem_code("replayed-code", &GrantId("second-grant".into()), now, |_| None).await.unwrap();
                        matches!(outcome, CodeRedemption::Reused)
                    })
                });
                assert!(replay.join().unwrap(), "the other process sees a used code");
                Some(NewGrant { id: first, client_id: stored.client_id.clone(), scope: stored.scope.clone(), auth, created_at: now, refresh: None })
            }
        })
        .await
        .unwrap();
    assert!(matches!(outcome, CodeRedemption::Reused), "the first exchange learns of the replay");
    assert!(app.state.store.grant(&first).await.unwrap().is_none(), "no grant was stored");
}

/// Refresh tokens issued before they started with their time digits (stored under their
/// hash alone) still refresh, are revoked and introspected.
#[tokio::test]
async fn a_refresh_token_from_before_the_time_digits_still_works() {
    let app = TestApp::start().await;
    app.user(EMAIL).await;
    let (client, secret) = app.client().await;
    let (code, verifier) = app.code_for(&client, EMAIL, "openid email").await;
    let issued = app.exchange(&client, &secret, &code, &verifier).await;
    let current = str_of(&issued, "refresh_token");
    assert_eq!(sluis::crypto::stored_token_key(current)[..12], current[..12], "a new token's key starts with its time digits");
    // What an earlier version issued: a bare random token, stored under its hash.
    let earlier = sluis::crypto::random_token();
    sqlx::any::install_default_drivers();
    let db = sqlx::AnyPool::connect(&app.state.config.database_url()).await.unwrap();
    let moved = sqlx::query("UPDATE refresh_tokens SET token_hash = $1 WHERE token_hash = $2")
        .bind(sluis::crypto::token_hash(&earlier))
        .bind(sluis::crypto::stored_token_key(current))
        .execute(&db)
        .await
        .unwrap();
    assert_eq!(moved.rows_affected(), 1);
    let introspected = app.http().post(app.url("/introspect")).basic_auth(client.id.as_str(), Some(&secret)).form(&[("token", earlier.as_str())]).send().await.unwrap();
    assert_eq!(introspected.json::<Value>().await.unwrap()["active"], true);
    app.clock.advance(1);
    let response = refresh(&app, &client, &secret, &earlier).await;
    assert_eq!(response.status(), 200);
    let rotated: Value = response.json().await.unwrap();
    let next = str_of(&rotated, "refresh_token");
    assert_eq!(next.len(), 55, "the rotated token has the current form: {next}");
    let revoked = app.http().post(app.url("/revoke")).basic_auth(client.id.as_str(), Some(&secret)).form(&[("token", next)]).send().await.unwrap();
    assert_eq!(revoked.status(), 200);
    assert_error(refresh(&app, &client, &secret, next).await, 400, "invalid_grant").await;
}

#[tokio::test]
async fn refresh_rotates_the_refresh_token() {
    let app = TestApp::start().await;
    app.user(EMAIL).await;
    let (client, secret) = app.client().await;
    let (code, verifier) = app.code_for(&client, EMAIL, "openid email").await;
    let first = app.exchange(&client, &secret, &code, &verifier).await;
    let old = str_of(&first, "refresh_token");
    app.clock.advance(1);
    let response = refresh(&app, &client, &secret, old).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let second: Value = response.json().await.unwrap();
    let new = str_of(&second, "refresh_token");
    assert_ne!(new, old, "refresh token was not rotated");
    assert_ne!(str_of(&second, "access_token"), str_of(&first, "access_token"));
    assert_eq!(second["scope"], "email openid");
    // OpenID Connect Core §12.2: a new ID token about the same user, without a nonce.
    let (id1, id2) = (jwt_claims(str_of(&first, "id_token")), jwt_claims(str_of(&second, "id_token")));
    assert_eq!(id1["sub"], id2["sub"]);
    assert_eq!(id1["auth_time"], id2["auth_time"]);
    assert!(id2.get("nonce").is_none(), "{id2}");
    assert_eq!(userinfo_status(&app, str_of(&second, "access_token")).await, 200);
    // The new refresh token rotates in turn.
    app.clock.advance(1);
    assert_eq!(refresh(&app, &client, &secret, new).await.status(), 200);
}

#[tokio::test]
async fn refresh_replay_after_grace_revokes_the_whole_family() {
    let app = TestApp::start().await;
    app.user(EMAIL).await;
    let (client, secret) = app.client().await;
    let (code, verifier) = app.code_for(&client, EMAIL, "openid").await;
    let first = app.exchange(&client, &secret, &code, &verifier).await;
    let old = str_of(&first, "refresh_token").to_string();
    let second: Value = refresh(&app, &client, &secret, &old).await.json().await.unwrap();
    let newest = str_of(&second, "refresh_token");
    let newest_access = str_of(&second, "access_token");
    assert_eq!(userinfo_status(&app, newest_access).await, 200);

    app.clock.advance(i64::from(app.state.config.refresh_grace_seconds) + 1);
    // RFC 9700 §4.14.2: a rotated token coming back means one of the two holders is an attacker.
    assert_error(refresh(&app, &client, &secret, &old).await, 400, "invalid_grant").await;
    assert_error(refresh(&app, &client, &secret, newest).await, 400, "invalid_grant").await;
    assert_eq!(userinfo_status(&app, newest_access).await, 401, "access token of the revoked family still works");
}

#[tokio::test]
async fn refresh_replay_within_grace_is_accepted() {
    let app = TestApp::start().await;
    app.user(EMAIL).await;
    let (client, secret) = app.client().await;
    let (code, verifier) = app.code_for(&client, EMAIL, "openid").await;
    let first = app.exchange(&client, &secret, &code, &verifier).await;
    let old = str_of(&first, "refresh_token").to_string();
    let second: Value = refresh(&app, &client, &secret, &old).await.json().await.unwrap();
    app.clock.advance(i64::from(app.state.config.refresh_grace_seconds) - 1);
    // A client whose first response was lost retries with the same token.
    let retry = refresh(&app, &client, &secret, &old).await;
    assert_eq!(retry.status(), 200);
    let retry: Value = retry.json().await.unwrap();
    // Neither branch was revoked.
    assert_eq!(refresh(&app, &client, &secret, str_of(&retry, "refresh_token")).await.status(), 200);
    assert_eq!(refresh(&app, &client, &secret, str_of(&second, "refresh_token")).await.status(), 200);
}

#[tokio::test]
async fn refresh_scope_may_narrow_but_not_widen() {
    let app = TestApp::start().await;
    app.user(EMAIL).await;
    let (client, secret) = app.client().await;
    let (code, verifier) = app.code_for(&client, EMAIL, "openid email").await;
    let first = app.exchange(&client, &secret, &code, &verifier).await;
    let token = str_of(&first, "refresh_token");
    let wider = app.token(&client, Some(&secret), &[("grant_type", "refresh_token"), ("refresh_token", token), ("scope", "openid email profile")]).await;
    assert_error(wider, 400, "invalid_scope").await;
    // The refused request did not burn the token; narrowing works.
    let narrower = app.token(&client, Some(&secret), &[("grant_type", "refresh_token"), ("refresh_token", token), ("scope", "openid")]).await;
    assert_eq!(narrower.status(), 200);
    let narrower: Value = narrower.json().await.unwrap();
    assert_eq!(narrower["scope"], "openid");
    assert_eq!(jwt_claims(str_of(&narrower, "access_token"))["scope"], "openid");
    // RFC 6749 §6: the grant keeps its original scope; the next refresh may ask for it all again.
    let full = app
        .token(&client, Some(&secret), &[("grant_type", "refresh_token"), ("refresh_token", str_of(&narrower, "refresh_token")), ("scope", "openid email")])
        .await;
    assert_eq!(full.status(), 200);
}

#[tokio::test]
async fn refresh_token_errors() {
    let app = TestApp::start().await;
    app.user(EMAIL).await;
    let (client, secret) = app.client().await;
    let (other, other_secret) = app.client().await;
    let (code, verifier) = app.code_for(&client, EMAIL, "openid").await;
    let tokens = app.exchange(&client, &secret, &code, &verifier).await;
    let token = str_of(&tokens, "refresh_token");
    let missing = app.token(&client, Some(&secret), &[("grant_type", "refresh_token")]).await;
    assert_error(missing, 400, "invalid_request").await;
    assert_error(refresh(&app, &client, &secret, "unknown").await, 400, "invalid_grant").await;
    // Another client cannot use it, nor burn it for its owner.
    assert_error(refresh(&app, &other, &other_secret, token).await, 400, "invalid_grant").await;
    assert_eq!(refresh(&app, &client, &secret, token).await.status(), 200);
    // An access token is not a refresh token.
    assert_error(refresh(&app, &client, &secret, str_of(&tokens, "access_token")).await, 400, "invalid_grant").await;
}

#[tokio::test]
async fn expired_refresh_token_is_invalid_grant() {
    let app = TestApp::start().await;
    app.user(EMAIL).await;
    let (client, secret) = app.client().await;
    let (code, verifier) = app.code_for(&client, EMAIL, "openid").await;
    let tokens = app.exchange(&client, &secret, &code, &verifier).await;
    app.clock.advance(i64::from(app.state.config.refresh_token_ttl) + 1);
    assert_error(refresh(&app, &client, &secret, str_of(&tokens, "refresh_token")).await, 400, "invalid_grant").await;
}

#[tokio::test]
async fn client_credentials_issues_a_jwt_about_the_client() {
    let app = TestApp::start().await;
    let (client, secret) = app.client().await;
    let response = app.token(&client, Some(&secret), &[("grant_type", "client_credentials")]).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let tokens: Value = response.json().await.unwrap();
    assert_eq!(tokens["token_type"], "Bearer");
    // RFC 6749 §4.4.3: no refresh token; nor an ID token, as there is no user.
    assert!(tokens.get("refresh_token").is_none(), "{tokens}");
    assert!(tokens.get("id_token").is_none(), "{tokens}");
    let access = str_of(&tokens, "access_token");
    let header = jsonwebtoken::decode_header(access).unwrap();
    // RFC 9068 §2.1.
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    let claims = jwt_claims(access);
    assert_eq!(claims["sub"], client.id.as_str());
    assert_eq!(claims["client_id"], client.id.as_str());
    assert_eq!(claims["iss"], app.base.as_str());
    assert!(claims["exp"].as_i64().unwrap() > claims["iat"].as_i64().unwrap());
    assert!(claims.get("jti").is_some());
    verify_with_jwks(&app, access, None).await;
}

#[tokio::test]
async fn client_credentials_refuses_user_scopes_and_public_clients() {
    let app = TestApp::start().await;
    let (client, secret) = app.client().await;
    for scope in ["openid", "email", "offline_access", "made_up"] {
        let response = app.token(&client, Some(&secret), &[("grant_type", "client_credentials"), ("scope", scope)]).await;
        assert_error(response, 400, "invalid_scope").await;
    }
    let public = app.public_client().await;
    let response = app.token(&public, None, &[("grant_type", "client_credentials")]).await;
    assert_error(response, 400, "unauthorized_client").await;
}

#[tokio::test]
async fn public_client_with_pkce_needs_only_its_client_id() {
    let app = TestApp::start().await;
    app.user(EMAIL).await;
    let client = app.public_client().await;
    let (code, verifier) = app.code_for(&client, EMAIL, "openid email").await;
    let response = app.token(&client, None, &code_form(&code, &verifier)).await;
    assert_eq!(response.status(), 200);
    let tokens: Value = response.json().await.unwrap();
    assert_eq!(jwt_claims(str_of(&tokens, "id_token"))["aud"], client.id.as_str());
    // Refresh works the same way, with token_endpoint_auth_method none.
    let refreshed = app.token(&client, None, &[("grant_type", "refresh_token"), ("refresh_token", str_of(&tokens, "refresh_token"))]).await;
    assert_eq!(refreshed.status(), 200);
    // ... but never without the verifier.
    let (code, _) = app.code_for(&client, EMAIL, "openid").await;
    let no_verifier = [("grant_type", "authorization_code"), ("code", code.as_str()), ("redirect_uri", REDIRECT_URI)];
    assert_error(app.token(&client, None, &no_verifier).await, 400, "invalid_grant").await;
}

/// Verifies `token` with the key the JWKS names by its `kid`; returns the header's alg.
async fn verify_with_jwks(app: &TestApp, token: &str, audience: Option<&str>) -> jsonwebtoken::Algorithm {
    let jwks: jsonwebtoken::jwk::JwkSet = app.http().get(app.url("/jwks")).send().await.unwrap().json().await.unwrap();
    let header = jsonwebtoken::decode_header(token).unwrap();
    let kid = header.kid.expect("kid in the JWT header");
    let jwk = jwks.find(&kid).unwrap_or_else(|| panic!("kid {kid} is not in the JWKS"));
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.set_issuer(&[app.base.as_str()]);
    match audience {
        Some(aud) => validation.set_audience(&[aud]),
        None => validation.validate_aud = false,
    }
    jsonwebtoken::decode::<Value>(token, &key, &validation).unwrap_or_else(|e| panic!("{:?} token does not verify: {e}", header.alg));
    header.alg
}

/// OpenID Connect Core §3.1.3.6: base64url of the left half of the SHA-256 of the access token.
fn at_hash_sha256(access_token: &str) -> String {
    use base64::Engine;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, access_token.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest.as_ref()[..16])
}

#[tokio::test]
async fn id_tokens_use_each_clients_signing_algorithm() {
    let app = TestApp::start().await;
    app.user(EMAIL).await;
    for (configured, expected) in [
        (None, jsonwebtoken::Algorithm::RS256),
        (Some("RS256"), jsonwebtoken::Algorithm::RS256),
        (Some("ES256"), jsonwebtoken::Algorithm::ES256),
        (Some("EdDSA"), jsonwebtoken::Algorithm::EdDSA),
    ] {
        let (client, secret) = app.client_with(|s| s.signing_alg = configured.map(str::to_string)).await;
        let secret = secret.unwrap();
        let (code, verifier) = app.code_for(&client, EMAIL, "openid").await;
        let tokens = app.exchange(&client, &secret, &code, &verifier).await;
        let id_token = str_of(&tokens, "id_token");
        let alg = verify_with_jwks(&app, id_token, Some(client.id.as_str())).await;
        assert_eq!(alg, expected, "{configured:?}");
        let header = jsonwebtoken::decode_header(id_token).unwrap();
        assert_ne!(header.typ.as_deref(), Some("at+jwt"), "an ID token must not look like an access token");
        let claims = jwt_claims(id_token);
        assert_eq!(claims["aud"], client.id.as_str());
        assert_eq!(claims["nonce"], "n");
        if expected != jsonwebtoken::Algorithm::EdDSA {
            assert_eq!(claims["at_hash"], at_hash_sha256(str_of(&tokens, "access_token")).as_str(), "{configured:?}");
        }
        // Access tokens verify against the same JWKS.
        verify_with_jwks(&app, str_of(&tokens, "access_token"), None).await;
    }
}

#[tokio::test]
async fn subjects_are_pairwise_per_client() {
    let app = TestApp::start().await;
    app.user(EMAIL).await;
    let (a, a_secret) = app.client().await;
    let (b, b_secret) = app.client().await;
    let (code, verifier) = app.code_for(&a, EMAIL, "openid").await;
    let sub_a = jwt_claims(str_of(&app.exchange(&a, &a_secret, &code, &verifier).await, "id_token"))["sub"].clone();
    let (code, verifier) = app.code_for(&b, EMAIL, "openid").await;
    let sub_b = jwt_claims(str_of(&app.exchange(&b, &b_secret, &code, &verifier).await, "id_token"))["sub"].clone();
    let (code, verifier) = app.code_for(&a, EMAIL, "openid").await;
    let sub_a_again = jwt_claims(str_of(&app.exchange(&a, &a_secret, &code, &verifier).await, "id_token"))["sub"].clone();
    assert_ne!(sub_a, sub_b, "two clients can correlate the user");
    assert_eq!(sub_a, sub_a_again, "sub is not stable");
}

#[tokio::test]
async fn an_admin_can_set_public_subjects_for_a_client() {
    let app = TestApp::start().await;
    app.user(EMAIL).await;
    let (a, a_secret) = app.client().await;
    let (b, b_secret) = app.client().await;
    for client in [&a, &b] {
        sluis::admin::set_subject_type(&app.state.store, client.id.as_str(), true, &sluis::admin::Actor::cli(), app.clock.now()).await.unwrap();
    }
    let a = app.state.store.client(a.id.as_str()).await.unwrap().unwrap();
    let b = app.state.store.client(b.id.as_str()).await.unwrap().unwrap();
    let (code, verifier) = app.code_for(&a, EMAIL, "openid").await;
    let sub_a = jwt_claims(str_of(&app.exchange(&a, &a_secret, &code, &verifier).await, "id_token"))["sub"].clone();
    let (code, verifier) = app.code_for(&b, EMAIL, "openid").await;
    let sub_b = jwt_claims(str_of(&app.exchange(&b, &b_secret, &code, &verifier).await, "id_token"))["sub"].clone();
    assert_eq!(sub_a, sub_b, "public subjects are the same at every client");
    let audit = app.state.store.audit_entries(10).await.unwrap();
    assert!(audit.iter().any(|e| e.action == "client.subject_type" && e.target == a.id.as_str()), "{audit:?}");
}

#[tokio::test]
async fn form_content_type_with_charset_is_accepted() {
    let app = TestApp::start().await;
    let (client, secret) = app.client().await;
    let response = post_raw(
        &app,
        "application/x-www-form-urlencoded; charset=UTF-8",
        "grant_type=client_credentials".into(),
        Some((client.id.as_str(), secret.as_str())),
    )
    .await;
    assert_eq!(response.status(), 200);
    // A client_id in the body that agrees with the Basic credentials is fine (RFC 6749 §3.2.1).
    let agreeing = app.token(&client, Some(&secret), &[("grant_type", "client_credentials"), ("client_id", client.id.as_str())]).await;
    assert_eq!(agreeing.status(), 200);
}

/// An authorization URL without PKCE, for a confidential client.
fn url_without_pkce(app: &TestApp, client: &sluis::model::Client) -> String {
    let mut url = url::Url::parse(&app.url("/authorize")).unwrap();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client.id.as_str())
        .append_pair("redirect_uri", REDIRECT_URI)
        .append_pair("scope", "openid")
        .append_pair("state", "st");
    url.to_string()
}

#[tokio::test]
async fn confidential_client_without_pkce_cannot_add_a_verifier_later() {
    let app = TestApp::start().await;
    app.user(EMAIL).await;
    let (client, secret) = app.client().await;
    let browser = app.browser();
    let callback = browser.sign_in_and_consent(&url_without_pkce(&app, &client), EMAIL, PASSWORD).await;
    let code = query_param(&callback, "code").unwrap();
    let no_pkce = [("grant_type", "authorization_code"), ("code", code.as_str()), ("redirect_uri", REDIRECT_URI)];
    assert_eq!(app.token(&client, Some(&secret), &no_pkce).await.status(), 200);

    // RFC 9700 §2.1.1 (PKCE downgrade): a verifier for a code issued without a challenge.
    let callback = browser.get(&url_without_pkce(&app, &client)).await;
    let code = query_param(&url::Url::parse(&location(&callback).unwrap()).unwrap(), "code").unwrap();
    let (verifier, _) = pkce();
    assert_error(app.token(&client, Some(&secret), &code_form(&code, &verifier)).await, 400, "invalid_grant").await;
}

#[tokio::test]
async fn no_refresh_token_for_clients_without_the_refresh_grant() {
    let app = TestApp::start().await;
    app.user(EMAIL).await;
    let (client, secret) = app.client_with(|s| s.grant_types = vec!["authorization_code".into()]).await;
    let secret = secret.unwrap();
    let (code, verifier) = app.code_for(&client, EMAIL, "openid").await;
    let tokens = app.exchange(&client, &secret, &code, &verifier).await;
    assert!(tokens.get("refresh_token").is_none(), "{tokens}");
    assert!(tokens.get("id_token").is_some());
}

#[tokio::test]
async fn concurrent_refreshes_with_one_token_are_all_accepted() {
    let app = TestApp::start().await;
    app.user(EMAIL).await;
    let (client, secret) = app.client().await;
    let (code, verifier) = app.code_for(&client, EMAIL, "openid").await;
    let tokens = app.exchange(&client, &secret, &code, &verifier).await;
    let token = str_of(&tokens, "refresh_token").to_string();
    let mut tasks = JoinSet::new();
    for _ in 0..4 {
        let request = app
            .http()
            .post(app.url("/token"))
            .basic_auth(client.id.as_str(), Some(&secret))
            .form(&[("grant_type", "refresh_token"), ("refresh_token", token.as_str())]);
        tasks.spawn(async move {
            let response = request.send().await.unwrap();
            (response.status().as_u16(), response.json::<Value>().await.unwrap())
        });
    }
    let results = tasks.join_all().await;
    // A client racing itself (two tabs, a retry) is within the grace window, not an attacker.
    for (status, body) in &results {
        assert_eq!(*status, 200, "{body}");
    }
    for (_, body) in &results {
        assert_eq!(refresh(&app, &client, &secret, str_of(body, "refresh_token")).await.status(), 200);
    }
}

#[tokio::test]
async fn garbage_at_token_revoke_and_introspect_is_never_a_server_error() {
    let app = TestApp::start().await;
    let (client, secret) = app.client().await;
    let basic = Some((client.id.as_str(), secret.as_str()));
    let form = "application/x-www-form-urlencoded";
    let long_verifier = format!("grant_type=authorization_code&code=x&redirect_uri=a&code_verifier={}", "a".repeat(200));
    let giant_code = format!("grant_type=authorization_code&code={}&redirect_uri=a", "c".repeat(9000));
    let many = (0..100).map(|i| format!("p{i}=v")).collect::<Vec<_>>().join("&");
    for path in ["/token", "/revoke", "/introspect"] {
        for body in [
            String::new(),
            "&&&===&".into(),
            "%".into(),
            "%zz=1".into(),
            "grant_type=%00".into(),
            "token=%FF".into(),
            long_verifier.clone(),
            giant_code.clone(),
            many.clone(),
        ] {
            let response = post_raw(&app, form, body.clone(), basic).await;
            let status = response.status().as_u16();
            assert!((400..500).contains(&status) || status == 200, "{path} {body:.40}: {status}");
            assert_eq!(response.headers()["cache-control"], "no-store", "{path}");
            let _: Value = response.json().await.unwrap_or_else(|e| panic!("{path} {body:.40}: not JSON ({e})"));
        }
    }
    // A header that is not valid UTF-8, and Basic credentials that do not decode.
    for value in [&b"Basic \xff\xfe"[..], b"Basic Og==", b"Basic bm9jb2xvbg==", b"Basic"] {
        let response = app
            .http()
            .post(app.url("/token"))
            .header("authorization", reqwest::header::HeaderValue::from_bytes(value).unwrap())
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        assert_error(response, 401, "invalid_client").await;
    }
}
