//! The consent page: lists, in plain words, what the client will receive.

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tower_sessions::Session;

use super::session;
use crate::error::{ErrorCode, PageError};
use crate::model::ClientId;
use crate::oidc::authorize::{error_response, expired_page, load_pending};
use crate::privacy::ScopeSet;
use crate::state::AppState;
use crate::web::params::Params;
use crate::web::templates::{ConsentPage, ScopeLine};
use crate::web::{csrf, render, see_other};

#[derive(Deserialize)]
pub struct ConsentQuery {
    request_id: String,
}

pub async fn get_consent(State(app): State<AppState>, session: Session, Query(q): Query<ConsentQuery>) -> Response {
    match show(&app, &session, &q.request_id).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn show(app: &AppState, session: &Session, request_id: &str) -> Result<Response, PageError> {
    let Some((request, _)) = load_pending(app, request_id).await? else { return Err(expired_page()) };
    let Some(auth) = session::current(session).await? else {
        return Ok(see_other(&format!("/login?request_id={request_id}")));
    };
    let user = app.store.user(&auth.user_id).await?.ok_or_else(expired_page)?;
    let client = app.store.client(&request.client_id).await?.ok_or_else(expired_page)?;
    let scope = ScopeSet::parse(&request.scope).unwrap_or_default();
    let scopes = scope
        .iter()
        .map(|name| ScopeLine {
            name: name.to_string(),
            description: app.scopes.get(name).map_or_else(|| format!("Access named “{name}”"), |s| s.description.to_string()),
        })
        .collect();
    let token = csrf::token(session).await?;
    let page = render(&ConsentPage { csrf_token: &token, request_id, client_name: &client.name, user_email: &user.email, scopes });
    Ok(crate::web::allow_form_redirect_to(page, &request.redirect_uri))
}

pub async fn post_consent(State(app): State<AppState>, session: Session, body: Bytes) -> Response {
    match decide(&app, &session, &body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn decide(app: &AppState, session: &Session, body: &[u8]) -> Result<Response, PageError> {
    let form = Params::parse(body).map_err(|_| PageError::bad_request("The form could not be read."))?;
    csrf::verify(session, form.get("csrf_token")).await?;
    let request_id = form.get("request_id").unwrap_or("");
    let Some((mut request, _)) = load_pending(app, request_id).await? else { return Err(expired_page()) };
    let Some(auth) = session::current(session).await? else {
        return Ok(see_other(&format!("/login?request_id={request_id}")));
    };
    match form.get("decision") {
        Some("allow") => {
            let client = ClientId(request.client_id.clone());
            // Consent accumulates: what was granted earlier stays granted until withdrawn.
            let earlier = app.store.consent(&auth.user_id, &client).await?.and_then(|s| ScopeSet::parse(&s)).unwrap_or_default();
            let scope = earlier.union(&ScopeSet::parse(&request.scope).unwrap_or_default());
            if !app.store.put_consent(&auth.user_id, &client, &scope, app.now()).await? {
                return Err(crate::oidc::authorize::account_gone_page());
            }
            request.consent_given = true;
            let payload = serde_json::to_string(&request).map_err(|e| PageError::internal(&e))?;
            app.store.update_auth_request(request_id, &payload).await?;
            Ok(see_other(&format!("/authorize/resume?request_id={request_id}")))
        }
        Some("deny") => {
            app.store.delete_auth_request(request_id).await?;
            Ok(error_response(
                app,
                &request.redirect_uri,
                request.response_mode,
                request.state.as_deref(),
                ErrorCode::AccessDenied,
                Some("the user denied the request"),
            ))
        }
        _ => Err(PageError::bad_request("Choose Allow or Deny.")),
    }
}
