//! The JSON admin API: the same client operations as the pages and the CLI.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{Value, json};

use super::guard::AdminUser;
use super::{Actor, AdminError};
use crate::state::AppState;
use crate::web::client_ip::ClientIp;

/// Errors of the admin API, as JSON.
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = if self.0 == StatusCode::NOT_FOUND { "not_found" } else if self.0.is_server_error() { "server_error" } else { "invalid_request" };
        (self.0, Json(json!({"error": code, "error_description": self.1}))).into_response()
    }
}

impl From<AdminError> for ApiError {
    fn from(e: AdminError) -> Self {
        match e {
            AdminError::Invalid(m) => ApiError(StatusCode::BAD_REQUEST, m),
            AdminError::DuplicateEmail => ApiError(StatusCode::CONFLICT, e.to_string()),
            AdminError::Store(e) => ApiError(StatusCode::INTERNAL_SERVER_ERROR, format!("internal error {}", crate::error::log_internal(&e))),
        }
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        AdminError::Store(e).into()
    }
}

async fn client_json(app: &AppState, id: &str) -> Result<Value, ApiError> {
    let client = app.store.client(id).await?.ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no client {id:?}")))?;
    let decisions = app.store.scope_decisions(&client.id).await?;
    let scopes: Vec<Value> = client
        .scopes
        .iter()
        .map(|scope| {
            let d = decisions.iter().find(|d| d.scope == scope);
            json!({
                "scope": scope,
                "sensitive": app.scopes.is_sensitive(scope),
                "state": d.map_or("requested", |d| d.state.as_str()),
                "purpose": d.and_then(|d| d.purpose.clone()),
                "note": d.and_then(|d| d.note.clone()),
            })
        })
        .collect();
    Ok(json!({
        "client_id": client.id.as_str(),
        "name": client.name,
        "status": client.status.as_str(),
        "subject_type": if client.public_subject { "public" } else { "pairwise" },
        "redirect_uris": client.redirect_uris,
        "scopes": scopes,
    }))
}

pub async fn get_clients(State(app): State<AppState>) -> Result<Json<Value>, ApiError> {
    let clients = app.store.list_clients(None, 500, 0).await?;
    let mut out = Vec::with_capacity(clients.len());
    for c in clients {
        out.push(client_json(&app, c.id.as_str()).await?);
    }
    Ok(Json(json!({ "clients": out })))
}

pub async fn get_client(State(app): State<AppState>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    Ok(Json(client_json(&app, &id).await?))
}

#[derive(Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum Decision {
    /// Approve these scopes and verify the client.
    Verify { #[serde(default)] scopes: Vec<String> },
    Reject { scope: String, note: String },
    Suspend,
}

/// `POST /api/admin/clients/{id}` with `{"action": "verify", "scopes": [...]}`,
/// `{"action": "reject", "scope": ..., "note": ...}` or `{"action": "suspend"}`.
pub async fn post_client(
    State(app): State<AppState>,
    Extension(admin): Extension<AdminUser>,
    ClientIp(ip): ClientIp,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let decision: Decision = serde_json::from_slice(&body).map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("invalid body: {e}")))?;
    let actor = Actor { name: format!("user:{}", admin.user.id), ip };
    let now = app.now();
    // Unknown clients are a 404, not a validation message.
    app.store.client(&id).await?.ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no client {id:?}")))?;
    match decision {
        Decision::Verify { scopes } => {
            super::verify_client(&app.store, &id, &scopes, &actor, now).await?;
        }
        Decision::Reject { scope, note } => {
            if note.trim().is_empty() {
                return Err(ApiError(StatusCode::BAD_REQUEST, "a rejection needs a note for the client's owner".into()));
            }
            super::reject_scope(&app.store, &id, &scope, &note, &actor, now).await?;
        }
        Decision::Suspend => super::suspend_client(&app.store, &id, &actor, now).await?,
    }
    Ok(Json(client_json(&app, &id).await?))
}
