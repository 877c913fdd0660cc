//! RFC 6749 §4.1.3 with RFC 7636 §4.6: exchanging a code, once.

use super::issue::{TokenResponse, UserGrant, user_tokens};
use crate::crypto::{pkce, sortable_id, stored_token, stored_token_key};
use crate::error::OAuthError;
use crate::model::{Client, ClientId, GrantId, GrantType};
use crate::state::AppState;
use crate::store::{CodeRedemption, NewCode, NewGrant, NewRefresh};
use crate::web::params::Params;

/// Why a code cannot be exchanged; checked where the code is consumed.
fn check(code: &NewCode, client_id: &ClientId, redirect_uri: &str, verifier: Option<&str>, now: i64) -> Result<(), OAuthError> {
    if code.client_id != *client_id {
        return Err(OAuthError::invalid_grant("the code was issued to another client"));
    }
    if code.expires_at <= now {
        return Err(OAuthError::invalid_grant("the code has expired"));
    }
    if code.redirect_uri != redirect_uri {
        return Err(OAuthError::invalid_grant("redirect_uri does not match the authorization request"));
    }
    match (&code.code_challenge, verifier) {
        (Some(challenge), Some(verifier)) if pkce::verify_s256(verifier, challenge) => Ok(()),
        (Some(_), Some(_)) => Err(OAuthError::invalid_grant("code_verifier does not match the code_challenge")),
        (Some(_), None) => Err(OAuthError::invalid_grant("code_verifier is required")),
        // RFC 9700 §2.1.1: a verifier for a code issued without a challenge is refused.
        (None, Some(_)) => Err(OAuthError::invalid_grant("code_verifier given but the request had no code_challenge")),
        (None, None) => Ok(()),
    }
}

pub async fn exchange(app: &AppState, client: &Client, params: &Params) -> Result<TokenResponse, OAuthError> {
    let code = params.get("code").ok_or_else(|| OAuthError::invalid_request("code is required"))?;
    let redirect_uri = params.get("redirect_uri").ok_or_else(|| OAuthError::invalid_request("redirect_uri is required"))?;
    let verifier = params.get("code_verifier");
    if verifier.is_some_and(|v| !pkce::is_valid_verifier(v)) {
        return Err(OAuthError::invalid_request("code_verifier is malformed"));
    }
    let now = app.now();
    let grant_id = GrantId(sortable_id());
    let refresh = client.allows_grant(GrantType::RefreshToken).then(stored_token);

    // The check runs where the code is consumed (on SQLite in the redemption thread), so
    // it owns what it compares; on a failed check it runs again below for the error, with
    // the same inputs and so the same answer.
    let decide = {
        let (client_id, redirect_uri, verifier) = (client.id.clone(), redirect_uri.to_string(), verifier.map(str::to_string));
        let grant_id = grant_id.clone();
        let refresh = refresh.as_deref().map(stored_token_key);
        let refresh_expires_at = now + i64::from(app.config.refresh_token_ttl);
        move |stored: &NewCode| {
            check(stored, &client_id, &redirect_uri, verifier.as_deref(), now).ok()?;
            Some(NewGrant {
                id: grant_id,
                client_id,
                scope: stored.scope.clone(),
                auth: stored.auth.clone(),
                created_at: now,
                refresh: refresh.map(|token_hash| NewRefresh { token_hash, scope: stored.scope.clone(), expires_at: refresh_expires_at }),
            })
        }
    };
    let stored = match app.store.redeem_code(&stored_token_key(code), &grant_id, now, decide).await? {
        CodeRedemption::Redeemed(stored) => *stored,
        CodeRedemption::Reused => return Err(OAuthError::invalid_grant("the code was already used; tokens issued from it are revoked")),
        CodeRedemption::Unknown => return Err(OAuthError::invalid_grant("the code is invalid")),
    };
    check(&stored, &client.id, redirect_uri, verifier, now)?;
    let grant = UserGrant { auth: &stored.auth, grant: &grant_id, scope: &stored.scope };
    user_tokens(app, client, &grant, stored.nonce.as_deref(), refresh)
}
