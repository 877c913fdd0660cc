//! Self-service pages for the signed-in user: the account overview, connected apps,
//! and the data-access log.

pub mod activity;
pub mod apps;

use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use tower_sessions::Session;

use crate::error::PageError;
use crate::login::session;
use crate::model::User;
use crate::state::AppState;
use crate::web::templates::AccountPage;
use crate::web::{csrf, render, see_other};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/account") }))
        .route("/account", get(get_account))
        .route("/account/apps", get(apps::get_apps))
        .route("/account/apps/withdraw", post(apps::post_withdraw))
        .route("/account/activity", get(activity::get_activity))
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

async fn get_account(me: SignedIn) -> Result<Response, PageError> {
    let token = csrf::token(&me.session).await?;
    Ok(render(&AccountPage { csrf_token: &token, email: &me.user.email, name: me.user.name.as_deref() }))
}
