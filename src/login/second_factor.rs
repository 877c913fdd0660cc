//! The second step of signing in: a code from the authenticator app or a recovery code.
//! Every sign-in path ends in [`after_first_factor`], which asks for the second factor when
//! the account has one. Until it passes, the session holds only a pending state, never a
//! signed-in user; the session id rotates when it passes. The same page serves step-up
//! (an `acr_values` or policy demand on a password-only session) and re-authentication.

use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tower_sessions::Session;

use super::events::{self, Attempt, Failure, Origin, Outcome};
use super::mfa::{self, Presented, recovery, totp};
use super::session;
use super::throttle::{self, Check, Policy, Subject};
use crate::clock::Timestamp;
use crate::crypto::random_id;
use crate::error::PageError;
use crate::model::{Authentication, ClientId, User, UserId};
use crate::oidc::authorize::load_pending;
use crate::state::AppState;
use crate::web::params::Params;
use crate::web::templates::{RecoveryUsedPage, SecondFactorPage};
use crate::web::{csrf, flash, render, see_other};

const PENDING: &str = "second_factor";
/// How long the second step may take after the first.
const PENDING_TTL: i64 = 10 * 60;
/// Wrong codes allowed per first factor; then the password is asked again.
const MAX_FAILURES: u32 = 5;
const WRONG_CODE: &str = "That code is not valid, or it was already used. Enter the current code from your app, or a recovery code.";

/// Half signed in: the first factor passed, the second is awaited.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Pending {
    user_id: UserId,
    /// Methods already used (RFC 8176), e.g. `pwd`.
    amr: Vec<String>,
    /// The session's `sid`, kept through step-up and re-authentication; a new one otherwise.
    sid: Option<String>,
    then: Then,
    started_at: Timestamp,
    failures: u32,
}

/// Where the user goes once the second factor passed.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Then {
    /// A sign-in, for a pending authorization request (empty: none).
    SignIn { request_id: String },
    /// A step-up an authorization request needs (acr_values, the 2FA policy).
    StepUp { request_id: String },
    /// A re-authentication for a sensitive page: back to it (a local path).
    Return { path: String },
}

impl Then {
    fn request_id(&self) -> Option<&str> {
        match self {
            Then::SignIn { request_id } | Then::StepUp { request_id } if !request_id.is_empty() => Some(request_id),
            _ => None,
        }
    }
}

fn resume_url(request_id: &str) -> String {
    format!("/authorize/resume?request_id={}", url::form_urlencoded::byte_serialize(request_id.as_bytes()).collect::<String>())
}

async fn pending(session: &Session) -> Result<Option<Pending>, PageError> {
    session.get::<Pending>(PENDING).await.map_err(|e| PageError::internal(&e))
}

async fn set_pending(session: &Session, pending: &Pending) -> Result<(), PageError> {
    session.insert(PENDING, pending).await.map_err(|e| PageError::internal(&e))
}

async fn clear_pending(session: &Session) -> Result<(), PageError> {
    session.remove_value(PENDING).await.map(|_| ()).map_err(|e| PageError::internal(&e))
}

const RESUME_AFTER_SETUP: &str = "resume_after_setup";

/// Remembers an authorization request that waits for the user to set up a second factor
/// (the configuration requires one): the setup page offers to continue it.
pub async fn resume_after_setup(session: &Session, request_id: &str) -> Result<(), PageError> {
    session.insert(RESUME_AFTER_SETUP, request_id).await.map_err(|e| PageError::internal(&e))
}

/// The waiting request's resume address, once.
pub async fn take_resume_after_setup(session: &Session) -> Result<Option<String>, PageError> {
    let id = session.remove::<String>(RESUME_AFTER_SETUP).await.map_err(|e| PageError::internal(&e))?;
    Ok(id.map(|id| resume_url(&id)))
}

/// After a first factor (a password or an upstream provider): signs the user in, or, if the
/// account has a second factor, asks for it first.
pub async fn after_first_factor(
    app: &AppState,
    session: &Session,
    origin: &Origin,
    user: &User,
    has_second_factor: bool,
    amr: Vec<String>,
    request_id: &str,
) -> Result<Response, PageError> {
    let then = Then::SignIn { request_id: request_id.to_string() };
    if has_second_factor {
        let pending = Pending { user_id: user.id.clone(), amr, sid: None, then, started_at: app.now(), failures: 0 };
        set_pending(session, &pending).await?;
        return Ok(see_other("/login/second-factor"));
    }
    let auth = Authentication { user_id: user.id.clone(), auth_time: app.now(), amr, sid: random_id() };
    if request_id.is_empty() && mfa::required_for(&app.config, user) {
        // Signed in, but led to set up a second factor first (the admin pages and apps
        // refuse this session until then).
        finish(app, session, origin, auth, then).await?;
        flash::set(session, "Two-factor authentication is required for your account. Set it up to continue.").await?;
        return Ok(see_other("/account/security"));
    }
    finish(app, session, origin, auth, then).await
}

