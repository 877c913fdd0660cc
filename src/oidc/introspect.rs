//! Token introspection (RFC 7662). A client learns only about its own tokens; anything
//! else is simply `{"active": false}`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::client_auth;
use super::token::form_params;
use crate::crypto::stored_token_key;
use crate::error::{ErrorCode, OAuthError, no_store};
use crate::state::AppState;

pub async fn post_introspect(State(app): State<AppState>, headers: HeaderMap, body: Bytes) -> Result<Response, OAuthError> {
    let params = form_params(&headers, &body)?;
    let client = client_auth::authenticate(&app, &headers, &params).await?;
    if client.is_public() {
        // RFC 7662 §2.1: the endpoint requires authorization; a public client has none.
        return Err(OAuthError::new(ErrorCode::InvalidClient, "public clients cannot introspect"));
    }
    let token = params.get("token").ok_or_else(|| OAuthError::invalid_request("token is required"))?;
    let now = app.now();
    let inactive = json!({"active": false});

    let answer: Value = if let Some(refresh) = app.store.refresh_token(&stored_token_key(token)).await? {
        if refresh.grant.client_id == client.id && !refresh.grant.revoked && refresh.used_at.is_none() && refresh.expires_at > now {
            json!({
                "active": true,
                "token_type": "refresh_token",
                "scope": refresh.scope,
                "client_id": client.id.as_str(),
                "sub": app.subject(&client, &refresh.grant.auth.user_id),
                "exp": refresh.expires_at,
                "iss": app.issuer(),
            })
        } else {
            inactive
        }
    } else {
        match super::bearer::validate(&app, token).await {
            Ok(access) if access.client.id == client.id => {
                let c = access.claims;
                json!({
                    "active": true,
                    "token_type": "Bearer",
                    "scope": c.scope,
                    "client_id": c.client_id,
                    "sub": c.sub,
                    "aud": c.aud,
                    "iss": c.iss,
                    "exp": c.exp,
                    "iat": c.iat,
                    "jti": c.jti,
                })
            }
            _ => inactive,
        }
    };
    Ok((no_store(), Json(answer)).into_response())
}
