//! OpenID Connect Discovery 1.0 §3 and RFC 8414 metadata, built once.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::json;

use crate::config::Config;
use crate::model::{Acr, SigningAlg};
use crate::privacy::{Catalogue, SCOPES};
use crate::state::AppState;

pub fn document(config: &Config, catalogue: &Catalogue) -> Bytes {
    let iss = config.issuer();
    let algs: Vec<&str> = SigningAlg::ALL.iter().map(|a| a.as_str()).collect();
    let mut claims: Vec<&str> = vec!["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "sid", "at_hash"];
    // The openid scope releases `sub` too: each claim is named once.
    for claim in SCOPES.iter().flat_map(|s| s.claims.iter().copied()) {
        if !claims.contains(&claim) {
            claims.push(claim);
        }
    }
    let doc = json!({
        "issuer": iss,
        "authorization_endpoint": format!("{iss}/authorize"),
        "token_endpoint": format!("{iss}/token"),
        "userinfo_endpoint": format!("{iss}/userinfo"),
        "jwks_uri": format!("{iss}/jwks"),
        "revocation_endpoint": format!("{iss}/revoke"),
        "introspection_endpoint": format!("{iss}/introspect"),
        "end_session_endpoint": format!("{iss}/logout"),
        "scopes_supported": catalogue.iter().map(|s| s.name).collect::<Vec<_>>(),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query", "form_post"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "subject_types_supported": ["pairwise", "public"],
        "id_token_signing_alg_values_supported": algs,
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": claims,
        "claims_parameter_supported": false,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "prompt_values_supported": ["none", "login", "consent", "select_account"],
        "acr_values_supported": Acr::ALL.iter().map(|a| a.as_str()).collect::<Vec<_>>(),
        "authorization_response_iss_parameter_supported": true,
        "frontchannel_logout_supported": false,
        "backchannel_logout_supported": false,
    });
    Bytes::from(serde_json::to_vec(&doc).expect("discovery serialises"))
}

/// A public document: cacheable, and readable by any web origin (no credentials, so `*`;
/// the same answer for every origin, so no `Vary`).
fn json_bytes(body: Bytes) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("application/json")),
            (header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300")),
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*")),
        ],
        body,
    )
        .into_response()
}

pub async fn get_discovery(State(app): State<AppState>) -> Response {
    json_bytes(app.discovery.clone())
}

pub async fn get_jwks(State(app): State<AppState>) -> Response {
    let mut response = json_bytes(app.keys.ring().jwks());
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/jwk-set+json"));
    response
}
