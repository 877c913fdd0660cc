//! The release rule through a real relying party (node `openid-client`) against the real
//! binary, with the operator's CLI doing the admin side: an unverified client gets no email
//! until `sluis client verify --scope email`; the user API answers only after the first
//! sign-in and not after withdrawal; a suspended client is cut off; subjects are pairwise.

use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use sluis::clock::{Clock, SystemClock};
use sluis::model::{ClientId, UserId};
use sluis::state::InstanceSecrets;

use crate::served::{ServedSluis, rp_dir, run_bounded, single_json, stderr, stdout};
use crate::support::{Browser, PASSWORD, POST_LOGOUT_URI, REDIRECT_URI, after_a_client_change_elsewhere, pkce, query_param};

/// The script has its own 90 s overall timeout; this is the backstop.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);
const EMAIL: &str = "ada@example.com";
const ALL_GRANTS: [&str; 6] = ["--grant-type", "authorization_code", "--grant-type", "refresh_token", "--grant-type", "client_credentials"];

fn node_script() -> String {
    let dir = rp_dir().join("node");
    assert!(
        dir.join("node_modules/openid-client").is_dir(),
        "{} has no node_modules/openid-client: run ./scripts/test.sh to install test dependencies",
        dir.display()
    );
    dir.join("flow.mjs").display().to_string()
}

/// Runs the node relying party for `client` with extra environment; returns its JSON line
/// (`ok` may be false) and its stderr.
fn run_node(sluis: &ServedSluis, client: &Value, env: &[(&str, &str)]) -> (Value, String) {
    let mut command = Command::new("node");
    command
        .arg(node_script())
        .env("RP_ISSUER", &sluis.base)
        .env("RP_CLIENT_ID", client["client_id"].as_str().unwrap())
        .env("RP_CLIENT_SECRET", client["client_secret"].as_str().unwrap_or(""))
        .env("RP_REDIRECT_URI", REDIRECT_URI)
        .env("RP_POST_LOGOUT_REDIRECT_URI", POST_LOGOUT_URI)
        .env("RP_USER_EMAIL", EMAIL)
        .env("RP_USER_PASSWORD", PASSWORD)
        .env_remove("RP_SCOPE")
        .env_remove("RP_EXPECT_EMAIL");
    for (key, value) in env {
        command.env(key, value);
    }
    let output = run_bounded(&mut command, None, SCRIPT_TIMEOUT);
    let out = stdout(&output);
    let result = out
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|v| v.get("ok").is_some())
        .unwrap_or_else(|| panic!("no JSON result from the script ({})\n--- stdout ---\n{out}\n--- stderr ---\n{}", output.status, stderr(&output)));
    assert_eq!(output.status.success(), result["ok"] == true, "exit status and JSON disagree: {result}");
    (result, stderr(&output))
}

/// Runs the node relying party and asserts it succeeded; returns its JSON line.
fn node_flow_ok(sluis: &ServedSluis, client: &Value, env: &[(&str, &str)]) -> Value {
    let (result, err) = run_node(sluis, client, env);
    assert!(result["ok"] == true, "node flow {env:?} failed: {result}\n--- stderr ---\n{err}\n--- server log ---\n{}", sluis.server_log());
    assert!(result["sub"].as_str().is_some_and(|s| !s.is_empty()), "{result}");
    result
}

/// The `sub` the instance gives `user` at `client`, derived independently of the server
/// from the instance secret in its data directory (OpenID Connect Core §8.1).
fn expected_sub(sluis: &ServedSluis, client: &Value, user: &Value) -> String {
    let secret = std::fs::read_to_string(sluis.data_dir().join("instance.secret")).expect("instance secret");
    let client_id = ClientId(client["client_id"].as_str().unwrap().to_string());
    let user_id = UserId(user["id"].as_str().unwrap().to_string());
    InstanceSecrets::new(secret.trim()).pairwise_subject(&client_id, &user_id)
}

async fn client_token(sluis: &ServedSluis, client: &Value) -> String {
    let response = reqwest::Client::new()
        .post(sluis.url("/token"))
        .basic_auth(client["client_id"].as_str().unwrap(), client["client_secret"].as_str())
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_string()
}

