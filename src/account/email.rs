//! `/account/email`: a new email address, after a recent sign-in, confirmed by the link
//! mailed to it (`/account/email/confirm`; see [`super::email_change`]).

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tower_sessions::Session;

use super::SignedIn;
use super::email_change::{self, Refusal, Requested};
use super::security::Recent;
use crate::error::PageError;
use crate::login::events::Origin;
use crate::login::session;
use crate::state::AppState;
use crate::web::params::Params;
use crate::web::{csrf, flash, render, see_other};

#[derive(askama::Template)]
#[template(path = "account_email.html")]
struct EmailPage<'a> {
    csrf_token: &'a str,
    email: &'a str,
    verified: bool,
    /// Whether outgoing mail is set up (else the page says why there is no form).
    available: bool,
    new_email: &'a str,
    notice: Option<&'a str>,
    error: Option<&'a str>,
}

#[derive(askama::Template)]
#[template(path = "account_email_confirm.html")]
struct ConfirmPage<'a> {
    csrf_token: &'a str,
    current: &'a str,
    new_email: &'a str,
    token: &'a str,
    error: Option<&'a str>,
}

const NO_MAILER: &str = "Changing your email address needs outgoing mail, which the operator of this service has not set up.";

pub async fn get_email(State(app): State<AppState>, recent: Recent) -> Result<Response, PageError> {
    let notice = flash::take(&recent.me.session).await?;
    page(&app, &recent.me, "", notice.as_deref(), None).await
}

async fn page(app: &AppState, me: &SignedIn, new_email: &str, notice: Option<&str>, error: Option<&str>) -> Result<Response, PageError> {
    let token = csrf::token(&me.session).await?;
    let available = app.mailer.is_some();
    Ok(render(&EmailPage { csrf_token: &token, email: &me.user.email, verified: me.user.email_verified, available, new_email, notice, error }))
}

pub async fn post_email(State(app): State<AppState>, recent: Recent, body: Bytes) -> Result<Response, PageError> {
    let form = Params::parse(&body).map_err(|_| PageError::bad_request("The form could not be read."))?;
    csrf::verify(&recent.me.session, form.get("csrf_token")).await?;
    let new_email = form.get("new_email").unwrap_or("").trim();
    let me = &recent.me;
    let error = match email_change::request(&app, &me.user, new_email).await? {
        Requested::Sent => {
            // The same words whether the link or an "already in use" mail went out.
            let notice = format!(
                "Check your inbox at {new_email}: we sent a message there. To finish the change, open the link in it within 24 hours. Your current address got a notice."
            );
            flash::set(&me.session, &notice).await?;
            return Ok(see_other("/account/email"));
        }
        Requested::Invalid => "Enter one email address, such as name@example.com.",
        Requested::Same => "That is already your email address.",
        Requested::TooSoon => "You asked for a change less than a minute ago. Wait a minute, then try again.",
        Requested::NoMailer => NO_MAILER,
        Requested::NotSent => "The message to that address could not be sent just now. Check the address, or try again later.",
    };
    page(&app, me, new_email, None, Some(error)).await
}

#[derive(Deserialize)]
pub struct ConfirmQuery {
    token: Option<String>,
}

/// The link from the mail: a page with a button, so that mail scanners that fetch links
/// change nothing. Someone not signed in signs in first and comes back here.
pub async fn get_confirm(State(app): State<AppState>, session: Session, me: Result<SignedIn, Response>, Query(q): Query<ConfirmQuery>) -> Result<Response, PageError> {
    let token = q.token.unwrap_or_default();
    let me = match me {
        Ok(me) => me,
        Err(redirect) if redirect.status() == StatusCode::SEE_OTHER => {
            // Back to this link after signing in; a local path we build, never one given.
            session::return_after_sign_in(&session, &email_change::confirm_path(&token)).await?;
            return Ok(redirect);
        }
        Err(other) => return Ok(other),
    };
    let csrf_token = csrf::token(&me.session).await?;
    let mut response = match email_change::pending(&app.store, &me.user, &token, app.now()).await? {
        Ok(change) => render(&ConfirmPage { csrf_token: &csrf_token, current: &me.user.email, new_email: &change.new_email, token: &token, error: None }),
        Err(refusal) => refused(&csrf_token, &me, refusal),
    };
    // The page holds the token: keep it out of caches.
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

pub async fn post_confirm(State(app): State<AppState>, me: SignedIn, origin: Origin, body: Bytes) -> Result<Response, PageError> {
    let form = Params::parse(&body).map_err(|_| PageError::bad_request("The form could not be read."))?;
    csrf::verify(&me.session, form.get("csrf_token")).await?;
    match email_change::confirm(&app.store, &me.user, form.get("token").unwrap_or(""), &origin, app.now()).await? {
        Ok(new_email) => {
            flash::set(&me.session, &format!("Your email address is now {new_email}.")).await?;
            Ok(see_other("/account"))
        }
        Err(refusal) => Ok(refused(&csrf::token(&me.session).await?, &me, refusal)),
    }
}

fn refused(csrf_token: &str, me: &SignedIn, refusal: Refusal) -> Response {
    let status = match refusal {
        Refusal::Taken => StatusCode::CONFLICT,
        Refusal::OtherAccount => StatusCode::FORBIDDEN,
        Refusal::Unknown | Refusal::Expired | Refusal::Used => StatusCode::BAD_REQUEST,
    };
    let page = ConfirmPage { csrf_token, current: &me.user.email, new_email: "", token: "", error: Some(refusal.message()) };
    (status, render(&page)).into_response()
}
