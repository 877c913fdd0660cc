//! Interactive authentication: the sign-in and consent pages and the browser session.

mod consent;
mod password;
pub mod session;

use axum::Router;
use axum::routing::get;

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/login", get(password::get_login).post(password::post_login))
        .route("/consent", get(consent::get_consent).post(consent::post_consent))
}
