//! RFC 6749 §4.1.3 with RFC 7636 §4.6: exchanging a code, once.

use super::issue::{TokenResponse, UserGrant, user_tokens};
use crate::crypto::{pkce, random_id, random_token, token_hash};
use crate::error::OAuthError;
use crate::model::{Client, GrantId, GrantType};
use crate::state::AppState;
use crate::store::{CodeRedemption, NewCode, NewGrant, NewRefresh};
use crate::web::params::Params;

/// Why a code cannot be exchanged; checked inside the redemption transaction.
fn check(code: &NewCode, client: &Client, redirect_uri: &str, verifier: Option<&str>, now: i64) -> Result<(), OAuthError> {
    if code.client_id != client.id {
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
    let grant_id = GrantId(random_id());
    let refresh = client.allows_grant(GrantType::RefreshToken).then(random_token);

    let mut failure = None;
    let outcome = app
        .store
        .redeem_code(&token_hash(code), &grant_id, now, |stored| match check(stored, client, redirect_uri, verifier, now) {
            Ok(()) => Some(NewGrant {
                id: grant_id.clone(),
                client_id: client.id.clone(),
                scope: stored.scope.clone(),
                auth: stored.auth.clone(),
                created_at: now,
                refresh: refresh.as_ref().map(|token| NewRefresh {
                    token_hash: token_hash(token),
                    scope: stored.scope.clone(),
                    expires_at: now + i64::from(app.config.refresh_token_ttl),
                }),
            }),
            Err(e) => {
                failure = Some(e);
                None
            }
        })
        .await?;
    let stored = match outcome {
        CodeRedemption::Redeemed(stored) => *stored,
        CodeRedemption::Reused => return Err(OAuthError::invalid_grant("the code was already used; tokens issued from it are revoked")),
        CodeRedemption::Unknown => return Err(OAuthError::invalid_grant("the code is invalid")),
    };
    if let Some(failure) = failure {
        return Err(failure);
    }
    let grant = UserGrant { auth: &stored.auth, grant: &grant_id, scope: &stored.scope };
    user_tokens(app, client, &grant, stored.nonce.as_deref(), refresh)
}
