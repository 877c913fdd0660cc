//! Authorization endpoint (RFC 6749 §4.1, OpenID Connect Core §3.1.2): validates the
//! request, keeps it server-side while the user signs in and consents, then answers with
//! a code. Every answer to a trusted redirect URI carries `iss` (RFC 9207).

use axum::body::Bytes;
use axum::extract::{Query, RawQuery, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tower_sessions::Session;
use url::Url;

use super::authorize_request::{self, AuthorizationRequest, Rejection, ResponseMode};
use crate::clock::Timestamp;
use crate::crypto::{random_token, stored_token, stored_token_key};
use crate::error::{ErrorCode, PageError};
use crate::login::session as login_session;
use crate::login::{mfa, second_factor};
use crate::model::{Acr, Authentication, ClientId};
use crate::privacy::ScopeSet;
use crate::state::AppState;
use crate::store::NewCode;
use crate::web::params::Params;
use crate::web::templates::FormPostPage;

/// How long a user may take to sign in and consent.
const PENDING_TTL: i64 = 30 * 60;
/// RFC 6749 §4.1.2 recommends at most 10 minutes; 60 seconds is plenty for a redirect.
pub const CODE_TTL: i64 = 60;

pub async fn get_authorize(State(app): State<AppState>, session: Session, RawQuery(query): RawQuery) -> Response {
    authorize(&app, &session, query.unwrap_or_default().as_bytes()).await
}

pub async fn post_authorize(State(app): State<AppState>, session: Session, body: Bytes) -> Response {
    authorize(&app, &session, &body).await
}

async fn authorize(app: &AppState, session: &Session, raw: &[u8]) -> Response {
    let params = match Params::parse(raw) {
        Ok(p) => p,
        // Parameters we cannot read cannot tell us a trusted redirect URI either.
        Err(e) => return PageError::bad_request(format!("The request is malformed: {e}.")).into_response(),
    };
    let client = match params.get("client_id") {
        Some(id) => match app.store.client(id).await {
            Ok(c) => c,
            Err(e) => return PageError::from(e).into_response(),
        },
        None => return PageError::bad_request("The request has no client_id.").into_response(),
    };
    let request = match client.as_ref().map(|c| authorize_request::parse(&params, c, &app.scopes)) {
        Some(Ok(r)) => r,
        Some(Err(rejection)) => return reject(app, rejection),
        None => return reject(app, authorize_request::trusted_redirect(&params, None).unwrap_err()),
    };
    let id = random_token();
    let payload = match serde_json::to_string(&request) {
        Ok(p) => p,
        Err(e) => return PageError::internal(&e).into_response(),
    };
    if let Err(e) = app.store.put_auth_request(&id, &payload, app.now(), PENDING_TTL).await {
        return PageError::from(e).into_response();
    }
    proceed(app, session, &id, request, app.now()).await
}

#[derive(Deserialize)]
pub struct ResumeQuery {
    request_id: String,
}

/// Where the login and consent pages send the browser back to.
pub async fn get_resume(State(app): State<AppState>, session: Session, Query(q): Query<ResumeQuery>) -> Response {
    match load_pending(&app, &q.request_id).await {
        Ok(Some((request, created_at))) => proceed(&app, &session, &q.request_id, request, created_at).await,
        Ok(None) => expired_page().into_response(),
        Err(e) => e.into_response(),
    }
}

pub fn expired_page() -> PageError {
    PageError::bad_request("This sign-in request has expired or was already completed. Go back to the application and start again.")
}

/// The signed-in account was erased (in another browser) while this request was on its way.
pub fn account_gone_page() -> PageError {
    PageError::bad_request("This account has been deleted. Go back to the application and sign in again.")
}

/// A pending request and when it was made.
pub async fn load_pending(app: &AppState, id: &str) -> Result<Option<(AuthorizationRequest, Timestamp)>, PageError> {
    let Some(stored) = app.store.auth_request(id, app.now()).await? else { return Ok(None) };
    let request: AuthorizationRequest = serde_json::from_str(&stored.payload).map_err(|e| PageError::internal(&e))?;
    Ok(Some((request, stored.created_at)))
}

/// What the authorization endpoint does next for a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    Login,
    /// Signed in with one factor where two are needed: ask for the second.
    SecondFactor,
    Consent,
    IssueCode,
    Fail(ErrorCode),
}

