//! The one admin guard: every `/admin` route sits behind it, so no handler checks roles.

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tower_sessions::Session;

use crate::error::PageError;
use crate::login::{mfa, session, step_up};
use crate::model::{Authentication, User};
use crate::state::AppState;
use crate::web::{flash, see_other};

/// A signed-in administrator, put into the request by [`require_admin`].
#[derive(Clone, Debug)]
pub struct AdminUser {
    pub user: User,
    pub auth: Authentication,
}

/// Pages send a person to sign in; the JSON API answers 401/403 with a JSON error.
fn refuse(api: bool, signed_in: bool) -> Response {
    match (api, signed_in) {
        (false, false) => see_other("/login"),
        (false, true) => PageError::forbidden("This page is for administrators.").into_response(),
        (true, false) => (StatusCode::UNAUTHORIZED, Json(json!({"error": "unauthenticated", "error_description": "sign in as an administrator"}))).into_response(),
        (true, true) => (StatusCode::FORBIDDEN, Json(json!({"error": "forbidden", "error_description": "administrators only"}))).into_response(),
    }
}

/// Admin pages are sensitive actions: with the 2FA policy (`require_2fa_for_admins`) they
/// need a two-factor session, and always a recent authentication (`reauth_max_age`). Pages
/// send the admin to re-authenticate (or to set up a second factor); the JSON API answers
/// 401 `insufficient_user_authentication` (the RFC 9470 code for this situation).
async fn step_up(app: &AppState, session: &Session, next: &str, user: &User, auth: &Authentication, api: bool) -> Option<Response> {
    let has_factor = match app.store.has_second_factor(&user.id).await {
        Ok(has) => has,
        Err(e) => return Some(PageError::from(e).into_response()),
    };
    let missing_factor = mfa::required_for(&app.config, user) && !auth.two_factor();
    if !missing_factor && step_up::is_recent(auth, has_factor, app.now(), app.config.reauth_max_age) {
        return None;
    }
    if api {
        let description = if missing_factor && !has_factor { "set up two-factor authentication first" } else { "sign in again" };
        return Some((StatusCode::UNAUTHORIZED, Json(json!({"error": "insufficient_user_authentication", "error_description": description}))).into_response());
    }
    if missing_factor && !has_factor {
        if let Err(e) = flash::set(session, "Administrators must set up two-factor authentication before using the admin pages.").await {
            return Some(e.into_response());
        }
        return Some(see_other("/account/security"));
    }
    Some(see_other(&step_up::reauth_url(next)))
}

pub async fn require_admin(State(app): State<AppState>, session: Session, mut request: Request, next: Next) -> Response {
    let api = request.uri().path().starts_with("/api/");
    let auth = match session::current(&session).await {
        Ok(Some(auth)) => auth,
        Ok(None) => return refuse(api, false),
        Err(e) => return e.into_response(),
    };
    let user = match app.store.user(&auth.user_id).await {
        Ok(Some(user)) => user,
        Ok(None) => return refuse(api, false),
        Err(e) => return PageError::from(e).into_response(),
    };
    if !user.is_admin {
        return refuse(api, true);
    }
    // Where a re-authentication returns to: this page, or the admin home after a form.
    let back_to = match *request.method() {
        Method::GET => request.uri().path_and_query().map_or("/admin", |p| p.as_str()),
        _ => "/admin",
    }
    .to_string();
    if let Some(response) = step_up(&app, &session, &back_to, &user, &auth, api).await {
        return response;
    }
    // The JSON API is used with the admin's session cookie: a cross-site form cannot send
    // `application/json`, and a cross-site script cannot without a CORS preflight we refuse.
    if api && request.method() != Method::GET {
        let json = request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("application/json"));
        if !json {
            return (StatusCode::UNSUPPORTED_MEDIA_TYPE, Json(json!({"error": "invalid_request", "error_description": "send application/json"}))).into_response();
        }
    }
    request.extensions_mut().insert(AdminUser { user, auth });
    next.run(request).await
}
