//! `/account/security`: set up an authenticator app (TOTP), turn it off, recovery codes
//! (shown once, regenerated), linked sign-in providers (`linked`), and the way to the
//! password change. Every change needs a recent sign-in ([`Recent`]).

use axum::body::Bytes;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};

use super::{SignedIn, linked};
use crate::error::PageError;
use crate::login::events::{self, AccountEvent, Origin};
use crate::login::mfa::{self, recovery, totp};
use crate::login::{second_factor, session, step_up};
use crate::model::Authentication;
use crate::state::AppState;
use crate::web::params::Params;
use crate::web::templates::{SecurityPage, TotpSetup};
use crate::web::{csrf, flash, render, see_other};

/// A signed-in user whose authentication is recent enough for a sensitive action.
/// Extracting it is the step-up guard: anyone else is sent to re-authenticate, and back to
/// this page afterwards (for a form, to the page at the form's address).
pub struct Recent {
    pub me: SignedIn,
    pub auth: Authentication,
}

impl FromRequestParts<AppState> for Recent {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Response> {
        let me = SignedIn::from_request_parts(parts, app).await?;
        let Some(auth) = session::current(&me.session).await.map_err(IntoResponse::into_response)? else {
            return Err(see_other("/login"));
        };
        let has_factor = app.store.has_second_factor(&me.user.id).await.map_err(|e| PageError::from(e).into_response())?;
        if !step_up::is_recent(&auth, has_factor, app.now(), app.config.reauth_max_age) {
            let next = match parts.method {
                Method::GET => parts.uri.path_and_query().map_or("/account", |p| p.as_str()),
                _ => parts.uri.path(),
            };
            return Err(see_other(&step_up::reauth_url(next)));
        }
        Ok(Self { me, auth })
    }
}

/// What the page shows besides the current state.
#[derive(Default)]
struct Shown<'a> {
    notice: Option<&'a str>,
    error: Option<&'a str>,
    new_codes: Vec<String>,
    continue_to: Option<String>,
}

pub async fn get_security(State(app): State<AppState>, me: SignedIn) -> Result<Response, PageError> {
    let notice = flash::take(&me.session).await?;
    view(&app, &me, Shown { notice: notice.as_deref(), ..Shown::default() }).await
}