/// Asks a signed-in user for the second factor on top of the current sign-in.
pub async fn start_step_up(app: &AppState, session: &Session, auth: &Authentication, then: Then) -> Result<Response, PageError> {
    let amr = auth.amr.iter().filter(|m| *m != "otp" && *m != "mfa").cloned().collect();
    let pending = Pending { user_id: auth.user_id.clone(), amr, sid: Some(auth.sid.clone()), then, started_at: app.now(), failures: 0 };
    set_pending(session, &pending).await?;
    Ok(see_other("/login/second-factor"))
}

/// Asks for the second factor after a re-entered first factor (`amr`: `pwd`, `fed`),
/// keeping the session's `sid`.
pub async fn start_reauth(app: &AppState, session: &Session, auth: &Authentication, amr: Vec<String>, path: &str) -> Result<Response, PageError> {
    let pending = Pending {
        user_id: auth.user_id.clone(),
        amr,
        sid: Some(auth.sid.clone()),
        then: Then::Return { path: path.to_string() },
        started_at: app.now(),
        failures: 0,
    };
    set_pending(session, &pending).await?;
    Ok(see_other("/login/second-factor"))
}

/// Completes a sign-in: new session id, the authentication stored, then onwards.
pub async fn finish(app: &AppState, session: &Session, origin: &Origin, auth: Authentication, then: Then) -> Result<Response, PageError> {
    signed_in(app, session, origin, &auth, &then).await?;
    if let Then::SignIn { request_id } = &then
        && request_id.is_empty()
        && let Some(path) = session::take_return_after_sign_in(session).await?
    {
        return Ok(see_other(&path));
    }
    Ok(see_other(&destination(&then)))
}

/// The session holds the sign-in; a sign-in (not a step-up) completes a pending upstream
/// link if it proved the account the link is for.
async fn signed_in(app: &AppState, session: &Session, origin: &Origin, auth: &Authentication, then: &Then) -> Result<(), PageError> {
    clear_pending(session).await?;
    session::sign_in(session, auth).await?;
    if let Then::SignIn { request_id } = then {
        if !request_id.is_empty() {
            session::signed_in_for(session, request_id).await?;
        }
        super::upstream::linking::complete(app, session, origin, auth).await?;
    }
    Ok(())
}

fn destination(then: &Then) -> String {
    match then {
        Then::SignIn { request_id } if request_id.is_empty() => "/account".to_string(),
        Then::SignIn { request_id } | Then::StepUp { request_id } => resume_url(request_id),
        Then::Return { path } => path.clone(),
    }
}

