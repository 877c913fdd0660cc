//! Discovery (OpenID Connect Discovery 1.0 §3, RFC 8414 §2–3) and the JWKS (RFC 7517).

use serde_json::{Value, json};

use crate::support::*;

async fn get_json(app: &TestApp, path: &str) -> (reqwest::header::HeaderMap, Value) {
    let response = app.http().get(app.url(path)).send().await.unwrap();
    assert_eq!(response.status(), 200, "GET {path}");
    let headers = response.headers().clone();
    (headers, response.json().await.unwrap())
}

fn strings(value: &Value) -> Vec<&str> {
    value.as_array().unwrap_or_else(|| panic!("not an array: {value}")).iter().map(|v| v.as_str().unwrap()).collect()
}

#[tokio::test]
async fn openid_configuration_describes_this_issuer() {
    let app = TestApp::start().await;
    let (headers, doc) = get_json(&app, "/.well-known/openid-configuration").await;
    assert!(headers["content-type"].to_str().unwrap().starts_with("application/json"));
    // OpenID Connect Discovery §4.3: issuer must be identical to the URL it was fetched under.
    assert_eq!(doc["issuer"], app.base.as_str());
    for (field, path) in [
        ("authorization_endpoint", "/authorize"),
        ("token_endpoint", "/token"),
        ("userinfo_endpoint", "/userinfo"),
        ("jwks_uri", "/jwks"),
        ("revocation_endpoint", "/revoke"),
        ("introspection_endpoint", "/introspect"),
        ("end_session_endpoint", "/logout"),
    ] {
        assert_eq!(doc[field], app.url(path).as_str(), "{field}");
    }
    assert_eq!(doc["response_types_supported"], json!(["code"]));
    // RFC 9700 §2.1.1: plain gives no protection, only S256 is offered.
    assert_eq!(doc["code_challenge_methods_supported"], json!(["S256"]));
    let types = doc["subject_types_supported"].as_array().unwrap();
    assert!(types.contains(&json!("pairwise")), "pairwise subjects are the default: {types:?}");
    let algs = strings(&doc["id_token_signing_alg_values_supported"]);
    for alg in ["RS256", "ES256", "EdDSA"] {
        assert!(algs.contains(&alg), "{alg} not advertised: {algs:?}");
    }
    assert!(!algs.contains(&"none"), "alg none must never be offered");
    assert_eq!(doc["authorization_response_iss_parameter_supported"], true);
    assert_eq!(doc["request_parameter_supported"], false);
    assert_eq!(doc["request_uri_parameter_supported"], false);
    let scopes = strings(&doc["scopes_supported"]);
    assert!(scopes.contains(&"openid"));
    let grants = strings(&doc["grant_types_supported"]);
    for grant in ["authorization_code", "refresh_token", "client_credentials"] {
        assert!(grants.contains(&grant), "{grant}");
    }
    assert!(!grants.contains(&"implicit") && !grants.contains(&"password"), "{grants:?}");
    let auth_methods = strings(&doc["token_endpoint_auth_methods_supported"]);
    for method in ["client_secret_basic", "client_secret_post", "none"] {
        assert!(auth_methods.contains(&method), "{method}");
    }
    let modes = strings(&doc["response_modes_supported"]);
    assert!(modes.contains(&"query") && modes.contains(&"form_post"), "{modes:?}");
    let claims = strings(&doc["claims_supported"]);
    for claim in ["sub", "iss", "email", "name"] {
        assert!(claims.contains(&claim), "{claim}");
    }
    // Every list names each value once.
    for (field, values) in doc.as_object().unwrap().iter().filter_map(|(k, v)| v.as_array().map(|a| (k, a))) {
        let mut seen = std::collections::HashSet::new();
        assert!(values.iter().all(|v| seen.insert(v.to_string())), "{field} repeats a value: {values:?}");
    }
}

#[tokio::test]
async fn rfc8414_metadata_matches_openid_configuration() {
    let app = TestApp::start().await;
    let (_, oidc) = get_json(&app, "/.well-known/openid-configuration").await;
    let (headers, oauth) = get_json(&app, "/.well-known/oauth-authorization-server").await;
    assert!(headers["content-type"].to_str().unwrap().starts_with("application/json"));
    // RFC 8414 §3.3: the issuer must be the one the metadata was requested for.
    assert_eq!(oauth["issuer"], app.base.as_str());
    assert_eq!(oidc, oauth);
}

#[tokio::test]
async fn every_advertised_endpoint_is_reachable() {
    let app = TestApp::start().await;
    let (_, doc) = get_json(&app, "/.well-known/openid-configuration").await;
    let http = app.http();
    let url = |field: &str| doc[field].as_str().unwrap().to_string();

    // Without parameters each endpoint refuses the request in its own protocol's way,
    // which proves it is there (not the 404 fallback).
    let authorize = http.get(url("authorization_endpoint")).send().await.unwrap();
    assert_eq!(authorize.status(), 400);
    assert!(authorize.headers().get("location").is_none());

    let token = http.post(url("token_endpoint")).form(&[("grant_type", "client_credentials")]).send().await.unwrap();
    assert_eq!(token.status(), 401);
    assert_eq!(token.json::<Value>().await.unwrap()["error"], "invalid_client");

    let userinfo = http.get(url("userinfo_endpoint")).send().await.unwrap();
    assert_eq!(userinfo.status(), 401);
    assert!(userinfo.headers()["www-authenticate"].to_str().unwrap().starts_with("Bearer"));

    let jwks = http.get(url("jwks_uri")).send().await.unwrap();
    assert_eq!(jwks.status(), 200);

    for field in ["revocation_endpoint", "introspection_endpoint"] {
        let response = http.post(url(field)).form(&[("token", "x")]).send().await.unwrap();
        assert_eq!(response.status(), 401, "{field}");
        assert_eq!(response.json::<Value>().await.unwrap()["error"], "invalid_client", "{field}");
    }

    // Nobody signed in and nothing to redirect to: the signed-out page.
    let logout = http.get(url("end_session_endpoint")).send().await.unwrap();
    assert_eq!(logout.status(), 200);
    assert!(logout.text().await.unwrap().contains("signed out"));
}

