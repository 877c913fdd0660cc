//! The happy path end to end over HTTP, as a relying party would see it.

use crate::support::*;

#[tokio::test]
async fn code_flow_with_pkce_issues_tokens_and_userinfo() {
    let app = TestApp::start().await;
    app.user("ada@example.com").await;
    let (client, secret) = app.client().await;
    let (code, verifier) = app.code_for(&client, "ada@example.com", "openid email profile").await;
    let tokens = app.exchange(&client, &secret, &code, &verifier).await;
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["scope"], "email openid profile");
    let id = jwt_claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(id["iss"], app.base.as_str());
    assert_eq!(id["aud"], client.id.as_str());
    assert_eq!(id["nonce"], "n");
    assert_eq!(id["amr"], serde_json::json!(["pwd"]));
    for claim in ["sub", "exp", "iat", "auth_time", "at_hash", "sid"] {
        assert!(id.get(claim).is_some(), "ID token lacks {claim}");
    }
    let userinfo: serde_json::Value = app
        .http()
        .get(app.url("/userinfo"))
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(userinfo["email"], "ada@example.com");
    assert_eq!(userinfo["name"], "Ada Lovelace");
    assert_eq!(userinfo["sub"], id["sub"]);
}
