//! Token endpoint (RFC 6749 §3.2): one file per grant type.

mod authorization_code;
mod client_credentials;
pub mod issue;
mod refresh_token;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};

use super::client_auth;
use crate::error::{ErrorCode, OAuthError, no_store};
use crate::model::GrantType;
use crate::state::AppState;
use crate::web::params::Params;

pub async fn post_token(State(app): State<AppState>, headers: HeaderMap, body: Bytes) -> Result<Response, OAuthError> {
    let params = form_params(&headers, &body)?;
    let client = client_auth::authenticate(&app, &headers, &params).await?;
    let grant_type = params.get("grant_type").ok_or_else(|| OAuthError::invalid_request("grant_type is required"))?;
    let grant_type = GrantType::parse(grant_type)
        .ok_or_else(|| OAuthError::new(ErrorCode::UnsupportedGrantType, "this grant type is not supported"))?;
    if !client.allows_grant(grant_type) {
        return Err(OAuthError::new(ErrorCode::UnauthorizedClient, "this client may not use this grant type"));
    }
    let response = match grant_type {
        GrantType::AuthorizationCode => authorization_code::exchange(&app, &client, &params).await?,
        GrantType::RefreshToken => refresh_token::exchange(&app, &client, &params).await?,
        GrantType::ClientCredentials => client_credentials::exchange(&app, &client, &params).await?,
    };
    Ok((no_store(), Json(response)).into_response())
}

/// RFC 6749 §3.2: the body is `application/x-www-form-urlencoded`.
pub fn form_params(headers: &HeaderMap, body: &[u8]) -> Result<Params, OAuthError> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let mime = content_type.split(';').next().unwrap_or("").trim();
    if !mime.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return Err(OAuthError::invalid_request("the body must be application/x-www-form-urlencoded"));
    }
    Params::parse(body).map_err(|e| OAuthError::invalid_request(e.to_string()))
}
