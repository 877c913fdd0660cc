//! `/account/password`: a new password, after a recent sign-in (the step-up guard stands in
//! for asking the current password again).

use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;

use super::security::Recent;
use crate::admin::{AdminError, check_password};
use crate::error::PageError;
use crate::login::events::{self, AccountEvent, Origin};
use crate::state::AppState;
use crate::web::params::Params;
use crate::web::templates::PasswordPage;
use crate::web::{csrf, flash, render, see_other};

pub async fn get_password(State(_app): State<AppState>, recent: Recent) -> Result<Response, PageError> {
    page(&recent, None).await
}

async fn page(recent: &Recent, error: Option<&str>) -> Result<Response, PageError> {
    let token = csrf::token(&recent.me.session).await?;
    Ok(render(&PasswordPage { csrf_token: &token, error }))
}

pub async fn post_password(State(app): State<AppState>, recent: Recent, origin: Origin, body: Bytes) -> Result<Response, PageError> {
    let form = Params::parse(&body).map_err(|_| PageError::bad_request("The form could not be read."))?;
    csrf::verify(&recent.me.session, form.get("csrf_token")).await?;
    let new = form.get("new_password").unwrap_or("");
    if new != form.get("confirm_password").unwrap_or("") {
        return page(&recent, Some("The two passwords differ.")).await;
    }
    if let Err(AdminError::Invalid(rule)) = check_password(new) {
        return page(&recent, Some(&format!("Choose another password: {rule}."))).await;
    }
    let hash = app.passwords.hash(new.to_string()).await.map_err(|e| PageError::internal(&e))?;
    app.store.set_password_hash(&recent.me.user.id, &hash).await?;
    events::record_account_event(&app.store, &recent.me.user.id, AccountEvent::PasswordChanged, None, &origin, app.now()).await?;
    // TODO(issue 4, sessions): end the user's other sessions (and their refresh tokens).
    tracing::info!("password changed");
    flash::set(&recent.me.session, "Your password was changed.").await?;
    Ok(see_other("/account/security"))
}
