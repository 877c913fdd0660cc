//! RFC 6749 §4.4: a confidential client acting on its own behalf.

use super::issue::{TokenResponse, access_token};
use crate::error::{ErrorCode, OAuthError};
use crate::model::Client;
use crate::privacy::ScopeSet;
use crate::state::AppState;
use crate::web::params::Params;

/// Scopes about a user make no sense without one.
const USER_SCOPES: [&str; 6] = ["openid", "profile", "email", "address", "phone", "offline_access"];

pub async fn exchange(app: &AppState, client: &Client, params: &Params) -> Result<TokenResponse, OAuthError> {
    if client.is_public() {
        return Err(OAuthError::new(ErrorCode::UnauthorizedClient, "public clients cannot use client_credentials"));
    }
    let asked = match params.get("scope") {
        Some(s) => ScopeSet::parse(s).ok_or_else(|| OAuthError::new(ErrorCode::InvalidScope, "scope is malformed"))?,
        None => ScopeSet::default(),
    };
    if asked.iter().any(|s| USER_SCOPES.contains(&s) || !client.scopes.contains(s)) {
        return Err(OAuthError::new(ErrorCode::InvalidScope, "a requested scope is not available to this client"));
    }
    let scope = asked.to_string();
    let token = access_token(app, client, client.id.as_str(), None, &scope)?;
    Ok(TokenResponse {
        access_token: token,
        token_type: "Bearer",
        expires_in: i64::from(app.config.access_token_ttl),
        scope,
        refresh_token: None,
        id_token: None,
    })
}
