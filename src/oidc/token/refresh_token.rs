//! RFC 6749 §6 with rotation and replay detection (RFC 9700 §4.14.2).

use super::issue::{TokenResponse, UserGrant, user_tokens};
use crate::crypto::{stored_token, stored_token_key};
use crate::error::{ErrorCode, OAuthError};
use crate::model::Client;
use crate::privacy::ScopeSet;
use crate::state::AppState;
use crate::store::{NewRefresh, RefreshOutcome};
use crate::web::params::Params;

pub async fn exchange(app: &AppState, client: &Client, params: &Params) -> Result<TokenResponse, OAuthError> {
    let token = params.get("refresh_token").ok_or_else(|| OAuthError::invalid_request("refresh_token is required"))?;
    let now = app.now();
    let hash = stored_token_key(token);
    let stored = app.store.refresh_token(&hash).await?.ok_or_else(|| OAuthError::invalid_grant("the refresh token is invalid"))?;
    // Checked before rotating, so another client cannot burn this client's token.
    if stored.grant.client_id != client.id {
        return Err(OAuthError::invalid_grant("the refresh token was issued to another client"));
    }
    if stored.grant.revoked || stored.expires_at <= now {
        return Err(OAuthError::invalid_grant("the refresh token has expired or was revoked"));
    }
    let granted = ScopeSet::parse(&stored.scope).unwrap_or_default();
    // RFC 6749 §6: a narrower scope may be asked for; never a wider one.
    let scope = match params.get("scope") {
        Some(s) => {
            let asked = ScopeSet::parse(s).ok_or_else(|| OAuthError::new(ErrorCode::InvalidScope, "scope is malformed"))?;
            if !asked.is_subset(&granted) {
                return Err(OAuthError::new(ErrorCode::InvalidScope, "scope exceeds the original grant"));
            }
            asked
        }
        None => granted,
    };

    let new_token = stored_token();
    let new = NewRefresh {
        token_hash: stored_token_key(&new_token),
        scope: stored.scope.clone(),
        expires_at: now + i64::from(app.config.refresh_token_ttl),
    };
    let grace = i64::from(app.config.refresh_grace_seconds);
    match app.store.rotate_refresh(&hash, &stored.grant, &new, now, grace).await? {
        RefreshOutcome::Rotated | RefreshOutcome::ConcurrentlyRotated => {}
        RefreshOutcome::Replayed => {
            tracing::warn!(client = %client.id, "refresh token replayed; grant revoked");
            return Err(OAuthError::invalid_grant("the refresh token was already used; the grant is revoked"));
        }
    }
    let scope = scope.to_string();
    let grant = UserGrant { auth: &stored.grant.auth, grant: &stored.grant.id, scope: &scope };
    // OpenID Connect Core §12.2: the new ID token carries no nonce.
    user_tokens(app, client, &grant, None, Some(new_token))
}
