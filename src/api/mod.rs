//! The server-to-server user API: a client, with a token it obtained by
//! `client_credentials`, reads what the release rule allows about its users.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::error::{BearerError, no_store};
use crate::oidc::{bearer, claims};
use crate::privacy::ScopeSet;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/users/{sub}", get(get_user))
}

/// The same answer whether the user does not exist, never signed in to this client, or
/// withdrew it: a client cannot probe for users.
fn not_found() -> Response {
    (StatusCode::NOT_FOUND, no_store(), Json(json!({"error": "not_found", "error_description": "no such user at this client"})))
        .into_response()
}

async fn get_user(State(app): State<AppState>, headers: HeaderMap, Path(sub): Path<String>) -> Result<Response, BearerError> {
    let token = bearer::extract(&headers, None)?;
    let access = bearer::validate(&app, &token).await?;
    if access.grant.is_some() {
        return Err(BearerError::insufficient_scope("this API takes a token the client obtained with client_credentials"));
    }
    let Some(subject) = app.store.release_subject_by_sub(&access.client.id, &sub).await? else { return Ok(not_found()) };
    let Some(link) = subject.link.as_ref().filter(|l| l.withdrawn_at.is_none()) else { return Ok(not_found()) };
    // The scopes the user granted at sign-in; the rule narrows them to what still holds.
    let scope = ScopeSet::parse(&link.scope).unwrap_or_default();
    let claims = claims::released_claims(&app, &access.client, &subject, &scope, "user_api").await?;
    Ok((no_store(), Json(claims)).into_response())
}
