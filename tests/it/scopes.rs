//! Operator-defined scopes from the config: in discovery, on the consent page, released
//! by the same rule as the standard ones.

use crate::support::*;
use sluis::privacy::CustomScope;

fn operator_scopes() -> Vec<CustomScope> {
    vec![
        CustomScope { name: "orders:read".into(), description: "Read your order history".into(), claims: vec![], sensitive: true },
        CustomScope { name: "newsletter".into(), description: "Your email address, for the newsletter".into(), claims: vec!["email".into()], sensitive: false },
    ]
}

#[tokio::test]
async fn operator_scopes_are_advertised_described_and_released_by_the_rule() {
    let app = TestApp::start_with(|c| c.scopes = operator_scopes()).await;
    app.user("ada@example.com").await;
    let doc: serde_json::Value = app.http().get(app.url("/.well-known/openid-configuration")).send().await.unwrap().json().await.unwrap();
    let supported: Vec<&str> = doc["scopes_supported"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
    assert!(supported.contains(&"orders:read") && supported.contains(&"newsletter"), "{supported:?}");

    // An unverified client: the non-sensitive operator scope is granted, the sensitive one not.
    let (client, secret) = app
        .client_with(|s| {
            s.verified = false;
            s.scopes = vec!["openid".into(), "newsletter".into(), "orders:read".into()];
        })
        .await;
    let (verifier, challenge) = pkce();
    let browser = app.browser();
    let mut response = browser.get(&app.authorize_url(&client, "openid newsletter orders:read", &challenge, &[])).await;
    let login = browser.get(&location(&response).unwrap()).await.text().await.unwrap();
    response = browser.submit(&login, &[("email", "ada@example.com"), ("password", PASSWORD)]).await;
    response = browser.get(&location(&response).unwrap()).await;
    let consent = browser.get(&location(&response).unwrap()).await.text().await.unwrap();
    assert!(consent.contains("Your email address, for the newsletter"), "{consent}");
    assert!(!consent.contains("Read your order history"), "not approved, so not asked for: {consent}");
    response = browser.submit(&consent, &[("decision", "allow")]).await;
    response = browser.get(&location(&response).unwrap()).await;
    let callback = url::Url::parse(&location(&response).unwrap()).unwrap();
    let code = query_param(&callback, "code").unwrap();
    let tokens = app.exchange(&client, secret.as_deref().unwrap(), &code, &verifier).await;
    assert_eq!(tokens["scope"], "newsletter openid");
    let userinfo: serde_json::Value =
        app.http().get(app.url("/userinfo")).bearer_auth(tokens["access_token"].as_str().unwrap()).send().await.unwrap().json().await.unwrap();
    assert_eq!(userinfo["email"], "ada@example.com", "the operator scope releases the claims it names");
    assert!(userinfo.get("name").is_none());
}

#[tokio::test]
async fn a_bad_operator_scope_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = sluis::config::Config {
        data_dir: dir.path().join("data"),
        database_url: Some(database_url(dir.path()).await),
        ..Default::default()
    };
    config.scopes = vec![CustomScope { name: "email".into(), description: "clash".into(), claims: vec![], sensitive: true }];
    let clock = std::sync::Arc::new(sluis::clock::SystemClock);
    let error = sluis::build_state(config, clock).await.unwrap_err().to_string();
    assert!(error.contains("scopes"), "{error}");
}
