//! Real relying parties against the real binary: node `openid-client`, python `authlib`, and
//! rust `openidconnect`, each running the whole code flow against `sluis serve`.

use std::process::Command;
use std::time::Duration;

use openidconnect::core::{
    CoreAuthDisplay, CoreClaimName, CoreClaimType, CoreClient, CoreClientAuthMethod, CoreErrorResponseType, CoreGrantType,
    CoreJsonWebKey, CoreJweContentEncryptionAlgorithm, CoreJweKeyManagementAlgorithm, CoreJwsSigningAlgorithm,
    CoreResponseMode, CoreResponseType, CoreRevocableToken, CoreSubjectIdentifierType, CoreUserInfoClaims,
};
use openidconnect::{
    AccessTokenHash, AdditionalProviderMetadata, AuthenticationFlow, AuthorizationCode, ClientId, ClientSecret, CsrfToken,
    IssuerUrl, Nonce, OAuth2TokenResponse, PkceCodeChallenge, ProviderMetadata, RedirectUrl, RequestTokenError, RevocationUrl,
    Scope, TokenResponse,
};
use serde::{Deserialize, Serialize};

use crate::served::{ServedSluis, rp_dir, run_bounded, stderr, stdout};
use crate::support::{Browser, PASSWORD, POST_LOGOUT_URI, REDIRECT_URI, query_param};

/// The scripts have their own 90 s overall timeout; this is the backstop.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);
const EMAIL: &str = "ada@example.com";

const INSTALL_HINT: &str = "run ./scripts/test.sh to install test dependencies";

/// A served Sluis with one user and one client (confidential unless `public`).
async fn served_with_client(extra: &[&str]) -> (ServedSluis, serde_json::Value) {
    let sluis = ServedSluis::start().await;
    sluis.create_user(EMAIL, "Ada Lovelace");
    let client = sluis.create_client(extra);
    (sluis, client)
}

/// Runs a relying-party script against a fresh served Sluis and asserts it reported success.
async fn run_script(program: &str, script: &str, public: bool) {
    let (sluis, client) = served_with_client(if public { &["--public"] } else { &[] }).await;
    let secret = client["client_secret"].as_str().unwrap_or("");
    assert_eq!(secret.is_empty(), public, "client_secret presence must match --public: {client}");
    let mut command = Command::new(program);
    command
        .arg(script)
        .env("RP_ISSUER", &sluis.base)
        .env("RP_CLIENT_ID", client["client_id"].as_str().unwrap())
        .env("RP_CLIENT_SECRET", secret)
        .env("RP_REDIRECT_URI", REDIRECT_URI)
        .env("RP_POST_LOGOUT_REDIRECT_URI", POST_LOGOUT_URI)
        .env("RP_USER_EMAIL", EMAIL)
        .env("RP_USER_PASSWORD", PASSWORD);
    let output = run_bounded(&mut command, None, SCRIPT_TIMEOUT);
    let out = stdout(&output);
    let ok_line = out.lines().any(|line| {
        serde_json::from_str::<serde_json::Value>(line).is_ok_and(|v| v["ok"] == serde_json::Value::Bool(true))
    });
    assert!(
        output.status.success() && ok_line,
        "{script} ({}) failed with {}\n--- stdout ---\n{out}\n--- stderr ---\n{}\n--- server log ---\n{}",
        if public { "public client" } else { "confidential client" },
        output.status,
        stderr(&output),
        sluis.server_log(),
    );
    assert!(!sluis.server_log().contains(PASSWORD), "the server log contains the user's password");
}

fn node() -> (String, String) {
    let dir = rp_dir().join("node");
    assert!(
        dir.join("node_modules/openid-client").is_dir(),
        "{} has no node_modules/openid-client: {INSTALL_HINT}",
        dir.display()
    );
    ("node".into(), dir.join("flow.mjs").display().to_string())
}