/// GET /api/users/{sub}: status and JSON body.
async fn user_api(sluis: &ServedSluis, token: &str, sub: &str) -> (u16, Value) {
    let response = reqwest::Client::new().get(sluis.url(&format!("/api/users/{sub}"))).bearer_auth(token).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// What the user API releases with `email` granted: sub, email, email_verified and nothing else.
#[track_caller]
fn assert_email_claims(body: &Value, sub: &str) {
    let mut keys: Vec<&str> = body.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["email", "email_verified", "sub"], "{body}");
    assert_eq!((body["sub"].as_str(), body["email"].as_str()), (Some(sub), Some(EMAIL)), "{body}");
    assert!(body["email_verified"].is_boolean(), "{body}");
}

fn not_found_body() -> Value {
    json!({"error": "not_found", "error_description": "no such user at this client"})
}

/// A code flow driven from Rust (login, consent, exchange): tokens the test keeps alive,
/// unlike the node script, which revokes and logs out at its end.
async fn code_flow(sluis: &ServedSluis, client: &Value, scope: &str) -> Value {
    let browser = Browser {
        http: reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().unwrap(),
        base: sluis.base.clone(),
    };
    let (verifier, challenge) = pkce();
    let mut url = url::Url::parse(&sluis.url("/authorize")).unwrap();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client["client_id"].as_str().unwrap())
        .append_pair("redirect_uri", REDIRECT_URI)
        .append_pair("scope", scope)
        .append_pair("state", "st")
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    let callback = browser.sign_in_and_consent(url.as_str(), EMAIL, PASSWORD).await;
    let code = query_param(&callback, "code").unwrap_or_else(|| panic!("no code in {callback}"));
    let response = reqwest::Client::new()
        .post(sluis.url("/token"))
        .basic_auth(client["client_id"].as_str().unwrap(), client["client_secret"].as_str())
        .form(&[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", REDIRECT_URI), ("code_verifier", &verifier)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn userinfo_status(sluis: &ServedSluis, token: &str) -> (u16, String) {
    let response = reqwest::Client::new().get(sluis.url("/userinfo")).bearer_auth(token).send().await.unwrap();
    let challenge = response.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    (response.status().as_u16(), challenge)
}

#[tokio::test]
async fn node_rp_gets_email_only_after_the_admin_verifies_it() {
    let sluis = ServedSluis::start().await;
    let user = sluis.create_user(EMAIL, "Ada Lovelace");
    let mut args = vec!["--unverified"];
    args.extend(ALL_GRANTS);
    let shop = sluis.create_client(&args);
    assert_eq!(shop["status"], "unverified", "{shop}");
    let shop_id = shop["client_id"].as_str().unwrap();
    let sub = expected_sub(&sluis, &shop, &user);

    // The user API before the first sign-in: the same 404 as for nobody at all.
    let api_token = client_token(&sluis, &shop).await;
    assert_eq!(user_api(&sluis, &api_token, &sub).await, (404, not_found_body()), "before the first sign-in");
    assert_eq!(user_api(&sluis, &api_token, "nobody").await, (404, not_found_body()), "a nonexistent sub");

    // Unverified: asking for openid email completes, granted openid only, no email anywhere.
    let unverified = [("RP_SCOPE", "openid email"), ("RP_EXPECT_EMAIL", "absent")];
    let first = node_flow_ok(&sluis, &shop, &unverified);
    assert_eq!(first["scope"], "openid", "granted scope: {first}");
    assert_eq!(first["consent_shown"], true, "{first}");
    assert_eq!(first["sub"], sub.as_str(), "the pairwise sub derived from the instance secret");
    assert_eq!(user_api(&sluis, &api_token, &sub).await, (200, json!({"sub": sub})), "after the first sign-in, nothing beyond sub");

    // The same client expecting email now would fail: the script really checks.
    let (result, _) = run_node(&sluis, &shop, &[("RP_SCOPE", "openid email")]);
    assert_eq!(result["ok"], false, "email must not be released yet: {result}");
    assert!(result["error"].as_str().unwrap().contains("userinfo"), "{result}");

    // The operator verifies email for the client.
    let output = sluis.run_ok(&["client", "verify", shop_id, "--scope", "email"], None);
    let verified = single_json(&output);
    assert_eq!(verified["status"], "verified", "{verified}");
    assert!(verified["approved"].as_str().unwrap().split(' ').any(|s| s == "email"), "{verified}");

    // A new flow: consent is asked again because the granted scope grew, and email arrives.
    let second = node_flow_ok(&sluis, &shop, &[("RP_SCOPE", "openid email"), ("RP_EXPECT_EMAIL", "present")]);
    assert_eq!(second["scope"], "email openid", "{second}");
    assert_eq!(second["consent_shown"], true, "the granted scope grew, so consent is asked again: {second}");
    assert_eq!(second["sub"], sub.as_str(), "one client, one stable sub");
    let (status, body) = user_api(&sluis, &api_token, &sub).await;
    assert_eq!(status, 200, "after verification and consent: {body}");
    assert_email_claims(&body, &sub);

    // Once more: already consented, so no consent page; the same sub again.
    let third = node_flow_ok(&sluis, &shop, &[("RP_SCOPE", "openid email")]);
    assert_eq!(third["consent_shown"], false, "{third}");
    assert_eq!(third["sub"], sub.as_str());

    // Another client sees another sub for the same user.
    let forum = sluis.create_client(&[]);
    let other = node_flow_ok(&sluis, &forum, &[]);
    assert_eq!(other["scope"], "email openid profile", "{other}");
    assert_ne!(other["sub"], first["sub"], "two clients, two subs");
    assert_eq!(other["sub"], expected_sub(&sluis, &forum, &user).as_str());
    assert!(!sluis.server_log().contains(PASSWORD), "the server log contains the user's password");
}

#[tokio::test]
async fn withdrawal_and_suspension_cut_a_served_client_off() {
    let sluis = ServedSluis::start().await;
    let user = sluis.create_user(EMAIL, "Ada Lovelace");
    let shop = sluis.create_client(&ALL_GRANTS);
    let shop_id = shop["client_id"].as_str().unwrap();
    let sub = expected_sub(&sluis, &shop, &user);
    let api_token = client_token(&sluis, &shop).await;

    let tokens = code_flow(&sluis, &shop, "openid email").await;
    let (status, body) = user_api(&sluis, &api_token, &sub).await;
    assert_eq!(status, 200, "{body}");
    assert_email_claims(&body, &sub);

    // The user withdraws the app (the store operation behind /account/apps).
    let store = sluis::store::Store::connect(&sluis.database_url).await.unwrap();
    let user_id = UserId(user["id"].as_str().unwrap().to_string());
    assert!(store.withdraw_link(&user_id, &ClientId(shop_id.to_string()), SystemClock.now()).await.unwrap());
    assert_eq!(user_api(&sluis, &api_token, &sub).await, (404, not_found_body()), "after withdrawal");
    let response = reqwest::Client::new()
        .post(sluis.url("/token"))
        .basic_auth(shop_id, shop["client_secret"].as_str())
        .form(&[("grant_type", "refresh_token"), ("refresh_token", tokens["refresh_token"].as_str().unwrap())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant", "{body}");
    let (status, challenge) = userinfo_status(&sluis, tokens["access_token"].as_str().unwrap()).await;
    assert_eq!(status, 401);
    assert!(challenge.contains("invalid_token"), "{challenge}");

    // Signing in again restores access; then the operator suspends the client.
    let tokens = code_flow(&sluis, &shop, "openid email").await;
    assert_eq!(user_api(&sluis, &api_token, &sub).await.0, 200);
    assert_eq!(userinfo_status(&sluis, tokens["access_token"].as_str().unwrap()).await.0, 200);
    let output = sluis.run_ok(&["client", "suspend", shop_id], None);
    assert_eq!(single_json(&output)["status"], "suspended");
    let refused = || async { userinfo_status(&sluis, tokens["access_token"].as_str().unwrap()).await.0 == 401 };
    assert!(after_a_client_change_elsewhere(&sluis.database_url, refused).await, "the served server follows the CLI's suspension");

    let (status, challenge) = userinfo_status(&sluis, tokens["access_token"].as_str().unwrap()).await;
    assert_eq!(status, 401, "a suspended client's access token at userinfo");
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    let (status, body) = user_api(&sluis, &api_token, &sub).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_token")), "{body}");

    // And it cannot sign anyone in: the relying party gets unauthorized_client.
    let (result, _) = run_node(&sluis, &shop, &[]);
    assert_eq!(result["ok"], false, "{result}");
    assert!(result["error"].as_str().unwrap().contains("unauthorized_client"), "{result}");
}