/// OpenID Connect Core §3.1.2.3–4: sign in again when asked (prompt=login, max_age),
/// add the second factor when two are needed (`acr_values`, or `policy_2fa`: the
/// configuration requires it of this user), ask for consent when not given or asked
/// (prompt=consent), and with prompt=none fail instead of showing anything.
pub fn next_step(
    request: &AuthorizationRequest,
    requested_at: Timestamp,
    auth: Option<&Authentication>,
    consented: Option<&ScopeSet>,
    policy_2fa: bool,
    now: Timestamp,
) -> Step {
    let fresh_enough = auth.is_some_and(|a| {
        if request.login_done {
            return a.auth_time >= requested_at;
        }
        // max_age=0 is prompt=login (OpenID Connect Core §3.1.2.1).
        let must_log_in = request.prompt.login || request.max_age == Some(0);
        !must_log_in && request.max_age.is_none_or(|max| now - a.auth_time <= max)
    });
    if !fresh_enough {
        return if request.prompt.none { Step::Fail(ErrorCode::LoginRequired) } else { Step::Login };
    }
    let needs_two = policy_2fa || request.acr == Some(Acr::TwoFactor);
    if needs_two && !auth.is_some_and(Authentication::two_factor) {
        // §3.1.2.6: showing the second-factor page is an interaction prompt=none forbids.
        return if request.prompt.none { Step::Fail(ErrorCode::InteractionRequired) } else { Step::SecondFactor };
    }
    let scope = ScopeSet::parse(&request.scope).unwrap_or_default();
    let covered = consented.is_some_and(|c| scope.is_subset(c));
    if !request.consent_given && (request.prompt.consent || !covered) {
        return if request.prompt.none { Step::Fail(ErrorCode::ConsentRequired) } else { Step::Consent };
    }
    Step::IssueCode
}

async fn proceed(app: &AppState, session: &Session, id: &str, request: AuthorizationRequest, requested_at: Timestamp) -> Response {
    let auth = match login_session::current(session).await {
        Ok(a) => a,
        Err(e) => return e.into_response(),
    };
    let request = match login_session::was_signed_in_for(session, id).await {
        Ok(login_done) => AuthorizationRequest { login_done, ..request },
        Err(e) => return e.into_response(),
    };
    let client_id = ClientId(request.client_id.clone());
    let consented = match &auth {
        Some(a) => match app.store.consent(&a.user_id, &client_id).await {
            Ok(c) => c.and_then(|s| ScopeSet::parse(&s)),
            Err(e) => return PageError::from(e).into_response(),
        },
        None => None,
    };
    let policy_2fa = match &auth {
        Some(a) => match app.store.user(&a.user_id).await {
            Ok(user) => user.is_some_and(|u| mfa::required_for(&app.config, &u)),
            Err(e) => return PageError::from(e).into_response(),
        },
        None => false,
    };
    let now = app.now();
    let step = next_step(&request, requested_at, auth.as_ref(), consented.as_ref(), policy_2fa, now);
    // Every step past Login has a signed-in user; pairing them lets the compiler check it.
    match (step, auth) {
        (Step::Login, _) | (Step::SecondFactor | Step::IssueCode, None) => crate::web::see_other(&format!("/login?request_id={id}")),
        (Step::SecondFactor, Some(auth)) => {
            match second_factor_step(app, session, id, &request, &auth, policy_2fa).await {
                Ok(r) => r,
                Err(e) => e.into_response(),
            }
        }
        (Step::Consent, _) => crate::web::see_other(&format!("/consent?request_id={id}")),
        (Step::Fail(code), _) => {
            let _ = app.store.delete_auth_request(id).await;
            error_response(app, &request.redirect_uri, request.response_mode, request.state.as_deref(), code, None)
        }
        (Step::IssueCode, Some(auth)) => {
            match issue_code(app, &request, auth, now).await {
                Ok(code) => {
                    let _ = app.store.delete_auth_request(id).await;
                    respond(app, &request.redirect_uri, request.response_mode, &[("code", &code), ("state", request.state.as_deref().unwrap_or(""))])
                }
                Err(e) => e.into_response(),
            }
        }
    }
}