fn python() -> (String, String) {
    let dir = rp_dir().join("python");
    let interpreter = dir.join(".venv/bin/python");
    assert!(interpreter.is_file(), "{} is missing: {INSTALL_HINT}", interpreter.display());
    (interpreter.display().to_string(), dir.join("flow.py").display().to_string())
}

#[tokio::test]
async fn node_openid_client_confidential() {
    let (program, script) = node();
    run_script(&program, &script, false).await;
}

#[tokio::test]
async fn node_openid_client_public() {
    let (program, script) = node();
    run_script(&program, &script, true).await;
}

#[tokio::test]
async fn python_authlib_confidential() {
    let (program, script) = python();
    run_script(&program, &script, false).await;
}

#[tokio::test]
async fn python_authlib_public() {
    let (program, script) = python();
    run_script(&program, &script, true).await;
}

// --- rust: openidconnect -------------------------------------------------------------------

/// Discovery with the revocation endpoint, which the core metadata type does not carry.
#[derive(Clone, Debug, Deserialize, Serialize)]
struct RevocationMetadata {
    revocation_endpoint: String,
}
impl AdditionalProviderMetadata for RevocationMetadata {}

type SluisProviderMetadata = ProviderMetadata<
    RevocationMetadata,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

/// The whole life cycle through `openidconnect`: discovery, authorization URL with PKCE S256
/// and nonce, login and consent, code exchange, ID token verification against the JWKS,
/// userinfo, refresh, revocation (then the revoked refresh token is refused).
async fn openidconnect_flow(signing_alg: Option<&str>, public: bool) {
    let mut extra = vec![];
    if let Some(alg) = signing_alg {
        extra.extend(["--signing-alg", alg]);
    }
    if public {
        extra.push("--public");
    }
    let (sluis, registered) = served_with_client(&extra).await;
    let expected_alg = match signing_alg.unwrap_or("RS256") {
        "RS256" => CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
        "ES256" => CoreJwsSigningAlgorithm::EcdsaP256Sha256,
        "EdDSA" => CoreJwsSigningAlgorithm::EdDsa,
        other => panic!("unexpected alg {other}"),
    };

    let http = openidconnect::reqwest::ClientBuilder::new()
        .redirect(openidconnect::reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let issuer = IssuerUrl::new(sluis.base.clone()).unwrap();
    let metadata = SluisProviderMetadata::discover_async(issuer, &http).await.expect("discovery");
    // RFC 7009 §2: the client must check that the revocation endpoint is https, and the crate
    // does; the test server is plain http on loopback, so the client is told https and
    // `plain_http` (below) sends that one request over http.
    let revocation_endpoint = metadata.additional_metadata().revocation_endpoint.clone();
    assert_eq!(revocation_endpoint, sluis.url("/revoke"));
    let revocation = RevocationUrl::new(revocation_endpoint.replacen("http://", "https://", 1)).unwrap();
    let secret = registered["client_secret"].as_str().map(|s| ClientSecret::new(s.to_string()));
    assert_eq!(secret.is_none(), public);
    let client = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(registered["client_id"].as_str().unwrap().to_string()),
        secret,
    )
    .set_redirect_uri(RedirectUrl::new(REDIRECT_URI.to_string()).unwrap())
    .set_revocation_url(revocation);

    // Authorization request.
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (auth_url, csrf, nonce) = client
        .authorize_url(AuthenticationFlow::<CoreResponseType>::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("profile".into()))
        .add_scope(Scope::new("offline_access".into()))
        .set_pkce_challenge(challenge)
        .url();
    let browser = Browser {
        http: reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().unwrap(),
        base: sluis.base.clone(),
    };
    let callback = browser.sign_in_and_consent(auth_url.as_str(), EMAIL, PASSWORD).await;
    assert!(callback.as_str().starts_with(REDIRECT_URI), "callback {callback}");
    assert_eq!(query_param(&callback, "state").as_deref(), Some(csrf.secret().as_str()), "state echoed");
    assert_eq!(query_param(&callback, "iss").as_deref(), Some(sluis.base.as_str()), "RFC 9207 iss");
    let code = query_param(&callback, "code").unwrap_or_else(|| panic!("no code in {callback}"));

    // Code exchange and ID token verification (signature against the JWKS, iss, aud, exp, nonce).
    let tokens = client
        .exchange_code(AuthorizationCode::new(code))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .unwrap_or_else(|e| panic!("code exchange: {e:?}"));
    let id_token = tokens.id_token().expect("an ID token");
    let id_verifier = client.id_token_verifier().set_allowed_algs([expected_alg.clone()]);
    let claims = id_token.claims(&id_verifier, &nonce).unwrap_or_else(|e| panic!("ID token rejected: {e:?}"));
    assert_eq!(id_token.signing_alg().unwrap(), &expected_alg);
    let at_hash = claims.access_token_hash().expect("at_hash in the ID token");
    let expected = AccessTokenHash::from_token(
        tokens.access_token(),
        id_token.signing_alg().unwrap(),
        id_token.signing_key(&id_verifier).unwrap(),
    )
    .unwrap();
    assert_eq!(at_hash, &expected, "at_hash matches the access token");
    let sub = claims.subject().clone();

    // A wrong nonce must fail verification: the verifier really checks it.
    assert!(id_token.claims(&id_verifier, &Nonce::new("other".into())).is_err());

    // Userinfo, with the subject checked against the ID token's.
    let userinfo: CoreUserInfoClaims = client
        .user_info(tokens.access_token().clone(), Some(sub.clone()))
        .unwrap()
        .request_async(&http)
        .await
        .unwrap_or_else(|e| panic!("userinfo: {e:?}"));
    assert_eq!(userinfo.email().map(|e| e.as_str()), Some(EMAIL));
    assert_eq!(userinfo.name().and_then(|n| n.get(None)).map(|n| n.as_str()), Some("Ada Lovelace"));

    // Refresh: a new access token and a rotated refresh token.
    let refresh = tokens.refresh_token().expect("a refresh token (offline_access)").clone();
    let refreshed = client
        .exchange_refresh_token(&refresh)
        .unwrap()
        .request_async(&http)
        .await
        .unwrap_or_else(|e| panic!("refresh: {e:?}"));
    let rotated = refreshed.refresh_token().expect("a rotated refresh token").clone();
    assert_ne!(rotated.secret(), refresh.secret(), "refresh token rotated");
    assert_ne!(refreshed.access_token().secret(), tokens.access_token().secret());
    if let Some(new_id) = refreshed.id_token() {
        let new_claims = new_id.claims(&id_verifier, |_: Option<&Nonce>| Ok(())).unwrap_or_else(|e| panic!("refreshed ID token: {e:?}"));
        assert_eq!(new_claims.subject(), &sub);
    }

    // Revocation, after which the refresh token is refused.
    let plain_http = |mut request: openidconnect::HttpRequest| {
        let http = http.clone();
        async move {
            let uri = request.uri().to_string().replacen("https://", "http://", 1);
            *request.uri_mut() = uri.parse().unwrap();
            openidconnect::AsyncHttpClient::call(&http, request).await
        }
    };
    client
        .revoke_token(CoreRevocableToken::from(rotated.clone()))
        .unwrap()
        .request_async(&plain_http)
        .await
        .unwrap_or_else(|e| panic!("revocation: {e:?}"));
    match client.exchange_refresh_token(&rotated).unwrap().request_async(&http).await {
        Err(RequestTokenError::ServerResponse(e)) => assert_eq!(e.error(), &CoreErrorResponseType::InvalidGrant),
        other => panic!("refresh with a revoked token: expected invalid_grant, got {other:?}"),
    }
}

#[tokio::test]
async fn rust_openidconnect_rs256_confidential() {
    openidconnect_flow(None, false).await;
}

#[tokio::test]
async fn rust_openidconnect_es256_confidential() {
    openidconnect_flow(Some("ES256"), false).await;
}

#[tokio::test]
async fn rust_openidconnect_eddsa_public() {
    openidconnect_flow(Some("EdDSA"), true).await;
}