pub async fn get_second_factor(State(app): State<AppState>, session: Session) -> Response {
    match show(&app, &session).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn show(app: &AppState, session: &Session) -> Result<Response, PageError> {
    let Some(pending) = pending(session).await? else { return Ok(see_other("/login")) };
    page(app, session, &pending, None).await
}

/// The code form; with a pending authorization request its submission may end in a
/// redirect to the client, which the page's CSP must allow.
async fn page(app: &AppState, session: &Session, pending: &Pending, error: Option<&str>) -> Result<Response, PageError> {
    let token = csrf::token(session).await?;
    let request = match pending.then.request_id() {
        Some(id) => load_pending(app, id).await?.map(|(r, _)| r),
        None => None,
    };
    let client = match &request {
        Some(r) => app.store.client(&r.client_id).await?,
        None => None,
    };
    let reason = match pending.then {
        Then::SignIn { .. } => "to finish signing in",
        Then::StepUp { .. } => "this app asks for a second factor",
        Then::Return { .. } => "to confirm it is you",
    };
    let page = render(&SecondFactorPage { csrf_token: &token, client_name: client.as_ref().map(|c| c.name.as_str()), reason, error });
    Ok(match &request {
        Some(r) => crate::web::allow_form_redirect_to(page, &r.redirect_uri),
        None => page,
    })
}

pub async fn post_second_factor(State(app): State<AppState>, session: Session, origin: Origin, body: Bytes) -> Response {
    match verify(&app, &session, &origin, &body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

/// The client of the authorization request a pending sign-in is for, for the record.
async fn client_of(app: &AppState, then: &Then) -> Result<Option<ClientId>, PageError> {
    Ok(match then.request_id() {
        Some(id) => load_pending(app, id).await?.map(|(r, _)| ClientId(r.client_id)),
        None => None,
    })
}

async fn verify(app: &AppState, session: &Session, origin: &Origin, body: &[u8]) -> Result<Response, PageError> {
    let form = Params::parse(body).map_err(|_| PageError::bad_request("The form could not be read."))?;
    csrf::verify(session, form.get("csrf_token")).await?;
    let Some(mut pending) = pending(session).await? else { return Ok(see_other("/login")) };
    let now = app.now();
    if now - pending.started_at > PENDING_TTL {
        clear_pending(session).await?;
        return Err(PageError::bad_request("This sign-in took too long. Go back and sign in again."));
    }
    let presented = mfa::classify(form.get("code").unwrap_or(""));
    let method = match &presented {
        Presented::Malformed => {
            return page(app, session, &pending, Some("Enter the 6-digit code from your authenticator app, or a recovery code.")).await;
        }
        Presented::Totp(_) => events::Method::Totp,
        Presented::Recovery(_) => events::Method::RecoveryCode,
    };
    let client = client_of(app, &pending.then).await?;
    let attempt = |outcome| Attempt { user: Some(&pending.user_id), client: client.as_ref(), method: method.clone(), outcome };
    let record = |outcome| {
        let attempt = attempt(outcome);
        async move { events::record_attempt(&app.store, &attempt, origin, now).await }
    };
    // The login throttle counts codes like passwords, per account and address, and a lock
    // holds here too: without it six digits could be guessed across many first factors.
    let subject = Subject::User(&pending.user_id);
    let ticket = match throttle::check_and_note(&app.store, &Policy::from_config(&app.config), subject, origin.ip.as_deref(), now).await? {
        Check::Allowed(ticket) => ticket,
        Check::Delayed { retry_after } => {
            record(Outcome::Failure(Failure::Throttled)).await?;
            let message = format!("Too many attempts. Wait {retry_after} seconds, then try again.");
            return page(app, session, &pending, Some(&message)).await;
        }
        Check::Locked => {
            record(Outcome::Failure(Failure::Locked)).await?;
            return page(app, session, &pending, Some(WRONG_CODE)).await;
        }
    };
    let passed = match &presented {
        Presented::Totp(code) => check_totp(app, &pending.user_id, code, now).await?,
        Presented::Recovery(code) => {
            let hash = recovery::hash(&pending.user_id, code);
            app.store.use_recovery_code(&pending.user_id, &hash, now).await?
        }
        Presented::Malformed => false,
    };
    if !passed {
        ticket.failed(&app.store, now).await?;
        record(Outcome::Failure(Failure::WrongCode)).await?;
        tracing::info!(outcome = "failed", method = method.as_str(), "second factor refused");
        return failed(app, session, &mut pending).await;
    }
    ticket.succeeded(&app.store, now, &events::login_event(&attempt(Outcome::Success), origin, now)).await?;
    tracing::info!(outcome = "ok", method = method.as_str(), "second factor");
    let auth = Authentication {
        user_id: pending.user_id.clone(),
        auth_time: now,
        amr: mfa::with_second_factor(pending.amr.clone()),
        sid: pending.sid.clone().unwrap_or_else(random_id),
    };
    let then = pending.then.clone();
    if method == events::Method::RecoveryCode {
        // Recorded for the user's history; and the user is told how many remain before
        // going on.
        let remaining = app.store.recovery_codes_left(&auth.user_id).await?;
        let detail = remaining.to_string();
        events::record_account_event(&app.store, &auth.user_id, events::AccountEvent::RecoveryCodeUsed, Some(&detail), origin, now).await?;
        signed_in(app, session, origin, &auth, &then).await?;
        let next = destination(&then);
        return Ok(render(&RecoveryUsedPage { remaining, next: &next }));
    }
    finish(app, session, origin, auth, then).await
}

/// A valid code for a step after the last one accepted (RFC 6238 §5.2: each code once).
async fn check_totp(app: &AppState, user: &UserId, code: &str, now: Timestamp) -> Result<bool, PageError> {
    let Some(factor) = app.store.totp_factor(user).await? else { return Ok(false) };
    if factor.confirmed_at.is_none() {
        return Ok(false);
    }
    let secret = app.secrets.totp_sealer.open(&factor.secret_sealed).map_err(|e| PageError::internal(&e))?;
    let Some(step) = totp::Secret::from_bytes(secret).check(code, now) else { return Ok(false) };
    Ok(app.store.use_totp_step(user, step).await?)
}

async fn failed(app: &AppState, session: &Session, pending: &mut Pending) -> Result<Response, PageError> {
    pending.failures += 1;
    if pending.failures >= MAX_FAILURES {
        clear_pending(session).await?;
        return Err(PageError::forbidden("Too many wrong codes. Go back and sign in again."));
    }
    set_pending(session, pending).await?;
    page(app, session, pending, Some(WRONG_CODE)).await
}
