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
    // Whoever else knew the old password is signed out: every other session ends, and the
    // refresh tokens issued in them are revoked (OWASP ASVS 3.3.2).
    let current = crate::login::session::current(&recent.me.session).await?.map(|a| a.sid).unwrap_or_default();
    let ttl = i64::from(app.config.session_ttl);
    let mut ended = 0;
    for other in app.store.user_sessions(&recent.me.user.id, app.now(), ttl).await? {
        if let super::sessions::Ending::Ended { .. } = super::sessions::end(&app.store, &recent.me.user.id, &other.sid, &current, &origin, app.now()).await? {
            ended += 1;
        }
    }
    tracing::info!(other_sessions_ended = ended, "password changed");
    let message = match ended {
        0 => "Your password was changed.".to_string(),
        1 => "Your password was changed, and your other session was signed out.".to_string(),
        n => format!("Your password was changed, and your {n} other sessions were signed out."),
    };
    flash::set(&recent.me.session, &message).await?;
    Ok(see_other("/account/security"))
}