/// A one-factor session where two are needed: step up if the account has a second factor;
/// without one, lead the user to set it up when the configuration requires it, else tell
/// the client (its acr_values cannot be met).
async fn second_factor_step(
    app: &AppState,
    session: &Session,
    id: &str,
    request: &AuthorizationRequest,
    auth: &Authentication,
    policy_2fa: bool,
) -> Result<Response, PageError> {
    if app.store.has_second_factor(&auth.user_id).await? {
        return second_factor::start_step_up(app, session, auth, second_factor::Then::StepUp { request_id: id.to_string() }).await;
    }
    if policy_2fa {
        second_factor::resume_after_setup(session, id).await?;
        crate::web::flash::set(session, "Two-factor authentication is required for your account. Set it up to continue.").await?;
        return Ok(crate::web::see_other("/account/security"));
    }
    let _ = app.store.delete_auth_request(id).await;
    Ok(error_response(
        app,
        &request.redirect_uri,
        request.response_mode,
        request.state.as_deref(),
        ErrorCode::AccessDenied,
        Some("the requested acr_values need two-factor authentication, which this account has not set up"),
    ))
}

async fn issue_code(app: &AppState, request: &AuthorizationRequest, auth: Authentication, now: Timestamp) -> Result<String, PageError> {
    let code = stored_token();
    let client = app.store.client(&request.client_id).await?.ok_or_else(expired_page)?;
    let client_id = client.id.clone();
    if !app.store.touch_link(&auth.user_id, &client_id, &app.subject(&client, &auth.user_id), &request.scope, now).await? {
        return Err(account_gone_page());
    }
    let stored = app
        .store
        .insert_code(&NewCode {
            code_hash: stored_token_key(&code),
            client_id,
            redirect_uri: request.redirect_uri.clone(),
            scope: request.scope.clone(),
            nonce: request.nonce.clone(),
            code_challenge: request.code_challenge.clone(),
            auth,
            expires_at: now + CODE_TTL,
        })
        .await?;
    if !stored {
        return Err(account_gone_page());
    }
    Ok(code)
}

/// The user refused consent, or a check failed after the redirect URI was trusted.
pub fn error_response(
    app: &AppState,
    redirect_uri: &str,
    mode: ResponseMode,
    state: Option<&str>,
    code: ErrorCode,
    description: Option<&str>,
) -> Response {
    respond(
        app,
        redirect_uri,
        mode,
        &[("error", code.as_str()), ("error_description", description.unwrap_or("")), ("state", state.unwrap_or(""))],
    )
}

fn reject(app: &AppState, rejection: Rejection) -> Response {
    match rejection {
        Rejection::Page(message) => PageError::bad_request(message).into_response(),
        Rejection::Redirect { redirect_uri, response_mode, state, code, description } => {
            error_response(app, &redirect_uri, response_mode, state.as_deref(), code, Some(description))
        }
    }
}

