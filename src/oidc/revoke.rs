//! Token revocation (RFC 7009).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::client_auth;
use super::token::form_params;
use super::token::issue::AccessClaims;
use crate::crypto::jwt::{self, Expectations};
use crate::crypto::stored_token_key;
use crate::error::{OAuthError, no_store};
use crate::model::GrantId;
use crate::state::AppState;

/// RFC 7009 §2.2: 200 whether or not the token was valid, so nothing leaks. Revoking a
/// refresh token ends its grant, and with it the access tokens issued from it.
pub async fn post_revoke(State(app): State<AppState>, headers: HeaderMap, body: Bytes) -> Result<Response, OAuthError> {
    let params = form_params(&headers, &body)?;
    let client = client_auth::authenticate(&app, &headers, &params).await?;
    let token = params.get("token").ok_or_else(|| OAuthError::invalid_request("token is required"))?;
    let now = app.now();
    // The hint only orders the lookups (§2.1); unknown hints are ignored.
    if let Some(refresh) = app.store.refresh_token(&stored_token_key(token)).await? {
        if refresh.grant.client_id == client.id {
            app.store.revoke_grant(&refresh.grant.id, now).await?;
        }
    } else {
        let ring = app.keys.ring();
        let expect = Expectations { issuer: app.issuer(), typ: Some("at+jwt"), check_expiry: true, now };
        if let Ok(claims) = jwt::verify::<AccessClaims>(&ring, token, &expect)
            && claims.client_id == client.id.as_str()
        {
            app.store.revoke_access_token(&claims.jti, claims.exp).await?;
            if let Some(gid) = claims.gid {
                app.store.revoke_grant(&GrantId(gid), now).await?;
            }
        }
    }
    Ok((StatusCode::OK, no_store()).into_response())
}
