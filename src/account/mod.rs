//! Self-service pages for the signed-in user: the account overview, connected apps,
//! and the data-access log.

pub mod activity;
pub mod apps;
pub mod client_pages;
pub mod clients;
pub mod deletion;
pub mod email;
pub mod email_change;
pub mod history;
pub mod linked;
pub mod password;
pub mod security;
pub mod sessions;

use axum::Router;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use tower_sessions::Session;

use crate::error::PageError;
use crate::login::session;
use crate::model::User;
use crate::state::AppState;
use crate::web::templates::AccountPage;
use crate::web::{csrf, flash, render, see_other};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/account") }))
        .route("/account", get(get_account))
        .route("/account/apps", get(apps::get_apps))
        .route("/account/apps/withdraw", post(apps::post_withdraw))
        .route("/account/activity", get(activity::get_activity))
        .route("/account/security/history", get(history::get_history))
        .route("/account/sessions", get(sessions::get_sessions))
        .route("/account/sessions/end", post(sessions::post_end))
        .route("/account/security", get(security::get_security).post(security::post_security))
        .route("/account/password", get(password::get_password).post(password::post_password))
        .route("/account/delete", get(deletion::get_delete).post(deletion::post_delete))
        .route("/account/email", get(email::get_email).post(email::post_email))
        .route("/account/email/confirm", get(email::get_confirm).post(email::post_confirm))
        .route("/account/clients", get(client_pages::get_clients).post(client_pages::post_clients))
        .route("/account/clients/{id}", get(client_pages::get_client).post(client_pages::post_client))
        .route("/account/clients/{id}/secrets", post(client_pages::post_secret))
        .route("/account/clients/{id}/secrets/{secret_id}/revoke", post(client_pages::post_revoke_secret))
        .route("/account/clients/{id}/verification", post(client_pages::post_verification))
}

/// The user of an account page. Extracting it is the sign-in guard: anyone not signed in
/// (or whose account no longer exists) is sent to the sign-in page instead.
pub struct SignedIn {
    pub user: User,
    pub session: Session,
}

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Response> {
        let session = Session::from_request_parts(parts, app).await.map_err(IntoResponse::into_response)?;
        let Some(auth) = session::current(&session).await.map_err(IntoResponse::into_response)? else {
            return Err(see_other("/login"));
        };
        let user = app.store.user(&auth.user_id).await.map_err(|e| PageError::from(e).into_response())?;
        let Some(user) = user else {
            session::sign_out(&session).await.map_err(IntoResponse::into_response)?;
            return Err(see_other("/login"));
        };
        Ok(Self { user, session })
    }
}

async fn get_account(State(app): State<AppState>, me: SignedIn) -> Result<Response, PageError> {
    let token = csrf::token(&me.session).await?;
    let clients = clients::may_register(&app.config, &me.user);
    let notice = flash::take(&me.session).await?;
    Ok(render(&AccountPage { csrf_token: &token, email: &me.user.email, name: me.user.name.as_deref(), clients, notice: notice.as_deref() }))
}