#[tokio::test]
async fn jwks_publishes_only_public_keys_for_each_algorithm() {
    let app = TestApp::start().await;
    let (headers, jwks) = get_json(&app, "/jwks").await;
    let content_type = headers["content-type"].to_str().unwrap();
    assert!(content_type.starts_with("application/jwk-set+json") || content_type.starts_with("application/json"), "{content_type}");
    let keys = jwks["keys"].as_array().unwrap();
    let mut kids = Vec::new();
    for (alg, kty, curve) in [("RS256", "RSA", None), ("ES256", "EC", Some("P-256")), ("EdDSA", "OKP", Some("Ed25519"))] {
        let key = keys.iter().find(|k| k["alg"] == alg).unwrap_or_else(|| panic!("no {alg} key in {jwks}"));
        assert_eq!(key["kty"], kty, "{alg}");
        assert_eq!(key["use"], "sig", "{alg}");
        if let Some(curve) = curve {
            assert_eq!(key["crv"], curve, "{alg}");
        }
        // A usable public key: jsonwebtoken can build a verifier from it.
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(key.clone()).unwrap();
        assert!(jsonwebtoken::DecodingKey::from_jwk(&jwk).is_ok(), "{alg}");
    }
    for key in keys {
        let kid = key["kid"].as_str().filter(|k| !k.is_empty()).unwrap_or_else(|| panic!("key without kid: {key}"));
        kids.push(kid.to_string());
        assert!(key["alg"].is_string() && key["use"] == "sig", "{key}");
        // RFC 7518 §6.2.2, §6.3.2, RFC 8037 §2: private members must never be published.
        for private in ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] {
            assert!(key.get(private).is_none(), "JWKS publishes private member {private}: {key}");
        }
    }
    kids.sort();
    kids.dedup();
    assert_eq!(kids.len(), keys.len(), "kids are not unique");
}

#[tokio::test]
async fn browser_clients_may_fetch_metadata_and_keys() {
    let app = TestApp::start().await;
    let http = app.http();
    for path in ["/.well-known/openid-configuration", "/jwks"] {
        let response = http.get(app.url(path)).header("origin", "https://spa.example").send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["access-control-allow-origin"], "*", "{path}");
        assert!(response.headers().get("access-control-allow-credentials").is_none(), "{path}");
    }
    // The authorization endpoint is a navigation, not an API.
    let authorize = http.get(app.url("/authorize")).header("origin", "https://spa.example").send().await.unwrap();
    assert!(authorize.headers().get("access-control-allow-origin").is_none());
}

/// A browser asks first (a CORS preflight) when its request carries a header such as
/// `Authorization`: the documents and the client endpoints allow any origin, without
/// credentials, and the same answer for every origin.
#[tokio::test]
async fn cors_preflights_are_answered_for_metadata_and_client_endpoints() {
    let app = TestApp::start().await;
    let http = app.http();
    for (path, method) in [("/.well-known/openid-configuration", "GET"), ("/.well-known/oauth-authorization-server", "GET"), ("/jwks", "GET"), ("/token", "POST"), ("/userinfo", "GET")] {
        let response = http
            .request(reqwest::Method::OPTIONS, app.url(path))
            .header("origin", "https://spa.example")
            .header("access-control-request-method", method)
            .header("access-control-request-headers", "authorization")
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{path}: {}", response.status());
        let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
        assert_eq!(header("access-control-allow-origin"), "*", "{path}");
        assert!(header("access-control-allow-methods").contains(&method.to_ascii_lowercase()), "{path}: {}", header("access-control-allow-methods"));
        assert!(header("access-control-allow-headers").contains("authorization"), "{path}");
        assert!(response.headers().get("access-control-allow-credentials").is_none(), "{path}");
    }
    // The documents answer every origin alike, so a cache needs no Vary.
    let jwks = http.get(app.url("/jwks")).header("origin", "https://other.example").send().await.unwrap();
    assert_eq!(jwks.headers()["access-control-allow-origin"], "*");
    assert!(jwks.headers().get("vary").is_none());
}

/// Protocol endpoints are for client apps: they neither read nor write the browser session,
/// so a cookie a browser-based client sends along changes nothing and none is set.
#[tokio::test]
async fn protocol_endpoints_never_set_or_touch_the_session_cookie() {
    let app = TestApp::start().await;
    app.user("ada@example.com").await;
    let browser = app.signed_in("ada@example.com").await;
    let (client, secret) = app.client_with(|s| s.grant_types.push("client_credentials".into())).await;
    let secret = secret.unwrap();
    for path in ["/.well-known/openid-configuration", "/.well-known/oauth-authorization-server", "/jwks", "/userinfo", "/api/users/nobody"] {
        let response = browser.get(path).await;
        assert!(response.headers().get("set-cookie").is_none(), "GET {path} set a cookie");
    }
    let response = browser.http.post(app.url("/token")).basic_auth(client.id.as_str(), Some(&secret)).form(&[("grant_type", "client_credentials")]).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("set-cookie").is_none(), "POST /token set a cookie");
    // The browser is still signed in: nothing above ended or replaced its session.
    let account = browser.get("/account").await;
    assert_eq!(account.status(), 200);
}
