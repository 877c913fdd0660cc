//! Email and password sign-in.

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tower_sessions::Session;

use super::session;
use crate::crypto::random_id;
use crate::error::PageError;
use crate::model::Authentication;
use crate::oidc::authorize::load_pending;
use crate::state::AppState;
use crate::web::params::Params;
use crate::web::templates::LoginPage;
use crate::web::{csrf, render, see_other};

/// The same words for an unknown email and a wrong password: the answer must not tell
/// whether an account exists.
const WRONG_CREDENTIALS: &str = "The email address or password is incorrect.";

#[derive(Deserialize)]
pub struct LoginQuery {
    request_id: Option<String>,
}

pub async fn get_login(State(app): State<AppState>, session: Session, Query(q): Query<LoginQuery>) -> Response {
    let request_id = q.request_id.unwrap_or_default();
    let (client_name, hint, redirect_uri) = match pending_context(&app, &request_id).await {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    page(&session, &request_id, client_name.as_deref(), redirect_uri.as_deref(), hint.as_deref().unwrap_or(""), None).await
}

pub async fn post_login(State(app): State<AppState>, session: Session, body: Bytes) -> Response {
    let Ok(form) = Params::parse(&body) else {
        return PageError::bad_request("The form could not be read.").into_response();
    };
    if let Err(e) = csrf::verify(&session, form.get("csrf_token")).await {
        return e.into_response();
    }
    let request_id = form.get("request_id").unwrap_or("");
    let email = form.get("email").unwrap_or("");
    let password = form.get("password").unwrap_or("");
    let (client_name, _, redirect_uri) = match pending_context(&app, request_id).await {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    if email.is_empty() || password.is_empty() || email.len() > 254 || password.len() > 1024 {
        return page(&session, request_id, client_name.as_deref(), redirect_uri.as_deref(), email, Some("Enter your email address and password.")).await;
    }

    let user = match app.store.user_credentials(email).await {
        Ok(u) => u,
        Err(e) => return PageError::from(e).into_response(),
    };
    let (user, hash) = match user {
        Some((user, hash)) => (Some(user), hash),
        None => (None, None),
    };
    let verified = match app.passwords.verify(hash, password.to_string()).await {
        Ok(v) => v,
        Err(e) => return PageError::internal(&e).into_response(),
    };
    let Some(user) = user.filter(|_| verified) else {
        tracing::info!(outcome = "failed", "password sign-in failed");
        return page(&session, request_id, client_name.as_deref(), redirect_uri.as_deref(), email, Some(WRONG_CREDENTIALS)).await;
    };

    let auth = Authentication { user_id: user.id, auth_time: app.now(), amr: vec!["pwd".into()], sid: random_id() };
    if let Err(e) = session::sign_in(&session, &auth).await {
        return e.into_response();
    }
    tracing::info!(outcome = "ok", "password sign-in");
    if let Err(e) = mark_login_done(&app, request_id).await {
        return e.into_response();
    }
    if request_id.is_empty() {
        see_other("/account")
    } else {
        see_other(&format!("/authorize/resume?request_id={}", url::form_urlencoded::byte_serialize(request_id.as_bytes()).collect::<String>()))
    }
}

/// Notes on the pending request that the user signed in for it (see `login_done`).
async fn mark_login_done(app: &AppState, request_id: &str) -> Result<(), PageError> {
    if request_id.is_empty() {
        return Ok(());
    }
    if let Some((mut request, _)) = load_pending(app, request_id).await? {
        request.login_done = true;
        let payload = serde_json::to_string(&request).map_err(|e| PageError::internal(&e))?;
        app.store.update_auth_request(request_id, &payload).await?;
    }
    Ok(())
}

/// The client's name, login hint and redirect URI of a pending authorization request, if any.
async fn pending_context(app: &AppState, request_id: &str) -> Result<(Option<String>, Option<String>, Option<String>), PageError> {
    if request_id.is_empty() {
        return Ok((None, None, None));
    }
    let Some((request, _)) = load_pending(app, request_id).await? else {
        return Err(crate::oidc::authorize::expired_page());
    };
    let client = app.store.client(&request.client_id).await?;
    Ok((client.map(|c| c.name), request.login_hint, Some(request.redirect_uri)))
}

/// The sign-in page; with a pending request, its form may end in a redirect to the client
/// (consent already given), which the page's CSP must allow.
async fn page(session: &Session, request_id: &str, client_name: Option<&str>, redirect_uri: Option<&str>, email: &str, error: Option<&str>) -> Response {
    let token = match csrf::token(session).await {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    let page = render(&LoginPage { csrf_token: &token, request_id, client_name, email, error });
    match redirect_uri {
        Some(uri) => crate::web::allow_form_redirect_to(page, uri),
        None => page,
    }
}
