//! Self-service pages for the signed-in user.

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use tower_sessions::Session;

use crate::error::PageError;
use crate::login::session;
use crate::state::AppState;
use crate::web::templates::AccountPage;
use crate::web::{csrf, render, see_other};

pub fn router() -> Router<AppState> {
    Router::new().route("/", get(|| async { Redirect::to("/account") })).route("/account", get(get_account))
}

async fn get_account(State(app): State<AppState>, session: Session) -> Response {
    let result: Result<Response, PageError> = async {
        let Some(auth) = session::current(&session).await? else { return Ok(see_other("/login")) };
        let Some(user) = app.store.user(&auth.user_id).await? else {
            session::sign_out(&session).await?;
            return Ok(see_other("/login"));
        };
        let token = csrf::token(&session).await?;
        Ok(render(&AccountPage { csrf_token: &token, email: &user.email, name: user.name.as_deref() }))
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}
