//! Interactive authentication: the sign-in and consent pages and the browser session.

mod consent;
pub mod events;
pub mod ip;
pub mod mfa;
mod password;
pub mod retention;
pub mod second_factor;
pub mod session;
pub mod step_up;
pub mod throttle;
pub mod upstream;
pub mod user_agent;

use axum::Router;
use axum::routing::{get, post};

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/login", get(password::get_login).post(password::post_login))
        .route("/login/second-factor", get(second_factor::get_second_factor).post(second_factor::post_second_factor))
        .route("/login/upstream/{id}", get(upstream::get_start))
        .route("/login/upstream/{id}/callback", get(upstream::get_callback))
        .route("/login/link/cancel", post(upstream::linking::post_cancel))
        .route("/login/reauth", get(step_up::get_reauth).post(step_up::post_reauth))
        .route("/consent", get(consent::get_consent).post(consent::post_consent))
}
