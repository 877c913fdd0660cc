//! The OpenID Connect / OAuth 2.0 protocol endpoints.

pub mod authorize;
pub mod authorize_request;
pub(crate) mod bearer;
pub(crate) mod claims;
mod client_auth;
mod discovery;
mod end_session;
mod introspect;
pub mod redirect_uri;
mod revoke;
pub mod token;
mod userinfo;

use axum::Router;
use axum::http::{Method, header};
use axum::routing::{MethodRouter, get, options, post};
use tower_http::cors::{Any, CorsLayer};

pub use discovery::document as discovery_document;

use crate::state::AppState;

/// Endpoints that clients call with their credentials or a token, never with the browser
/// session: they sit outside the session layer (see `crate::app`).
pub fn client_router() -> Router<AppState> {
    Router::new()
        .route("/token", post(token::post_token))
        .route("/userinfo", get(userinfo::get_userinfo).post(userinfo::post_userinfo))
        .route("/revoke", post(revoke::post_revoke))
        .route("/introspect", post(introspect::post_introspect))
        .layer(cors())
}

/// Discovery and the signing keys: static bytes, for clients and resource servers alike.
/// Their answers carry their CORS header themselves (`discovery::json_bytes`); only the
/// preflight goes through the `CorsLayer`, which builds its headers anew for every request
/// and took a seventh of discovery's throughput (docs/performance.md).
pub fn metadata_router() -> Router<AppState> {
    // The `CorsLayer` answers every OPTIONS request itself: the handler it wraps never runs.
    let with_preflight = |document: MethodRouter<AppState>| document.merge(options(|| async {}).layer(cors()));
    Router::new()
        .route("/.well-known/openid-configuration", with_preflight(get(discovery::get_discovery)))
        .route("/.well-known/oauth-authorization-server", with_preflight(get(discovery::get_discovery)))
        .route("/jwks", with_preflight(get(discovery::get_jwks)))
}

/// Browser-based clients call the client endpoints with fetch(): CORS without credentials.
/// Every origin gets the same answer, so no `Vary` (tower-http's default names three
/// request headers, built into a new header value on every request).
fn cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .vary([])
}

/// The endpoints the user's browser navigates to: they read and write the session. No CORS.
pub fn browser_router() -> Router<AppState> {
    Router::new()
        .route("/authorize", get(authorize::get_authorize).post(authorize::post_authorize))
        .route("/authorize/resume", get(authorize::get_resume))
        .route("/logout", get(end_session::get_logout).post(end_session::post_logout))
}