/// Sends an authorization response with `iss` (RFC 9207) by redirect or form post.
fn respond(app: &AppState, redirect_uri: &str, mode: ResponseMode, fields: &[(&str, &str)]) -> Response {
    let mut fields: Vec<(&str, &str)> = fields.iter().copied().filter(|(_, v)| !v.is_empty()).collect();
    fields.push(("iss", app.issuer()));
    match mode {
        ResponseMode::Query => {
            let Ok(mut url) = Url::parse(redirect_uri) else {
                return PageError::bad_request("The redirect address is invalid.").into_response();
            };
            url.query_pairs_mut().extend_pairs(fields);
            crate::web::see_other(url.as_str())
        }
        ResponseMode::FormPost => {
            let mut response = crate::web::render(&FormPostPage { action: redirect_uri, fields });
            // The form goes to the client, so this page's form-action names it.
            let target = crate::web::form_target_source(redirect_uri).unwrap_or_default();
            let csp = crate::web::csp_with_form_action(&target);
            if let Ok(value) = HeaderValue::from_str(&csp) {
                response.headers_mut().insert(header::CONTENT_SECURITY_POLICY, value);
            }
            response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oidc::authorize_request::Prompt;
    use crate::model::UserId;

    fn request(prompt: Prompt, max_age: Option<i64>) -> AuthorizationRequest {
        AuthorizationRequest {
            client_id: "c".into(),
            redirect_uri: "https://app.example/cb".into(),
            response_mode: ResponseMode::Query,
            state: None,
            scope: "email openid".into(),
            nonce: None,
            code_challenge: None,
            prompt,
            max_age,
            login_hint: None,
            acr: None,
            consent_given: false,
            login_done: false,
        }
    }

    fn auth(at: Timestamp) -> Authentication {
        Authentication { user_id: UserId("u".into()), auth_time: at, amr: vec!["pwd".into()], sid: "s".into() }
    }

    #[test]
    fn steps() {
        let all = ScopeSet::parse("openid email profile").unwrap();
        let none = Prompt::default();
        let r = request(none.clone(), None);
        assert_eq!(next_step(&r, 100, None, None, false, 100), Step::Login);
        assert_eq!(next_step(&r, 100, Some(&auth(50)), None, false, 100), Step::Consent);
        assert_eq!(next_step(&r, 100, Some(&auth(50)), Some(&all), false, 100), Step::IssueCode);
        let partial = ScopeSet::parse("openid").unwrap();
        assert_eq!(next_step(&r, 100, Some(&auth(50)), Some(&partial), false, 100), Step::Consent);

        let silent = request(Prompt { none: true, ..Prompt::default() }, None);
        assert_eq!(next_step(&silent, 100, None, None, false, 100), Step::Fail(ErrorCode::LoginRequired));
        assert_eq!(next_step(&silent, 100, Some(&auth(50)), None, false, 100), Step::Fail(ErrorCode::ConsentRequired));

        let login = request(Prompt { login: true, ..Prompt::default() }, None);
        assert_eq!(next_step(&login, 100, Some(&auth(50)), Some(&all), false, 100), Step::Login);
        assert_eq!(next_step(&login, 100, Some(&auth(100)), Some(&all), false, 100), Step::Login, "same second is not enough");
        let logged_in = AuthorizationRequest { login_done: true, ..login };
        assert_eq!(next_step(&logged_in, 100, Some(&auth(100)), Some(&all), false, 101), Step::IssueCode);

        let consent = request(Prompt { consent: true, ..Prompt::default() }, None);
        assert_eq!(next_step(&consent, 100, Some(&auth(50)), Some(&all), false, 100), Step::Consent);
        let approved = AuthorizationRequest { consent_given: true, ..consent };
        assert_eq!(next_step(&approved, 100, Some(&auth(50)), Some(&all), false, 100), Step::IssueCode);

        let max_age = request(none.clone(), Some(0));
        assert_eq!(next_step(&max_age, 100, Some(&auth(100)), Some(&all), false, 100), Step::Login);
        let max_age = AuthorizationRequest { login_done: true, ..max_age };
        assert_eq!(next_step(&max_age, 100, Some(&auth(100)), Some(&all), false, 100), Step::IssueCode);
        let max_age = request(none, Some(60));
        assert_eq!(next_step(&max_age, 100, Some(&auth(50)), Some(&all), false, 100), Step::IssueCode);
        assert_eq!(next_step(&max_age, 100, Some(&auth(50)), Some(&all), false, 120), Step::Login);
    }

    #[test]
    fn two_factors_when_asked_or_required() {
        let all = ScopeSet::parse("openid email profile").unwrap();
        let two = Authentication { amr: vec!["pwd".into(), "otp".into(), "mfa".into()], ..auth(50) };
        let wants_2fa = AuthorizationRequest { acr: Some(Acr::TwoFactor), ..request(Prompt::default(), None) };
        assert_eq!(next_step(&wants_2fa, 100, Some(&auth(50)), Some(&all), false, 100), Step::SecondFactor);
        assert_eq!(next_step(&wants_2fa, 100, Some(&two), Some(&all), false, 100), Step::IssueCode);
        assert_eq!(next_step(&wants_2fa, 100, None, Some(&all), false, 100), Step::Login, "sign in first");
        let one_is_fine = AuthorizationRequest { acr: Some(Acr::OneFactor), ..request(Prompt::default(), None) };
        assert_eq!(next_step(&one_is_fine, 100, Some(&auth(50)), Some(&all), false, 100), Step::IssueCode);
        assert_eq!(next_step(&one_is_fine, 100, Some(&auth(50)), Some(&all), true, 100), Step::SecondFactor, "policy");
        let silent = AuthorizationRequest { prompt: Prompt { none: true, ..Prompt::default() }, ..wants_2fa.clone() };
        assert_eq!(next_step(&silent, 100, Some(&auth(50)), Some(&all), false, 100), Step::Fail(ErrorCode::InteractionRequired));
        assert_eq!(next_step(&silent, 100, Some(&two), Some(&all), false, 100), Step::IssueCode);
        // The second factor comes before consent: the consent page is for a fully signed-in user.
        assert_eq!(next_step(&wants_2fa, 100, Some(&auth(50)), None, false, 100), Step::SecondFactor);
    }
}
