//! Step-up for sensitive actions (password change, turning off 2FA, new recovery codes,
//! admin pages): they need a recent authentication, so an older session re-enters the
//! password, and the second factor when the account has one, at `/login/reauth`. An
//! account without a password confirms through one of its linked upstream providers
//! instead (`upstream::reauth`).

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tower_sessions::Session;

use super::events::{self, Attempt, Failure, Method, Origin, Outcome};
use super::second_factor::{self, Then};
use super::session;
use super::throttle::{self, Check, Policy, Subject};
use crate::clock::Timestamp;
use crate::error::PageError;
use crate::model::Authentication;
use crate::state::AppState;
use crate::web::params::Params;
use crate::web::templates::{ReauthChoice, ReauthPage};
use crate::web::{csrf, render, see_other};

/// Whether `auth` is good enough for a sensitive action at `now`: at most `max_age` seconds
/// old, and with the second factor if the account has one (a session from before the
/// factor was set up does not count).
pub fn is_recent(auth: &Authentication, has_second_factor: bool, now: Timestamp, max_age: u32) -> bool {
    now - auth.auth_time <= i64::from(max_age) && (!has_second_factor || auth.two_factor())
}

/// A local path to return to: one leading slash (`//host` is another site), no backslash
/// (browsers read `/\host` as `//host`), no control characters.
pub fn safe_next(next: &str) -> Option<&str> {
    let local = next.starts_with('/') && !next.starts_with("//") && !next.contains('\\') && next.len() <= 2048;
    (local && !next.chars().any(char::is_control)).then_some(next)
}

/// Where to re-authenticate before going to `next`.
pub fn reauth_url(next: &str) -> String {
    format!("/login/reauth?next={}", url::form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>())
}

#[derive(Deserialize)]
pub struct ReauthQuery {
    next: Option<String>,
}

