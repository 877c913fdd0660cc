//! Re-authentication through an upstream provider, for accounts without a password
//! (`/login/reauth` starts it): the provider was asked to sign the user in again
//! (`prompt=login`, `max_age=0`; `flow` checks `auth_time`), and the identity must be one
//! linked to the signed-in account. Then the second factor if the account has one.

use axum::http::StatusCode;
use axum::response::Response;
use tower_sessions::Session;

use super::Identity;
use super::provider::Provider;
use crate::error::PageError;
use crate::login::events::{self, Attempt, Failure, Method, Origin, Outcome};
use crate::login::second_factor::{self, Then};
use crate::login::session;
use crate::model::{Authentication, UserId};
use crate::state::AppState;
use crate::web::see_other;

pub async fn finish(app: &AppState, session: &Session, origin: &Origin, provider: &Provider, identity: &Identity, user_id: &UserId, next: &str) -> Result<Response, PageError> {
    let Some(auth) = session::current(session).await? else { return Ok(see_other("/login")) };
    if auth.user_id != *user_id {
        return Err(PageError::bad_request("You signed in to another account since this confirmation started. Go back and try again."));
    }
    let now = app.now();
    let owner = app.store.upstream_identity_owner(&provider.config.id, &identity.subject).await?;
    let method = Method::Upstream(provider.config.id.clone());
    let outcome = if owner.as_ref() == Some(user_id) { Outcome::Success } else { Outcome::Failure(Failure::WrongAccount) };
    let attempt = Attempt { user: Some(user_id), client: None, method, outcome };
    events::record_attempt(&app.store, &attempt, origin, now).await?;
    let name = &provider.config.name;
    if outcome != Outcome::Success {
        tracing::info!(provider = %provider.config.id, outcome = "failed", "re-authentication with another upstream identity");
        return Err(PageError::new(
            StatusCode::FORBIDDEN,
            "Another account",
            format!("You confirmed with a {name} account that is not linked to your account here. Go back and use the {name} account you sign in with."),
        ));
    }
    app.store.use_upstream_identity(&provider.config.id, &identity.subject, now).await?;
    tracing::info!(provider = %provider.config.id, outcome = "ok", "re-authentication through an upstream provider");
    let amr = vec!["fed".to_string()];
    if app.store.has_second_factor(user_id).await? {
        return second_factor::start_reauth(app, session, &auth, amr, next).await;
    }
    let renewed = Authentication { auth_time: now, amr, ..auth };
    second_factor::finish(app, session, origin, renewed, Then::Return { path: next.to_string() }).await
}
