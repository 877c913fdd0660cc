//! Email and password sign-in.

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tower_sessions::Session;

use super::events::{self, Attempt, Failure, Method, Origin, Outcome};
use super::throttle::{self, Check, Policy, Subject};
use crate::error::PageError;
use crate::model::{ClientId, User};
use crate::oidc::authorize::load_pending;
use crate::state::AppState;
use crate::web::params::Params;
use crate::web::templates::LoginPage;
use crate::web::{csrf, render};

/// The same words for an unknown email, a wrong password and a locked account: the answer
/// must not tell whether an account exists (nor that the right password met a lock).
const WRONG_CREDENTIALS: &str = "The email address or password is incorrect.";

#[derive(Deserialize)]
pub struct LoginQuery {
    request_id: Option<String>,
}

pub async fn get_login(State(app): State<AppState>, session: Session, Query(q): Query<LoginQuery>) -> Response {
    let request_id = q.request_id.unwrap_or_default();
    let (client_name, hint, redirect_uri, _) = match pending_context(&app, &request_id).await {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    page(&app, &session, &request_id, client_name.as_deref(), redirect_uri.as_deref(), hint.as_deref().unwrap_or(""), None).await
}

pub async fn post_login(State(app): State<AppState>, session: Session, origin: Origin, body: Bytes) -> Response {
    let Ok(form) = Params::parse(&body) else {
        return PageError::bad_request("The form could not be read.").into_response();
    };
    if let Err(e) = csrf::verify(&session, form.get("csrf_token")).await {
        return e.into_response();
    }
    let request_id = form.get("request_id").unwrap_or("");
    let email = form.get("email").unwrap_or("");
    let password = form.get("password").unwrap_or("");
    let (client_name, _, redirect_uri, client_id) = match pending_context(&app, request_id).await {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    if email.is_empty() || password.is_empty() || email.len() > 254 || password.len() > 1024 {
        return page(&app, &session, request_id, client_name.as_deref(), redirect_uri.as_deref(), email, Some("Enter your email address and password.")).await;
    }

    let (user, has_second_factor) = match check_password(&app, &origin, client_id.as_ref(), email, password).await {
        Ok(Ok(signed_in)) => signed_in,
        Ok(Err(message)) => {
            tracing::info!(outcome = "failed", "password sign-in failed");
            return page(&app, &session, request_id, client_name.as_deref(), redirect_uri.as_deref(), email, Some(&message)).await;
        }
        Err(e) => return e.into_response(),
    };

    tracing::info!(outcome = "ok", "password sign-in");
    // Signs in, or asks for the second factor first when the account has one.
    match super::second_factor::after_first_factor(&app, &session, &origin, &user, has_second_factor, vec!["pwd".into()], request_id).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

/// The user whose password this is and whether they have a second factor, or the words to
/// answer with. Under the login throttle; every outcome is recorded in the login history.
async fn check_password(app: &AppState, origin: &Origin, client: Option<&ClientId>, email: &str, password: &str) -> Result<Result<(User, bool), String>, PageError> {
    let now = app.now();
    let (user, hash, has_second_factor) = match app.store.sign_in_credentials(email).await? {
        Some(c) => (Some(c.user), c.password_hash, c.has_second_factor),
        None => (None, None, false),
    };
    let user_id = user.as_ref().map(|u| u.id.clone());
    let attempt = |outcome| Attempt { user: user_id.as_ref(), client, method: Method::Password, outcome };
    let record = |outcome| {
        let attempt = attempt(outcome);
        async move { events::record_attempt(&app.store, &attempt, origin, now).await }
    };
    let subject = match &user_id {
        Some(id) => Subject::User(id),
        None => Subject::UnknownEmail(email),
    };
    let ticket = match throttle::check_and_note(&app.store, &Policy::from_config(&app.config), subject, origin.ip.as_deref(), now).await? {
        Check::Allowed(ticket) => ticket,
        Check::Delayed { retry_after } => {
            record(Outcome::Failure(Failure::Throttled)).await?;
            let unit = if retry_after == 1 { "second" } else { "seconds" };
            return Ok(Err(format!("Too many attempts. Wait {retry_after} {unit}, then try again.")));
        }
        Check::Locked => {
            record(Outcome::Failure(Failure::Locked)).await?;
            return Ok(Err(WRONG_CREDENTIALS.to_string()));
        }
    };
    let verified = app.passwords.verify(hash, password.to_string()).await.map_err(|e| PageError::internal(&e))?;
    match user.filter(|_| verified) {
        Some(user) => {
            // With a second factor still to come, earlier failures keep counting: a right
            // password must not reset the count that also limits code guessing.
            let success = events::login_event(&attempt(Outcome::Success), origin, now);
            let recorded = if has_second_factor {
                ticket.passed(&app.store, now, &success).await?
            } else {
                ticket.succeeded(&app.store, now, &success).await?
            };
            if !recorded {
                // Erased (in another browser) while its password was being checked.
                return Ok(Err(WRONG_CREDENTIALS.to_string()));
            }
            Ok(Ok((user, has_second_factor)))
        }
        None => {
            ticket.failed(&app.store, now).await?;
            let reason = if user_id.is_some() { Failure::WrongPassword } else { Failure::UnknownAccount };
            record(Outcome::Failure(reason)).await?;
            Ok(Err(WRONG_CREDENTIALS.to_string()))
        }
    }
}

/// The client's name, login hint and redirect URI of a pending authorization request, and
/// the client's id, if any.
async fn pending_context(app: &AppState, request_id: &str) -> Result<(Option<String>, Option<String>, Option<String>, Option<ClientId>), PageError> {
    if request_id.is_empty() {
        return Ok((None, None, None, None));
    }
    let Some((request, _)) = load_pending(app, request_id).await? else {
        return Err(crate::oidc::authorize::expired_page());
    };
    let client = app.store.client(&request.client_id).await?;
    Ok((client.map(|c| c.name), request.login_hint, Some(request.redirect_uri), Some(ClientId(request.client_id))))
}

/// The sign-in page; with a pending request, its form may end in a redirect to the client
/// (consent already given), which the page's CSP must allow.
async fn page(app: &AppState, session: &Session, request_id: &str, client_name: Option<&str>, redirect_uri: Option<&str>, email: &str, error: Option<&str>) -> Response {
    let token = match csrf::token(session).await {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    let upstreams = super::upstream::buttons(app, request_id);
    let link = match super::upstream::linking::notice(app, session).await {
        Ok(l) => l,
        Err(e) => return e.into_response(),
    };
    // Linking: the account to prove, unless the user typed another address.
    let email = match &link {
        Some(l) if email.is_empty() => l.email.as_str(),
        _ => email,
    };
    let linking = link.as_ref().map(|l| l.message.as_str());
    let page = render(&LoginPage { csrf_token: &token, request_id, client_name, email, error, upstreams, linking });
    match redirect_uri {
        Some(uri) => crate::web::allow_form_redirect_to(page, uri),
        None => page,
    }
}