async fn view(app: &AppState, me: &SignedIn, shown: Shown<'_>) -> Result<Response, PageError> {
    let factor = app.store.totp_factor(&me.user.id).await?;
    let enabled = factor.as_ref().is_some_and(|f| f.confirmed_at.is_some());
    let setup = match factor.filter(|f| f.confirmed_at.is_none()) {
        Some(pending) => {
            let secret = app.secrets.totp_sealer.open(&pending.secret_sealed).map_err(|e| PageError::internal(&e))?;
            let shown = totp::Secret::from_bytes(secret).enrolment(&issuer_label(app), &me.user.email).map_err(|e| PageError::internal(&e))?;
            Some(TotpSetup { key: shown.key, url: shown.url, qr_svg: shown.qr_svg })
        }
        None => None,
    };
    let token = csrf::token(&me.session).await?;
    let providers = linked::providers(app, &me.user.id).await?;
    let mut response = render(&SecurityPage {
        csrf_token: &token,
        notice: shown.notice,
        error: shown.error,
        enabled,
        recovery_left: app.store.recovery_codes_left(&me.user.id).await?,
        required: mfa::required_for(&app.config, &me.user),
        setup,
        new_codes: shown.new_codes,
        continue_to: shown.continue_to,
        providers,
    });
    // The page may hold the TOTP key or recovery codes: never cache it.
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// The name authenticator apps show for this Sluis: the issuer's host.
fn issuer_label(app: &AppState) -> String {
    url::Url::parse(app.issuer()).ok().and_then(|u| u.host_str().map(str::to_string)).unwrap_or_else(|| "Sluis".into())
}

pub async fn post_security(State(app): State<AppState>, recent: Recent, origin: Origin, body: Bytes) -> Result<Response, PageError> {
    let form = Params::parse(&body).map_err(|_| PageError::bad_request("The form could not be read."))?;
    csrf::verify(&recent.me.session, form.get("csrf_token")).await?;
    let me = &recent.me;
    let user = &me.user.id;
    let now = app.now();
    let enabled = app.store.has_second_factor(user).await?;
    match form.get("action") {
        Some("start") if !enabled => {
            let sealed = app.secrets.totp_sealer.seal(totp::Secret::generate().as_bytes());
            app.store.put_pending_totp(user, &sealed, now).await?;
            Ok(see_other("/account/security"))
        }
        Some("cancel") if !enabled => {
            app.store.delete_second_factors(user).await?;
            Ok(see_other("/account/security"))
        }
        Some("confirm") if !enabled => confirm(&app, recent, &origin, form.get("code").unwrap_or("")).await,
        Some("disable") if enabled => {
            app.store.delete_second_factors(user).await?;
            events::record_account_event(&app.store, user, AccountEvent::SecondFactorRemoved, Some("totp"), &origin, now).await?;
            flash::set(&me.session, "Two-factor authentication is off: signing in needs only your password.").await?;
            Ok(see_other("/account/security"))
        }
        Some("regenerate") if enabled => {
            let codes = new_recovery_codes(&app, &recent.auth).await?;
            events::record_account_event(&app.store, user, AccountEvent::RecoveryCodesRegenerated, None, &origin, now).await?;
            let notice = "Here are your new recovery codes; the old ones no longer work.";
            view(&app, me, Shown { notice: Some(notice), new_codes: codes, ..Shown::default() }).await
        }
        Some("link") => linked::link(&app, &me.session, user, form.get("provider").unwrap_or("")).await,
        Some("unlink") => match linked::unlink(&app, user, form.get("provider").unwrap_or(""), &origin).await? {
            Ok(notice) => view(&app, me, Shown { notice: Some(&notice), ..Shown::default() }).await,
            Err(error) => view(&app, me, Shown { error: Some(&error), ..Shown::default() }).await,
        },
        // A stale form (another tab changed the state): show the page as it is now.
        Some("start" | "cancel" | "confirm" | "disable" | "regenerate") => Ok(see_other("/account/security")),
        _ => Err(PageError::bad_request("Choose an action.")),
    }
}

/// Turns the authenticator being set up on, if `code` is valid for it.
async fn confirm(app: &AppState, recent: Recent, origin: &Origin, code: &str) -> Result<Response, PageError> {
    let me = &recent.me;
    let wrong = "That code is not valid. Check that the time on your device is right and enter the code the app shows now.";
    let Some(factor) = app.store.totp_factor(&me.user.id).await?.filter(|f| f.confirmed_at.is_none()) else {
        return Ok(see_other("/account/security"));
    };
    let Some(code) = totp::normalise(code) else {
        return view(app, me, Shown { error: Some(wrong), ..Shown::default() }).await;
    };
    let secret = app.secrets.totp_sealer.open(&factor.secret_sealed).map_err(|e| PageError::internal(&e))?;
    let now = app.now();
    let Some(step) = totp::Secret::from_bytes(secret).check(&code, now) else {
        return view(app, me, Shown { error: Some(wrong), ..Shown::default() }).await;
    };
    // Only the key shown is confirmed (another tab may have started over since).
    if !app.store.confirm_totp(&me.user.id, &factor.secret_sealed, step, now).await? {
        return Ok(see_other("/account/security"));
    }
    let codes = new_recovery_codes(app, &recent.auth).await?;
    events::record_account_event(&app.store, &me.user.id, AccountEvent::SecondFactorAdded, Some("totp"), origin, now).await?;
    // The code just proved the authenticator: this session now counts as two-factor, so a
    // waiting authorization or the admin pages need no further step.
    let upgraded = Authentication { auth_time: now, amr: mfa::with_second_factor(recent.auth.amr.clone()), ..recent.auth.clone() };
    session::sign_in(&me.session, &upgraded).await?;
    let continue_to = second_factor::take_resume_after_setup(&me.session).await?;
    let notice = "Two-factor authentication is on: signing in now asks for a code from your app.";
    view(app, me, Shown { notice: Some(notice), new_codes: codes, continue_to, ..Shown::default() }).await
}

/// Ten new recovery codes replace the old ones; only their hashes are stored.
async fn new_recovery_codes(app: &AppState, auth: &Authentication) -> Result<Vec<String>, PageError> {
    let codes = recovery::generate();
    let hashes: Vec<String> = codes.iter().filter_map(|c| recovery::normalise(c)).map(|c| recovery::hash(&auth.user_id, &c)).collect();
    app.store.replace_recovery_codes(&auth.user_id, &hashes, app.now()).await?;
    Ok(codes)
}