pub async fn get_reauth(State(app): State<AppState>, session: Session, Query(q): Query<ReauthQuery>) -> Response {
    let next = q.next.as_deref().and_then(safe_next).unwrap_or("/account").to_string();
    match page(&app, &session, &next, None).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn page(app: &AppState, session: &Session, next: &str, error: Option<&str>) -> Result<Response, PageError> {
    let Some(auth) = session::current(session).await? else { return Ok(see_other("/login")) };
    let Some(user) = app.store.user(&auth.user_id).await? else { return Ok(see_other("/login")) };
    let token = csrf::token(session).await?;
    let has_password = app.store.password_hash(&user.id).await?.is_some();
    let upstreams = if has_password { Vec::new() } else { linked_providers(app, &user.id).await? };
    Ok(render(&ReauthPage { csrf_token: &token, email: &user.email, next, error, has_password, upstreams }))
}

/// The configured providers linked to the account, which can confirm it is the user.
async fn linked_providers(app: &AppState, user: &crate::model::UserId) -> Result<Vec<ReauthChoice>, PageError> {
    let identities = app.store.upstream_identities(user).await?;
    let mut choices: Vec<ReauthChoice> = Vec::new();
    for identity in identities {
        if let Some(name) = app.upstreams.name(&identity.provider_id)
            && !choices.iter().any(|c| c.id == identity.provider_id)
        {
            choices.push(ReauthChoice { id: identity.provider_id, name: name.to_string() });
        }
    }
    Ok(choices)
}

pub async fn post_reauth(State(app): State<AppState>, session: Session, origin: Origin, body: Bytes) -> Response {
    match reauthenticate(&app, &session, &origin, &body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn reauthenticate(app: &AppState, session: &Session, origin: &Origin, body: &[u8]) -> Result<Response, PageError> {
    let form = Params::parse(body).map_err(|_| PageError::bad_request("The form could not be read."))?;
    csrf::verify(session, form.get("csrf_token")).await?;
    let next = form.get("next").and_then(safe_next).unwrap_or("/account");
    let Some(auth) = session::current(session).await? else { return Ok(see_other("/login")) };
    if let Some(provider) = form.get("provider") {
        // Only a provider linked to this account; the callback checks the identity too.
        if !linked_providers(app, &auth.user_id).await?.iter().any(|c| c.id == provider) {
            return page(app, session, next, Some("Choose one of the ways you sign in.")).await;
        }
        let purpose = super::upstream::Purpose::Reauth { user_id: auth.user_id.clone(), next: next.to_string() };
        return super::upstream::begin(app, session, provider, "", purpose).await;
    }
    let password = form.get("password").unwrap_or("");
    if password.is_empty() || password.len() > 1024 {
        return page(app, session, next, Some("Enter your password.")).await;
    }
    // Under the login throttle and in the login history, like the sign-in page.
    let now = app.now();
    let attempt = |outcome| Attempt { user: Some(&auth.user_id), client: None, method: Method::Password, outcome };
    let record = |outcome| {
        let attempt = attempt(outcome);
        async move { events::record_attempt(&app.store, &attempt, origin, now).await }
    };
    let ticket = match throttle::check_and_note(&app.store, &Policy::from_config(&app.config), Subject::User(&auth.user_id), origin.ip.as_deref(), now).await? {
        Check::Allowed(ticket) => ticket,
        Check::Delayed { retry_after } => {
            record(Outcome::Failure(Failure::Throttled)).await?;
            return page(app, session, next, Some(&format!("Too many attempts. Wait {retry_after} seconds, then try again."))).await;
        }
        Check::Locked => {
            record(Outcome::Failure(Failure::Locked)).await?;
            return page(app, session, next, Some("The password is incorrect.")).await;
        }
    };
    let hash = app.store.password_hash(&auth.user_id).await?;
    let verified = app.passwords.verify(hash, password.to_string()).await.map_err(|e| PageError::internal(&e))?;
    if !verified {
        ticket.failed(&app.store, now).await?;
        record(Outcome::Failure(Failure::WrongPassword)).await?;
        tracing::info!(outcome = "failed", "re-authentication failed");
        return page(app, session, next, Some("The password is incorrect.")).await;
    }
    let has_factor = app.store.has_second_factor(&auth.user_id).await?;
    let success = events::login_event(&attempt(Outcome::Success), origin, now);
    if has_factor {
        ticket.passed(&app.store, now, &success).await?;
    } else {
        ticket.succeeded(&app.store, now, &success).await?;
    }
    if has_factor {
        return second_factor::start_reauth(app, session, &auth, vec!["pwd".into()], next).await;
    }
    let renewed = Authentication { auth_time: now, amr: vec!["pwd".into()], ..auth };
    second_factor::finish(app, session, origin, renewed, Then::Return { path: next.to_string() }).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::UserId;

    fn auth(at: Timestamp, amr: &[&str]) -> Authentication {
        Authentication { user_id: UserId("u".into()), auth_time: at, amr: amr.iter().map(|s| s.to_string()).collect(), sid: "s".into() }
    }

    #[test]
    fn recent_means_young_and_with_the_second_factor_if_any() {
        assert!(is_recent(&auth(100, &["pwd"]), false, 1000, 900));
        assert!(!is_recent(&auth(100, &["pwd"]), false, 1001, 900));
        assert!(!is_recent(&auth(100, &["pwd"]), true, 200, 900), "a factor was added since");
        assert!(is_recent(&auth(100, &["pwd", "otp", "mfa"]), true, 200, 900));
    }

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(safe_next("/account/security"), Some("/account/security"));
        assert_eq!(safe_next("/admin/clients?status=unverified"), Some("/admin/clients?status=unverified"));
        for bad in ["//evil.example", "https://evil.example", "/\\evil.example", "account", "/a\nb", ""] {
            assert_eq!(safe_next(bad), None, "{bad:?}");
        }
    }
}
