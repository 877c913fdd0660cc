//! UserInfo endpoint (OpenID Connect Core §5.3). Claims come from `privacy::release`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};

use super::bearer;
use crate::error::{BearerError, no_store};
use crate::privacy::ScopeSet;
use crate::state::AppState;
use crate::web::params::Params;

pub async fn get_userinfo(State(app): State<AppState>, headers: HeaderMap) -> Result<Response, BearerError> {
    let token = bearer::extract(&headers, None)?;
    userinfo(&app, &token).await
}

pub async fn post_userinfo(State(app): State<AppState>, headers: HeaderMap, body: Bytes) -> Result<Response, BearerError> {
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("application/x-www-form-urlencoded"));
    let form = if is_form {
        Some(Params::parse(&body).map_err(|e| BearerError::invalid_request(e.to_string()))?)
    } else {
        None
    };
    let token = bearer::extract(&headers, form.as_ref())?;
    userinfo(&app, &token).await
}

async fn userinfo(app: &AppState, token: &str) -> Result<Response, BearerError> {
    let access = bearer::validate(app, token).await?;
    let Some(grant) = access.grant else {
        return Err(BearerError::invalid_token("this token does not represent a user"));
    };
    let scope = ScopeSet::parse(&access.claims.scope).unwrap_or_default();
    if !scope.contains("openid") {
        return Err(BearerError::insufficient_scope("the openid scope is required"));
    }
    let subject = access.subject.filter(|s| s.user.id == grant.auth.user_id).ok_or_else(|| BearerError::invalid_token("the user no longer exists"))?;
    let claims = super::claims::released_claims(app, &access.client, &subject, &scope, "userinfo").await?;
    Ok((no_store(), Json(claims)).into_response())
}
